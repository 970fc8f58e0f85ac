//! Which side of the YES book a message means, however it says it: a NO price converted to a
//! YES ask, `book_side`, `outcome_side`, or the older contract-and-action pair; and the trade
//! id a trade or fill names. Small readers the decoder applies to every order-related field.

use crate::connector::kalshi::error::DecodeError;
use crate::event::{Price, Side, TradeId};

/// A NO bid at p is a YES ask at 1 - p; with `use_yes_price` Kalshi has already converted it.
#[inline]
pub(crate) fn yes_scale(no: bool, price: Price, use_yes_price: bool) -> (Side, Price) {
    match (no, use_yes_price) {
        (false, _) => (Side::Bid, price),
        (true, true) => (Side::Ask, price),
        (true, false) => (Side::Ask, price.complement()),
    }
}

#[inline]
pub(crate) fn side_is_no(side: Option<&[u8]>) -> Result<bool, DecodeError> {
    match side.ok_or(DecodeError::MissingField)? {
        b"yes" => Ok(false),
        b"no" => Ok(true),
        _ => Err(DecodeError::BadEnum),
    }
}

pub(crate) fn book_side(s: &[u8]) -> Result<Side, DecodeError> {
    match s {
        b"bid" => Ok(Side::Bid),
        b"ask" => Ok(Side::Ask),
        _ => Err(DecodeError::BadEnum),
    }
}

pub(crate) fn outcome_side(s: &[u8]) -> Result<Side, DecodeError> {
    match s {
        b"yes" => Ok(Side::Bid),
        b"no" => Ok(Side::Ask),
        _ => Err(DecodeError::BadEnum),
    }
}

/// The YES-book side of an order or fill: `book_side`, else `outcome_side` (a sell of YES is
/// reported as outcome NO), else the Era-A contract side and action.
pub(crate) fn direction(
    book: Option<&[u8]>,
    outcome: Option<&[u8]>,
    contract: Option<&[u8]>,
    action: Option<&[u8]>,
) -> Result<Side, DecodeError> {
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
/// A trade id when the message has a UUID one, else `NONE`: only own-fill recognition needs
/// it, and a fill must never be refused (and lost) for an id it cannot use.
#[inline]
pub(crate) fn trade_id(text: Option<&[u8]>) -> TradeId {
    text.and_then(TradeId::parse).unwrap_or_default()
}
