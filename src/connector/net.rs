//! A non-blocking byte stream for the io thread: a mio `TcpStream`, optionally wrapped in a
//! rustls client session, exposed as `Read + Write` so tungstenite and the HTTP client sit on top.
//!
//! Readiness is edge-triggered (mio on Linux), so a user must read until `WouldBlock` after each
//! readable edge; `Read::read` returns `WouldBlock` only when both the socket and rustls's
//! plaintext buffer are empty. Writes never block: rustls buffers ciphertext the socket cannot
//! take yet, and [`NetStream::flush_pending`] pushes it when the socket becomes writable.
//!
//! Latency stamps: [`NetStream::last_read_tsc`] is the TSC right after the last socket read that
//! returned bytes (a frame's `Stamp.read_tsc`), [`NetStream::last_write_tsc`] the TSC just before
//! the last write syscall (the end of tick-to-order).
//!
//! TLS verification is always on: either the local exchange's CA (`ca_pem`) or the webpki roots.

use crate::metrics::tsc;
use anyhow::{bail, Context};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::io::{self, Read, Write};
use std::net::{Shutdown, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Where a URL points: scheme security, host, port and path (without query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    /// Host as written in the URL (brackets stripped from an IPv6 literal).
    pub host: String,
    pub port: u16,
    /// Path from the root, e.g. `/trade-api/v2`; `/` when the URL has none.
    pub path: String,
}

impl Endpoint {
    /// Parses `https://`, `http://`, `wss://` and `ws://` URLs.
    pub fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (false, r)
        } else {
            bail!("URL {url:?} must start with https://, http://, wss:// or ws://");
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = path.split(['?', '#']).next().unwrap_or("/");
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, tail) = v6
                .split_once(']')
                .with_context(|| format!("URL {url:?}: unclosed '[' in the host"))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => p.parse().with_context(|| format!("URL {url:?}: bad port {p:?}"))?,
                None => default_port,
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().with_context(|| format!("URL {url:?}: bad port {p:?}"))?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            bail!("URL {url:?} has no host");
        }
        Ok(Endpoint {
            tls,
            host,
            port,
            path: path.to_string(),
        })
    }

    /// The `Host` header value.
    pub fn host_header(&self) -> String {
        let default_port = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// The TLS client configuration: the given CA only (a local exchange), or the webpki roots (real
/// Kalshi). HTTP/1.1 is offered via ALPN (both REST and the WebSocket upgrade speak it).
pub fn tls_config(ca_pem: Option<&str>) -> anyhow::Result<Arc<ClientConfig>> {
    if let Some(pem) = ca_pem {
        return kalshi_proto::tls::client_config(pem);
    }
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("choosing TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How long a TCP connect may take. Connecting blocks the io thread, which only happens while
/// the link it is for is down (start-up, reconnect, a REST connection being replaced).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One non-blocking connection, plain or TLS.
pub struct NetStream {
    sock: TcpStream,
    tls: Option<Box<ClientConnection>>,
    read_tsc: u64,
    write_tsc: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl NetStream {
    /// Connects (blocking for at most [`CONNECT_TIMEOUT`]), sets TCP_NODELAY and non-blocking
    /// mode and starts the TLS session when `endpoint.tls`. The TLS handshake itself completes
    /// as the stream is read and written.
    pub fn connect(endpoint: &Endpoint, tls: Option<&Arc<ClientConfig>>) -> anyhow::Result<NetStream> {
        let addrs: Vec<_> = (endpoint.host.as_str(), endpoint.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {}:{}", endpoint.host, endpoint.port))?
            .collect();
        let mut last_err = None;
        let mut std_sock = None;
        for a in &addrs {
            match std::net::TcpStream::connect_timeout(a, CONNECT_TIMEOUT) {
                Ok(s) => {
                    std_sock = Some(s);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let std_sock = match std_sock {
            Some(s) => s,
            None => match last_err {
                Some(e) => return Err(e).with_context(|| format!("connecting to {}:{}", endpoint.host, endpoint.port)),
                None => bail!("{}:{} resolves to no address", endpoint.host, endpoint.port),
            },
        };
        std_sock.set_nodelay(true).context("setting TCP_NODELAY")?;
        std_sock.set_nonblocking(true).context("setting non-blocking mode")?;
        let sock = TcpStream::from_std(std_sock);
        let tls = if endpoint.tls {
            let config = match tls {
                Some(c) => c.clone(),
                None => bail!("{} needs TLS but no TLS configuration was given", endpoint.host),
            };
            let name = ServerName::try_from(endpoint.host.clone()).with_context(|| format!("TLS server name {:?}", endpoint.host))?;
            let mut conn = ClientConnection::new(config, name).context("starting the TLS session")?;
            // Requests are small; a generous limit keeps `write` from ever returning a short count.
            conn.set_buffer_limit(Some(4 << 20));
            Some(Box::new(conn))
        } else {
            None
        };
        Ok(NetStream {
            sock,
            tls,
            read_tsc: 0,
            write_tsc: 0,
            bytes_in: 0,
            bytes_out: 0,
        })
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.sock, token, Interest::READABLE | Interest::WRITABLE)
    }

    pub fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.sock)
    }

    /// TSC right after the last socket read that returned bytes.
    #[inline]
    pub fn last_read_tsc(&self) -> u64 {
        self.read_tsc
    }

    /// TSC just before the last write syscall.
    #[inline]
    pub fn last_write_tsc(&self) -> u64 {
        self.write_tsc
    }

    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    pub fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|c| c.is_handshaking())
    }

    /// Ciphertext is waiting for the socket.
    #[inline]
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|c| c.wants_write())
    }

    /// Writes buffered ciphertext until done or the socket would block (not an error).
    pub fn flush_pending(&mut self) -> io::Result<()> {
        let Some(conn) = self.tls.as_mut() else {
            return Ok(());
        };
        while conn.wants_write() {
            self.write_tsc = tsc();
            match conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.bytes_out += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Aborts the connection as a network failure would (no close_notify, no WS close frame).
    pub fn abort(&mut self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// A polite close: TLS close_notify (best effort), then a TCP shutdown.
    pub fn close(&mut self) {
        if let Some(conn) = self.tls.as_mut() {
            conn.send_close_notify();
        }
        let _ = self.flush_pending();
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

impl Read for NetStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(conn) = self.tls.as_mut() else {
            let n = self.sock.read(buf)?;
            if n > 0 {
                self.read_tsc = tsc();
                self.bytes_in += n as u64;
            }
            return Ok(n);
        };
        loop {
            // Plaintext already decrypted goes first; WouldBlock here only means "none yet".
            match conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            match conn.read_tls(&mut self.sock) {
                // EOF: the next `reader().read` reports a clean close (Ok(0)) or UnexpectedEof.
                Ok(0) => {}
                Ok(n) => {
                    self.read_tsc = tsc();
                    self.bytes_in += n as u64;
                    let processed = conn.process_new_packets();
                    if conn.wants_write() {
                        // Handshake messages and key updates must go out even while only reading.
                        while conn.wants_write() {
                            self.write_tsc = tsc();
                            match conn.write_tls(&mut self.sock) {
                                Ok(0) => break,
                                Ok(n) => self.bytes_out += n as u64,
                                Err(_) => break,
                            }
                        }
                    }
                    if let Err(e) = processed {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for NetStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.tls.as_mut() {
            None => {
                self.write_tsc = tsc();
                let n = self.sock.write(buf)?;
                self.bytes_out += n as u64;
                Ok(n)
            }
            Some(conn) => {
                let n = conn.writer().write(buf)?;
                self.flush_pending()?;
                Ok(n)
            }
        }
    }

    /// Pushes what the socket takes now; the rest stays buffered for [`NetStream::flush_pending`]
    /// (the io loop calls it while [`NetStream::wants_write`]), so this never reports WouldBlock.
    fn flush(&mut self) -> io::Result<()> {
        self.flush_pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let e = Endpoint::parse("wss://127.0.0.1:41987/trade-api/ws/v2").unwrap();
        assert_eq!(
            e,
            Endpoint {
                tls: true,
                host: "127.0.0.1".into(),
                port: 41987,
                path: "/trade-api/ws/v2".into()
            }
        );
        assert_eq!(e.host_header(), "127.0.0.1:41987");
        let e = Endpoint::parse("https://api.elections.kalshi.com/trade-api/v2?x=1").unwrap();
        assert_eq!(
            (e.port, e.path.as_str(), e.host_header().as_str()),
            (443, "/trade-api/v2", "api.elections.kalshi.com")
        );
        let e = Endpoint::parse("http://[::1]:8080").unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port, e.path.as_str()), (false, "::1", 8080, "/"));
        assert_eq!(e.host_header(), "[::1]:8080");
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("https://:80/").is_err());
        assert!(Endpoint::parse("https://h:port/").is_err());
    }

    #[test]
    fn webpki_config_builds() {
        let c = tls_config(None).unwrap();
        assert_eq!(c.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
