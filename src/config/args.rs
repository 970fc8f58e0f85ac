//! The command line: `kmm [run] [OPTIONS]` as clap reads it, and how flags are laid over a
//! [`Config`] (after the file: a flag always has the last word). Module switches come in
//! `--x` / `--no-x` pairs where the last one given wins.

use super::file::Decimal;
use super::{parse_duration, set, set_bool, set_f, Config, VenueKind};
use anyhow::Context;
use clap::{ArgAction, Args, Parser};
use std::path::PathBuf;

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

pub(super) fn switch(on: bool, off: bool) -> Option<bool> {
    match (on, off) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

impl Config {
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
}
