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
//!
//! This file holds the flow itself, its set-up and the API the server and simulator drive it
//! through; the path, the scheduler, the agents and their view of the tape have files below.

mod agents;
mod observe;
mod schedule;
mod state;
mod true_path;

pub use true_path::{logistic, logit};

use crate::book::AccountId;
use crate::engine::{Exchange, MarketId};
use crate::rng::{keyed_normal, mix, Rng};
use crate::scenario::{OracleParams, Population, Scenario};
use kalshi_proto::units::{Money, Qty};
use schedule::{Ev, EvKind};
use serde_json::json;
use state::{Informed, Maker, MakerMarket, MarketSim};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use true_path::{Path, X_MAX};

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ExchangeConfig;
    use kalshi_proto::market::MarketStatus;
    use kalshi_proto::Side;

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
