//! Exact decimal units of the Kalshi wire protocol.
//!
//! Kalshi quotes prices as dollar strings with up to four decimals and counts with two. Binary
//! floating point cannot hold 0.01 exactly, so every quantity here is an integer in a fixed
//! decimal scale, parsed straight from the string and printed back without ever touching a float.
//! A price times a count lands exactly in [`Money`] (1e-4 * 1e-2 = 1e-6 dollars).

use std::fmt;

/// A price in units of $0.0001 (0..=10_000 is $0 to $1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Price(pub u32);

/// A contract count in units of 0.01 contract. Signed so that deltas and positions share it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Qty(pub i64);

/// Money in micro-dollars ($0.000001). Exact for any price times count.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Money(pub i64);

pub const PRICE_SCALE: u32 = 10_000;
pub const QTY_SCALE: i64 = 100;
pub const MONEY_SCALE: i64 = 1_000_000;
/// One dollar: the payout of a winning contract.
pub const ONE_DOLLAR: Price = Price(PRICE_SCALE);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DecimalError {
    Empty,
    NotANumber,
    TooManyDecimals,
    OutOfRange,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecimalError::Empty => "empty number",
            DecimalError::NotANumber => "not a decimal number",
            DecimalError::TooManyDecimals => "more decimal places than the field allows",
            DecimalError::OutOfRange => "number out of range",
        })
    }
}

impl std::error::Error for DecimalError {}

/// Parses an optionally signed decimal into an integer scaled by `10^places`.
/// Extra decimal digits are accepted only when they are zeros ("0.560000" is a valid price).
pub fn parse_scaled(text: &[u8], places: u32) -> Result<i64, DecimalError> {
    let (negative, digits) = match text.first() {
        None => return Err(DecimalError::Empty),
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        Some(_) => (false, text),
    };
    if digits.is_empty() {
        return Err(DecimalError::Empty);
    }
    let mut value: i64 = 0;
    let mut seen_digit = false;
    let mut fraction_digits: Option<u32> = None;
    for &byte in digits {
        match byte {
            b'0'..=b'9' => {
                seen_digit = true;
                let digit = i64::from(byte - b'0');
                match fraction_digits {
                    Some(n) if n >= places => {
                        if digit != 0 {
                            return Err(DecimalError::TooManyDecimals);
                        }
                        fraction_digits = Some(n + 1);
                        continue;
                    }
                    Some(n) => fraction_digits = Some(n + 1),
                    None => {}
                }
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(digit))
                    .ok_or(DecimalError::OutOfRange)?;
            }
            b'.' if fraction_digits.is_none() => fraction_digits = Some(0),
            _ => return Err(DecimalError::NotANumber),
        }
    }
    if !seen_digit {
        return Err(DecimalError::NotANumber);
    }
    let used = fraction_digits.unwrap_or(0).min(places);
    let scale = 10i64.pow(places - used);
    let value = value.checked_mul(scale).ok_or(DecimalError::OutOfRange)?;
    Ok(if negative { -value } else { value })
}

/// Writes `value / 10^places` with exactly `places` decimals.
pub fn write_scaled(out: &mut String, value: i64, places: u32) {
    use fmt::Write;
    let scale = 10u64.pow(places);
    let magnitude = value.unsigned_abs();
    if value < 0 {
        out.push('-');
    }
    let _ = write!(out, "{}", magnitude / scale);
    if places > 0 {
        let _ = write!(out, ".{:0width$}", magnitude % scale, width = places as usize);
    }
}

pub fn format_scaled(value: i64, places: u32) -> String {
    let mut out = String::with_capacity(16);
    write_scaled(&mut out, value, places);
    out
}

