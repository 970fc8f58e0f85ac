//! The strategy thread's loop and the pieces every run shares: pinning, the live status the
//! strategy publishes for the status line, and the hand-off of the strategy at the end.
//!
//! The loop is the only place the pure [`Strategy`] meets time and rings: it stamps each
//! command with the TSC of its dequeue and decision, converts the TSC to Unix milliseconds
//! for `now_ms` (no clock syscall), logs events and commands as fixed records, and never drops
//! a command: a full command ring is waited on and counted.

use crate::event::{Command, Event, MarketIdx};
use crate::logger::{LogBody, LogProducer};
use crate::metrics::{tsc, TscClock};
use crate::poll::{Idle, PollMode};
use crate::risk::KillReason;
use crate::strategy::{Commands, Strategy, Take};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix milliseconds from the TSC: anchored once, then a multiply per call.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    tsc0: u64,
    unix_ns0: u64,
    clock: TscClock,
}

impl WallClock {
    pub fn new(clock: TscClock) -> WallClock {
        WallClock {
            tsc0: tsc(),
            unix_ns0: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
            clock,
        }
    }

    #[inline]
    pub fn now_ms(&self) -> u64 {
        (self.unix_ns0 + self.clock.ticks_to_ns(tsc().wrapping_sub(self.tsc0))) / 1_000_000
    }
}

/// Figures the strategy thread publishes a few times a second for the status line. Relaxed
/// atomics written by one thread: no lock, and readers tolerate a torn set of fields.
#[derive(Default, Debug)]
pub struct LiveStatus {
    pub pnl_micros: AtomicI64,
    pub position_centi: AtomicI64,
    pub gross_position_centi: AtomicI64,
    pub fills: AtomicU64,
    pub open_orders: AtomicU64,
    pub events: AtomicU64,
    pub commands: AtomicU64,
    /// First market's model quote, 1e-4 dollars (0: none).
    pub bid: AtomicU64,
    pub ask: AtomicU64,
    /// 0: armed, else a `KillReason` code + 1.
    pub kill: AtomicU64,
    pub command_ring_stalls: AtomicU64,
}

/// Control messages to the strategy thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrategyControl {
    /// Trip the kill switch: cancel everything, place nothing more.
    Kill(KillReason),
    /// Cross the spread once, through risk (an operator's flatten; the take path's test).
    Take { market: MarketIdx, take: Take },
}

/// Where the loop's time goes between timer passes.
const TIMER_EVERY: Duration = Duration::from_millis(20);
const STATUS_EVERY: Duration = Duration::from_millis(200);
/// How often an idle spinning strategy thread rehearses a decision ([`Strategy::rehearse`]).
/// On these VMs a line untouched for a millisecond is back in DRAM; a rehearsal costs about
/// what one decision costs warm, so this is well under 1% of the core.
const REHEARSE_EVERY: Duration = Duration::from_micros(50);

/// Writes over the slots the ring's next `n` pushes will fill, without committing them, so
/// those pushes find the slots' lines in this core's cache. A slot is written once per lap of
/// the ring, seconds apart at the live feed's rate, so without this every push stores to a line
/// the host has long since evicted (`benches/host.rs`; `benches/pipeline.rs` measures the
/// effect). The consumer never sees an uncommitted slot, and a push overwrites its slot whole.
#[inline]
pub fn warm_next_slots<T: Copy>(ring: &mut rtrb::Producer<T>, n: usize) {
    let n = n.min(ring.slots());
    if let Ok(mut chunk) = ring.write_chunk_uninit(n) {
        let (first, second) = chunk.as_mut_slices();
        for slot in first.iter_mut().chain(second.iter_mut()) {
            *slot = std::mem::MaybeUninit::zeroed();
        }
        std::hint::black_box(chunk.as_mut_slices());
    }
}

/// A two-sided requote is two commands; a kill a few more.
const WARM_COMMAND_SLOTS: usize = 4;

/// What the strategy thread hands back when its input ring is closed.
pub struct StrategyRun {
    pub strategy: Strategy,
    pub command_ring_stalls: u64,
}

