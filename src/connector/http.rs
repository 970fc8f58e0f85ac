//! HTTP/1.1 for the REST API: a keep-alive pool of non-blocking connections driven by the io
//! thread's mio poll ([`HttpPool`]), and a blocking single-connection client for bootstrap and
//! resync ([`BlockingClient`]), both framing requests and parsing responses the same way.
//!
//! Hot path: [`frame_request`] writes the request line, headers (Host, Content-Type,
//! Content-Length and the prepared `KALSHI-ACCESS-*` block) and body into a reused buffer with no
//! formatting machinery; responses are parsed with httparse into a reused body buffer. One
//! request is in flight per connection (no pipelining: a failed connection then loses at most one
//! answer); requests beyond the idle connections wait in a FIFO of reused buffers.

use super::kalshi::rest::request::Method;
use super::net::{tls_config, Endpoint, NetStream};
use crate::metrics::tsc;
use anyhow::{anyhow, bail, Context};
use local_exchange::auth::Signer;
use mio::{Registry, Token};
use rustls::ClientConfig;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes `v` in decimal.
#[inline]
pub fn push_decimal(out: &mut Vec<u8>, v: u64) {
    super::kalshi::write::push_u64(out, v);
}

/// Clears `out` and writes `METHOD path HTTP/1.1`, CRLF, `Host: host` (no CRLF after it).
#[inline]
pub fn write_request_line(out: &mut Vec<u8>, method: Method, path: &[u8], host: &[u8]) {
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host);
}

/// Frames one request. `auth` is the prepared header block (each line ending in CRLF; empty for
/// an unauthenticated request). A body is always sent with Content-Length (DELETE too: Kalshi's
/// batch cancel carries one).
#[inline]
pub fn frame_request(out: &mut Vec<u8>, method: Method, path: &[u8], host: &[u8], auth: &[u8], body: &[u8]) {
    write_request_line(out, method, path, host);
    out.extend_from_slice(b"\r\nContent-Type: application/json\r\nAccept: application/json\r\n");
    if !body.is_empty() || method != Method::Get {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(auth);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Writes the three `KALSHI-ACCESS-*` header lines.
pub fn auth_block(out: &mut Vec<u8>, key_id: &[u8], ts_ms: i64, signature: &[u8]) {
    out.extend_from_slice(b"KALSHI-ACCESS-KEY: ");
    out.extend_from_slice(key_id);
    out.extend_from_slice(b"\r\nKALSHI-ACCESS-TIMESTAMP: ");
    push_decimal(out, ts_ms.max(0) as u64);
    out.extend_from_slice(b"\r\nKALSHI-ACCESS-SIGNATURE: ");
    out.extend_from_slice(signature);
    out.extend_from_slice(b"\r\n");
}

/// A complete response at the front of a receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Bytes of the receive buffer the response used (head and body).
    pub consumed: usize,
    /// The server will close the connection after this response.
    pub close: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Not HTTP, or a framing the client does not accept.
    Malformed,
    /// The connection closed or failed before the response was complete.
    Closed,
}

const MAX_HEADERS: usize = 48;

/// Parses one response from the front of `input`, copying the (de-chunked) body into `body`.
/// `Ok(None)`: incomplete, read more. `eof`: no more bytes will come (a body without length ends
/// there).
pub fn parse_response(input: &[u8], body: &mut Vec<u8>, eof: bool) -> Result<Option<ResponseHead>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return if eof { Err(HttpError::Closed) } else { Ok(None) },
        Err(_) => return Err(HttpError::Malformed),
    };
    let status = resp.code.unwrap_or(0);
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).map_err(|_| HttpError::Malformed)?;
            content_length = Some(text.trim().parse().map_err(|_| HttpError::Malformed)?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    let rest = &input[head_len..];
    body.clear();
    // 1xx, 204 and 304 have no body whatever the headers say.
    if status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(Some(ResponseHead {
            status,
            consumed: head_len,
            close,
        }));
    }
    if chunked {
        return match dechunk(rest, body)? {
            Some(used) => Ok(Some(ResponseHead {
                status,
                consumed: head_len + used,
                close,
            })),
            None if eof => Err(HttpError::Closed),
            None => Ok(None),
        };
    }
    match content_length {
        Some(n) if rest.len() >= n => {
            body.extend_from_slice(&rest[..n]);
            Ok(Some(ResponseHead {
                status,
                consumed: head_len + n,
                close,
            }))
        }
        Some(_) if eof => Err(HttpError::Closed),
        Some(_) => Ok(None),
        // No length: the body runs to the end of the connection.
        None if eof => {
            body.extend_from_slice(rest);
            Ok(Some(ResponseHead {
                status,
                consumed: input.len(),
                close: true,
            }))
        }
        None => Ok(None),
    }
}

