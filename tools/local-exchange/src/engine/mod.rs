//! The exchange core: markets, accounts, matching, fees, positions, lifecycle.
//!
//! A deterministic state machine. It never reads a clock (every call takes `now_ms`, simulated
//! milliseconds since the session start), never does I/O but the journal, and reports every
//! change as an [`ExEvent`] in its outbox in the order it happened, so the WebSocket layer can
//! fan one ordered stream out and a replay of the same inputs gives the same journal byte for byte.
//!
//! This file holds the exchange itself (its configuration, state, journal and read accessors);
//! each thing it does lives in a file of its own below.

mod account;
mod collateral;
mod events;
mod fees;
mod invariants;
mod lifecycle;
mod market;
mod matching;
mod modify;
mod order;

pub use account::{Account, FillRecord, Position, SettlementRecord};
pub use collateral::opening_cost_per_contract;
pub use events::{ExEvent, LifecycleKind};
pub use market::{FeeType, Market, MarketId, MarketResult, MarketSpec, TickerState, TradeRecord};
pub use order::{NewOrder, OrderError, OrderRecord, Phrasing, Placed, Reduce, UpdateReason};

use crate::book::{AccountId, MatchingBook, OrderNo};
use crate::ids;
use crate::ids::IdKind;
use kalshi_proto::ladder::TickLadder;
use kalshi_proto::market::MarketStatus;
use kalshi_proto::units::{Money, Qty};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::sync::Arc;

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
}
