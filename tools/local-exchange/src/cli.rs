//! The `local-exchange` command line, and [`launch`], which kmm uses to embed the exchange.

use crate::engine::{Exchange, MarketId};
use crate::flow::Flow;
use crate::scenario::Scenario;
use crate::server::{self, Population, RunningExchange, ServerConfig};
use anyhow::{bail, Context};
use clap::Parser;
use kalshi_proto::args::parse_duration;
use kalshi_proto::ratelimit::Tier;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Population for Flow {
    fn advance(&mut self, ex: &mut Exchange, until_ms: u64) {
        Flow::advance(self, ex, until_ms)
    }
    fn oracle_probability(&self, market: MarketId, now_ms: u64) -> f64 {
        Flow::oracle_probability(self, market, now_ms)
    }
    fn true_probability(&self, market: MarketId) -> f64 {
        Flow::true_probability(self, market)
    }
    fn next_due_ms(&self) -> Option<u64> {
        self.next_event_ms()
    }
}

#[derive(Parser, Debug, Clone)]
#[command(name = "local-exchange", version, about = "A protocol-faithful local Kalshi exchange on loopback")]
pub struct Args {
    /// Scenario TOML (see config/); the built-in calm scenario when omitted.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// TCP port; 0 picks a free one (read it from the info file).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on. Keep it on loopback: this is a test venue.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Number of keyed accounts (API keys) to create; key formats rotate RSA PKCS#1, RSA PKCS#8, Ed25519.
    #[arg(long, default_value_t = 2)]
    pub accounts: usize,
    /// Seed of the simulated order flow and true-probability paths.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long to run: 90, 90s, 15m, 2h. Default: the scenario's duration.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Write the connection info (URLs, CA file, key ids and key paths) as JSON here.
    #[arg(long)]
    pub info_file: Option<PathBuf>,
    /// Ground-truth journal (JSON lines): every order, cancel, trade, book change and true-probability step.
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Where keys and the CA file go (default: a fresh directory under the system temp dir).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Plain TCP instead of TLS.
    #[arg(long)]
    pub plain: bool,
    /// Rate-limit tier of the keyed accounts (overrides the scenario): basic, advanced, expert, premier, paragon, prime, prestige, unlimited.
    #[arg(long)]
    pub tier: Option<String>,
    /// Simulated seconds per wall second.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Accepted clock skew of request signatures, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub auth_window_ms: u64,
    /// Allow WebSocket connections without auth headers (public channels only).
    #[arg(long)]
    pub public_ws: bool,
    /// Run the simulation alone as fast as possible and print its market-quality report.
    #[arg(long)]
    pub headless: bool,
    /// No live status line.
    #[arg(long)]
    pub quiet: bool,
}

/// What [`launch`] needs beyond the scenario.
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    pub server: ServerConfig,
    pub journal: Option<PathBuf>,
    pub tier_override: Option<Tier>,
}

