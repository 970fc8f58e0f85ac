//! The reconnect bootstrap over REST: resting orders, positions and the fills missed while down,
//! as events, before `Connected`.
//!
//! Separate from the session because it is blocking REST on the slow path, run once per
//! (re)connection, and the only other user of the fill dedupe.

use super::*;

impl Io {
    /// Orders, positions and missed fills over REST, as events; then `Connected`.
    pub(super) fn resync(&mut self) -> anyhow::Result<(usize, usize)> {
        let since_s = self.session.down_since_ms.map(|ms| (ms / 1000).saturating_sub(10));
        let orders = venue::fetch_resting_orders(&mut self.rest)?;
        let positions = venue::fetch_positions(&mut self.rest)?;
        let fills = match since_s {
            Some(s) => venue::fetch_fills(&mut self.rest, s)?,
            None => Vec::new(),
        };
        let market_of = |t: &str| self.decoder.interner().get(t.as_bytes());
        let mut resting = 0;
        for o in &orders {
            let Some(market) = market_of(&o.ticker) else {
                continue;
            };
            let client = o.client.or_else(|| self.out.clients.get(&o.order.0).copied()).unwrap_or_default();
            self.out.clients.insert(o.order.0, client);
            resting += 1;
            self.out.push(Event {
                stamp: Stamp::default(),
                body: EventBody::OrderUpdate {
                    market,
                    client,
                    order: o.order,
                    status: OrderStatus::Resting,
                    side: o.side,
                    price: o.price,
                    remaining: o.remaining,
                    filled: o.filled,
                },
            });
        }
        // Missed fills: per key, what REST lists beyond what was reported.
        let mut listed: HashMap<FillKey, u32> = HashMap::new();
        let mut recovered = 0;
        for f in &fills {
            let Some(market) = market_of(&f.ticker) else {
                continue;
            };
            let key = FillKey {
                order: f.order.0,
                qty: f.qty.0,
                price: f.yes_price.0,
                ts_s: f.ts_ms / 1000,
            };
            let n = listed.entry(key).or_default();
            *n += 1;
            if !self.out.fills.on_listed(key, *n) {
                continue;
            }
            recovered += 1;
            let post_position = positions.iter().find(|p| p.ticker == f.ticker).map_or(Qty::ZERO, |p| p.position);
            let client = f.client.or_else(|| self.out.clients.get(&f.order.0).copied()).unwrap_or_default();
            self.out.push(Event {
                stamp: Stamp {
                    exchange_ts_ms: f.ts_ms,
                    ..Stamp::default()
                },
                body: EventBody::Fill {
                    market,
                    client,
                    order: f.order,
                    side: f.side,
                    yes_price: f.yes_price,
                    qty: f.qty,
                    is_taker: f.is_taker,
                    fee: f.fee,
                    // REST fills carry no running position: the position after the resync.
                    post_position,
                    trade: TradeId::parse(f.trade_id.as_bytes()).unwrap_or_default(),
                },
            });
        }
        self.out.counters.fills_recovered += recovered as u64;
        for (i, t) in self.tickers.iter().enumerate() {
            let p = positions.iter().find(|p| &p.ticker == t);
            self.out.push(Event {
                stamp: Stamp::default(),
                body: EventBody::Position {
                    market: i as MarketIdx,
                    position: p.map_or(Qty::ZERO, |p| p.position),
                    realized_pnl: p.map_or(Money(0), |p| p.realized_pnl),
                    fees_paid: p.map_or(Money(0), |p| p.fees_paid),
                },
            });
        }
        Ok((resting, recovered))
    }
}