/// Runs the strategy until the io thread drops the event ring, then returns the strategy.
#[allow(clippy::too_many_arguments)]
pub fn strategy_loop(
    mut strategy: Strategy,
    mut events: rtrb::Consumer<Event>,
    mut commands: rtrb::Producer<Command>,
    control: crossbeam::channel::Receiver<StrategyControl>,
    mut log: LogProducer,
    mode: PollMode,
    clock: TscClock,
    status: Arc<LiveStatus>,
) -> StrategyRun {
    let wall = WallClock::new(clock);
    let mut out = Commands::default();
    let mut idle = Idle::new(mode);
    let timer_ticks = (clock.ticks_per_us * TIMER_EVERY.as_micros() as f64) as u64;
    let status_ticks = (clock.ticks_per_us * STATUS_EVERY.as_micros() as f64) as u64;
    let mut next_timer = tsc() + timer_ticks;
    let mut next_status = tsc() + status_ticks;
    let mut stalls = 0u64;
    let rehearse_ticks = (clock.ticks_per_us * REHEARSE_EVERY.as_micros() as f64) as u64;
    let mut last_rehearsal = 0u64;
    loop {
        let mut worked = false;
        while let Ok(ev) = events.pop() {
            let dequeued = tsc();
            worked = true;
            strategy.on_event(&ev, wall.now_ms(), &mut out);
            let decided = tsc();
            emit(&out, &mut commands, &mut log, ev.stamp, dequeued, decided, &mut stalls);
            // Logged after the commands are out: the record costs the order path nothing.
            log.log(LogBody::Event(ev));
        }
        let now = tsc();
        if now >= next_timer {
            next_timer = now + timer_ticks;
            while let Ok(msg) = control.try_recv() {
                match msg {
                    StrategyControl::Kill(reason) => strategy.kill(reason, wall.now_ms(), &mut out),
                    // A refusal is in the risk counters and the log notes `emit` writes.
                    StrategyControl::Take { market, take } => {
                        let _ = strategy.take(market, take, wall.now_ms(), &mut out);
                    }
                }
                emit(&out, &mut commands, &mut log, Default::default(), 0, 0, &mut stalls);
            }
            strategy.on_timer(wall.now_ms(), &mut out);
            emit(&out, &mut commands, &mut log, Default::default(), 0, 0, &mut stalls);
        }
        if now >= next_status {
            next_status = now + status_ticks;
            publish(&strategy, &status, stalls);
        }
        if worked {
            idle.worked();
        } else if events.is_abandoned() && events.is_empty() {
            break;
        } else {
            if mode == PollMode::Spin && now.wrapping_sub(last_rehearsal) >= rehearse_ticks {
                // Only a spinning thread owns its core's caches (see `REHEARSE_EVERY`).
                last_rehearsal = now;
                strategy.rehearse(wall.now_ms());
                warm_next_slots(&mut commands, WARM_COMMAND_SLOTS);
            }
            idle.idle();
        }
    }
    publish(&strategy, &status, stalls);
    StrategyRun {
        strategy,
        command_ring_stalls: stalls,
    }
}

#[inline]
fn emit(
    out: &Commands,
    commands: &mut rtrb::Producer<Command>,
    log: &mut LogProducer,
    cause: crate::event::Stamp,
    dequeued_tsc: u64,
    decided_tsc: u64,
    stalls: &mut u64,
) {
    for note in out.notes() {
        log.log(*note);
    }
    for &body in out.as_slice() {
        let mut cmd = Command {
            body,
            cause,
            dequeued_tsc,
            decided_tsc,
        };
        loop {
            match commands.push(cmd) {
                Ok(()) => break,
                Err(rtrb::PushError::Full(back)) => {
                    if commands.is_abandoned() {
                        return;
                    }
                    // An order command is never dropped: wait for the io thread.
                    *stalls += 1;
                    cmd = back;
                    std::hint::spin_loop();
                }
            }
        }
        log.log(LogBody::Command(body));
    }
}

