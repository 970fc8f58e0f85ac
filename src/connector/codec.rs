//! Kalshi wire codec: WebSocket frames to fixed-size [`Event`]s, order commands to request bytes.
//!
//! Hot-path contract: after warm-up, [`Decoder::decode`] and every `encode_*` function allocate
//! nothing on well-formed input, take no lock and format no text. Every decimal is parsed
//! exactly from its bytes with [`parse_scaled`], whether it arrived as a string (`"74.77"`), a
//! JSON number or an Era-A integer; no float is ever involved. The error path may allocate
//! (serde_json boxes its errors): malformed input is rare, counted, and never a panic.
//!
//! Two readers share one set of borrowed payload structs (see `flat_msg!`):
//!
//! - the general path is serde_json into those structs, borrowing byte strings and the raw
//!   text of numbers from the frame (`&RawValue`); it reads any valid JSON, in any key order,
//!   and is the only reader of snapshots (whose levels stream straight into a reserved buffer),
//!   `ok` acks and frames whose `msg` precedes `type`;
//! - a fast path scans the shape Kalshi actually sends (`type` before `msg`, scalar fields,
//!   plain ASCII strings) in one pass, about three times faster than serde. Anything outside
//!   that subset (an escape, a nested value, a repeated key, a `null`, an exponent) makes it
//!   hand the frame to serde, so the two cannot disagree; a property test checks that they don't.
//!
//! Both API eras are understood in one pass: the current fixed-point fields (`*_dollars`,
//! `*_fp`) win when present, the Era-A integer fields (cents, whole counts, centi-cent money)
//! are the fallback. The local exchange sends both side by side, and its Era-A integers are
//! rounded, which is why the fixed-point field must win.
//!
//! Sequencing: the decoder keeps `last_seq` per subscription, so a duplicate is dropped here
//! (every trade and delta reaches the strategy once) and a gap on an orderbook subscription
//! turns into [`EventBody::Stale`] for each market of that subscription. A frame that cannot be
//! applied does not advance `last_seq`, so losing it is reported like losing it on the wire.

use crate::event::{
    Channel, ClientRef, Event, EventBody, Lifecycle, MarketIdx, Money, OrderId, OrderStatus, Price, Qty, Side, Stamp, TimeInForce,
};
use kalshi_proto::units::parse_scaled;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

// ------------------------------------------------------------------------------------ interner

/// Ticker to [`MarketIdx`], filled at subscribe time and read on every frame.
///
/// Open addressing over the ticker bytes with a fixed table: a look-up hashes the borrowed
/// bytes and compares, never allocates.
pub struct Interner {
    /// Index into `names`, or `EMPTY`.
    slots: Box<[u16]>,
    names: Vec<Box<[u8]>>,
    capacity: usize,
}

const EMPTY: u16 = u16::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InternError {
    Full,
    /// Empty, or longer than [`Interner::MAX_TICKER`].
    BadTicker,
}

impl Interner {
    pub const MAX_TICKER: usize = 128;

    /// Room for `capacity` markets (at most `u16::MAX - 1`).
    pub fn with_capacity(capacity: usize) -> Interner {
        let capacity = capacity.clamp(1, usize::from(EMPTY) - 1);
        // Load factor at most 1/2 keeps probe runs short.
        let table = (capacity * 2).next_power_of_two().max(8);
        Interner {
            slots: vec![EMPTY; table].into_boxed_slice(),
            names: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// The market's index, interning the ticker if it is new. Allocates: call at subscribe time.
    pub fn intern(&mut self, ticker: &[u8]) -> Result<MarketIdx, InternError> {
        if ticker.is_empty() || ticker.len() > Self::MAX_TICKER {
            return Err(InternError::BadTicker);
        }
        let mask = self.slots.len() - 1;
        let mut i = hash(ticker) as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY => break,
                idx if *self.names[usize::from(idx)] == *ticker => return Ok(idx),
                _ => i = (i + 1) & mask,
            }
        }
        if self.names.len() >= self.capacity {
            return Err(InternError::Full);
        }
        let idx = self.names.len() as u16;
        self.names.push(ticker.into());
        self.slots[i] = idx;
        Ok(idx)
    }

    #[inline]
    pub fn get(&self, ticker: &[u8]) -> Option<MarketIdx> {
        let mask = self.slots.len() - 1;
        let mut i = hash(ticker) as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY => return None,
                idx if same_bytes(&self.names[usize::from(idx)], ticker) => return Some(idx),
                _ => i = (i + 1) & mask,
            }
        }
    }

    pub fn ticker(&self, market: MarketIdx) -> Option<&[u8]> {
        self.names.get(usize::from(market)).map(|b| &**b)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Tickers share long prefixes and differ in the date and strike, so the first, middle and
/// last eight bytes carry what tells them apart: three loads and two independent multiplies
/// instead of a serial multiply per eight bytes. Equal tickers always hash equal; rarer
/// collisions only lengthen a probe.
#[inline]
fn hash(bytes: &[u8]) -> u64 {
    const K1: u64 = 0x517c_c1b7_2722_0a95;
    const K2: u64 = 0x9e37_79b9_7f4a_7c15;
    let n = bytes.len();
    let (a, m, z) = if n >= 8 {
        (load8(bytes, 0), load8(bytes, (n - 8) / 2), load8(bytes, n - 8))
    } else {
        let mut w = [0u8; 8];
        w[..n].copy_from_slice(bytes);
        (u64::from_le_bytes(w), 0, 0)
    };
    let h = (a ^ m.rotate_left(23)).wrapping_mul(K1) ^ (z ^ n as u64).wrapping_mul(K2);
    h ^ (h >> 29)
}

/// Eight bytes at `at` (the caller keeps `at + 8 <= b.len()`).
#[inline(always)]
fn load8(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Byte equality in words: tickers are 10 to 30 bytes, where a `memcmp` call costs more than
/// the compare.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let mut i = 0;
    while i + 8 < n {
        if load8(a, i) != load8(b, i) {
            return false;
        }
        i += 8;
    }
    load8(a, n - 8) == load8(b, n - 8)
}

/// A set of markets as a fixed bitmap sized to the interner's capacity.
#[derive(Clone)]
struct MarketSet(Box<[u64]>);

impl MarketSet {
    fn new(capacity: usize) -> MarketSet {
        MarketSet(vec![0; capacity.div_ceil(64)].into_boxed_slice())
    }
    fn insert(&mut self, m: MarketIdx) {
        if let Some(w) = self.0.get_mut(usize::from(m) / 64) {
            *w |= 1 << (m % 64);
        }
    }
    fn remove(&mut self, m: MarketIdx) {
        if let Some(w) = self.0.get_mut(usize::from(m) / 64) {
            *w &= !(1 << (m % 64));
        }
    }
    fn contains(&self, m: MarketIdx) -> bool {
        self.0.get(usize::from(m) / 64).is_some_and(|w| w & (1 << (m % 64)) != 0)
    }
    fn clear(&mut self) {
        self.0.fill(0);
    }
    fn copy_from(&mut self, other: &MarketSet) {
        self.0.copy_from_slice(&other.0);
    }
    fn union_with(&mut self, other: &MarketSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }
    fn for_each(&self, mut f: impl FnMut(MarketIdx)) {
        for (i, &w) in self.0.iter().enumerate() {
            let mut w = w;
            while w != 0 {
                let bit = w.trailing_zeros();
                f((i * 64 + bit as usize) as MarketIdx);
                w &= w - 1;
            }
        }
    }
}

// ------------------------------------------------------------------------------------ decoder

/// Why a frame produced no (or not all of its) events. Plain data: the caller logs it through
/// the fixed-size logger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame ends inside a JSON value.
    Truncated,
    /// Not JSON.
    Syntax,
    /// JSON, but a field has the wrong type (or the frame is not an object).
    WrongType,
    /// No `type` in the envelope.
    MissingType,
    /// A `type` (or lifecycle `event_type`) kmm does not know.
    UnknownType,
    /// A field the message cannot do without is absent.
    MissingField,
    /// A price, count, amount, id or timestamp that does not parse or is out of range.
    BadNumber,
    /// A side, status or other enumerated string kmm does not know.
    BadEnum,
    /// An order id that is not a UUID.
    BadId,
    /// The market was never interned.
    UnknownMarket,
    /// Book data on a subscription kmm has no record of: the NO-side price convention is unknown.
    UnknownSid,
    /// The subscription table or the pending-subscribe table is full.
    NoCapacity,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for DecodeError {}

/// Monotonic counters, read by the metrics dump.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub frames: u64,
    pub events: u64,
    pub malformed: u64,
    pub unknown_type: u64,
    pub unknown_market: u64,
    pub unknown_sid: u64,
    /// Sequenced frames that arrived after a missing seq number.
    pub seq_gaps: u64,
    /// Sequenced frames dropped because their seq was already seen.
    pub duplicates: u64,
    pub ws_errors: u64,
}

/// What the decoder knows about one subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubInfo {
    pub sid: u32,
    /// `None` for a channel kmm does not decode.
    pub channel: Option<Channel>,
    pub use_yes_price: bool,
    pub last_seq: Option<u64>,
}

/// Subscriptions per connection. kmm uses one per channel (seven), plus headroom for the
/// subscribe-again-on-error path, where the dead sid is removed first.
pub const MAX_SUBS: usize = 32;
/// Subscribe commands awaiting their `subscribed` replies.
pub const MAX_PENDING: usize = 16;
/// Snapshot levels decoded without growing the level buffer (both sides; a decicent ladder
/// has at most 1000 levels a side).
pub const LEVELS_RESERVED: usize = 2048;

struct SubSlot {
    live: bool,
    sid: u32,
    channel: Option<Channel>,
    use_yes_price: bool,
    last_seq: Option<u64>,
    markets: MarketSet,
}

struct Pending {
    live: bool,
    id: u64,
    /// Channels of the command still waiting for their reply, one bit per [`channel_bit`].
    channels: u8,
    use_yes_price: bool,
    markets: MarketSet,
}

/// A snapshot level as sent: its side and NO-leg price are converted once the subscription
/// (and so the price convention) is known.
#[derive(Clone, Copy)]
struct Level {
    no: bool,
    /// Which of the snapshot's level arrays it came from (see [`SOURCE_PLACES`]).
    source: u8,
    price: Price,
    qty: Qty,
}

/// The level arrays of a snapshot, best first: Era-B `*_dollars_fp`, Era-A `*_dollars`
/// (string price, integer count) and Era-A `yes`/`no` (integer cents): the decimal places of
/// their prices.
const SOURCE_PLACES: [u32; 3] = [4, 4, 2];

