//! A trading account: its cash, its reserve for resting orders, its positions per market, and
//! the fills and settlements it has received. The portfolio endpoints and the conservation
//! check read these; only the engine writes them.

use super::market::{MarketId, MarketResult};
use super::order::Phrasing;
use crate::book::{AccountId, OrderNo};
use kalshi_proto::units::{Money, Price, Qty};
use kalshi_proto::Side;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default)]
pub struct Position {
    /// Signed: + YES contracts, - NO contracts.
    pub qty: Qty,
    /// What the contracts now held cost.
    pub cost: Money,
    pub realized_pnl: Money,
    pub fees_paid: Money,
    pub total_traded: Money,
    pub volume: Qty,
    pub resting: BTreeSet<OrderNo>,
    /// Worst-case cash the resting orders of this market could need.
    pub requirement: Money,
    pub updated_ms: u64,
}

#[derive(Clone, Debug)]
pub struct Account {
    pub id: AccountId,
    pub user_id: String,
    pub cash: Money,
    /// Sum of position requirements: cash that resting orders could consume.
    pub reserved: Money,
    /// Simulated traders are not balance-checked (their cash is notional); accounts with keys are.
    pub unlimited: bool,
    pub positions: BTreeMap<MarketId, Position>,
    pub fills: Vec<FillRecord>,
    pub settlements: Vec<SettlementRecord>,
}

impl Account {
    pub fn available(&self) -> Money {
        self.cash - self.reserved
    }
}

#[derive(Clone, Debug)]
pub struct FillRecord {
    pub fill_id: u64,
    pub trade_id: u64,
    pub order_id: OrderNo,
    pub market: MarketId,
    pub side: Side,
    pub phrasing: Phrasing,
    pub yes_price: Price,
    pub qty: Qty,
    pub is_taker: bool,
    pub fee: Money,
    pub post_position: Qty,
    pub client_order_id: String,
    pub ts_ms: u64,
}

#[derive(Clone, Debug)]
pub struct SettlementRecord {
    pub market: MarketId,
    pub result: MarketResult,
    pub yes_count: Qty,
    pub no_count: Qty,
    pub yes_total_cost: Money,
    pub no_total_cost: Money,
    pub revenue: Money,
    pub fee_cost: Money,
    pub ts_ms: u64,
}
