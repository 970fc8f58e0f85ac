//! One tracked order: its state (which request is in flight), and how an exchange report or a
//! fill changes its sizes.
//!
//! Fills and order updates overlap: a fill arrives both as a `Fill` (a delta) and inside the
//! next `OrderUpdate`/`OrderAck` (absolute `filled`/`remaining`), in either order, and fills may
//! arrive before the create's ack. Each order keeps the sum of `Fill` deltas seen and the
//! largest `filled` reported; the order's `filled` is the larger of the two, so each fill
//! counts once whichever source comes first, and a repeated update changes nothing. An
//! absolute report whose `filled` is behind what we already know is shifted by the difference
//! (it describes the order before fills we have seen). An `OrderUpdate` for an order whose
//! state we know is trusted for its fills and its end (cancelled/executed) only: updates race
//! REST acks, and a stale one must not shrink the order we think rests. The exchange's
//! reported but not yet `Fill`-delivered fills stay in [`Exposure`](super::Exposure) (the
//! strategy books its position from `Fill`s), also after the order has finished.

use crate::event::{ClientRef, MarketIdx, OrderId, Price, Qty, Side};

/// Where an order stands. The `Pending*` states have a request in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderState {
    /// Create sent, no ack yet.
    PendingNew,
    /// Resting at the exchange, no request in flight.
    Live,
    /// Amend sent: the new price and the new total (`count` = filled + remaining).
    PendingAmend { price: Price, total: Qty },
    /// Decrease sent: the new remaining (`reduce_to`).
    PendingDecrease { remaining: Qty },
    /// Cancel sent.
    PendingCancel,
    /// Finished: cancelled, executed, rejected, or missing from a resync.
    Done,
}

/// What an order is for. Quote reconciliation manages quotes only; a take is sent once,
/// immediate-or-cancel, and ends with its answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Role {
    /// A resting post-only quote, kept in line with the strategy's desired quotes.
    #[default]
    Quote,
    /// An aggressive order that crosses the spread (the taker's): never reused as a quote.
    Take,
}

/// One tracked order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// Our reference; stable for the order's life (amends keep it). V2's queue estimator keys on it.
    pub client: ClientRef,
    /// The exchange's id, once an ack, update or fill has told us.
    pub order: Option<OrderId>,
    pub market: MarketIdx,
    pub role: Role,
    /// Bid buys YES; Ask sells YES (buys NO). Prices are on the YES scale.
    pub side: Side,
    pub price: Price,
    /// The most the order may ever fill: filled + remaining.
    pub total: Qty,
    pub remaining: Qty,
    pub filled: Qty,
    pub state: OrderState,
    /// When the request now in flight was sent (meaningless when none is).
    pub sent_ms: u64,
    /// When the order took its current place in the queue: placement, or the last amend that
    /// cost priority. A decrease keeps it.
    pub queued_ms: u64,
    /// How many times the order went to the back of its queue (amends of price or growth).
    pub requeues: u32,
    /// Sum of `Fill` deltas seen (see the module docs on double counting).
    pub(super) fills_seen: Qty,
    /// Closed without the exchange saying so (a reject, a resync that did not list it): an
    /// exchange report that it rests after all brings it back.
    pub(super) inferred_done: bool,
    /// Set for open orders at `begin_resync`, cleared by any report that the order rests.
    pub(super) unconfirmed: bool,
    /// Price and total when the amend in flight was sent: whether it cost priority.
    pub(super) amended_from: (Price, Qty),
    /// What may have filled of an order that vanished (a request answered "not found") until
    /// its final update says how it ended: its fills may still be on their way.
    pub(super) in_doubt: Qty,
    /// A cancel refused by pacing is not sent again before this time.
    pub(super) retry_after_ms: u64,
}

