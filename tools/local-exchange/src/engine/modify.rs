//! Changing resting orders after placement: cancel, decrease, amend, cancel-all and expiry.
//! They share the bookkeeping of ending or shrinking a resting order, so they sit together.

use super::market::MarketId;
use super::order::{OrderError, OrderRecord, Reduce, UpdateReason};
use super::Exchange;
use crate::book::{AccountId, Entry, OrderNo};
use kalshi_proto::market::MarketStatus;
use kalshi_proto::order::OrderStatus;
use kalshi_proto::units::{Money, Price, Qty};
use kalshi_proto::Side;

impl Exchange {
    /// Ends a resting order; returns it as it ended (it may be forgotten right after).
    pub(super) fn finish_resting(&mut self, id: OrderNo, status: OrderStatus, reason: UpdateReason, now_ms: u64) -> OrderRecord {
        let (account, market) = {
            let o = self.orders.get_mut(&id).expect("order exists");
            o.status = status;
            o.last_update = reason;
            o.updated_ms = now_ms;
            o.remaining = Qty::ZERO;
            (o.account, o.market)
        };
        if let Some(exp) = self.orders[&id].expiration_ms {
            self.expiries.remove(&(exp, id));
        }
        if let Some(p) = self.accounts[account as usize].positions.get_mut(&market) {
            p.resting.remove(&id);
        }
        let order = self.orders[&id].clone();
        self.journal_order(now_ms, "order_done", &order, None);
        self.emit_user_order(&order);
        self.refresh_requirement(account, market);
        self.forget_if_done(id);
        order
    }

    /// Simulated traders' finished orders are never asked about; dropping them keeps a long
    /// stress run's memory flat.
    pub(super) fn forget_if_done(&mut self, id: OrderNo) {
        let Some(o) = self.orders.get(&id) else { return };
        if o.is_resting() || !self.accounts[o.account as usize].unlimited {
            return;
        }
        let key = (o.account, o.client_order_id.clone());
        if !key.1.is_empty() {
            self.by_client_id.remove(&key);
        }
        self.orders.remove(&id);
    }

    pub(super) fn cancel_internal(&mut self, now_ms: u64, id: OrderNo, reason: UpdateReason) -> Qty {
        self.cancel_resting(now_ms, id, reason).map_or(Qty::ZERO, |(q, _)| q)
    }

    /// Cancels a resting order: how much was cancelled and the order as it ended.
    fn cancel_resting(&mut self, now_ms: u64, id: OrderNo, reason: UpdateReason) -> Option<(Qty, OrderRecord)> {
        let (side, price, market, remaining) = match self.orders.get(&id) {
            Some(o) if o.is_resting() => (o.side, o.price, o.market, o.remaining),
            _ => return None,
        };
        self.markets[market as usize].book.remove(side, price, id);
        self.emit_book_delta(now_ms, market, side, price, -remaining, id);
        let order = self.finish_resting(id, OrderStatus::Canceled, reason, now_ms);
        Some((remaining, order))
    }

    fn owned_resting(&self, account: AccountId, id: OrderNo) -> Result<&OrderRecord, OrderError> {
        match self.orders.get(&id) {
            Some(o) if o.account == account => {
                if o.is_resting() {
                    Ok(o)
                } else {
                    Err(OrderError::new(
                        400,
                        "order_not_resting",
                        format!("order {} is {}", o.uuid(), o.status.name()),
                    ))
                }
            }
            _ => Err(OrderError::new(404, "not_found", "order not found")),
        }
    }

    fn check_can_modify(&self, market: MarketId) -> Result<(), OrderError> {
        let m = &self.markets[market as usize];
        if !self.exchange_active {
            return Err(OrderError::new(400, "exchange_paused", "the exchange is paused"));
        }
        if matches!(m.status, MarketStatus::Closed | MarketStatus::Determined | MarketStatus::Settled) {
            return Err(OrderError::new(400, "market_closed", format!("market {} is closed", m.spec.ticker)));
        }
        Ok(())
    }

    /// Cancels a resting order; returns the order as it ended and how much was cancelled.
    pub fn cancel(&mut self, now_ms: u64, account: AccountId, id: OrderNo) -> Result<(OrderRecord, Qty), OrderError> {
        let market = self.owned_resting(account, id)?.market;
        // Cancels are allowed during a trading pause, not during an exchange pause.
        self.check_can_modify(market)?;
        let (reduced, order) = self.cancel_resting(now_ms, id, UpdateReason::Canceled).expect("checked resting");
        self.emit_ticker(now_ms, market);
        Ok((order, reduced))
    }

