//! The io thread: owns the WebSocket and the REST pool on one mio poll, turns frames and REST
//! replies into [`Event`]s on ONE ring (arrival order), and strategy [`Command`]s into requests.
//!
//! Each pass: poll readiness (zero timeout in spin/yield, a short block in park), read every WS
//! frame available and decode it straight into the events ring, drive the REST pool and turn
//! completed replies into `OrderAck`/`OrderReject`, then drain ALL pending commands, coalescing
//! Places into one (batched) create and Cancels into one batched cancel, paced by the account's
//! token buckets and signed from the presigned stock.
//!
//! Recovery: a seq gap makes the decoder emit `Stale{market}`; the io thread answers with
//! `get_snapshot` for those markets (and reconnects, which resubscribes, when no snapshot comes).
//! A lost connection is reported as `Disconnected`, redialled with exponential backoff, and
//! resynchronised: decoder reset and resubscribe (fresh snapshots), then over REST the resting
//! orders (`OrderUpdate`), positions (`Position`, 0 for markets without one) and the fills missed
//! while down (`Fill`), then `Connected`. Fills are deduplicated between the WS stream and the
//! REST listing by (order, count, price, second) multiset counts, so each is reported once.
//!
//! Hot path per frame/command: no allocation, no lock, no formatting, no signing (signatures come
//! from [`Presigner`]; a miss signs inline and is counted). A full events ring is waited on (the
//! stall counted), never dropped: a lost ack or fill would corrupt the strategy's state.

mod fills;
mod gateway;
mod in_flight;
mod out;
mod rehearse;
mod replies;
mod resync;
mod session;

use fills::{FillBook, FillKey};
use gateway::Gateway;
use in_flight::{Awaiting, InFlightTable, Item, Pending, ReqKind};
use out::Out;
use rehearse::Rehearsal;
use session::{Backoff, Session};

use super::kalshi::interner::Interner;
use super::kalshi::rest::blocking::BlockingClient;
use super::kalshi::rest::encode::{encode_batch_cancel, encode_batch_create, encode_command, encode_create, SelfTradePrevention};
use super::kalshi::rest::order_wire::{OrderSpec, OrderWire};
use super::kalshi::rest::pool::{HttpPool, PoolStats};
use super::kalshi::rest::request::{RestRequest, MAX_BATCH};
use super::kalshi::ws::commands::{encode_get_snapshot, encode_subscribe};
use super::kalshi::ws::decode::Decoder;
use super::net::{tls_config, Endpoint};
use super::oracle_feed::{FeedNews, OracleFeed, OracleStats, OracleTiming};
use super::pacing::{Pacer, PacerConfig, PacerStats};
use super::presign::{OrderOp, PresignConfig, PresignStats, Presigner};
use super::venue::{self, VenueConfig};
use super::ws::{ReadStatus, WsAuth, WsClient};
use crate::event::{
    Channel, ClientRef, Command, CommandBody, Event, EventBody, Feed, MarketIdx, Money, OrderId, OrderStatus, Price, Qty, RejectReason,
    Side, Stamp, TimeInForce, TradeId,
};
use crate::logger::{LogBody, LogProducer};
use crate::metrics::{tsc, Stage, StageHistograms, TscClock};
use crate::poll::{Idle, PollMode};
use anyhow::{anyhow, Context};
use kalshi_proto::auth::Signer;
use mio::{Events, Poll, Token};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the io thread is told at start.
#[derive(Debug)]
pub struct IoSetup {
    pub venue: VenueConfig,
    /// Tickers in [`MarketIdx`] order: interned in this order, so the strategy and the io thread
    /// agree on indices.
    pub tickers: Vec<String>,
    pub poll: PollMode,
    pub stp: SelfTradePrevention,
    /// REST connections (2 to 4 is plenty: one request in flight on each).
    pub rest_pool: usize,
    pub presign: PresignConfig,
    pub pacer: PacerConfig,
    /// First reconnect delay; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long the last WS messages keep flowing after the shutdown cancel-all.
    pub shutdown_grace: Duration,
    /// No byte on the WS for this long means a dead connection (Kalshi pings every 10 s).
    pub ws_idle_timeout: Duration,
    /// A stale book without a snapshot this long after `get_snapshot` forces a resubscribe.
    pub snapshot_timeout: Duration,
    /// Live latency for the status line and interval logs: every `histograms_every` the io
    /// thread sends its histograms down the first channel and carries on with an emptied one
    /// from the second (double buffering: nothing allocated, nothing locked).
    pub histograms_out: Option<(
        crossbeam::channel::Sender<StageHistograms>,
        crossbeam::channel::Receiver<StageHistograms>,
    )>,
    pub histograms_every: Duration,
    /// The oracle feed's WebSocket URL: a second session beside Kalshi's, with its own
    /// connectivity (`None`: no oracle).
    pub oracle_url: Option<String>,
    pub oracle_timing: OracleTiming,
}

