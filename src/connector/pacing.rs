//! Client-side token buckets, so kmm stays inside Kalshi's rate limits instead of learning
//! them from 429s.
//!
//! Kalshi (since 2026-04-23) gives each account a read and a write bucket, refilled at the
//! tier's rate; each request costs tokens by endpoint (V2 create and amend 10, cancel and
//! decrease 2, reads 10, single-order reads 2), and a batch costs per item and must fit whole.
//! The local exchange models the same tiers (`kalshi_proto::ratelimit`). It charges a
//! batch as one request; kmm charges per item, as Kalshi documents, so it is never the one
//! that is wrong on the real venue.
//!
//! Arithmetic is integer milli-tokens: a rate of R tokens/s is exactly R milli-tokens per ms.
//! A 429 means the exchange's view of the bucket is emptier than ours (another process on the
//! key, clock drift, a restart mid-window): the bucket is emptied, the kind's bucket paused for
//! the Retry-After (or [`PacerConfig::default_pause_ms`]), and its rate and capacity shrunk,
//! growing back after a quiet spell (multiplicative decrease, additive increase).
//!
//! Everything here is allocation-free and does no I/O: the io thread calls it before every
//! request.

use super::kalshi::rest::request::{Method, BATCH_PATH, ORDERS_PATH};
use crate::event::CommandBody;
pub use kalshi_proto::ratelimit::Tier;

/// What a request is, for its bucket and cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `POST .../events/orders`
    Create,
    /// `POST .../events/orders/batched` (cost per order)
    BatchCreate,
    /// `DELETE .../events/orders/{id}`
    Cancel,
    /// `DELETE .../events/orders/batched` (cost per order)
    BatchCancel,
    /// `DELETE .../events/orders`
    CancelAll,
    /// `POST .../events/orders/{id}/amend`
    Amend,
    /// `POST .../events/orders/{id}/decrease`
    Decrease,
    /// `GET` of one order.
    ReadOrder,
    /// Any other `GET` (markets, lists, positions, fills...).
    Read,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketKind {
    Read,
    Write,
}

pub const DEFAULT_COST: u32 = 10;
pub const CHEAP_COST: u32 = 2;

/// Share of the write bucket that creates and amends may not use: kept for cancels and
/// decreases, which take risk off and must not wait behind a quoting burst.
pub const CANCEL_RESERVE_PCT: u32 = 20;

impl RequestKind {
    /// Cancels and decreases only ever take risk off.
    pub fn reduces_risk(self) -> bool {
        matches!(
            self,
            RequestKind::Cancel | RequestKind::BatchCancel | RequestKind::CancelAll | RequestKind::Decrease
        )
    }

    /// The share of its bucket this kind must leave behind: [`CANCEL_RESERVE_PCT`] for writes
    /// that add risk, nothing for cancels, decreases and reads.
    pub fn reserve_pct(self) -> u32 {
        if self.bucket() == BucketKind::Write && !self.reduces_risk() {
            CANCEL_RESERVE_PCT
        } else {
            0
        }
    }

    pub fn bucket(self) -> BucketKind {
        match self {
            RequestKind::ReadOrder | RequestKind::Read => BucketKind::Read,
            _ => BucketKind::Write,
        }
    }

    /// Tokens for one request carrying `n_orders` orders (batches; ignored otherwise).
    pub fn cost(self, n_orders: usize) -> u32 {
        let n = u32::try_from(n_orders.max(1)).unwrap_or(u32::MAX);
        match self {
            RequestKind::Create | RequestKind::Amend | RequestKind::Read => DEFAULT_COST,
            RequestKind::BatchCreate => DEFAULT_COST.saturating_mul(n),
            RequestKind::Cancel | RequestKind::CancelAll | RequestKind::Decrease | RequestKind::ReadOrder => CHEAP_COST,
            RequestKind::BatchCancel => CHEAP_COST.saturating_mul(n),
        }
    }

