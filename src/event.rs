//! The two message types that cross the rings: [`Event`] (io thread to strategy) and
//! [`Command`] (strategy to io thread).
//!
//! Both are `Copy`, fixed-size and allocation-free, so a ring slot holds one by value and the
//! hot path never touches the heap. Variable-length exchange messages are split: an order-book
//! snapshot arrives as `BookClear`, one `BookLevel` per level, then `BookSnapshotEnd`.
//! Book prices are always on the YES scale: a NO bid at p is carried as a YES ask at 1 - p.

pub use kalshi_proto::market::MarketStatus;
pub use kalshi_proto::order::{OrderStatus, TimeInForce};
pub use kalshi_proto::units::{Money, Price, Qty};
pub use kalshi_proto::Side;

/// A market's small index, interned from its ticker at subscribe time.
pub type MarketIdx = u16;

/// kmm's own order reference, sent as the `client_order_id` (see [`ClientRef::write`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ClientRef(pub u64);

impl ClientRef {
    pub const PREFIX: &'static [u8] = b"kmm-";
    /// Wire length of a client order id: "kmm-" and 16 hex digits.
    pub const WIRE_LEN: usize = 20;

    /// Writes the wire form into `out` (exactly [`ClientRef::WIRE_LEN`] bytes).
    #[inline]
    pub fn write(self, out: &mut [u8; Self::WIRE_LEN]) {
        out[..4].copy_from_slice(Self::PREFIX);
        out[4..12].copy_from_slice(&hex8((self.0 >> 32) as u32).to_be_bytes());
        out[12..].copy_from_slice(&hex8(self.0 as u32).to_be_bytes());
    }

    /// Parses the wire form; anything else (another client's id, or none) is `None`.
    pub fn parse(text: &[u8]) -> Option<ClientRef> {
        if text.len() != Self::WIRE_LEN || !text.starts_with(Self::PREFIX) {
            return None;
        }
        let mut v = 0u64;
        for &b in &text[4..] {
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            v = (v << 4) | u64::from(d);
        }
        Some(ClientRef(v))
    }
}

/// The exchange's order id (a UUID), as 128 bits so it fits a ring slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct OrderId(pub u128);

impl OrderId {
    pub const WIRE_LEN: usize = 36;

    /// Parses "8-4-4-4-12" hex; `None` for anything else.
    pub fn parse(text: &[u8]) -> Option<OrderId> {
        if text.len() != Self::WIRE_LEN {
            return None;
        }
        let mut v = 0u128;
        for (i, &b) in text.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b != b'-' {
                    return None;
                }
                continue;
            }
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return None,
            };
            v = (v << 4) | u128::from(d);
        }
        Some(OrderId(v))
    }

    /// Writes the lower-case UUID form into `out`: an amend's request line carries one, so it
    /// is four branch-free eight-digit conversions, not a loop over 32 nibbles.
    pub fn write(self, out: &mut [u8; Self::WIRE_LEN]) {
        let digits = |shift: u32| hex8((self.0 >> shift) as u32).to_be_bytes();
        let (a, b, c, d) = (digits(96), digits(64), digits(32), digits(0));
        out[..8].copy_from_slice(&a);
        out[8] = b'-';
        out[9..13].copy_from_slice(&b[..4]);
        out[13] = b'-';
        out[14..18].copy_from_slice(&b[4..]);
        out[18] = b'-';
        out[19..23].copy_from_slice(&c[..4]);
        out[23] = b'-';
        out[24..28].copy_from_slice(&c[4..]);
        out[28..].copy_from_slice(&d);
    }
}

/// The exchange's trade id (a UUID) as 128 bits: the public trade and each side's fill in it
/// carry the same id, so the strategy can tell its own fills in the public tape. Two words, not
/// a `u128`, so it does not raise the event's alignment. Zero when the venue gave none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TradeId(pub [u64; 2]);

impl TradeId {
    pub const NONE: TradeId = TradeId([0, 0]);

    /// Parses the UUID form; `None` for anything else.
    pub fn parse(text: &[u8]) -> Option<TradeId> {
        OrderId::parse(text).map(|id| TradeId::from_u128(id.0))
    }

    #[inline]
    pub fn from_u128(v: u128) -> TradeId {
        TradeId([(v >> 64) as u64, v as u64])
    }

    #[inline]
    pub fn as_u128(self) -> u128 {
        (u128::from(self.0[0]) << 64) | u128::from(self.0[1])
    }

    #[inline]
    pub fn is_none(self) -> bool {
        self == TradeId::NONE
    }
}

