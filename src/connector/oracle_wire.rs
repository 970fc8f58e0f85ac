//! The oracle feed's one message, read without allocating:
//! `{"type":"oracle","ticker":"…","probability":0.5213,"probability_e4":5213,"ts_ms":…}`.
//!
//! The feed is not Kalshi's (the seed's External_Oracle: a data vendor publishing each
//! market's probability), so it has its own small reader rather than a branch in the Kalshi
//! decoder. It takes the integer `probability_e4` (1e-4 units, the same scale as a [`Price`]),
//! never the float, and finds fields by name so their order does not matter.

use crate::event::{MarketIdx, Price};

/// One published probability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OracleTick {
    pub market: MarketIdx,
    /// The probability on the price scale: 5213 is 52.13%.
    pub probability: Price,
    /// When the vendor published it, Unix ms.
    pub publish_ms: u64,
}

/// Why a frame was not an oracle tick for one of our markets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OracleSkip {
    /// Not an oracle message, or a field is missing or malformed.
    Malformed,
    /// A market we do not trade.
    OtherMarket,
}

/// Reads one frame; `market_of` maps a ticker's bytes to our market.
pub fn parse_oracle(frame: &[u8], market_of: impl Fn(&[u8]) -> Option<MarketIdx>) -> Result<OracleTick, OracleSkip> {
    if string_field(frame, b"type") != Some(b"oracle".as_slice()) {
        return Err(OracleSkip::Malformed);
    }
    let ticker = string_field(frame, b"ticker").ok_or(OracleSkip::Malformed)?;
    let e4 = integer_field(frame, b"probability_e4").ok_or(OracleSkip::Malformed)?;
    let publish_ms = integer_field(frame, b"ts_ms").ok_or(OracleSkip::Malformed)?;
    if e4 > 10_000 {
        return Err(OracleSkip::Malformed);
    }
    let market = market_of(ticker).ok_or(OracleSkip::OtherMarket)?;
    Ok(OracleTick {
        market,
        probability: Price(e4 as u32),
        publish_ms,
    })
}

/// The position just after `"name":` (spaces allowed around the colon), at the top level or
/// anywhere: the message is flat.
fn value_at(frame: &[u8], name: &[u8]) -> Option<usize> {
    let mut from = 0;
    while from < frame.len() {
        let at = from + find(&frame[from..], b"\"")?;
        let start = at + 1;
        let end = start + find(&frame[start..], b"\"")?;
        let mut i = end + 1;
        while frame.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if frame.get(i) == Some(&b':') {
            if &frame[start..end] == name {
                i += 1;
                while frame.get(i).is_some_and(u8::is_ascii_whitespace) {
                    i += 1;
                }
                return Some(i);
            }
            from = i + 1;
        } else {
            // A string value: keys only follow a comma or brace, so skip past it.
            from = end + 1;
        }
    }
    None
}

fn string_field<'a>(frame: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let at = value_at(frame, name)?;
    if frame.get(at) != Some(&b'"') {
        return None;
    }
    let len = find(&frame[at + 1..], b"\"")?;
    Some(&frame[at + 1..at + 1 + len])
}

fn integer_field(frame: &[u8], name: &[u8]) -> Option<u64> {
    let at = value_at(frame, name)?;
    let digits = frame[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    frame[at..at + digits]
        .iter()
        .try_fold(0u64, |v, &d| v.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

#[inline]
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(t: &[u8]) -> Option<MarketIdx> {
        match t {
            b"KXA-1" => Some(0),
            b"KXB-2" => Some(1),
            _ => None,
        }
    }

    #[test]
    fn reads_the_local_exchanges_message() {
        let frame = br#"{"type":"oracle","ticker":"KXB-2","probability":0.5213,"probability_e4":5213,"ts_ms":1780000000123}"#;
        assert_eq!(
            parse_oracle(frame, ours),
            Ok(OracleTick {
                market: 1,
                probability: Price(5213),
                publish_ms: 1_780_000_000_123,
            })
        );
    }

    #[test]
    fn field_order_and_spacing_do_not_matter() {
        let frame = br#"{ "ts_ms" : 7, "probability_e4" : 10000 , "ticker" : "KXA-1", "type" : "oracle" }"#;
        assert_eq!(
            parse_oracle(frame, ours),
            Ok(OracleTick {
                market: 0,
                probability: Price(10_000),
                publish_ms: 7,
            })
        );
    }

    #[test]
    fn a_value_that_looks_like_a_key_is_not_taken_for_one() {
        let frame = br#"{"type":"oracle","ticker":"ts_ms","probability_e4":1,"ts_ms":2}"#;
        assert_eq!(
            parse_oracle(frame, |t| (t == b"ts_ms").then_some(3)).map(|t| (t.market, t.publish_ms)),
            Ok((3, 2))
        );
    }

    #[test]
    fn refuses_what_is_not_a_tick_for_us() {
        let other = br#"{"type":"oracle","ticker":"KXZ-9","probability_e4":5000,"ts_ms":1}"#;
        assert_eq!(parse_oracle(other, ours), Err(OracleSkip::OtherMarket));
        for bad in [
            &br#"{"type":"trade","ticker":"KXA-1","probability_e4":5000,"ts_ms":1}"#[..],
            br#"{"type":"oracle","ticker":"KXA-1","probability":0.5,"ts_ms":1}"#,
            br#"{"type":"oracle","ticker":"KXA-1","probability_e4":10001,"ts_ms":1}"#,
            br#"{"type":"oracle","ticker":"KXA-1","probability_e4":-5,"ts_ms":1}"#,
            br#"{"type":"oracle","ticker":"KXA-1","probability_e4":5000,"ts_ms":99999999999999999999}"#,
            br#"{"type":"oracle","ticker":"KXA-1","probability_e4":5000}"#,
            b"",
            b"not json",
        ] {
            assert_eq!(
                parse_oracle(bad, ours),
                Err(OracleSkip::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