    /// The kind of a request by method and full path (from `/trade-api`).
    pub fn of(method: Method, path: &[u8]) -> RequestKind {
        let path = match path.iter().position(|&b| b == b'?') {
            Some(q) => &path[..q],
            None => path,
        };
        let under = path.strip_prefix(ORDERS_PATH);
        match (method, under) {
            (Method::Get, Some(rest)) if rest.len() > 1 && !rest.ends_with(b"queue_positions") => RequestKind::ReadOrder,
            (Method::Get, _) => RequestKind::Read,
            (Method::Post, Some(b"")) => RequestKind::Create,
            (Method::Delete, Some(b"")) => RequestKind::CancelAll,
            (Method::Post, _) if path == BATCH_PATH => RequestKind::BatchCreate,
            (Method::Delete, _) if path == BATCH_PATH => RequestKind::BatchCancel,
            (Method::Post, Some(rest)) if rest.ends_with(b"/decrease") => RequestKind::Decrease,
            (Method::Post, Some(rest)) if rest.ends_with(b"/amend") => RequestKind::Amend,
            (Method::Delete, Some(_)) => RequestKind::Cancel,
            // Anything else that writes is priced at the default, on the write bucket.
            _ => RequestKind::Create,
        }
    }

    /// The kind of the REST request a strategy command becomes (`None`: not REST).
    pub fn of_command(cmd: &CommandBody) -> Option<RequestKind> {
        Some(match cmd {
            CommandBody::Place { .. } => RequestKind::Create,
            CommandBody::Cancel { .. } => RequestKind::Cancel,
            CommandBody::Amend { .. } => RequestKind::Amend,
            CommandBody::Decrease { .. } => RequestKind::Decrease,
            CommandBody::CancelAll => RequestKind::CancelAll,
            CommandBody::Resync { .. } => return None,
        })
    }
}

/// One bucket's budget: tokens per second and capacity in tokens (`None`: unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub rate_per_s: u32,
    pub capacity: u32,
}

impl Budget {
    /// The tier's (read, write) budgets; `None` for the local exchange's unlimited tier.
    pub fn of_tier(tier: Tier) -> (Option<Budget>, Option<Budget>) {
        let (r, w) = tier.rates();
        let (rc, wc) = tier.capacities();
        let b = |rate: f64, cap: f64| {
            (rate.is_finite() && cap.is_finite()).then_some(Budget {
                rate_per_s: rate as u32,
                capacity: cap as u32,
            })
        };
        (b(r, rc), b(w, wc))
    }
}

#[derive(Clone, Copy, Debug)]
pub struct PacerConfig {
    /// The share of the advertised rate and capacity kmm allows itself, in percent: our
    /// clock and the exchange's start their windows at different moments.
    pub use_pct: u32,
    /// Pause after a 429 that names no Retry-After.
    pub default_pause_ms: u64,
    /// Each 429 scales the bucket by this percentage...
    pub shrink_pct: u32,
    /// ...down to at most this floor, in percent of the configured budget...
    pub floor_pct: u32,
    /// ...and every this many quiet milliseconds it grows back by `grow_pct` points.
    pub recover_every_ms: u64,
    pub grow_pct: u32,
}

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            use_pct: 90,
            default_pause_ms: 1000,
            shrink_pct: 50,
            floor_pct: 10,
            recover_every_ms: 1000,
            grow_pct: 10,
        }
    }
}

/// A token bucket in milli-tokens.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    unlimited: bool,
    /// The configured budget (after `use_pct`), in milli-tokens per ms and milli-tokens.
    base_rate: i64,
    base_cap: i64,
    /// Current scale in percent of the base (shrunk by 429s).
    scale_pct: u32,
    level: i64,
    last_ms: u64,
    paused_until_ms: u64,
    last_429_ms: u64,
    last_grow_ms: u64,
}

