//! Order tracking and quote reconciliation: desired quotes in, the fewest order requests out.
//!
//! [`Orders`] mirrors our orders at the exchange from every order-related event (acks,
//! rejects, `user_orders` updates, fills, resync results) and [`Orders::reconcile`] diffs one
//! market's [`Desired`] quote against it:
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
//! Invariants this module keeps:
//! - At most one request in flight per order. Acks carry no request id, so a second request
//!   would make the next ack ambiguous; instead the side waits. After
//!   [`ExecParams::inflight_timeout_ms`] without an answer the order counts as *unknown*: the
//!   side stays held (never a second order placed beside it) until an update about the order
//!   arrives or a resync closes it. Only a timed-out cancel is sent again (that is harmless).
//! - Reconcile never places an order on a side that still has any open order, so a side has at
//!   most one working order (adopted orders beyond the first are cancelled).
//! - Exposure is worst case: an order whose amend is in flight counts at the larger of its old
//!   and new size; one being cancelled or decreased counts until the exchange confirms.
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
//! reported but not yet `Fill`-delivered fills stay in [`Exposure`] (the strategy books its
//! position from `Fill`s), also after the order has finished.
//!
//! Everything is allocation-free after [`Orders::new`]: orders live in a fixed slot array and
//! finished orders stay there (to absorb late fills and acks) until their slot is reused.

use crate::event::{ClientRef, CommandBody, EventBody, MarketIdx, OrderId, OrderStatus, Price, Qty, RejectReason, Side, TimeInForce};
use crate::ladder::MarketLadder;
use std::fmt;

/// A rate-limited side waits this many reject back-offs (a second with the defaults: the
/// tier's write bucket refills over a second or two).
const RATE_LIMITED_BACKOFF_FACTOR: u64 = 10;

/// Execution tuning; see the module docs for how each one is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecParams {
    /// Growing an order by less than this is not worth an amend (which costs queue priority).
    /// Shrinking is never deferred: the desired size may be a risk cap.
    pub min_size_change: Qty,
    /// Move a resting order only when the desired price is at least this many ladder ticks away.
    pub min_price_move_ticks: u16,
    /// After this long without an answer a request's order is *unknown* (see module docs).
    pub inflight_timeout_ms: u64,
    /// After a rejected place/amend/decrease, leave that side alone for this long, so a market
    /// that keeps refusing (post-only crosses, pacing) is not hammered once per event.
    pub reject_backoff_ms: u64,
}

impl Default for ExecParams {
    fn default() -> Self {
        ExecParams {
            min_size_change: Qty(100),
            min_price_move_ticks: 1,
            inflight_timeout_ms: 5_000,
            reject_backoff_ms: 100,
        }
    }
}

/// A bad [`ExecParams`] value: the key and how to fix it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecParamError {
    pub key: &'static str,
    pub fix: &'static str,
}

impl fmt::Display for ExecParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.fix)
    }
}

impl std::error::Error for ExecParamError {}

impl ExecParams {
    pub fn validate(&self) -> Result<(), ExecParamError> {
        if self.min_size_change.0 < 0 {
            return Err(ExecParamError {
                key: "min_size_change",
                fix: "must be >= 0 contracts; use 1 to amend for any whole-contract growth",
            });
        }
        if self.min_price_move_ticks == 0 {
            return Err(ExecParamError {
                key: "min_price_move_ticks",
                fix: "must be >= 1; 1 moves the order on every tick the quote moves",
            });
        }
        if self.inflight_timeout_ms == 0 {
            return Err(ExecParamError {
                key: "inflight_timeout_ms",
                fix: "must be > 0; use a few seconds (5000), well above a REST round trip",
            });
        }
        Ok(())
    }
}

/// Client order ids unique to this session: the session nonce in the high 32 bits and a
/// counter from 1 in the low 32, so a reference is never 0 (0 means "none") and two sessions
/// with different nonces never collide.
#[derive(Clone, Debug)]
pub struct ClientIds {
    nonce: u32,
    next: u32,
}

impl ClientIds {
    /// `session_nonce` is folded to 32 bits; give each session a different one (a start time
    /// in ms, or random bits).
    pub fn new(session_nonce: u64) -> ClientIds {
        ClientIds {
            nonce: (session_nonce ^ (session_nonce >> 32)) as u32,
            next: 1,
        }
    }

    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> ClientRef {
        let n = self.next;
        // Wrapping skips 0 so the reference stays non-zero; 4e9 orders per session is far off.
        self.next = self.next.wrapping_add(1).max(1);
        ClientRef((u64::from(self.nonce) << 32) | u64::from(n))
    }

    pub fn session(&self) -> u32 {
        self.nonce
    }

    /// Whether `client` was issued by this session.
    pub fn is_ours(&self, client: ClientRef) -> bool {
        client.0 != 0 && (client.0 >> 32) as u32 == self.nonce
    }
}

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

/// One tracked order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// Our reference; stable for the order's life (amends keep it). V2's queue estimator keys on it.
    pub client: ClientRef,
    /// The exchange's id, once an ack, update or fill has told us.
    pub order: Option<OrderId>,
    pub market: MarketIdx,
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
    fills_seen: Qty,
    /// Closed without the exchange saying so (a reject, a resync that did not list it): an
    /// exchange report that it rests after all brings it back.
    inferred_done: bool,
    /// Set for open orders at `begin_resync`, cleared by any report that the order rests.
    unconfirmed: bool,
    /// Price and total when the amend in flight was sent: whether it cost priority.
    amended_from: (Price, Qty),
    /// What may have filled of an order that vanished (a request answered "not found") until
    /// its final update says how it ended: its fills may still be on their way.
    in_doubt: Qty,
    /// A cancel refused by pacing is not sent again before this time.
    retry_after_ms: u64,
}

