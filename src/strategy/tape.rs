//! Our fills in the public tape. A trade we take part in arrives twice: as our `Fill` (user
//! channel) and as a public `Trade` (market channel), with the same trade id, in either order.
//! A queue estimator must not count our own fill again as volume traded ahead of us, and
//! flow measures should know which prints were ours; this remembers the last few trade ids
//! of each kind so either arrival order is recognised, without allocating.

use crate::event::TradeId;

/// How many recent ids of each kind are remembered: far more than the fills and trades that
/// can be in flight between the two channels at once.
const REMEMBERED: usize = 16;

/// Ids are kept as their low 64 bits: a UUID's random bits make a false match among a few
/// dozen ids a 2^-55 event, and half-width keys halve the scan on every public trade.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OwnTrades {
    fills: [u64; REMEMBERED],
    next_fill: usize,
    trades: [u64; REMEMBERED],
    next_trade: usize,
}

impl Default for OwnTrades {
    fn default() -> Self {
        OwnTrades {
            fills: [0; REMEMBERED],
            next_fill: 0,
            trades: [0; REMEMBERED],
            next_trade: 0,
        }
    }
}

impl OwnTrades {
    /// One of our fills; true when its public trade was already seen.
    #[inline]
    pub fn on_fill(&mut self, trade: TradeId) -> bool {
        let key = trade.0[1];
        if key == 0 {
            return false;
        }
        self.fills[self.next_fill] = key;
        self.next_fill = (self.next_fill + 1) % REMEMBERED;
        self.trades.contains(&key)
    }

    /// A public trade; true when it is one we took part in (its fill already arrived).
    #[inline]
    pub fn on_trade(&mut self, trade: TradeId) -> bool {
        let key = trade.0[1];
        if key == 0 {
            return false;
        }
        self.trades[self.next_trade] = key;
        self.next_trade = (self.next_trade + 1) % REMEMBERED;
        self.fills.contains(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> TradeId {
        TradeId::from_u128(n)
    }

    #[test]
    fn our_trade_is_recognised_whichever_channel_brings_it_first() {
        let mut t = OwnTrades::default();
        // Fill first, then the public print.
        assert!(!t.on_fill(id(1)));
        assert!(t.on_trade(id(1)));
        // Public print first, then the fill.
        assert!(!t.on_trade(id(2)));
        assert!(t.on_fill(id(2)));
        // Someone else's trade is not ours, and an id-less one never is.
        assert!(!t.on_trade(id(3)));
        assert!(!t.on_fill(TradeId::NONE));
        assert!(!t.on_trade(TradeId::NONE));
    }

    #[test]
    fn only_the_recent_ids_are_remembered() {
        let mut t = OwnTrades::default();
        t.on_fill(id(100));
        for n in 0..REMEMBERED as u128 {
            t.on_fill(id(200 + n));
        }
        assert!(!t.on_trade(id(100)), "forgotten after {REMEMBERED} newer fills");
        assert!(t.on_trade(id(200)));
    }
}