impl Bucket {
    fn new(budget: Option<Budget>, use_pct: u32, now_ms: u64) -> Bucket {
        let (rate, cap) = match budget {
            Some(b) => (
                i64::from(b.rate_per_s) * i64::from(use_pct) / 100,
                i64::from(b.capacity) * 1000 * i64::from(use_pct) / 100,
            ),
            None => (0, 0),
        };
        Bucket {
            unlimited: budget.is_none(),
            base_rate: rate,
            base_cap: cap,
            scale_pct: 100,
            level: cap,
            last_ms: now_ms,
            paused_until_ms: 0,
            last_429_ms: 0,
            last_grow_ms: now_ms,
        }
    }

    fn rate(&self) -> i64 {
        self.base_rate * i64::from(self.scale_pct) / 100
    }

    fn cap(&self) -> i64 {
        self.base_cap * i64::from(self.scale_pct) / 100
    }

    fn refill(&mut self, now_ms: u64, cfg: &PacerConfig) {
        // Quiet is counted from the end of the last pause, not from the 429 itself.
        let quiet_since = self.last_429_ms.max(self.paused_until_ms).max(self.last_grow_ms);
        if self.scale_pct < 100 && now_ms.saturating_sub(quiet_since) >= cfg.recover_every_ms {
            self.scale_pct = (self.scale_pct + cfg.grow_pct).min(100);
            self.last_grow_ms = now_ms;
        }
        let dt = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        let added = i64::try_from(dt).unwrap_or(i64::MAX).saturating_mul(self.rate());
        self.level = self.level.saturating_add(added).min(self.cap());
    }

    /// `reserve_pct` of the bucket must be left after the take (0 for requests that reduce
    /// risk, so cancels still go out when quoting has used the bucket up).
    fn try_take(&mut self, tokens: u32, reserve_pct: u32, now_ms: u64, cfg: &PacerConfig) -> bool {
        if self.unlimited {
            return true;
        }
        if now_ms < self.paused_until_ms {
            return false;
        }
        self.refill(now_ms, cfg);
        let need = i64::from(tokens) * 1000 + self.cap() * i64::from(reserve_pct) / 100;
        if self.level >= need {
            let need = i64::from(tokens) * 1000;
            self.level -= need;
            true
        } else {
            false
        }
    }

    /// Takes `unit` tokens for as many orders as fit now, up to `n_orders`; returns how many.
    fn take_up_to(&mut self, unit: u32, n_orders: usize, reserve_pct: u32, now_ms: u64, cfg: &PacerConfig) -> usize {
        if self.unlimited {
            return n_orders;
        }
        if now_ms < self.paused_until_ms || unit == 0 {
            return 0;
        }
        self.refill(now_ms, cfg);
        let spare = self.level - self.cap() * i64::from(reserve_pct) / 100;
        let per_order = i64::from(unit) * 1000;
        let fit = usize::try_from(spare.max(0) / per_order).unwrap_or(usize::MAX).min(n_orders);
        self.level -= per_order * fit as i64;
        fit
    }

    /// Milliseconds until `tokens` would fit (0: now; `u64::MAX`: never, it exceeds capacity).
    fn ready_in(&mut self, tokens: u32, reserve_pct: u32, now_ms: u64, cfg: &PacerConfig) -> u64 {
        if self.unlimited {
            return 0;
        }
        let pause = self.paused_until_ms.saturating_sub(now_ms);
        self.refill(now_ms, cfg);
        let need = i64::from(tokens) * 1000 + self.cap() * i64::from(reserve_pct) / 100;
        if need > self.cap() || self.rate() == 0 {
            return u64::MAX;
        }
        let short = (need - self.level).max(0);
        let refill_ms = (short + self.rate() - 1) / self.rate();
        pause.max(refill_ms as u64)
    }

    fn on_429(&mut self, pause_ms: u64, now_ms: u64, cfg: &PacerConfig) {
        if self.unlimited {
            return;
        }
        self.scale_pct = (self.scale_pct * cfg.shrink_pct / 100).max(cfg.floor_pct).min(100);
        self.level = 0;
        self.last_ms = now_ms.max(self.last_ms);
        self.paused_until_ms = self.paused_until_ms.max(now_ms.saturating_add(pause_ms));
        self.last_429_ms = now_ms;
    }
}

