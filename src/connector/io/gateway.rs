//! Commands to requests: Places coalesced into one (batched) create and Cancels into one batched
//! cancel, up to `MAX_BATCH`, paced; the other commands as single requests through prebuilt
//! wires; amends and decreases held a moment for their presigned signatures.
//!
//! Separate because it is the write half of the hot path, the only code that takes in-flight
//! slots.

use super::*;

/// The write side's state: what the commands become on their way to the exchange.
pub(super) struct Gateway {
    pub(super) req: RestRequest,
    /// Single creates' and amends' wire images, one per market and side (see [`OrderWire`]
    /// and [`wire_index`]).
    pub(super) create_wires: Box<[OrderWire]>,
    pub(super) amend_wires: Box<[OrderWire]>,
    pub(super) inflight: InFlightTable,
    pub(super) creates: Vec<Pending>,
    pub(super) cancels: Vec<Pending>,
    /// Amends and decreases whose per-order signature the signer has not made yet (the order
    /// was acked or last amended a moment ago). Held rather than signed here: an inline RSA
    /// signature stalls this thread, and every frame and order behind it, for milliseconds.
    pub(super) awaiting: Vec<Awaiting>,
}

impl Io {
    /// Sends `self.gateway.req` for the in-flight slot, paced. Returns the write TSC (0: queued).
    pub(super) fn send_request(&mut self, slot: usize) -> u64 {
        self.out.counters.requests += 1;
        let mut buf = self.pool.take_buffer();
        let before = self.presigner.stats();
        self.presigner.write_request(&mut buf, &self.gateway.req, self.pool.host());
        let after = self.presigner.stats();
        self.out.counters.presign_hits += after.hits - before.hits;
        self.out.counters.presign_misses += after.misses - before.misses;
        self.pool.submit(slot as u64, buf)
    }

    pub(super) fn pace(&mut self, kind: ReqKind, n: usize) -> bool {
        if self.pacer.try_acquire(kind.pacing(), n, wall_ms()) {
            true
        } else {
            self.out.counters.paced += n as u64;
            false
        }
    }

    /// Takes the pacer's tokens for the longest head of a waiting batch that fits now and
    /// refuses the rest (the strategy re-sends them on a later reconcile). A batch is never
    /// refused whole for being big: eight creates at once cost more than the write bucket
    /// holds beside its cancel reserve, and waiting for them all to fit would wait for ever.
    /// `kind` names the batch: `BatchCreate` the creates, `BatchCancel` the cancels.
    pub(super) fn pace_batch(&mut self, kind: ReqKind) -> usize {
        let Io {
            pacer,
            out,
            gateway: Gateway { creates, cancels, .. },
            ..
        } = self;
        let batch = if kind == ReqKind::BatchCreate { creates } else { cancels };
        let n = pacer.acquire_up_to(kind.pacing(), batch.len(), wall_ms());
        for p in batch.drain(n..) {
            out.counters.paced += 1;
            out.reject(p.item, RejectReason::RateLimited);
        }
        n
    }

