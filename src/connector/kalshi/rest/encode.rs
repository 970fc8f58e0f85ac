//! Order body encoders: create, cancel, amend, decrease, batches and cancel-all.
//!
//! Hot path: after warm-up every `encode_*` allocates nothing, takes no lock and formats no
//! text. A create reuses the constant runs of the last create body (see `CreateTemplate`).

use crate::connector::kalshi::interner::{same_bytes, Interner};
use crate::connector::kalshi::rest::order_wire::{OrderSpec, AMEND_TAIL};
use crate::connector::kalshi::rest::request::{Method, RestRequest, BATCH_PATH, ORDERS_PATH};
use crate::connector::kalshi::write::{push_client, push_order_id, push_order_path, push_price, push_qty, push_str};
use crate::event::{ClientRef, MarketIdx, OrderId, Price, Qty, Side, TimeInForce};

/// The constant runs of the last create body, kept apart from `body` (which callers may
/// touch): a market maker sends one market and side over and over, so only the client id,
/// count and price change, and the escaped ticker and enum names are copied, not rewritten.
#[derive(Clone, Debug)]
pub(crate) struct CreateTemplate {
    shape: OrderShape,
    /// `{"ticker":"…","client_order_id":"`
    head: Vec<u8>,
    /// `","side":"…","count":"`
    mid: Vec<u8>,
    /// `","time_in_force":"…","self_trade_prevention_type":"…","post_only":…}`
    tail: Vec<u8>,
}

impl CreateTemplate {
    pub(crate) fn new() -> CreateTemplate {
        CreateTemplate {
            shape: OrderShape::new(),
            // Room for a longest ticker escaped entirely as `\u00XX`.
            head: Vec::with_capacity(64 + 6 * Interner::MAX_TICKER),
            mid: Vec::with_capacity(64),
            tail: Vec::with_capacity(128),
        }
    }

    #[cold]
    fn build(&mut self, o: &OrderSpec<'_>) {
        self.shape.set(o);
        self.head.clear();
        self.head.extend_from_slice(b"{\"ticker\":");
        push_str(&mut self.head, o.ticker);
        self.head.extend_from_slice(b",\"client_order_id\":\"");
        self.mid.clear();
        self.mid.extend_from_slice(b"\",\"side\":\"");
        self.mid.extend_from_slice(o.side.name().as_bytes());
        self.mid.extend_from_slice(b"\",\"count\":\"");
        self.tail.clear();
        self.tail.extend_from_slice(b"\",\"time_in_force\":\"");
        self.tail.extend_from_slice(tif_name(o.tif).as_bytes());
        self.tail.extend_from_slice(b"\",\"self_trade_prevention_type\":\"");
        self.tail.extend_from_slice(o.stp.name().as_bytes());
        self.tail.extend_from_slice(if o.post_only {
            b"\",\"post_only\":true}"
        } else {
            b"\",\"post_only\":false}"
        });
    }
}

/// What a prebuilt order request is for: the market and the order's constant flags. Only the client
/// id, price and count differ between the orders it serves.
#[derive(Clone, Debug)]
pub(crate) struct OrderShape {
    pub(crate) valid: bool,
    pub(crate) ticker: Vec<u8>,
    pub(crate) side: Side,
    tif: TimeInForce,
    post_only: bool,
    stp: SelfTradePrevention,
}

impl OrderShape {
    pub(crate) fn new() -> OrderShape {
        OrderShape {
            valid: false,
            ticker: Vec::with_capacity(Interner::MAX_TICKER),
            side: Side::Bid,
            tif: TimeInForce::GoodTillCanceled,
            post_only: false,
            stp: SelfTradePrevention::default(),
        }
    }

    #[inline]
    pub(crate) fn matches(&self, o: &OrderSpec<'_>) -> bool {
        self.valid
            && self.side == o.side
            && self.tif == o.tif
            && self.post_only == o.post_only
            && self.stp == o.stp
            && same_bytes(&self.ticker, o.ticker)
    }

    pub(crate) fn set(&mut self, o: &OrderSpec<'_>) {
        self.ticker.clear();
        self.ticker.extend_from_slice(o.ticker);
        (self.side, self.tif, self.post_only, self.stp) = (o.side, o.tif, o.post_only, o.stp);
        self.valid = true;
    }
}

/// The exchange's own type: same variants and wire names on both sides of the protocol.
pub use kalshi_proto::order::SelfTradePrevention;

