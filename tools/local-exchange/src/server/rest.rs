//! REST under `/trade-api/v2`: both order-endpoint families (legacy `/portfolio/orders*` and
//! V2 `/portfolio/events/orders*`), market data, portfolio and account endpoints.
//!
//! Every failure answers with Kalshi's wrapped error body `{"error":{"code","message",
//! "details"}}` (429 with `{"error":"too many requests"}`); creates answer 201, because the
//! 3.2 SDK silently returns None on a 200.

use super::{Clock, Shared};
use crate::book::{AccountId, OrderNo};
use crate::engine::{Exchange, MarketId, NewOrder, OrderError, OrderRecord, Phrasing, Reduce};
use crate::ids::{self, IdKind};
use crate::wire;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use kalshi_proto::market::MarketStatus;
use kalshi_proto::order::{SelfTradePrevention, TimeInForce};
use kalshi_proto::units::{Money, Price, Qty};
use kalshi_proto::Side;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
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

// ------------------------------------------------------------------ helpers

fn query_map(raw: Option<String>) -> Result<HashMap<String, String>, ApiError> {
    match raw {
        None => Ok(HashMap::new()),
        Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(&q)
            .map(|v| v.into_iter().collect())
            .map_err(|e| ApiError::bad(format!("malformed query string: {e}"))),
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(400, "invalid_parameters", "request body is empty; expected JSON"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::new(400, "invalid_parameters", format!("invalid JSON body: {e}")))
}

fn caller(c: Option<Extension<Caller>>) -> Result<AccountId, ApiError> {
    c.map(|Extension(Caller(a))| a)
        .ok_or_else(|| ApiError::new(401, "unauthorized", "authentication required"))
}

struct Page {
    offset: usize,
    limit: usize,
}

fn page(q: &HashMap<String, String>) -> Result<Page, ApiError> {
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
fn paginate<T>(items: Vec<T>, p: &Page) -> (Vec<T>, String) {
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
struct ListFilter {
    page: Page,
    min_ms: u64,
    max_ms: u64,
    market: Option<MarketId>,
}

impl ListFilter {
    fn new(ex: &Exchange, q: &HashMap<String, String>) -> Result<ListFilter, ApiError> {
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

    fn includes(&self, market: MarketId, ts_ms: u64) -> bool {
        self.market.is_none_or(|m| m == market) && ts_ms >= self.min_ms && ts_ms <= self.max_ms
    }
}

fn market_id(ex: &Exchange, ticker: &str) -> Result<MarketId, ApiError> {
    ex.market_by_ticker(ticker)
        .ok_or_else(|| ApiError::new(404, "market_not_found", format!("market {ticker} not found")))
}

fn order_id(text: &str) -> Result<OrderNo, ApiError> {
    ids::decode(IdKind::Order, text).ok_or_else(|| ApiError::new(404, "not_found", format!("order {text} not found")))
}

fn era_of(headers: &HeaderMap) -> wire::Era {
    wire::Era::from_user_agent(header(headers, "user-agent"))
}

fn ok(v: Value) -> ApiResult {
    Ok((StatusCode::OK, Json(v)).into_response())
}

fn created(v: Value) -> ApiResult {
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

// ------------------------------------------------------------- market data

async fn exchange_status(State(s): State<Shr>) -> ApiResult {
    let v = s.lock();
    ok(json!({
        "exchange_active": v.exchange.exchange_active,
        "trading_active": v.exchange.trading_active && v.exchange.exchange_active,
        "exchange_estimated_resume_time": null,
        "intra_exchange_transfers_active": true,
    }))
}

async fn exchange_schedule() -> ApiResult {
    let day = json!([{"open_time": "00:00", "close_time": "23:59"}]);
    ok(json!({"schedule": {"standard_hours": [{
        "start_time": "2026-01-01T00:00:00Z", "end_time": "2099-01-01T00:00:00Z",
        "monday": day, "tuesday": day, "wednesday": day, "thursday": day, "friday": day, "saturday": day, "sunday": day
    }], "maintenance_windows": []}}))
}

async fn user_data_timestamp(State(s): State<Shr>) -> ApiResult {
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

async fn list_markets(State(s): State<Shr>, headers: HeaderMap, RawQuery(raw): RawQuery) -> ApiResult {
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

async fn get_market(State(s): State<Shr>, headers: HeaderMap, Path(ticker): Path<String>) -> ApiResult {
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

async fn get_orderbook(State(s): State<Shr>, Path(ticker): Path<String>, RawQuery(raw): RawQuery) -> ApiResult {
    let q = query_map(raw)?;
    let depth = depth_param(&q)?;
    let v = s.lock();
    let id = market_id(&v.exchange, &ticker)?;
    ok(orderbook_json(&v.exchange, id, depth))
}

async fn multi_orderbook(State(s): State<Shr>, RawQuery(raw): RawQuery) -> ApiResult {
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

async fn list_trades(State(s): State<Shr>, RawQuery(raw): RawQuery) -> ApiResult {
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

// ------------------------------------------------------------------ orders

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyCreate {
    ticker: String,
    side: String,
    action: String,
    count: Option<i64>,
    count_fp: Option<Qty>,
    #[serde(rename = "type")]
    order_type: Option<String>,
    yes_price: Option<i64>,
    no_price: Option<i64>,
    yes_price_dollars: Option<Price>,
    no_price_dollars: Option<Price>,
    client_order_id: Option<String>,
    time_in_force: Option<String>,
    expiration_ts: Option<u64>,
    buy_max_cost: Option<i64>,
    post_only: Option<bool>,
    reduce_only: Option<bool>,
    sell_position_floor: Option<i64>,
    self_trade_prevention_type: Option<String>,
    order_group_id: Option<String>,
    cancel_order_on_pause: Option<bool>,
    subaccount: Option<i64>,
}

fn legacy_price(yes: Option<i64>, no: Option<i64>, yes_d: Option<Price>, no_d: Option<Price>) -> Result<Option<(bool, Price)>, ApiError> {
    let given = [yes.is_some(), no.is_some(), yes_d.is_some(), no_d.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given > 1 {
        return Err(ApiError::new(
            400,
            "invalid_order",
            "exactly one of yes_price, no_price, yes_price_dollars, or no_price_dollars should be provided",
        ));
    }
    let cents = |c: i64| {
        if (1..=99).contains(&c) {
            Price::from_cents(c).ok_or_else(|| ApiError::new(400, "invalid_price", "price out of range"))
        } else {
            Err(ApiError::new(400, "invalid_price", format!("price must be 1..=99 cents, got {c}")))
        }
    };
    Ok(match (yes, no, yes_d, no_d) {
        (Some(c), _, _, _) => Some((true, cents(c)?)),
        (_, Some(c), _, _) => Some((false, cents(c)?)),
        (_, _, Some(p), _) => Some((true, p)),
        (_, _, _, Some(p)) => Some((false, p)),
        _ => None,
    })
}

fn legacy_count(count: Option<i64>, count_fp: Option<Qty>) -> Result<Qty, ApiError> {
    match (count, count_fp) {
        (Some(c), _) if c < 1 => Err(ApiError::new(400, "invalid_order_size", "count must be at least 1")),
        (Some(c), fp) => {
            let q = Qty::checked_from_contracts(c).ok_or_else(|| ApiError::new(400, "invalid_order_size", "count is too large"))?;
            if fp.is_some_and(|fp| fp != q) {
                return Err(ApiError::new(400, "invalid_order", "count and count_fp disagree"));
            }
            Ok(q)
        }
        (None, Some(fp)) if fp.0 <= 0 => Err(ApiError::new(400, "invalid_order_size", "count_fp must be positive")),
        (None, Some(fp)) => Ok(fp),
        (None, None) => Err(ApiError::new(400, "invalid_order", "count or count_fp is required")),
    }
}

fn stp(name: Option<&str>) -> Result<SelfTradePrevention, ApiError> {
    match name {
        None => Ok(SelfTradePrevention::TakerAtCross),
        Some(n) => SelfTradePrevention::parse(n)
            .ok_or_else(|| ApiError::bad(format!("self_trade_prevention_type must be taker_at_cross or maker, got {n:?}"))),
    }
}

fn tif(name: Option<&str>) -> Result<Option<TimeInForce>, ApiError> {
    name.map(|n| {
        TimeInForce::parse(n).ok_or_else(|| {
            ApiError::bad(format!(
                "time_in_force must be fill_or_kill, good_till_canceled or immediate_or_cancel, got {n:?}"
            ))
        })
    })
    .transpose()
}

fn expiration_sim_ms(epoch_ms: u64, unix_s: u64) -> Result<u64, ApiError> {
    unix_s
        .checked_mul(1000)
        .ok_or_else(|| ApiError::bad("expiration time is out of range"))?
        .checked_sub(epoch_ms)
        .ok_or_else(|| ApiError::new(400, "invalid_order", "expiration time is in the past"))
}

fn legacy_order(ex: &Exchange, account: AccountId, r: LegacyCreate) -> Result<NewOrder, ApiError> {
    let market = market_id(ex, &r.ticker)?;
    let contract_yes = match r.side.as_str() {
        "yes" => true,
        "no" => false,
        s => return Err(ApiError::bad(format!("side must be yes or no, got {s:?}"))),
    };
    let buy = match r.action.as_str() {
        "buy" => true,
        "sell" => false,
        a => return Err(ApiError::bad(format!("action must be buy or sell, got {a:?}"))),
    };
    let phrasing = Phrasing { contract_yes, buy };
    let side = phrasing.side();
    let qty = legacy_count(r.count, r.count_fp)?;
    let ladder = &ex.market(market).ladder;
    let price = match legacy_price(r.yes_price, r.no_price, r.yes_price_dollars, r.no_price_dollars)? {
        // A price quoted on the NO leg is the complement on the YES book.
        Some((true, p)) => p,
        Some((false, p)) => p.complement(),
        None if r.order_type.as_deref() == Some("market") => match side {
            Side::Bid => ladder.max_price(),
            Side::Ask => ladder.min_price(),
        },
        None => {
            return Err(ApiError::new(
                400,
                "invalid_order",
                "exactly one of yes_price, no_price, yes_price_dollars, or no_price_dollars should be provided",
            ))
        }
    };
    if let Some(t) = r.order_type.as_deref() {
        if t != "limit" && t != "market" {
            return Err(ApiError::bad(format!("type must be limit or market, got {t:?}")));
        }
    }
    if r.subaccount.is_some_and(|s| s != 0) {
        return Err(ApiError::bad("subaccounts are not supported by the local exchange; use 0"));
    }
    let _ = r.order_group_id;
    let mut time_in_force = tif(r.time_in_force.as_deref())?.unwrap_or(TimeInForce::GoodTillCanceled);
    if let Some(max_cost) = r.buy_max_cost {
        // buy_max_cost caps the cost and makes the order fill-or-kill.
        let cost = Money::notional(crate::engine::opening_cost_per_contract(side, price), qty);
        let cap = Money::checked_from_cents(max_cost).ok_or_else(|| ApiError::bad("buy_max_cost is out of range"))?;
        if cost > cap {
            return Err(ApiError::new(
                400,
                "invalid_order",
                format!("order could cost {} which exceeds buy_max_cost {max_cost} cents", cost.dollars(4)),
            ));
        }
        time_in_force = TimeInForce::FillOrKill;
    }
    let expiration_ms = r.expiration_ts.map(|t| expiration_sim_ms(ex.config.epoch_ms, t)).transpose()?;
    if r.sell_position_floor.is_some_and(|f| f != 0) {
        return Err(ApiError::bad("sell_position_floor only accepts 0"));
    }
    Ok(NewOrder {
        account,
        market,
        side,
        price,
        qty,
        phrasing,
        tif: time_in_force,
        post_only: r.post_only.unwrap_or(false),
        reduce_only: r.reduce_only.unwrap_or(false) || r.sell_position_floor == Some(0),
        stp: stp(r.self_trade_prevention_type.as_deref())?,
        client_order_id: r.client_order_id.filter(|c| !c.is_empty()),
        expiration_ms,
        cancel_on_pause: r.cancel_order_on_pause.unwrap_or(false),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V2Create {
    ticker: String,
    side: String,
    count: Qty,
    price: Price,
    time_in_force: String,
    self_trade_prevention_type: String,
    client_order_id: Option<String>,
    expiration_time: Option<u64>,
    post_only: Option<bool>,
    reduce_only: Option<bool>,
    cancel_order_on_pause: Option<bool>,
    subaccount: Option<i64>,
    order_group_id: Option<String>,
    exchange_index: Option<i64>,
}

fn v2_order(ex: &Exchange, account: AccountId, r: V2Create) -> Result<NewOrder, ApiError> {
    let market = market_id(ex, &r.ticker)?;
    let side = match r.side.as_str() {
        "bid" => Side::Bid,
        "ask" => Side::Ask,
        s => return Err(ApiError::bad(format!("side must be bid (buy YES) or ask (sell YES), got {s:?}"))),
    };
    let time_in_force = tif(Some(&r.time_in_force))?.unwrap_or_default();
    let reduce_only = r.reduce_only.unwrap_or(false);
    if reduce_only && time_in_force != TimeInForce::ImmediateOrCancel {
        return Err(ApiError::new(
            400,
            "invalid_order",
            "reduce_only is only valid with immediate_or_cancel",
        ));
    }
    if r.subaccount.is_some_and(|s| s != 0) {
        return Err(ApiError::bad("subaccounts are not supported by the local exchange; use 0"));
    }
    if r.exchange_index.is_some_and(|i| i != 0 && i != -1) {
        return Err(ApiError::bad("the local exchange has one shard: exchange_index must be 0 or -1"));
    }
    let _ = r.order_group_id;
    let expiration_ms = r
        .expiration_time
        .filter(|t| *t != 0)
        .map(|t| expiration_sim_ms(ex.config.epoch_ms, t))
        .transpose()?;
    Ok(NewOrder {
        account,
        market,
        side,
        price: r.price,
        qty: r.count,
        phrasing: Phrasing::for_side(side),
        tif: time_in_force,
        post_only: r.post_only.unwrap_or(false),
        reduce_only,
        stp: stp(Some(&r.self_trade_prevention_type))?,
        client_order_id: r.client_order_id.filter(|c| !c.is_empty()),
        expiration_ms,
        cancel_on_pause: r.cancel_order_on_pause.unwrap_or(false),
    })
}

/// Which order-endpoint family a create request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderFamily {
    /// `POST /portfolio/orders`: side yes/no + action, integer cents or dollar strings.
    Legacy,
    /// `POST /portfolio/events/orders`: side bid/ask, fixed-point strings.
    V2,
}

/// Parses a create-order body of either family into an engine order. Public so the parser
/// can be fuzzed without a server.
pub fn parse_order_request(ex: &Exchange, account: AccountId, family: OrderFamily, body: &[u8]) -> Result<NewOrder, ApiError> {
    let body = Bytes::copy_from_slice(body);
    match family {
        OrderFamily::Legacy => legacy_order(ex, account, parse_json(&body)?),
        OrderFamily::V2 => v2_order(ex, account, parse_json(&body)?),
    }
}

/// Parses a decrease body (`reduce_by`/`reduce_to`, integer or fixed-point).
pub fn parse_decrease_request(body: &[u8]) -> Result<Reduce, ApiError> {
    decrease_amount(&parse_json(&Bytes::copy_from_slice(body))?)
}

/// Parses a batch-cancel body (`{"ids": [...]}` or `{"orders": [{"order_id": ...}]}`).
pub fn parse_batch_cancel_request(body: &[u8]) -> Result<Vec<String>, ApiError> {
    batch_cancel_ids(&Bytes::copy_from_slice(body))
}

/// Places a parsed order, applying any armed order-rejection fault first.
fn place(s: &Shared, req: NewOrder) -> Result<(OrderRecord, Option<Price>, Money), ApiError> {
    if let Some(code) = s.faults.take_order_reject() {
        return Err(ApiError::new(503, &code, "order rejected by an injected fault"));
    }
    s.counters.orders.fetch_add(1, Ordering::Relaxed);
    s.with_exchange(|ex, now| {
        let placed = ex.place(now, req)?;
        let fees = placed.order.taker_fees + placed.order.maker_fees;
        Ok((placed.order, placed.average_fill_price, fees))
    })
}

async fn legacy_create(State(s): State<Shr>, c: Option<Extension<Caller>>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    let req = parse_order_request(&s.lock().exchange, account, OrderFamily::Legacy, &body)?;
    let (order, _, _) = place(&s, req)?;
    let v = s.lock();
    created(json!({"order": wire::order_json(&v.exchange, &order)}))
}

fn v2_create_json(ex: &Exchange, order: &OrderRecord, avg: Option<Price>, fees: Money) -> Value {
    let mut v = json!({
        "order_id": order.uuid(),
        "client_order_id": order.client_order_id,
        "fill_count": order.filled.fp(),
        "remaining_count": order.remaining.fp(),
        "status": order.status.name(),
        "ts_ms": wire::unix_ms(ex.config.epoch_ms, order.updated_ms),
    });
    if let Some(p) = avg {
        v["average_fill_price"] = json!(p.dollars());
        v["average_fee_paid"] = json!(Money(fees.0 * 100 / order.filled.0.max(1)).dollars(4));
    }
    v
}

async fn v2_create(State(s): State<Shr>, c: Option<Extension<Caller>>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    let req = parse_order_request(&s.lock().exchange, account, OrderFamily::V2, &body)?;
    let (order, avg, fees) = place(&s, req)?;
    let v = s.lock();
    created(v2_create_json(&v.exchange, &order, avg, fees))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchCreate<T> {
    orders: Vec<T>,
}

const MAX_BATCH: usize = 20;

/// Places each order of a batch in turn; one item's failure is reported in its slot and does
/// not stop the others (Kalshi's batch semantics). `render` shapes a success per family.
fn batch_create(
    s: &Shared,
    account: AccountId,
    family: OrderFamily,
    body: &Bytes,
    render: impl Fn(&Exchange, &OrderRecord, Option<Price>, Money, &Value) -> Value,
) -> ApiResult {
    let r: BatchCreate<Value> = parse_json(body)?;
    if r.orders.is_empty() || r.orders.len() > MAX_BATCH {
        return Err(ApiError::bad(format!(
            "a batch holds 1 to {MAX_BATCH} orders, got {}",
            r.orders.len()
        )));
    }
    let mut out = Vec::new();
    for item in r.orders {
        let client_order_id = item.get("client_order_id").cloned().unwrap_or(Value::Null);
        let result = serde_json::to_vec(&item)
            .map_err(|e| ApiError::bad(format!("invalid order: {e}")))
            .and_then(|bytes| parse_order_request(&s.lock().exchange, account, family, &bytes))
            .and_then(|o| place(s, o));
        let v = s.lock();
        out.push(match result {
            Ok((order, avg, fees)) => render(&v.exchange, &order, avg, fees, &client_order_id),
            Err(e) => json!({"client_order_id": client_order_id, "order": null, "error": {"code": e.code, "message": e.message}}),
        });
    }
    created(json!({"orders": out}))
}

async fn legacy_batch_create(State(s): State<Shr>, c: Option<Extension<Caller>>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    batch_create(
        &s,
        account,
        OrderFamily::Legacy,
        &body,
        |ex, order, _, _, cid| json!({"client_order_id": cid, "order": wire::order_json(ex, order), "error": null}),
    )
}

async fn v2_batch_create(State(s): State<Shr>, c: Option<Extension<Caller>>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    batch_create(&s, account, OrderFamily::V2, &body, |ex, order, avg, fees, _| {
        v2_create_json(ex, order, avg, fees)
    })
}

async fn get_order(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>) -> ApiResult {
    let account = caller(c)?;
    let oid = order_id(&id)?;
    let v = s.lock();
    match v.exchange.order(oid) {
        Some(o) if o.account == account => ok(json!({"order": wire::order_json(&v.exchange, o)})),
        _ => Err(ApiError::not_found("order")),
    }
}

async fn list_orders(State(s): State<Shr>, c: Option<Extension<Caller>>, RawQuery(raw): RawQuery) -> ApiResult {
    let account = caller(c)?;
    let q = query_map(raw)?;
    let v = s.lock();
    let ex = &v.exchange;
    let f = ListFilter::new(ex, &q)?;
    if let Some(st) = q.get("status") {
        if !matches!(st.as_str(), "resting" | "canceled" | "executed") {
            return Err(ApiError::bad(format!("status must be resting, canceled or executed, got {st:?}")));
        }
    }
    let mut orders: Vec<&OrderRecord> = ex
        .orders_of(account)
        .filter(|o| f.includes(o.market, o.created_ms))
        .filter(|o| q.get("event_ticker").is_none_or(|e| &ex.market(o.market).spec.event_ticker == e))
        .filter(|o| q.get("status").is_none_or(|st| o.status.name() == st))
        .collect();
    orders.sort_by_key(|o| std::cmp::Reverse(o.id));
    let orders: Vec<Value> = orders.into_iter().map(|o| wire::order_json(ex, o)).collect();
    let (orders, cursor) = paginate(orders, &f.page);
    ok(json!({"orders": orders, "cursor": cursor}))
}

fn do_cancel(s: &Shared, account: AccountId, oid: OrderNo) -> Result<(OrderRecord, Qty), ApiError> {
    s.with_exchange(|ex, now| ex.cancel(now, account, oid)).map_err(ApiError::from)
}

async fn legacy_cancel(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>) -> ApiResult {
    let account = caller(c)?;
    let (order, reduced) = do_cancel(&s, account, order_id(&id)?)?;
    let v = s.lock();
    ok(json!({"order": wire::order_json(&v.exchange, &order), "reduced_by": reduced.whole(), "reduced_by_fp": reduced.fp()}))
}

async fn v2_cancel(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>) -> ApiResult {
    let account = caller(c)?;
    let (order, reduced) = do_cancel(&s, account, order_id(&id)?)?;
    let v = s.lock();
    ok(
        json!({"order_id": order.uuid(), "client_order_id": order.client_order_id, "reduced_by": reduced.fp(),
              "ts_ms": wire::unix_ms(v.exchange.config.epoch_ms, order.updated_ms)}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchCancelItem {
    order_id: String,
    #[serde(default)]
    subaccount: Option<i64>,
    #[serde(default)]
    exchange_index: Option<i64>,
    #[serde(default)]
    market_ticker: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchCancel {
    #[serde(default)]
    ids: Option<Vec<String>>,
    #[serde(default)]
    orders: Option<Vec<BatchCancelItem>>,
}

fn batch_cancel_ids(body: &Bytes) -> Result<Vec<String>, ApiError> {
    let r: BatchCancel = parse_json(body)?;
    let ids: Vec<String> = match (r.ids, r.orders) {
        (Some(ids), None) => ids,
        (None, Some(items)) => items
            .into_iter()
            .map(|i| {
                let _ = (i.subaccount, i.exchange_index, i.market_ticker);
                i.order_id
            })
            .collect(),
        _ => return Err(ApiError::bad("give exactly one of ids or orders")),
    };
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(ApiError::bad(format!("a batch holds 1 to {MAX_BATCH} orders, got {}", ids.len())));
    }
    Ok(ids)
}

async fn legacy_batch_cancel(State(s): State<Shr>, c: Option<Extension<Caller>>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    let mut out = Vec::new();
    for id in batch_cancel_ids(&body)? {
        let result = order_id(&id).and_then(|oid| do_cancel(&s, account, oid));
        let v = s.lock();
        out.push(match result {
            Ok((order, reduced)) => json!({"order_id": id, "order": wire::order_json(&v.exchange, &order), "reduced_by": reduced.whole(), "reduced_by_fp": reduced.fp(), "error": null}),
            Err(e) => json!({"order_id": id, "order": null, "reduced_by": 0, "reduced_by_fp": "0.00", "error": {"code": e.code, "message": e.message}}),
        });
    }
    ok(json!({"orders": out}))
}

async fn v2_batch_cancel(State(s): State<Shr>, c: Option<Extension<Caller>>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    let mut out = Vec::new();
    for id in batch_cancel_ids(&body)? {
        let result = order_id(&id).and_then(|oid| do_cancel(&s, account, oid));
        let v = s.lock();
        out.push(match result {
            Ok((order, reduced)) => json!({"order_id": id, "client_order_id": order.client_order_id, "reduced_by": reduced.fp(),
                                           "ts_ms": wire::unix_ms(v.exchange.config.epoch_ms, order.updated_ms)}),
            Err(e) => json!({"order_id": id, "reduced_by": "0.00", "error": {"code": e.code, "message": e.message}}),
        });
    }
    ok(json!({"orders": out}))
}

async fn v2_cancel_all(State(s): State<Shr>, c: Option<Extension<Caller>>, RawQuery(raw): RawQuery) -> ApiResult {
    let account = caller(c)?;
    let q = query_map(raw)?;
    let market = {
        let v = s.lock();
        q.get("ticker").map(|t| market_id(&v.exchange, t)).transpose()?
    };
    s.with_exchange(|ex, now| ex.cancel_all(now, account, market));
    // The official client expects 204 here and treats any other 2xx as a failure.
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyAmend {
    ticker: String,
    side: String,
    action: String,
    yes_price: Option<i64>,
    no_price: Option<i64>,
    yes_price_dollars: Option<Price>,
    no_price_dollars: Option<Price>,
    count: Option<i64>,
    count_fp: Option<Qty>,
    client_order_id: Option<String>,
    updated_client_order_id: Option<String>,
    subaccount: Option<i64>,
}

/// Checks that an amend names the order's own market and direction, as Kalshi requires.
fn check_amend_target(
    ex: &Exchange,
    account: AccountId,
    oid: OrderNo,
    ticker: &str,
    side: Option<Side>,
    phrasing: Option<Phrasing>,
) -> Result<OrderRecord, ApiError> {
    let o = ex
        .order(oid)
        .filter(|o| o.account == account)
        .ok_or_else(|| ApiError::not_found("order"))?
        .clone();
    if ex.market(o.market).spec.ticker != ticker {
        return Err(ApiError::new(
            400,
            "order_ticker_mismatch",
            format!("order {} is on {}, not {ticker}", o.uuid(), ex.market(o.market).spec.ticker),
        ));
    }
    if side.is_some_and(|s| s != o.side) || phrasing.is_some_and(|p| p.side() != o.side) {
        return Err(ApiError::new(400, "order_side_mismatch", "side/action do not match the order"));
    }
    Ok(o)
}

fn do_amend(
    s: &Shared,
    account: AccountId,
    oid: OrderNo,
    price: Price,
    total: Option<Qty>,
    new_client_id: Option<String>,
) -> Result<(OrderRecord, OrderRecord), ApiError> {
    s.with_exchange(|ex, now| {
        let (old, mut new) = ex.amend(now, account, oid, price, total)?;
        if let Some(cid) = new_client_id.filter(|c| !c.is_empty()) {
            ex.set_client_order_id(oid, cid.clone());
            new.client_order_id = cid;
        }
        Ok::<_, OrderError>((old, new))
    })
    .map_err(ApiError::from)
}

async fn legacy_amend(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    let oid = order_id(&id)?;
    let r: LegacyAmend = parse_json(&body)?;
    if r.subaccount.is_some_and(|s| s != 0) {
        return Err(ApiError::bad("subaccounts are not supported; use 0"));
    }
    let phrasing = Phrasing {
        contract_yes: match r.side.as_str() {
            "yes" => true,
            "no" => false,
            x => return Err(ApiError::bad(format!("side must be yes or no, got {x:?}"))),
        },
        buy: match r.action.as_str() {
            "buy" => true,
            "sell" => false,
            x => return Err(ApiError::bad(format!("action must be buy or sell, got {x:?}"))),
        },
    };
    let order = check_amend_target(&s.lock().exchange, account, oid, &r.ticker, None, Some(phrasing))?;
    if let Some(cid) = r.client_order_id.as_deref().filter(|c| !c.is_empty()) {
        if cid != order.client_order_id {
            return Err(ApiError::new(
                400,
                "order_id_and_client_order_id_mismatch",
                "client_order_id does not match the order",
            ));
        }
    }
    let price = match legacy_price(r.yes_price, r.no_price, r.yes_price_dollars, r.no_price_dollars)? {
        Some((true, p)) => p,
        Some((false, p)) => p.complement(),
        None => {
            return Err(ApiError::new(
                400,
                "invalid_order",
                "exactly one of yes_price, no_price, yes_price_dollars, or no_price_dollars should be provided",
            ))
        }
    };
    let total = match (r.count, r.count_fp) {
        (None, None) => None,
        (c, fp) => Some(legacy_count(c, fp)?),
    };
    let (old, new) = do_amend(&s, account, oid, price, total, r.updated_client_order_id)?;
    let v = s.lock();
    ok(json!({"old_order": wire::order_json(&v.exchange, &old), "order": wire::order_json(&v.exchange, &new)}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V2Amend {
    ticker: String,
    side: String,
    price: Price,
    count: Qty,
    client_order_id: Option<String>,
    updated_client_order_id: Option<String>,
    expiration_time: Option<u64>,
    exchange_index: Option<i64>,
    subaccount: Option<i64>,
}

async fn v2_amend(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    let oid = order_id(&id)?;
    let r: V2Amend = parse_json(&body)?;
    let _ = (r.expiration_time, r.exchange_index, r.subaccount);
    let side = match r.side.as_str() {
        "bid" => Side::Bid,
        "ask" => Side::Ask,
        x => return Err(ApiError::bad(format!("side must be bid or ask, got {x:?}"))),
    };
    let order = check_amend_target(&s.lock().exchange, account, oid, &r.ticker, Some(side), None)?;
    if let Some(cid) = r.client_order_id.as_deref().filter(|c| !c.is_empty()) {
        if cid != order.client_order_id {
            return Err(ApiError::new(
                400,
                "order_id_and_client_order_id_mismatch",
                "client_order_id does not match the order",
            ));
        }
    }
    let (_, new) = do_amend(&s, account, oid, r.price, Some(r.count), r.updated_client_order_id)?;
    let v = s.lock();
    ok(
        json!({"order_id": new.uuid(), "client_order_id": new.client_order_id, "remaining_count": new.remaining.fp(),
              "fill_count": new.filled.fp(), "ts_ms": wire::unix_ms(v.exchange.config.epoch_ms, new.updated_ms)}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecreaseReq {
    reduce_by: Option<Value>,
    reduce_to: Option<Value>,
    reduce_by_fp: Option<Qty>,
    reduce_to_fp: Option<Qty>,
    exchange_index: Option<i64>,
    market_ticker: Option<String>,
    subaccount: Option<i64>,
}

/// `reduce_by`/`reduce_to` are integers in the 3.2 client and fixed-point strings now.
fn decrease_amount(r: &DecreaseReq) -> Result<Reduce, ApiError> {
    let as_qty = |v: &Value, name: &str| -> Result<Qty, ApiError> {
        match v {
            Value::Number(n) if n.is_i64() => {
                Qty::checked_from_contracts(n.as_i64().unwrap_or(0)).ok_or_else(|| ApiError::bad(format!("{name} is out of range")))
            }
            Value::String(s) => Qty::parse(s).map_err(|e| ApiError::bad(format!("{name}: {e}"))),
            _ => Err(ApiError::bad(format!("{name} must be an integer or a decimal string"))),
        }
    };
    let by = match (&r.reduce_by, r.reduce_by_fp) {
        (Some(v), _) => Some(as_qty(v, "reduce_by")?),
        (None, fp) => fp,
    };
    let to = match (&r.reduce_to, r.reduce_to_fp) {
        (Some(v), _) => Some(as_qty(v, "reduce_to")?),
        (None, fp) => fp,
    };
    match (by, to) {
        (Some(b), None) if b.0 > 0 => Ok(Reduce::By(b)),
        (None, Some(t)) if t.0 >= 0 => Ok(Reduce::To(t)),
        (Some(_), None) => Err(ApiError::new(400, "invalid_order", "reduce_by must be positive")),
        (None, Some(_)) => Err(ApiError::new(400, "invalid_order", "reduce_to must not be negative")),
        _ => Err(ApiError::new(
            400,
            "invalid_order",
            "exactly one of reduce_by or reduce_to must be given",
        )),
    }
}

fn do_decrease(s: &Shared, account: AccountId, id: &str, body: &Bytes) -> Result<(OrderRecord, Qty), ApiError> {
    let oid = order_id(id)?;
    let r: DecreaseReq = parse_json(body)?;
    let _ = (r.exchange_index, r.subaccount);
    let reduce = decrease_amount(&r)?;
    if let Some(t) = r.market_ticker.as_deref() {
        check_amend_target(&s.lock().exchange, account, oid, t, None, None)?;
    }
    s.with_exchange(|ex, now| ex.decrease(now, account, oid, reduce))
        .map_err(ApiError::from)
}

async fn legacy_decrease(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    let (order, _) = do_decrease(&s, account, &id, &body)?;
    let v = s.lock();
    ok(json!({"order": wire::order_json(&v.exchange, &order)}))
}

async fn v2_decrease(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    let (order, _) = do_decrease(&s, account, &id, &body)?;
    let v = s.lock();
    ok(
        json!({"order_id": order.uuid(), "client_order_id": order.client_order_id, "remaining_count": order.remaining.fp(),
              "ts_ms": wire::unix_ms(v.exchange.config.epoch_ms, order.updated_ms)}),
    )
}

async fn queue_position(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>) -> ApiResult {
    let account = caller(c)?;
    let oid = order_id(&id)?;
    let v = s.lock();
    match v.exchange.order(oid) {
        Some(o) if o.account == account => {
            let q = v.exchange.queue_position(oid).unwrap_or(Qty::ZERO);
            ok(json!({"queue_position": q.whole(), "queue_position_fp": q.fp()}))
        }
        _ => Err(ApiError::not_found("order")),
    }
}

async fn queue_positions(State(s): State<Shr>, c: Option<Extension<Caller>>, RawQuery(raw): RawQuery) -> ApiResult {
    let account = caller(c)?;
    let q = query_map(raw)?;
    let v = s.lock();
    let ex = &v.exchange;
    let tickers: Option<Vec<MarketId>> = q
        .get("market_tickers")
        .map(|t| {
            t.split(',')
                .filter(|x| !x.is_empty())
                .map(|t| market_id(ex, t))
                .collect::<Result<_, _>>()
        })
        .transpose()?;
    let event = q.get("event_ticker");
    if tickers.is_none() && event.is_none() {
        return Err(ApiError::bad("give market_tickers or event_ticker"));
    }
    let mut out = Vec::new();
    let mut orders: Vec<&OrderRecord> = ex
        .orders_of(account)
        .filter(|o| o.is_resting())
        .filter(|o| tickers.as_ref().is_none_or(|t| t.contains(&o.market)))
        .filter(|o| event.is_none_or(|e| &ex.market(o.market).spec.event_ticker == e))
        .collect();
    orders.sort_by_key(|o| o.id);
    for o in orders {
        let qp = ex.queue_position(o.id).unwrap_or(Qty::ZERO);
        out.push(json!({"order_id": o.uuid(), "market_ticker": ex.market(o.market).spec.ticker,
                        "queue_position": qp.whole(), "queue_position_fp": qp.fp()}));
    }
    ok(json!({"queue_positions": out}))
}

// --------------------------------------------------------------- portfolio

async fn list_fills(State(s): State<Shr>, c: Option<Extension<Caller>>, RawQuery(raw): RawQuery) -> ApiResult {
    let account = caller(c)?;
    let q = query_map(raw)?;
    let v = s.lock();
    let ex = &v.exchange;
    let f = ListFilter::new(ex, &q)?;
    let order = q.get("order_id").map(|o| order_id(o)).transpose()?;
    let fills: Vec<Value> = ex.accounts[account as usize]
        .fills
        .iter()
        .rev()
        .filter(|fill| f.includes(fill.market, fill.ts_ms) && order.is_none_or(|o| fill.order_id == o))
        .map(|fill| wire::fill_json(ex, fill))
        .collect();
    let (fills, cursor) = paginate(fills, &f.page);
    ok(json!({"fills": fills, "cursor": cursor}))
}

async fn list_positions(State(s): State<Shr>, c: Option<Extension<Caller>>, RawQuery(raw): RawQuery) -> ApiResult {
    let account = caller(c)?;
    let q = query_map(raw)?;
    let p = page(&q)?;
    let v = s.lock();
    let ex = &v.exchange;
    let market = q.get("ticker").map(|t| market_id(ex, t)).transpose()?;
    let filters: Vec<&str> = q.get("count_filter").map(|f| f.split(',').collect()).unwrap_or_default();
    for f in &filters {
        if !matches!(*f, "position" | "total_traded") {
            return Err(ApiError::bad(format!("count_filter takes position and/or total_traded, got {f:?}")));
        }
    }
    let acct = &ex.accounts[account as usize];
    let mut market_positions = Vec::new();
    let mut events: std::collections::BTreeMap<&str, Vec<&crate::engine::Position>> = Default::default();
    for (mid, pos) in &acct.positions {
        let m = ex.market(*mid);
        if market.is_some_and(|x| x != *mid) || q.get("event_ticker").is_some_and(|e| &m.spec.event_ticker != e) {
            continue;
        }
        let untouched = pos.qty.is_zero() && pos.total_traded == Money::ZERO;
        if untouched
            || (filters.contains(&"position") && pos.qty.is_zero())
            || (filters.contains(&"total_traded") && pos.total_traded == Money::ZERO)
        {
            continue;
        }
        market_positions.push(wire::position_json(ex, m, pos));
        events.entry(&m.spec.event_ticker).or_default().push(pos);
    }
    let (market_positions, cursor) = paginate(market_positions, &p);
    let event_positions: Vec<Value> = events.iter().map(|(e, ps)| wire::event_position_json(e, ps)).collect();
    ok(json!({"market_positions": market_positions, "event_positions": event_positions, "cursor": cursor}))
}

async fn balance(State(s): State<Shr>, c: Option<Extension<Caller>>) -> ApiResult {
    let account = caller(c)?;
    let v = s.lock();
    let ex = &v.exchange;
    let acct = &ex.accounts[account as usize];
    // Portfolio value marks positions at the mid of the book (last trade if one side is empty).
    let mut value = Money::ZERO;
    for (mid, pos) in &acct.positions {
        if pos.qty.is_zero() {
            continue;
        }
        let m = ex.market(*mid);
        let bid = m.book.best_price(Side::Bid);
        let ask = m.book.best_price(Side::Ask);
        let yes = match (bid, ask) {
            (Some(b), Some(a)) => Price((b.0 + a.0) / 2),
            _ => m.last_price.unwrap_or(Price(5000)),
        };
        let per = if pos.qty.0 > 0 { yes } else { yes.complement() };
        value += Money::notional(per, pos.qty.abs());
    }
    let available = acct.available();
    let now = s.clock.now_ms();
    ok(json!({
        "balance": available.cents_floor(),
        "balance_dollars": available.dollars(4),
        "portfolio_value": value.cents_floor(),
        "updated_ts": wire::unix_s(ex.config.epoch_ms, now),
    }))
}

async fn list_settlements(State(s): State<Shr>, c: Option<Extension<Caller>>, RawQuery(raw): RawQuery) -> ApiResult {
    let account = caller(c)?;
    let q = query_map(raw)?;
    let p = page(&q)?;
    let v = s.lock();
    let ex = &v.exchange;
    let items: Vec<Value> = ex.accounts[account as usize]
        .settlements
        .iter()
        .rev()
        .map(|st| wire::settlement_json(ex, st))
        .collect();
    let (items, cursor) = paginate(items, &p);
    ok(json!({"settlements": items, "cursor": cursor}))
}

async fn account_limits(State(s): State<Shr>, c: Option<Extension<Caller>>) -> ApiResult {
    caller(c)?;
    let tier = s.limiter.tier();
    let (r, w) = tier.rates();
    let (rc, wc) = tier.capacities();
    let finite = |x: f64| if x.is_finite() { json!(x as u64) } else { json!(null) };
    ok(json!({
        "usage_tier": tier.name(),
        "read": {"refill_rate": finite(r), "bucket_capacity": finite(rc)},
        "write": {"refill_rate": finite(w), "bucket_capacity": finite(wc)},
        "grants": [],
        "read_limit": finite(r / f64::from(kalshi_proto::ratelimit::DEFAULT_COST)),
        "write_limit": finite(w / f64::from(kalshi_proto::ratelimit::DEFAULT_COST)),
    }))
}

async fn endpoint_costs(c: Option<Extension<Caller>>) -> ApiResult {
    caller(c)?;
    let costs: Vec<Value> = kalshi_proto::ratelimit::endpoint_costs()
        .into_iter()
        .map(|(m, p, c)| json!({"method": m, "path": p, "cost": c}))
        .collect();
    ok(json!({"default_cost": kalshi_proto::ratelimit::DEFAULT_COST, "endpoint_costs": costs}))
}
