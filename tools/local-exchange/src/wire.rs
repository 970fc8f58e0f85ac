//! JSON shapes of Kalshi objects, shared by REST and WebSocket.
//!
//! Every object carries the current fixed-point fields (`*_dollars`, `*_fp`) and the older
//! integer fields (cents, whole counts) that Kalshi's 3.2 Python client still requires, so both
//! client generations validate the same response. Era-A integer prices of sub-penny orders are
//! rounded to the nearest cent; the `_dollars` fields are exact.

use crate::engine::{Exchange, FillRecord, Market, OrderRecord, Position, SettlementRecord, TradeRecord};
use crate::ids::{self, IdKind};
use kalshi_proto::market::MarketStatus;
use kalshi_proto::units::{Money, Price, Qty};
use kalshi_proto::Side;
use serde_json::{json, Value};

/// Simulated ms since session start to RFC3339 wall time.
pub fn rfc3339(epoch_ms: u64, sim_ms: u64) -> String {
    let total_ms = (epoch_ms + sim_ms) as i128;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(total_ms * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&fmt).unwrap_or_default()
}

pub fn unix_s(epoch_ms: u64, sim_ms: u64) -> u64 {
    (epoch_ms + sim_ms) / 1000
}

pub fn unix_ms(epoch_ms: u64, sim_ms: u64) -> u64 {
    epoch_ms + sim_ms
}

fn cents(p: Price) -> i64 {
    p.cents_rounded()
}

/// Money as Kalshi's Era-A integer cents (floored).
fn money_cents(m: Money) -> i64 {
    m.cents_floor()
}

pub fn outcome_side(side: Side) -> &'static str {
    match side {
        Side::Bid => "yes",
        Side::Ask => "no",
    }
}

/// Which generation of Kalshi's API a client speaks. Only a few enum values differ in a way
/// no single value satisfies both official clients (a settled market is `settled` to 3.2 and
/// `finalized` today); everything else is a superset served to both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    A,
    B,
}

impl Era {
    /// Kalshi's generated clients name their version in the User-Agent.
    pub fn from_user_agent(agent: Option<&str>) -> Era {
        match agent {
            Some(a)
                if a.contains("OpenAPI-Generator/3.2.") || a.contains("OpenAPI-Generator/3.1.") || a.contains("OpenAPI-Generator/2.") =>
            {
                Era::A
            }
            _ => Era::B,
        }
    }
}

pub fn market_status_name(status: MarketStatus, era: Era) -> &'static str {
    match (status, era) {
        (MarketStatus::Settled, Era::B) => "finalized",
        (MarketStatus::Inactive, Era::B) => "inactive",
        (s, _) => s.rest_name(),
    }
}

pub fn market_json(ex: &Exchange, m: &Market, era: Era) -> Value {
    let e = ex.config.epoch_ms;
    let bid = m.book.best(Side::Bid);
    let ask = m.book.best(Side::Ask);
    let yes_bid = bid.map_or(Price(0), |b| b.0);
    let yes_ask = ask.map_or(Price(10_000), |a| a.0);
    let last = m.last_price.unwrap_or(Price(0));
    let prev = m.previous_price.unwrap_or(Price(0));
    let ranges: Vec<Value> = m
        .spec
        .structure
        .ranges()
        .iter()
        .map(|r| json!({"start": r.start.dollars(), "end": r.end.dollars(), "step": r.step.dollars()}))
        .collect();
    let close = m.spec.close_ms;
    let expiration = close + m.spec.settlement_timer_s * 1000;
    json!({
        "ticker": m.spec.ticker,
        "event_ticker": m.spec.event_ticker,
        "market_id": m.uuid,
        "market_type": "binary",
        "title": m.spec.title,
        "subtitle": "",
        "yes_sub_title": "Yes",
        "no_sub_title": "No",
        "created_time": rfc3339(e, 0),
        "updated_time": rfc3339(e, 0),
        "open_time": rfc3339(e, m.spec.open_ms),
        "close_time": rfc3339(e, close),
        "expiration_time": rfc3339(e, expiration),
        "latest_expiration_time": rfc3339(e, expiration),
        "expected_expiration_time": rfc3339(e, expiration),
        "settlement_timer_seconds": m.spec.settlement_timer_s,
        "status": market_status_name(m.status, era),
        "response_price_units": "usd_cent",
        "yes_bid": cents(yes_bid),
        "yes_bid_dollars": yes_bid.dollars(),
        "yes_bid_size_fp": bid.map_or(Qty::ZERO, |b| b.1).fp(),
        "yes_ask": cents(yes_ask),
        "yes_ask_dollars": yes_ask.dollars(),
        "yes_ask_size_fp": ask.map_or(Qty::ZERO, |a| a.1).fp(),
        "no_bid": cents(yes_ask.complement()),
        "no_bid_dollars": yes_ask.complement().dollars(),
        "no_ask": cents(yes_bid.complement()),
        "no_ask_dollars": yes_bid.complement().dollars(),
        "last_price": cents(last),
        "last_price_dollars": last.dollars(),
        "previous_yes_bid": cents(yes_bid),
        "previous_yes_bid_dollars": yes_bid.dollars(),
        "previous_yes_ask": cents(yes_ask),
        "previous_yes_ask_dollars": yes_ask.dollars(),
        "previous_price": cents(prev),
        "previous_price_dollars": prev.dollars(),
        "volume": m.volume.whole(),
        "volume_fp": m.volume.fp(),
        "volume_24h": m.volume.whole(),
        "volume_24h_fp": m.volume.fp(),
        "open_interest": m.open_interest.whole(),
        "open_interest_fp": m.open_interest.fp(),
        "liquidity": 0,
        "liquidity_dollars": "0.0000",
        "notional_value": 100,
        "notional_value_dollars": "1.0000",
        "result": m.result.map_or("", |r| r.name()),
        "can_close_early": false,
        "expiration_value": "",
        "category": "Simulated",
        "risk_limit_cents": 0,
        "tick_size": 1,
        "settlement_bounds_type": "default",
        "settlement_value_dollars": m.result.map(|r| if r.name() == "yes" { "1.0000" } else { "0.0000" }),
        "rules_primary": format!("Resolves YES with the simulated true probability of {} at close.", m.spec.ticker),
        "rules_secondary": "",
        "price_level_structure": m.spec.structure.name(),
        "price_ranges": ranges,
        "fractional_trading_enabled": true,
        "exchange_index": 0,
        "is_provisional": false,
    })
}

