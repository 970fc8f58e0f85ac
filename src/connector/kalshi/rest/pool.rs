//! The keep-alive pool of non-blocking REST connections driven by the io thread's mio poll.
//!
//! One request is in flight per connection (no pipelining: a failed connection then loses at
//! most one answer); requests beyond the idle connections wait in a FIFO of reused buffers.

use crate::connector::kalshi::rest::head::frame_request;
use crate::connector::kalshi::rest::request::Method;
use crate::connector::kalshi::rest::response::parse_response;
use crate::connector::net::{Endpoint, NetStream};
use crate::metrics::tsc;
use anyhow::Context;
use mio::{Registry, Token};
use rustls::ClientConfig;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
