//! `kmm run`: one trading session from configuration to summary.
//!
//! Start-up (off the hot path, allowed to block and allocate): find the venue (the embedded
//! local exchange by default), choose markets, fetch their ladders, start the log thread,
//! then the io and strategy threads joined by rings. While running, the main thread shows a
//! status line and writes latency intervals. Shutdown: the strategy's kill switch cancels
//! everything it knows, the io thread cancels anything left and confirms over REST, and the
//! summary compares our position with the exchange's.

use crate::config::Config;
use crate::connector::io::{self as io, Control, IoCounters, IoSetup};
use crate::connector::venue::{self, VenueConfig};
use crate::embedded::EmbeddedVenue;
use crate::event::{Command, Event, MarketIdx, Money, Qty};
use crate::logger::{self, LogConfig};
use crate::metrics::{IntervalLog, Stage, StageHistograms, Summary, TscClock};
use crate::risk::KillReason;
use crate::runtime::{self, LiveStatus, StopFlag, StrategyControl, StrategyRun, ThreadPlan};
use crate::strategy::{MarketSetup, Strategy, StrategyConfig};
use anyhow::{bail, Context};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fees when the venue does not publish its series' schedule (the local exchange): Kalshi's
/// general quadratic taker fee.
const DEFAULT_FEES: crate::ladder::FeeRates = crate::ladder::FeeRates::quadratic(10_000);
const EVENT_RING: usize = 1 << 16;
const COMMAND_RING: usize = 1 << 12;
/// How long the strategy's own cancels get before the io thread's cancel-all sweeps up.
const CANCEL_GRACE: Duration = Duration::from_secs(3);

#[derive(Serialize, Debug, Clone)]
pub struct MarketSummary {
    pub ticker: String,
    pub position: String,
    pub exchange_position: Option<String>,
    pub position_matches: bool,
    pub fills: u32,
    pub volume: String,
    pub fees: String,
    pub pnl: String,
    pub mid: Option<String>,
}

/// The second feed's session: how much it delivered and how often it dropped.
#[derive(Serialize, Debug, Clone)]
pub struct OracleSummary {
    pub url: String,
    /// Readings the strategy took (one per market per publication).
    pub readings: u64,
    pub connects: u64,
    pub disconnects: u64,
    /// The newest reading: its market, probability and publish time (Unix ms).
    pub last: Option<(String, String, u64)>,
}

