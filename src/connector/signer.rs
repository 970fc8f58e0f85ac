//! Request signatures prepared ahead, so signing never sits between a tick and its order.
//!
//! Kalshi signs `timestamp_ms + METHOD + path` (no body, no query string), so a signature for
//! a path kmm will certainly use can be made before the request exists. One RSA-PSS signature
//! costs ~260 us here and an Ed25519 one ~30 us; a background thread pays that, the io thread
//! only copies a ready header.
//!
//! Two halves joined by rtrb rings:
//!
//! - the **worker** thread (spawned by [`Presigner::spawn`]) keeps a stock of signatures for
//!   the four fixed order paths (V2 create, batch create, batch cancel, cancel all) and for the
//!   per-order paths (cancel, amend, decrease of one order id) the io thread asked for with
//!   [`Presigner::prepare`]. It sleeps, and wakes on [`Presigner::wake`] or every
//!   [`PresignConfig::poll_ms`];
//! - the io-side [`Presigner`] hands out one signature per request with [`Presigner::take`]
//!   (allocation-free, lock-free, no syscall) and signs inline only when the stock is empty or
//!   too old, counting a miss.
//!
//! A signature is consumed by the request that takes it and never handed out twice. Kalshi
//! checks the timestamp against its clock (the local exchange allows +-30 s; Kalshi documents
//! +-30 s for FIX logon); stock older than [`PresignConfig::max_age_ms`] is never handed out,
//! and [`Presigner::maintain`] retires stock older than [`PresignConfig::refresh_age_ms`] so
//! the worker replaces it long before it would be refused.
//!
//! Secrets: the private key stays inside [`kalshi_proto::auth::Signer`]; signatures are
//! short-lived bearer credentials, so `Debug` output shows their timestamps and lengths only.

use super::kalshi::rest::order_wire::{OrderSpec, OrderWire};
use super::kalshi::rest::request::{Method, RestRequest, BATCH_PATH, ORDERS_PATH};
use crate::event::OrderId;
use kalshi_proto::auth::{KeyKind, Signer};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Base64 of a 4096-bit RSA signature (512 bytes), the largest key Kalshi-style signers load.
pub const MAX_SIGNATURE_B64: usize = 684;
/// Decimal digits of a u64 millisecond timestamp.
pub const MAX_TIMESTAMP_DIGITS: usize = 20;

pub const HEADER_KEY: &[u8] = b"KALSHI-ACCESS-KEY";
pub const HEADER_TIMESTAMP: &[u8] = b"KALSHI-ACCESS-TIMESTAMP";
pub const HEADER_SIGNATURE: &[u8] = b"KALSHI-ACCESS-SIGNATURE";

// ------------------------------------------------------------------------------------ headers

/// Stocked signatures per fixed path that [`Presigner::maintain_at`] keeps in the io core's
/// cache: the io thread takes them one request at a time.
const WARM_SLOTS: usize = 4;

/// Between the timestamp and the signature in [`SignedHeaders::auth_lines`].
const SIGNATURE_LINE: &[u8] = b"\r\nKALSHI-ACCESS-SIGNATURE: ";
const AUTH_LINES_CAPACITY: usize = MAX_TIMESTAMP_DIGITS + SIGNATURE_LINE.len() + MAX_SIGNATURE_B64;

/// One request's `KALSHI-ACCESS-TIMESTAMP` and `KALSHI-ACCESS-SIGNATURE` values, inline and
/// fixed-size so a ring slot holds one by value. They are kept as the text that goes on the
/// wire (timestamp, the signature header's name, signature), so stamping a request copies
/// them in one piece.
#[derive(Clone, Copy)]
pub struct SignedHeaders {
    ts_ms: u64,
    ts_len: u8,
    sig_len: u16,
    text: [u8; AUTH_LINES_CAPACITY],
}

impl SignedHeaders {
    /// From a base64 signature; `None` if it is longer than any supported key produces.
    pub fn new(ts_ms: u64, signature_b64: &[u8]) -> Option<SignedHeaders> {
        if signature_b64.len() > MAX_SIGNATURE_B64 {
            return None;
        }
        let mut digits = [0u8; MAX_TIMESTAMP_DIGITS];
        let i = super::kalshi::write::u64_digits(ts_ms, &mut digits);
        let n = digits.len() - i;
        let mut h = SignedHeaders {
            ts_ms,
            ts_len: n as u8,
            sig_len: signature_b64.len() as u16,
            text: [0; AUTH_LINES_CAPACITY],
        };
        h.text[..n].copy_from_slice(&digits[i..]);
        h.text[n..n + SIGNATURE_LINE.len()].copy_from_slice(SIGNATURE_LINE);
        h.text[n + SIGNATURE_LINE.len()..][..signature_b64.len()].copy_from_slice(signature_b64);
        Some(h)
    }

    /// The timestamp value, CRLF, the signature header and its value: everything a request
    /// needs after `KALSHI-ACCESS-TIMESTAMP: `, up to the signature line's CRLF.
    #[inline]
    pub fn auth_lines(&self) -> &[u8] {
        &self.text[..usize::from(self.ts_len) + SIGNATURE_LINE.len() + usize::from(self.sig_len)]
    }