impl IoSetup {
    pub fn new(venue: VenueConfig, tickers: Vec<String>, poll: PollMode) -> IoSetup {
        IoSetup {
            venue,
            tickers,
            poll,
            stp: SelfTradePrevention::TakerAtCross,
            rest_pool: 3,
            presign: PresignConfig::default(),
            pacer: PacerConfig::default(),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            shutdown_grace: Duration::from_millis(500),
            ws_idle_timeout: Duration::from_secs(30),
            snapshot_timeout: Duration::from_secs(5),
            histograms_out: None,
            histograms_every: Duration::from_secs(1),
            oracle_url: None,
            oracle_timing: OracleTiming::default(),
        }
    }
}

/// Orders to the io thread from the main thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Cancel all our resting orders, confirm over REST that none remain, let the last WS
    /// messages through for `shutdown_grace`, then return.
    Shutdown,
    /// Fault injection: abort the WS socket as a network failure would.
    DropConnection,
}

/// Counters of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IoCounters {
    pub frames: u64,
    /// Events pushed to the ring (WS, REST replies, resync, connection state).
    pub events: u64,
    pub decode_errors: u64,
    pub gaps: u64,
    pub stale_markets: u64,
    pub snapshot_requests: u64,
    pub reconnects: u64,
    pub resyncs: u64,
    /// REST requests sent for commands (a batch counts once).
    pub requests: u64,
    pub batched_creates: u64,
    pub batched_cancels: u64,
    pub commands: u64,
    pub acks: u64,
    pub rejects: u64,
    /// Requests refused locally by pacing (rejected with RateLimited, http_status 0).
    pub paced: u64,
    pub http_429: u64,
    pub http_5xx: u64,
    /// Requests whose connection failed before an answer (outcome unknown; WS updates tell).
    pub http_failed: u64,
    /// Fills from the WS already reported by a REST resync.
    pub fills_deduplicated: u64,
    /// Fills found missing by a resync and reported from REST.
    pub fills_recovered: u64,
    /// Times the events ring was full and the io thread waited for the strategy.
    pub ring_full_stalls: u64,
    /// Events lost because the consumer was gone (never while the strategy runs).
    pub ring_dropped: u64,
    pub presign_hits: u64,
    pub presign_misses: u64,
    /// Amends and decreases held until the signer made their order's signature.
    pub held_for_signature: u64,
}

impl IoCounters {
    /// One request written from a prepared signature or signed inline.
    fn count_stamp(&mut self, stamped: super::presign::Stamped) {
        if stamped.from_stock {
            self.presign_hits += 1;
        } else {
            self.presign_misses += 1;
        }
    }
}

/// What the io thread returns.
pub struct IoReport {
    pub hists: StageHistograms,
    pub counters: IoCounters,
    pub decoder: crate::connector::kalshi::ws::decode::Counters,
    pub presign: PresignStats,
    pub pacer: PacerStats,
    pub http: PoolStats,
    /// Orders that were resting when shutdown's cancel-all ran.
    pub canceled_at_shutdown: usize,
    /// Resting orders the exchange reported after shutdown (must be 0).
    pub resting_after_shutdown: usize,
    /// The oracle feed's counters, when one was configured.
    pub oracle: Option<OracleStats>,
}

impl fmt::Debug for IoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoReport")
            .field("counters", &self.counters)
            .field("decoder", &self.decoder)
            .field("presign", &self.presign)
            .field("pacer", &self.pacer)
            .field("http", &self.http)
            .field("canceled_at_shutdown", &self.canceled_at_shutdown)
            .field("resting_after_shutdown", &self.resting_after_shutdown)
            .field("oracle", &self.oracle)
            .finish_non_exhaustive()
    }
}

