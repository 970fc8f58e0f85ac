//! What the io side and the worker share: the messages on the rings between them, the counters
//! and per-path-class timestamps both update, and the one signing call both make.

use super::paths::{classify, OrderOp, StockKey};
use crate::connector::kalshi::rest::head::SignedHeaders;
use crate::connector::kalshi::rest::request::Method;
use crate::event::OrderId;
use kalshi_proto::auth::Signer;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Clone, Copy, Debug)]
pub(super) enum Request {
    Prepare(OrderId, OrderOp),
    Release(OrderId),
}

#[derive(Clone, Copy)]
pub(super) struct OrderSigned {
    pub(super) order: OrderId,
    pub(super) op: OrderOp,
    pub(super) headers: SignedHeaders,
}

pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    pub(super) signed: AtomicU64,
    pub(super) sign_ns: AtomicU64,
    /// Ed25519 signs deterministically: the same timestamp, method and path give the same
    /// bytes, and two requests must never carry one signature. So with such a key each path
    /// class (the four fixed paths, then everything else) never signs one millisecond twice:
    /// the last timestamp used per class, by either side. RSA-PSS salts are random; no need.
    pub(super) deterministic: bool,
    pub(super) last_ts: [AtomicU64; 5],
}

impl Shared {
    /// The timestamp to sign `method` + `path` with at `now_ms`. Ahead of the clock only when
    /// one path is signed more than a thousand times a second, which no rate limit allows.
    pub(super) fn ts_for(&self, method: Method, path: &[u8], now_ms: u64) -> u64 {
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

/// One signature for `method` + `path` stamped `ts_ms`, made on the calling thread. Callers
/// outside a [`Presigner`](super::Presigner) must not sign the same path twice in one
/// millisecond with an Ed25519 key (see `Shared::last_ts`).
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
