//! Turning the exchange's published event batches into channel messages: snapshots, deltas,
//! tickers, trades, fills, user orders, positions and lifecycle, each sequenced per
//! subscription and subject to the armed seq faults.

use super::session::{envelope, err, error_frame, market_table, Channel, Frames, Session, Sub};
use crate::book::AccountId;
use crate::engine::{
    ExEvent, Exchange, FillRecord, LifecycleKind, MarketId, MarketResult, OrderRecord, Position, TickerState, TradeRecord,
};
use crate::faults::Fault;
use crate::ids::IdKind;
use crate::server::Batch;
use crate::wire::outcome_side;
use crate::{ids, wire};
use kalshi_proto::units::{Price, Qty};
use kalshi_proto::Side;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;

impl Session {
    /// The seq for a subscription's next data message, applying an armed seq fault once.
    /// Returns (seq, send twice).
    fn data_seq(&self, sub: &mut Sub) -> (u64, bool) {
        let gen = self.s.faults.seq_generation.load(Ordering::Relaxed);
        let mut twice = false;
        if gen != sub.seq_gen {
            sub.seq_gen = gen;
            let fault = self.s.faults.seq_fault.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match fault {
                Some(Fault::SkipSeq { count }) => sub.seq += count,
                Some(Fault::DuplicateSeq) => twice = true,
                _ => {}
            }
        }
        sub.seq += 1;
        (sub.seq, twice)
    }

    fn sequenced(&self, out: &mut Frames, sub: &mut Sub, kind: &str, id: Option<i64>, msg: &str) {
        let (seq, twice) = self.data_seq(sub);
        let frame = envelope(kind, id, Some(sub.sid), Some(seq), msg);
        if twice {
            out.push(frame.clone());
        }
        out.push(frame);
    }

    fn meta(&self, market: MarketId) -> (&str, &str) {
        match self.markets.get(market as usize) {
            Some(m) => (&m.ticker, &m.uuid),
            None => ("", ""),
        }
    }

    pub(super) fn snapshot(&self, ex: &Exchange, sub: &mut Sub, market: MarketId, id: Option<i64>) -> Frames {
        let Some(m) = ex.markets.get(market as usize) else {
            return Vec::new();
        };
        let mut msg = Map::new();
        msg.insert("market_ticker".into(), json!(m.spec.ticker));
        msg.insert("market_id".into(), json!(m.uuid));
        for (side, name) in [(Side::Bid, "yes"), (Side::Ask, "no")] {
            let levels = wire::book_levels(m, side, sub.use_yes_price, 0);
            if levels.is_empty() {
                continue;
            }
            let fp: Vec<Value> = levels.iter().map(|(p, q)| json!([p.dollars(), q.fp()])).collect();
            let dollars: Vec<Value> = levels.iter().map(|(p, q)| json!([p.dollars(), q.whole()])).collect();
            let cents: Vec<Value> = levels.iter().map(|(p, q)| json!([p.cents_rounded(), q.whole()])).collect();
            msg.insert(format!("{name}_dollars_fp"), Value::Array(fp));
            msg.insert(format!("{name}_dollars"), Value::Array(dollars));
            msg.insert(name.to_string(), Value::Array(cents));
        }
        let mut out = Vec::new();
        self.sequenced(&mut out, sub, "orderbook_snapshot", id, &Value::Object(msg).to_string());
        out
    }