    /// A still-known order (resting orders always are).
    fn order_snapshot(&self, id: OrderNo) -> OrderRecord {
        self.orders.get(&id).cloned().expect("resting and keyed accounts' orders are kept")
    }

    /// Shrinks a resting order in place; it keeps its queue position.
    pub fn decrease(&mut self, now_ms: u64, account: AccountId, id: OrderNo, reduce: Reduce) -> Result<(OrderRecord, Qty), OrderError> {
        let o = self.owned_resting(account, id)?;
        let (market, side, price, remaining) = (o.market, o.side, o.price, o.remaining);
        self.check_can_modify(market)?;
        let target = match reduce {
            Reduce::By(by) if by.0 > 0 => remaining - by.min(remaining),
            Reduce::To(to) if to.0 >= 0 => to.min(remaining),
            _ => return Err(OrderError::invalid("reduce_by must be positive and reduce_to non-negative")),
        };
        if target.is_zero() {
            let (reduced, order) = self.cancel_resting(now_ms, id, UpdateReason::Decrease).expect("checked resting");
            self.emit_ticker(now_ms, market);
            return Ok((order, reduced));
        }
        let reduced = remaining - target;
        if reduced.is_zero() {
            return Ok((self.order_snapshot(id), Qty::ZERO));
        }
        self.markets[market as usize].book.set_remaining(side, price, id, target);
        {
            let o = self.orders.get_mut(&id).expect("order exists");
            o.remaining = target;
            o.initial -= reduced;
            o.updated_ms = now_ms;
            o.last_update = UpdateReason::Decrease;
        }
        self.emit_book_delta(now_ms, market, side, price, -reduced, id);
        let order = self.order_snapshot(id);
        self.journal_order(now_ms, "order_decrease", &order, None);
        self.emit_user_order(&order);
        self.refresh_requirement(account, market);
        self.emit_ticker(now_ms, market);
        Ok((order, reduced))
    }

