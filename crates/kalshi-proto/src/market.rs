//! A market's lifecycle as Kalshi names it (initialized, active, inactive, closed, determined,
//! settled). The exchange moves markets through it and kmm reads it off the wire, so the states
//! and their REST spellings live here once rather than on either side.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketStatus {
    Initialized,
    Active,
    /// Deactivated by the exchange; resting orders stay until reactivation cancels them.
    Inactive,
    Closed,
    Determined,
    Settled,
}

impl MarketStatus {
    /// The status string for REST. SDK 3.2 validates against
    /// initialized/active/closed/settled/determined strictly, so `inactive` shows as `closed`.
    pub fn rest_name(self) -> &'static str {
        match self {
            MarketStatus::Initialized => "initialized",
            MarketStatus::Active => "active",
            MarketStatus::Inactive => "closed",
            MarketStatus::Closed => "closed",
            MarketStatus::Determined => "determined",
            MarketStatus::Settled => "settled",
        }
    }
}
