//! The TOML configuration file (`config/kmm.toml` states every default): its sections as
//! serde reads them, and how a file's values are laid over a [`Config`]. Unknown keys are
//! refused, so a typo is an error with the key's name, not a silently ignored setting.

use super::{parse_duration, set, set_bool, set_f, Config, VenueKind};
use crate::event::Qty;
use anyhow::Context;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

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
pub(super) enum Decimal {
    Int(i64),
    Text(String),
}

impl Decimal {
    pub(super) fn qty(&self, key: &str) -> anyhow::Result<Qty> {
        match self {
            Decimal::Int(n) => Qty::checked_from_contracts(*n).with_context(|| format!("{key} = {n} is out of range")),
            Decimal::Text(s) => Qty::parse(s).map_err(|e| {
                anyhow::anyhow!("{key} = {s:?} is not a contract count ({e}); write it like 10 or \"2.50\" (at most 2 decimals)")
            }),
        }
    }
}

impl Config {
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
}
