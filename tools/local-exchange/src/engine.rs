//! The exchange core: markets, accounts, matching, fees, positions, lifecycle.
//!
//! A deterministic state machine. It never reads a clock (every call takes `now_ms`, simulated
//! milliseconds since the session start), never does I/O but the journal, and reports every
//! change as an [`ExEvent`] in its outbox in the order it happened, so the WebSocket layer can
//! fan one ordered stream out and a replay of the same inputs gives the same journal byte for byte.

use crate::book::{AccountId, Entry, MatchingBook, OrderNo};
use crate::ids::{self, IdKind};
use kalshi_proto::ladder::{LevelStructure, TickLadder};
use kalshi_proto::market::MarketStatus;
use kalshi_proto::order::{OrderStatus, SelfTradePrevention, TimeInForce};
use kalshi_proto::units::{Money, Price, Qty, PRICE_SCALE};
use kalshi_proto::Side;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::sync::Arc;

pub type MarketId = u32;

/// How a client phrased the order: legacy orders name a contract and an action, V2 orders a
/// book side. Both map onto one YES book; this is kept only to echo the client's own terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phrasing {
    pub contract_yes: bool,
    pub buy: bool,
}

impl Phrasing {
    pub fn for_side(side: Side) -> Phrasing {
        Phrasing {
            contract_yes: true,
            buy: side == Side::Bid,
        }
    }
    /// The YES-book side of buying/selling YES/NO.
    pub fn side(self) -> Side {
        if self.contract_yes == self.buy {
            Side::Bid
        } else {
            Side::Ask
        }
    }
}

/// Kalshi's `last_update_reason` vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateReason {
    Created,
    Trade,
    Decrease,
    Amend,
    Canceled,
    SelfTradeCancel,
    ExpiryCancel,
    CloseCancel,
    HaltCancel,
    PostOnlyCrossCancel,
    ReduceOnlyCancel,
    ImmediateCancel,
}