pub fn tif_name(t: TimeInForce) -> &'static str {
    match t {
        TimeInForce::GoodTillCanceled => "good_till_canceled",
        TimeInForce::ImmediateOrCancel => "immediate_or_cancel",
        TimeInForce::FillOrKill => "fill_or_kill",
    }
}
/// `POST /trade-api/v2/portfolio/events/orders`.
pub fn encode_create(req: &mut RestRequest, order: &OrderSpec<'_>) {
    req.start(Method::Post, ORDERS_PATH);
    let t = &mut req.create;
    if !t.shape.matches(order) {
        t.build(order);
    }
    // The same bytes as `write_order`, a property test holds them to it.
    let b = &mut req.body;
    b.extend_from_slice(&t.head);
    push_client(b, order.client);
    b.extend_from_slice(&t.mid);
    push_qty(b, order.qty);
    b.extend_from_slice(b"\",\"price\":\"");
    push_price(b, order.price);
    b.extend_from_slice(&t.tail);
}

/// `DELETE /trade-api/v2/portfolio/events/orders/{order_id}` (no body).
pub fn encode_cancel(req: &mut RestRequest, order: OrderId) {
    req.start(Method::Delete, ORDERS_PATH);
    push_order_path(&mut req.path, order, b"");
}

/// `POST .../events/orders/{order_id}/amend`: new price and total count. `client` is the
/// order's own client id (Kalshi rejects a mismatch, which catches a stale order map).
pub fn encode_amend(req: &mut RestRequest, order: OrderId, ticker: &[u8], client: ClientRef, side: Side, price: Price, total: Qty) {
    req.start(Method::Post, ORDERS_PATH);
    push_order_path(&mut req.path, order, AMEND_TAIL);
    write_amend_body(&mut req.body, ticker, client, side, price, total);
}

pub(crate) fn write_amend_body(b: &mut Vec<u8>, ticker: &[u8], client: ClientRef, side: Side, price: Price, total: Qty) {
    b.extend_from_slice(b"{\"ticker\":");
    push_str(b, ticker);
    b.extend_from_slice(b",\"side\":\"");
    b.extend_from_slice(side.name().as_bytes());
    b.extend_from_slice(b"\",\"price\":\"");
    push_price(b, price);
    b.extend_from_slice(b"\",\"count\":\"");
    push_qty(b, total);
    b.extend_from_slice(b"\",\"client_order_id\":\"");
    push_client(b, client);
    b.extend_from_slice(b"\"}");
}

/// `POST .../events/orders/{order_id}/decrease` to `reduce_to` (keeps queue priority).
pub fn encode_decrease(req: &mut RestRequest, order: OrderId, reduce_to: Qty) {
    req.start(Method::Post, ORDERS_PATH);
    push_order_path(&mut req.path, order, b"/decrease");
    req.body.extend_from_slice(b"{\"reduce_to\":\"");
    push_qty(&mut req.body, reduce_to);
    req.body.extend_from_slice(b"\"}");
}

