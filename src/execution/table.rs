//! [`Orders`]: the fixed slot array our orders live in, its lookups, and the bookkeeping of which
//! slots are open, settling (finished with fills still in transit) or free for reuse.
//!
//! Finished orders stay in their slot (to absorb late fills and acks) until it is reused,
//! oldest first, so nothing allocates after [`Orders::new`].

use super::events::{EarlyFill, EARLY_FILLS};
use super::order::{Order, OrderState, EMPTY};
use super::side_index::{SideIndex, SideSlots};
use super::ExecParams;
use crate::event::{ClientRef, MarketIdx, OrderId, Side};

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

/// Our orders, as far as the exchange has told us, in a fixed-capacity table.
#[derive(Clone)]
pub struct Orders {
    pub(super) params: ExecParams,
    pub(super) slots: Box<[Order]>,
    /// Indices of open (not `Done`) slots; its capacity is the slot count.
    pub(super) open: Vec<u16>,
    /// The open slots of each market and side, so a decision reads its own one or two orders
    /// instead of filtering every open order.
    pub(super) sides: SideIndex,
    /// Finished slots whose fills have not all arrived as `Fill` events yet: still exposure,
    /// and not reused until they have.
    pub(super) settling: Vec<u16>,
    /// Round-robin cursor for reusing finished slots, so the newest finished orders stay
    /// around longest for late events.
    reuse: usize,
    /// (market, side, until_ms): sides backing off after a reject.
    holds: Vec<(MarketIdx, Side, u64)>,
    pub(super) early: [Option<EarlyFill>; EARLY_FILLS],
    pub(super) early_next: usize,
    pub(super) resyncing: bool,
    /// The latest time any call gave us, for calls that take none.
    pub(super) now_ms: u64,
    pub(super) stats: ExecStats,
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
    pub(super) fn side_slots(&self, market: MarketIdx, side: Side) -> SideSlots<'_> {
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

    pub(super) fn find_client(&self, client: ClientRef) -> Option<usize> {
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

    pub(super) fn find_order(&self, order: OrderId) -> Option<usize> {
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
    pub(super) fn free_slot(&mut self) -> Option<usize> {
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
    pub(super) fn open_at(&self, i: usize) -> Option<usize> {
        let k = usize::from(self.sides.pos[i]);
        (self.open.get(k) == Some(&(i as u16))).then_some(k)
    }

    pub(super) fn open_slot(&mut self, i: usize) {
        if self.open_at(i).is_none() {
            let k = self.open.len();
            self.open.push(i as u16);
            let o = &self.slots[i];
            self.sides.link(i as u16, SideIndex::key(o.market, o.side), k as u16);
        }
    }

    /// Takes `open[k]` out as `swap_remove` does; the last open slot moves into its place.
    pub(super) fn remove_open_at(&mut self, k: usize) {
        let i = self.open.swap_remove(k);
        self.sides.unlink(i);
        if let Some(&moved) = self.open.get(k) {
            self.sides.unlink(moved);
            let key = self.sides.key[usize::from(moved)];
            self.sides.link(moved, key, k as u16);
        }
    }

    pub(super) fn close_slot(&mut self, i: usize) {
        if let Some(k) = self.open_at(i) {
            self.remove_open_at(k);
        }
        if self.slots[i].settling() && !self.settling.contains(&(i as u16)) && self.settling.len() < self.settling.capacity() {
            self.settling.push(i as u16);
        }
    }

    pub(super) fn hold_for(&mut self, market: MarketIdx, side: Side, now_ms: u64, ms: u64) {
        let until = now_ms.saturating_add(ms);
        self.holds.retain(|&(_, _, t)| t > now_ms);
        if let Some(h) = self.holds.iter_mut().find(|h| h.0 == market && h.1 == side) {
            h.2 = until;
        } else if self.holds.len() < self.holds.capacity() {
            self.holds.push((market, side, until));
        }
    }

    pub(super) fn held(&self, market: MarketIdx, side: Side, now_ms: u64) -> bool {
        self.holds.iter().any(|&(m, s, t)| m == market && s == side && now_ms < t)
    }
}
