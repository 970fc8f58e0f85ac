//! Scenario files: the markets, their hidden true-probability paths, the simulated population
//! and the oracle, from TOML under `config/`.
//!
//! Every field has a default except a market's `ticker` and `initial_probability`, unknown keys
//! are errors, and [`Scenario::load`] names the file and the key of anything out of range and
//! says how to fix it. The parameters are documented in `tools/local-exchange/SCENARIOS.md`.

use crate::engine::{ExchangeConfig, FeeType, MarketSpec};
use crate::faults::ScheduledFault;
use anyhow::{bail, Context};
use kalshi_proto::ladder::LevelStructure;
use kalshi_proto::units::{Money, Qty};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The built-in calm scenario (the same file as `config/calm.toml`).
const CALM_TOML: &str = include_str!("../../../config/calm.toml");

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub session: Session,
    #[serde(default)]
    pub exchange: ExchangeParams,
    #[serde(default)]
    pub markets: Vec<MarketParams>,
    #[serde(default)]
    pub population: Population,
    #[serde(default)]
    pub oracle: OracleParams,
    #[serde(default)]
    pub faults: Vec<ScheduledFault>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Session {
    /// A short name for reports and logs (defaults to the file name).
    pub name: String,
    pub description: String,
    /// How long a headless run lasts when no duration is given, in simulated seconds.
    pub duration_s: u64,
    /// Unix epoch milliseconds of simulated time 0 (wire timestamps only). None: the server
    /// uses the wall clock at start; the journal records simulated milliseconds either way.
    pub start_epoch_ms: Option<u64>,
    /// Step of the true-probability path, and of its `true_p` journal lines, in milliseconds.
    pub path_step_ms: u64,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            name: String::new(),
            description: String::new(),
            duration_s: 3_600,
            start_epoch_ms: None,
            path_step_ms: 100,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeParams {
    /// Cash of each account that has an API key (the engines under test), in dollars.
    pub keyed_starting_cash_dollars: f64,
    /// Kalshi rate-limit tier of keyed accounts: "basic", "advanced", "premier" or "prime".
    pub rate_limit_tier: String,
    /// Per-market absolute position limit of keyed accounts, in contracts; 0 = none.
    pub max_position_contracts: u64,
    /// Scales every market's fee formula (a market's own `fee_multiplier` overrides it).
    pub fee_multiplier: f64,
}

impl Default for ExchangeParams {
    fn default() -> Self {
        ExchangeParams {
            keyed_starting_cash_dollars: 10_000.0,
            rate_limit_tier: "basic".into(),
            max_position_contracts: 0,
            fee_multiplier: 1.0,
        }
    }
}

/// A scheduled news event: the true probability's logit jumps by `logit_jump` at `at_s`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewsJump {
    pub at_s: f64,
    pub logit_jump: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketParams {
    pub ticker: String,
    #[serde(default)]
    pub title: String,
    /// Defaults to the ticker up to its last '-'.
    #[serde(default)]
    pub event_ticker: Option<String>,
    /// Defaults to the ticker up to its first '-'.
    #[serde(default)]
    pub series_ticker: Option<String>,
    /// "linear_cent", "deci_cent" or "tapered_deci_cent".
    #[serde(default = "default_structure")]
    pub structure: String,
    /// "quadratic", "quadratic_with_maker_fees" or "flat".
    #[serde(default = "default_fee_type")]
    pub fee_type: String,
    #[serde(default)]
    pub fee_multiplier: Option<f64>,
    /// True probability of YES at the start, strictly between 0 and 1.
    pub initial_probability: f64,
    /// Standard deviation of the true path's logit per square root of a second.
    #[serde(default = "default_logit_vol")]
    pub logit_vol_per_sqrt_s: f64,
    /// When trading opens, in seconds after the start.
    #[serde(default)]
    pub open_s: u64,
    /// When the market closes and resolves, in seconds after the start; none = not this session.
    #[serde(default)]
    pub close_s: Option<u64>,
    /// Seconds from close to determination (the result is drawn from the final true probability).
    #[serde(default)]
    pub determination_delay_s: u64,
    /// Seconds from determination to settlement (Kalshi's settlement timer).
    #[serde(default = "default_settlement_timer")]
    pub settlement_timer_s: u64,
    #[serde(default)]
    pub news: Vec<NewsJump>,
    /// Unscheduled jumps: Poisson rate per hour and normal logit size.
    #[serde(default)]
    pub jump_rate_per_hour: f64,
    #[serde(default = "default_jump_sd")]
    pub jump_logit_sd: f64,
    /// Scales the rates of noise takers and sweeps in this market.
    #[serde(default = "one")]
    pub activity: f64,
    /// Scales the competing makers' resting sizes in this market.
    #[serde(default = "one")]
    pub depth_scale: f64,
    /// Overrides `population.maker_min_half_spread_cents` in this market (finer ladders need
    /// a wider one for makers to earn anything).
    #[serde(default)]
    pub maker_half_spread_cents: Option<f64>,
}

fn default_structure() -> String {
    "linear_cent".into()
}
fn default_fee_type() -> String {
    "quadratic".into()
}
fn default_logit_vol() -> f64 {
    0.003
}
fn default_settlement_timer() -> u64 {
    60
}
fn default_jump_sd() -> f64 {
    0.5
}
fn one() -> f64 {
    1.0
}

/// The simulated traders. Rates are per market unless the name says otherwise.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Population {
    // Competing makers.
    /// Maker accounts; each quotes every market.
    pub maker_count: u32,
    /// Poisson rate of one maker's actions in one market.
    pub maker_action_rate_per_s: f64,
    /// Price levels each maker keeps on each side.
    pub maker_levels: u32,
    /// Distance between a maker's levels, in cents (at least one tick).
    pub maker_level_spacing_cents: f64,
    /// Median size of one maker order (lognormal), in contracts.
    pub maker_order_contracts_median: f64,
    /// Log-space standard deviation of maker order sizes.
    pub maker_order_contracts_sigma: f64,
    /// Contracts one maker aims to keep at its best level on each side.
    pub maker_level_contracts: f64,
    /// Target size multiplier per level behind the best.
    pub maker_level_growth: f64,
    /// Minimum distance from a maker's value to its quotes, in cents.
    pub maker_min_half_spread_cents: f64,
    /// Half-life of a maker's value estimate (an EWMA of the mid and trade prices), seconds.
    pub maker_value_halflife_s: f64,
    /// Standard deviation of each maker's slowly varying private bias, in cents.
    pub maker_value_noise_cents: f64,
    /// Mean reversion time of that bias, seconds.
    pub maker_value_noise_halflife_s: f64,
    /// Mean number (Poisson) of orders per action a maker cancels from anywhere in its queue
    /// and re-posts at the back.
    pub maker_refreshes_per_action: f64,
    /// Probability per action of shrinking a random order in place (`decrease`).
    pub maker_decrease_prob: f64,
    /// Most orders one action places or cancels (stale orders through the quote excepted).
    pub maker_ops_per_action: u32,
    /// Half-life of the net aggressive flow the makers watch, seconds.
    pub maker_flow_halflife_s: f64,
    /// How far the makers' value follows net aggressive flow: this many cents at 1000
    /// contracts, growing with the square root of the flow.
    pub maker_flow_shift_cents_at_1000: f64,
    /// Net aggressive flow (contracts, decayed) above which makers treat the flow as toxic.
    pub maker_toxic_flow_contracts: f64,
    /// Net count of aggressive orders (decayed like the flow) above which toxic flow is also
    /// persistent: the makers then move their value to the price the flow has reached.
    pub maker_toxic_min_orders: f64,
    /// Extra ticks the hit side backs off while the flow is toxic.
    pub maker_pull_ticks: u32,
    /// Share of its size a maker keeps on the hit side while the flow is toxic.
    pub maker_toxic_size_factor: f64,
    /// Makers quote as if the flow were toxic on both sides from this long before a scheduled
    /// news time...
    pub maker_news_caution_before_ms: u64,
    /// ...until this long after it.
    pub maker_news_caution_after_ms: u64,
    /// Inventory skew, cents per 1000 contracts held.
    pub maker_inventory_skew_cents_per_1000: f64,

    // Noise takers.
    pub noise_accounts: u32,
    /// Poisson rate of noise taker orders in one market.
    pub noise_rate_per_s: f64,
    /// Pareto scale of noise order sizes, contracts.
    pub noise_size_min_contracts: f64,
    /// Pareto tail index of noise order sizes (smaller = heavier tail).
    pub noise_size_tail_alpha: f64,
    pub noise_size_max_contracts: f64,
    /// Probability that a noise order's limit is a few ticks through the touch.
    pub noise_walk_prob: f64,
    pub noise_walk_max_ticks: u32,
    /// Probability that a noise order buys YES.
    pub noise_buy_prob: f64,

    // Informed takers.
    pub informed_count: u32,
    /// Poisson rate at which one informed trader looks at one market.
    pub informed_check_rate_per_s: f64,
    /// Mean delay between the true probability and what an informed trader sees, ms
    /// (each trader's own delay is drawn between half and 1.5 times this).
    pub informed_reaction_ms: u64,
    /// Edge beyond the taker fee an informed trader needs, in cents.
    pub informed_threshold_cents: f64,
    /// Median informed order size (lognormal), contracts.
    pub informed_size_median_contracts: f64,
    pub informed_size_sigma: f64,
    pub informed_max_contracts: f64,

    // Sweeps.
    /// Poisson rate of sweeps in one market, per hour.
    pub sweep_rate_per_hour: f64,
    /// Levels a sweep walks.
    pub sweep_levels: u32,
    /// A sweep takes this share of the depth within its levels (drawn between 0.7x and 1.1x).
    pub sweep_depth_share: f64,
    /// Probability a sweep trades toward the true probability (otherwise a random side).
    pub sweep_informed_prob: f64,
}

