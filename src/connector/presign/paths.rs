//! Which request paths get signatures ahead: the four fixed order paths, the per-order
//! operations, and the classification of a request into the stock it draws from. Apart because
//! both halves key their stock by it and it is pure (no threads, no rings).

use crate::connector::kalshi::rest::request::{Method, BATCH_PATH, ORDERS_PATH};
use crate::event::OrderId;

/// The four order paths whose signatures are always in stock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FixedPath {
    /// `POST .../portfolio/events/orders`
    Create,
    /// `POST .../portfolio/events/orders/batched`
    BatchCreate,
    /// `DELETE .../portfolio/events/orders/batched` (also the way to cancel one order without a
    /// per-order signature: a batch of one)
    BatchCancel,
    /// `DELETE .../portfolio/events/orders`
    CancelAll,
}

impl FixedPath {
    pub const ALL: [FixedPath; 4] = [
        FixedPath::Create,
        FixedPath::BatchCreate,
        FixedPath::BatchCancel,
        FixedPath::CancelAll,
    ];

    pub fn method(self) -> Method {
        match self {
            FixedPath::Create | FixedPath::BatchCreate => Method::Post,
            FixedPath::BatchCancel | FixedPath::CancelAll => Method::Delete,
        }
    }

    pub fn path(self) -> &'static [u8] {
        match self {
            FixedPath::Create | FixedPath::CancelAll => ORDERS_PATH,
            FixedPath::BatchCreate | FixedPath::BatchCancel => BATCH_PATH,
        }
    }

    /// The stock ring's index. Inline: the io side's order path indexes its rings with it.
    #[inline]
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// What a per-order signature is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderOp {
    /// `DELETE .../portfolio/events/orders/{id}`
    Cancel,
    /// `POST .../portfolio/events/orders/{id}/amend`
    Amend,
    /// `POST .../portfolio/events/orders/{id}/decrease`
    Decrease,
}

impl OrderOp {
    pub fn method(self) -> Method {
        match self {
            OrderOp::Cancel => Method::Delete,
            OrderOp::Amend | OrderOp::Decrease => Method::Post,
        }
    }

    fn tail(self) -> &'static [u8] {
        match self {
            OrderOp::Cancel => b"",
            OrderOp::Amend => b"/amend",
            OrderOp::Decrease => b"/decrease",
        }
    }

    /// The full signed path for `order`, written into `out` (cleared first).
    pub fn write_path(self, order: OrderId, out: &mut Vec<u8>) {
        let mut id = [0u8; OrderId::WIRE_LEN];
        order.write(&mut id);
        out.clear();
        out.extend_from_slice(ORDERS_PATH);
        out.push(b'/');
        out.extend_from_slice(&id);
        out.extend_from_slice(self.tail());
    }
}

/// Which stock a request draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StockKey {
    Fixed(FixedPath),
    Order(OrderId, OrderOp),
}

/// The stock a `method` + `path` is served from, or `None` for paths never presigned
/// (reads, the WebSocket upgrade, anything with a query string).
#[inline]
pub fn classify(method: Method, path: &[u8]) -> Option<StockKey> {
    let rest = path.strip_prefix(ORDERS_PATH)?;
    if rest.is_empty() {
        return match method {
            Method::Post => Some(StockKey::Fixed(FixedPath::Create)),
            Method::Delete => Some(StockKey::Fixed(FixedPath::CancelAll)),
            Method::Get => None,
        };
    }
    let rest = rest.strip_prefix(b"/")?;
    if rest == &BATCH_PATH[ORDERS_PATH.len() + 1..] {
        return match method {
            Method::Post => Some(StockKey::Fixed(FixedPath::BatchCreate)),
            Method::Delete => Some(StockKey::Fixed(FixedPath::BatchCancel)),
            Method::Get => None,
        };
    }
    let id = OrderId::parse(rest.get(..OrderId::WIRE_LEN)?)?;
    let op = match (method, &rest[OrderId::WIRE_LEN..]) {
        (Method::Delete, b"") => OrderOp::Cancel,
        (Method::Post, b"/amend") => OrderOp::Amend,
        (Method::Post, b"/decrease") => OrderOp::Decrease,
        _ => return None,
    };
    // Only the canonical lower-case form is what the worker signs.
    let mut canon = [0u8; OrderId::WIRE_LEN];
    id.write(&mut canon);
    (canon[..] == rest[..OrderId::WIRE_LEN]).then_some(StockKey::Order(id, op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_order_paths() {
        let id = OrderId::parse(b"0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4").unwrap();
        let mut p = Vec::new();
        assert_eq!(classify(Method::Post, ORDERS_PATH), Some(StockKey::Fixed(FixedPath::Create)));
        assert_eq!(classify(Method::Delete, ORDERS_PATH), Some(StockKey::Fixed(FixedPath::CancelAll)));
        assert_eq!(classify(Method::Post, BATCH_PATH), Some(StockKey::Fixed(FixedPath::BatchCreate)));
        assert_eq!(classify(Method::Delete, BATCH_PATH), Some(StockKey::Fixed(FixedPath::BatchCancel)));
        assert_eq!(classify(Method::Get, ORDERS_PATH), None);
        for op in [OrderOp::Cancel, OrderOp::Amend, OrderOp::Decrease] {
            op.write_path(id, &mut p);
            assert_eq!(classify(op.method(), &p), Some(StockKey::Order(id, op)));
            assert_eq!(classify(Method::Get, &p), None);
        }
        assert_eq!(
            classify(
                Method::Delete,
                b"/trade-api/v2/portfolio/events/orders/0B6E2A9A-0a11-41c0-4f77-2a9a1c021af4"
            ),
            None
        );
        assert_eq!(classify(Method::Delete, b"/trade-api/v2/portfolio/events/orders/x"), None);
        assert_eq!(classify(Method::Post, b"/trade-api/v2/portfolio/orders"), None);
        assert_eq!(classify(Method::Post, b"/trade-api/v2/portfolio/events/orders?x=1"), None);
    }
}
