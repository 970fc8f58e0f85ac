//! What this host does to a thread's caches while the thread waits: a dependent pointer chase
//! through 2,000 random cache lines of a 256 KB block (which fits the per-core L2 of the
//! machines we run on), timed right after the thread spent a gap spinning on the clock and
//! touching nothing else, against the same chase run back to back. Run:
//! `cargo bench --bench host`.
//!
//! On a host that leaves an idle core's caches alone, every gap gives the back-to-back time.
//! Where other tenants or the hypervisor share the core's caches, lines untouched for a while
//! come back from L3 or DRAM: that is the floor under any event that arrives after a quiet spell,
//! whatever the engine does, and the reason the engine rehearses its hot path while idle.
//! `benches/pipeline.rs` shows the same effect on the engine's own decision path.

use criterion::{criterion_group, criterion_main, Criterion};
use hdrhistogram::Histogram;
use kmm::metrics::{tsc, TscClock};
use std::hint::black_box;
use std::time::Duration;

const BLOCK_BYTES: usize = 256 * 1024;
const LINE: usize = 64;
const CHASED_LINES: usize = 2_000;

/// A random cycle through every line of the block: each line holds the index of the next, so
/// each load waits for the one before and the prefetchers cannot guess ahead.
struct Chase {
    lines: Vec<[u64; LINE / 8]>,
}

impl Chase {
    fn new() -> Chase {
        let n = BLOCK_BYTES / LINE;
        let mut order: Vec<usize> = (0..n).collect();
        // A fixed xorshift shuffle: the same cycle on every run.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in (1..n).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut lines = vec![[0u64; LINE / 8]; n];
        for i in 0..n {
            lines[order[i]][0] = order[(i + 1) % n] as u64;
        }
        Chase { lines }
    }

    /// Follows the cycle for [`CHASED_LINES`] loads; returns where it stopped.
    #[inline(never)]
    fn run(&self) -> u64 {
        let mut at = 0u64;
        for _ in 0..CHASED_LINES {
            at = self.lines[at as usize][0];
        }
        at
    }
}

fn spin_for(ticks: u64) {
    let until = tsc() + ticks;
    while tsc() < until {
        std::hint::spin_loop();
    }
}

fn host(c: &mut Criterion) {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let pinned = cores.first().is_some_and(|&c| core_affinity::set_for_current(c));
    let clock = TscClock::calibrate(Duration::from_millis(20));
    let chase = Chase::new();
    for _ in 0..100 {
        black_box(chase.run());
    }
    println!(
        "host: a chase through {CHASED_LINES} random lines of a {} KB block, after the thread spun for a gap \
         touching nothing ({}); ns:",
        BLOCK_BYTES / 1024,
        if pinned { "pinned to the first core" } else { "unpinned" }
    );
    let mut back_to_back_p50 = 0u64;
    for (gap, samples) in [
        (Duration::ZERO, 1_000),
        (Duration::from_micros(50), 1_000),
        (Duration::from_millis(1), 500),
        (Duration::from_millis(5), 200),
        (Duration::from_millis(20), 100),
    ] {
        let gap_ticks = (clock.ticks_per_us * gap.as_micros() as f64) as u64;
        let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
        for _ in 0..samples {
            spin_for(gap_ticks);
            let t = tsc();
            black_box(chase.run());
            h.saturating_record(clock.ticks_to_ns(tsc() - t).max(1));
        }
        let p50 = h.value_at_quantile(0.5);
        if gap.is_zero() {
            back_to_back_p50 = p50;
        }
        println!(
            "  gap {:>8?}: p50 {:7} p90 {:7} p99 {:7}  ({:.1}x back to back, {:.0} ns a line)",
            gap,
            p50,
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            p50 as f64 / back_to_back_p50.max(1) as f64,
            p50 as f64 / CHASED_LINES as f64
        );
    }
    c.bench_function("host/chase_2000_lines_back_to_back", |b| b.iter(|| black_box(chase.run())));
}

criterion_group!(benches, host);
criterion_main!(benches);
