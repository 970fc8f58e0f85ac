//! The order book and the market ladder: snapshot/delta handling, best prices, integrity
//! failures and recovery, a model-based proptest, ladder tables, fees, price_ranges parsing, and
//! a proof that applying events does not allocate.

use kalshi_proto::ladder::LevelStructure;
use kmm::event::{EventBody, Money, Price, Qty, Side};
use kmm::ladder::{order_fee, FeeRates, Fx, LadderError, Logit, MarketLadder, Prob, RangeText, Snap, Tick};
use kmm::orderbook::{Apply, Book, BookState, Books, Integrity};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;

// ---------------------------------------------------------------- allocation counting

/// Counts allocations per thread, so tests running in parallel do not see each other's.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// ---------------------------------------------------------------- helpers

const STRUCTURES: [LevelStructure; 3] = [
    LevelStructure::LinearCent,
    LevelStructure::DeciCent,
    LevelStructure::TaperedDeciCent,
];

fn ladder(structure: LevelStructure) -> MarketLadder {
    MarketLadder::from_structure(structure, FeeRates::quadratic(10_000))
}

fn px(text: &str) -> Price {
    Price::parse(text).unwrap()
}

fn n(contracts: i64) -> Qty {
    Qty::from_contracts(contracts)
}

fn snapshot(book: &mut Book, bids: &[(&str, i64)], asks: &[(&str, i64)]) -> Apply {
    assert_eq!(book.clear(), Apply::Building);
    for &(p, q) in bids {
        assert_eq!(book.snapshot_level(Side::Bid, px(p), n(q)), Apply::Building);
    }
    for &(p, q) in asks {
        assert_eq!(book.snapshot_level(Side::Ask, px(p), n(q)), Apply::Building);
    }
    book.snapshot_end()
}

fn live_book(structure: LevelStructure) -> Book {
    let mut book = Book::new(ladder(structure));
    assert_eq!(
        snapshot(&mut book, &[("0.40", 10), ("0.42", 5)], &[("0.45", 3), ("0.47", 7)]),
        Apply::Live
    );
    book
}

fn delta(book: &mut Book, side: Side, p: &str, d: i64) -> Apply {
    book.delta(side, px(p), n(d), false)
}

fn levels(book: &Book, side: Side) -> Vec<(Price, Qty)> {
    book.levels(side).collect()
}

// ---------------------------------------------------------------- book behaviour

#[test]
fn snapshot_then_deltas() {
    let mut book = live_book(LevelStructure::LinearCent);
    assert!(book.is_live());
    assert_eq!(book.best_bid(), Some(px("0.42")));
    assert_eq!(book.best_ask(), Some(px("0.45")));
    assert_eq!(book.top(Side::Bid), Some((px("0.42"), n(5))));
    assert_eq!(book.spread_ticks(), Some(3));

    // A new level behind the best: the top does not move.
    let t41 = book.ladder().tick(px("0.41")).unwrap();
    assert_eq!(
        delta(&mut book, Side::Bid, "0.41", 4),
        Apply::Delta {
            side: Side::Bid,
            tick: t41,
            level: n(4),
            own: false,
            top_changed: false
        }
    );
    // Size at the best changes the top without moving the price.
    assert!(matches!(delta(&mut book, Side::Bid, "0.42", 1), Apply::Delta { level, top_changed: true, .. } if level == n(6)));
    // Emptying the best falls back to the next level.
    assert!(matches!(
        delta(&mut book, Side::Bid, "0.42", -6),
        Apply::Delta { top_changed: true, .. }
    ));
    assert_eq!(book.best_bid(), Some(px("0.41")));
    // A new best, inside the spread.
    assert!(matches!(
        delta(&mut book, Side::Bid, "0.44", 2),
        Apply::Delta { top_changed: true, .. }
    ));
    assert_eq!(book.best_bid(), Some(px("0.44")));
    // The ask side mirrors it.
    delta(&mut book, Side::Ask, "0.45", -3);
    assert_eq!(book.best_ask(), Some(px("0.47")));
    delta(&mut book, Side::Ask, "0.46", 9);
    assert_eq!(book.best_ask(), Some(px("0.46")));

    assert_eq!(
        levels(&book, Side::Bid),
        vec![(px("0.44"), n(2)), (px("0.41"), n(4)), (px("0.40"), n(10))]
    );
    assert_eq!(levels(&book, Side::Ask), vec![(px("0.46"), n(9)), (px("0.47"), n(7))]);
    book.check_invariants().unwrap();
}

#[test]
fn own_flag_and_fractional_sizes_pass_through() {
    let mut book = live_book(LevelStructure::LinearCent);
    let r = book.delta(Side::Ask, px("0.45"), Qty::parse("74.77").unwrap(), true);
    assert!(matches!(r, Apply::Delta { own: true, level, .. } if level == Qty::parse("77.77").unwrap()));
    let r = book.delta(Side::Ask, px("0.45"), Qty::parse("-0.01").unwrap(), false);
    assert!(matches!(r, Apply::Delta { own: false, level, .. } if level == Qty::parse("77.76").unwrap()));
}

