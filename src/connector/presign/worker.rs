//! The signer thread: keeps the fixed paths' stock full and makes the per-order signatures the
//! io side asked for, most urgent first. Apart from the io side because it is the only code
//! that pays for signatures (hundreds of microseconds each) and runs on its own core.

use super::clock::WallClock;
use super::paths::{FixedPath, OrderOp};
use super::shared::{sign, OrderSigned, Request, Shared};
use crate::connector::kalshi::rest::head::SignedHeaders;
use crate::connector::kalshi::rest::request::Method;
use crate::event::OrderId;
use kalshi_proto::auth::Signer;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub(super) struct Wanted {
    order: OrderId,
    op: OrderOp,
    /// When the io side last got a signature for it; `None`: it needs one now.
    signed_at: Option<u64>,
}

pub(super) struct Worker {
    pub(super) signer: Arc<Signer>,
    pub(super) clock: WallClock,
    pub(super) stock: [usize; 4],
    pub(super) fixed: [rtrb::Producer<SignedHeaders>; 4],
    pub(super) results: rtrb::Producer<OrderSigned>,
    pub(super) requests: rtrb::Consumer<Request>,
    pub(super) wanted: Vec<Wanted>,
    pub(super) max_wanted: usize,
    pub(super) refresh_age_ms: u64,
    pub(super) poll: Duration,
    pub(super) shared: Arc<Shared>,
    pub(super) dropped_orders: u64,
}

impl Worker {
    pub(super) fn run(&mut self) {
        while !self.stopped() {
            // Per-order signatures first, and again after every fixed-path one: an amend waits
            // on its own order's signature (missing it means an inline RSA signature on the io
            // thread), while the fixed paths keep a stock many requests deep.
            self.take_requests();
            // One signature at a time, most urgent first, with new requests taken in between:
            // an amend asked for now waits behind at most the one signature under way, never
            // behind a round of refreshes (the holds that set tick-to-order's p90).
            if self.fill_one_order() || self.fill_one_fixed() {
                continue;
            }
            if self.stopped() {
                break;
            }
            std::thread::park_timeout(self.poll);
        }
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    fn sign(&self, method: Method, path: &[u8]) -> SignedHeaders {
        let t0 = std::time::Instant::now();
        let h = sign(&self.signer, method, path, self.shared.ts_for(method, path, self.clock.now_ms()));
        self.shared.signed.fetch_add(1, Ordering::Relaxed);
        self.shared.sign_ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        h
    }

    fn take_requests(&mut self) {
        while let Ok(r) = self.requests.pop() {
            match r {
                Request::Prepare(order, op) => match self.wanted.iter_mut().find(|w| w.order == order && w.op == op) {
                    Some(w) => w.signed_at = None,
                    None => {
                        if self.wanted.len() >= self.max_wanted {
                            self.wanted.remove(0);
                        }
                        self.wanted.push(Wanted {
                            order,
                            op,
                            signed_at: None,
                        });
                    }
                },
                Request::Release(order) => self.wanted.retain(|w| w.order != order),
            }
        }
    }

    /// Signs one fixed-path request for the path with the emptiest stock; false when every
    /// stock is full.
    fn fill_one_fixed(&mut self) -> bool {
        let mut best: Option<(usize, FixedPath)> = None;
        for f in FixedPath::ALL {
            let i = f.index();
            let free = self.fixed[i].slots();
            if self.stock[i] > 0 && free > 0 {
                // Fewest ready relative to the depth asked for = most free slots per depth.
                let need = free * 1024 / self.stock[i];
                if best.is_none_or(|(n, _)| need > n) {
                    best = Some((need, f));
                }
            }
        }
        let Some((_, f)) = best else {
            return false;
        };
        let h = self.sign(f.method(), f.path());
        let _ = self.fixed[f.index()].push(h);
        true
    }

    /// Signs the most urgent per-order signature (see [`most_urgent`]); false when none is due.
    fn fill_one_order(&mut self) -> bool {
        let now = self.clock.now_ms();
        let Some(i) = most_urgent(&self.wanted, now, self.refresh_age_ms) else {
            return false;
        };
        if self.results.slots() == 0 {
            // The io side has not taken in earlier results; the fixed stock gets the turn.
            self.dropped_orders += 1;
            return false;
        }
        let (order, op) = (self.wanted[i].order, self.wanted[i].op);
        let mut path = Vec::with_capacity(crate::connector::kalshi::rest::request::PATH_CAPACITY);
        op.write_path(order, &mut path);
        let headers = self.sign(op.method(), &path);
        let _ = self.results.push(OrderSigned { order, op, headers });
        self.wanted[i].signed_at = Some(headers.timestamp_ms());
        true
    }
}

/// Which wanted signature to make next: one never made, amends before the rest (an amend is
/// the request a resting order gets first, and the io thread holds it until this is made),
/// in the order asked; then the stalest refresh that is due. None when nothing is due.
fn most_urgent(wanted: &[Wanted], now_ms: u64, refresh_age_ms: u64) -> Option<usize> {
    let first_new = |amend: bool| {
        wanted
            .iter()
            .position(|w| w.signed_at.is_none() && (w.op == OrderOp::Amend) == amend)
    };
    first_new(true).or_else(|| first_new(false)).or_else(|| {
        wanted
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.signed_at.map(|t| (i, t)))
            .filter(|&(_, t)| now_ms.saturating_sub(t) >= refresh_age_ms)
            .min_by_key(|&(_, t)| t)
            .map(|(i, _)| i)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signer_makes_new_amend_signatures_first_then_new_others_then_the_stalest_refresh() {
        let id = |n: u128| OrderId(n);
        let w = |n: u128, op: OrderOp, signed_at: Option<u64>| Wanted {
            order: id(n),
            op,
            signed_at,
        };
        let refresh = 5_000;
        let now = 20_000;
        let mut wanted = vec![
            w(1, OrderOp::Amend, Some(12_000)),    // refresh due, 8 s old
            w(1, OrderOp::Decrease, Some(14_000)), // refresh due, 6 s old
            w(2, OrderOp::Amend, Some(19_000)),    // fresh
            w(3, OrderOp::Decrease, None),         // new, asked before 4's amend
            w(4, OrderOp::Amend, None),            // new amend
            w(5, OrderOp::Amend, None),            // new amend, asked after 4's
        ];
        let mut order = Vec::new();
        while let Some(i) = most_urgent(&wanted, now, refresh) {
            order.push((wanted[i].order.0, wanted[i].op));
            wanted[i].signed_at = Some(now);
        }
        assert_eq!(
            order,
            [
                (4, OrderOp::Amend),
                (5, OrderOp::Amend),
                (3, OrderOp::Decrease),
                (1, OrderOp::Amend),
                (1, OrderOp::Decrease),
            ]
        );
        // Nothing is due while everything is fresh; then the oldest (2, signed at 19 s) is.
        assert_eq!(most_urgent(&wanted, 19_000 + refresh - 1, refresh), None);
        assert_eq!(most_urgent(&wanted, 19_000 + refresh, refresh), Some(2));
        assert!(most_urgent(&[], now, refresh).is_none());
    }
}
