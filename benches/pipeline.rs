//! The in-process pipeline over the real rings: event ring -> `runtime::strategy_loop` ->
//! command ring, timed from the event's `parsed_tsc` stamp to the moment the io side pops the
//! command it caused. Run: `cargo bench --bench pipeline`. Target: p50 <= 1 us.
//!
//! The bench thread stands in for the io thread: it stamps a synthetic market-data event with
//! `parsed_tsc = tsc()`, pushes it and spins on the command ring, as the io thread's poll loop
//! does. The strategy thread is the real loop in spin mode with the real log thread behind
//! it. With 2+ cores the stand-in is pinned to core 0 and the strategy to core 1 (on a 2-core
//! box the two spinning threads fill the machine; the log thread and the OS preempt them now
//! and then, which shows in the tail).
//!
//! Events go one at a time, each followed by a no-op `Ticker` marker: once the marker has left
//! the ring, the strategy has finished the event and pushed all its commands, so the bench
//! knows the event caused none without a timeout. Only events that cause a command count (the
//! ones that move a touch our quote follows); each command is answered by a venue stand-in,
//! untimed, so quoting continues. Prints p50/p90/p99/p99.9 over 50,000 round trips, with the
//! stages inside (ring to strategy, decide, back to the io side), and criterion's mean.
//!
//! Then the same rig runs paced: each event waits [`PACED_GAP`] behind the last, the spacing of
//! the live feed's bursts, while the stand-in spins and the strategy spins and rehearses as it
//! does live. The ratio of the two p50s, from one run, is what the time between events costs
//! the same code on this host (`benches/host.rs` measures the host side of it alone).

use criterion::{criterion_group, criterion_main, Criterion};
use hdrhistogram::Histogram;
use kmm::event::{Command, Event, EventBody, Price, Stamp};
use kmm::logger::{self, LogConfig, Logger};
use kmm::metrics::{tsc, TscClock};
use kmm::poll::PollMode;
use kmm::runtime::{self, LiveStatus, StrategyControl, StrategyRun};
use kmm::strategy::{Strategy, StrategyConfig};
use kmm::testkit::{self, MiniVenue, SyntheticFeed};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MARKETS: usize = 4;
const ROUND_TRIPS: usize = 50_000;
const WARM_UP_EVENTS: usize = 20_000;
/// About the time between the live feed's bursts (the default scenario gives 40-50 a second).
const PACED_GAP: Duration = Duration::from_millis(20);
/// The paced phase stops at this many counted round trips or after [`PACED_FOR`].
const PACED_ROUND_TRIPS: usize = 200;
const PACED_FOR: Duration = Duration::from_secs(10);
/// A no-op for the strategy (no book, no decision): marks the end of a batch in the ring.
const MARKER: EventBody = EventBody::Ticker {
    market: 0,
    yes_bid: Price(0),
    yes_ask: Price(0),
    last: Price(0),
};

/// Stages of one counted round trip, in TSC ticks.
#[derive(Clone, Copy, Debug, Default)]
struct Trip {
    total: u64,
    to_strategy: u64,
    decide: u64,
    to_io: u64,
}

struct Rig {
    events: rtrb::Producer<Event>,
    commands: rtrb::Consumer<Command>,
    control: Option<crossbeam::channel::Sender<StrategyControl>>,
    strategy: Option<JoinHandle<StrategyRun>>,
    logger: Option<Logger>,
    log_dir: PathBuf,
    feed: SyntheticFeed,
    venue: MiniVenue,
    pinned: bool,
    /// Answers to push back, reused.
    answers: Vec<EventBody>,
    commands_seen: u64,
    warm_ticks: u64,
}

