//! Wire identifiers.
//!
//! Kalshi identifies orders, trades and fills with UUID strings. Internally they are dense
//! integers; the wire form is a reversible scramble of the integer, so ids look like Kalshi's,
//! are deterministic for a seed (the journal stays byte-identical), and parse back without a map.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    Order = 0x0a11,
    Trade = 0x7ade,
    Fill = 0xf111,
    Market = 0x3a7c,
}

const MULT: u64 = 0x9E37_79B9_7F4A_7C15; // odd, so invertible mod 2^64
const MASK: u64 = 0xD1B5_4A32_D192_ED03;

fn inverse_mult() -> u64 {
    // Newton iteration for the inverse of an odd number mod 2^64.
    let mut x: u64 = MULT;
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(MULT.wrapping_mul(x)));
    }
    x
}

pub fn encode(kind: IdKind, id: u64) -> String {
    let x = id.wrapping_mul(MULT) ^ MASK;
    let kind = kind as u16;
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (x >> 32) as u32 ^ 0x5eed_0000,
        kind,
        (x >> 20) & 0xfff,
        (x >> 48) as u16 ^ ((x & 0xffff) as u16),
        x & 0xffff_ffff_ffff
    )
}

pub fn decode(kind: IdKind, text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split('-').collect();
    if parts.len() != 5 || parts[0].len() != 8 || parts[1].len() != 4 || parts[2].len() != 4 || parts[3].len() != 4 || parts[4].len() != 12
    {
        return None;
    }
    let hi = u32::from_str_radix(parts[0], 16).ok()? ^ 0x5eed_0000;
    if u16::from_str_radix(parts[1], 16).ok()? != kind as u16 {
        return None;
    }
    let lo48 = u64::from_str_radix(parts[4], 16).ok()?;
    let x = (u64::from(hi) << 32) | (lo48 & 0xffff_ffff);
    // The redundant groups must agree, so a typo is "not found" rather than another order.
    if (lo48 >> 32) != (x >> 32) & 0xffff {
        return None;
    }
    if encode(kind, (x ^ MASK).wrapping_mul(inverse_mult())) != text.to_ascii_lowercase() {
        return None;
    }
    Some((x ^ MASK).wrapping_mul(inverse_mult()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_others() {
        for id in [0u64, 1, 2, 41, 1 << 33, u64::MAX / 3] {
            let s = encode(IdKind::Order, id);
            assert_eq!(s.len(), 36);
            assert_eq!(decode(IdKind::Order, &s), Some(id));
            assert_eq!(decode(IdKind::Trade, &s), None);
        }
        assert_ne!(encode(IdKind::Order, 1), encode(IdKind::Order, 2));
        assert_eq!(decode(IdKind::Order, "not-a-uuid"), None);
        let mut s = encode(IdKind::Order, 7);
        s.replace_range(35..36, if s.ends_with('0') { "1" } else { "0" });
        assert_eq!(decode(IdKind::Order, &s), None);
    }
}