    /// The signed timestamp in Unix milliseconds.
    #[inline]
    pub fn timestamp_ms(&self) -> u64 {
        self.ts_ms
    }

    /// The `KALSHI-ACCESS-TIMESTAMP` value (decimal milliseconds, as signed).
    #[inline]
    pub fn timestamp(&self) -> &[u8] {
        &self.text[..usize::from(self.ts_len)]
    }

    /// The `KALSHI-ACCESS-SIGNATURE` value (standard base64, padded).
    #[inline]
    pub fn signature(&self) -> &[u8] {
        let start = usize::from(self.ts_len) + SIGNATURE_LINE.len();
        &self.text[start..start + usize::from(self.sig_len)]
    }

    /// Appends the three auth header lines, each ending in CRLF.
    #[inline]
    pub fn write_headers(&self, key_id: &[u8], out: &mut Vec<u8>) {
        write_key_line_and_timestamp_name(out, key_id);
        out.extend_from_slice(self.timestamp());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(HEADER_SIGNATURE);
        out.extend_from_slice(b": ");
        out.extend_from_slice(self.signature());
        out.extend_from_slice(b"\r\n");
    }

    fn age_ok(&self, now_ms: u64, max_age_ms: u64) -> bool {
        // Both directions: a wall clock stepped backwards makes stock "from the future".
        self.ts_ms.abs_diff(now_ms) <= max_age_ms
    }
}

impl fmt::Debug for SignedHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedHeaders")
            .field("timestamp_ms", &self.ts_ms)
            .field("signature", &format_args!("<{} bytes redacted>", self.sig_len))
            .finish()
    }
}

/// Writes an HTTP/1.1 request with Kalshi's auth headers into `out` (cleared first): the
/// request line, `Host`, the three `KALSHI-ACCESS-*` headers, and for a body `Content-Type`
/// and `Content-Length`. Keep-alive is HTTP/1.1's default, so no `Connection` header is sent.
/// Allocation-free once `out` has the capacity (the largest request is a full batch create,
/// under `crate::connector::kalshi::rest::request::BODY_CAPACITY` plus about 1 KiB of head).
pub fn write_http_request(out: &mut Vec<u8>, req: &RestRequest, host: &[u8], key_id: &[u8], auth: &SignedHeaders) {
    out.clear();
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(&req.path);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host);
    out.extend_from_slice(b"\r\n");
    auth.write_headers(key_id, out);
    if !req.body.is_empty() {
        out.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: ");
        push_usize(out, req.body.len());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&req.body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes (into `out`, cleared first) a request's constant head: the request line, `Host`,
/// `KALSHI-ACCESS-KEY`, and `KALSHI-ACCESS-TIMESTAMP: ` up to the value, where a stocked
/// signature's [`SignedHeaders::auth_lines`] go.
pub fn write_head_to_timestamp(out: &mut Vec<u8>, method: Method, path: &[u8], host: &[u8], key_id: &[u8]) {
    super::kalshi::rest::head::write_request_line(out, method, path, host);
    out.extend_from_slice(b"\r\n");
    write_key_line_and_timestamp_name(out, key_id);
}

/// `KALSHI-ACCESS-KEY: <key_id>` and its CRLF, then `KALSHI-ACCESS-TIMESTAMP: ` up to the value.
#[inline]
fn write_key_line_and_timestamp_name(out: &mut Vec<u8>, key_id: &[u8]) {
    out.extend_from_slice(HEADER_KEY);
    out.extend_from_slice(b": ");
    out.extend_from_slice(key_id);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(HEADER_TIMESTAMP);
    out.extend_from_slice(b": ");
}

/// [`write_http_request`]'s bytes, from a prebuilt head that ends at the timestamp's value:
/// six copies instead of seventeen on the order path.
#[inline]
fn write_after_prefix(out: &mut Vec<u8>, prefix: &[u8], auth: &SignedHeaders, body: &[u8]) {
    const BODY_HEAD: &[u8] = b"\r\nContent-Type: application/json\r\nContent-Length: ";
    let auth = auth.auth_lines();
    out.clear();
    // Room for the longest Content-Length (20 digits), reserved once for every copy below.
    out.reserve(prefix.len() + auth.len() + BODY_HEAD.len() + 20 + 4 + body.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(auth);
    if body.is_empty() {
        out.extend_from_slice(b"\r\n\r\n");
    } else {
        out.extend_from_slice(BODY_HEAD);
        push_usize(out, body.len());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
    }
}

fn push_usize(out: &mut Vec<u8>, v: usize) {
    super::kalshi::write::push_u64(out, v as u64);
}

// ------------------------------------------------------------------------------------ clock

/// The wall clock signatures are stamped with. `Manual` lets tests move time without sleeping.
#[derive(Clone, Debug, Default)]
pub enum WallClock {
    #[default]
    System,
    /// Unix milliseconds, set by the owner.
    Manual(Arc<AtomicU64>),
}

impl WallClock {
    pub fn manual(start_ms: u64) -> (WallClock, Arc<AtomicU64>) {
        let cell = Arc::new(AtomicU64::new(start_ms));
        (WallClock::Manual(cell.clone()), cell)
    }

    /// Unix time in milliseconds. `SystemTime` is a vDSO read on Linux, not a syscall.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        match self {
            WallClock::System => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            WallClock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }
}

// ------------------------------------------------------------------------------------ paths

/// The four order paths whose signatures are always in stock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FixedPath {
    /// `POST .../portfolio/events/orders`
    Create,
    /// `POST .../portfolio/events/orders/batched`
    BatchCreate,
    /// `DELETE .../portfolio/events/orders/batched` (also the way to cancel one order without a
    /// per-order signature: a batch of one)
    BatchCancel,
    /// `DELETE .../portfolio/events/orders`
    CancelAll,
}

