//! Ticker interning and the market sets subscriptions are keyed by.
//!
//! Separate from the decoder because the REST side (bootstrap replies, order encoders) maps
//! tickers to [`MarketIdx`] through the same table, filled once at subscribe time.

use crate::event::MarketIdx;

/// Ticker to [`MarketIdx`], filled at subscribe time and read on every frame.
///
/// Open addressing over the ticker bytes with a fixed table: a look-up hashes the borrowed
/// bytes and compares, never allocates.
pub struct Interner {
    /// Index into `names`, or `EMPTY`.
    slots: Box<[u16]>,
    names: Vec<Box<[u8]>>,
    capacity: usize,
}

const EMPTY: u16 = u16::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InternError {
    Full,
    /// Empty, or longer than [`Interner::MAX_TICKER`].
    BadTicker,
}

impl Interner {
    pub const MAX_TICKER: usize = 128;

    /// Room for `capacity` markets (at most `u16::MAX - 1`).
    pub fn with_capacity(capacity: usize) -> Interner {
        let capacity = capacity.clamp(1, usize::from(EMPTY) - 1);
        // Load factor at most 1/2 keeps probe runs short.
        let table = (capacity * 2).next_power_of_two().max(8);
        Interner {
            slots: vec![EMPTY; table].into_boxed_slice(),
            names: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// The market's index, interning the ticker if it is new. Allocates: call at subscribe time.
    pub fn intern(&mut self, ticker: &[u8]) -> Result<MarketIdx, InternError> {
        if ticker.is_empty() || ticker.len() > Self::MAX_TICKER {
            return Err(InternError::BadTicker);
        }
        let mask = self.slots.len() - 1;
        let mut i = hash(ticker) as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY => break,
                idx if *self.names[usize::from(idx)] == *ticker => return Ok(idx),
                _ => i = (i + 1) & mask,
            }
        }
        if self.names.len() >= self.capacity {
            return Err(InternError::Full);
        }
        let idx = self.names.len() as u16;
        self.names.push(ticker.into());
        self.slots[i] = idx;
        Ok(idx)
    }

    #[inline]
    pub fn get(&self, ticker: &[u8]) -> Option<MarketIdx> {
        let mask = self.slots.len() - 1;
        let mut i = hash(ticker) as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY => return None,
                idx if same_bytes(&self.names[usize::from(idx)], ticker) => return Some(idx),
                _ => i = (i + 1) & mask,
            }
        }
    }

    pub fn ticker(&self, market: MarketIdx) -> Option<&[u8]> {
        self.names.get(usize::from(market)).map(|b| &**b)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Tickers share long prefixes and differ in the date and strike, so the first, middle and
/// last eight bytes carry what tells them apart: three loads and two independent multiplies
/// instead of a serial multiply per eight bytes. Equal tickers always hash equal; rarer
/// collisions only lengthen a probe.
#[inline]
fn hash(bytes: &[u8]) -> u64 {
    const K1: u64 = 0x517c_c1b7_2722_0a95;
    const K2: u64 = 0x9e37_79b9_7f4a_7c15;
    let n = bytes.len();
    let (a, m, z) = if n >= 8 {
        (load8(bytes, 0), load8(bytes, (n - 8) / 2), load8(bytes, n - 8))
    } else {
        let mut w = [0u8; 8];
        w[..n].copy_from_slice(bytes);
        (u64::from_le_bytes(w), 0, 0)
    };
    let h = (a ^ m.rotate_left(23)).wrapping_mul(K1) ^ (z ^ n as u64).wrapping_mul(K2);
    h ^ (h >> 29)
}

/// Eight bytes at `at` (the caller keeps `at + 8 <= b.len()`).
#[inline(always)]
fn load8(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Byte equality in words: tickers are 10 to 30 bytes, where a `memcmp` call costs more than
/// the compare.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let mut i = 0;
    while i + 8 < n {
        if load8(a, i) != load8(b, i) {
            return false;
        }
        i += 8;
    }
    load8(a, n - 8) == load8(b, n - 8)
}

/// A set of markets as a fixed bitmap sized to the interner's capacity.
#[derive(Clone)]
pub(crate) struct MarketSet(Box<[u64]>);

impl MarketSet {
    pub(crate) fn new(capacity: usize) -> MarketSet {
        MarketSet(vec![0; capacity.div_ceil(64)].into_boxed_slice())
    }
    pub(crate) fn insert(&mut self, m: MarketIdx) {
        if let Some(w) = self.0.get_mut(usize::from(m) / 64) {
            *w |= 1 << (m % 64);
        }
    }
    pub(crate) fn remove(&mut self, m: MarketIdx) {
        if let Some(w) = self.0.get_mut(usize::from(m) / 64) {
            *w &= !(1 << (m % 64));
        }
    }
    pub(crate) fn contains(&self, m: MarketIdx) -> bool {
        self.0.get(usize::from(m) / 64).is_some_and(|w| w & (1 << (m % 64)) != 0)
    }
    pub(crate) fn clear(&mut self) {
        self.0.fill(0);
    }
    pub(crate) fn copy_from(&mut self, other: &MarketSet) {
        self.0.copy_from_slice(&other.0);
    }
    pub(crate) fn union_with(&mut self, other: &MarketSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }
    pub(crate) fn for_each(&self, mut f: impl FnMut(MarketIdx)) {
        for (i, &w) in self.0.iter().enumerate() {
            let mut w = w;
            while w != 0 {
                let bit = w.trailing_zeros();
                f((i * 64 + bit as usize) as MarketIdx);
                w &= w - 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_probes_and_fills() {
        let mut i = Interner::with_capacity(3);
        let a = i.intern(b"KXA-26JAN01-T1").unwrap();
        let b = i.intern(b"KXB").unwrap();
        assert_eq!(i.intern(b"KXA-26JAN01-T1"), Ok(a));
        assert_ne!(a, b);
        assert_eq!(i.get(b"KXB"), Some(b));
        assert_eq!(i.get(b"KXC"), None);
        i.intern(b"KXC").unwrap();
        assert_eq!(i.intern(b"KXD"), Err(InternError::Full));
        assert_eq!(i.intern(b""), Err(InternError::BadTicker));
        assert_eq!(i.ticker(b), Some(&b"KXB"[..]));
    }

    #[test]
    fn ticker_hash_and_compare_across_lengths() {
        let mut i = Interner::with_capacity(400);
        let names: Vec<String> = (0..300).map(|k| format!("{}{k}", &"KXHIGHNY-26JUN24-T8X"[..k % 20])).collect();
        let idx: Vec<MarketIdx> = names.iter().map(|n| i.intern(n.as_bytes()).unwrap()).collect();
        for (n, &m) in names.iter().zip(&idx) {
            assert_eq!(i.get(n.as_bytes()), Some(m), "{n}");
            assert_eq!(i.ticker(m), Some(n.as_bytes()));
            let mut other = n.clone().into_bytes();
            other[0] ^= 1;
            assert_eq!(i.get(&other), None);
        }
        assert!(same_bytes(b"abcdefghijklmnopq", b"abcdefghijklmnopq"));
        assert!(!same_bytes(b"abcdefghijklmnopq", b"abcdefghiJklmnopq"));
        assert!(!same_bytes(b"abcdefghijklmnopq", b"abcdefghijklmnopQ"));
        assert!(!same_bytes(b"abc", b"abcd"));
    }
}
