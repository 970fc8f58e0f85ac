//! Placing an order and matching it: trading-state checks, price-time matching against the
//! book, self-trade prevention, executions and what each fill does to cash, positions,
//! collateral and open interest.

use super::account::FillRecord;
use super::collateral::{closing_proceeds_per_contract, opening_cost_per_contract};
use super::events::ExEvent;
use super::fees::ceil_raw_to_money;
use super::market::{MarketId, TradeRecord};
use super::order::{NewOrder, OrderError, OrderRecord, Placed, UpdateReason};
use super::Exchange;
use crate::book::{Entry, OrderNo};
use kalshi_proto::market::MarketStatus;
use kalshi_proto::order::{OrderStatus, SelfTradePrevention, TimeInForce};
use kalshi_proto::units::{Money, Price, Qty};
use serde_json::json;

/// What matching an incoming order did.
#[derive(Default)]
pub(super) struct Crossed {
    /// Sum of price x count over its fills (1e-6 dollars).
    notional: i128,
    /// It met its own account under taker_at_cross and must not rest.
    pub(super) self_cross: bool,
}

impl Exchange {
    pub(super) fn check_trading(&self, market: MarketId) -> Result<(), OrderError> {
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
    pub(super) fn match_incoming(&mut self, now_ms: u64, id: OrderNo, limit: Price) -> Crossed {
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
}