    /// Drains every pending command: batches creates and cancels, sends the rest at once.
    pub(super) fn drain_commands(&mut self, commands: &mut rtrb::Consumer<Command>) -> bool {
        let mut any = false;
        while let Ok(cmd) = commands.pop() {
            any = true;
            let io_dequeued = tsc();
            self.out.counters.commands += 1;
            let mut p = Pending {
                item: Item::default(),
                side: Side::Bid,
                price: Price(0),
                qty: Qty::ZERO,
                tif: None,
                post_only: false,
                cause: cmd.cause,
                dequeued: cmd.dequeued_tsc,
                decided: cmd.decided_tsc,
                io_dequeued,
            };
            match cmd.body {
                CommandBody::Place {
                    market,
                    client,
                    side,
                    price,
                    qty,
                    tif,
                    post_only,
                } => {
                    p.item = Item {
                        market,
                        client,
                        order: OrderId(0),
                    };
                    if self.shutting_down {
                        self.out.reject(p.item, RejectReason::Other);
                        continue;
                    }
                    p.side = side;
                    p.price = price;
                    p.qty = qty;
                    p.tif = Some(tif);
                    p.post_only = post_only;
                    if self.gateway.creates.len() == MAX_BATCH {
                        self.flush_creates();
                    }
                    self.gateway.creates.push(p);
                }
                CommandBody::Cancel { market, client, order } => {
                    p.item = Item { market, client, order };
                    if self.gateway.cancels.len() == MAX_BATCH {
                        self.flush_cancels();
                    }
                    self.gateway.cancels.push(p);
                }
                CommandBody::Amend { market, client, order, .. } | CommandBody::Decrease { market, client, order, .. } => {
                    p.item = Item { market, client, order };
                    let (kind, op) = if matches!(cmd.body, CommandBody::Amend { .. }) {
                        (ReqKind::Amend, OrderOp::Amend)
                    } else {
                        (ReqKind::Decrease, OrderOp::Decrease)
                    };
                    if !self.presigner.order_ready(order, op) && self.gateway.awaiting.len() < AWAITING_CAPACITY && !self.shutting_down {
                        // Asked again in case the order's request was lost or dropped (a no-op
                        // when the signer already has it in hand); the wake follows the writes.
                        self.presigner.prepare(order, op);
                        self.gateway.awaiting.push(Awaiting {
                            kind,
                            op,
                            order,
                            pending: p,
                            body: cmd.body,
                            deadline: Instant::now() + SIGNATURE_WAIT,
                        });
                        self.out.counters.held_for_signature += 1;
                        continue;
                    }
                    self.send_single(kind, p, &cmd.body);
                }
                CommandBody::CancelAll => {
                    // Held amends would only fail against canceled orders.
                    self.reject_awaiting();
                    p.item = Item::default();
                    self.send_single(ReqKind::CancelAll, p, &cmd.body);
                }
                CommandBody::Resync { market } => {
                    if let Some(s) = self.out.stale_since.get(usize::from(market)) {
                        if s.is_none() && !self.out.stale_new.contains(&market) {
                            self.out.stale_new.push(market);
                        }
                    }
                }
            }
        }
        // Cancels first: they free balance and risk for the creates behind them.
        if !self.gateway.cancels.is_empty() {
            self.flush_cancels();
        }
        if !self.gateway.creates.is_empty() {
            self.flush_creates();
        }
        if any {
            self.presigner.wake();
        }
        any
    }

    /// Sends the held amends and decreases whose signature has come, or whose wait is over.
    pub(super) fn send_awaiting(&mut self) -> bool {
        if self.gateway.awaiting.is_empty() {
            return false;
        }
        let now = Instant::now();
        let mut sent = false;
        let mut i = 0;
        while i < self.gateway.awaiting.len() {
            let a = self.gateway.awaiting[i];
            if now >= a.deadline || self.presigner.order_ready(a.order, a.op) {
                // In order of arrival: the strategy never has two requests on one order.
                self.gateway.awaiting.remove(i);
                self.send_single(a.kind, a.pending, &a.body);
                sent = true;
            } else {
                i += 1;
            }
        }
        sent
    }

    pub(super) fn reject_awaiting(&mut self) {
        for i in 0..self.gateway.awaiting.len() {
            let item = self.gateway.awaiting[i].pending.item;
            self.out.reject(item, RejectReason::Other);
        }
        self.gateway.awaiting.clear();
    }

    pub(super) fn send_single(&mut self, kind: ReqKind, p: Pending, body: &CommandBody) {
        if !self.pace(kind, 1) {
            self.out.reject(p.item, RejectReason::RateLimited);
            return;
        }
        let Some(slot) = self.gateway.inflight.alloc(kind) else {
            self.out.reject(p.item, RejectReason::RateLimited);
            return;
        };
        let f = self.gateway.inflight.slot_mut(slot);
        f.items[0] = p.item;
        f.n = 1;
        let w = match *body {
            // Most of the order flow once quotes rest: patched into the market's prebuilt
            // amend, not encoded and framed.
            CommandBody::Amend {
                market,
                client,
                order,
                side,
                price,
                total,
            } if wire_index(market, side) < self.gateway.amend_wires.len() && self.decoder.interner().ticker(market).is_some() => {
                let spec = OrderSpec {
                    ticker: self.decoder.interner().ticker(market).unwrap_or(b""),
                    client,
                    side,
                    price,
                    qty: total,
                    tif: TimeInForce::GoodTillCanceled,
                    post_only: false,
                    stp: self.setup_stp,
                };
                self.out.counters.requests += 1;
                let mut buf = self.pool.take_buffer();
                let stamped = self
                    .presigner
                    .write_amend(&mut buf, &mut self.gateway.amend_wires[wire_index(market, side)], order, &spec);
                self.out.counters.count_stamp(stamped);
                self.pool.submit(slot as u64, buf)
            }
            _ => {
                if encode_command(&mut self.gateway.req, self.decoder.interner(), body, self.setup_stp).is_err() {
                    self.gateway.inflight.free(slot);
                    self.out.reject(p.item, RejectReason::InvalidOrder);
                    return;
                }
                self.send_request(slot)
            }
        };
        self.out.record_command(&p, w);
    }

