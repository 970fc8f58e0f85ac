//! How the makers see the tape: trades since the last look folded into each market's
//! decayed net aggressive flow, which makers use to tell toxic flow from normal.

use super::agents::{NORMAL_FLOW_HALFLIFE_S, TRADE_MEMORY_MS};
use super::Flow;
use crate::engine::Exchange;
use kalshi_proto::Side;

/// Seconds to the decay factor of an exponential with the given half-life.
pub(super) fn decay(dt_s: f64, halflife_s: f64) -> f64 {
    (-dt_s * std::f64::consts::LN_2 / halflife_s).exp()
}

impl Flow {
    /// Folds trades since the last look into each market's decayed net aggressive flow.
    pub(super) fn observe_trades(&mut self, ex: &Exchange, now_ms: u64) {
        let trades = &ex.trades;
        let start = trades.partition_point(|t| t.trade_id <= self.last_seen_trade);
        let hl = self.pop.maker_flow_halflife_s;
        for tr in &trades[start..] {
            self.last_seen_trade = tr.trade_id;
            let Some(mi) = self.index(tr.market) else {
                continue;
            };
            let m = &mut self.markets[mi];
            let ts = tr.ts_ms.max(m.flow_ms);
            let d = decay((ts - m.flow_ms) as f64 / 1000.0, hl);
            m.flow *= d;
            m.orders_flow *= d;
            m.flow_ms = ts;
            // Matches of one taker order share a time and side.
            if m.last_aggressor != Some((tr.ts_ms, tr.taker_side)) {
                m.orders_flow += tr.taker_side.sign() as f64;
                m.last_aggressor = Some((tr.ts_ms, tr.taker_side));
            }
            m.flow += tr.taker_side.sign() as f64 * tr.qty.0 as f64 / 100.0;
            match tr.taker_side {
                Side::Bid => m.last_lifted = Some(tr.yes_price),
                Side::Ask => m.last_hit = Some(tr.yes_price),
            }
            if m.traded.back() != Some(&(tr.ts_ms, tr.taker_side.opposite(), tr.yes_price)) {
                m.traded.push_back((tr.ts_ms, tr.taker_side.opposite(), tr.yes_price));
            }
        }
        for m in &mut self.markets {
            if now_ms > m.flow_ms {
                let dt = (now_ms - m.flow_ms) as f64 / 1000.0;
                let d = decay(dt, hl);
                m.flow *= d;
                m.orders_flow *= d;
                m.flow_ms = now_ms;
                // What normal flow looks like here, so that "toxic" means unusual for this market.
                let w = 1.0 - decay(dt, NORMAL_FLOW_HALFLIFE_S);
                m.normal_flow += w * (m.flow.abs() - m.normal_flow);
                m.normal_orders_flow += w * (m.orders_flow.abs() - m.normal_orders_flow);
            }
            while m.traded.front().is_some_and(|x| x.0 + TRADE_MEMORY_MS < now_ms) {
                m.traded.pop_front();
            }
        }
    }
}
