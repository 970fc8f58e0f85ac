//! A market's lifecycle (open, deactivate, activate, close, determine, settle) and the
//! exchange-wide trading switch. Each step cancels what Kalshi cancels at that point and
//! reports the change, so clients see the same sequence Kalshi sends.

use super::account::SettlementRecord;
use super::events::{ExEvent, LifecycleKind};
use super::market::{MarketId, MarketResult};
use super::order::UpdateReason;
use super::Exchange;
use crate::book::{AccountId, OrderNo};
use kalshi_proto::market::MarketStatus;
use kalshi_proto::units::{Money, Qty};
use serde_json::json;

impl Exchange {
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
}
