//! The io thread against a local exchange over TLS, in yield/park mode and unpinned: connect,
//! subscribe and snapshot; order entry and batching; seq-gap recovery; reconnect with resync;
//! shutdown leaving nothing resting. Waits use generous deadlines, never timing assertions.

use kalshi_proto::ladder::LevelStructure;
use kalshi_proto::ratelimit::Tier;
use kalshi_proto::units::Money;
use kalshi_proto::Side as ExSide;
use kmm::config::Config;
use kmm::connector::io::{self, Control, IoReport, IoSetup};
use kmm::connector::kalshi::rest::blocking::BlockingClient;
use kmm::connector::venue::{self, VenueConfig};
use kmm::event::{
    ClientRef, Command, CommandBody, Event, EventBody, MarketIdx, OrderId, OrderStatus, Price, Qty, Side, Stamp, TimeInForce,
};
use kmm::ladder::FeeRates;
use kmm::logger::{self, LogConfig, Logger};
use kmm::metrics::TscClock;
use kmm::poll::PollMode;
use kmm::runtime::{self, LiveStatus, StrategyControl};
use kmm::strategy::{MarketSetup, Strategy, StrategyConfig, Take};
use local_exchange::engine::{Exchange, ExchangeConfig, FeeType, MarketSpec, NewOrder};
use local_exchange::faults::Fault;
use local_exchange::server::{self, NoPopulation, RunningExchange, ServerConfig};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICKERS: [&str; 3] = ["IO-LIN", "IO-DECI", "IO-TAPER"];
const WAIT: Duration = Duration::from_secs(30);

fn spec(ticker: &str, structure: LevelStructure) -> MarketSpec {
    MarketSpec {
        ticker: ticker.into(),
        event_ticker: format!("{ticker}-EV"),
        series_ticker: "IO".into(),
        title: format!("io test {ticker}"),
        structure,
        fee_type: FeeType::Quadratic,
        fee_multiplier_e4: 10_000,
        open_ms: 0,
        close_ms: 3_600_000,
        settlement_timer_s: 60,
    }
}

struct Harness {
    _rt: tokio::runtime::Runtime,
    running: RunningExchange,
    lp: u32,
    events: rtrb::Consumer<Event>,
    commands: rtrb::Producer<Command>,
    control: crossbeam::channel::Sender<Control>,
    io: Option<std::thread::JoinHandle<anyhow::Result<IoReport>>>,
    rest: BlockingClient,
    seen: Vec<Event>,
    _logger: Logger,
}

fn start(poll: PollMode, preload: &[Command]) -> Harness {
    start_with(poll, preload, |_| {})
}

