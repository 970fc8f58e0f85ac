//! Pre-trade risk: a clamp on desired quotes, a final gate on every command, and the kill switch.
//!
//! - [`Risk::clamp`] cuts a market's desired quote so that the worst case, every resting and
//!   in-flight order on a side filling, keeps the position within `±max_position`, and each
//!   quote within `max_order_qty`. A side that would have nothing left is dropped.
//! - [`Risk::check`] gates each command [`crate::execution::Orders::reconcile`] produces: order
//!   size, the price band around a reference price, the open-order count, the position limit
//!   again (defence in depth), and the kill state. Cancels, decreases and resyncs always pass:
//!   they only ever reduce risk.
//! - The kill switch trips on stale data (no market data for `stale_after_ms` while quoting),
//!   on a reject storm (`max_rejects` within `reject_window_ms`), on `Disconnected`, or by hand.
//!   Once tripped, `clamp` returns no quotes and `check` refuses every place and amend; the
//!   strategy cancels everything ([`crate::execution::Orders::cancel_all`]).
//!
//! Re-arming, per reason (several can be tripped at once; the switch is off only when none is):
//! - `Disconnected`: re-arms once both a `Connected` and a fresh snapshot (`BookSnapshotEnd`)
//!   have arrived since the disconnect, in either order (the io thread resubscribes, which
//!   delivers snapshots, then resyncs orders and positions, then says `Connected`).
//! - `StaleData`: re-arms on a fresh snapshot after the trip while connected (the io thread
//!   answers a silent feed by reconnecting or re-snapshotting).
//! - `RejectStorm`, `Manual`, `Shutdown`: never by themselves; an operator calls [`Risk::clear`].
//!
//! Rejects that count toward a storm: every [`RejectReason`] except `PostOnlyCross` (the book
//! moved under a passive order, routine in a fast market), `NotFound` (a cancel racing a
//! fill) and `RateLimited` (pacing's business: the io thread's token bucket and execution's
//! longer back-off slow the requests down; killing the quotes would not). `WsError`s do not count: they concern subscriptions, which the io thread retries.

use crate::event::{CommandBody, EventBody, Feed, Price, Qty, RejectReason, Side};
use crate::execution::{Desired, Exposure};
use crate::ladder::MarketLadder;
use std::fmt;

/// Limits; [`RiskLimits::validate`] before use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RiskLimits {
    /// Largest net position per market, long YES or long NO, counting every open order filling.
    pub max_position: Qty,
    /// Largest remaining size of one order.
    pub max_order_qty: Qty,
    /// Places and amends must be within this many ladder ticks of the reference price.
    pub price_band_ticks: u16,
    /// Most open orders across all markets.
    pub max_open_orders: u16,
    /// This many counted rejects within `reject_window_ms` trips the kill switch.
    pub max_rejects: u16,
    pub reject_window_ms: u64,
    /// No market data for this long while quoting trips the kill switch.
    pub stale_after_ms: u64,
}

impl Default for RiskLimits {
    fn default() -> Self {
        RiskLimits {
            max_position: Qty::from_contracts(50),
            max_order_qty: Qty::from_contracts(10),
            price_band_ticks: 20,
            max_open_orders: 40,
            max_rejects: 20,
            reject_window_ms: 10_000,
            stale_after_ms: 30_000,
        }
    }
}

/// A bad limit: the key (as in the `[risk]` config section) and how to fix it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitError {
    pub key: &'static str,
    pub fix: &'static str,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.fix)
    }
}

impl std::error::Error for LimitError {}