#[test]
fn no_bids_arrive_as_yes_asks() {
    // The io thread turns a NO bid at p into a YES ask at 1 - p; the book sees YES prices only.
    let mut books = Books::new([ladder(LevelStructure::LinearCent), ladder(LevelStructure::DeciCent)]);
    let m = 1;
    let no_bid = |p: &str, q: i64| EventBody::BookLevel {
        market: m,
        side: Side::Ask,
        price: px(p).complement(),
        qty: n(q),
    };
    assert_eq!(books.apply(&EventBody::BookClear { market: m }), Some(Apply::Building));
    books.apply(&EventBody::BookLevel {
        market: m,
        side: Side::Bid,
        price: px("0.0800"),
        qty: n(300),
    });
    books.apply(&EventBody::BookLevel {
        market: m,
        side: Side::Bid,
        price: px("0.2200"),
        qty: n(333),
    });
    books.apply(&no_bid("0.5400", 20));
    books.apply(&no_bid("0.5600", 146));
    assert_eq!(books.apply(&EventBody::BookSnapshotEnd { market: m }), Some(Apply::Live));
    // Best YES ask = 1 - best NO bid = 1 - 0.56.
    assert_eq!(books[m].best_ask(), Some(px("0.44")));
    assert_eq!(books[m].best_bid(), Some(px("0.22")));
    // A NO delta at 0.58 (someone bids more for NO) is a YES ask at 0.42.
    let d = EventBody::BookDelta {
        market: m,
        side: Side::Ask,
        price: px("0.5800").complement(),
        delta: n(7),
        own: false,
    };
    assert!(matches!(books.apply(&d), Some(Apply::Delta { top_changed: true, .. })));
    assert_eq!(books[m].best_ask(), Some(px("0.42")));
    // Market 0 never saw a snapshot; unrelated events and unknown markets are not book events.
    assert_eq!(books[0].state(), BookState::Init);
    assert_eq!(
        books.apply(&EventBody::Connected {
            feed: kmm::event::Feed::Kalshi
        }),
        None
    );
    assert_eq!(books.apply(&EventBody::BookClear { market: 7 }), None);
}

#[test]
fn best_prices_at_the_edges_of_every_ladder() {
    for structure in STRUCTURES {
        let mut book = Book::new(ladder(structure));
        let l = book.ladder().clone();
        let (lo, hi) = (l.min_tick(), l.max_tick());
        let (plo, phi) = (l.price(lo), l.price(hi));
        assert_eq!(book.clear(), Apply::Building);
        assert_eq!(book.snapshot_end(), Apply::Live);
        assert_eq!((book.best_bid(), book.best_ask()), (None, None));
        assert_eq!(book.spread_ticks(), None);

        // Lowest bid and highest ask: the widest book there is.
        book.delta(Side::Bid, plo, n(1), false);
        book.delta(Side::Ask, phi, n(1), false);
        assert_eq!((book.best_bid(), book.best_ask()), (Some(plo), Some(phi)));
        assert_eq!(book.spread_ticks(), Some(hi.0 - lo.0));

        // Best levels walking to the far end, then removed: the scan crosses every bitmap word.
        let below_hi = l.price(l.offset(hi, -1).unwrap());
        let above_lo = l.price(l.offset(lo, 1).unwrap());
        book.delta(Side::Bid, below_hi, n(2), false);
        assert_eq!(book.best_bid(), Some(below_hi));
        book.delta(Side::Ask, phi, n(-1), false);
        assert_eq!(book.best_ask(), None);
        book.delta(Side::Bid, below_hi, n(-2), false);
        assert_eq!(book.best_bid(), Some(plo), "{structure:?}");
        book.delta(Side::Ask, above_lo, n(3), false);
        book.delta(Side::Ask, phi, n(3), false);
        assert_eq!(book.best_ask(), Some(above_lo));
        book.delta(Side::Ask, above_lo, n(-3), false);
        assert_eq!(book.best_ask(), Some(phi), "{structure:?}");
        book.delta(Side::Bid, plo, n(-1), false);
        book.delta(Side::Ask, phi, n(-3), false);
        assert_eq!((book.best_bid(), book.best_ask()), (None, None));
        assert!(book.is_live());
        book.check_invariants().unwrap();
    }
}

#[test]
fn all_three_ladder_structures() {
    let lens = [
        (LevelStructure::LinearCent, 99),
        (LevelStructure::DeciCent, 999),
        (LevelStructure::TaperedDeciCent, 279),
    ];
    for (structure, len) in lens {
        assert_eq!(ladder(structure).len(), len);
    }
    // 1.5 cents: on the deci-cent and tapered ladders, off the cent ladder.
    // 43.5 cents (inside the spread): only on the deci-cent ladder.
    let cases = [
        (LevelStructure::LinearCent, "0.0150", false, "0.4350", false),
        (LevelStructure::DeciCent, "0.0150", true, "0.4350", true),
        (LevelStructure::TaperedDeciCent, "0.0150", true, "0.4350", false),
    ];
    for (structure, edge, edge_on, centre, centre_on) in cases {
        for (price, on) in [(edge, edge_on), (centre, centre_on)] {
            let mut book = live_book(structure);
            let r = delta(&mut book, Side::Bid, price, 1);
            if on {
                assert!(matches!(r, Apply::Delta { .. }), "{structure:?} {price}");
                assert_eq!(book.qty_at(Side::Bid, px(price)), n(1));
            } else {
                assert_eq!(r, Apply::Stale(Integrity::OffLadder), "{structure:?} {price}");
            }
        }
    }
    // The tapered ladder's tick is 0.1c at the edges and 1c in the middle.
    let l = ladder(LevelStructure::TaperedDeciCent);
    let t = l.tick(px("0.1000")).unwrap();
    assert_eq!(l.price(l.offset(t, -1).unwrap()), px("0.0990"));
    assert_eq!(l.price(l.offset(t, 1).unwrap()), px("0.1100"));
    assert_eq!(l.offset(l.max_tick(), 1), None);
    assert_eq!(l.offset(l.min_tick(), -1), None);
}

