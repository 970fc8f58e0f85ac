//! The public order book of each market, as dense per-side arrays over its tick ladder.
//!
//! Kalshi shows bids only: YES bids and NO bids. The io thread converts a NO bid at p into a YES
//! ask at 1 - p before the event reaches us, so this book holds YES bids and YES asks on one
//! ladder and the best ask is simply the lowest ask. It holds the exchange's aggregate sizes only,
//! which include our own resting orders; those orders themselves are tracked by another module,
//! and the `own` flag of each delta is handed back so the queue estimator can tell our changes
//! from everyone else's and subtract our size where it matters.
//!
//! Each side is a `Qty` per ladder tick plus a bitmap of non-empty ticks, both allocated once.
//! The best tick is cached, so reading it is O(1); when the best level empties, the next one is
//! found with `leading_zeros`/`trailing_zeros` over at most 16 words (999 ticks).
//!
//! Integrity: anything the book cannot trust (an off-ladder price, a level going negative, a
//! crossed book, a delta with no snapshot in force, a snapshot event out of order, a feed gap)
//! makes the book `Stale` exactly once, and the caller must ask for a snapshot. Until a new
//! snapshot completes, book events are dropped and the levels must not be used for trading.

use crate::event::{EventBody, MarketIdx, Price, Qty, Side};
use crate::ladder::{MarketLadder, Tick};

const NONE: u16 = u16::MAX;

/// Where the book is in the snapshot/delta cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookState {
    /// Built, no snapshot seen yet.
    Init,
    /// Between `BookClear` and `BookSnapshotEnd`.
    Building,
    /// A snapshot completed and every delta since applied cleanly.
    Live,
    /// Untrusted until the next complete snapshot.
    Stale,
}

/// Why the book stopped trusting itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Integrity {
    /// A delta or snapshot level at a price that is not on the market's ladder.
    OffLadder,
    /// A delta would take a level below zero, or a snapshot level is negative.
    NegativeLevel,
    /// A level would overflow `Qty`.
    Overflow,
    /// Best bid >= best ask after a delta or at the end of a snapshot.
    Crossed,
    /// A delta arrived with no complete snapshot in force (before the first, or mid-snapshot).
    NoSnapshot,
    /// A snapshot level or end without the `BookClear` that starts a snapshot.
    SnapshotOutOfOrder,
    /// The feed reported a sequence gap or a dead subscription (`EventBody::Stale`).
    FeedGap,
}

/// What applying one event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// A delta changed one level. `level` is the level's new total, `own` is the delta's flag
    /// passed through for the queue estimator, `top_changed` says the best price or its size moved.
    Delta {
        side: Side,
        tick: Tick,
        level: Qty,
        own: bool,
        top_changed: bool,
    },
    /// A snapshot step (clear or level) was taken; the book is not live yet.
    Building,
    /// The snapshot completed cleanly; the book is live.
    Live,
    /// The book is already stale and waiting for a snapshot; the event was ignored.
    Dropped,
    /// This event made the book stale: the caller must request a resync (`Command::Resync`).
    /// Reported once per stale spell, so a burst of bad events costs one resync. (For `FeedGap`
    /// the io thread may already have asked; a second snapshot request is harmless.)
    Stale(Integrity),
}

#[derive(Clone, Debug)]
struct Levels {
    qty: Box<[Qty]>,
    occupied: Box<[u64]>,
    /// Highest occupied tick for bids, lowest for asks; `NONE` when the side is empty.
    best: u16,
}

impl Levels {
    fn new(len: usize) -> Levels {
        Levels {
            qty: vec![Qty::ZERO; len].into_boxed_slice(),
            occupied: vec![0; len.div_ceil(64)].into_boxed_slice(),
            best: NONE,
        }
    }

    #[inline]
    fn set(&mut self, i: usize) {
        self.occupied[i / 64] |= 1 << (i % 64);
    }

    #[inline]
    fn unset(&mut self, i: usize) {
        self.occupied[i / 64] &= !(1 << (i % 64));
    }

    /// The highest occupied tick <= `i`, or `NONE`.
    #[inline]
    fn highest_at_or_below(&self, i: usize) -> u16 {
        let mut w = i / 64;
        // Bits 0..=i%64; the double shift keeps bit 63 from overflowing the shift.
        let mut bits = self.occupied[w] & ((1u64 << (i % 64)) << 1).wrapping_sub(1);
        loop {
            if bits != 0 {
                return (w * 64 + 63 - bits.leading_zeros() as usize) as u16;
            }
            if w == 0 {
                return NONE;
            }
            w -= 1;
            bits = self.occupied[w];
        }
    }

