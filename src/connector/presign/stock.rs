//! The io side of the presigner: [`Presigner`], which hands the io thread one signature per
//! request from stock and stamps it into the request being written. Apart from the worker
//! because it runs on the io thread, where every call must stay allocation-free, lock-free and
//! without syscalls.

use super::clock::WallClock;
use super::config::PresignConfig;
use super::paths::{classify, FixedPath, OrderOp, StockKey};
use super::shared::{sign, OrderSigned, Request, Shared};
use super::worker::Worker;
use crate::connector::kalshi::rest::head::{write_after_prefix, write_head_to_timestamp, write_http_request, SignedHeaders};
use crate::connector::kalshi::rest::order_wire::{OrderSpec, OrderWire};
use crate::connector::kalshi::rest::request::{Method, RestRequest, ORDERS_PATH};
use crate::event::OrderId;
use kalshi_proto::auth::{KeyKind, Signer};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Stocked signatures per fixed path that [`Presigner::maintain_at`] keeps in the io core's
/// cache: the io thread takes them one request at a time.
const WARM_SLOTS: usize = 4;

/// What [`Presigner::write_request`] stamped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamped {
    /// The signed timestamp (Unix ms).
    pub ts_ms: u64,
    /// From stock (`false`: signed inline, a miss or an unstocked path).
    pub from_stock: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct OrderKey(u128, OrderOp);

