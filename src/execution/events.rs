//! What each order-related event (ack, reject, `user_orders` update, fill, disconnect and
//! reconnect) does to the table. Every such event must come through [`Orders::on_event`], in
//! ring order.

use super::change::{Before, OrderChange};
use super::order::OrderState;
use super::Orders;
use crate::event::{ClientRef, EventBody, Feed, MarketIdx, OrderId, OrderStatus, Price, Qty, RejectReason, Side};

/// A rate-limited side waits this many reject back-offs (a second with the defaults: the
/// tier's write bucket refills over a second or two).
const RATE_LIMITED_BACKOFF_FACTOR: u64 = 10;

/// A fill for an order id we have not learned yet (fill before ack, without a client id).
#[derive(Clone, Copy, Debug)]
pub(super) struct EarlyFill {
    order: OrderId,
    qty: Qty,
}

pub(super) const EARLY_FILLS: usize = 32;

impl Orders {
    /// Applies one event; every order-related event must come through here, in ring order.
    /// `Disconnected` begins a resync and `Connected` ends it (see [`Orders::begin_resync`]).
    /// `changes` hears what the event changed about each of our orders (see [`OrderChange`]).
    pub fn on_event(&mut self, body: &EventBody, now_ms: u64, changes: &mut impl FnMut(OrderChange)) {
        self.now_ms = self.now_ms.max(now_ms);
        let touched = match *body {
            EventBody::OrderAck {
                client,
                order,
                status,
                filled,
                remaining,
                ..
            } => self.on_ack(client, order, status, filled, remaining, now_ms),
            EventBody::OrderReject { client, reason, .. } => self.on_reject(client, reason, now_ms),
            EventBody::OrderUpdate {
                market,
                client,
                order,
                status,
                side,
                price,
                remaining,
                filled,
            } => self.on_update(market, client, order, status, side, price, remaining, filled, now_ms),
            EventBody::Fill { client, order, qty, .. } => self.on_fill(client, order, qty),
            // Our orders live on Kalshi's session: another feed's drop says nothing about them.
            EventBody::Disconnected { feed: Feed::Kalshi } => {
                self.begin_resync();
                None
            }
            EventBody::Connected { feed: Feed::Kalshi } => {
                self.end_resync_reporting(now_ms, changes);
                None
            }
            _ => None,
        };
        if let Some((i, before)) = touched {
            self.report_change(i, before, changes);
        }
    }

    fn on_ack(
        &mut self,
        client: ClientRef,
        order: OrderId,
        status: OrderStatus,
        filled: Qty,
        remaining: Qty,
        now_ms: u64,
    ) -> Option<(usize, Before)> {
        self.stats.acks += 1;
        let found = if client.0 != 0 {
            self.find_client(client)
        } else {
            self.find_order(order)
        };
        let Some(i) = found else {
            // A cancel-all ack without an id, or a reply about an order we never tracked.
            if client.0 != 0 {
                self.stats.untracked += 1;
            }
            return None;
        };
        let before = Before::of(&self.slots[i]);
        let o = &mut self.slots[i];
        if o.state == OrderState::Done {
            if o.inferred_done && status == OrderStatus::Resting {
                self.revive(i, filled, remaining);
            } else if status != OrderStatus::Resting {
                self.settle_final(i, filled);
            }
            return Some((i, before));
        }
        let learned = o.order.is_none() && order.0 != 0;
        if learned {
            o.order = Some(order);
        }
        o.apply_report(filled, remaining);
        let terminal = status != OrderStatus::Resting;
        let mut requeued = false;
        match o.state {
            OrderState::PendingNew => {
                if !terminal {
                    o.state = OrderState::Live;
                    o.queued_ms = now_ms;
                }
            }
            OrderState::PendingAmend { price, total } => {
                if !terminal {
                    // Only a pure shrink keeps priority; the exchange treats the rest as a new entry.
                    requeued = price != o.amended_from.0 || total > o.amended_from.1;
                    o.price = price;
                    o.state = OrderState::Live;
                }
            }
            OrderState::PendingDecrease { .. } => {
                if !terminal {
                    o.state = OrderState::Live;
                }
            }
            // A cancel's ack says canceled; anything else is a late answer to an earlier,
            // timed-out request: keep waiting for the cancel's own.
            OrderState::PendingCancel | OrderState::Live | OrderState::Done => {}
        }
        if requeued {
            o.requeues += 1;
            o.queued_ms = now_ms;
        }
        if terminal || (o.state == OrderState::Live && o.remaining.0 == 0) {
            o.finish(false);
            self.close_slot(i);
        }
        if learned {
            self.apply_early_fills(i);
        }
        Some((i, before))
    }