fn publish(strategy: &Strategy, status: &LiveStatus, stalls: u64) {
    let mut position = 0i64;
    let mut gross = 0i64;
    let mut fills = 0u64;
    for m in 0..strategy.market_count() {
        let a = strategy.account(m as MarketIdx);
        position += a.position.0;
        gross += a.position.0.abs();
        fills += u64::from(a.fills);
    }
    status.pnl_micros.store(strategy.pnl().0, Ordering::Relaxed);
    status.position_centi.store(position, Ordering::Relaxed);
    status.gross_position_centi.store(gross, Ordering::Relaxed);
    status.fills.store(fills, Ordering::Relaxed);
    status.open_orders.store(strategy.orders().open_count() as u64, Ordering::Relaxed);
    let stats = strategy.stats();
    status.events.store(stats.events, Ordering::Relaxed);
    status.commands.store(stats.commands, Ordering::Relaxed);
    if strategy.market_count() > 0 {
        let q = strategy.quote(0);
        status.bid.store(q.bid.map_or(0, |p| u64::from(p.0)), Ordering::Relaxed);
        status.ask.store(q.ask.map_or(0, |p| u64::from(p.0)), Ordering::Relaxed);
    }
    status.kill.store(strategy.killed().map_or(0, |k| k as u64 + 1), Ordering::Relaxed);
    status.command_ring_stalls.store(stalls, Ordering::Relaxed);
}

/// Which cores the busy threads get, decided once at start and said out loud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadPlan {
    pub mode: PollMode,
    pub io_core: Option<usize>,
    pub strategy_core: Option<usize>,
    /// Where every other thread runs (the embedded exchange, the signer, the log thread, the
    /// main thread): empty means wherever the OS likes. Confined, they stay off a hot core that
    /// has a spare one beside it; unconfined, a woken thread preempts whichever spinning thread
    /// the scheduler picks, for as long as it works (an RSA signature, a matching round).
    pub other_cores: Vec<usize>,
    /// Why the plan is what it is, for the start-up banner.
    pub reason: &'static str,
}

/// The cores left to the rest of the process: those neither hot thread holds, or, when the
/// hot threads hold them all, the io thread's.
///
/// Why the io core and not the strategy's, measured on two cores against the embedded exchange
/// (15 and 8 spin runs of 20 s): the exchange's work comes before the bytes the io thread is
/// waiting for, so it costs that thread little, while on the strategy core it and the signer's
/// RSA preempt the strategy just as an event lands in its ring. Medians: tick-to-order p50
/// 20.4 µs against 24.1, p90 0.47 ms against 2.8 (4 of the 15 runs above 2 ms, all 8 above
/// 1.5). The price is paid by the reader: decode p99 about 1 ms against 50-90 µs, and
/// tick-to-order p99 6.6 ms against 5.6.
fn other_cores(cores: usize, io: Option<usize>, strategy: Option<usize>) -> Vec<usize> {
    if io.is_none() && strategy.is_none() {
        return Vec::new();
    }
    let free: Vec<usize> = (0..cores).filter(|c| Some(*c) != io && Some(*c) != strategy).collect();
    if !free.is_empty() {
        return free;
    }
    match io {
        Some(core) => vec![core],
        None => (0..cores).filter(|c| Some(*c) != strategy).collect(),
    }
}

/// Machines with fewer cores than this run yield mode unpinned by default: two spinning
/// threads plus the exchange, the log thread and the OS do not fit in fewer.
pub const MIN_CORES_FOR_SPIN: usize = 4;

/// Chooses poll mode and cores. Explicit choices win; otherwise spin pinned on 4+ cores
/// (io on the second-to-last core, strategy on the last, away from core 0's interrupts) and
/// yield unpinned below that.
pub fn plan_threads(
    cores: usize,
    requested_mode: Option<PollMode>,
    pin_io: Option<usize>,
    pin_strategy: Option<usize>,
    pin_others: Option<&[usize]>,
    no_pin: bool,
) -> Result<ThreadPlan, String> {
    let others = pin_others.unwrap_or(&[]).iter().map(|c| ("--pin-others", Some(*c)));
    for (name, core) in [("--pin-io", pin_io), ("--pin-strategy", pin_strategy)].into_iter().chain(others) {
        if let Some(c) = core {
            if c >= cores {
                return Err(format!("{name} {c}: this machine has cores 0..{} only", cores.saturating_sub(1)));
            }
        }
    }
    let mut plan = plan_hot_threads(cores, requested_mode, pin_io, pin_strategy, no_pin);
    if let (Some(others), false) = (pin_others, no_pin) {
        plan.other_cores = others.to_vec();
    }
    Ok(plan)
}