pub fn order_json(ex: &Exchange, o: &OrderRecord) -> Value {
    let e = ex.config.epoch_ms;
    let m = ex.market(o.market);
    let user = &ex.accounts[o.account as usize].user_id;
    json!({
        "order_id": o.uuid(),
        "user_id": user,
        "client_order_id": o.client_order_id,
        "ticker": m.spec.ticker,
        "side": if o.phrasing.contract_yes { "yes" } else { "no" },
        "action": if o.phrasing.buy { "buy" } else { "sell" },
        "outcome_side": outcome_side(o.side),
        "book_side": o.side.name(),
        "type": "limit",
        "status": o.status.name(),
        "yes_price": cents(o.price),
        "no_price": cents(o.price.complement()),
        "yes_price_dollars": o.price.dollars(),
        "no_price_dollars": o.price.complement().dollars(),
        "fill_count": o.filled.whole(),
        "fill_count_fp": o.filled.fp(),
        "remaining_count": o.remaining.whole(),
        "remaining_count_fp": o.remaining.fp(),
        "initial_count": o.initial.whole(),
        "initial_count_fp": o.initial.fp(),
        "taker_fees": money_cents(o.taker_fees),
        "maker_fees": money_cents(o.maker_fees),
        "taker_fill_cost": money_cents(o.taker_fill_cost),
        "maker_fill_cost": money_cents(o.maker_fill_cost),
        "taker_fees_dollars": o.taker_fees.dollars(4),
        "maker_fees_dollars": o.maker_fees.dollars(4),
        "taker_fill_cost_dollars": o.taker_fill_cost.dollars(4),
        "maker_fill_cost_dollars": o.maker_fill_cost.dollars(4),
        "queue_position": 0,
        "expiration_time": o.expiration_ms.map(|t| rfc3339(e, t)),
        "created_time": rfc3339(e, o.created_ms),
        "last_update_time": rfc3339(e, o.updated_ms),
        "last_update_reason": o.last_update.name(),
        "self_trade_prevention_type": o.stp.name(),
        "time_in_force": o.tif.name(),
        "post_only": o.post_only,
        "reduce_only": o.reduce_only,
        "order_group_id": null,
        "cancel_order_on_pause": o.cancel_on_pause,
        "subaccount_number": 0,
        "exchange_index": 0,
    })
}

pub fn fill_json(ex: &Exchange, f: &FillRecord) -> Value {
    let e = ex.config.epoch_ms;
    let ticker = &ex.market(f.market).spec.ticker;
    json!({
        "fill_id": ids::encode(IdKind::Fill, f.fill_id),
        "trade_id": ids::encode(IdKind::Trade, f.trade_id),
        "order_id": ids::encode(IdKind::Order, f.order_id),
        "client_order_id": f.client_order_id,
        "ticker": ticker,
        "market_ticker": ticker,
        "side": if f.phrasing.contract_yes { "yes" } else { "no" },
        "action": if f.phrasing.buy { "buy" } else { "sell" },
        "outcome_side": outcome_side(f.side),
        "book_side": f.side.name(),
        "count": f.qty.whole(),
        "count_fp": f.qty.fp(),
        "price": cents(f.yes_price) as f64 / 100.0,
        "yes_price": cents(f.yes_price),
        "no_price": cents(f.yes_price.complement()),
        "yes_price_fixed": f.yes_price.dollars(),
        "no_price_fixed": f.yes_price.complement().dollars(),
        "yes_price_dollars": f.yes_price.dollars(),
        "no_price_dollars": f.yes_price.complement().dollars(),
        "is_taker": f.is_taker,
        "fee_cost": f.fee.dollars(4),
        "created_time": rfc3339(e, f.ts_ms),
        "ts": unix_s(e, f.ts_ms),
        "exchange_index": 0,
        "subaccount_number": 0,
    })
}