impl FixedPath {
    pub const ALL: [FixedPath; 4] = [
        FixedPath::Create,
        FixedPath::BatchCreate,
        FixedPath::BatchCancel,
        FixedPath::CancelAll,
    ];

    pub fn method(self) -> Method {
        match self {
            FixedPath::Create | FixedPath::BatchCreate => Method::Post,
            FixedPath::BatchCancel | FixedPath::CancelAll => Method::Delete,
        }
    }

    pub fn path(self) -> &'static [u8] {
        match self {
            FixedPath::Create | FixedPath::CancelAll => ORDERS_PATH,
            FixedPath::BatchCreate | FixedPath::BatchCancel => BATCH_PATH,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What a per-order signature is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderOp {
    /// `DELETE .../portfolio/events/orders/{id}`
    Cancel,
    /// `POST .../portfolio/events/orders/{id}/amend`
    Amend,
    /// `POST .../portfolio/events/orders/{id}/decrease`
    Decrease,
}

impl OrderOp {
    pub fn method(self) -> Method {
        match self {
            OrderOp::Cancel => Method::Delete,
            OrderOp::Amend | OrderOp::Decrease => Method::Post,
        }
    }

    fn tail(self) -> &'static [u8] {
        match self {
            OrderOp::Cancel => b"",
            OrderOp::Amend => b"/amend",
            OrderOp::Decrease => b"/decrease",
        }
    }

    /// The full signed path for `order`, written into `out` (cleared first).
    pub fn write_path(self, order: OrderId, out: &mut Vec<u8>) {
        let mut id = [0u8; OrderId::WIRE_LEN];
        order.write(&mut id);
        out.clear();
        out.extend_from_slice(ORDERS_PATH);
        out.push(b'/');
        out.extend_from_slice(&id);
        out.extend_from_slice(self.tail());
    }
}

/// Which stock a request draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StockKey {
    Fixed(FixedPath),
    Order(OrderId, OrderOp),
}

/// The stock a `method` + `path` is served from, or `None` for paths never presigned
/// (reads, the WebSocket upgrade, anything with a query string).
#[inline]
pub fn classify(method: Method, path: &[u8]) -> Option<StockKey> {
    let rest = path.strip_prefix(ORDERS_PATH)?;
    if rest.is_empty() {
        return match method {
            Method::Post => Some(StockKey::Fixed(FixedPath::Create)),
            Method::Delete => Some(StockKey::Fixed(FixedPath::CancelAll)),
            Method::Get => None,
        };
    }
    let rest = rest.strip_prefix(b"/")?;
    if rest == &BATCH_PATH[ORDERS_PATH.len() + 1..] {
        return match method {
            Method::Post => Some(StockKey::Fixed(FixedPath::BatchCreate)),
            Method::Delete => Some(StockKey::Fixed(FixedPath::BatchCancel)),
            Method::Get => None,
        };
    }
    let id = OrderId::parse(rest.get(..OrderId::WIRE_LEN)?)?;
    let op = match (method, &rest[OrderId::WIRE_LEN..]) {
        (Method::Delete, b"") => OrderOp::Cancel,
        (Method::Post, b"/amend") => OrderOp::Amend,
        (Method::Post, b"/decrease") => OrderOp::Decrease,
        _ => return None,
    };
    // Only the canonical lower-case form is what the worker signs.
    let mut canon = [0u8; OrderId::WIRE_LEN];
    id.write(&mut canon);
    (canon[..] == rest[..OrderId::WIRE_LEN]).then_some(StockKey::Order(id, op))
}

/// What [`Presigner::write_request`] stamped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamped {
    /// The signed timestamp (Unix ms).
    pub ts_ms: u64,
    /// From stock (`false`: signed inline, a miss or an unstocked path).
    pub from_stock: bool,
}

// ------------------------------------------------------------------------------------ config

#[derive(Clone, Debug)]
pub struct PresignConfig {
    /// Signatures kept ready per fixed path, indexed like [`FixedPath::ALL`]. Creates and batch
    /// cancels come in bursts, so they get the deepest stock.
    pub stock: [usize; 4],
    /// Never hand out a signature older than this (the exchange's window is +-30 s; the rest
    /// is margin for clock skew and the request's time in flight).
    pub max_age_ms: u64,
    /// Stock older than this is retired by [`Presigner::maintain`] and per-order signatures are
    /// re-made by the worker, so stock in use is always well inside `max_age_ms`.
    pub refresh_age_ms: u64,
    /// The worker's sleep between rounds when nobody wakes it.
    pub poll_ms: u64,
    /// Per-order signatures held on the io side (each order and op holds at most one).
    pub order_slots: usize,
    /// Per-order (order, op) pairs the worker keeps fresh; the oldest is dropped past this.
    pub max_wanted: usize,
    /// Cores the worker may run on (empty: inherit). Its signatures cost hundreds of
    /// microseconds each, so it must never share the io thread's core, whose affinity it
    /// would otherwise inherit.
    pub worker_cores: Vec<usize>,
}