    pub(super) fn ticker_frame(&self, sub: &Sub, market: MarketId, st: &TickerState, ts_ms: u64) -> String {
        let (ticker, uuid) = self.meta(market);
        let bid = st.yes_bid.map_or(Price(0), |b| b.0);
        let ask = st.yes_ask.map_or(Price(10_000), |a| a.0);
        let last = st.last_price.unwrap_or(Price(0));
        let e = self.epoch_ms;
        // Open interest in whole dollars at the last price; volume is the exact traded notional.
        let dollars = |q: Qty| (q.0 as i128 * i128::from(last.0) / 1_000_000) as i64;
        let msg = json!({
            "market_ticker": ticker,
            "market_id": uuid,
            "price_dollars": st.last_price.map_or(String::new(), |p| p.dollars()),
            "yes_bid_dollars": bid.dollars(),
            "yes_ask_dollars": ask.dollars(),
            "no_bid_dollars": ask.complement().dollars(),
            "no_ask_dollars": bid.complement().dollars(),
            "yes_bid_size_fp": st.yes_bid.map_or(Qty::ZERO, |b| b.1).fp(),
            "yes_ask_size_fp": st.yes_ask.map_or(Qty::ZERO, |a| a.1).fp(),
            "volume_fp": st.volume.fp(),
            "open_interest_fp": st.open_interest.fp(),
            "dollar_volume": st.notional_volume.0 / 1_000_000,
            "dollar_open_interest": dollars(st.open_interest),
            "last_trade_size_fp": st.last_trade_qty.fp(),
            "ts": wire::unix_s(e, ts_ms),
            "ts_ms": wire::unix_ms(e, ts_ms),
            "time": wire::rfc3339(e, ts_ms),
            "price": last.cents_rounded(),
            "yes_bid": bid.cents_rounded(),
            "yes_ask": ask.cents_rounded(),
            "volume": st.volume.whole(),
            "open_interest": st.open_interest.whole(),
        });
        envelope("ticker", None, Some(sub.sid), None, &msg.to_string())
    }

    #[allow(clippy::too_many_arguments)]
    fn delta_msg(
        &self,
        sub: &Sub,
        market: MarketId,
        side: Side,
        price: Price,
        delta: Qty,
        owner: AccountId,
        coid: &str,
        ts_ms: u64,
    ) -> String {
        let (ticker, uuid) = self.meta(market);
        let shown = match side {
            Side::Ask if !sub.use_yes_price => price.complement(),
            _ => price,
        };
        let e = self.epoch_ms;
        let mut msg = json!({
            "market_ticker": ticker,
            "market_id": uuid,
            "price_dollars": shown.dollars(),
            "delta_fp": delta.fp(),
            "side": outcome_side(side),
            "price": shown.cents_rounded(),
            "delta": delta.whole(),
            "ts": wire::rfc3339(e, ts_ms),
            "ts_ms": wire::unix_ms(e, ts_ms),
        });
        if self.account == Some(owner) && !coid.is_empty() {
            msg["client_order_id"] = json!(coid);
            msg["subaccount"] = json!(0);
        }
        msg.to_string()
    }

    fn trade_msg(&self, t: &TradeRecord) -> String {
        let (ticker, uuid) = self.meta(t.market);
        let e = self.epoch_ms;
        json!({
            "trade_id": ids::encode(IdKind::Trade, t.trade_id),
            "market_ticker": ticker,
            "market_id": uuid,
            "yes_price_dollars": t.yes_price.dollars(),
            "no_price_dollars": t.yes_price.complement().dollars(),
            "count_fp": t.qty.fp(),
            "taker_side": outcome_side(t.taker_side),
            "taker_outcome_side": outcome_side(t.taker_side),
            "taker_book_side": t.taker_side.name(),
            "is_block_trade": false,
            "ts": wire::unix_s(e, t.ts_ms),
            "ts_ms": wire::unix_ms(e, t.ts_ms),
            "yes_price": t.yes_price.cents_rounded(),
            "no_price": t.yes_price.complement().cents_rounded(),
            "count": t.qty.whole(),
        })
        .to_string()
    }

    fn fill_msg(&self, f: &FillRecord) -> String {
        let (ticker, _) = self.meta(f.market);
        let e = self.epoch_ms;
        json!({
            "trade_id": ids::encode(IdKind::Trade, f.trade_id),
            "order_id": ids::encode(IdKind::Order, f.order_id),
            "client_order_id": f.client_order_id,
            "market_ticker": ticker,
            "exchange_index": 0,
            "is_taker": f.is_taker,
            "side": if f.phrasing.contract_yes { "yes" } else { "no" },
            "action": if f.phrasing.buy { "buy" } else { "sell" },
            "purchased_side": outcome_side(f.side),
            "outcome_side": outcome_side(f.side),
            "book_side": f.side.name(),
            "yes_price_dollars": f.yes_price.dollars(),
            "no_price_dollars": f.yes_price.complement().dollars(),
            "count_fp": f.qty.fp(),
            "fee_cost": f.fee.dollars(6),
            "post_position_fp": f.post_position.fp(),
            "ts": wire::unix_s(e, f.ts_ms),
            "ts_ms": wire::unix_ms(e, f.ts_ms),
            "subaccount": 0,
            "yes_price": f.yes_price.cents_rounded(),
            "no_price": f.yes_price.complement().cents_rounded(),
            "count": f.qty.whole(),
            "post_position": f.post_position.whole(),
        })
        .to_string()
    }