/// Decodes the WebSocket frames of one connection. Build one per connection (or [`reset`] it
/// on reconnect: sids restart and every book needs a fresh snapshot).
///
/// [`reset`]: Decoder::reset
pub struct Decoder {
    interner: Interner,
    subs: Box<[SubSlot]>,
    pending: Box<[Pending]>,
    levels: Vec<Level>,
    counters: Counters,
    fast_path: bool,
    /// The trade id of the last `Fill` decoded (see [`Decoder::last_fill_trade`]).
    last_fill_trade: Option<u128>,
}

fn channel_bit(c: Channel) -> u8 {
    1 << match c {
        Channel::OrderbookDelta => 0,
        Channel::Trade => 1,
        Channel::Ticker => 2,
        Channel::Fill => 3,
        Channel::UserOrders => 4,
        Channel::MarketPositions => 5,
        Channel::MarketLifecycle => 6,
    }
}

/// The subscribe name of a channel.
pub fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::OrderbookDelta => "orderbook_delta",
        Channel::Trade => "trade",
        Channel::Ticker => "ticker",
        Channel::Fill => "fill",
        Channel::UserOrders => "user_orders",
        Channel::MarketPositions => "market_positions",
        Channel::MarketLifecycle => "market_lifecycle_v2",
    }
}

fn channel_of(name: &[u8]) -> Option<Channel> {
    Some(match name {
        b"orderbook_delta" => Channel::OrderbookDelta,
        b"trade" => Channel::Trade,
        b"ticker" => Channel::Ticker,
        b"fill" => Channel::Fill,
        b"user_orders" => Channel::UserOrders,
        b"market_positions" => Channel::MarketPositions,
        b"market_lifecycle_v2" => Channel::MarketLifecycle,
        _ => return None,
    })
}

impl Decoder {
    pub fn new(interner: Interner) -> Decoder {
        let cap = interner.capacity();
        let subs = (0..MAX_SUBS)
            .map(|_| SubSlot {
                live: false,
                sid: 0,
                channel: None,
                use_yes_price: false,
                last_seq: None,
                markets: MarketSet::new(cap),
            })
            .collect();
        let pending = (0..MAX_PENDING)
            .map(|_| Pending {
                live: false,
                id: 0,
                channels: 0,
                use_yes_price: false,
                markets: MarketSet::new(cap),
            })
            .collect();
        Decoder {
            interner,
            subs,
            pending,
            levels: Vec::with_capacity(LEVELS_RESERVED),
            counters: Counters::default(),
            fast_path: true,
            last_fill_trade: None,
        }
    }

    pub fn interner(&self) -> &Interner {
        &self.interner
    }