#[test]
fn depth_helpers() {
    let mut book = Book::new(ladder(LevelStructure::LinearCent));
    snapshot(
        &mut book,
        &[("0.30", 1), ("0.38", 2), ("0.39", 3), ("0.40", 4)],
        &[("0.45", 5), ("0.46", 6), ("0.50", 7)],
    );
    assert_eq!(book.qty_at(Side::Bid, px("0.39")), n(3));
    assert_eq!(book.qty_at(Side::Bid, px("0.37")), Qty::ZERO);
    assert_eq!(book.qty_at(Side::Bid, px("0.395")), Qty::ZERO);
    assert_eq!(book.qty_at(Side::Ask, px("0.40")), Qty::ZERO);
    assert_eq!(book.qty_at_tick(Side::Ask, Tick(44)), n(5));
    assert_eq!(book.qty_at_tick(Side::Ask, Tick(9999)), Qty::ZERO);
    assert_eq!(book.depth_within(Side::Bid, 0), n(4));
    assert_eq!(book.depth_within(Side::Bid, 1), n(7));
    assert_eq!(book.depth_within(Side::Bid, 2), n(9));
    assert_eq!(book.depth_within(Side::Bid, 500), n(10));
    assert_eq!(book.depth_within(Side::Ask, 1), n(11));
    assert_eq!(book.depth_within(Side::Ask, 500), n(18));
    // What a sweep up to a limit could take.
    assert_eq!(book.depth_through(Side::Ask, px("0.46")), n(11));
    assert_eq!(book.depth_through(Side::Ask, px("0.455")), n(5));
    assert_eq!(book.depth_through(Side::Ask, px("0.44")), Qty::ZERO);
    assert_eq!(book.depth_through(Side::Ask, px("1")), n(18));
    assert_eq!(book.depth_through(Side::Bid, px("0.39")), n(7));
    assert_eq!(book.depth_through(Side::Bid, px("0.385")), n(7));
    assert_eq!(book.depth_through(Side::Bid, px("0.41")), Qty::ZERO);
    assert_eq!(book.depth_through(Side::Bid, px("0")), n(10));
}

// ---------------------------------------------------------------- integrity

/// Every way the book can stop trusting itself, the state it must refuse, and the recovery.
#[test]
fn every_integrity_failure_goes_stale_and_a_snapshot_recovers() {
    type Breaker = fn(&mut Book) -> Apply;
    let failures: [(&str, Breaker, Integrity); 11] = [
        ("off-ladder delta", |b| delta(b, Side::Bid, "0.415", 1), Integrity::OffLadder),
        ("delta at $0", |b| b.delta(Side::Bid, Price(0), n(1), false), Integrity::OffLadder),
        ("level below zero", |b| delta(b, Side::Bid, "0.42", -6), Integrity::NegativeLevel),
        (
            "removal from an empty level",
            |b| delta(b, Side::Ask, "0.60", -1),
            Integrity::NegativeLevel,
        ),
        (
            "overflow",
            |b| b.delta(Side::Bid, px("0.42"), Qty(i64::MAX), false),
            Integrity::Overflow,
        ),
        ("bid at the best ask", |b| delta(b, Side::Bid, "0.45", 1), Integrity::Crossed),
        ("ask through the best bid", |b| delta(b, Side::Ask, "0.30", 1), Integrity::Crossed),
        (
            "crossed snapshot",
            |b| snapshot(b, &[("0.50", 1)], &[("0.49", 1)]),
            Integrity::Crossed,
        ),
        (
            "level without clear",
            |b| b.snapshot_level(Side::Bid, px("0.41"), n(1)),
            Integrity::SnapshotOutOfOrder,
        ),
        ("end without clear", |b| b.snapshot_end(), Integrity::SnapshotOutOfOrder),
        ("feed gap", |b| b.apply(&kmm::testkit::stale(0)).unwrap(), Integrity::FeedGap),
    ];
    for (name, break_it, why) in failures {
        let mut book = live_book(LevelStructure::LinearCent);
        assert_eq!(break_it(&mut book), Apply::Stale(why), "{name}");
        assert_eq!(book.state(), BookState::Stale, "{name}");
        book.check_invariants().unwrap();
        // Refuses everything until a snapshot completes, without asking for another resync.
        assert_eq!(delta(&mut book, Side::Bid, "0.41", 1), Apply::Dropped, "{name}");
        assert_eq!(book.snapshot_level(Side::Bid, px("0.41"), n(1)), Apply::Dropped, "{name}");
        assert_eq!(book.snapshot_end(), Apply::Dropped, "{name}");
        assert_eq!(book.apply(&kmm::testkit::stale(0)), Some(Apply::Dropped), "{name}");
        // Recovery.
        assert_eq!(snapshot(&mut book, &[("0.20", 1)], &[("0.80", 2)]), Apply::Live, "{name}");
        assert_eq!((book.best_bid(), book.best_ask()), (Some(px("0.20")), Some(px("0.80"))), "{name}");
        assert_eq!(
            levels(&book, Side::Bid),
            vec![(px("0.20"), n(1))],
            "{name}: old levels survived the snapshot"
        );
        assert!(matches!(delta(&mut book, Side::Bid, "0.21", 1), Apply::Delta { .. }), "{name}");
        book.check_invariants().unwrap();
    }
}

