//! Resync after a reconnect: open orders the exchange no longer lists are closed, resting
//! orders of ours the table lost (or an earlier session left) are adopted, and orders a
//! close was wrong about are revived.

use super::change::{Before, OrderChange};
use super::order::{Order, OrderState, EMPTY};
use super::Orders;
use crate::event::{ClientRef, MarketIdx, OrderId, Price, Qty, Side};

impl Orders {
    /// A resting order of ours we did not track (a resync after a lost ack, or an earlier
    /// session's): tracked from now on, so it counts as exposure and reconcile can cancel it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn adopt(
        &mut self,
        market: MarketIdx,
        client: ClientRef,
        order: OrderId,
        side: Side,
        price: Price,
        remaining: Qty,
        filled: Qty,
        now_ms: u64,
    ) {
        let Some(i) = self.free_slot() else {
            self.stats.untracked += 1;
            return;
        };
        self.slots[i] = Order {
            client,
            order: (order.0 != 0).then_some(order),
            market,
            side,
            price,
            total: filled + remaining,
            remaining,
            filled,
            state: OrderState::Live,
            sent_ms: now_ms,
            queued_ms: now_ms,
            ..EMPTY
        };
        self.open_slot(i);
        self.stats.adopted += 1;
    }

    pub(super) fn revive(&mut self, i: usize, filled: Qty, remaining: Qty) {
        self.unsettle(i);
        let o = &mut self.slots[i];
        o.in_doubt = Qty(0);
        o.inferred_done = false;
        o.state = OrderState::Live;
        o.apply_report(filled, remaining);
        if o.remaining.0 == 0 {
            o.finish(false);
            self.close_slot(i);
            return;
        }
        self.open_slot(i);
        self.stats.revived += 1;
    }

    /// Starts a resync (the io thread is about to list our resting orders again): every open
    /// order must be confirmed by a `Resting` report before [`Orders::end_resync`].
    /// Called on `Disconnected`.
    pub fn begin_resync(&mut self) {
        self.resyncing = true;
        for &i in &self.open {
            self.slots[usize::from(i)].unconfirmed = true;
        }
    }

    /// Ends a resync: open orders the exchange did not report resting are gone (cancelled or
    /// filled while we were away; missed fills arrive as `Fill`s). A create still awaiting
    /// its answer is left to that answer unless it has timed out. Orders placed during the
    /// resync are exempt. Returns how many orders were closed. Called on `Connected`.
    pub fn end_resync(&mut self, now_ms: u64) -> usize {
        self.end_resync_reporting(now_ms, &mut |_| {})
    }

    /// [`end_resync`](Self::end_resync), telling `changes` of every order it closes.
    pub(super) fn end_resync_reporting(&mut self, now_ms: u64, changes: &mut impl FnMut(OrderChange)) -> usize {
        if !self.resyncing {
            return 0;
        }
        self.resyncing = false;
        let timeout = self.params.inflight_timeout_ms;
        let mut closed = 0;
        let mut k = 0;
        while k < self.open.len() {
            let i = usize::from(self.open[k]);
            let o = &mut self.slots[i];
            let awaiting_create = o.state == OrderState::PendingNew && !o.is_unknown(now_ms, timeout);
            if o.unconfirmed && !awaiting_create {
                let before = Before::of(o);
                o.finish(true);
                self.report_change(i, before, changes);
                let o = &self.slots[i];
                if o.settling() && self.settling.len() < self.settling.capacity() {
                    self.settling.push(i as u16);
                }
                self.remove_open_at(k);
                closed += 1;
                continue;
            }
            o.unconfirmed = false;
            k += 1;
        }
        // The resync delivered the fills missed while away, so vanished orders are no longer in doubt.
        let mut k = 0;
        while k < self.settling.len() {
            let o = &mut self.slots[usize::from(self.settling[k])];
            o.in_doubt = Qty(0);
            if o.settling() {
                k += 1;
            } else {
                self.settling.swap_remove(k);
            }
        }
        self.stats.closed_by_resync += closed as u64;
        closed
    }
}
