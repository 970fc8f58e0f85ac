//! Fill dedupe between the WebSocket stream and the REST listing read on a resync.
//!
//! Separate because it is the one piece of state both paths share: a fill the WS reported
//! before a drop is listed again by REST afterwards, and one REST recovered may still arrive on
//! the WS. Keyed by (order, count, price, second) and counted as a multiset, so two identical
//! fills in the same second are two fills, and each is reported exactly once.

use std::collections::HashMap;

/// A fill as both the WS and the REST listing describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct FillKey {
    pub(super) order: u128,
    pub(super) qty: i64,
    pub(super) price: u32,
    pub(super) ts_s: u64,
}

#[derive(Clone, Copy, Default)]
struct FillCount {
    ws_seen: u32,
    reported: u32,
}

/// Per fill key: how many the WS showed and how many were reported (by either path).
pub(super) struct FillBook {
    counts: HashMap<FillKey, FillCount>,
}

impl FillBook {
    pub(super) fn with_capacity(n: usize) -> FillBook {
        FillBook {
            counts: HashMap::with_capacity(n),
        }
    }

    /// A fill seen on the WS; false when a resync already reported it from REST.
    #[inline]
    pub(super) fn on_ws(&mut self, key: FillKey) -> bool {
        let c = self.counts.entry(key).or_default();
        c.ws_seen += 1;
        if c.ws_seen <= c.reported {
            return false;
        }
        c.reported += 1;
        true
    }

    /// The `nth` (from 1) fill of `key` in a REST listing; true when it was never reported,
    /// which then counts it reported.
    pub(super) fn on_listed(&mut self, key: FillKey, nth: u32) -> bool {
        let c = self.counts.entry(key).or_default();
        if nth <= c.reported {
            return false;
        }
        c.reported += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(order: u128, ts_s: u64) -> FillKey {
        FillKey {
            order,
            qty: 3,
            price: 45,
            ts_s,
        }
    }

    #[test]
    fn a_ws_fill_then_listed_by_rest_is_reported_once() {
        let mut b = FillBook::with_capacity(4);
        assert!(b.on_ws(key(1, 10)));
        assert!(!b.on_listed(key(1, 10), 1));
    }

    #[test]
    fn a_second_identical_fill_is_not_swallowed() {
        let mut b = FillBook::with_capacity(4);
        assert!(b.on_ws(key(1, 10)));
        assert!(b.on_ws(key(1, 10)));
        // REST lists both: both already reported.
        assert!(!b.on_listed(key(1, 10), 1));
        assert!(!b.on_listed(key(1, 10), 2));
        // A third, only in the listing, is recovered.
        assert!(b.on_listed(key(1, 10), 3));
    }

    #[test]
    fn a_fill_recovered_from_rest_is_not_reported_again_by_the_ws() {
        let mut b = FillBook::with_capacity(4);
        assert!(b.on_listed(key(2, 10), 1));
        assert!(!b.on_ws(key(2, 10)));
        // A second one on the WS is new.
        assert!(b.on_ws(key(2, 10)));
    }

    #[test]
    fn a_later_listing_recovers_nothing_already_recovered() {
        let mut b = FillBook::with_capacity(4);
        assert!(b.on_listed(key(3, 10), 1));
        // The next resync lists the same fill again as its first.
        assert!(!b.on_listed(key(3, 10), 1));
    }

    #[test]
    fn different_keys_are_counted_apart() {
        let mut b = FillBook::with_capacity(4);
        assert!(b.on_ws(key(1, 10)));
        assert!(b.on_listed(key(1, 11), 1));
        assert!(b.on_listed(key(4, 10), 1));
    }
}