impl Default for PresignConfig {
    fn default() -> Self {
        PresignConfig {
            stock: [16, 4, 16, 2],
            max_age_ms: 10_000,
            refresh_age_ms: 5_000,
            poll_ms: 100,
            order_slots: 1024,
            max_wanted: 1024,
            worker_cores: Vec::new(),
        }
    }
}

// ------------------------------------------------------------------------------------ io side

#[derive(Clone, Copy, Debug)]
enum Request {
    Prepare(OrderId, OrderOp),
    Release(OrderId),
}

#[derive(Clone, Copy)]
struct OrderSigned {
    order: OrderId,
    op: OrderOp,
    headers: SignedHeaders,
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

struct Shared {
    stop: AtomicBool,
    signed: AtomicU64,
    sign_ns: AtomicU64,
    /// Ed25519 signs deterministically: the same timestamp, method and path give the same
    /// bytes, and two requests must never carry one signature. So with such a key each path
    /// class (the four fixed paths, then everything else) never signs one millisecond twice:
    /// the last timestamp used per class, by either side. RSA-PSS salts are random; no need.
    deterministic: bool,
    last_ts: [AtomicU64; 5],
}

impl Shared {
    /// The timestamp to sign `method` + `path` with at `now_ms`. Ahead of the clock only when
    /// one path is signed more than a thousand times a second, which no rate limit allows.
    fn ts_for(&self, method: Method, path: &[u8], now_ms: u64) -> u64 {
        if !self.deterministic {
            return now_ms;
        }
        let class = match classify(method, path) {
            Some(StockKey::Fixed(f)) => f.index(),
            _ => 4,
        };
        let last = &self.last_ts[class];
        let mut prev = last.load(Ordering::Relaxed);
        loop {
            let ts = now_ms.max(prev + 1);
            match last.compare_exchange_weak(prev, ts, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return ts,
                Err(p) => prev = p,
            }
        }
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
                let ts_ms = h.ts_ms;
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
            ts_ms: h.ts_ms,
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
            let ts_ms = h.ts_ms;
            wire.write(out, order, h.auth_lines());
            self.consume_front(f);
            self.stats.hits += 1;
            return Stamped { ts_ms, from_stock: true };
        }
        self.stats.misses += 1;
        let h = self.sign_inline(Method::Post, ORDERS_PATH, now_ms);
        wire.write(out, order, h.auth_lines());
        Stamped {
            ts_ms: h.ts_ms,
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
            ts_ms: h.ts_ms,
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

/// One signature for `method` + `path` stamped `ts_ms`, made on the calling thread. Callers
/// outside a [`Presigner`] must not sign the same path twice in one millisecond with an
/// Ed25519 key (see `Shared::last_ts`).
pub fn sign(signer: &Signer, method: Method, path: &[u8], ts_ms: u64) -> SignedHeaders {
    let method = match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Delete => "DELETE",
    };
    // Paths are built from ASCII by the codec; anything else cannot be a Kalshi path, and
    // signing its lossy form just earns the 401 it deserves.
    let path = String::from_utf8_lossy(path);
    let sig = signer.sign(ts_ms as i64, method, &path);
    // Base64 of at most a 4096-bit signature: the signer refuses larger keys at load.
    SignedHeaders::new(ts_ms, sig.as_bytes()).unwrap_or_else(|| unreachable!("signature longer than a 4096-bit key's"))
}

// ------------------------------------------------------------------------------------ worker

struct Wanted {
    order: OrderId,
    op: OrderOp,
    /// When the io side last got a signature for it; `None`: it needs one now.
    signed_at: Option<u64>,
}

struct Worker {
    signer: Arc<Signer>,
    clock: WallClock,
    stock: [usize; 4],
    fixed: [rtrb::Producer<SignedHeaders>; 4],
    results: rtrb::Producer<OrderSigned>,
    requests: rtrb::Consumer<Request>,
    wanted: Vec<Wanted>,
    max_wanted: usize,
    refresh_age_ms: u64,
    poll: Duration,
    shared: Arc<Shared>,
    dropped_orders: u64,
}

impl Worker {
    fn run(&mut self) {
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
        let mut path = Vec::with_capacity(super::kalshi::rest::request::PATH_CAPACITY);
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
    fn headers_hold_timestamp_and_signature() {
        let h = SignedHeaders::new(1_703_123_456_789, b"c2lnbmF0dXJl").unwrap();
        assert_eq!(h.timestamp(), b"1703123456789");
        assert_eq!(h.signature(), b"c2lnbmF0dXJl");
        assert_eq!(SignedHeaders::new(0, b"x").unwrap().timestamp(), b"0");
        assert!(SignedHeaders::new(1, &[b'A'; MAX_SIGNATURE_B64 + 1]).is_none());
        let dbg = format!("{h:?}");
        assert!(!dbg.contains("c2lnbmF0dXJl"), "{dbg}");
        let mut out = Vec::new();
        h.write_headers(b"key-1", &mut out);
        assert_eq!(
            out,
            b"KALSHI-ACCESS-KEY: key-1\r\nKALSHI-ACCESS-TIMESTAMP: 1703123456789\r\nKALSHI-ACCESS-SIGNATURE: c2lnbmF0dXJl\r\n"
        );
    }

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

    #[test]
    fn classifies_order_paths() {
        let id = OrderId::parse(b"0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4").unwrap();
        let mut p = Vec::new();
        assert_eq!(classify(Method::Post, ORDERS_PATH), Some(StockKey::Fixed(FixedPath::Create)));
        assert_eq!(classify(Method::Delete, ORDERS_PATH), Some(StockKey::Fixed(FixedPath::CancelAll)));
        assert_eq!(classify(Method::Post, BATCH_PATH), Some(StockKey::Fixed(FixedPath::BatchCreate)));
        assert_eq!(classify(Method::Delete, BATCH_PATH), Some(StockKey::Fixed(FixedPath::BatchCancel)));
        assert_eq!(classify(Method::Get, ORDERS_PATH), None);
        for op in [OrderOp::Cancel, OrderOp::Amend, OrderOp::Decrease] {
            op.write_path(id, &mut p);
            assert_eq!(classify(op.method(), &p), Some(StockKey::Order(id, op)));
            assert_eq!(classify(Method::Get, &p), None);
        }
        assert_eq!(
            classify(
                Method::Delete,
                b"/trade-api/v2/portfolio/events/orders/0B6E2A9A-0a11-41c0-4f77-2a9a1c021af4"
            ),
            None
        );
        assert_eq!(classify(Method::Delete, b"/trade-api/v2/portfolio/events/orders/x"), None);
        assert_eq!(classify(Method::Post, b"/trade-api/v2/portfolio/orders"), None);
        assert_eq!(classify(Method::Post, b"/trade-api/v2/portfolio/events/orders?x=1"), None);
    }

    #[test]
    fn frames_http_requests() {
        let mut req = RestRequest::new();
        req.method = Method::Post;
        req.path.extend_from_slice(ORDERS_PATH);
        req.body.extend_from_slice(b"{\"a\":1}");
        let h = SignedHeaders::new(5, b"U0lH").unwrap();
        let mut out = Vec::new();
        write_http_request(&mut out, &req, b"example:443", b"k", &h);
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: example:443\r\nKALSHI-ACCESS-KEY: k\r\n\
             KALSHI-ACCESS-TIMESTAMP: 5\r\nKALSHI-ACCESS-SIGNATURE: U0lH\r\nContent-Type: application/json\r\n\
             Content-Length: 7\r\n\r\n{\"a\":1}"
        );
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut parsed = httparse::Request::new(&mut headers);
        assert!(parsed.parse(&out).unwrap().is_complete());
        req.body.clear();
        req.method = Method::Delete;
        write_http_request(&mut out, &req, b"h", b"k", &h);
        assert!(out.ends_with(b"U0lH\r\n\r\n"));
    }

    #[test]
    fn stock_requests_frame_exactly_like_the_general_path() {
        let (k, mut p) = stocked_ed25519(4);
        let mut req = RestRequest::new();
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        for host in [&b"a.example:443"[..], b"b.example", b"a.example:443"] {
            for f in FixedPath::ALL {
                req.method = f.method();
                req.path.clear();
                req.path.extend_from_slice(f.path());
                req.body.clear();
                if f.method() == Method::Post {
                    req.body.extend_from_slice(b"{\"orders\":[]}");
                }
                let stamped = p.write_request_at(&mut fast, &req, host, T0);
                assert!(stamped.from_stock);
                let mut parsed = [httparse::EMPTY_HEADER; 8];
                let mut r = httparse::Request::new(&mut parsed);
                assert!(r.parse(&fast).unwrap().is_complete());
                let ts = r.headers.iter().find(|h| h.name == "KALSHI-ACCESS-TIMESTAMP").unwrap().value;
                let sig = r.headers.iter().find(|h| h.name == "KALSHI-ACCESS-SIGNATURE").unwrap().value;
                assert_eq!(ts, stamped.ts_ms.to_string().as_bytes());
                let h = SignedHeaders::new(stamped.ts_ms, sig).unwrap();
                write_http_request(&mut slow, &req, host, k.key_id.as_bytes(), &h);
                assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&slow));
            }
        }
    }

