//! The in-flight request table and the records a command becomes on its way to a request.
//!
//! Separate from the loop because it is plain data: a fixed set of slots, one per REST request
//! awaiting its reply, taken when a request is written and freed when its reply (or its failure)
//! is turned into events. Fixed-size and preallocated so the order path never allocates.

use crate::connector::kalshi::rest::request::MAX_BATCH;
use crate::connector::pacing::RequestKind;
use crate::connector::presign::OrderOp;
use crate::event::{ClientRef, CommandBody, MarketIdx, OrderId, Price, Qty, Side, Stamp, TimeInForce};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReqKind {
    Create,
    BatchCreate,
    BatchCancel,
    Amend,
    Decrease,
    CancelAll,
}

impl ReqKind {
    pub(super) fn pacing(self) -> RequestKind {
        match self {
            ReqKind::Create => RequestKind::Create,
            ReqKind::BatchCreate => RequestKind::BatchCreate,
            ReqKind::BatchCancel => RequestKind::BatchCancel,
            ReqKind::Amend => RequestKind::Amend,
            ReqKind::Decrease => RequestKind::Decrease,
            ReqKind::CancelAll => RequestKind::CancelAll,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Item {
    pub(super) market: MarketIdx,
    pub(super) client: ClientRef,
    pub(super) order: OrderId,
}

#[derive(Clone, Copy)]
pub(super) struct InFlight {
    pub(super) live: bool,
    pub(super) kind: ReqKind,
    pub(super) n: usize,
    pub(super) items: [Item; MAX_BATCH],
}

/// A command waiting in a batch, with the stamps for its latency record.
#[derive(Clone, Copy)]
pub(super) struct Pending {
    pub(super) item: Item,
    pub(super) side: Side,
    pub(super) price: Price,
    pub(super) qty: Qty,
    pub(super) tif: Option<TimeInForce>,
    pub(super) post_only: bool,
    pub(super) cause: Stamp,
    pub(super) dequeued: u64,
    pub(super) decided: u64,
    pub(super) io_dequeued: u64,
}

/// An amend or decrease held until the signer has made its order's signature.
#[derive(Clone, Copy)]
pub(super) struct Awaiting {
    pub(super) kind: ReqKind,
    pub(super) op: OrderOp,
    pub(super) order: OrderId,
    pub(super) pending: Pending,
    pub(super) body: CommandBody,
    pub(super) deadline: Instant,
}

/// One slot per request awaiting its reply; the reply's tag is the slot.
pub(super) struct InFlightTable {
    slots: Box<[InFlight]>,
    free: Vec<usize>,
}

impl InFlightTable {
    pub(super) fn new(capacity: usize) -> InFlightTable {
        let empty = InFlight {
            live: false,
            kind: ReqKind::Create,
            n: 0,
            items: [Item::default(); MAX_BATCH],
        };
        InFlightTable {
            slots: vec![empty; capacity].into_boxed_slice(),
            // Reversed so slot 0 goes first.
            free: (0..capacity).rev().collect(),
        }
    }

    /// Takes a free slot for a request of `kind`, with no items yet; None when all are taken.
    #[inline]
    pub(super) fn alloc(&mut self, kind: ReqKind) -> Option<usize> {
        let slot = self.free.pop()?;
        let f = &mut self.slots[slot];
        f.live = true;
        f.kind = kind;
        f.n = 0;
        Some(slot)
    }

    /// The record of a taken slot, to fill in its items.
    #[inline]
    pub(super) fn slot_mut(&mut self, slot: usize) -> &mut InFlight {
        &mut self.slots[slot]
    }

    /// Gives back a slot whose request was never sent.
    #[inline]
    pub(super) fn free(&mut self, slot: usize) {
        self.slots[slot].live = false;
        self.free.push(slot);
    }

    /// The request answered on `slot`, freeing it; None for a slot not in flight (a stale or
    /// foreign tag), which is then left alone.
    #[inline]
    pub(super) fn take(&mut self, slot: usize) -> Option<InFlight> {
        let f = *self.slots.get_mut(slot).filter(|f| f.live)?;
        self.slots[slot].live = false;
        self.free.push(slot);
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_taken_then_freed_by_its_reply() {
        let mut t = InFlightTable::new(2);
        let s = t.alloc(ReqKind::Amend).unwrap();
        assert_eq!(s, 0);
        assert!(t.slot_mut(s).live);
        assert_eq!(t.slot_mut(s).kind, ReqKind::Amend);
        assert_eq!(t.slot_mut(s).n, 0);
        t.slot_mut(s).n = 1;
        let f = t.take(s).unwrap();
        assert_eq!((f.kind, f.n), (ReqKind::Amend, 1));
        assert!(!t.slot_mut(s).live);
        // A second reply on the same tag finds nothing.
        assert!(t.take(s).is_none());
    }

    #[test]
    fn a_full_table_refuses_until_a_slot_is_freed() {
        let mut t = InFlightTable::new(2);
        let a = t.alloc(ReqKind::Create).unwrap();
        let b = t.alloc(ReqKind::BatchCancel).unwrap();
        assert_ne!(a, b);
        assert!(t.alloc(ReqKind::Create).is_none());
        t.free(b);
        assert_eq!(t.alloc(ReqKind::Decrease), Some(b));
        assert!(t.alloc(ReqKind::Create).is_none());
    }

    #[test]
    fn a_reused_slot_starts_empty() {
        let mut t = InFlightTable::new(1);
        let s = t.alloc(ReqKind::BatchCreate).unwrap();
        t.slot_mut(s).n = 5;
        t.free(s);
        let s = t.alloc(ReqKind::Create).unwrap();
        assert_eq!((t.slot_mut(s).kind, t.slot_mut(s).n), (ReqKind::Create, 0));
    }

    #[test]
    fn a_tag_out_of_range_or_not_in_flight_is_ignored() {
        let mut t = InFlightTable::new(2);
        assert!(t.take(7).is_none());
        assert!(t.take(1).is_none());
        // Still two free slots.
        assert!(t.alloc(ReqKind::Create).is_some());
        assert!(t.alloc(ReqKind::Create).is_some());
    }
}
