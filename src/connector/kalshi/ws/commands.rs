//! WS command encoders: subscribe, snapshot requests, market list updates, unsubscribe.
//!
//! Written straight into a reused buffer, like the REST bodies; the decoder learns about each
//! command through `Decoder::register_*` so it understands the replies.

use crate::connector::kalshi::write::{push_str, push_u64};
use crate::connector::kalshi::ws::channels::channel_name;
use crate::event::Channel;

/// `{"id":N,"cmd":"subscribe","params":{"channels":[..],"market_tickers":[..],"use_yes_price":B}}`.
/// No tickers means no market filter. Register the command with
/// [`Decoder::register_subscribe`](super::decode::Decoder::register_subscribe) so the replies are understood.
pub fn encode_subscribe<'t>(
    out: &mut Vec<u8>,
    id: u64,
    channels: &[Channel],
    tickers: impl IntoIterator<Item = &'t [u8]>,
    use_yes_price: bool,
) {
    out.clear();
    out.extend_from_slice(b"{\"id\":");
    push_u64(out, id);
    out.extend_from_slice(b",\"cmd\":\"subscribe\",\"params\":{\"channels\":[");
    for (i, c) in channels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, channel_name(*c).as_bytes());
    }
    out.push(b']');
    push_ticker_list(out, tickers);
    out.extend_from_slice(if use_yes_price {
        b",\"use_yes_price\":true}}"
    } else {
        b",\"use_yes_price\":false}}"
    });
}

/// `update_subscription` with `get_snapshot`: fresh snapshots of `tickers` on `sid` (the
/// resync after a gap), without touching the subscription.
pub fn encode_get_snapshot<'t>(out: &mut Vec<u8>, id: u64, sid: u32, tickers: impl IntoIterator<Item = &'t [u8]>) {
    encode_update(out, id, sid, b"get_snapshot", tickers);
}

/// `update_subscription` with `add_markets` (then call [`Decoder::add_markets`](super::decode::Decoder::add_markets)).
pub fn encode_add_markets<'t>(out: &mut Vec<u8>, id: u64, sid: u32, tickers: impl IntoIterator<Item = &'t [u8]>) {
    encode_update(out, id, sid, b"add_markets", tickers);
}

/// `update_subscription` with `delete_markets` (then call [`Decoder::remove_markets`](super::decode::Decoder::remove_markets)).
pub fn encode_delete_markets<'t>(out: &mut Vec<u8>, id: u64, sid: u32, tickers: impl IntoIterator<Item = &'t [u8]>) {
    encode_update(out, id, sid, b"delete_markets", tickers);
}

fn encode_update<'t>(out: &mut Vec<u8>, id: u64, sid: u32, action: &[u8], tickers: impl IntoIterator<Item = &'t [u8]>) {
    out.clear();
    out.extend_from_slice(b"{\"id\":");
    push_u64(out, id);
    out.extend_from_slice(b",\"cmd\":\"update_subscription\",\"params\":{\"sid\":");
    push_u64(out, u64::from(sid));
    out.extend_from_slice(b",\"action\":\"");
    out.extend_from_slice(action);
    out.push(b'"');
    push_ticker_list(out, tickers);
    out.extend_from_slice(b"}}");
}

/// `{"id":N,"cmd":"unsubscribe","params":{"sids":[..]}}`.
pub fn encode_unsubscribe(out: &mut Vec<u8>, id: u64, sids: &[u32]) {
    out.clear();
    out.extend_from_slice(b"{\"id\":");
    push_u64(out, id);
    out.extend_from_slice(b",\"cmd\":\"unsubscribe\",\"params\":{\"sids\":[");
    for (i, &s) in sids.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_u64(out, u64::from(s));
    }
    out.extend_from_slice(b"]}}");
}

fn push_ticker_list<'t>(out: &mut Vec<u8>, tickers: impl IntoIterator<Item = &'t [u8]>) {
    let mut any = false;
    for t in tickers {
        out.extend_from_slice(if any { b"," } else { b",\"market_tickers\":[" });
        push_str(out, t);
        any = true;
    }
    if any {
        out.push(b']');
    }
}
