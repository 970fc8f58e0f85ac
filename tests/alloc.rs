//! Zero allocations on the hot path, proven with a counting global allocator.
//!
//! Allocations are counted per thread (a thread-local switch), so the test harness, the
//! feeding thread and the log thread do not pollute the figure. After a warm-up (first
//! snapshots, first orders: tables and slots are sized at construction, but some code paths
//! run for the first time there), the parse path and the strategy thread must allocate
//! nothing at all per event.

use kmm::connector::kalshi::interner::Interner;
use kmm::connector::kalshi::ws::decode::Decoder;
use kmm::event::{Channel, Command, Event, Stamp};
use kmm::logger::{self, LogConfig};
use kmm::metrics::TscClock;
use kmm::poll::PollMode;
use kmm::runtime::{self, LiveStatus};
use kmm::strategy::{Commands, Strategy, StrategyConfig};
use kmm::testkit::{self, MiniVenue, SyntheticFeed};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.try_with(Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.try_with(Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while `f` runs.
fn count_here(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

const NOW_MS: u64 = 1_780_000_000_000;

fn strategy(markets: usize) -> Strategy {
    let cfg = kmm::config::Config::default();
    Strategy::new(StrategyConfig::from_config(&cfg, 0x1234_5678), &testkit::setups(markets, NOW_MS))
}

/// Answers, like the exchange, every command in `out` (and the commands those answers
/// cause), from a fixed queue. Returns the number of commands.
fn answer_all(s: &mut Strategy, now_ms: u64, venue: &mut MiniVenue, out: &mut Commands) -> u64 {
    let mut queue = [kmm::testkit::connected(); 512];
    let (mut head, mut tail) = (0usize, 0usize);
    let mut commands = 0u64;
    loop {
        for cmd in out.as_slice() {
            commands += 1;
            venue.answer(cmd, |body| {
                if tail < queue.len() {
                    queue[tail] = body;
                    tail += 1;
                }
            });
        }
        if head == tail {
            return commands;
        }
        let ev = Event {
            stamp: Stamp::default(),
            body: queue[head],
        };
        head += 1;
        s.on_event(&ev, now_ms, out);
    }
}

/// Feeds `n` market-data events through the strategy, answering its commands.
fn drive(s: &mut Strategy, feed: &mut SyntheticFeed, venue: &mut MiniVenue, out: &mut Commands, n: usize) -> (u64, u64) {
    let mut commands = 0u64;
    for i in 0..n {
        let ev = feed.next_event();
        s.on_event(&ev, feed.now_ms, out);
        commands += answer_all(s, feed.now_ms, venue, out);
        if i % 8 == 0 {
            s.on_timer(feed.now_ms, out);
            commands += answer_all(s, feed.now_ms, venue, out);
        }
    }
    (commands, venue.fills)
}

#[test]
fn the_counter_sees_an_allocation() {
    let n = count_here(|| {
        std::hint::black_box(vec![1u8; 64]);
    });
    assert_eq!(n, 1, "the counting allocator must count, or the zero figures below mean nothing");
}

#[test]
fn the_strategy_core_allocates_nothing_per_event_after_warm_up() {
    let markets = 4;
    let mut s = strategy(markets);
    let mut feed = SyntheticFeed::new(markets, 7, NOW_MS);
    let mut venue = MiniVenue::new(markets, 7, 5);
    let mut out = Commands::default();
    let mut snapshot = Vec::new();
    feed.start(|ev| snapshot.push(ev));
    for ev in &snapshot {
        s.on_event(ev, NOW_MS, &mut out);
        answer_all(&mut s, NOW_MS, &mut venue, &mut out);
    }
    let (warm_cmds, _) = drive(&mut s, &mut feed, &mut venue, &mut out, 5_000);
    assert!(warm_cmds > 0, "the strategy quoted during warm-up");
    let mut measured = (0, 0);
    let allocations = count_here(|| measured = drive(&mut s, &mut feed, &mut venue, &mut out, 50_000));
    let (commands, fills) = measured;
    assert!(commands > 1_000, "the measured window exercised order paths: {commands} commands");
    assert!(fills > 10, "and fills: {fills}");
    assert_eq!(
        allocations, 0,
        "strategy on_event/on_timer allocated {allocations} times over 50,000 events"
    );
}

#[test]
fn the_parse_path_allocates_nothing_per_frame_after_warm_up() {
    let mut interner = Interner::with_capacity(16);
    interner.intern(b"KXHIGHNY-26JUN24-T82").unwrap();
    let mut d = Decoder::new(interner);
    d.register_subscribe(1, &[Channel::OrderbookDelta], &[0], false).unwrap();
    d.register_subscribe(2, &[Channel::Trade], &[0], false).unwrap();
    for f in [
        r#"{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}"#,
        r#"{"id":2,"type":"subscribed","msg":{"channel":"trade","sid":2}}"#,
    ] {
        d.decode(f.as_bytes(), Stamp::default(), &mut |_| {}).unwrap();
    }
    let snapshot = r#"{"type":"orderbook_snapshot","sid":1,"seq":1,"msg":{"market_ticker":"KXHIGHNY-26JUN24-T82","yes_dollars_fp":[["0.5500","120.00"],["0.5600","30.00"]],"no_dollars_fp":[["0.4200","75.00"]]}}"#;
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for seq in 2..20_002u64 {
        let text = if seq % 3 == 0 {
            format!(
                r#"{{"type":"trade","sid":2,"seq":{},"msg":{{"trade_id":"d91bc706-ee49-470d-82d8-11418bda6fed","market_ticker":"KXHIGHNY-26JUN24-T82","yes_price_dollars":"0.5600","no_price_dollars":"0.4400","count_fp":"3.00","taker_side":"yes","ts":1669149841}}}}"#,
                seq / 3
            )
        } else {
            format!(
                r#"{{"type":"orderbook_delta","sid":1,"seq":{},"msg":{{"market_ticker":"KXHIGHNY-26JUN24-T82","price_dollars":"0.5600","delta_fp":"{}","side":"yes","ts":"2026-06-24T15:49:55.033836Z"}}}}"#,
                seq - seq / 3,
                if seq % 2 == 0 { "1.00" } else { "-1.00" }
            )
        };
        frames.push(text.into_bytes());
    }
    let mut events = 0u64;
    d.decode(snapshot.as_bytes(), Stamp::default(), &mut |_| events += 1).unwrap();
    for f in &frames[..1000] {
        d.decode(f, Stamp::default(), &mut |_| events += 1).unwrap();
    }
    let allocations = count_here(|| {
        for f in &frames[1000..] {
            let _ = d.decode(f, Stamp::default(), &mut |_| events += 1);
        }
    });
    let c = d.counters();
    assert_eq!((c.malformed, c.seq_gaps, c.duplicates), (0, 0, 0), "{c:?}");
    assert!(events >= 20_000, "{events}");
    assert_eq!(allocations, 0, "decoding 19,000 frames allocated {allocations} times");
}

#[test]
fn the_strategy_thread_allocates_nothing_per_event_over_the_real_rings() {
    let markets = 4;
    let clock = TscClock::calibrate(Duration::from_millis(10));
    let dir = std::env::temp_dir().join(format!("kmm-alloc-{}", std::process::id()));
    let (log, mut producers) = logger::start(
        LogConfig::new(&dir),
        &["strategy"],
        testkit::setups(markets, NOW_MS).into_iter().map(|s| s.ticker).collect(),
        clock,
    )
    .unwrap();
    let (mut ev_tx, ev_rx) = rtrb::RingBuffer::<Event>::new(1 << 14);
    let (cmd_tx, mut cmd_rx) = rtrb::RingBuffer::<Command>::new(1 << 12);
    let (_control_tx, control_rx) = crossbeam::channel::unbounded();
    let status = Arc::new(LiveStatus::default());
    let s = strategy(markets);
    let log_producer = producers.pop().unwrap();
    let thread_status = status.clone();
    // The strategy thread counts its own allocations from its first instruction; the figure is
    // read before and after the measured window, once the rings are drained.
    let counted = Arc::new(AtomicU64::new(0));
    let handle = std::thread::spawn(move || {
        COUNTING.with(|c| c.set(true));
        let run = runtime::strategy_loop(s, ev_rx, cmd_tx, control_rx, log_producer, PollMode::Yield, clock, thread_status);
        COUNTING.with(|c| c.set(false));
        run
    });
    let mut feed = SyntheticFeed::new(markets, 11, NOW_MS);
    let mut venue = MiniVenue::new(markets, 11, 5);
    let push = |tx: &mut rtrb::Producer<Event>, ev: Event| {
        let mut ev = ev;
        loop {
            match tx.push(ev) {
                Ok(()) => return,
                Err(rtrb::PushError::Full(back)) => {
                    ev = back;
                    std::thread::yield_now();
                }
            }
        }
    };
    let pump =
        |n: usize, tx: &mut rtrb::Producer<Event>, rx: &mut rtrb::Consumer<Command>, feed: &mut SyntheticFeed, venue: &mut MiniVenue| {
            let mut commands = 0u64;
            for _ in 0..n {
                push(tx, feed.next_event());
                // One event at a time: wait for the strategy to take it, answering as we go.
                let mut spins = 0u32;
                loop {
                    let drained = tx.slots() == tx.buffer().capacity();
                    while let Ok(cmd) = rx.pop() {
                        commands += 1;
                        let mut answers = [kmm::testkit::connected(); 16];
                        let mut k = 0;
                        venue.answer(&cmd.body, |b| {
                            if k < answers.len() {
                                answers[k] = b;
                                k += 1;
                            }
                        });
                        for body in &answers[..k] {
                            push(
                                tx,
                                Event {
                                    stamp: Stamp::default(),
                                    body: *body,
                                },
                            );
                        }
                    }
                    spins += 1;
                    if drained && spins > 2 {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
            commands
        };
    let settle = |tx: &rtrb::Producer<Event>| {
        let t = Instant::now();
        while tx.slots() < tx.buffer().capacity() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The loop's timer and status passes run every 20-200 ms: let a few happen.
        std::thread::sleep(Duration::from_millis(300));
    };
    feed.start(|ev| push(&mut ev_tx, ev));
    let warm = pump(5_000, &mut ev_tx, &mut cmd_rx, &mut feed, &mut venue);
    settle(&ev_tx);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let measured = pump(30_000, &mut ev_tx, &mut cmd_rx, &mut feed, &mut venue);
    settle(&ev_tx);
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    counted.store(after - before, Ordering::SeqCst);
    drop(ev_tx);
    let run = handle.join().unwrap();
    let _ = log.stop();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(warm > 0 && measured > 500, "commands: warm-up {warm}, measured {measured}");
    assert!(status.events.load(Ordering::Relaxed) > 30_000);
    assert!(run.strategy.stats().events > 30_000);
    // Only this test's strategy thread and feeding thread count; the feeding thread never
    // switches counting on, so everything counted is the strategy thread's.
    assert_eq!(
        counted.load(Ordering::SeqCst),
        0,
        "the strategy thread allocated during the measured window"
    );
}

#[test]
fn the_io_warm_up_allocates_nothing_after_its_first_pass() {
    let mut w = kmm::connector::warm::Warmer::new(b"KXCALM-26JAN01-T50").unwrap();
    w.run();
    let n = count_here(|| {
        for _ in 0..10_000 {
            w.run_codec();
        }
    });
    assert_eq!(n, 0, "allocations in 10,000 warm-up passes");
    assert_eq!(w.frames_parsed(), 10_002, "every pass must take the whole parse path");
    // The TLS half allocates as rustls does per record (not counted: the counter is shared
    // with the tests running beside this one).
    w.run_tls();
}
