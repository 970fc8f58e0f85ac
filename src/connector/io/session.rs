//! The Kalshi WebSocket session: dial, handshake, subscribe, read frames into the events ring,
//! and on a loss report it, back off and redial; plus the liveness checks (idle socket, stale
//! markets and their snapshot requests).
//!
//! Separate because it is the one connection's state machine ([`WsPhase`]); the commands and
//! the REST replies only look at whether it is live.

use super::*;

/// The Kalshi WebSocket session's state, apart from the rest of the io thread's.
pub(super) struct Session {
    pub(super) ws_endpoint: Endpoint,
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
    pub(super) key_id: String,
    pub(super) signer: Arc<Signer>,
    pub(super) phase: WsPhase,
    pub(super) ws_readable: bool,
    pub(super) backoff: Backoff,
    pub(super) attempts: u32,
    /// Unix ms when the last connection was lost (fills since then are fetched on resync).
    pub(super) down_since_ms: Option<u64>,
    pub(super) ws_last_bytes: u64,
    pub(super) ws_last_progress: Instant,
    pub(super) ws_idle_timeout: Duration,
    pub(super) snapshot_timeout: Duration,
    pub(super) cmd_id: u64,
    pub(super) wsbuf: Vec<u8>,
}

/// The redial delay: doubles after each failed attempt up to a cap, back to the first once a
/// connection is live and resynced.
pub(super) struct Backoff {
    next: Duration,
    initial: Duration,
    max: Duration,
}

