//! The engine's configuration: a TOML file (see `config/kmm.toml`), then command-line flags
//! over it, then validation that names the key at fault and how to fix it.
//!
//! Quantities are exact decimals in the file as on the wire (`quote_size = "5"` or `5`), never
//! floats, so a limit of 0.01 contracts means exactly that.
//!
//! `mod.rs` holds the settled [`Config`] with its defaults and validation; `file.rs` the TOML
//! sections and how they apply; `args.rs` the flags and how they apply.

mod args;
mod file;

pub use args::{ModuleFlags, RunArgs};

use crate::event::Qty;
use crate::execution::ExecParams;
use crate::poll::PollMode;
use crate::risk::RiskLimits;
use crate::stoikov::StoikovParams;
use anyhow::{bail, Context};
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

/// Parses `90`, `90s`, `1500ms`, `15m`, `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    kalshi_proto::args::parse_duration(text)
}

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

pub(super) fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

pub(super) fn set_bool(slot: &mut bool, value: Option<bool>) {
    if let Some(v) = value {
        *slot = v;
    }
}

pub(super) fn set_f(slot: &mut f64, value: Option<f64>) {
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
    use super::args::switch;
    use super::*;
    use clap::Parser;

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
