//! The event queue: every agent action and path step is an event at a simulated time, run in
//! (time, sequence) order so the same seed replays the same session byte for byte.

use super::agents::round6;
use super::state::MarketSim;
use super::true_path::logistic;
use super::Flow;
use crate::engine::{Exchange, MarketId, MarketResult};
use crate::rng::Rng;
use kalshi_proto::market::MarketStatus;
use serde_json::json;
use std::cmp::Reverse;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum EvKind {
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
pub(super) struct Ev {
    pub(super) t: u64,
    pub(super) seq: u64,
    pub(super) kind: EvKind,
}

impl Flow {
    pub(super) fn index(&self, market: MarketId) -> Option<usize> {
        self.index_of.get(market as usize).copied().flatten()
    }

    pub(super) fn sim(&self, market: MarketId) -> Option<&MarketSim> {
        self.index(market).map(|i| &self.markets[i])
    }

    pub(super) fn schedule(&mut self, t: u64, kind: EvKind) {
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

    pub(super) fn schedule_noise(&mut self, t: u64, mi: u32) {
        let rate = self.pop.noise_rate_per_s * self.markets[mi as usize].activity;
        if let Some(next) = Self::after(&mut self.markets[mi as usize].noise_rng, t, rate) {
            self.schedule(next, EvKind::Noise { market: mi });
        }
    }

    pub(super) fn schedule_sweep(&mut self, t: u64, mi: u32) {
        let rate = self.pop.sweep_rate_per_hour / 3600.0 * self.markets[mi as usize].activity;
        if let Some(next) = Self::after(&mut self.markets[mi as usize].sweep_rng, t, rate) {
            self.schedule(next, EvKind::Sweep { market: mi });
        }
    }

    pub(super) fn schedule_informed(&mut self, t: u64, a: u32, mi: u32) {
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

    pub(super) fn handle(&mut self, ex: &mut Exchange, ev: Ev) {
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
