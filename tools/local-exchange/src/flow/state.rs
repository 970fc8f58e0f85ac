//! What the flow keeps per market and per agent between events: each market's path and
//! flow estimates, each maker's orders and estimate of value, each informed trader's delay.

use super::true_path::{logistic, Path};
use crate::book::{AccountId, OrderNo};
use crate::engine::MarketId;
use crate::rng::Rng;
use kalshi_proto::ladder::TickLadder;
use kalshi_proto::units::{Price, Qty};
use kalshi_proto::Side;
use std::collections::VecDeque;
use std::sync::Arc;

pub(super) struct MarketSim {
    pub(super) id: MarketId,
    pub(super) ticker: String,
    pub(super) ladder: Arc<TickLadder>,
    pub(super) path: Path,
    /// The current path step (the last one whose time has come).
    pub(super) cur_k: u64,
    /// Scheduled news already journaled.
    pub(super) news_journaled: usize,
    pub(super) close_ms: Option<u64>,
    pub(super) determination_delay_ms: u64,
    pub(super) settlement_timer_ms: u64,
    pub(super) final_p: Option<f64>,
    pub(super) resolved: Option<bool>,
    pub(super) activity: f64,
    pub(super) depth_scale: f64,
    pub(super) half_spread_cents: f64,
    /// Taker fee per contract is `taker_fee_coef * p * (1 - p)` dollars.
    pub(super) taker_fee_coef: f64,
    pub(super) noise_rng: Rng,
    pub(super) sweep_rng: Rng,
    pub(super) result_rng: Rng,
    /// Net aggressive flow (+ buys of YES), decayed, in contracts, as of `flow_ms`.
    pub(super) flow: f64,
    pub(super) flow_ms: u64,
    /// Net count of aggressive orders (+1 per buy order, -1 per sell), decayed like `flow`:
    /// tells a persistent one-sided stream (informed) from one big order (noise, sweeps).
    pub(super) orders_flow: f64,
    /// Long averages of |flow| and |orders_flow|: the market's normal level.
    pub(super) normal_flow: f64,
    pub(super) normal_orders_flow: f64,
    pub(super) last_aggressor: Option<(u64, Side)>,
    /// Price of the last aggressive buy (an ask lifted) and sell (a bid hit).
    pub(super) last_lifted: Option<Price>,
    pub(super) last_hit: Option<Price>,
    /// Recent trades (time, resting side, price): where makers' orders may have been filled.
    pub(super) traded: VecDeque<(u64, Side, Price)>,
    /// Last time an agent found the market not trading (a pause may have cancelled orders).
    pub(super) interrupted_ms: Option<u64>,
}

impl MarketSim {
    pub(super) fn true_p_at_ms(&self, t_ms: u64) -> f64 {
        logistic(self.path.at(t_ms / self.path.step_ms))
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct MyOrder {
    pub(super) id: OrderNo,
    pub(super) side: Side,
    pub(super) price: Price,
    pub(super) remaining: Qty,
}

pub(super) struct MakerMarket {
    pub(super) value: f64,
    pub(super) bias: f64,
    pub(super) last_ms: u64,
    pub(super) actions: u64,
    pub(super) orders: Vec<MyOrder>,
}

pub(super) struct Maker {
    pub(super) account: AccountId,
    pub(super) rng: Rng,
    pub(super) value_halflife_s: f64,
    pub(super) size_factor: f64,
    pub(super) markets: Vec<MakerMarket>,
}

pub(super) struct Informed {
    pub(super) account: AccountId,
    pub(super) rng: Rng,
    pub(super) reaction_ms: u64,
}