/// `POST .../events/orders/batched`. The caller keeps `orders` within [`MAX_BATCH`](super::request::MAX_BATCH).
pub fn encode_batch_create(req: &mut RestRequest, orders: &[OrderSpec<'_>]) {
    req.start(Method::Post, BATCH_PATH);
    req.body.extend_from_slice(b"{\"orders\":[");
    for (i, o) in orders.iter().enumerate() {
        if i > 0 {
            req.body.push(b',');
        }
        write_order(&mut req.body, o);
    }
    req.body.extend_from_slice(b"]}");
}

/// `DELETE .../events/orders/batched` with a JSON body. The caller keeps `orders` within
/// [`MAX_BATCH`](super::request::MAX_BATCH).
pub fn encode_batch_cancel(req: &mut RestRequest, orders: &[OrderId]) {
    req.start(Method::Delete, BATCH_PATH);
    req.body.extend_from_slice(b"{\"orders\":[");
    for (i, &o) in orders.iter().enumerate() {
        if i > 0 {
            req.body.push(b',');
        }
        req.body.extend_from_slice(b"{\"order_id\":\"");
        push_order_id(&mut req.body, o);
        req.body.extend_from_slice(b"\"}");
    }
    req.body.extend_from_slice(b"]}");
}

/// `DELETE /trade-api/v2/portfolio/events/orders`: cancel every resting order.
pub fn encode_cancel_all(req: &mut RestRequest) {
    req.start(Method::Delete, ORDERS_PATH);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The command names a market that was never interned.
    UnknownMarket,
    /// The command is not a REST request (`Resync` is a WebSocket `get_snapshot`).
    NotRest,
}

/// The REST request for a strategy command.
pub fn encode_command(
    req: &mut RestRequest,
    interner: &Interner,
    cmd: &crate::event::CommandBody,
    stp: SelfTradePrevention,
) -> Result<(), EncodeError> {
    use crate::event::CommandBody as C;
    let ticker = |m: MarketIdx| interner.ticker(m).ok_or(EncodeError::UnknownMarket);
    match *cmd {
        C::Place {
            market,
            client,
            side,
            price,
            qty,
            tif,
            post_only,
        } => {
            encode_create(
                req,
                &OrderSpec {
                    ticker: ticker(market)?,
                    client,
                    side,
                    price,
                    qty,
                    tif,
                    post_only,
                    stp,
                },
            );
        }
        C::Cancel { order, .. } => encode_cancel(req, order),
        C::Amend {
            market,
            client,
            order,
            side,
            price,
            total,
        } => encode_amend(req, order, ticker(market)?, client, side, price, total),
        C::Decrease { order, reduce_to, .. } => encode_decrease(req, order, reduce_to),
        C::CancelAll => encode_cancel_all(req),
        C::Resync { .. } => return Err(EncodeError::NotRest),
    }
    Ok(())
}

pub(crate) fn write_order(b: &mut Vec<u8>, o: &OrderSpec<'_>) {
    b.extend_from_slice(b"{\"ticker\":");
    push_str(b, o.ticker);
    b.extend_from_slice(b",\"client_order_id\":\"");
    push_client(b, o.client);
    b.extend_from_slice(b"\",\"side\":\"");
    b.extend_from_slice(o.side.name().as_bytes());
    b.extend_from_slice(b"\",\"count\":\"");
    push_qty(b, o.qty);
    b.extend_from_slice(b"\",\"price\":\"");
    push_price(b, o.price);
    b.extend_from_slice(b"\",\"time_in_force\":\"");
    b.extend_from_slice(tif_name(o.tif).as_bytes());
    b.extend_from_slice(b"\",\"self_trade_prevention_type\":\"");
    b.extend_from_slice(o.stp.name().as_bytes());
    b.extend_from_slice(if o.post_only {
        b"\",\"post_only\":true}"
    } else {
        b"\",\"post_only\":false}"
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::kalshi::rest::order_wire::OrderSpec;
    use crate::connector::kalshi::rest::request::{Method, RestRequest, ORDERS_PATH};
    use crate::event::{ClientRef, Price, Qty, Side, TimeInForce};

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn order() -> impl Strategy<Value = (usize, u64, bool, u32, i64, u8, bool, bool)> {
            (
                0usize..4,
                any::<u64>(),
                any::<bool>(),
                0u32..=10_000,
                any::<i64>(),
                0u8..3,
                any::<bool>(),
                any::<bool>(),
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            /// The templated create writes exactly what the plain writer does, across changes
            /// of market, side and flags (which rebuild the template) and repeats (which don't).
            #[test]
            fn create_template_matches_the_plain_writer(orders in prop::collection::vec(order(), 1..12)) {
                const TICKERS: [&[u8]; 4] = [b"KXHIGHNY-26JUN24-T82", b"KXHIGHNY-26JUN24-T83", b"K\"Q\\\x01", b""];
                let mut req = RestRequest::new();
                let mut want = Vec::new();
                for (t, client, bid, price, qty, tif, post_only, maker) in orders {
                    let o = OrderSpec {
                        ticker: TICKERS[t],
                        client: ClientRef(client),
                        side: if bid { Side::Bid } else { Side::Ask },
                        price: Price(price),
                        qty: Qty(qty),
                        tif: [TimeInForce::GoodTillCanceled, TimeInForce::ImmediateOrCancel, TimeInForce::FillOrKill][usize::from(tif)],
                        post_only,
                        stp: if maker { SelfTradePrevention::Maker } else { SelfTradePrevention::TakerAtCross },
                    };
                    // A caller may leave anything in the body between requests.
                    req.body.extend_from_slice(b"junk");
                    encode_create(&mut req, &o);
                    want.clear();
                    write_order(&mut want, &o);
                    prop_assert_eq!(&req.body, &want);
                    prop_assert_eq!((req.method, &req.path[..]), (Method::Post, ORDERS_PATH));
                }
            }
        }
    }
}