impl Hash for OrderKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let lo = self.0 as u64;
        let hi = (self.0 >> 64) as u64;
        state.write_u64(lo ^ hi.rotate_left(29) ^ (self.1 as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
}

/// Order ids are random UUIDs already; one multiply spreads them over the table without
/// SipHash's cost on the hot path.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
        self.0 ^= self.0 >> 32;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Counters for the metrics dump and the end-of-run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PresignStats {
    /// Requests served from stock.
    pub hits: u64,
    /// Requests for a presignable path that found no fresh stock and were signed inline.
    pub misses: u64,
    /// Requests for paths that are never presigned (signed inline by design).
    pub unstocked: u64,
    /// Stock found too old at `take` (a sign that `maintain` is not being called).
    pub stale_dropped: u64,
    /// Of `misses`, those for an order's own amend, decrease or cancel.
    pub order_misses: u64,
    /// Stock retired by `maintain` for age before anyone needed it.
    pub retired: u64,
    /// `prepare`/`release` requests lost because the request ring was full.
    pub dropped_requests: u64,
    /// Per-order signatures the worker made that found no room on the io side.
    pub dropped_orders: u64,
    /// Ready signatures per fixed path, indexed like [`FixedPath::ALL`].
    pub stock: [usize; 4],
    /// Ready per-order signatures.
    pub order_stock: usize,
    /// Signatures the worker has made.
    pub signed_ahead: u64,
    /// The worker's total signing time, for its average cost.
    pub worker_sign_ns: u64,
}

/// The io thread's handle: hands out signatures and asks the worker for more. Dropping it
/// stops and joins the worker.
pub struct Presigner {
    key_id: Box<[u8]>,
    signer: Arc<Signer>,
    clock: WallClock,
    config: PresignConfig,
    fixed: [rtrb::Consumer<SignedHeaders>; 4],
    results: rtrb::Consumer<OrderSigned>,
    requests: rtrb::Producer<Request>,
    orders: HashMap<OrderKey, SignedHeaders, BuildHasherDefault<IdHasher>>,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    wake_pending: bool,
    last_sweep_ms: u64,
    /// Stock entries per fixed ring at the last warming (see `maintain_at`).
    /// Per fixed path: signatures consumed so far, and (consumed, stocked) when the front of
    /// the stock was last read into this core's cache.
    taken: [u64; 4],
    warmed: [(u64, usize); 4],
    /// The constant heads of the fixed-path requests for `prefix_host`.
    prefixes: [Vec<u8>; 4],
    prefix_host: Vec<u8>,
    stats: PresignStats,
}

impl fmt::Debug for Presigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presigner")
            .field("key_kind", &self.signer.kind())
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Presigner {
    /// Starts the worker thread (named `kmm-signer`) with the system clock.
    pub fn spawn(signer: Signer, key_id: &str, config: PresignConfig) -> std::io::Result<Presigner> {
        Self::spawn_with_clock(signer, key_id, config, WallClock::System)
    }

    pub fn spawn_with_clock(signer: Signer, key_id: &str, config: PresignConfig, clock: WallClock) -> std::io::Result<Presigner> {
        let signer = Arc::new(signer);
        let mut producers = Vec::with_capacity(4);
        let mut consumers = Vec::with_capacity(4);
        for depth in config.stock {
            let (p, c) = rtrb::RingBuffer::new(depth.max(1));
            producers.push(p);
            consumers.push(c);
        }
        let fixed_c: [rtrb::Consumer<SignedHeaders>; 4] = consumers.try_into().unwrap_or_else(|_| unreachable!());
        let fixed_p: [rtrb::Producer<SignedHeaders>; 4] = producers.try_into().unwrap_or_else(|_| unreachable!());
        let (results_p, results_c) = rtrb::RingBuffer::new(config.order_slots.max(16));
        let (requests_p, requests_c) = rtrb::RingBuffer::new(config.max_wanted.max(16) * 2);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            signed: AtomicU64::new(0),
            sign_ns: AtomicU64::new(0),
            deterministic: signer.kind() == KeyKind::Ed25519,
            last_ts: Default::default(),
        });
        let mut worker = Worker {
            signer: signer.clone(),
            clock: clock.clone(),
            stock: config.stock,
            fixed: fixed_p,
            results: results_p,
            requests: requests_c,
            wanted: Vec::with_capacity(config.max_wanted),
            max_wanted: config.max_wanted.max(1),
            refresh_age_ms: config.refresh_age_ms,
            poll: Duration::from_millis(config.poll_ms.max(1)),
            shared: shared.clone(),
            dropped_orders: 0,
        };
        let cores = config.worker_cores.clone();
        let handle = std::thread::Builder::new().name("kmm-signer".into()).spawn(move || {
            crate::runtime::confine_current(&cores);
            worker.run()
        })?;
        // Capacity doubled: hashbrown rehashes in place (no allocation) while at most half full.
        let orders = HashMap::with_capacity_and_hasher(config.order_slots.max(16) * 2, BuildHasherDefault::default());
        Ok(Presigner {
            key_id: key_id.as_bytes().into(),
            signer,
            clock,
            config,
            fixed: fixed_c,
            results: results_c,
            requests: requests_p,
            orders,
            shared,
            worker: Some(handle),
            wake_pending: true,
            last_sweep_ms: 0,
            taken: [0; 4],
            warmed: [(0, 0); 4],
            prefixes: Default::default(),
            prefix_host: Vec::new(),
            stats: PresignStats::default(),
        })
    }

    /// The `KALSHI-ACCESS-KEY` value.
    pub fn key_id(&self) -> &[u8] {
        &self.key_id
    }

    pub fn config(&self) -> &PresignConfig {
        &self.config
    }

    /// The headers for one request to `method` + `path` (the full path from `/trade-api`),
    /// stamped now. From stock when a fresh signature is there (allocation-free, lock-free, no
    /// syscall); otherwise signed inline (tens to hundreds of microseconds, allocates) and
    /// counted as a miss.
    #[inline]
    pub fn take(&mut self, method: Method, path: &[u8]) -> SignedHeaders {
        let now = self.clock.now_ms();
        self.take_at(method, path, now)
    }

    /// [`take`](Self::take) with the wall time given (Unix ms).
    pub fn take_at(&mut self, method: Method, path: &[u8], now_ms: u64) -> SignedHeaders {
        self.take_classified(classify(method, path), method, path, now_ms)
    }

    /// [`take_at`](Self::take_at) for a path already classified: an order path's id is
    /// parsed and checked once per request, not once per step.
    fn take_classified(&mut self, key: Option<StockKey>, method: Method, path: &[u8], now_ms: u64) -> SignedHeaders {
        match key {
            Some(k) => self.take_stocked(k, now_ms),
            None => {
                self.stats.unstocked += 1;
                None
            }
        }
        .unwrap_or_else(|| self.sign_inline(method, path, now_ms))
    }

    /// A fresh signature from stock for `key`, counted as a hit; None (counted as a miss) when
    /// there is none and the caller must sign inline.
    #[inline]
    fn take_stocked(&mut self, key: StockKey, now_ms: u64) -> Option<SignedHeaders> {
        match key {
            StockKey::Fixed(f) => {
                if let Some(h) = self.pop_fixed(f, now_ms) {
                    self.stats.hits += 1;
                    return Some(h);
                }
            }
            StockKey::Order(order, op) => {
                self.drain_results();
                if let Some(h) = self.orders.remove(&OrderKey(order.0, op)) {
                    // The order is live and may be amended or decreased again: have another made.
                    // A cancel is its last request.
                    if op != OrderOp::Cancel {
                        self.request(Request::Prepare(order, op));
                    }
                    if h.age_ok(now_ms, self.config.max_age_ms) {
                        self.stats.hits += 1;
                        return Some(h);
                    }
                    self.stats.stale_dropped += 1;
                }
                self.stats.order_misses += 1;
            }
        }
        self.stats.misses += 1;
        None
    }

    /// Takes the headers for `req` and writes the whole HTTP/1.1 request into `out` (see
    /// [`write_http_request`]), stamped now.
    #[inline]
    pub fn write_request(&mut self, out: &mut Vec<u8>, req: &RestRequest, host: &[u8]) -> Stamped {
        let now = self.clock.now_ms();
        self.write_request_at(out, req, host, now)
    }

    /// [`write_request`](Self::write_request) with the wall time given: the io loop can read
    /// the clock once per turn, since freshness is judged in seconds. A fixed-path signature
    /// is written straight from its ring slot, never copied out.
    #[inline]
    pub fn write_request_at(&mut self, out: &mut Vec<u8>, req: &RestRequest, host: &[u8], now_ms: u64) -> Stamped {
        let key = classify(req.method, &req.path);
        if let Some(StockKey::Fixed(f)) = key {
            if self.fresh_front(f, now_ms) {
                if host != &self.prefix_host[..] {
                    // Once per host: the constant head of each fixed-path request.
                    self.prefix_host = host.to_vec();
                    for g in FixedPath::ALL {
                        write_head_to_timestamp(&mut self.prefixes[g.index()], g.method(), g.path(), host, &self.key_id);
                    }
                }
                let Ok(h) = self.fixed[f.index()].peek() else {
                    unreachable!("fresh_front saw it")
                };
                let ts_ms = h.timestamp_ms();
                write_after_prefix(out, &self.prefixes[f.index()], h, &req.body);
                self.consume_front(f);
                self.stats.hits += 1;
                return Stamped { ts_ms, from_stock: true };
            }
        }
        let hits = self.stats.hits;
        let h = self.take_classified(key, req.method, &req.path, now_ms);
        write_http_request(out, req, host, &self.key_id, &h);
        Stamped {
            ts_ms: h.timestamp_ms(),
            from_stock: self.stats.hits > hits,
        }
    }

    /// Writes one create's whole request into `out` from `wire` (see [`OrderWire`]), stamped
    /// now: the order path's cheapest write, with the signature copied once, from its ring
    /// slot into the request.
    #[inline]
    pub fn write_create(&mut self, out: &mut Vec<u8>, wire: &mut OrderWire, order: &OrderSpec<'_>) -> Stamped {
        let now = self.clock.now_ms();
        self.write_create_at(out, wire, order, now)
    }

    /// [`write_create`](Self::write_create) with the wall time given (Unix ms).
    #[inline]
    pub fn write_create_at(&mut self, out: &mut Vec<u8>, wire: &mut OrderWire, order: &OrderSpec<'_>, now_ms: u64) -> Stamped {
        let f = FixedPath::Create;
        if self.fresh_front(f, now_ms) {
            let Ok(h) = self.fixed[f.index()].peek() else {
                unreachable!("fresh_front saw it")
            };
            let ts_ms = h.timestamp_ms();
            wire.write(out, order, h.auth_lines());
            self.consume_front(f);
            self.stats.hits += 1;
            return Stamped { ts_ms, from_stock: true };
        }
        self.stats.misses += 1;
        let h = self.sign_inline(Method::Post, ORDERS_PATH, now_ms);
        wire.write(out, order, h.auth_lines());
        Stamped {
            ts_ms: h.timestamp_ms(),
            from_stock: false,
        }
    }

    /// Writes what [`write_create`](Self::write_create) would, from the front signature left in
    /// stock, and takes nothing: the idle io thread's rehearsal, which keeps the stock's front
    /// slot, the wire and this code in cache for the next real order. False when the stock is
    /// empty (nothing written).
    pub fn rehearse_create(&mut self, out: &mut Vec<u8>, wire: &mut OrderWire, order: &OrderSpec<'_>) -> bool {
        let Ok(h) = self.fixed[FixedPath::Create.index()].peek() else {
            return false;
        };
        wire.write(out, order, h.auth_lines());
        true
    }

    /// [`write_amend_at`](Self::write_amend_at), stamped now.
    #[inline]
    pub fn write_amend(&mut self, out: &mut Vec<u8>, wire: &mut OrderWire, id: OrderId, order: &OrderSpec<'_>) -> Stamped {
        let now = self.clock.now_ms();
        self.write_amend_at(out, wire, id, order, now)
    }

    /// Writes the amend of order `id` into `out` from an amend `wire` (see [`OrderWire`]),
    /// stamped `now_ms`: the order's own signature, copied once into the request. Signed inline
    /// (and counted as a miss) when the order has none in stock.
    #[inline]
    pub fn write_amend_at(&mut self, out: &mut Vec<u8>, wire: &mut OrderWire, id: OrderId, order: &OrderSpec<'_>, now_ms: u64) -> Stamped {
        let (h, from_stock) = match self.take_stocked(StockKey::Order(id, OrderOp::Amend), now_ms) {
            Some(h) => (h, true),
            None => (self.sign_amend_inline(id, now_ms), false),
        };
        wire.write_amend(out, id, order, h.auth_lines());
        Stamped {
            ts_ms: h.timestamp_ms(),
            from_stock,
        }
    }

    #[cold]
    fn sign_amend_inline(&mut self, id: OrderId, now_ms: u64) -> SignedHeaders {
        let mut path = Vec::new();
        OrderOp::Amend.write_path(id, &mut path);
        self.sign_inline(Method::Post, &path, now_ms)
    }

    /// What [`write_amend_at`](Self::write_amend_at) would write, with the order's signature
    /// looked up as a real amend would (or any order's when it has none), and nothing taken:
    /// the idle io thread's rehearsal of the amend path. False when no order has a signature.
    pub fn rehearse_amend(&mut self, out: &mut Vec<u8>, wire: &mut OrderWire, id: OrderId, order: &OrderSpec<'_>) -> bool {
        // Finished signatures are taken in now rather than on the next real request.
        self.drain_results();
        let key = OrderKey(id.0, OrderOp::Amend);
        let Some(h) = self.orders.get(&key).or_else(|| self.orders.values().next()) else {
            return false;
        };
        wire.write_amend(out, id, order, h.auth_lines());
        true
    }

    /// As [`rehearse_create`](Self::rehearse_create), for a fixed-path request (a batch
    /// cancel, say) through the prefix [`write_request`](Self::write_request) would use.
    /// An order's request (an amend, say) looks its signature up as a real one would and
    /// is written with it, or with any order's when that order has none.
    pub fn rehearse_request(&mut self, out: &mut Vec<u8>, req: &RestRequest, host: &[u8]) -> bool {
        let f = match classify(req.method, &req.path) {
            Some(StockKey::Fixed(f)) => f,
            Some(StockKey::Order(order, op)) => {
                // Finished signatures are taken in now rather than on the next real request.
                self.drain_results();
                let key = OrderKey(order.0, op);
                let Some(h) = self.orders.get(&key).or_else(|| self.orders.values().next()) else {
                    return false;
                };
                write_http_request(out, req, host, &self.key_id, h);
                return true;
            }
            None => return false,
        };
        if host != &self.prefix_host[..] {
            return false;
        }
        let Ok(h) = self.fixed[f.index()].peek() else {
            return false;
        };
        write_after_prefix(out, &self.prefixes[f.index()], h, &req.body);
        true
    }

    /// Drops stale signatures from the front of `f`'s stock; true when a fresh one is left
    /// there to be written straight from its slot (then [`consume_front`](Self::consume_front)).
    #[inline]
    fn fresh_front(&mut self, f: FixedPath, now_ms: u64) -> bool {
        loop {
            match self.fixed[f.index()].peek() {
                Ok(h) if h.age_ok(now_ms, self.config.max_age_ms) => return true,
                Ok(_) => {
                    self.consume_front(f);
                    self.stats.stale_dropped += 1;
                }
                Err(_) => return false,
            }
        }
    }

    /// Frees the front slot of `f`'s stock without copying it out.
    #[inline]
    fn consume_front(&mut self, f: FixedPath) {
        if let Ok(c) = self.fixed[f.index()].read_chunk(1) {
            c.commit_all();
        }
        self.taken[f.index()] += 1;
        self.wake_pending = true;
    }

    fn pop_fixed(&mut self, f: FixedPath, now_ms: u64) -> Option<SignedHeaders> {
        let ring = &mut self.fixed[f.index()];
        loop {
            let h = *ring.peek().ok()?;
            // Either way it is consumed: a stale one is useless and the worker replaces it.
            let _ = ring.pop();
            self.taken[f.index()] += 1;
            self.wake_pending = true;
            if h.age_ok(now_ms, self.config.max_age_ms) {
                return Some(h);
            }
            self.stats.stale_dropped += 1;
        }
    }

    fn drain_results(&mut self) {
        while let Ok(r) = self.results.pop() {
            let key = OrderKey(r.order.0, r.op);
            if self.orders.len() >= self.config.order_slots.max(16) && !self.orders.contains_key(&key) {
                self.stats.dropped_orders += 1;
                continue;
            }
            self.orders.insert(key, r.headers);
        }
    }

    fn request(&mut self, r: Request) -> bool {
        let ok = self.requests.push(r).is_ok();
        if ok {
            self.wake_pending = true;
        } else {
            self.stats.dropped_requests += 1;
        }
        ok
    }

    /// Signs now, on this thread, bypassing the stock: for reads and the WebSocket upgrade,
    /// whose paths are never presigned. Allocates; never on the hot path.
    pub fn sign_now(&self, method: Method, path: &[u8]) -> SignedHeaders {
        self.sign_inline(method, path, self.clock.now_ms())
    }

    fn sign_inline(&self, method: Method, path: &[u8], now_ms: u64) -> SignedHeaders {
        sign(&self.signer, method, path, self.shared.ts_for(method, path, now_ms))
    }

    /// Asks the worker to keep a signature ready for `op` on `order` (e.g. when its create is
    /// acked). It stays refreshed until [`release`](Self::release). `false` if the request ring
    /// was full (counted). No syscall: call [`wake`](Self::wake) after the write.
    pub fn prepare(&mut self, order: OrderId, op: OrderOp) -> bool {
        self.request(Request::Prepare(order, op))
    }

    /// Whether a request for `op` on `order` would be stamped from stock now. Takes in the
    /// worker's finished signatures first; no syscall, no allocation.
    pub fn order_ready(&mut self, order: OrderId, op: OrderOp) -> bool {
        self.drain_results();
        let now_ms = self.clock.now_ms();
        let max_age = self.config.max_age_ms;
        self.orders.get(&OrderKey(order.0, op)).is_some_and(|h| h.age_ok(now_ms, max_age))
    }

    /// The order is gone (canceled or executed): stop signing for it and drop its stock.
    pub fn release(&mut self, order: OrderId) -> bool {
        for op in [OrderOp::Cancel, OrderOp::Amend, OrderOp::Decrease] {
            self.orders.remove(&OrderKey(order.0, op));
        }
        self.request(Request::Release(order))
    }

    /// Housekeeping for the io loop's idle moments (cheap, allocation-free, no syscall):
    /// retires stock older than `refresh_age_ms` so the worker replaces it, and takes in the
    /// worker's per-order signatures.
    pub fn maintain(&mut self) {
        let now = self.clock.now_ms();
        self.maintain_at(now);
    }

    pub fn maintain_at(&mut self, now_ms: u64) {
        for ((ring, warmed), taken) in self.fixed.iter_mut().zip(self.warmed.iter_mut()).zip(self.taken.iter_mut()) {
            while let Ok(h) = ring.peek() {
                if h.age_ok(now_ms, self.config.refresh_age_ms) {
                    break;
                }
                let _ = ring.pop();
                *taken += 1;
                self.stats.retired += 1;
                self.wake_pending = true;
            }
            // The worker wrote the stock from another core: read what the next requests will
            // copy now, so the order write finds it in this core's cache. Again whenever one
            // was taken or the worker added one (a count alone would miss a take the worker
            // has since made up for: the front slot is then one this core never read).
            let n = ring.slots();
            if (*taken, n) != *warmed {
                *warmed = (*taken, n);
                if let Ok(chunk) = ring.read_chunk(n.min(WARM_SLOTS)) {
                    let (a, b) = chunk.as_slices();
                    let mut x = 0u8;
                    for h in a.iter().chain(b) {
                        x ^= h.timestamp().iter().chain(h.signature()).fold(0, |x, &b| x ^ b);
                    }
                    std::hint::black_box(x);
                    // Dropped without commit: nothing is consumed.
                }
            }
        }
        self.drain_results();
        // Per-order stock is refreshed by the worker; what outlives it belongs to orders nobody
        // released. A sweep a second is plenty.
        if now_ms.saturating_sub(self.last_sweep_ms) >= 1000 {
            self.last_sweep_ms = now_ms;
            let max_age = self.config.max_age_ms;
            let before = self.orders.len();
            self.orders.retain(|_, h| h.age_ok(now_ms, max_age));
            self.stats.retired += (before - self.orders.len()) as u64;
        }
    }

    /// Wakes the worker if stock was used or requested since the last wake. This is a futex
    /// wake when the worker sleeps: call it after the request's write, not before.
    pub fn wake(&mut self) {
        if self.wake_pending {
            self.wake_pending = false;
            if let Some(w) = &self.worker {
                w.thread().unpark();
            }
        }
    }

    /// Ready signatures for a fixed path.
    pub fn stock(&self, f: FixedPath) -> usize {
        self.fixed[f.index()].slots()
    }

    /// Whether a fresh per-order signature is ready (after taking in the worker's results).
    pub fn has_order_stock(&mut self, order: OrderId, op: OrderOp) -> bool {
        self.drain_results();
        self.orders.contains_key(&OrderKey(order.0, op))
    }

    pub fn stats(&self) -> PresignStats {
        let mut s = self.stats;
        for f in FixedPath::ALL {
            s.stock[f.index()] = self.fixed[f.index()].slots();
        }
        s.order_stock = self.orders.len();
        s.signed_ahead = self.shared.signed.load(Ordering::Relaxed);
        s.worker_sign_ns = self.shared.sign_ns.load(Ordering::Relaxed);
        s
    }
}

impl Drop for Presigner {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(w) = self.worker.take() {
            w.thread().unpark();
            let _ = w.join();
        }
    }
}