    /// Amends price and/or total size (`new_total` = filled + remaining after the amend).
    /// A price change or a size increase loses queue priority; a pure size decrease keeps it.
    /// Returns (old order, new order).
    pub fn amend(
        &mut self,
        now_ms: u64,
        account: AccountId,
        id: OrderNo,
        new_price: Price,
        new_total: Option<Qty>,
    ) -> Result<(OrderRecord, OrderRecord), OrderError> {
        let old = self.owned_resting(account, id)?.clone();
        self.check_trading(old.market)?;
        let market = old.market;
        if self.markets[market as usize].ladder.index(new_price).is_none() {
            return Err(OrderError::new(
                400,
                "invalid_price",
                format!("price {new_price} is not on the market's ladder"),
            ));
        }
        let new_total = new_total.unwrap_or(old.filled + old.remaining);
        if new_total <= old.filled {
            return Err(OrderError::invalid("count must exceed the filled quantity; cancel instead"));
        }
        let new_remaining = new_total - old.filled;
        if new_price == old.price && new_remaining <= old.remaining {
            let (_, _) = self.decrease(now_ms, account, id, Reduce::To(new_remaining))?;
            let mut order = self.order_snapshot(id);
            order.last_update = UpdateReason::Amend;
            if let Some(o) = self.orders.get_mut(&id) {
                o.last_update = UpdateReason::Amend;
            }
            return Ok((old, order));
        }
        if self.markets[market as usize].book.front_crossing(old.side, new_price).is_some() && old.post_only {
            return Err(OrderError::new(
                400,
                "post_only_cross",
                "amended post-only order would cross the book",
            ));
        }
        if !self.accounts[account as usize].unlimited {
            let acct = &self.accounts[account as usize];
            let before = acct.positions.get(&market).map_or(Money::ZERO, |p| p.requirement);
            // Requirement without the old order plus the amended one.
            let mut bids = Vec::new();
            let mut asks = Vec::new();
            if let Some(pos) = acct.positions.get(&market) {
                for oid in pos.resting.iter().filter(|o| **o != id) {
                    let o = &self.orders[oid];
                    match o.side {
                        Side::Bid => bids.push((o.price, o.remaining)),
                        Side::Ask => asks.push((o.price, o.remaining)),
                    }
                }
            }
            match old.side {
                Side::Bid => bids.push((new_price, new_remaining)),
                Side::Ask => asks.push((new_price, new_remaining)),
            }
            let pos_qty = acct.positions.get(&market).map_or(Qty::ZERO, |p| p.qty);
            let after =
                self.side_requirement(market, pos_qty, Side::Bid, &mut bids) + self.side_requirement(market, pos_qty, Side::Ask, &mut asks);
            if acct.available() + before < after {
                return Err(OrderError::new(
                    400,
                    "insufficient_balance",
                    "available balance is too low for the amended order",
                ));
            }
        }
        // Back of the queue: pull it out and run it through matching again at the new terms.
        self.markets[market as usize].book.remove(old.side, old.price, id);
        self.emit_book_delta(now_ms, market, old.side, old.price, -old.remaining, id);
        if let Some(p) = self.accounts[account as usize].positions.get_mut(&market) {
            p.resting.remove(&id);
        }
        {
            let o = self.orders.get_mut(&id).expect("order exists");
            o.price = new_price;
            o.remaining = new_remaining;
            o.initial = new_total;
            o.updated_ms = now_ms;
            o.last_update = UpdateReason::Amend;
        }
        // An amended order that meets its own account is the incoming order: under
        // taker_at_cross it is cancelled, exactly as a new order would be.
        let self_cross = self.match_incoming(now_ms, id, new_price).self_cross;
        let remaining = self.orders[&id].remaining;
        if remaining.is_zero() || self_cross {
            let o = self.orders.get_mut(&id).expect("order exists");
            if remaining.is_zero() {
                o.status = OrderStatus::Executed;
            } else {
                o.status = OrderStatus::Canceled;
                o.remaining = Qty::ZERO;
                o.last_update = UpdateReason::SelfTradeCancel;
            }
            if let Some(exp) = old.expiration_ms {
                self.expiries.remove(&(exp, id));
            }
        } else {
            self.markets[market as usize].book.push_back(
                old.side,
                new_price,
                Entry {
                    order: id,
                    account,
                    remaining,
                },
            );
            self.accounts[account as usize]
                .positions
                .entry(market)
                .or_default()
                .resting
                .insert(id);
            self.emit_book_delta(now_ms, market, old.side, new_price, remaining, id);
        }
        self.refresh_requirement(account, market);
        let order = self.order_snapshot(id);
        self.journal_order(now_ms, "order_amend", &order, None);
        self.emit_user_order(&order);
        self.emit_ticker(now_ms, market);
        self.forget_if_done(id);
        Ok((old, order))
    }

    /// Renames an order's client id (amend's `updated_client_order_id`).
    pub fn set_client_order_id(&mut self, id: OrderNo, client_order_id: String) {
        let Some(o) = self.orders.get_mut(&id) else { return };
        let old = std::mem::replace(&mut o.client_order_id, client_order_id.clone());
        let account = o.account;
        self.by_client_id.remove(&(account, old));
        self.by_client_id.insert((account, client_order_id), id);
    }

    /// Cancels every resting order of `account` (optionally only in one market).
    pub fn cancel_all(&mut self, now_ms: u64, account: AccountId, market: Option<MarketId>) -> Vec<(OrderRecord, Qty)> {
        let ids: Vec<OrderNo> = self.accounts[account as usize]
            .positions
            .iter()
            .filter(|(m, _)| market.is_none_or(|x| x == **m))
            .flat_map(|(_, p)| p.resting.iter().copied())
            .collect();
        let mut out = Vec::new();
        for id in ids {
            if let Ok(r) = self.cancel(now_ms, account, id) {
                out.push(r);
            }
        }
        out
    }

    /// Cancels orders whose expiration time has come.
    /// When the earliest resting order with an expiry expires.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiries.first().map(|&(t, _)| t)
    }

    pub fn expire(&mut self, now_ms: u64) {
        while let Some(&(t, id)) = self.expiries.iter().next() {
            if t > now_ms {
                break;
            }
            self.expiries.remove(&(t, id));
            let market = self.orders.get(&id).map(|o| o.market);
            self.cancel_internal(now_ms, id, UpdateReason::ExpiryCancel);
            if let Some(m) = market {
                self.emit_ticker(now_ms, m);
            }
        }
    }
}