    /// A rehearsal writes byte for byte what the real write then sends, with the same
    /// signature, and takes nothing: the stock and the hit counters are as they were.
    #[test]
    fn rehearsals_write_what_the_real_write_sends_and_take_nothing() {
        use crate::connector::kalshi::interner::Interner;
        use crate::connector::kalshi::rest::encode::{encode_batch_cancel, encode_command, SelfTradePrevention};
        use crate::event::{ClientRef, CommandBody, Price, Qty, Side, TimeInForce};
        let (k, mut p) = stocked_ed25519(3);
        let host = b"api.example:443";
        let order = OrderSpec {
            ticker: b"KXHIGHNY-26JUN24-T82",
            client: ClientRef(42),
            side: Side::Ask,
            price: Price(4321),
            qty: Qty(700),
            tif: TimeInForce::GoodTillCanceled,
            post_only: true,
            stp: SelfTradePrevention::default(),
        };
        let mut wire = OrderWire::create(host, k.key_id.as_bytes());
        let (mut rehearsed, mut real) = (Vec::new(), Vec::new());
        // The fixed-path prefixes are built by the first real request to the host.
        let mut req = RestRequest::new();
        encode_batch_cancel(&mut req, &[OrderId(7)]);
        assert!(
            !p.rehearse_request(&mut rehearsed, &req, host),
            "no prefix yet: nothing to rehearse"
        );
        p.write_request_at(&mut real, &req, host, T0);
        for _ in 0..2 {
            let before = (p.stats(), FixedPath::ALL.map(|f| p.stock(f)));
            assert!(p.rehearse_create(&mut rehearsed, &mut wire, &order));
            assert!(p.rehearse_create(&mut rehearsed, &mut wire, &order), "the same front slot twice");
            assert_eq!(before, (p.stats(), FixedPath::ALL.map(|f| p.stock(f))));
            let stamped = p.write_create_at(&mut real, &mut wire, &order, T0);
            assert!(stamped.from_stock);
            assert_eq!(String::from_utf8_lossy(&rehearsed), String::from_utf8_lossy(&real));

            let before = (p.stats(), FixedPath::ALL.map(|f| p.stock(f)));
            assert!(p.rehearse_request(&mut rehearsed, &req, host));
            assert_eq!(before, (p.stats(), FixedPath::ALL.map(|f| p.stock(f))));
            assert!(p.write_request_at(&mut real, &req, host, T0).from_stock);
            assert_eq!(String::from_utf8_lossy(&rehearsed), String::from_utf8_lossy(&real));
        }
        // An order's request: with no signature for any order there is nothing to write.
        let mut interner = Interner::with_capacity(2);
        let market = interner.intern(order.ticker).unwrap();
        let id = OrderId::parse(b"0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4").unwrap();
        let amend = CommandBody::Amend {
            market,
            client: ClientRef(42),
            order: id,
            side: Side::Bid,
            price: Price(4300),
            total: Qty(500),
        };
        encode_command(&mut req, &interner, &amend, SelfTradePrevention::default()).unwrap();
        assert!(!p.rehearse_request(&mut rehearsed, &req, host));
        p.prepare(id, OrderOp::Amend);
        p.wake();
        wait_for("the order's signature", || p.order_ready(id, OrderOp::Amend));
        let before = p.stats();
        assert!(p.rehearse_request(&mut rehearsed, &req, host));
        assert!(
            p.order_ready(id, OrderOp::Amend),
            "the rehearsal left the order's signature in place"
        );
        assert_eq!(before, p.stats());
        assert!(p.write_request_at(&mut real, &req, host, T0).from_stock);
        assert_eq!(String::from_utf8_lossy(&rehearsed), String::from_utf8_lossy(&real));
    }

