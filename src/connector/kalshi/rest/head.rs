//! HTTP/1.1 request heads: the request line, `Host`, the body headers and the auth block,
//! and [`SignedHeaders`], one request's signed timestamp and signature as they go on the wire.
//!
//! Hot path: these write into a reused buffer with no formatting machinery. The pool, the
//! blocking client, the presigner and the prebuilt order wires all frame requests through here,
//! so a request head has one home and the protocol layer needs nothing from the presigner.

use crate::connector::kalshi::rest::request::{Method, RestRequest};
use std::fmt;

/// Base64 of a 4096-bit RSA signature (512 bytes), the largest key Kalshi-style signers load.
pub const MAX_SIGNATURE_B64: usize = 684;
/// Decimal digits of a u64 millisecond timestamp.
pub const MAX_TIMESTAMP_DIGITS: usize = 20;

pub const HEADER_KEY: &[u8] = b"KALSHI-ACCESS-KEY";
pub const HEADER_TIMESTAMP: &[u8] = b"KALSHI-ACCESS-TIMESTAMP";
pub const HEADER_SIGNATURE: &[u8] = b"KALSHI-ACCESS-SIGNATURE";

/// Between the timestamp and the signature in [`SignedHeaders::auth_lines`].
const SIGNATURE_LINE: &[u8] = b"\r\nKALSHI-ACCESS-SIGNATURE: ";
const AUTH_LINES_CAPACITY: usize = MAX_TIMESTAMP_DIGITS + SIGNATURE_LINE.len() + MAX_SIGNATURE_B64;

/// One request's `KALSHI-ACCESS-TIMESTAMP` and `KALSHI-ACCESS-SIGNATURE` values, inline and
/// fixed-size so a ring slot holds one by value. They are kept as the text that goes on the
/// wire (timestamp, the signature header's name, signature), so stamping a request copies
/// them in one piece.
#[derive(Clone, Copy)]
pub struct SignedHeaders {
    ts_ms: u64,
    ts_len: u8,
    sig_len: u16,
    text: [u8; AUTH_LINES_CAPACITY],
}

impl SignedHeaders {
    /// From a base64 signature; `None` if it is longer than any supported key produces.
    pub fn new(ts_ms: u64, signature_b64: &[u8]) -> Option<SignedHeaders> {
        if signature_b64.len() > MAX_SIGNATURE_B64 {
            return None;
        }
        let mut digits = [0u8; MAX_TIMESTAMP_DIGITS];
        let i = crate::connector::kalshi::write::u64_digits(ts_ms, &mut digits);
        let n = digits.len() - i;
        let mut h = SignedHeaders {
            ts_ms,
            ts_len: n as u8,
            sig_len: signature_b64.len() as u16,
            text: [0; AUTH_LINES_CAPACITY],
        };
        h.text[..n].copy_from_slice(&digits[i..]);
        h.text[n..n + SIGNATURE_LINE.len()].copy_from_slice(SIGNATURE_LINE);
        h.text[n + SIGNATURE_LINE.len()..][..signature_b64.len()].copy_from_slice(signature_b64);
        Some(h)
    }

    /// The timestamp value, CRLF, the signature header and its value: everything a request
    /// needs after `KALSHI-ACCESS-TIMESTAMP: `, up to the signature line's CRLF.
    #[inline]
    pub fn auth_lines(&self) -> &[u8] {
        &self.text[..usize::from(self.ts_len) + SIGNATURE_LINE.len() + usize::from(self.sig_len)]
    }

    /// The signed timestamp in Unix milliseconds.
    #[inline]
    pub fn timestamp_ms(&self) -> u64 {
        self.ts_ms
    }

    /// The `KALSHI-ACCESS-TIMESTAMP` value (decimal milliseconds, as signed).
    #[inline]
    pub fn timestamp(&self) -> &[u8] {
        &self.text[..usize::from(self.ts_len)]
    }

    /// The `KALSHI-ACCESS-SIGNATURE` value (standard base64, padded).
    #[inline]
    pub fn signature(&self) -> &[u8] {
        let start = usize::from(self.ts_len) + SIGNATURE_LINE.len();
        &self.text[start..start + usize::from(self.sig_len)]
    }

    /// Appends the three auth header lines, each ending in CRLF.
    #[inline]
    pub fn write_headers(&self, key_id: &[u8], out: &mut Vec<u8>) {
        write_key_line_and_timestamp_name(out, key_id);
        out.extend_from_slice(self.timestamp());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(HEADER_SIGNATURE);
        out.extend_from_slice(b": ");
        out.extend_from_slice(self.signature());
        out.extend_from_slice(b"\r\n");
    }

    /// Whether the signature is within `max_age_ms` of `now_ms`. Inline: the presigner's order
    /// path calls it from another module (and maybe another codegen unit).
    #[inline]
    pub(crate) fn age_ok(&self, now_ms: u64, max_age_ms: u64) -> bool {
        // Both directions: a wall clock stepped backwards makes stock "from the future".
        self.ts_ms.abs_diff(now_ms) <= max_age_ms
    }
}

impl fmt::Debug for SignedHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedHeaders")
            .field("timestamp_ms", &self.ts_ms)
            .field("signature", &format_args!("<{} bytes redacted>", self.sig_len))
            .finish()
    }
}