impl UpdateReason {
    pub fn name(self) -> &'static str {
        match self {
            UpdateReason::Created => "",
            UpdateReason::Trade => "Trade",
            UpdateReason::Decrease => "Decrease",
            UpdateReason::Amend => "Amend",
            UpdateReason::Canceled => "Cancel",
            UpdateReason::SelfTradeCancel => "SelfTradeCancel",
            UpdateReason::ExpiryCancel => "ExpiryCancel",
            UpdateReason::CloseCancel => "CloseCancel",
            UpdateReason::HaltCancel => "HaltCancel",
            UpdateReason::PostOnlyCrossCancel => "PostOnlyCrossCancel",
            UpdateReason::ReduceOnlyCancel => "ReduceOnlyCancel",
            UpdateReason::ImmediateCancel => "ImmediateOrCancel",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FeeType {
    #[default]
    Quadratic,
    QuadraticWithMakerFees,
    Flat,
}

impl FeeType {
    pub fn name(self) -> &'static str {
        match self {
            FeeType::Quadratic => "quadratic",
            FeeType::QuadraticWithMakerFees => "quadratic_with_maker_fees",
            FeeType::Flat => "flat",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketResult {
    Yes,
    No,
}

impl MarketResult {
    pub fn name(self) -> &'static str {
        match self {
            MarketResult::Yes => "yes",
            MarketResult::No => "no",
        }
    }
}

/// Static description of a market, from the scenario.
#[derive(Clone, Debug)]
pub struct MarketSpec {
    pub ticker: String,
    pub event_ticker: String,
    pub series_ticker: String,
    pub title: String,
    pub structure: LevelStructure,
    pub fee_type: FeeType,
    /// Scales the fee formula, in 1e-4 (10_000 = 1.0).
    pub fee_multiplier_e4: i64,
    pub open_ms: u64,
    pub close_ms: u64,
    pub settlement_timer_s: u64,
}

#[derive(Clone, Debug)]
pub struct Market {
    pub id: MarketId,
    pub spec: MarketSpec,
    pub uuid: String,
    pub ladder: Arc<TickLadder>,
    pub book: MatchingBook,
    pub status: MarketStatus,
    pub result: Option<MarketResult>,
    pub last_price: Option<Price>,
    pub previous_price: Option<Price>,
    pub volume: Qty,
    /// Traded notional on the YES leg (sum of price x count).
    pub notional_volume: Money,
    pub open_interest: Qty,
    pub last_trade_qty: Qty,
    pub trade_count: u64,
    /// Last ticker values sent, to emit a ticker only when something changed.
    pub last_ticker: Option<TickerState>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickerState {
    pub last_price: Option<Price>,
    pub yes_bid: Option<(Price, Qty)>,
    pub yes_ask: Option<(Price, Qty)>,
    pub volume: Qty,
    pub notional_volume: Money,
    pub open_interest: Qty,
    pub last_trade_qty: Qty,
}

#[derive(Clone, Debug)]
pub struct OrderRecord {
    pub id: OrderNo,
    pub account: AccountId,
    pub market: MarketId,
    pub side: Side,
    /// Limit on the YES leg.
    pub price: Price,
    pub phrasing: Phrasing,
    pub initial: Qty,
    pub remaining: Qty,
    pub filled: Qty,
    pub status: OrderStatus,
    pub tif: TimeInForce,
    pub post_only: bool,
    pub reduce_only: bool,
    pub stp: SelfTradePrevention,
    pub client_order_id: String,
    pub expiration_ms: Option<u64>,
    pub cancel_on_pause: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub last_update: UpdateReason,
    pub taker_fill_cost: Money,
    pub maker_fill_cost: Money,
    pub taker_fees: Money,
    pub maker_fees: Money,
    /// Fee owed before rounding, in 1e-14 dollars; Kalshi rounds per order, not per fill.
    fee_raw: i128,
    fee_charged: Money,
}

impl OrderRecord {
    pub fn uuid(&self) -> String {
        ids::encode(IdKind::Order, self.id)
    }
    pub fn is_resting(&self) -> bool {
        self.status == OrderStatus::Resting
    }
}

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
pub struct TradeRecord {
    pub trade_id: u64,
    pub market: MarketId,
    pub yes_price: Price,
    pub qty: Qty,
    pub taker_side: Side,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleKind {
    Activated,
    Deactivated,
    Closed,
    Determined(MarketResult),
    Settled,
}

/// Everything that changed, in order. The WebSocket layer turns these into channel messages.
#[derive(Clone, Debug)]
pub enum ExEvent {
    BookDelta {
        market: MarketId,
        side: Side,
        price: Price,
        delta: Qty,
        owner: AccountId,
        client_order_id: Arc<str>,
        ts_ms: u64,
    },
    Trade(TradeRecord),
    Ticker {
        market: MarketId,
        state: TickerState,
        ts_ms: u64,
    },
    Fill {
        account: AccountId,
        fill: FillRecord,
    },
    UserOrder {
        account: AccountId,
        order: Box<OrderRecord>,
    },
    Position {
        account: AccountId,
        market: MarketId,
        position: Box<Position>,
    },
    Lifecycle {
        market: MarketId,
        kind: LifecycleKind,
        ts_ms: u64,
    },
}

/// Why an order request failed: Kalshi's error code, the HTTP status and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl OrderError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> OrderError {
        OrderError {
            status,
            code,
            message: message.into(),
        }
    }
    fn invalid(message: impl Into<String>) -> OrderError {
        OrderError::new(400, "invalid_order", message)
    }
}

impl std::fmt::Display for OrderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

#[derive(Clone, Debug)]
pub struct NewOrder {
    pub account: AccountId,
    pub market: MarketId,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    pub phrasing: Phrasing,
    pub tif: TimeInForce,
    pub post_only: bool,
    pub reduce_only: bool,
    pub stp: SelfTradePrevention,
    pub client_order_id: Option<String>,
    pub expiration_ms: Option<u64>,
    pub cancel_on_pause: bool,
}

impl NewOrder {
    /// A plain good-till-canceled limit order, as simulated traders send.
    pub fn limit(account: AccountId, market: MarketId, side: Side, price: Price, qty: Qty) -> NewOrder {
        NewOrder {
            account,
            market,
            side,
            price,
            qty,
            phrasing: Phrasing::for_side(side),
            tif: TimeInForce::GoodTillCanceled,
            post_only: false,
            reduce_only: false,
            stp: SelfTradePrevention::TakerAtCross,
            client_order_id: None,
            expiration_ms: None,
            cancel_on_pause: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    By(Qty),
    To(Qty),
}

#[derive(Clone, Debug)]
pub struct Placed {
    pub order: OrderRecord,
    pub average_fill_price: Option<Price>,
}

#[derive(Clone, Debug)]
pub struct ExchangeConfig {
    pub taker_fee_e4: i64,
    pub maker_fee_e4: i64,
    pub max_order_qty: Qty,
    pub max_open_orders_per_account: usize,
    /// Per-market absolute position limit for keyed accounts (contracts), 0 = none.
    pub max_position: Qty,
    /// Record the queue position of simulated traders' orders too (large journals).
    pub journal_all_queue_positions: bool,
    /// Unix epoch milliseconds of simulated time 0; only for wire timestamps.
    pub epoch_ms: u64,
    /// Public trades kept for `GET /markets/trades`; 0 keeps all (headless analysis reads them).
    pub trade_history: usize,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        ExchangeConfig {
            taker_fee_e4: 700,
            maker_fee_e4: 175,
            max_order_qty: Qty::from_contracts(1_000_000),
            max_open_orders_per_account: 200_000,
            max_position: Qty::ZERO,
            journal_all_queue_positions: false,
            epoch_ms: 0,
            trade_history: 0,
        }
    }
}

pub struct Exchange {
    pub config: ExchangeConfig,
    pub markets: Vec<Market>,
    pub accounts: Vec<Account>,
    orders: HashMap<OrderNo, OrderRecord>,
    by_client_id: HashMap<(AccountId, String), OrderNo>,
    expiries: BTreeSet<(u64, OrderNo)>,
    pub trades: Vec<TradeRecord>,
    next_order: u64,
    next_trade: u64,
    next_fill: u64,
    pub exchange_active: bool,
    pub trading_active: bool,
    /// Exchange fee income: with cash and open interest it makes money conserved.
    pub fees_collected: Money,
    /// Collateral the exchange holds: $1 per open YES/NO pair.
    pub collateral: Money,
    pub outbox: Vec<ExEvent>,
    journal: Option<Box<dyn Write + Send>>,
    journal_seq: u64,
}

/// What matching an incoming order did.
#[derive(Default)]
struct Crossed {
    /// Sum of price x count over its fills (1e-6 dollars).
    notional: i128,
    /// It met its own account under taker_at_cross and must not rest.
    self_cross: bool,
}

const FEE_RAW_PER_CENT: i128 = 1_000_000_000_000; // 1e-14 dollar units in a cent
const MICRO_PER_CENT: i64 = 10_000;

impl Exchange {
    pub fn new(config: ExchangeConfig) -> Exchange {
        Exchange {
            config,
            markets: Vec::new(),
            accounts: Vec::new(),
            orders: HashMap::new(),
            by_client_id: HashMap::new(),
            expiries: BTreeSet::new(),
            trades: Vec::new(),
            next_order: 1,
            next_trade: 1,
            next_fill: 1,
            exchange_active: true,
            trading_active: true,
            fees_collected: Money::ZERO,
            collateral: Money::ZERO,
            outbox: Vec::new(),
            journal: None,
            journal_seq: 0,
        }
    }

    pub fn set_journal(&mut self, sink: Box<dyn Write + Send>) {
        self.journal = Some(sink);
    }

    pub fn flush_journal(&mut self) -> std::io::Result<()> {
        match self.journal.as_mut() {
            Some(j) => j.flush(),
            None => Ok(()),
        }
    }

    /// Writes one journal line: `{"seq":N,"t":ms,"kind":...,...}` with sorted keys.
    pub fn journal(&mut self, now_ms: u64, kind: &str, mut body: serde_json::Value) {
        let Some(sink) = self.journal.as_mut() else {
            return;
        };
        self.journal_seq += 1;
        if let Some(map) = body.as_object_mut() {
            map.insert("seq".into(), json!(self.journal_seq));
            map.insert("t".into(), json!(now_ms));
            map.insert("kind".into(), json!(kind));
        }
        // A failing journal must not take the venue down; the writer reports it on flush.
        let _ = serde_json::to_writer(&mut *sink, &body);
        let _ = sink.write_all(b"\n");
    }

    pub fn journal_enabled(&self) -> bool {
        self.journal.is_some()
    }

    pub fn add_market(&mut self, spec: MarketSpec, now_ms: u64) -> MarketId {
        let id = self.markets.len() as MarketId;
        let ladder = Arc::new(TickLadder::new(spec.structure));
        let status = if now_ms >= spec.open_ms {
            MarketStatus::Active
        } else {
            MarketStatus::Initialized
        };
        self.journal(
            now_ms,
            "market",
            json!({"market": spec.ticker, "structure": spec.structure.name(), "open_ms": spec.open_ms, "close_ms": spec.close_ms}),
        );
        self.markets.push(Market {
            id,
            uuid: ids::encode(IdKind::Market, u64::from(id)),
            book: MatchingBook::new(ladder.clone()),
            ladder,
            spec,
            status,
            result: None,
            last_price: None,
            previous_price: None,
            volume: Qty::ZERO,
            notional_volume: Money::ZERO,
            open_interest: Qty::ZERO,
            last_trade_qty: Qty::ZERO,
            trade_count: 0,
            last_ticker: None,
        });
        id
    }

    pub fn add_account(&mut self, user_id: String, cash: Money, unlimited: bool) -> AccountId {
        let id = self.accounts.len() as AccountId;
        self.accounts.push(Account {
            id,
            user_id,
            cash,
            reserved: Money::ZERO,
            unlimited,
            positions: BTreeMap::new(),
            fills: Vec::new(),
            settlements: Vec::new(),
        });
        id
    }

    pub fn market_by_ticker(&self, ticker: &str) -> Option<MarketId> {
        self.markets.iter().find(|m| m.spec.ticker == ticker).map(|m| m.id)
    }

    pub fn market(&self, id: MarketId) -> &Market {
        &self.markets[id as usize]
    }

    pub fn order(&self, id: OrderNo) -> Option<&OrderRecord> {
        self.orders.get(&id)
    }

    pub fn orders_of(&self, account: AccountId) -> impl Iterator<Item = &OrderRecord> {
        self.orders.values().filter(move |o| o.account == account)
    }

    pub fn resting_orders_of(&self, account: AccountId, market: MarketId) -> Vec<OrderNo> {
        self.accounts[account as usize]
            .positions
            .get(&market)
            .map(|p| p.resting.iter().copied().collect())
            .unwrap_or_default()
    }

    pub fn queue_position(&self, id: OrderNo) -> Option<Qty> {
        let o = self.orders.get(&id)?;
        if !o.is_resting() {
            return None;
        }
        self.markets[o.market as usize].book.queue_ahead(o.side, o.price, o.id)
    }

    pub fn order_by_client_id(&self, account: AccountId, client_order_id: &str) -> Option<OrderNo> {
        self.by_client_id.get(&(account, client_order_id.to_string())).copied()
    }

    // ---------------------------------------------------------------- fees

    fn fee_coefficient(&self, market: MarketId, taker: bool) -> i64 {
        let spec = &self.markets[market as usize].spec;
        let base = if taker {
            self.config.taker_fee_e4
        } else {
            match spec.fee_type {
                FeeType::QuadraticWithMakerFees => self.config.maker_fee_e4,
                _ => 0,
            }
        };
        base * spec.fee_multiplier_e4 / 10_000
    }

    /// Raw fee of `qty` at `price`: coefficient * C * P * (1 - P), in 1e-14 dollars.
    fn fee_raw(coefficient_e4: i64, price: Price, qty: Qty) -> i128 {
        i128::from(coefficient_e4) * i128::from(qty.0) * i128::from(price.0) * i128::from(PRICE_SCALE - price.0)
    }

    /// Kalshi's fee for one order of `qty` at `price`, rounded up to the cent.
    pub fn fee_for(&self, market: MarketId, taker: bool, price: Price, qty: Qty) -> Money {
        let raw = Self::fee_raw(self.fee_coefficient(market, taker), price, qty);
        ceil_raw_to_money(raw)
    }

    // ------------------------------------------------------- requirements

    /// Worst-case cash the resting orders of `account` in `market` could need, counting that
    /// the part of an order which closes an existing position pays out rather than costs.
    fn requirement(&self, account: AccountId, market: MarketId, extra: Option<(Side, Price, Qty)>) -> Money {
        let acct = &self.accounts[account as usize];
        let Some(pos) = acct.positions.get(&market) else {
            return extra.map_or(Money::ZERO, |(s, p, q)| self.side_requirement(market, Qty::ZERO, s, &mut [(p, q)]));
        };
        let mut bids = Vec::new();
        let mut asks = Vec::new();
        for id in &pos.resting {
            let o = &self.orders[id];
            match o.side {
                Side::Bid => bids.push((o.price, o.remaining)),
                Side::Ask => asks.push((o.price, o.remaining)),
            }
        }
        if let Some((s, p, q)) = extra {
            match s {
                Side::Bid => bids.push((p, q)),
                Side::Ask => asks.push((p, q)),
            }
        }
        self.side_requirement(market, pos.qty, Side::Bid, &mut bids) + self.side_requirement(market, pos.qty, Side::Ask, &mut asks)
    }

    fn side_requirement(&self, market: MarketId, position: Qty, side: Side, orders: &mut [(Price, Qty)]) -> Money {
        if orders.is_empty() {
            return Money::ZERO;
        }
        // Contracts these orders could close: the opposite position.
        let mut closable = Qty((-side.sign() * position.0).max(0));
        // Worst case: the closing part goes to the orders that would have cost the least.
        orders.sort_by_key(|(p, _)| opening_cost_per_contract(side, *p));
        let mut need = Money::ZERO;
        let max_fee_coefficient = self.fee_coefficient(market, true).max(self.fee_coefficient(market, false));
        for &(price, qty) in orders.iter() {
            let closing = qty.min(closable);
            closable -= closing;
            let opening = qty - closing;
            need += Money::notional(opening_cost_per_contract(side, price), opening);
            // Fees peak at P = 0.5 and the order may fill at a better price than its limit.
            let fee_raw = Self::fee_raw(max_fee_coefficient, Price(PRICE_SCALE / 2), qty);
            need += ceil_raw_to_money(fee_raw) + Money(MICRO_PER_CENT);
        }
        need
    }

    fn refresh_requirement(&mut self, account: AccountId, market: MarketId) {
        if self.accounts[account as usize].unlimited {
            return;
        }
        let need = self.requirement(account, market, None);
        let acct = &mut self.accounts[account as usize];
        let pos = acct.positions.entry(market).or_default();
        let before = pos.requirement;
        pos.requirement = need;
        acct.reserved += need - before;
    }

    // ------------------------------------------------------------- orders

    fn check_trading(&self, market: MarketId) -> Result<(), OrderError> {
        if !self.exchange_active {
            return Err(OrderError::new(400, "exchange_paused", "the exchange is paused"));
        }
        let m = &self.markets[market as usize];
        match m.status {
            MarketStatus::Active => {}
            MarketStatus::Closed | MarketStatus::Determined | MarketStatus::Settled => {
                return Err(OrderError::new(400, "market_closed", format!("market {} is closed", m.spec.ticker)))
            }
            MarketStatus::Initialized | MarketStatus::Inactive => {
                return Err(OrderError::new(
                    400,
                    "market_inactive",
                    format!("market {} is not open for trading", m.spec.ticker),
                ))
            }
        }
        if !self.trading_active {
            return Err(OrderError::new(400, "trading_paused", "trading is paused"));
        }
        Ok(())
    }

    /// Places an order: validates, matches, and rests what is left if it may rest.
    pub fn place(&mut self, now_ms: u64, req: NewOrder) -> Result<Placed, OrderError> {
        let market = req.market;
        if market as usize >= self.markets.len() {
            return Err(OrderError::new(404, "market_not_found", "no such market"));
        }
        if req.account as usize >= self.accounts.len() {
            return Err(OrderError::new(404, "account_not_found", "no such account"));
        }
        self.check_trading(market)?;
        let ladder = self.markets[market as usize].ladder.clone();
        if ladder.index(req.price).is_none() {
            return Err(OrderError::new(
                400,
                "invalid_price",
                format!(
                    "price {} is not on the {} ladder of {}",
                    req.price,
                    ladder.structure().name(),
                    self.markets[market as usize].spec.ticker
                ),
            ));
        }
        if req.qty.0 <= 0 {
            return Err(OrderError::new(400, "invalid_order_size", "count must be at least 0.01"));
        }
        if req.qty > self.config.max_order_qty {
            return Err(OrderError::new(
                400,
                "invalid_order_size",
                format!("count exceeds the maximum of {}", self.config.max_order_qty),
            ));
        }
        if let Some(exp) = req.expiration_ms {
            if exp <= now_ms {
                return Err(OrderError::invalid("expiration_time must be in the future"));
            }
            if req.tif != TimeInForce::GoodTillCanceled {
                return Err(OrderError::invalid("expiration_time is only valid with good_till_canceled"));
            }
        }
        if req.post_only && req.tif != TimeInForce::GoodTillCanceled {
            return Err(OrderError::invalid("post_only orders must be good_till_canceled"));
        }
        let client_order_id = req.client_order_id.clone().unwrap_or_default();
        if !client_order_id.is_empty() {
            if let Some(existing) = self.by_client_id.get(&(req.account, client_order_id.clone())) {
                if self.orders.get(existing).is_some_and(|o| o.is_resting()) {
                    return Err(OrderError::new(
                        409,
                        "order_already_exists",
                        format!("an open order with client_order_id {client_order_id} exists"),
                    ));
                }
            }
        }
        let acct = &self.accounts[req.account as usize];
        let open_orders: usize = acct.positions.values().map(|p| p.resting.len()).sum();
        if !acct.unlimited && open_orders >= self.config.max_open_orders_per_account {
            return Err(OrderError::new(
                400,
                "too_many_open_orders",
                format!("at most {} open orders", self.config.max_open_orders_per_account),
            ));
        }
        let position = acct.positions.get(&market).map_or(Qty::ZERO, |p| p.qty);
        let mut qty = req.qty;
        if req.reduce_only {
            // Only the part that shrinks the position may trade.
            let closable = Qty((-req.side.sign() * position.0).max(0));
            if closable.is_zero() {
                return Err(OrderError::new(
                    400,
                    "reduce_only_violation",
                    "reduce_only order would not reduce the position",
                ));
            }
            qty = qty.min(closable);
        }
        if !acct.unlimited && self.config.max_position.0 > 0 {
            let worst = position.0 + req.side.sign() * qty.0;
            if worst.abs() > self.config.max_position.0 && worst.abs() > position.0.abs() {
                return Err(OrderError::new(
                    400,
                    "exceeded_per_market_risk_limit",
                    format!("position would exceed {} contracts", self.config.max_position),
                ));
            }
        }
        let book = &self.markets[market as usize].book;
        if req.post_only && book.front_crossing(req.side, req.price).is_some() {
            return Err(OrderError::new(400, "post_only_cross", "post-only order would cross the book"));
        }
        if req.tif == TimeInForce::FillOrKill {
            let mut available = Qty::ZERO;
            for (_, e) in book.crossing_entries(req.side, req.price) {
                if e.account == req.account {
                    if req.stp == SelfTradePrevention::TakerAtCross {
                        break;
                    }
                    continue;
                }
                available += e.remaining;
                if available >= qty {
                    break;
                }
            }
            if available < qty {
                return Err(OrderError::new(
                    400,
                    "fill_or_kill_insufficient_volume",
                    format!("only {available} contracts available at or better than {}", req.price),
                ));
            }
        }
        if !acct.unlimited {
            let need_after = self.requirement(req.account, market, Some((req.side, req.price, qty)));
            let need_before = acct.positions.get(&market).map_or(Money::ZERO, |p| p.requirement);
            if acct.cash - acct.reserved + need_before < need_after {
                return Err(OrderError::new(
                    400,
                    "insufficient_balance",
                    format!(
                        "available balance {} is below the {} this order could cost",
                        acct.available().dollars(4),
                        (need_after - need_before).dollars(4)
                    ),
                ));
            }
        }

        let id = self.next_order;
        self.next_order += 1;
        let order = OrderRecord {
            id,
            account: req.account,
            market,
            side: req.side,
            price: req.price,
            phrasing: req.phrasing,
            initial: qty,
            remaining: qty,
            filled: Qty::ZERO,
            status: OrderStatus::Resting,
            tif: req.tif,
            post_only: req.post_only,
            reduce_only: req.reduce_only,
            stp: req.stp,
            client_order_id: client_order_id.clone(),
            expiration_ms: req.expiration_ms,
            cancel_on_pause: req.cancel_on_pause,
            created_ms: now_ms,
            updated_ms: now_ms,
            last_update: UpdateReason::Created,
            taker_fill_cost: Money::ZERO,
            maker_fill_cost: Money::ZERO,
            taker_fees: Money::ZERO,
            maker_fees: Money::ZERO,
            fee_raw: 0,
            fee_charged: Money::ZERO,
        };
        self.journal_order(now_ms, "order_new", &order, None);
        self.orders.insert(id, order);
        if !client_order_id.is_empty() {
            self.by_client_id.insert((req.account, client_order_id), id);
        }

        let mut notional = 0i128;
        let mut cancel_reason = None;
        // Match against the opposite side.
        let crossed = self.match_incoming(now_ms, id, req.price);
        notional += crossed.notional;
        if crossed.self_cross {
            cancel_reason = Some(UpdateReason::SelfTradeCancel);
        }

        let remaining = self.orders[&id].remaining;
        if !remaining.is_zero() {
            let rests = req.tif == TimeInForce::GoodTillCanceled && cancel_reason.is_none();
            if rests {
                let entry = Entry {
                    order: id,
                    account: req.account,
                    remaining,
                };
                let m = &mut self.markets[market as usize];
                m.book.push_back(req.side, req.price, entry);
                self.accounts[req.account as usize]
                    .positions
                    .entry(market)
                    .or_default()
                    .resting
                    .insert(id);
                if let Some(exp) = req.expiration_ms {
                    self.expiries.insert((exp, id));
                }
                self.emit_book_delta(now_ms, market, req.side, req.price, remaining, id);
                self.refresh_requirement(req.account, market);
            } else {
                let reason = cancel_reason.unwrap_or(UpdateReason::ImmediateCancel);
                let o = self.orders.get_mut(&id).expect("order exists");
                o.remaining = Qty::ZERO;
                o.status = OrderStatus::Canceled;
                o.last_update = reason;
                o.updated_ms = now_ms;
            }
        } else {
            let o = self.orders.get_mut(&id).expect("order exists");
            o.status = OrderStatus::Executed;
        }
        let order = self.orders[&id].clone();
        if order.status != OrderStatus::Resting {
            self.journal_order(now_ms, "order_done", &order, None);
        }
        self.emit_user_order(&order);
        self.emit_ticker(now_ms, market);
        let filled = order.filled;
        let average_fill_price = (!filled.is_zero()).then(|| Price((notional / i128::from(filled.0)) as u32));
        self.forget_if_done(id);
        Ok(Placed { order, average_fill_price })
    }

    /// Matches the incoming order `id` (its side, account and self-trade rule) against the
    /// other side up to `limit`, at the resting orders' prices. Stops when it is filled, the
    /// book no longer crosses, or it meets its own account under taker_at_cross.
    fn match_incoming(&mut self, now_ms: u64, id: OrderNo, limit: Price) -> Crossed {
        let (market, side, account, stp) = {
            let o = &self.orders[&id];
            (o.market, o.side, o.account, o.stp)
        };
        let mut out = Crossed::default();
        loop {
            let remaining = self.orders[&id].remaining;
            if remaining.is_zero() {
                break;
            }
            let Some((price, entry)) = self.markets[market as usize].book.front_crossing(side, limit) else {
                break;
            };
            if entry.account == account {
                match stp {
                    SelfTradePrevention::TakerAtCross => {
                        out.self_cross = true;
                        break;
                    }
                    SelfTradePrevention::Maker => {
                        self.cancel_internal(now_ms, entry.order, UpdateReason::SelfTradeCancel);
                        continue;
                    }
                }
            }
            let x = remaining.min(entry.remaining);
            self.execute(now_ms, entry.order, id, price, x);
            out.notional += i128::from(price.0) * i128::from(x.0);
        }
        out
    }

    /// One fill between a resting maker and an incoming taker at the maker's price.
    fn execute(&mut self, now_ms: u64, maker_id: OrderNo, taker_id: OrderNo, price: Price, qty: Qty) {
        let trade_id = self.next_trade;
        self.next_trade += 1;
        let (market, maker_side, maker_price) = {
            let m = &self.orders[&maker_id];
            (m.market, m.side, m.price)
        };
        let taker_side = maker_side.opposite();

        // Maker's queue entry shrinks in place: a partial fill keeps its priority.
        let new_remaining = self.orders[&maker_id].remaining - qty;
        self.markets[market as usize]
            .book
            .set_remaining(maker_side, maker_price, maker_id, new_remaining);

        let oi_before = self.open_interest_change_probe(market);
        self.apply_fill(now_ms, maker_id, trade_id, price, qty, false);
        self.apply_fill(now_ms, taker_id, trade_id, price, qty, true);
        let oi_change = self.open_interest_change_probe(market) - oi_before;
        self.collateral += Money::notional(kalshi_proto::units::ONE_DOLLAR, oi_change);

        let trade = TradeRecord {
            trade_id,
            market,
            yes_price: price,
            qty,
            taker_side,
            ts_ms: now_ms,
        };
        {
            let m = &mut self.markets[market as usize];
            m.previous_price = m.last_price;
            m.last_price = Some(price);
            m.volume += qty;
            m.notional_volume += Money::notional(price, qty);
            m.open_interest += oi_change;
            m.last_trade_qty = qty;
            m.trade_count += 1;
        }
        let (maker_account, taker_account) = (self.orders[&maker_id].account, self.orders[&taker_id].account);
        self.journal(
            now_ms,
            "trade",
            json!({"market": self.markets[market as usize].spec.ticker, "trade_id": trade_id, "price": price.dollars(), "count": qty.fp(),
                   "taker_side": taker_side.name(), "maker_order": maker_id, "taker_order": taker_id,
                   "maker_account": maker_account, "taker_account": taker_account}),
        );
        self.emit_book_delta(now_ms, market, maker_side, maker_price, -qty, maker_id);
        self.trades.push(trade.clone());
        let keep = self.config.trade_history;
        if keep > 0 && self.trades.len() >= 2 * keep {
            // Trimmed in bulk so a long session's history costs O(1) per trade.
            self.trades.drain(..self.trades.len() - keep);
        }
        self.outbox.push(ExEvent::Trade(trade));
        if new_remaining.is_zero() {
            self.finish_resting(maker_id, OrderStatus::Executed, UpdateReason::Trade, now_ms);
        } else {
            let maker = self.orders[&maker_id].clone();
            self.emit_user_order(&maker);
        }
        self.refresh_requirement(maker_account, market);
    }

    fn open_interest_change_probe(&self, market: MarketId) -> Qty {
        // Open interest is the YES contracts held; summing over accounts is exact but O(accounts).
        Qty(self
            .accounts
            .iter()
            .filter_map(|a| a.positions.get(&market))
            .map(|p| p.qty.0.max(0))
            .sum())
    }

    /// Cash, position, fees and order bookkeeping of one side of a fill.
    fn apply_fill(&mut self, now_ms: u64, order_id: OrderNo, trade_id: u64, price: Price, qty: Qty, is_taker: bool) {
        let (account, market, side) = {
            let o = &self.orders[&order_id];
            (o.account, o.market, o.side)
        };
        let coefficient = self.fee_coefficient(market, is_taker);
        let fee = {
            let o = self.orders.get_mut(&order_id).expect("order exists");
            o.fee_raw += Self::fee_raw(coefficient, price, qty);
            let target = ceil_raw_to_money(o.fee_raw);
            let fee = target - o.fee_charged;
            o.fee_charged = target;
            o.remaining -= qty;
            o.filled += qty;
            o.updated_ms = now_ms;
            o.last_update = UpdateReason::Trade;
            let cost = Money::notional(opening_cost_per_contract(side, price), qty);
            if is_taker {
                o.taker_fill_cost += cost;
                o.taker_fees += fee;
            } else {
                o.maker_fill_cost += cost;
                o.maker_fees += fee;
            }
            fee
        };
        self.fees_collected += fee;
        let acct = &mut self.accounts[account as usize];
        let pos = acct.positions.entry(market).or_default();
        // Netting: a buy of YES first closes NO contracts (each pays out 1 - p), then opens YES
        // at p; a sell of YES first closes YES (pays out p), then opens NO at 1 - p.
        let held_against = Qty((-side.sign() * pos.qty.0).max(0));
        let closing = qty.min(held_against);
        let opening = qty - closing;
        let close_proceeds = Money::notional(closing_proceeds_per_contract(side, price), closing);
        let open_cost = Money::notional(opening_cost_per_contract(side, price), opening);
        if !closing.is_zero() {
            let held = pos.qty.abs();
            let cost_share = Money((i128::from(pos.cost.0) * i128::from(closing.0) / i128::from(held.0)) as i64);
            pos.realized_pnl += close_proceeds - cost_share;
            pos.cost -= cost_share;
        }
        pos.cost += open_cost;
        pos.qty.0 += side.sign() * qty.0;
        pos.fees_paid += fee;
        pos.realized_pnl -= fee;
        pos.total_traded += Money::notional(opening_cost_per_contract(side, price), qty);
        pos.volume += qty;
        pos.updated_ms = now_ms;
        let post_position = pos.qty;
        acct.cash += close_proceeds - open_cost - fee;

        let fill_id = self.next_fill;
        self.next_fill += 1;
        let o = &self.orders[&order_id];
        let fill = FillRecord {
            fill_id,
            trade_id,
            order_id,
            market,
            side,
            phrasing: o.phrasing,
            yes_price: price,
            qty,
            is_taker,
            fee,
            post_position,
            client_order_id: o.client_order_id.clone(),
            ts_ms: now_ms,
        };
        let unlimited = self.accounts[account as usize].unlimited;
        if !unlimited {
            self.accounts[account as usize].fills.push(fill.clone());
            self.outbox.push(ExEvent::Fill { account, fill });
            let position = Box::new(self.accounts[account as usize].positions[&market].clone());
            self.outbox.push(ExEvent::Position { account, market, position });
        }
    }

    /// Ends a resting order; returns it as it ended (it may be forgotten right after).
    fn finish_resting(&mut self, id: OrderNo, status: OrderStatus, reason: UpdateReason, now_ms: u64) -> OrderRecord {
        let (account, market) = {
            let o = self.orders.get_mut(&id).expect("order exists");
            o.status = status;
            o.last_update = reason;
            o.updated_ms = now_ms;
            o.remaining = Qty::ZERO;
            (o.account, o.market)
        };
        if let Some(exp) = self.orders[&id].expiration_ms {
            self.expiries.remove(&(exp, id));
        }
        if let Some(p) = self.accounts[account as usize].positions.get_mut(&market) {
            p.resting.remove(&id);
        }
        let order = self.orders[&id].clone();
        self.journal_order(now_ms, "order_done", &order, None);
        self.emit_user_order(&order);
        self.refresh_requirement(account, market);
        self.forget_if_done(id);
        order
    }

    /// Simulated traders' finished orders are never asked about; dropping them keeps a long
    /// stress run's memory flat.
    fn forget_if_done(&mut self, id: OrderNo) {
        let Some(o) = self.orders.get(&id) else { return };
        if o.is_resting() || !self.accounts[o.account as usize].unlimited {
            return;
        }
        let key = (o.account, o.client_order_id.clone());
        if !key.1.is_empty() {
            self.by_client_id.remove(&key);
        }
        self.orders.remove(&id);
    }

    fn cancel_internal(&mut self, now_ms: u64, id: OrderNo, reason: UpdateReason) -> Qty {
        self.cancel_resting(now_ms, id, reason).map_or(Qty::ZERO, |(q, _)| q)
    }

    /// Cancels a resting order: how much was cancelled and the order as it ended.
    fn cancel_resting(&mut self, now_ms: u64, id: OrderNo, reason: UpdateReason) -> Option<(Qty, OrderRecord)> {
        let (side, price, market, remaining) = match self.orders.get(&id) {
            Some(o) if o.is_resting() => (o.side, o.price, o.market, o.remaining),
            _ => return None,
        };
        self.markets[market as usize].book.remove(side, price, id);
        self.emit_book_delta(now_ms, market, side, price, -remaining, id);
        let order = self.finish_resting(id, OrderStatus::Canceled, reason, now_ms);
        Some((remaining, order))
    }

    fn owned_resting(&self, account: AccountId, id: OrderNo) -> Result<&OrderRecord, OrderError> {
        match self.orders.get(&id) {
            Some(o) if o.account == account => {
                if o.is_resting() {
                    Ok(o)
                } else {
                    Err(OrderError::new(
                        400,
                        "order_not_resting",
                        format!("order {} is {}", o.uuid(), o.status.name()),
                    ))
                }
            }
            _ => Err(OrderError::new(404, "not_found", "order not found")),
        }
    }

    fn check_can_modify(&self, market: MarketId) -> Result<(), OrderError> {
        let m = &self.markets[market as usize];
        if !self.exchange_active {
            return Err(OrderError::new(400, "exchange_paused", "the exchange is paused"));
        }
        if matches!(m.status, MarketStatus::Closed | MarketStatus::Determined | MarketStatus::Settled) {
            return Err(OrderError::new(400, "market_closed", format!("market {} is closed", m.spec.ticker)));
        }
        Ok(())
    }

    /// Cancels a resting order; returns the order as it ended and how much was cancelled.
    pub fn cancel(&mut self, now_ms: u64, account: AccountId, id: OrderNo) -> Result<(OrderRecord, Qty), OrderError> {
        let market = self.owned_resting(account, id)?.market;
        // Cancels are allowed during a trading pause, not during an exchange pause.
        self.check_can_modify(market)?;
        let (reduced, order) = self.cancel_resting(now_ms, id, UpdateReason::Canceled).expect("checked resting");
        self.emit_ticker(now_ms, market);
        Ok((order, reduced))
    }

    /// A still-known order (resting orders always are).
    fn order_snapshot(&self, id: OrderNo) -> OrderRecord {
        self.orders.get(&id).cloned().expect("resting and keyed accounts' orders are kept")
    }

    /// Shrinks a resting order in place; it keeps its queue position.
    pub fn decrease(&mut self, now_ms: u64, account: AccountId, id: OrderNo, reduce: Reduce) -> Result<(OrderRecord, Qty), OrderError> {
        let o = self.owned_resting(account, id)?;
        let (market, side, price, remaining) = (o.market, o.side, o.price, o.remaining);
        self.check_can_modify(market)?;
        let target = match reduce {
            Reduce::By(by) if by.0 > 0 => remaining - by.min(remaining),
            Reduce::To(to) if to.0 >= 0 => to.min(remaining),
            _ => return Err(OrderError::invalid("reduce_by must be positive and reduce_to non-negative")),
        };
        if target.is_zero() {
            let (reduced, order) = self.cancel_resting(now_ms, id, UpdateReason::Decrease).expect("checked resting");
            self.emit_ticker(now_ms, market);
            return Ok((order, reduced));
        }
        let reduced = remaining - target;
        if reduced.is_zero() {
            return Ok((self.order_snapshot(id), Qty::ZERO));
        }
        self.markets[market as usize].book.set_remaining(side, price, id, target);
        {
            let o = self.orders.get_mut(&id).expect("order exists");
            o.remaining = target;
            o.initial -= reduced;
            o.updated_ms = now_ms;
            o.last_update = UpdateReason::Decrease;
        }
        self.emit_book_delta(now_ms, market, side, price, -reduced, id);
        let order = self.order_snapshot(id);
        self.journal_order(now_ms, "order_decrease", &order, None);
        self.emit_user_order(&order);
        self.refresh_requirement(account, market);
        self.emit_ticker(now_ms, market);
        Ok((order, reduced))
    }

    /// Amends price and/or total size (`new_total` = filled + remaining after the amend).
    /// A price change or a size increase loses queue priority; a pure size decrease keeps it.
    /// Returns (old order, new order).
    pub fn amend(
        &mut self,
        now_ms: u64,
        account: AccountId,
        id: OrderNo,
        new_price: Price,
        new_total: Option<Qty>,
    ) -> Result<(OrderRecord, OrderRecord), OrderError> {
        let old = self.owned_resting(account, id)?.clone();
        self.check_trading(old.market)?;
        let market = old.market;
        if self.markets[market as usize].ladder.index(new_price).is_none() {
            return Err(OrderError::new(
                400,
                "invalid_price",
                format!("price {new_price} is not on the market's ladder"),
            ));
        }
        let new_total = new_total.unwrap_or(old.filled + old.remaining);
        if new_total <= old.filled {
            return Err(OrderError::invalid("count must exceed the filled quantity; cancel instead"));
        }
        let new_remaining = new_total - old.filled;
        if new_price == old.price && new_remaining <= old.remaining {
            let (_, _) = self.decrease(now_ms, account, id, Reduce::To(new_remaining))?;
            let mut order = self.order_snapshot(id);
            order.last_update = UpdateReason::Amend;
            if let Some(o) = self.orders.get_mut(&id) {
                o.last_update = UpdateReason::Amend;
            }
            return Ok((old, order));
        }
        if self.markets[market as usize].book.front_crossing(old.side, new_price).is_some() && old.post_only {
            return Err(OrderError::new(
                400,
                "post_only_cross",
                "amended post-only order would cross the book",
            ));
        }
        if !self.accounts[account as usize].unlimited {
            let acct = &self.accounts[account as usize];
            let before = acct.positions.get(&market).map_or(Money::ZERO, |p| p.requirement);
            // Requirement without the old order plus the amended one.
            let mut bids = Vec::new();
            let mut asks = Vec::new();
            if let Some(pos) = acct.positions.get(&market) {
                for oid in pos.resting.iter().filter(|o| **o != id) {
                    let o = &self.orders[oid];
                    match o.side {
                        Side::Bid => bids.push((o.price, o.remaining)),
                        Side::Ask => asks.push((o.price, o.remaining)),
                    }
                }
            }
            match old.side {
                Side::Bid => bids.push((new_price, new_remaining)),
                Side::Ask => asks.push((new_price, new_remaining)),
            }
            let pos_qty = acct.positions.get(&market).map_or(Qty::ZERO, |p| p.qty);
            let after =
                self.side_requirement(market, pos_qty, Side::Bid, &mut bids) + self.side_requirement(market, pos_qty, Side::Ask, &mut asks);
            if acct.available() + before < after {
                return Err(OrderError::new(
                    400,
                    "insufficient_balance",
                    "available balance is too low for the amended order",
                ));
            }
        }
        // Back of the queue: pull it out and run it through matching again at the new terms.
        self.markets[market as usize].book.remove(old.side, old.price, id);
        self.emit_book_delta(now_ms, market, old.side, old.price, -old.remaining, id);
        if let Some(p) = self.accounts[account as usize].positions.get_mut(&market) {
            p.resting.remove(&id);
        }
        {
            let o = self.orders.get_mut(&id).expect("order exists");
            o.price = new_price;
            o.remaining = new_remaining;
            o.initial = new_total;
            o.updated_ms = now_ms;
            o.last_update = UpdateReason::Amend;
        }
        // An amended order that meets its own account is the incoming order: under
        // taker_at_cross it is cancelled, exactly as a new order would be.
        let self_cross = self.match_incoming(now_ms, id, new_price).self_cross;
        let remaining = self.orders[&id].remaining;
        if remaining.is_zero() || self_cross {
            let o = self.orders.get_mut(&id).expect("order exists");
            if remaining.is_zero() {
                o.status = OrderStatus::Executed;
            } else {
                o.status = OrderStatus::Canceled;
                o.remaining = Qty::ZERO;
                o.last_update = UpdateReason::SelfTradeCancel;
            }
            if let Some(exp) = old.expiration_ms {
                self.expiries.remove(&(exp, id));
            }
        } else {
            self.markets[market as usize].book.push_back(
                old.side,
                new_price,
                Entry {
                    order: id,
                    account,
                    remaining,
                },
            );
            self.accounts[account as usize]
                .positions
                .entry(market)
                .or_default()
                .resting
                .insert(id);
            self.emit_book_delta(now_ms, market, old.side, new_price, remaining, id);
        }
        self.refresh_requirement(account, market);
        let order = self.order_snapshot(id);
        self.journal_order(now_ms, "order_amend", &order, None);
        self.emit_user_order(&order);
        self.emit_ticker(now_ms, market);
        self.forget_if_done(id);
        Ok((old, order))
    }

    /// Renames an order's client id (amend's `updated_client_order_id`).
    pub fn set_client_order_id(&mut self, id: OrderNo, client_order_id: String) {
        let Some(o) = self.orders.get_mut(&id) else { return };
        let old = std::mem::replace(&mut o.client_order_id, client_order_id.clone());
        let account = o.account;
        self.by_client_id.remove(&(account, old));
        self.by_client_id.insert((account, client_order_id), id);
    }

    /// Cancels every resting order of `account` (optionally only in one market).
    pub fn cancel_all(&mut self, now_ms: u64, account: AccountId, market: Option<MarketId>) -> Vec<(OrderRecord, Qty)> {
        let ids: Vec<OrderNo> = self.accounts[account as usize]
            .positions
            .iter()
            .filter(|(m, _)| market.is_none_or(|x| x == **m))
            .flat_map(|(_, p)| p.resting.iter().copied())
            .collect();
        let mut out = Vec::new();
        for id in ids {
            if let Ok(r) = self.cancel(now_ms, account, id) {
                out.push(r);
            }
        }
        out
    }

    /// Cancels orders whose expiration time has come.
    /// When the earliest resting order with an expiry expires.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiries.first().map(|&(t, _)| t)
    }

    pub fn expire(&mut self, now_ms: u64) {
        while let Some(&(t, id)) = self.expiries.iter().next() {
            if t > now_ms {
                break;
            }
            self.expiries.remove(&(t, id));
            let market = self.orders.get(&id).map(|o| o.market);
            self.cancel_internal(now_ms, id, UpdateReason::ExpiryCancel);
            if let Some(m) = market {
                self.emit_ticker(now_ms, m);
            }
        }
    }

    // ---------------------------------------------------------- lifecycle

    fn cancel_market_orders(&mut self, now_ms: u64, market: MarketId, reason: UpdateReason, only_on_pause: bool) {
        let mut ids: Vec<OrderNo> = self
            .orders
            .values()
            .filter(|o| o.market == market && o.is_resting() && (!only_on_pause || o.cancel_on_pause))
            .map(|o| o.id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            self.cancel_internal(now_ms, id, reason);
        }
        self.emit_ticker(now_ms, market);
    }

    pub fn open_market(&mut self, now_ms: u64, market: MarketId) {
        let m = &mut self.markets[market as usize];
        if m.status == MarketStatus::Initialized {
            // Opening at open_time emits no lifecycle event on Kalshi.
            m.status = MarketStatus::Active;
            self.journal(now_ms, "market_open", json!({"market": self.markets[market as usize].spec.ticker}));
        }
    }

    pub fn deactivate(&mut self, now_ms: u64, market: MarketId) {
        if self.markets[market as usize].status != MarketStatus::Active {
            return;
        }
        self.markets[market as usize].status = MarketStatus::Inactive;
        self.cancel_market_orders(now_ms, market, UpdateReason::HaltCancel, true);
        self.lifecycle(now_ms, market, LifecycleKind::Deactivated);
    }

    /// Reactivation after a pause cancels every resting order of the market, as on Kalshi.
    pub fn activate(&mut self, now_ms: u64, market: MarketId) {
        if self.markets[market as usize].status != MarketStatus::Inactive {
            return;
        }
        self.cancel_market_orders(now_ms, market, UpdateReason::HaltCancel, false);
        self.markets[market as usize].status = MarketStatus::Active;
        self.lifecycle(now_ms, market, LifecycleKind::Activated);
    }

    pub fn close(&mut self, now_ms: u64, market: MarketId) {
        if matches!(
            self.markets[market as usize].status,
            MarketStatus::Closed | MarketStatus::Determined | MarketStatus::Settled
        ) {
            return;
        }
        self.cancel_market_orders(now_ms, market, UpdateReason::CloseCancel, false);
        self.markets[market as usize].status = MarketStatus::Closed;
        self.lifecycle(now_ms, market, LifecycleKind::Closed);
    }

    pub fn determine(&mut self, now_ms: u64, market: MarketId, result: MarketResult) {
        self.close(now_ms, market);
        let m = &mut self.markets[market as usize];
        if m.status != MarketStatus::Closed {
            return;
        }
        m.status = MarketStatus::Determined;
        m.result = Some(result);
        self.lifecycle(now_ms, market, LifecycleKind::Determined(result));
    }

    /// Pays $1 per winning contract and closes every position in the market.
    pub fn settle(&mut self, now_ms: u64, market: MarketId) {
        let m = &self.markets[market as usize];
        let (MarketStatus::Determined, Some(result)) = (m.status, m.result) else {
            return;
        };
        for a in 0..self.accounts.len() {
            let Some(pos) = self.accounts[a].positions.get(&market).cloned() else {
                continue;
            };
            if pos.qty.is_zero() && pos.total_traded == Money::ZERO {
                continue;
            }
            let held = pos.qty;
            let wins = (held.0 > 0 && result == MarketResult::Yes) || (held.0 < 0 && result == MarketResult::No);
            let revenue = if wins {
                Money::notional(kalshi_proto::units::ONE_DOLLAR, held.abs())
            } else {
                Money::ZERO
            };
            self.collateral -= if held.0 > 0 {
                Money::notional(kalshi_proto::units::ONE_DOLLAR, held)
            } else {
                Money::ZERO
            };
            let acct = &mut self.accounts[a];
            acct.cash += revenue;
            let p = acct.positions.get_mut(&market).expect("position exists");
            p.realized_pnl += revenue - p.cost;
            p.cost = Money::ZERO;
            p.qty = Qty::ZERO;
            p.updated_ms = now_ms;
            let record = SettlementRecord {
                market,
                result,
                yes_count: Qty(held.0.max(0)),
                no_count: Qty((-held.0).max(0)),
                yes_total_cost: if held.0 > 0 { pos.cost } else { Money::ZERO },
                no_total_cost: if held.0 < 0 { pos.cost } else { Money::ZERO },
                revenue,
                fee_cost: pos.fees_paid,
                ts_ms: now_ms,
            };
            if !acct.unlimited {
                acct.settlements.push(record);
                let position = Box::new(acct.positions[&market].clone());
                self.outbox.push(ExEvent::Position {
                    account: a as AccountId,
                    market,
                    position,
                });
            }
        }
        let m = &mut self.markets[market as usize];
        m.status = MarketStatus::Settled;
        m.open_interest = Qty::ZERO;
        self.lifecycle(now_ms, market, LifecycleKind::Settled);
    }

    fn lifecycle(&mut self, now_ms: u64, market: MarketId, kind: LifecycleKind) {
        let name = match kind {
            LifecycleKind::Activated => "activated",
            LifecycleKind::Deactivated => "deactivated",
            LifecycleKind::Closed => "closed",
            LifecycleKind::Determined(_) => "determined",
            LifecycleKind::Settled => "settled",
        };
        let result = match kind {
            LifecycleKind::Determined(r) => Some(r.name()),
            _ => None,
        };
        self.journal(
            now_ms,
            "lifecycle",
            json!({"market": self.markets[market as usize].spec.ticker, "event": name, "result": result}),
        );
        self.outbox.push(ExEvent::Lifecycle {
            market,
            kind,
            ts_ms: now_ms,
        });
    }

    /// Pauses or resumes trading exchange-wide (cancels stay allowed); orders flagged
    /// cancel_order_on_pause are cancelled when a pause starts.
    pub fn set_trading_active(&mut self, now_ms: u64, active: bool) {
        if self.trading_active == active {
            return;
        }
        self.trading_active = active;
        self.journal(now_ms, "trading_active", json!({"active": active}));
        if !active {
            for m in 0..self.markets.len() as MarketId {
                self.cancel_market_orders(now_ms, m, UpdateReason::HaltCancel, true);
            }
        }
    }

    // ------------------------------------------------------------- events

    fn emit_book_delta(&mut self, now_ms: u64, market: MarketId, side: Side, price: Price, delta: Qty, order: OrderNo) {
        if delta.is_zero() {
            return;
        }
        let o = &self.orders[&order];
        let owner = o.account;
        let client_order_id: Arc<str> = Arc::from(o.client_order_id.as_str());
        if self.journal.is_some() {
            let queue = self.level_queue(market, side, price);
            let mut line = json!({"market": self.markets[market as usize].spec.ticker, "side": side.name(), "price": price.dollars(),
                                  "delta": delta.fp(), "order": order, "account": owner});
            // Most levels hold no keyed account's order; an empty list is noise in a large file.
            if queue.as_array().is_some_and(|q| !q.is_empty()) {
                line["queue"] = queue;
            }
            self.journal(now_ms, "book", line);
        }
        self.outbox.push(ExEvent::BookDelta {
            market,
            side,
            price,
            delta,
            owner,
            client_order_id,
            ts_ms: now_ms,
        });
    }

    /// Exact queue positions at one level: `[[order, account, ahead, remaining], ...]` for
    /// keyed accounts' orders (or every order when configured), so analysis can score a
    /// queue estimator against the truth after any book change.
    fn level_queue(&self, market: MarketId, side: Side, price: Price) -> serde_json::Value {
        let Some(level) = self.markets[market as usize].book.level(side, price) else {
            return json!([]);
        };
        let mut out = Vec::new();
        let mut ahead = Qty::ZERO;
        for e in &level.entries {
            if self.config.journal_all_queue_positions || !self.accounts[e.account as usize].unlimited {
                out.push(json!([e.order, e.account, ahead.fp(), e.remaining.fp()]));
            }
            ahead += e.remaining;
        }
        json!(out)
    }

    fn journal_order(&mut self, now_ms: u64, kind: &str, o: &OrderRecord, _extra: Option<()>) {
        if self.journal.is_none() {
            return;
        }
        let queue = if o.is_resting() {
            self.markets[o.market as usize]
                .book
                .queue_ahead(o.side, o.price, o.id)
                .map(|q| q.fp())
        } else {
            None
        };
        self.journal(
            now_ms,
            kind,
            json!({"order": o.id, "account": o.account, "market": self.markets[o.market as usize].spec.ticker,
                   "side": o.side.name(), "price": o.price.dollars(), "initial": o.initial.fp(), "remaining": o.remaining.fp(),
                   "filled": o.filled.fp(), "status": o.status.name(), "tif": o.tif.name(), "reason": o.last_update.name(),
                   "queue_ahead": queue}),
        );
    }

    fn emit_user_order(&mut self, order: &OrderRecord) {
        if self.accounts[order.account as usize].unlimited {
            return;
        }
        self.outbox.push(ExEvent::UserOrder {
            account: order.account,
            order: Box::new(order.clone()),
        });
    }

    pub fn ticker_state(&self, market: MarketId) -> TickerState {
        let m = &self.markets[market as usize];
        TickerState {
            last_price: m.last_price,
            yes_bid: m.book.best(Side::Bid),
            yes_ask: m.book.best(Side::Ask),
            volume: m.volume,
            notional_volume: m.notional_volume,
            open_interest: m.open_interest,
            last_trade_qty: m.last_trade_qty,
        }
    }

    fn emit_ticker(&mut self, now_ms: u64, market: MarketId) {
        let state = self.ticker_state(market);
        let m = &mut self.markets[market as usize];
        if m.last_ticker == Some(state) {
            return;
        }
        m.last_ticker = Some(state);
        self.outbox.push(ExEvent::Ticker {
            market,
            state,
            ts_ms: now_ms,
        });
    }

    pub fn take_events(&mut self) -> Vec<ExEvent> {
        std::mem::take(&mut self.outbox)
    }

    // --------------------------------------------------------- invariants

    /// Money and contracts are conserved: every account's cash plus fees collected plus the
    /// $1-per-pair collateral equals the cash that was deposited; YES and NO positions net to 0;
    /// and no keyed account's cash is below what its resting orders could consume.
    pub fn check_conservation(&self, deposited: Money) -> Result<(), String> {
        let cash: i64 = self.accounts.iter().map(|a| a.cash.0).sum();
        let total = cash + self.fees_collected.0 + self.collateral.0;
        if total != deposited.0 {
            return Err(format!(
                "cash {cash} + fees {} + collateral {} != deposited {}",
                self.fees_collected.0, self.collateral.0, deposited.0
            ));
        }
        for m in &self.markets {
            let net: i64 = self.accounts.iter().filter_map(|a| a.positions.get(&m.id)).map(|p| p.qty.0).sum();
            if net != 0 && m.status != MarketStatus::Settled {
                return Err(format!("market {}: positions net to {net}, not 0", m.spec.ticker));
            }
            m.book.check_invariants().map_err(|e| format!("market {}: {e}", m.spec.ticker))?;
        }
        for a in self.accounts.iter().filter(|a| !a.unlimited) {
            if a.cash < a.reserved || a.cash.0 < 0 {
                return Err(format!("account {}: cash {} below reserved {}", a.id, a.cash, a.reserved));
            }
        }
        Ok(())
    }
}

fn ceil_raw_to_money(raw: i128) -> Money {
    let cents = (raw + FEE_RAW_PER_CENT - 1).div_euclid(FEE_RAW_PER_CENT);
    Money(cents as i64 * MICRO_PER_CENT)
}

/// What one contract costs to open: p for a YES buy, 1 - p for a NO buy (a YES sell).
pub fn opening_cost_per_contract(side: Side, yes_price: Price) -> Price {
    match side {
        Side::Bid => yes_price,
        Side::Ask => yes_price.complement(),
    }
}

/// What closing one held contract pays: selling YES at p pays p; buying YES back against a
/// held NO returns the NO's value, 1 - p.
fn closing_proceeds_per_contract(side: Side, yes_price: Price) -> Price {
    match side {
        Side::Bid => yes_price.complement(),
        Side::Ask => yes_price,
    }
}
