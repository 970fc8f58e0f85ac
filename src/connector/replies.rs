//! Kalshi REST replies to [`Event`]s.
//!
//! Two kinds of parser live here:
//!
//! - **order replies** ([`parse_order_reply`]): create, cancel, amend, decrease, batched create
//!   and cancel, cancel-all, and every error body. These run on the io thread between commands,
//!   so they read the body with serde_json into borrowed fields (raw text of numbers and ids,
//!   like the WebSocket codec) and allocate nothing for Kalshi-shaped bodies. Every request item
//!   gets exactly one `OrderAck` or `OrderReject`, whatever the body holds: the strategy's
//!   in-flight bookkeeping depends on it.
//! - **bootstrap and resync** parsers: a market (ticker, status, close time, its tick ladder
//!   and fees), the markets list, our orders, positions and fills. These allocate (they run at
//!   start-up and after a reconnect) and report errors that name the field.
//!
//! Both eras are read: the current fixed-point strings (`*_fp`, `*_dollars`) win, the older
//! integer fields (whole contracts, cents) are the fallback, and the legacy reply shapes
//! (`{"order":{...}}`, `{"old_order":..,"order":..}`) are understood beside the V2 ones.
//!
//! Fills carry a [`FillKey`] (the exchange's trade id and our order id) so the io thread can
//! count a fill seen on the WebSocket and again in a REST backfill exactly once; the WebSocket
//! side gets the same key from `Decoder::last_fill_trade`.

use super::kalshi::interner::Interner;
use super::kalshi::numbers::rfc3339_ms;
use super::kalshi::rest::request::MAX_BATCH;
use super::pacing::Budget;
use crate::event::{ClientRef, Event, EventBody, MarketIdx, Money, OrderId, OrderStatus, Price, Qty, RejectReason, Side, Stamp};
use crate::ladder::{FeeRates, MarketLadder, RangeText};
use anyhow::{anyhow, bail, Context};
use local_exchange::ladder::LevelStructure;
use local_exchange::units::parse_scaled;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

// ------------------------------------------------------------------------------------ order replies

/// Which request a reply answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    Create,
    Cancel,
    Amend,
    Decrease,
    BatchCreate,
    BatchCancel,
    CancelAll,
}

/// What the io thread remembers about one order of an in-flight request. For a create,
/// `order` is unknown (`OrderId(0)`); for `CancelAll`, pass one item with `ClientRef(0)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItemCtx {
    pub market: MarketIdx,
    pub client: ClientRef,
    pub order: OrderId,
}

/// Why a reply could not be read as sent. The events were pushed anyway (a reject with
/// [`RejectReason::Other`] for what could not be read); after an error on a 2xx reply the
/// exchange's state is unknown, so the io thread should resync the orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// Not JSON, or JSON cut short.
    Syntax,
    /// JSON of the wrong shape (not an object, `orders` not an array...).
    WrongType,
    /// A field the reply cannot do without is absent.
    MissingField,
    /// A count that does not parse.
    BadNumber,
    /// An order id that is not a UUID.
    BadId,
    /// The reply names a different `client_order_id` than the request (a stale order map).
    ClientMismatch,
    /// A batch reply with fewer items than the request (the rest were rejected as `Other`).
    MissingItems,
    /// A batch reply with items the request did not have (ignored).
    ExtraItems,
    /// More items than a batch may hold (all were rejected as `Other`).
    TooManyItems,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for ReplyError {}

/// Turns one REST reply into events, one per item in `items` (exactly one for single-order
/// kinds: `items[0]`), pushed to `sink` in request order. `status` is the HTTP status;
/// `stamp` the io thread's stamps (its `exchange_ts_ms` is filled from the reply's `ts_ms`).
///
/// 2xx: `OrderAck` per item (a cancel that reduced nothing, or an item error, is an
/// `OrderReject`); anything else: `OrderReject` per item, the reason from Kalshi's error code,
/// 429 as `RateLimited`, 5xx as `ServerError`.
pub fn parse_order_reply(
    kind: ReplyKind,
    status: u16,
    body: &[u8],
    items: &[ItemCtx],
    stamp: Stamp,
    sink: &mut impl FnMut(Event),
) -> Result<(), ReplyError> {
    let single = !matches!(kind, ReplyKind::BatchCreate | ReplyKind::BatchCancel);
    let default_item = [ItemCtx::default()];
    let items = match (single, items.is_empty()) {
        (true, true) => &default_item[..],
        (true, false) => &items[..1],
        (false, _) => items,
    };
    if !(200..300).contains(&status) {
        let reason = reject_reason(status, error_code(body));
        for it in items {
            sink(reject(stamp, it, reason, status));
        }
        return Ok(());
    }
    if single {
        let it = &items[0];
        if kind == ReplyKind::CancelAll {
            // 204 No Content, or an empty object: there is nothing in it to read.
            sink(ack(stamp, it, it.order, OrderStatus::Canceled, Qty(0), Qty(0)));
            return Ok(());
        }
        let result = parse_fields(body).and_then(|f| single_event(kind, status, &f, it, stamp));
        return match result {
            Ok((ev, mismatch)) => {
                sink(ev);
                if mismatch {
                    Err(ReplyError::ClientMismatch)
                } else {
                    Ok(())
                }
            }
            Err(e) => {
                sink(reject(stamp, it, RejectReason::Other, status));
                Err(e)
            }
        };
    }
    batch(kind, status, body, items, stamp, sink)
}

/// The one event of a single-order reply, and whether the echoed client id disagreed.
fn single_event(kind: ReplyKind, status: u16, f: &Fields<'_>, it: &ItemCtx, mut stamp: Stamp) -> Result<(Event, bool), ReplyError> {
    stamp.exchange_ts_ms = f.ts_ms()?.unwrap_or(stamp.exchange_ts_ms);
    let mismatch = f.client_mismatch(it.client);
    if f.error.is_some() {
        // A 2xx that carries an error object: believe the error.
        return Ok((reject(stamp, it, reject_reason(0, f.error_code()), status), mismatch));
    }
    let ev = match kind {
        ReplyKind::Create => {
            let order = f.order_id()?.ok_or(ReplyError::MissingField)?;
            let filled = f.filled()?.unwrap_or(Qty(0));
            let remaining = f.remaining()?.ok_or(ReplyError::MissingField)?;
            let st = f.status()?.unwrap_or(if remaining.0 > 0 {
                OrderStatus::Resting
            } else if filled.0 > 0 {
                OrderStatus::Executed
            } else {
                OrderStatus::Canceled
            });
            ack(stamp, it, order, st, filled, remaining)
        }
        ReplyKind::Cancel => cancel_event(f, it, stamp, status)?,
        ReplyKind::Amend | ReplyKind::Decrease => {
            let order = f.order_id()?.unwrap_or(it.order);
            let filled = f.filled()?.unwrap_or(Qty(0));
            let remaining = f.remaining()?.ok_or(ReplyError::MissingField)?;
            let gone = if kind == ReplyKind::Amend {
                // An amend that crosses can fill the order completely.
                OrderStatus::Executed
            } else {
                // Decreasing to zero is Kalshi's cancel.
                OrderStatus::Canceled
            };
            let st = f.status()?.unwrap_or(if remaining.0 > 0 { OrderStatus::Resting } else { gone });
            ack(stamp, it, order, st, filled, remaining)
        }
        ReplyKind::BatchCreate | ReplyKind::BatchCancel | ReplyKind::CancelAll => unreachable!("handled by the caller"),
    };
    Ok((ev, mismatch))
}

