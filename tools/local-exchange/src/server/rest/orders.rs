//! The order endpoints of both families: create, batch create, get, list, cancel, batch
//! cancel, cancel all, amend, decrease and queue positions. Each applies armed faults first
//! and answers in its family's shape.

use super::params::{caller, created, market_id, ok, order_id, paginate, parse_json, query_map, ListFilter};
use super::parse::{batch_cancel_ids, decrease_amount, legacy_count, legacy_price, parse_order_request, DecreaseReq, OrderFamily};
use super::{ApiError, ApiResult, Caller, Shr};
use crate::book::{AccountId, OrderNo};
use crate::engine::{Exchange, MarketId, NewOrder, OrderError, OrderRecord, Phrasing};
use crate::server::Shared;
use crate::wire;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Extension;
use kalshi_proto::units::{Money, Price, Qty};
use kalshi_proto::Side;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

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

pub(super) async fn legacy_create(State(s): State<Shr>, c: Option<Extension<Caller>>, body: Bytes) -> ApiResult {
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

pub(super) async fn v2_create(State(s): State<Shr>, c: Option<Extension<Caller>>, body: Bytes) -> ApiResult {
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

pub(super) const MAX_BATCH: usize = 20;

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

pub(super) async fn legacy_batch_create(State(s): State<Shr>, c: Option<Extension<Caller>>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    batch_create(
        &s,
        account,
        OrderFamily::Legacy,
        &body,
        |ex, order, _, _, cid| json!({"client_order_id": cid, "order": wire::order_json(ex, order), "error": null}),
    )
}

pub(super) async fn v2_batch_create(State(s): State<Shr>, c: Option<Extension<Caller>>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    batch_create(&s, account, OrderFamily::V2, &body, |ex, order, avg, fees, _| {
        v2_create_json(ex, order, avg, fees)
    })
}

pub(super) async fn get_order(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>) -> ApiResult {
    let account = caller(c)?;
    let oid = order_id(&id)?;
    let v = s.lock();
    match v.exchange.order(oid) {
        Some(o) if o.account == account => ok(json!({"order": wire::order_json(&v.exchange, o)})),
        _ => Err(ApiError::not_found("order")),
    }
}

pub(super) async fn list_orders(State(s): State<Shr>, c: Option<Extension<Caller>>, RawQuery(raw): RawQuery) -> ApiResult {
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

pub(super) async fn legacy_cancel(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>) -> ApiResult {
    let account = caller(c)?;
    let (order, reduced) = do_cancel(&s, account, order_id(&id)?)?;
    let v = s.lock();
    ok(json!({"order": wire::order_json(&v.exchange, &order), "reduced_by": reduced.whole(), "reduced_by_fp": reduced.fp()}))
}

pub(super) async fn v2_cancel(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>) -> ApiResult {
    let account = caller(c)?;
    let (order, reduced) = do_cancel(&s, account, order_id(&id)?)?;
    let v = s.lock();
    ok(
        json!({"order_id": order.uuid(), "client_order_id": order.client_order_id, "reduced_by": reduced.fp(),
              "ts_ms": wire::unix_ms(v.exchange.config.epoch_ms, order.updated_ms)}),
    )
}

pub(super) async fn legacy_batch_cancel(State(s): State<Shr>, c: Option<Extension<Caller>>, body: Bytes) -> ApiResult {
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

pub(super) async fn v2_batch_cancel(State(s): State<Shr>, c: Option<Extension<Caller>>, body: Bytes) -> ApiResult {
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

pub(super) async fn v2_cancel_all(State(s): State<Shr>, c: Option<Extension<Caller>>, RawQuery(raw): RawQuery) -> ApiResult {
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

pub(super) async fn legacy_amend(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>, body: Bytes) -> ApiResult {
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

pub(super) async fn v2_amend(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>, body: Bytes) -> ApiResult {
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

pub(super) async fn legacy_decrease(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    let (order, _) = do_decrease(&s, account, &id, &body)?;
    let v = s.lock();
    ok(json!({"order": wire::order_json(&v.exchange, &order)}))
}

pub(super) async fn v2_decrease(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let account = caller(c)?;
    let (order, _) = do_decrease(&s, account, &id, &body)?;
    let v = s.lock();
    ok(
        json!({"order_id": order.uuid(), "client_order_id": order.client_order_id, "remaining_count": order.remaining.fp(),
              "ts_ms": wire::unix_ms(v.exchange.config.epoch_ms, order.updated_ms)}),
    )
}

pub(super) async fn queue_position(State(s): State<Shr>, c: Option<Extension<Caller>>, Path(id): Path<String>) -> ApiResult {
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

pub(super) async fn queue_positions(State(s): State<Shr>, c: Option<Extension<Caller>>, RawQuery(raw): RawQuery) -> ApiResult {
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