const EMPTY: Order = Order {
    client: ClientRef(0),
    order: None,
    market: 0,
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
    fn keeper_key(&self) -> (u64, u64) {
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
    fn apply_report(&mut self, filled: Qty, remaining: Qty) {
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
    fn apply_reported_fill(&mut self, filled: Qty) {
        if filled > self.filled {
            let new = filled.0 - self.filled.0;
            self.filled = filled;
            self.remaining = Qty((self.remaining.0 - new).max(0));
            self.total = self.filled + self.remaining;
        }
    }

    fn apply_fill(&mut self, qty: Qty) {
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
    fn vanish(&mut self) {
        self.in_doubt = self.worst_remaining();
        self.finish(false);
    }

    /// Still exposure although finished: fills reported or possible but not booked yet.
    #[inline]
    fn settling(&self) -> bool {
        self.unbooked().0 > 0 || self.in_doubt.0 > 0
    }

    fn finish(&mut self, inferred: bool) {
        self.state = OrderState::Done;
        self.remaining = Qty(0);
        self.total = self.filled;
        self.inferred_done = inferred;
        self.unconfirmed = false;
    }
}

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
    /// [`Order::unbooked`]), including those of finished orders.
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

/// Why a direct order request ([`Orders::place`], [`Orders::amend`], ...) was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such open order.
    NotFound,
    /// A request for the order is already in flight (or unknown).
    Busy,
    /// No exchange id yet (its create has not been acked).
    NoOrderId,
    /// The order table is full.
    Full,
    /// Size or total out of range (non-positive, or an amend total at or below `filled`).
    BadSize,
    /// The sink refused the command (risk, or a full ring).
    Vetoed,
}

/// Counters for the summary and for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecStats {
    pub placed: u64,
    pub amended: u64,
    pub decreased: u64,
    pub cancelled: u64,
    pub acks: u64,
    pub rejects: u64,
    /// Resting orders of ours the table did not know, taken over (resync, earlier session).
    pub adopted: u64,
    /// Open orders closed because a resync no longer listed them.
    pub closed_by_resync: u64,
    /// Orders an inferred close was wrong about, brought back by an exchange report.
    pub revived: u64,
    /// Reports about orders we could not track (table full) or never knew.
    pub untracked: u64,
    /// Fills kept for an order whose create ack had not arrived yet, and those dropped.
    pub early_fills: u64,
    pub early_fills_dropped: u64,
    /// Places skipped because the table was full.
    pub full: u64,
}

/// A fill for an order id we have not learned yet (fill before ack, without a client id).
#[derive(Clone, Copy, Debug)]
struct EarlyFill {
    order: OrderId,
    qty: Qty,
}

const EARLY_FILLS: usize = 32;
/// Orders on one side of one market reconcile looks at in one call; more are handled on later calls.
const SIDE_SCAN: usize = 8;

const NIL: u16 = u16::MAX;

/// Iterates one side's list in [`SideIndex`].
struct SideSlots<'a> {
    next: &'a [u16],
    at: u16,
}

impl Iterator for SideSlots<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.at == NIL {
            return None;
        }
        let i = usize::from(self.at);
        self.at = self.next[i];
        Some(i)
    }
}

/// The open slots of each (market, side) as intrusive lists through the slot indices, each in
/// the order its slots appear in `Orders::open`: reconcile's choices (which orders it looks
/// at first, the order of its cancels) depend on that order, so the index must not change it.
#[derive(Clone)]
struct SideIndex {
    /// First and last slot per `key`; `NIL` when the side has no open order.
    head: Vec<u16>,
    tail: Vec<u16>,
    /// Per slot: the neighbours on its side, and where it sits in `Orders::open`.
    next: Box<[u16]>,
    prev: Box<[u16]>,
    pos: Box<[u16]>,
    /// Per slot: the list it was linked into (the slot's market and side then).
    key: Box<[usize]>,
}

impl SideIndex {
    fn new(capacity: usize) -> SideIndex {
        SideIndex {
            head: Vec::new(),
            tail: Vec::new(),
            next: vec![NIL; capacity].into_boxed_slice(),
            prev: vec![NIL; capacity].into_boxed_slice(),
            pos: vec![0; capacity].into_boxed_slice(),
            key: vec![0; capacity].into_boxed_slice(),
        }
    }

    #[inline]
    fn key(market: MarketIdx, side: Side) -> usize {
        usize::from(market) * 2 + usize::from(side == Side::Ask)
    }

    /// Sizes the heads for `markets` markets, so the first order in each does not allocate.
    fn reserve(&mut self, markets: usize) {
        if self.head.len() < markets * 2 {
            self.head.resize(markets * 2, NIL);
            self.tail.resize(markets * 2, NIL);
        }
    }

    #[inline]
    fn first(&self, market: MarketIdx, side: Side) -> u16 {
        self.head.get(Self::key(market, side)).copied().unwrap_or(NIL)
    }