/// A cancel (single or batch item): reduced by nothing means the order was already gone.
fn cancel_event(f: &Fields<'_>, it: &ItemCtx, stamp: Stamp, status: u16) -> Result<Event, ReplyError> {
    if f.reduced_by()?.is_some_and(|q| q.0 <= 0) {
        return Ok(reject(stamp, it, RejectReason::NotFound, status));
    }
    let order = f.order_id()?.unwrap_or(it.order);
    Ok(ack(stamp, it, order, OrderStatus::Canceled, f.filled()?.unwrap_or(Qty(0)), Qty(0)))
}

fn batch(
    kind: ReplyKind,
    status: u16,
    body: &[u8],
    items: &[ItemCtx],
    stamp: Stamp,
    sink: &mut impl FnMut(Event),
) -> Result<(), ReplyError> {
    if items.len() > MAX_BATCH {
        for it in items {
            sink(reject(stamp, it, RejectReason::Other, status));
        }
        return Err(ReplyError::TooManyItems);
    }
    // Outcomes land in request-order slots first: the reply is matched by id, not position,
    // when it carries ids, and whatever is left unanswered is rejected at the end.
    let mut slots: [Option<Event>; MAX_BATCH] = [None; MAX_BATCH];
    let mut first_error: Option<ReplyError> = None;
    let mut extra = false;
    let mut position = 0usize;
    let parsed = for_each_item(body, |f| {
        let i = position;
        position += 1;
        let by_id = match kind {
            ReplyKind::BatchCreate => f
                .client()
                .and_then(|c| (0..items.len()).find(|&j| slots[j].is_none() && items[j].client == c)),
            _ => f
                .order_id()
                .ok()
                .flatten()
                .and_then(|o| (0..items.len()).find(|&j| slots[j].is_none() && items[j].order == o)),
        };
        let Some(j) = by_id.or_else(|| (i < items.len() && slots[i].is_none()).then_some(i)) else {
            extra = true;
            return;
        };
        let it = &items[j];
        let mut st = stamp;
        let ev = (|| -> Result<Event, ReplyError> {
            st.exchange_ts_ms = f.ts_ms()?.unwrap_or(stamp.exchange_ts_ms);
            if f.error.is_some() {
                return Ok(reject(st, it, reject_reason(0, f.error_code()), status));
            }
            match kind {
                ReplyKind::BatchCreate => {
                    let order = f.order_id()?.ok_or(ReplyError::MissingField)?;
                    let filled = f.filled()?.unwrap_or(Qty(0));
                    let remaining = f.remaining()?.ok_or(ReplyError::MissingField)?;
                    let s = f.status()?.unwrap_or(if remaining.0 > 0 {
                        OrderStatus::Resting
                    } else if filled.0 > 0 {
                        OrderStatus::Executed
                    } else {
                        OrderStatus::Canceled
                    });
                    Ok(ack(st, it, order, s, filled, remaining))
                }
                _ => cancel_event(f, it, st, status),
            }
        })();
        slots[j] = Some(match ev {
            Ok(ev) => ev,
            Err(e) => {
                first_error.get_or_insert(e);
                reject(st, it, RejectReason::Other, status)
            }
        });
    });
    if let Err(e) = parsed {
        first_error.get_or_insert(e);
    }
    let mut missing = false;
    for (slot, it) in slots.iter().zip(items) {
        match slot {
            Some(ev) => sink(*ev),
            None => {
                missing = true;
                sink(reject(stamp, it, RejectReason::Other, status));
            }
        }
    }
    match (first_error, missing, extra) {
        (Some(e), _, _) => Err(e),
        (None, true, _) => Err(ReplyError::MissingItems),
        (None, false, true) => Err(ReplyError::ExtraItems),
        (None, false, false) => Ok(()),
    }
}

fn ack(stamp: Stamp, it: &ItemCtx, order: OrderId, status: OrderStatus, filled: Qty, remaining: Qty) -> Event {
    Event {
        stamp,
        body: EventBody::OrderAck {
            market: it.market,
            client: it.client,
            order,
            status,
            filled,
            remaining,
        },
    }
}

fn reject(stamp: Stamp, it: &ItemCtx, reason: RejectReason, http_status: u16) -> Event {
    Event {
        stamp,
        body: EventBody::OrderReject {
            market: it.market,
            client: it.client,
            reason,
            http_status,
        },
    }
}

/// Kalshi's error (HTTP status and `error.code`) as the hot path's reason. 429 and 5xx decide
/// by status alone; otherwise the code (any case: REST sends `market_inactive`, FIX-era text
/// `MARKET_INACTIVE`), then the status as a fallback. `status` 0 means "code only" (a batch
/// item's error inside a 2xx).
pub fn reject_reason(status: u16, code: Option<&[u8]>) -> RejectReason {
    if status == 429 {
        return RejectReason::RateLimited;
    }
    if status >= 500 {
        return RejectReason::ServerError;
    }
    let mut buf = [0u8; 48];
    let code = code.filter(|c| c.len() <= buf.len()).map(|c| {
        let b = &mut buf[..c.len()];
        b.copy_from_slice(c);
        b.make_ascii_lowercase();
        &*b
    });
    let by_code = match code.unwrap_or_default() {
        b"invalid_price" => Some(RejectReason::InvalidPrice),
        b"insufficient_balance" | b"available_balance_too_low" | b"insufficient_funds" => Some(RejectReason::InsufficientBalance),
        b"post_only_cross" | b"post_only_cross_cancel" => Some(RejectReason::PostOnlyCross),
        b"fill_or_kill_insufficient_volume" | b"fok_insufficient_volume" | b"fill_or_kill_insufficient" => {
            Some(RejectReason::FillOrKillInsufficient)
        }
        b"market_closed" | b"market_inactive" | b"market_already_closed" | b"market_not_active" => Some(RejectReason::MarketClosed),
        b"trading_paused" | b"exchange_paused" => Some(RejectReason::TradingPaused),
        b"not_found" | b"order_not_found" | b"order_not_resting" => Some(RejectReason::NotFound),
        b"too_many_requests" | b"rate_limited" => Some(RejectReason::RateLimited),
        b"internal_server_error" | b"internal_error" | b"service_unavailable" => Some(RejectReason::ServerError),
        b"invalid_order"
        | b"invalid_order_size"
        | b"invalid_parameters"
        | b"bad_request"
        | b"order_already_exists"
        | b"order_side_mismatch"
        | b"order_ticker_mismatch"
        | b"order_id_and_client_order_id_mismatch"
        | b"reduce_only_violation"
        | b"too_many_open_orders"
        | b"exceeded_per_market_risk_limit"
        | b"exceeded_order_group_risk_limit"
        | b"self_cross_attempt"
        | b"market_not_found" => Some(RejectReason::InvalidOrder),
        _ => None,
    };
    by_code.unwrap_or(match status {
        404 => RejectReason::NotFound,
        400 | 409 | 422 => RejectReason::InvalidOrder,
        _ => RejectReason::Other,
    })
}

