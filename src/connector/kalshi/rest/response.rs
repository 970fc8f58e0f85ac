//! HTTP/1.1 response parsing (httparse) into a reused body buffer, chunked or not.
//!
//! Shared by the keep-alive pool and the blocking client, which parse responses the same way.

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

#[cfg(test)]
mod tests {
    use super::*;

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
