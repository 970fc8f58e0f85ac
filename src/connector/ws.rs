//! The WebSocket client: tungstenite over a [`NetStream`], handshake driven without blocking.
//!
//! The upgrade carries Kalshi's three auth headers, signed over `ts + "GET" + path` at connect
//! time (a connect is rare and never on the tick-to-order path, so signing here is fine). Pings
//! are answered by tungstenite itself: the Pong is queued on `read` and flushed on the next
//! `read` or [`WsClient::flush`]. Text frames are handed out as borrowed bytes from tungstenite's
//! reused input buffer, with the TSC of the socket read that completed them and the TSC right
//! after deframing and decryption.

use super::net::{Endpoint, NetStream};
use crate::metrics::tsc;
use anyhow::{anyhow, Context};
use kalshi_proto::auth::Signer;
use mio::{Registry, Token};
use rustls::ClientConfig;
use std::io;
use std::sync::Arc;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// Credentials for the upgrade request. `signer` holds the private key; it is never printed.
pub struct WsAuth<'a> {
    pub key_id: &'a str,
    pub signer: &'a Signer,
}

enum State {
    Handshaking(MidHandshake<ClientHandshake<NetStream>>),
    Open(WebSocket<NetStream>),
    /// Between states while a handshake step runs, and after a failure.
    Dead,
}

/// What a call to [`WsClient::read_frames`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// Drained everything available (the socket would block).
    Drained,
    /// Stopped at the frame budget; more may be buffered.
    Budget,
    /// The peer closed or the connection failed: reconnect.
    Closed,
}

/// One WebSocket connection.
pub struct WsClient {
    state: State,
    token: Token,
    frames: u64,
}

fn header_value(s: &str) -> anyhow::Result<tungstenite::http::HeaderValue> {
    tungstenite::http::HeaderValue::from_str(s).map_err(|e| anyhow!("invalid header value: {e}"))
}

impl WsClient {
    /// Connects the socket, registers it with `registry` under `token` and starts the upgrade.
    /// Drive it with [`WsClient::poll_handshake`] until it reports open.
    pub fn connect(
        endpoint: &Endpoint,
        tls: Option<&Arc<ClientConfig>>,
        auth: Option<&WsAuth<'_>>,
        registry: &Registry,
        token: Token,
    ) -> anyhow::Result<WsClient> {
        let mut stream = NetStream::connect(endpoint, tls)?;
        stream.register(registry, token).context("registering the WebSocket")?;
        let scheme = if endpoint.tls { "wss" } else { "ws" };
        let url = format!("{scheme}://{}{}", endpoint.host_header(), endpoint.path);
        let mut request = url.as_str().into_client_request().context("building the upgrade request")?;
        if let Some(a) = auth {
            let ts = wall_ms();
            let sig = a.signer.sign(ts, "GET", &endpoint.path);
            let h = request.headers_mut();
            h.insert("KALSHI-ACCESS-KEY", header_value(a.key_id)?);
            h.insert("KALSHI-ACCESS-TIMESTAMP", header_value(&ts.to_string())?);
            h.insert("KALSHI-ACCESS-SIGNATURE", header_value(&sig)?);
        }
        let mut config = WebSocketConfig::default();
        // Snapshots of wide ladders are large; Kalshi's own limit is well under this.
        config.max_message_size = Some(64 << 20);
        config.max_frame_size = Some(64 << 20);
        let state = match tungstenite::client::client_with_config(request, stream, Some(config)) {
            Ok((ws, _)) => State::Open(ws),
            Err(HandshakeError::Interrupted(mid)) => State::Handshaking(mid),
            Err(HandshakeError::Failure(e)) => return Err(anyhow!("WebSocket upgrade failed: {e}")),
        };
        Ok(WsClient { state, token, frames: 0 })
    }