    /// Links slot `i`, now at `open[pos]`, into the list of `key`, after every member
    /// further forward in `open`.
    fn link(&mut self, i: u16, key: usize, pos: u16) {
        if key >= self.head.len() {
            self.reserve(key / 2 + 1);
        }
        let slot = usize::from(i);
        self.pos[slot] = pos;
        self.key[slot] = key;
        // Walk back from the tail: a new open order goes last, a moved one near the end.
        let mut before = self.tail[key];
        while before != NIL && self.pos[usize::from(before)] > pos {
            before = self.prev[usize::from(before)];
        }
        let after = if before == NIL {
            self.head[key]
        } else {
            self.next[usize::from(before)]
        };
        self.prev[slot] = before;
        self.next[slot] = after;
        if before == NIL {
            self.head[key] = i;
        } else {
            self.next[usize::from(before)] = i;
        }
        if after == NIL {
            self.tail[key] = i;
        } else {
            self.prev[usize::from(after)] = i;
        }
    }

    fn unlink(&mut self, i: u16) {
        let slot = usize::from(i);
        let key = self.key[slot];
        let (before, after) = (self.prev[slot], self.next[slot]);
        if before == NIL {
            self.head[key] = after;
        } else {
            self.next[usize::from(before)] = after;
        }
        if after == NIL {
            self.tail[key] = before;
        } else {
            self.prev[usize::from(after)] = before;
        }
        self.prev[slot] = NIL;
        self.next[slot] = NIL;
    }
}

/// Our orders, as far as the exchange has told us, in a fixed-capacity table.
#[derive(Clone)]
pub struct Orders {
    params: ExecParams,
    slots: Box<[Order]>,
    /// Indices of open (not `Done`) slots; its capacity is the slot count.
    open: Vec<u16>,
    /// The open slots of each market and side, so a decision reads its own one or two orders
    /// instead of filtering every open order.
    sides: SideIndex,
    /// Finished slots whose fills have not all arrived as `Fill` events yet: still exposure,
    /// and not reused until they have.
    settling: Vec<u16>,
    /// Round-robin cursor for reusing finished slots, so the newest finished orders stay
    /// around longest for late events.
    reuse: usize,
    /// (market, side, until_ms): sides backing off after a reject.
    holds: Vec<(MarketIdx, Side, u64)>,
    early: [Option<EarlyFill>; EARLY_FILLS],
    early_next: usize,
    resyncing: bool,
    /// The latest time any call gave us, for calls that take none.
    now_ms: u64,
    stats: ExecStats,
}

impl Orders {
    /// A table for `capacity` orders (open and recently finished; at least 4, at most 65535).
    pub fn new(capacity: usize, params: ExecParams) -> Orders {
        let capacity = capacity.clamp(4, usize::from(u16::MAX));
        Orders {
            params,
            slots: vec![EMPTY; capacity].into_boxed_slice(),
            open: Vec::with_capacity(capacity),
            sides: SideIndex::new(capacity),
            settling: Vec::with_capacity(capacity),
            reuse: 0,
            holds: Vec::with_capacity(capacity),
            early: [None; EARLY_FILLS],
            early_next: 0,
            resyncing: false,
            now_ms: 0,
            stats: ExecStats::default(),
        }
    }

    /// Sizes the per-market index for markets `0..markets`, so that the first order in each
    /// does not allocate (the table works for any market without it).
    pub fn reserve_markets(&mut self, markets: usize) {
        self.sides.reserve(markets);
    }

    pub fn params(&self) -> &ExecParams {
        &self.params
    }