/// Codes of the io thread's `LogBody::Note` records.
pub mod note {
    /// WS connected and resynced; a = resting orders, b = fills recovered.
    pub const CONNECTED: u16 = 100;
    /// WS lost; a = reconnect attempt number.
    pub const DISCONNECTED: u16 = 101;
    /// Reconnect attempt failed; a = attempt, b = next delay in ms.
    pub const RECONNECT_FAILED: u16 = 102;
    /// get_snapshot sent; a = markets.
    pub const SNAPSHOT_REQUEST: u16 = 103;
    /// HTTP 429; a = request kind.
    pub const RATE_LIMITED: u16 = 104;
    /// HTTP 5xx or a failed connection; a = status.
    pub const SERVER_ERROR: u16 = 105;
    /// Shutdown cancel-all done; a = orders canceled, b = left resting.
    pub const SHUTDOWN: u16 = 106;
    /// Resync failed; a = attempt.
    pub const RESYNC_FAILED: u16 = 107;
    /// A 2xx order reply that could not be read as sent; a = status, b = request kind.
    pub const UNREADABLE_REPLY: u16 = 108;
}

const WS_TOKEN: Token = Token(0);
/// Far from the REST pool's tokens, which count up from [`HTTP_FIRST_TOKEN`].
const ORACLE_TOKEN: Token = Token(usize::MAX - 1);
const HTTP_FIRST_TOKEN: usize = 1;
/// Frames read per pass before commands get a turn.
const FRAME_BUDGET: usize = 256;
/// Frames parsed between two looks at the command ring.
const FRAMES_PER_DRAIN: usize = 1;
const INFLIGHT_SLOTS: usize = 512;
/// Channels subscribed per market and unfiltered.
const MARKET_CHANNELS: [Channel; 5] = [
    Channel::OrderbookDelta,
    Channel::Trade,
    Channel::Fill,
    Channel::UserOrders,
    Channel::MarketPositions,
];
const GLOBAL_CHANNELS: [Channel; 1] = [Channel::MarketLifecycle];
const ALL_CHANNELS: usize = MARKET_CHANNELS.len() + GLOBAL_CHANNELS.len();

/// How often a spinning io thread runs the warm-up while idle. On these VMs a line untouched
/// for a millisecond is back in DRAM (a 16 KB set costs 1.4 ns a line after 300 us of
/// spinning, 11 ns after 1 ms, 110 ns after 30 ms), so the order path is re-run well inside that.
const WARM_PERIOD_US: f64 = 50.0;
/// Event-ring slots kept in cache ahead of the next burst's pushes.
const WARM_EVENT_SLOTS: usize = 8;

/// Amends and decreases held at once for their signatures; past this they sign inline.
const AWAITING_CAPACITY: usize = 64;
/// How long a held request waits before the io thread signs it itself. The signer makes one
/// in well under this; the bound keeps a stalled signer from holding orders back.
const SIGNATURE_WAIT: Duration = Duration::from_millis(20);

enum WsPhase {
    /// Not connected; redial at the instant.
    Down {
        retry_at: Instant,
    },
    Handshaking {
        ws: WsClient,
        since: Instant,
    },
    /// Subscribed commands sent, waiting for every `subscribed` reply.
    Subscribing {
        ws: WsClient,
        since: Instant,
    },
    Live {
        ws: WsClient,
    },
}

struct Io {
    setup_stp: SelfTradePrevention,
    tickers: Vec<String>,
    poll: Poll,
    /// The Kalshi WebSocket: its connection, redial and liveness.
    session: Session,
    decoder: Decoder,
    out: Out,
    pool: HttpPool,
    presigner: Presigner,
    pacer: Pacer,
    rest: BlockingClient,
    log: LogProducer,
    /// Commands on their way to requests, and the requests awaiting replies.
    gateway: Gateway,
    /// Scratch of [`Io::rehearse_orders`]: nothing written here reaches a socket.
    rehearsal: Rehearsal,
    shutting_down: bool,
    /// The second feed: its own session, its own connectivity.
    oracle: Option<OracleFeed>,
}

/// The wire of `market`'s `side` in [`Io`]'s per-market wire tables.
#[inline]
fn wire_index(market: MarketIdx, side: Side) -> usize {
    usize::from(market) * 2 + usize::from(side == Side::Ask)
}

fn wall_ms() -> u64 {
    super::ws::wall_ms().max(0) as u64
}