    /// For interning markets added later. The capacity stays what it was at construction.
    pub fn interner_mut(&mut self) -> &mut Interner {
        &mut self.interner
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The `trade_id` (a UUID's 128 bits) of the last `Fill` event decoded, `None` if that
    /// fill carried none. A fill frame holds one fill, so after a `decode` that pushed a `Fill`
    /// this identifies it: with the event's order it is the key the io thread deduplicates
    /// WebSocket fills against REST backfill with (`replies::FillKey`).
    pub fn last_fill_trade(&self) -> Option<u128> {
        self.last_fill_trade
    }

    /// The scanner for flat messages is on by default; off, every frame goes through serde.
    /// Both give the same events (a property test holds them to it); the switch is for that
    /// test and for ruling the scanner out when chasing a bug.
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast_path = on;
    }

    /// Forgets every subscription and pending command (a new connection reuses sids).
    pub fn reset(&mut self) {
        for s in self.subs.iter_mut() {
            s.live = false;
        }
        for p in self.pending.iter_mut() {
            p.live = false;
        }
    }

    /// Records a subscribe command sent with `id`, so its `subscribed` replies (one per
    /// channel, each with its own sid) inherit the NO-price convention and the market list.
    pub fn register_subscribe(
        &mut self,
        id: u64,
        channels: &[Channel],
        markets: &[MarketIdx],
        use_yes_price: bool,
    ) -> Result<(), DecodeError> {
        let slot = match self.pending.iter().position(|p| p.live && p.id == id) {
            Some(i) => i,
            None => self.pending.iter().position(|p| !p.live).ok_or(DecodeError::NoCapacity)?,
        };
        let p = &mut self.pending[slot];
        p.live = true;
        p.id = id;
        p.channels = channels.iter().fold(0, |m, c| m | channel_bit(*c));
        p.use_yes_price = use_yes_price;
        p.markets.clear();
        for &m in markets {
            p.markets.insert(m);
        }
        Ok(())
    }

    /// Markets added to a subscription with `update_subscription add_markets`.
    pub fn add_markets(&mut self, sid: u32, markets: &[MarketIdx]) {
        if let Some(i) = self.slot_of(sid) {
            for &m in markets {
                self.subs[i].markets.insert(m);
            }
        }
    }

    pub fn remove_markets(&mut self, sid: u32, markets: &[MarketIdx]) {
        if let Some(i) = self.slot_of(sid) {
            for &m in markets {
                self.subs[i].markets.remove(m);
            }
        }
    }

    pub fn sub_info(&self, sid: u32) -> Option<SubInfo> {
        self.slot_of(sid).map(|i| {
            let s = &self.subs[i];
            SubInfo {
                sid: s.sid,
                channel: s.channel,
                use_yes_price: s.use_yes_price,
                last_seq: s.last_seq,
            }
        })
    }

    /// The orderbook subscription that carries `market` (for a `get_snapshot` resync).
    pub fn orderbook_sid(&self, market: MarketIdx) -> Option<u32> {
        self.subs
            .iter()
            .find(|s| s.live && s.channel == Some(Channel::OrderbookDelta) && s.markets.contains(market))
            .map(|s| s.sid)
    }

    #[inline]
    fn slot_of(&self, sid: u32) -> Option<usize> {
        self.subs.iter().position(|s| s.live && s.sid == sid)
    }

    /// Decodes one WebSocket text frame, pushing its events to `sink` in order, and returns how
    /// many it pushed. `stamp` carries the io thread's TSC stamps; the decoder fills in `sid`,
    /// `seq` and `exchange_ts_ms` (the sink sets `parsed_tsc` as it pushes to the ring).
    ///
    /// On an error the frame's own events are not pushed, but `Stale` markers for a detected
    /// gap may have been.
    pub fn decode(&mut self, frame: &[u8], stamp: Stamp, sink: &mut impl FnMut(Event)) -> Result<usize, DecodeError> {
        self.counters.frames += 1;
        let mut pushed = 0usize;
        let mut counted = |ev: Event| {
            pushed += 1;
            sink(ev)
        };
        // Filled in place: a payload is a few hundred bytes, too many to move around per frame.
        let mut env = Envelope::empty();
        let result = if self.fast_path && (fast_delta(frame, &mut env).is_some() || fast_envelope(frame, &mut env).is_some()) {
            self.dispatch(&env, stamp, &mut counted)
        } else {
            let mut bad = None;
            match parse_envelope(frame, &mut self.levels, &mut bad) {
                Ok(env) => self.dispatch(&env, stamp, &mut counted),
                Err(e) => Err(bad.unwrap_or(e)),
            }
        };
        self.counters.events += pushed as u64;
        match result {
            Ok(()) => Ok(pushed),
            Err(e) => {
                let c = &mut self.counters;
                match e {
                    DecodeError::UnknownType => c.unknown_type += 1,
                    DecodeError::UnknownMarket => c.unknown_market += 1,
                    DecodeError::UnknownSid => c.unknown_sid += 1,
                    _ => c.malformed += 1,
                }
                Err(e)
            }
        }
    }

    fn dispatch<S: FnMut(Event)>(&mut self, env: &Envelope<'_>, mut stamp: Stamp, sink: &mut S) -> Result<(), DecodeError> {
        let kind = env.kind.ok_or(DecodeError::MissingType)?;
        let sid = match env.sid {
            Some(s) => Some(u32::try_from(s).map_err(|_| DecodeError::BadNumber)?),
            None => None,
        };
        stamp.sid = sid.unwrap_or(0);
        stamp.seq = env.seq.unwrap_or(0);
        stamp.exchange_ts_ms = 0;
        // The type may have followed `msg`; then `msg` was kept raw and is typed now.
        let typed;
        let body = match &env.body {
            Body::Raw(raw) if kind == Kind::Ok => {
                typed = Body::Ok(raw);
                &typed
            }
            Body::Raw(raw) => {
                let mut bad = None;
                let mut de = serde_json::Deserializer::from_str(raw.get());
                let seed = MsgSeed {
                    kind: Some(kind),
                    levels: &mut self.levels,
                    bad: &mut bad,
                };
                typed = seed.deserialize(&mut de).map_err(|e| bad.unwrap_or_else(|| json_error(e)))?;
                &typed
            }
            b => b,
        };
        match kind {
            Kind::Subscribed => return self.on_subscribed(env.id, body, stamp, sink),
            Kind::Error => return self.on_error(env.id, sid, body, stamp, sink),
            Kind::Unsubscribed => {
                if let Some(i) = sid.and_then(|s| self.slot_of(s)) {
                    self.subs[i].live = false;
                }
                return Ok(());
            }
            _ => {}
        }
        let slot = sid.and_then(|s| self.slot_of(s));
        if let (Some(i), Some(seq)) = (slot, env.seq) {
            if let Some(last) = self.subs[i].last_seq {
                if seq <= last {
                    self.counters.duplicates += 1;
                    return Ok(());
                }
                if seq != last + 1 {
                    self.counters.seq_gaps += 1;
                    self.stale_all(i, stamp, sink);
                }
            }
        }
        let result = self.data(kind, env.id, body, slot, stamp, sink);
        if let (Some(i), Some(seq)) = (slot, env.seq) {
            if matches!(result, Ok(()) | Err(DecodeError::UnknownMarket) | Err(DecodeError::UnknownType)) {
                self.subs[i].last_seq = Some(seq);
            }
        }
        result
    }

    fn stale_all<S: FnMut(Event)>(&self, slot: usize, stamp: Stamp, sink: &mut S) {
        let s = &self.subs[slot];
        if s.channel == Some(Channel::OrderbookDelta) {
            s.markets.for_each(|market| {
                sink(Event {
                    stamp,
                    body: EventBody::Stale { market },
                })
            });
        }
    }

    #[inline]
    fn market(&self, ticker: Option<&[u8]>) -> Result<MarketIdx, DecodeError> {
        let t = ticker.ok_or(DecodeError::MissingField)?;
        self.interner.get(t).ok_or(DecodeError::UnknownMarket)
    }

    fn on_subscribed<S: FnMut(Event)>(
        &mut self,
        id: Option<u64>,
        body: &Body<'_>,
        mut stamp: Stamp,
        sink: &mut S,
    ) -> Result<(), DecodeError> {
        let Body::Subscribed(m) = body else {
            return Err(DecodeError::MissingField);
        };
        let sid: u32 = small_int(m.sid.ok_or(DecodeError::MissingField)?)?;
        let name = m.channel.ok_or(DecodeError::MissingField)?;
        let Some(channel) = channel_of(name) else {
            // A channel kmm does not decode: nothing to record or report.
            return Ok(());
        };
        let i = match self.slot_of(sid) {
            Some(i) => i,
            None => self.subs.iter().position(|s| !s.live).ok_or(DecodeError::NoCapacity)?,
        };
        let pending = id.filter(|&id| id != 0).and_then(|id| {
            self.pending
                .iter()
                .position(|p| p.live && p.id == id && p.channels & channel_bit(channel) != 0)
        });
        let s = &mut self.subs[i];
        s.live = true;
        s.sid = sid;
        s.channel = Some(channel);
        s.last_seq = None;
        match pending {
            Some(p) => {
                let p = &mut self.pending[p];
                s.use_yes_price = p.use_yes_price;
                s.markets.copy_from(&p.markets);
                p.channels &= !channel_bit(channel);
                p.live = p.channels != 0;
            }
            // Kalshi's default when the flag is not sent.
            None => {
                s.use_yes_price = false;
                s.markets.clear();
            }
        }
        stamp.sid = sid;
        sink(Event {
            stamp,
            body: EventBody::Subscribed { channel, sid },
        });
        Ok(())
    }

    fn on_error<S: FnMut(Event)>(
        &mut self,
        id: Option<u64>,
        sid: Option<u32>,
        body: &Body<'_>,
        stamp: Stamp,
        sink: &mut S,
    ) -> Result<(), DecodeError> {
        let Body::Error(m) = body else {
            return Err(DecodeError::MissingField);
        };
        let code: u16 = small_int(m.code.ok_or(DecodeError::MissingField)?)?;
        self.counters.ws_errors += 1;
        if let Some(id) = id.filter(|&id| id != 0) {
            // A failed subscribe sends no `subscribed` replies; the command is finished.
            for p in self.pending.iter_mut().filter(|p| p.live && p.id == id) {
                p.live = false;
            }
        }
        if let Some(i) = sid.and_then(|s| self.slot_of(s)) {
            // 10 (channel error), 17 (internal, older spec) and 25 (outbound buffer overflow)
            // end the subscription: its books are stale until a resubscribe brings snapshots.
            if matches!(code, 10 | 17 | 25) {
                self.stale_all(i, stamp, sink);
                self.subs[i].live = false;
            }
        }
        sink(Event {
            stamp,
            body: EventBody::WsError {
                code,
                sid: sid.unwrap_or(0),
            },
        });
        Ok(())
    }

    fn data<S: FnMut(Event)>(
        &mut self,
        kind: Kind,
        id: Option<u64>,
        body: &Body<'_>,
        slot: Option<usize>,
        mut stamp: Stamp,
        sink: &mut S,
    ) -> Result<(), DecodeError> {
        match body {
            Body::Delta(m) => {
                let use_yes = self.book_convention(slot)?;
                let market = self.market(m.market_ticker)?;
                let no = side_is_no(m.side)?;
                let price = price_either(m.price_dollars, m.price)?;
                let delta = qty(m.delta_fp.or(m.delta).ok_or(DecodeError::MissingField)?)?;
                let (side, price) = yes_scale(no, price, use_yes);
                stamp.exchange_ts_ms = ts(m.ts_ms, m.ts)?;
                let own = m.client_order_id.is_some_and(|c| !c.is_empty());
                sink(Event {
                    stamp,
                    body: EventBody::BookDelta {
                        market,
                        side,
                        price,
                        delta,
                        own,
                    },
                });
                Ok(())
            }
            Body::Snapshot(m) => {
                // The levels were parsed into `self.levels` with the envelope.
                let use_yes = self.book_convention(slot)?;
                let market = self.market(m.market_ticker)?;
                stamp.exchange_ts_ms = ts(m.ts_ms, None)?;
                sink(Event {
                    stamp,
                    body: EventBody::BookClear { market },
                });
                for no in [false, true] {
                    // Per side, the best array the message carries (present, even if empty).
                    let Some(source) = (0..3u8).find(|s| m.present & present_bit(no, *s) != 0) else {
                        continue;
                    };
                    for l in self.levels.iter().filter(|l| l.no == no && l.source == source) {
                        let (side, price) = yes_scale(no, l.price, use_yes);
                        sink(Event {
                            stamp,
                            body: EventBody::BookLevel {
                                market,
                                side,
                                price,
                                qty: l.qty,
                            },
                        });
                    }
                }
                sink(Event {
                    stamp,
                    body: EventBody::BookSnapshotEnd { market },
                });
                Ok(())
            }
            Body::Trade(m) => {
                let market = self.market(m.market_ticker)?;
                let yes_price = price_either(m.yes_price_dollars, m.yes_price)?;
                let q = qty(m.count_fp.or(m.count).ok_or(DecodeError::MissingField)?)?;
                let taker = match (m.taker_book_side, m.taker_outcome_side.or(m.taker_side)) {
                    (Some(b), _) => book_side(b)?,
                    (None, Some(o)) => outcome_side(o)?,
                    (None, None) => return Err(DecodeError::MissingField),
                };
                stamp.exchange_ts_ms = ts(m.ts_ms, m.ts)?;
                sink(Event {
                    stamp,
                    body: EventBody::Trade {
                        market,
                        yes_price,
                        qty: q,
                        taker,
                    },
                });
                Ok(())
            }
            Body::Ticker(m) => {
                let market = self.market(m.market_ticker)?;
                let yes_bid = opt_price(m.yes_bid_dollars, m.yes_bid)?.unwrap_or(Price(0));
                let yes_ask = opt_price(m.yes_ask_dollars, m.yes_ask)?.unwrap_or(Price(10_000));
                let last = opt_price(m.price_dollars, m.price)?.unwrap_or(Price(0));
                stamp.exchange_ts_ms = ts(m.ts_ms, m.ts)?;
                sink(Event {
                    stamp,
                    body: EventBody::Ticker {
                        market,
                        yes_bid,
                        yes_ask,
                        last,
                    },
                });
                Ok(())
            }
            Body::Fill(m) => {
                let market = self.market(m.market_ticker)?;
                let order = OrderId::parse(m.order_id.ok_or(DecodeError::MissingField)?).ok_or(DecodeError::BadId)?;
                let client = m.client_order_id.and_then(ClientRef::parse).unwrap_or_default();
                let side = direction(m.book_side, m.outcome_side.or(m.purchased_side), m.side, m.action)?;
                let yes_price = price_either(m.yes_price_dollars, m.yes_price)?;
                let q = qty(m.count_fp.or(m.count).ok_or(DecodeError::MissingField)?)?;
                let fee = match m.fee_cost {
                    Some(r) => money(r, 6)?,
                    None => Money(0),
                };
                let post_position = qty(m.post_position_fp.or(m.post_position).ok_or(DecodeError::MissingField)?)?;
                stamp.exchange_ts_ms = ts(m.ts_ms, m.ts)?;
                let is_taker = match m.is_taker {
                    Some(n) => flag(n)?,
                    None => false,
                };
                self.last_fill_trade = m.trade_id.and_then(OrderId::parse).map(|t| t.0);
                sink(Event {
                    stamp,
                    body: EventBody::Fill {
                        market,
                        client,
                        order,
                        side,
                        yes_price,
                        qty: q,
                        is_taker,
                        fee,
                        post_position,
                    },
                });
                Ok(())
            }
            Body::UserOrder(m) => {
                let market = self.market(m.ticker.or(m.market_ticker))?;
                let order = OrderId::parse(m.order_id.ok_or(DecodeError::MissingField)?).ok_or(DecodeError::BadId)?;
                let client = m.client_order_id.and_then(ClientRef::parse).unwrap_or_default();
                let status = match m.status.ok_or(DecodeError::MissingField)? {
                    b"resting" => OrderStatus::Resting,
                    b"canceled" | b"cancelled" => OrderStatus::Canceled,
                    b"executed" => OrderStatus::Executed,
                    _ => return Err(DecodeError::BadEnum),
                };
                let side = direction(m.book_side, m.outcome_side, m.side, m.action)?;
                let price = price_either(m.yes_price_dollars, m.yes_price)?;
                let remaining = qty(m.remaining_count_fp.or(m.remaining_count).ok_or(DecodeError::MissingField)?)?;
                let filled = qty(m.fill_count_fp.or(m.fill_count).ok_or(DecodeError::MissingField)?)?;
                stamp.exchange_ts_ms = ts(m.last_updated_ts_ms.or(m.created_ts_ms), None)?;
                sink(Event {
                    stamp,
                    body: EventBody::OrderUpdate {
                        market,
                        client,
                        order,
                        status,
                        side,
                        price,
                        remaining,
                        filled,
                    },
                });
                Ok(())
            }
            Body::Position(m) => {
                let market = self.market(m.market_ticker.or(m.ticker))?;
                let position = qty(m.position_fp.or(m.position).ok_or(DecodeError::MissingField)?)?;
                // Era-A money here is in centi-cents: two places below the micro-dollar.
                let realized_pnl = match (m.realized_pnl_dollars, m.realized_pnl) {
                    (Some(r), _) => money(r, 6)?,
                    (None, Some(r)) => money(r, 2)?,
                    (None, None) => Money(0),
                };
                let fees_paid = match (m.fees_paid_dollars, m.fees_paid) {
                    (Some(r), _) => money(r, 6)?,
                    (None, Some(r)) => money(r, 2)?,
                    (None, None) => Money(0),
                };
                sink(Event {
                    stamp,
                    body: EventBody::Position {
                        market,
                        position,
                        realized_pnl,
                        fees_paid,
                    },
                });
                Ok(())
            }
            Body::Lifecycle(m) => {
                // No market filter exists on this channel: other markets are expected noise.
                let Some(market) = m.market_ticker.and_then(|t| self.interner.get(t)) else {
                    return if m.market_ticker.is_some() {
                        Ok(())
                    } else {
                        Err(DecodeError::MissingField)
                    };
                };
                let kind = match m.event_type.ok_or(DecodeError::MissingField)? {
                    b"activated" => Lifecycle::Activated,
                    b"deactivated" => Lifecycle::Deactivated,
                    // The local exchange closes a market with this event; on Kalshi it also
                    // announces an early close. The time is in the stamp: a close in the
                    // future is a schedule change, not a close.
                    b"close_date_updated" => Lifecycle::Closed,
                    b"determined" => Lifecycle::Determined {
                        yes: match (m.result, m.settlement_value) {
                            (Some(b"yes"), _) => true,
                            (Some(b"no"), _) => false,
                            (_, Some(v)) => price(v, 4)? == Price(10_000),
                            _ => return Err(DecodeError::BadEnum),
                        },
                    },
                    b"settled" => Lifecycle::Settled,
                    b"created" | b"price_level_structure_updated" | b"metadata_updated" => return Ok(()),
                    _ => return Err(DecodeError::UnknownType),
                };
                let secs = m.determination_ts.or(m.settled_ts).or(m.close_ts).or(m.open_ts);
                stamp.exchange_ts_ms = match secs {
                    Some(r) => secs_to_ms(r)?,
                    None => 0,
                };
                sink(Event {
                    stamp,
                    body: EventBody::Lifecycle { market, kind },
                });
                Ok(())
            }
            Body::Ok(raw) => {
                if let Some(i) = slot {
                    self.on_ok(i, id, raw)?;
                }
                Ok(())
            }
            Body::Absent => match kind {
                Kind::Ignored | Kind::Ok => Ok(()),
                Kind::Unknown => Err(DecodeError::UnknownType),
                _ => Err(DecodeError::MissingField),
            },
            Body::Raw(_) | Body::Subscribed(_) | Body::Error(_) => Err(DecodeError::MissingField),
        }
    }

    /// `update_subscription`/repeated-subscribe acks carry the full market list after the change.
    fn on_ok(&mut self, slot: usize, id: Option<u64>, raw: &RawValue) -> Result<(), DecodeError> {
        let channel = self.subs[slot].channel;
        if let Some(c) = channel {
            if let Some(p) = id.filter(|&id| id != 0).and_then(|id| {
                self.pending
                    .iter()
                    .position(|p| p.live && p.id == id && p.channels & channel_bit(c) != 0)
            }) {
                let p = &mut self.pending[p];
                self.subs[slot].markets.union_with(&p.markets);
                p.channels &= !channel_bit(c);
                p.live = p.channels != 0;
            }
        }
        if !raw.get().starts_with('{') {
            return Ok(());
        }
        let m: OkMsg<'_> = serde_json::from_str(raw.get()).map_err(json_error)?;
        if let Some(list) = m.market_tickers {
            let s = &mut self.subs[slot];
            s.markets.clear();
            let mut de = serde_json::Deserializer::from_str(list.get());
            (&mut de)
                .deserialize_seq(TickerListVisitor {
                    interner: &self.interner,
                    set: &mut s.markets,
                })
                .map_err(json_error)?;
        }
        Ok(())
    }

    fn book_convention(&self, slot: Option<usize>) -> Result<bool, DecodeError> {
        slot.map(|i| self.subs[i].use_yes_price).ok_or(DecodeError::UnknownSid)
    }
}

/// A NO bid at p is a YES ask at 1 - p; with `use_yes_price` Kalshi has already converted it.
#[inline]
fn yes_scale(no: bool, price: Price, use_yes_price: bool) -> (Side, Price) {
    match (no, use_yes_price) {
        (false, _) => (Side::Bid, price),
        (true, true) => (Side::Ask, price),
        (true, false) => (Side::Ask, price.complement()),
    }
}

#[inline]
fn side_is_no(side: Option<&[u8]>) -> Result<bool, DecodeError> {
    match side.ok_or(DecodeError::MissingField)? {
        b"yes" => Ok(false),
        b"no" => Ok(true),
        _ => Err(DecodeError::BadEnum),
    }
}

fn book_side(s: &[u8]) -> Result<Side, DecodeError> {
    match s {
        b"bid" => Ok(Side::Bid),
        b"ask" => Ok(Side::Ask),
        _ => Err(DecodeError::BadEnum),
    }
}

fn outcome_side(s: &[u8]) -> Result<Side, DecodeError> {
    match s {
        b"yes" => Ok(Side::Bid),
        b"no" => Ok(Side::Ask),
        _ => Err(DecodeError::BadEnum),
    }
}

/// The YES-book side of an order or fill: `book_side`, else `outcome_side` (a sell of YES is
/// reported as outcome NO), else the Era-A contract side and action.
fn direction(book: Option<&[u8]>, outcome: Option<&[u8]>, contract: Option<&[u8]>, action: Option<&[u8]>) -> Result<Side, DecodeError> {
    if let Some(b) = book {
        return book_side(b);
    }
    if let Some(o) = outcome {
        return outcome_side(o);
    }
    let yes = match contract.ok_or(DecodeError::MissingField)? {
        b"yes" => true,
        b"no" => false,
        _ => return Err(DecodeError::BadEnum),
    };
    let buy = match action.ok_or(DecodeError::MissingField)? {
        b"buy" => true,
        b"sell" | b"sell_partial" | b"sell_to_close" => false,
        _ => return Err(DecodeError::BadEnum),
    };
    Ok(if yes == buy { Side::Bid } else { Side::Ask })
}

// ------------------------------------------------------------------------------------ numbers

/// A JSON scalar exactly as it appeared on the wire (a string with its quotes). Decimals are
/// parsed from its text exactly, whichever form they took. One slice, so payload structs stay
/// small enough to build in place cheaply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Num<'a>(&'a [u8]);

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
fn unquote(raw: &[u8]) -> &[u8] {
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
fn price(n: Num<'_>, places: u32) -> Result<Price, DecodeError> {
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
fn price_either(dollars: Option<Num<'_>>, cents: Option<Num<'_>>) -> Result<Price, DecodeError> {
    match (dollars, cents) {
        (Some(n), _) => price(n, 4),
        (None, Some(n)) => price(n, 2),
        (None, None) => Err(DecodeError::MissingField),
    }
}

/// Like [`price_either`], but absent or `""` (Kalshi's "no trade yet") is `None`.
fn opt_price(dollars: Option<Num<'_>>, cents: Option<Num<'_>>) -> Result<Option<Price>, DecodeError> {
    match (dollars.filter(|n| !n.is_empty_string()), cents.filter(|n| !n.is_empty_string())) {
        (None, None) => Ok(None),
        (d, c) => price_either(d, c).map(Some),
    }
}

/// Counts: `"74.77"`, `74.77` and an Era-A integer `74` all read with two places.
#[inline]
fn qty(n: Num<'_>) -> Result<Qty, DecodeError> {
    scaled(n, 2).map(Qty)
}

fn money(n: Num<'_>, places: u32) -> Result<Money, DecodeError> {
    scaled(n, places).map(Money)
}

fn flag(n: Num<'_>) -> Result<bool, DecodeError> {
    match (n.quoted(), n.text()) {
        (false, b"true") => Ok(true),
        (false, b"false") => Ok(false),
        _ => Err(DecodeError::BadEnum),
    }
}

fn small_int<T: TryFrom<u64>>(n: Num<'_>) -> Result<T, DecodeError> {
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
fn ts(ts_ms: Option<Num<'_>>, ts: Option<Num<'_>>) -> Result<u64, DecodeError> {
    if let Some(n) = ts_ms {
        return small_int(n);
    }
    match ts {
        None => Ok(0),
        Some(n) if n.quoted() => rfc3339_ms(n.text()).ok_or(DecodeError::BadNumber),
        Some(n) => secs_to_ms(n),
    }
}

fn secs_to_ms(n: Num<'_>) -> Result<u64, DecodeError> {
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

fn json_error(e: serde_json::Error) -> DecodeError {
    match e.classify() {
        serde_json::error::Category::Eof => DecodeError::Truncated,
        serde_json::error::Category::Syntax | serde_json::error::Category::Io => DecodeError::Syntax,
        serde_json::error::Category::Data => DecodeError::WrongType,
    }
}

// ------------------------------------------------------------------------------------ wire shapes

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Snapshot,
    Delta,
    Trade,
    Ticker,
    Fill,
    UserOrder,
    Position,
    Lifecycle,
    Subscribed,
    Unsubscribed,
    Ok,
    Error,
    /// Known, sequenced where its channel is, and of no use to kmm.
    Ignored,
    Unknown,
}

fn kind_of(s: &[u8]) -> Kind {
    match s {
        b"orderbook_delta" => Kind::Delta,
        b"orderbook_snapshot" => Kind::Snapshot,
        b"trade" => Kind::Trade,
        b"ticker" => Kind::Ticker,
        b"fill" => Kind::Fill,
        b"user_order" => Kind::UserOrder,
        b"market_position" => Kind::Position,
        b"market_lifecycle_v2" => Kind::Lifecycle,
        b"subscribed" => Kind::Subscribed,
        b"unsubscribed" => Kind::Unsubscribed,
        b"ok" => Kind::Ok,
        b"error" => Kind::Error,
        b"event_lifecycle" | b"event_fee_update" => Kind::Ignored,
        _ => Kind::Unknown,
    }
}

/// A string field: the bytes between the quotes, borrowed from the frame.
type Str<'a> = Option<&'a [u8]>;
/// A number or flag field: any scalar's text (see [`Num`]).
type Scalar<'a> = Option<Num<'a>>;

/// A message payload of scalar fields only, readable two ways from one field list: by serde
/// (the general path) and by the fast scanner's `set` (see [`fast_envelope`]).
macro_rules! flat_msg {
    ($name:ident { $($kind:ident $field:ident),* $(,)? }) => {
        #[derive(Deserialize, Default)]
        struct $name<'a> {
            $(
                                #[serde(borrow)]
                $field: $kind<'a>,
            )*
        }

        impl<'a> $name<'a> {
            /// One `"key": scalar` of the fast path; `None` hands the frame to serde.
            #[inline]
            fn set(&mut self, key: &[u8], tok: Tok<'a>) -> Option<()> {
                $(
                    if key == stringify!($field).as_bytes() {
                                                return self.$field.put(tok);
                    }
                )*
                Some(())
            }
        }
    };

}

flat_msg!(DeltaMsg {
    Str market_ticker,
    Scalar price_dollars,
    Scalar price,
    Scalar delta_fp,
    Scalar delta,
    Str side,
    Str client_order_id,
    Scalar ts_ms,
    Scalar ts,
});

flat_msg!(TradeMsg {
    Str market_ticker,
    Scalar yes_price_dollars,
    Scalar yes_price,
    Scalar count_fp,
    Scalar count,
    Str taker_book_side,
    Str taker_outcome_side,
    Str taker_side,
    Scalar ts_ms,
    Scalar ts,
});

flat_msg!(TickerMsg {
    Str market_ticker,
    Scalar price_dollars,
    Scalar price,
    Scalar yes_bid_dollars,
    Scalar yes_bid,
    Scalar yes_ask_dollars,
    Scalar yes_ask,
    Scalar ts_ms,
    Scalar ts,
});

flat_msg!(FillMsg {
    Str trade_id,
    Str order_id,
    Str client_order_id,
    Str market_ticker,
    Scalar is_taker,
    Str side,
    Str action,
    Str purchased_side,
    Str outcome_side,
    Str book_side,
    Scalar yes_price_dollars,
    Scalar yes_price,
    Scalar count_fp,
    Scalar count,
    Scalar fee_cost,
    Scalar post_position_fp,
    Scalar post_position,
    Scalar ts_ms,
    Scalar ts,
});

flat_msg!(UserOrderMsg {
    Str order_id,
    Str ticker,
    Str market_ticker,
    Str status,
    Str side,
    Str action,
    Str outcome_side,
    Str book_side,
    Scalar yes_price_dollars,
    Scalar yes_price,
    Scalar fill_count_fp,
    Scalar fill_count,
    Scalar remaining_count_fp,
    Scalar remaining_count,
    Str client_order_id,
    Scalar created_ts_ms,
    Scalar last_updated_ts_ms,
});

flat_msg!(PositionMsg {
    Str market_ticker,
    Str ticker,
    Scalar position_fp,
    Scalar position,
    Scalar realized_pnl_dollars,
    Scalar realized_pnl,
    Scalar fees_paid_dollars,
    Scalar fees_paid,
});

flat_msg!(LifecycleMsg {
    Str market_ticker,
    Str event_type,
    Str result,
    Scalar settlement_value,
    Scalar determination_ts,
    Scalar settled_ts,
    Scalar close_ts,
    Scalar open_ts,
});

flat_msg!(SubscribedMsg {
    Str channel,
    Scalar sid,
});

flat_msg!(ErrorMsg {
    Scalar code,
});

/// The levels themselves go straight into the decoder's level buffer while the frame is read:
/// kept as raw JSON they would be re-parsed, and serde_json allocates a small stack to skip
/// nested arrays.
struct SnapshotMsg<'a> {
    market_ticker: Option<&'a [u8]>,
    ts_ms: Option<Num<'a>>,
    /// Which level arrays were present, one bit per [`present_bit`].
    present: u8,
}

fn present_bit(no: bool, source: u8) -> u8 {
    1 << (source * 2 + u8::from(no))
}

#[derive(Deserialize)]
struct OkMsg<'a> {
    #[serde(borrow)]
    market_tickers: Option<&'a RawValue>,
}

#[allow(clippy::large_enum_variant)]
enum Body<'a> {
    Absent,
    /// `msg` arrived before `type`: typed once the envelope is read.
    Raw(&'a RawValue),
    Delta(DeltaMsg<'a>),
    Snapshot(SnapshotMsg<'a>),
    Trade(TradeMsg<'a>),
    Ticker(TickerMsg<'a>),
    Fill(FillMsg<'a>),
    UserOrder(UserOrderMsg<'a>),
    Position(PositionMsg<'a>),
    Lifecycle(LifecycleMsg<'a>),
    Subscribed(SubscribedMsg<'a>),
    Error(ErrorMsg<'a>),
    Ok(&'a RawValue),
}

struct Envelope<'a> {
    kind: Option<Kind>,
    id: Option<u64>,
    sid: Option<u64>,
    seq: Option<u64>,
    body: Body<'a>,
}

impl Envelope<'_> {
    /// Field by field rather than a `const`: copying a constant copies the whole body union
    /// (hundreds of bytes, a `memcpy` per frame), where this writes a few tags.
    #[inline(always)]
    fn empty() -> Envelope<'static> {
        Envelope {
            kind: None,
            id: None,
            sid: None,
            seq: None,
            body: Body::Absent,
        }
    }
}

// --- the general path: serde_json

fn parse_envelope<'f>(frame: &'f [u8], levels: &mut Vec<Level>, bad: &mut Option<DecodeError>) -> Result<Envelope<'f>, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(frame);
    let env = (&mut de).deserialize_map(EnvelopeVisitor { levels, bad }).map_err(json_error)?;
    de.end().map_err(json_error)?;
    Ok(env)
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum EnvKey {
    Type,
    Id,
    Sid,
    Seq,
    Msg,
    #[serde(other)]
    Other,
}

struct EnvelopeVisitor<'b> {
    levels: &'b mut Vec<Level>,
    bad: &'b mut Option<DecodeError>,
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'_> {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kalshi WebSocket message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
        let mut env = Envelope {
            kind: None,
            id: None,
            sid: None,
            seq: None,
            body: Body::Absent,
        };
        while let Some(key) = map.next_key::<EnvKey>()? {
            match key {
                EnvKey::Type => env.kind = Some(kind_of(map.next_value::<&'de [u8]>()?)),
                EnvKey::Id => env.id = map.next_value()?,
                EnvKey::Sid => env.sid = map.next_value()?,
                EnvKey::Seq => env.seq = map.next_value()?,
                // Kalshi puts `type` first, so `msg` is normally typed in this same pass.
                EnvKey::Msg => {
                    env.body = map.next_value_seed(MsgSeed {
                        kind: env.kind,
                        levels: &mut *self.levels,
                        bad: &mut *self.bad,
                    })?
                }
                EnvKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(env)
    }
}

struct MsgSeed<'b> {
    kind: Option<Kind>,
    levels: &'b mut Vec<Level>,
    bad: &'b mut Option<DecodeError>,
}

impl<'de> DeserializeSeed<'de> for MsgSeed<'_> {
    type Value = Body<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Body<'de>, D::Error> {
        let Some(kind) = self.kind else {
            return Ok(Body::Raw(<&RawValue>::deserialize(d)?));
        };
        Ok(match kind {
            Kind::Snapshot => {
                self.levels.clear();
                Body::Snapshot(d.deserialize_map(SnapshotVisitor {
                    levels: self.levels,
                    bad: self.bad,
                })?)
            }
            Kind::Delta => Body::Delta(DeltaMsg::deserialize(d)?),
            Kind::Trade => Body::Trade(TradeMsg::deserialize(d)?),
            Kind::Ticker => Body::Ticker(TickerMsg::deserialize(d)?),
            Kind::Fill => Body::Fill(FillMsg::deserialize(d)?),
            Kind::UserOrder => Body::UserOrder(UserOrderMsg::deserialize(d)?),
            Kind::Position => Body::Position(PositionMsg::deserialize(d)?),
            Kind::Lifecycle => Body::Lifecycle(LifecycleMsg::deserialize(d)?),
            Kind::Subscribed => Body::Subscribed(SubscribedMsg::deserialize(d)?),
            Kind::Error => Body::Error(ErrorMsg::deserialize(d)?),
            Kind::Ok => Body::Ok(<&RawValue>::deserialize(d)?),
            Kind::Unsubscribed | Kind::Ignored | Kind::Unknown => {
                IgnoredAny::deserialize(d)?;
                Body::Absent
            }
        })
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum SnapshotKey {
    MarketTicker,
    TsMs,
    YesDollarsFp,
    NoDollarsFp,
    YesDollars,
    NoDollars,
    Yes,
    No,
    #[serde(other)]
    Other,
}

struct SnapshotVisitor<'b> {
    levels: &'b mut Vec<Level>,
    bad: &'b mut Option<DecodeError>,
}

impl<'de> Visitor<'de> for SnapshotVisitor<'_> {
    type Value = SnapshotMsg<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an orderbook snapshot")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SnapshotMsg<'de>, A::Error> {
        let mut m = SnapshotMsg {
            market_ticker: None,
            ts_ms: None,
            present: 0,
        };
        while let Some(key) = map.next_key::<SnapshotKey>()? {
            let (no, source) = match key {
                SnapshotKey::MarketTicker => {
                    m.market_ticker = map.next_value()?;
                    continue;
                }
                SnapshotKey::TsMs => {
                    m.ts_ms = map.next_value()?;
                    continue;
                }
                SnapshotKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                SnapshotKey::YesDollarsFp => (false, 0),
                SnapshotKey::NoDollarsFp => (true, 0),
                SnapshotKey::YesDollars => (false, 1),
                SnapshotKey::NoDollars => (true, 1),
                SnapshotKey::Yes => (false, 2),
                SnapshotKey::No => (true, 2),
            };
            let seed = LevelsSeed {
                out: &mut *self.levels,
                no,
                source,
                bad: &mut *self.bad,
            };
            if map.next_value_seed(seed)? {
                m.present |= present_bit(no, source);
            }
        }
        Ok(m)
    }
}

/// Streams `[[price, count], ...]` into the level buffer; `null` is an absent side.
struct LevelsSeed<'b> {
    out: &'b mut Vec<Level>,
    no: bool,
    source: u8,
    /// The precise reason when a level's numbers are bad (serde's error only says "custom").
    bad: &'b mut Option<DecodeError>,
}

impl<'de> DeserializeSeed<'de> for LevelsSeed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for LevelsSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of [price, count] levels")
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let places = SOURCE_PLACES[usize::from(self.source)];
        while let Some((p, q)) = seq.next_element::<(Num<'de>, Num<'de>)>()? {
            match price(p, places).and_then(|p| Ok((p, qty(q)?))) {
                Ok((price, qty)) => self.out.push(Level {
                    no: self.no,
                    source: self.source,
                    price,
                    qty,
                }),
                Err(e) => {
                    *self.bad = Some(e);
                    return Err(de::Error::custom("bad level"));
                }
            }
        }
        Ok(true)
    }
}

/// Rebuilds a subscription's market set from an `ok` ack's ticker list.
struct TickerListVisitor<'b> {
    interner: &'b Interner,
    set: &'b mut MarketSet,
}

impl<'de> Visitor<'de> for TickerListVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of market tickers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(t) = seq.next_element::<&'de [u8]>()? {
            if let Some(m) = self.interner.get(t) {
                self.set.insert(m);
            }
        }
        Ok(())
    }
}