/// Builds the markets and simulated traders of `scenario` and starts the exchange on the
/// current tokio runtime.
pub async fn launch(scenario: &Scenario, mut opts: LaunchOptions) -> anyhow::Result<RunningExchange> {
    let mut ex = Exchange::new(scenario.exchange_config());
    // A live venue may run for days: keep the last million public trades for REST.
    ex.config.trade_history = 1_000_000;
    if let Some(path) = &opts.journal {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = std::fs::File::create(path).with_context(|| format!("creating journal {}", path.display()))?;
        ex.set_journal(Box::new(std::io::BufWriter::with_capacity(1 << 20, file)));
    }
    let flow = Flow::new(scenario, opts.server.seed, &mut ex);
    opts.server.account_cash = scenario.keyed_starting_cash();
    opts.server.tier = match opts.tier_override {
        Some(t) => t,
        None => Tier::parse(&scenario.exchange.rate_limit_tier).with_context(|| {
            format!(
                "[exchange] rate_limit_tier = {:?} is not a tier name",
                scenario.exchange.rate_limit_tier
            )
        })?,
    };
    opts.server.oracle_interval_ms = scenario.oracle.publish_interval_ms;
    let faults = scenario.faults.clone();
    let mut running = server::start(opts.server, ex, Box::new(flow), faults).await?;
    running.info.journal = opts.journal;
    Ok(running)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let scenario = match &args.scenario {
        Some(path) => Scenario::load(path)?,
        None => Scenario::default_calm(),
    };
    let duration = args.duration.unwrap_or(Duration::from_secs(scenario.session.duration_s));
    if args.headless {
        return run_headless(&args, &scenario, duration);
    }
    let tier_override = args
        .tier
        .as_deref()
        .map(|t| {
            Tier::parse(t)
                .with_context(|| format!("--tier {t:?}: use basic, advanced, expert, premier, paragon, prime, prestige or unlimited"))
        })
        .transpose()?;
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        bail!("--speed must be a positive number, got {}", args.speed);
    }
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("local-exchange-{}-{}", std::process::id(), args.seed)));
    let server = ServerConfig {
        bind: args.bind,
        port: args.port,
        tls: !args.plain,
        state_dir,
        accounts: args.accounts,
        auth_window_ms: args.auth_window_ms,
        speed: args.speed,
        seed: args.seed,
        public_ws_without_auth: args.public_ws,
        ..ServerConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("exchange-io")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut running = launch(
            &scenario,
            LaunchOptions {
                server,
                journal: args.journal.clone(),
                tier_override,
            },
        )
        .await?;
        if let Some(path) = &args.info_file {
            server::write_info(path, &running.info)?;
        }
        print_banner(&running, &scenario, duration, args.info_file.as_deref());
        let started = Instant::now();
        let mut status = StatusLine::new(args.quiet);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(1000)) => {}
                _ = tokio::signal::ctrl_c() => { eprintln!("\ninterrupted; stopping"); break; }
            }
            status.print(&running);
            if started.elapsed() >= duration {
                break;
            }
        }
        status.finish();
        running.stop()?;
        print_summary(&running);
        if let Some(path) = &args.info_file {
            // The venue is gone: don't leave clients a file pointing at a closed port.
            let _ = std::fs::remove_file(path);
        }
        Ok::<_, anyhow::Error>(())
    })
}

fn run_headless(args: &Args, scenario: &Scenario, duration: Duration) -> anyhow::Result<()> {
    let journal: Option<Box<dyn Write + Send>> = match &args.journal {
        Some(p) => Some(Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p).with_context(|| format!("creating journal {}", p.display()))?,
        ))),
        None => None,
    };
    eprintln!(
        "headless run of scenario {:?}, seed {}, {} simulated seconds",
        scenario.session.name,
        args.seed,
        duration.as_secs()
    );
    let report = crate::sim::run_headless(scenario, args.seed, duration.as_millis() as u64, journal)?;
    println!("{report}");
    Ok(())
}

fn print_banner(running: &RunningExchange, scenario: &Scenario, duration: Duration, info_file: Option<&std::path::Path>) {
    let i = &running.info;
    eprintln!(
        "local Kalshi exchange: scenario {:?}, seed {}, running for {:?}",
        scenario.session.name, i.seed, duration
    );
    eprintln!("  REST    {}", i.rest_url);
    eprintln!("  WS      {}", i.ws_url);
    eprintln!("  oracle  {} (WS {})", i.oracle_url, i.oracle_ws_url);
    if let Some(ca) = &i.ca_file {
        eprintln!("  CA      {}", ca.display());
    }
    for a in &i.accounts {
        eprintln!(
            "  account {} (internal {}) key {} ({}) at {}",
            a.index,
            a.account,
            a.key_id,
            a.key_type,
            a.private_key_path.display()
        );
    }
    eprintln!("  markets {}", i.markets.join(", "));
    if let Some(j) = &i.journal {
        eprintln!("  journal {}", j.display());
    }
    if let Some(f) = info_file {
        eprintln!("  info    {}", f.display());
    }
}