    /// An amend through its wire carries its own order's signature: from stock when the order
    /// has one (and the rehearsal before it took nothing), signed inline otherwise; both verify
    /// for the amend's path and no other.
    #[test]
    fn amend_wires_carry_their_orders_signature() {
        use crate::connector::kalshi::rest::encode::SelfTradePrevention;
        use crate::event::{ClientRef, Price, Qty, Side, TimeInForce};
        let k = key(KeyKind::Ed25519);
        let v = verifier(k);
        let (clock, _) = WallClock::manual(T0);
        let mut p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, quiet([1, 1, 1, 1]), clock).unwrap();
        let host = b"api.example:443";
        let mut wire = OrderWire::amend(host, k.key_id.as_bytes());
        let spec = OrderSpec {
            ticker: b"KXHIGHNY-26JUN24-T82",
            client: ClientRef(42),
            side: Side::Bid,
            price: Price(4300),
            qty: Qty(500),
            tif: TimeInForce::GoodTillCanceled,
            post_only: true,
            stp: SelfTradePrevention::default(),
        };
        let stocked = OrderId(0x0b6e_2a9a_0a11_41c0_4f77_2a9a_1c02_1af4);
        let unstocked = OrderId(42);
        let (mut rehearsed, mut real) = (Vec::new(), Vec::new());
        assert!(
            !p.rehearse_amend(&mut rehearsed, &mut wire, stocked, &spec),
            "no order has a signature yet"
        );
        p.prepare(stocked, OrderOp::Amend);
        p.wake();
        wait_for("the order's signature", || p.order_ready(stocked, OrderOp::Amend));
        let header = |req: &[u8], name: &str| -> String {
            let text = std::str::from_utf8(req).unwrap();
            let line = text.lines().find(|l| l.starts_with(name)).unwrap();
            line[name.len() + 2..].to_string()
        };
        let verifies = |req: &[u8], id: OrderId| {
            let mut path = Vec::new();
            OrderOp::Amend.write_path(id, &mut path);
            let request_line = format!("POST {} HTTP/1.1", std::str::from_utf8(&path).unwrap());
            let ts = header(req, "KALSHI-ACCESS-TIMESTAMP");
            let sig = header(req, "KALSHI-ACCESS-SIGNATURE");
            std::str::from_utf8(req).unwrap().starts_with(&request_line)
                && v.verify(
                    Some(&k.key_id),
                    Some(&ts),
                    Some(&sig),
                    "POST",
                    std::str::from_utf8(&path).unwrap(),
                    T0 as i64,
                ) == Ok(7)
        };

