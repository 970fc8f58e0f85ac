//! [`ExecParams`]: how eagerly reconcile moves orders and how long it waits for answers, and
//! the check that turns a bad config value into a message naming the key.

use crate::event::Qty;
use std::fmt;

/// Execution tuning; the `quoting`, `requests` and `events` module docs say how each one is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecParams {
    /// Growing an order by less than this is not worth an amend (which costs queue priority).
    /// Shrinking is never deferred: the desired size may be a risk cap.
    pub min_size_change: Qty,
    /// Move a resting order only when the desired price is at least this many ladder ticks away.
    pub min_price_move_ticks: u16,
    /// After this long without an answer a request's order is *unknown* (see the `requests` module docs).
    pub inflight_timeout_ms: u64,
    /// After a rejected place/amend/decrease, leave that side alone for this long, so a market
    /// that keeps refusing (post-only crosses, pacing) is not hammered once per event.
    pub reject_backoff_ms: u64,
}

impl Default for ExecParams {
    fn default() -> Self {
        ExecParams {
            min_size_change: Qty(100),
            min_price_move_ticks: 1,
            inflight_timeout_ms: 5_000,
            reject_backoff_ms: 100,
        }
    }
}

/// A bad [`ExecParams`] value: the key and how to fix it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecParamError {
    pub key: &'static str,
    pub fix: &'static str,
}

impl fmt::Display for ExecParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.fix)
    }
}

impl std::error::Error for ExecParamError {}

impl ExecParams {
    pub fn validate(&self) -> Result<(), ExecParamError> {
        if self.min_size_change.0 < 0 {
            return Err(ExecParamError {
                key: "min_size_change",
                fix: "must be >= 0 contracts; use 1 to amend for any whole-contract growth",
            });
        }
        if self.min_price_move_ticks == 0 {
            return Err(ExecParamError {
                key: "min_price_move_ticks",
                fix: "must be >= 1; 1 moves the order on every tick the quote moves",
            });
        }
        if self.inflight_timeout_ms == 0 {
            return Err(ExecParamError {
                key: "inflight_timeout_ms",
                fix: "must be > 0; use a few seconds (5000), well above a REST round trip",
            });
        }
        Ok(())
    }
}