/// A fresh exchange with the three test markets and a liquidity account, on `rt`, and the
/// venue configuration of account 0 (written to an info file as a user would).
fn local_venue(rt: &tokio::runtime::Runtime) -> (RunningExchange, u32, VenueConfig, std::path::PathBuf) {
    let state_dir = std::env::temp_dir().join(format!(
        "kmm-io-test-{}-{}",
        std::process::id(),
        kalshi_proto::auth::random_key_id()
    ));
    let (running, lp) = rt.block_on(async {
        let mut ex = Exchange::new(ExchangeConfig::default());
        ex.add_market(spec(TICKERS[0], LevelStructure::LinearCent), 0);
        ex.add_market(spec(TICKERS[1], LevelStructure::DeciCent), 0);
        ex.add_market(spec(TICKERS[2], LevelStructure::TaperedDeciCent), 0);
        let lp = ex.add_account("lp".into(), Money::from_cents(1_000_000_000), true);
        let config = ServerConfig {
            accounts: 1,
            state_dir: state_dir.clone(),
            ..ServerConfig::default()
        };
        (server::start(config, ex, Box::new(NoPopulation), Vec::new()).await.unwrap(), lp)
    });
    let info_path = state_dir.join("info.json");
    server::write_info(&info_path, &running.info).unwrap();
    let mut venue = VenueConfig::from_info_file(&info_path, 0).unwrap();
    venue.tier = Tier::Advanced;
    assert!(!format!("{venue:?}").contains("PRIVATE KEY"), "the key must not show in Debug");
    (running, lp, venue, state_dir)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn start_with(poll: PollMode, preload: &[Command], tweak: impl FnOnce(&mut IoSetup)) -> Harness {
    let rt = runtime();
    let (running, lp, venue, state_dir) = local_venue(&rt);
    let rest = venue.blocking_client().unwrap();

    let clock = TscClock::calibrate(Duration::from_millis(20));
    let (logger, mut producers) = logger::start(
        LogConfig::new(state_dir.join("log")),
        &["io"],
        TICKERS.iter().map(|s| s.to_string()).collect(),
        clock,
    )
    .unwrap();
    let log = producers.remove(0);
    let (ev_tx, ev_rx) = rtrb::RingBuffer::new(1 << 14);
    let (mut cmd_tx, cmd_rx) = rtrb::RingBuffer::new(1024);
    // Commands visible together before the first pass: they must leave as one request.
    if !preload.is_empty() {
        let chunk = cmd_tx.write_chunk_uninit(preload.len()).unwrap();
        assert_eq!(chunk.fill_from_iter(preload.iter().copied()), preload.len());
    }
    let (ctl_tx, ctl_rx) = crossbeam::channel::unbounded();
    let mut setup = IoSetup::new(venue, TICKERS.iter().map(|s| s.to_string()).collect(), poll);
    setup.rest_pool = 2;
    setup.shutdown_grace = Duration::from_millis(300);
    tweak(&mut setup);
    let io = std::thread::Builder::new()
        .name("kmm-io-test".into())
        .spawn(move || io::run(setup, clock, ev_tx, cmd_rx, ctl_rx, log))
        .unwrap();
    Harness {
        _rt: rt,
        running,
        lp,
        events: ev_rx,
        commands: cmd_tx,
        control: ctl_tx,
        io: Some(io),
        rest,
        seen: Vec::new(),
        _logger: logger,
    }
}

fn command(body: CommandBody) -> Command {
    Command {
        body,
        cause: Stamp::default(),
        dequeued_tsc: 0,
        decided_tsc: 0,
    }
}

fn place(market: MarketIdx, client: u64, side: Side, price: u32) -> Command {
    command(CommandBody::Place {
        market,
        client: ClientRef(client),
        side,
        price: Price(price),
        qty: Qty(100),
        tif: TimeInForce::GoodTillCanceled,
        post_only: true,
    })
}

impl Harness {
    /// Waits for the first event (after those already consumed) matching `pred`.
    fn wait_for(&mut self, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Event {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Ok(ev) = self.events.pop() {
                self.seen.push(ev);
                if pred(&ev) {
                    return ev;
                }
            }
            if let Some(h) = &self.io {
                assert!(!h.is_finished(), "io thread ended while waiting for {what}");
            }
            assert!(Instant::now() < deadline, "no {what} within {WAIT:?}; saw {:#?}", self.seen);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Like [`wait_for`](Self::wait_for), but an event already consumed also counts.
    fn seen_or_wait(&mut self, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Event {
        if let Some(ev) = self.seen.iter().find(|e| pred(e)) {
            return *ev;
        }
        self.wait_for(what, pred)
    }

    fn send(&mut self, c: Command) {
        self.commands.push(c).unwrap();
    }

    fn ack_of(&mut self, client: u64) -> Event {
        self.wait_for("an ack", |e| {
            matches!(e.body, EventBody::OrderAck { client: c, .. } | EventBody::OrderReject { client: c, .. } if c == ClientRef(client))
        })
    }

    fn connected(&mut self) {
        self.wait_for("Connected", |e| {
            e.body
                == EventBody::Connected {
                    feed: kmm::event::Feed::Kalshi,
                }
        });
    }

    fn resting_at_exchange(&mut self) -> Vec<venue::RestOrder> {
        venue::fetch_resting_orders(&mut self.rest).unwrap()
    }

    fn lp_order(&self, ticker: &str, side: ExSide, price: &str, count: &str) {
        lp_order(&self.running, self.lp, ticker, side, price, count);
    }

    fn shutdown(&mut self) -> IoReport {
        self.control.send(Control::Shutdown).unwrap();
        let h = self.io.take().unwrap();
        let deadline = Instant::now() + WAIT;
        while !h.is_finished() {
            // Keep the ring drained so the grace period's events never stall the io thread.
            while let Ok(ev) = self.events.pop() {
                self.seen.push(ev);
            }
            assert!(Instant::now() < deadline, "io thread did not stop");
            std::thread::sleep(Duration::from_millis(2));
        }
        h.join().unwrap().unwrap()
    }
}

/// The liquidity account rests an order directly in the exchange's book.
fn lp_order(running: &RunningExchange, lp: u32, ticker: &str, side: ExSide, price: &str, count: &str) {
    running.shared.with_exchange(|ex, now| {
        let m = ex.market_by_ticker(ticker).unwrap();
        ex.place(
            now,
            NewOrder::limit(
                lp,
                m,
                side,
                kalshi_proto::units::Price::parse(price).unwrap(),
                kalshi_proto::units::Qty::parse(count).unwrap(),
            ),
        )
        .unwrap();
    });
}

fn acked_order(ev: &Event) -> (OrderId, OrderStatus) {
    match ev.body {
        EventBody::OrderAck { order, status, .. } => (order, status),
        other => panic!("expected an ack, got {other:?}"),
    }
}

#[test]
fn connects_subscribes_and_snapshots_every_market() {
    let mut h = start(PollMode::Yield, &[]);
    h.connected();
    let subscribed = h.seen.iter().filter(|e| matches!(e.body, EventBody::Subscribed { .. })).count();
    assert_eq!(subscribed, 6, "one sid per channel");
    for m in 0..TICKERS.len() as MarketIdx {
        h.seen_or_wait("a snapshot", |e| e.body == EventBody::BookSnapshotEnd { market: m });
        assert!(h.seen.iter().any(|e| e.body == EventBody::BookClear { market: m }));
        assert!(h
            .seen
            .iter()
            .any(|e| matches!(e.body, EventBody::Position { market, position, .. } if market == m && position == Qty(0))));
    }
    let report = h.shutdown();
    assert_eq!(report.resting_after_shutdown, 0);
    assert!(report.counters.frames > 0 && report.counters.events > 0);
    assert_eq!(report.counters.decode_errors, 0, "{report:?}");
}

#[test]
fn place_rests_cancel_removes_and_batches_coalesce() {
    // Three places visible at once: one batched create.
    let preload = [
        place(0, 1, Side::Bid, 1000),
        place(1, 2, Side::Bid, 1010),
        place(2, 3, Side::Ask, 9000),
    ];
    let mut h = start(PollMode::Park, &preload);
    let mut orders = Vec::new();
    for c in 1..=3 {
        let (order, status) = acked_order(&h.ack_of(c));
        assert_eq!(status, OrderStatus::Resting);
        assert_ne!(order, OrderId(0));
        orders.push(order);
    }
    h.connected();
    let resting = h.resting_at_exchange();
    assert_eq!(resting.len(), 3);
    for o in &orders {
        assert!(resting.iter().any(|r| r.order == *o), "order {o:?} rests at the exchange");
    }
    // A single place and a cancel.
    h.send(place(0, 4, Side::Bid, 1100));
    let (o4, status) = acked_order(&h.ack_of(4));
    assert_eq!(status, OrderStatus::Resting);
    h.send(command(CommandBody::Cancel {
        market: 0,
        client: ClientRef(4),
        order: o4,
    }));
    let ev = h.wait_for(
        "the cancel ack",
        |e| matches!(e.body, EventBody::OrderAck { order, status: OrderStatus::Canceled, .. } if order == o4),
    );
    assert!(matches!(ev.body, EventBody::OrderAck { remaining, .. } if remaining == Qty(0)));
    assert!(h.resting_at_exchange().iter().all(|r| r.order != o4));
    // Cancelling it again: the exchange says it is gone.
    h.send(command(CommandBody::Cancel {
        market: 0,
        client: ClientRef(4),
        order: o4,
    }));
    let again = h.ack_of(4);
    assert!(
        matches!(
            again.body,
            EventBody::OrderReject {
                reason: kmm::event::RejectReason::NotFound,
                ..
            }
        ),
        "{again:?}"
    );
    let report = h.shutdown();
    assert_eq!(report.counters.batched_creates, 1, "{report:?}");
    assert_eq!(report.resting_after_shutdown, 0);
    assert!(h.resting_at_exchange().is_empty(), "shutdown leaves nothing resting");
    assert!(report.counters.acks >= 5);
}

#[test]
fn a_batch_bigger_than_the_write_bucket_sends_what_fits_and_refuses_the_rest() {
    // The Basic tier's write bucket (90 tokens at kmm's 90% use, 18 kept for cancels) holds
    // seven creates: eight quotes decided at once used to be refused whole, on every retry,
    // so a session could start and never place an order.
    let preload: Vec<Command> = (1..=8).map(|c| place(0, c, Side::Bid, 1000 + c as u32 * 100)).collect();
    let mut h = start_with(PollMode::Yield, &preload, |s| s.venue.tier = Tier::Basic);
    let mut resting = Vec::new();
    let mut refused = Vec::new();
    for c in 1..=8 {
        // The refusal comes first, before the acks of the orders sent: look back too.
        let answer = h.seen_or_wait(
            "an answer",
            |e| matches!(e.body, EventBody::OrderAck { client, .. } | EventBody::OrderReject { client, .. } if client == ClientRef(c)),
        );
        match answer.body {
            EventBody::OrderAck { order, status, .. } => {
                assert_eq!(status, OrderStatus::Resting, "client {c}");
                resting.push(order);
            }
            EventBody::OrderReject { reason, http_status, .. } => {
                assert_eq!(
                    (reason, http_status),
                    (kmm::event::RejectReason::RateLimited, 0),
                    "client {c}: refused here, not by the exchange"
                );
                refused.push(c);
            }
            other => panic!("client {c}: {other:?}"),
        }
    }
    assert_eq!((resting.len(), refused.len()), (7, 1), "refused: {refused:?}");
    assert_eq!(refused, [8], "the head of the batch goes out, the tail waits");
    let report = h.shutdown();
    assert_eq!(report.counters.batched_creates, 1, "{report:?}");
    assert_eq!(report.counters.paced, 1, "{report:?}");
    assert_eq!(report.resting_after_shutdown, 0);
}

#[test]
fn seq_gap_goes_stale_then_fresh_snapshot() {
    let mut h = start(PollMode::Yield, &[]);
    h.connected();
    for m in 0..TICKERS.len() as MarketIdx {
        h.seen_or_wait("a snapshot", |e| e.body == EventBody::BookSnapshotEnd { market: m });
    }
    h.running.shared.apply_fault(&Fault::SkipSeq { count: 1 });
    // The next book change carries a skipped seq.
    h.lp_order(TICKERS[0], ExSide::Bid, "0.2000", "5.00");
    h.wait_for("Stale", |e| e.body == kmm::testkit::stale(0));
    let stale_at = h.seen.len();
    h.wait_for("a fresh snapshot", |e| e.body == EventBody::BookSnapshotEnd { market: 0 });
    // The fresh snapshot holds the level that revealed the gap.
    assert!(h.seen[stale_at..]
        .iter()
        .any(|e| matches!(e.body, EventBody::BookLevel { market: 0, side: Side::Bid, price, .. } if price == Price(2000))));
    let report = h.shutdown();
    assert!(report.counters.gaps >= 1 && report.counters.snapshot_requests >= 1, "{report:?}");
}

#[test]
fn dropped_connection_reconnects_resyncs_and_counts_each_fill_once() {
    // A long first backoff makes the outage wide enough for the fill to usually fall into it
    // (then the REST resync must recover it); wherever it falls, it must be counted once.
    let mut h = start_with(PollMode::Yield, &[], |s| s.backoff_initial = Duration::from_millis(500));
    h.connected();
    h.send(place(0, 7, Side::Bid, 3000));
    let (o7, _) = acked_order(&h.ack_of(7));
    h.send(place(1, 8, Side::Bid, 3000));
    let (o8, _) = acked_order(&h.ack_of(8));
    h.control.send(Control::DropConnection).unwrap();
    h.wait_for("Disconnected", |e| {
        e.body
            == EventBody::Disconnected {
                feed: kmm::event::Feed::Kalshi,
            }
    });
    let down_at = h.seen.len();
    h.lp_order(TICKERS[1], ExSide::Ask, "0.3000", "1.00");
    h.connected();
    let resync = &h.seen[down_at..];
    assert!(
        resync
            .iter()
            .any(|e| matches!(e.body, EventBody::OrderUpdate { order, status: OrderStatus::Resting, .. } if order == o7)),
        "resting order reported on resync"
    );
    assert!(resync.iter().any(|e| matches!(e.body, EventBody::Position { market: 1, .. })));
    // Let the stream settle, then count.
    h.send(place(2, 9, Side::Bid, 1000));
    h.ack_of(9);
    let report = h.shutdown();
    let fills: Vec<_> = h
        .seen
        .iter()
        .filter(|e| matches!(e.body, EventBody::Fill { order, .. } if order == o8))
        .collect();
    assert_eq!(fills.len(), 1, "one fill, counted once: {fills:#?}");
    assert!(report.counters.reconnects >= 1, "{report:?}");
    assert!(
        report.counters.fills_recovered + report.counters.fills_deduplicated <= 1,
        "{report:?}"
    );
    assert_eq!(report.resting_after_shutdown, 0);
    assert!(h.resting_at_exchange().is_empty());
}

#[test]
fn amends_on_the_heels_of_their_acks_wait_for_the_signer_instead_of_signing_inline() {
    let mut h = start(PollMode::Yield, &[]);
    // Connected: by then the fixed-path stock is made, so the create is stamped from it.
    h.connected();
    h.send(place(0, 1, Side::Bid, 1000));
    let (order, status) = acked_order(&h.ack_of(1));
    assert_eq!(status, OrderStatus::Resting);
    // Each amend leaves the moment the previous one is answered: the signer has had no
    // time to make the order's next amend signature.
    for (i, price) in [1100u32, 1200, 1300, 1400, 1500].into_iter().enumerate() {
        h.send(command(CommandBody::Amend {
            market: 0,
            client: ClientRef(1),
            order,
            side: Side::Bid,
            price: Price(price),
            total: Qty(100 + 100 * i as i64),
        }));
        let ev = h.ack_of(1);
        assert!(
            matches!(ev.body, EventBody::OrderAck { order: o, .. } if o == order),
            "amend {i}: {ev:?}"
        );
    }
    let resting = h.resting_at_exchange();
    assert_eq!(resting.len(), 1);
    assert_eq!(resting[0].price, Price(1500), "{resting:?}");
    let report = h.shutdown();
    assert_eq!(
        report.presign.order_misses, 0,
        "no amend may be signed on the io thread: {report:?}"
    );
    assert!(report.presign.hits >= 5, "{report:?}");
    assert_eq!(report.resting_after_shutdown, 0);
}

/// The take path end to end through the engine's own threads: the strategy thread, told to
/// take 8 contracts at up to 0.60 where only 5 are offered, sends an immediate-or-cancel; the
/// io thread writes it; the exchange fills 5 and cancels the other 3; the fill reaches the
/// strategy's account, the exchange's position and the fill journal, and nothing rests.
#[test]
fn a_take_from_the_strategy_thread_fills_what_rests_and_the_exchange_cancels_the_rest() {
    let rt = runtime();
    let (running, lp, venue, state_dir) = local_venue(&rt);
    // A bid as well, so the book has a mid for risk's price band.
    lp_order(&running, lp, TICKERS[0], ExSide::Ask, "0.60", "5");
    lp_order(&running, lp, TICKERS[0], ExSide::Bid, "0.55", "5");
    let mut rest = venue.blocking_client().unwrap();
    let tickers: Vec<String> = TICKERS.iter().map(|t| t.to_string()).collect();
    let setups: Vec<MarketSetup> = tickers
        .iter()
        .map(|t| {
            let m = venue::fetch_market(&mut rest, t, FeeRates::quadratic(10_000)).unwrap();
            MarketSetup {
                ticker: m.ticker,
                ladder: m.ladder,
                close_ts_ms: m.close_ts_ms,
            }
        })
        .collect();
    let mut cfg = Config::default();
    // Follow the markets and quote nothing: the take is the only order.
    cfg.modules.stoikov = false;
    let strategy = Strategy::new(StrategyConfig::from_config(&cfg, 77), &setups);
    let clock = TscClock::calibrate(Duration::from_millis(20));
    let log_dir = state_dir.join("log");
    let (logger, mut producers) = logger::start(LogConfig::new(log_dir.clone()), &["io", "strategy"], tickers.clone(), clock).unwrap();
    let strategy_log = producers.pop().unwrap();
    let io_log = producers.pop().unwrap();
    let (ev_tx, ev_rx) = rtrb::RingBuffer::new(1 << 14);
    let (cmd_tx, cmd_rx) = rtrb::RingBuffer::new(1024);
    let (io_control, io_control_rx) = crossbeam::channel::unbounded();
    let (strategy_control, strategy_control_rx) = crossbeam::channel::unbounded();
    let mut setup = IoSetup::new(venue, tickers, PollMode::Yield);
    setup.rest_pool = 2;
    setup.shutdown_grace = Duration::from_millis(300);
    let io = std::thread::spawn(move || io::run(setup, clock, ev_tx, cmd_rx, io_control_rx, io_log));
    let status = Arc::new(LiveStatus::default());
    let live = status.clone();
    let engine = std::thread::spawn(move || {
        runtime::strategy_loop(
            strategy,
            ev_rx,
            cmd_tx,
            strategy_control_rx,
            strategy_log,
            PollMode::Yield,
            clock,
            live,
        )
    });
    // The snapshots are in once the event count stops moving.
    let deadline = Instant::now() + WAIT;
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let n = status.events.load(Ordering::Relaxed);
        if n > 5 && n == last {
            break;
        }
        last = n;
        assert!(Instant::now() < deadline, "the strategy saw no snapshot");
    }
    let take = Take {
        side: Side::Bid,
        limit: Price(6_000),
        qty: Qty::from_contracts(8),
    };
    strategy_control.send(StrategyControl::Take { market: 0, take }).unwrap();
    let position = |rest: &mut BlockingClient| {
        venue::fetch_positions(rest)
            .unwrap()
            .into_iter()
            .find(|p| p.ticker == TICKERS[0])
            .map_or(Qty(0), |p| p.position)
    };
    while position(&mut rest) != Qty::from_contracts(5) {
        assert!(Instant::now() < deadline, "the exchange never showed the 5 bought");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        venue::fetch_resting_orders(&mut rest).unwrap().is_empty(),
        "an IOC leaves nothing resting"
    );
    io_control.send(Control::Shutdown).unwrap();
    io.join().unwrap().unwrap();
    let run = engine.join().unwrap();
    let s = run.strategy;
    assert_eq!(s.account(0).position, Qty::from_contracts(5), "the strategy booked the fill");
    assert_eq!(s.orders().open_count(), 0);
    let changes = s.stats().order_changes;
    assert_eq!(
        (changes.partly_filled, changes.cancelled, changes.executed),
        (1, 1, 0),
        "{changes:?}"
    );
    assert_eq!(s.stats().risk_blocks, 0);
    logger.stop().unwrap();
    let journal = std::fs::read_to_string(log_dir.join("fills.jsonl")).unwrap();
    let fills: Vec<&str> = journal.lines().collect();
    assert_eq!(fills.len(), 1, "{journal}");
    assert!(
        fills[0].contains("\"qty\":\"5.00\"") && fills[0].contains("\"taker\":\"true\""),
        "{journal}"
    );
    drop(running);
}