impl RiskLimits {
    pub fn validate(&self) -> Result<(), LimitError> {
        let bad = |key, fix| Err(LimitError { key, fix });
        if self.max_position.0 <= 0 {
            return bad(
                "max_position",
                "must be > 0 contracts; set it to the largest net YES or NO position to hold per market, e.g. 50",
            );
        }
        if self.max_order_qty.0 <= 0 {
            return bad(
                "max_order_size",
                "must be > 0 contracts; set it to the largest single order, e.g. 10",
            );
        }
        if self.max_order_qty > self.max_position {
            return bad(
                "max_order_size",
                "is above max_position, so the position limit, not the order limit, would bind; lower max_order_size to at most max_position",
            );
        }
        if self.price_band_ticks == 0 {
            return bad(
                "price_band_ticks",
                "must be >= 1; set it to how many ticks from the mid an order may sit, e.g. 20",
            );
        }
        if self.max_open_orders < 2 {
            return bad(
                "max_open_orders",
                "must be >= 2 (a bid and an ask); allow two per quoted market plus slack, e.g. 40",
            );
        }
        if self.max_rejects == 0 {
            return bad(
                "max_rejects",
                "must be >= 1; e.g. 20 rejects within reject_window_ms trips the kill switch",
            );
        }
        if self.reject_window_ms == 0 {
            return bad("reject_window_ms", "must be > 0 ms; e.g. 10000");
        }
        if self.stale_after_ms == 0 {
            return bad(
                "stale_after_ms",
                "must be > 0 ms; set it above the quietest expected gap between market data messages, e.g. 30000",
            );
        }
        Ok(())
    }
}

/// Why the kill switch tripped. The discriminant is the logger's `KillSwitch` reason code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum KillReason {
    Manual = 1,
    StaleData = 2,
    Disconnected = 3,
    RejectStorm = 4,
    Shutdown = 5,
}

impl KillReason {
    pub const ALL: [KillReason; 5] = [
        KillReason::Manual,
        KillReason::StaleData,
        KillReason::Disconnected,
        KillReason::RejectStorm,
        KillReason::Shutdown,
    ];

    #[inline]
    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn from_code(code: u16) -> Option<KillReason> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            KillReason::Manual => "manual",
            KillReason::StaleData => "stale_data",
            KillReason::Disconnected => "disconnected",
            KillReason::RejectStorm => "reject_storm",
            KillReason::Shutdown => "shutdown",
        }
    }

    /// Whether the switch re-arms by itself for this reason (see the module docs).
    pub fn rearms_automatically(self) -> bool {
        matches!(self, KillReason::StaleData | KillReason::Disconnected)
    }

    #[inline]
    fn bit(self) -> u8 {
        1 << (self as u16)
    }
}

/// Why [`Risk::check`] refused a command. The discriminant is the logger's `RiskBlock` code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum RiskBlock {
    Killed = 1,
    OrderSize = 2,
    PriceBand = 3,
    /// No reference price to measure the band from (no mid): nothing may be placed.
    NoReference = 4,
    OffLadder = 5,
    OpenOrders = 6,
    Position = 7,
}

impl RiskBlock {
    pub const ALL: [RiskBlock; 7] = [
        RiskBlock::Killed,
        RiskBlock::OrderSize,
        RiskBlock::PriceBand,
        RiskBlock::NoReference,
        RiskBlock::OffLadder,
        RiskBlock::OpenOrders,
        RiskBlock::Position,
    ];

    #[inline]
    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn from_code(code: u16) -> Option<RiskBlock> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            RiskBlock::Killed => "killed",
            RiskBlock::OrderSize => "order_size",
            RiskBlock::PriceBand => "price_band",
            RiskBlock::NoReference => "no_reference",
            RiskBlock::OffLadder => "off_ladder",
            RiskBlock::OpenOrders => "open_orders",
            RiskBlock::Position => "position",
        }
    }
}

/// Whether a reject counts toward a reject storm (see the module docs).
#[inline]
pub fn counts_as_error(reason: RejectReason) -> bool {
    !matches!(
        reason,
        RejectReason::PostOnlyCross | RejectReason::NotFound | RejectReason::RateLimited
    )
}

/// Risk state: limits, the kill switch and the recent rejects.
pub struct Risk {
    limits: RiskLimits,
    /// One bit per tripped [`KillReason`].
    tripped: u8,
    /// The reason that tripped first among those still tripped, for reports.
    first: Option<KillReason>,
    killed_at_ms: u64,
    last_data_ms: u64,
    /// The first clock tick, the stale timer's origin before any data arrives.
    clock_origin_ms: Option<u64>,
    disconnected: bool,
    connected_since_trip: bool,
    snapshot_since_trip: bool,
    /// Times of the last `max_rejects` counted rejects, a ring.
    rejects: Box<[u64]>,
    reject_next: usize,
    reject_len: usize,
    blocks: [u64; RiskBlock::ALL.len() + 1],
    trips: u64,
}

