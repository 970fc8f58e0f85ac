//! The simulated order flow: a seeded, deterministic population of traders driven by a hidden
//! true-probability path per market.
//!
//! * **True path.** The logit of the true probability follows a Gaussian random walk in fixed
//!   steps (`session.path_step_ms`), with scheduled news jumps and Poisson random jumps. It is
//!   generated ahead of time, so the oracle can publish the future (positive `lead_ms`), and kept
//!   behind, so informed traders and a lagging oracle can see the past. At close the result is
//!   drawn YES with the final true probability. Each step is journaled as `true_p`.
//! * **Competing makers** quote around their own slow, noisy estimate of value (an EWMA of the
//!   mid, a private bias, a shift toward recent net aggressive flow and an inventory skew), never
//!   the true probability. Each keeps several levels per side in many orders of tens to hundreds
//!   of contracts, cancels random orders from anywhere in its queue and re-posts them at the
//!   back, and backs off the side that toxic flow is hitting.
//! * **Noise takers** arrive as a Poisson process with Pareto sizes, a random side, and cross at
//!   the touch (IOC), sometimes a few ticks through it.
//! * **Informed takers** see the true probability after a reaction delay and take when the touch
//!   is off it by more than the taker fee plus a threshold, walking the book up to that price.
//! * **Sweeps** are rare large IOC orders that walk several levels.
//!
//! Everything goes through the exchange's public API; randomness comes from per-agent streams
//! forked from one seed; events run in (time, sequence) order. No clock, no thread, no hash-map
//! iteration: the same seed gives the same journal byte for byte.

use crate::book::{AccountId, OrderNo};
use crate::engine::{Exchange, MarketId, MarketResult, NewOrder, Reduce};
use crate::rng::{keyed_normal, mix, Rng};
use crate::scenario::{OracleParams, Population, Scenario};
use kalshi_proto::ladder::TickLadder;
use kalshi_proto::market::MarketStatus;
use kalshi_proto::order::TimeInForce;
use kalshi_proto::units::{Money, Price, Qty, PRICE_SCALE};
use kalshi_proto::Side;
use serde_json::json;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

/// What kind of simulated trader an account is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AgentClass {
    Maker,
    Noise,
    Informed,
    Sweep,
}

impl AgentClass {
    pub fn name(self) -> &'static str {
        match self {
            AgentClass::Maker => "maker",
            AgentClass::Noise => "noise",
            AgentClass::Informed => "informed",
            AgentClass::Sweep => "sweep",
        }
    }
}

/// The trades one simulated taker order caused: ids `first_trade_id..=last_trade_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TradeTag {
    pub first_trade_id: u64,
    pub last_trade_id: u64,
    pub class: AgentClass,
    pub account: AccountId,
    pub market: MarketId,
    /// What the taker asked for and what it got.
    pub requested: Qty,
    pub filled: Qty,
}

/// Starting cash of each simulated account (notional: they are not balance-checked).
pub const SIM_ACCOUNT_CASH: Money = Money(1_000_000 * 1_000_000);

/// How long the flow remembers where trades happened (for makers' bookkeeping).
const TRADE_MEMORY_MS: u64 = 30_000;
/// Most levels per side a maker keeps (the scenario allows up to 50).
const MAX_LEVELS: usize = 50;
/// A maker re-reads all its orders from the exchange every this many actions.
const FULL_CHECK_EVERY: u64 = 32;

/// Half-life of the makers' notion of normal flow, seconds.
const NORMAL_FLOW_HALFLIFE_S: f64 = 300.0;
/// Flow counts as toxic only when it is also this many times its normal level.
const TOXIC_VS_NORMAL: f64 = 3.0;

/// Logit bound of the true path: p stays within about [0.0003, 0.9997].
const X_MAX: f64 = 8.0;

pub fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// Seconds to the decay factor of an exponential with the given half-life.
fn decay(dt_s: f64, halflife_s: f64) -> f64 {
    (-dt_s * std::f64::consts::LN_2 / halflife_s).exp()
}

// ------------------------------------------------------------------ true path

struct Path {
    rng: Rng,
    step_ms: u64,
    sigma_step: f64,
    jump_lambda_step: f64,
    jump_sd: f64,
    /// Scheduled jumps (at_ms, logit jump), sorted by time.
    news: Vec<(u64, f64)>,
    news_generated: usize,
    /// Samples: xs[i] is the logit at step first_k + i (time (first_k + i) * step_ms).
    first_k: u64,
    xs: VecDeque<f64>,
}

impl Path {
    fn last_k(&self) -> u64 {
        self.first_k + self.xs.len() as u64 - 1
    }

    fn ensure(&mut self, k: u64) {
        while self.last_k() < k {
            let next = self.last_k() + 1;
            let t_hi = next * self.step_ms;
            let mut x = *self.xs.back().expect("path has a sample") + self.sigma_step * self.rng.normal();
            while let Some(&(at, jump)) = self.news.get(self.news_generated) {
                if at > t_hi {
                    break;
                }
                x += jump;
                self.news_generated += 1;
            }
            if self.jump_lambda_step > 0.0 {
                for _ in 0..self.rng.poisson(self.jump_lambda_step) {
                    x += self.jump_sd * self.rng.normal();
                }
            }
            self.xs.push_back(x.clamp(-X_MAX, X_MAX));
        }
    }

    /// The logit at step `k`, clamped to the samples held.
    fn at(&self, k: u64) -> f64 {
        let k = k.clamp(self.first_k, self.last_k());
        self.xs[(k - self.first_k) as usize]
    }

    fn trim_before(&mut self, k: u64) {
        while self.first_k < k && self.xs.len() > 1 {
            self.xs.pop_front();
            self.first_k += 1;
        }
    }
}

// ------------------------------------------------------------------ state

