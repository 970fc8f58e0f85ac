//! A market's exposure from our orders: what could still buy and sell if everything filled,
//! for the risk checks.
//!
//! Exposure is worst case: an order whose amend is in flight counts at the larger of its old
//! and new size; one being cancelled or decreased counts until the exchange confirms.

use super::order::{OrderState, Role};
use super::Orders;
use crate::event::{ClientRef, MarketIdx, Qty, Side};

/// One side's share of a market's exposure, in contracts that could still trade.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SideExposure {
    /// Remaining of resting orders with no request in flight.
    pub resting: Qty,
    /// Worst-case remaining of orders with a request in flight (or unknown): pending creates
    /// at full size, amends at the larger of old and new size, cancels and decreases until
    /// confirmed.
    pub in_flight: Qty,
    /// The resting order [`Orders::reconcile`] would amend or decrease into the desired quote
    /// (it is part of `resting`); `None` when it has none to reuse.
    pub quote: Option<QuoteOrder>,
    /// Fills reported by order updates but not yet delivered as `Fill` events (see
    /// [`Order::unbooked`](super::Order::unbooked)), including those of finished orders.
    pub unbooked: Qty,
    /// Finished orders that vanished ("not found") before their final update: their last
    /// remaining, since it may have filled with the fills still in transit.
    pub in_doubt: Qty,
    /// Open orders on the side.
    pub orders: u16,
}

impl SideExposure {
    /// Everything on the side that could still fill.
    #[inline]
    pub fn worst(&self) -> Qty {
        self.resting + self.in_flight + self.unbooked + self.in_doubt
    }

    /// Everything except the reusable quote order: what stays exposed whatever the desired size.
    #[inline]
    pub fn besides_quote(&self) -> Qty {
        Qty(self.worst().0 - self.quote.map_or(0, |q| q.remaining.0))
    }
}

/// The reusable order behind a side's quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuoteOrder {
    pub client: ClientRef,
    pub remaining: Qty,
    pub filled: Qty,
}

/// A market's exposure from our orders: what could still buy and sell if everything filled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exposure {
    pub buy: SideExposure,
    pub sell: SideExposure,
}

impl Exposure {
    #[inline]
    pub fn side(&self, side: Side) -> &SideExposure {
        match side {
            Side::Bid => &self.buy,
            Side::Ask => &self.sell,
        }
    }

    /// Worst-case long position given the current one: every buy fills.
    #[inline]
    pub fn worst_long(&self, position: Qty) -> Qty {
        position + self.buy.worst()
    }

    /// Worst-case short position (negative): every sell fills.
    #[inline]
    pub fn worst_short(&self, position: Qty) -> Qty {
        position - self.sell.worst()
    }
}

impl Orders {
    /// One market's exposure (see [`SideExposure`]).
    // Inlined so the result is built where the decision reads it, not returned through memory.
    #[inline]
    pub fn exposure(&self, market: MarketIdx) -> Exposure {
        let mut e = Exposure::default();
        let mut quote = [None::<usize>; 2];
        for (k, side) in [Side::Bid, Side::Ask].into_iter().enumerate() {
            let s = match side {
                Side::Bid => &mut e.buy,
                Side::Ask => &mut e.sell,
            };
            for i in self.side_slots(market, side) {
                let o = &self.slots[i];
                s.orders += 1;
                s.unbooked += o.unbooked();
                if o.state == OrderState::Live {
                    s.resting += o.remaining;
                } else {
                    s.in_flight += o.worst_remaining();
                }
            }
            quote[k] = self.reusable(market, side);
        }
        for &i in &self.settling {
            let o = &self.slots[usize::from(i)];
            if o.market == market {
                let s = match o.side {
                    Side::Bid => &mut e.buy,
                    Side::Ask => &mut e.sell,
                };
                s.unbooked += o.unbooked();
                s.in_doubt += o.in_doubt;
            }
        }
        e.buy.quote = quote[0].map(|i| self.quote_of(i));
        e.sell.quote = quote[1].map(|i| self.quote_of(i));
        e
    }

    pub(super) fn quote_of(&self, i: usize) -> QuoteOrder {
        let o = &self.slots[i];
        QuoteOrder {
            client: o.client,
            remaining: o.remaining,
            filled: o.filled,
        }
    }

    /// The order reconcile would keep on a side, when it is live and idle (so reconcile may
    /// amend or decrease it): none when a non-cancel request is in flight on the side.
    fn reusable(&self, market: MarketIdx, side: Side) -> Option<usize> {
        let mut best: Option<usize> = None;
        for i in self.side_slots(market, side).filter(|&i| self.slots[i].role == Role::Quote) {
            let o = &self.slots[i];
            match o.state {
                OrderState::PendingNew | OrderState::PendingAmend { .. } | OrderState::PendingDecrease { .. } => return None,
                OrderState::Live if o.order.is_some() && best.is_none_or(|b| o.keeper_key() < self.slots[b].keeper_key()) => {
                    best = Some(i);
                }
                _ => {}
            }
        }
        best
    }
}
