//! One market's YES book: resting bids (buy YES) and asks (sell YES, i.e. buy NO at 1 - p),
//! dense over the market's tick ladder, FIFO within a level for price-time priority.

use kalshi_proto::ladder::TickLadder;
use kalshi_proto::units::{Price, Qty};
use kalshi_proto::Side;
use std::collections::VecDeque;
use std::sync::Arc;

pub type OrderNo = u64;
pub type AccountId = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub order: OrderNo,
    pub account: AccountId,
    pub remaining: Qty,
}

#[derive(Clone, Debug, Default)]
pub struct Level {
    pub entries: VecDeque<Entry>,
    pub total: Qty,
}

#[derive(Clone, Debug)]
pub struct MatchingBook {
    ladder: Arc<TickLadder>,
    bids: Vec<Level>,
    asks: Vec<Level>,
    best_bid: Option<usize>,
    best_ask: Option<usize>,
}

impl MatchingBook {
    pub fn new(ladder: Arc<TickLadder>) -> MatchingBook {
        let n = ladder.len();
        MatchingBook {
            ladder,
            bids: vec![Level::default(); n],
            asks: vec![Level::default(); n],
            best_bid: None,
            best_ask: None,
        }
    }

    pub fn ladder(&self) -> &Arc<TickLadder> {
        &self.ladder
    }

    fn levels(&self, side: Side) -> &[Level] {
        match side {
            Side::Bid => &self.bids,
            Side::Ask => &self.asks,
        }
    }

    pub fn best_index(&self, side: Side) -> Option<usize> {
        match side {
            Side::Bid => self.best_bid,
            Side::Ask => self.best_ask,
        }
    }

    pub fn best(&self, side: Side) -> Option<(Price, Qty)> {
        self.best_index(side).map(|i| (self.ladder.price(i), self.levels(side)[i].total))
    }

    pub fn best_price(&self, side: Side) -> Option<Price> {
        self.best(side).map(|(p, _)| p)
    }

    pub fn level(&self, side: Side, price: Price) -> Option<&Level> {
        self.ladder.index(price).map(|i| &self.levels(side)[i])
    }

    pub fn level_total(&self, side: Side, price: Price) -> Qty {
        self.level(side, price).map_or(Qty::ZERO, |l| l.total)
    }

    /// Non-empty levels of one side, best first.
    pub fn depth(&self, side: Side) -> Vec<(Price, Qty)> {
        let levels = self.levels(side);
        let mut out: Vec<(Price, Qty)> = levels
            .iter()
            .enumerate()
            .filter(|(_, l)| l.total.0 > 0)
            .map(|(i, l)| (self.ladder.price(i), l.total))
            .collect();
        if side == Side::Bid {
            out.reverse();
        }
        out
    }

    /// Contracts resting ahead of `order` at its level: its exact price-time queue position.
    pub fn queue_ahead(&self, side: Side, price: Price, order: OrderNo) -> Option<Qty> {
        let level = self.level(side, price)?;
        let mut ahead = Qty::ZERO;
        for e in &level.entries {
            if e.order == order {
                return Some(ahead);
            }
            ahead += e.remaining;
        }
        None
    }

    pub fn push_back(&mut self, side: Side, price: Price, entry: Entry) {
        let i = self.ladder.index(price).expect("resting price is on the ladder");
        let level = match side {
            Side::Bid => &mut self.bids[i],
            Side::Ask => &mut self.asks[i],
        };
        level.total += entry.remaining;
        level.entries.push_back(entry);
        self.improve_best(side, i);
    }

    fn improve_best(&mut self, side: Side, i: usize) {
        match side {
            Side::Bid => {
                if self.best_bid.is_none_or(|b| i > b) {
                    self.best_bid = Some(i)
                }
            }
            Side::Ask => {
                if self.best_ask.is_none_or(|a| i < a) {
                    self.best_ask = Some(i)
                }
            }
        }
    }

    fn level_mut(&mut self, side: Side, price: Price) -> Option<(usize, &mut Level)> {
        let i = self.ladder.index(price)?;
        Some((
            i,
            match side {
                Side::Bid => &mut self.bids[i],
                Side::Ask => &mut self.asks[i],
            },
        ))
    }

