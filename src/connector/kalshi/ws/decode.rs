//! The WS decoder: Kalshi's WebSocket frames to fixed-size [`Event`]s.
//!
//! Hot-path contract: after warm-up, [`Decoder::decode`] allocates nothing on well-formed
//! input, takes no lock and formats no text. The error path may allocate (serde_json boxes its
//! errors): malformed input is rare, counted, and never a panic.
//!
//! Two readers share one set of borrowed payload structs (see `flat_msg!` in
//! [`super::messages`]):
//!
//! - the general path is serde_json into those structs, borrowing byte strings and the raw
//!   text of numbers from the frame (`&RawValue`); it reads any valid JSON, in any key order,
//!   and is the only reader of snapshots (whose levels stream straight into a reserved buffer),
//!   `ok` acks and frames whose `msg` precedes `type`;
//! - a fast path ([`super::fast`]) scans the shape Kalshi actually sends (`type` before `msg`,
//!   scalar fields, plain ASCII strings) in one pass, about three times faster than serde.
//!   Anything outside that subset (an escape, a nested value, a repeated key, a `null`, an
//!   exponent) makes it hand the frame to serde, so the two cannot disagree; a property test
//!   checks that they don't.
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

use crate::connector::kalshi::error::DecodeError;
use crate::connector::kalshi::interner::{Interner, MarketSet};
use crate::connector::kalshi::numbers::{flag, json_error, money, opt_price, price, price_either, qty, secs_to_ms, small_int, ts};
use crate::connector::kalshi::ws::channels::{channel_bit, channel_of};
use crate::connector::kalshi::ws::fast::{fast_delta, fast_envelope};
use crate::connector::kalshi::ws::messages::{parse_envelope, present_bit, Body, Envelope, Kind, Level, MsgSeed, OkMsg, TickerListVisitor};
use crate::connector::kalshi::ws::sides::{book_side, direction, outcome_side, side_is_no, trade_id, yes_scale};
use crate::event::{Channel, ClientRef, Event, EventBody, Feed, MarketIdx, MarketStatus, Money, OrderId, OrderStatus, Price, Stamp};
use serde::de::{DeserializeSeed, Deserializer};
use serde_json::value::RawValue;

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
    /// WebSocket fills against REST backfill with (`rest::models::FillKey`).
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
                    body: EventBody::Stale {
                        market,
                        feed: Feed::Kalshi,
                    },
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
                let trade = trade_id(m.trade_id);
                sink(Event {
                    stamp,
                    body: EventBody::Trade {
                        market,
                        yes_price,
                        qty: q,
                        taker,
                        trade,
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
                let trade = trade_id(m.trade_id);
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
                        trade,
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
                let (status, yes) = match m.event_type.ok_or(DecodeError::MissingField)? {
                    b"activated" => (MarketStatus::Active, None),
                    b"deactivated" => (MarketStatus::Inactive, None),
                    // The local exchange closes a market with this event; on Kalshi it also
                    // announces an early close. The time is in the stamp: a close in the
                    // future is a schedule change, not a close.
                    b"close_date_updated" => (MarketStatus::Closed, None),
                    b"determined" => (
                        MarketStatus::Determined,
                        Some(match (m.result, m.settlement_value) {
                            (Some(b"yes"), _) => true,
                            (Some(b"no"), _) => false,
                            (_, Some(v)) => price(v, 4)? == Price(10_000),
                            _ => return Err(DecodeError::BadEnum),
                        }),
                    ),
                    b"settled" => (MarketStatus::Settled, None),
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
                    body: EventBody::Lifecycle { market, status, yes },
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