// --- the fast path: a scanner for the common shape

/// One JSON scalar as the fast scanner saw it.
#[derive(Clone, Copy)]
enum Tok<'a> {
    /// A string with its quotes: ASCII, no escapes, no control characters.
    Str(&'a [u8]),
    /// A number (no exponent) or `true`/`false`.
    Scalar(&'a [u8]),
    Null,
}

/// A payload field the fast scanner fills. A second value for the same key, a `null` or a
/// type the field cannot hold is `None`: serde then reads the frame and reports it exactly.
trait Put<'a> {
    fn put(&mut self, tok: Tok<'a>) -> Option<()>;
}

impl<'a> Put<'a> for Str<'a> {
    #[inline]
    fn put(&mut self, tok: Tok<'a>) -> Option<()> {
        match (tok, self.is_none()) {
            (Tok::Str(s), true) => {
                *self = Some(unquote(s));
                Some(())
            }
            _ => None,
        }
    }
}

impl<'a> Put<'a> for Scalar<'a> {
    #[inline]
    fn put(&mut self, tok: Tok<'a>) -> Option<()> {
        let n = match tok {
            Tok::Str(s) | Tok::Scalar(s) => Num(s),
            Tok::Null => return None,
        };
        if self.is_some() {
            return None;
        }
        *self = Some(n);
        Some(())
    }
}

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
fn fast_envelope<'a>(frame: &'a [u8], env: &mut Envelope<'a>) -> Option<()> {
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
fn fast_delta<'a>(frame: &'a [u8], env: &mut Envelope<'a>) -> Option<()> {
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

