//! The oracle feed's WebSocket session: the second feed the io thread runs beside Kalshi's.
//!
//! It has its own connectivity: it dials, reads ticks and redials with its own backoff, and
//! what happens to it (up, down, a tick) is reported as [`FeedNews`] for the io thread to put
//! on the events ring. Losing it never touches the Kalshi session, its orders or its kill
//! switch. It sends nothing (the feed publishes every market on connect, unauthenticated), so
//! a session is a socket, a phase and a reader.

use super::net::Endpoint;
use super::oracle_wire::{parse_oracle, OracleSkip, OracleTick};
use super::ws::{ReadStatus, WsClient};
use crate::event::MarketIdx;
use mio::{Registry, Token};
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most frames one pass reads before the io thread returns to its other work.
const FRAME_BUDGET: usize = 64;

/// What changed on the feed during a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedNews {
    /// The connection is open: ticks follow.
    Up,
    /// The connection was lost (after being up); a redial is scheduled.
    Down,
    Tick(OracleTick),
}

/// Counters for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OracleStats {
    pub ticks: u64,
    pub connects: u64,
    pub disconnects: u64,
    /// Frames that were not a tick for one of our markets.
    pub skipped: u64,
    pub last: Option<OracleTick>,
}

enum Phase {
    Down { retry_at: Instant },
    Handshaking { ws: WsClient, since: Instant },
    Live { ws: WsClient },
}

/// Reconnect and liveness timing of the feed.
#[derive(Clone, Copy, Debug)]
pub struct OracleTiming {
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A handshake that takes longer than this is abandoned and redialled.
    pub handshake_timeout: Duration,
    /// No bytes for this long on a live connection: it is dead, redial.
    pub idle_timeout: Duration,
}

impl Default for OracleTiming {
    fn default() -> Self {
        OracleTiming {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

pub struct OracleFeed {
    endpoint: Endpoint,
    tls: Option<Arc<ClientConfig>>,
    token: Token,
    timing: OracleTiming,
    phase: Phase,
    backoff: Duration,
    readable: bool,
    last_bytes: u64,
    last_progress: Instant,
    stats: OracleStats,
}

impl OracleFeed {
    /// A feed at `url` (`wss://…` or `ws://…`), dialled on the first [`OracleFeed::poll`].
    pub fn new(url: &str, tls: Option<Arc<ClientConfig>>, token: Token, timing: OracleTiming) -> anyhow::Result<OracleFeed> {
        let endpoint = Endpoint::parse(url)?;
        let now = Instant::now();
        Ok(OracleFeed {
            endpoint,
            tls,
            token,
            timing,
            phase: Phase::Down { retry_at: now },
            backoff: timing.backoff_initial,
            readable: false,
            last_bytes: 0,
            last_progress: now,
            stats: OracleStats::default(),
        })
    }

    pub fn token(&self) -> Token {
        self.token
    }

    pub fn stats(&self) -> OracleStats {
        self.stats
    }

    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live { .. })
    }

    /// The poll said the socket has something.
    pub fn on_readable(&mut self) {
        self.readable = true;
    }

    /// One pass: dial when due, drive the handshake, read what arrived, check liveness. Ticks
    /// for markets `market_of` does not know are skipped.
    pub fn poll(
        &mut self,
        now: Instant,
        registry: &Registry,
        market_of: impl Fn(&[u8]) -> Option<MarketIdx>,
        mut news: impl FnMut(FeedNews),
    ) {
        match &mut self.phase {
            Phase::Down { retry_at } => {
                if now >= *retry_at {
                    self.dial(now, registry);
                }
            }
            Phase::Handshaking { ws, since } => match ws.poll_handshake() {
                Ok(true) => {
                    let ws = match std::mem::replace(&mut self.phase, Phase::Down { retry_at: now }) {
                        Phase::Handshaking { ws, .. } => ws,
                        _ => unreachable!("matched Handshaking above"),
                    };
                    self.last_bytes = ws.bytes_in();
                    self.last_progress = now;
                    self.readable = true;
                    self.phase = Phase::Live { ws };
                    self.backoff = self.timing.backoff_initial;
                    self.stats.connects += 1;
                    news(FeedNews::Up);
                }
                Ok(false) if now.duration_since(*since) < self.timing.handshake_timeout => {}
                Ok(false) | Err(_) => self.lost(now, registry, false, &mut news),
            },
            Phase::Live { ws } => {
                let stats = &mut self.stats;
                let mut status = ReadStatus::Drained;
                if self.readable {
                    status = ws.read_frames(FRAME_BUDGET, |frame, _, _| match parse_oracle(frame, &market_of) {
                        Ok(tick) => {
                            stats.ticks += 1;
                            stats.last = Some(tick);
                            news(FeedNews::Tick(tick));
                        }
                        Err(OracleSkip::Malformed | OracleSkip::OtherMarket) => stats.skipped += 1,
                    });
                    let _ = ws.flush();
                }
                let bytes = ws.bytes_in();
                if bytes != self.last_bytes {
                    self.last_bytes = bytes;
                    self.last_progress = now;
                }
                match status {
                    ReadStatus::Drained => self.readable = false,
                    ReadStatus::Budget => {}
                    ReadStatus::Closed => return self.lost(now, registry, true, &mut news),
                }
                if now.duration_since(self.last_progress) > self.timing.idle_timeout {
                    self.lost(now, registry, true, &mut news);
                }
            }
        }
    }

    fn dial(&mut self, now: Instant, registry: &Registry) {
        match WsClient::connect(&self.endpoint, self.tls.as_ref(), None, registry, self.token) {
            Ok(ws) => {
                self.readable = true;
                self.phase = Phase::Handshaking { ws, since: now };
            }
            Err(_) => self.schedule_retry(now),
        }
    }

    fn schedule_retry(&mut self, now: Instant) {
        self.phase = Phase::Down {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(self.timing.backoff_max);
    }

    fn lost(&mut self, now: Instant, registry: &Registry, was_live: bool, news: &mut impl FnMut(FeedNews)) {
        if let Phase::Handshaking { mut ws, .. } | Phase::Live { mut ws } =
            std::mem::replace(&mut self.phase, Phase::Down { retry_at: now })
        {
            ws.deregister(registry);
            ws.abort();
        }
        if was_live {
            self.stats.disconnects += 1;
            news(FeedNews::Down);
        }
        self.schedule_retry(now);
    }

    /// Closes the connection politely (shutdown).
    pub fn close(&mut self, registry: &Registry) {
        if let Phase::Handshaking { mut ws, .. } | Phase::Live { mut ws } = std::mem::replace(
            &mut self.phase,
            Phase::Down {
                retry_at: Instant::now() + Duration::from_secs(3600),
            },
        ) {
            ws.deregister(registry);
            ws.close();
        }
    }
}