/// The `code` of an error body (`{"error":{"code":..}}`, or a flat `{"code":..}`); `None` for
/// Kalshi's 429 body `{"error":"too many requests"}`, an empty body or one that is not JSON.
pub fn error_code(body: &[u8]) -> Option<&[u8]> {
    parse_fields(body).ok()?.error_code()
}

// --- borrowed fields of any order reply

/// The fields kmm reads from any order-shaped reply object, as raw JSON text borrowed from
/// the body (strings with their quotes). Legacy bodies nest the order (`{"order":{..}}`): its
/// fields are read into the same struct.
#[derive(Clone, Copy, Default)]
struct Fields<'a> {
    order_id: Option<&'a [u8]>,
    client_order_id: Option<&'a [u8]>,
    status: Option<&'a [u8]>,
    fill_count: Option<&'a [u8]>,
    fill_count_fp: Option<&'a [u8]>,
    remaining_count: Option<&'a [u8]>,
    remaining_count_fp: Option<&'a [u8]>,
    reduced_by: Option<&'a [u8]>,
    reduced_by_fp: Option<&'a [u8]>,
    ts_ms: Option<&'a [u8]>,
    /// `Some(code)` when an error is present; the code itself may be absent.
    error: Option<Option<&'a [u8]>>,
}

/// The contents of a JSON string token, or the text of any other scalar.
#[inline]
fn text(raw: &[u8]) -> &[u8] {
    match raw {
        [b'"', inner @ .., b'"'] => inner,
        other => other,
    }
}

#[inline]
fn is_null(raw: Option<&[u8]>) -> bool {
    raw == Some(b"null")
}

/// A count in 0.01 contracts: "10.00", 10.5 or an Era-A whole 10. `null` is absent.
fn count(raw: Option<&[u8]>) -> Result<Option<Qty>, ReplyError> {
    match raw {
        None => Ok(None),
        Some(b"null") => Ok(None),
        Some(r) => parse_scaled(text(r), 2).map(|v| Some(Qty(v))).map_err(|_| ReplyError::BadNumber),
    }
}

impl<'a> Fields<'a> {
    fn order_id(&self) -> Result<Option<OrderId>, ReplyError> {
        match self.order_id {
            None => Ok(None),
            Some(r) if is_null(Some(r)) => Ok(None),
            Some(r) => OrderId::parse(text(r)).map(Some).ok_or(ReplyError::BadId),
        }
    }

    fn client(&self) -> Option<ClientRef> {
        self.client_order_id.and_then(|r| ClientRef::parse(text(r)))
    }

    /// The reply echoes a client id of ours that is not the request's.
    fn client_mismatch(&self, expected: ClientRef) -> bool {
        self.client().is_some_and(|c| c != expected)
    }

    fn filled(&self) -> Result<Option<Qty>, ReplyError> {
        count(self.fill_count_fp.or(self.fill_count))
    }

    fn remaining(&self) -> Result<Option<Qty>, ReplyError> {
        count(self.remaining_count_fp.or(self.remaining_count))
    }

    fn reduced_by(&self) -> Result<Option<Qty>, ReplyError> {
        count(self.reduced_by_fp.or(self.reduced_by))
    }

    fn status(&self) -> Result<Option<OrderStatus>, ReplyError> {
        Ok(match self.status.map(text) {
            None | Some(b"null") | Some(b"") => None,
            Some(b"resting") | Some(b"pending") => Some(OrderStatus::Resting),
            Some(b"canceled") | Some(b"cancelled") => Some(OrderStatus::Canceled),
            Some(b"executed") => Some(OrderStatus::Executed),
            Some(_) => return Err(ReplyError::WrongType),
        })
    }

    fn ts_ms(&self) -> Result<Option<u64>, ReplyError> {
        match self.ts_ms {
            None => Ok(None),
            Some(r) if is_null(Some(r)) => Ok(None),
            Some(r) => parse_scaled(text(r), 0)
                .ok()
                .and_then(|v| u64::try_from(v).ok())
                .map(Some)
                .ok_or(ReplyError::BadNumber),
        }
    }

    fn error_code(&self) -> Option<&'a [u8]> {
        self.error.flatten().map(text)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Key {
    OrderId,
    ClientOrderId,
    Status,
    FillCount,
    FillCountFp,
    RemainingCount,
    RemainingCountFp,
    ReducedBy,
    ReducedByFp,
    TsMs,
    Error,
    /// The flat error shape.
    Code,
    /// Legacy replies nest the order.
    Order,
    #[serde(other)]
    Other,
}

fn raw<'de, A: MapAccess<'de>>(map: &mut A) -> Result<&'de [u8], A::Error> {
    Ok(map.next_value::<&'de RawValue>()?.get().as_bytes())
}

/// Reads an order-shaped object into [`Fields`], in place (nested `order` objects included).
struct FieldsSeed<'b, 'a> {
    out: &'b mut Fields<'a>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for FieldsSeed<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // `"order": null` (a legacy batch item's failure) is a valid, empty order.
        d.deserialize_option(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for FieldsSeed<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an order reply object")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let f = self.out;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::OrderId => f.order_id = Some(raw(&mut map)?),
                Key::ClientOrderId => f.client_order_id = Some(raw(&mut map)?),
                Key::Status => f.status = Some(raw(&mut map)?),
                Key::FillCount => f.fill_count = Some(raw(&mut map)?),
                Key::FillCountFp => f.fill_count_fp = Some(raw(&mut map)?),
                Key::RemainingCount => f.remaining_count = Some(raw(&mut map)?),
                Key::RemainingCountFp => f.remaining_count_fp = Some(raw(&mut map)?),
                Key::ReducedBy => f.reduced_by = Some(raw(&mut map)?),
                Key::ReducedByFp => f.reduced_by_fp = Some(raw(&mut map)?),
                Key::TsMs => f.ts_ms = Some(raw(&mut map)?),
                Key::Code => {
                    let c = raw(&mut map)?;
                    if f.error.flatten().is_none() {
                        f.error = Some(Some(c));
                    }
                }
                Key::Error => map.next_value_seed(ErrorSeed { out: &mut f.error })?,
                Key::Order => map.next_value_seed(FieldsSeed { out: &mut *f })?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// `error`: `null` (none), a string (Kalshi's 429 text) or `{"code","message","details"}`.
struct ErrorSeed<'b, 'a> {
    out: &'b mut Option<Option<&'a [u8]>>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for ErrorSeed<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for ErrorSeed<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an error object, a string or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<(), E> {
        *self.out = Some(None);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        *self.out = Some(None);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut code = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Code => code = Some(raw(&mut map)?).filter(|c| !is_null(Some(c))),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        *self.out = Some(code);
        Ok(())
    }
}

fn json_error(e: serde_json::Error) -> ReplyError {
    match e.classify() {
        serde_json::error::Category::Data => ReplyError::WrongType,
        _ => ReplyError::Syntax,
    }
}

fn parse_fields(body: &[u8]) -> Result<Fields<'_>, ReplyError> {
    let mut f = Fields::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    (&mut de).deserialize_map(FieldsSeed { out: &mut f }).map_err(json_error)?;
    de.end().map_err(json_error)?;
    Ok(f)
}

/// Calls `item` for each element of the body's `orders` array, in order.
fn for_each_item<'a>(body: &'a [u8], item: impl FnMut(&Fields<'a>)) -> Result<(), ReplyError> {
    struct Top<F>(F, bool);
    impl<'de, F: FnMut(&Fields<'de>)> Visitor<'de> for &mut Top<F> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object with an orders array")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            #[derive(Deserialize)]
            #[serde(field_identifier, rename_all = "snake_case")]
            enum TopKey {
                Orders,
                #[serde(other)]
                Other,
            }
            while let Some(key) = map.next_key::<TopKey>()? {
                match key {
                    TopKey::Orders => {
                        self.1 = true;
                        map.next_value_seed(&mut *self)?
                    }
                    TopKey::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            loop {
                let mut f = Fields::default();
                if seq.next_element_seed(FieldsSeed { out: &mut f })?.is_none() {
                    return Ok(());
                }
                (self.0)(&f);
            }
        }
    }
    impl<'de, F: FnMut(&Fields<'de>)> DeserializeSeed<'de> for &mut Top<F> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    let mut top = Top(item, false);
    let mut de = serde_json::Deserializer::from_slice(body);
    (&mut de).deserialize_map(&mut top).map_err(json_error)?;
    de.end().map_err(json_error)?;
    if top.1 {
        Ok(())
    } else {
        Err(ReplyError::MissingField)
    }
}