#[derive(Serialize, Debug, Clone)]
pub struct StageSummary {
    pub stage: &'static str,
    pub count: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

#[derive(Serialize, Debug, Clone)]
pub struct Paths {
    pub log: PathBuf,
    pub events: PathBuf,
    pub fills: PathBuf,
    pub hdr: PathBuf,
    pub summary_json: Option<PathBuf>,
}

#[derive(Serialize, Debug, Clone)]
pub struct RunSummary {
    pub venue: String,
    pub rest_url: String,
    pub poll: String,
    pub threads: String,
    pub seconds: f64,
    pub markets: Vec<MarketSummary>,
    pub pnl: String,
    pub fills: u64,
    pub positions_match: bool,
    pub open_orders_at_exchange: usize,
    pub kill_switch: Option<String>,
    /// The oracle feed, when one was read.
    pub oracle: Option<OracleSummary>,
    pub latency: Vec<StageSummary>,
    pub io: IoCounters,
    pub presign_misses: u64,
    /// Signatures the signer thread made ahead of their requests, and their mean cost: on a
    /// core it shares, the time an amend held for its order's signature waits.
    pub presign_signed_ahead: u64,
    pub presign_mean_sign_us: f64,
    pub events: u64,
    pub commands: u64,
    pub risk_blocks: u64,
    pub crossed_books: u64,
    pub log_records: u64,
    pub log_dropped: u64,
    pub paths: Paths,
}

/// Runs one session. Errors carry the step that failed.
pub fn run(cfg: Config) -> anyhow::Result<RunSummary> {
    let clock = TscClock::calibrate(Duration::from_millis(20));
    let stop = StopFlag::default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let plan = runtime::plan_threads(cores, cfg.poll, cfg.pin_io, cfg.pin_strategy, cfg.pin_others.as_deref(), cfg.no_pin)
        .map_err(anyhow::Error::msg)?;
    // Before the exchange, the rings and the threads exist, so all they map is locked as well.
    // A yielding or parked engine shares its cores anyway: page faults are not what it waits on.
    let memory = (cfg.lock_memory && plan.mode == crate::poll::PollMode::Spin).then(runtime::lock_memory);
    // Before any thread exists, so the exchange's runtime, the log thread and everything they
    // spawn inherit it; the hot threads pin themselves.
    let confined = runtime::confine_current(&plan.other_cores);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("kmm-exchange")
        .build()
        .context("starting the runtime of the embedded exchange")?;
    {
        let stop = stop.clone();
        tokio.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.stop();
            }
        });
    }
    std::fs::create_dir_all(&cfg.log_dir).with_context(|| format!("creating log directory {}", cfg.log_dir.display()))?;

    // --- the venue
    let mut embedded = None;
    let venue = if cfg.embedded_exchange() {
        let (running, info_path) = EmbeddedVenue::start(&cfg, &tokio)?;
        let v = VenueConfig::from_info_file(&info_path, cfg.account)?;
        embedded = Some(running);
        v
    } else if let Some(info) = &cfg.info_file {
        VenueConfig::from_info_file(info, cfg.account)?
    } else {
        let (rest, ws) = match (&cfg.rest_url, &cfg.ws_url, cfg.venue.default_urls()) {
            (Some(r), Some(w), _) => (r.clone(), w.clone()),
            (None, None, Some((r, w))) => (r.to_string(), w.to_string()),
            _ => bail!("no endpoints: give --rest-url and --ws-url, --info-file, or --venue demo|prod"),
        };
        let key_id = cfg.key_id.clone().context("--key-id is required for this venue")?;
        let key_file = cfg.key_file.as_ref().context("--key-file is required for this venue")?;
        let key_pem = crate::config::read_key_file(key_file)?;
        let ca_pem = match &cfg.ca_file {
            Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("reading CA file {} (--ca-file)", p.display()))?),
            None => None,
        };
        VenueConfig::new(rest, ws, ca_pem, key_id, key_pem)?
    };

    // --- markets and their ladders
    let mut rest = venue.blocking_client().context("connecting to the venue's REST API")?;
    let tickers = if cfg.markets.is_empty() {
        venue::list_open_markets(&mut rest, cfg.market_count).context("listing open markets")?
    } else {
        cfg.markets.clone()
    };
    if tickers.is_empty() {
        bail!("the venue lists no open markets to quote; name some with --markets");
    }
    let mut setups = Vec::with_capacity(tickers.len());
    for t in &tickers {
        let m = venue::fetch_market(&mut rest, t, DEFAULT_FEES).with_context(|| format!("fetching market {t}"))?;
        if m.status != "open" && m.status != "active" {
            eprintln!(
                "kmm: warning: market {t} is {:?}: it will be followed but not quoted until it opens",
                m.status
            );
        }
        setups.push(MarketSetup {
            ticker: m.ticker,
            ladder: m.ladder,
            close_ts_ms: m.close_ts_ms,
        });
    }

    // --- threads
    let mut banner = describe_plan(&plan, cores, confined);
    match &memory {
        Some(Ok(())) => banner.push_str(", memory locked"),
        Some(Err(why)) => banner = format!("{banner}, {why}"),
        None => {}
    }
    eprintln!(
        "kmm: {} venue {} | {} markets: {} | {} | for {}",
        cfg.venue.name(),
        venue.rest_url.as_str(),
        setups.len(),
        tickers.join(", "),
        banner,
        cfg.run_for()
            .map_or("until Ctrl-C".to_string(), |d| format!("{}s", d.as_secs_f64()))
    );

    let log_cfg = LogConfig::new(&cfg.log_dir);
    let (log, mut producers) = logger::start(log_cfg, &["io", "strategy"], tickers.clone(), clock).context("starting the log thread")?;
    let strategy_log = producers.pop().expect("two log producers");
    let io_log = producers.pop().expect("two log producers");

    let (event_tx, event_rx) = rtrb::RingBuffer::<Event>::new(EVENT_RING);
    let (command_tx, command_rx) = rtrb::RingBuffer::<Command>::new(COMMAND_RING);
    let (io_control_tx, io_control_rx) = crossbeam::channel::unbounded::<Control>();
    let (strategy_control_tx, strategy_control_rx) = crossbeam::channel::unbounded::<StrategyControl>();
    let (hist_tx, hist_rx) = crossbeam::channel::bounded::<StageHistograms>(2);
    let (spare_tx, spare_rx) = crossbeam::channel::bounded::<StageHistograms>(2);
    spare_tx.send(StageHistograms::new()).ok();
    spare_tx.send(StageHistograms::new()).ok();

    let nonce = session_nonce();
    let strategy = Strategy::new(StrategyConfig::from_config(&cfg, nonce), &setups);
    let status = Arc::new(LiveStatus::default());

    let mut io_setup = IoSetup::new(venue.clone(), tickers.clone(), plan.mode);
    io_setup.rest_pool = cfg.rest_connections;
    let oracle_url = if cfg.oracle {
        cfg.oracle_url.clone().or_else(|| venue.oracle_ws_url.clone())
    } else {
        None
    };
    io_setup.oracle_url = oracle_url.clone();
    io_setup.presign.worker_cores = plan.other_cores.clone();
    io_setup.histograms_out = Some((hist_tx, spare_rx));
    let io_core = plan.io_core;
    let io_thread = std::thread::Builder::new().name("kmm-io".into()).spawn(move || {
        runtime::pin_current(io_core);
        io::run(io_setup, clock, event_tx, command_rx, io_control_rx, io_log)
    })?;
    let strategy_core = plan.strategy_core;
    let strategy_status = status.clone();
    let mode = plan.mode;
    let strategy_thread = std::thread::Builder::new().name("kmm-strategy".into()).spawn(move || {
        runtime::pin_current(strategy_core);
        runtime::strategy_loop(
            strategy,
            event_rx,
            command_tx,
            strategy_control_rx,
            strategy_log,
            mode,
            clock,
            strategy_status,
        )
    })?;

    // --- while running: status line and latency intervals
    let hdr_path = cfg.hdr_out.clone().unwrap_or_else(|| cfg.log_dir.join("latency.hlog"));
    let hdr_file = std::fs::File::create(&hdr_path).with_context(|| format!("creating {}", hdr_path.display()))?;
    let mut hdr = IntervalLog::new(std::io::BufWriter::new(hdr_file))?;
    let mut total = StageHistograms::new();
    let mut window = StageHistograms::new();
    let mut recent = StageHistograms::new();
    let started = Instant::now();
    let mut interval_start = Instant::now();
    let deadline = cfg.run_for().map(|d| started + d);
    let tty = std::io::stderr().is_terminal() && !cfg.quiet;
    let mut last_status = Instant::now();
    let mut last_plain = Instant::now();
    loop {
        if stop.is_set() || deadline.is_some_and(|d| Instant::now() >= d) || io_thread.is_finished() || strategy_thread.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        while let Ok(h) = hist_rx.try_recv() {
            window.add(&h);
            let mut h = h;
            h.reset();
            spare_tx.send(h).ok();
        }
        if interval_start.elapsed() >= cfg.hdr_interval {
            hdr.write_interval(&window, interval_start)?;
            total.add(&window);
            window.reset();
            interval_start = Instant::now();
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = Instant::now();
            // Refilled in place: a fresh clone of the histograms every second would map and
            // unmap a megabyte, and each unmap interrupts the hot cores to flush their TLBs.
            recent.reset();
            recent.add(&total);
            recent.add(&window);
            let line = status_line(&status, &recent, started.elapsed());
            if tty {
                eprint!("\r\x1b[2K{line}");
            } else if !cfg.quiet && last_plain.elapsed() >= Duration::from_secs(10) {
                last_plain = Instant::now();
                eprintln!("{line}");
            }
        }
    }
    if tty {
        eprintln!();
    }

    // --- shutdown: our cancels first, then the io thread's sweep and confirmation
    eprintln!("kmm: stopping: cancelling every order");
    strategy_control_tx.send(StrategyControl::Kill(KillReason::Manual)).ok();
    let grace_end = Instant::now() + CANCEL_GRACE;
    while Instant::now() < grace_end && !io_thread.is_finished() {
        std::thread::sleep(Duration::from_millis(20));
        if status.open_orders.load(Ordering::Relaxed) == 0 {
            break;
        }
    }
    io_control_tx.send(Control::Shutdown).ok();
    let io_result = io_thread.join().map_err(|_| anyhow::anyhow!("the io thread panicked"))?;
    let StrategyRun { strategy, .. } = strategy_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the strategy thread panicked"))?;
    let io_report = io_result.context("io thread")?;
    while let Ok(h) = hist_rx.try_recv() {
        window.add(&h);
    }
    window.add(&io_report.hists);
    hdr.write_interval(&window, interval_start)?;
    total.add(&window);
    drop(hdr);
    let log_paths = log.paths.clone();
    let log_totals = log.stop().context("stopping the log thread")?;

    // --- what the exchange says
    let exchange_positions = venue::fetch_positions(&mut rest).context("fetching positions for the summary")?;
    let resting = venue::fetch_resting_orders(&mut rest).context("fetching resting orders for the summary")?;
    let open_at_exchange = resting.iter().filter(|o| tickers.iter().any(|t| t == &o.ticker)).count();

    let mut markets = Vec::new();
    let mut fills = 0u64;
    let mut all_match = true;
    for (i, ticker) in tickers.iter().enumerate() {
        let a = strategy.account(i as MarketIdx);
        let exch = exchange_positions
            .iter()
            .find(|p| &p.ticker == ticker)
            .map(|p| p.position)
            .unwrap_or(Qty(0));
        let matches = exch == a.position;
        all_match &= matches;
        fills += u64::from(a.fills);
        markets.push(MarketSummary {
            ticker: ticker.clone(),
            position: a.position.to_string(),
            exchange_position: Some(exch.to_string()),
            position_matches: matches,
            fills: a.fills,
            volume: a.volume.to_string(),
            fees: a.fees.dollars(4),
            pnl: a.pnl(strategy.mid(i as MarketIdx)).dollars(4),
            mid: strategy.mid(i as MarketIdx).map(|p| p.dollars()),
        });
    }
    let stats = strategy.stats();
    let summary = RunSummary {
        venue: cfg.venue.name().to_string() + if embedded.is_some() { " (embedded exchange)" } else { "" },
        rest_url: venue.rest_url.as_str().to_string(),
        poll: plan.mode.name().to_string(),
        threads: banner,
        seconds: started.elapsed().as_secs_f64(),
        markets,
        pnl: strategy.pnl().dollars(4),
        fills,
        positions_match: all_match,
        open_orders_at_exchange: open_at_exchange,
        kill_switch: strategy.killed().map(|k| format!("{k:?}")),
        oracle: oracle_url.map(|url| {
            let feed = io_report.oracle.unwrap_or_default();
            let last = (0..tickers.len())
                .filter_map(|i| strategy.oracle(i as MarketIdx).map(|r| (i, r)))
                .max_by_key(|(_, r)| r.received_ms)
                .map(|(i, r)| (tickers[i].clone(), r.probability.dollars(), r.publish_ms));
            OracleSummary {
                url,
                readings: stats.oracle_ticks,
                connects: feed.connects,
                disconnects: feed.disconnects,
                last,
            }
        }),
        latency: Stage::ALL
            .iter()
            .map(|&s| {
                let x = Summary::of(total.get(s));
                StageSummary {
                    stage: s.name(),
                    count: x.count,
                    p50_ns: x.p50,
                    p90_ns: x.p90,
                    p99_ns: x.p99,
                    p999_ns: x.p999,
                    max_ns: x.max,
                }
            })
            .collect(),
        io: io_report.counters,
        presign_misses: io_report.presign.misses,
        presign_signed_ahead: io_report.presign.signed_ahead,
        presign_mean_sign_us: io_report.presign.worker_sign_ns as f64 / 1e3 / io_report.presign.signed_ahead.max(1) as f64,
        events: stats.events,
        commands: stats.commands,
        risk_blocks: stats.risk_blocks,
        crossed_books: stats.crossed_books,
        log_records: log_totals.records,
        log_dropped: log_totals.dropped,
        paths: Paths {
            log: log_paths.human,
            events: log_paths.events,
            fills: log_paths.fills,
            hdr: hdr_path,
            summary_json: cfg.summary_json.clone(),
        },
    };
    if let Some(path) = &cfg.summary_json {
        let text = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(ex) = embedded {
        ex.stop()?;
    }
    tokio.shutdown_timeout(Duration::from_secs(1));
    Ok(summary)
}

