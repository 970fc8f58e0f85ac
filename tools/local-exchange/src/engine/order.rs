//! An order as the exchange sees it: the request it arrives as, the record it keeps while
//! the order lives, why it last changed, and the errors a request can fail with. One file so
//! the vocabulary of an order's life reads in one place.

use super::market::MarketId;
use crate::book::{AccountId, OrderNo};
use crate::ids;
use crate::ids::IdKind;
use kalshi_proto::order::{OrderStatus, SelfTradePrevention, TimeInForce};
use kalshi_proto::units::{Money, Price, Qty};
use kalshi_proto::Side;

/// How a client phrased the order: legacy orders name a contract and an action, V2 orders a
/// book side. Both map onto one YES book; this is kept only to echo the client's own terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phrasing {
    pub contract_yes: bool,
    pub buy: bool,
}

impl Phrasing {
    pub fn for_side(side: Side) -> Phrasing {
        Phrasing {
            contract_yes: true,
            buy: side == Side::Bid,
        }
    }
    /// The YES-book side of buying/selling YES/NO.
    pub fn side(self) -> Side {
        if self.contract_yes == self.buy {
            Side::Bid
        } else {
            Side::Ask
        }
    }
}

/// Kalshi's `last_update_reason` vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateReason {
    Created,
    Trade,
    Decrease,
    Amend,
    Canceled,
    SelfTradeCancel,
    ExpiryCancel,
    CloseCancel,
    HaltCancel,
    PostOnlyCrossCancel,
    ReduceOnlyCancel,
    ImmediateCancel,
}

impl UpdateReason {
    pub fn name(self) -> &'static str {
        match self {
            UpdateReason::Created => "",
            UpdateReason::Trade => "Trade",
            UpdateReason::Decrease => "Decrease",
            UpdateReason::Amend => "Amend",
            UpdateReason::Canceled => "Cancel",
            UpdateReason::SelfTradeCancel => "SelfTradeCancel",
            UpdateReason::ExpiryCancel => "ExpiryCancel",
            UpdateReason::CloseCancel => "CloseCancel",
            UpdateReason::HaltCancel => "HaltCancel",
            UpdateReason::PostOnlyCrossCancel => "PostOnlyCrossCancel",
            UpdateReason::ReduceOnlyCancel => "ReduceOnlyCancel",
            UpdateReason::ImmediateCancel => "ImmediateOrCancel",
        }
    }
}

#[derive(Clone, Debug)]
pub struct OrderRecord {
    pub id: OrderNo,
    pub account: AccountId,
    pub market: MarketId,
    pub side: Side,
    /// Limit on the YES leg.
    pub price: Price,
    pub phrasing: Phrasing,
    pub initial: Qty,
    pub remaining: Qty,
    pub filled: Qty,
    pub status: OrderStatus,
    pub tif: TimeInForce,
    pub post_only: bool,
    pub reduce_only: bool,
    pub stp: SelfTradePrevention,
    pub client_order_id: String,
    pub expiration_ms: Option<u64>,
    pub cancel_on_pause: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub last_update: UpdateReason,
    pub taker_fill_cost: Money,
    pub maker_fill_cost: Money,
    pub taker_fees: Money,
    pub maker_fees: Money,
    /// Fee owed before rounding, in 1e-14 dollars; Kalshi rounds per order, not per fill.
    pub(super) fee_raw: i128,
    pub(super) fee_charged: Money,
}

impl OrderRecord {
    pub fn uuid(&self) -> String {
        ids::encode(IdKind::Order, self.id)
    }
    pub fn is_resting(&self) -> bool {
        self.status == OrderStatus::Resting
    }
}

/// Why an order request failed: Kalshi's error code, the HTTP status and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl OrderError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> OrderError {
        OrderError {
            status,
            code,
            message: message.into(),
        }
    }
    pub(super) fn invalid(message: impl Into<String>) -> OrderError {
        OrderError::new(400, "invalid_order", message)
    }
}

impl std::fmt::Display for OrderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

#[derive(Clone, Debug)]
pub struct NewOrder {
    pub account: AccountId,
    pub market: MarketId,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    pub phrasing: Phrasing,
    pub tif: TimeInForce,
    pub post_only: bool,
    pub reduce_only: bool,
    pub stp: SelfTradePrevention,
    pub client_order_id: Option<String>,
    pub expiration_ms: Option<u64>,
    pub cancel_on_pause: bool,
}

impl NewOrder {
    /// A plain good-till-canceled limit order, as simulated traders send.
    pub fn limit(account: AccountId, market: MarketId, side: Side, price: Price, qty: Qty) -> NewOrder {
        NewOrder {
            account,
            market,
            side,
            price,
            qty,
            phrasing: Phrasing::for_side(side),
            tif: TimeInForce::GoodTillCanceled,
            post_only: false,
            reduce_only: false,
            stp: SelfTradePrevention::TakerAtCross,
            client_order_id: None,
            expiration_ms: None,
            cancel_on_pause: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    By(Qty),
    To(Qty),
}

#[derive(Clone, Debug)]
pub struct Placed {
    pub order: OrderRecord,
    pub average_fill_price: Option<Price>,
}