    /// The lowest occupied tick >= `i`, or `NONE`.
    #[inline]
    fn lowest_at_or_above(&self, i: usize) -> u16 {
        let mut w = i / 64;
        if w >= self.occupied.len() {
            return NONE;
        }
        let mut bits = self.occupied[w] & (!0u64 << (i % 64));
        loop {
            if bits != 0 {
                return (w * 64 + bits.trailing_zeros() as usize) as u16;
            }
            w += 1;
            if w == self.occupied.len() {
                return NONE;
            }
            bits = self.occupied[w];
        }
    }

    /// Zeroes only the occupied levels, so clearing costs the book's depth, not its ladder.
    fn clear(&mut self) {
        for w in 0..self.occupied.len() {
            let mut bits = self.occupied[w];
            while bits != 0 {
                self.qty[w * 64 + bits.trailing_zeros() as usize] = Qty::ZERO;
                bits &= bits - 1;
            }
            self.occupied[w] = 0;
        }
        self.best = NONE;
    }
}

#[inline]
fn opt(i: u16) -> Option<Tick> {
    (i != NONE).then_some(Tick(i))
}

/// One market's book. All memory is allocated in [`Book::new`]; applying events never allocates.
#[derive(Clone, Debug)]
pub struct Book {
    ladder: MarketLadder,
    bids: Levels,
    asks: Levels,
    state: BookState,
}

impl Book {
    pub fn new(ladder: MarketLadder) -> Book {
        let len = ladder.len();
        Book {
            bids: Levels::new(len),
            asks: Levels::new(len),
            ladder,
            state: BookState::Init,
        }
    }

    #[inline]
    pub fn ladder(&self) -> &MarketLadder {
        &self.ladder
    }

    #[inline]
    pub fn state(&self) -> BookState {
        self.state
    }

    /// Prices and sizes are meaningful only while this holds.
    #[inline]
    pub fn is_live(&self) -> bool {
        self.state == BookState::Live
    }

    /// Applies a book event; `None` for events that are not about books. The event's market
    /// field is not checked: [`Books::apply`] routes by it.
    #[inline]
    pub fn apply(&mut self, body: &EventBody) -> Option<Apply> {
        Some(match *body {
            EventBody::BookDelta {
                side, price, delta, own, ..
            } => self.delta(side, price, delta, own),
            EventBody::BookLevel { side, price, qty, .. } => self.snapshot_level(side, price, qty),
            EventBody::BookClear { .. } => self.clear(),
            EventBody::BookSnapshotEnd { .. } => self.snapshot_end(),
            EventBody::Stale { .. } => self.mark_stale(Integrity::FeedGap),
            _ => return None,
        })
    }

    /// Starts a snapshot: forgets every level. Allowed in any state; it is how a stale book heals.
    pub fn clear(&mut self) -> Apply {
        self.bids.clear();
        self.asks.clear();
        self.state = BookState::Building;
        Apply::Building
    }

