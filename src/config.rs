//! The engine's configuration: a TOML file (see `config/kmm.toml`), then command-line flags
//! over it, then validation that names the key at fault and how to fix it.
//!
//! Quantities are exact decimals in the file as on the wire (`quote_size = "5"` or `5`), never
//! floats, so a limit of 0.01 contracts means exactly that.

use crate::event::Qty;
use crate::execution::ExecParams;
use crate::poll::PollMode;
use crate::risk::RiskLimits;
use crate::stoikov::StoikovParams;
use anyhow::{bail, Context};
use clap::{ArgAction, Args, Parser};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where orders go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VenueKind {
    /// The local Kalshi exchange started in-process (or one started on its own, given by
    /// `--info-file` or explicit URLs).
    Local,
    /// Kalshi's demo environment (play money, real protocol).
    Demo,
    /// Kalshi production: real money.
    Prod,
}

impl VenueKind {
    pub fn parse(text: &str) -> Option<VenueKind> {
        match text {
            "local" => Some(VenueKind::Local),
            "demo" => Some(VenueKind::Demo),
            "prod" => Some(VenueKind::Prod),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            VenueKind::Local => "local",
            VenueKind::Demo => "demo",
            VenueKind::Prod => "prod",
        }
    }

    /// Kalshi's published endpoints for the real venues.
    pub fn default_urls(self) -> Option<(&'static str, &'static str)> {
        match self {
            VenueKind::Local => None,
            VenueKind::Demo => Some((
                "https://demo-api.kalshi.co/trade-api/v2",
                "wss://demo-api.kalshi.co/trade-api/ws/v2",
            )),
            VenueKind::Prod => Some((
                "https://api.elections.kalshi.com/trade-api/v2",
                "wss://api.elections.kalshi.com/trade-api/ws/v2",
            )),
        }
    }
}

/// The V1 module switches. V2 modules add their own switch when they arrive; no switch exists
/// before its module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modules {
    /// Avellaneda-Stoikov quoting. Off: the engine follows the markets and its orders but
    /// places nothing (a monitor).
    pub stoikov: bool,
    /// Online volatility estimate; off: the configured prior is used throughout.
    pub vol_estimator: bool,
    /// Fill-intensity decay `k` estimated from trades; off: the configured `k`.
    pub k_estimator: bool,
}

/// Everything the engine needs to run, after file, flags and validation.
#[derive(Clone, Debug)]
pub struct Config {
    pub venue: VenueKind,
    /// Explicit endpoints (any Kalshi-protocol venue); `None` takes the venue's defaults or,
    /// for `local` without them, starts the embedded exchange.
    pub rest_url: Option<String>,
    pub ws_url: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub key_id: Option<String>,
    pub key_file: Option<PathBuf>,
    /// A running local exchange's info file (URLs, CA, keys).
    pub info_file: Option<PathBuf>,
    /// The oracle feed's WebSocket URL (the seed's External_Oracle); `None` takes the local
    /// exchange's from its info file, or runs without an oracle.
    pub oracle_url: Option<String>,
    /// Whether to read an oracle feed at all (`--no-oracle`: the info file's is ignored).
    pub oracle: bool,
    /// Which of the local exchange's accounts to trade as.
    pub account: usize,
    /// Confirmation that a real venue may be traded.
    pub confirm_live: bool,
    /// Scenario of the embedded exchange (`None`: the built-in calm one).
    pub scenario: Option<PathBuf>,
    pub seed: u64,
    /// Tickers to quote; empty: the first `market_count` open markets of the venue.
    pub markets: Vec<String>,
    pub market_count: usize,
    pub duration: Option<Duration>,
    pub poll: Option<PollMode>,
    pub pin_io: Option<usize>,
    pub pin_strategy: Option<usize>,
    /// Cores for every other thread (embedded exchange, signer, log thread); `None`: chosen
    /// from the hot threads' pins (see `runtime::plan_threads`).
    pub pin_others: Option<Vec<usize>>,
    pub no_pin: bool,
    /// Lock the process's memory in spin mode (`mlockall`), so no hot-path access page-faults.
    pub lock_memory: bool,
    pub modules: Modules,
    pub stoikov: StoikovParams,
    pub quote_size: Qty,
    pub vol_prior_sigma2_per_s: f64,
    pub vol_alpha: f64,
    pub risk: RiskLimits,
    pub exec: ExecParams,
    pub rest_connections: usize,
    pub log_dir: PathBuf,
    pub hdr_out: Option<PathBuf>,
    pub hdr_interval: Duration,
    pub summary_json: Option<PathBuf>,
    /// No live status line.
    pub quiet: bool,
}