#[test]
fn a_refused_delta_leaves_the_levels_alone() {
    let mut book = live_book(LevelStructure::LinearCent);
    let before = (levels(&book, Side::Bid), levels(&book, Side::Ask));
    assert_eq!(delta(&mut book, Side::Bid, "0.42", -6), Apply::Stale(Integrity::NegativeLevel));
    assert_eq!((levels(&book, Side::Bid), levels(&book, Side::Ask)), before);
}

#[test]
fn deltas_need_a_complete_snapshot() {
    // Before the first snapshot.
    let mut book = Book::new(ladder(LevelStructure::DeciCent));
    assert_eq!(book.state(), BookState::Init);
    assert_eq!(delta(&mut book, Side::Bid, "0.41", 1), Apply::Stale(Integrity::NoSnapshot));
    assert_eq!(delta(&mut book, Side::Bid, "0.41", 1), Apply::Dropped);
    assert_eq!(snapshot(&mut book, &[("0.41", 1)], &[]), Apply::Live);
    // In the middle of one.
    assert_eq!(book.clear(), Apply::Building);
    assert_eq!(delta(&mut book, Side::Bid, "0.41", 1), Apply::Stale(Integrity::NoSnapshot));
    // Bad snapshot levels.
    assert_eq!(book.clear(), Apply::Building);
    assert_eq!(
        book.snapshot_level(Side::Bid, px("0.4105"), n(1)),
        Apply::Stale(Integrity::OffLadder)
    );
    assert_eq!(book.clear(), Apply::Building);
    assert_eq!(
        book.snapshot_level(Side::Ask, px("0.50"), n(-1)),
        Apply::Stale(Integrity::NegativeLevel)
    );
    assert_eq!(book.snapshot_end(), Apply::Dropped);
    // An empty snapshot is a valid, live, empty book; a repeated level replaces the first.
    assert_eq!(snapshot(&mut book, &[], &[]), Apply::Live);
    assert_eq!(
        snapshot(&mut book, &[("0.30", 5), ("0.30", 2), ("0.31", 1), ("0.31", 0)], &[]),
        Apply::Live
    );
    assert_eq!(levels(&book, Side::Bid), vec![(px("0.30"), n(2))]);
    book.check_invariants().unwrap();
}

// ---------------------------------------------------------------- model-based test

/// The obvious implementation: ordered maps, best prices by asking the map.
#[derive(Debug)]
struct Model {
    bids: BTreeMap<u16, i64>,
    asks: BTreeMap<u16, i64>,
    state: BookState,
}

impl Model {
    fn side(&mut self, side: Side) -> &mut BTreeMap<u16, i64> {
        match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        }
    }
    fn best(&self, side: Side) -> Option<u16> {
        match side {
            Side::Bid => self.bids.keys().next_back().copied(),
            Side::Ask => self.asks.keys().next().copied(),
        }
    }
    fn crossed(&self) -> bool {
        matches!((self.best(Side::Bid), self.best(Side::Ask)), (Some(b), Some(a)) if b >= a)
    }
    fn stale(&mut self, why: Integrity) -> Apply {
        if self.state == BookState::Stale {
            return Apply::Dropped;
        }
        self.state = BookState::Stale;
        Apply::Stale(why)
    }
    fn clear(&mut self) -> Apply {
        self.bids.clear();
        self.asks.clear();
        self.state = BookState::Building;
        Apply::Building
    }
    fn level(&mut self, side: Side, tick: Option<u16>, qty: i64) -> Apply {
        match self.state {
            BookState::Building => {}
            BookState::Stale => return Apply::Dropped,
            _ => return self.stale(Integrity::SnapshotOutOfOrder),
        }
        let Some(t) = tick else { return self.stale(Integrity::OffLadder) };
        if qty < 0 {
            return self.stale(Integrity::NegativeLevel);
        }
        if qty == 0 {
            self.side(side).remove(&t);
        } else {
            self.side(side).insert(t, qty);
        }
        Apply::Building
    }
    fn end(&mut self) -> Apply {
        match self.state {
            BookState::Building if self.crossed() => self.stale(Integrity::Crossed),
            BookState::Building => {
                self.state = BookState::Live;
                Apply::Live
            }
            BookState::Stale => Apply::Dropped,
            _ => self.stale(Integrity::SnapshotOutOfOrder),
        }
    }
    fn delta(&mut self, side: Side, tick: Option<u16>, d: i64, own: bool) -> Apply {
        match self.state {
            BookState::Live => {}
            BookState::Stale => return Apply::Dropped,
            _ => return self.stale(Integrity::NoSnapshot),
        }
        let Some(t) = tick else { return self.stale(Integrity::OffLadder) };
        let old_best = self.best(side);
        let new = self.side(side).get(&t).copied().unwrap_or(0) + d;
        if new < 0 {
            return self.stale(Integrity::NegativeLevel);
        }
        if new == 0 {
            self.side(side).remove(&t);
        } else {
            self.side(side).insert(t, new);
        }
        if self.crossed() {
            return self.stale(Integrity::Crossed);
        }
        let top_changed = old_best == Some(t) || self.best(side) == Some(t);
        Apply::Delta {
            side,
            tick: Tick(t),
            level: Qty(new),
            own,
            top_changed,
        }
    }
}