/// Which feed (WebSocket session) an event's connectivity news is about. Each has its own
/// connectivity: losing the oracle is not losing Kalshi.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Feed {
    /// Kalshi's market data and our orders and fills.
    Kalshi,
    /// The external oracle (the seed's External_Oracle), read by alpha.
    Oracle,
}

/// Where an event came from and when: the subscription and its sequence number (so each
/// trade and delta is counted exactly once), the exchange's timestamp, and the TSC stamps of
/// the stages it went through on the io thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    /// WebSocket subscription id; 0 for REST replies and internal events.
    pub sid: u32,
    /// Sequence number within `sid`; 0 on unsequenced channels.
    pub seq: u64,
    /// Exchange timestamp in Unix milliseconds; 0 when the message has none.
    pub exchange_ts_ms: u64,
    /// TSC when the read that delivered the frame's last bytes returned.
    pub read_tsc: u64,
    /// TSC when the frame was deframed and decrypted.
    pub decoded_tsc: u64,
    /// TSC when the event was parsed and pushed.
    pub parsed_tsc: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    OrderbookDelta,
    Trade,
    Ticker,
    Fill,
    UserOrders,
    MarketPositions,
    MarketLifecycle,
}

/// Why the exchange refused an order request, as a plain enum for the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    InvalidPrice,
    InvalidOrder,
    InsufficientBalance,
    PostOnlyCross,
    FillOrKillInsufficient,
    MarketClosed,
    TradingPaused,
    RateLimited,
    NotFound,
    ServerError,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventBody {
    /// A snapshot begins: forget this market's book.
    BookClear {
        market: MarketIdx,
    },
    /// One level of a snapshot.
    BookLevel {
        market: MarketIdx,
        side: Side,
        price: Price,
        qty: Qty,
    },
    /// The snapshot is complete; the book is live again.
    BookSnapshotEnd {
        market: MarketIdx,
    },
    /// A change of resting quantity at one level; `own` when our own order caused it.
    BookDelta {
        market: MarketIdx,
        side: Side,
        price: Price,
        delta: Qty,
        own: bool,
    },
    /// A public trade; `taker` is the side that crossed (Bid: the taker bought YES).
    Trade {
        market: MarketIdx,
        yes_price: Price,
        qty: Qty,
        taker: Side,
        trade: TradeId,
    },
    /// Top of book and last trade as the exchange summarises them.
    Ticker {
        market: MarketIdx,
        yes_bid: Price,
        yes_ask: Price,
        last: Price,
    },
    /// One of our fills.
    Fill {
        market: MarketIdx,
        client: ClientRef,
        order: OrderId,
        side: Side,
        yes_price: Price,
        qty: Qty,
        is_taker: bool,
        fee: Money,
        post_position: Qty,
        /// The trade this fill was part of: the same id as the public trade's.
        trade: TradeId,
    },
    /// The state of one of our orders changed.
    OrderUpdate {
        market: MarketIdx,
        client: ClientRef,
        order: OrderId,
        status: OrderStatus,
        side: Side,
        price: Price,
        remaining: Qty,
        filled: Qty,
    },
    /// Our position in a market as the exchange holds it.
    Position {
        market: MarketIdx,
        position: Qty,
        realized_pnl: Money,
        fees_paid: Money,
    },
    /// The market moved through its lifecycle; `yes` is the result once it is determined.
    Lifecycle {
        market: MarketIdx,
        status: MarketStatus,
        yes: Option<bool>,
    },
    /// A REST order request succeeded.
    OrderAck {
        market: MarketIdx,
        client: ClientRef,
        order: OrderId,
        status: OrderStatus,
        filled: Qty,
        remaining: Qty,
    },
    /// A REST order request failed; nothing changed at the exchange.
    OrderReject {
        market: MarketIdx,
        client: ClientRef,
        reason: RejectReason,
        http_status: u16,
    },
    Subscribed {
        channel: Channel,
        sid: u32,
    },
    /// A sequence gap or a terminal subscription error: the market's book is stale until the
    /// snapshot that follows.
    Stale {
        market: MarketIdx,
        feed: Feed,
    },
    /// The exchange answered a command with an error code (Kalshi's WS error codes).
    WsError {
        code: u16,
        sid: u32,
    },
    /// A feed's session is up (for Kalshi: subscribed, and our open orders listed again).
    Connected {
        feed: Feed,
    },
    /// A feed's session dropped; it is being redialled.
    Disconnected {
        feed: Feed,
    },
    /// The oracle feed's probability for a market (the seed's External_Oracle), on the price
    /// scale: 5213 is 52.13%. `publish_ms` is the vendor's timestamp, Unix ms.
    Oracle {
        market: MarketIdx,
        probability: Price,
        publish_ms: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    pub stamp: Stamp,
    pub body: EventBody,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandBody {
    Place {
        market: MarketIdx,
        client: ClientRef,
        side: Side,
        price: Price,
        qty: Qty,
        tif: TimeInForce,
        post_only: bool,
    },
    Cancel {
        market: MarketIdx,
        client: ClientRef,
        order: OrderId,
    },
    /// Move to a new price and/or total size (loses queue priority unless it only shrinks).
    Amend {
        market: MarketIdx,
        client: ClientRef,
        order: OrderId,
        side: Side,
        price: Price,
        total: Qty,
    },
    /// Shrink in place, keeping queue priority.
    Decrease {
        market: MarketIdx,
        client: ClientRef,
        order: OrderId,
        reduce_to: Qty,
    },
    CancelAll,
    /// Ask for a fresh snapshot of a stale book.
    Resync {
        market: MarketIdx,
    },
}

/// A command and the stamps of the event that caused it, so the io thread can record
/// tick-to-order from the read that delivered the trigger to the write of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    pub body: CommandBody,
    pub cause: Stamp,
    pub dequeued_tsc: u64,
    pub decided_tsc: u64,
}

/// Eight lowercase hex digits of `x`, most significant in the high byte, computed in one
/// register (every order's client id is written on the hot path; a table loop took 16 loads).
#[inline]
fn hex8(x: u32) -> u64 {
    let mut v = u64::from(x);
    // Spread the nibbles one per byte: 0x1234abcd -> 0x01020304_0a0b0c0d.
    v = ((v & 0xffff_0000) << 16) | (v & 0xffff);
    v = ((v & 0x0000_ff00_0000_ff00) << 8) | (v & 0x0000_00ff_0000_00ff);
    v = ((v & 0x00f0_00f0_00f0_00f0) << 4) | (v & 0x000f_000f_000f_000f);
    // Bytes of 10 and up get the extra 0x27 that takes them from ':' to 'a'.
    let letters = ((v + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    v + 0x3030_3030_3030_3030 + letters * 0x27
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_stay_small() {
        // Ring slots are copied by value; keep them within two cache lines.
        assert!(std::mem::size_of::<Event>() <= 128, "{}", std::mem::size_of::<Event>());
        assert!(std::mem::size_of::<Command>() <= 128, "{}", std::mem::size_of::<Command>());
    }

    #[test]
    fn client_refs_round_trip() {
        let mut buf = [0u8; ClientRef::WIRE_LEN];
        for v in [0u64, 1, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210] {
            ClientRef(v).write(&mut buf);
            assert_eq!(ClientRef::parse(&buf), Some(ClientRef(v)));
            assert_eq!(std::str::from_utf8(&buf).unwrap(), format!("kmm-{v:016x}"));
        }
        // Every nibble value in every position, via a spread of pseudo-random ids.
        let mut v = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            v = v.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ClientRef(v).write(&mut buf);
            assert_eq!(std::str::from_utf8(&buf).unwrap(), format!("kmm-{v:016x}"));
        }
        assert_eq!(ClientRef::parse(b"someone-else"), None);
        assert_eq!(ClientRef::parse(b"kmm-000000000000000g"), None);
    }

    #[test]
    fn order_ids_round_trip() {
        let text = b"0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4";
        let id = OrderId::parse(text).unwrap();
        let mut out = [0u8; OrderId::WIRE_LEN];
        id.write(&mut out);
        assert_eq!(&out, text);
        // Every nibble value in every position, against the standard formatter.
        let mut v = 0x9e37_79b9_7f4a_7c15_0123_4567_89ab_cdefu128;
        for _ in 0..10_000 {
            v = v
                .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                .wrapping_add(0x5851_f42d_4c95_7f2d);
            OrderId(v).write(&mut out);
            let hex = format!("{v:032x}");
            let uuid = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
            assert_eq!(std::str::from_utf8(&out).unwrap(), uuid);
            assert_eq!(OrderId::parse(&out), Some(OrderId(v)));
        }
        assert_eq!(OrderId::parse(b"0b6e2a9a-0a11-41c0-4f77-2a9a1c021af"), None);
        assert_eq!(OrderId::parse(b"0b6e2a9a00a11-41c0-4f77-2a9a1c021af4"), None);
    }
}