/// Decodes a chunked body; returns the bytes used, or None when incomplete.
fn dechunk(mut input: &[u8], body: &mut Vec<u8>) -> Result<Option<usize>, HttpError> {
    let total = input.len();
    loop {
        let Some(line_end) = input.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = &input[..line_end];
        let hex = line.split(|&b| b == b';').next().unwrap_or(line);
        let mut size: usize = 0;
        let mut digits = 0;
        for &b in hex.iter().filter(|b| !b.is_ascii_whitespace()) {
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return Err(HttpError::Malformed),
            };
            size = size
                .checked_mul(16)
                .and_then(|s| s.checked_add(usize::from(d)))
                .ok_or(HttpError::Malformed)?;
            digits += 1;
        }
        if digits == 0 {
            return Err(HttpError::Malformed);
        }
        input = &input[line_end + 2..];
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(end) = input.windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                input = &input[end + 2..];
                if end == 0 {
                    return Ok(Some(total - input.len()));
                }
            }
        }
        if input.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&input[..size]);
        if &input[size..size + 2] != b"\r\n" {
            return Err(HttpError::Malformed);
        }
        input = &input[size + 2..];
    }
}

// ------------------------------------------------------------------------------------ pool

/// What the pool reports for a request: its tag, the status (0 when the connection failed
/// before a complete response) and the body.
pub struct Reply<'a> {
    pub tag: u64,
    pub status: u16,
    pub body: &'a [u8],
    /// TSC of the read that completed the response.
    pub read_tsc: u64,
    /// TSC just before the request's first write syscall.
    pub sent_tsc: u64,
}

/// Responses larger than this grow the receive buffer (bootstrap listings); order replies fit.
const RECV_CAPACITY: usize = 64 * 1024;
const REQUEST_CAPACITY: usize = 16 * 1024;
/// A request without an answer for this long fails its connection.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// A failed connection is not redialled sooner than this.
const REDIAL_BACKOFF: Duration = Duration::from_millis(250);

struct Conn {
    stream: Option<NetStream>,
    token: Token,
    out: Vec<u8>,
    out_pos: usize,
    recv: Vec<u8>,
    inflight: Option<u64>,
    sent_tsc: u64,
    sent_at: Instant,
    /// At least one response came back on this connection (so it may have gone stale idle).
    reused: bool,
    /// Bytes of the current response have arrived.
    got_bytes: bool,
    /// The request in `out` was already retried once on a fresh connection.
    retried: bool,
    readable: bool,
    failed_at: Option<Instant>,
}

struct Queued {
    tag: u64,
    bytes: Vec<u8>,
    retried: bool,
}

/// Counters of the pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub requests: u64,
    pub responses: u64,
    pub failures: u64,
    pub retries: u64,
    pub reconnects: u64,
    pub queued_max: u64,
}

/// A keep-alive pool of REST connections on the io thread's poll.
pub struct HttpPool {
    endpoint: Endpoint,
    host: Vec<u8>,
    tls: Option<Arc<ClientConfig>>,
    conns: Vec<Conn>,
    queue: VecDeque<Queued>,
    spare: Vec<Vec<u8>>,
    body: Vec<u8>,
    stats: PoolStats,
}

