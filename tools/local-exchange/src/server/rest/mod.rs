//! REST under `/trade-api/v2`: both order-endpoint families (legacy `/portfolio/orders*` and
//! V2 `/portfolio/events/orders*`), market data, portfolio and account endpoints.
//!
//! Every failure answers with Kalshi's wrapped error body `{"error":{"code","message",
//! "details"}}` (429 with `{"error":"too many requests"}`); creates answer 201, because the
//! 3.2 SDK silently returns None on a 200.
//!
//! This file holds what every request goes through (the error shape, authentication, the
//! gate of faults and rate limits) and the route table; the endpoints live in files below.

mod market_data;
mod orders;
mod params;
mod parse;
mod portfolio;

pub use parse::{parse_batch_cancel_request, parse_decrease_request, parse_order_request, OrderFamily};

use crate::book::AccountId;
use crate::engine::OrderError;
use crate::server::{Clock, Shared};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use market_data::{
    exchange_schedule, exchange_status, get_market, get_orderbook, list_markets, list_trades, multi_orderbook, user_data_timestamp,
};
use orders::{
    get_order, legacy_amend, legacy_batch_cancel, legacy_batch_create, legacy_cancel, legacy_create, legacy_decrease, list_orders,
    queue_position, queue_positions, v2_amend, v2_batch_cancel, v2_batch_create, v2_cancel, v2_cancel_all, v2_create, v2_decrease,
};
use portfolio::{account_limits, balance, endpoint_costs, list_fills, list_positions, list_settlements};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub const PREFIX: &str = "/trade-api/v2";

type Shr = Arc<Shared>;
type ApiResult = Result<Response, ApiError>;

/// An error answered in Kalshi's shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code: code.to_string(),
            message: message.into(),
        }
    }
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid_parameters", message)
    }
    fn not_found(what: &str) -> ApiError {
        ApiError::new(404, "not_found", format!("{what} not found"))
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> ApiError {
        ApiError::new(e.status, e.code, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.code, &self.message)
    }
}

pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return (status, Json(json!({"error": "too many requests"}))).into_response();
    }
    (status, Json(json!({"error": {"code": code, "message": message, "details": ""}}))).into_response()
}

/// The authenticated account of a request.
#[derive(Clone, Copy, Debug)]
pub struct Caller(pub AccountId);

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies Kalshi's signature headers for `method` + `path`; the WebSocket upgrade uses it too.
pub fn authenticate(shared: &Shared, headers: &HeaderMap, method: &str, path: &str) -> Result<AccountId, ApiError> {
    shared
        .verifier
        .verify(
            header(headers, "KALSHI-ACCESS-KEY"),
            header(headers, "KALSHI-ACCESS-TIMESTAMP"),
            header(headers, "KALSHI-ACCESS-SIGNATURE"),
            method,
            path,
            Clock::wall_ms(),
        )
        .map_err(|e| ApiError::new(401, "unauthorized", e.to_string()))
}

/// Market data is readable without a key; portfolio and account endpoints need one. Unknown
/// paths are not authenticated either, so they answer 404 rather than 401.
fn is_public(method: &Method, path: &str) -> bool {
    let private = path.starts_with("/portfolio") || path.starts_with("/account");
    !private || (method == Method::GET && path.starts_with("/exchange/"))
}

/// Faults, auth and rate limits, in that order, for every REST request.
async fn gate(State(shared): State<Shr>, mut req: Request, next: Next) -> Response {
    shared.counters.rest_requests.fetch_add(1, Ordering::Relaxed);
    let full_path = req.uri().path().to_string();
    if let Some(fault) = shared.faults.take_http(&full_path) {
        shared.counters.rest_errors.fetch_add(1, Ordering::Relaxed);
        let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let code = match fault.status {
            500 => "internal_server_error",
            503 => "service_unavailable",
            _ => "injected_fault",
        };
        return error_response(status, code, "injected fault");
    }
    let path = full_path.strip_prefix(PREFIX).unwrap_or(&full_path).to_string();
    let method = req.method().clone();
    let has_key = req.headers().contains_key("KALSHI-ACCESS-KEY");
    let caller = if has_key || !is_public(&method, &path) {
        match authenticate(&shared, req.headers(), method.as_str(), &full_path) {
            Ok(a) => Some(a),
            Err(e) => {
                shared.counters.rest_errors.fetch_add(1, Ordering::Relaxed);
                return e.into_response();
            }
        }
    } else {
        None
    };
    if let Some(account) = caller {
        let (bucket, cost) = kalshi_proto::ratelimit::cost(method.as_str(), &path);
        if !shared.limiter.try_take(account, bucket, cost) {
            shared.counters.rest_errors.fetch_add(1, Ordering::Relaxed);
            return error_response(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", "");
        }
        req.extensions_mut().insert(Caller(account));
    }
    let response = next.run(req).await;
    if !response.status().is_success() {
        shared.counters.rest_errors.fetch_add(1, Ordering::Relaxed);
    }
    response
}

pub fn router(shared: Shr) -> Router<Shr> {
    let api = Router::new()
        .route("/exchange/status", get(exchange_status))
        .route("/exchange/schedule", get(exchange_schedule))
        .route("/exchange/user_data_timestamp", get(user_data_timestamp))
        .route("/markets", get(list_markets))
        .route("/markets/trades", get(list_trades))
        .route("/markets/orderbooks", get(multi_orderbook))
        .route("/markets/{ticker}", get(get_market))
        .route("/markets/{ticker}/orderbook", get(get_orderbook))
        .route("/portfolio/orders", post(legacy_create).get(list_orders))
        .route("/portfolio/orders/batched", post(legacy_batch_create).delete(legacy_batch_cancel))
        .route("/portfolio/orders/queue_positions", get(queue_positions))
        .route("/portfolio/orders/{id}", get(get_order).delete(legacy_cancel))
        .route("/portfolio/orders/{id}/amend", post(legacy_amend))
        .route("/portfolio/orders/{id}/decrease", post(legacy_decrease))
        .route("/portfolio/orders/{id}/queue_position", get(queue_position))
        .route("/portfolio/events/orders", post(v2_create).delete(v2_cancel_all).get(list_orders))
        .route("/portfolio/events/orders/batched", post(v2_batch_create).delete(v2_batch_cancel))
        .route("/portfolio/events/orders/{id}", get(get_order).delete(v2_cancel))
        .route("/portfolio/events/orders/{id}/amend", post(v2_amend))
        .route("/portfolio/events/orders/{id}/decrease", post(v2_decrease))
        .route("/portfolio/fills", get(list_fills))
        .route("/portfolio/positions", get(list_positions))
        .route("/portfolio/balance", get(balance))
        .route("/portfolio/settlements", get(list_settlements))
        .route("/account/limits", get(account_limits))
        .route("/account/endpoint_costs", get(endpoint_costs))
        .fallback(not_found_route)
        .method_not_allowed_fallback(method_not_allowed);
    Router::new().nest(PREFIX, api).layer(middleware::from_fn_with_state(shared, gate))
}

async fn not_found_route() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}
