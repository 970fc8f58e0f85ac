//! Number and string writers for request bodies and WS commands.
//!
//! No `format!`: these run on the tick-to-order path. Both the REST encoders and the WS command
//! encoders write through them, so they sit under neither.

use crate::event::{ClientRef, OrderId, Price, Qty};

pub(crate) fn push_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let start = u64_digits(v, &mut buf);
    out.extend_from_slice(&buf[start..]);
}

/// Writes `v` in decimal at the end of `buf`; returns where the digits start.
#[inline]
pub(crate) fn u64_digits(mut v: u64, buf: &mut [u8; 20]) -> usize {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return i;
        }
    }
}

/// `value / 10^places` with exactly `places` decimals (at most 8), written backwards into one
/// stack buffer and appended with a single copy.
#[inline]
fn push_scaled(out: &mut Vec<u8>, value: i64, places: u32) {
    let mut buf = [0u8; 32];
    let mut i = buf.len();
    let mut m = value.unsigned_abs();
    for _ in 0..places.min(8) {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
    }
    if places > 0 {
        i -= 1;
        buf[i] = b'.';
    }
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if value < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    out.extend_from_slice(&buf[i..]);
}

/// "0.5600": Kalshi's four-decimal dollar price.
pub fn push_price(out: &mut Vec<u8>, p: Price) {
    push_scaled(out, i64::from(p.0), 4);
}

/// "10.00": Kalshi's two-decimal count.
pub fn push_qty(out: &mut Vec<u8>, q: Qty) {
    push_scaled(out, q.0, 2);
}

pub(crate) fn push_client(out: &mut Vec<u8>, c: ClientRef) {
    let mut buf = [0u8; ClientRef::WIRE_LEN];
    c.write(&mut buf);
    out.extend_from_slice(&buf);
}

pub(crate) fn push_order_id(out: &mut Vec<u8>, o: OrderId) {
    let mut buf = [0u8; OrderId::WIRE_LEN];
    o.write(&mut buf);
    out.extend_from_slice(&buf);
}

pub(crate) fn push_order_path(path: &mut Vec<u8>, order: OrderId, tail: &[u8]) {
    path.push(b'/');
    push_order_id(path, order);
    path.extend_from_slice(tail);
}

/// A JSON string. Tickers are plain ASCII, but escaping keeps a bad one from breaking the body.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &c in s {
        match c {
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(c);
            }
            0..=0x1f => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]]),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Price, Qty};

    #[test]
    fn writes_decimals() {
        let mut v = Vec::new();
        push_price(&mut v, Price(5600));
        v.push(b' ');
        push_price(&mut v, Price(10_000));
        v.push(b' ');
        push_qty(&mut v, Qty(-750));
        v.push(b' ');
        push_qty(&mut v, Qty(7));
        assert_eq!(v, b"0.5600 1.0000 -7.50 0.07");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn scaled_writer_is_the_decimal_text(q in any::<i64>(), p in 0u32..=10_000) {
                let mut v = Vec::new();
                push_qty(&mut v, Qty(q));
                let m = q.unsigned_abs();
                let sign = if q < 0 { "-" } else { "" };
                prop_assert_eq!(String::from_utf8(v).unwrap(), format!("{sign}{}.{:02}", m / 100, m % 100));
                let mut v = Vec::new();
                push_price(&mut v, Price(p));
                prop_assert_eq!(String::from_utf8(v).unwrap(), format!("{}.{:04}", p / 10_000, p % 10_000));
            }
        }
    }
}