impl Risk {
    /// Limits are expected to be validated; out-of-range ones are bounded rather than trusted.
    pub fn new(limits: RiskLimits) -> Risk {
        Risk {
            limits,
            tripped: 0,
            first: None,
            killed_at_ms: 0,
            last_data_ms: 0,
            clock_origin_ms: None,
            disconnected: false,
            connected_since_trip: false,
            snapshot_since_trip: false,
            rejects: vec![0; usize::from(limits.max_rejects.max(1))].into_boxed_slice(),
            reject_next: 0,
            reject_len: 0,
            blocks: [0; RiskBlock::ALL.len() + 1],
            trips: 0,
        }
    }

    pub fn limits(&self) -> &RiskLimits {
        &self.limits
    }

    /// The reason the switch is off, `None` while armed.
    #[inline]
    pub fn killed(&self) -> Option<KillReason> {
        if self.tripped == 0 {
            None
        } else {
            self.first
                .filter(|r| self.is_tripped(*r))
                .or_else(|| KillReason::ALL.into_iter().find(|r| self.is_tripped(*r)))
        }
    }

    #[inline]
    pub fn is_tripped(&self, reason: KillReason) -> bool {
        self.tripped & reason.bit() != 0
    }

    /// When the current kill began (meaningless while armed).
    pub fn killed_at_ms(&self) -> u64 {
        self.killed_at_ms
    }

    /// How many times the switch went from armed to tripped.
    pub fn trips(&self) -> u64 {
        self.trips
    }

    /// Commands refused so far, per reason.
    pub fn blocks(&self, reason: RiskBlock) -> u64 {
        self.blocks[usize::from(reason.code())]
    }

    /// Trips the switch. Returns true if it was armed before.
    pub fn kill(&mut self, reason: KillReason, now_ms: u64) -> bool {
        let was_armed = self.tripped == 0;
        if was_armed {
            self.first = Some(reason);
            self.killed_at_ms = now_ms;
            self.trips += 1;
        }
        self.tripped |= reason.bit();
        match reason {
            KillReason::StaleData => self.snapshot_since_trip = false,
            KillReason::Disconnected => {
                self.connected_since_trip = false;
                self.snapshot_since_trip = false;
            }
            _ => {}
        }
        was_armed
    }

    /// Operator re-arm of one reason (the only way out of `Manual`, `Shutdown` and
    /// `RejectStorm`). Clearing `RejectStorm` also forgets the recent rejects.
    /// Returns whether the switch is armed afterwards.
    pub fn clear(&mut self, reason: KillReason) -> bool {
        self.tripped &= !reason.bit();
        if reason == KillReason::RejectStorm {
            self.reject_len = 0;
        }
        self.tripped == 0
    }

    /// Feeds one event. Returns the reason if this event tripped the switch from armed.
    pub fn on_event(&mut self, body: &EventBody, now_ms: u64) -> Option<KillReason> {
        match *body {
            EventBody::OrderReject { reason, .. } => {
                if counts_as_error(reason) && self.record_reject(now_ms) {
                    return self.trip(KillReason::RejectStorm, now_ms);
                }
            }
            // Only Kalshi's feed carries the data and orders risk watches over.
            EventBody::Disconnected { feed: Feed::Kalshi } => {
                self.disconnected = true;
                return self.trip(KillReason::Disconnected, now_ms);
            }
            EventBody::Connected { feed: Feed::Kalshi } => {
                self.disconnected = false;
                self.connected_since_trip = true;
                self.last_data_ms = self.last_data_ms.max(now_ms);
                self.try_rearm();
            }
            EventBody::BookSnapshotEnd { .. } => {
                self.last_data_ms = self.last_data_ms.max(now_ms);
                self.snapshot_since_trip = true;
                self.try_rearm();
            }
            EventBody::BookClear { .. }
            | EventBody::BookLevel { .. }
            | EventBody::BookDelta { .. }
            | EventBody::Trade { .. }
            | EventBody::Ticker { .. }
            | EventBody::Lifecycle { .. }
            | EventBody::Fill { .. }
            | EventBody::OrderUpdate { .. }
            | EventBody::Position { .. }
            | EventBody::Subscribed { .. } => self.last_data_ms = self.last_data_ms.max(now_ms),
            // Another feed's data says nothing about Kalshi's: it neither feeds the stale-data
            // guard nor, when it stops, trips the switch.
            EventBody::OrderAck { .. }
            | EventBody::Stale { .. }
            | EventBody::WsError { .. }
            | EventBody::Oracle { .. }
            | EventBody::Connected { feed: Feed::Oracle }
            | EventBody::Disconnected { feed: Feed::Oracle } => {}
        }
        None
    }