fn describe_plan(plan: &ThreadPlan, cores: usize, confined: bool) -> String {
    let cores_text = |c: Option<usize>| c.map_or("unpinned".to_string(), |c| format!("core {c}"));
    let others = match (plan.other_cores.as_slice(), confined) {
        ([], _) => String::new(),
        (list, true) => {
            let list: Vec<String> = list.iter().map(|c| c.to_string()).collect();
            format!(", other threads on core {}", list.join(","))
        }
        (_, false) => ", other threads unconfined (the OS refused)".to_string(),
    };
    format!(
        "poll {} on {} cores: io {}, strategy {}{} ({})",
        plan.mode,
        cores,
        cores_text(plan.io_core),
        cores_text(plan.strategy_core),
        others,
        plan.reason
    )
}

fn session_nonce() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // Low bits of time and pid, mixed: unique enough that two sessions never share ids.
    let mut x = t ^ (u64::from(std::process::id()) << 40);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x | 1
}

fn status_line(s: &LiveStatus, hist: &StageHistograms, elapsed: Duration) -> String {
    let t2o = Summary::of(hist.get(Stage::TickToOrder));
    let px = |v: u64| {
        if v == 0 {
            "-".to_string()
        } else {
            crate::event::Price(v as u32).dollars()
        }
    };
    let kill = match s.kill.load(Ordering::Relaxed) {
        0 => String::new(),
        _ => " | KILL SWITCH".to_string(),
    };
    format!(
        "{:>5.0}s | P&L {} | pos {} (gross {}) | fills {} | open {} | quote {} / {} | tick-to-order p50 {} p99 {} (n={}){}",
        elapsed.as_secs_f64(),
        Money(s.pnl_micros.load(Ordering::Relaxed)).dollars(2),
        Qty(s.position_centi.load(Ordering::Relaxed)),
        Qty(s.gross_position_centi.load(Ordering::Relaxed)),
        s.fills.load(Ordering::Relaxed),
        s.open_orders.load(Ordering::Relaxed),
        px(s.bid.load(Ordering::Relaxed)),
        px(s.ask.load(Ordering::Relaxed)),
        micros(t2o.p50),
        micros(t2o.p99),
        t2o.count,
        kill
    )
}