#[derive(Clone, Debug)]
enum Amount {
    Add(i64),
    /// Exactly empties the level (the common cancel).
    RemoveAll,
    /// Takes half the level: a partial cancel or fill.
    RemoveHalf,
    /// May overshoot the level: an integrity failure.
    Remove(i64),
}

#[derive(Clone, Debug)]
enum Op {
    Snapshot {
        bids: Vec<(u16, i64)>,
        asks: Vec<(u16, i64)>,
    },
    Delta {
        bid: bool,
        tick: u16,
        off_ladder: bool,
        amount: Amount,
        own: bool,
    },
    Clear,
    Level {
        bid: bool,
        tick: u16,
        qty: i64,
    },
    End,
    Gap,
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        12 => (1i64..5_000).prop_map(Amount::Add),
        6 => Just(Amount::RemoveAll),
        4 => Just(Amount::RemoveHalf),
        1 => (1i64..3_000).prop_map(Amount::Remove),
    ]
}

/// Bids mostly just below the middle of the ladder and asks just above, so levels collide and
/// books stay live for a while but do cross now and then; ticks across each half exercise the
/// long bitmap scans, and a few anywhere cross the book outright.
fn tick_for(bid: bool, len: u16) -> impl Strategy<Value = u16> {
    let mid = len / 2;
    let (near, half) = if bid {
        ((mid - 12)..mid, 0..mid)
    } else {
        ((mid - 1)..(mid + 11), mid..len)
    };
    prop_oneof![40 => near, 10 => half, 1 => 0..len]
}

fn op(len: u16) -> impl Strategy<Value = Op> {
    let side_levels = |bid: bool| prop::collection::vec((tick_for(bid, len), 0i64..10_000), 0..12);
    prop_oneof![
        5 => (side_levels(true), side_levels(false)).prop_map(|(bids, asks)| Op::Snapshot { bids, asks }),
        80 => (any::<bool>(), any::<bool>(), prop::bool::weighted(0.005), amount())
            .prop_flat_map(move |(bid, own, off_ladder, amount)| {
                tick_for(bid, len).prop_map(move |tick| Op::Delta { bid, tick, off_ladder, amount: amount.clone(), own })
            }),
        1 => Just(Op::Clear),
        1 => (any::<bool>(), 0..len, -10i64..1_000).prop_map(|(bid, tick, qty)| Op::Level { bid, tick, qty }),
        1 => Just(Op::End),
        1 => Just(Op::Gap),
    ]
}

fn scenario() -> impl Strategy<Value = (LevelStructure, Vec<Op>)> {
    prop::sample::select(STRUCTURES.to_vec()).prop_flat_map(|s| {
        let len = ladder(s).len() as u16;
        (Just(s), prop::collection::vec(op(len), 1..400))
    })
}

fn side_of(bid: bool) -> Side {
    if bid {
        Side::Bid
    } else {
        Side::Ask
    }
}

fn assert_same(book: &Book, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(book.state(), model.state);
    book.check_invariants().map_err(TestCaseError::fail)?;
    let l = book.ladder();
    for side in [Side::Bid, Side::Ask] {
        let want = match side {
            Side::Bid => &model.bids,
            Side::Ask => &model.asks,
        };
        prop_assert_eq!(book.best_tick(side).map(|t| t.0), model.best(side));
        let got: BTreeMap<u16, i64> = book.levels(side).map(|(p, q)| (l.tick(p).unwrap().0, q.0)).collect();
        prop_assert_eq!(&got, want);
        for i in 0..l.len() as u16 {
            prop_assert_eq!(book.qty_at_tick(side, Tick(i)).0, want.get(&i).copied().unwrap_or(0));
        }
    }
    prop_assert_eq!(book.best_bid(), model.best(Side::Bid).map(|t| l.price(Tick(t))));
    prop_assert_eq!(book.best_ask(), model.best(Side::Ask).map(|t| l.price(Tick(t))));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn book_matches_a_naive_model((structure, ops) in scenario()) {
        let mut book = Book::new(ladder(structure));
        let mut model = Model { bids: BTreeMap::new(), asks: BTreeMap::new(), state: BookState::Init };
        for op in ops {
            match op {
                Op::Snapshot { bids, asks } => {
                    prop_assert_eq!(book.clear(), model.clear());
                    for (bid, levels) in [(true, bids), (false, asks)] {
                        for (t, q) in levels {
                            let price = book.ladder().price(Tick(t));
                            let got = book.snapshot_level(side_of(bid), price, Qty(q));
                            prop_assert_eq!(got, model.level(side_of(bid), Some(t), q));
                        }
                    }
                    prop_assert_eq!(book.snapshot_end(), model.end());
                }
                Op::Delta { bid, tick, off_ladder, amount, own } => {
                    let side = side_of(bid);
                    let have = model.side(side).get(&tick).copied().unwrap_or(0);
                    let d = match amount {
                        Amount::Add(q) => q,
                        Amount::RemoveAll => -have,
                        Amount::RemoveHalf => -(have / 2),
                        Amount::Remove(q) => -q,
                    };
                    // One 1e-4 step off a ladder price is off every ladder (the finest step is 10).
                    let price = Price(book.ladder().price(Tick(tick)).0 + u32::from(off_ladder));
                    let expected = model.delta(side, (!off_ladder).then_some(tick), d, own);
                    prop_assert_eq!(book.delta(side, price, Qty(d), own), expected);
                }
                Op::Clear => prop_assert_eq!(book.clear(), model.clear()),
                Op::Level { bid, tick, qty } => {
                    let price = book.ladder().price(Tick(tick));
                    prop_assert_eq!(book.snapshot_level(side_of(bid), price, Qty(qty)), model.level(side_of(bid), Some(tick), qty));
                }
                Op::End => prop_assert_eq!(book.snapshot_end(), model.end()),
                Op::Gap => prop_assert_eq!(book.mark_stale(Integrity::FeedGap), model.stale(Integrity::FeedGap)),
            }
            assert_same(&book, &model)?;
        }
    }
}