    /// Periodic check of data freshness. `newest_data_ms` is the caller's own newest market
    /// data time (0 if none); `quoting` whether any order is open or wanted. Returns the reason
    /// if this call tripped the switch from armed.
    pub fn on_clock(&mut self, now_ms: u64, newest_data_ms: u64, quoting: bool) -> Option<KillReason> {
        let origin = *self.clock_origin_ms.get_or_insert(now_ms);
        let newest = self.last_data_ms.max(newest_data_ms).max(origin);
        if quoting && !self.is_tripped(KillReason::StaleData) && now_ms.saturating_sub(newest) >= self.limits.stale_after_ms {
            return self.trip(KillReason::StaleData, now_ms);
        }
        None
    }

    fn trip(&mut self, reason: KillReason, now_ms: u64) -> Option<KillReason> {
        self.kill(reason, now_ms).then_some(reason)
    }

    /// Records a counted reject; true when the last `max_rejects` all fell within the window.
    fn record_reject(&mut self, now_ms: u64) -> bool {
        let n = self.rejects.len();
        self.rejects[self.reject_next] = now_ms;
        self.reject_next = (self.reject_next + 1) % n;
        self.reject_len = (self.reject_len + 1).min(n);
        if self.reject_len < n {
            return false;
        }
        // The ring is full: the slot about to be overwritten holds the oldest of the last n.
        let oldest = self.rejects[self.reject_next];
        now_ms.saturating_sub(oldest) < self.limits.reject_window_ms
    }

    fn try_rearm(&mut self) {
        if self.is_tripped(KillReason::Disconnected) && self.connected_since_trip && self.snapshot_since_trip && !self.disconnected {
            self.tripped &= !KillReason::Disconnected.bit();
        }
        if self.is_tripped(KillReason::StaleData) && self.snapshot_since_trip && !self.disconnected {
            self.tripped &= !KillReason::StaleData.bit();
        }
    }

    /// Cuts a market's desired quote to the limits (see the module docs). `exposure` is the
    /// market's [`crate::execution::Orders::exposure`]: the side's reusable quote order is not
    /// counted against the side, since the desired size replaces it.
    // Inlined (as `check`) so the `Exposure` taken by value is read in place rather than
    // copied and read back at another width, which stalled on store forwarding.
    #[inline]
    pub fn clamp(&self, desired: Desired, position: Qty, exposure: Exposure) -> Desired {
        if self.tripped != 0 {
            return Desired::NONE;
        }
        let max = self.limits.max_position.0;
        let bid_room = max - position.0 - exposure.buy.besides_quote().0;
        let ask_room = max + position.0 - exposure.sell.besides_quote().0;
        Desired {
            bid: desired.bid.and_then(|l| self.cut(l, bid_room)),
            ask: desired.ask.and_then(|l| self.cut(l, ask_room)),
        }
    }

    fn cut(&self, (price, qty): (Price, Qty), room: i64) -> Option<(Price, Qty)> {
        let mut q = qty.0.min(room).min(self.limits.max_order_qty.0);
        if q < qty.0 && qty.0 % 100 == 0 {
            // A whole-contract quote stays whole when cut: fractional counts are not
            // tradable on every market.
            q = q.div_euclid(100) * 100;
        }
        (q > 0).then_some((price, Qty(q)))
    }