impl Default for Population {
    fn default() -> Self {
        Population {
            maker_count: 6,
            maker_action_rate_per_s: 2.0,
            maker_levels: 5,
            maker_level_spacing_cents: 1.0,
            maker_order_contracts_median: 60.0,
            maker_order_contracts_sigma: 0.9,
            maker_level_contracts: 500.0,
            maker_level_growth: 1.25,
            maker_min_half_spread_cents: 0.2,
            maker_value_halflife_s: 20.0,
            maker_value_noise_cents: 0.3,
            maker_value_noise_halflife_s: 60.0,
            maker_refreshes_per_action: 0.3,
            maker_decrease_prob: 0.05,
            maker_ops_per_action: 6,
            maker_flow_halflife_s: 3.0,
            maker_flow_shift_cents_at_1000: 0.5,
            maker_toxic_flow_contracts: 400.0,
            maker_toxic_min_orders: 4.0,
            maker_pull_ticks: 2,
            maker_toxic_size_factor: 0.3,
            maker_news_caution_before_ms: 2_000,
            maker_news_caution_after_ms: 10_000,
            maker_inventory_skew_cents_per_1000: 0.05,
            noise_accounts: 4,
            noise_rate_per_s: 1.5,
            noise_size_min_contracts: 4.0,
            noise_size_tail_alpha: 1.3,
            noise_size_max_contracts: 25_000.0,
            noise_walk_prob: 0.2,
            noise_walk_max_ticks: 3,
            noise_buy_prob: 0.5,
            informed_count: 2,
            informed_check_rate_per_s: 1.0,
            informed_reaction_ms: 1_500,
            informed_threshold_cents: 0.5,
            informed_size_median_contracts: 250.0,
            informed_size_sigma: 0.7,
            informed_max_contracts: 5_000.0,
            sweep_rate_per_hour: 8.0,
            sweep_levels: 3,
            sweep_depth_share: 0.9,
            sweep_informed_prob: 0.5,
        }
    }
}