    fn user_order_msg(&self, o: &OrderRecord) -> String {
        let (ticker, _) = self.meta(o.market);
        let e = self.epoch_ms;
        let mut msg = json!({
            "order_id": o.uuid(),
            "user_id": self.user_id,
            "ticker": ticker,
            "exchange_index": 0,
            "status": o.status.name(),
            "side": if o.phrasing.contract_yes { "yes" } else { "no" },
            "action": if o.phrasing.buy { "buy" } else { "sell" },
            "is_yes": o.phrasing.contract_yes,
            "outcome_side": outcome_side(o.side),
            "book_side": o.side.name(),
            "type": "limit",
            "yes_price_dollars": o.price.dollars(),
            "no_price_dollars": o.price.complement().dollars(),
            "fill_count_fp": o.filled.fp(),
            "remaining_count_fp": o.remaining.fp(),
            "initial_count_fp": o.initial.fp(),
            "taker_fill_cost_dollars": o.taker_fill_cost.dollars(6),
            "maker_fill_cost_dollars": o.maker_fill_cost.dollars(6),
            "taker_fees_dollars": o.taker_fees.dollars(6),
            "maker_fees_dollars": o.maker_fees.dollars(6),
            "client_order_id": o.client_order_id,
            "self_trade_prevention_type": o.stp.name(),
            "time_in_force": o.tif.name(),
            "post_only": o.post_only,
            "reduce_only": o.reduce_only,
            "created_time": wire::rfc3339(e, o.created_ms),
            "created_ts_ms": wire::unix_ms(e, o.created_ms),
            "last_update_time": wire::rfc3339(e, o.updated_ms),
            "last_updated_ts_ms": wire::unix_ms(e, o.updated_ms),
            "last_update_reason": o.last_update.name(),
            "subaccount_number": 0,
            "yes_price": o.price.cents_rounded(),
            "no_price": o.price.complement().cents_rounded(),
            "fill_count": o.filled.whole(),
            "remaining_count": o.remaining.whole(),
            "initial_count": o.initial.whole(),
        });
        if let Some(t) = o.expiration_ms {
            msg["expiration_time"] = json!(wire::rfc3339(e, t));
            msg["expiration_ts_ms"] = json!(wire::unix_ms(e, t));
        }
        msg.to_string()
    }

    fn position_msg(&self, market: MarketId, p: &Position) -> String {
        let (ticker, _) = self.meta(market);
        json!({
            "user_id": self.user_id,
            "market_ticker": ticker,
            "position_fp": p.qty.fp(),
            "position_cost_dollars": p.cost.dollars(4),
            "realized_pnl_dollars": p.realized_pnl.dollars(4),
            "fees_paid_dollars": p.fees_paid.dollars(4),
            "position_fee_cost_dollars": p.fees_paid.dollars(4),
            "volume_fp": p.volume.fp(),
            "subaccount": 0,
            "position": p.qty.whole(),
            "position_cost": p.cost.centicents_floor(),
            "realized_pnl": p.realized_pnl.centicents_floor(),
            "fees_paid": p.fees_paid.centicents_floor(),
            "position_fee_cost": p.fees_paid.centicents_floor(),
            "volume": p.volume.whole(),
        })
        .to_string()
    }

