//! The query parameters and responses the endpoints share: paging with cursors, time windows,
//! ticker filters, order-id decoding, the API generation a client speaks, and the 200/201
//! answers. Shared so every list endpoint validates the same way and reports the same errors.

use super::{header, ApiError, ApiResult, Caller};
use crate::book::{AccountId, OrderNo};
use crate::engine::{Exchange, MarketId};
use crate::ids::IdKind;
use crate::{ids, wire};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

pub(super) fn query_map(raw: Option<String>) -> Result<HashMap<String, String>, ApiError> {
    match raw {
        None => Ok(HashMap::new()),
        Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(&q)
            .map(|v| v.into_iter().collect())
            .map_err(|e| ApiError::bad(format!("malformed query string: {e}"))),
    }
}

pub(super) fn parse_json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(400, "invalid_parameters", "request body is empty; expected JSON"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::new(400, "invalid_parameters", format!("invalid JSON body: {e}")))
}

pub(super) fn caller(c: Option<Extension<Caller>>) -> Result<AccountId, ApiError> {
    c.map(|Extension(Caller(a))| a)
        .ok_or_else(|| ApiError::new(401, "unauthorized", "authentication required"))
}

pub(super) struct Page {
    offset: usize,
    limit: usize,
}

pub(super) fn page(q: &HashMap<String, String>) -> Result<Page, ApiError> {
    let limit = match q.get("limit") {
        None => 100,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad(format!("limit must be 1..=1000, got {s:?}")))?,
    };
    let offset = match q.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c.parse::<usize>().map_err(|_| ApiError::bad(format!("unknown cursor {c:?}")))?,
    };
    Ok(Page { offset, limit })
}

/// Applies a page to `items`, returning the slice and the next cursor ("" when done).
pub(super) fn paginate<T>(items: Vec<T>, p: &Page) -> (Vec<T>, String) {
    let total = items.len();
    let out: Vec<T> = items.into_iter().skip(p.offset).take(p.limit).collect();
    let next = p.offset + out.len();
    (out, if next < total { next.to_string() } else { String::new() })
}

fn ts_filter(q: &HashMap<String, String>, epoch_ms: u64) -> Result<(u64, u64), ApiError> {
    let parse = |k: &str| -> Result<Option<u64>, ApiError> {
        q.get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad(format!("{k} must be Unix seconds, got {v:?}")))
            })
            .transpose()
    };
    // Convert Unix seconds to simulated ms.
    let to_sim = |s: u64| s.saturating_mul(1000).saturating_sub(epoch_ms);
    let min = parse("min_ts")?.map_or(0, to_sim);
    let max = parse("max_ts")?.map_or(u64::MAX, |s| to_sim(s).saturating_add(999));
    Ok((min, max))
}

/// Paging, time window and ticker filter shared by the list endpoints, parsed in that order
/// so the first bad parameter is the one reported.
pub(super) struct ListFilter {
    pub(super) page: Page,
    pub(super) min_ms: u64,
    pub(super) max_ms: u64,
    pub(super) market: Option<MarketId>,
}

impl ListFilter {
    pub(super) fn new(ex: &Exchange, q: &HashMap<String, String>) -> Result<ListFilter, ApiError> {
        let page = page(q)?;
        let (min_ms, max_ms) = ts_filter(q, ex.config.epoch_ms)?;
        let market = q.get("ticker").map(|t| market_id(ex, t)).transpose()?;
        Ok(ListFilter {
            page,
            min_ms,
            max_ms,
            market,
        })
    }

    pub(super) fn includes(&self, market: MarketId, ts_ms: u64) -> bool {
        self.market.is_none_or(|m| m == market) && ts_ms >= self.min_ms && ts_ms <= self.max_ms
    }
}

pub(super) fn market_id(ex: &Exchange, ticker: &str) -> Result<MarketId, ApiError> {
    ex.market_by_ticker(ticker)
        .ok_or_else(|| ApiError::new(404, "market_not_found", format!("market {ticker} not found")))
}

pub(super) fn order_id(text: &str) -> Result<OrderNo, ApiError> {
    ids::decode(IdKind::Order, text).ok_or_else(|| ApiError::new(404, "not_found", format!("order {text} not found")))
}

pub(super) fn era_of(headers: &HeaderMap) -> wire::Era {
    wire::Era::from_user_agent(header(headers, "user-agent"))
}

pub(super) fn ok(v: Value) -> ApiResult {
    Ok((StatusCode::OK, Json(v)).into_response())
}

pub(super) fn created(v: Value) -> ApiResult {
    Ok((StatusCode::CREATED, Json(v)).into_response())
}