pub(super) const EMPTY: Order = Order {
    client: ClientRef(0),
    order: None,
    market: 0,
    role: Role::Quote,
    side: Side::Bid,
    price: Price(0),
    total: Qty(0),
    remaining: Qty(0),
    filled: Qty(0),
    state: OrderState::Done,
    sent_ms: 0,
    queued_ms: 0,
    requeues: 0,
    fills_seen: Qty(0),
    inferred_done: false,
    unconfirmed: false,
    amended_from: (Price(0), Qty(0)),
    in_doubt: Qty(0),
    retry_after_ms: 0,
};

impl Order {
    /// Which of several orders on one side to keep: the longest in its queue, then the lowest reference.
    #[inline]
    pub(super) fn keeper_key(&self) -> (u64, u64) {
        (self.queued_ms, self.client.0)
    }

    /// Whether a request for this order is in flight.
    #[inline]
    pub fn in_flight(&self) -> bool {
        !matches!(self.state, OrderState::Live | OrderState::Done)
    }

    #[inline]
    pub fn is_open(&self) -> bool {
        self.state != OrderState::Done
    }

    /// In flight for longer than `timeout_ms`: we no longer know what the exchange did.
    #[inline]
    pub fn is_unknown(&self, now_ms: u64, timeout_ms: u64) -> bool {
        self.in_flight() && now_ms.saturating_sub(self.sent_ms) >= timeout_ms
    }

    /// The most this order could still fill, counting the request in flight.
    #[inline]
    pub fn worst_remaining(&self) -> Qty {
        match self.state {
            OrderState::Done => Qty(0),
            OrderState::PendingAmend { total, .. } => Qty(self.remaining.0.max(total.0 - self.filled.0)),
            _ => self.remaining,
        }
    }

    /// Fills the exchange reported (in an update or ack) that have not arrived as `Fill`
    /// events yet. The strategy books its position from `Fill`s, so until they arrive these
    /// contracts are in neither the position nor the order's remaining: exposure counts them.
    #[inline]
    pub fn unbooked(&self) -> Qty {
        Qty((self.filled.0 - self.fills_seen.0).max(0))
    }

    /// Applies an absolute report (`filled`, `remaining` as the exchange saw the order).
    pub(super) fn apply_report(&mut self, filled: Qty, remaining: Qty) {
        if filled >= self.filled {
            self.filled = filled;
            self.remaining = remaining;
        } else {
            // Older than fills we have already counted: take those off its remaining.
            self.remaining = Qty((remaining.0 - (self.filled.0 - filled.0)).max(0));
        }
        self.total = self.filled + self.remaining;
    }

    /// An update's `filled`, as far as it is news: the new fills come off the remaining.
    pub(super) fn apply_reported_fill(&mut self, filled: Qty) {
        if filled > self.filled {
            let new = filled.0 - self.filled.0;
            self.filled = filled;
            self.remaining = Qty((self.remaining.0 - new).max(0));
            self.total = self.filled + self.remaining;
        }
    }

    pub(super) fn apply_fill(&mut self, qty: Qty) {
        self.fills_seen += qty;
        if self.fills_seen > self.filled {
            let new = self.fills_seen.0 - self.filled.0;
            self.in_doubt = Qty((self.in_doubt.0 - new).max(0));
            self.filled = self.fills_seen;
            self.remaining = Qty((self.remaining.0 - new).max(0));
            self.total = self.filled + self.remaining;
        }
    }

    /// The exchange says it no longer has the order ("not found"), and we do not know how it
    /// ended. That is the exchange's word, not an inference: a `Resting` report after it is
    /// stale and does not bring the order back.
    pub(super) fn vanish(&mut self) {
        self.in_doubt = self.worst_remaining();
        self.finish(false);
    }

    /// Still exposure although finished: fills reported or possible but not booked yet.
    #[inline]
    pub(super) fn settling(&self) -> bool {
        self.unbooked().0 > 0 || self.in_doubt.0 > 0
    }

    pub(super) fn finish(&mut self, inferred: bool) {
        self.state = OrderState::Done;
        self.remaining = Qty(0);
        self.total = self.filled;
        self.inferred_done = inferred;
        self.unconfirmed = false;
    }
}