/// The oracle endpoint's view of the true probability.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OracleParams {
    /// Standard deviation of the noise added to the logit of each published value.
    pub noise_logit_sd: f64,
    /// Positive: publishes the true value this far in the future; negative: this far behind.
    pub lead_ms: i64,
    /// A new value every this many milliseconds.
    pub publish_interval_ms: u64,
}

impl Default for OracleParams {
    fn default() -> Self {
        OracleParams {
            noise_logit_sd: 0.05,
            lead_ms: 0,
            publish_interval_ms: 1_000,
        }
    }
}

const TIERS: [&str; 4] = ["basic", "advanced", "premier", "prime"];

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: impl AsRef<Path>) -> anyhow::Result<Scenario> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read scenario file {}", path.display()))?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Scenario::parse(&text, &path.display().to_string(), &stem)
    }

    /// Parses and validates scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, default_name: &str) -> anyhow::Result<Scenario> {
        let mut scenario: Scenario = toml::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "scenario {origin}: {}\nhint: keys and their defaults are listed in \
                 tools/local-exchange/SCENARIOS.md; unknown keys are rejected so typos are not \
                 silently ignored",
                e.to_string().trim_end()
            )
        })?;
        if scenario.session.name.is_empty() {
            scenario.session.name = default_name.to_string();
        }
        if let Err(problems) = scenario.validate() {
            bail!("scenario {origin} is invalid:\n  {}", problems.join("\n  "));
        }
        Ok(scenario)
    }

    /// The built-in calm scenario, for embedders that run without files.
    pub fn default_calm() -> Scenario {
        Scenario::parse(CALM_TOML, "built-in config/calm.toml", "calm").expect("the built-in calm scenario is valid")
    }

    /// Every problem found, each naming its key and how to fix it.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut p = Vec::new();
        let s = &self.session;
        if s.duration_s == 0 {
            p.push("session.duration_s = 0: a session must last at least 1 second".into());
        }
        if s.path_step_ms == 0 || s.path_step_ms > 60_000 {
            p.push(format!(
                "session.path_step_ms = {}: use 1..=60000 ms (100 is the default)",
                s.path_step_ms
            ));
        }
        let e = &self.exchange;
        if !(e.keyed_starting_cash_dollars >= 0.0 && e.keyed_starting_cash_dollars < 1e12) {
            p.push(format!(
                "exchange.keyed_starting_cash_dollars = {}: use a non-negative number of dollars",
                e.keyed_starting_cash_dollars
            ));
        }
        if !TIERS.contains(&e.rate_limit_tier.as_str()) {
            p.push(format!(
                "exchange.rate_limit_tier = {:?}: use one of {}",
                e.rate_limit_tier,
                TIERS.join(", ")
            ));
        }
        check_positive(&mut p, "exchange.fee_multiplier", e.fee_multiplier, true);
        if self.markets.is_empty() {
            p.push("markets: no [[markets]] table; add at least one market".into());
        }
        let mut tickers: Vec<&str> = Vec::new();
        for (i, m) in self.markets.iter().enumerate() {
            let key = |k: &str| format!("markets[{i}].{k}");
            if m.ticker.is_empty()
                || !m
                    .ticker
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                p.push(format!(
                    "{} = {:?}: use letters, digits, '-', '_' or '.' (e.g. \"KXDEMO-26JAN01-T50\")",
                    key("ticker"),
                    m.ticker
                ));
            }
            if tickers.contains(&m.ticker.as_str()) {
                p.push(format!("{} = {:?}: tickers must be unique", key("ticker"), m.ticker));
            }
            tickers.push(&m.ticker);
            if LevelStructure::parse(&m.structure).is_none() {
                p.push(format!(
                    "{} = {:?}: use \"linear_cent\", \"deci_cent\" or \"tapered_deci_cent\"",
                    key("structure"),
                    m.structure
                ));
            }
            if parse_fee_type(&m.fee_type).is_none() {
                p.push(format!(
                    "{} = {:?}: use \"quadratic\", \"quadratic_with_maker_fees\" or \"flat\"",
                    key("fee_type"),
                    m.fee_type
                ));
            }
            if let Some(f) = m.fee_multiplier {
                check_positive(&mut p, &key("fee_multiplier"), f, true);
            }
            if !(m.initial_probability > 0.0 && m.initial_probability < 1.0) {
                p.push(format!(
                    "{} = {}: must be strictly between 0 and 1 (e.g. 0.55)",
                    key("initial_probability"),
                    m.initial_probability
                ));
            }
            if !(m.logit_vol_per_sqrt_s >= 0.0 && m.logit_vol_per_sqrt_s <= 1.0) {
                p.push(format!(
                    "{} = {}: use 0..=1 (0.003 is a calm market: about 0.7 cents a minute at 50 cents)",
                    key("logit_vol_per_sqrt_s"),
                    m.logit_vol_per_sqrt_s
                ));
            }
            if let Some(c) = m.close_s {
                if c <= m.open_s {
                    p.push(format!(
                        "{} = {c}: a market must close after it opens (open_s = {})",
                        key("close_s"),
                        m.open_s
                    ));
                }
            }
            for (j, n) in m.news.iter().enumerate() {
                if !(n.at_s >= 0.0 && n.at_s.is_finite()) {
                    p.push(format!("{}: at_s = {} must be >= 0 seconds", key(&format!("news[{j}]")), n.at_s));
                }
                if !(n.logit_jump.is_finite() && n.logit_jump.abs() <= 10.0) {
                    p.push(format!(
                        "{}: logit_jump = {} must be within -10..=10 (1.0 moves 50c to 73c)",
                        key(&format!("news[{j}]")),
                        n.logit_jump
                    ));
                }
            }
            check_positive(&mut p, &key("jump_rate_per_hour"), m.jump_rate_per_hour, false);
            check_positive(&mut p, &key("jump_logit_sd"), m.jump_logit_sd, false);
            check_positive(&mut p, &key("activity"), m.activity, false);
            check_positive(&mut p, &key("depth_scale"), m.depth_scale, true);
            if let Some(h) = m.maker_half_spread_cents {
                check_positive(&mut p, &key("maker_half_spread_cents"), h, false);
            }
        }
        let q = &self.population;
        let pos = |p: &mut Vec<String>, k: &str, v: f64| check_positive(p, &format!("population.{k}"), v, true);
        let nonneg = |p: &mut Vec<String>, k: &str, v: f64| check_positive(p, &format!("population.{k}"), v, false);
        let prob = |p: &mut Vec<String>, k: &str, v: f64| {
            if !(0.0..=1.0).contains(&v) {
                p.push(format!("population.{k} = {v}: a probability must be within 0..=1"));
            }
        };
        if q.maker_count == 0 {
            p.push("population.maker_count = 0: at least one maker is needed to make a book".into());
        }
        pos(&mut p, "maker_action_rate_per_s", q.maker_action_rate_per_s);
        if q.maker_levels == 0 || q.maker_levels > 50 {
            p.push(format!("population.maker_levels = {}: use 1..=50", q.maker_levels));
        }
        nonneg(&mut p, "maker_level_spacing_cents", q.maker_level_spacing_cents);
        pos(&mut p, "maker_order_contracts_median", q.maker_order_contracts_median);
        nonneg(&mut p, "maker_order_contracts_sigma", q.maker_order_contracts_sigma);
        pos(&mut p, "maker_level_contracts", q.maker_level_contracts);
        pos(&mut p, "maker_level_growth", q.maker_level_growth);
        nonneg(&mut p, "maker_min_half_spread_cents", q.maker_min_half_spread_cents);
        pos(&mut p, "maker_value_halflife_s", q.maker_value_halflife_s);
        nonneg(&mut p, "maker_value_noise_cents", q.maker_value_noise_cents);
        pos(&mut p, "maker_value_noise_halflife_s", q.maker_value_noise_halflife_s);
        nonneg(&mut p, "maker_refreshes_per_action", q.maker_refreshes_per_action);
        prob(&mut p, "maker_decrease_prob", q.maker_decrease_prob);
        if q.maker_ops_per_action == 0 {
            p.push("population.maker_ops_per_action = 0: use at least 1".into());
        }
        pos(&mut p, "maker_flow_halflife_s", q.maker_flow_halflife_s);
        nonneg(&mut p, "maker_flow_shift_cents_at_1000", q.maker_flow_shift_cents_at_1000);
        pos(&mut p, "maker_toxic_flow_contracts", q.maker_toxic_flow_contracts);
        pos(&mut p, "maker_toxic_min_orders", q.maker_toxic_min_orders);
        prob(&mut p, "maker_toxic_size_factor", q.maker_toxic_size_factor);
        nonneg(&mut p, "maker_inventory_skew_cents_per_1000", q.maker_inventory_skew_cents_per_1000);
        nonneg(&mut p, "noise_rate_per_s", q.noise_rate_per_s);
        if q.noise_accounts == 0 && q.noise_rate_per_s > 0.0 {
            p.push("population.noise_accounts = 0 with noise_rate_per_s > 0: use at least 1 account".into());
        }
        if q.noise_size_min_contracts.is_nan() || q.noise_size_min_contracts < 0.01 {
            p.push(format!(
                "population.noise_size_min_contracts = {}: use at least 0.01 contracts",
                q.noise_size_min_contracts
            ));
        }
        if !(q.noise_size_tail_alpha > 0.0 && q.noise_size_tail_alpha <= 10.0) {
            p.push(format!(
                "population.noise_size_tail_alpha = {}: use a tail index in (0, 10]; 1.0-1.6 is heavy-tailed",
                q.noise_size_tail_alpha
            ));
        }
        if q.noise_size_max_contracts.is_nan() || q.noise_size_max_contracts < q.noise_size_min_contracts {
            p.push(format!(
                "population.noise_size_max_contracts = {}: must be at least noise_size_min_contracts ({})",
                q.noise_size_max_contracts, q.noise_size_min_contracts
            ));
        }
        prob(&mut p, "noise_walk_prob", q.noise_walk_prob);
        prob(&mut p, "noise_buy_prob", q.noise_buy_prob);
        nonneg(&mut p, "informed_check_rate_per_s", q.informed_check_rate_per_s);
        nonneg(&mut p, "informed_threshold_cents", q.informed_threshold_cents);
        pos(&mut p, "informed_size_median_contracts", q.informed_size_median_contracts);
        nonneg(&mut p, "informed_size_sigma", q.informed_size_sigma);
        pos(&mut p, "informed_max_contracts", q.informed_max_contracts);
        nonneg(&mut p, "sweep_rate_per_hour", q.sweep_rate_per_hour);
        if q.sweep_levels == 0 {
            p.push("population.sweep_levels = 0: a sweep walks at least 1 level".into());
        }
        pos(&mut p, "sweep_depth_share", q.sweep_depth_share);
        prob(&mut p, "sweep_informed_prob", q.sweep_informed_prob);
        let o = &self.oracle;
        if !(o.noise_logit_sd >= 0.0 && o.noise_logit_sd <= 5.0) {
            p.push(format!("oracle.noise_logit_sd = {}: use 0..=5", o.noise_logit_sd));
        }
        if o.lead_ms.unsigned_abs() > 3_600_000 {
            p.push(format!("oracle.lead_ms = {}: use -3600000..=3600000 ms", o.lead_ms));
        }
        if o.publish_interval_ms == 0 {
            p.push("oracle.publish_interval_ms = 0: use at least 1 ms".into());
        }
        for (i, f) in self.faults.iter().enumerate() {
            if let crate::faults::Fault::DeactivateMarket { market, .. } = &f.fault {
                if !tickers.contains(&market.as_str()) {
                    p.push(format!(
                        "faults[{i}].market = {market:?}: no market has that ticker (markets: {})",
                        tickers.join(", ")
                    ));
                }
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(p)
        }
    }

    /// The engine configuration this scenario asks for.
    pub fn exchange_config(&self) -> ExchangeConfig {
        ExchangeConfig {
            max_position: Qty::from_contracts(self.exchange.max_position_contracts as i64),
            epoch_ms: self.session.start_epoch_ms.unwrap_or(0),
            ..ExchangeConfig::default()
        }
    }

    /// Starting cash of each keyed account, rounded to the cent.
    pub fn keyed_starting_cash(&self) -> Money {
        Money::from_cents((self.exchange.keyed_starting_cash_dollars * 100.0).round() as i64)
    }

    /// The engine's description of each market, in scenario order.
    pub fn market_specs(&self) -> Vec<MarketSpec> {
        self.markets
            .iter()
            .map(|m| {
                let event_ticker = m.event_ticker.clone().unwrap_or_else(|| match m.ticker.rfind('-') {
                    Some(i) => m.ticker[..i].to_string(),
                    None => m.ticker.clone(),
                });
                let series_ticker = m.series_ticker.clone().unwrap_or_else(|| match m.ticker.find('-') {
                    Some(i) => m.ticker[..i].to_string(),
                    None => m.ticker.clone(),
                });
                let multiplier = m.fee_multiplier.unwrap_or(self.exchange.fee_multiplier);
                MarketSpec {
                    ticker: m.ticker.clone(),
                    event_ticker,
                    series_ticker,
                    title: if m.title.is_empty() { m.ticker.clone() } else { m.title.clone() },
                    structure: LevelStructure::parse(&m.structure).unwrap_or(LevelStructure::LinearCent),
                    fee_type: parse_fee_type(&m.fee_type).unwrap_or_default(),
                    fee_multiplier_e4: (multiplier * 10_000.0).round() as i64,
                    open_ms: m.open_s * 1_000,
                    close_ms: m.close_s.map_or(NEVER_CLOSES_MS, |c| c * 1_000),
                    settlement_timer_s: m.settlement_timer_s,
                }
            })
            .collect()
    }
}

