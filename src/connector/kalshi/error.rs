//! Why a WS frame produced no (or not all of its) events.
//!
//! Its own file because both the frame decoder and the number readers it calls report through
//! it, and the number readers are shared with the REST side.

use std::fmt;

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