// ---------------------------------------------------------------- the file

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    venue: VenueSection,
    #[serde(default)]
    run: RunSection,
    #[serde(default)]
    modules: ModulesSection,
    #[serde(default)]
    stoikov: StoikovSection,
    #[serde(default)]
    risk: RiskSection,
    #[serde(default)]
    execution: ExecSection,
    #[serde(default)]
    output: OutputSection,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct VenueSection {
    kind: Option<String>,
    rest_url: Option<String>,
    ws_url: Option<String>,
    ca_file: Option<PathBuf>,
    key_id: Option<String>,
    key_file: Option<PathBuf>,
    info_file: Option<PathBuf>,
    oracle_url: Option<String>,
    oracle: Option<bool>,
    account: Option<usize>,
    scenario: Option<PathBuf>,
    seed: Option<u64>,
    rest_connections: Option<usize>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct RunSection {
    markets: Option<Vec<String>>,
    market_count: Option<usize>,
    duration: Option<String>,
    poll: Option<String>,
    pin_io: Option<usize>,
    pin_strategy: Option<usize>,
    pin_others: Option<Vec<usize>>,
    no_pin: Option<bool>,
    lock_memory: Option<bool>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct ModulesSection {
    stoikov: Option<bool>,
    vol_estimator: Option<bool>,
    k_estimator: Option<bool>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct StoikovSection {
    gamma: Option<f64>,
    k: Option<f64>,
    horizon_s: Option<f64>,
    min_half_spread_ticks: Option<u16>,
    quote_size: Option<Decimal>,
    vol_prior_sigma2_per_s: Option<f64>,
    vol_alpha: Option<f64>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct RiskSection {
    max_position: Option<Decimal>,
    max_order_size: Option<Decimal>,
    price_band_ticks: Option<u16>,
    max_open_orders: Option<u16>,
    max_rejects: Option<u16>,
    reject_window_ms: Option<u64>,
    stale_after_ms: Option<u64>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct ExecSection {
    min_size_change: Option<Decimal>,
    min_price_move_ticks: Option<u16>,
    inflight_timeout_ms: Option<u64>,
    reject_backoff_ms: Option<u64>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct OutputSection {
    log_dir: Option<PathBuf>,
    hdr_out: Option<PathBuf>,
    hdr_interval_ms: Option<u64>,
    summary_json: Option<PathBuf>,
    quiet: Option<bool>,
}

/// A count or price as the user wrote it: an integer or a decimal string, never a float.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum Decimal {
    Int(i64),
    Text(String),
}

impl Decimal {
    fn qty(&self, key: &str) -> anyhow::Result<Qty> {
        match self {
            Decimal::Int(n) => Qty::checked_from_contracts(*n).with_context(|| format!("{key} = {n} is out of range")),
            Decimal::Text(s) => Qty::parse(s).map_err(|e| {
                anyhow::anyhow!("{key} = {s:?} is not a contract count ({e}); write it like 10 or \"2.50\" (at most 2 decimals)")
            }),
        }
    }
}

// ---------------------------------------------------------------- the flags

/// `kmm [run] [OPTIONS]`: trade. With no venue configured, starts the local Kalshi exchange
/// in-process and trades against it.
#[derive(Parser, Debug, Default, Clone)]
#[command(
    name = "kmm",
    version,
    about = "Low-latency hybrid maker/taker market maker for Kalshi binary contracts"
)]
pub struct RunArgs {
    /// TOML configuration (see config/kmm.toml); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// local (default: the embedded exchange, or one given by --info-file / URLs), demo, prod.
    #[arg(long)]
    pub venue: Option<String>,
    /// Required with --venue demo or prod: you accept that kmm places real orders.
    #[arg(long)]
    pub confirm_live: bool,
    /// REST base URL of any Kalshi-protocol venue, e.g. https://127.0.0.1:8443/trade-api/v2.
    #[arg(long)]
    pub rest_url: Option<String>,
    /// WebSocket URL, e.g. wss://127.0.0.1:8443/trade-api/ws/v2.
    #[arg(long)]
    pub ws_url: Option<String>,
    /// PEM CA certificate to trust (a local exchange's); real venues use the web PKI.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// API key id.
    #[arg(long)]
    pub key_id: Option<String>,
    /// PEM private key (RSA PKCS#1/PKCS#8 or Ed25519).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Info file of a local exchange started on its own (`kmm exchange --info-file F`).
    #[arg(long)]
    pub info_file: Option<PathBuf>,
    /// WebSocket URL of an oracle feed (wss://...): a second feed, read beside Kalshi's. Default:
    /// the local exchange's (from its info file), none for other venues.
    #[arg(long)]
    pub oracle_url: Option<String>,
    /// Read no oracle feed, not even the local exchange's.
    #[arg(long)]
    pub no_oracle: bool,
    /// Which account of the local exchange's info file to trade as.
    #[arg(long)]
    pub account: Option<usize>,
    /// Scenario TOML of the embedded exchange (config/*.toml).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Seed of the embedded exchange's simulated traders.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Markets to quote, comma separated; default: the first --market-count open markets.
    #[arg(long, value_delimiter = ',')]
    pub markets: Option<Vec<String>>,
    /// How many open markets to quote when --markets is not given.
    #[arg(long)]
    pub market_count: Option<usize>,
    /// How long to trade: 90, 90s, 15m, 2h.
    #[arg(long)]
    pub duration: Option<String>,
    /// spin, yield or park (default: spin with 4+ cores, else yield).
    #[arg(long)]
    pub poll: Option<String>,
    /// Core for the io thread.
    #[arg(long)]
    pub pin_io: Option<usize>,
    /// Core for the strategy thread.
    #[arg(long)]
    pub pin_strategy: Option<usize>,
    /// Cores for every other thread (embedded exchange, signer, log thread), e.g. 0 or 2,3;
    /// default: the cores the hot threads leave, else the strategy's.
    #[arg(long, value_delimiter = ',')]
    pub pin_others: Option<Vec<usize>>,
    /// Never pin threads.
    #[arg(long)]
    pub no_pin: bool,
    /// Lock and pre-fault the process's memory in spin mode (default on).
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "no_lock_memory")]
    pub lock_memory: bool,
    /// Leave memory unlocked in spin mode.
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "lock_memory")]
    pub no_lock_memory: bool,
    #[command(flatten)]
    pub modules: ModuleFlags,
    /// Risk aversion gamma, per dollar per contract.
    #[arg(long)]
    pub gamma: Option<f64>,
    /// Fill-intensity decay k, per dollar.
    #[arg(long)]
    pub k: Option<f64>,
    /// Inventory holding horizon, seconds.
    #[arg(long)]
    pub horizon: Option<f64>,
    /// Never quote inside this many ticks of the reservation price.
    #[arg(long)]
    pub min_half_spread_ticks: Option<u16>,
    /// Contracts per quote.
    #[arg(long)]
    pub quote_size: Option<String>,
    /// Position limit per market, counting resting and in-flight orders.
    #[arg(long)]
    pub max_position: Option<String>,
    /// Largest single order.
    #[arg(long)]
    pub max_order_size: Option<String>,
    /// Furthest an order may be from the reference price, in ticks.
    #[arg(long)]
    pub price_band_ticks: Option<u16>,
    /// Most orders open at once across all markets.
    #[arg(long)]
    pub max_open_orders: Option<u16>,
    /// Kill switch: market data older than this while quoting.
    #[arg(long)]
    pub stale_after_ms: Option<u64>,
    /// Directory of the human log, event log and fill journal.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// HdrHistogram interval log of the per-stage latencies.
    #[arg(long)]
    pub hdr_out: Option<PathBuf>,
    /// Write the end-of-run summary as JSON here.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// No live status line.
    #[arg(long)]
    pub quiet: bool,
}

