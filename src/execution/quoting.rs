//! Quote reconciliation: [`Orders::reconcile`] diffs one market's [`Desired`] quote against
//! the orders on each side and sends the fewest requests:
//!
//! | working order on the side        | desired            | request                         |
//! |----------------------------------|--------------------|---------------------------------|
//! | none                             | (p, q)             | `Place` post-only GTC           |
//! | any, with a request in flight    | anything           | nothing (one request at a time) |
//! | live                             | none               | `Cancel`                        |
//! | live at p                        | (p, q < remaining) | `Decrease` to q (keeps priority)|
//! | live at p                        | (p, q > remaining) | `Amend` if it grows by at least `min_size_change` (loses priority) |
//! | live at p' (moved enough)        | (p, q)             | `Amend` to p, total filled + q  |
//! | a second order on the side       | anything           | `Cancel` the extra              |
//!
//! Kalshi's amend takes the new *total* (`count` = filled + remaining, the most the order may
//! ever fill), keeps the client order id, and moves the order to the back of the queue unless
//! it only shrinks; `decrease` (`reduce_to` = the new remaining) always keeps priority. So a
//! pure shrink is a decrease, and a grow or a price move is an amend.
//!
//! Reconcile never places an order on a side that still has any open quote, so a side has at
//! most one working quote (adopted orders beyond the first are cancelled). It manages quotes
//! only: an order with the take role (an immediate-or-cancel in flight) is neither reused,
//! nor cancelled, nor in the way of a quote.

use super::order::{OrderState, Role};
use super::requests::ClientIds;
use super::Orders;
use crate::event::{CommandBody, MarketIdx, Price, Qty, Side};
use crate::ladder::MarketLadder;

/// One quote side: price on the YES scale and size.
pub type Level = (Price, Qty);

/// What the strategy wants resting in one market: at most one order per side in V1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Buy YES at this price and size.
    pub bid: Option<Level>,
    /// Sell YES (buy NO at the complement) at this YES price and size.
    pub ask: Option<Level>,
}

impl Desired {
    pub const NONE: Desired = Desired { bid: None, ask: None };

    #[inline]
    pub fn side(&self, side: Side) -> Option<Level> {
        match side {
            Side::Bid => self.bid,
            Side::Ask => self.ask,
        }
    }

    #[inline]
    pub fn set(&mut self, side: Side, level: Option<Level>) {
        match side {
            Side::Bid => self.bid = level,
            Side::Ask => self.ask = level,
        }
    }
}

/// Orders on one side of one market reconcile looks at in one call; more are handled on later calls.
const SIDE_SCAN: usize = 8;

impl Orders {
    /// Diffs one market's desired quote against its orders and sends the fewest requests (see
    /// the module docs). `sink` sends a command and says whether it went out; a refused
    /// command (risk veto, full ring) leaves the order table as if it had never been tried.
    /// Returns the number of commands sent.
    pub fn reconcile(
        &mut self,
        market: MarketIdx,
        desired: Desired,
        ladder: &MarketLadder,
        now_ms: u64,
        ids: &mut ClientIds,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> usize {
        self.now_ms = self.now_ms.max(now_ms);
        let mut sent = 0;
        for side in [Side::Bid, Side::Ask] {
            let want = desired.side(side).filter(|&(_, q)| q.0 > 0);
            sent += self.reconcile_side(market, side, want, ladder, now_ms, ids, sink);
        }
        sent
    }

    /// [`reconcile`](Self::reconcile) with every command vetoed and the table left as it was:
    /// the same scan, diff and risk calls on the same slots, for a thread that keeps them in
    /// cache while idle. `sink` sees what would be sent; its answer is ignored.
    pub fn rehearse(
        &mut self,
        market: MarketIdx,
        desired: Desired,
        ladder: &MarketLadder,
        now_ms: u64,
        ids: &ClientIds,
        sink: &mut impl FnMut(CommandBody),
    ) -> usize {
        // A vetoed command changes nothing but these (ids drawn, counters, the clock).
        let (clock, stats) = (self.now_ms, self.stats);
        let mut scratch_ids = ids.clone();
        let mut would = 0;
        self.reconcile(market, desired, ladder, now_ms, &mut scratch_ids, &mut |cmd| {
            would += 1;
            sink(cmd);
            false
        });
        self.now_ms = clock;
        self.stats = stats;
        would
    }

    #[allow(clippy::too_many_arguments)]
    fn reconcile_side(
        &mut self,
        market: MarketIdx,
        side: Side,
        want: Option<Level>,
        ladder: &MarketLadder,
        now_ms: u64,
        ids: &mut ClientIds,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> usize {
        let timeout = self.params.inflight_timeout_ms;
        let mut on_side = [0u16; SIDE_SCAN];
        let mut n = 0;
        // The order to keep: one with a non-cancel request in flight (untouchable), else the
        // live one longest in its queue (the same choice `exposure` reports as the quote).
        let mut keeper: Option<usize> = None;
        let mut keeper_rank = 0u8;
        for i in self.side_slots(market, side) {
            let o = &self.slots[i];
            // A take in flight is not a quote: it ends with its answer, and a quote rests beside it.
            if o.role != Role::Quote {
                continue;
            }
            if n == SIDE_SCAN {
                break;
            }
            on_side[n] = i as u16;
            n += 1;
            let rank = match o.state {
                OrderState::PendingNew | OrderState::PendingAmend { .. } | OrderState::PendingDecrease { .. } => 2,
                OrderState::Live if o.order.is_some() => 1,
                _ => 0,
            };
            let better = rank > keeper_rank
                || (rank == keeper_rank && rank > 0 && keeper.is_some_and(|k| o.keeper_key() < self.slots[k].keeper_key()));
            if rank > 0 && better {
                keeper = Some(i);
                keeper_rank = rank;
            }
        }
        let mut sent = 0;
        // Extras (and the keeper when nothing is wanted) are cancelled; timed-out cancels retried.
        for &i in &on_side[..n] {
            let i = usize::from(i);
            if Some(i) == keeper && want.is_some() {
                continue;
            }
            let o = &self.slots[i];
            let retry = o.state == OrderState::PendingCancel && o.is_unknown(now_ms, timeout);
            if (o.state == OrderState::Live || retry) && o.order.is_some() && self.send_cancel(i, now_ms, sink) {
                sent += 1;
            }
        }
        let Some((price, qty)) = want else { return sent };
        if self.held(market, side, now_ms) {
            return sent;
        }
        let Some(k) = keeper else {
            // Never beside another open order (a cancel in flight, an unknown create).
            if n == 0 && self.send_place(market, side, price, qty, Role::Quote, now_ms, ids, sink).is_ok() {
                sent += 1;
            }
            return sent;
        };
        // The fields used, not a copy of the whole order.
        let (state, at, remaining, filled) = {
            let o = &self.slots[k];
            (o.state, o.price, o.remaining, o.filled)
        };
        if state != OrderState::Live {
            return sent;
        }
        let moved = match (ladder.tick(at), ladder.tick(price)) {
            (Some(a), Some(b)) => a.0.abs_diff(b.0) >= self.params.min_price_move_ticks.max(1),
            _ => at != price,
        };
        let grow = qty.0 - remaining.0;
        let ok = if moved {
            self.send_amend(k, price, filled + qty, now_ms, sink).is_ok()
        } else if grow < 0 {
            self.send_decrease(k, qty, now_ms, sink).is_ok()
        } else if grow > 0 && grow >= self.params.min_size_change.0.max(1) {
            self.send_amend(k, at, filled + qty, now_ms, sink).is_ok()
        } else {
            false
        };
        sent + usize::from(ok)
    }
}