impl Price {
    pub fn parse(text: &str) -> Result<Price, DecimalError> {
        let raw = parse_scaled(text.as_bytes(), 4)?;
        if !(0..=i64::from(PRICE_SCALE)).contains(&raw) {
            return Err(DecimalError::OutOfRange);
        }
        Ok(Price(raw as u32))
    }
    /// From Era-A integer cents (1..=99 in requests).
    pub fn from_cents(cents: i64) -> Option<Price> {
        (0..=100).contains(&cents).then(|| Price(cents as u32 * 100))
    }
    /// The price of the other leg: a NO bid at p is a YES offer at 1 - p.
    pub fn complement(self) -> Price {
        Price(PRICE_SCALE - self.0)
    }
    /// "0.5600": the 4-decimal dollar string Kalshi uses for prices.
    pub fn dollars(self) -> String {
        format_scaled(i64::from(self.0), 4)
    }
    /// Whole cents, rounded to nearest, for Era-A integer fields on sub-penny prices.
    pub fn cents_rounded(self) -> i64 {
        (i64::from(self.0) + 50) / 100
    }
}

impl Qty {
    pub const ZERO: Qty = Qty(0);
    pub fn parse(text: &str) -> Result<Qty, DecimalError> {
        Ok(Qty(parse_scaled(text.as_bytes(), 2)?))
    }
    pub fn from_contracts(n: i64) -> Qty {
        Qty(n * QTY_SCALE)
    }
    /// For counts a client sent: `None` when the count cannot be represented.
    pub fn checked_from_contracts(n: i64) -> Option<Qty> {
        n.checked_mul(QTY_SCALE).map(Qty)
    }
    /// "10.00": the 2-decimal `_fp` string.
    pub fn fp(self) -> String {
        format_scaled(self.0, 2)
    }
    /// Whole contracts, truncated toward zero, for Era-A integer fields.
    pub fn whole(self) -> i64 {
        self.0 / QTY_SCALE
    }
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
    pub fn abs(self) -> Qty {
        Qty(self.0.abs())
    }
    pub fn min(self, other: Qty) -> Qty {
        Qty(self.0.min(other.0))
    }
}

impl std::ops::Add for Qty {
    type Output = Qty;
    fn add(self, rhs: Qty) -> Qty {
        Qty(self.0 + rhs.0)
    }
}
impl std::ops::Sub for Qty {
    type Output = Qty;
    fn sub(self, rhs: Qty) -> Qty {
        Qty(self.0 - rhs.0)
    }
}
impl std::ops::AddAssign for Qty {
    fn add_assign(&mut self, rhs: Qty) {
        self.0 += rhs.0
    }
}
impl std::ops::SubAssign for Qty {
    fn sub_assign(&mut self, rhs: Qty) {
        self.0 -= rhs.0
    }
}
impl std::ops::Neg for Qty {
    type Output = Qty;
    fn neg(self) -> Qty {
        Qty(-self.0)
    }
}