// ------------------------------------------------------------------------------------ fill identity

/// A fill's identity: the exchange's trade and our order. A trade matches one taker with one
/// maker, so with self-trade prevention on, each (trade, order) is one fill of ours. The same
/// key comes from the WebSocket (`Decoder::last_fill_trade` and the event's order) and from
/// REST backfill ([`parse_fills`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FillKey {
    /// The trade id's 128 bits (a UUID; see [`OrderId::parse`]).
    pub trade: u128,
    pub order: OrderId,
}

// ------------------------------------------------------------------------------------ bootstrap

/// A market's lifecycle state, in both eras' words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarketState {
    /// `initialized` / `unopened`
    Initialized,
    /// `active` / `open`
    Active,
    /// `inactive` / `paused`
    Inactive,
    Closed,
    /// `determined`, `disputed`, `amended`
    Determined,
    /// `settled` / `finalized`
    Settled,
    Unknown,
}

impl MarketState {
    pub fn parse(s: &str) -> MarketState {
        match s {
            "initialized" | "unopened" => MarketState::Initialized,
            "active" | "open" => MarketState::Active,
            "inactive" | "paused" => MarketState::Inactive,
            "closed" => MarketState::Closed,
            "determined" | "disputed" | "amended" => MarketState::Determined,
            "settled" | "finalized" => MarketState::Settled,
            _ => MarketState::Unknown,
        }
    }

    pub fn is_tradable(self) -> bool {
        self == MarketState::Active
    }
}

/// What kmm needs to know about a market before quoting it.
#[derive(Clone, Debug)]
pub struct MarketInfo {
    pub ticker: String,
    pub state: MarketState,
    /// The status as sent.
    pub status: String,
    /// Unix ms of `close_time`, when present and readable.
    pub close_time_ms: Option<u64>,
    pub price_level_structure: String,
    /// From `fee_type`/`fee_multiplier` when the object carries them (series and some
    /// venues do; Kalshi's market object does not), else the caller's default.
    pub fees: FeeRates,
    pub ladder: MarketLadder,
}

#[derive(Deserialize)]
struct RawRange<'a> {
    #[serde(borrow)]
    start: Cow<'a, str>,
    #[serde(borrow)]
    end: Cow<'a, str>,
    #[serde(borrow)]
    step: Cow<'a, str>,
}

#[derive(Deserialize)]
struct RawMarket<'a> {
    #[serde(borrow)]
    ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    close_time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    price_level_structure: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    price_ranges: Option<Vec<RawRange<'a>>>,
    #[serde(borrow, default)]
    tick_size: Option<&'a RawValue>,
    #[serde(borrow, default)]
    fee_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    fee_multiplier: Option<&'a RawValue>,
}

fn market_info(m: RawMarket<'_>, default_fees: FeeRates) -> anyhow::Result<MarketInfo> {
    let ticker = m.ticker.ok_or_else(|| anyhow!("market has no ticker"))?.into_owned();
    let status = m.status.map(Cow::into_owned).unwrap_or_default();
    let multiplier_e4 = match m.fee_multiplier.map(|r| text(r.get().as_bytes())) {
        None | Some(b"null") => 10_000,
        Some(t) => parse_scaled(t, 4)
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| anyhow!("market {ticker}: fee_multiplier {:?} is not a decimal", String::from_utf8_lossy(t)))?,
    };
    let fees = match m.fee_type.as_deref() {
        Some("quadratic") => FeeRates::quadratic(multiplier_e4),
        Some("quadratic_with_maker_fees") => FeeRates::quadratic_with_maker_fees(multiplier_e4),
        _ => default_fees,
    };
    let structure = m.price_level_structure.map(Cow::into_owned).unwrap_or_default();
    let ladder = match m.price_ranges.as_deref() {
        Some(r) if !r.is_empty() => {
            let texts: Vec<RangeText<'_>> = r
                .iter()
                .map(|r| RangeText {
                    start: &r.start,
                    end: &r.end,
                    step: &r.step,
                })
                .collect();
            MarketLadder::from_price_ranges(&texts, fees).map_err(|e| anyhow!("market {ticker}: {e}"))?
        }
        // Older objects: the named structure, or the one-cent tick of `tick_size` days.
        _ => match LevelStructure::parse(&structure) {
            Some(s) => MarketLadder::from_structure(s, fees),
            None if m.tick_size.is_some_and(|t| text(t.get().as_bytes()) == b"1") => {
                MarketLadder::from_structure(LevelStructure::LinearCent, fees)
            }
            None => bail!("market {ticker}: no price_ranges and price_level_structure {structure:?} is not one kmm knows"),
        },
    };
    Ok(MarketInfo {
        close_time_ms: m.close_time.as_deref().and_then(|t| rfc3339_ms(t.as_bytes())),
        state: MarketState::parse(&status),
        status,
        price_level_structure: structure,
        fees,
        ladder,
        ticker,
    })
}

/// `GET /markets/{ticker}`: `{"market":{...}}` (or the bare object).
pub fn parse_market(body: &[u8], default_fees: FeeRates) -> anyhow::Result<MarketInfo> {
    #[derive(Deserialize)]
    struct Wrapped<'a> {
        #[serde(borrow)]
        market: RawMarket<'a>,
    }
    let raw = match serde_json::from_slice::<Wrapped<'_>>(body) {
        Ok(w) => w.market,
        Err(_) => serde_json::from_slice::<RawMarket<'_>>(body).context("GET /markets/{ticker}: not a market object")?,
    };
    market_info(raw, default_fees)
}

/// One page of `GET /markets`.
#[derive(Debug)]
pub struct MarketsPage {
    pub markets: Vec<MarketInfo>,
    /// Markets whose objects kmm cannot trade on (ticker, why).
    pub rejected: Vec<(String, String)>,
    /// The next page's cursor; `None` on the last page.
    pub cursor: Option<String>,
}