// ---------------------------------------------------------------- allocation

#[test]
fn applying_events_never_allocates() {
    let mut books = Books::new(STRUCTURES.map(ladder));
    // Everything below runs after construction: snapshots, deltas, failures, recoveries, reads.
    let before = allocations();
    let mut live = 0u64;
    for round in 0..200u32 {
        for m in 0..3u16 {
            let book = &books[m];
            let l = book.ladder();
            let mid = l.len() as u16 / 2;
            let bid = |k: u16| l.price(Tick(mid - 1 - k));
            let ask = |k: u16| l.price(Tick(mid + 1 + k));
            let (b0, b1, a0, a1) = (bid(0), bid(5), ask(0), ask(7));
            let off = Price(b0.0 + 1);
            let events = [
                EventBody::BookClear { market: m },
                EventBody::BookLevel {
                    market: m,
                    side: Side::Bid,
                    price: b1,
                    qty: n(10),
                },
                EventBody::BookLevel {
                    market: m,
                    side: Side::Ask,
                    price: a1,
                    qty: n(10),
                },
                EventBody::BookSnapshotEnd { market: m },
                EventBody::BookDelta {
                    market: m,
                    side: Side::Bid,
                    price: b0,
                    delta: n(3),
                    own: round % 2 == 0,
                },
                EventBody::BookDelta {
                    market: m,
                    side: Side::Ask,
                    price: a0,
                    delta: n(4),
                    own: false,
                },
                EventBody::BookDelta {
                    market: m,
                    side: Side::Bid,
                    price: b0,
                    delta: n(-3),
                    own: false,
                },
                EventBody::BookDelta {
                    market: m,
                    side: Side::Ask,
                    price: a0,
                    delta: n(-4),
                    own: false,
                },
                EventBody::BookDelta {
                    market: m,
                    side: Side::Bid,
                    price: off,
                    delta: n(1),
                    own: false,
                },
                EventBody::BookDelta {
                    market: m,
                    side: Side::Bid,
                    price: b0,
                    delta: n(1),
                    own: false,
                },
                kmm::testkit::stale(m),
            ];
            for e in &events {
                let r = books.apply(e).unwrap();
                if matches!(r, Apply::Live) {
                    live += 1;
                }
            }
            let book = &books[m];
            std::hint::black_box((
                book.best_bid(),
                book.best_ask(),
                book.depth_within(Side::Bid, 10),
                book.levels(Side::Ask).count(),
            ));
            std::hint::black_box(book.ladder().taker_fee(b0, n(10)));
        }
    }
    assert_eq!(allocations() - before, 0, "the book allocated after construction");
    assert_eq!(live, 600);
}

// ---------------------------------------------------------------- ladder tables and fees

fn fx(x: f64) -> Fx {
    Fx::from_num(x)
}

#[test]
fn ladder_tables() {
    for structure in STRUCTURES {
        let l = ladder(structure);
        let half = l.tick(px("0.50")).unwrap();
        assert_eq!(l.logit(half), Logit(Fx::ZERO));
        assert_eq!(l.pq(half), fx(0.25));
        assert_eq!(l.prob(half), Prob(fx(0.5)));
        for i in 0..l.len() as u16 {
            let t = Tick(i);
            let mirror = l.tick(l.price(t).complement()).unwrap();
            assert_eq!(l.logit(mirror).0, -l.logit(t).0, "logit antisymmetric");
            assert_eq!(l.pq(mirror), l.pq(t), "p(1-p) symmetric");
            let p = f64::from(l.price(t).0) / 1e4;
            let err = |got: Fx, want: f64| (got.to_num::<f64>() - want).abs();
            assert!(err(l.logit(t).0, (p / (1.0 - p)).ln()) < 1e-9);
            assert!(err(l.pq(t), p * (1.0 - p)) < 1e-9);
            assert!(err(l.prob(t).0, p) < 1e-9);
            assert!(err(l.taker_fee_per_contract(t), 0.07 * p * (1.0 - p)) < 1e-9);
            assert_eq!(l.maker_fee_per_contract(t), Fx::ZERO, "no maker fees on a quadratic series");
            if i > 0 {
                assert!(l.logit(Tick(i - 1)) < l.logit(t), "logit strictly increasing");
            }
        }
    }
    let l = MarketLadder::from_structure(LevelStructure::DeciCent, FeeRates::quadratic_with_maker_fees(10_000));
    let t = l.tick(px("0.001")).unwrap();
    assert!((l.logit(t).0.to_num::<f64>() - (0.001f64 / 0.999).ln()).abs() < 1e-9);
    assert!((l.maker_fee_per_contract(l.tick(px("0.5")).unwrap()).to_num::<f64>() - 0.004375).abs() < 1e-9);
}

