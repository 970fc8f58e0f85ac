//! Kalshi's WebSocket channels by their wire names, and each channel's bit in a
//! subscription's channel set: the vocabulary the decoder and the subscribe commands share.

use crate::event::Channel;

pub(crate) fn channel_bit(c: Channel) -> u8 {
    1 << match c {
        Channel::OrderbookDelta => 0,
        Channel::Trade => 1,
        Channel::Ticker => 2,
        Channel::Fill => 3,
        Channel::UserOrders => 4,
        Channel::MarketPositions => 5,
        Channel::MarketLifecycle => 6,
    }
}

/// The subscribe name of a channel.
pub fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::OrderbookDelta => "orderbook_delta",
        Channel::Trade => "trade",
        Channel::Ticker => "ticker",
        Channel::Fill => "fill",
        Channel::UserOrders => "user_orders",
        Channel::MarketPositions => "market_positions",
        Channel::MarketLifecycle => "market_lifecycle_v2",
    }
}

pub(crate) fn channel_of(name: &[u8]) -> Option<Channel> {
    Some(match name {
        b"orderbook_delta" => Channel::OrderbookDelta,
        b"trade" => Channel::Trade,
        b"ticker" => Channel::Ticker,
        b"fill" => Channel::Fill,
        b"user_orders" => Channel::UserOrders,
        b"market_positions" => Channel::MarketPositions,
        b"market_lifecycle_v2" => Channel::MarketLifecycle,
        _ => return None,
    })
}