    /// The open slots of one market's side, in `open` order.
    #[inline]
    fn side_slots(&self, market: MarketIdx, side: Side) -> SideSlots<'_> {
        SideSlots {
            next: &self.sides.next,
            at: self.sides.first(market, side),
        }
    }

    pub fn stats(&self) -> ExecStats {
        self.stats
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Open orders in all markets (including those with a request in flight).
    #[inline]
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Open orders in one market.
    pub fn open_in(&self, market: MarketIdx) -> usize {
        self.iter_market(market).count()
    }

    /// Open orders, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Order> + '_ {
        self.open.iter().map(move |&i| &self.slots[usize::from(i)])
    }

    /// One market's open orders.
    pub fn iter_market(&self, market: MarketIdx) -> impl Iterator<Item = &Order> + '_ {
        self.iter().filter(move |o| o.market == market)
    }

    /// An order by client reference, open or recently finished.
    pub fn get(&self, client: ClientRef) -> Option<&Order> {
        self.find_client(client).map(|i| &self.slots[i])
    }

    /// Open orders whose request has gone unanswered past the timeout.
    pub fn unknown_count(&self, now_ms: u64) -> usize {
        self.iter()
            .filter(|o| o.is_unknown(now_ms, self.params.inflight_timeout_ms))
            .count()
    }

    /// Whether a resync is between [`Orders::begin_resync`] and [`Orders::end_resync`].
    pub fn resyncing(&self) -> bool {
        self.resyncing
    }

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

    fn quote_of(&self, i: usize) -> QuoteOrder {
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
        for i in self.side_slots(market, side) {
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

    // ------------------------------------------------------------------ events

    /// Applies one event; every order-related event must come through here, in ring order.
    /// `Disconnected` begins a resync and `Connected` ends it (see [`Orders::begin_resync`]).
    pub fn on_event(&mut self, body: &EventBody, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        match *body {
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
            EventBody::Disconnected => self.begin_resync(),
            EventBody::Connected => {
                self.end_resync(now_ms);
            }
            _ => {}
        }
    }

    fn on_ack(&mut self, client: ClientRef, order: OrderId, status: OrderStatus, filled: Qty, remaining: Qty, now_ms: u64) {
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
            return;
        };
        let o = &mut self.slots[i];
        if o.state == OrderState::Done {
            if o.inferred_done && status == OrderStatus::Resting {
                self.revive(i, filled, remaining);
            } else if status != OrderStatus::Resting {
                self.settle_final(i, filled);
            }
            return;
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
    }

    fn on_reject(&mut self, client: ClientRef, reason: RejectReason, now_ms: u64) {
        self.stats.rejects += 1;
        let Some(i) = (client.0 != 0).then(|| self.find_client(client)).flatten() else {
            return;
        };
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
            OrderState::Done => return,
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
    ) {
        let found = match (client.0 != 0).then(|| self.find_client(client)).flatten() {
            Some(i) => Some(i),
            None => self.find_order(order),
        };
        let Some(i) = found else {
            if status == OrderStatus::Resting && client.0 != 0 && remaining.0 > 0 {
                self.adopt(market, client, order, side, price, remaining, filled, now_ms);
            }
            return;
        };
        let timeout = self.params.inflight_timeout_ms;
        let o = &mut self.slots[i];
        if o.state == OrderState::Done {
            if o.inferred_done && status == OrderStatus::Resting {
                self.revive(i, filled, remaining);
                self.slots[i].price = price;
            } else if status != OrderStatus::Resting {
                self.settle_final(i, filled);
            }
            return;
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
    }

    fn on_fill(&mut self, client: ClientRef, order: OrderId, qty: Qty) {
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
            return;
        };
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

    fn unsettle(&mut self, i: usize) {
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

    /// A resting order of ours we did not track (a resync after a lost ack, or an earlier
    /// session's): tracked from now on, so it counts as exposure and reconcile can cancel it.
    #[allow(clippy::too_many_arguments)]
    fn adopt(
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

    fn revive(&mut self, i: usize, filled: Qty, remaining: Qty) {
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
                o.finish(true);
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

    // ------------------------------------------------------------------ requests

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
            if n == 0 && self.send_place(market, side, price, qty, now_ms, ids, sink).is_ok() {
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

    /// Cancels every open order (of one market, or all) that can be cancelled now: live ones,
    /// and cancels whose answer is overdue. Orders with another request in flight are left for
    /// a later call, once that request is answered (a create cannot be cancelled before its
    /// ack gives us its id). Idempotent: call it on every event while killed or shutting down.
    /// Returns how many orders in scope are still open.
    pub fn cancel_all(&mut self, market: Option<MarketIdx>, sink: &mut impl FnMut(CommandBody) -> bool) -> usize {
        let now_ms = self.now_ms;
        let timeout = self.params.inflight_timeout_ms;
        let mut k = 0;
        let mut remaining = 0;
        while k < self.open.len() {
            let i = usize::from(self.open[k]);
            k += 1;
            let o = &self.slots[i];
            if market.is_some_and(|m| m != o.market) {
                continue;
            }
            remaining += 1;
            let retry = o.state == OrderState::PendingCancel && o.is_unknown(now_ms, timeout);
            if (o.state == OrderState::Live || retry) && o.order.is_some() {
                self.send_cancel(i, now_ms, sink);
            }
        }
        remaining
    }

    /// Places a post-only GTC order directly (V2 modules that manage orders themselves).
    /// Returns its reference.
    #[allow(clippy::too_many_arguments)]
    pub fn place(
        &mut self,
        market: MarketIdx,
        side: Side,
        price: Price,
        qty: Qty,
        now_ms: u64,
        ids: &mut ClientIds,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> Result<ClientRef, Refusal> {
        self.now_ms = self.now_ms.max(now_ms);
        self.send_place(market, side, price, qty, now_ms, ids, sink)
    }

    /// Amends an order to `price` and total size `total` (= filled + the remaining wanted).
    pub fn amend(
        &mut self,
        client: ClientRef,
        price: Price,
        total: Qty,
        now_ms: u64,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> Result<(), Refusal> {
        let i = self.idle_order(client)?;
        self.send_amend(i, price, total, now_ms, sink)
    }

    /// Shrinks an order to `remaining`, keeping its queue priority.
    pub fn decrease(
        &mut self,
        client: ClientRef,
        remaining: Qty,
        now_ms: u64,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> Result<(), Refusal> {
        let i = self.idle_order(client)?;
        self.send_decrease(i, remaining, now_ms, sink)
    }

    /// Cancels an order (also one whose cancel has gone unanswered past the timeout).
    pub fn cancel(&mut self, client: ClientRef, now_ms: u64, sink: &mut impl FnMut(CommandBody) -> bool) -> Result<(), Refusal> {
        self.now_ms = self.now_ms.max(now_ms);
        let i = self
            .find_client(client)
            .filter(|&i| self.slots[i].is_open())
            .ok_or(Refusal::NotFound)?;
        let o = &self.slots[i];
        let retry = o.state == OrderState::PendingCancel && o.is_unknown(now_ms, self.params.inflight_timeout_ms);
        if o.state != OrderState::Live && !retry {
            return Err(Refusal::Busy);
        }
        if o.order.is_none() {
            return Err(Refusal::NoOrderId);
        }
        if self.send_cancel(i, now_ms, sink) {
            Ok(())
        } else {
            Err(Refusal::Vetoed)
        }
    }

    fn idle_order(&mut self, client: ClientRef) -> Result<usize, Refusal> {
        let i = self
            .find_client(client)
            .filter(|&i| self.slots[i].is_open())
            .ok_or(Refusal::NotFound)?;
        if self.slots[i].state != OrderState::Live {
            return Err(Refusal::Busy);
        }
        if self.slots[i].order.is_none() {
            return Err(Refusal::NoOrderId);
        }
        Ok(i)
    }

    #[allow(clippy::too_many_arguments)]
    fn send_place(
        &mut self,
        market: MarketIdx,
        side: Side,
        price: Price,
        qty: Qty,
        now_ms: u64,
        ids: &mut ClientIds,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> Result<ClientRef, Refusal> {
        if qty.0 <= 0 {
            return Err(Refusal::BadSize);
        }
        let Some(i) = self.free_slot() else {
            self.stats.full += 1;
            return Err(Refusal::Full);
        };
        let client = ids.next();
        let cmd = CommandBody::Place {
            market,
            client,
            side,
            price,
            qty,
            tif: TimeInForce::GoodTillCanceled,
            post_only: true,
        };
        if !sink(cmd) {
            return Err(Refusal::Vetoed);
        }
        self.slots[i] = Order {
            client,
            order: None,
            market,
            side,
            price,
            total: qty,
            remaining: qty,
            filled: Qty(0),
            state: OrderState::PendingNew,
            sent_ms: now_ms,
            queued_ms: now_ms,
            ..EMPTY
        };
        self.open_slot(i);
        self.stats.placed += 1;
        Ok(client)
    }

    fn send_amend(
        &mut self,
        i: usize,
        price: Price,
        total: Qty,
        now_ms: u64,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> Result<(), Refusal> {
        let o = &self.slots[i];
        if total <= o.filled {
            return Err(Refusal::BadSize);
        }
        let Some(order) = o.order else { return Err(Refusal::NoOrderId) };
        let cmd = CommandBody::Amend {
            market: o.market,
            client: o.client,
            order,
            side: o.side,
            price,
            total,
        };
        if !sink(cmd) {
            return Err(Refusal::Vetoed);
        }
        let o = &mut self.slots[i];
        o.amended_from = (o.price, o.total);
        o.state = OrderState::PendingAmend { price, total };
        o.sent_ms = now_ms;
        self.stats.amended += 1;
        Ok(())
    }

    fn send_decrease(&mut self, i: usize, remaining: Qty, now_ms: u64, sink: &mut impl FnMut(CommandBody) -> bool) -> Result<(), Refusal> {
        let o = &self.slots[i];
        if remaining.0 < 0 {
            return Err(Refusal::BadSize);
        }
        let Some(order) = o.order else { return Err(Refusal::NoOrderId) };
        let cmd = CommandBody::Decrease {
            market: o.market,
            client: o.client,
            order,
            reduce_to: remaining,
        };
        if !sink(cmd) {
            return Err(Refusal::Vetoed);
        }
        let o = &mut self.slots[i];
        o.state = OrderState::PendingDecrease { remaining };
        o.sent_ms = now_ms;
        self.stats.decreased += 1;
        Ok(())
    }

    fn send_cancel(&mut self, i: usize, now_ms: u64, sink: &mut impl FnMut(CommandBody) -> bool) -> bool {
        let o = &self.slots[i];
        let Some(order) = o.order else { return false };
        if now_ms < o.retry_after_ms {
            return false;
        }
        let cmd = CommandBody::Cancel {
            market: o.market,
            client: o.client,
            order,
        };
        if !sink(cmd) {
            return false;
        }
        let o = &mut self.slots[i];
        o.state = OrderState::PendingCancel;
        o.sent_ms = now_ms;
        self.stats.cancelled += 1;
        true
    }

    // ------------------------------------------------------------------ table

    fn find_client(&self, client: ClientRef) -> Option<usize> {
        if client.0 == 0 {
            return None;
        }
        // Open orders first: that is where nearly every event lands.
        for &i in &self.open {
            if self.slots[usize::from(i)].client == client {
                return Some(usize::from(i));
            }
        }
        self.slots.iter().position(|o| o.client == client)
    }

    fn find_order(&self, order: OrderId) -> Option<usize> {
        if order.0 == 0 {
            return None;
        }
        for &i in &self.open {
            if self.slots[usize::from(i)].order == Some(order) {
                return Some(usize::from(i));
            }
        }
        self.slots.iter().position(|o| o.order == Some(order))
    }

    /// A finished slot to reuse, oldest-reused first.
    fn free_slot(&mut self) -> Option<usize> {
        let n = self.slots.len();
        for step in 0..n {
            let i = (self.reuse + step) % n;
            if self.slots[i].state == OrderState::Done && !self.settling.contains(&(i as u16)) {
                self.reuse = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }

    /// Where slot `i` sits in `open`, if it is open.
    #[inline]
    fn open_at(&self, i: usize) -> Option<usize> {
        let k = usize::from(self.sides.pos[i]);
        (self.open.get(k) == Some(&(i as u16))).then_some(k)
    }

    fn open_slot(&mut self, i: usize) {
        if self.open_at(i).is_none() {
            let k = self.open.len();
            self.open.push(i as u16);
            let o = &self.slots[i];
            self.sides.link(i as u16, SideIndex::key(o.market, o.side), k as u16);
        }
    }

    /// Takes `open[k]` out as `swap_remove` does; the last open slot moves into its place.
    fn remove_open_at(&mut self, k: usize) {
        let i = self.open.swap_remove(k);
        self.sides.unlink(i);
        if let Some(&moved) = self.open.get(k) {
            self.sides.unlink(moved);
            let key = self.sides.key[usize::from(moved)];
            self.sides.link(moved, key, k as u16);
        }
    }

    fn close_slot(&mut self, i: usize) {
        if let Some(k) = self.open_at(i) {
            self.remove_open_at(k);
        }
        if self.slots[i].settling() && !self.settling.contains(&(i as u16)) && self.settling.len() < self.settling.capacity() {
            self.settling.push(i as u16);
        }
    }

    fn hold_for(&mut self, market: MarketIdx, side: Side, now_ms: u64, ms: u64) {
        let until = now_ms.saturating_add(ms);
        self.holds.retain(|&(_, _, t)| t > now_ms);
        if let Some(h) = self.holds.iter_mut().find(|h| h.0 == market && h.1 == side) {
            h.2 = until;
        } else if self.holds.len() < self.holds.capacity() {
            self.holds.push((market, side, until));
        }
    }

    fn held(&self, market: MarketIdx, side: Side, now_ms: u64) -> bool {
        self.holds.iter().any(|&(m, s, t)| m == market && s == side && now_ms < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::FeeRates;
    use kalshi_proto::ladder::LevelStructure;
    use proptest::prelude::*;

    /// `exposure` as it was before the side index: a scan over every open and settling order.
    fn exposure_by_scan(orders: &Orders, market: MarketIdx) -> Exposure {
        let mut e = Exposure::default();
        for &i in &orders.open {
            let o = &orders.slots[usize::from(i)];
            if o.market != market {
                continue;
            }
            let s = match o.side {
                Side::Bid => &mut e.buy,
                Side::Ask => &mut e.sell,
            };
            s.orders += 1;
            s.unbooked += o.unbooked();
            if o.state == OrderState::Live {
                s.resting += o.remaining;
            } else {
                s.in_flight += o.worst_remaining();
            }
        }
        for &i in &orders.settling {
            let o = &orders.slots[usize::from(i)];
            if o.market == market {
                let s = match o.side {
                    Side::Bid => &mut e.buy,
                    Side::Ask => &mut e.sell,
                };
                s.unbooked += o.unbooked();
                s.in_doubt += o.in_doubt;
            }
        }
        let reusable = |side: Side| {
            let mut best: Option<usize> = None;
            for &i in &orders.open {
                let i = usize::from(i);
                let o = &orders.slots[i];
                if o.market != market || o.side != side {
                    continue;
                }
                match o.state {
                    OrderState::PendingNew | OrderState::PendingAmend { .. } | OrderState::PendingDecrease { .. } => return None,
                    OrderState::Live if o.order.is_some() && best.is_none_or(|b| o.keeper_key() < orders.slots[b].keeper_key()) => {
                        best = Some(i)
                    }
                    _ => {}
                }
            }
            best
        };
        e.buy.quote = reusable(Side::Bid).map(|i| orders.quote_of(i));
        e.sell.quote = reusable(Side::Ask).map(|i| orders.quote_of(i));
        e
    }

    const MARKETS: MarketIdx = 3;

    /// The index agrees with `open`: each side's list is exactly its slots, in `open` order.
    fn check_index(orders: &Orders) -> Result<(), TestCaseError> {
        for (k, &i) in orders.open.iter().enumerate() {
            prop_assert_eq!(orders.open_at(usize::from(i)), Some(k));
        }
        for (i, o) in orders.slots.iter().enumerate() {
            prop_assert_eq!(
                orders.open_at(i).is_some(),
                orders.open.contains(&(i as u16)),
                "slot {} {:?}",
                i,
                o.state
            );
        }
        for market in 0..MARKETS {
            for side in [Side::Bid, Side::Ask] {
                let scan: Vec<usize> = orders
                    .open
                    .iter()
                    .map(|&i| usize::from(i))
                    .filter(|&i| orders.slots[i].market == market && orders.slots[i].side == side)
                    .collect();
                let indexed: Vec<usize> = orders.side_slots(market, side).collect();
                prop_assert_eq!(&indexed, &scan, "market {} {:?}", market, side);
                let mut back = Vec::new();
                let key = SideIndex::key(market, side);
                let mut at = orders.sides.tail.get(key).copied().unwrap_or(NIL);
                while at != NIL {
                    back.push(usize::from(at));
                    at = orders.sides.prev[usize::from(at)];
                }
                back.reverse();
                prop_assert_eq!(&back, &scan, "backward, market {} {:?}", market, side);
            }
            prop_assert_eq!(orders.exposure(market), exposure_by_scan(orders, market));
        }
        Ok(())
    }

    #[derive(Clone, Debug)]
    enum Op {
        Reconcile {
            market: MarketIdx,
            bid: Option<(u32, i64)>,
            ask: Option<(u32, i64)>,
        },
        Place {
            market: MarketIdx,
            ask: bool,
            cents: u32,
            qty: i64,
        },
        Ack {
            pick: usize,
            status: u8,
            filled: i64,
            remaining: i64,
            by_order: bool,
        },
        Reject {
            pick: usize,
            reason: u8,
        },
        Update {
            pick: usize,
            status: u8,
            cents: u32,
            filled: i64,
            remaining: i64,
        },
        Adopt {
            market: MarketIdx,
            ask: bool,
            seed: u64,
            remaining: i64,
        },
        Fill {
            pick: usize,
            qty: i64,
            by_order: bool,
        },
        Cancel {
            pick: usize,
        },
        Amend {
            pick: usize,
            cents: u32,
            total: i64,
        },
        Decrease {
            pick: usize,
            remaining: i64,
        },
        Disconnect,
        Connect,
        Wait {
            ms: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let market = 0..MARKETS;
        let level = proptest::option::of((1u32..99, 1i64..6));
        prop_oneof![
            3 => (market.clone(), level.clone(), level).prop_map(|(market, bid, ask)| Op::Reconcile { market, bid, ask }),
            2 => (market.clone(), any::<bool>(), 1u32..99, 1i64..6).prop_map(|(market, ask, cents, qty)| Op::Place { market, ask, cents, qty }),
            3 => (any::<usize>(), 0u8..3, 0i64..4, 0i64..6, any::<bool>())
                .prop_map(|(pick, status, filled, remaining, by_order)| Op::Ack { pick, status, filled, remaining, by_order }),
            1 => (any::<usize>(), 0u8..11).prop_map(|(pick, reason)| Op::Reject { pick, reason }),
            2 => (any::<usize>(), 0u8..3, 1u32..99, 0i64..4, 0i64..6)
                .prop_map(|(pick, status, cents, filled, remaining)| Op::Update { pick, status, cents, filled, remaining }),
            1 => (market.clone(), any::<bool>(), 0u64..1_000, 1i64..6).prop_map(|(market, ask, seed, remaining)| Op::Adopt { market, ask, seed, remaining }),
            2 => (any::<usize>(), 1i64..3, any::<bool>()).prop_map(|(pick, qty, by_order)| Op::Fill { pick, qty, by_order }),
            1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
            1 => (any::<usize>(), 1u32..99, 1i64..8).prop_map(|(pick, cents, total)| Op::Amend { pick, cents, total }),
            1 => (any::<usize>(), 0i64..5).prop_map(|(pick, remaining)| Op::Decrease { pick, remaining }),
            1 => Just(Op::Disconnect),
            1 => Just(Op::Connect),
            1 => (0u64..8_000).prop_map(|ms| Op::Wait { ms }),
        ]
    }

    fn order_id(client: ClientRef) -> OrderId {
        OrderId(u128::from(client.0) + 1)
    }

    fn status(code: u8) -> OrderStatus {
        [OrderStatus::Resting, OrderStatus::Canceled, OrderStatus::Executed][usize::from(code % 3)]
    }

    fn side(ask: bool) -> Side {
        if ask {
            Side::Ask
        } else {
            Side::Bid
        }
    }

    fn run(ops: &[Op], reserve: bool) -> Result<(), TestCaseError> {
        let params = ExecParams {
            min_size_change: Qty(100),
            min_price_move_ticks: 1,
            inflight_timeout_ms: 5_000,
            reject_backoff_ms: 100,
        };
        // Few slots, so slots are reused and the table fills up.
        let mut orders = Orders::new(10, params);
        if reserve {
            orders.reserve_markets(usize::from(MARKETS) - 1);
        }
        let ladder = MarketLadder::from_structure(LevelStructure::LinearCent, FeeRates::NONE);
        let mut ids = ClientIds::new(7);
        let mut now = 1_000u64;
        let mut sink = |_: CommandBody| true;
        for op in ops {
            now += 1;
            match *op {
                Op::Reconcile { market, bid, ask } => {
                    let level = |l: Option<(u32, i64)>| l.map(|(c, q)| (Price(c * 100), Qty(q * 100)));
                    let desired = Desired {
                        bid: level(bid),
                        ask: level(ask),
                    };
                    // A rehearsal (even a minute ahead) changes nothing the real decision sees.
                    let (mut twin, mut twin_ids) = (orders.clone(), ids.clone());
                    let mut rehearsed = 0;
                    for later in [0, 60_000] {
                        orders.rehearse(market, desired, &ladder, now + later, &ids, &mut |_| rehearsed += 1);
                    }
                    prop_assert_eq!(twin.stats(), orders.stats());
                    let (mut sent, mut twin_sent) = (Vec::new(), Vec::new());
                    orders.reconcile(market, desired, &ladder, now, &mut ids, &mut |c| {
                        sent.push(c);
                        sink(c)
                    });
                    twin.reconcile(market, desired, &ladder, now, &mut twin_ids, &mut |c| {
                        twin_sent.push(c);
                        true
                    });
                    prop_assert_eq!(&sent, &twin_sent);
                    prop_assert_eq!(twin.stats(), orders.stats());
                    prop_assert!(rehearsed >= sent.len(), "the rehearsal saw at least what was sent");
                }
                Op::Place { market, ask, cents, qty } => {
                    let _ = orders.place(market, side(ask), Price(cents * 100), Qty(qty * 100), now, &mut ids, &mut sink);
                }
                Op::Adopt {
                    market,
                    ask,
                    seed,
                    remaining,
                } => {
                    let client = ClientRef((7u64 << 32) | (1_000_000 + seed));
                    orders.on_event(
                        &EventBody::OrderUpdate {
                            market,
                            client,
                            order: order_id(client),
                            status: OrderStatus::Resting,
                            side: side(ask),
                            price: Price(5_000),
                            remaining: Qty(remaining * 100),
                            filled: Qty(0),
                        },
                        now,
                    );
                }
                Op::Disconnect => orders.on_event(&EventBody::Disconnected, now),
                Op::Connect => orders.on_event(&EventBody::Connected, now),
                Op::Wait { ms } => now += ms,
                ref other => {
                    let pick = match *other {
                        Op::Ack { pick, .. }
                        | Op::Reject { pick, .. }
                        | Op::Update { pick, .. }
                        | Op::Fill { pick, .. }
                        | Op::Cancel { pick }
                        | Op::Amend { pick, .. }
                        | Op::Decrease { pick, .. } => pick,
                        _ => unreachable!(),
                    };
                    // Any order the table has seen, open or finished.
                    let seen = orders.slots.iter().filter(|o| o.client.0 != 0).count();
                    if seen == 0 {
                        continue;
                    }
                    let o = *orders.slots.iter().filter(|o| o.client.0 != 0).nth(pick % seen).unwrap();
                    let (client, market) = (o.client, o.market);
                    match *other {
                        Op::Ack {
                            status: s,
                            filled,
                            remaining,
                            by_order,
                            ..
                        } => orders.on_event(
                            &EventBody::OrderAck {
                                market,
                                client: if by_order { ClientRef(0) } else { client },
                                order: order_id(client),
                                status: status(s),
                                filled: Qty(filled * 100),
                                remaining: Qty(remaining * 100),
                            },
                            now,
                        ),
                        Op::Reject { reason, .. } => {
                            let reasons = [
                                RejectReason::InvalidPrice,
                                RejectReason::InvalidOrder,
                                RejectReason::InsufficientBalance,
                                RejectReason::PostOnlyCross,
                                RejectReason::FillOrKillInsufficient,
                                RejectReason::MarketClosed,
                                RejectReason::TradingPaused,
                                RejectReason::RateLimited,
                                RejectReason::NotFound,
                                RejectReason::ServerError,
                                RejectReason::Other,
                            ];
                            orders.on_event(
                                &EventBody::OrderReject {
                                    market,
                                    client,
                                    reason: reasons[usize::from(reason) % reasons.len()],
                                    http_status: 400,
                                },
                                now,
                            )
                        }
                        Op::Update {
                            status: s,
                            cents,
                            filled,
                            remaining,
                            ..
                        } => orders.on_event(
                            &EventBody::OrderUpdate {
                                market,
                                client,
                                order: order_id(client),
                                status: status(s),
                                side: o.side,
                                price: Price(cents * 100),
                                remaining: Qty(remaining * 100),
                                filled: Qty(filled * 100),
                            },
                            now,
                        ),
                        Op::Fill { qty, by_order, .. } => orders.on_event(
                            &EventBody::Fill {
                                market,
                                client: if by_order { ClientRef(0) } else { client },
                                order: order_id(client),
                                side: o.side,
                                yes_price: o.price,
                                qty: Qty(qty * 100),
                                is_taker: false,
                                fee: crate::event::Money(0),
                                post_position: Qty(0),
                            },
                            now,
                        ),
                        Op::Cancel { .. } => {
                            let _ = orders.cancel(client, now, &mut sink);
                        }
                        Op::Amend { cents, total, .. } => {
                            let _ = orders.amend(client, Price(cents * 100), Qty(total * 100), now, &mut sink);
                        }
                        Op::Decrease { remaining, .. } => {
                            let _ = orders.decrease(client, Qty(remaining * 100), now, &mut sink);
                        }
                        _ => unreachable!(),
                    }
                }
            }
            check_index(&orders)?;
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn side_index_matches_a_scan_of_open_orders(ops in proptest::collection::vec(op(), 1..120), reserve in any::<bool>()) {
            run(&ops, reserve)?;
        }
    }

    #[test]
    fn moved_slot_keeps_open_order_within_its_side() {
        // Three bids in market 0 and an ask in market 1; closing the first bid moves the ask
        // (last in `open`) to its place, and closing the second moves the third bid forward:
        // the side list must follow `open` each time.
        let mut orders = Orders::new(8, ExecParams::default());
        let mut ids = ClientIds::new(1);
        let mut sink = |_: CommandBody| true;
        let mut refs = Vec::new();
        for (market, side) in [(0, Side::Bid), (0, Side::Bid), (0, Side::Bid), (1, Side::Ask)] {
            refs.push(orders.place(market, side, Price(5_000), Qty(100), 1, &mut ids, &mut sink).unwrap());
        }
        let reject = |orders: &mut Orders, client: ClientRef| {
            orders.on_event(
                &EventBody::OrderReject {
                    market: 0,
                    client,
                    reason: RejectReason::Other,
                    http_status: 400,
                },
                2,
            )
        };
        reject(&mut orders, refs[0]);
        assert_eq!(orders.open, [3, 1, 2]);
        assert_eq!(orders.side_slots(0, Side::Bid).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(orders.side_slots(1, Side::Ask).collect::<Vec<_>>(), [3]);
        reject(&mut orders, refs[1]);
        assert_eq!(orders.open, [3, 2]);
        assert_eq!(orders.side_slots(0, Side::Bid).collect::<Vec<_>>(), [2]);
        assert_eq!(orders.exposure(0), exposure_by_scan(&orders, 0));
        // A market the index was never sized for works too.
        orders.place(9, Side::Ask, Price(5_000), Qty(100), 3, &mut ids, &mut sink).unwrap();
        assert_eq!(orders.side_slots(9, Side::Ask).count(), 1);
        assert_eq!(orders.side_slots(8, Side::Ask).count(), 0);
    }
}