/// Counters for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacerStats {
    pub granted: u64,
    /// Requests refused locally (the io thread answers them `OrderReject{RateLimited, 0}`).
    pub refused: u64,
    pub rate_limited: u64,
}

/// The account's two buckets.
#[derive(Clone, Debug)]
pub struct Pacer {
    cfg: PacerConfig,
    read: Bucket,
    write: Bucket,
    stats: PacerStats,
}

impl Pacer {
    /// Buckets for a tier, full at `now_ms` (any monotonic millisecond clock).
    pub fn for_tier(tier: Tier, cfg: PacerConfig, now_ms: u64) -> Pacer {
        let (r, w) = Budget::of_tier(tier);
        Pacer::new(r, w, cfg, now_ms)
    }

    /// Buckets for explicit budgets (e.g. from `GET /account/limits`); `None` is unlimited.
    pub fn new(read: Option<Budget>, write: Option<Budget>, cfg: PacerConfig, now_ms: u64) -> Pacer {
        Pacer {
            read: Bucket::new(read, cfg.use_pct, now_ms),
            write: Bucket::new(write, cfg.use_pct, now_ms),
            cfg,
            stats: PacerStats::default(),
        }
    }

    fn bucket(&mut self, b: BucketKind) -> &mut Bucket {
        match b {
            BucketKind::Read => &mut self.read,
            BucketKind::Write => &mut self.write,
        }
    }

    /// Takes the tokens for one request of `kind` carrying `n_orders` orders, or refuses it
    /// (paused after a 429, or not enough tokens). A batch must fit whole.
    #[inline]
    pub fn try_acquire(&mut self, kind: RequestKind, n_orders: usize, now_ms: u64) -> bool {
        let cfg = self.cfg;
        let ok = self
            .bucket(kind.bucket())
            .try_take(kind.cost(n_orders), kind.reserve_pct(), now_ms, &cfg);
        if ok {
            self.stats.granted += 1;
        } else {
            self.stats.refused += 1;
        }
        ok
    }

    /// Takes the tokens for the longest head of a batch of `kind` that fits now, and returns
    /// its length (0: none fits; for a kind that is not a batch, 0 or 1). The caller sends that
    /// many orders and refuses the rest: a batch that can never fit whole (more orders than the
    /// bucket holds beside its reserve) still sends what it can instead of being refused for
    /// ever.
    pub fn acquire_up_to(&mut self, kind: RequestKind, n_orders: usize, now_ms: u64) -> usize {
        let cfg = self.cfg;
        let batch = matches!(kind, RequestKind::BatchCreate | RequestKind::BatchCancel);
        let n = if batch { n_orders } else { n_orders.min(1) };
        let granted = self
            .bucket(kind.bucket())
            .take_up_to(kind.cost(1), n, kind.reserve_pct(), now_ms, &cfg);
        if granted > 0 {
            self.stats.granted += 1;
        } else {
            self.stats.refused += 1;
        }
        granted
    }

    /// How long until such a request would be granted; `u64::MAX` if it never fits (a batch
    /// bigger than the bucket: split it).
    pub fn ready_in_ms(&mut self, kind: RequestKind, n_orders: usize, now_ms: u64) -> u64 {
        let cfg = self.cfg;
        self.bucket(kind.bucket())
            .ready_in(kind.cost(n_orders), kind.reserve_pct(), now_ms, &cfg)
    }

    /// The exchange answered 429 to a request of `kind`: pause its bucket for `retry_after_ms`
    /// (Kalshi sends no Retry-After today; `None` uses the configured default) and shrink it.
    pub fn on_rate_limited(&mut self, kind: RequestKind, retry_after_ms: Option<u64>, now_ms: u64) {
        self.stats.rate_limited += 1;
        let cfg = self.cfg;
        let pause = retry_after_ms.unwrap_or(cfg.default_pause_ms);
        self.bucket(kind.bucket()).on_429(pause, now_ms, &cfg);
    }