    pub(super) fn flush_creates(&mut self) {
        let n = self.pace_batch(ReqKind::BatchCreate);
        if n == 0 {
            return;
        }
        let kind = if n == 1 { ReqKind::Create } else { ReqKind::BatchCreate };
        let Some(slot) = self.gateway.inflight.alloc(kind) else {
            for i in 0..n {
                let item = self.gateway.creates[i].item;
                self.out.reject(item, RejectReason::RateLimited);
            }
            self.gateway.creates.clear();
            return;
        };
        let interner = self.decoder.interner();
        let stp = self.setup_stp;
        let spec = |p: &Pending| OrderSpec {
            ticker: interner.ticker(p.item.market).unwrap_or(b""),
            client: p.item.client,
            side: p.side,
            price: p.price,
            qty: p.qty,
            tif: p.tif.unwrap_or(TimeInForce::GoodTillCanceled),
            post_only: p.post_only,
            stp,
        };
        let mut write_tsc = None;
        if n == 1 {
            let p = self.gateway.creates[0];
            match self.gateway.create_wires.get_mut(wire_index(p.item.market, p.side)) {
                Some(wire) => {
                    self.out.counters.requests += 1;
                    let mut buf = self.pool.take_buffer();
                    let stamped = self.presigner.write_create(&mut buf, wire, &spec(&p));
                    self.out.counters.count_stamp(stamped);
                    self.gateway.inflight.slot_mut(slot).items[0] = p.item;
                    self.gateway.inflight.slot_mut(slot).n = 1;
                    write_tsc = Some(self.pool.submit(slot as u64, buf));
                }
                None => encode_create(&mut self.gateway.req, &spec(&p)),
            }
        } else {
            let mut specs = [spec(&self.gateway.creates[0]); MAX_BATCH];
            for (i, p) in self.gateway.creates.iter().enumerate() {
                specs[i] = spec(p);
            }
            encode_batch_create(&mut self.gateway.req, &specs[..n]);
            self.out.counters.batched_creates += 1;
        }
        let w = match write_tsc {
            Some(w) => w,
            None => {
                let f = self.gateway.inflight.slot_mut(slot);
                for (i, p) in self.gateway.creates.iter().enumerate() {
                    f.items[i] = p.item;
                }
                f.n = n;
                self.send_request(slot)
            }
        };
        for i in 0..n {
            let p = self.gateway.creates[i];
            self.out.record_command(&p, w);
        }
        self.gateway.creates.clear();
    }

    pub(super) fn flush_cancels(&mut self) {
        let n = self.pace_batch(ReqKind::BatchCancel);
        if n == 0 {
            return;
        }
        let Some(slot) = self.gateway.inflight.alloc(ReqKind::BatchCancel) else {
            for i in 0..n {
                let item = self.gateway.cancels[i].item;
                self.out.reject(item, RejectReason::RateLimited);
            }
            self.gateway.cancels.clear();
            return;
        };
        // Always the batch endpoint: its signature is always in stock (a single cancel's path
        // names the order, so it is presigned only per order).
        let mut ids = [OrderId(0); MAX_BATCH];
        for (i, p) in self.gateway.cancels.iter().enumerate() {
            ids[i] = p.item.order;
        }
        encode_batch_cancel(&mut self.gateway.req, &ids[..n]);
        if n > 1 {
            self.out.counters.batched_cancels += 1;
        }
        let f = self.gateway.inflight.slot_mut(slot);
        for (i, p) in self.gateway.cancels.iter().enumerate() {
            f.items[i] = p.item;
        }
        f.n = n;
        let w = self.send_request(slot);
        for i in 0..n {
            let p = self.gateway.cancels[i];
            self.out.record_command(&p, w);
        }
        self.gateway.cancels.clear();
    }
}
