//! HTTP/1.1 request heads: the request line, `Host`, the body headers and the auth block.
//!
//! Hot path: these write into a reused buffer with no formatting machinery. The pool, the
//! blocking client and the presigned order wires all frame requests through here.

use crate::connector::kalshi::rest::request::Method;

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
}
