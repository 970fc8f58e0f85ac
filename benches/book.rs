//! Order-book update and read costs on the strategy thread's hot path.
//! Run: `cargo bench --bench book`. Target: one delta <= 20 ns.
//!
//! Removing the best level cannot be timed alone without rebuilding the book, so those cases
//! time a pair (remove the best, then add it back as a new best): halve the figure per delta.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use kalshi_proto::ladder::LevelStructure;
use kmm::event::{EventBody, Price, Qty, Side};
use kmm::ladder::{FeeRates, MarketLadder, Tick};
use kmm::orderbook::{Apply, Book, Books};

/// A live book with `depth` levels of 100 contracts each side of the middle of the ladder.
fn book(structure: LevelStructure, depth: u16) -> Book {
    let mut book = Book::new(MarketLadder::from_structure(structure, FeeRates::quadratic(10_000)));
    let mid = book.ladder().len() as u16 / 2;
    book.clear();
    for k in 0..depth {
        let bid = book.ladder().price(Tick(mid - 1 - k));
        let ask = book.ladder().price(Tick(mid + 1 + k));
        book.snapshot_level(Side::Bid, bid, Qty::from_contracts(100));
        book.snapshot_level(Side::Ask, ask, Qty::from_contracts(100));
    }
    assert_eq!(book.snapshot_end(), Apply::Live);
    book
}

fn price(book: &Book, tick: u16) -> Price {
    book.ladder().price(Tick(tick))
}

fn deltas(c: &mut Criterion) {
    for (name, structure) in [("linear_cent", LevelStructure::LinearCent), ("deci_cent", LevelStructure::DeciCent)] {
        let mut g = c.benchmark_group(format!("delta/{name}"));

        // A level behind the best changes size; it never empties, so the best never moves.
        let mut b = book(structure, 20);
        let behind = price(&b, b.best_tick(Side::Bid).unwrap().0 - 5);
        let mut sign = 1;
        g.bench_function("non_best", |bench| {
            bench.iter(|| {
                sign = -sign;
                black_box(b.delta(Side::Bid, black_box(behind), Qty(sign * 100), false))
            })
        });

        // The best bid empties (scan to the next level, one tick below), then returns.
        let mut b = book(structure, 20);
        let (best, size) = b.top(Side::Bid).unwrap();
        g.bench_function("remove_best+add_best (pair)", |bench| {
            bench.iter(|| {
                black_box(b.delta(Side::Bid, black_box(best), -size, false));
                black_box(b.delta(Side::Bid, black_box(best), size, false))
            })
        });

        // As above, but the next level is far away: the scan crosses most of the bitmap.
        let mut b = book(structure, 1);
        let lowest = price(&b, 0);
        b.delta(Side::Bid, lowest, Qty::from_contracts(1), false);
        let (best, size) = b.top(Side::Bid).unwrap();
        g.bench_function("remove_best+add_best, next level far (pair)", |bench| {
            bench.iter(|| {
                black_box(b.delta(Side::Bid, black_box(best), -size, false));
                black_box(b.delta(Side::Bid, black_box(best), size, false))
            })
        });

        // The best ask moves in by one tick and back (add a new best, then remove it).
        let mut b = book(structure, 20);
        let inside = price(&b, b.best_tick(Side::Ask).unwrap().0 - 1);
        g.bench_function("add_best+remove_best (pair)", |bench| {
            bench.iter(|| {
                black_box(b.delta(Side::Ask, black_box(inside), Qty(700), true));
                black_box(b.delta(Side::Ask, black_box(inside), Qty(-700), true))
            })
        });
        g.finish();
    }
}

/// A replayable stream of realistic deltas near the top (random adds and removes, followed by
/// their inverses so the book returns to its start), applied through `Books::apply` exactly as
/// the strategy thread does: routing, event match and integrity checks included.
fn mixed_stream(c: &mut Criterion) {
    let mut books = Books::new([MarketLadder::from_structure(
        LevelStructure::LinearCent,
        FeeRates::quadratic(10_000),
    )]);
    let seed = book(LevelStructure::LinearCent, 10);
    books.apply(&EventBody::BookClear { market: 0 });
    for side in [Side::Bid, Side::Ask] {
        for (price, qty) in seed.levels(side) {
            books.apply(&EventBody::BookLevel {
                market: 0,
                side,
                price,
                qty,
            });
        }
    }
    assert_eq!(books.apply(&EventBody::BookSnapshotEnd { market: 0 }), Some(Apply::Live));

    let mid = seed.ladder().len() as u16 / 2;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut forward = Vec::new();
    let mut shadow = books[0].clone();
    while forward.len() < 2048 {
        let r = next();
        let side = if r & 1 == 0 { Side::Bid } else { Side::Ask };
        let k = ((r >> 1) % 12) as u16;
        let tick = match side {
            Side::Bid => mid - 1 - k,
            Side::Ask => mid + 1 + k,
        };
        let price = seed.ladder().price(Tick(tick));
        let have = shadow.qty_at(side, price).0;
        let delta = match (r >> 8) % 3 {
            0 => -have,
            1 => -(have / 3),
            _ => ((r >> 16) % 5_000) as i64 + 1,
        };
        let event = EventBody::BookDelta {
            market: 0,
            side,
            price,
            delta: Qty(delta),
            own: false,
        };
        assert!(matches!(shadow.apply(&event), Some(Apply::Delta { .. })));
        forward.push(event);
    }
    let undo: Vec<EventBody> = forward
        .iter()
        .rev()
        .map(|e| match *e {
            EventBody::BookDelta {
                market,
                side,
                price,
                delta,
                own,
            } => EventBody::BookDelta {
                market,
                side,
                price,
                delta: -delta,
                own,
            },
            _ => unreachable!(),
        })
        .collect();
    let stream: Vec<EventBody> = forward.into_iter().chain(undo).collect();

    let mut i = 0;
    c.bench_function("books.apply/mixed_top_of_book_stream", |bench| {
        bench.iter(|| {
            let r = books.apply(black_box(&stream[i]));
            i = (i + 1) % stream.len();
            black_box(r)
        })
    });
    assert!(books[0].is_live());
}

fn reads(c: &mut Criterion) {
    let b = book(LevelStructure::DeciCent, 20);
    let mut g = c.benchmark_group("read/deci_cent");
    g.bench_function("best_bid+best_ask", |bench| {
        bench.iter(|| (black_box(&b).best_bid(), black_box(&b).best_ask()))
    });
    g.bench_function("top(bid)", |bench| bench.iter(|| black_box(&b).top(Side::Bid)));
    g.bench_function("depth_within(bid, 5)", |bench| {
        bench.iter(|| black_box(&b).depth_within(Side::Bid, 5))
    });
    let l = b.ladder();
    let mid = Price(5_000);
    g.bench_function("taker_fee(order)", |bench| {
        bench.iter(|| l.taker_fee(black_box(mid), black_box(Qty(1_234))))
    });
    g.finish();
}

criterion_group!(benches, deltas, mixed_stream, reads);
criterion_main!(benches);
