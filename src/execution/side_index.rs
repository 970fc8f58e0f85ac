//! The open slots of each (market, side) as intrusive lists, so reconcile and exposure read a
//! side's one or two orders instead of filtering every open order, without allocating.

use crate::event::{MarketIdx, Side};

pub(super) const NIL: u16 = u16::MAX;

/// Iterates one side's list in [`SideIndex`].
pub(super) struct SideSlots<'a> {
    pub(super) next: &'a [u16],
    pub(super) at: u16,
}

impl Iterator for SideSlots<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.at == NIL {
            return None;
        }
        let i = usize::from(self.at);
        self.at = self.next[i];
        Some(i)
    }
}

/// The open slots of each (market, side) as intrusive lists through the slot indices, each in
/// the order its slots appear in `Orders::open`: reconcile's choices (which orders it looks
/// at first, the order of its cancels) depend on that order, so the index must not change it.
#[derive(Clone)]
pub(super) struct SideIndex {
    /// First and last slot per `key`; `NIL` when the side has no open order.
    head: Vec<u16>,
    pub(super) tail: Vec<u16>,
    /// Per slot: the neighbours on its side, and where it sits in `Orders::open`.
    pub(super) next: Box<[u16]>,
    pub(super) prev: Box<[u16]>,
    pub(super) pos: Box<[u16]>,
    /// Per slot: the list it was linked into (the slot's market and side then).
    pub(super) key: Box<[usize]>,
}

impl SideIndex {
    pub(super) fn new(capacity: usize) -> SideIndex {
        SideIndex {
            head: Vec::new(),
            tail: Vec::new(),
            next: vec![NIL; capacity].into_boxed_slice(),
            prev: vec![NIL; capacity].into_boxed_slice(),
            pos: vec![0; capacity].into_boxed_slice(),
            key: vec![0; capacity].into_boxed_slice(),
        }
    }

    #[inline]
    pub(super) fn key(market: MarketIdx, side: Side) -> usize {
        usize::from(market) * 2 + usize::from(side == Side::Ask)
    }

    /// Sizes the heads for `markets` markets, so the first order in each does not allocate.
    pub(super) fn reserve(&mut self, markets: usize) {
        if self.head.len() < markets * 2 {
            self.head.resize(markets * 2, NIL);
            self.tail.resize(markets * 2, NIL);
        }
    }

    #[inline]
    pub(super) fn first(&self, market: MarketIdx, side: Side) -> u16 {
        self.head.get(Self::key(market, side)).copied().unwrap_or(NIL)
    }

    /// Links slot `i`, now at `open[pos]`, into the list of `key`, after every member
    /// further forward in `open`.
    pub(super) fn link(&mut self, i: u16, key: usize, pos: u16) {
        if key >= self.head.len() {
            self.reserve(key / 2 + 1);
        }
        let slot = usize::from(i);
        self.pos[slot] = pos;
        self.key[slot] = key;
        // Walk back from the tail: a new open order goes last, a moved one near the end.
        let mut before = self.tail[key];
        while before != NIL && self.pos[usize::from(before)] > pos {
            before = self.prev[usize::from(before)];
        }
        let after = if before == NIL {
            self.head[key]
        } else {
            self.next[usize::from(before)]
        };
        self.prev[slot] = before;
        self.next[slot] = after;
        if before == NIL {
            self.head[key] = i;
        } else {
            self.next[usize::from(before)] = i;
        }
        if after == NIL {
            self.tail[key] = i;
        } else {
            self.prev[usize::from(after)] = i;
        }
    }

    pub(super) fn unlink(&mut self, i: u16) {
        let slot = usize::from(i);
        let key = self.key[slot];
        let (before, after) = (self.prev[slot], self.next[slot]);
        if before == NIL {
            self.head[key] = after;
        } else {
            self.next[usize::from(before)] = after;
        }
        if after == NIL {
            self.tail[key] = before;
        } else {
            self.prev[usize::from(after)] = before;
        }
        self.prev[slot] = NIL;
        self.next[slot] = NIL;
    }
}