/// close_ms of a market that does not close this session: a year after the start.
pub const NEVER_CLOSES_MS: u64 = 365 * 86_400_000;

pub fn parse_fee_type(name: &str) -> Option<FeeType> {
    match name {
        "quadratic" => Some(FeeType::Quadratic),
        "quadratic_with_maker_fees" => Some(FeeType::QuadraticWithMakerFees),
        "flat" => Some(FeeType::Flat),
        _ => None,
    }
}

fn check_positive(p: &mut Vec<String>, key: &str, v: f64, strict: bool) {
    let ok = v.is_finite() && if strict { v > 0.0 } else { v >= 0.0 };
    if !ok {
        p.push(format!(
            "{key} = {v}: must be {} and finite",
            if strict { "greater than 0" } else { "0 or more" }
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(extra_market: &str, extra: &str) -> String {
        format!("[[markets]]\nticker = \"KXT-1\"\ninitial_probability = 0.5\n{extra_market}\n{extra}")
    }

    #[test]
    fn the_shipped_scenarios_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        for name in ["calm", "toxic", "news-jump", "thin-book", "stress"] {
            let s = Scenario::load(dir.join(format!("{name}.toml"))).unwrap();
            assert_eq!(s.session.name, name);
            assert!(s.markets.len() >= 3, "{name} has several markets");
            assert!(s.market_specs().iter().any(|m| m.structure != LevelStructure::LinearCent));
        }
        let calm = Scenario::default_calm();
        assert_eq!(calm.session.name, "calm");
        // The documented defaults are the calm population.
        assert_eq!(
            serde_json::to_value(&calm.population).unwrap(),
            serde_json::to_value(Population::default()).unwrap()
        );
    }

    #[test]
    fn defaults_fill_in() {
        let s = Scenario::parse(&minimal("", ""), "t", "t").unwrap();
        assert_eq!(s.session.path_step_ms, 100);
        assert_eq!(s.markets[0].structure, "linear_cent");
        let spec = &s.market_specs()[0];
        assert_eq!(spec.event_ticker, "KXT");
        assert_eq!(spec.series_ticker, "KXT");
        assert_eq!(spec.fee_multiplier_e4, 10_000);
        assert_eq!(spec.close_ms, NEVER_CLOSES_MS);
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let err = Scenario::parse(&minimal("initial_probability_x = 3", ""), "my.toml", "my")
            .unwrap_err()
            .to_string();
        assert!(err.contains("my.toml") && err.contains("initial_probability_x"), "{err}");
        assert!(err.contains("unknown field"), "{err}");

        let text = "[[markets]]\nticker = \"A\"\ninitial_probability = 1.5\nstructure = \"cents\"\n\
                    [population]\nnoise_rate_per_s = -1\n[exchange]\nrate_limit_tier = \"gold\"\n";
        let err = Scenario::parse(text, "bad.toml", "bad").unwrap_err().to_string();
        for needle in [
            "bad.toml",
            "markets[0].initial_probability = 1.5",
            "strictly between 0 and 1",
            "markets[0].structure",
            "population.noise_rate_per_s",
            "exchange.rate_limit_tier",
            "prime",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }

        let err = Scenario::parse(
            "[session]\nduration_s = \"long\"\n[[markets]]\nticker=\"A\"\ninitial_probability=0.5\n",
            "s.toml",
            "s",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("s.toml") && err.contains("duration_s"), "{err}");

        let err = Scenario::load("/nonexistent/x.toml").unwrap_err().to_string();
        assert!(err.contains("/nonexistent/x.toml"), "{err}");
    }

    #[test]
    fn faults_parse_and_are_checked() {
        let text = minimal(
            "",
            "[[faults]]\nat_ms = 1000\nkind = \"deactivate_market\"\nmarket = \"NOPE\"\nduration_ms = 5\n",
        );
        let err = Scenario::parse(&text, "f.toml", "f").unwrap_err().to_string();
        assert!(err.contains("faults[0].market"), "{err}");
        let text = minimal("", "[[faults]]\nat_ms = 1000\nkind = \"skip_seq\"\n");
        let s = Scenario::parse(&text, "f.toml", "f").unwrap();
        assert_eq!(s.faults.len(), 1);
    }
}
