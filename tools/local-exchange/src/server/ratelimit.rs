//! Kalshi's token-bucket rate limits (since 2026-04-23): a read and a write bucket per account,
//! refilled at the tier's rate, each request costing tokens by endpoint. A batch costs per item
//! and must fit whole. Buckets run on wall time: rate limits are about real request rates.

use kalshi_proto::ratelimit::{Bucket, Tier};
use std::sync::Mutex;
use std::time::Instant;

struct TokenBucket {
    tokens: f64,
    capacity: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64, capacity: f64) -> TokenBucket {
        TokenBucket {
            tokens: capacity,
            capacity,
            rate,
            last: Instant::now(),
        }
    }

    fn try_take(&mut self, n: f64, now: Instant) -> bool {
        if self.rate.is_infinite() {
            return true;
        }
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

pub struct Limiter {
    tier: Tier,
    buckets: Mutex<Vec<(TokenBucket, TokenBucket)>>,
}

impl Limiter {
    pub fn new(tier: Tier, accounts: usize) -> Limiter {
        let (r, w) = tier.rates();
        let (rc, wc) = tier.capacities();
        Limiter {
            tier,
            buckets: Mutex::new((0..accounts).map(|_| (TokenBucket::new(r, rc), TokenBucket::new(w, wc))).collect()),
        }
    }

    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Takes `tokens` from the account's bucket; false means answer 429.
    pub fn try_take(&self, account: u32, bucket: Bucket, tokens: u32) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some((read, write)) = buckets.get_mut(account as usize) else {
            return true;
        };
        let b = match bucket {
            Bucket::Read => read,
            Bucket::Write => write,
        };
        b.try_take(f64::from(tokens), Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_write_bucket_holds_one_second() {
        let l = Limiter::new(Tier::Basic, 1);
        // 100 tokens/s, capacity 100: ten V2 creates at 10 tokens, then 429.
        for _ in 0..10 {
            assert!(l.try_take(0, Bucket::Write, 10));
        }
        assert!(!l.try_take(0, Bucket::Write, 10));
        // The read bucket is separate.
        assert!(l.try_take(0, Bucket::Read, 10));
    }
}