impl Io {
    fn new(setup: &IoSetup, clock: TscClock, events: rtrb::Producer<Event>, log: LogProducer) -> anyhow::Result<Io> {
        let venue = &setup.venue;
        let mut interner = Interner::with_capacity(setup.tickers.len().max(1));
        for (i, t) in setup.tickers.iter().enumerate() {
            let idx = interner.intern(t.as_bytes()).map_err(|e| anyhow!("ticker {t:?}: {e:?}"))?;
            if usize::from(idx) != i {
                anyhow::bail!("ticker {t:?} appears twice in the market list");
            }
        }
        let ws_endpoint = Endpoint::parse(&venue.ws_url)?;
        let rest_endpoint = Endpoint::parse(&venue.rest_url)?;
        let tls = if ws_endpoint.tls || rest_endpoint.tls {
            Some(tls_config(venue.ca_pem.as_deref())?)
        } else {
            None
        };
        let poll = Poll::new().context("creating the mio poll")?;
        let pool = HttpPool::new(&venue.rest_url, tls.clone(), setup.rest_pool, poll.registry(), HTTP_FIRST_TOKEN)?;
        let signer = Arc::new(venue.signer()?);
        let presigner = Presigner::spawn(venue.signer()?, &venue.key_id, setup.presign.clone()).context("starting the presigner")?;
        let pacer = Pacer::for_tier(venue.tier, setup.pacer, wall_ms());
        let rest = BlockingClient::new(&venue.rest_url, venue.ca_pem.as_deref(), &venue.key_id, signer.clone())?;
        let n = setup.tickers.len();
        let create_wires = (0..2 * n)
            .map(|_| OrderWire::create(pool.host(), venue.key_id.as_bytes()))
            .collect();
        let amend_wires = (0..2 * n).map(|_| OrderWire::amend(pool.host(), venue.key_id.as_bytes())).collect();
        // A local venue's CA covers its oracle too (one server); any other oracle is checked
        // against the web PKI, like Kalshi.
        let oracle = match &setup.oracle_url {
            Some(url) => {
                let oracle_tls = if url.starts_with("wss://") {
                    Some(tls_config(venue.ca_pem.as_deref())?)
                } else {
                    None
                };
                Some(OracleFeed::new(url, oracle_tls, ORACLE_TOKEN, setup.oracle_timing).with_context(|| format!("the oracle URL {url}"))?)
            }
            None => None,
        };
        Ok(Io {
            session: Session {
                ws_endpoint,
                tls,
                key_id: venue.key_id.clone(),
                signer,
                phase: WsPhase::Down { retry_at: Instant::now() },
                ws_readable: false,
                backoff: Backoff::new(setup.backoff_initial, setup.backoff_max),
                attempts: 0,
                down_since_ms: None,
                ws_last_bytes: 0,
                ws_last_progress: Instant::now(),
                ws_idle_timeout: setup.ws_idle_timeout,
                snapshot_timeout: setup.snapshot_timeout,
                cmd_id: 0,
                wsbuf: Vec::with_capacity(16 * 1024),
            },
            setup_stp: setup.stp,
            tickers: setup.tickers.clone(),
            poll,
            decoder: Decoder::new(interner),
            out: Out {
                events,
                hists: StageHistograms::new(),
                clock,
                counters: IoCounters::default(),
                fills: FillBook::with_capacity(4096),
                clients: HashMap::with_capacity(4096),
                stale_new: Vec::with_capacity(n.max(1)),
                stale_since: vec![None; n],
                subscribed: 0,
                released: Vec::with_capacity(1024),
                prepared: Vec::with_capacity(1024),
            },
            presigner,
            pacer,
            rest,
            log,
            pool,
            rehearsal: Rehearsal {
                out: Vec::with_capacity(4096),
                req: RestRequest::new(),
                count: 0,
            },
            shutting_down: false,
            oracle,
            gateway: Gateway {
                req: RestRequest::new(),
                create_wires,
                amend_wires,
                inflight: InFlightTable::new(INFLIGHT_SLOTS),
                creates: Vec::with_capacity(MAX_BATCH),
                cancels: Vec::with_capacity(MAX_BATCH),
                awaiting: Vec::with_capacity(AWAITING_CAPACITY),
            },
        })
    }

