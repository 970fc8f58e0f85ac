//! Asynchronous logging: the hot path pushes fixed-size [`Record`]s onto its own SPSC ring;
//! a log thread that sleeps between batches formats them into a human log, a JSONL event log
//! and a fill journal.
//!
//! Pushing is a copy into a preallocated slot: no allocation, no lock, no formatting, no
//! syscall. A full ring drops the record and counts it rather than block a trading thread.
//! Fills are also written by the log thread, but the fill journal is flushed after every
//! batch that contains one, so a crash loses at most the batch in flight.

use crate::event::{CommandBody, Event, EventBody, Feed, MarketIdx, Side, TradeId};
use crate::metrics::{tsc, TscClock};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What happened, in fixed size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LogBody {
    /// An event as the strategy saw it.
    Event(Event),
    /// A command the strategy issued.
    Command(CommandBody),
    /// A sequence gap on a subscription: expected `expected`, got `got`.
    Gap { sid: u32, expected: u64, got: u64 },
    /// A frame that could not be decoded, by error code.
    DecodeError { code: u16 },
    /// A risk check refused a command.
    RiskBlock { market: MarketIdx, reason: u16 },
    /// The kill switch tripped.
    KillSwitch { reason: u16 },
    /// A free-form numbered note (`code` indexes a static message table of the caller).
    Note { code: u16, a: i64, b: i64 },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record {
    pub tsc: u64,
    pub thread: u8,
    pub body: LogBody,
}

/// The hot-path side of one thread's log ring.
pub struct LogProducer {
    ring: rtrb::Producer<Record>,
    thread: u8,
    dropped: Arc<AtomicU64>,
}

impl LogProducer {
    /// Pushes a record; when the ring is full the record is dropped and counted.
    #[inline]
    pub fn log(&mut self, body: LogBody) {
        let record = Record {
            tsc: tsc(),
            thread: self.thread,
            body,
        };
        if self.ring.push(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Where the log thread writes, and how it paces itself.
#[derive(Clone, Debug)]
pub struct LogConfig {
    pub dir: PathBuf,
    /// Sleep between drains. The log thread must not spin: on two cores a third spinning
    /// thread costs the trading threads millisecond stalls.
    pub drain_interval: Duration,
    /// Ring capacity per producing thread, in records.
    pub ring_capacity: usize,
    /// Write book deltas, levels, trades and tickers to the human log too (very verbose).
    pub verbose: bool,
}

impl LogConfig {
    pub fn new(dir: impl Into<PathBuf>) -> LogConfig {
        LogConfig {
            dir: dir.into(),
            drain_interval: Duration::from_millis(5),
            ring_capacity: 1 << 16,
            verbose: false,
        }
    }
}

/// File paths the log thread writes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LogPaths {
    pub human: PathBuf,
    pub events: PathBuf,
    pub fills: PathBuf,
}

/// Totals the log thread reports when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogTotals {
    pub records: u64,
    pub fills: u64,
    pub dropped: u64,
}

pub struct Logger {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<std::io::Result<LogTotals>>>,
    pub paths: LogPaths,
}

struct Sinks {
    human: BufWriter<File>,
    events: BufWriter<File>,
    fills: BufWriter<File>,
}

/// Starts the log thread with one ring per named producer thread ("io", "strategy", ...).
/// `markets` names each MarketIdx for the logs.
pub fn start(config: LogConfig, threads: &[&str], markets: Vec<String>, clock: TscClock) -> std::io::Result<(Logger, Vec<LogProducer>)> {
    std::fs::create_dir_all(&config.dir)?;
    let paths = LogPaths {
        human: config.dir.join("kmm.log"),
        events: config.dir.join("events.jsonl"),
        fills: config.dir.join("fills.jsonl"),
    };
    let open = |p: &Path| -> std::io::Result<BufWriter<File>> { Ok(BufWriter::with_capacity(1 << 20, File::create(p)?)) };
    let sinks = Sinks {
        human: open(&paths.human)?,
        events: open(&paths.events)?,
        fills: open(&paths.fills)?,
    };
    let dropped = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    for (i, _) in threads.iter().enumerate() {
        let (p, c) = rtrb::RingBuffer::new(config.ring_capacity);
        producers.push(LogProducer {
            ring: p,
            thread: i as u8,
            dropped: dropped.clone(),
        });
        consumers.push(c);
    }
    let names: Vec<String> = threads.iter().map(|s| s.to_string()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    // Anchor TSC to wall time once, so every line carries a wall-clock timestamp.
    let anchor = (
        tsc(),
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    );
    let handle = std::thread::Builder::new().name("kmm-log".into()).spawn(move || {
        let mut w = Writer {
            sinks,
            names,
            markets,
            clock,
            anchor,
            verbose: config.verbose,
            totals: LogTotals::default(),
            line: String::with_capacity(512),
        };
        let mut consumers = consumers;
        loop {
            let stopping = stop_flag.load(Ordering::Acquire);
            let mut wrote_fill = false;
            for c in consumers.iter_mut() {
                while let Ok(r) = c.pop() {
                    wrote_fill |= w.write(&r)?;
                }
            }
            w.totals.dropped = dropped.load(Ordering::Relaxed);
            if wrote_fill {
                w.sinks.fills.flush()?;
            }
            if stopping {
                break;
            }
            // Parked rather than slept, so stop() can wake it at once.
            std::thread::park_timeout(config.drain_interval);
        }
        w.sinks.human.flush()?;
        w.sinks.events.flush()?;
        w.sinks.fills.flush()?;
        w.sinks.fills.get_ref().sync_data()?;
        Ok(w.totals)
    })?;
    Ok((
        Logger {
            stop,
            handle: Some(handle),
            paths,
        },
        producers,
    ))
}

impl Logger {
    /// Drains everything still queued, flushes and stops the log thread.
    pub fn stop(mut self) -> std::io::Result<LogTotals> {
        self.stop.store(true, Ordering::Release);
        match self.handle.take() {
            Some(h) => {
                h.thread().unpark();
                h.join().map_err(|_| std::io::Error::other("log thread panicked"))?
            }
            None => Ok(LogTotals::default()),
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

struct Writer {
    sinks: Sinks,
    names: Vec<String>,
    markets: Vec<String>,
    clock: TscClock,
    anchor: (u64, u64),
    verbose: bool,
    totals: LogTotals,
    line: String,
}

fn side(s: Side) -> &'static str {
    match s {
        Side::Bid => "bid",
        Side::Ask => "ask",
    }
}

impl Writer {
    fn market(&self, m: MarketIdx) -> &str {
        self.markets.get(m as usize).map_or("?", |s| s.as_str())
    }

    fn wall_ns(&self, t: u64) -> u64 {
        let (tsc0, wall0) = self.anchor;
        if t >= tsc0 {
            wall0 + self.clock.ticks_to_ns(t - tsc0)
        } else {
            wall0.saturating_sub(self.clock.ticks_to_ns(tsc0 - t))
        }
    }

    /// Formats one record; returns whether it was a fill (so the journal gets flushed).
    fn write(&mut self, r: &Record) -> std::io::Result<bool> {
        use std::fmt::Write as _;
        self.totals.records += 1;
        let wall = self.wall_ns(r.tsc);
        let thread = self.names.get(r.thread as usize).map_or("?", |s| s.as_str()).to_string();
        let mut is_fill = false;
        let mut human = true;
        self.line.clear();
        let json = match &r.body {
            LogBody::Event(ev) => {
                let (kind, fields) = self.event_fields(ev);
                human = self.verbose
                    || !matches!(
                        ev.body,
                        EventBody::BookDelta { .. } | EventBody::BookLevel { .. } | EventBody::Trade { .. } | EventBody::Ticker { .. }
                    );
                if let EventBody::Fill { .. } = ev.body {
                    is_fill = true;
                }
                let _ = write!(self.line, "{kind} {}", fields_text(&fields));
                json_object(wall, &thread, kind, &fields, Some((ev.stamp.sid, ev.stamp.seq)))
            }
            LogBody::Command(c) => {
                let (kind, fields) = self.command_fields(c);
                let _ = write!(self.line, "{kind} {}", fields_text(&fields));
                json_object(wall, &thread, kind, &fields, None)
            }
            LogBody::Gap { sid, expected, got } => {
                let fields = vec![
                    ("sid", sid.to_string()),
                    ("expected", expected.to_string()),
                    ("got", got.to_string()),
                ];
                let _ = write!(self.line, "GAP {}", fields_text(&fields));
                json_object(wall, &thread, "gap", &fields, None)
            }
            LogBody::DecodeError { code } => {
                let fields = vec![("code", code.to_string())];
                let _ = write!(self.line, "DECODE_ERROR {}", fields_text(&fields));
                json_object(wall, &thread, "decode_error", &fields, None)
            }
            LogBody::RiskBlock { market, reason } => {
                let fields = vec![("market", self.market(*market).to_string()), ("reason", reason.to_string())];
                let _ = write!(self.line, "RISK_BLOCK {}", fields_text(&fields));
                json_object(wall, &thread, "risk_block", &fields, None)
            }
            LogBody::KillSwitch { reason } => {
                let fields = vec![("reason", reason.to_string())];
                let _ = write!(self.line, "KILL_SWITCH {}", fields_text(&fields));
                json_object(wall, &thread, "kill_switch", &fields, None)
            }
            LogBody::Note { code, a, b } => {
                let fields = vec![("code", code.to_string()), ("a", a.to_string()), ("b", b.to_string())];
                let _ = write!(self.line, "NOTE {}", fields_text(&fields));
                json_object(wall, &thread, "note", &fields, None)
            }
        };
        self.sinks.events.write_all(json.as_bytes())?;
        self.sinks.events.write_all(b"\n")?;
        if is_fill {
            self.totals.fills += 1;
            self.sinks.fills.write_all(json.as_bytes())?;
            self.sinks.fills.write_all(b"\n")?;
        }
        if human {
            let secs = wall / 1_000_000_000;
            let micros = (wall % 1_000_000_000) / 1_000;
            writeln!(self.sinks.human, "{secs}.{micros:06} {thread:<8} {}", self.line)?;
        }
        Ok(is_fill)
    }

    fn event_fields(&self, ev: &Event) -> (&'static str, Vec<(&'static str, String)>) {
        let m = |i: &MarketIdx| self.market(*i).to_string();
        match ev.body {
            EventBody::BookClear { market } => ("book_clear", vec![("market", m(&market))]),
            EventBody::BookLevel {
                market,
                side: s,
                price,
                qty,
            } => (
                "book_level",
                vec![
                    ("market", m(&market)),
                    ("side", side(s).into()),
                    ("price", price.dollars()),
                    ("qty", qty.fp()),
                ],
            ),
            EventBody::BookSnapshotEnd { market } => ("book_snapshot_end", vec![("market", m(&market))]),
            EventBody::BookDelta {
                market,
                side: s,
                price,
                delta,
                own,
            } => (
                "book_delta",
                vec![
                    ("market", m(&market)),
                    ("side", side(s).into()),
                    ("price", price.dollars()),
                    ("delta", delta.fp()),
                    ("own", own.to_string()),
                ],
            ),
            EventBody::Trade {
                market,
                yes_price,
                qty,
                taker,
                trade,
            } => (
                "trade",
                vec![
                    ("market", m(&market)),
                    ("price", yes_price.dollars()),
                    ("qty", qty.fp()),
                    ("taker", side(taker).into()),
                    ("trade", trade_text(trade)),
                ],
            ),
            EventBody::Oracle {
                market,
                probability,
                publish_ms,
            } => (
                "oracle",
                vec![
                    ("market", m(&market)),
                    ("probability", probability.dollars()),
                    ("publish_ms", publish_ms.to_string()),
                ],
            ),
            EventBody::Ticker {
                market,
                yes_bid,
                yes_ask,
                last,
            } => (
                "ticker",
                vec![
                    ("market", m(&market)),
                    ("bid", yes_bid.dollars()),
                    ("ask", yes_ask.dollars()),
                    ("last", last.dollars()),
                ],
            ),
            EventBody::Fill {
                market,
                client,
                order: _,
                side: s,
                yes_price,
                qty,
                is_taker,
                fee,
                post_position,
                trade,
            } => (
                "fill",
                vec![
                    ("market", m(&market)),
                    ("client", format!("{:016x}", client.0)),
                    ("side", side(s).into()),
                    ("price", yes_price.dollars()),
                    ("qty", qty.fp()),
                    ("taker", is_taker.to_string()),
                    ("fee", fee.dollars(6)),
                    ("position", post_position.fp()),
                    ("trade", trade_text(trade)),
                ],
            ),
            EventBody::OrderUpdate {
                market,
                client,
                status,
                side: s,
                price,
                remaining,
                filled,
                ..
            } => (
                "order_update",
                vec![
                    ("market", m(&market)),
                    ("client", format!("{:016x}", client.0)),
                    ("status", format!("{status:?}").to_lowercase()),
                    ("side", side(s).into()),
                    ("price", price.dollars()),
                    ("remaining", remaining.fp()),
                    ("filled", filled.fp()),
                ],
            ),
            EventBody::Position {
                market,
                position,
                realized_pnl,
                fees_paid,
            } => (
                "position",
                vec![
                    ("market", m(&market)),
                    ("position", position.fp()),
                    ("realized_pnl", realized_pnl.dollars(6)),
                    ("fees", fees_paid.dollars(6)),
                ],
            ),
            EventBody::Lifecycle { market, status, yes } => {
                let mut fields = vec![("market", m(&market)), ("status", status.rest_name().into())];
                if let Some(yes) = yes {
                    fields.push(("result", if yes { "yes" } else { "no" }.into()));
                }
                ("lifecycle", fields)
            }
            EventBody::OrderAck {
                market,
                client,
                status,
                filled,
                remaining,
                ..
            } => (
                "order_ack",
                vec![
                    ("market", m(&market)),
                    ("client", format!("{:016x}", client.0)),
                    ("status", format!("{status:?}").to_lowercase()),
                    ("filled", filled.fp()),
                    ("remaining", remaining.fp()),
                ],
            ),
            EventBody::OrderReject {
                market,
                client,
                reason,
                http_status,
            } => (
                "order_reject",
                vec![
                    ("market", m(&market)),
                    ("client", format!("{:016x}", client.0)),
                    ("reason", format!("{reason:?}")),
                    ("http", http_status.to_string()),
                ],
            ),
            EventBody::Subscribed { channel, sid } => ("subscribed", vec![("channel", format!("{channel:?}")), ("sid", sid.to_string())]),
            EventBody::Stale { market, feed: f } => ("stale", vec![("market", m(&market)), ("feed", feed(f).into())]),
            EventBody::WsError { code, sid } => ("ws_error", vec![("code", code.to_string()), ("sid", sid.to_string())]),
            EventBody::Connected { feed: f } => ("connected", vec![("feed", feed(f).into())]),
            EventBody::Disconnected { feed: f } => ("disconnected", vec![("feed", feed(f).into())]),
        }
    }

    fn command_fields(&self, c: &CommandBody) -> (&'static str, Vec<(&'static str, String)>) {
        let m = |i: &MarketIdx| self.market(*i).to_string();
        match *c {
            CommandBody::Place {
                market,
                client,
                side: s,
                price,
                qty,
                tif,
                post_only,
            } => (
                "place",
                vec![
                    ("market", m(&market)),
                    ("client", format!("{:016x}", client.0)),
                    ("side", side(s).into()),
                    ("price", price.dollars()),
                    ("qty", qty.fp()),
                    ("tif", format!("{tif:?}")),
                    ("post_only", post_only.to_string()),
                ],
            ),
            CommandBody::Cancel { market, client, .. } => {
                ("cancel", vec![("market", m(&market)), ("client", format!("{:016x}", client.0))])
            }
            CommandBody::Amend {
                market,
                client,
                side: s,
                price,
                total,
                ..
            } => (
                "amend",
                vec![
                    ("market", m(&market)),
                    ("client", format!("{:016x}", client.0)),
                    ("side", side(s).into()),
                    ("price", price.dollars()),
                    ("total", total.fp()),
                ],
            ),
            CommandBody::Decrease {
                market, client, reduce_to, ..
            } => (
                "decrease",
                vec![
                    ("market", m(&market)),
                    ("client", format!("{:016x}", client.0)),
                    ("reduce_to", reduce_to.fp()),
                ],
            ),
            CommandBody::CancelAll => ("cancel_all", vec![]),
            CommandBody::Resync { market } => ("resync", vec![("market", m(&market))]),
        }
    }
}

fn fields_text(fields: &[(&str, String)]) -> String {
    fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

fn json_object(wall_ns: u64, thread: &str, kind: &str, fields: &[(&str, String)], seq: Option<(u32, u64)>) -> String {
    let mut map = serde_json::Map::new();
    map.insert("ts_ns".into(), wall_ns.into());
    map.insert("thread".into(), thread.into());
    map.insert("kind".into(), kind.into());
    if let Some((sid, seq)) = seq {
        if sid != 0 {
            map.insert("sid".into(), sid.into());
            map.insert("seq".into(), seq.into());
        }
    }
    for (k, v) in fields {
        map.insert((*k).into(), v.clone().into());
    }
    serde_json::Value::Object(map).to_string()
}

/// A trade id in the exchange's UUID form (the log thread formats; the hot path never does).
fn trade_text(t: TradeId) -> String {
    let mut out = [0u8; crate::event::OrderId::WIRE_LEN];
    crate::event::OrderId(t.as_u128()).write(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn feed(f: Feed) -> &'static str {
    match f {
        Feed::Kalshi => "kalshi",
        Feed::Oracle => "oracle",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ClientRef, OrderId, Stamp};
    use crate::event::{Money, Price, Qty};

    fn fill() -> Event {
        Event {
            stamp: Stamp {
                sid: 3,
                seq: 0,
                ..Stamp::default()
            },
            body: EventBody::Fill {
                market: 0,
                client: ClientRef(7),
                order: OrderId(1),
                side: Side::Bid,
                yes_price: Price(5600),
                qty: Qty(1000),
                is_taker: false,
                fee: Money(0),
                post_position: Qty(1000),
                trade: TradeId::from_u128(0x0b6e_2a9a_0a11_41c0_4f77_2a9a_1c02_1af4),
            },
        }
    }

    #[test]
    fn drains_formats_and_journals_fills() {
        let dir = std::env::temp_dir().join(format!("kmm-log-test-{}", std::process::id()));
        let clock = TscClock::calibrate(Duration::from_millis(5));
        let (logger, mut producers) = start(LogConfig::new(&dir), &["io", "strategy"], vec!["KX-A".into()], clock).unwrap();
        producers[1].log(LogBody::Event(fill()));
        producers[1].log(LogBody::Command(CommandBody::CancelAll));
        producers[0].log(LogBody::Gap {
            sid: 3,
            expected: 10,
            got: 12,
        });
        let paths = logger.paths.clone();
        let totals = logger.stop().unwrap();
        assert_eq!(
            totals,
            LogTotals {
                records: 3,
                fills: 1,
                dropped: 0
            }
        );
        let fills = std::fs::read_to_string(&paths.fills).unwrap();
        let line: serde_json::Value = serde_json::from_str(fills.lines().next().unwrap()).unwrap();
        assert_eq!(line["kind"], "fill");
        assert_eq!(line["price"], "0.5600");
        assert_eq!(line["market"], "KX-A");
        let human = std::fs::read_to_string(&paths.human).unwrap();
        assert!(human.contains("GAP sid=3 expected=10 got=12"), "{human}");
        assert!(human.contains("fill market=KX-A"));
        assert_eq!(std::fs::read_to_string(&paths.events).unwrap().lines().count(), 3);
    }

    #[test]
    fn a_full_ring_drops_and_counts() {
        let dir = std::env::temp_dir().join(format!("kmm-log-full-{}", std::process::id()));
        let clock = TscClock::calibrate(Duration::from_millis(5));
        let mut config = LogConfig::new(&dir);
        config.ring_capacity = 4;
        config.drain_interval = Duration::from_secs(3600);
        let (logger, mut producers) = start(config, &["io"], vec![], clock).unwrap();
        // The log thread drains once at start and then sleeps; give it that first pass.
        std::thread::sleep(Duration::from_millis(50));
        for i in 0..10 {
            producers[0].log(LogBody::Note { code: 1, a: i, b: 0 });
        }
        assert_eq!(producers[0].dropped(), 6);
        // stop() wakes the parked thread, which drains the four that fit.
        let totals = logger.stop().unwrap();
        assert_eq!((totals.records, totals.dropped), (4, 6));
    }
}
