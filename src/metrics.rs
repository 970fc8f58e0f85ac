//! Latency measurement: a TSC clock and per-stage HdrHistograms.
//!
//! Stages are stamped with the CPU's time-stamp counter (one instruction, no syscall) on the
//! hot path and converted to nanoseconds only when recorded. Histograms are allocated once
//! with a fixed range, so recording never allocates; they are written in HdrHistogram's
//! standard interval-log format (readable by HdrHistogram's own tools and by
//! `kmm latency-report`).

use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

/// Reads the time-stamp counter. On x86_64 this is `rdtsc` (invariant TSC on every CPU kmm
/// targets); elsewhere a monotonic clock in nanoseconds stands in.
#[inline(always)]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions; it only reads a counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Converts TSC ticks to nanoseconds, calibrated against the monotonic clock at start-up.
#[derive(Clone, Copy, Debug)]
pub struct TscClock {
    /// Nanoseconds per tick in 32.32 fixed point, so conversion is a multiply and a shift.
    ns_per_tick_q32: u64,
    pub ticks_per_us: f64,
}

impl TscClock {
    /// Measures the TSC rate over `window` (20 ms gives better than 0.1% here).
    pub fn calibrate(window: Duration) -> TscClock {
        let t0 = Instant::now();
        let c0 = tsc();
        while t0.elapsed() < window {
            std::hint::spin_loop();
        }
        let c1 = tsc();
        let ns = t0.elapsed().as_nanos() as f64;
        let ticks = (c1.wrapping_sub(c0)).max(1) as f64;
        TscClock {
            ns_per_tick_q32: ((ns / ticks) * (1u64 << 32) as f64) as u64,
            ticks_per_us: ticks / ns * 1000.0,
        }
    }

    #[inline]
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        ((u128::from(ticks) * u128::from(self.ns_per_tick_q32)) >> 32) as u64
    }

    /// Nanoseconds from `from` to `to`; 0 when a stamp is missing or out of order.
    #[inline]
    pub fn between(&self, from: u64, to: u64) -> u64 {
        if from == 0 || to < from {
            0
        } else {
            self.ticks_to_ns(to - from)
        }
    }
}

/// The stages of tick-to-order, in pipeline order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Read returned -> frame deframed and decrypted.
    Decode,
    /// Deframed -> parsed into an event and pushed to the ring.
    Parse,
    /// Pushed -> dequeued by the strategy thread.
    RingToStrategy,
    /// Dequeued -> decision made, commands pushed.
    Decide,
    /// Command pushed -> dequeued by the io thread.
    RingToIo,
    /// Dequeued -> request encoded and encrypted, just before the write.
    Encode,
    /// The read that delivered the trigger's bytes -> the write of the order's bytes.
    TickToOrder,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Decode,
        Stage::Parse,
        Stage::RingToStrategy,
        Stage::Decide,
        Stage::RingToIo,
        Stage::Encode,
        Stage::TickToOrder,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Parse => "parse",
            Stage::RingToStrategy => "ring_to_strategy",
            Stage::Decide => "decide",
            Stage::RingToIo => "ring_to_io",
            Stage::Encode => "encode",
            Stage::TickToOrder => "tick_to_order",
        }
    }

    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Highest latency recorded exactly: 10 s. Anything slower is clamped (and still counted).
const MAX_NS: u64 = 10_000_000_000;

/// One histogram per stage, in nanoseconds, 3 significant digits.
#[derive(Clone)]
pub struct StageHistograms {
    hists: Vec<Histogram<u64>>,
}

impl Default for StageHistograms {
    fn default() -> Self {
        Self::new()
    }
}

impl StageHistograms {
    pub fn new() -> StageHistograms {
        StageHistograms {
            hists: Stage::ALL
                .iter()
                .map(|_| Histogram::new_with_bounds(1, MAX_NS, 3).expect("static histogram bounds are valid"))
                .collect(),
        }
    }

    /// Records one latency. Never allocates: the range is fixed at construction.
    #[inline]
    pub fn record(&mut self, stage: Stage, ns: u64) {
        let _ = self.hists[stage as usize].record(ns.clamp(1, MAX_NS));
    }

    pub fn get(&self, stage: Stage) -> &Histogram<u64> {
        &self.hists[stage as usize]
    }