impl Backoff {
    pub(super) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            next: initial,
            initial,
            max,
        }
    }

    /// The delay before the next attempt; the one after it is twice as long, capped.
    pub(super) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub(super) fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Io {
    pub(super) fn dial(&mut self, now: Instant) {
        self.session.attempts += 1;
        let auth = WsAuth {
            key_id: &self.session.key_id,
            signer: &self.session.signer,
        };
        match WsClient::connect(
            &self.session.ws_endpoint,
            self.session.tls.as_ref(),
            Some(&auth),
            self.poll.registry(),
            WS_TOKEN,
        ) {
            Ok(ws) => {
                self.session.ws_readable = true;
                self.session.phase = WsPhase::Handshaking { ws, since: now };
            }
            Err(_) => self.schedule_retry(now),
        }
    }

    pub(super) fn schedule_retry(&mut self, now: Instant) {
        let delay = self.session.backoff.next_delay();
        self.log.log(LogBody::Note {
            code: note::RECONNECT_FAILED,
            a: i64::from(self.session.attempts),
            b: delay.as_millis() as i64,
        });
        self.session.phase = WsPhase::Down { retry_at: now + delay };
    }

    /// The connection is gone: tell the strategy, forget the subscriptions, redial later.
    pub(super) fn lost(&mut self, now: Instant) {
        let phase = std::mem::replace(&mut self.session.phase, WsPhase::Down { retry_at: now });
        let was_live = matches!(phase, WsPhase::Live { .. } | WsPhase::Subscribing { .. });
        if let WsPhase::Handshaking { mut ws, .. } | WsPhase::Subscribing { mut ws, .. } | WsPhase::Live { mut ws } = phase {
            ws.deregister(self.poll.registry());
            ws.abort();
        }
        if self.session.down_since_ms.is_none() {
            self.session.down_since_ms = Some(wall_ms());
        }
        if was_live {
            self.out.counters.reconnects += 1;
            self.log.log(LogBody::Note {
                code: note::DISCONNECTED,
                a: i64::from(self.session.attempts),
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

    pub(super) fn next_id(&mut self) -> u64 {
        self.session.cmd_id += 1;
        self.session.cmd_id
    }

    /// Sends the subscribe commands for a fresh connection.
    pub(super) fn subscribe(&mut self, ws: &mut WsClient) -> anyhow::Result<()> {
        self.decoder.reset();
        self.out.subscribed = 0;
        let markets: Vec<MarketIdx> = (0..self.tickers.len() as MarketIdx).collect();
        let id = self.next_id();
        self.decoder
            .register_subscribe(id, &MARKET_CHANNELS, &markets, false)
            .map_err(|e| anyhow!("registering the subscription: {e:?}"))?;
        encode_subscribe(
            &mut self.session.wsbuf,
            id,
            &MARKET_CHANNELS,
            self.tickers.iter().map(|t| t.as_bytes()),
            false,
        );
        ws.send_text(&self.session.wsbuf)?;
        let id = self.next_id();
        self.decoder
            .register_subscribe(id, &GLOBAL_CHANNELS, &markets, false)
            .map_err(|e| anyhow!("registering the subscription: {e:?}"))?;
        encode_subscribe(&mut self.session.wsbuf, id, &GLOBAL_CHANNELS, std::iter::empty(), false);
        ws.send_text(&self.session.wsbuf)?;
        Ok(())
    }

    /// Advances the connection state machine. Returns whether anything happened.
    pub(super) fn drive_ws(&mut self, now: Instant) -> bool {
        match &mut self.session.phase {
            WsPhase::Down { retry_at } => {
                if now >= *retry_at && !self.shutting_down {
                    self.dial(now);
                    return true;
                }
                false
            }
            WsPhase::Handshaking { ws, since } => match ws.poll_handshake() {
                Ok(true) => {
                    let WsPhase::Handshaking { mut ws, .. } = std::mem::replace(&mut self.session.phase, WsPhase::Down { retry_at: now })
                    else {
                        unreachable!()
                    };
                    match self.subscribe(&mut ws) {
                        Ok(()) => {
                            self.session.ws_last_bytes = ws.bytes_in();
                            self.session.ws_last_progress = now;
                            self.session.phase = WsPhase::Subscribing { ws, since: now };
                        }
                        Err(_) => {
                            self.session.phase = WsPhase::Live { ws };
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
                    let WsPhase::Subscribing { ws, .. } = std::mem::replace(&mut self.session.phase, WsPhase::Down { retry_at: now })
                    else {
                        unreachable!()
                    };
                    self.session.phase = WsPhase::Live { ws };
                    match self.resync() {
                        Ok((resting, recovered)) => {
                            self.out.counters.resyncs += 1;
                            self.session.down_since_ms = None;
                            self.session.backoff.reset();
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
                                a: i64::from(self.session.attempts),
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
    pub(super) fn read_ws(&mut self, now: Instant, budget: usize) -> bool {
        let ws = match &mut self.session.phase {
            WsPhase::Live { ws } | WsPhase::Subscribing { ws, .. } => ws,
            WsPhase::Handshaking { .. } => return self.session.ws_readable,
            WsPhase::Down { .. } => return false,
        };
        if !self.session.ws_readable {
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
        if bytes != self.session.ws_last_bytes {
            self.session.ws_last_bytes = bytes;
            self.session.ws_last_progress = now;
        }
        // Pongs queued by the reads go out now.
        let flushed = ws.flush();
        match status {
            ReadStatus::Drained => self.session.ws_readable = false,
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
    pub(super) fn request_snapshots(&mut self, now: Instant) {
        let (WsPhase::Live { ws } | WsPhase::Subscribing { ws, .. }) = &mut self.session.phase else {
            self.out.stale_new.clear();
            return;
        };
        while let Some(&first) = self.out.stale_new.first() {
            let Some(sid) = self.decoder.orderbook_sid(first) else {
                // No orderbook subscription carries it (yet): the pending subscribe snapshots it.
                self.out.stale_new.remove(0);
                continue;
            };
            self.session.cmd_id += 1;
            let id = self.session.cmd_id;
            let interner = self.decoder.interner();
            let same_sid = |m: &MarketIdx| self.decoder.orderbook_sid(*m) == Some(sid);
            let tickers = self
                .out
                .stale_new
                .iter()
                .filter(|m| same_sid(m))
                .filter_map(|&m| interner.ticker(m));
            encode_get_snapshot(&mut self.session.wsbuf, id, sid, tickers);
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
            if ws.send_text(&self.session.wsbuf).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;
    use std::time::Duration;

    #[test]
    fn the_backoff_doubles_and_caps() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(500));
        let got: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(got, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
    }

    #[test]
    fn the_backoff_resets_to_the_first_delay() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(5000));
        b.next_delay();
        b.next_delay();
        b.reset();
        assert_eq!(b.next_delay(), ms(100));
        assert_eq!(b.next_delay(), ms(200));
    }
}
