//! Faults on demand: from the scenario file (at a simulated time) or the admin endpoint (now).
//!
//! A fault is armed into [`FaultState`], which the REST and WebSocket layers consult. Every
//! fault is bounded (a count or a duration), so a forgotten fault cannot wedge a session.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Close every WebSocket connection (or only those of one account).
    DropWs {
        #[serde(default)]
        account: Option<u32>,
    },
    /// Close every oracle-feed WebSocket connection (the Kalshi connections stay up).
    DropOracle,
    /// The next sequenced message on each subscription skips `count` seq numbers.
    SkipSeq {
        #[serde(default = "one")]
        count: u64,
    },
    /// The next sequenced message on each subscription is sent twice.
    DuplicateSeq,
    /// Hold every outgoing WebSocket message for `delay_ms` for `duration_ms`.
    DelayWs { delay_ms: u64, duration_ms: u64 },
    /// Answer the next `count` REST requests (or those matching `path_prefix`) with `status`:
    /// 429 gives Kalshi's rate-limit body, 500/503 its error body.
    HttpError {
        status: u16,
        #[serde(default = "one")]
        count: u64,
        #[serde(default)]
        path_prefix: Option<String>,
    },
    /// Reject the next `count` order creations with `code`.
    RejectOrders {
        #[serde(default = "one")]
        count: u64,
        #[serde(default = "default_reject_code")]
        code: String,
    },
    /// Pause trading exchange-wide for `duration_ms` (cancels stay allowed).
    PauseTrading { duration_ms: u64 },
    /// Deactivate one market for `duration_ms`; reactivation cancels its resting orders.
    DeactivateMarket { market: String, duration_ms: u64 },
}

fn one() -> u64 {
    1
}

fn default_reject_code() -> String {
    "service_unavailable".to_string()
}

/// A fault the scenario schedules at a simulated time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledFault {
    pub at_ms: u64,
    #[serde(flatten)]
    pub fault: Fault,
}

/// What the REST layer should do instead of serving a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpFault {
    pub status: u16,
}

#[derive(Default)]
struct Armed {
    http: Vec<(u16, u64, Option<String>)>,
    reject_orders: Option<(u64, String)>,
}

/// Armed faults, shared by the server tasks.
#[derive(Default)]
pub struct FaultState {
    armed: Mutex<Armed>,
    /// Bumped by each DropWs; connections compare it with the value they started with.
    pub drop_generation: AtomicU64,
    pub drop_account: Mutex<Option<u32>>,
    /// Bumped by each DropOracle; oracle connections compare it with the value they started with.
    pub oracle_drop_generation: AtomicU64,
    /// Bumped by SkipSeq/DuplicateSeq; subscriptions apply each generation once.
    pub seq_generation: AtomicU64,
    pub seq_fault: Mutex<Option<Fault>>,
    /// Simulated time until which outgoing WS messages are delayed, and by how much.
    pub delay_until_ms: AtomicU64,
    pub delay_ms: AtomicU64,
}

impl FaultState {
    /// Arms the parts of a fault the servers act on. Exchange-state faults (pauses,
    /// deactivations) are applied by the caller, which holds the exchange.
    pub fn arm(&self, fault: &Fault, now_ms: u64) {
        match fault {
            Fault::DropWs { account } => {
                *self.drop_account.lock().expect("fault lock") = *account;
                self.drop_generation.fetch_add(1, Ordering::SeqCst);
            }
            Fault::DropOracle => {
                self.oracle_drop_generation.fetch_add(1, Ordering::SeqCst);
            }
            Fault::SkipSeq { .. } | Fault::DuplicateSeq => {
                *self.seq_fault.lock().expect("fault lock") = Some(fault.clone());
                self.seq_generation.fetch_add(1, Ordering::SeqCst);
            }
            Fault::DelayWs { delay_ms, duration_ms } => {
                self.delay_ms.store(*delay_ms, Ordering::SeqCst);
                self.delay_until_ms.store(now_ms + duration_ms, Ordering::SeqCst);
            }
            Fault::HttpError {
                status,
                count,
                path_prefix,
            } => self
                .armed
                .lock()
                .expect("fault lock")
                .http
                .push((*status, *count, path_prefix.clone())),
            Fault::RejectOrders { count, code } => self.armed.lock().expect("fault lock").reject_orders = Some((*count, code.clone())),
            Fault::PauseTrading { .. } | Fault::DeactivateMarket { .. } => {}
        }
    }

    /// Consumes one armed HTTP fault matching `path`, if any.
    pub fn take_http(&self, path: &str) -> Option<HttpFault> {
        let mut armed = self.armed.lock().expect("fault lock");
        let i = armed
            .http
            .iter()
            .position(|(_, n, prefix)| *n > 0 && prefix.as_deref().is_none_or(|p| path.starts_with(p)))?;
        let entry = &mut armed.http[i];
        entry.1 -= 1;
        let status = entry.0;
        if entry.1 == 0 {
            armed.http.remove(i);
        }
        Some(HttpFault { status })
    }

    /// Consumes one armed order rejection, returning its error code.
    pub fn take_order_reject(&self) -> Option<String> {
        let mut armed = self.armed.lock().expect("fault lock");
        let (n, code) = armed.reject_orders.as_mut()?;
        *n -= 1;
        let code = code.clone();
        if *n == 0 {
            armed.reject_orders = None;
        }
        Some(code)
    }

    pub fn ws_delay(&self, now_ms: u64) -> Option<u64> {
        (now_ms < self.delay_until_ms.load(Ordering::SeqCst)).then(|| self.delay_ms.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scenario_faults() {
        let text = r#"
            [[faults]]
            at_ms = 5000
            kind = "http_error"
            status = 429
            count = 3

            [[faults]]
            at_ms = 9000
            kind = "skip_seq"
        "#;
        #[derive(Deserialize)]
        struct F {
            faults: Vec<ScheduledFault>,
        }
        let f: F = toml::from_str(text).unwrap();
        assert_eq!(f.faults.len(), 2);
        assert_eq!(
            f.faults[0].fault,
            Fault::HttpError {
                status: 429,
                count: 3,
                path_prefix: None
            }
        );
        assert_eq!(f.faults[1].fault, Fault::SkipSeq { count: 1 });
    }

    #[test]
    fn http_faults_are_counted() {
        let s = FaultState::default();
        s.arm(
            &Fault::HttpError {
                status: 503,
                count: 2,
                path_prefix: Some("/trade-api/v2/portfolio".into()),
            },
            0,
        );
        assert_eq!(s.take_http("/trade-api/v2/markets"), None);
        assert_eq!(s.take_http("/trade-api/v2/portfolio/balance"), Some(HttpFault { status: 503 }));
        assert_eq!(s.take_http("/trade-api/v2/portfolio/balance"), Some(HttpFault { status: 503 }));
        assert_eq!(s.take_http("/trade-api/v2/portfolio/balance"), None);
    }
}
