//! The terms of an order as Kalshi spells them: how long it lives, what happens when it would
//! trade against the same account, and the states it reports. Both the engine (which sends
//! them) and the exchange (which enforces them) use these, so each means one thing.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    #[default]
    GoodTillCanceled,
    ImmediateOrCancel,
    FillOrKill,
}

impl TimeInForce {
    pub fn parse(s: &str) -> Option<TimeInForce> {
        match s {
            "good_till_canceled" | "GTC" | "gtc" => Some(TimeInForce::GoodTillCanceled),
            "immediate_or_cancel" | "IOC" | "ioc" => Some(TimeInForce::ImmediateOrCancel),
            "fill_or_kill" | "FOK" | "fok" => Some(TimeInForce::FillOrKill),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            TimeInForce::GoodTillCanceled => "good_till_canceled",
            TimeInForce::ImmediateOrCancel => "immediate_or_cancel",
            TimeInForce::FillOrKill => "fill_or_kill",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SelfTradePrevention {
    /// Cancel the incoming order when it would meet its own account; earlier fills stand.
    #[default]
    TakerAtCross,
    /// Cancel the resting order of the same account and keep matching.
    Maker,
}

impl SelfTradePrevention {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "taker_at_cross" | "" => Some(Self::TakerAtCross),
            "maker" => Some(Self::Maker),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::TakerAtCross => "taker_at_cross",
            Self::Maker => "maker",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Resting,
    Canceled,
    Executed,
}

impl OrderStatus {
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::Resting => "resting",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Executed => "executed",
        }
    }
}
