//! Public market data: exchange status and schedule, markets, order books and public trades.
//! Readable without a key, as on Kalshi.

use super::params::{era_of, market_id, ok, page, paginate, query_map, ListFilter};
use super::{ApiError, ApiResult, Shr};
use crate::engine::{Exchange, MarketId};
use crate::wire;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use kalshi_proto::market::MarketStatus;
use kalshi_proto::units::{Price, Qty};
use kalshi_proto::Side;
use serde_json::{json, Value};
use std::collections::HashMap;

pub(super) async fn exchange_status(State(s): State<Shr>) -> ApiResult {
    let v = s.lock();
    ok(json!({
        "exchange_active": v.exchange.exchange_active,
        "trading_active": v.exchange.trading_active && v.exchange.exchange_active,
        "exchange_estimated_resume_time": null,
        "intra_exchange_transfers_active": true,
    }))
}

pub(super) async fn exchange_schedule() -> ApiResult {
    let day = json!([{"open_time": "00:00", "close_time": "23:59"}]);
    ok(json!({"schedule": {"standard_hours": [{
        "start_time": "2026-01-01T00:00:00Z", "end_time": "2099-01-01T00:00:00Z",
        "monday": day, "tuesday": day, "wednesday": day, "thursday": day, "friday": day, "saturday": day, "sunday": day
    }], "maintenance_windows": []}}))
}

pub(super) async fn user_data_timestamp(State(s): State<Shr>) -> ApiResult {
    let now = s.clock.now_ms();
    ok(json!({"as_of_time": wire::rfc3339(s.clock.epoch_ms, now)}))
}

fn status_matches(filter: &str, status: MarketStatus) -> bool {
    filter.split(',').any(|f| match f {
        "open" => status == MarketStatus::Active,
        "unopened" => status == MarketStatus::Initialized,
        "paused" => status == MarketStatus::Inactive,
        "closed" => matches!(status, MarketStatus::Closed | MarketStatus::Determined),
        "settled" => status == MarketStatus::Settled,
        other => status.rest_name() == other,
    })
}

pub(super) async fn list_markets(State(s): State<Shr>, headers: HeaderMap, RawQuery(raw): RawQuery) -> ApiResult {
    let era = era_of(&headers);
    let q = query_map(raw)?;
    let p = page(&q)?;
    if let Some(st) = q.get("status") {
        if st
            .split(',')
            .any(|f| !matches!(f, "open" | "unopened" | "paused" | "closed" | "settled"))
        {
            return Err(ApiError::bad(format!(
                "status must be one of unopened, open, paused, closed, settled; got {st:?}"
            )));
        }
    }
    let v = s.lock();
    let ex = &v.exchange;
    let tickers: Option<Vec<&str>> = q.get("tickers").map(|t| t.split(',').collect());
    let markets: Vec<Value> = ex
        .markets
        .iter()
        .filter(|m| q.get("status").is_none_or(|f| status_matches(f, m.status)))
        .filter(|m| q.get("event_ticker").is_none_or(|e| &m.spec.event_ticker == e))
        .filter(|m| q.get("series_ticker").is_none_or(|e| &m.spec.series_ticker == e))
        .filter(|m| tickers.as_ref().is_none_or(|t| t.contains(&m.spec.ticker.as_str())))
        .map(|m| wire::market_json(ex, m, era))
        .collect();
    let (markets, cursor) = paginate(markets, &p);
    ok(json!({"markets": markets, "cursor": cursor}))
}

pub(super) async fn get_market(State(s): State<Shr>, headers: HeaderMap, Path(ticker): Path<String>) -> ApiResult {
    let era = era_of(&headers);
    let v = s.lock();
    let id = market_id(&v.exchange, &ticker)?;
    ok(json!({"market": wire::market_json(&v.exchange, v.exchange.market(id), era)}))
}

/// Both generations' orderbook shapes in one body: `orderbook` (3.2: string counts in
/// `yes_dollars`/`no_dollars`, integer cents in `yes`/`no`) and `orderbook_fp` (current).
fn orderbook_json(ex: &Exchange, id: MarketId, depth: usize) -> Value {
    let m = ex.market(id);
    let yes = wire::book_levels(m, Side::Bid, false, depth);
    let no = wire::book_levels(m, Side::Ask, false, depth);
    let dollars = |levels: &[(Price, Qty)]| -> Vec<Value> { levels.iter().map(|(p, q)| json!([p.dollars(), q.fp()])).collect() };
    let cents = |levels: &[(Price, Qty)]| -> Vec<Value> { levels.iter().map(|(p, q)| json!([p.cents_rounded(), q.whole()])).collect() };
    json!({
        "orderbook": {"yes": cents(&yes), "no": cents(&no), "yes_dollars": dollars(&yes), "no_dollars": dollars(&no)},
        "orderbook_fp": {"yes_dollars": dollars(&yes), "no_dollars": dollars(&no)},
    })
}

fn depth_param(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    match q.get("depth") {
        None => Ok(0),
        Some(d) => d
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= 100)
            .ok_or_else(|| ApiError::bad(format!("depth must be 0..=100, got {d:?}"))),
    }
}

pub(super) async fn get_orderbook(State(s): State<Shr>, Path(ticker): Path<String>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = query_map(raw)?;
    let depth = depth_param(&q)?;
    let v = s.lock();
    let id = market_id(&v.exchange, &ticker)?;
    ok(orderbook_json(&v.exchange, id, depth))
}

pub(super) async fn multi_orderbook(State(s): State<Shr>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = query_map(raw)?;
    let tickers: Vec<String> = q
        .get("tickers")
        .map(|t| t.split(',').filter(|x| !x.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    if tickers.is_empty() || tickers.len() > 100 {
        return Err(ApiError::bad("tickers must list 1 to 100 market tickers"));
    }
    let v = s.lock();
    let mut books = Vec::new();
    for t in &tickers {
        let id = market_id(&v.exchange, t)?;
        let mut b = orderbook_json(&v.exchange, id, 0);
        books.push(json!({"ticker": t, "orderbook_fp": b["orderbook_fp"].take()}));
    }
    ok(json!({"orderbooks": books}))
}

pub(super) async fn list_trades(State(s): State<Shr>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = query_map(raw)?;
    let v = s.lock();
    let ex = &v.exchange;
    let f = ListFilter::new(ex, &q)?;
    // Newest first, as Kalshi lists them.
    let trades: Vec<Value> = ex
        .trades
        .iter()
        .rev()
        .filter(|t| f.includes(t.market, t.ts_ms))
        .map(|t| wire::trade_json(ex, t))
        .collect();
    let (trades, cursor) = paginate(trades, &f.page);
    ok(json!({"trades": trades, "cursor": cursor}))
}
