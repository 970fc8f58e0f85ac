//! What the engine reports: the ordered [`ExEvent`] outbox the WebSocket layer fans out, and
//! the journal lines written alongside. One place emits each kind, so the stream's order is
//! the order things happened in and a replay reproduces the journal byte for byte.

use super::account::{FillRecord, Position};
use super::market::{MarketId, MarketResult, TickerState, TradeRecord};
use super::order::OrderRecord;
use super::Exchange;
use crate::book::{AccountId, OrderNo};
use kalshi_proto::units::{Price, Qty};
use kalshi_proto::Side;
use serde_json::json;
use std::sync::Arc;

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

impl Exchange {
    pub(super) fn emit_book_delta(&mut self, now_ms: u64, market: MarketId, side: Side, price: Price, delta: Qty, order: OrderNo) {
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

    pub(super) fn journal_order(&mut self, now_ms: u64, kind: &str, o: &OrderRecord, _extra: Option<()>) {
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

    pub(super) fn emit_user_order(&mut self, order: &OrderRecord) {
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

    pub(super) fn emit_ticker(&mut self, now_ms: u64, market: MarketId) {
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
}