    /// Whether a bucket is paused by a 429 at `now_ms`.
    pub fn paused(&self, bucket: BucketKind, now_ms: u64) -> bool {
        let b = match bucket {
            BucketKind::Read => &self.read,
            BucketKind::Write => &self.write,
        };
        now_ms < b.paused_until_ms
    }

    /// Current scale of a bucket in percent of its configured budget.
    pub fn scale_pct(&self, bucket: BucketKind) -> u32 {
        match bucket {
            BucketKind::Read => self.read.scale_pct,
            BucketKind::Write => self.write.scale_pct,
        }
    }

    /// Whole tokens in a bucket after refilling to `now_ms` (`u32::MAX` when unlimited).
    pub fn tokens(&mut self, bucket: BucketKind, now_ms: u64) -> u32 {
        let cfg = self.cfg;
        let b = self.bucket(bucket);
        if b.unlimited {
            return u32::MAX;
        }
        b.refill(now_ms, &cfg);
        u32::try_from(b.level / 1000).unwrap_or(u32::MAX)
    }

    pub fn stats(&self) -> PacerStats {
        self.stats
    }
}

/// Parses an HTTP `Retry-After` value given in seconds (the HTTP-date form is not worth a
/// date parser on this path: it falls back to the default pause).
pub fn retry_after_ms(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |a, &d| a * 10 + u64::from(d - b'0')) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(now: u64) -> Pacer {
        Pacer::new(
            Some(Budget {
                rate_per_s: 200,
                capacity: 400,
            }),
            Some(Budget {
                rate_per_s: 100,
                capacity: 100,
            }),
            PacerConfig {
                use_pct: 100,
                ..PacerConfig::default()
            },
            now,
        )
    }

    #[test]
    fn tier_budgets_match_the_exchange() {
        let (r, w) = Budget::of_tier(Tier::Basic);
        assert_eq!(
            r,
            Some(Budget {
                rate_per_s: 200,
                capacity: 400
            })
        );
        assert_eq!(
            w,
            Some(Budget {
                rate_per_s: 100,
                capacity: 100
            })
        );
        assert_eq!(Budget::of_tier(Tier::Unlimited), (None, None));
        let mut p = Pacer::for_tier(Tier::Unlimited, PacerConfig::default(), 0);
        for _ in 0..10_000 {
            assert!(p.try_acquire(RequestKind::BatchCreate, 20, 0));
        }
    }

    #[test]
    fn costs_follow_kalshi() {
        assert_eq!(RequestKind::Create.cost(1), 10);
        assert_eq!(RequestKind::BatchCreate.cost(20), 200);
        assert_eq!(RequestKind::BatchCancel.cost(5), 10);
        assert_eq!(RequestKind::Cancel.cost(1), 2);
        assert_eq!(RequestKind::Decrease.cost(1), 2);
        assert_eq!(RequestKind::Amend.cost(1), 10);
        assert_eq!(RequestKind::Read.bucket(), BucketKind::Read);
        assert_eq!(RequestKind::Decrease.bucket(), BucketKind::Write);
        let id = "/0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4";
        let p = |tail: &str| [ORDERS_PATH, tail.as_bytes()].concat();
        assert_eq!(RequestKind::of(Method::Post, ORDERS_PATH), RequestKind::Create);
        assert_eq!(RequestKind::of(Method::Delete, ORDERS_PATH), RequestKind::CancelAll);
        assert_eq!(RequestKind::of(Method::Post, BATCH_PATH), RequestKind::BatchCreate);
        assert_eq!(RequestKind::of(Method::Delete, BATCH_PATH), RequestKind::BatchCancel);
        assert_eq!(RequestKind::of(Method::Delete, &p(id)), RequestKind::Cancel);
        assert_eq!(RequestKind::of(Method::Post, &p(&format!("{id}/amend"))), RequestKind::Amend);
        assert_eq!(RequestKind::of(Method::Post, &p(&format!("{id}/decrease"))), RequestKind::Decrease);
        assert_eq!(RequestKind::of(Method::Get, &p(id)), RequestKind::ReadOrder);
        assert_eq!(RequestKind::of(Method::Get, &p("?status=resting")), RequestKind::Read);
        assert_eq!(RequestKind::of(Method::Get, b"/trade-api/v2/markets?limit=5"), RequestKind::Read);
        assert_eq!(RequestKind::of_command(&CommandBody::CancelAll), Some(RequestKind::CancelAll));
        assert_eq!(RequestKind::of_command(&CommandBody::Resync { market: 0 }), None);
    }

    #[test]
    fn a_batch_too_big_to_ever_fit_sends_its_head() {
        // Basic tier at the default 90% use: 90 write tokens, 18 kept for cancels. Eight
        // creates (80 tokens) never fit whole; all-or-nothing refused them on every retry.
        let mut p = Pacer::for_tier(Tier::Basic, PacerConfig::default(), 1000);
        assert_eq!(p.ready_in_ms(RequestKind::BatchCreate, 8, 1000), u64::MAX);
        assert!(!p.clone().try_acquire(RequestKind::BatchCreate, 8, 1000));
        assert_eq!(p.acquire_up_to(RequestKind::BatchCreate, 8, 1000), 7);
        // What is left (20 tokens) is the cancel reserve: no create, but cancels go out.
        assert_eq!(p.acquire_up_to(RequestKind::BatchCreate, 8, 1000), 0);
        assert_eq!(p.acquire_up_to(RequestKind::BatchCancel, 20, 1000), 10);
        assert_eq!(p.acquire_up_to(RequestKind::BatchCancel, 1, 1000), 0);
        // Refilled at 90 tokens/s: 100 ms later, 9 tokens, all inside the reserve; 500 ms
        // after the start, 45 tokens: two creates beside the 18 kept.
        assert_eq!(p.acquire_up_to(RequestKind::BatchCreate, 8, 1100), 0);
        assert_eq!(p.acquire_up_to(RequestKind::BatchCreate, 8, 1500), 2);
        let s = p.stats();
        assert_eq!((s.granted, s.refused), (3, 3));
    }

    #[test]
    fn acquire_up_to_grants_single_requests_whole_and_honours_pauses() {
        let mut p = basic(1000);
        assert_eq!(p.acquire_up_to(RequestKind::Amend, 5, 1000), 1, "not a batch: one request");
        p.on_rate_limited(RequestKind::Amend, Some(500), 1000);
        assert_eq!(p.acquire_up_to(RequestKind::BatchCancel, 3, 1200), 0, "paused");
        let mut u = Pacer::for_tier(Tier::Unlimited, PacerConfig::default(), 0);
        assert_eq!(u.acquire_up_to(RequestKind::BatchCreate, 20, 0), 20);
    }

    #[test]
    fn write_bucket_drains_and_refills() {
        let mut p = basic(1000);
        // Creates may not touch the last 20% (20 tokens): eight of them, not ten.
        for _ in 0..8 {
            assert!(p.try_acquire(RequestKind::Create, 1, 1000));
        }
        assert!(!p.try_acquire(RequestKind::Create, 1, 1000));
        // The reserve is for cancels: ten of them at 2 tokens.
        for _ in 0..10 {
            assert!(p.try_acquire(RequestKind::Cancel, 1, 1000));
        }
        assert!(!p.try_acquire(RequestKind::Cancel, 1, 1000));
        // Reads are a separate bucket, with no reserve.
        assert!(p.try_acquire(RequestKind::Read, 1, 1000));
        // 100 tokens/s: a cancel (2) fits after 20 ms.
        assert!(!p.try_acquire(RequestKind::Cancel, 1, 1019));
        assert!(p.try_acquire(RequestKind::Cancel, 1, 1020));
        // A create needs its 10 tokens above the 20-token reserve: 300 ms from empty.
        assert_eq!(p.ready_in_ms(RequestKind::Create, 1, 1020), 300);
        assert_eq!(p.ready_in_ms(RequestKind::Decrease, 1, 1020), 20);
        assert!(!p.try_acquire(RequestKind::Create, 1, 1319));
        assert!(p.try_acquire(RequestKind::Create, 1, 1320));
        // Refill stops at capacity.
        assert_eq!(p.tokens(BucketKind::Write, 100_000), 100);
        let s = p.stats();
        assert_eq!((s.granted, s.refused), (21, 4));
    }

    #[test]
    fn a_batch_must_fit_whole() {
        let mut p = basic(0);
        // 9 creates are 90 tokens: with the 20-token reserve they never fit a 100-token bucket.
        assert_eq!(p.ready_in_ms(RequestKind::BatchCreate, 9, 0), u64::MAX);
        assert!(!p.try_acquire(RequestKind::BatchCreate, 9, 0));
        assert_eq!(p.tokens(BucketKind::Write, 0), 100);
        assert!(p.try_acquire(RequestKind::BatchCreate, 8, 0));
        assert!(!p.try_acquire(RequestKind::BatchCancel, 11, 0));
        assert!(p.try_acquire(RequestKind::BatchCancel, 10, 0));
        assert!(!p.try_acquire(RequestKind::BatchCancel, 1, 0));
        assert!(p.try_acquire(RequestKind::BatchCancel, 5, 100));
    }

    #[test]
    fn a_429_pauses_shrinks_and_recovers() {
        let mut p = basic(0);
        p.on_rate_limited(RequestKind::Create, Some(2000), 0);
        assert!(p.paused(BucketKind::Write, 0));
        assert!(!p.paused(BucketKind::Read, 0));
        assert_eq!(p.scale_pct(BucketKind::Write), 50);
        assert!(!p.try_acquire(RequestKind::Cancel, 1, 1999));
        assert_eq!(p.ready_in_ms(RequestKind::Cancel, 1, 1000), 1000);
        // Tokens come back at half rate during the pause; the scale recovers 10 points per
        // quiet second after it.
        assert!(p.try_acquire(RequestKind::Cancel, 1, 2000));
        assert_eq!(p.scale_pct(BucketKind::Write), 50);
        assert_eq!(p.tokens(BucketKind::Write, 2000), 48);
        assert_eq!(p.tokens(BucketKind::Write, 3000), 60);
        assert_eq!(p.scale_pct(BucketKind::Write), 60);
        // Without a Retry-After, the default pause; repeated 429s stop at the floor.
        for _ in 0..10 {
            p.on_rate_limited(RequestKind::Amend, None, 3000);
        }
        assert_eq!(p.scale_pct(BucketKind::Write), 10);
        assert!(!p.try_acquire(RequestKind::Cancel, 1, 3999));
        assert_eq!(p.stats().rate_limited, 11);
        // Quiet for long enough: back to the full budget.
        for t in (4000..20_000).step_by(1000) {
            p.tokens(BucketKind::Write, t);
        }
        assert_eq!(p.scale_pct(BucketKind::Write), 100);
        assert_eq!(p.tokens(BucketKind::Write, 30_000), 100);
    }

    #[test]
    fn use_pct_keeps_headroom() {
        let mut p = Pacer::for_tier(Tier::Basic, PacerConfig::default(), 0);
        // 90% of a 100-token bucket, of which creates leave 20% (18 tokens): seven creates.
        let granted = (0..20).filter(|_| p.try_acquire(RequestKind::Create, 1, 0)).count();
        assert_eq!(granted, 7);
    }

    #[test]
    fn clock_going_backwards_is_harmless() {
        let mut p = basic(10_000);
        assert!(p.try_acquire(RequestKind::Create, 1, 10_000));
        assert!(p.try_acquire(RequestKind::Create, 1, 5_000));
        assert_eq!(p.tokens(BucketKind::Write, 5_000), 80);
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(retry_after_ms(b" 3 "), Some(3000));
        assert_eq!(retry_after_ms(b"0"), Some(0));
        assert_eq!(retry_after_ms(b"Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after_ms(b""), None);
    }
}
