//! The wire shapes of WS messages: the envelope, the flat payload structs and the serde
//! visitors that read them (snapshots stream their levels into a reserved buffer).
//!
//! Separate from the decoder so the two readers (serde and the fast scanner) visibly share one
//! set of payload structs: `flat_msg!` declares each field list once for both.

use crate::connector::kalshi::error::DecodeError;
use crate::connector::kalshi::interner::{Interner, MarketSet};
use crate::connector::kalshi::numbers::{json_error, price, qty, unquote, Num};
use crate::event::{Price, Qty};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

/// A snapshot level as sent: its side and NO-leg price are converted once the subscription
/// (and so the price convention) is known.
#[derive(Clone, Copy)]
pub(crate) struct Level {
    pub(crate) no: bool,
    /// Which of the snapshot's level arrays it came from (see [`SOURCE_PLACES`]).
    pub(crate) source: u8,
    pub(crate) price: Price,
    pub(crate) qty: Qty,
}

/// The level arrays of a snapshot, best first: Era-B `*_dollars_fp`, Era-A `*_dollars`
/// (string price, integer count) and Era-A `yes`/`no` (integer cents): the decimal places of
/// their prices.
pub(crate) const SOURCE_PLACES: [u32; 3] = [4, 4, 2];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
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

pub(crate) fn kind_of(s: &[u8]) -> Kind {
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
pub(crate) type Str<'a> = Option<&'a [u8]>;
/// A number or flag field: any scalar's text (see [`Num`]).
pub(crate) type Scalar<'a> = Option<Num<'a>>;

/// A message payload of scalar fields only, readable two ways from one field list: by serde
/// (the general path) and by the fast scanner's `set` (see [`fast_envelope`](super::fast::fast_envelope)).
macro_rules! flat_msg {
    ($name:ident { $($kind:ident $field:ident),* $(,)? }) => {
        #[derive(Deserialize, Default)]
        pub(crate) struct $name<'a> {
            $(
                                #[serde(borrow)]
                pub(crate) $field: $kind<'a>,
            )*
        }

        impl<'a> $name<'a> {
            /// One `"key": scalar` of the fast path; `None` hands the frame to serde.
            #[inline]
            pub(crate) fn set(&mut self, key: &[u8], tok: Tok<'a>) -> Option<()> {
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
    Str trade_id,
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
pub(crate) struct SnapshotMsg<'a> {
    pub(crate) market_ticker: Option<&'a [u8]>,
    pub(crate) ts_ms: Option<Num<'a>>,
    /// Which level arrays were present, one bit per [`present_bit`].
    pub(crate) present: u8,
}

pub(crate) fn present_bit(no: bool, source: u8) -> u8 {
    1 << (source * 2 + u8::from(no))
}

#[derive(Deserialize)]
pub(crate) struct OkMsg<'a> {
    #[serde(borrow)]
    pub(crate) market_tickers: Option<&'a RawValue>,
}

#[allow(clippy::large_enum_variant)]
pub(crate) enum Body<'a> {
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

pub(crate) struct Envelope<'a> {
    pub(crate) kind: Option<Kind>,
    pub(crate) id: Option<u64>,
    pub(crate) sid: Option<u64>,
    pub(crate) seq: Option<u64>,
    pub(crate) body: Body<'a>,
}

impl Envelope<'_> {
    /// Field by field rather than a `const`: copying a constant copies the whole body union
    /// (hundreds of bytes, a `memcpy` per frame), where this writes a few tags.
    #[inline(always)]
    pub(crate) fn empty() -> Envelope<'static> {
        Envelope {
            kind: None,
            id: None,
            sid: None,
            seq: None,
            body: Body::Absent,
        }
    }
}

// The general path, serde_json, from here down.

pub(crate) fn parse_envelope<'f>(
    frame: &'f [u8],
    levels: &mut Vec<Level>,
    bad: &mut Option<DecodeError>,
) -> Result<Envelope<'f>, DecodeError> {
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

pub(crate) struct MsgSeed<'b> {
    pub(crate) kind: Option<Kind>,
    pub(crate) levels: &'b mut Vec<Level>,
    pub(crate) bad: &'b mut Option<DecodeError>,
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
pub(crate) struct TickerListVisitor<'b> {
    pub(crate) interner: &'b Interner,
    pub(crate) set: &'b mut MarketSet,
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

/// One JSON scalar as the fast scanner saw it.
#[derive(Clone, Copy)]
pub(crate) enum Tok<'a> {
    /// A string with its quotes: ASCII, no escapes, no control characters.
    Str(&'a [u8]),
    /// A number (no exponent) or `true`/`false`.
    Scalar(&'a [u8]),
    Null,
}

/// A payload field the fast scanner fills. A second value for the same key, a `null` or a
/// type the field cannot hold is `None`: serde then reads the frame and reports it exactly.
pub(crate) trait Put<'a> {
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