/// Writes an HTTP/1.1 request with Kalshi's auth headers into `out` (cleared first): the
/// request line, `Host`, the three `KALSHI-ACCESS-*` headers, and for a body `Content-Type`
/// and `Content-Length`. Keep-alive is HTTP/1.1's default, so no `Connection` header is sent.
/// Allocation-free once `out` has the capacity (the largest request is a full batch create,
/// under `crate::connector::kalshi::rest::request::BODY_CAPACITY` plus about 1 KiB of head).
pub fn write_http_request(out: &mut Vec<u8>, req: &RestRequest, host: &[u8], key_id: &[u8], auth: &SignedHeaders) {
    out.clear();
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(&req.path);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host);
    out.extend_from_slice(b"\r\n");
    auth.write_headers(key_id, out);
    if !req.body.is_empty() {
        out.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: ");
        push_usize(out, req.body.len());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&req.body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes (into `out`, cleared first) a request's constant head: the request line, `Host`,
/// `KALSHI-ACCESS-KEY`, and `KALSHI-ACCESS-TIMESTAMP: ` up to the value, where a stocked
/// signature's [`SignedHeaders::auth_lines`] go.
pub fn write_head_to_timestamp(out: &mut Vec<u8>, method: Method, path: &[u8], host: &[u8], key_id: &[u8]) {
    write_request_line(out, method, path, host);
    out.extend_from_slice(b"\r\n");
    write_key_line_and_timestamp_name(out, key_id);
}

/// `KALSHI-ACCESS-KEY: <key_id>` and its CRLF, then `KALSHI-ACCESS-TIMESTAMP: ` up to the value.
#[inline]
fn write_key_line_and_timestamp_name(out: &mut Vec<u8>, key_id: &[u8]) {
    out.extend_from_slice(HEADER_KEY);
    out.extend_from_slice(b": ");
    out.extend_from_slice(key_id);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(HEADER_TIMESTAMP);
    out.extend_from_slice(b": ");
}

/// [`write_http_request`]'s bytes, from a prebuilt head that ends at the timestamp's value:
/// six copies instead of seventeen on the order path.
#[inline]
pub(crate) fn write_after_prefix(out: &mut Vec<u8>, prefix: &[u8], auth: &SignedHeaders, body: &[u8]) {
    const BODY_HEAD: &[u8] = b"\r\nContent-Type: application/json\r\nContent-Length: ";
    let auth = auth.auth_lines();
    out.clear();
    // Room for the longest Content-Length (20 digits), reserved once for every copy below.
    out.reserve(prefix.len() + auth.len() + BODY_HEAD.len() + 20 + 4 + body.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(auth);
    if body.is_empty() {
        out.extend_from_slice(b"\r\n\r\n");
    } else {
        out.extend_from_slice(BODY_HEAD);
        push_usize(out, body.len());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
    }
}

fn push_usize(out: &mut Vec<u8>, v: usize) {
    crate::connector::kalshi::write::push_u64(out, v as u64);
}

/// Writes `v` in decimal.
#[inline]
pub fn push_decimal(out: &mut Vec<u8>, v: u64) {
    crate::connector::kalshi::write::push_u64(out, v);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::kalshi::rest::request::ORDERS_PATH;

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
    fn headers_hold_timestamp_and_signature() {
        let h = SignedHeaders::new(1_703_123_456_789, b"c2lnbmF0dXJl").unwrap();
        assert_eq!(h.timestamp(), b"1703123456789");
        assert_eq!(h.signature(), b"c2lnbmF0dXJl");
        assert_eq!(SignedHeaders::new(0, b"x").unwrap().timestamp(), b"0");
        assert!(SignedHeaders::new(1, &[b'A'; MAX_SIGNATURE_B64 + 1]).is_none());
        let dbg = format!("{h:?}");
        assert!(!dbg.contains("c2lnbmF0dXJl"), "{dbg}");
        let mut out = Vec::new();
        h.write_headers(b"key-1", &mut out);
        assert_eq!(
            out,
            b"KALSHI-ACCESS-KEY: key-1\r\nKALSHI-ACCESS-TIMESTAMP: 1703123456789\r\nKALSHI-ACCESS-SIGNATURE: c2lnbmF0dXJl\r\n"
        );
    }

    #[test]
    fn frames_http_requests() {
        let mut req = RestRequest::new();
        req.method = Method::Post;
        req.path.extend_from_slice(ORDERS_PATH);
        req.body.extend_from_slice(b"{\"a\":1}");
        let h = SignedHeaders::new(5, b"U0lH").unwrap();
        let mut out = Vec::new();
        write_http_request(&mut out, &req, b"example:443", b"k", &h);
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "POST /trade-api/v2/portfolio/events/orders HTTP/1.1\r\nHost: example:443\r\nKALSHI-ACCESS-KEY: k\r\n\
             KALSHI-ACCESS-TIMESTAMP: 5\r\nKALSHI-ACCESS-SIGNATURE: U0lH\r\nContent-Type: application/json\r\n\
             Content-Length: 7\r\n\r\n{\"a\":1}"
        );
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut parsed = httparse::Request::new(&mut headers);
        assert!(parsed.parse(&out).unwrap().is_complete());
        req.body.clear();
        req.method = Method::Delete;
        write_http_request(&mut out, &req, b"h", b"k", &h);
        assert!(out.ends_with(b"U0lH\r\n\r\n"));
    }
}