pub fn parse_markets(body: &[u8], default_fees: FeeRates) -> anyhow::Result<MarketsPage> {
    #[derive(Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        markets: Vec<RawMarket<'a>>,
        #[serde(borrow, default)]
        cursor: Option<Cow<'a, str>>,
    }
    let page: Page<'_> = serde_json::from_slice(body).context("GET /markets: not a markets page")?;
    let mut out = MarketsPage {
        markets: Vec::with_capacity(page.markets.len()),
        rejected: Vec::new(),
        cursor: cursor(page.cursor),
    };
    for m in page.markets {
        let ticker = m.ticker.as_deref().unwrap_or("").to_string();
        match market_info(m, default_fees) {
            Ok(info) => out.markets.push(info),
            Err(e) => out.rejected.push((ticker, e.to_string())),
        }
    }
    Ok(out)
}

fn cursor(c: Option<Cow<'_, str>>) -> Option<String> {
    c.filter(|c| !c.is_empty()).map(Cow::into_owned)
}

/// A list item's market and ticker: `ticker`, or the older `market_ticker`. `Ok(None)`
/// (counted in `info`) when the market is not one this run trades; an error when the item
/// names none.
fn item_market<'t>(
    ticker: Option<&'t str>,
    market_ticker: Option<&'t str>,
    interner: &Interner,
    info: &mut PageInfo,
    list: &str,
    i: usize,
) -> anyhow::Result<Option<(MarketIdx, &'t str)>> {
    let ticker = ticker.or(market_ticker).ok_or_else(|| anyhow!("{list}[{i}]: no ticker"))?;
    let Some(market) = interner.get(ticker.as_bytes()) else {
        info.unknown_market += 1;
        return Ok(None);
    };
    Ok(Some((market, ticker)))
}

/// What a list page held, beside the events it produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageInfo {
    /// The next page's cursor; `None` on the last page.
    pub cursor: Option<String>,
    pub events: usize,
    /// Items in markets that are not interned (not traded by this run): skipped.
    pub unknown_market: usize,
}

/// Scalars of list items: raw JSON text, so decimals are read exactly.
type Raw<'a> = Option<&'a RawValue>;

fn raw_text<'a>(r: Raw<'a>) -> Option<&'a [u8]> {
    r.map(|r| text(r.get().as_bytes())).filter(|t| *t != b"null")
}

fn qty_of(fp: Raw<'_>, whole: Raw<'_>, what: &str) -> anyhow::Result<Option<Qty>> {
    match raw_text(fp).or(raw_text(whole)) {
        None => Ok(None),
        Some(t) => parse_scaled(t, 2)
            .map(|v| Some(Qty(v)))
            .map_err(|e| anyhow!("{what} {:?}: {e}", String::from_utf8_lossy(t))),
    }
}

/// `*_dollars` (1e-4 $ price) else Era-A integer cents.
fn price_of(dollars: Raw<'_>, cents: Raw<'_>, what: &str) -> anyhow::Result<Option<Price>> {
    let (t, places) = match (raw_text(dollars), raw_text(cents)) {
        (Some(t), _) => (t, 4),
        (None, Some(t)) => (t, 2),
        (None, None) => return Ok(None),
    };
    match parse_scaled(t, places) {
        Ok(v) if (0..=10_000).contains(&v) => Ok(Some(Price(v as u32))),
        _ => bail!("{what} {:?} is not a price", String::from_utf8_lossy(t)),
    }
}

/// `*_dollars` (up to 6 places) else Era-A integer cents.
fn money_of(dollars: Raw<'_>, cents: Raw<'_>, what: &str) -> anyhow::Result<Money> {
    let (t, places) = match (raw_text(dollars), raw_text(cents)) {
        (Some(t), _) => (t, 6),
        (None, Some(t)) => (t, 4),
        (None, None) => return Ok(Money(0)),
    };
    parse_scaled(t, places)
        .map(Money)
        .map_err(|e| anyhow!("{what} {:?}: {e}", String::from_utf8_lossy(t)))
}

fn side_of(book: Option<&str>, outcome: Option<&str>, contract: Option<&str>, action: Option<&str>) -> anyhow::Result<Side> {
    match (book, outcome) {
        (Some("bid"), _) => return Ok(Side::Bid),
        (Some("ask"), _) => return Ok(Side::Ask),
        (Some(b), _) => bail!("book_side {b:?}"),
        (None, Some("yes")) => return Ok(Side::Bid),
        (None, Some("no")) => return Ok(Side::Ask),
        (None, Some(o)) => bail!("outcome_side {o:?}"),
        (None, None) => {}
    }
    let yes = match contract {
        Some("yes") => true,
        Some("no") => false,
        other => bail!("no book_side/outcome_side and side {other:?}"),
    };
    let buy = match action {
        Some("buy") => true,
        Some("sell" | "sell_partial" | "sell_to_close") => false,
        other => bail!("action {other:?}"),
    };
    // Buying YES or selling NO bids on the YES book.
    Ok(if yes == buy { Side::Bid } else { Side::Ask })
}

fn uuid(text: Option<&str>) -> Option<u128> {
    OrderId::parse(text?.as_bytes()).map(|o| o.0)
}

fn ts_of(ts_ms: Raw<'_>, time: Option<&str>, ts_s: Raw<'_>) -> u64 {
    if let Some(v) = raw_text(ts_ms).and_then(|t| parse_scaled(t, 0).ok()) {
        return v.max(0) as u64;
    }
    if let Some(v) = time.and_then(|t| rfc3339_ms(t.as_bytes())) {
        return v;
    }
    raw_text(ts_s).and_then(|t| parse_scaled(t, 3).ok()).map_or(0, |v| v.max(0) as u64)
}

#[derive(Deserialize)]
struct RawOrder<'a> {
    #[serde(borrow, default)]
    order_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client_order_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    market_ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    outcome_side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    book_side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    yes_price_dollars: Raw<'a>,
    #[serde(borrow, default)]
    yes_price: Raw<'a>,
    #[serde(borrow, default)]
    fill_count_fp: Raw<'a>,
    #[serde(borrow, default)]
    fill_count: Raw<'a>,
    #[serde(borrow, default)]
    remaining_count_fp: Raw<'a>,
    #[serde(borrow, default)]
    remaining_count: Raw<'a>,
    #[serde(borrow, default)]
    last_updated_ts_ms: Raw<'a>,
    #[serde(borrow, default)]
    last_update_time: Option<Cow<'a, str>>,
}

