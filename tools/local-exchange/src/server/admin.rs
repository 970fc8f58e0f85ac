//! Admin endpoints for tests and operators, guarded by a per-session token (header
//! `X-Admin-Token`, written to the info file). Not part of Kalshi's API.
//!
//! - `POST /admin/v1/faults` with a fault as JSON (see `faults::Fault`): inject it now.
//! - `POST /admin/v1/markets/{ticker}/lifecycle` with `{"action": "close" | "deactivate" |
//!   "activate" | "determine" | "settle", "result": "yes" | "no"}`.
//! - `GET /admin/v1/status`: simulated time, counters, markets with their hidden true value.

use super::Shared;
use crate::engine::MarketResult;
use crate::faults::Fault;
use crate::server::rest::ApiError;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/admin/v1/faults", post(inject))
        .route("/admin/v1/markets/{ticker}/lifecycle", post(lifecycle))
        .route("/admin/v1/status", get(status))
}

fn authorised(s: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers.get("X-Admin-Token").and_then(|v| v.to_str().ok());
    if given == Some(s.admin_token.as_str()) {
        Ok(())
    } else {
        Err(ApiError::new(
            401,
            "unauthorized",
            "admin endpoints need the X-Admin-Token from the info file",
        ))
    }
}

async fn inject(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = authorised(&s, &headers) {
        return e.into_response();
    }
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return ApiError::bad(format!("invalid fault: {e}")).into_response(),
    };
    s.apply_fault(&fault);
    Json(json!({"applied": fault})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleReq {
    action: String,
    #[serde(default)]
    result: Option<MarketResult>,
}

async fn lifecycle(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(ticker): Path<String>, body: Bytes) -> Response {
    if let Err(e) = authorised(&s, &headers) {
        return e.into_response();
    }
    let req: LifecycleReq = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return ApiError::bad(format!("invalid request: {e}")).into_response(),
    };
    let result = s.with_exchange(|ex, now| {
        let Some(m) = ex.market_by_ticker(&ticker) else {
            return Err(ApiError::new(404, "market_not_found", format!("market {ticker} not found")));
        };
        match req.action.as_str() {
            "close" => ex.close(now, m),
            "deactivate" => ex.deactivate(now, m),
            "activate" => ex.activate(now, m),
            "determine" => match req.result {
                Some(r) => ex.determine(now, m, r),
                None => return Err(ApiError::bad("determine needs result yes or no")),
            },
            "settle" => ex.settle(now, m),
            other => {
                return Err(ApiError::bad(format!(
                    "unknown action {other:?}; use close, deactivate, activate, determine or settle"
                )))
            }
        }
        Ok(ex.market(m).status.rest_name())
    });
    match result {
        Ok(status) => Json(json!({"ticker": ticker, "status": status})).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn status(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorised(&s, &headers) {
        return e.into_response();
    }
    let v = s.lock();
    let markets: Vec<_> = v
        .exchange
        .markets
        .iter()
        .map(|m| {
            json!({"ticker": m.spec.ticker, "status": m.status.rest_name(), "true_probability": v.population.true_probability(m.id),
                        "volume": m.volume.fp(), "trades": m.trade_count})
        })
        .collect();
    let c = &s.counters;
    Json(json!({
        "sim_ms": s.clock.now_ms(),
        "batch_no": v.batch_no,
        "rest_requests": c.rest_requests.load(Ordering::Relaxed),
        "rest_errors": c.rest_errors.load(Ordering::Relaxed),
        "ws_connections": c.ws_connections.load(Ordering::Relaxed),
        "ws_messages": c.ws_messages.load(Ordering::Relaxed),
        "orders": c.orders.load(Ordering::Relaxed),
        "trading_active": v.exchange.trading_active,
        "markets": markets,
    }))
    .into_response()
}
