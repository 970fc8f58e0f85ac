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
mod in_flight;
mod out;
mod replies;

use fills::{FillBook, FillKey};
use in_flight::{Awaiting, InFlightTable, Item, Pending, ReqKind};
use out::Out;
use replies::on_reply;

use super::kalshi::interner::Interner;
use super::kalshi::rest::blocking::BlockingClient;
use super::kalshi::rest::encode::{encode_batch_cancel, encode_batch_create, encode_command, encode_create, SelfTradePrevention};
use super::kalshi::rest::order_wire::{OrderSpec, OrderWire};
use super::kalshi::rest::pool::{HttpPool, PoolStats, Reply};
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

// ------------------------------------------------------------------------------------ set-up

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
    ws_endpoint: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
    key_id: String,
    signer: Arc<Signer>,
    poll: Poll,
    decoder: Decoder,
    out: Out,
    pool: HttpPool,
    presigner: Presigner,
    pacer: Pacer,
    rest: BlockingClient,
    log: LogProducer,
    phase: WsPhase,
    ws_readable: bool,
    backoff: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    attempts: u32,
    /// Unix ms when the last connection was lost (fills since then are fetched on resync).
    down_since_ms: Option<u64>,
    ws_last_bytes: u64,
    ws_last_progress: Instant,
    ws_idle_timeout: Duration,
    snapshot_timeout: Duration,
    cmd_id: u64,
    wsbuf: Vec<u8>,
    req: RestRequest,
    /// Single creates' and amends' wire images, one per market and side (see [`OrderWire`]
    /// and [`wire_index`]).
    create_wires: Box<[OrderWire]>,
    amend_wires: Box<[OrderWire]>,
    /// Scratch of [`Io::rehearse_orders`]: nothing written here reaches a socket.
    rehearsal_out: Vec<u8>,
    rehearsal_req: RestRequest,
    rehearsals: usize,
    inflight: InFlightTable,
    creates: Vec<Pending>,
    cancels: Vec<Pending>,
    /// Amends and decreases whose per-order signature the signer has not made yet (the order
    /// was acked or last amended a moment ago). Held rather than signed here: an inline RSA
    /// signature stalls this thread, and every frame and order behind it, for milliseconds.
    awaiting: Vec<Awaiting>,
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
            setup_stp: setup.stp,
            tickers: setup.tickers.clone(),
            ws_endpoint,
            tls,
            key_id: venue.key_id.clone(),
            signer,
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
            phase: WsPhase::Down { retry_at: Instant::now() },
            ws_readable: false,
            backoff: setup.backoff_initial,
            backoff_initial: setup.backoff_initial,
            backoff_max: setup.backoff_max,
            attempts: 0,
            down_since_ms: None,
            ws_last_bytes: 0,
            ws_last_progress: Instant::now(),
            ws_idle_timeout: setup.ws_idle_timeout,
            snapshot_timeout: setup.snapshot_timeout,
            cmd_id: 0,
            wsbuf: Vec::with_capacity(16 * 1024),
            req: RestRequest::new(),
            pool,
            create_wires,
            amend_wires,
            rehearsal_out: Vec::with_capacity(4096),
            rehearsal_req: RestRequest::new(),
            rehearsals: 0,
            inflight: InFlightTable::new(INFLIGHT_SLOTS),
            creates: Vec::with_capacity(MAX_BATCH),
            cancels: Vec::with_capacity(MAX_BATCH),
            awaiting: Vec::with_capacity(AWAITING_CAPACITY),
            shutting_down: false,
            oracle,
        })
    }

    // --- WebSocket lifecycle

    fn dial(&mut self, now: Instant) {
        self.attempts += 1;
        let auth = WsAuth {
            key_id: &self.key_id,
            signer: &self.signer,
        };
        match WsClient::connect(&self.ws_endpoint, self.tls.as_ref(), Some(&auth), self.poll.registry(), WS_TOKEN) {
            Ok(ws) => {
                self.ws_readable = true;
                self.phase = WsPhase::Handshaking { ws, since: now };
            }
            Err(_) => self.schedule_retry(now),
        }
    }

    fn schedule_retry(&mut self, now: Instant) {
        self.log.log(LogBody::Note {
            code: note::RECONNECT_FAILED,
            a: i64::from(self.attempts),
            b: self.backoff.as_millis() as i64,
        });
        self.phase = WsPhase::Down {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(self.backoff_max);
    }

    /// The connection is gone: tell the strategy, forget the subscriptions, redial later.
    fn lost(&mut self, now: Instant) {
        let phase = std::mem::replace(&mut self.phase, WsPhase::Down { retry_at: now });
        let was_live = matches!(phase, WsPhase::Live { .. } | WsPhase::Subscribing { .. });
        if let WsPhase::Handshaking { mut ws, .. } | WsPhase::Subscribing { mut ws, .. } | WsPhase::Live { mut ws } = phase {
            ws.deregister(self.poll.registry());
            ws.abort();
        }
        if self.down_since_ms.is_none() {
            self.down_since_ms = Some(wall_ms());
        }
        if was_live {
            self.out.counters.reconnects += 1;
            self.log.log(LogBody::Note {
                code: note::DISCONNECTED,
                a: i64::from(self.attempts),
                b: 0,
            });
            self.out.push(Event {
                stamp: Stamp::default(),
                body: EventBody::Disconnected { feed: Feed::Kalshi },
            });
        }
        for s in self.out.stale_since.iter_mut() {
            *s = None;
        }
        self.out.stale_new.clear();
        self.schedule_retry(now);
    }

    fn next_id(&mut self) -> u64 {
        self.cmd_id += 1;
        self.cmd_id
    }

    /// Sends the subscribe commands for a fresh connection.
    fn subscribe(&mut self, ws: &mut WsClient) -> anyhow::Result<()> {
        self.decoder.reset();
        self.out.subscribed = 0;
        let markets: Vec<MarketIdx> = (0..self.tickers.len() as MarketIdx).collect();
        let id = self.next_id();
        self.decoder
            .register_subscribe(id, &MARKET_CHANNELS, &markets, false)
            .map_err(|e| anyhow!("registering the subscription: {e:?}"))?;
        encode_subscribe(
            &mut self.wsbuf,
            id,
            &MARKET_CHANNELS,
            self.tickers.iter().map(|t| t.as_bytes()),
            false,
        );
        ws.send_text(&self.wsbuf)?;
        let id = self.next_id();
        self.decoder
            .register_subscribe(id, &GLOBAL_CHANNELS, &markets, false)
            .map_err(|e| anyhow!("registering the subscription: {e:?}"))?;
        encode_subscribe(&mut self.wsbuf, id, &GLOBAL_CHANNELS, std::iter::empty(), false);
        ws.send_text(&self.wsbuf)?;
        Ok(())
    }

    /// Orders, positions and missed fills over REST, as events; then `Connected`.
    fn resync(&mut self) -> anyhow::Result<(usize, usize)> {
        let since_s = self.down_since_ms.map(|ms| (ms / 1000).saturating_sub(10));
        let orders = venue::fetch_resting_orders(&mut self.rest)?;
        let positions = venue::fetch_positions(&mut self.rest)?;
        let fills = match since_s {
            Some(s) => venue::fetch_fills(&mut self.rest, s)?,
            None => Vec::new(),
        };
        let market_of = |t: &str| self.decoder.interner().get(t.as_bytes());
        let mut resting = 0;
        for o in &orders {
            let Some(market) = market_of(&o.ticker) else {
                continue;
            };
            let client = o.client.or_else(|| self.out.clients.get(&o.order.0).copied()).unwrap_or_default();
            self.out.clients.insert(o.order.0, client);
            resting += 1;
            self.out.push(Event {
                stamp: Stamp::default(),
                body: EventBody::OrderUpdate {
                    market,
                    client,
                    order: o.order,
                    status: OrderStatus::Resting,
                    side: o.side,
                    price: o.price,
                    remaining: o.remaining,
                    filled: o.filled,
                },
            });
        }
        // Missed fills: per key, what REST lists beyond what was reported.
        let mut listed: HashMap<FillKey, u32> = HashMap::new();
        let mut recovered = 0;
        for f in &fills {
            let Some(market) = market_of(&f.ticker) else {
                continue;
            };
            let key = FillKey {
                order: f.order.0,
                qty: f.qty.0,
                price: f.yes_price.0,
                ts_s: f.ts_ms / 1000,
            };
            let n = listed.entry(key).or_default();
            *n += 1;
            if !self.out.fills.on_listed(key, *n) {
                continue;
            }
            recovered += 1;
            let post_position = positions.iter().find(|p| p.ticker == f.ticker).map_or(Qty::ZERO, |p| p.position);
            let client = f.client.or_else(|| self.out.clients.get(&f.order.0).copied()).unwrap_or_default();
            self.out.push(Event {
                stamp: Stamp {
                    exchange_ts_ms: f.ts_ms,
                    ..Stamp::default()
                },
                body: EventBody::Fill {
                    market,
                    client,
                    order: f.order,
                    side: f.side,
                    yes_price: f.yes_price,
                    qty: f.qty,
                    is_taker: f.is_taker,
                    fee: f.fee,
                    // REST fills carry no running position: the position after the resync.
                    post_position,
                    trade: TradeId::parse(f.trade_id.as_bytes()).unwrap_or_default(),
                },
            });
        }
        self.out.counters.fills_recovered += recovered as u64;
        for (i, t) in self.tickers.iter().enumerate() {
            let p = positions.iter().find(|p| &p.ticker == t);
            self.out.push(Event {
                stamp: Stamp::default(),
                body: EventBody::Position {
                    market: i as MarketIdx,
                    position: p.map_or(Qty::ZERO, |p| p.position),
                    realized_pnl: p.map_or(Money(0), |p| p.realized_pnl),
                    fees_paid: p.map_or(Money(0), |p| p.fees_paid),
                },
            });
        }
        Ok((resting, recovered))
    }

    /// Advances the connection state machine. Returns whether anything happened.
    fn drive_ws(&mut self, now: Instant) -> bool {
        match &mut self.phase {
            WsPhase::Down { retry_at } => {
                if now >= *retry_at && !self.shutting_down {
                    self.dial(now);
                    return true;
                }
                false
            }
            WsPhase::Handshaking { ws, since } => match ws.poll_handshake() {
                Ok(true) => {
                    let WsPhase::Handshaking { mut ws, .. } = std::mem::replace(&mut self.phase, WsPhase::Down { retry_at: now }) else {
                        unreachable!()
                    };
                    match self.subscribe(&mut ws) {
                        Ok(()) => {
                            self.ws_last_bytes = ws.bytes_in();
                            self.ws_last_progress = now;
                            self.phase = WsPhase::Subscribing { ws, since: now };
                        }
                        Err(_) => {
                            self.phase = WsPhase::Live { ws };
                            self.lost(now);
                        }
                    }
                    true
                }
                Ok(false) => {
                    if now.duration_since(*since) > Duration::from_secs(10) {
                        self.lost(now);
                    }
                    false
                }
                Err(_) => {
                    self.lost(now);
                    true
                }
            },
            WsPhase::Subscribing { since, .. } => {
                if self.out.subscribed >= ALL_CHANNELS {
                    let WsPhase::Subscribing { ws, .. } = std::mem::replace(&mut self.phase, WsPhase::Down { retry_at: now }) else {
                        unreachable!()
                    };
                    self.phase = WsPhase::Live { ws };
                    match self.resync() {
                        Ok((resting, recovered)) => {
                            self.out.counters.resyncs += 1;
                            self.down_since_ms = None;
                            self.backoff = self.backoff_initial;
                            self.log.log(LogBody::Note {
                                code: note::CONNECTED,
                                a: resting as i64,
                                b: recovered as i64,
                            });
                            self.out.push(Event {
                                stamp: Stamp::default(),
                                body: EventBody::Connected { feed: Feed::Kalshi },
                            });
                        }
                        Err(_) => {
                            self.log.log(LogBody::Note {
                                code: note::RESYNC_FAILED,
                                a: i64::from(self.attempts),
                                b: 0,
                            });
                            self.lost(now);
                        }
                    }
                    return true;
                }
                if now.duration_since(*since) > Duration::from_secs(10) {
                    self.lost(now);
                    return true;
                }
                false
            }
            WsPhase::Live { .. } => false,
        }
    }

    /// Reads every available frame into the decoder and the ring.
    fn read_ws(&mut self, now: Instant, budget: usize) -> bool {
        let ws = match &mut self.phase {
            WsPhase::Live { ws } | WsPhase::Subscribing { ws, .. } => ws,
            WsPhase::Handshaking { .. } => return self.ws_readable,
            WsPhase::Down { .. } => return false,
        };
        if !self.ws_readable {
            return false;
        }
        let frames_before = ws.frames();
        let decoder = &mut self.decoder;
        let out = &mut self.out;
        let log = &mut self.log;
        let status = ws.read_frames(budget, |frame, read_tsc, decoded_tsc| {
            out.counters.frames += 1;
            let stamp = Stamp {
                read_tsc,
                decoded_tsc,
                ..Stamp::default()
            };
            out.hists.record(Stage::Decode, out.clock.between(read_tsc, decoded_tsc));
            let gaps = decoder.counters().seq_gaps;
            let r = decoder.decode(frame, stamp, &mut |ev| out.on_ws_event(ev));
            out.hists.record(Stage::Parse, out.clock.between(decoded_tsc, tsc()));
            if decoder.counters().seq_gaps != gaps {
                out.counters.gaps += 1;
            }
            if let Err(e) = r {
                out.counters.decode_errors += 1;
                log.log(LogBody::DecodeError { code: e as u16 });
            }
        });
        let worked = ws.frames() != frames_before;
        let bytes = ws.bytes_in();
        if bytes != self.ws_last_bytes {
            self.ws_last_bytes = bytes;
            self.ws_last_progress = now;
        }
        // Pongs queued by the reads go out now.
        let flushed = ws.flush();
        match status {
            ReadStatus::Drained => self.ws_readable = false,
            ReadStatus::Budget => {}
            ReadStatus::Closed => {
                self.lost(now);
                return true;
            }
        }
        if flushed.is_err() {
            self.lost(now);
            return true;
        }
        if !self.out.stale_new.is_empty() {
            self.request_snapshots(now);
        }
        worked
    }

    /// `get_snapshot` for the markets that went stale, one command per orderbook sid.
    fn request_snapshots(&mut self, now: Instant) {
        let (WsPhase::Live { ws } | WsPhase::Subscribing { ws, .. }) = &mut self.phase else {
            self.out.stale_new.clear();
            return;
        };
        while let Some(&first) = self.out.stale_new.first() {
            let Some(sid) = self.decoder.orderbook_sid(first) else {
                // No orderbook subscription carries it (yet): the pending subscribe snapshots it.
                self.out.stale_new.remove(0);
                continue;
            };
            self.cmd_id += 1;
            let id = self.cmd_id;
            let interner = self.decoder.interner();
            let same_sid = |m: &MarketIdx| self.decoder.orderbook_sid(*m) == Some(sid);
            let tickers = self
                .out
                .stale_new
                .iter()
                .filter(|m| same_sid(m))
                .filter_map(|&m| interner.ticker(m));
            encode_get_snapshot(&mut self.wsbuf, id, sid, tickers);
            let mut n = 0;
            for &m in self.out.stale_new.iter().filter(|m| same_sid(m)) {
                self.out.stale_since[usize::from(m)] = Some(now);
                n += 1;
            }
            self.out.stale_new.retain(|m| self.decoder.orderbook_sid(*m) != Some(sid));
            self.out.counters.snapshot_requests += 1;
            self.log.log(LogBody::Note {
                code: note::SNAPSHOT_REQUEST,
                a: n,
                b: i64::from(sid),
            });
            if ws.send_text(&self.wsbuf).is_err() {
                break;
            }
        }
    }

    // --- commands

    /// Sends `self.req` for the in-flight slot, paced. Returns the write TSC (0: queued).
    fn send_request(&mut self, slot: usize) -> u64 {
        self.out.counters.requests += 1;
        let mut buf = self.pool.take_buffer();
        let before = self.presigner.stats();
        self.presigner.write_request(&mut buf, &self.req, self.pool.host());
        let after = self.presigner.stats();
        self.out.counters.presign_hits += after.hits - before.hits;
        self.out.counters.presign_misses += after.misses - before.misses;
        self.pool.submit(slot as u64, buf)
    }

    fn pace(&mut self, kind: ReqKind, n: usize) -> bool {
        if self.pacer.try_acquire(kind.pacing(), n, wall_ms()) {
            true
        } else {
            self.out.counters.paced += n as u64;
            false
        }
    }

    /// Takes the pacer's tokens for the longest head of a waiting batch that fits now and
    /// refuses the rest (the strategy re-sends them on a later reconcile). A batch is never
    /// refused whole for being big: eight creates at once cost more than the write bucket
    /// holds beside its cancel reserve, and waiting for them all to fit would wait for ever.
    /// `kind` names the batch: `BatchCreate` the creates, `BatchCancel` the cancels.
    fn pace_batch(&mut self, kind: ReqKind) -> usize {
        let Io {
            pacer,
            out,
            creates,
            cancels,
            ..
        } = self;
        let batch = if kind == ReqKind::BatchCreate { creates } else { cancels };
        let n = pacer.acquire_up_to(kind.pacing(), batch.len(), wall_ms());
        for p in batch.drain(n..) {
            out.counters.paced += 1;
            out.reject(p.item, RejectReason::RateLimited);
        }
        n
    }

    /// Drains every pending command: batches creates and cancels, sends the rest at once.
    fn drain_commands(&mut self, commands: &mut rtrb::Consumer<Command>) -> bool {
        let mut any = false;
        while let Ok(cmd) = commands.pop() {
            any = true;
            let io_dequeued = tsc();
            self.out.counters.commands += 1;
            let mut p = Pending {
                item: Item::default(),
                side: Side::Bid,
                price: Price(0),
                qty: Qty::ZERO,
                tif: None,
                post_only: false,
                cause: cmd.cause,
                dequeued: cmd.dequeued_tsc,
                decided: cmd.decided_tsc,
                io_dequeued,
            };
            match cmd.body {
                CommandBody::Place {
                    market,
                    client,
                    side,
                    price,
                    qty,
                    tif,
                    post_only,
                } => {
                    p.item = Item {
                        market,
                        client,
                        order: OrderId(0),
                    };
                    if self.shutting_down {
                        self.out.reject(p.item, RejectReason::Other);
                        continue;
                    }
                    p.side = side;
                    p.price = price;
                    p.qty = qty;
                    p.tif = Some(tif);
                    p.post_only = post_only;
                    if self.creates.len() == MAX_BATCH {
                        self.flush_creates();
                    }
                    self.creates.push(p);
                }
                CommandBody::Cancel { market, client, order } => {
                    p.item = Item { market, client, order };
                    if self.cancels.len() == MAX_BATCH {
                        self.flush_cancels();
                    }
                    self.cancels.push(p);
                }
                CommandBody::Amend { market, client, order, .. } | CommandBody::Decrease { market, client, order, .. } => {
                    p.item = Item { market, client, order };
                    let (kind, op) = if matches!(cmd.body, CommandBody::Amend { .. }) {
                        (ReqKind::Amend, OrderOp::Amend)
                    } else {
                        (ReqKind::Decrease, OrderOp::Decrease)
                    };
                    if !self.presigner.order_ready(order, op) && self.awaiting.len() < AWAITING_CAPACITY && !self.shutting_down {
                        // Asked again in case the order's request was lost or dropped (a no-op
                        // when the signer already has it in hand); the wake follows the writes.
                        self.presigner.prepare(order, op);
                        self.awaiting.push(Awaiting {
                            kind,
                            op,
                            order,
                            pending: p,
                            body: cmd.body,
                            deadline: Instant::now() + SIGNATURE_WAIT,
                        });
                        self.out.counters.held_for_signature += 1;
                        continue;
                    }
                    self.send_single(kind, p, &cmd.body);
                }
                CommandBody::CancelAll => {
                    // Held amends would only fail against canceled orders.
                    self.reject_awaiting();
                    p.item = Item::default();
                    self.send_single(ReqKind::CancelAll, p, &cmd.body);
                }
                CommandBody::Resync { market } => {
                    if let Some(s) = self.out.stale_since.get(usize::from(market)) {
                        if s.is_none() && !self.out.stale_new.contains(&market) {
                            self.out.stale_new.push(market);
                        }
                    }
                }
            }
        }
        // Cancels first: they free balance and risk for the creates behind them.
        if !self.cancels.is_empty() {
            self.flush_cancels();
        }
        if !self.creates.is_empty() {
            self.flush_creates();
        }
        if any {
            self.presigner.wake();
        }
        any
    }

    /// Sends the held amends and decreases whose signature has come, or whose wait is over.
    fn send_awaiting(&mut self) -> bool {
        if self.awaiting.is_empty() {
            return false;
        }
        let now = Instant::now();
        let mut sent = false;
        let mut i = 0;
        while i < self.awaiting.len() {
            let a = self.awaiting[i];
            if now >= a.deadline || self.presigner.order_ready(a.order, a.op) {
                // In order of arrival: the strategy never has two requests on one order.
                self.awaiting.remove(i);
                self.send_single(a.kind, a.pending, &a.body);
                sent = true;
            } else {
                i += 1;
            }
        }
        sent
    }

    fn reject_awaiting(&mut self) {
        for i in 0..self.awaiting.len() {
            let item = self.awaiting[i].pending.item;
            self.out.reject(item, RejectReason::Other);
        }
        self.awaiting.clear();
    }

    fn send_single(&mut self, kind: ReqKind, p: Pending, body: &CommandBody) {
        if !self.pace(kind, 1) {
            self.out.reject(p.item, RejectReason::RateLimited);
            return;
        }
        let Some(slot) = self.inflight.alloc(kind) else {
            self.out.reject(p.item, RejectReason::RateLimited);
            return;
        };
        let f = &mut self.inflight[slot];
        f.items[0] = p.item;
        f.n = 1;
        let w = match *body {
            // Most of the order flow once quotes rest: patched into the market's prebuilt
            // amend, not encoded and framed.
            CommandBody::Amend {
                market,
                client,
                order,
                side,
                price,
                total,
            } if wire_index(market, side) < self.amend_wires.len() && self.decoder.interner().ticker(market).is_some() => {
                let spec = OrderSpec {
                    ticker: self.decoder.interner().ticker(market).unwrap_or(b""),
                    client,
                    side,
                    price,
                    qty: total,
                    tif: TimeInForce::GoodTillCanceled,
                    post_only: false,
                    stp: self.setup_stp,
                };
                self.out.counters.requests += 1;
                let mut buf = self.pool.take_buffer();
                let stamped = self
                    .presigner
                    .write_amend(&mut buf, &mut self.amend_wires[wire_index(market, side)], order, &spec);
                self.out.counters.count_stamp(stamped);
                self.pool.submit(slot as u64, buf)
            }
            _ => {
                if encode_command(&mut self.req, self.decoder.interner(), body, self.setup_stp).is_err() {
                    self.inflight.free(slot);
                    self.out.reject(p.item, RejectReason::InvalidOrder);
                    return;
                }
                self.send_request(slot)
            }
        };
        self.out.record_command(&p, w);
    }

    fn flush_creates(&mut self) {
        let n = self.pace_batch(ReqKind::BatchCreate);
        if n == 0 {
            return;
        }
        let kind = if n == 1 { ReqKind::Create } else { ReqKind::BatchCreate };
        let Some(slot) = self.inflight.alloc(kind) else {
            for i in 0..n {
                let item = self.creates[i].item;
                self.out.reject(item, RejectReason::RateLimited);
            }
            self.creates.clear();
            return;
        };
        let interner = self.decoder.interner();
        let stp = self.setup_stp;
        let spec = |p: &Pending| OrderSpec {
            ticker: interner.ticker(p.item.market).unwrap_or(b""),
            client: p.item.client,
            side: p.side,
            price: p.price,
            qty: p.qty,
            tif: p.tif.unwrap_or(TimeInForce::GoodTillCanceled),
            post_only: p.post_only,
            stp,
        };
        let mut write_tsc = None;
        if n == 1 {
            let p = self.creates[0];
            match self.create_wires.get_mut(wire_index(p.item.market, p.side)) {
                Some(wire) => {
                    self.out.counters.requests += 1;
                    let mut buf = self.pool.take_buffer();
                    let stamped = self.presigner.write_create(&mut buf, wire, &spec(&p));
                    self.out.counters.count_stamp(stamped);
                    self.inflight[slot].items[0] = p.item;
                    self.inflight[slot].n = 1;
                    write_tsc = Some(self.pool.submit(slot as u64, buf));
                }
                None => encode_create(&mut self.req, &spec(&p)),
            }
        } else {
            let mut specs = [spec(&self.creates[0]); MAX_BATCH];
            for (i, p) in self.creates.iter().enumerate() {
                specs[i] = spec(p);
            }
            encode_batch_create(&mut self.req, &specs[..n]);
            self.out.counters.batched_creates += 1;
        }
        let w = match write_tsc {
            Some(w) => w,
            None => {
                let f = &mut self.inflight[slot];
                for (i, p) in self.creates.iter().enumerate() {
                    f.items[i] = p.item;
                }
                f.n = n;
                self.send_request(slot)
            }
        };
        for i in 0..n {
            let p = self.creates[i];
            self.out.record_command(&p, w);
        }
        self.creates.clear();
    }

    fn flush_cancels(&mut self) {
        let n = self.pace_batch(ReqKind::BatchCancel);
        if n == 0 {
            return;
        }
        let Some(slot) = self.inflight.alloc(ReqKind::BatchCancel) else {
            for i in 0..n {
                let item = self.cancels[i].item;
                self.out.reject(item, RejectReason::RateLimited);
            }
            self.cancels.clear();
            return;
        };
        // Always the batch endpoint: its signature is always in stock (a single cancel's path
        // names the order, so it is presigned only per order).
        let mut ids = [OrderId(0); MAX_BATCH];
        for (i, p) in self.cancels.iter().enumerate() {
            ids[i] = p.item.order;
        }
        encode_batch_cancel(&mut self.req, &ids[..n]);
        if n > 1 {
            self.out.counters.batched_cancels += 1;
        }
        let f = &mut self.inflight[slot];
        for (i, p) in self.cancels.iter().enumerate() {
            f.items[i] = p.item;
        }
        f.n = n;
        let w = self.send_request(slot);
        for i in 0..n {
            let p = self.cancels[i];
            self.out.record_command(&p, w);
        }
        self.cancels.clear();
    }

    /// Runs the order path's own code on its own data, minus the write: one single create and
    /// one amend through the real wires of one market and side (in turn) and one batch cancel, stamped
    /// from the signatures at the front of the stock, which stay there. A spinning io thread
    /// calls this while idle so the next real order finds its wire, its signature slot and the
    /// code in cache.
    fn rehearse_orders(&mut self) {
        if self.create_wires.is_empty() {
            return;
        }
        self.rehearsals = self.rehearsals.wrapping_add(1);
        let w = self.rehearsals % self.create_wires.len();
        let market = MarketIdx::try_from(w / 2).unwrap_or_default();
        let side = if w % 2 == 0 { Side::Bid } else { Side::Ask };
        let spec = OrderSpec {
            ticker: self.decoder.interner().ticker(market).unwrap_or(b""),
            client: ClientRef(self.rehearsals as u64),
            side,
            price: Price(5000),
            qty: Qty(100),
            tif: TimeInForce::GoodTillCanceled,
            post_only: true,
            stp: self.setup_stp,
        };
        let out = &mut self.rehearsal_out;
        self.presigner.rehearse_create(out, &mut self.create_wires[w], &spec);
        std::hint::black_box(&*out);
        encode_batch_cancel(&mut self.rehearsal_req, &[OrderId(self.rehearsals as u128)]);
        self.presigner.rehearse_request(out, &self.rehearsal_req, self.pool.host());
        std::hint::black_box(&*out);
        // Amends are most of the order flow once quotes rest.
        let out = &mut self.rehearsal_out;
        self.presigner
            .rehearse_amend(out, &mut self.amend_wires[w], OrderId(self.rehearsals as u128), &spec);
        std::hint::black_box(&*out);
    }

    // --- replies

    fn poll_http(&mut self, now: Instant) -> bool {
        let Io {
            pool,
            poll,
            inflight,
            out,
            pacer,
            log,
            ..
        } = self;
        let n = pool.poll(poll.registry(), now, &mut |r: Reply<'_>| {
            let slot = r.tag as usize;
            let Some(f) = inflight.take(slot) else {
                return;
            };
            on_reply(out, pacer, log, &f, &r);
        });
        n > 0
    }

    fn apply_presign_requests(&mut self) {
        for o in self.out.prepared.drain(..) {
            // Amends are the common request on a resting order: its signature is made first.
            self.presigner.prepare(o, OrderOp::Amend);
            self.presigner.prepare(o, OrderOp::Decrease);
        }
        for o in self.out.released.drain(..) {
            self.presigner.release(o);
        }
    }

    // --- shutdown

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
        if let WsPhase::Live { ws } | WsPhase::Subscribing { ws, .. } | WsPhase::Handshaking { ws, .. } = &mut self.phase {
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
                self.ws_readable = true;
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
        if let WsPhase::Live { .. } = self.phase {
            if now.duration_since(self.ws_last_progress) > self.ws_idle_timeout {
                self.lost(now);
                return;
            }
            let timeout = self.snapshot_timeout;
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
            if !read || !io.ws_readable {
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
                    if let WsPhase::Live { ws } | WsPhase::Subscribing { ws, .. } = &mut io.phase {
                        ws.abort();
                    }
                    io.ws_readable = true;
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
