//! Parsing order request bodies of both endpoint families (legacy and V2) into engine
//! requests: create, batch cancel and decrease. Kept free of the server so the fuzz tests can
//! drive it directly, and strict (unknown fields refused) because Kalshi is.

use super::orders::MAX_BATCH;
use super::params::{market_id, parse_json};
use super::ApiError;
use crate::book::AccountId;
use crate::engine::{Exchange, NewOrder, Phrasing, Reduce};
use axum::body::Bytes;
use kalshi_proto::order::{SelfTradePrevention, TimeInForce};
use kalshi_proto::units::{Money, Price, Qty};
use kalshi_proto::Side;
use serde::Deserialize;
use serde_json::Value;

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

pub(super) fn legacy_price(
    yes: Option<i64>,
    no: Option<i64>,
    yes_d: Option<Price>,
    no_d: Option<Price>,
) -> Result<Option<(bool, Price)>, ApiError> {
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

pub(super) fn legacy_count(count: Option<i64>, count_fp: Option<Qty>) -> Result<Qty, ApiError> {
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

pub(super) fn batch_cancel_ids(body: &Bytes) -> Result<Vec<String>, ApiError> {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DecreaseReq {
    pub(super) reduce_by: Option<Value>,
    pub(super) reduce_to: Option<Value>,
    pub(super) reduce_by_fp: Option<Qty>,
    pub(super) reduce_to_fp: Option<Qty>,
    pub(super) exchange_index: Option<i64>,
    pub(super) market_ticker: Option<String>,
    pub(super) subaccount: Option<i64>,
}

/// `reduce_by`/`reduce_to` are integers in the 3.2 client and fixed-point strings now.
pub(super) fn decrease_amount(r: &DecreaseReq) -> Result<Reduce, ApiError> {
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