// ------------------------------------------------------------------------------------ encoders

pub const API_PREFIX: &[u8] = b"/trade-api/v2";
pub const ORDERS_PATH: &[u8] = b"/trade-api/v2/portfolio/events/orders";
pub const BATCH_PATH: &[u8] = b"/trade-api/v2/portfolio/events/orders/batched";
/// Kalshi's batch limit.
pub const MAX_BATCH: usize = 20;
/// Room for the largest body kmm writes (a full batch create) without growing.
pub const BODY_CAPACITY: usize = 8192;
pub const PATH_CAPACITY: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Method::Get => b"GET",
            Method::Post => b"POST",
            Method::Delete => b"DELETE",
        }
    }
}

/// A REST request's method, full path (what is signed) and JSON body, in buffers reserved
/// once. HTTP framing and the signature headers are added by the REST client.
#[derive(Clone, Debug)]
pub struct RestRequest {
    pub method: Method,
    pub path: Vec<u8>,
    /// Empty for requests without a body.
    pub body: Vec<u8>,
    create: CreateTemplate,
}

/// The constant runs of the last create body, kept apart from `body` (which callers may
/// touch): a market maker sends one market and side over and over, so only the client id,
/// count and price change, and the escaped ticker and enum names are copied, not rewritten.
#[derive(Clone, Debug)]
struct CreateTemplate {
    shape: OrderShape,
    /// `{"ticker":"…","client_order_id":"`
    head: Vec<u8>,
    /// `","side":"…","count":"`
    mid: Vec<u8>,
    /// `","time_in_force":"…","self_trade_prevention_type":"…","post_only":…}`
    tail: Vec<u8>,
}

