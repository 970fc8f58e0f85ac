//! The presigner's knobs: stock depths, signature ages, the worker's pace and cores. Apart so
//! the io setup can carry them without reaching into the presigner's machinery.

#[derive(Clone, Debug)]
pub struct PresignConfig {
    /// Signatures kept ready per fixed path, indexed like
    /// [`FixedPath::ALL`](super::FixedPath::ALL). Creates and batch cancels come in bursts, so
    /// they get the deepest stock.
    pub stock: [usize; 4],
    /// Never hand out a signature older than this (the exchange's window is +-30 s; the rest
    /// is margin for clock skew and the request's time in flight).
    pub max_age_ms: u64,
    /// Stock older than this is retired by [`Presigner::maintain`](super::Presigner::maintain)
    /// and per-order signatures are re-made by the worker, so stock in use is always well
    /// inside `max_age_ms`.
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
