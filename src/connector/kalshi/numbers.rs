//! Exact number parsing from wire text: prices, counts, money and timestamps.
//!
//! Every decimal is parsed from its bytes with [`parse_scaled`], whether it arrived as a string
//! (`"74.77"`), a JSON number or an Era-A integer; no float is ever involved. Shared by the WS
//! decoder and the REST replies, so it lives beside both rather than in either.

use crate::connector::kalshi::error::DecodeError;
use crate::event::{Money, Price, Qty};
use kalshi_proto::units::parse_scaled;
use serde::de::Deserializer;
use serde::Deserialize;
use serde_json::value::RawValue;

/// A JSON scalar exactly as it appeared on the wire (a string with its quotes). Decimals are
/// parsed from its text exactly, whichever form they took. One slice, so payload structs stay
/// small enough to build in place cheaply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Num<'a>(pub(crate) &'a [u8]);

impl<'a> Num<'a> {
    fn from_raw(raw: &'a str) -> Num<'a> {
        Num(raw.as_bytes())
    }

    #[inline]
    fn quoted(self) -> bool {
        self.0.len() >= 2 && self.0[0] == b'"' && self.0[self.0.len() - 1] == b'"'
    }

    /// A string's contents, or a number's or literal's bytes.
    #[inline]
    fn text(self) -> &'a [u8] {
        if self.quoted() {
            unquote(self.0)
        } else {
            self.0
        }
    }

    fn is_empty_string(self) -> bool {
        self.0 == b"\"\""
    }
}

/// The bytes between a string token's quotes.
#[inline]
pub(crate) fn unquote(raw: &[u8]) -> &[u8] {
    raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default()
}

impl<'de: 'a, 'a> Deserialize<'de> for Num<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Num<'a>, D::Error> {
        <&'de RawValue>::deserialize(d).map(|r| Num::from_raw(r.get()))
    }
}

/// Scaled decimal; `places` is where the unit sits (4 for dollar prices, 2 for counts and for
/// integer cents as prices, 6 for dollar money).
#[inline]
fn scaled(n: Num<'_>, places: u32) -> Result<i64, DecodeError> {
    let t = n.text();
    match simple_scaled(t, places) {
        Some(v) => Ok(v),
        None => parse_scaled(t, places).map_err(|_| DecodeError::BadNumber),
    }
}