impl CreateTemplate {
    fn new() -> CreateTemplate {
        CreateTemplate {
            shape: OrderShape::new(),
            // Room for a longest ticker escaped entirely as `\u00XX`.
            head: Vec::with_capacity(64 + 6 * Interner::MAX_TICKER),
            mid: Vec::with_capacity(64),
            tail: Vec::with_capacity(128),
        }
    }

    #[cold]
    fn build(&mut self, o: &OrderSpec<'_>) {
        self.shape.set(o);
        self.head.clear();
        self.head.extend_from_slice(b"{\"ticker\":");
        push_str(&mut self.head, o.ticker);
        self.head.extend_from_slice(b",\"client_order_id\":\"");
        self.mid.clear();
        self.mid.extend_from_slice(b"\",\"side\":\"");
        self.mid.extend_from_slice(o.side.name().as_bytes());
        self.mid.extend_from_slice(b"\",\"count\":\"");
        self.tail.clear();
        self.tail.extend_from_slice(b"\",\"time_in_force\":\"");
        self.tail.extend_from_slice(tif_name(o.tif).as_bytes());
        self.tail.extend_from_slice(b"\",\"self_trade_prevention_type\":\"");
        self.tail.extend_from_slice(o.stp.name().as_bytes());
        self.tail.extend_from_slice(if o.post_only {
            b"\",\"post_only\":true}"
        } else {
            b"\",\"post_only\":false}"
        });
    }
}

/// What a prebuilt order request is for: the market and the order's constant flags. Only the client
/// id, price and count differ between the orders it serves.
#[derive(Clone, Debug)]
struct OrderShape {
    valid: bool,
    ticker: Vec<u8>,
    side: Side,
    tif: TimeInForce,
    post_only: bool,
    stp: SelfTradePrevention,
}

impl OrderShape {
    fn new() -> OrderShape {
        OrderShape {
            valid: false,
            ticker: Vec::with_capacity(Interner::MAX_TICKER),
            side: Side::Bid,
            tif: TimeInForce::GoodTillCanceled,
            post_only: false,
            stp: SelfTradePrevention::default(),
        }
    }

    #[inline]
    fn matches(&self, o: &OrderSpec<'_>) -> bool {
        self.valid
            && self.side == o.side
            && self.tif == o.tif
            && self.post_only == o.post_only
            && self.stp == o.stp
            && same_bytes(&self.ticker, o.ticker)
    }

    fn set(&mut self, o: &OrderSpec<'_>) {
        self.ticker.clear();
        self.ticker.extend_from_slice(o.ticker);
        (self.side, self.tif, self.post_only, self.stp) = (o.side, o.tif, o.post_only, o.stp);
        self.valid = true;
    }
}

impl Default for RestRequest {
    fn default() -> Self {
        Self::new()
    }
}

impl RestRequest {
    pub fn new() -> RestRequest {
        RestRequest {
            method: Method::Get,
            path: Vec::with_capacity(PATH_CAPACITY),
            body: Vec::with_capacity(BODY_CAPACITY),
            create: CreateTemplate::new(),
        }
    }

    fn start(&mut self, method: Method, path: &[u8]) {
        self.method = method;
        self.path.clear();
        self.path.extend_from_slice(path);
        self.body.clear();
    }
}

/// The exchange's own type: same variants and wire names on both sides of the protocol.
pub use kalshi_proto::order::SelfTradePrevention;

pub fn tif_name(t: TimeInForce) -> &'static str {
    match t {
        TimeInForce::GoodTillCanceled => "good_till_canceled",
        TimeInForce::ImmediateOrCancel => "immediate_or_cancel",
        TimeInForce::FillOrKill => "fill_or_kill",
    }
}

/// One V2 order to create (YES-leg side and price, as the V2 endpoints quote everything).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderSpec<'a> {
    pub ticker: &'a [u8],
    pub client: ClientRef,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    pub tif: TimeInForce,
    pub post_only: bool,
    pub stp: SelfTradePrevention,
}

/// `POST /trade-api/v2/portfolio/events/orders`.
pub fn encode_create(req: &mut RestRequest, order: &OrderSpec<'_>) {
    req.start(Method::Post, ORDERS_PATH);
    let t = &mut req.create;
    if !t.shape.matches(order) {
        t.build(order);
    }
    // The same bytes as `write_order`, a property test holds them to it.
    let b = &mut req.body;
    b.extend_from_slice(&t.head);
    push_client(b, order.client);
    b.extend_from_slice(&t.mid);
    push_qty(b, order.qty);
    b.extend_from_slice(b"\",\"price\":\"");
    push_price(b, order.price);
    b.extend_from_slice(&t.tail);
}

/// Which request an [`OrderWire`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireKind {
    /// `POST .../events/orders`: [`encode_create`]'s request.
    Create,
    /// `POST .../events/orders/{order_id}/amend`: [`encode_amend`]'s request, the order id
    /// patched into the request line.
    Amend,
}

/// One order request's whole HTTP/1.1 bytes as two prebuilt runs, for one market, side and
/// set of order flags: writing an order is three copies (the head, the signature lines, the
/// rest up to the count) and a few small patches (an amend's order id, `Content-Length`,
/// client id, price, count). The body puts the variable-width count last so nothing after it
/// moves; the order id, the client id and a price below $1 ("0.dddd") have fixed widths.
///
/// The bytes are those of [`encode_create`] or [`encode_amend`] framed by
/// `signer::write_http_request`, with the body's keys in another order (a property test holds
/// them to it). An amend ignores the spec's time in force, post-only flag and self-trade
/// prevention: they are the order's own.
#[derive(Clone, Debug)]
pub struct OrderWire {
    kind: WireKind,
    host: Vec<u8>,
    key_id: Vec<u8>,
    shape: OrderShape,
    /// The request line, `Host`, the key, and `KALSHI-ACCESS-TIMESTAMP: `.
    head: Vec<u8>,
    /// In `head`: an amend's order id.
    order_at: usize,
    /// From the signature line's CRLF to the count's opening quote.
    rest: Vec<u8>,
    /// In `rest`: the `Content-Length` digits, the client id, the price's four decimals.
    length_at: usize,
    length_digits: usize,
    client_at: usize,
    price_at: usize,
    /// The body's bytes but the count's and the closing `"}`.
    body_fixed: usize,
}

/// The amend path's bytes before and after its order id.
const AMEND_TAIL: &[u8] = b"/amend";

impl OrderWire {
    /// A create wire, allocating every byte it will need, for requests to `host` signed by
    /// `key_id`.
    pub fn create(host: &[u8], key_id: &[u8]) -> OrderWire {
        OrderWire::new(WireKind::Create, host, key_id)
    }

    /// An amend wire (see [`OrderWire::create`]).
    pub fn amend(host: &[u8], key_id: &[u8]) -> OrderWire {
        OrderWire::new(WireKind::Amend, host, key_id)
    }

    fn new(kind: WireKind, host: &[u8], key_id: &[u8]) -> OrderWire {
        OrderWire {
            kind,
            host: host.to_vec(),
            key_id: key_id.to_vec(),
            shape: OrderShape::new(),
            head: Vec::with_capacity(192 + host.len() + key_id.len()),
            order_at: 0,
            rest: Vec::with_capacity(512 + 6 * Interner::MAX_TICKER),
            length_at: 0,
            length_digits: 0,
            client_at: 0,
            price_at: 0,
            body_fixed: 0,
        }
    }

    pub fn kind(&self) -> WireKind {
        self.kind
    }

    /// Writes the create for `order` into `out` (cleared first), signed by `auth` (a
    /// `SignedHeaders::auth_lines`: the timestamp, CRLF, and the signature line but its CRLF).
    #[inline]
    pub fn write(&mut self, out: &mut Vec<u8>, order: &OrderSpec<'_>, auth: &[u8]) {
        debug_assert_eq!(self.kind, WireKind::Create);
        self.put(out, OrderId(0), order, auth);
    }

    /// Writes the amend of order `id` to `order`'s price and total count (see
    /// [`write`](Self::write)).
    #[inline]
    pub fn write_amend(&mut self, out: &mut Vec<u8>, id: OrderId, order: &OrderSpec<'_>, auth: &[u8]) {
        debug_assert_eq!(self.kind, WireKind::Amend);
        self.put(out, id, order, auth);
    }