        let before = p.stats();
        assert!(p.rehearse_amend(&mut rehearsed, &mut wire, stocked, &spec));
        assert_eq!(before, p.stats(), "a rehearsal takes nothing");
        assert!(p.order_ready(stocked, OrderOp::Amend));
        let stamped = p.write_amend_at(&mut real, &mut wire, stocked, &spec, T0);
        assert!(stamped.from_stock);
        assert_eq!(p.stats().hits, before.hits + 1);
        assert_eq!(String::from_utf8_lossy(&rehearsed), String::from_utf8_lossy(&real));
        assert!(verifies(&real, stocked));
        assert!(!verifies(&real, unstocked), "bound to its own order");

        let misses = p.stats().misses;
        let stamped = p.write_amend_at(&mut real, &mut wire, unstocked, &spec, T0);
        assert!(!stamped.from_stock);
        assert_eq!(p.stats().misses, misses + 1);
        assert!(verifies(&real, unstocked));
    }

    use kalshi_proto::auth::{generate_account_key, AccountKey, KeyKind, Verifier};
    use std::sync::OnceLock;
    use std::time::Instant;

    const T0: u64 = 1_782_316_195_000;

    /// Key generation is slow (RSA especially): once per kind for the whole test binary.
    fn key(kind: KeyKind) -> &'static AccountKey {
        static KEYS: OnceLock<[AccountKey; 3]> = OnceLock::new();
        let keys = KEYS.get_or_init(|| {
            [
                generate_account_key(KeyKind::RsaPkcs1, 2048).unwrap(),
                generate_account_key(KeyKind::RsaPkcs8, 1024).unwrap(),
                generate_account_key(KeyKind::Ed25519, 0).unwrap(),
            ]
        });
        match kind {
            KeyKind::RsaPkcs1 => &keys[0],
            KeyKind::RsaPkcs8 => &keys[1],
            KeyKind::Ed25519 => &keys[2],
        }
    }

    fn verifier(k: &AccountKey) -> Verifier {
        let mut v = Verifier::new();
        v.add_key(k.key_id.clone(), 7, k.public.clone());
        v
    }

    fn check(v: &Verifier, k: &AccountKey, h: &SignedHeaders, method: Method, path: &[u8], now_ms: u64) -> bool {
        let m = std::str::from_utf8(method.as_bytes()).unwrap();
        let ts = std::str::from_utf8(h.timestamp()).unwrap();
        let sig = std::str::from_utf8(h.signature()).unwrap();
        v.verify(
            Some(&k.key_id),
            Some(ts),
            Some(sig),
            m,
            std::str::from_utf8(path).unwrap(),
            now_ms as i64,
        ) == Ok(7)
    }

    /// Test config: no timed refills, so what the test sees is what it asked for.
    fn quiet(stock: [usize; 4]) -> PresignConfig {
        PresignConfig {
            stock,
            poll_ms: 3_600_000,
            ..PresignConfig::default()
        }
    }

    /// An Ed25519 presigner at `T0` whose every fixed path holds `depth` signatures.
    fn stocked_ed25519(depth: usize) -> (&'static AccountKey, Presigner) {
        let k = key(KeyKind::Ed25519);
        let (clock, _) = WallClock::manual(T0);
        let p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, quiet([depth; 4]), clock).unwrap();
        wait_for("stock", || FixedPath::ALL.iter().all(|f| p.stock(*f) == depth));
        (k, p)
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn stock_signatures_verify_for_their_path_with_every_key_kind() {
        for kind in [KeyKind::RsaPkcs1, KeyKind::RsaPkcs8, KeyKind::Ed25519] {
            let k = key(kind);
            let v = verifier(k);
            let (clock, _) = WallClock::manual(T0);
            let mut p =
                Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, quiet([2, 2, 2, 2]), clock).unwrap();
            wait_for("stock", || FixedPath::ALL.iter().all(|f| p.stock(*f) == 2));
            for f in FixedPath::ALL {
                let h = p.take_at(f.method(), f.path(), T0);
                assert!(check(&v, k, &h, f.method(), f.path(), T0), "{kind} {f:?}");
                // Bound to its path and method: useless for any other request.
                let other = if f.path() == ORDERS_PATH { BATCH_PATH } else { ORDERS_PATH };
                assert!(!check(&v, k, &h, f.method(), other, T0), "{kind} {f:?}");
                assert!(!check(&v, k, &h, Method::Get, f.path(), T0), "{kind} {f:?}");
            }
            let s = p.stats();
            assert_eq!((s.hits, s.misses, s.unstocked), (4, 0, 0), "{kind}");
            assert!(s.signed_ahead >= 8);
            assert!(!format!("{p:?}").contains(std::str::from_utf8(p.take_at(Method::Post, ORDERS_PATH, T0).signature()).unwrap()));
        }
    }

    #[test]
    fn no_signature_is_handed_out_twice() {
        let k = key(KeyKind::Ed25519);
        let (clock, _) = WallClock::manual(T0);
        let mut p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, quiet([8, 1, 1, 1]), clock).unwrap();
        wait_for("stock", || p.stock(FixedPath::Create) == 8);
        // Stock, then inline misses, all in the same (frozen) millisecond.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..12 {
            let h = p.take_at(Method::Post, ORDERS_PATH, T0);
            assert!(seen.insert(h.signature().to_vec()), "a signature came back twice");
        }
        assert_eq!(p.stats().hits + p.stats().misses, 12);
        assert!(p.stats().hits >= 8);
    }

    #[test]
    fn stale_stock_is_never_handed_out() {
        let k = key(KeyKind::Ed25519);
        let v = verifier(k);
        let (clock, now) = WallClock::manual(T0);
        let cfg = quiet([4, 1, 1, 1]);
        let max_age = cfg.max_age_ms;
        let mut p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, cfg, clock).unwrap();
        wait_for("stock", || p.stock(FixedPath::Create) == 4);
        let later = T0 + max_age + 1;
        now.store(later, Ordering::Relaxed);
        let h = p.take_at(Method::Post, ORDERS_PATH, later);
        assert!(h.timestamp_ms().abs_diff(later) <= max_age, "stale signature handed out");
        assert!(check(&v, k, &h, Method::Post, ORDERS_PATH, later));
        let s = p.stats();
        assert!(s.stale_dropped >= 1, "{s:?}");
        assert_eq!(s.hits + s.misses, 1);
    }

    #[test]
    fn maintain_retires_aging_stock() {
        let k = key(KeyKind::Ed25519);
        let (clock, now) = WallClock::manual(T0);
        let cfg = quiet([3, 1, 1, 1]);
        let refresh = cfg.refresh_age_ms;
        let mut p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, cfg, clock).unwrap();
        wait_for("stock", || p.stock(FixedPath::Create) == 3);
        p.maintain_at(T0 + refresh / 2);
        assert_eq!(p.stats().retired, 0);
        let later = T0 + refresh + 100;
        now.store(later, Ordering::Relaxed);
        p.maintain_at(later);
        assert!(p.stats().retired >= 6, "{:?}", p.stats());
        // Woken, the worker restocks at the new time.
        p.wake();
        wait_for("restock", || p.stock(FixedPath::Create) == 3);
        let h = p.take_at(Method::Post, ORDERS_PATH, later);
        assert!(h.timestamp_ms() >= later);
        assert_eq!(p.stats().misses, 0);
    }

    #[test]
    fn misses_are_counted_and_still_verify() {
        let k = key(KeyKind::RsaPkcs8);
        let v = verifier(k);
        let (clock, _) = WallClock::manual(T0);
        // No stock at all for creates.
        let mut p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, quiet([0, 1, 1, 1]), clock).unwrap();
        for i in 0..3 {
            let h = p.take_at(Method::Post, ORDERS_PATH, T0 + i);
            assert!(check(&v, k, &h, Method::Post, ORDERS_PATH, T0));
        }
        let markets = b"/trade-api/v2/markets";
        let h = p.take_at(Method::Get, markets, T0);
        assert!(check(&v, k, &h, Method::Get, markets, T0));
        let ws = p.sign_now(Method::Get, b"/trade-api/ws/v2");
        assert!(check(&v, k, &ws, Method::Get, b"/trade-api/ws/v2", T0));
        let s = p.stats();
        assert_eq!((s.hits, s.misses, s.unstocked), (0, 3, 1));
    }

    #[test]
    fn per_order_signatures_on_request() {
        let k = key(KeyKind::Ed25519);
        let v = verifier(k);
        let (clock, _) = WallClock::manual(T0);
        let mut p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, quiet([1, 1, 1, 1]), clock).unwrap();
        let order = OrderId(0x0b6e_2a9a_0a11_41c0_4f77_2a9a_1c02_1af4);
        let other = OrderId(42);
        let mut path = Vec::new();
        for op in [OrderOp::Cancel, OrderOp::Amend, OrderOp::Decrease] {
            assert!(p.prepare(order, op));
        }
        p.wake();
        for op in [OrderOp::Cancel, OrderOp::Amend, OrderOp::Decrease] {
            wait_for("order stock", || p.has_order_stock(order, op));
            op.write_path(order, &mut path);
            let hits = p.stats().hits;
            let h = p.take_at(op.method(), &path, T0);
            assert_eq!(p.stats().hits, hits + 1, "{op:?}");
            assert!(check(&v, k, &h, op.method(), &path, T0), "{op:?}");
            // Not valid for another order.
            op.write_path(other, &mut path);
            assert!(!check(&v, k, &h, op.method(), &path, T0));
        }
        // An order may be decreased again: a replacement is made without asking.
        p.wake();
        wait_for("replacement", || p.has_order_stock(order, OrderOp::Decrease));
        assert!(!p.has_order_stock(order, OrderOp::Cancel));
        // Never prepared: signed inline.
        OrderOp::Amend.write_path(other, &mut path);
        let misses = p.stats().misses;
        let h = p.take_at(Method::Post, &path, T0);
        assert!(check(&v, k, &h, Method::Post, &path, T0));
        assert_eq!(p.stats().misses, misses + 1);
        p.release(order);
        assert!(!p.has_order_stock(order, OrderOp::Decrease));
    }
}
