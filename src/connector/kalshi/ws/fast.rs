//! The fast path: a one-pass scanner for the frame shape Kalshi actually sends.
//!
//! `type` before `msg`, scalar fields, plain ASCII strings. Anything else returns `None` and
//! the frame goes to serde, so the two readers cannot disagree; the tests here hold them to it.

use crate::connector::kalshi::numbers::unquote;
use crate::connector::kalshi::ws::messages::{
    kind_of, Body, DeltaMsg, Envelope, ErrorMsg, FillMsg, Kind, LifecycleMsg, PositionMsg, Put, SubscribedMsg, TickerMsg, Tok, TradeMsg,
    UserOrderMsg,
};

/// Bytes that end a fast string scan: the quote, and everything the fast path leaves to
/// serde (escapes, control characters, non-ASCII).
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i < 0x20 || i >= 0x80 || i == b'"' as usize || i == b'\\' as usize;
        i += 1;
    }
    t
};

/// The high bit of each byte of `word` that is a quote, a backslash, a control character or
/// non-ASCII. Bits above the lowest may be spurious (borrows carry between bytes); only the
/// lowest is used.
#[inline]
fn string_stops(word: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let quote = word ^ (LO * u64::from(b'"'));
    let backslash = word ^ (LO * u64::from(b'\\'));
    let zero_byte = |x: u64| x.wrapping_sub(LO) & !x & HI;
    zero_byte(quote) | zero_byte(backslash) | (word.wrapping_sub(LO * 0x20) & !word & HI) | (word & HI)
}