    #[inline]
    fn put(&mut self, out: &mut Vec<u8>, id: OrderId, order: &OrderSpec<'_>, auth: &[u8]) {
        if !self.matches(order) {
            self.build(order);
        }
        let count_len = qty_text_len(order.qty);
        let body_len = self.body_fixed + count_len + 2;
        out.clear();
        out.reserve(self.head.len() + auth.len() + self.rest.len() + count_len + 2);
        out.extend_from_slice(&self.head);
        if self.kind == WireKind::Amend {
            let at: &mut [u8; OrderId::WIRE_LEN] = (&mut out[self.order_at..self.order_at + OrderId::WIRE_LEN])
                .try_into()
                .expect("fixed width");
            id.write(at);
        }
        out.extend_from_slice(auth);
        let rest_at = out.len();
        out.extend_from_slice(&self.rest);
        let rest = &mut out[rest_at..];
        let length = &mut rest[self.length_at..self.length_at + self.length_digits];
        if !write_exact_digits(length, body_len) || !(1..10_000).contains(&order.price.0) {
            // A price of another width, or a body whose length has another number of digits:
            // the generic layout, written whole.
            self.shape.valid = false;
            self.write_generic(out, order, auth);
            return;
        }
        let client: &mut [u8; ClientRef::WIRE_LEN] = (&mut rest[self.client_at..self.client_at + ClientRef::WIRE_LEN])
            .try_into()
            .expect("fixed width");
        order.client.write(client);
        let p = order.price.0;
        let decimals = [(p / 1000) as u8, (p / 100 % 10) as u8, (p / 10 % 10) as u8, (p % 10) as u8];
        rest[self.price_at..self.price_at + 4].copy_from_slice(&(u32::from_le_bytes(decimals) + 0x3030_3030).to_le_bytes());
        push_qty(out, order.qty);
        out.extend_from_slice(b"\"}");
    }

    /// An amend's flags are the order's own: only its market and side shape the wire.
    #[inline]
    fn matches(&self, o: &OrderSpec<'_>) -> bool {
        match self.kind {
            WireKind::Create => self.shape.matches(o),
            WireKind::Amend => self.shape.valid && self.shape.side == o.side && same_bytes(&self.shape.ticker, o.ticker),
        }
    }

    /// The head up to the timestamp's value: an amend's path with a placeholder order id.
    fn build_head(&mut self) {
        match self.kind {
            WireKind::Create => super::signer::write_head_to_timestamp(&mut self.head, Method::Post, ORDERS_PATH, &self.host, &self.key_id),
            WireKind::Amend => {
                const LEN: usize = ORDERS_PATH.len() + 1 + OrderId::WIRE_LEN + AMEND_TAIL.len();
                let mut path = [b'0'; LEN];
                path[..ORDERS_PATH.len()].copy_from_slice(ORDERS_PATH);
                path[ORDERS_PATH.len()] = b'/';
                path[LEN - AMEND_TAIL.len()..].copy_from_slice(AMEND_TAIL);
                super::signer::write_head_to_timestamp(&mut self.head, Method::Post, &path, &self.host, &self.key_id);
                self.order_at = Method::Post.as_bytes().len() + 1 + ORDERS_PATH.len() + 1;
            }
        }
    }

    #[cold]
    fn build(&mut self, o: &OrderSpec<'_>) {
        self.shape.set(o);
        self.build_head();
        // The body first, to learn its length; then the headers are put in front of it.
        let b = &mut self.rest;
        b.clear();
        b.extend_from_slice(b"{\"ticker\":");
        push_str(b, o.ticker);
        b.extend_from_slice(b",\"side\":\"");
        b.extend_from_slice(o.side.name().as_bytes());
        match self.kind {
            WireKind::Create => {
                b.extend_from_slice(b"\",\"time_in_force\":\"");
                b.extend_from_slice(tif_name(o.tif).as_bytes());
                b.extend_from_slice(b"\",\"self_trade_prevention_type\":\"");
                b.extend_from_slice(o.stp.name().as_bytes());
                b.extend_from_slice(if o.post_only {
                    b"\",\"post_only\":true,\"client_order_id\":\""
                } else {
                    b"\",\"post_only\":false,\"client_order_id\":\""
                });
            }
            WireKind::Amend => b.extend_from_slice(b"\",\"client_order_id\":\""),
        }
        let client_at = b.len();
        b.extend_from_slice(&[b'0'; ClientRef::WIRE_LEN]);
        b.extend_from_slice(b"\",\"price\":\"0.");
        let price_at = b.len();
        b.extend_from_slice(b"0000\",\"count\":\"");
        self.body_fixed = b.len();
        // The typical order's count ("1.00" to "9999.00") sets how many digits the length
        // has; another width falls back to the generic write.
        let length = self.body_fixed + qty_text_len(o.qty) + 2;
        let mut digits = [0u8; 20];
        let start = u64_digits(length as u64, &mut digits);
        const CONTENT: &[u8] = b"\r\nContent-Type: application/json\r\nContent-Length: ";
        let front = CONTENT.len() + (digits.len() - start) + 4;
        let end = b.len();
        // Within the capacity reserved up front: nothing allocates.
        b.resize(end + front, 0);
        b.copy_within(0..end, front);
        b[..CONTENT.len()].copy_from_slice(CONTENT);
        b[CONTENT.len()..front - 4].copy_from_slice(&digits[start..]);
        b[front - 4..front].copy_from_slice(b"\r\n\r\n");
        self.length_at = CONTENT.len();
        self.length_digits = digits.len() - start;
        self.client_at = front + client_at;
        self.price_at = front + price_at;
    }

    /// `out` holds the head, its order id patched: the rest follows in the generic layout.
    #[cold]
    fn write_generic(&self, out: &mut Vec<u8>, o: &OrderSpec<'_>, auth: &[u8]) {
        out.truncate(self.head.len());
        out.extend_from_slice(auth);
        out.extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
        let length_at = out.len();
        out.extend_from_slice(b"\r\n\r\n");
        let body_at = out.len();
        match self.kind {
            WireKind::Create => write_order(out, o),
            WireKind::Amend => write_amend_body(out, o.ticker, o.client, o.side, o.price, o.qty),
        }
        let mut digits = [0u8; 20];
        let from = u64_digits((out.len() - body_at) as u64, &mut digits);
        let n = digits.len() - from;
        let end = out.len();
        out.resize(end + n, 0);
        out.copy_within(length_at..end, length_at + n);
        out[length_at..length_at + n].copy_from_slice(&digits[from..]);
    }
}

/// The length of [`push_qty`]'s text: the whole part's digits, a point, two decimals.
#[inline]
fn qty_text_len(q: Qty) -> usize {
    let whole = q.0.unsigned_abs() / 100;
    let digits = if whole == 0 { 1 } else { whole.ilog10() as usize + 1 };
    digits + 3 + usize::from(q.0 < 0)
}

/// Writes `v` into exactly `out.len()` decimal digits; false (nothing written) when it has
/// another number of digits.
#[inline]
fn write_exact_digits(out: &mut [u8], mut v: usize) -> bool {
    let n = out.len();
    let digits = if v == 0 { 1 } else { v.ilog10() as usize + 1 };
    if n != digits {
        return false;
    }
    for d in out.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    true
}

/// `DELETE /trade-api/v2/portfolio/events/orders/{order_id}` (no body).
pub fn encode_cancel(req: &mut RestRequest, order: OrderId) {
    req.start(Method::Delete, ORDERS_PATH);
    push_order_path(&mut req.path, order, b"");
}

/// `POST .../events/orders/{order_id}/amend`: new price and total count. `client` is the
/// order's own client id (Kalshi rejects a mismatch, which catches a stale order map).
pub fn encode_amend(req: &mut RestRequest, order: OrderId, ticker: &[u8], client: ClientRef, side: Side, price: Price, total: Qty) {
    req.start(Method::Post, ORDERS_PATH);
    push_order_path(&mut req.path, order, AMEND_TAIL);
    write_amend_body(&mut req.body, ticker, client, side, price, total);
}

fn write_amend_body(b: &mut Vec<u8>, ticker: &[u8], client: ClientRef, side: Side, price: Price, total: Qty) {
    b.extend_from_slice(b"{\"ticker\":");
    push_str(b, ticker);
    b.extend_from_slice(b",\"side\":\"");
    b.extend_from_slice(side.name().as_bytes());
    b.extend_from_slice(b"\",\"price\":\"");
    push_price(b, price);
    b.extend_from_slice(b"\",\"count\":\"");
    push_qty(b, total);
    b.extend_from_slice(b"\",\"client_order_id\":\"");
    push_client(b, client);
    b.extend_from_slice(b"\"}");
}

/// `POST .../events/orders/{order_id}/decrease` to `reduce_to` (keeps queue priority).
pub fn encode_decrease(req: &mut RestRequest, order: OrderId, reduce_to: Qty) {
    req.start(Method::Post, ORDERS_PATH);
    push_order_path(&mut req.path, order, b"/decrease");
    req.body.extend_from_slice(b"{\"reduce_to\":\"");
    push_qty(&mut req.body, reduce_to);
    req.body.extend_from_slice(b"\"}");
}

