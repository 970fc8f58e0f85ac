//! The strategy core's cost per event: `Strategy::on_event` from a market-data event to its
//! commands (book update, model, risk and the execution diff), and `on_timer` for 4 markets.
//! Run: `cargo bench --bench strategy`. Target: on_event <= 150 ns.
//!
//! The strategy is driven as in production: a deterministic synthetic feed over 4 markets,
//! and every command answered by a venue stand-in (acks, some fills) so the order table keeps
//! live quotes to amend. Only the `on_event` (or `on_timer`) call itself is timed, with a TSC
//! pair around it; producing the event, answering the commands and feeding the answers back
//! through the strategy happen outside the timed part. Because every call is timed on its own,
//! the figures include one TSC read pair (printed as `timer overhead` with the distributions;
//! a few ns here).
//!
//! Besides criterion's means, the bench prints each case's distribution (an HdrHistogram of
//! per-call nanoseconds over a fixed 200,000-event pass).

use criterion::{criterion_group, criterion_main, Criterion};
use hdrhistogram::Histogram;
use kmm::event::{CommandBody, Event, EventBody, Stamp};
use kmm::logger::LogBody;
use kmm::metrics::{tsc, TscClock};
use kmm::risk::RiskBlock;
use kmm::strategy::{Commands, Strategy, StrategyConfig};
use kmm::testkit::{self, MiniVenue, SyntheticFeed};
use std::hint::black_box;
use std::time::Duration;

const MARKETS: usize = 4;
const NOW_MS: u64 = 1_780_000_000_000;
/// The live loop runs `on_timer` every 20 ms; the feed advances 5 ms per event.
const EVENTS_PER_TIMER: u32 = 4;

/// A strategy with its feed and venue, warmed up: books live, quotes resting.
struct Driver {
    s: Strategy,
    feed: SyntheticFeed,
    venue: MiniVenue,
    out: Commands,
    /// Answers waiting to go back into the strategy (preallocated, used as a FIFO).
    answers: Vec<EventBody>,
    since_timer: u32,
    /// What the last timed call emitted, read before its commands were answered.
    last: Emitted,
}

#[derive(Clone, Copy, Debug, Default)]
struct Emitted {
    commands: usize,
    /// Bit `code` set for each `RiskBlock` code noted.
    blocks: u8,
}

impl Emitted {
    fn of(out: &Commands) -> Emitted {
        let mut blocks = 0u8;
        for note in out.notes() {
            if let LogBody::RiskBlock { reason, .. } = *note {
                blocks |= 1 << reason.min(7);
            }
        }
        Emitted {
            commands: out.len(),
            blocks,
        }
    }
}

impl Driver {
    fn new(seed: u64) -> Driver {
        let cfg = kmm::config::Config::default();
        let s = Strategy::new(StrategyConfig::from_config(&cfg, 0x1234_5678), &testkit::setups(MARKETS, NOW_MS));
        let mut d = Driver {
            s,
            feed: SyntheticFeed::new(MARKETS, seed, NOW_MS),
            venue: MiniVenue::new(MARKETS, seed, 5),
            out: Commands::default(),
            answers: Vec::with_capacity(1024),
            since_timer: 0,
            last: Emitted::default(),
        };
        let mut snapshot = Vec::new();
        d.feed.start(|ev| snapshot.push(ev));
        for ev in &snapshot {
            d.s.on_event(ev, NOW_MS, &mut d.out);
            d.answer();
        }
        for _ in 0..20_000 {
            d.timed_event();
        }
        assert!(d.s.orders().open_count() > 0, "warm-up left quotes resting");
        assert!(d.s.killed().is_none(), "warm-up tripped the kill switch: {:?}", d.s.killed());
        d
    }

    /// Answers every command in `out`, and the commands those answers cause, like the
    /// exchange would (untimed).
    fn answer(&mut self) {
        let now = self.feed.now_ms;
        let mut head = 0;
        self.answers.clear();
        loop {
            for cmd in self.out.as_slice() {
                let answers = &mut self.answers;
                self.venue.answer(cmd, |body| {
                    if answers.len() < answers.capacity() {
                        answers.push(body)
                    }
                });
            }
            let Some(&body) = self.answers.get(head) else {
                return;
            };
            head += 1;
            let ev = Event {
                stamp: Stamp::default(),
                body,
            };
            self.s.on_event(&ev, now, &mut self.out);
        }
    }

    /// The next market-data event, with the timer passes the live loop would have run by then.
    fn next_event(&mut self) -> Event {
        self.since_timer += 1;
        if self.since_timer >= EVENTS_PER_TIMER {
            self.since_timer = 0;
            self.s.on_timer(self.feed.now_ms, &mut self.out);
            self.answer();
        }
        self.feed.next_event()
    }

    /// One market-data event through `on_event`: the TSC ticks of that call alone, and whether
    /// it led to an amend (a quote that followed the touch).
    fn timed_event(&mut self) -> (u64, bool) {
        let ev = self.next_event();
        let now = self.feed.now_ms;
        let t0 = tsc();
        self.s.on_event(black_box(&ev), now, &mut self.out);
        let t1 = tsc();
        let amend = self.out.as_slice().iter().any(|c| matches!(c, CommandBody::Amend { .. }));
        self.last = Emitted::of(&self.out);
        self.answer();
        (t1.wrapping_sub(t0), amend)
    }

