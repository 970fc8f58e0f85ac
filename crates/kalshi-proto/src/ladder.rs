//! Per-market tick ladders.
//!
//! Kalshi markets carry a `price_level_structure` and `price_ranges` (`[{start, end, step}]`
//! dollar strings); the ranges are the truth. Tapered ladders are not uniform, so a price is
//! never rounded with `price / tick`: it is looked up in a dense table over the 10_001 possible
//! 1e-4 prices, which also makes "is this price on the ladder" one array read.

use crate::units::{Price, PRICE_SCALE};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceRange {
    pub start: Price,
    pub end: Price,
    pub step: Price,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelStructure {
    LinearCent,
    DeciCent,
    TaperedDeciCent,
}

impl LevelStructure {
    pub fn name(self) -> &'static str {
        match self {
            LevelStructure::LinearCent => "linear_cent",
            LevelStructure::DeciCent => "deci_cent",
            LevelStructure::TaperedDeciCent => "tapered_deci_cent",
        }
    }

    pub fn parse(name: &str) -> Option<LevelStructure> {
        match name {
            "linear_cent" => Some(LevelStructure::LinearCent),
            "deci_cent" => Some(LevelStructure::DeciCent),
            "tapered_deci_cent" => Some(LevelStructure::TaperedDeciCent),
            _ => None,
        }
    }

    pub fn ranges(self) -> Vec<PriceRange> {
        let range = |start, end, step| PriceRange {
            start: Price(start),
            end: Price(end),
            step: Price(step),
        };
        match self {
            LevelStructure::LinearCent => vec![range(0, 10_000, 100)],
            LevelStructure::DeciCent => vec![range(0, 10_000, 10)],
            LevelStructure::TaperedDeciCent => vec![range(0, 1_000, 10), range(1_000, 9_000, 100), range(9_000, 10_000, 10)],
        }
    }
}

const OFF_LADDER: u16 = u16::MAX;

/// The tradable prices of one market, strictly between $0 and $1, ascending.
#[derive(Clone, Debug)]
pub struct TickLadder {
    structure: LevelStructure,
    prices: Vec<Price>,
    index_of: Box<[u16]>,
    /// How many ladder prices are at or below each price: floor, ceil and rank become one
    /// look-up instead of a binary search (the quoting model makes four per decision).
    at_or_below: Box<[u16]>,
}

impl TickLadder {
    pub fn new(structure: LevelStructure) -> TickLadder {
        let mut on = vec![false; PRICE_SCALE as usize + 1];
        for range in structure.ranges() {
            let mut p = range.start.0;
            while p <= range.end.0 {
                on[p as usize] = true;
                p += range.step.0;
            }
        }
        // $0 and $1 are ladder end points but never valid limit prices.
        on[0] = false;
        on[PRICE_SCALE as usize] = false;
        let prices: Vec<Price> = (0..=PRICE_SCALE).filter(|&p| on[p as usize]).map(Price).collect();
        let mut index_of = vec![OFF_LADDER; PRICE_SCALE as usize + 1].into_boxed_slice();
        for (i, p) in prices.iter().enumerate() {
            index_of[p.0 as usize] = i as u16;
        }
        let mut at_or_below = vec![0u16; PRICE_SCALE as usize + 1].into_boxed_slice();
        let mut count = 0u16;
        for (p, slot) in at_or_below.iter_mut().enumerate() {
            if index_of[p] != OFF_LADDER {
                count += 1;
            }
            *slot = count;
        }
        TickLadder {
            structure,
            prices,
            index_of,
            at_or_below,
        }
    }

    pub fn structure(&self) -> LevelStructure {
        self.structure
    }

    pub fn len(&self) -> usize {
        self.prices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }

    pub fn index(&self, price: Price) -> Option<usize> {
        match self.index_of.get(price.0 as usize) {
            Some(&i) if i != OFF_LADDER => Some(i as usize),
            _ => None,
        }
    }

    pub fn price(&self, index: usize) -> Price {
        self.prices[index]
    }

    pub fn prices(&self) -> &[Price] {
        &self.prices
    }