/// `GET /portfolio/orders` (or `/portfolio/events/orders`): each of our orders in an interned
/// market as an `OrderUpdate` (kmm's client ids parsed to `ClientRef`, others `ClientRef(0)`).
pub fn parse_orders(body: &[u8], interner: &Interner, stamp: Stamp, sink: &mut impl FnMut(Event)) -> anyhow::Result<PageInfo> {
    #[derive(Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        orders: Vec<RawOrder<'a>>,
        #[serde(borrow, default)]
        cursor: Option<Cow<'a, str>>,
    }
    let page: Page<'_> = serde_json::from_slice(body).context("GET /portfolio/orders: not an orders page")?;
    let mut info = PageInfo {
        cursor: cursor(page.cursor),
        ..PageInfo::default()
    };
    for (i, o) in page.orders.iter().enumerate() {
        let Some((market, ticker)) = item_market(o.ticker.as_deref(), o.market_ticker.as_deref(), interner, &mut info, "orders", i)? else {
            continue;
        };
        let ev = (|| -> anyhow::Result<Event> {
            let order = o
                .order_id
                .as_deref()
                .and_then(|t| OrderId::parse(t.as_bytes()))
                .ok_or_else(|| anyhow!("order_id"))?;
            let status = match o.status.as_deref() {
                Some("resting" | "pending") => OrderStatus::Resting,
                Some("canceled" | "cancelled") => OrderStatus::Canceled,
                Some("executed") => OrderStatus::Executed,
                other => bail!("status {other:?}"),
            };
            let mut st = stamp;
            st.exchange_ts_ms = ts_of(o.last_updated_ts_ms, o.last_update_time.as_deref(), None);
            Ok(Event {
                stamp: st,
                body: EventBody::OrderUpdate {
                    market,
                    client: o
                        .client_order_id
                        .as_deref()
                        .and_then(|c| ClientRef::parse(c.as_bytes()))
                        .unwrap_or_default(),
                    order,
                    status,
                    side: side_of(
                        o.book_side.as_deref(),
                        o.outcome_side.as_deref(),
                        o.side.as_deref(),
                        o.action.as_deref(),
                    )?,
                    price: price_of(o.yes_price_dollars, o.yes_price, "yes_price")?.ok_or_else(|| anyhow!("no yes price"))?,
                    remaining: qty_of(o.remaining_count_fp, o.remaining_count, "remaining_count")?
                        .ok_or_else(|| anyhow!("no remaining_count"))?,
                    filled: qty_of(o.fill_count_fp, o.fill_count, "fill_count")?.unwrap_or(Qty(0)),
                },
            })
        })()
        .with_context(|| format!("GET /portfolio/orders: orders[{i}] ({ticker})"))?;
        sink(ev);
        info.events += 1;
    }
    Ok(info)
}

#[derive(Deserialize)]
struct RawPosition<'a> {
    #[serde(borrow, default)]
    ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    market_ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    position_fp: Raw<'a>,
    #[serde(borrow, default)]
    position: Raw<'a>,
    #[serde(borrow, default)]
    realized_pnl_dollars: Raw<'a>,
    #[serde(borrow, default)]
    realized_pnl: Raw<'a>,
    #[serde(borrow, default)]
    fees_paid_dollars: Raw<'a>,
    #[serde(borrow, default)]
    fees_paid: Raw<'a>,
}

/// `GET /portfolio/positions`: each `market_positions` entry in an interned market as a
/// `Position` event. Era-A REST money is in cents (unlike the WebSocket's centi-cents).
pub fn parse_positions(body: &[u8], interner: &Interner, stamp: Stamp, sink: &mut impl FnMut(Event)) -> anyhow::Result<PageInfo> {
    #[derive(Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        market_positions: Vec<RawPosition<'a>>,
        #[serde(borrow, default)]
        cursor: Option<Cow<'a, str>>,
    }
    let page: Page<'_> = serde_json::from_slice(body).context("GET /portfolio/positions: not a positions page")?;
    let mut info = PageInfo {
        cursor: cursor(page.cursor),
        ..PageInfo::default()
    };
    for (i, p) in page.market_positions.iter().enumerate() {
        let Some((market, ticker)) = item_market(
            p.ticker.as_deref(),
            p.market_ticker.as_deref(),
            interner,
            &mut info,
            "market_positions",
            i,
        )?
        else {
            continue;
        };
        let ev = (|| -> anyhow::Result<Event> {
            Ok(Event {
                stamp,
                body: EventBody::Position {
                    market,
                    position: qty_of(p.position_fp, p.position, "position")?.ok_or_else(|| anyhow!("no position"))?,
                    realized_pnl: money_of(p.realized_pnl_dollars, p.realized_pnl, "realized_pnl")?,
                    fees_paid: money_of(p.fees_paid_dollars, p.fees_paid, "fees_paid")?,
                },
            })
        })()
        .with_context(|| format!("GET /portfolio/positions: market_positions[{i}] ({ticker})"))?;
        sink(ev);
        info.events += 1;
    }
    Ok(info)
}

#[derive(Deserialize)]
struct RawFill<'a> {
    #[serde(borrow, default)]
    trade_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    fill_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    order_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client_order_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    market_ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    outcome_side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    purchased_side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    book_side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    yes_price_dollars: Raw<'a>,
    /// The 2026-03 name of `yes_price_dollars`, removed 2026-04.
    #[serde(borrow, default)]
    yes_price_fixed: Raw<'a>,
    #[serde(borrow, default)]
    yes_price: Raw<'a>,
    #[serde(borrow, default)]
    count_fp: Raw<'a>,
    #[serde(borrow, default)]
    count: Raw<'a>,
    #[serde(default)]
    is_taker: Option<bool>,
    #[serde(borrow, default)]
    fee_cost: Raw<'a>,
    #[serde(borrow, default)]
    post_position_fp: Raw<'a>,
    #[serde(borrow, default)]
    post_position: Raw<'a>,
    #[serde(borrow, default)]
    ts_ms: Raw<'a>,
    #[serde(borrow, default)]
    created_time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ts: Raw<'a>,
}

/// `GET /portfolio/fills`: each of our fills in an interned market as a `Fill` event with its
/// [`FillKey`], in the order listed (Kalshi lists newest first: the caller orders them).
/// REST fills carry no post-fill position: `post_position` is 0 unless the object has one
/// (the `Position` events of the same resync carry the truth).
pub fn parse_fills(body: &[u8], interner: &Interner, stamp: Stamp, sink: &mut impl FnMut(FillKey, Event)) -> anyhow::Result<PageInfo> {
    #[derive(Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        fills: Vec<RawFill<'a>>,
        #[serde(borrow, default)]
        cursor: Option<Cow<'a, str>>,
    }
    let page: Page<'_> = serde_json::from_slice(body).context("GET /portfolio/fills: not a fills page")?;
    let mut info = PageInfo {
        cursor: cursor(page.cursor),
        ..PageInfo::default()
    };
    for (i, f) in page.fills.iter().enumerate() {
        let Some((market, ticker)) = item_market(f.ticker.as_deref(), f.market_ticker.as_deref(), interner, &mut info, "fills", i)? else {
            continue;
        };
        let (key, ev) = (|| -> anyhow::Result<(FillKey, Event)> {
            let order = f
                .order_id
                .as_deref()
                .and_then(|t| OrderId::parse(t.as_bytes()))
                .ok_or_else(|| anyhow!("order_id"))?;
            let trade = uuid(f.trade_id.as_deref())
                .or_else(|| uuid(f.fill_id.as_deref()))
                .ok_or_else(|| anyhow!("no trade_id or fill_id UUID"))?;
            let yes_price =
                price_of(f.yes_price_dollars.or(f.yes_price_fixed), f.yes_price, "yes_price")?.ok_or_else(|| anyhow!("no yes price"))?;
            let mut st = stamp;
            st.exchange_ts_ms = ts_of(f.ts_ms, f.created_time.as_deref(), f.ts);
            let ev = Event {
                stamp: st,
                body: EventBody::Fill {
                    market,
                    client: f
                        .client_order_id
                        .as_deref()
                        .and_then(|c| ClientRef::parse(c.as_bytes()))
                        .unwrap_or_default(),
                    order,
                    side: side_of(
                        f.book_side.as_deref(),
                        f.outcome_side.as_deref().or(f.purchased_side.as_deref()),
                        f.side.as_deref(),
                        f.action.as_deref(),
                    )?,
                    yes_price,
                    qty: qty_of(f.count_fp, f.count, "count")?.ok_or_else(|| anyhow!("no count"))?,
                    is_taker: f.is_taker.unwrap_or(false),
                    fee: money_of(f.fee_cost, None, "fee_cost")?,
                    post_position: qty_of(f.post_position_fp, f.post_position, "post_position")?.unwrap_or(Qty(0)),
                },
            };
            Ok((FillKey { trade, order }, ev))
        })()
        .with_context(|| format!("GET /portfolio/fills: fills[{i}] ({ticker})"))?;
        sink(key, ev);
        info.events += 1;
    }
    Ok(info)
}