fn micros(ns: u64) -> String {
    format!("{:.1}us", ns as f64 / 1000.0)
}

/// The end-of-run summary for people.
pub fn print_summary(s: &RunSummary, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "\n== kmm session summary ==")?;
    writeln!(out, "venue      {} ({})", s.venue, s.rest_url)?;
    writeln!(out, "threads    {}", s.threads)?;
    writeln!(
        out,
        "ran        {:.1}s, {} events, {} commands, {} risk blocks",
        s.seconds, s.events, s.commands, s.risk_blocks
    )?;
    writeln!(out, "P&L        {} (marked to mid), {} fills", s.pnl, s.fills)?;
    writeln!(
        out,
        "{:<28} {:>10} {:>10} {:>6} {:>9} {:>10} {:>10}",
        "market", "position", "exchange", "fills", "volume", "fees", "P&L"
    )?;
    for m in &s.markets {
        writeln!(
            out,
            "{:<28} {:>10} {:>10} {:>6} {:>9} {:>10} {:>10}{}",
            m.ticker,
            m.position,
            m.exchange_position.as_deref().unwrap_or("-"),
            m.fills,
            m.volume,
            m.fees,
            m.pnl,
            if m.position_matches { "" } else { "  MISMATCH" }
        )?;
    }
    writeln!(
        out,
        "positions  {} | orders left open at the exchange: {}",
        if s.positions_match {
            "match the exchange"
        } else {
            "DO NOT match the exchange"
        },
        s.open_orders_at_exchange
    )?;
    if let Some(k) = &s.kill_switch {
        writeln!(out, "kill switch {k}")?;
    }
    if let Some(o) = &s.oracle {
        let last = o
            .last
            .as_ref()
            .map_or("none".to_string(), |(t, p, ms)| format!("{t} at {p} (published {ms})"));
        writeln!(
            out,
            "oracle     {} readings, {} connection(s), {} drop(s); last {last} | {}",
            o.readings, o.connects, o.disconnects, o.url
        )?;
    }
    writeln!(
        out,
        "requests   {} sent ({} batched creates, {} batched cancels), {} held for their order's signature, {} signed on the io thread, {} paced, {} HTTP 429",
        s.io.requests,
        s.io.batched_creates,
        s.io.batched_cancels,
        s.io.held_for_signature,
        s.presign_misses,
        s.io.paced,
        s.io.http_429
    )?;
    writeln!(
        out,
        "signer     {} signatures made ahead, {:.0} us each on average",
        s.presign_signed_ahead, s.presign_mean_sign_us
    )?;
    writeln!(out, "latency (us)       count      p50      p90      p99    p99.9      max")?;
    for l in &s.latency {
        if l.count == 0 {
            continue;
        }
        writeln!(
            out,
            "  {:<16} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.1}",
            l.stage,
            l.count,
            l.p50_ns as f64 / 1e3,
            l.p90_ns as f64 / 1e3,
            l.p99_ns as f64 / 1e3,
            l.p999_ns as f64 / 1e3,
            l.max_ns as f64 / 1e3
        )?;
    }
    writeln!(
        out,
        "logs       {} | events {} | fills {}",
        s.paths.log.display(),
        s.paths.events.display(),
        s.paths.fills.display()
    )?;
    writeln!(
        out,
        "histograms {} (kmm latency-report {})",
        s.paths.hdr.display(),
        s.paths.hdr.display()
    )?;
    if let Some(p) = &s.paths.summary_json {
        writeln!(out, "summary    {}", p.display())?;
    }
    if s.log_dropped > 0 {
        writeln!(out, "log        {} records dropped on full rings", s.log_dropped)?;
    }
    Ok(())
}