impl Money {
    pub const ZERO: Money = Money(0);
    /// Cost of `qty` contracts at `price`: exact, in micro-dollars.
    pub fn notional(price: Price, qty: Qty) -> Money {
        Money(i64::from(price.0) * qty.0)
    }
    pub fn from_dollars_str(text: &str) -> Result<Money, DecimalError> {
        Ok(Money(parse_scaled(text.as_bytes(), 6)?))
    }
    pub fn from_cents(cents: i64) -> Money {
        Money(cents * 10_000)
    }
    /// For amounts a client sent: `None` when the amount cannot be represented.
    pub fn checked_from_cents(cents: i64) -> Option<Money> {
        cents.checked_mul(10_000).map(Money)
    }
    /// Dollar string with `places` decimals (Kalshi uses 4 on REST, 6 on some WS fields).
    /// Truncates toward zero below the shown precision.
    pub fn dollars(self, places: u32) -> String {
        let shown = self.0 / 10i64.pow(6 - places);
        format_scaled(shown, places)
    }
    /// Whole cents, floored: what an Era-A integer balance shows.
    pub fn cents_floor(self) -> i64 {
        self.0.div_euclid(10_000)
    }
    /// Centi-cents ($0.0001), floored: Era-A units of market_position money fields.
    pub fn centicents_floor(self) -> i64 {
        self.0.div_euclid(100)
    }
}

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0 + rhs.0)
    }
}
impl std::ops::Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money(self.0 - rhs.0)
    }
}
impl std::ops::AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        self.0 += rhs.0
    }
}
impl std::ops::SubAssign for Money {
    fn sub_assign(&mut self, rhs: Money) {
        self.0 -= rhs.0
    }
}
impl std::ops::Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dollars())
    }
}
impl fmt::Display for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fp())
    }
}
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dollars(6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prices_without_floats() {
        assert_eq!(Price::parse("0.56").unwrap(), Price(5600));
        assert_eq!(Price::parse("0.5600").unwrap(), Price(5600));
        assert_eq!(Price::parse("0.0015").unwrap(), Price(15));
        assert_eq!(Price::parse("1").unwrap(), Price(10_000));
        assert_eq!(Price::parse("0.560000").unwrap(), Price(5600));
        assert_eq!(Price::parse(".5").unwrap(), Price(5000));
        assert_eq!(Price::parse("0.56001"), Err(DecimalError::TooManyDecimals));
        assert_eq!(Price::parse("1.0001"), Err(DecimalError::OutOfRange));
        assert_eq!(Price::parse("-0.1"), Err(DecimalError::OutOfRange));
        assert_eq!(Price::parse("abc"), Err(DecimalError::NotANumber));
        assert_eq!(Price::parse("0..1"), Err(DecimalError::NotANumber));
        assert_eq!(Price::parse("."), Err(DecimalError::NotANumber));
        assert_eq!(Price::parse(""), Err(DecimalError::Empty));
    }

    #[test]
    fn parses_counts_and_signs() {
        assert_eq!(Qty::parse("10.00").unwrap(), Qty(1000));
        assert_eq!(Qty::parse("-7.5").unwrap(), Qty(-750));
        assert_eq!(Qty::parse("74.77").unwrap(), Qty(7477));
        assert_eq!(Qty::parse("0.001"), Err(DecimalError::TooManyDecimals));
        assert_eq!(Qty::parse("99999999999999999999"), Err(DecimalError::OutOfRange));
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(Price(5600).dollars(), "0.5600");
        assert_eq!(Price(10_000).dollars(), "1.0000");
        assert_eq!(Qty(-750).fp(), "-7.50");
        assert_eq!(Money(-1).dollars(6), "-0.000001");
        assert_eq!(Money(175_000).dollars(4), "0.1750");
        for raw in [0i64, 1, 99, 100, 12345, -5, -12345] {
            assert_eq!(Qty::parse(&Qty(raw).fp()).unwrap(), Qty(raw));
        }
    }

    #[test]
    fn notional_is_exact() {
        // 0.07 cannot be represented in binary; 7 contracts at 1 cent is exactly 7 cents.
        assert_eq!(Money::notional(Price(100), Qty(700)), Money::from_cents(7));
        assert_eq!(Money::notional(Price(5600), Qty(1000)).dollars(4), "5.6000");
    }
}

/// Prices and counts travel as Kalshi's strings; a JSON number is accepted too, because some
/// clients send them (its decimal text is parsed, never its float value).
mod serde_impls {
    use super::{Price, Qty};
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    struct DecimalText;

    impl<'de> Visitor<'de> for DecimalText {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a decimal string or number")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            // Rust prints the shortest text that round-trips, e.g. 0.56 -> "0.56".
            Ok(v.to_string())
        }
    }

    impl serde::Serialize for Price {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&self.dollars())
        }
    }
    impl<'de> serde::Deserialize<'de> for Price {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Price, D::Error> {
            let text = d.deserialize_any(DecimalText)?;
            Price::parse(&text).map_err(|e| de::Error::custom(format!("price {text:?}: {e}")))
        }
    }
    impl serde::Serialize for Qty {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&self.fp())
        }
    }
    impl<'de> serde::Deserialize<'de> for Qty {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Qty, D::Error> {
            let text = d.deserialize_any(DecimalText)?;
            Qty::parse(&text).map_err(|e| de::Error::custom(format!("count {text:?}: {e}")))
        }
    }
}