/// `GET /account/limits`: (read, write) budgets for [`super::pacing::Pacer::new`]; `None` is
/// unlimited (the local exchange's `unlimited` tier sends `null`). Falls back to the older
/// flat `read_limit`/`write_limit` (requests per second, at the default 10 tokens each).
pub fn parse_account_limits(body: &[u8]) -> anyhow::Result<(Option<Budget>, Option<Budget>)> {
    #[derive(Deserialize)]
    struct Bucket {
        refill_rate: Option<f64>,
        bucket_capacity: Option<f64>,
    }
    #[derive(Deserialize)]
    struct Limits {
        read: Option<Bucket>,
        write: Option<Bucket>,
        read_limit: Option<f64>,
        write_limit: Option<f64>,
    }
    let l: Limits = serde_json::from_slice(body).context("GET /account/limits: not a limits object")?;
    let budget = |b: Option<Bucket>, flat: Option<f64>| -> Option<Budget> {
        let (rate, cap) = match b {
            Some(b) => (b.refill_rate?, b.bucket_capacity?),
            None => {
                let per_s = flat? * f64::from(super::pacing::DEFAULT_COST);
                (per_s, per_s)
            }
        };
        (rate.is_finite() && cap.is_finite() && rate >= 0.0 && cap >= 0.0).then(|| Budget {
            rate_per_s: rate.min(f64::from(u32::MAX)) as u32,
            capacity: cap.min(f64::from(u32::MAX)) as u32,
        })
    };
    Ok((budget(l.read, l.read_limit), budget(l.write, l.write_limit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4";
    const OID2: &str = "1b6e2a9a-0a11-41c0-4f77-2a9a1c021af4";

    fn run(kind: ReplyKind, status: u16, body: &str, items: &[ItemCtx]) -> (Vec<EventBody>, Result<(), ReplyError>) {
        let mut out = Vec::new();
        let r = parse_order_reply(kind, status, body.as_bytes(), items, Stamp::default(), &mut |e| out.push(e.body));
        (out, r)
    }

    fn item(client: u64, order: &str) -> ItemCtx {
        ItemCtx {
            market: 3,
            client: ClientRef(client),
            order: OrderId::parse(order.as_bytes()).unwrap_or_default(),
        }
    }

    #[test]
    fn reasons_by_status_and_code() {
        assert_eq!(reject_reason(429, Some(b"invalid_price")), RejectReason::RateLimited);
        assert_eq!(reject_reason(503, Some(b"post_only_cross")), RejectReason::ServerError);
        assert_eq!(reject_reason(400, Some(b"MARKET_INACTIVE")), RejectReason::MarketClosed);
        assert_eq!(reject_reason(400, Some(b"post_only_cross")), RejectReason::PostOnlyCross);
        assert_eq!(reject_reason(400, Some(b"something_new")), RejectReason::InvalidOrder);
        assert_eq!(reject_reason(404, None), RejectReason::NotFound);
        assert_eq!(reject_reason(401, Some(b"unauthorized")), RejectReason::Other);
        assert_eq!(reject_reason(0, Some(b"insufficient_balance")), RejectReason::InsufficientBalance);
        assert_eq!(reject_reason(0, Some(&[b'x'; 100])), RejectReason::Other);
    }

    #[test]
    fn error_codes_in_every_shape() {
        assert_eq!(
            error_code(br#"{"error":{"code":"invalid_order","message":"a \"quoted\" text","details":""}}"#),
            Some(&b"invalid_order"[..])
        );
        assert_eq!(
            error_code(br#"{"code":"invalid_price","message":"m"}"#),
            Some(&b"invalid_price"[..])
        );
        assert_eq!(error_code(br#"{"error":"too many requests"}"#), None);
        assert_eq!(error_code(b"<html>bad gateway</html>"), None);
        assert_eq!(error_code(b""), None);
    }

    #[test]
    fn v2_create_acks() {
        let body = format!(
            r#"{{"order_id":"{OID}","client_order_id":"kmm-0000000000000007","fill_count":"2.00","remaining_count":"8.00","status":"resting","ts_ms":1715793600123}}"#
        );
        let (ev, r) = run(ReplyKind::Create, 201, &body, &[item(7, "")]);
        assert_eq!(r, Ok(()));
        assert_eq!(
            ev,
            vec![EventBody::OrderAck {
                market: 3,
                client: ClientRef(7),
                order: OrderId::parse(OID.as_bytes()).unwrap(),
                status: OrderStatus::Resting,
                filled: Qty(200),
                remaining: Qty(800),
            }]
        );
        // No status field (Kalshi's documented V2 reply): inferred from the counts.
        let body = format!(r#"{{"order_id":"{OID}","fill_count":"10.00","remaining_count":"0.00"}}"#);
        let (ev, _) = run(ReplyKind::Create, 201, &body, &[item(7, "")]);
        assert!(matches!(
            ev[0],
            EventBody::OrderAck {
                status: OrderStatus::Executed,
                ..
            }
        ));
        // A client id echo that is someone else's: acked for ours, reported.
        let body = format!(r#"{{"order_id":"{OID}","client_order_id":"kmm-0000000000000008","remaining_count":"1.00"}}"#);
        let (ev, r) = run(ReplyKind::Create, 201, &body, &[item(7, "")]);
        assert_eq!(r, Err(ReplyError::ClientMismatch));
        assert!(matches!(ev[0], EventBody::OrderAck { client: ClientRef(7), .. }));
    }

    #[test]
    fn legacy_create_reads_the_nested_order() {
        let body = format!(
            r#"{{"order":{{"order_id":"{OID}","status":"executed","fill_count":10,"remaining_count":0,"yes_price":42,"expiration_time":null}}}}"#
        );
        let (ev, r) = run(ReplyKind::Create, 201, &body, &[item(1, "")]);
        assert_eq!(r, Ok(()));
        assert!(matches!(
            ev[0],
            EventBody::OrderAck {
                status: OrderStatus::Executed,
                filled: Qty(1000),
                remaining: Qty(0),
                ..
            }
        ));
    }

    #[test]
    fn errors_reject_every_item() {
        let body = r#"{"error":{"code":"post_only_cross","message":"m","details":""}}"#;
        let (ev, _) = run(ReplyKind::Create, 400, body, &[item(1, "")]);
        assert_eq!(
            ev,
            vec![EventBody::OrderReject {
                market: 3,
                client: ClientRef(1),
                reason: RejectReason::PostOnlyCross,
                http_status: 400
            }]
        );
        let (ev, r) = run(
            ReplyKind::BatchCreate,
            429,
            r#"{"error":"too many requests"}"#,
            &[item(1, ""), item(2, "")],
        );
        assert_eq!(r, Ok(()));
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| matches!(
            e,
            EventBody::OrderReject {
                reason: RejectReason::RateLimited,
                http_status: 429,
                ..
            }
        )));
        let (ev, _) = run(ReplyKind::Cancel, 502, "<html>", &[item(1, OID)]);
        assert!(matches!(
            ev[0],
            EventBody::OrderReject {
                reason: RejectReason::ServerError,
                ..
            }
        ));
    }

    #[test]
    fn malformed_2xx_still_answers_once() {
        for body in [
            "",
            "{",
            "[1]",
            r#"{"order_id":"nope","remaining_count":"1.00"}"#,
            r#"{"order_id":null}"#,
        ] {
            let (ev, r) = run(ReplyKind::Create, 201, body, &[item(1, "")]);
            assert!(r.is_err(), "{body}");
            assert_eq!(ev.len(), 1, "{body}");
            assert!(matches!(
                ev[0],
                EventBody::OrderReject {
                    reason: RejectReason::Other,
                    ..
                }
            ));
        }
    }

    #[test]
    fn cancels_amends_decreases() {
        let it = item(5, OID);
        let body = format!(r#"{{"order_id":"{OID}","client_order_id":"kmm-0000000000000005","reduced_by":"3.00","ts_ms":9}}"#);
        let (ev, _) = run(ReplyKind::Cancel, 200, &body, &[it]);
        assert!(matches!(
            ev[0],
            EventBody::OrderAck {
                status: OrderStatus::Canceled,
                remaining: Qty(0),
                ..
            }
        ));
        // Legacy: integer reduced_by 0 means it had already filled: gone.
        let (ev, _) = run(ReplyKind::Cancel, 200, r#"{"order":{"status":"executed"},"reduced_by":0}"#, &[it]);
        assert!(matches!(
            ev[0],
            EventBody::OrderReject {
                reason: RejectReason::NotFound,
                ..
            }
        ));
        let (ev, _) = run(
            ReplyKind::Cancel,
            404,
            r#"{"error":{"code":"not_found","message":"order not found"}}"#,
            &[it],
        );
        assert!(matches!(
            ev[0],
            EventBody::OrderReject {
                reason: RejectReason::NotFound,
                http_status: 404,
                ..
            }
        ));
        let body = format!(r#"{{"order_id":"{OID}","remaining_count":"4.00","fill_count":"1.00","ts_ms":1}}"#);
        let (ev, _) = run(ReplyKind::Amend, 200, &body, &[it]);
        assert!(matches!(
            ev[0],
            EventBody::OrderAck {
                status: OrderStatus::Resting,
                remaining: Qty(400),
                filled: Qty(100),
                ..
            }
        ));
        let body = format!(
            r#"{{"old_order":{{"order_id":"{OID2}","remaining_count":9}},"order":{{"order_id":"{OID}","status":"resting","remaining_count":4,"fill_count":1}}}}"#
        );
        let (ev, _) = run(ReplyKind::Amend, 200, &body, &[it]);
        assert!(matches!(ev[0], EventBody::OrderAck { remaining: Qty(400), order, .. } if order == it.order));
        let (ev, _) = run(ReplyKind::Decrease, 200, r#"{"remaining_count":"0.00"}"#, &[it]);
        assert!(matches!(ev[0], EventBody::OrderAck { status: OrderStatus::Canceled, order, .. } if order == it.order));
        let (ev, _) = run(ReplyKind::CancelAll, 204, "", &[]);
        assert!(matches!(
            ev[0],
            EventBody::OrderAck {
                client: ClientRef(0),
                status: OrderStatus::Canceled,
                ..
            }
        ));
    }

    #[test]
    fn batches_answer_in_request_order() {
        let items = [item(1, ""), item(2, ""), item(3, "")];
        // Item 2 failed; the reply lists 3 before 1 (matched by client id).
        let body = format!(
            r#"{{"orders":[
            {{"order_id":"{OID2}","client_order_id":"kmm-0000000000000003","fill_count":"0.00","remaining_count":"1.00"}},
            {{"client_order_id":"kmm-0000000000000002","order":null,"error":{{"code":"invalid_price","message":"x"}}}},
            {{"order_id":"{OID}","client_order_id":"kmm-0000000000000001","fill_count":"0.00","remaining_count":"1.00"}}]}}"#
        );
        let (ev, r) = run(ReplyKind::BatchCreate, 201, &body, &items);
        assert_eq!(r, Ok(()));
        let clients: Vec<_> = ev
            .iter()
            .map(|e| match *e {
                EventBody::OrderAck { client, .. } | EventBody::OrderReject { client, .. } => client.0,
                _ => 0,
            })
            .collect();
        assert_eq!(clients, [1, 2, 3]);
        assert!(matches!(
            ev[1],
            EventBody::OrderReject {
                reason: RejectReason::InvalidPrice,
                http_status: 201,
                ..
            }
        ));
        assert!(matches!(ev[0], EventBody::OrderAck { order, .. } if order == OrderId::parse(OID.as_bytes()).unwrap()));
        // A short reply: the missing item is still answered.
        let body = format!(r#"{{"orders":[{{"order_id":"{OID}","remaining_count":"1.00"}}]}}"#);
        let (ev, r) = run(ReplyKind::BatchCreate, 201, &body, &items[..2]);
        assert_eq!(r, Err(ReplyError::MissingItems));
        assert_eq!(ev.len(), 2);
        let cancels = [item(1, OID), item(2, OID2)];
        let body = format!(
            r#"{{"orders":[{{"order_id":"{OID2}","reduced_by":"0.00","error":{{"code":"not_found","message":"m"}}}},{{"order_id":"{OID}","reduced_by":"5.00","ts_ms":3}}]}}"#
        );
        let (ev, r) = run(ReplyKind::BatchCancel, 200, &body, &cancels);
        assert_eq!(r, Ok(()));
        assert!(matches!(
            ev[0],
            EventBody::OrderAck {
                client: ClientRef(1),
                status: OrderStatus::Canceled,
                ..
            }
        ));
        assert!(matches!(
            ev[1],
            EventBody::OrderReject {
                client: ClientRef(2),
                reason: RejectReason::NotFound,
                ..
            }
        ));
    }

    #[test]
    fn account_limits() {
        let (r, w) = parse_account_limits(
            br#"{"usage_tier":"basic","read":{"refill_rate":200,"bucket_capacity":400},"write":{"refill_rate":100,"bucket_capacity":100},"grants":[]}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Some(Budget {
                rate_per_s: 200,
                capacity: 400
            })
        );
        assert_eq!(
            w,
            Some(Budget {
                rate_per_s: 100,
                capacity: 100
            })
        );
        let (r, w) = parse_account_limits(
            br#"{"read":{"refill_rate":null,"bucket_capacity":null},"write":{"refill_rate":null,"bucket_capacity":null}}"#,
        )
        .unwrap();
        assert_eq!((r, w), (None, None));
        let (_, w) = parse_account_limits(br#"{"read_limit":20,"write_limit":10}"#).unwrap();
        assert_eq!(
            w,
            Some(Budget {
                rate_per_s: 100,
                capacity: 100
            })
        );
    }
}
