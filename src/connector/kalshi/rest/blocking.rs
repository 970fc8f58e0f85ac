//! A blocking single-connection REST client for bootstrap and resync (never the hot path: it
//! signs every request with the account key).

use crate::connector::kalshi::rest::head::{auth_block, frame_request};
use crate::connector::kalshi::rest::request::Method;
use crate::connector::kalshi::rest::response::parse_response;
use crate::connector::net::{tls_config, Endpoint};
use anyhow::{anyhow, bail, Context};
use kalshi_proto::auth::Signer;
use rustls::ClientConfig;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

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
        let sock = std::net::TcpStream::connect_timeout(&addr, crate::connector::net::CONNECT_TIMEOUT)
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
            let ts = crate::connector::ws::wall_ms();
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
