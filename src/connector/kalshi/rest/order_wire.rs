//! Prebuilt order wires: an order's whole request written once, then patched in place.
//!
//! [`OrderSpec`] describes one order; [`OrderWire`] keeps its request bytes so a resend or an
//! amend only rewrites the changed digits.

use crate::connector::kalshi::interner::{same_bytes, Interner};
use crate::connector::kalshi::rest::encode::{tif_name, write_amend_body, write_order, OrderShape, SelfTradePrevention};
use crate::connector::kalshi::rest::head::write_head_to_timestamp;
use crate::connector::kalshi::rest::request::{Method, ORDERS_PATH};
use crate::connector::kalshi::write::{push_qty, push_str, u64_digits};
use crate::event::{ClientRef, OrderId, Price, Qty, Side, TimeInForce};

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

/// Which request an [`OrderWire`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireKind {
    /// `POST .../events/orders`: [`encode_create`](super::encode::encode_create)'s request.
    Create,
    /// `POST .../events/orders/{order_id}/amend`: [`encode_amend`](super::encode::encode_amend)'s request, the order id
    /// patched into the request line.
    Amend,
}

/// One order request's whole HTTP/1.1 bytes as two prebuilt runs, for one market, side and
/// set of order flags: writing an order is three copies (the head, the signature lines, the
/// rest up to the count) and a few small patches (an amend's order id, `Content-Length`,
/// client id, price, count). The body puts the variable-width count last so nothing after it
/// moves; the order id, the client id and a price below $1 ("0.dddd") have fixed widths.
///
/// The bytes are those of [`encode_create`](super::encode::encode_create) or [`encode_amend`](super::encode::encode_amend) framed by
/// `head::write_http_request`, with the body's keys in another order (a property test holds
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
pub(crate) const AMEND_TAIL: &[u8] = b"/amend";

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
            WireKind::Create => write_head_to_timestamp(&mut self.head, Method::Post, ORDERS_PATH, &self.host, &self.key_id),
            WireKind::Amend => {
                const LEN: usize = ORDERS_PATH.len() + 1 + OrderId::WIRE_LEN + AMEND_TAIL.len();
                let mut path = [b'0'; LEN];
                path[..ORDERS_PATH.len()].copy_from_slice(ORDERS_PATH);
                path[ORDERS_PATH.len()] = b'/';
                path[LEN - AMEND_TAIL.len()..].copy_from_slice(AMEND_TAIL);
                write_head_to_timestamp(&mut self.head, Method::Post, &path, &self.host, &self.key_id);
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
