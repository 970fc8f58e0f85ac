//! The idle order-path rehearsal: the order path's code run on its own data, minus the write,
//! so the next real order finds it in cache.
//!
//! Separate because nothing here reaches a socket: it is warm-up, not trading.

use super::*;

/// The rehearsal's own output and request, and which market and side comes next.
pub(super) struct Rehearsal {
    pub(super) out: Vec<u8>,
    pub(super) req: RestRequest,
    pub(super) count: usize,
}

impl Io {
    /// Runs the order path's own code on its own data, minus the write: one single create and
    /// one amend through the real wires of one market and side (in turn) and one batch cancel, stamped
    /// from the signatures at the front of the stock, which stay there. A spinning io thread
    /// calls this while idle so the next real order finds its wire, its signature slot and the
    /// code in cache.
    pub(super) fn rehearse_orders(&mut self) {
        if self.gateway.create_wires.is_empty() {
            return;
        }
        self.rehearsal.count = self.rehearsal.count.wrapping_add(1);
        let w = self.rehearsal.count % self.gateway.create_wires.len();
        let market = MarketIdx::try_from(w / 2).unwrap_or_default();
        let side = if w % 2 == 0 { Side::Bid } else { Side::Ask };
        let spec = OrderSpec {
            ticker: self.decoder.interner().ticker(market).unwrap_or(b""),
            client: ClientRef(self.rehearsal.count as u64),
            side,
            price: Price(5000),
            qty: Qty(100),
            tif: TimeInForce::GoodTillCanceled,
            post_only: true,
            stp: self.setup_stp,
        };
        let out = &mut self.rehearsal.out;
        self.presigner.rehearse_create(out, &mut self.gateway.create_wires[w], &spec);
        std::hint::black_box(&*out);
        encode_batch_cancel(&mut self.rehearsal.req, &[OrderId(self.rehearsal.count as u128)]);
        self.presigner.rehearse_request(out, &self.rehearsal.req, self.pool.host());
        std::hint::black_box(&*out);
        // Amends are most of the order flow once quotes rest.
        let out = &mut self.rehearsal.out;
        self.presigner
            .rehearse_amend(out, &mut self.gateway.amend_wires[w], OrderId(self.rehearsal.count as u128), &spec);
        std::hint::black_box(&*out);
    }
}