    fn on_reject(&mut self, client: ClientRef, reason: RejectReason, now_ms: u64) -> Option<(usize, Before)> {
        self.stats.rejects += 1;
        let i = (client.0 != 0).then(|| self.find_client(client)).flatten()?;
        let before = Before::of(&self.slots[i]);
        let o = &mut self.slots[i];
        let (market, side) = (o.market, o.side);
        let gone = reason == RejectReason::NotFound;
        // Pacing refused the request: retrying after the usual back-off would only be refused
        // again, so the side waits for the bucket to refill.
        let backoff = if reason == RejectReason::RateLimited {
            self.params.reject_backoff_ms.saturating_mul(RATE_LIMITED_BACKOFF_FACTOR)
        } else {
            self.params.reject_backoff_ms
        };
        match o.state {
            OrderState::Done => return Some((i, before)),
            OrderState::PendingNew => {
                // Nothing changed at the exchange, unless it already told us the order exists.
                if o.order.is_some() && o.remaining.0 > 0 {
                    o.state = OrderState::Live;
                } else {
                    o.finish(true);
                }
                self.hold_for(market, side, now_ms, backoff);
            }
            OrderState::PendingAmend { .. } | OrderState::PendingDecrease { .. } => {
                if gone {
                    o.vanish();
                } else {
                    o.state = OrderState::Live;
                }
                self.hold_for(market, side, now_ms, backoff);
            }
            OrderState::PendingCancel | OrderState::Live => {
                if gone {
                    o.vanish();
                } else if o.state == OrderState::PendingCancel {
                    // Retried on the next reconcile or cancel_all; a paced cancel after the
                    // back-off, or it would be refused again at event rate.
                    o.state = OrderState::Live;
                    if reason == RejectReason::RateLimited {
                        o.retry_after_ms = now_ms.saturating_add(backoff);
                    }
                }
            }
        }
        if self.slots[i].state == OrderState::Done {
            self.close_slot(i);
        }
        Some((i, before))
    }

    #[allow(clippy::too_many_arguments)]
    fn on_update(
        &mut self,
        market: MarketIdx,
        client: ClientRef,
        order: OrderId,
        status: OrderStatus,
        side: Side,
        price: Price,
        remaining: Qty,
        filled: Qty,
        now_ms: u64,
    ) -> Option<(usize, Before)> {
        let found = match (client.0 != 0).then(|| self.find_client(client)).flatten() {
            Some(i) => Some(i),
            None => self.find_order(order),
        };
        let Some(i) = found else {
            if status == OrderStatus::Resting && client.0 != 0 && remaining.0 > 0 {
                self.adopt(market, client, order, side, price, remaining, filled, now_ms);
            }
            return None;
        };
        let before = Before::of(&self.slots[i]);
        let timeout = self.params.inflight_timeout_ms;
        let o = &mut self.slots[i];
        if o.state == OrderState::Done {
            if o.inferred_done && status == OrderStatus::Resting {
                self.revive(i, filled, remaining);
                self.slots[i].price = price;
            } else if status != OrderStatus::Resting {
                self.settle_final(i, filled);
            }
            return Some((i, before));
        }
        let learned = o.order.is_none() && order.0 != 0;
        if learned {
            o.order = Some(order);
        }
        if o.is_unknown(now_ms, timeout) {
            // We no longer know what our request did: the exchange's report is all we have.
            o.price = price;
            o.apply_report(filled, remaining);
        } else {
            // Without our own request nothing but fills changes a resting order, and an update
            // can be older than the ack we already applied (WS and REST race): take only its
            // fills, never its size or price, so a stale report cannot shrink our view of it.
            o.apply_reported_fill(filled);
        }
        match status {
            OrderStatus::Resting => {
                o.unconfirmed = false;
                // The report settles an unanswered request: the exchange has the order in this state.
                if o.is_unknown(now_ms, timeout) {
                    o.state = OrderState::Live;
                }
                if o.state == OrderState::Live && o.remaining.0 == 0 {
                    o.finish(false);
                    self.close_slot(i);
                }
            }
            OrderStatus::Canceled | OrderStatus::Executed => {
                o.finish(false);
                self.close_slot(i);
            }
        }
        if learned {
            self.apply_early_fills(i);
        }
        Some((i, before))
    }

    fn on_fill(&mut self, client: ClientRef, order: OrderId, qty: Qty) -> Option<(usize, Before)> {
        let found = match (client.0 != 0).then(|| self.find_client(client)).flatten() {
            Some(i) => Some(i),
            None => self.find_order(order),
        };
        let Some(i) = found else {
            if client.0 == 0 && order.0 != 0 {
                // Maybe ours before the create's ack told us its id: keep it for the ack.
                if self.early[self.early_next].is_some() {
                    self.stats.early_fills_dropped += 1;
                }
                self.early[self.early_next] = Some(EarlyFill { order, qty });
                self.early_next = (self.early_next + 1) % EARLY_FILLS;
                self.stats.early_fills += 1;
            }
            return None;
        };
        let before = Before::of(&self.slots[i]);
        let o = &mut self.slots[i];
        if o.order.is_none() && order.0 != 0 {
            o.order = Some(order);
        }
        o.apply_fill(qty);
        if o.state == OrderState::Live && o.remaining.0 == 0 {
            // Fully filled; with a request in flight its answer decides (an amend may have grown it first).
            o.finish(false);
            self.close_slot(i);
        } else if o.state == OrderState::Done && !o.settling() {
            self.unsettle(i);
        }
        Some((i, before))
    }

    /// A finished order's final report: how much it filled is now known.
    fn settle_final(&mut self, i: usize, filled: Qty) {
        let o = &mut self.slots[i];
        o.apply_reported_fill(filled);
        o.in_doubt = Qty(0);
        if o.settling() {
            self.close_slot(i);
        } else {
            self.unsettle(i);
        }
    }

    pub(super) fn unsettle(&mut self, i: usize) {
        if let Some(k) = self.settling.iter().position(|&j| usize::from(j) == i) {
            self.settling.swap_remove(k);
        }
    }

    fn apply_early_fills(&mut self, i: usize) {
        let Some(id) = self.slots[i].order else { return };
        for k in 0..EARLY_FILLS {
            if let Some(f) = self.early[k] {
                if f.order == id {
                    self.early[k] = None;
                    self.slots[i].apply_fill(f.qty);
                }
            }
        }
        let o = &mut self.slots[i];
        if o.state == OrderState::Live && o.remaining.0 == 0 {
            o.finish(false);
            self.close_slot(i);
        }
    }
}