    pub fn add(&mut self, other: &StageHistograms) {
        for (a, b) in self.hists.iter_mut().zip(&other.hists) {
            let _ = a.add(b);
        }
    }

    pub fn reset(&mut self) {
        for h in &mut self.hists {
            h.reset();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hists.iter().all(|h| h.is_empty())
    }
}

/// Percentiles of one histogram in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Summary {
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Writes histograms as an HdrHistogram interval log: one tagged interval per stage, with
/// start times relative to the log's `#[StartTime]`.
pub struct IntervalLog<W: Write> {
    out: W,
    serializer: V2DeflateSerializer,
    scratch: Vec<u8>,
    base: Instant,
}

impl<W: Write> IntervalLog<W> {
    pub fn new(mut out: W) -> std::io::Result<IntervalLog<W>> {
        let started = SystemTime::now();
        // Header comments and the start time, via the standard writer.
        {
            let mut serializer = V2DeflateSerializer::new();
            let mut builder = IntervalLogWriterBuilder::new();
            builder.add_comment("kmm latency histograms, nanoseconds, one tag per stage");
            builder.with_start_time(started);
            builder.with_base_time(started);
            builder.with_max_value_divisor(1.0);
            let _ = builder.begin_log_with(&mut out, &mut serializer).map_err(std::io::Error::other)?;
        }
        Ok(IntervalLog {
            out,
            serializer: V2DeflateSerializer::new(),
            scratch: Vec::with_capacity(64 * 1024),
            base: Instant::now(),
        })
    }

    /// Appends one interval covering `start..now` for each non-empty stage.
    pub fn write_interval(&mut self, hists: &StageHistograms, start: Instant) -> std::io::Result<()> {
        use base64::Engine;
        let offset = start.saturating_duration_since(self.base);
        let duration = start.elapsed();
        for stage in Stage::ALL {
            let h = hists.get(stage);
            if h.is_empty() {
                continue;
            }
            self.scratch.clear();
            self.serializer
                .serialize(h, &mut self.scratch)
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
            // The interval line of HdrHistogram's log format: tag, start and length in
            // seconds, max value, then the compressed histogram in base64.
            writeln!(
                self.out,
                "Tag={},{}.{:03},{}.{:03},{:.3},{}",
                stage.name(),
                offset.as_secs(),
                offset.subsec_millis(),
                duration.as_secs(),
                duration.subsec_millis(),
                h.max() as f64,
                base64::engine::general_purpose::STANDARD.encode(&self.scratch)
            )?;
        }
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsc_calibrates_to_wall_time() {
        let clock = TscClock::calibrate(Duration::from_millis(20));
        let t0 = Instant::now();
        let c0 = tsc();
        std::thread::sleep(Duration::from_millis(30));
        let ns = clock.between(c0, tsc());
        let wall = t0.elapsed().as_nanos() as u64;
        let err = (ns as f64 - wall as f64).abs() / wall as f64;
        assert!(err < 0.05, "tsc {ns} ns vs wall {wall} ns");
        assert_eq!(clock.between(0, 5), 0);
        assert_eq!(clock.between(10, 5), 0);
    }

    #[test]
    fn summaries_and_interval_log_round_trip() {
        let mut h = StageHistograms::new();
        for v in 1..=1000u64 {
            h.record(Stage::TickToOrder, v * 1000);
            h.record(Stage::Parse, 150);
        }
        let s = Summary::of(h.get(Stage::TickToOrder));
        assert_eq!(s.count, 1000);
        assert!((499_000..=501_000).contains(&s.p50), "{s:?}");
        assert!(s.max >= 999_000);
        let mut log = IntervalLog::new(Vec::new()).unwrap();
        log.write_interval(&h, Instant::now()).unwrap();
        log.write_interval(&h, Instant::now()).unwrap();
        let bytes = log.into_inner();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text.matches("Tag=tick_to_order").count(), 2, "{text}");
        // Readable by HdrHistogram's own interval-log reader.
        let mut read = 0;
        for entry in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&bytes) {
            if let Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(i)) = entry {
                read += 1;
                assert!(i.tag().is_some());
            }
        }
        assert_eq!(read, 4);
    }
}