fn plan_hot_threads(
    cores: usize,
    requested_mode: Option<PollMode>,
    pin_io: Option<usize>,
    pin_strategy: Option<usize>,
    no_pin: bool,
) -> ThreadPlan {
    let small = cores < MIN_CORES_FOR_SPIN;
    let mode = requested_mode.unwrap_or(if small { PollMode::Yield } else { PollMode::Spin });
    if no_pin {
        return ThreadPlan {
            mode,
            io_core: None,
            strategy_core: None,
            other_cores: Vec::new(),
            reason: "--no-pin",
        };
    }
    if pin_io.is_some() || pin_strategy.is_some() {
        return ThreadPlan {
            mode,
            io_core: pin_io,
            strategy_core: pin_strategy,
            other_cores: other_cores(cores, pin_io, pin_strategy),
            reason: "pinned as requested",
        };
    }
    if small {
        return ThreadPlan {
            mode,
            io_core: None,
            strategy_core: None,
            other_cores: Vec::new(),
            reason: "fewer than 4 cores: unpinned, so the exchange, the log thread and the OS keep a core",
        };
    }
    ThreadPlan {
        mode,
        io_core: Some(cores - 2),
        strategy_core: Some(cores - 1),
        other_cores: other_cores(cores, Some(cores - 2), Some(cores - 1)),
        reason: "pinned to the last two cores",
    }
}

/// Locks every page the process has and will map (`mlockall`), so a hot thread never takes a
/// page fault: a first touch of a fresh page (a hash table slot, a ring slot, a histogram
/// bucket) costs microseconds on a VM, and ten to twenty microseconds here. Only where the lock
/// cannot fail later: with CAP_IPC_LOCK (root) or no `ulimit -l` limit. Under a finite limit
/// MCL_FUTURE would turn an allocation past it into a failed `mmap` and an abort, so the lock is
/// not taken and the reason says how to allow it.
pub fn lock_memory() -> Result<(), String> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given.
    let unlimited = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } == 0 && limit.rlim_cur == libc::RLIM_INFINITY;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !unlimited && !root {
        return Err(format!(
            "memory not locked: `ulimit -l` is {} KiB; allow it with `ulimit -l unlimited` or CAP_IPC_LOCK, or pass --no-lock-memory",
            limit.rlim_cur / 1024
        ));
    }
    // SAFETY: mlockall only changes how the kernel backs this process's mappings.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "memory not locked: mlockall failed ({e}); grant CAP_IPC_LOCK or pass --no-lock-memory"
        ));
    }
    Ok(())
}

/// Pins the calling thread; false when the OS refused (said in the banner, not fatal).
pub fn pin_current(core: Option<usize>) -> bool {
    match core {
        None => true,
        Some(id) => core_affinity::set_for_current(core_affinity::CoreId { id }),
    }
}