impl Rig {
    fn start(clock: TscClock) -> Rig {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let pin = cores.len() >= 2;
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let setups = testkit::setups(MARKETS, now_ms);
        let log_dir = std::env::temp_dir().join(format!("kmm-bench-pipeline-{}", std::process::id()));
        let (logger, mut producers) = logger::start(
            LogConfig::new(&log_dir),
            &["strategy"],
            setups.iter().map(|s| s.ticker.clone()).collect(),
            clock,
        )
        .unwrap();
        let cfg = kmm::config::Config::default();
        let strategy = Strategy::new(StrategyConfig::from_config(&cfg, 0x1234_5678), &setups);
        let (events, ev_rx) = rtrb::RingBuffer::<Event>::new(1 << 12);
        let (cmd_tx, commands) = rtrb::RingBuffer::<Command>::new(1 << 12);
        let (control, control_rx) = crossbeam::channel::unbounded();
        let log = producers.pop().unwrap();
        let handle = std::thread::Builder::new()
            .name("strategy".into())
            .spawn(move || {
                if pin {
                    runtime::pin_current(Some(1));
                }
                let status = Arc::new(LiveStatus::default());
                runtime::strategy_loop(strategy, ev_rx, cmd_tx, control_rx, log, PollMode::Spin, clock, status)
            })
            .unwrap();
        let pinned = pin && runtime::pin_current(Some(0));
        // The feed's clock is the strategy's: the loop stamps events with its own wall time.
        let mut rig = Rig {
            events,
            commands,
            control: Some(control),
            strategy: Some(handle),
            logger: Some(logger),
            log_dir,
            feed: SyntheticFeed::new(MARKETS, 7, now_ms),
            venue: MiniVenue::new(MARKETS, 7, 5),
            pinned,
            answers: Vec::with_capacity(1024),
            commands_seen: 0,
            warm_ticks: (clock.ticks_per_us * 50.0) as u64,
        };
        let mut snapshot = Vec::new();
        rig.feed.start(|ev| snapshot.push(ev));
        for ev in snapshot {
            rig.push(ev);
        }
        rig.settle(None);
        for _ in 0..WARM_UP_EVENTS {
            rig.step();
        }
        assert!(rig.commands_seen > 0, "the strategy quoted during warm-up");
        rig
    }

    fn push(&mut self, mut ev: Event) {
        loop {
            match self.events.push(ev) {
                Ok(()) => return,
                Err(rtrb::PushError::Full(back)) => {
                    ev = back;
                    std::hint::spin_loop();
                }
            }
        }
    }

    fn push_marker(&mut self) {
        self.push(Event {
            stamp: Stamp::default(),
            body: MARKER,
        });
    }

    /// Spins until the strategy has processed everything pushed so far and every command
    /// (and the commands caused by their answers) has been answered. Returns the stages of the
    /// first command caused by the event stamped `cause` (its `parsed_tsc`), if any.
    fn settle(&mut self, cause: Option<u64>) -> Option<Trip> {
        self.push_marker();
        let mut trip = None;
        let started = Instant::now();
        loop {
            while let Ok(cmd) = self.commands.pop() {
                let seen = tsc();
                if trip.is_none() && cause.is_some_and(|c| cmd.cause.parsed_tsc == c) {
                    let parsed = cmd.cause.parsed_tsc;
                    trip = Some(Trip {
                        total: seen.wrapping_sub(parsed),
                        to_strategy: cmd.dequeued_tsc.wrapping_sub(parsed),
                        decide: cmd.decided_tsc.wrapping_sub(cmd.dequeued_tsc),
                        to_io: seen.wrapping_sub(cmd.decided_tsc),
                    });
                }
                self.commands_seen += 1;
                let answers = &mut self.answers;
                self.venue.answer(&cmd.body, |body| answers.push(body));
            }
            if self.events.slots() == self.events.buffer().capacity() {
                // The marker is gone: every command of what came before it is in the ring.
                while let Ok(cmd) = self.commands.pop() {
                    self.commands_seen += 1;
                    let answers = &mut self.answers;
                    self.venue.answer(&cmd.body, |body| answers.push(body));
                }
                if self.answers.is_empty() {
                    return trip;
                }
            }
            if !self.answers.is_empty() {
                for i in 0..self.answers.len() {
                    let body = self.answers[i];
                    self.push(Event {
                        stamp: Stamp::default(),
                        body,
                    });
                }
                self.answers.clear();
                self.push_marker();
            }
            assert!(started.elapsed() < Duration::from_secs(5), "the strategy thread stopped answering");
            std::hint::spin_loop();
        }
    }

    /// One market-data event through the pipeline; the stages if it caused a command.
    fn step(&mut self) -> Option<Trip> {
        let mut ev = self.feed.next_event();
        ev.stamp.parsed_tsc = tsc();
        let cause = ev.stamp.parsed_tsc;
        self.push(ev);
        self.settle(Some(cause))
    }

    /// The next round trip that caused a command.
    fn round_trip(&mut self) -> Trip {
        loop {
            if let Some(t) = self.step() {
                return t;
            }
        }
    }

    /// The next round trip that caused a command, each event sent `gap` after the previous
    /// one settled. The stand-in spins on the clock meanwhile, touching nothing, as the io
    /// thread spins on its poll between bursts.
    fn paced_round_trip(&mut self, gap_ticks: u64) -> Trip {
        loop {
            let until = tsc() + gap_ticks;
            let mut next_warm = 0;
            loop {
                let now = tsc();
                if now >= until {
                    break;
                }
                if now >= next_warm {
                    // As the io thread does while it waits for the market.
                    runtime::warm_next_slots(&mut self.events, 8);
                    next_warm = now + self.warm_ticks;
                }
                std::hint::spin_loop();
            }
            if let Some(t) = self.step() {
                return t;
            }
        }
    }