/// `POST .../events/orders/batched`. The caller keeps `orders` within [`MAX_BATCH`].
pub fn encode_batch_create(req: &mut RestRequest, orders: &[OrderSpec<'_>]) {
    req.start(Method::Post, BATCH_PATH);
    req.body.extend_from_slice(b"{\"orders\":[");
    for (i, o) in orders.iter().enumerate() {
        if i > 0 {
            req.body.push(b',');
        }
        write_order(&mut req.body, o);
    }
    req.body.extend_from_slice(b"]}");
}

/// `DELETE .../events/orders/batched` with a JSON body. The caller keeps `orders` within
/// [`MAX_BATCH`].
pub fn encode_batch_cancel(req: &mut RestRequest, orders: &[OrderId]) {
    req.start(Method::Delete, BATCH_PATH);
    req.body.extend_from_slice(b"{\"orders\":[");
    for (i, &o) in orders.iter().enumerate() {
        if i > 0 {
            req.body.push(b',');
        }
        req.body.extend_from_slice(b"{\"order_id\":\"");
        push_order_id(&mut req.body, o);
        req.body.extend_from_slice(b"\"}");
    }
    req.body.extend_from_slice(b"]}");
}

/// `DELETE /trade-api/v2/portfolio/events/orders`: cancel every resting order.
pub fn encode_cancel_all(req: &mut RestRequest) {
    req.start(Method::Delete, ORDERS_PATH);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The command names a market that was never interned.
    UnknownMarket,
    /// The command is not a REST request (`Resync` is a WebSocket `get_snapshot`).
    NotRest,
}

/// The REST request for a strategy command.
pub fn encode_command(
    req: &mut RestRequest,
    interner: &Interner,
    cmd: &crate::event::CommandBody,
    stp: SelfTradePrevention,
) -> Result<(), EncodeError> {
    use crate::event::CommandBody as C;
    let ticker = |m: MarketIdx| interner.ticker(m).ok_or(EncodeError::UnknownMarket);
    match *cmd {
        C::Place {
            market,
            client,
            side,
            price,
            qty,
            tif,
            post_only,
        } => {
            encode_create(
                req,
                &OrderSpec {
                    ticker: ticker(market)?,
                    client,
                    side,
                    price,
                    qty,
                    tif,
                    post_only,
                    stp,
                },
            );
        }
        C::Cancel { order, .. } => encode_cancel(req, order),
        C::Amend {
            market,
            client,
            order,
            side,
            price,
            total,
        } => encode_amend(req, order, ticker(market)?, client, side, price, total),
        C::Decrease { order, reduce_to, .. } => encode_decrease(req, order, reduce_to),
        C::CancelAll => encode_cancel_all(req),
        C::Resync { .. } => return Err(EncodeError::NotRest),
    }
    Ok(())
}

fn write_order(b: &mut Vec<u8>, o: &OrderSpec<'_>) {
    b.extend_from_slice(b"{\"ticker\":");
    push_str(b, o.ticker);
    b.extend_from_slice(b",\"client_order_id\":\"");
    push_client(b, o.client);
    b.extend_from_slice(b"\",\"side\":\"");
    b.extend_from_slice(o.side.name().as_bytes());
    b.extend_from_slice(b"\",\"count\":\"");
    push_qty(b, o.qty);
    b.extend_from_slice(b"\",\"price\":\"");
    push_price(b, o.price);
    b.extend_from_slice(b"\",\"time_in_force\":\"");
    b.extend_from_slice(tif_name(o.tif).as_bytes());
    b.extend_from_slice(b"\",\"self_trade_prevention_type\":\"");
    b.extend_from_slice(o.stp.name().as_bytes());
    b.extend_from_slice(if o.post_only {
        b"\",\"post_only\":true}"
    } else {
        b"\",\"post_only\":false}"
    });
}

// --- WebSocket commands

/// `{"id":N,"cmd":"subscribe","params":{"channels":[..],"market_tickers":[..],"use_yes_price":B}}`.
/// No tickers means no market filter. Register the command with
/// [`Decoder::register_subscribe`] so the replies are understood.
pub fn encode_subscribe<'t>(
    out: &mut Vec<u8>,
    id: u64,
    channels: &[Channel],
    tickers: impl IntoIterator<Item = &'t [u8]>,
    use_yes_price: bool,
) {
    out.clear();
    out.extend_from_slice(b"{\"id\":");
    push_u64(out, id);
    out.extend_from_slice(b",\"cmd\":\"subscribe\",\"params\":{\"channels\":[");
    for (i, c) in channels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, channel_name(*c).as_bytes());
    }
    out.push(b']');
    push_ticker_list(out, tickers);
    out.extend_from_slice(if use_yes_price {
        b",\"use_yes_price\":true}}"
    } else {
        b",\"use_yes_price\":false}}"
    });
}

/// `update_subscription` with `get_snapshot`: fresh snapshots of `tickers` on `sid` (the
/// resync after a gap), without touching the subscription.
pub fn encode_get_snapshot<'t>(out: &mut Vec<u8>, id: u64, sid: u32, tickers: impl IntoIterator<Item = &'t [u8]>) {
    encode_update(out, id, sid, b"get_snapshot", tickers);
}

/// `update_subscription` with `add_markets` (then call [`Decoder::add_markets`]).
pub fn encode_add_markets<'t>(out: &mut Vec<u8>, id: u64, sid: u32, tickers: impl IntoIterator<Item = &'t [u8]>) {
    encode_update(out, id, sid, b"add_markets", tickers);
}

/// `update_subscription` with `delete_markets` (then call [`Decoder::remove_markets`]).
pub fn encode_delete_markets<'t>(out: &mut Vec<u8>, id: u64, sid: u32, tickers: impl IntoIterator<Item = &'t [u8]>) {
    encode_update(out, id, sid, b"delete_markets", tickers);
}

fn encode_update<'t>(out: &mut Vec<u8>, id: u64, sid: u32, action: &[u8], tickers: impl IntoIterator<Item = &'t [u8]>) {
    out.clear();
    out.extend_from_slice(b"{\"id\":");
    push_u64(out, id);
    out.extend_from_slice(b",\"cmd\":\"update_subscription\",\"params\":{\"sid\":");
    push_u64(out, u64::from(sid));
    out.extend_from_slice(b",\"action\":\"");
    out.extend_from_slice(action);
    out.push(b'"');
    push_ticker_list(out, tickers);
    out.extend_from_slice(b"}}");
}

/// `{"id":N,"cmd":"unsubscribe","params":{"sids":[..]}}`.
pub fn encode_unsubscribe(out: &mut Vec<u8>, id: u64, sids: &[u32]) {
    out.clear();
    out.extend_from_slice(b"{\"id\":");
    push_u64(out, id);
    out.extend_from_slice(b",\"cmd\":\"unsubscribe\",\"params\":{\"sids\":[");
    for (i, &s) in sids.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_u64(out, u64::from(s));
    }
    out.extend_from_slice(b"]}}");
}

fn push_ticker_list<'t>(out: &mut Vec<u8>, tickers: impl IntoIterator<Item = &'t [u8]>) {
    let mut any = false;
    for t in tickers {
        out.extend_from_slice(if any { b"," } else { b",\"market_tickers\":[" });
        push_str(out, t);
        any = true;
    }
    if any {
        out.push(b']');
    }
}

// --- number and string writers (no `format!`: these run on the tick-to-order path)

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

fn push_client(out: &mut Vec<u8>, c: ClientRef) {
    let mut buf = [0u8; ClientRef::WIRE_LEN];
    c.write(&mut buf);
    out.extend_from_slice(&buf);
}

fn push_order_id(out: &mut Vec<u8>, o: OrderId) {
    let mut buf = [0u8; OrderId::WIRE_LEN];
    o.write(&mut buf);
    out.extend_from_slice(&buf);
}

fn push_order_path(path: &mut Vec<u8>, order: OrderId, tail: &[u8]) {
    path.push(b'/');
    push_order_id(path, order);
    path.extend_from_slice(tail);
}

/// A JSON string. Tickers are plain ASCII, but escaping keeps a bad one from breaking the body.
fn push_str(out: &mut Vec<u8>, s: &[u8]) {
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

    #[test]
    fn interner_probes_and_fills() {
        let mut i = Interner::with_capacity(3);
        let a = i.intern(b"KXA-26JAN01-T1").unwrap();
        let b = i.intern(b"KXB").unwrap();
        assert_eq!(i.intern(b"KXA-26JAN01-T1"), Ok(a));
        assert_ne!(a, b);
        assert_eq!(i.get(b"KXB"), Some(b));
        assert_eq!(i.get(b"KXC"), None);
        i.intern(b"KXC").unwrap();
        assert_eq!(i.intern(b"KXD"), Err(InternError::Full));
        assert_eq!(i.intern(b""), Err(InternError::BadTicker));
        assert_eq!(i.ticker(b), Some(&b"KXB"[..]));
    }

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

    #[test]
    fn ticker_hash_and_compare_across_lengths() {
        let mut i = Interner::with_capacity(400);
        let names: Vec<String> = (0..300).map(|k| format!("{}{k}", &"KXHIGHNY-26JUN24-T8X"[..k % 20])).collect();
        let idx: Vec<MarketIdx> = names.iter().map(|n| i.intern(n.as_bytes()).unwrap()).collect();
        for (n, &m) in names.iter().zip(&idx) {
            assert_eq!(i.get(n.as_bytes()), Some(m), "{n}");
            assert_eq!(i.ticker(m), Some(n.as_bytes()));
            let mut other = n.clone().into_bytes();
            other[0] ^= 1;
            assert_eq!(i.get(&other), None);
        }
        assert!(same_bytes(b"abcdefghijklmnopq", b"abcdefghijklmnopq"));
        assert!(!same_bytes(b"abcdefghijklmnopq", b"abcdefghiJklmnopq"));
        assert!(!same_bytes(b"abcdefghijklmnopq", b"abcdefghijklmnopQ"));
        assert!(!same_bytes(b"abc", b"abcd"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Decimal-ish text: the wire's forms and the corners `parse_scaled` has rules for.
        fn decimal() -> impl Strategy<Value = String> {
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

        fn order() -> impl Strategy<Value = (usize, u64, bool, u32, i64, u8, bool, bool)> {
            (
                0usize..4,
                any::<u64>(),
                any::<bool>(),
                0u32..=10_000,
                any::<i64>(),
                0u8..3,
                any::<bool>(),
                any::<bool>(),
            )
        }

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

            /// The templated create writes exactly what the plain writer does, across changes
            /// of market, side and flags (which rebuild the template) and repeats (which don't).
            #[test]
            fn create_template_matches_the_plain_writer(orders in prop::collection::vec(order(), 1..12)) {
                const TICKERS: [&[u8]; 4] = [b"KXHIGHNY-26JUN24-T82", b"KXHIGHNY-26JUN24-T83", b"K\"Q\\\x01", b""];
                let mut req = RestRequest::new();
                let mut want = Vec::new();
                for (t, client, bid, price, qty, tif, post_only, maker) in orders {
                    let o = OrderSpec {
                        ticker: TICKERS[t],
                        client: ClientRef(client),
                        side: if bid { Side::Bid } else { Side::Ask },
                        price: Price(price),
                        qty: Qty(qty),
                        tif: [TimeInForce::GoodTillCanceled, TimeInForce::ImmediateOrCancel, TimeInForce::FillOrKill][usize::from(tif)],
                        post_only,
                        stp: if maker { SelfTradePrevention::Maker } else { SelfTradePrevention::TakerAtCross },
                    };
                    // A caller may leave anything in the body between requests.
                    req.body.extend_from_slice(b"junk");
                    encode_create(&mut req, &o);
                    want.clear();
                    write_order(&mut want, &o);
                    prop_assert_eq!(&req.body, &want);
                    prop_assert_eq!((req.method, &req.path[..]), (Method::Post, ORDERS_PATH));
                }
            }

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
}