    pub fn min_price(&self) -> Price {
        self.prices[0]
    }

    pub fn max_price(&self) -> Price {
        self.prices[self.prices.len() - 1]
    }

    /// The ladder price at or below `price` (used by simulated traders, never to fix up orders).
    pub fn floor(&self, price: Price) -> Option<Price> {
        let i = self.count_at_or_below(price);
        (i > 0).then(|| self.prices[i - 1])
    }

    /// How many ladder prices are at or below `price`.
    #[inline]
    pub fn count_at_or_below(&self, price: Price) -> usize {
        match self.at_or_below.get(price.0 as usize) {
            Some(&n) => usize::from(n),
            None => self.prices.len(),
        }
    }

    /// How many ladder prices are strictly below `price`.
    #[inline]
    pub fn count_below(&self, price: Price) -> usize {
        if price.0 == 0 {
            0
        } else {
            self.count_at_or_below(Price(price.0 - 1))
        }
    }

    /// The ladder price at or above `price`.
    pub fn ceil(&self, price: Price) -> Option<Price> {
        self.prices.get(self.count_below(price)).copied()
    }

    /// The neighbouring ladder price `steps` away (positive is up), clamped to the ladder.
    pub fn step_from(&self, price: Price, steps: i64) -> Price {
        let base = match self.index(price) {
            Some(i) => i as i64,
            None => self.prices.partition_point(|p| *p < price) as i64,
        };
        let i = (base + steps).clamp(0, self.prices.len() as i64 - 1);
        self.prices[i as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_tables_agree_with_binary_search() {
        for structure in [
            LevelStructure::LinearCent,
            LevelStructure::DeciCent,
            LevelStructure::TaperedDeciCent,
        ] {
            let l = TickLadder::new(structure);
            for p in (0..=PRICE_SCALE + 5).map(Price) {
                let below = l.prices.partition_point(|x| *x < p);
                let at_or_below = l.prices.partition_point(|x| *x <= p);
                assert_eq!(l.count_below(p), below, "{structure:?} {p:?}");
                assert_eq!(l.count_at_or_below(p), at_or_below, "{structure:?} {p:?}");
                assert_eq!(l.floor(p), (at_or_below > 0).then(|| l.prices[at_or_below - 1]));
                assert_eq!(l.ceil(p), l.prices.get(below).copied());
            }
        }
    }

    #[test]
    fn linear_cent_has_99_prices() {
        let l = TickLadder::new(LevelStructure::LinearCent);
        assert_eq!(l.len(), 99);
        assert_eq!(l.min_price(), Price(100));
        assert_eq!(l.max_price(), Price(9_900));
        assert_eq!(l.index(Price(5_600)), Some(55));
        assert_eq!(l.index(Price(5_650)), None);
        assert_eq!(l.index(Price(0)), None);
        assert_eq!(l.index(Price(10_000)), None);
    }

    #[test]
    fn tapered_ladder_is_fine_at_the_edges_only() {
        let l = TickLadder::new(LevelStructure::TaperedDeciCent);
        assert!(l.index(Price(10)).is_some());
        assert!(l.index(Price(990)).is_some());
        assert!(l.index(Price(1_000)).is_some());
        assert!(l.index(Price(1_010)).is_none());
        assert!(l.index(Price(5_000)).is_some());
        assert!(l.index(Price(5_050)).is_none());
        assert!(l.index(Price(9_010)).is_some());
        // 99 below 0.10, 81 cents from 0.10 to 0.90, 99 above 0.90
        assert_eq!(l.len(), 99 + 81 + 99);
        assert_eq!(l.step_from(Price(1_000), -1), Price(990));
        assert_eq!(l.step_from(Price(1_000), 1), Price(1_100));
    }

    #[test]
    fn deci_cent_has_999_prices() {
        let l = TickLadder::new(LevelStructure::DeciCent);
        assert_eq!(l.len(), 999);
        assert_eq!(l.floor(Price(5_555)), Some(Price(5_550)));
        assert_eq!(l.ceil(Price(5_555)), Some(Price(5_560)));
    }
}
