//! Kalshi's trading fee, coefficient x C x P x (1 - P). It accrues exactly per fill, in 1e-14
//! dollars, and is rounded up to the cent per order rather than per fill, as Kalshi rounds it,
//! so an order's fees come out the same to the cent.

use super::market::{FeeType, MarketId};
use super::Exchange;
use kalshi_proto::units::{Money, Price, Qty, PRICE_SCALE};

const FEE_RAW_PER_CENT: i128 = 1_000_000_000_000; // 1e-14 dollar units in a cent
pub(super) const MICRO_PER_CENT: i64 = 10_000;

impl Exchange {
    pub(super) fn fee_coefficient(&self, market: MarketId, taker: bool) -> i64 {
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
    pub(super) fn fee_raw(coefficient_e4: i64, price: Price, qty: Qty) -> i128 {
        i128::from(coefficient_e4) * i128::from(qty.0) * i128::from(price.0) * i128::from(PRICE_SCALE - price.0)
    }

    /// Kalshi's fee for one order of `qty` at `price`, rounded up to the cent.
    pub fn fee_for(&self, market: MarketId, taker: bool, price: Price, qty: Qty) -> Money {
        let raw = Self::fee_raw(self.fee_coefficient(market, taker), price, qty);
        ceil_raw_to_money(raw)
    }
}

pub(super) fn ceil_raw_to_money(raw: i128) -> Money {
    let cents = (raw + FEE_RAW_PER_CENT - 1).div_euclid(FEE_RAW_PER_CENT);
    Money(cents as i64 * MICRO_PER_CENT)
}