    pub fn token(&self) -> Token {
        self.token
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Advances the upgrade; `Ok(true)` once the connection is open.
    pub fn poll_handshake(&mut self) -> anyhow::Result<bool> {
        match std::mem::replace(&mut self.state, State::Dead) {
            State::Open(ws) => {
                self.state = State::Open(ws);
                Ok(true)
            }
            State::Dead => Err(anyhow!("WebSocket is closed")),
            State::Handshaking(mut mid) => {
                // Ciphertext the socket refused earlier goes first.
                mid.get_mut().get_mut().flush_pending().context("TLS write during the upgrade")?;
                match mid.handshake() {
                    Ok((ws, _)) => {
                        self.state = State::Open(ws);
                        Ok(true)
                    }
                    Err(HandshakeError::Interrupted(mid)) => {
                        self.state = State::Handshaking(mid);
                        Ok(false)
                    }
                    Err(HandshakeError::Failure(e)) => Err(anyhow!("WebSocket upgrade failed: {e}")),
                }
            }
        }
    }

    fn stream_mut(&mut self) -> Option<&mut NetStream> {
        match &mut self.state {
            State::Open(ws) => Some(ws.get_mut()),
            State::Handshaking(mid) => Some(mid.get_mut().get_mut()),
            State::Dead => None,
        }
    }

    /// Reads up to `budget` data frames, handing each text (or binary) payload to `on_frame`
    /// with (read_tsc, decoded_tsc). Control frames are handled here (Pong queued by tungstenite).
    #[inline]
    pub fn read_frames(&mut self, budget: usize, mut on_frame: impl FnMut(&[u8], u64, u64)) -> ReadStatus {
        let State::Open(ws) = &mut self.state else {
            return ReadStatus::Closed;
        };
        let mut n = 0;
        while n < budget {
            match ws.read() {
                Ok(Message::Text(text)) => {
                    let decoded = tsc();
                    let read_tsc = ws.get_ref().last_read_tsc();
                    self.frames += 1;
                    n += 1;
                    on_frame(text.as_bytes(), read_tsc, decoded);
                }
                Ok(Message::Binary(bytes)) => {
                    let decoded = tsc();
                    let read_tsc = ws.get_ref().last_read_tsc();
                    self.frames += 1;
                    n += 1;
                    on_frame(&bytes, read_tsc, decoded);
                }
                Ok(Message::Close(_)) => return ReadStatus::Closed,
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return ReadStatus::Drained,
                Err(_) => return ReadStatus::Closed,
            }
        }
        ReadStatus::Budget
    }

    /// Sends one text command (subscribe, get_snapshot...). Allocates: not for the hot path.
    pub fn send_text(&mut self, text: &[u8]) -> anyhow::Result<()> {
        let State::Open(ws) = &mut self.state else {
            return Err(anyhow!("WebSocket is not open"));
        };
        let s = std::str::from_utf8(text).context("WebSocket command is not UTF-8")?;
        match ws.send(Message::text(s)) {
            Ok(()) => Ok(()),
            // Queued in tungstenite's buffer; `flush` sends it when the socket drains.
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(anyhow!("WebSocket send failed: {e}")),
        }
    }

    /// Pushes queued frames (Pongs, commands) and TLS ciphertext to the socket.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.state {
            State::Open(ws) => match ws.flush() {
                Ok(()) => Ok(()),
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Err(tungstenite::Error::Io(e)) => Err(e),
                Err(e) => Err(io::Error::other(e.to_string())),
            },
            State::Handshaking(mid) => mid.get_mut().get_mut().flush_pending(),
            State::Dead => Ok(()),
        }
    }

    /// Bytes received so far (for liveness checks).
    pub fn bytes_in(&self) -> u64 {
        match &self.state {
            State::Open(ws) => ws.get_ref().bytes_in(),
            State::Handshaking(mid) => mid.get_ref().get_ref().bytes_in(),
            State::Dead => 0,
        }
    }

    /// Cuts the socket as a network failure would: no close frame, no close_notify.
    pub fn abort(&mut self) {
        if let Some(s) = self.stream_mut() {
            s.abort();
        }
    }

    /// A polite close frame, then the socket closes. Best effort.
    pub fn close(&mut self) {
        if let State::Open(ws) = &mut self.state {
            let _ = ws.close(None);
            let _ = ws.flush();
            ws.get_mut().close();
        }
        self.state = State::Dead;
    }

    pub fn deregister(&mut self, registry: &Registry) {
        if let Some(s) = self.stream_mut() {
            let _ = s.deregister(registry);
        }
    }
}

/// Unix milliseconds now, for auth timestamps.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
