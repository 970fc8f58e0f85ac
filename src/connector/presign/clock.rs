//! The wall clock signatures are stamped with, apart so tests can drive the presigner's time
//! without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

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