struct MarketSim {
    id: MarketId,
    ticker: String,
    ladder: Arc<TickLadder>,
    path: Path,
    /// The current path step (the last one whose time has come).
    cur_k: u64,
    /// Scheduled news already journaled.
    news_journaled: usize,
    close_ms: Option<u64>,
    determination_delay_ms: u64,
    settlement_timer_ms: u64,
    final_p: Option<f64>,
    resolved: Option<bool>,
    activity: f64,
    depth_scale: f64,
    half_spread_cents: f64,
    /// Taker fee per contract is `taker_fee_coef * p * (1 - p)` dollars.
    taker_fee_coef: f64,
    noise_rng: Rng,
    sweep_rng: Rng,
    result_rng: Rng,
    /// Net aggressive flow (+ buys of YES), decayed, in contracts, as of `flow_ms`.
    flow: f64,
    flow_ms: u64,
    /// Net count of aggressive orders (+1 per buy order, -1 per sell), decayed like `flow`:
    /// tells a persistent one-sided stream (informed) from one big order (noise, sweeps).
    orders_flow: f64,
    /// Long averages of |flow| and |orders_flow|: the market's normal level.
    normal_flow: f64,
    normal_orders_flow: f64,
    last_aggressor: Option<(u64, Side)>,
    /// Price of the last aggressive buy (an ask lifted) and sell (a bid hit).
    last_lifted: Option<Price>,
    last_hit: Option<Price>,
    /// Recent trades (time, resting side, price): where makers' orders may have been filled.
    traded: VecDeque<(u64, Side, Price)>,
    /// Last time an agent found the market not trading (a pause may have cancelled orders).
    interrupted_ms: Option<u64>,
}

impl MarketSim {
    fn true_p_at_ms(&self, t_ms: u64) -> f64 {
        logistic(self.path.at(t_ms / self.path.step_ms))
    }
}

#[derive(Clone, Copy, Debug)]
struct MyOrder {
    id: OrderNo,
    side: Side,
    price: Price,
    remaining: Qty,
}

struct MakerMarket {
    value: f64,
    bias: f64,
    last_ms: u64,
    actions: u64,
    orders: Vec<MyOrder>,
}

struct Maker {
    account: AccountId,
    rng: Rng,
    value_halflife_s: f64,
    size_factor: f64,
    markets: Vec<MakerMarket>,
}