struct StatusLine {
    quiet: bool,
    tty: bool,
    last: Option<(Instant, u64, u64)>,
    printed: u64,
}

impl StatusLine {
    fn new(quiet: bool) -> StatusLine {
        StatusLine {
            quiet,
            tty: std::io::stderr().is_terminal(),
            last: None,
            printed: 0,
        }
    }

    fn print(&mut self, running: &RunningExchange) {
        if self.quiet {
            return;
        }
        let shared = &running.shared;
        let (trades, batches, markets) = {
            let v = shared.lock();
            let trades: u64 = v.exchange.markets.iter().map(|m| m.trade_count).sum();
            let markets: Vec<String> = v
                .exchange
                .markets
                .iter()
                .take(4)
                .map(|m| {
                    let bid = m.book.best_price(kalshi_proto::Side::Bid).map_or("-".into(), |p| p.dollars());
                    let ask = m.book.best_price(kalshi_proto::Side::Ask).map_or("-".into(), |p| p.dollars());
                    format!("{} {}/{} p*={:.3}", m.spec.ticker, bid, ask, v.population.true_probability(m.id))
                })
                .collect();
            (trades, v.batch_no, markets)
        };
        let now = Instant::now();
        let (trade_rate, batch_rate) = match self.last {
            Some((t, tr, b)) => {
                let dt = now.duration_since(t).as_secs_f64().max(1e-3);
                ((trades - tr) as f64 / dt, (batches - b) as f64 / dt)
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, trades, batches));
        let c = &shared.counters;
        let line = format!(
            "t={:>6.1}s trades={} ({:.0}/s) updates/s={:.0} rest={} ws={} ws_msgs={} | {}",
            shared.clock.now_ms() as f64 / 1000.0,
            trades,
            trade_rate,
            batch_rate,
            c.rest_requests.load(Ordering::Relaxed),
            c.ws_connections.load(Ordering::Relaxed),
            c.ws_messages.load(Ordering::Relaxed),
            markets.join(" | ")
        );
        self.printed += 1;
        if self.tty {
            eprint!("\r\x1b[2K{line}");
        } else if self.printed % 10 == 1 {
            // Logs are not terminals: a line every ten seconds instead of a redraw.
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        if self.tty && !self.quiet {
            eprintln!();
        }
    }
}

fn print_summary(running: &RunningExchange) {
    let v = running.shared.lock();
    let c = &running.shared.counters;
    eprintln!("session summary:");
    for m in &v.exchange.markets {
        eprintln!(
            "  {:<24} {:<10} trades {:>7} volume {:>12} open interest {:>10}",
            m.spec.ticker,
            m.status.rest_name(),
            m.trade_count,
            m.volume.fp(),
            m.open_interest.fp()
        );
    }
    eprintln!(
        "  REST requests {} (errors {}), WS connections {}, WS messages {}, orders {}",
        c.rest_requests.load(Ordering::Relaxed),
        c.rest_errors.load(Ordering::Relaxed),
        c.ws_connections.load(Ordering::Relaxed),
        c.ws_messages.load(Ordering::Relaxed),
        c.orders.load(Ordering::Relaxed)
    );
    match v.exchange.check_conservation(running.shared.deposited) {
        Ok(()) => eprintln!("  conservation check: ok"),
        Err(e) => eprintln!("  conservation check FAILED: {e}"),
    }
    if let Some(j) = &running.info.journal {
        eprintln!("  journal: {}", j.display());
    }
}

/// Entry point of the `local-exchange` binary.
pub fn main() -> std::process::ExitCode {
    main_from(std::env::args_os())
}

/// The same with explicit arguments (the first is the program name), for embedding binaries.
pub fn main_from<I, T>(args: I) -> std::process::ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match run(Args::parse_from(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local-exchange: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