/// 1 to 19 plain digits as a u64 in one pass; `None` for anything else (or too long).
#[inline]
fn plain_digits(t: &[u8]) -> Option<u64> {
    if t.is_empty() || t.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for &c in t {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    Some(v)
}

/// [`parse_scaled`] for the forms the wire actually carries, `-?D+(.D{1,places})?` with few
/// enough digits that nothing can overflow, in one pass. `None` hands everything else (a
/// sign of `+`, a bare `.5`, surplus zero decimals, long values, errors) to `parse_scaled`,
/// so the results are its results.
#[inline]
fn simple_scaled(t: &[u8], places: u32) -> Option<i64> {
    let (neg, t) = match t.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, t),
    };
    // 18 digits in all stay below i64::MAX whatever their value.
    if t.is_empty() || t.len() > 18 || places > 8 {
        return None;
    }
    let mut v = 0i64;
    let mut i = 0;
    while i < t.len() {
        let d = t[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = v * 10 + i64::from(d);
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut frac = 0u32;
    if i < t.len() {
        if t[i] != b'.' || i + 1 == t.len() || t.len() - i - 1 > places as usize {
            return None;
        }
        for &c in &t[i + 1..] {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + i64::from(d);
        }
        frac = (t.len() - i - 1) as u32;
    }
    // int + frac digits <= 18 and the scale adds at most `places - frac` more: still in range
    // only while the total stays within 18.
    if t.len() - usize::from(frac > 0) + (places - frac) as usize > 18 {
        return None;
    }
    v *= 10i64.pow(places - frac);
    Some(if neg { -v } else { v })
}

#[inline]
pub(crate) fn price(n: Num<'_>, places: u32) -> Result<Price, DecodeError> {
    let v = scaled(n, places)?;
    if (0..=10_000).contains(&v) {
        Ok(Price(v as u32))
    } else {
        Err(DecodeError::BadNumber)
    }
}

/// The fixed-point dollar field if present, else the Era-A integer cents (which, read with two
/// places, land exactly in 1e-4 dollars).
#[inline]
pub(crate) fn price_either(dollars: Option<Num<'_>>, cents: Option<Num<'_>>) -> Result<Price, DecodeError> {
    match (dollars, cents) {
        (Some(n), _) => price(n, 4),
        (None, Some(n)) => price(n, 2),
        (None, None) => Err(DecodeError::MissingField),
    }
}

/// Like [`price_either`], but absent or `""` (Kalshi's "no trade yet") is `None`.
pub(crate) fn opt_price(dollars: Option<Num<'_>>, cents: Option<Num<'_>>) -> Result<Option<Price>, DecodeError> {
    match (dollars.filter(|n| !n.is_empty_string()), cents.filter(|n| !n.is_empty_string())) {
        (None, None) => Ok(None),
        (d, c) => price_either(d, c).map(Some),
    }
}

/// Counts: `"74.77"`, `74.77` and an Era-A integer `74` all read with two places.
#[inline]
pub(crate) fn qty(n: Num<'_>) -> Result<Qty, DecodeError> {
    scaled(n, 2).map(Qty)
}

pub(crate) fn money(n: Num<'_>, places: u32) -> Result<Money, DecodeError> {
    scaled(n, places).map(Money)
}

pub(crate) fn flag(n: Num<'_>) -> Result<bool, DecodeError> {
    match (n.quoted(), n.text()) {
        (false, b"true") => Ok(true),
        (false, b"false") => Ok(false),
        _ => Err(DecodeError::BadEnum),
    }
}

pub(crate) fn small_int<T: TryFrom<u64>>(n: Num<'_>) -> Result<T, DecodeError> {
    // Plain digits (timestamps, ids) without the general parser; anything else takes it.
    let t = n.text();
    let v = match plain_digits(t) {
        Some(v) => v,
        None => u64::try_from(scaled(n, 0)?).map_err(|_| DecodeError::BadNumber)?,
    };
    T::try_from(v).map_err(|_| DecodeError::BadNumber)
}

/// `ts_ms` if present, else `ts`: integer seconds on most channels, an RFC 3339 string on
/// orderbook deltas.
#[inline]
pub(crate) fn ts(ts_ms: Option<Num<'_>>, ts: Option<Num<'_>>) -> Result<u64, DecodeError> {
    if let Some(n) = ts_ms {
        return small_int(n);
    }
    match ts {
        None => Ok(0),
        Some(n) if n.quoted() => rfc3339_ms(n.text()).ok_or(DecodeError::BadNumber),
        Some(n) => secs_to_ms(n),
    }
}

pub(crate) fn secs_to_ms(n: Num<'_>) -> Result<u64, DecodeError> {
    u64::try_from(scaled(n, 3)?).map_err(|_| DecodeError::BadNumber)
}

/// Unix milliseconds of `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, without allocation or a date
/// library.
pub fn rfc3339_ms(s: &[u8]) -> Option<u64> {
    let num = |a: usize, b: usize| -> Option<i64> {
        let mut v = 0i64;
        for &c in s.get(a..b)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let sep = |i: usize, c: &[u8]| s.get(i).is_some_and(|b| c.contains(b));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if s.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                ms = ms * 10 + i64::from(s[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            ms *= 10;
        }
    }
    let offset_s = match s.get(i)? {
        b'Z' | b'z' if i + 1 == s.len() => 0,
        &c @ (b'+' | b'-') if i + 6 == s.len() && s[i + 3] == b':' => {
            let off = num(i + 1, i + 3)? * 3600 + num(i + 4, i + 6)? * 60;
            if c == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    u64::try_from(secs * 1000 + ms).ok()
}

pub(crate) fn json_error(e: serde_json::Error) -> DecodeError {
    match e.classify() {
        serde_json::error::Category::Eof => DecodeError::Truncated,
        serde_json::error::Category::Syntax | serde_json::error::Category::Io => DecodeError::Syntax,
        serde_json::error::Category::Data => DecodeError::WrongType,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::connector::kalshi::write::{push_price, push_qty};
    use crate::event::{Price, Qty};

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_ms(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_ms(b"2026-06-24T15:49:55.033836Z"), Some(1_782_316_195_033));
        assert_eq!(rfc3339_ms(b"2026-06-24T17:49:55.5+02:00"), Some(1_782_316_195_500));
        assert_eq!(rfc3339_ms(b"2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(rfc3339_ms(b"2026-06-24T15:49:55"), None);
        assert_eq!(rfc3339_ms(b"2026-13-24T15:49:55Z"), None);
        assert_eq!(rfc3339_ms(b"2026-06-24T15:49:55.Z"), None);
        assert_eq!(rfc3339_ms(b""), None);
    }

    pub(crate) mod props {
        use super::*;
        use proptest::prelude::*;

        /// Decimal-ish text: the wire's forms and the corners `parse_scaled` has rules for.
        pub(crate) fn decimal() -> impl Strategy<Value = String> {
            prop_oneof![
                (0u32..=10_000).prop_map(|p| {
                    let mut v = Vec::new();
                    push_price(&mut v, Price(p));
                    String::from_utf8(v).unwrap()
                }),
                any::<i64>().prop_map(|q| {
                    let mut v = Vec::new();
                    push_qty(&mut v, Qty(q / 4));
                    String::from_utf8(v).unwrap()
                }),
                "[-+]?[0-9]{0,21}(\\.[0-9]{0,9})?",
                "[-+.0-9eE]{0,8}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn simple_decimals_are_parse_scaled(t in decimal(), places in 0u32..=6) {
                let want = parse_scaled(t.as_bytes(), places).ok();
                if let Some(v) = simple_scaled(t.as_bytes(), places) {
                    prop_assert_eq!(Some(v), want, "{}", t);
                }
                prop_assert_eq!(scaled(Num(t.as_bytes()), places).ok(), want);
                let quoted = format!("\"{t}\"");
                prop_assert_eq!(scaled(Num(quoted.as_bytes()), places).ok(), want);
            }
        }
    }
}