#[test]
fn fees_are_exact_per_order() {
    let l = ladder(LevelStructure::LinearCent);
    assert_eq!(l.taker_fee(px("0.50"), n(10)), Money::from_cents(18));
    assert_eq!(l.taker_fee(px("0.10"), n(100)), Money::from_cents(63));
    assert_eq!(l.taker_fee(px("0.50"), n(1)), Money::from_cents(2));
    // Rounding is per order: ten 1-lots pay more than one 10-lot.
    assert_eq!(Money(l.taker_fee(px("0.50"), n(1)).0 * 10), Money::from_cents(20));
    // Exact multiples of a cent do not round up; fractional counts and signs are handled.
    assert_eq!(l.taker_fee(px("0.50"), n(100)), Money::from_cents(175));
    assert_eq!(l.taker_fee(px("0.50"), n(-10)), Money::from_cents(18));
    assert_eq!(l.taker_fee(px("0.50"), Qty::parse("0.01").unwrap()), Money::from_cents(1));
    assert_eq!(l.taker_fee(px("0.50"), Qty::ZERO), Money::ZERO);
    // No maker fee on a plain quadratic series; 0.0175 on maker-fee series.
    assert_eq!(l.maker_fee(px("0.50"), n(10)), Money::ZERO);
    let maker = MarketLadder::from_structure(LevelStructure::LinearCent, FeeRates::quadratic_with_maker_fees(10_000));
    assert_eq!(maker.maker_fee(px("0.50"), n(10)), Money::from_cents(5));
    // A half multiplier (INX-style 0.035).
    assert_eq!(FeeRates::quadratic(5_000).taker_e4, 350);
    assert_eq!(order_fee(350, px("0.50"), n(10)), Money::from_cents(9));
    // Huge orders take the wide path and still round up to the cent.
    assert_eq!(order_fee(700, px("0.50"), n(100_000_000)), Money::from_cents(175_000_000));
    let count = Qty(1_000_000_000_000_000 + 1);
    assert_eq!(order_fee(700, px("0.5001"), count), Money::from_cents(700 * 5001 * 4999 * 1000 + 1));
    // Beyond what Money can hold the fee saturates rather than wraps.
    assert_eq!(order_fee(700, px("0.50"), Qty(i64::MAX)), Money(i64::MAX));
}

#[test]
fn snapping_model_prices_to_the_ladder() {
    let l = ladder(LevelStructure::TaperedDeciCent);
    let p = |text: &str| Prob::from_price(px(text));
    let at = |t: Option<Tick>| t.map(|t| l.price(t));
    // Between two centre ticks (0.50 and 0.51).
    let x = Prob(fx(0.5042));
    assert_eq!(at(l.snap(x, Snap::Floor)), Some(px("0.50")));
    assert_eq!(at(l.snap(x, Snap::Ceil)), Some(px("0.51")));
    assert_eq!(at(l.snap(x, Snap::Nearest)), Some(px("0.50")));
    assert_eq!(at(l.snap(Prob(fx(0.5062)), Snap::Nearest)), Some(px("0.51")));
    // On a tick, every mode keeps it.
    for mode in [Snap::Floor, Snap::Ceil, Snap::Nearest] {
        assert_eq!(at(l.snap(p("0.095"), mode)), Some(px("0.095")));
    }
    // In the fine edge region the tick is 0.1c.
    assert_eq!(at(l.snap(Prob(fx(0.09555)), Snap::Floor)), Some(px("0.0950")));
    assert_eq!(at(l.snap(Prob(fx(0.09555)), Snap::Ceil)), Some(px("0.0960")));
    // Outside the ladder.
    assert_eq!(l.snap(Prob(fx(0.0004)), Snap::Floor), None);
    assert_eq!(at(l.snap(Prob(fx(0.0004)), Snap::Ceil)), Some(px("0.001")));
    assert_eq!(at(l.snap(Prob(fx(-3.0)), Snap::Nearest)), Some(px("0.001")));
    assert_eq!(l.snap(Prob(fx(0.9995)), Snap::Ceil), None);
    assert_eq!(at(l.snap(Prob(fx(2.0)), Snap::Nearest)), Some(px("0.999")));
    // In logit space: 0 is $0.50; a logit just above logit(0.51) floors to 0.51.
    assert_eq!(at(l.snap_logit(Logit(Fx::ZERO), Snap::Nearest)), Some(px("0.50")));
    let x51 = l.logit(l.tick(px("0.51")).unwrap());
    assert_eq!(at(l.snap_logit(Logit(x51.0 + Fx::DELTA), Snap::Floor)), Some(px("0.51")));
    assert_eq!(at(l.snap_logit(Logit(x51.0 + Fx::DELTA), Snap::Ceil)), Some(px("0.52")));
    assert_eq!(at(l.snap_logit(Logit(fx(-20.0)), Snap::Ceil)), Some(px("0.001")));
    assert_eq!(l.snap_logit(Logit(fx(20.0)), Snap::Ceil), None);
}

