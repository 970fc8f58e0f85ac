//! The borrowed fields of any order reply, and the serde seeds that read them.
//!
//! Apart from [`super::replies`] so the mapping from replies to events reads on its own; this
//! is the allocation-free reader underneath (raw text of numbers and ids, like the WS decoder).

use crate::connector::kalshi::rest::replies::ReplyError;
use crate::event::{ClientRef, OrderId, OrderStatus, Qty};
use kalshi_proto::units::parse_scaled;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

/// The fields kmm reads from any order-shaped reply object, as raw JSON text borrowed from
/// the body (strings with their quotes). Legacy bodies nest the order (`{"order":{..}}`): its
/// fields are read into the same struct.
#[derive(Clone, Copy, Default)]
pub(crate) struct Fields<'a> {
    pub(crate) order_id: Option<&'a [u8]>,
    pub(crate) client_order_id: Option<&'a [u8]>,
    pub(crate) status: Option<&'a [u8]>,
    pub(crate) fill_count: Option<&'a [u8]>,
    pub(crate) fill_count_fp: Option<&'a [u8]>,
    pub(crate) remaining_count: Option<&'a [u8]>,
    pub(crate) remaining_count_fp: Option<&'a [u8]>,
    pub(crate) reduced_by: Option<&'a [u8]>,
    pub(crate) reduced_by_fp: Option<&'a [u8]>,
    pub(crate) ts_ms: Option<&'a [u8]>,
    /// `Some(code)` when an error is present; the code itself may be absent.
    pub(crate) error: Option<Option<&'a [u8]>>,
}

/// The contents of a JSON string token, or the text of any other scalar.
#[inline]
pub(crate) fn text(raw: &[u8]) -> &[u8] {
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
pub(crate) fn count(raw: Option<&[u8]>) -> Result<Option<Qty>, ReplyError> {
    match raw {
        None => Ok(None),
        Some(b"null") => Ok(None),
        Some(r) => parse_scaled(text(r), 2).map(|v| Some(Qty(v))).map_err(|_| ReplyError::BadNumber),
    }
}

impl<'a> Fields<'a> {
    pub(crate) fn order_id(&self) -> Result<Option<OrderId>, ReplyError> {
        match self.order_id {
            None => Ok(None),
            Some(r) if is_null(Some(r)) => Ok(None),
            Some(r) => OrderId::parse(text(r)).map(Some).ok_or(ReplyError::BadId),
        }
    }

    pub(crate) fn client(&self) -> Option<ClientRef> {
        self.client_order_id.and_then(|r| ClientRef::parse(text(r)))
    }

    /// The reply echoes a client id of ours that is not the request's.
    pub(crate) fn client_mismatch(&self, expected: ClientRef) -> bool {
        self.client().is_some_and(|c| c != expected)
    }

    pub(crate) fn filled(&self) -> Result<Option<Qty>, ReplyError> {
        count(self.fill_count_fp.or(self.fill_count))
    }

    pub(crate) fn remaining(&self) -> Result<Option<Qty>, ReplyError> {
        count(self.remaining_count_fp.or(self.remaining_count))
    }

    pub(crate) fn reduced_by(&self) -> Result<Option<Qty>, ReplyError> {
        count(self.reduced_by_fp.or(self.reduced_by))
    }

    pub(crate) fn status(&self) -> Result<Option<OrderStatus>, ReplyError> {
        Ok(match self.status.map(text) {
            None | Some(b"null") | Some(b"") => None,
            Some(b"resting") | Some(b"pending") => Some(OrderStatus::Resting),
            Some(b"canceled") | Some(b"cancelled") => Some(OrderStatus::Canceled),
            Some(b"executed") => Some(OrderStatus::Executed),
            Some(_) => return Err(ReplyError::WrongType),
        })
    }

    pub(crate) fn ts_ms(&self) -> Result<Option<u64>, ReplyError> {
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

    pub(crate) fn error_code(&self) -> Option<&'a [u8]> {
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

pub(crate) fn raw<'de, A: MapAccess<'de>>(map: &mut A) -> Result<&'de [u8], A::Error> {
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

pub(crate) fn parse_fields(body: &[u8]) -> Result<Fields<'_>, ReplyError> {
    let mut f = Fields::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    (&mut de).deserialize_map(FieldsSeed { out: &mut f }).map_err(json_error)?;
    de.end().map_err(json_error)?;
    Ok(f)
}

/// Calls `item` for each element of the body's `orders` array, in order.
pub(crate) fn for_each_item<'a>(body: &'a [u8], item: impl FnMut(&Fields<'a>)) -> Result<(), ReplyError> {
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