    /// Sets one level of a snapshot (a repeated price replaces the earlier size).
    pub fn snapshot_level(&mut self, side: Side, price: Price, qty: Qty) -> Apply {
        match self.state {
            BookState::Building => {}
            BookState::Stale => return Apply::Dropped,
            BookState::Init | BookState::Live => return self.mark_stale(Integrity::SnapshotOutOfOrder),
        }
        let Some(i) = self.ladder.ticks().index(price) else {
            return self.mark_stale(Integrity::OffLadder);
        };
        if qty.0 < 0 {
            return self.mark_stale(Integrity::NegativeLevel);
        }
        let levels = match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        };
        levels.qty[i] = qty;
        if qty.0 == 0 {
            levels.unset(i);
            if levels.best == i as u16 {
                levels.best = match side {
                    Side::Bid => levels.highest_at_or_below(i),
                    Side::Ask => levels.lowest_at_or_above(i),
                };
            }
        } else {
            levels.set(i);
            let t = i as u16;
            let better = match side {
                Side::Bid => levels.best == NONE || t > levels.best,
                Side::Ask => t < levels.best,
            };
            if better {
                levels.best = t;
            }
        }
        Apply::Building
    }

    /// Ends a snapshot; the book goes live unless the snapshot is crossed.
    pub fn snapshot_end(&mut self) -> Apply {
        match self.state {
            BookState::Building => {}
            BookState::Stale => return Apply::Dropped,
            BookState::Init | BookState::Live => return self.mark_stale(Integrity::SnapshotOutOfOrder),
        }
        if self.crossed() {
            return self.mark_stale(Integrity::Crossed);
        }
        self.state = BookState::Live;
        Apply::Live
    }

    /// Applies a signed change of resting quantity at one level (the hot path).
    #[inline]
    pub fn delta(&mut self, side: Side, price: Price, delta: Qty, own: bool) -> Apply {
        if self.state != BookState::Live {
            return self.not_live();
        }
        let Some(i) = self.ladder.ticks().index(price) else {
            return self.mark_stale(Integrity::OffLadder);
        };
        let levels = match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        };
        let old = levels.qty[i].0;
        let Some(new) = old.checked_add(delta.0) else {
            return self.mark_stale(Integrity::Overflow);
        };
        if new < 0 {
            return self.mark_stale(Integrity::NegativeLevel);
        }
        levels.qty[i] = Qty(new);
        let old_best = levels.best;
        let t = i as u16;
        if old == 0 && new != 0 {
            levels.set(i);
            let better = match side {
                Side::Bid => old_best == NONE || t > old_best,
                Side::Ask => t < old_best,
            };
            if better {
                levels.best = t;
                // Only a new best level can cross the book.
                if self.crossed() {
                    return self.mark_stale(Integrity::Crossed);
                }
            }
        } else if old != 0 && new == 0 {
            levels.unset(i);
            if t == old_best {
                levels.best = match side {
                    Side::Bid => levels.highest_at_or_below(i),
                    Side::Ask => levels.lowest_at_or_above(i),
                };
            }
        }
        // Whether t was or now is the best: its size or the best price moved either way.
        let top_changed = t == old_best || t == self.side(side).best;
        Apply::Delta {
            side,
            tick: Tick(t),
            level: Qty(new),
            own,
            top_changed,
        }
    }

    /// Marks the book stale (a feed gap, or an integrity failure found elsewhere). Returns
    /// `Dropped` if it already was, so a burst of bad events asks for one resync, not many.
    pub fn mark_stale(&mut self, why: Integrity) -> Apply {
        if self.state == BookState::Stale {
            return Apply::Dropped;
        }
        self.state = BookState::Stale;
        Apply::Stale(why)
    }

    #[cold]
    fn not_live(&mut self) -> Apply {
        match self.state {
            BookState::Stale => Apply::Dropped,
            _ => self.mark_stale(Integrity::NoSnapshot),
        }
    }

    #[inline]
    fn crossed(&self) -> bool {
        self.bids.best != NONE && self.asks.best != NONE && self.bids.best >= self.asks.best
    }

    #[inline]
    fn side(&self, side: Side) -> &Levels {
        match side {
            Side::Bid => &self.bids,
            Side::Ask => &self.asks,
        }
    }

    /// The best tick of a side: highest bid, lowest ask.
    #[inline]
    pub fn best_tick(&self, side: Side) -> Option<Tick> {
        opt(self.side(side).best)
    }

    #[inline]
    pub fn best_bid(&self) -> Option<Price> {
        self.best_tick(Side::Bid).map(|t| self.ladder.price(t))
    }

    /// Lowest YES ask, i.e. 1 - the best NO bid.
    #[inline]
    pub fn best_ask(&self) -> Option<Price> {
        self.best_tick(Side::Ask).map(|t| self.ladder.price(t))
    }

    /// Best price and its size.
    #[inline]
    pub fn top(&self, side: Side) -> Option<(Price, Qty)> {
        let levels = self.side(side);
        opt(levels.best).map(|t| (self.ladder.price(t), levels.qty[t.index()]))
    }

    /// Best ask minus best bid in ladder ticks (not uniform in price on tapered ladders).
    #[inline]
    pub fn spread_ticks(&self) -> Option<u16> {
        match (self.bids.best, self.asks.best) {
            (NONE, _) | (_, NONE) => None,
            (b, a) => Some(a.saturating_sub(b)),
        }
    }

    /// Resting size at `price`; zero off the ladder.
    #[inline]
    pub fn qty_at(&self, side: Side, price: Price) -> Qty {
        self.ladder.ticks().index(price).map_or(Qty::ZERO, |i| self.side(side).qty[i])
    }

    #[inline]
    pub fn qty_at_tick(&self, side: Side, tick: Tick) -> Qty {
        self.side(side).qty.get(tick.index()).copied().unwrap_or(Qty::ZERO)
    }

    /// Total size on the best level and the `ticks` ticks behind it (bids below, asks above).
    pub fn depth_within(&self, side: Side, ticks: u16) -> Qty {
        let levels = self.side(side);
        if levels.best == NONE {
            return Qty::ZERO;
        }
        let best = levels.best as usize;
        let range = match side {
            Side::Bid => best.saturating_sub(ticks as usize)..best + 1,
            Side::Ask => best..(best + ticks as usize + 1).min(levels.qty.len()),
        };
        Qty(levels.qty[range].iter().map(|q| q.0).sum())
    }

    /// Total size at prices at least as good as `limit` for whoever trades against this side:
    /// bids at or above `limit`, asks at or below it. What a sweep up to `limit` could take.
    pub fn depth_through(&self, side: Side, limit: Price) -> Qty {
        let levels = self.side(side);
        if levels.best == NONE {
            return Qty::ZERO;
        }
        let best = levels.best as usize;
        let prices = self.ladder.ticks().prices();
        let range = match side {
            Side::Bid => prices.partition_point(|p| *p < limit)..best + 1,
            Side::Ask => best..prices.partition_point(|p| *p <= limit),
        };
        if range.is_empty() {
            return Qty::ZERO;
        }
        Qty(levels.qty[range].iter().map(|q| q.0).sum())
    }

    /// Non-empty levels of a side, best first, as `(price, qty)`. Walks the bitmap: no allocation.
    pub fn levels(&self, side: Side) -> LevelIter<'_> {
        LevelIter {
            book: self,
            side,
            next: self.side(side).best,
        }
    }

    /// Audits every invariant in O(ladder): each level >= 0, the bitmap marks exactly the
    /// non-empty levels, the cached bests are the true extremes, and a live book is not crossed.
    /// For tests and for an off-hot-path self-check; the engine never needs it to be correct.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        for (levels, is_bid) in [(&self.bids, true), (&self.asks, false)] {
            let (mut lowest, mut highest) = (NONE, NONE);
            for (i, q) in levels.qty.iter().enumerate() {
                if q.0 < 0 {
                    return Err("negative level");
                }
                let bit = levels.occupied[i / 64] >> (i % 64) & 1 == 1;
                if bit != (q.0 != 0) {
                    return Err("bitmap disagrees with levels");
                }
                if q.0 != 0 {
                    if lowest == NONE {
                        lowest = i as u16;
                    }
                    highest = i as u16;
                }
            }
            let extreme = if is_bid { highest } else { lowest };
            let tail = levels.qty.len() % 64;
            if tail != 0 && levels.occupied[levels.occupied.len() - 1] >> tail != 0 {
                return Err("bitmap has bits past the ladder");
            }
            if extreme != levels.best {
                return Err("cached best is not the best level");
            }
        }
        if self.state == BookState::Live && self.crossed() {
            return Err("live book is crossed");
        }
        Ok(())
    }
}

