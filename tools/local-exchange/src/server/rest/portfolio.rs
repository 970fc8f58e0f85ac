//! The account's own view: fills, positions, balance, settlements, and its rate-limit tier
//! and endpoint costs.

use super::params::{caller, market_id, ok, order_id, page, paginate, query_map, ListFilter};
use super::{ApiError, ApiResult, Caller, Shr};
use crate::wire;
use axum::extract::{RawQuery, State};
use axum::Extension;
use kalshi_proto::units::{Money, Price};
use kalshi_proto::Side;
use serde_json::{json, Value};

pub(super) async fn list_fills(State(s): State<Shr>, c: Option<Extension<Caller>>, RawQuery(raw): RawQuery) -> ApiResult {
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

pub(super) async fn list_positions(State(s): State<Shr>, c: Option<Extension<Caller>>, RawQuery(raw): RawQuery) -> ApiResult {
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

pub(super) async fn balance(State(s): State<Shr>, c: Option<Extension<Caller>>) -> ApiResult {
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

pub(super) async fn list_settlements(State(s): State<Shr>, c: Option<Extension<Caller>>, RawQuery(raw): RawQuery) -> ApiResult {
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

pub(super) async fn account_limits(State(s): State<Shr>, c: Option<Extension<Caller>>) -> ApiResult {
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

pub(super) async fn endpoint_costs(c: Option<Extension<Caller>>) -> ApiResult {
    caller(c)?;
    let costs: Vec<Value> = kalshi_proto::ratelimit::endpoint_costs()
        .into_iter()
        .map(|(m, p, c)| json!({"method": m, "path": p, "cost": c}))
        .collect();
    ok(json!({"default_cost": kalshi_proto::ratelimit::DEFAULT_COST, "endpoint_costs": costs}))
}