    /// Whether `price` is within `price_band_ticks` of `reference`: the strategy drops a side
    /// outside the band before diffing, so [`Risk::check`] stays a last resort rather than a
    /// filter that refuses the same amend on every event.
    pub fn within_band(&self, price: Price, reference: Price, ladder: &MarketLadder) -> bool {
        match ladder.tick(price) {
            Some(at) => ticks_from(ladder, usize::from(at.0), reference) <= usize::from(self.limits.price_band_ticks),
            None => false,
        }
    }

    /// The final gate for one command. `reference` is the price the band is measured from
    /// (mid or fair value); `position` the market's position; `exposure` the market's
    /// exposure before the command; `open_orders` the open orders across all markets,
    /// including places already sent in this decision.
    #[inline]
    pub fn check(
        &mut self,
        cmd: &CommandBody,
        reference: Option<Price>,
        ladder: &MarketLadder,
        position: Qty,
        exposure: Exposure,
        open_orders: usize,
    ) -> Result<(), RiskBlock> {
        let r = self.verdict(cmd, reference, ladder, position, exposure, open_orders);
        if let Err(b) = r {
            self.blocks[usize::from(b.code())] += 1;
        }
        r
    }

    /// [`check`](Self::check) without counting a block: for rehearsals, which must leave the
    /// counters as they were.
    #[inline]
    pub fn verdict(
        &self,
        cmd: &CommandBody,
        reference: Option<Price>,
        ladder: &MarketLadder,
        position: Qty,
        exposure: Exposure,
        open_orders: usize,
    ) -> Result<(), RiskBlock> {
        // (side, price, new remaining, added worst-case exposure, adds an order)
        let (side, price, size, adds, new_order) = match *cmd {
            CommandBody::Cancel { .. } | CommandBody::CancelAll | CommandBody::Decrease { .. } | CommandBody::Resync { .. } => {
                return Ok(())
            }
            CommandBody::Place { side, price, qty, .. } => (side, price, qty.0, qty.0, true),
            CommandBody::Amend {
                client,
                side,
                price,
                total,
                ..
            } => {
                // Only the side's quote order is known here; any other amend is judged as if
                // nothing of it had filled and it were new exposure (the strictest reading).
                let (filled, before) = match exposure.side(side).quote {
                    Some(q) if q.client == client => (q.filled.0, q.remaining.0),
                    _ => (0, 0),
                };
                let after = total.0 - filled;
                (side, price, after, (after - before).max(0), false)
            }
        };
        if self.tripped != 0 {
            return Err(RiskBlock::Killed);
        }
        if size <= 0 || size > self.limits.max_order_qty.0 {
            return Err(RiskBlock::OrderSize);
        }
        let Some(at) = ladder.tick(price) else {
            return Err(RiskBlock::OffLadder);
        };
        let Some(reference) = reference else {
            return Err(RiskBlock::NoReference);
        };
        if ticks_from(ladder, usize::from(at.0), reference) > usize::from(self.limits.price_band_ticks) {
            return Err(RiskBlock::PriceBand);
        }
        if new_order && open_orders >= usize::from(self.limits.max_open_orders) {
            return Err(RiskBlock::OpenOrders);
        }
        if adds > 0 {
            let max = self.limits.max_position.0;
            let worst = exposure.side(side).worst().0 + adds;
            let breach = match side {
                Side::Bid => position.0 + worst > max,
                Side::Ask => position.0 - worst < -max,
            };
            if breach {
                return Err(RiskBlock::Position);
            }
        }
        Ok(())
    }
}

/// Ladder ticks between the price at index `at` and `reference`; a reference between two
/// ladder prices is measured from the neighbour on the price's side (so both touches around
/// a half-tick mid are 0 away).
fn ticks_from(ladder: &MarketLadder, at: usize, reference: Price) -> usize {
    if let Some(r) = ladder.tick(reference) {
        return at.abs_diff(r.index());
    }
    // A table look-up: the band check runs for both quote sides and every command, and a
    // mid between two ticks (a one-tick spread) is the common case.
    let above = ladder.ticks().count_below(reference);
    if at >= above {
        at - above
    } else {
        above - 1 - at
    }
}