    fn lifecycle_msg(&self, market: MarketId, kind: LifecycleKind, ts_ms: u64) -> String {
        let (ticker, _) = self.meta(market);
        let ts = wire::unix_s(self.epoch_ms, ts_ms);
        let settlement = |r: MarketResult| match r {
            MarketResult::Yes => "1.0000",
            MarketResult::No => "0.0000",
        };
        match kind {
            LifecycleKind::Activated => {
                json!({"market_ticker": ticker, "event_type": "activated", "is_deactivated": false, "exchange_index": 0})
            }
            LifecycleKind::Deactivated => {
                json!({"market_ticker": ticker, "event_type": "deactivated", "is_deactivated": true, "exchange_index": 0})
            }
            LifecycleKind::Closed => {
                json!({"market_ticker": ticker, "event_type": "close_date_updated", "close_ts": ts, "exchange_index": 0})
            }
            LifecycleKind::Determined(r) => json!({
                "market_ticker": ticker, "event_type": "determined", "result": r.name(),
                "determination_ts": ts, "settlement_value": settlement(r), "exchange_index": 0,
            }),
            LifecycleKind::Settled => json!({"market_ticker": ticker, "event_type": "settled", "settled_ts": ts, "exchange_index": 0}),
        }
        .to_string()
    }

    pub(super) fn on_batch(&mut self, batch: &Batch) -> Frames {
        let mut out = Vec::new();
        if self.subs.is_empty() {
            return out;
        }
        if let Some(max) = batch.events.iter().filter_map(event_market).max() {
            if max as usize >= self.markets.len() {
                self.markets = market_table(&self.s.lock().exchange);
            }
        }
        let mut subs = std::mem::take(&mut self.subs);
        let no = batch.no;
        for ev in &batch.events {
            for sub in subs.iter_mut() {
                match (sub.channel, ev) {
                    (
                        Channel::Orderbook,
                        ExEvent::BookDelta {
                            market,
                            side,
                            price,
                            delta,
                            owner,
                            client_order_id,
                            ts_ms,
                        },
                    ) if sub.accepts(*market, no) => {
                        let msg = self.delta_msg(sub, *market, *side, *price, *delta, *owner, client_order_id, *ts_ms);
                        self.sequenced(&mut out, sub, "orderbook_delta", None, &msg);
                    }
                    (Channel::Trade, ExEvent::Trade(t)) if sub.accepts(t.market, no) => {
                        let msg = self.trade_msg(t);
                        self.sequenced(&mut out, sub, "trade", None, &msg);
                    }
                    (Channel::Ticker, ExEvent::Ticker { market, state, ts_ms }) if sub.accepts(*market, no) => {
                        out.push(self.ticker_frame(sub, *market, state, *ts_ms));
                    }
                    (Channel::Fill, ExEvent::Fill { account, fill }) if self.account == Some(*account) && sub.accepts(fill.market, no) => {
                        out.push(envelope("fill", None, Some(sub.sid), None, &self.fill_msg(fill)));
                    }
                    (Channel::UserOrders, ExEvent::UserOrder { account, order })
                        if self.account == Some(*account) && sub.accepts(order.market, no) =>
                    {
                        out.push(envelope("user_order", None, Some(sub.sid), None, &self.user_order_msg(order)));
                    }
                    (Channel::Positions, ExEvent::Position { account, market, position })
                        if self.account == Some(*account) && sub.accepts(*market, no) =>
                    {
                        out.push(envelope(
                            "market_position",
                            None,
                            Some(sub.sid),
                            None,
                            &self.position_msg(*market, position),
                        ));
                    }
                    (Channel::Lifecycle, ExEvent::Lifecycle { market, kind, ts_ms }) if no > sub.from_batch => {
                        let msg = self.lifecycle_msg(*market, *kind, *ts_ms);
                        self.sequenced(&mut out, sub, "market_lifecycle_v2", None, &msg);
                    }
                    _ => {}
                }
            }
        }
        self.subs = subs;
        out
    }

    /// The broadcast overwrote batches this connection had not seen: every subscription has
    /// lost data, so each gets the terminal error 25 and ends.
    pub(super) fn on_lag(&mut self) -> Frames {
        let e = err(25, "Subscription outbound buffer overflow");
        self.subs.drain(..).map(|sub| error_frame(None, Some(sub.sid), &e)).collect()
    }
}

fn event_market(ev: &ExEvent) -> Option<MarketId> {
    Some(match ev {
        ExEvent::BookDelta { market, .. } => *market,
        ExEvent::Trade(t) => t.market,
        ExEvent::Ticker { market, .. } => *market,
        ExEvent::Fill { fill, .. } => fill.market,
        ExEvent::UserOrder { order, .. } => order.market,
        ExEvent::Position { market, .. } => *market,
        ExEvent::Lifecycle { market, .. } => *market,
    })
}