/// `--<module>` / `--no-<module>`: the last one given wins; neither leaves the file's choice.
#[derive(Args, Debug, Default, Clone)]
pub struct ModuleFlags {
    /// Avellaneda-Stoikov quoting (default on).
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "no_stoikov")]
    pub stoikov: bool,
    /// Follow markets and orders but place nothing.
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "stoikov")]
    pub no_stoikov: bool,
    /// Estimate volatility online (default on).
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "no_vol_estimator")]
    pub vol_estimator: bool,
    /// Use the configured volatility prior throughout.
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "vol_estimator")]
    pub no_vol_estimator: bool,
    /// Estimate the fill-intensity decay k from trades (default off).
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "no_k_estimator")]
    pub k_estimator: bool,
    /// Use the configured k.
    #[arg(long, action = ArgAction::SetTrue, overrides_with = "k_estimator")]
    pub no_k_estimator: bool,
}

fn switch(on: bool, off: bool) -> Option<bool> {
    match (on, off) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

/// Parses `90`, `90s`, `1500ms`, `15m`, `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    kalshi_proto::args::parse_duration(text)
}

// ---------------------------------------------------------------- defaults

impl Default for Config {
    fn default() -> Self {
        Config {
            venue: VenueKind::Local,
            rest_url: None,
            ws_url: None,
            ca_file: None,
            key_id: None,
            key_file: None,
            info_file: None,
            oracle_url: None,
            oracle: true,
            account: 0,
            confirm_live: false,
            scenario: None,
            seed: 1,
            markets: Vec::new(),
            market_count: 4,
            duration: None,
            poll: None,
            pin_io: None,
            pin_strategy: None,
            pin_others: None,
            no_pin: false,
            lock_memory: true,
            modules: Modules {
                stoikov: true,
                vol_estimator: true,
                k_estimator: false,
            },
            // k = 300 per dollar puts the liquidity half-spread at a third of a cent, so on a
            // one-cent market the quotes join the touch rather than sit a tick behind it.
            stoikov: StoikovParams {
                k: 300.0,
                ..StoikovParams::default()
            },
            quote_size: Qty::from_contracts(5),
            vol_prior_sigma2_per_s: 0.0004,
            vol_alpha: 0.05,
            risk: RiskLimits::default(),
            exec: ExecParams::default(),
            rest_connections: 3,
            log_dir: PathBuf::from("target/kmm-run"),
            hdr_out: None,
            hdr_interval: Duration::from_secs(5),
            summary_json: None,
            quiet: false,
        }
    }
}