/// Confines the calling thread, and the threads it spawns from now on, to `cores` (empty:
/// leaves it alone). False when the OS refused; the run goes on unconfined.
pub fn confine_current(cores: &[usize]) -> bool {
    if cores.is_empty() {
        return true;
    }
    // SAFETY: cpu_set_t is plain data, zeroed is the empty set, and the call only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cores {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Every run's stop flag: set by Ctrl-C, the duration, or a fatal error.
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warming_ring_slots_publishes_nothing_and_later_pushes_arrive_whole_and_in_order() {
        let (mut tx, mut rx) = rtrb::RingBuffer::<[u64; 16]>::new(8);
        // Lap the ring several times so the warmed slots wrap around its end, and warm more
        // slots than are free once it fills.
        let mut next = 0u64;
        let mut expected = 0u64;
        for round in 0..40 {
            warm_next_slots(&mut tx, 5);
            assert_eq!(rx.slots(), (next - expected) as usize, "warming committed a slot (round {round})");
            for _ in 0..(round % 4 + 1) {
                if tx.push([next; 16]).is_ok() {
                    next += 1;
                }
                warm_next_slots(&mut tx, 100);
            }
            for _ in 0..(round % 3) {
                if let Ok(v) = rx.pop() {
                    assert_eq!(v, [expected; 16]);
                    expected += 1;
                }
            }
        }
        while let Ok(v) = rx.pop() {
            assert_eq!(v, [expected; 16]);
            expected += 1;
        }
        assert_eq!(expected, next);
        assert!(next > 40, "the test lapped the ring");
    }

    #[test]
    fn small_machines_yield_unpinned_and_big_ones_spin_pinned() {
        let p = plan_threads(2, None, None, None, None, false).unwrap();
        assert_eq!((p.mode, p.io_core, p.strategy_core), (PollMode::Yield, None, None));
        let p = plan_threads(8, None, None, None, None, false).unwrap();
        assert_eq!((p.mode, p.io_core, p.strategy_core), (PollMode::Spin, Some(6), Some(7)));
        assert_eq!(p.other_cores, vec![0, 1, 2, 3, 4, 5]);
        let p = plan_threads(2, Some(PollMode::Spin), Some(0), Some(1), None, false).unwrap();
        assert_eq!((p.mode, p.io_core, p.strategy_core), (PollMode::Spin, Some(0), Some(1)));
        // Two cores: the rest shares the io thread's core (see `other_cores`).
        assert_eq!(p.other_cores, vec![0]);
        let p = plan_threads(2, Some(PollMode::Spin), Some(1), Some(0), None, false).unwrap();
        assert_eq!(p.other_cores, vec![1]);
        // Only the strategy pinned, on a machine it fills with the io thread's share unpinned.
        let p = plan_threads(1, Some(PollMode::Spin), None, Some(0), None, false).unwrap();
        assert!(p.other_cores.is_empty(), "{:?}", p.other_cores);
        let p = plan_threads(4, None, Some(1), None, None, false).unwrap();
        assert_eq!(p.other_cores, vec![0, 2, 3]);
        let p = plan_threads(8, None, Some(2), Some(3), None, true).unwrap();
        assert_eq!((p.io_core, p.strategy_core), (None, None));
        assert!(p.other_cores.is_empty());
        assert!(plan_threads(2, None, None, None, None, false).unwrap().other_cores.is_empty());
        assert!(plan_threads(2, None, Some(5), None, None, false)
            .unwrap_err()
            .contains("cores 0..1"));
        // Explicit cores for the rest win, and are checked like the others.
        let p = plan_threads(2, Some(PollMode::Spin), Some(0), Some(1), Some(&[0]), false).unwrap();
        assert_eq!(p.other_cores, vec![0]);
        let e = plan_threads(2, None, Some(0), Some(1), Some(&[0, 3]), false).unwrap_err();
        assert!(e.contains("--pin-others 3"), "{e}");
        assert!(plan_threads(2, None, None, None, Some(&[1]), true).unwrap().other_cores.is_empty());
    }

    #[test]
    fn confining_a_thread_keeps_it_on_those_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let last = cores - 1;
        let seen = std::thread::spawn(move || {
            assert!(confine_current(&[last]));
            // A thread spawned now inherits the set.
            std::thread::spawn(|| unsafe { libc::sched_getcpu() }).join().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(seen, last as i32);
    }

    #[test]
    fn wall_clock_tracks_system_time() {
        let clock = TscClock::calibrate(Duration::from_millis(10));
        let wall = WallClock::new(clock);
        std::thread::sleep(Duration::from_millis(20));
        let sys = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let ours = wall.now_ms();
        assert!(ours.abs_diff(sys) <= 5, "tsc wall clock {ours} vs system {sys}");
    }
}