impl HttpPool {
    /// `size` connections with tokens `first_token..first_token+size`, dialled now.
    pub fn new(
        rest_url: &str,
        tls: Option<Arc<ClientConfig>>,
        size: usize,
        registry: &Registry,
        first_token: usize,
    ) -> anyhow::Result<HttpPool> {
        let endpoint = Endpoint::parse(rest_url)?;
        let host = endpoint.host_header().into_bytes();
        let size = size.clamp(1, 16);
        let mut pool = HttpPool {
            endpoint,
            host,
            tls,
            conns: (0..size)
                .map(|i| Conn {
                    stream: None,
                    token: Token(first_token + i),
                    out: Vec::with_capacity(REQUEST_CAPACITY),
                    out_pos: 0,
                    recv: Vec::with_capacity(RECV_CAPACITY),
                    inflight: None,
                    sent_tsc: 0,
                    sent_at: Instant::now(),
                    reused: false,
                    got_bytes: false,
                    retried: false,
                    readable: false,
                    failed_at: None,
                })
                .collect(),
            queue: VecDeque::with_capacity(256),
            spare: (0..64).map(|_| Vec::with_capacity(REQUEST_CAPACITY)).collect(),
            body: Vec::with_capacity(RECV_CAPACITY),
            stats: PoolStats::default(),
        };
        for i in 0..size {
            pool.dial(i, registry)?;
        }
        Ok(pool)
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The `Host` header value, for framing requests.
    pub fn host(&self) -> &[u8] {
        &self.host
    }

    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    pub fn size(&self) -> usize {
        self.conns.len()
    }

    /// Requests sent and not yet answered, plus those waiting for a connection.
    pub fn outstanding(&self) -> usize {
        self.conns.iter().filter(|c| c.inflight.is_some()).count() + self.queue.len()
    }

    /// Whether a connection is ready to take a request at once.
    pub fn has_idle(&self) -> bool {
        self.conns.iter().any(|c| c.stream.is_some() && c.inflight.is_none())
    }

    /// Whether `token` is one of the pool's connections.
    pub fn owns(&self, token: Token) -> bool {
        self.conns.iter().any(|c| c.token == token)
    }

    /// Marks a connection readable after a poll event.
    #[inline]
    pub fn on_readable(&mut self, token: Token) {
        if let Some(c) = self.conns.iter_mut().find(|c| c.token == token) {
            c.readable = true;
        }
    }

    fn dial(&mut self, i: usize, registry: &Registry) -> anyhow::Result<()> {
        let c = &mut self.conns[i];
        if let Some(mut s) = c.stream.take() {
            let _ = s.deregister(registry);
        }
        c.recv.clear();
        c.out_pos = 0;
        c.reused = false;
        c.got_bytes = false;
        let mut s = NetStream::connect(&self.endpoint, self.tls.as_ref())?;
        s.register(registry, c.token).context("registering a REST connection")?;
        c.stream = Some(s);
        c.readable = true;
        c.failed_at = None;
        Ok(())
    }

    /// A buffer for framing a request into (returned to the pool when the request completes).
    #[inline]
    pub fn take_buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_else(|| Vec::with_capacity(REQUEST_CAPACITY))
    }

    /// Sends a framed request now if a connection is idle, else queues it. Returns the TSC just
    /// before the write syscall (0 when queued).
    #[inline]
    pub fn submit(&mut self, tag: u64, bytes: Vec<u8>) -> u64 {
        self.stats.requests += 1;
        match self.conns.iter().position(|c| c.stream.is_some() && c.inflight.is_none()) {
            Some(i) => self.start(i, tag, bytes, false),
            None => {
                self.queue.push_back(Queued {
                    tag,
                    bytes,
                    retried: false,
                });
                self.stats.queued_max = self.stats.queued_max.max(self.queue.len() as u64);
                0
            }
        }
    }

    /// Frames and submits in one step.
    pub fn send(&mut self, tag: u64, method: Method, path: &[u8], auth: &[u8], body: &[u8]) -> u64 {
        let mut buf = self.take_buffer();
        frame_request(&mut buf, method, path, &self.host, auth, body);
        self.submit(tag, buf)
    }

    fn start(&mut self, i: usize, tag: u64, bytes: Vec<u8>, retried: bool) -> u64 {
        let c = &mut self.conns[i];
        let old = std::mem::replace(&mut c.out, bytes);
        self.spare.push(old);
        c.out_pos = 0;
        c.inflight = Some(tag);
        c.got_bytes = false;
        c.retried = retried;
        c.sent_at = Instant::now();
        c.sent_tsc = tsc();
        let _ = Self::write_out(c);
        c.sent_tsc = c.stream.as_ref().map_or(c.sent_tsc, |s| s.last_write_tsc().max(c.sent_tsc));
        c.sent_tsc
    }