    /// Ticks of the next event that led to an amend.
    fn timed_quote_change(&mut self) -> u64 {
        loop {
            let (ticks, amend) = self.timed_event();
            if amend {
                return ticks;
            }
        }
    }

    /// Ticks of one `on_timer` pass over all markets, after the market data of its interval.
    fn timed_timer(&mut self) -> u64 {
        for _ in 0..EVENTS_PER_TIMER {
            let ev = self.feed.next_event();
            self.s.on_event(&ev, self.feed.now_ms, &mut self.out);
            self.answer();
        }
        let now = self.feed.now_ms;
        let t0 = tsc();
        self.s.on_timer(black_box(now), &mut self.out);
        let t1 = tsc();
        self.answer();
        t1.wrapping_sub(t0)
    }
}

fn to_duration(clock: &TscClock, ticks: u64) -> Duration {
    Duration::from_nanos(clock.ticks_to_ns(ticks))
}

fn benches(c: &mut Criterion) {
    let clock = TscClock::calibrate(Duration::from_millis(20));
    distributions(&clock);

    let mut g = c.benchmark_group("strategy");
    let mut d = Driver::new(7);
    g.bench_function("on_event", |b| {
        b.iter_custom(|iters| {
            let mut ticks = 0u64;
            for _ in 0..iters {
                ticks += d.timed_event().0;
            }
            to_duration(&clock, ticks)
        })
    });
    // About one event in 40 leads to an amend, so the wall time per sample is ~40x the
    // figure: a shorter measurement keeps the run short.
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("on_event_quote_change", |b| {
        b.iter_custom(|iters| {
            let mut ticks = 0u64;
            for _ in 0..iters {
                ticks += d.timed_quote_change();
            }
            to_duration(&clock, ticks)
        })
    });
    g.bench_function("on_timer", |b| {
        b.iter_custom(|iters| {
            let mut ticks = 0u64;
            for _ in 0..iters {
                ticks += d.timed_timer();
            }
            to_duration(&clock, ticks)
        })
    });
    g.finish();
    let stats = d.s.stats();
    assert!(d.s.killed().is_none(), "the kill switch tripped during the bench");
    assert_eq!(stats.crossed_books, 0);
    println!(
        "strategy stats over the criterion runs: {} events, {} decisions, {} commands, {} risk blocks, {} fills",
        stats.events, stats.decisions, stats.commands, stats.risk_blocks, d.venue.fills
    );
}

/// Per-call distributions over a fixed pass, printed as percentiles in ns.
fn distributions(clock: &TscClock) {
    const EVENTS: usize = 200_000;
    let new_hist = || Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    let mut overhead = new_hist();
    for _ in 0..100_000 {
        let t0 = tsc();
        let t1 = black_box(tsc());
        overhead.record(clock.ticks_to_ns(t1.wrapping_sub(t0)).max(1)).unwrap();
    }
    let mut d = Driver::new(11);
    let (mut all, mut amends, mut timers) = (new_hist(), new_hist(), new_hist());
    let (mut with_commands, mut blocked_events) = (0u64, 0u64);
    let mut blocks = [0u64; 8];
    for _ in 0..EVENTS {
        let (ticks, amend) = d.timed_event();
        if d.last.commands > 0 {
            with_commands += 1;
        }
        if d.last.blocks != 0 {
            blocked_events += 1;
        }
        for (code, n) in blocks.iter_mut().enumerate() {
            if d.last.blocks & (1 << code) != 0 {
                *n += 1;
            }
        }
        let ns = clock.ticks_to_ns(ticks).max(1);
        all.record(ns).unwrap();
        if amend {
            amends.record(ns).unwrap();
        }
    }
    for _ in 0..EVENTS / 4 {
        timers.record(clock.ticks_to_ns(d.timed_timer()).max(1)).unwrap();
    }
    println!(
        "per-call ns over a {EVENTS}-event pass ({MARKETS} markets; TSC {:.3} ticks/ns):",
        clock.ticks_per_us / 1000.0
    );
    for (name, h) in [
        ("timer overhead (tsc pair)", &overhead),
        ("strategy/on_event", &all),
        ("strategy/on_event_quote_change", &amends),
        ("strategy/on_timer (4 markets)", &timers),
    ] {
        println!(
            "  {name:32} n={:7} mean={:7.1} p50={:6} p90={:6} p99={:6} p99.9={:6} max={:7}",
            h.len(),
            h.mean(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    }
    println!("  of {EVENTS} market-data events: {with_commands} emitted commands, {blocked_events} had a command blocked by risk:");
    for (code, n) in blocks.iter().enumerate().filter(|(_, n)| **n > 0) {
        let name = RiskBlock::from_code(code as u16).map_or("?", RiskBlock::name);
        println!("    {name}: {n} events");
    }
}

criterion_group!(strategy, benches);
criterion_main!(strategy);