    fn shutdown(&mut self, events_deadline: Duration) -> (usize, usize) {
        self.shutting_down = true;
        self.reject_awaiting();
        let now = Instant::now();
        // In-flight creates must land before the cancel-all, or one could outlive it.
        let deadline = now + Duration::from_secs(10);
        while self.pool.outstanding() > 0 && Instant::now() < deadline {
            self.pass_io(Some(Duration::from_millis(1)));
        }
        let canceled = venue::cancel_all_and_confirm(&mut self.rest, Duration::from_secs(10)).unwrap_or(usize::MAX);
        // The cancellations' WS updates reach the strategy.
        let grace_end = Instant::now() + events_deadline;
        while Instant::now() < grace_end {
            self.pass_io(Some(Duration::from_millis(1)));
        }
        let left = venue::fetch_resting_orders(&mut self.rest).map_or(usize::MAX, |o| o.len());
        self.log.log(LogBody::Note {
            code: note::SHUTDOWN,
            a: canceled as i64,
            b: left as i64,
        });
        if let WsPhase::Live { ws } | WsPhase::Subscribing { ws, .. } | WsPhase::Handshaking { ws, .. } = &mut self.session.phase {
            ws.close();
        }
        self.pool.close(self.poll.registry());
        if let Some(o) = self.oracle.as_mut() {
            o.close(self.poll.registry());
        }
        (canceled, left)
    }

    /// Socket work of one pass (no commands).
    fn pass_io(&mut self, timeout: Option<Duration>) -> bool {
        let mut events = Events::with_capacity(64);
        let _ = self.poll.poll(&mut events, timeout);
        self.note_events(&events);
        let now = Instant::now();
        let mut worked = self.read_ws(now, FRAME_BUDGET);
        worked |= self.poll_http(now);
        worked |= self.drive_ws(now);
        worked
    }

    #[inline]
    fn note_events(&mut self, events: &Events) {
        for e in events.iter() {
            if e.token() == WS_TOKEN {
                self.session.ws_readable = true;
            } else if e.token() == ORACLE_TOKEN {
                if let Some(o) = self.oracle.as_mut() {
                    o.on_readable();
                }
            } else {
                self.pool.on_readable(e.token());
            }
        }
    }

    /// One pass of the oracle session: its connectivity news and ticks go on the events ring
    /// in arrival order with Kalshi's, each naming its feed.
    fn poll_oracle(&mut self, now: Instant) -> bool {
        let Some(feed) = self.oracle.as_mut() else { return false };
        let interner = self.decoder.interner();
        let out = &mut self.out;
        let mut news_seen = false;
        feed.poll(
            now,
            self.poll.registry(),
            |ticker| interner.get(ticker),
            |news| {
                news_seen = true;
                let (exchange_ts_ms, body) = match news {
                    FeedNews::Up => (0, EventBody::Connected { feed: Feed::Oracle }),
                    FeedNews::Down => (0, EventBody::Disconnected { feed: Feed::Oracle }),
                    FeedNews::Tick(t) => (
                        t.publish_ms,
                        EventBody::Oracle {
                            market: t.market,
                            probability: t.probability,
                            publish_ms: t.publish_ms,
                        },
                    ),
                };
                out.push(Event {
                    stamp: Stamp {
                        exchange_ts_ms,
                        ..Stamp::default()
                    },
                    body,
                });
            },
        );
        news_seen
    }

    /// Liveness and snapshot timeouts, presign upkeep: a few times a second.
    fn housekeeping(&mut self, now: Instant) {
        self.presigner.maintain();
        self.apply_presign_requests();
        if let WsPhase::Live { .. } = self.session.phase {
            if now.duration_since(self.session.ws_last_progress) > self.session.ws_idle_timeout {
                self.lost(now);
                return;
            }
            let timeout = self.session.snapshot_timeout;
            if self
                .out
                .stale_since
                .iter()
                .any(|s| s.is_some_and(|t| now.duration_since(t) > timeout))
            {
                // get_snapshot went unanswered: resubscribe everything on a fresh connection.
                self.lost(now);
            }
        }
    }
}