pub fn trade_json(ex: &Exchange, t: &TradeRecord) -> Value {
    let e = ex.config.epoch_ms;
    json!({
        "trade_id": ids::encode(IdKind::Trade, t.trade_id),
        "ticker": ex.market(t.market).spec.ticker,
        "price": cents(t.yes_price) as f64 / 100.0,
        "count": t.qty.whole(),
        "count_fp": t.qty.fp(),
        "yes_price": cents(t.yes_price),
        "no_price": cents(t.yes_price.complement()),
        "yes_price_dollars": t.yes_price.dollars(),
        "no_price_dollars": t.yes_price.complement().dollars(),
        "taker_side": outcome_side(t.taker_side),
        "taker_outcome_side": outcome_side(t.taker_side),
        "taker_book_side": t.taker_side.name(),
        "created_time": rfc3339(e, t.ts_ms),
        "is_block_trade": false,
    })
}

pub fn position_json(ex: &Exchange, market: &Market, p: &Position) -> Value {
    let e = ex.config.epoch_ms;
    json!({
        "ticker": market.spec.ticker,
        "total_traded": money_cents(p.total_traded),
        "total_traded_dollars": p.total_traded.dollars(4),
        "position": p.qty.whole(),
        "position_fp": p.qty.fp(),
        "market_exposure": money_cents(p.cost),
        "market_exposure_dollars": p.cost.dollars(4),
        "realized_pnl": money_cents(p.realized_pnl),
        "realized_pnl_dollars": p.realized_pnl.dollars(4),
        "resting_orders_count": 0,
        "fees_paid": money_cents(p.fees_paid),
        "fees_paid_dollars": p.fees_paid.dollars(4),
        "last_updated_ts": rfc3339(e, p.updated_ms),
        "exchange_index": 0,
    })
}

pub fn event_position_json(event_ticker: &str, positions: &[&Position]) -> Value {
    let cost = positions.iter().fold(Money::ZERO, |a, p| a + p.cost);
    let pnl = positions.iter().fold(Money::ZERO, |a, p| a + p.realized_pnl);
    let fees = positions.iter().fold(Money::ZERO, |a, p| a + p.fees_paid);
    let shares = positions.iter().fold(Qty::ZERO, |a, p| a + p.qty.abs());
    json!({
        "event_ticker": event_ticker,
        "total_cost": money_cents(cost),
        "total_cost_dollars": cost.dollars(4),
        "total_cost_shares": shares.whole(),
        "total_cost_shares_fp": shares.fp(),
        "event_exposure": money_cents(cost),
        "event_exposure_dollars": cost.dollars(4),
        "realized_pnl": money_cents(pnl),
        "realized_pnl_dollars": pnl.dollars(4),
        "fees_paid": money_cents(fees),
        "fees_paid_dollars": fees.dollars(4),
    })
}

pub fn settlement_json(ex: &Exchange, s: &SettlementRecord) -> Value {
    let e = ex.config.epoch_ms;
    let m = ex.market(s.market);
    json!({
        "ticker": m.spec.ticker,
        "event_ticker": m.spec.event_ticker,
        "market_result": s.result.name(),
        "yes_count": s.yes_count.whole(),
        "yes_count_fp": s.yes_count.fp(),
        "yes_total_cost": money_cents(s.yes_total_cost),
        "yes_total_cost_dollars": s.yes_total_cost.dollars(4),
        "no_count": s.no_count.whole(),
        "no_count_fp": s.no_count.fp(),
        "no_total_cost": money_cents(s.no_total_cost),
        "no_total_cost_dollars": s.no_total_cost.dollars(4),
        "revenue": money_cents(s.revenue),
        "settled_time": rfc3339(e, s.ts_ms),
        "fee_cost": s.fee_cost.dollars(4),
        "value": if s.result.name() == "yes" { 100 } else { 0 },
        "exchange_index": 0,
    })
}

/// Price levels of one side as Kalshi shows them: ascending, best bid last. The NO side lists
/// YES asks as NO bids at 1 - p (the NO-leg price) unless `yes_prices` asks for the YES scale.
pub fn book_levels(m: &Market, side: Side, yes_prices: bool, depth: usize) -> Vec<(Price, Qty)> {
    let mut levels = m.book.depth(side); // best first
    if depth > 0 {
        levels.truncate(depth);
    }
    let mut out: Vec<(Price, Qty)> = levels
        .into_iter()
        .map(|(p, q)| match side {
            Side::Bid => (p, q),
            Side::Ask if yes_prices => (p, q),
            Side::Ask => (p.complement(), q),
        })
        .collect();
    out.sort_by_key(|(p, _)| *p);
    out
}

pub fn market_status_is_open(s: MarketStatus) -> bool {
    s == MarketStatus::Active
}