    fn stop(&mut self) -> StrategyRun {
        self.control.take();
        // Dropping the producer closes the ring; the loop returns the strategy.
        let (dead, _) = rtrb::RingBuffer::<Event>::new(1);
        drop(std::mem::replace(&mut self.events, dead));
        let run = self.strategy.take().unwrap().join().unwrap();
        if let Some(log) = self.logger.take() {
            let _ = log.stop();
        }
        let _ = std::fs::remove_dir_all(&self.log_dir);
        run
    }
}

/// One histogram per stage of a round trip, in ns.
struct TripHists {
    total: Histogram<u64>,
    to_strategy: Histogram<u64>,
    decide: Histogram<u64>,
    to_io: Histogram<u64>,
}

impl TripHists {
    fn new() -> TripHists {
        let new_hist = || Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
        TripHists {
            total: new_hist(),
            to_strategy: new_hist(),
            decide: new_hist(),
            to_io: new_hist(),
        }
    }

    fn record(&mut self, t: &Trip, clock: TscClock) {
        for (h, ticks) in [
            (&mut self.total, t.total),
            (&mut self.to_strategy, t.to_strategy),
            (&mut self.decide, t.decide),
            (&mut self.to_io, t.to_io),
        ] {
            h.saturating_record(clock.ticks_to_ns(ticks).max(1));
        }
    }

    fn print(&self) {
        print_hist("event -> command", &self.total);
        print_hist("  ring to strategy", &self.to_strategy);
        print_hist("  decide (on_event)", &self.decide);
        print_hist("  ring to io", &self.to_io);
    }
}

fn print_hist(name: &str, h: &Histogram<u64>) {
    println!(
        "  {name:24} n={:6} mean={:7.0} p50={:6} p90={:6} p99={:6} p99.9={:7} max={:8}",
        h.len(),
        h.mean(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

fn pipeline(c: &mut Criterion) {
    let clock = TscClock::calibrate(Duration::from_millis(20));
    let mut rig = Rig::start(clock);

    let mut back_to_back = TripHists::new();
    let started = Instant::now();
    let events_before = rig.feed.now_ms;
    for _ in 0..ROUND_TRIPS {
        back_to_back.record(&rig.round_trip(), clock);
    }
    let events = (rig.feed.now_ms - events_before) / 5;
    println!(
        "pipeline: {ROUND_TRIPS} round trips (event parsed_tsc -> command popped on the io side) out of {events} market-data events \
         in {:.1} s; spin mode, {}; ns:",
        started.elapsed().as_secs_f64(),
        if rig.pinned {
            "io stand-in on core 0, strategy on core 1"
        } else {
            "unpinned"
        }
    );
    back_to_back.print();

    let mut paced = TripHists::new();
    let gap_ticks = (clock.ticks_per_us * PACED_GAP.as_micros() as f64) as u64;
    let paced_started = Instant::now();
    while paced.total.len() < PACED_ROUND_TRIPS as u64 && paced_started.elapsed() < PACED_FOR {
        paced.record(&rig.paced_round_trip(gap_ticks), clock);
    }
    println!(
        "paced: {} round trips, each event {} ms after the last; ns:",
        paced.total.len(),
        PACED_GAP.as_millis()
    );
    paced.print();
    let p50_ratio = |a: &Histogram<u64>, b: &Histogram<u64>| a.value_at_quantile(0.5) as f64 / b.value_at_quantile(0.5).max(1) as f64;
    println!(
        "paced / back-to-back p50: {:.1}x (event -> command), {:.1}x (decide)",
        p50_ratio(&paced.total, &back_to_back.total),
        p50_ratio(&paced.decide, &back_to_back.decide)
    );

    let mut g = c.benchmark_group("pipeline");
    // Most events cause no command, so the wall time per counted round trip is many times the
    // figure; keep the measurement short.
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(1));
    g.bench_function("event_to_command", |b| {
        b.iter_custom(|iters| {
            let mut ticks = 0u64;
            for _ in 0..iters {
                ticks += rig.round_trip().total;
            }
            Duration::from_nanos(clock.ticks_to_ns(ticks))
        })
    });
    g.finish();
    let run = rig.stop();
    let stats = run.strategy.stats();
    assert!(
        run.strategy.killed().is_none(),
        "the kill switch tripped: {:?}",
        run.strategy.killed()
    );
    assert_eq!(stats.crossed_books, 0);
    println!(
        "strategy thread: {} events, {} commands, {} command-ring stalls, {} fills",
        stats.events, stats.commands, run.command_ring_stalls, rig.venue.fills
    );
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