    /// Writes what the socket takes; Err only for a failed connection.
    fn write_out(c: &mut Conn) -> io::Result<()> {
        let Some(s) = c.stream.as_mut() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        while c.out_pos < c.out.len() {
            match s.write(&c.out[c.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        s.flush_pending()
    }

    /// One pass: pending writes, reads of readable connections, completed responses to
    /// `on_reply`, timeouts, redials and queued requests onto freed connections.
    pub fn poll(&mut self, registry: &Registry, now: Instant, on_reply: &mut impl FnMut(Reply<'_>)) -> usize {
        let mut delivered = 0;
        for i in 0..self.conns.len() {
            let mut failed = false;
            {
                let c = &mut self.conns[i];
                if c.stream.is_none() {
                    continue;
                }
                if (c.out_pos < c.out.len() || c.stream.as_ref().is_some_and(|s| s.wants_write())) && Self::write_out(c).is_err() {
                    failed = true;
                }
            }
            if !failed && self.conns[i].readable {
                match self.read_conn(i, on_reply) {
                    Ok(n) => delivered += n,
                    Err(()) => failed = true,
                }
            }
            if !failed {
                let c = &self.conns[i];
                if c.inflight.is_some() && now.duration_since(c.sent_at) > REQUEST_TIMEOUT {
                    failed = true;
                }
            }
            if failed {
                delivered += self.fail(i, registry, now, on_reply);
            }
        }
        // Redial failed connections after a pause, then feed the queue.
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            if c.stream.is_none() && c.failed_at.is_none_or(|t| now.duration_since(t) >= REDIAL_BACKOFF) {
                self.stats.reconnects += 1;
                if self.dial(i, registry).is_err() {
                    self.conns[i].failed_at = Some(now);
                }
            }
        }
        while !self.queue.is_empty() {
            let Some(i) = self.conns.iter().position(|c| c.stream.is_some() && c.inflight.is_none()) else {
                break;
            };
            if let Some(q) = self.queue.pop_front() {
                self.start(i, q.tag, q.bytes, q.retried);
            }
        }
        delivered
    }

    /// Reads until the socket would block, delivering each complete response.
    fn read_conn(&mut self, i: usize, on_reply: &mut impl FnMut(Reply<'_>)) -> Result<usize, ()> {
        let mut delivered = 0;
        loop {
            let c = &mut self.conns[i];
            let Some(s) = c.stream.as_mut() else {
                return Err(());
            };
            if c.recv.capacity() - c.recv.len() < 4096 {
                c.recv.reserve(RECV_CAPACITY);
            }
            let len = c.recv.len();
            let cap = c.recv.capacity();
            c.recv.resize(cap, 0);
            let r = s.read(&mut c.recv[len..]);
            let got = *r.as_ref().unwrap_or(&0);
            c.recv.truncate(len + got);
            let eof = match r {
                Ok(0) => true,
                Ok(_) => {
                    c.got_bytes = true;
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.readable = false;
                    return Ok(delivered);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => true,
            };
            // Every complete response at the front of the buffer.
            loop {
                let c = &mut self.conns[i];
                if c.recv.is_empty() {
                    break;
                }
                match parse_response(&c.recv, &mut self.body, eof) {
                    Ok(Some(head)) => {
                        let read_tsc = c.stream.as_ref().map_or(0, |s| s.last_read_tsc());
                        c.recv.drain(..head.consumed);
                        let tag = c.inflight.take();
                        c.reused = true;
                        c.got_bytes = false;
                        self.stats.responses += 1;
                        if let Some(tag) = tag {
                            delivered += 1;
                            on_reply(Reply {
                                tag,
                                status: head.status,
                                body: &self.body,
                                read_tsc,
                                sent_tsc: c.sent_tsc,
                            });
                        }
                        if head.close {
                            return Err(());
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return Err(()),
                }
            }
            if eof {
                return Err(());
            }
        }
    }

    /// Drops a failed connection; its request is retried once on another connection when the
    /// failure is a keep-alive connection that went stale before answering, else reported with
    /// status 0 (outcome unknown: the order's WS updates tell).
    fn fail(&mut self, i: usize, registry: &Registry, now: Instant, on_reply: &mut impl FnMut(Reply<'_>)) -> usize {
        self.stats.failures += 1;
        let c = &mut self.conns[i];
        if let Some(mut s) = c.stream.take() {
            let _ = s.deregister(registry);
        }
        c.failed_at = Some(now);
        c.recv.clear();
        c.readable = false;
        let Some(tag) = c.inflight.take() else {
            return 0;
        };
        if c.reused && !c.got_bytes && !c.retried {
            let bytes = std::mem::replace(&mut c.out, self.spare.pop().unwrap_or_default());
            c.out_pos = 0;
            self.stats.retries += 1;
            self.queue.push_front(Queued { tag, bytes, retried: true });
            return 0;
        }
        c.out_pos = c.out.len();
        on_reply(Reply {
            tag,
            status: 0,
            body: &[],
            read_tsc: 0,
            sent_tsc: c.sent_tsc,
        });
        1
    }

    /// Closes every connection (shutdown).
    pub fn close(&mut self, registry: &Registry) {
        for c in &mut self.conns {
            if let Some(mut s) = c.stream.take() {
                let _ = s.deregister(registry);
                s.close();
            }
        }
    }

    /// Takes queued requests out without sending them (for rejecting them on shutdown).
    pub fn drain_queue(&mut self, mut f: impl FnMut(u64)) {
        while let Some(q) = self.queue.pop_front() {
            f(q.tag);
            self.spare.push(q.bytes);
        }
    }
}

// ------------------------------------------------------------------------------------ blocking

/// A blocking REST client on one keep-alive connection, for bootstrap and resync (never the
/// hot path: it signs every request with the account key).
pub struct BlockingClient {
    endpoint: Endpoint,
    host: Vec<u8>,
    tls: Option<Arc<ClientConfig>>,
    key_id: String,
    signer: Arc<Signer>,
    conn: Option<BlockingConn>,
    timeout: Duration,
    out: Vec<u8>,
    auth: Vec<u8>,
}

enum BlockingConn {
    Plain(std::net::TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>),
}

impl BlockingConn {
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            BlockingConn::Plain(s) => s,
            BlockingConn::Tls(s) => &mut **s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A REST response read by [`BlockingClient`].
#[derive(Clone, Debug)]
pub struct BlockingResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl BlockingResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| format!("response is not JSON: {:.200}", self.text()))
    }
}

impl BlockingClient {
    /// `ca_pem`: trust only that CA (a local exchange); None: the webpki roots.
    pub fn new(rest_url: &str, ca_pem: Option<&str>, key_id: &str, signer: Arc<Signer>) -> anyhow::Result<BlockingClient> {
        let endpoint = Endpoint::parse(rest_url)?;
        let tls = if endpoint.tls { Some(tls_config(ca_pem)?) } else { None };
        Ok(BlockingClient {
            host: endpoint.host_header().into_bytes(),
            endpoint,
            tls,
            key_id: key_id.to_string(),
            signer,
            conn: None,
            timeout: Duration::from_secs(15),
            out: Vec::with_capacity(4096),
            auth: Vec::with_capacity(512),
        })
    }

    /// The REST base path (e.g. `/trade-api/v2`).
    pub fn base_path(&self) -> &str {
        self.endpoint.path.trim_end_matches('/')
    }

    fn connect(&self) -> anyhow::Result<BlockingConn> {
        use std::net::ToSocketAddrs;
        let addr = (self.endpoint.host.as_str(), self.endpoint.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow!("{} resolves to no address", self.endpoint.host))?;
        let sock = std::net::TcpStream::connect_timeout(&addr, super::net::CONNECT_TIMEOUT)
            .with_context(|| format!("connecting to {}:{}", self.endpoint.host, self.endpoint.port))?;
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(self.timeout))?;
        sock.set_write_timeout(Some(self.timeout))?;
        Ok(match &self.tls {
            None => BlockingConn::Plain(sock),
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from(self.endpoint.host.clone())?;
                let conn = rustls::ClientConnection::new(cfg.clone(), name)?;
                BlockingConn::Tls(Box::new(rustls::StreamOwned::new(conn, sock)))
            }
        })
    }

    /// Sends a signed request. `path_and_query` is relative to the REST base (e.g.
    /// `/portfolio/orders?status=resting`); the signature covers the full path without the query.
    pub fn request(&mut self, method: Method, path_and_query: &str, body: &[u8]) -> anyhow::Result<BlockingResponse> {
        let full = format!("{}{}", self.base_path(), path_and_query);
        let signed_path = full.split('?').next().unwrap_or(&full).to_string();
        let method_name = std::str::from_utf8(method.as_bytes()).unwrap_or("GET");
        // A stale keep-alive connection fails on first use: one retry on a fresh one.
        for attempt in 0..2 {
            let ts = super::ws::wall_ms();
            let sig = self.signer.sign(ts, method_name, &signed_path);
            self.auth.clear();
            auth_block(&mut self.auth, self.key_id.as_bytes(), ts, sig.as_bytes());
            frame_request(&mut self.out, method, full.as_bytes(), &self.host, &self.auth, body);
            let fresh = self.conn.is_none();
            if fresh {
                self.conn = Some(self.connect()?);
            }
            match self.exchange_once() {
                Ok(r) => return Ok(r),
                Err(e) => {
                    self.conn = None;
                    if fresh || attempt == 1 {
                        return Err(e.context(format!("{method_name} {full}")));
                    }
                }
            }
        }
        bail!("{method_name} {full}: no response")
    }

    fn exchange_once(&mut self) -> anyhow::Result<BlockingResponse> {
        let conn = self.conn.as_mut().ok_or_else(|| anyhow!("not connected"))?;
        let io = conn.io();
        io.write_all(&self.out)?;
        io.flush()?;
        let mut recv: Vec<u8> = Vec::with_capacity(16 * 1024);
        let mut body = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = match io.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(e.into()),
            };
            recv.extend_from_slice(&chunk[..n]);
            match parse_response(&recv, &mut body, n == 0) {
                Ok(Some(head)) => {
                    if head.close || head.consumed != recv.len() {
                        self.conn = None;
                    }
                    return Ok(BlockingResponse { status: head.status, body });
                }
                Ok(None) => {}
                Err(e) => bail!("HTTP response: {e:?}"),
            }
        }
    }

    pub fn get(&mut self, path_and_query: &str) -> anyhow::Result<BlockingResponse> {
        self.request(Method::Get, path_and_query, b"")
    }

    /// A GET that must succeed, as JSON.
    pub fn get_json(&mut self, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        let r = self.get(path_and_query)?;
        if !r.is_success() {
            bail!("GET {path_and_query}: HTTP {}: {:.300}", r.status, r.text());
        }
        r.json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_requests() {
        let mut out = Vec::new();
        let mut auth = Vec::new();
        auth_block(&mut auth, b"kid", 1_700_000_000_123, b"c2ln");
        frame_request(&mut out, Method::Post, b"/trade-api/v2/x", b"h:1", &auth, b"{}");
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /trade-api/v2/x HTTP/1.1\r\nHost: h:1\r\nContent-Type: application/json\r\nAccept: application/json\r\n\
             Content-Length: 2\r\nKALSHI-ACCESS-KEY: kid\r\nKALSHI-ACCESS-TIMESTAMP: 1700000000123\r\n\
             KALSHI-ACCESS-SIGNATURE: c2ln\r\n\r\n{}"
        );
        frame_request(&mut out, Method::Get, b"/a", b"h", b"", b"");
        assert_eq!(
            out,
            b"GET /a HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nAccept: application/json\r\n\r\n"
        );
    }

    #[test]
    fn parses_length_chunked_and_partial_responses() {
        let mut body = Vec::new();
        let r = b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1";
        let h = parse_response(r, &mut body, false).unwrap().unwrap();
        assert_eq!((h.status, h.consumed, h.close), (201, r.len() - 8, false));
        assert_eq!(body, b"hello");
        assert_eq!(parse_response(&r[..r.len() - 10], &mut body, false), Ok(None));
        assert_eq!(parse_response(&r[..r.len() - 10], &mut body, true), Err(HttpError::Closed));

        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let h = parse_response(r, &mut body, false).unwrap().unwrap();
        assert_eq!((h.status, h.consumed, h.close), (200, r.len(), true));
        assert_eq!(body, b"abcde");
        for cut in 1..r.len() {
            assert_eq!(parse_response(&r[..cut], &mut body, false), Ok(None), "cut {cut}");
        }

        let r = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_response(r, &mut body, false).unwrap().unwrap().consumed, r.len());
        assert_eq!(parse_response(b"garbage\r\n\r\n", &mut body, false), Err(HttpError::Malformed));
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(parse_response(r, &mut body, false), Err(HttpError::Malformed));
    }
}