/// Runs the io thread until [`Control::Shutdown`] (or the command/control senders go away).
///
/// `events` is the single ordered ring to the strategy; `commands` the ring from it; `control`
/// carries [`Control`] from the main thread; `log` is this thread's log ring. Returns the stage
/// histograms and counters. Fails only when the set-up cannot be built (bad URL, key, CA).
pub fn run(
    setup: IoSetup,
    clock: TscClock,
    events: rtrb::Producer<Event>,
    mut commands: rtrb::Consumer<Command>,
    control: crossbeam::channel::Receiver<Control>,
    log: LogProducer,
) -> anyhow::Result<IoReport> {
    let mut io = Io::new(&setup, clock, events, log)?;
    let mut idle = Idle::new(setup.poll);
    let timeout = match setup.poll {
        PollMode::Spin | PollMode::Yield => Some(Duration::ZERO),
        PollMode::Park => setup.poll.block_for(),
    };
    let mut mio_events = Events::with_capacity(256);
    // Only a spinning thread owns its core's caches; yielding or parked, the warm-up would
    // spend a shared core on code that others evict anyway.
    let mut warmer = match setup.tickers.first() {
        Some(t) if setup.poll == PollMode::Spin => Some(crate::connector::warm::Warmer::new(t.as_bytes())?),
        _ => None,
    };
    let warm_period = (clock.ticks_per_us * WARM_PERIOD_US) as u64;
    let mut last_warm = 0u64;
    let mut last_housekeeping = Instant::now();
    let mut last_handoff = Instant::now();
    let mut passes: u32 = 0;
    let (canceled, left) = loop {
        let _ = io.poll.poll(&mut mio_events, timeout);
        io.note_events(&mio_events);
        let now = Instant::now();
        // A burst arrives as one TLS record of several frames. Orders the strategy decides on
        // an early frame go out before the rest of the burst is parsed, not after it.
        let mut worked = false;
        for _ in 0..FRAME_BUDGET / FRAMES_PER_DRAIN {
            let read = io.read_ws(now, FRAMES_PER_DRAIN);
            worked |= read;
            worked |= io.drain_commands(&mut commands);
            if !read || !io.session.ws_readable {
                break;
            }
        }
        worked |= io.poll_http(now);
        if !io.out.prepared.is_empty() || !io.out.released.is_empty() {
            // An acked order may be amended within milliseconds: its signature must be
            // asked for now, not at the next housekeeping.
            io.apply_presign_requests();
        }
        worked |= io.drain_commands(&mut commands);
        worked |= io.send_awaiting();
        passes = passes.wrapping_add(1);
        // Connection upkeep and control are slow-path: not every pass.
        if passes % 64 == 0 || !worked {
            worked |= io.drive_ws(now);
            // The oracle is read on the slow path: its ticks never delay Kalshi's frames.
            worked |= io.poll_oracle(now);
            if now.duration_since(last_housekeeping) >= Duration::from_millis(100) {
                last_housekeeping = now;
                io.housekeeping(now);
            }
            if let Some((out, spares)) = &setup.histograms_out {
                if now.duration_since(last_handoff) >= setup.histograms_every {
                    last_handoff = now;
                    if let Ok(spare) = spares.try_recv() {
                        let full = std::mem::replace(&mut io.out.hists, spare);
                        if let Err(e) = out.try_send(full) {
                            // The main thread is behind: keep counting into the same set.
                            io.out.hists = e.into_inner();
                        }
                    }
                }
            }
            match control.try_recv() {
                Ok(Control::Shutdown) | Err(crossbeam::channel::TryRecvError::Disconnected) => {
                    break io.shutdown(setup.shutdown_grace);
                }
                Ok(Control::DropConnection) => {
                    if let WsPhase::Live { ws } | WsPhase::Subscribing { ws, .. } = &mut io.session.phase {
                        ws.abort();
                    }
                    io.session.ws_readable = true;
                }
                Err(crossbeam::channel::TryRecvError::Empty) => {}
            }
        }
        if worked {
            idle.worked();
        } else {
            // The futex wake of the signer waits for a quiet pass, off any burst.
            io.presigner.wake();
            if let Some(w) = warmer.as_mut() {
                let t = tsc();
                if t.wrapping_sub(last_warm) >= warm_period {
                    w.run();
                    io.rehearse_orders();
                    // A read brings 5 frames (up to 20); the order-causing one is rarely first.
                    crate::runtime::warm_next_slots(&mut io.out.events, WARM_EVENT_SLOTS);
                    last_warm = t;
                }
            }
            if setup.poll != PollMode::Park {
                idle.idle();
            }
        }
    };
    // Commands that arrived during shutdown still get their answer.
    while let Ok(cmd) = commands.pop() {
        if let CommandBody::Place { market, client, .. } = cmd.body {
            io.out.reject(
                Item {
                    market,
                    client,
                    order: OrderId(0),
                },
                RejectReason::Other,
            );
        }
    }
    let d = io.decoder.counters();
    let presign = io.presigner.stats();
    Ok(IoReport {
        hists: io.out.hists.clone(),
        counters: io.out.counters,
        decoder: d,
        presign,
        pacer: io.pacer.stats(),
        http: io.pool.stats(),
        canceled_at_shutdown: canceled,
        resting_after_shutdown: left,
        oracle: io.oracle.as_ref().map(OracleFeed::stats),
    })
}