struct Informed {
    account: AccountId,
    rng: Rng,
    reaction_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum EvKind {
    PathStep,
    Maker { maker: u32, market: u32 },
    Noise { market: u32 },
    Informed { agent: u32, market: u32 },
    Sweep { market: u32 },
    Open { market: u32 },
    Close { market: u32 },
    Determine { market: u32 },
    Settle { market: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Ev {
    t: u64,
    seq: u64,
    kind: EvKind,
}

/// The simulated population of one session.
pub struct Flow {
    seed: u64,
    pop: Population,
    oracle: OracleParams,
    step_ms: u64,
    markets: Vec<MarketSim>,
    /// MarketId -> index into `markets`.
    index_of: Vec<Option<usize>>,
    makers: Vec<Maker>,
    noise_accounts: Vec<AccountId>,
    informed: Vec<Informed>,
    sweep_account: AccountId,
    /// (account, class), sorted by account.
    classes: Vec<(AccountId, AgentClass)>,
    queue: BinaryHeap<Reverse<Ev>>,
    seq: u64,
    now_ms: u64,
    last_seen_trade: u64,
    tagging: bool,
    tags: Vec<TradeTag>,
    /// Path samples kept behind the current step, for delayed views.
    keep_behind_k: u64,
    /// Path samples generated ahead of the current step, for a leading oracle.
    lead_k: u64,
}

impl Flow {
    /// Adds the scenario's markets and the simulated traders' accounts to `ex` and schedules
    /// the first events. Nothing trades until [`Flow::advance`].
    pub fn new(scenario: &Scenario, seed: u64, ex: &mut Exchange) -> Flow {
        let pop = scenario.population.clone();
        let step_ms = scenario.session.path_step_ms.max(1);
        let master = Rng::new(seed);
        let stream = |kind: u64, i: u64| master.fork(mix(&[kind, i]));
        let mut markets = Vec::new();
        let mut index_of = Vec::new();
        for (i, (params, spec)) in scenario.markets.iter().zip(scenario.market_specs()).enumerate() {
            let id = ex.add_market(spec, 0);
            let m = ex.market(id);
            let mut news: Vec<(u64, f64)> = params
                .news
                .iter()
                .map(|n| ((n.at_s * 1000.0).round() as u64, n.logit_jump))
                .collect();
            news.sort_by_key(|n| n.0);
            let dt = step_ms as f64 / 1000.0;
            let mut xs = VecDeque::new();
            xs.push_back(logit(params.initial_probability).clamp(-X_MAX, X_MAX));
            let i = i as u64;
            markets.push(MarketSim {
                id,
                ticker: m.spec.ticker.clone(),
                ladder: m.ladder.clone(),
                path: Path {
                    rng: stream(1, i),
                    step_ms,
                    sigma_step: params.logit_vol_per_sqrt_s * dt.sqrt(),
                    jump_lambda_step: params.jump_rate_per_hour * dt / 3600.0,
                    jump_sd: params.jump_logit_sd,
                    news,
                    news_generated: 0,
                    first_k: 0,
                    xs,
                },
                cur_k: 0,
                news_journaled: 0,
                close_ms: params.close_s.map(|c| c * 1000),
                determination_delay_ms: params.determination_delay_s * 1000,
                settlement_timer_ms: params.settlement_timer_s * 1000,
                final_p: None,
                resolved: None,
                activity: params.activity,
                depth_scale: params.depth_scale,
                half_spread_cents: params.maker_half_spread_cents.unwrap_or(pop.maker_min_half_spread_cents),
                taker_fee_coef: 0.07 * m.spec.fee_multiplier_e4 as f64 / 10_000.0,
                noise_rng: stream(2, i),
                sweep_rng: stream(3, i),
                result_rng: stream(4, i),
                flow: 0.0,
                flow_ms: 0,
                orders_flow: 0.0,
                normal_flow: 0.0,
                normal_orders_flow: 0.0,
                last_aggressor: None,
                last_lifted: None,
                last_hit: None,
                traded: VecDeque::new(),
                interrupted_ms: None,
            });
            if index_of.len() <= id as usize {
                index_of.resize(id as usize + 1, None);
            }
            index_of[id as usize] = Some(markets.len() - 1);
        }

        let mut classes = Vec::new();
        let mut add = |ex: &mut Exchange, name: String, class: AgentClass| {
            let id = ex.add_account(name.clone(), SIM_ACCOUNT_CASH, true);
            ex.journal(0, "sim_account", json!({"account": id, "user_id": name, "class": class.name()}));
            classes.push((id, class));
            id
        };
        let mut makers = Vec::new();
        for j in 0..pop.maker_count {
            let account = add(ex, format!("sim-maker-{j}"), AgentClass::Maker);
            let mut rng = stream(5, u64::from(j));
            let value_halflife_s = pop.maker_value_halflife_s * rng.range_f64(0.5, 1.5);
            let size_factor = rng.range_f64(0.5, 1.5);
            let per_market = markets
                .iter()
                .map(|m| {
                    let p0 = logistic(m.path.at(0));
                    let bias = pop.maker_value_noise_cents / 100.0 * rng.normal();
                    MakerMarket {
                        value: p0,
                        bias,
                        last_ms: 0,
                        actions: 0,
                        orders: Vec::new(),
                    }
                })
                .collect();
            makers.push(Maker {
                account,
                rng,
                value_halflife_s,
                size_factor,
                markets: per_market,
            });
        }
        let noise_accounts = (0..pop.noise_accounts.max(1))
            .map(|j| add(ex, format!("sim-noise-{j}"), AgentClass::Noise))
            .collect();
        let mut informed = Vec::new();
        for j in 0..pop.informed_count {
            let account = add(ex, format!("sim-informed-{j}"), AgentClass::Informed);
            let mut rng = stream(6, u64::from(j));
            let reaction_ms = (pop.informed_reaction_ms as f64 * rng.range_f64(0.5, 1.5)).round() as u64;
            informed.push(Informed { account, rng, reaction_ms });
        }
        let sweep_account = add(ex, "sim-sweep".into(), AgentClass::Sweep);
        classes.sort();

        let max_reaction = informed.iter().map(|a| a.reaction_ms).max().unwrap_or(0);
        let lag = scenario.oracle.lead_ms.min(0).unsigned_abs();
        let keep_behind_k = (max_reaction.max(lag) + 120_000) / step_ms + 1;
        let lead_k = (scenario.oracle.lead_ms.max(0) as u64).div_ceil(step_ms) + 1;

        let mut flow = Flow {
            seed,
            pop,
            oracle: scenario.oracle.clone(),
            step_ms,
            markets,
            index_of,
            makers,
            noise_accounts,
            informed,
            sweep_account,
            classes,
            queue: BinaryHeap::new(),
            seq: 0,
            now_ms: 0,
            last_seen_trade: 0,
            tagging: false,
            tags: Vec::new(),
            keep_behind_k,
            lead_k,
        };
        ex.journal(
            0,
            "sim_start",
            json!({"seed": seed, "scenario": scenario.session.name, "path_step_ms": step_ms,
                   "markets": flow.markets.iter().map(|m| m.ticker.clone()).collect::<Vec<_>>()}),
        );
        flow.schedule(0, EvKind::PathStep);
        for mi in 0..flow.markets.len() as u32 {
            for mk in 0..flow.makers.len() as u32 {
                // Every maker builds its book at the start, then acts at its own pace.
                flow.schedule(0, EvKind::Maker { maker: mk, market: mi });
            }
            flow.schedule_noise(0, mi);
            for a in 0..flow.informed.len() as u32 {
                flow.schedule_informed(0, a, mi);
            }
            flow.schedule_sweep(0, mi);
            let m = &flow.markets[mi as usize];
            let open_ms = scenario.markets[mi as usize].open_s * 1000;
            let close_ms = m.close_ms;
            if open_ms > 0 {
                flow.schedule(open_ms, EvKind::Open { market: mi });
            }
            if let Some(c) = close_ms {
                flow.schedule(c, EvKind::Close { market: mi });
            }
        }
        flow
    }

    // ------------------------------------------------------------ public API

    /// Runs every scheduled event with time <= `until_ms`, in time order, and expires orders.
    pub fn advance(&mut self, ex: &mut Exchange, until_ms: u64) {
        while let Some(Reverse(ev)) = self.queue.peek().copied() {
            if ev.t > until_ms {
                break;
            }
            self.queue.pop();
            self.now_ms = self.now_ms.max(ev.t);
            ex.expire(ev.t);
            self.handle(ex, ev);
        }
        ex.expire(until_ms);
        self.now_ms = self.now_ms.max(until_ms);
        let k = until_ms / self.step_ms;
        for m in &mut self.markets {
            m.path.ensure(k + self.lead_k);
        }
    }

    /// When the next scheduled event is due (path steps keep this always Some).
    pub fn next_event_ms(&self) -> Option<u64> {
        self.queue.peek().map(|Reverse(ev)| ev.t)
    }

    /// The hidden true probability of YES now (1 or 0 once the market is determined).
    pub fn true_probability(&self, market: MarketId) -> f64 {
        let Some(m) = self.sim(market) else {
            return f64::NAN;
        };
        match m.resolved {
            Some(yes) => f64::from(u8::from(yes)),
            None => match m.final_p {
                Some(p) => p,
                None => logistic(m.path.at(m.cur_k)),
            },
        }
    }

    /// What the oracle publishes at `now_ms`: the true probability at the start of the current
    /// publish interval plus `lead_ms`, with normal noise of `noise_logit_sd` on the logit that
    /// is fixed per interval (asking twice gives the same value).
    pub fn oracle_probability(&self, market: MarketId, now_ms: u64) -> f64 {
        let Some(mi) = self.index(market) else {
            return f64::NAN;
        };
        let m = &self.markets[mi];
        if let Some(yes) = m.resolved {
            return f64::from(u8::from(yes));
        }
        let interval = self.oracle.publish_interval_ms.max(1);
        let slot = now_ms / interval;
        let mut target = (slot * interval) as i64 + self.oracle.lead_ms;
        if let Some(c) = m.close_ms {
            target = target.min(c as i64);
        }
        let x = m.path.at(target.max(0) as u64 / self.step_ms);
        let noise = self.oracle.noise_logit_sd * keyed_normal(&[self.seed, 0x04ac1e, mi as u64, slot]);
        logistic(x + noise)
    }

    #[cfg(test)]
    fn oracle_probability_exact(&self, market: MarketId, now_ms: u64) -> f64 {
        let m = &self.markets[self.index(market).expect("flow market")];
        let interval = self.oracle.publish_interval_ms.max(1);
        let target = ((now_ms / interval * interval) as i64 + self.oracle.lead_ms).max(0) as u64;
        logistic(m.path.at(target / self.step_ms))
    }

    pub fn oracle_params(&self) -> &OracleParams {
        &self.oracle
    }

    /// The markets this flow added, in scenario order.
    pub fn market_ids(&self) -> Vec<MarketId> {
        self.markets.iter().map(|m| m.id).collect()
    }

    /// The class of a simulated account, None for accounts the flow does not own.
    pub fn agent_class(&self, account: AccountId) -> Option<AgentClass> {
        self.classes.binary_search_by_key(&account, |c| c.0).ok().map(|i| self.classes[i].1)
    }

    /// Every simulated account and its class, by account id.
    pub fn agents(&self) -> &[(AccountId, AgentClass)] {
        &self.classes
    }

    /// Records which simulated taker caused each trade (for reports); off by default so a
    /// long-running server does not accumulate tags nobody reads.
    pub fn set_trade_tagging(&mut self, on: bool) {
        self.tagging = on;
    }

    pub fn take_trade_tags(&mut self) -> Vec<TradeTag> {
        std::mem::take(&mut self.tags)
    }

    /// The market's result once determined (Some(true) = YES).
    pub fn result(&self, market: MarketId) -> Option<bool> {
        self.sim(market).and_then(|m| m.resolved)
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    // ------------------------------------------------------------ scheduling

    fn index(&self, market: MarketId) -> Option<usize> {
        self.index_of.get(market as usize).copied().flatten()
    }

    fn sim(&self, market: MarketId) -> Option<&MarketSim> {
        self.index(market).map(|i| &self.markets[i])
    }

    fn schedule(&mut self, t: u64, kind: EvKind) {
        self.seq += 1;
        self.queue.push(Reverse(Ev { t, seq: self.seq, kind }));
    }

    /// Poisson arrivals: the next one after `t` at `rate_per_s`, at least 1 ms later.
    fn after(rng: &mut Rng, t: u64, rate_per_s: f64) -> Option<u64> {
        if rate_per_s.is_nan() || rate_per_s <= 0.0 {
            return None;
        }
        let gap_ms = (rng.exponential(rate_per_s) * 1000.0).ceil().max(1.0);
        Some(t.saturating_add(gap_ms.min(1e15) as u64))
    }

    fn schedule_noise(&mut self, t: u64, mi: u32) {
        let rate = self.pop.noise_rate_per_s * self.markets[mi as usize].activity;
        if let Some(next) = Self::after(&mut self.markets[mi as usize].noise_rng, t, rate) {
            self.schedule(next, EvKind::Noise { market: mi });
        }
    }

    fn schedule_sweep(&mut self, t: u64, mi: u32) {
        let rate = self.pop.sweep_rate_per_hour / 3600.0 * self.markets[mi as usize].activity;
        if let Some(next) = Self::after(&mut self.markets[mi as usize].sweep_rng, t, rate) {
            self.schedule(next, EvKind::Sweep { market: mi });
        }
    }

    fn schedule_informed(&mut self, t: u64, a: u32, mi: u32) {
        let rate = self.pop.informed_check_rate_per_s;
        if let Some(next) = Self::after(&mut self.informed[a as usize].rng, t, rate) {
            self.schedule(next, EvKind::Informed { agent: a, market: mi });
        }
    }

    fn schedule_maker(&mut self, t: u64, mk: u32, mi: u32) {
        let rate = self.pop.maker_action_rate_per_s;
        if let Some(next) = Self::after(&mut self.makers[mk as usize].rng, t, rate) {
            self.schedule(next, EvKind::Maker { maker: mk, market: mi });
        }
    }

    fn handle(&mut self, ex: &mut Exchange, ev: Ev) {
        let t = ev.t;
        match ev.kind {
            EvKind::PathStep => self.path_step(ex, t),
            EvKind::Maker { maker, market } => {
                match phase(ex, self.markets[market as usize].id) {
                    Phase::Over => return,
                    Phase::Wait => self.markets[market as usize].interrupted_ms = Some(t),
                    Phase::Trading => self.maker_act(ex, t, maker as usize, market as usize),
                }
                self.schedule_maker(t, maker, market);
            }
            EvKind::Noise { market } => {
                match phase(ex, self.markets[market as usize].id) {
                    Phase::Over => return,
                    Phase::Wait => self.markets[market as usize].interrupted_ms = Some(t),
                    Phase::Trading => self.noise(ex, t, market as usize),
                }
                self.schedule_noise(t, market);
            }
            EvKind::Informed { agent, market } => {
                match phase(ex, self.markets[market as usize].id) {
                    Phase::Over => return,
                    Phase::Wait => self.markets[market as usize].interrupted_ms = Some(t),
                    Phase::Trading => self.informed_check(ex, t, agent as usize, market as usize),
                }
                self.schedule_informed(t, agent, market);
            }
            EvKind::Sweep { market } => {
                match phase(ex, self.markets[market as usize].id) {
                    Phase::Over => return,
                    Phase::Wait => self.markets[market as usize].interrupted_ms = Some(t),
                    Phase::Trading => self.sweep(ex, t, market as usize),
                }
                self.schedule_sweep(t, market);
            }
            EvKind::Open { market } => ex.open_market(t, self.markets[market as usize].id),
            EvKind::Close { market } => {
                let m = &mut self.markets[market as usize];
                let p = m.true_p_at_ms(t);
                m.final_p = Some(p);
                m.cur_k = t / self.step_ms;
                let id = m.id;
                ex.journal(t, "true_p", json!({"market": m.ticker, "p": round6(p), "final": true}));
                ex.close(t, id);
                let delay = m.determination_delay_ms;
                self.schedule(t + delay, EvKind::Determine { market });
            }
            EvKind::Determine { market } => {
                let m = &mut self.markets[market as usize];
                let p = m.final_p.unwrap_or_else(|| logistic(m.path.at(m.cur_k)));
                let yes = m.result_rng.uniform() < p;
                m.resolved = Some(yes);
                let id = m.id;
                let timer = m.settlement_timer_ms;
                ex.determine(t, id, if yes { MarketResult::Yes } else { MarketResult::No });
                self.schedule(t + timer, EvKind::Settle { market });
            }
            EvKind::Settle { market } => ex.settle(t, self.markets[market as usize].id),
        }
    }

    fn path_step(&mut self, ex: &mut Exchange, t: u64) {
        let k = t / self.step_ms;
        for m in &mut self.markets {
            if m.final_p.is_some() {
                continue;
            }
            m.path.ensure(k + self.lead_k);
            m.cur_k = k;
            while let Some(&(at, jump)) = m.path.news.get(m.news_journaled) {
                if at > t {
                    break;
                }
                m.news_journaled += 1;
                ex.journal(t, "news", json!({"market": m.ticker, "scheduled_ms": at, "logit_jump": jump}));
            }
            let p = logistic(m.path.at(k));
            ex.journal(t, "true_p", json!({"market": m.ticker, "p": round6(p)}));
            m.path.trim_before(k.saturating_sub(self.keep_behind_k));
        }
        self.schedule(t + self.step_ms, EvKind::PathStep);
    }

    // ------------------------------------------------------------ observation

    /// Folds trades since the last look into each market's decayed net aggressive flow.
    fn observe_trades(&mut self, ex: &Exchange, now_ms: u64) {
        let trades = &ex.trades;
        let start = trades.partition_point(|t| t.trade_id <= self.last_seen_trade);
        let hl = self.pop.maker_flow_halflife_s;
        for tr in &trades[start..] {
            self.last_seen_trade = tr.trade_id;
            let Some(mi) = self.index(tr.market) else {
                continue;
            };
            let m = &mut self.markets[mi];
            let ts = tr.ts_ms.max(m.flow_ms);
            let d = decay((ts - m.flow_ms) as f64 / 1000.0, hl);
            m.flow *= d;
            m.orders_flow *= d;
            m.flow_ms = ts;
            // Matches of one taker order share a time and side.
            if m.last_aggressor != Some((tr.ts_ms, tr.taker_side)) {
                m.orders_flow += tr.taker_side.sign() as f64;
                m.last_aggressor = Some((tr.ts_ms, tr.taker_side));
            }
            m.flow += tr.taker_side.sign() as f64 * tr.qty.0 as f64 / 100.0;
            match tr.taker_side {
                Side::Bid => m.last_lifted = Some(tr.yes_price),
                Side::Ask => m.last_hit = Some(tr.yes_price),
            }
            if m.traded.back() != Some(&(tr.ts_ms, tr.taker_side.opposite(), tr.yes_price)) {
                m.traded.push_back((tr.ts_ms, tr.taker_side.opposite(), tr.yes_price));
            }
        }
        for m in &mut self.markets {
            if now_ms > m.flow_ms {
                let dt = (now_ms - m.flow_ms) as f64 / 1000.0;
                let d = decay(dt, hl);
                m.flow *= d;
                m.orders_flow *= d;
                m.flow_ms = now_ms;
                // What normal flow looks like here, so that "toxic" means unusual for this market.
                let w = 1.0 - decay(dt, NORMAL_FLOW_HALFLIFE_S);
                m.normal_flow += w * (m.flow.abs() - m.normal_flow);
                m.normal_orders_flow += w * (m.orders_flow.abs() - m.normal_orders_flow);
            }
            while m.traded.front().is_some_and(|x| x.0 + TRADE_MEMORY_MS < now_ms) {
                m.traded.pop_front();
            }
        }
    }

    // ------------------------------------------------------------ agents

    fn maker_act(&mut self, ex: &mut Exchange, t: u64, mk: usize, mi: usize) {
        self.observe_trades(ex, t);
        let pop = &self.pop;
        let m = &self.markets[mi];
        let market = m.id;
        let ladder = m.ladder.clone();
        let maker = &mut self.makers[mk];
        let account = maker.account;
        let st = &mut maker.markets[mi];
        let rng = &mut maker.rng;

        // What is still resting, and how much. Only orders where trades happened since the
        // last look can have changed (the maker's own cancels are tracked); a full check runs
        // now and then and after anything unusual (a long gap, a pause).
        // An order that vanished where nothing traded means something else cancelled it (a
        // reactivation, an operator): then look at everything.
        let probe = (!st.orders.is_empty()).then(|| st.orders[(st.actions as usize) % st.orders.len()]);
        let vanished = probe.is_some_and(|o| {
            let resting = ex.order(o.id).is_some_and(|x| x.is_resting());
            let traded = m
                .traded
                .iter()
                .any(|&(ts, side, price)| ts >= st.last_ms && side == o.side && price == o.price);
            !resting && !traded
        });
        let full = st.actions % FULL_CHECK_EVERY == 0
            || t >= st.last_ms + TRADE_MEMORY_MS / 2
            || m.interrupted_ms.is_some_and(|x| x >= st.last_ms)
            || vanished;
        st.actions += 1;
        let mut touched: Vec<(Side, Price)> = Vec::new();
        if !full {
            for &(ts, side, price) in m.traded.iter().rev() {
                if ts < st.last_ms {
                    break;
                }
                if !touched.contains(&(side, price)) {
                    touched.push((side, price));
                }
            }
        }
        if full || !touched.is_empty() {
            st.orders.retain_mut(|o| {
                if !full && !touched.contains(&(o.side, o.price)) {
                    return true;
                }
                match ex.order(o.id) {
                    Some(x) if x.is_resting() => {
                        o.remaining = x.remaining;
                        true
                    }
                    _ => false,
                }
            });
        }

        // Value: a slow EWMA of the mid, a private bias, the flow and the inventory.
        let book = &ex.market(market).book;
        let bb = book.best_price(Side::Bid);
        let ba = book.best_price(Side::Ask);
        let mid = match (bb, ba) {
            (Some(b), Some(a)) => Some((f64::from(b.0) + f64::from(a.0)) / 2e4),
            _ => None,
        };
        let dt = (t.saturating_sub(st.last_ms)) as f64 / 1000.0;
        st.last_ms = t;
        if let Some(mid) = mid {
            st.value += (1.0 - decay(dt, maker.value_halflife_s)) * (mid - st.value);
        }
        let d = decay(dt, pop.maker_value_noise_halflife_s);
        st.bias = st.bias * d + pop.maker_value_noise_cents / 100.0 * (1.0 - d * d).sqrt() * rng.normal();
        // Toxic flow: a maker that keeps being hit stops believing its value and moves it to
        // the price the flow has reached (the side being hit also backs off, below).
        let flow = m.flow;
        let toxic_threshold = (pop.maker_toxic_flow_contracts * m.depth_scale).max(TOXIC_VS_NORMAL * m.normal_flow);
        let toxic_bid = flow < -toxic_threshold;
        let toxic_ask = flow > toxic_threshold;
        let persistent = pop.maker_toxic_min_orders.max(TOXIC_VS_NORMAL * m.normal_orders_flow);
        if toxic_ask && m.orders_flow >= persistent {
            if let Some(p) = m.last_lifted {
                st.value = st.value.max(f64::from(p.0) / 1e4);
            }
        }
        if toxic_bid && m.orders_flow <= -persistent {
            if let Some(p) = m.last_hit {
                st.value = st.value.min(f64::from(p.0) / 1e4);
            }
        }
        let inventory = ex.accounts[account as usize]
            .positions
            .get(&market)
            .map_or(0.0, |p| p.qty.0 as f64 / 100.0);
        // Square-root impact: the value follows net aggressive flow, concavely.
        let flow_shift = pop.maker_flow_shift_cents_at_1000 / 100.0 * flow.signum() * (flow.abs() / 1000.0).sqrt();
        let fair = st.value + st.bias + flow_shift - pop.maker_inventory_skew_cents_per_1000 / 100.0 * inventory / 1000.0;
        let lo = f64::from(ladder.min_price().0) / 1e4;
        let hi = f64::from(ladder.max_price().0) / 1e4;
        let fair = fair.clamp(lo, hi);

        // Scheduled news is public: around it makers quote both sides as if the flow were
        // toxic (wider and smaller), not knowing which way it will go.
        let cautious = m
            .path
            .news
            .iter()
            .any(|&(at, _)| t + pop.maker_news_caution_before_ms >= at && t <= at + pop.maker_news_caution_after_ms);
        let toxic_bid = toxic_bid || cautious;
        let toxic_ask = toxic_ask || cautious;
        let h = m.half_spread_cents / 100.0;
        let mut bid_top = ladder
            .floor(Price(((fair - h) * 1e4).floor().max(0.0) as u32))
            .unwrap_or(ladder.min_price());
        let mut ask_top = ladder
            .ceil(Price(((fair + h) * 1e4).ceil().min(1e4) as u32))
            .unwrap_or(ladder.max_price());
        if toxic_bid {
            bid_top = ladder.step_from(bid_top, -i64::from(pop.maker_pull_ticks));
        }
        if toxic_ask {
            ask_top = ladder.step_from(ask_top, i64::from(pop.maker_pull_ticks));
        }
        if bid_top >= ask_top {
            bid_top = ladder.step_from(ask_top, -1);
        }

        // Orders through the new quote are stale: pull them all now.
        let mut i = 0;
        while i < st.orders.len() {
            let o = st.orders[i];
            let stale = match o.side {
                Side::Bid => o.price > bid_top,
                Side::Ask => o.price < ask_top,
            };
            if stale {
                let _ = ex.cancel(t, account, o.id);
                st.orders.swap_remove(i);
            } else {
                i += 1;
            }
        }
        // Never cross someone else's quote.
        let book = &ex.market(market).book;
        if let Some(a) = book.best_price(Side::Ask) {
            if bid_top >= a {
                bid_top = ladder.step_from(a, -1);
            }
        }
        if let Some(b) = book.best_price(Side::Bid) {
            if ask_top <= b {
                ask_top = ladder.step_from(b, 1);
            }
        }

        // The levels and their target sizes.
        let levels = (pop.maker_levels as usize).min(MAX_LEVELS);
        let spacing = ((pop.maker_level_spacing_cents * 100.0).round() as u32).max(1);
        let mut prices: [Vec<Price>; 2] = [Vec::with_capacity(levels), Vec::with_capacity(levels)];
        for (s, side) in [Side::Bid, Side::Ask].into_iter().enumerate() {
            let top = if side == Side::Bid { bid_top } else { ask_top };
            let sign = side.sign();
            // A bid at the ladder floor or an ask at its ceiling cannot be on the book.
            if (side == Side::Bid && bid_top >= ask_top) || ladder.index(top).is_none() {
                continue;
            }
            prices[s].push(top);
            for j in 1..levels {
                let prev = prices[s][j - 1];
                let offset = spacing as i64 * j as i64;
                let raw = i64::from(top.0) - sign * offset;
                let snapped = if raw <= 0 || raw >= i64::from(PRICE_SCALE) {
                    None
                } else if side == Side::Bid {
                    ladder.floor(Price(raw as u32))
                } else {
                    ladder.ceil(Price(raw as u32))
                };
                let one_step = ladder.step_from(prev, -sign);
                let next = match (snapped, side) {
                    (Some(p), Side::Bid) => p.min(one_step),
                    (Some(p), Side::Ask) => p.max(one_step),
                    (None, _) => one_step,
                };
                if next == prev {
                    break;
                }
                prices[s].push(next);
            }
        }

        let med = pop.maker_order_contracts_median;
        let order_size = |rng: &mut Rng| -> Qty {
            let c = rng
                .lognormal_median(med, pop.maker_order_contracts_sigma)
                .clamp(1.0, med * 20.0)
                .round();
            Qty::from_contracts(c as i64)
        };
        // A maker with nothing in the market (at the start, after a reactivation) builds its
        // whole book at once; otherwise it adjusts a few orders per action.
        let building = st.orders.is_empty();
        let mut budget = if building { 10_000 } else { pop.maker_ops_per_action as i64 };
        let per_level = if building { 1_000 } else { 3 };

        // Orders far behind the last level go (they would never trade).
        let far = [
            prices[0].last().map(|&p| ladder.step_from(p, -2)),
            prices[1].last().map(|&p| ladder.step_from(p, 2)),
        ];
        let mut i = 0;
        while i < st.orders.len() && budget > 0 {
            let o = st.orders[i];
            let too_deep = match (o.side, far[usize::from(o.side == Side::Ask)]) {
                (Side::Bid, Some(far)) => o.price < far,
                (Side::Ask, Some(far)) => o.price > far,
                (_, None) => true,
            };
            if too_deep {
                let _ = ex.cancel(t, account, o.id);
                st.orders.swap_remove(i);
                budget -= 1;
            } else {
                i += 1;
            }
        }

        // Fill each level up to its target, touch first; trim levels far over target.
        let base = pop.maker_level_contracts * m.depth_scale * maker.size_factor;
        let mut have_at = [[0f64; MAX_LEVELS]; 2];
        for o in &st.orders {
            let s = usize::from(o.side == Side::Ask);
            if let Some(j) = prices[s].iter().position(|&p| p == o.price) {
                have_at[s][j] += o.remaining.0 as f64 / 100.0;
            }
        }
        #[allow(clippy::needless_range_loop)] // j indexes two sides' levels and their sizes
        'levels: for j in 0..levels {
            for (s, side) in [Side::Bid, Side::Ask].into_iter().enumerate() {
                let Some(&price) = prices[s].get(j) else {
                    continue;
                };
                let toxic = (side == Side::Bid && toxic_bid) || (side == Side::Ask && toxic_ask);
                let mut target = base * pop.maker_level_growth.powi(j as i32);
                if toxic {
                    target *= pop.maker_toxic_size_factor;
                }
                let mut have = have_at[s][j];
                let mut placed = 0;
                while have + med / 2.0 < target && placed < per_level {
                    if budget <= 0 {
                        break 'levels;
                    }
                    let qty = order_size(rng);
                    budget -= 1;
                    placed += 1;
                    let mut req = NewOrder::limit(account, market, side, price, qty);
                    req.post_only = true;
                    match ex.place(t, req) {
                        Ok(p) if p.order.is_resting() => {
                            st.orders.push(MyOrder {
                                id: p.order.id,
                                side,
                                price,
                                remaining: p.order.remaining,
                            });
                            have += p.order.remaining.0 as f64 / 100.0;
                        }
                        _ => break,
                    }
                }
                if have > target * 1.6 && budget > 0 {
                    let mine: Vec<usize> = (0..st.orders.len())
                        .filter(|&k| st.orders[k].side == side && st.orders[k].price == price)
                        .collect();
                    if !mine.is_empty() {
                        let k = mine[rng.index(mine.len())];
                        let _ = ex.cancel(t, account, st.orders[k].id);
                        st.orders.swap_remove(k);
                        budget -= 1;
                    }
                }
            }
        }

        // Churn: cancel a random order from anywhere in the queue and re-post it at the back,
        // or shrink one in place.
        for _ in 0..rng.poisson(pop.maker_refreshes_per_action) {
            if st.orders.is_empty() {
                break;
            }
            let k = rng.index(st.orders.len());
            let o = st.orders.swap_remove(k);
            let Ok((_, cancelled)) = ex.cancel(t, account, o.id) else {
                continue;
            };
            if cancelled.0 <= 0 {
                continue;
            }
            let mut req = NewOrder::limit(account, market, o.side, o.price, cancelled);
            req.post_only = true;
            if let Ok(p) = ex.place(t, req) {
                if p.order.is_resting() {
                    st.orders.push(MyOrder {
                        id: p.order.id,
                        side: o.side,
                        price: o.price,
                        remaining: p.order.remaining,
                    });
                }
            }
        }
        if !st.orders.is_empty() && rng.bernoulli(pop.maker_decrease_prob) {
            let k = rng.index(st.orders.len());
            let o = st.orders[k];
            if o.remaining.0 >= 200 {
                let by = Qty::from_contracts((o.remaining.0 / 200).max(1));
                if let Ok((order, _)) = ex.decrease(t, account, o.id, Reduce::By(by)) {
                    st.orders[k].remaining = order.remaining;
                }
            }
        }
    }

    fn noise(&mut self, ex: &mut Exchange, t: u64, mi: usize) {
        let pop = &self.pop;
        let m = &mut self.markets[mi];
        let rng = &mut m.noise_rng;
        let side = if rng.bernoulli(pop.noise_buy_prob) { Side::Bid } else { Side::Ask };
        let walk = rng.bernoulli(pop.noise_walk_prob);
        let walk_ticks = 1 + rng.below(u64::from(pop.noise_walk_max_ticks.max(1))) as i64;
        let size = rng
            .pareto(pop.noise_size_min_contracts, pop.noise_size_tail_alpha)
            .min(pop.noise_size_max_contracts);
        let account = self.noise_accounts[rng.index(self.noise_accounts.len())];
        let Some(touch) = ex.market(m.id).book.best_price(side.opposite()) else {
            return;
        };
        let limit = if walk {
            m.ladder.step_from(touch, side.sign() * walk_ticks)
        } else {
            touch
        };
        let qty = contracts(size);
        let market = m.id;
        self.take(ex, t, account, AgentClass::Noise, market, side, limit, qty);
    }

    fn informed_check(&mut self, ex: &mut Exchange, t: u64, a: usize, mi: usize) {
        let pop = &self.pop;
        let m = &self.markets[mi];
        let agent = &mut self.informed[a];
        let seen = t.saturating_sub(agent.reaction_ms);
        let v = m.true_p_at_ms(seen);
        let threshold = pop.informed_threshold_cents / 100.0;
        let fee = |p: Price| {
            let p = f64::from(p.0) / 1e4;
            m.taker_fee_coef * p * (1.0 - p)
        };
        let book = &ex.market(m.id).book;
        let edge_buy = |p: Price| v - f64::from(p.0) / 1e4 - fee(p) - threshold;
        let edge_sell = |p: Price| f64::from(p.0) / 1e4 - fee(p) - v - threshold;
        let (side, touch, edge): (Side, Price, &dyn Fn(Price) -> f64) = match (book.best_price(Side::Ask), book.best_price(Side::Bid)) {
            (Some(ask), _) if edge_buy(ask) > 0.0 => (Side::Bid, ask, &edge_buy),
            (_, Some(bid)) if edge_sell(bid) > 0.0 => (Side::Ask, bid, &edge_sell),
            _ => return,
        };
        // The worst price still worth taking.
        let mut limit = touch;
        for _ in 0..200 {
            let next = m.ladder.step_from(limit, side.sign());
            if next == limit || edge(next) <= 0.0 {
                break;
            }
            limit = next;
        }
        let gap = edge(touch) + threshold;
        let scale = (gap / (threshold + fee(touch)).max(0.005)).clamp(0.5, 3.0);
        let size = (agent
            .rng
            .lognormal_median(pop.informed_size_median_contracts, pop.informed_size_sigma)
            * scale)
            .min(pop.informed_max_contracts);
        let account = agent.account;
        let market = m.id;
        self.take(ex, t, account, AgentClass::Informed, market, side, limit, contracts(size));
    }

    fn sweep(&mut self, ex: &mut Exchange, t: u64, mi: usize) {
        let pop = &self.pop;
        let m = &mut self.markets[mi];
        let v = logistic(m.path.at(t / m.path.step_ms));
        let book = &ex.market(m.id).book;
        let (Some(bid), Some(ask)) = (book.best_price(Side::Bid), book.best_price(Side::Ask)) else {
            return;
        };
        let mid = (f64::from(bid.0) + f64::from(ask.0)) / 2e4;
        let rng = &mut m.sweep_rng;
        let side = if rng.bernoulli(pop.sweep_informed_prob) {
            if v >= mid {
                Side::Bid
            } else {
                Side::Ask
            }
        } else if rng.bernoulli(0.5) {
            Side::Bid
        } else {
            Side::Ask
        };
        let share = pop.sweep_depth_share * rng.range_f64(0.7, 1.1) / 0.9;
        let levels = book.depth(side.opposite());
        let walked = &levels[..levels.len().min(pop.sweep_levels as usize)];
        let Some(&(limit, _)) = walked.last() else {
            return;
        };
        let depth: i64 = walked.iter().map(|(_, q)| q.0).sum();
        let qty = Qty(((depth as f64 * share) as i64 / 100 * 100).max(100));
        let market = m.id;
        let account = self.sweep_account;
        self.take(ex, t, account, AgentClass::Sweep, market, side, limit, qty);
    }

    /// Sends an IOC order for a taker and tags the trades it caused.
    #[allow(clippy::too_many_arguments)]
    fn take(
        &mut self,
        ex: &mut Exchange,
        t: u64,
        account: AccountId,
        class: AgentClass,
        market: MarketId,
        side: Side,
        limit: Price,
        qty: Qty,
    ) {
        if qty.0 <= 0 {
            return;
        }
        let before = ex.trades.last().map_or(0, |tr| tr.trade_id);
        let mut req = NewOrder::limit(account, market, side, limit, qty);
        req.tif = TimeInForce::ImmediateOrCancel;
        let Ok(placed) = ex.place(t, req) else { return };
        if self.tagging {
            let after = ex.trades.last().map_or(0, |tr| tr.trade_id);
            if after > before {
                self.tags.push(TradeTag {
                    first_trade_id: before + 1,
                    last_trade_id: after,
                    class,
                    account,
                    market,
                    requested: qty,
                    filled: placed.order.filled,
                });
            }
        }
    }
}

/// Whole contracts (at least one) from a float size.
fn contracts(size: f64) -> Qty {
    Qty::from_contracts((size.round() as i64).max(1))
}

fn round6(p: f64) -> f64 {
    (p * 1e6).round() / 1e6
}

enum Phase {
    Trading,
    Wait,
    Over,
}

fn phase(ex: &Exchange, market: MarketId) -> Phase {
    match ex.market(market).status {
        MarketStatus::Active if ex.exchange_active && ex.trading_active => Phase::Trading,
        MarketStatus::Active | MarketStatus::Initialized | MarketStatus::Inactive => Phase::Wait,
        MarketStatus::Closed | MarketStatus::Determined | MarketStatus::Settled => Phase::Over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ExchangeConfig;

    fn setup(edit: impl FnOnce(&mut Scenario)) -> (Exchange, Flow) {
        let mut s = Scenario::default_calm();
        edit(&mut s);
        let mut ex = Exchange::new(ExchangeConfig::default());
        let flow = Flow::new(&s, 5, &mut ex);
        (ex, flow)
    }

    #[test]
    fn a_leading_oracle_publishes_the_future_and_a_lagging_one_the_past() {
        let (mut ex, mut flow) = setup(|s| {
            s.oracle = OracleParams {
                noise_logit_sd: 0.0,
                lead_ms: 5_000,
                publish_interval_ms: 100,
            };
        });
        let m = flow.market_ids()[0];
        flow.advance(&mut ex, 10_000);
        let published = flow.oracle_probability(m, 10_000);
        assert_eq!(published, flow.oracle_probability(m, 10_050), "fixed within an interval");
        flow.advance(&mut ex, 15_000);
        assert_eq!(flow.true_probability(m), published);
        assert_ne!(published, flow.oracle_probability(m, 15_000));

        let (mut ex, mut flow) = setup(|s| {
            s.oracle = OracleParams {
                noise_logit_sd: 0.0,
                lead_ms: -3_000,
                publish_interval_ms: 1_000,
            };
        });
        flow.advance(&mut ex, 17_000);
        let then = flow.true_probability(m);
        flow.advance(&mut ex, 20_000);
        assert_eq!(flow.oracle_probability(m, 20_500), then);
    }

    #[test]
    fn oracle_noise_is_fixed_per_interval_and_centred() {
        let (mut ex, mut flow) = setup(|s| s.oracle.noise_logit_sd = 0.2);
        let m = flow.market_ids()[0];
        flow.advance(&mut ex, 120_000);
        let a = flow.oracle_probability(m, 119_000);
        assert_eq!(a, flow.oracle_probability(m, 119_999));
        let errors: Vec<f64> = (0..120)
            .map(|s| {
                let t = s * 1000;
                logit(flow.oracle_probability(m, t)) - logit(flow.oracle_probability_exact(m, t))
            })
            .collect();
        let mean = errors.iter().sum::<f64>() / errors.len() as f64;
        let sd = (errors.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / errors.len() as f64).sqrt();
        assert!(mean.abs() < 0.06 && (0.12..0.28).contains(&sd), "mean {mean} sd {sd}");
    }

    #[test]
    fn news_jumps_move_the_true_path_and_markets_resolve() {
        let (mut ex, mut flow) = setup(|s| {
            s.markets[0].logit_vol_per_sqrt_s = 0.0;
            s.markets[0].news = vec![crate::scenario::NewsJump {
                at_s: 10.0,
                logit_jump: 2.0,
            }];
            s.markets[0].close_s = Some(30);
            s.markets[0].settlement_timer_s = 5;
        });
        let m = flow.market_ids()[0];
        flow.advance(&mut ex, 9_900);
        let before = flow.true_probability(m);
        flow.advance(&mut ex, 10_000);
        let after = flow.true_probability(m);
        assert!((logit(after) - logit(before) - 2.0).abs() < 1e-9, "{before} -> {after}");
        flow.advance(&mut ex, 30_000);
        assert!(flow.result(m).is_some());
        let p = flow.true_probability(m);
        assert!(p == 0.0 || p == 1.0);
        assert_eq!(ex.market(m).status, MarketStatus::Determined);
        flow.advance(&mut ex, 35_000);
        assert_eq!(ex.market(m).status, MarketStatus::Settled);
        // The other markets trade on.
        assert_eq!(ex.market(flow.market_ids()[1]).status, MarketStatus::Active);
    }

    #[test]
    fn agents_build_a_two_sided_book_and_are_classed() {
        let (mut ex, mut flow) = setup(|_| {});
        flow.advance(&mut ex, 0);
        for &m in &flow.market_ids() {
            let book = &ex.market(m).book;
            let (Some(b), Some(a)) = (book.best(Side::Bid), book.best(Side::Ask)) else {
                panic!("market {m} is not two-sided at the start");
            };
            assert!(b.0 < a.0);
            assert!(b.1 .0 >= 10_000, "at least 100 contracts at the touch");
        }
        assert_eq!(flow.agent_class(0), Some(AgentClass::Maker));
        assert_eq!(flow.agents().iter().filter(|(_, c)| *c == AgentClass::Informed).count(), 2);
        assert_eq!(flow.agent_class(10_000), None);
        assert!(flow.next_event_ms().is_some_and(|t| t > 0));
    }
}