/// The embedded exchange's default session length when nothing is said: long enough to see
/// quotes, fills and a latency distribution, short enough for a first run.
pub const DEFAULT_LOCAL_DURATION: Duration = Duration::from_secs(60);

impl Config {
    /// The file (if any), then the flags, then validation.
    pub fn load(args: &RunArgs) -> anyhow::Result<Config> {
        let mut cfg = Config::default();
        if let Some(path) = &args.config {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
            cfg.apply_file(&text)
                .with_context(|| format!("in config file {}", path.display()))?;
        }
        cfg.apply_flags(args)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Applies a TOML text over the current values.
    pub fn apply_file(&mut self, text: &str) -> anyhow::Result<()> {
        let file: FileConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        let v = file.venue;
        if let Some(kind) = v.kind {
            self.venue = VenueKind::parse(&kind)
                .with_context(|| format!("[venue] kind = {kind:?} is not a venue; use \"local\", \"demo\" or \"prod\""))?;
        }
        set(&mut self.rest_url, v.rest_url);
        set(&mut self.ws_url, v.ws_url);
        set(&mut self.ca_file, v.ca_file);
        set(&mut self.key_id, v.key_id);
        set(&mut self.key_file, v.key_file);
        set(&mut self.info_file, v.info_file);
        set(&mut self.oracle_url, v.oracle_url);
        set_bool(&mut self.oracle, v.oracle);
        if let Some(a) = v.account {
            self.account = a;
        }
        set(&mut self.scenario, v.scenario);
        if let Some(s) = v.seed {
            self.seed = s;
        }
        if let Some(n) = v.rest_connections {
            self.rest_connections = n;
        }
        let r = file.run;
        if let Some(m) = r.markets {
            self.markets = m;
        }
        if let Some(n) = r.market_count {
            self.market_count = n;
        }
        if let Some(d) = r.duration {
            self.duration = Some(
                parse_duration(&d).map_err(|e| anyhow::anyhow!("[run] duration = {d:?}: {e}; write it like \"90s\", \"15m\" or \"2h\""))?,
            );
        }
        if let Some(p) = r.poll {
            self.poll = Some(p.parse().map_err(|e| anyhow::anyhow!("[run] poll: {e}"))?);
        }
        if r.pin_io.is_some() {
            self.pin_io = r.pin_io;
        }
        if r.pin_strategy.is_some() {
            self.pin_strategy = r.pin_strategy;
        }
        if r.pin_others.is_some() {
            self.pin_others = r.pin_others;
        }
        if let Some(b) = r.no_pin {
            self.no_pin = b;
        }
        if let Some(b) = r.lock_memory {
            self.lock_memory = b;
        }
        let m = file.modules;
        set_bool(&mut self.modules.stoikov, m.stoikov);
        set_bool(&mut self.modules.vol_estimator, m.vol_estimator);
        set_bool(&mut self.modules.k_estimator, m.k_estimator);
        let s = file.stoikov;
        set_f(&mut self.stoikov.gamma, s.gamma);
        set_f(&mut self.stoikov.k, s.k);
        set_f(&mut self.stoikov.horizon_s, s.horizon_s);
        if let Some(t) = s.min_half_spread_ticks {
            self.stoikov.min_half_spread_ticks = t;
        }
        if let Some(q) = s.quote_size {
            self.quote_size = q.qty("[stoikov] quote_size")?;
        }
        set_f(&mut self.vol_prior_sigma2_per_s, s.vol_prior_sigma2_per_s);
        set_f(&mut self.vol_alpha, s.vol_alpha);
        let k = file.risk;
        if let Some(q) = k.max_position {
            self.risk.max_position = q.qty("[risk] max_position")?;
        }
        if let Some(q) = k.max_order_size {
            self.risk.max_order_qty = q.qty("[risk] max_order_size")?;
        }
        if let Some(t) = k.price_band_ticks {
            self.risk.price_band_ticks = t;
        }
        if let Some(n) = k.max_open_orders {
            self.risk.max_open_orders = n;
        }
        if let Some(n) = k.max_rejects {
            self.risk.max_rejects = n;
        }
        if let Some(n) = k.reject_window_ms {
            self.risk.reject_window_ms = n;
        }
        if let Some(n) = k.stale_after_ms {
            self.risk.stale_after_ms = n;
        }
        let e = file.execution;
        if let Some(q) = e.min_size_change {
            self.exec.min_size_change = q.qty("[execution] min_size_change")?;
        }
        if let Some(t) = e.min_price_move_ticks {
            self.exec.min_price_move_ticks = t;
        }
        if let Some(t) = e.inflight_timeout_ms {
            self.exec.inflight_timeout_ms = t;
        }
        if let Some(t) = e.reject_backoff_ms {
            self.exec.reject_backoff_ms = t;
        }
        let o = file.output;
        if let Some(d) = o.log_dir {
            self.log_dir = d;
        }
        set(&mut self.hdr_out, o.hdr_out);
        if let Some(ms) = o.hdr_interval_ms {
            self.hdr_interval = Duration::from_millis(ms);
        }
        set(&mut self.summary_json, o.summary_json);
        set_bool(&mut self.quiet, o.quiet);
        Ok(())
    }

    /// Applies the command line over the current values.
    pub fn apply_flags(&mut self, a: &RunArgs) -> anyhow::Result<()> {
        if let Some(v) = &a.venue {
            self.venue = VenueKind::parse(v).with_context(|| format!("--venue {v:?} is not a venue; use local, demo or prod"))?;
        }
        self.confirm_live |= a.confirm_live;
        set(&mut self.rest_url, a.rest_url.clone());
        set(&mut self.ws_url, a.ws_url.clone());
        set(&mut self.ca_file, a.ca_file.clone());
        set(&mut self.key_id, a.key_id.clone());
        set(&mut self.key_file, a.key_file.clone());
        set(&mut self.info_file, a.info_file.clone());
        set(&mut self.oracle_url, a.oracle_url.clone());
        if a.no_oracle {
            self.oracle = false;
        }
        if let Some(n) = a.account {
            self.account = n;
        }
        set(&mut self.scenario, a.scenario.clone());
        if let Some(s) = a.seed {
            self.seed = s;
        }
        if let Some(m) = &a.markets {
            self.markets = m.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
        }
        if let Some(n) = a.market_count {
            self.market_count = n;
        }
        if let Some(d) = &a.duration {
            self.duration = Some(parse_duration(d).map_err(|e| anyhow::anyhow!("--duration {d:?}: {e}"))?);
        }
        if let Some(p) = &a.poll {
            self.poll = Some(p.parse().map_err(|e| anyhow::anyhow!("--poll: {e}"))?);
        }
        if a.pin_io.is_some() {
            self.pin_io = a.pin_io;
        }
        if a.pin_strategy.is_some() {
            self.pin_strategy = a.pin_strategy;
        }
        if a.pin_others.is_some() {
            self.pin_others = a.pin_others.clone();
        }
        self.no_pin |= a.no_pin;
        if let Some(b) = switch(a.lock_memory, a.no_lock_memory) {
            self.lock_memory = b;
        }
        let f = &a.modules;
        set_bool(&mut self.modules.stoikov, switch(f.stoikov, f.no_stoikov));
        set_bool(&mut self.modules.vol_estimator, switch(f.vol_estimator, f.no_vol_estimator));
        set_bool(&mut self.modules.k_estimator, switch(f.k_estimator, f.no_k_estimator));
        set_f(&mut self.stoikov.gamma, a.gamma);
        set_f(&mut self.stoikov.k, a.k);
        set_f(&mut self.stoikov.horizon_s, a.horizon);
        if let Some(t) = a.min_half_spread_ticks {
            self.stoikov.min_half_spread_ticks = t;
        }
        if let Some(q) = &a.quote_size {
            self.quote_size = Decimal::Text(q.clone()).qty("--quote-size")?;
        }
        if let Some(q) = &a.max_position {
            self.risk.max_position = Decimal::Text(q.clone()).qty("--max-position")?;
        }
        if let Some(q) = &a.max_order_size {
            self.risk.max_order_qty = Decimal::Text(q.clone()).qty("--max-order-size")?;
        }
        if let Some(t) = a.price_band_ticks {
            self.risk.price_band_ticks = t;
        }
        if let Some(n) = a.max_open_orders {
            self.risk.max_open_orders = n;
        }
        if let Some(n) = a.stale_after_ms {
            self.risk.stale_after_ms = n;
        }
        if let Some(d) = &a.log_dir {
            self.log_dir = d.clone();
        }
        set(&mut self.hdr_out, a.hdr_out.clone());
        set(&mut self.summary_json, a.summary_json.clone());
        self.quiet |= a.quiet;
        Ok(())
    }

    /// Checks every value; an error names the key (as in the file, and the flag) and the fix.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.stoikov.validate().map_err(|e| anyhow::anyhow!("[stoikov] {e}"))?;
        if self.quote_size.0 <= 0 {
            bail!("[stoikov] quote_size (--quote-size) must be above 0 contracts; try 5");
        }
        if !(self.vol_prior_sigma2_per_s.is_finite() && self.vol_prior_sigma2_per_s > 0.0) {
            bail!("[stoikov] vol_prior_sigma2_per_s must be a positive logit variance per second; try 0.0004");
        }
        if !(self.vol_alpha > 0.0 && self.vol_alpha <= 1.0) {
            bail!("[stoikov] vol_alpha = {} must be in (0, 1]; try 0.05", self.vol_alpha);
        }
        self.risk.validate().map_err(|e| anyhow::anyhow!("[risk] {e}"))?;
        if self.quote_size > self.risk.max_order_qty {
            bail!(
                "[stoikov] quote_size = {} is above [risk] max_order_size = {}: every quote would be refused; lower quote_size or raise max_order_size",
                self.quote_size,
                self.risk.max_order_qty
            );
        }
        self.exec.validate().map_err(|e| anyhow::anyhow!("[execution] {e}"))?;
        if self.rest_connections == 0 || self.rest_connections > 16 {
            bail!("[venue] rest_connections = {} must be 1..=16; try 3", self.rest_connections);
        }
        if self.market_count == 0 && self.markets.is_empty() {
            bail!("[run] market_count (--market-count) is 0 and no --markets given: nothing to quote");
        }
        if self.markets.len() > usize::from(u16::MAX) {
            bail!("[run] markets: at most {} markets", u16::MAX);
        }
        if let Some(d) = self.duration {
            if d.is_zero() {
                bail!("[run] duration (--duration) must be above 0; try \"60s\"");
            }
        }
        if self.hdr_interval < Duration::from_millis(100) {
            bail!("[output] hdr_interval_ms must be at least 100");
        }
        match self.venue {
            VenueKind::Local => {}
            VenueKind::Demo | VenueKind::Prod => {
                if !self.confirm_live {
                    bail!(
                        "--venue {} places real orders: add --confirm-live to say you mean it",
                        self.venue.name()
                    );
                }
                if self.key_id.is_none() || self.key_file.is_none() {
                    bail!(
                        "--venue {} needs an API key: give --key-id ID and --key-file PEM (or [venue] key_id / key_file)",
                        self.venue.name()
                    );
                }
                if self.info_file.is_some() {
                    bail!(
                        "--info-file names a local exchange; it cannot be used with --venue {}",
                        self.venue.name()
                    );
                }
            }
        }
        if let Some(url) = &self.oracle_url {
            if !self.oracle {
                bail!("--oracle-url and --no-oracle (or [venue] oracle = false) contradict each other: drop one");
            }
            if !(url.starts_with("wss://") || url.starts_with("ws://")) {
                bail!("[venue] oracle_url (--oracle-url) {url:?} is not a WebSocket URL: give wss://host/path");
            }
        }
        if self.rest_url.is_some() != self.ws_url.is_some() {
            bail!("give both --rest-url and --ws-url (or neither)");
        }
        if self.rest_url.is_some() && self.info_file.is_some() {
            bail!("give either --info-file or --rest-url/--ws-url, not both");
        }
        if self.rest_url.is_some() && (self.key_id.is_none() || self.key_file.is_none()) {
            bail!("explicit endpoints need --key-id and --key-file");
        }
        if let (Some(a), Some(b)) = (self.pin_io, self.pin_strategy) {
            if a == b && !self.no_pin {
                bail!("--pin-io and --pin-strategy are both core {a}: two busy threads on one core starve each other; pick two cores");
            }
        }
        if matches!(&self.pin_others, Some(v) if v.is_empty()) {
            bail!("pin_others is empty: give at least one core, e.g. --pin-others 0");
        }
        Ok(())
    }

