//! What resting orders could cost an account at worst, and what opening or closing a contract
//! costs or pays. Kept apart from matching because placement, amendment and fills all
//! re-evaluate it, and it is where a keyed account is refused for lack of cash.

use super::fees::{ceil_raw_to_money, MICRO_PER_CENT};
use super::market::MarketId;
use super::Exchange;
use crate::book::AccountId;
use kalshi_proto::units::{Money, Price, Qty, PRICE_SCALE};
use kalshi_proto::Side;

impl Exchange {
    /// Worst-case cash the resting orders of `account` in `market` could need, counting that
    /// the part of an order which closes an existing position pays out rather than costs.
    pub(super) fn requirement(&self, account: AccountId, market: MarketId, extra: Option<(Side, Price, Qty)>) -> Money {
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

    pub(super) fn side_requirement(&self, market: MarketId, position: Qty, side: Side, orders: &mut [(Price, Qty)]) -> Money {
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

    pub(super) fn refresh_requirement(&mut self, account: AccountId, market: MarketId) {
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
pub(super) fn closing_proceeds_per_contract(side: Side, yes_price: Price) -> Price {
    match side {
        Side::Bid => yes_price.complement(),
        Side::Ask => yes_price,
    }
}