/// A forward-only scanner over one frame. Every method returns `None` for anything outside
/// the fast path's subset (which serde then reads, or rejects): so on frames it accepts, it
/// agrees with the general path by construction of that subset.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// At an opening quote (after whitespace): the contents up to the closing quote.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        // Eight bytes at a time: strings are most of a frame's bytes.
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).ok()?);
            let stops = string_stops(word);
            if stops != 0 {
                self.i += (stops.trailing_zeros() / 8) as usize;
                break;
            }
            self.i += 8;
        }
        loop {
            let c = *self.b.get(self.i)?;
            if STRING_STOP[usize::from(c)] {
                if c != b'"' {
                    return None;
                }
                let s = &self.b[start..self.i];
                self.i += 1;
                return Some(s);
            }
            self.i += 1;
        }
    }

    #[inline(always)]
    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?`: JSON's number grammar without an exponent.
    #[inline(always)]
    fn number(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let first = *self.b.get(self.i)?;
        let n = self.digits();
        if n == 0 || (first == b'0' && n > 1) {
            return None;
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            return None;
        }
        Some(&self.b[start..self.i])
    }

    /// `word` exactly, after whitespace.
    #[inline(always)]
    fn lit(&mut self, word: &'static [u8]) -> Option<()> {
        self.ws();
        self.b.get(self.i..)?.starts_with(word).then(|| self.i += word.len())
    }

    fn literal(&mut self, word: &'static [u8]) -> Option<&'a [u8]> {
        let s = self.b.get(self.i..self.i + word.len())?;
        (s == word).then(|| {
            self.i += word.len();
            s
        })
    }

    /// Any scalar value; objects and arrays are left to serde.
    #[inline(always)]
    fn token(&mut self) -> Option<Tok<'a>> {
        let first = self.peek()?;
        let start = self.i;
        Some(match first {
            b'"' => {
                self.string()?;
                Tok::Str(&self.b[start..self.i])
            }
            b'-' | b'0'..=b'9' => Tok::Scalar(self.number()?),
            b't' => Tok::Scalar(self.literal(b"true")?),
            b'f' => Tok::Scalar(self.literal(b"false")?),
            b'n' => {
                self.literal(b"null")?;
                Tok::Null
            }
            _ => return None,
        })
    }

    /// An envelope integer: plain digits that fit a u64 (serde's rules, minus the corners).
    #[inline(always)]
    fn uint(&mut self) -> Option<u64> {
        match self.token()? {
            Tok::Scalar(s) if s.iter().all(u8::is_ascii_digit) && s.len() <= 19 => {
                Some(s.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0')))
            }
            _ => None,
        }
    }

    /// `{"key": value, ...}`, calling `field` at each value; `}` consumed.
    #[inline(always)]
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

macro_rules! flat_body {
    ($scan:expr, $slot:expr, $variant:ident, $ty:ident) => {{
        *$slot = Body::$variant($ty::default());
        if let Body::$variant(m) = $slot {
            $scan.object(|s, k| {
                let tok = s.token()?;
                m.set(k, tok)
            })?;
        }
    }};
}

/// The envelope and a flat payload in one pass, without serde, for the shape Kalshi sends:
/// `type` before `msg`, scalar fields, plain ASCII strings. `None` for anything else.
pub(crate) fn fast_envelope<'a>(frame: &'a [u8], env: &mut Envelope<'a>) -> Option<()> {
    let mut s = Scan { b: frame, i: 0 };
    let mut have_msg = false;
    s.object(|s, key| {
        match key {
            b"type" if env.kind.is_none() => match s.token()? {
                Tok::Str(t) => env.kind = Some(kind_of(unquote(t))),
                _ => return None,
            },
            b"sid" if env.sid.is_none() => env.sid = Some(s.uint()?),
            b"seq" if env.seq.is_none() => env.seq = Some(s.uint()?),
            b"id" if env.id.is_none() => env.id = Some(s.uint()?),
            b"msg" if !have_msg => {
                have_msg = true;
                let body = &mut env.body;
                match env.kind? {
                    Kind::Delta => flat_body!(s, body, Delta, DeltaMsg),
                    Kind::Trade => flat_body!(s, body, Trade, TradeMsg),
                    Kind::Ticker => flat_body!(s, body, Ticker, TickerMsg),
                    Kind::Fill => flat_body!(s, body, Fill, FillMsg),
                    Kind::UserOrder => flat_body!(s, body, UserOrder, UserOrderMsg),
                    Kind::Position => flat_body!(s, body, Position, PositionMsg),
                    Kind::Lifecycle => flat_body!(s, body, Lifecycle, LifecycleMsg),
                    Kind::Subscribed => flat_body!(s, body, Subscribed, SubscribedMsg),
                    Kind::Error => flat_body!(s, body, Error, ErrorMsg),
                    _ => return None,
                }
            }
            b"type" | b"sid" | b"seq" | b"id" | b"msg" => return None,
            _ => {
                s.token()?;
            }
        }
        Some(())
    })?;
    s.ws();
    (s.i == frame.len()).then_some(())
}

/// Kalshi's `orderbook_delta` as it arrives, the hottest frame by far: the envelope matched
/// as one literal and each payload key recognised from its first bytes, instead of scanning
/// every key as a string and comparing it against each field name. Values are read and stored
/// exactly as [`fast_envelope`] does (same tokens, same `put`), and a key that is not met in
/// its literal form goes through the same `set`: the two cannot disagree on a frame this
/// accepts. `None` (with `env` left empty) on anything else, for `fast_envelope` and then serde.
#[inline]
pub(crate) fn fast_delta<'a>(frame: &'a [u8], env: &mut Envelope<'a>) -> Option<()> {
    const HEAD: &[u8] = br#"{"type":"orderbook_delta","sid":"#;
    if !frame.starts_with(HEAD) {
        return None;
    }
    let r = fast_delta_body(frame, HEAD.len(), env);
    if r.is_none() {
        *env = Envelope::empty();
    }
    r
}

#[inline(always)]
fn fast_delta_body<'a>(frame: &'a [u8], head: usize, env: &mut Envelope<'a>) -> Option<()> {
    let mut s = Scan { b: frame, i: head };
    env.kind = Some(Kind::Delta);
    env.sid = Some(s.uint()?);
    s.lit(br#","seq":"#)?;
    env.seq = Some(s.uint()?);
    s.lit(br#","msg":{"#)?;
    env.body = Body::Delta(DeltaMsg::default());
    let Body::Delta(m) = &mut env.body else {
        return None;
    };
    if s.peek()? == b'}' {
        s.i += 1;
    } else {
        loop {
            // At the key's opening quote (`lit` and `peek` have skipped whitespace).
            if s.b.get(s.i) != Some(&b'"') {
                return None;
            }
            let key = &s.b[s.i + 1..];
            macro_rules! known {
                ($lit:literal, $field:ident) => {
                    if key.starts_with($lit) {
                        s.i += 1 + $lit.len();
                        let tok = s.token()?;
                        m.$field.put(tok)?;
                        true
                    } else {
                        false
                    }
                };
            }
            let hit = match key.first() {
                Some(b'm') => {
                    known!(br#"market_ticker":"#, market_ticker) || {
                        // Ignored, as `set` would: any scalar.
                        key.starts_with(br#"market_id":"#) && {
                            s.i += 1 + br#"market_id":"#.len();
                            s.token()?;
                            true
                        }
                    }
                }
                Some(b'p') => known!(br#"price_dollars":"#, price_dollars) || known!(br#"price":"#, price),
                Some(b'd') => known!(br#"delta_fp":"#, delta_fp) || known!(br#"delta":"#, delta),
                Some(b's') => known!(br#"side":"#, side),
                Some(b't') => known!(br#"ts_ms":"#, ts_ms) || known!(br#"ts":"#, ts),
                Some(b'c') => known!(br#"client_order_id":"#, client_order_id),
                _ => false,
            };
            if !hit {
                let key = s.string()?;
                s.eat(b':')?;
                let tok = s.token()?;
                m.set(key, tok)?;
            }
            match s.peek()? {
                b',' => {
                    s.i += 1;
                    s.ws();
                }
                b'}' => {
                    s.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    // Anything after `msg` (another envelope key) is left to the general scanner.
    s.eat(b'}')?;
    s.ws();
    (s.i == frame.len()).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::kalshi::interner::Interner;
    use crate::connector::kalshi::ws::decode::Decoder;
    use crate::connector::kalshi::ws::messages::{Body, Envelope};
    use crate::event::{Channel, Stamp};

    #[test]
    fn fast_path_takes_the_common_shapes_and_leaves_the_rest() {
        let fast = |f: &str| {
            let mut env = Envelope::empty();
            fast_envelope(f.as_bytes(), &mut env).is_some()
        };
        for f in [
            r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"K","price_dollars":"0.5800","delta_fp":"-7.00","side":"no","ts_ms":1}}"#,
            r#"{"type":"trade","sid":12,"seq":2,"msg":{"market_ticker":"K","yes_price":36,"count":136,"taker_side":"no","is_block_trade":false}}"#,
            r#" { "type" : "ticker" , "sid" : 11 , "msg" : { "market_ticker" : "K" , "price_dollars" : "" } } "#,
            r#"{"type":"fill","sid":13,"msg":{"order_id":"x","is_taker":true,"count_fp":"1.00"}}"#,
            r#"{"type":"error","id":5,"msg":{"code":7,"msg":"Unknown subscription ID"}}"#,
            r#"{"id":1,"type":"subscribed","msg":{"channel":"trade","sid":1}}"#,
            r#"{"type":"market_lifecycle_v2","sid":15,"seq":1,"msg":{"market_ticker":"K","event_type":"settled","settled_ts":1}}"#,
        ] {
            assert!(fast(f), "{f}");
        }
        for f in [
            r#"{"msg":{"market_ticker":"K"},"type":"orderbook_delta","sid":2,"seq":3}"#,
            r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"K\u0041"}}"#,
            r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"K","extra":[1]}}"#,
            r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"K","market_ticker":"K"}}"#,
            r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":null}}"#,
            r#"{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"delta_fp":1e2}}"#,
            r#"{"type":"orderbook_delta","sid":-2,"seq":3,"msg":{}}"#,
            r#"{"type":"orderbook_delta","sid":2,"seq":03,"msg":{}}"#,
            r#"{"type":"orderbook_snapshot","sid":2,"seq":1,"msg":{"market_ticker":"K","yes_dollars_fp":[]}}"#,
            r#"{"type":"ok","sid":2,"seq":1,"msg":{"market_tickers":["K"]}}"#,
            r#"{"type":"trade","sid":12,"msg":{"market_ticker":"Kä"}}"#,
            r#"{"type":"trade","sid":12,"msg":{}} x"#,
            r#"{"type":"trade","sid":12,"msg":{}"#,
        ] {
            assert!(!fast(f), "{f}");
        }
    }

    const T0: &str = "KXHIGHNY-26JUN24-T82";

    /// A decoder with `T0` (and neighbours sharing its prefix) on an orderbook sid 1.
    fn book_decoder(fast: bool) -> Decoder {
        let mut interner = Interner::with_capacity(64);
        interner.intern(T0.as_bytes()).unwrap();
        for i in 0..20 {
            interner.intern(format!("KXHIGHNY-26JUN24-T{i}").as_bytes()).unwrap();
        }
        let mut d = Decoder::new(interner);
        d.set_fast_path(fast);
        d.register_subscribe(1, &[Channel::OrderbookDelta], &[0], false).unwrap();
        let f = br#"{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}"#;
        d.decode(f, Stamp::default(), &mut |_| {}).unwrap();
        d
    }

    fn delta_fast(f: &[u8]) -> bool {
        let mut env = Envelope::empty();
        let took = fast_delta(f, &mut env).is_some();
        if !took {
            assert!(
                env.kind.is_none() && matches!(env.body, Body::Absent),
                "{}",
                String::from_utf8_lossy(f)
            );
        }
        took
    }

    /// Same result, events and counters from the fast paths and from serde alone.
    fn agree(frames: &[Vec<u8>]) -> Result<(), String> {
        let (mut fast, mut slow) = (book_decoder(true), book_decoder(false));
        for f in frames {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let ra = fast.decode(f, Stamp::default(), &mut |e| a.push(e));
            let rb = slow.decode(f, Stamp::default(), &mut |e| b.push(e));
            if (ra, &a) != (rb, &b) {
                return Err(format!("{}: {ra:?} {a:?} vs {rb:?} {b:?}", String::from_utf8_lossy(f)));
            }
        }
        if fast.counters() != slow.counters() {
            return Err(format!("{:?} vs {:?}", fast.counters(), slow.counters()));
        }
        Ok(())
    }

    #[test]
    fn delta_fast_path_takes_the_kalshi_shape_and_leaves_the_rest() {
        let take = [
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"market_ticker":"KXHIGHNY-26JUN24-T82","market_id":"0445cdcb-e22f-4522-9981-aed4b66015ff","price_dollars":"0.5800","delta_fp":"-7.00","side":"no","ts":"2026-06-24T15:49:55.033836Z","ts_ms":1782316195033}}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":8,"msg":{"delta":-7,"delta_fp":"-7.00","market_id":"x","market_ticker":"KXHIGHNY-26JUN24-T82","price":58,"price_dollars":"0.5800","side":"yes","ts":"2026-06-24T15:49:55.033Z","ts_ms":1}}"#,
            r#"{"type":"orderbook_delta","sid": 1 ,"seq": 9 ,"msg":{ "side" : "no", "market_ticker":"KXHIGHNY-26JUN24-T82" , "client_order_id":"c","subaccount":0,"extra":true,"price":58,"delta":1 } } "#,
            r#"{"type":"orderbook_delta","sid":1,"seq":10,"msg":{}}"#,
        ];
        for f in take {
            assert!(delta_fast(f.as_bytes()), "{f}");
        }
        let leave = [
            r#"{"type":"trade","sid":1,"seq":7,"msg":{}}"#,
            r#"{"sid":1,"type":"orderbook_delta","seq":7,"msg":{}}"#,
            r#"{"type":"orderbook_delta","sid":1,"msg":{},"seq":7}"#,
            r#"{"type":"orderbook_delta","sid":01,"seq":7,"msg":{}}"#,
            r#"{"type":"orderbook_delta","sid":-1,"seq":7,"msg":{}}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7.0,"msg":{}}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"side":"no","side":"no"}}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"market_ticker":null}}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"market_ticker":"K\"X"}}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"market_id":{"a":1}}}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"price_dollars":["0.5"]}}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"delta_fp":1e2}}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"side":no}}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"side":"no",}}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"side":"no"},"x":1}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"side":"no"}} x"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"side":"no"}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"side":"nö"}}"#,
            r#"{"type":"orderbook_delta","sid":1,"seq":7,"msg":{"#,
            r#"{"type":"orderbook_delta","sid":"#,
        ];
        for f in leave {
            assert!(!delta_fast(f.as_bytes()), "{f}");
        }
        let all: Vec<Vec<u8>> = take.iter().chain(leave.iter()).map(|f| f.as_bytes().to_vec()).collect();
        agree(&all).unwrap();
        // Every prefix of a good frame: truncation is an error, never a panic, on both paths.
        let cut: Vec<Vec<u8>> = (0..take[0].len()).map(|n| take[0].as_bytes()[..n].to_vec()).collect();
        agree(&cut).unwrap();
    }

    mod props {
        use super::*;
        use crate::connector::kalshi::numbers::tests::props::decimal;
        use proptest::prelude::*;

        fn key_value() -> impl Strategy<Value = String> {
            let s = |k: &'static str, v: BoxedStrategy<String>| v.prop_map(move |v| format!("\"{k}\":{v}"));
            let quoted = || decimal().prop_map(|d| format!("\"{d}\"")).boxed();
            let bare = || "-?[1-9][0-9]{0,12}(\\.[0-9]{1,4})?".boxed();
            prop_oneof![
                s(
                    "market_ticker",
                    prop_oneof![
                        Just(format!("\"{T0}\"")),
                        Just("\"KXHIGHNY-26JUN24-T3\"".to_string()),
                        Just("\"NOPE\"".to_string())
                    ]
                    .boxed()
                ),
                s("market_id", Just("\"0445cdcb-e22f-4522-9981-aed4b66015ff\"".to_string()).boxed()),
                s("price_dollars", quoted()),
                s("price", bare()),
                s("delta_fp", quoted()),
                s("delta", bare()),
                s(
                    "side",
                    prop_oneof![Just("\"yes\""), Just("\"no\""), Just("\"maybe\"")]
                        .prop_map(str::to_string)
                        .boxed()
                ),
                s(
                    "client_order_id",
                    prop_oneof![Just("\"\""), Just("\"my-1\"")].prop_map(str::to_string).boxed()
                ),
                s(
                    "ts",
                    prop_oneof![
                        Just("\"2026-06-24T15:49:55.033836Z\""),
                        Just("\"2026-06-24T15:49\""),
                        Just("1700000000")
                    ]
                    .prop_map(str::to_string)
                    .boxed()
                ),
                s("ts_ms", "[0-9]{1,20}".boxed()),
                s("subaccount", Just("0".to_string()).boxed()),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn delta_fast_path_agrees_with_serde(
                frames in prop::collection::vec((
                    prop::collection::vec(key_value(), 0..9),
                    0u64..6,
                    prop_oneof![Just(""), Just(" "), Just("\n ")],
                    prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 0..2),
                ), 1..6),
            ) {
                let mut out = Vec::new();
                for (seq, (fields, step, ws, edits)) in frames.into_iter().enumerate() {
                    let body = fields.join(&format!(",{ws}"));
                    let seq = seq as u64 * 2 + step;
                    let mut f = format!("{{\"type\":\"orderbook_delta\",\"sid\":1,\"seq\":{seq},\"msg\":{{{ws}{body}{ws}}}}}").into_bytes();
                    // A byte edit now and then: the fallback must agree on broken frames too.
                    for (at, op, byte) in edits {
                        let i = at.index(f.len());
                        let b = b"0123456789.-\"{}[],:eE +ynoabt\\"[usize::from(byte) % 30];
                        match op {
                            0 => f[i] = b,
                            1 => { f.remove(i); }
                            2 => f.insert(i, b),
                            _ => f.truncate(i),
                        }
                    }
                    out.push(f);
                }
                agree(&out).map_err(TestCaseError::fail)?;
            }
        }
    }
}