// ---------------------------------------------------------------- price_ranges

fn ranges(list: &[(&'static str, &'static str, &'static str)]) -> Vec<RangeText<'static>> {
    list.iter().map(|&(start, end, step)| RangeText { start, end, step }).collect()
}

fn parse(list: &[(&'static str, &'static str, &'static str)]) -> Result<MarketLadder, LadderError> {
    MarketLadder::from_price_ranges(&ranges(list), FeeRates::quadratic(10_000))
}

#[test]
fn price_ranges_build_the_three_ladders() {
    let linear = parse(&[("0.0000", "1.0000", "0.0100")]).unwrap();
    assert_eq!(linear.structure(), LevelStructure::LinearCent);
    let deci = parse(&[("0.0000", "1.0000", "0.0010")]).unwrap();
    assert_eq!(deci.structure(), LevelStructure::DeciCent);
    let tapered = parse(&[
        ("0.0000", "0.1000", "0.0010"),
        ("0.1000", "0.9000", "0.0100"),
        ("0.9000", "1.0000", "0.0010"),
    ])
    .unwrap();
    assert_eq!(tapered.structure(), LevelStructure::TaperedDeciCent);
    // Equivalent ranges written differently describe the same ladder.
    let split = parse(&[("0.01", "0.50", "0.01"), ("0.5", "0.99", "0.01")]).unwrap();
    assert_eq!(split.structure(), LevelStructure::LinearCent);
    // Parsed ranges (the local exchange's serde type) work too.
    for s in STRUCTURES {
        let l = MarketLadder::from_ranges(&s.ranges(), FeeRates::NONE).unwrap();
        assert_eq!(l.structure(), s);
        assert_eq!(l.ticks().prices(), ladder(s).ticks().prices());
    }
}

/// Ranges as `(start, end, step)`, the error they must give, and words its message must hold.
type ErrorCase = (&'static [(&'static str, &'static str, &'static str)], LadderError, &'static str);

#[test]
fn price_ranges_errors_name_the_bad_range() {
    let cases: [ErrorCase; 8] = [
        (&[], LadderError::NoRanges, "price_ranges is empty"),
        (
            &[("0.0000", "0.5000", "0.0100"), ("0.5000", "abc", "0.0100")],
            LadderError::BadNumber {
                range: 1,
                field: "end",
                text: "abc".into(),
                error: kalshi_proto::units::DecimalError::NotANumber,
            },
            "price_ranges[1].end \"abc\": not a decimal number",
        ),
        (
            &[("0.0000", "1.5000", "0.0100")],
            LadderError::BadNumber {
                range: 0,
                field: "end",
                text: "1.5000".into(),
                error: kalshi_proto::units::DecimalError::OutOfRange,
            },
            "price_ranges[0].end \"1.5000\": outside $0..$1",
        ),
        (
            &[("0.0000", "1.0000", "0.00001")],
            LadderError::BadNumber {
                range: 0,
                field: "step",
                text: "0.00001".into(),
                error: kalshi_proto::units::DecimalError::TooManyDecimals,
            },
            "price_ranges[0].step \"0.00001\"",
        ),
        (
            &[("0.0000", "1.0000", "0")],
            LadderError::ZeroStep { range: 0 },
            "price_ranges[0]: step is zero",
        ),
        (
            &[("0.0000", "0.1000", "0.0010"), ("0.9000", "0.1000", "0.0100")],
            LadderError::EmptyRange {
                range: 1,
                start: px("0.9"),
                end: px("0.1"),
            },
            "price_ranges[1] (start 0.9000, end 0.1000): start must be below end",
        ),
        (
            &[
                ("0.0000", "0.1000", "0.0010"),
                ("0.1000", "0.9000", "0.0300"),
                ("0.9000", "1.0000", "0.0010"),
            ],
            LadderError::StepDoesNotDivide {
                range: 1,
                start: px("0.1"),
                end: px("0.9"),
                step: px("0.03"),
            },
            "price_ranges[1] (start 0.1000, end 0.9000, step 0.0300): step does not divide the range",
        ),
        (
            &[("0.0000", "0.5000", "0.0100"), ("0.4000", "1.0000", "0.0100")],
            LadderError::NotAscending {
                range: 1,
                start: px("0.4"),
                previous_end: px("0.5"),
            },
            "price_ranges[1] starts at 0.4000, below the previous range's end 0.5000",
        ),
    ];
    for (list, want, message) in cases {
        let err = parse(list).unwrap_err();
        assert_eq!(err, want);
        assert!(err.to_string().contains(message), "{err} / {message}");
    }
    // Valid ranges for a ladder the shared TickLadder cannot index (a half-cent centre).
    let err = parse(&[
        ("0.0000", "0.1000", "0.0010"),
        ("0.1000", "0.9000", "0.0050"),
        ("0.9000", "1.0000", "0.0010"),
    ])
    .unwrap_err();
    assert_eq!(err, LadderError::Unsupported { prices: 99 + 161 + 99 });
    assert!(err.to_string().contains("none of linear_cent"));
}