    /// Whether this run starts the embedded local exchange.
    pub fn embedded_exchange(&self) -> bool {
        self.venue == VenueKind::Local && self.info_file.is_none() && self.rest_url.is_none()
    }

    /// How long to run: the configured duration, else a minute on the embedded exchange,
    /// else until Ctrl-C.
    pub fn run_for(&self) -> Option<Duration> {
        self.duration.or(self.embedded_exchange().then_some(DEFAULT_LOCAL_DURATION))
    }
}

fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

fn set_bool(slot: &mut bool, value: Option<bool>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn set_f(slot: &mut f64, value: Option<f64>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// Reads a PEM key file, with an error that says which file and why.
pub fn read_key_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading key file {} (--key-file)", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> RunArgs {
        RunArgs::try_parse_from(std::iter::once("kmm").chain(list.iter().copied())).unwrap()
    }

    #[test]
    fn the_shipped_file_states_the_built_in_defaults() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/kmm.toml")).unwrap();
        let mut from_file = Config::default();
        from_file.apply_file(&text).unwrap();
        from_file.validate().unwrap();
        // Compare every field through Debug: a default changed in code but not in the file
        // (or the other way) fails here.
        assert_eq!(format!("{from_file:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn flags_override_the_file_and_module_switches_take_the_last_word() {
        let mut cfg = Config::default();
        cfg.apply_file("[stoikov]\ngamma = 0.2\nquote_size = \"2.50\"\n[modules]\nstoikov = false\n")
            .unwrap();
        assert_eq!(cfg.stoikov.gamma, 0.2);
        assert_eq!(cfg.quote_size, Qty(250));
        assert!(!cfg.modules.stoikov);
        cfg.apply_flags(&args(&["--gamma", "0.1", "--stoikov", "--no-vol-estimator", "--quote-size", "3"]))
            .unwrap();
        assert_eq!(cfg.stoikov.gamma, 0.1);
        assert!(cfg.modules.stoikov);
        assert!(!cfg.modules.vol_estimator);
        assert_eq!(cfg.quote_size, Qty::from_contracts(3));
        let last = args(&["--stoikov", "--no-stoikov"]);
        assert_eq!(switch(last.modules.stoikov, last.modules.no_stoikov), Some(false));
        let last = args(&["--no-stoikov", "--stoikov"]);
        assert_eq!(switch(last.modules.stoikov, last.modules.no_stoikov), Some(true));
    }

    #[test]
    fn bad_config_names_the_key_and_the_fix() {
        let err = |text: &str| {
            let mut cfg = Config::default();
            match cfg.apply_file(text) {
                Err(e) => format!("{e:#}"),
                Ok(()) => format!("{:#}", cfg.validate().unwrap_err()),
            }
        };
        let e = err("[stoikov]\ngama = 0.1\n");
        assert!(e.contains("gama"), "{e}");
        let e = err("[stoikov]\nquote_size = 2.5\n");
        assert!(e.contains("quote_size"), "{e}");
        let e = err("[stoikov]\nquote_size = \"2.555\"\n");
        assert!(e.contains("quote_size") && e.contains("2 decimals"), "{e}");
        let e = err("[run]\npoll = \"busy\"\n");
        assert!(e.contains("spin, yield, park"), "{e}");
        let e = err("[stoikov]\ngamma = -1.0\n");
        assert!(e.contains("[stoikov]") && e.contains("gamma"), "{e}");
        let e = err("[risk]\nmax_order_size = 2\n");
        assert!(e.contains("quote_size") && e.contains("max_order_size"), "{e}");
        let e = err("[venue]\nkind = \"paper\"\n");
        assert!(e.contains("local") && e.contains("demo"), "{e}");
        let e = err("[run]\npin_others = []\n");
        assert!(e.contains("pin_others") && e.contains("--pin-others 0"), "{e}");
    }

    #[test]
    fn other_threads_cores_come_from_the_file_or_a_comma_list() {
        let mut cfg = Config::default();
        cfg.apply_file("[run]\npin_others = [1]\n").unwrap();
        assert_eq!(cfg.pin_others, Some(vec![1]));
        cfg.apply_flags(&args(&["--pin-others", "0,2"])).unwrap();
        assert_eq!(cfg.pin_others, Some(vec![0, 2]));
        assert!(RunArgs::try_parse_from(["kmm", "--pin-others", "x"]).is_err());
    }

    #[test]
    fn memory_locking_is_on_by_default_and_switches_from_the_file_or_flags() {
        let mut cfg = Config::default();
        assert!(cfg.lock_memory);
        cfg.apply_file("[run]\nlock_memory = false\n").unwrap();
        assert!(!cfg.lock_memory);
        cfg.apply_flags(&args(&["--gamma", "0.1"])).unwrap();
        assert!(!cfg.lock_memory, "no flag leaves the file's choice");
        cfg.apply_flags(&args(&["--no-lock-memory", "--lock-memory"])).unwrap();
        assert!(cfg.lock_memory, "the last flag wins");
        cfg.apply_flags(&args(&["--no-lock-memory"])).unwrap();
        assert!(!cfg.lock_memory);
    }

    #[test]
    fn real_venues_need_keys_and_an_explicit_confirmation() {
        let mut cfg = Config::default();
        cfg.apply_flags(&args(&["--venue", "prod"])).unwrap();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("--confirm-live"), "{e}");
        cfg.apply_flags(&args(&["--confirm-live"])).unwrap();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("--key-id") && e.contains("--key-file"), "{e}");
        cfg.apply_flags(&args(&["--key-id", "abc", "--key-file", "k.pem"])).unwrap();
        cfg.validate().unwrap();
        assert!(!cfg.embedded_exchange());
        assert_eq!(cfg.run_for(), None, "real venues run until stopped");
        assert!(Config::default().embedded_exchange());
        assert_eq!(Config::default().run_for(), Some(DEFAULT_LOCAL_DURATION));
    }

    #[test]
    fn the_oracle_feed_is_the_info_files_unless_named_or_switched_off() {
        let cfg = Config::default();
        assert!(cfg.oracle && cfg.oracle_url.is_none());
        let mut cfg = Config::default();
        cfg.apply_flags(&args(&["--oracle-url", "wss://vendor.example/feed"])).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.oracle_url.as_deref(), Some("wss://vendor.example/feed"));
        let mut cfg = Config::default();
        cfg.apply_file("[venue]\noracle = false\n").unwrap();
        assert!(!cfg.oracle);
        let mut cfg = Config::default();
        cfg.apply_flags(&args(&["--no-oracle"])).unwrap();
        assert!(!cfg.oracle);
        cfg.apply_flags(&args(&["--oracle-url", "wss://x/y"])).unwrap();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("--no-oracle") && e.contains("--oracle-url"), "{e}");
        let mut cfg = Config::default();
        cfg.apply_flags(&args(&["--oracle-url", "https://x/y"])).unwrap();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("wss://"), "{e}");
    }
}