/// See [`Book::levels`].
pub struct LevelIter<'a> {
    book: &'a Book,
    side: Side,
    next: u16,
}

impl Iterator for LevelIter<'_> {
    type Item = (Price, Qty);

    fn next(&mut self) -> Option<(Price, Qty)> {
        if self.next == NONE {
            return None;
        }
        let i = self.next as usize;
        let levels = self.book.side(self.side);
        self.next = match self.side {
            Side::Bid if i == 0 => NONE,
            Side::Bid => levels.highest_at_or_below(i - 1),
            Side::Ask => levels.lowest_at_or_above(i + 1),
        };
        Some((self.book.ladder.price(Tick(i as u16)), levels.qty[i]))
    }
}

/// Every subscribed market's book, indexed by `MarketIdx`.
#[derive(Clone, Debug)]
pub struct Books {
    books: Box<[Book]>,
}

impl Books {
    /// One book per ladder; the ladder's position is its market's `MarketIdx`.
    pub fn new(ladders: impl IntoIterator<Item = MarketLadder>) -> Books {
        Books {
            books: ladders.into_iter().map(Book::new).collect(),
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.books.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.books.is_empty()
    }

    #[inline]
    pub fn get(&self, market: MarketIdx) -> Option<&Book> {
        self.books.get(usize::from(market))
    }

    #[inline]
    pub fn get_mut(&mut self, market: MarketIdx) -> Option<&mut Book> {
        self.books.get_mut(usize::from(market))
    }

    pub fn iter(&self) -> impl Iterator<Item = (MarketIdx, &Book)> {
        self.books.iter().enumerate().map(|(i, b)| (i as MarketIdx, b))
    }

    /// Routes a book event to its market's book. `None` for events that are not about books
    /// and for a market index with no book (a wiring bug upstream, not a feed problem).
    #[inline]
    pub fn apply(&mut self, body: &EventBody) -> Option<Apply> {
        let market = match *body {
            EventBody::BookDelta { market, .. }
            | EventBody::BookLevel { market, .. }
            | EventBody::BookClear { market }
            | EventBody::BookSnapshotEnd { market }
            | EventBody::Stale { market, .. } => market,
            _ => return None,
        };
        self.get_mut(market)?.apply(body)
    }
}

impl std::ops::Index<MarketIdx> for Books {
    type Output = Book;
    fn index(&self, market: MarketIdx) -> &Book {
        &self.books[usize::from(market)]
    }
}

impl std::ops::IndexMut<MarketIdx> for Books {
    fn index_mut(&mut self, market: MarketIdx) -> &mut Book {
        &mut self.books[usize::from(market)]
    }
}