    /// Sets an order's remaining quantity in place (a fill or a decrease keeps its priority).
    /// Zero removes it. Returns the signed change in level size.
    pub fn set_remaining(&mut self, side: Side, price: Price, order: OrderNo, to: Qty) -> Qty {
        let Some((i, level)) = self.level_mut(side, price) else {
            return Qty::ZERO;
        };
        let Some(pos) = level.entries.iter().position(|e| e.order == order) else {
            return Qty::ZERO;
        };
        let before = level.entries[pos].remaining;
        if to.0 <= 0 {
            level.entries.remove(pos);
        } else {
            level.entries[pos].remaining = to;
        }
        let change = Qty(to.0.max(0)) - before;
        level.total += change;
        if level.total.0 <= 0 {
            self.repair_best(side, i);
        }
        change
    }

    pub fn remove(&mut self, side: Side, price: Price, order: OrderNo) -> Qty {
        -self.set_remaining(side, price, order, Qty::ZERO)
    }

    /// After level `emptied` went to zero, move the best pointer to the next non-empty level.
    fn repair_best(&mut self, side: Side, emptied: usize) {
        match side {
            Side::Bid if self.best_bid == Some(emptied) => {
                self.best_bid = (0..emptied).rev().find(|&j| self.bids[j].total.0 > 0);
            }
            Side::Ask if self.best_ask == Some(emptied) => {
                self.best_ask = (emptied + 1..self.asks.len()).find(|&j| self.asks[j].total.0 > 0);
            }
            _ => {}
        }
    }

    /// Entry at the front of the best level of `side`, if it crosses an incoming limit.
    pub fn front_crossing(&self, incoming: Side, limit: Price) -> Option<(Price, Entry)> {
        let resting = incoming.opposite();
        let i = self.best_index(resting)?;
        let price = self.ladder.price(i);
        if !incoming.crosses(limit, price) {
            return None;
        }
        self.levels(resting)[i].entries.front().map(|e| (price, *e))
    }

    /// Entries an incoming order could meet, in matching order, up to `limit`.
    pub fn crossing_entries(&self, incoming: Side, limit: Price) -> impl Iterator<Item = (Price, &Entry)> {
        let resting = incoming.opposite();
        let ladder = &self.ladder;
        let levels = self.levels(resting);
        let range: Box<dyn Iterator<Item = usize>> = match (resting, self.best_index(resting)) {
            (_, None) => Box::new(std::iter::empty()),
            (Side::Ask, Some(best)) => Box::new(best..levels.len()),
            (Side::Bid, Some(best)) => Box::new((0..=best).rev()),
        };
        range
            .map(move |i| (ladder.price(i), &levels[i]))
            .take_while(move |(p, _)| incoming.crosses(limit, *p))
            .flat_map(|(p, level)| level.entries.iter().map(move |e| (p, e)))
    }

    /// Checks the structural invariants: level totals match entries, best pointers are right,
    /// and the book is not crossed. Used by tests and debug assertions.
    pub fn check_invariants(&self) -> Result<(), String> {
        for side in [Side::Bid, Side::Ask] {
            let levels = self.levels(side);
            for (i, level) in levels.iter().enumerate() {
                let sum: i64 = level.entries.iter().map(|e| e.remaining.0).sum();
                if sum != level.total.0 {
                    return Err(format!("{side:?} level {i}: total {} != sum {sum}", level.total.0));
                }
                if level.entries.iter().any(|e| e.remaining.0 <= 0) {
                    return Err(format!("{side:?} level {i}: entry with no quantity"));
                }
            }
            let expected = match side {
                Side::Bid => levels.iter().rposition(|l| l.total.0 > 0),
                Side::Ask => levels.iter().position(|l| l.total.0 > 0),
            };
            if expected != self.best_index(side) {
                return Err(format!("{side:?} best pointer {:?} != {:?}", self.best_index(side), expected));
            }
        }
        if let (Some(b), Some(a)) = (self.best_bid, self.best_ask) {
            if b >= a {
                return Err(format!("crossed book: bid index {b} >= ask index {a}"));
            }
        }
        Ok(())
    }
}
