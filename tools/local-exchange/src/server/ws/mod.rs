//! Kalshi's WebSocket API v2 at `/trade-api/ws/v2`.
//!
//! The upgrade is authenticated like a REST request (signature over `GET /trade-api/ws/v2`);
//! a bad signature is answered with HTTP 401 and Kalshi's error body. With
//! `public_ws_without_auth` a request without key headers is let in without an account: it may
//! use the public channels, and gets error 9 for `fill`, `user_orders` and `market_positions`.
//!
//! Each connection runs two tasks:
//!
//! - the *session* task owns the subscriptions. It subscribes to the exchange's event
//!   broadcast when the connection is accepted, answers commands, and turns each published
//!   [`Batch`] into channel messages. A snapshot is rendered with the venue locked and tagged
//!   with the number of the last published batch; that subscription then ignores batches up
//!   to that number for that market, so a snapshot lines up with the deltas exactly.
//! - the *writer* task sends what the session queued (a bounded queue), flushing when the
//!   queue runs dry. A client that reads too slowly fills the socket, then the queue; the
//!   session then stops draining the broadcast and, once the broadcast has overwritten batches
//!   it did not see, every subscription of the connection gets Kalshi's terminal error 25 and is
//!   removed. Nothing a client does reaches another connection.
//!
//! Choices where Kalshi's spec is open (see the crate's protocol notes):
//!
//! - `subscribe` for a channel the connection already has merges the new markets into that
//!   subscription and answers like `update_subscription`: `{"type":"ok","sid","seq","msg":
//!   {"market_tickers":[..full list..]}}`, then snapshots of the added markets. Flags of the
//!   repeated command (`use_yes_price`, ...) are ignored.
//! - `ok` and `unsubscribed` replies consume a number of the subscription's seq.
//! - `add_markets` answers `ok` first, then sends the snapshots of the added markets.
//! - `get_snapshot` answers only with snapshots (carrying the command id); asking for a market
//!   the subscription does not hold is error 11.
//! - Unknown market tickers are accepted into a filter (they never produce data, and get no
//!   snapshot); malformed `market_id`s are error 11.
//! - Error 25 ends every subscription of the lagging connection (the unsequenced private
//!   channels too: a silently lost fill is worse than a resubscribe).
//! - `orderbook_delta` is a public channel for an account-less connection (Era A behaviour).
//! - Faults: `drop_ws` closes the socket without a close frame; `skip_seq`/`duplicate_seq`
//!   apply once per subscription to its next data message (snapshot, delta, trade,
//!   lifecycle), not to command replies; `delay_ws` holds each outgoing frame for the delay
//!   (latency, not a throughput cut).
//!
//! This file holds the upgrade and the two tasks; a session's state and loop, its commands
//! and its data messages have files below.

mod commands;
mod data;
mod session;

use crate::book::AccountId;
use crate::server::rest::ApiError;
use crate::server::{rest, Batch, Shared};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use session::{market_table, Session};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

pub const WS_PATH: &str = "/trade-api/ws/v2";

/// Frames (batches of frames) the session may queue for the writer before it stops reading
/// the event broadcast.
const OUT_QUEUE: usize = 256;
/// The writer flushes at least this often (in frames) while more is queued.
const FLUSH_EVERY: usize = 64;
/// How often a blocked or idle session looks for a `drop_ws` fault.
const FAULT_POLL: Duration = Duration::from_millis(20);

pub fn router() -> Router<Arc<Shared>> {
    Router::new().route(WS_PATH, get(upgrade))
}

async fn upgrade(State(s): State<Arc<Shared>>, headers: HeaderMap, ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>) -> Response {
    let has_key = headers.contains_key("KALSHI-ACCESS-KEY");
    let account = if s.config.public_ws_without_auth && !has_key {
        None
    } else {
        match rest::authenticate(&s, &headers, "GET", WS_PATH) {
            Ok(a) => Some(a),
            Err(e) => return e.into_response(),
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return ApiError::new(rejection.status().as_u16(), "bad_request", rejection.body_text()).into_response(),
    };
    // Subscribed before any snapshot can be taken, so no batch falls between the two.
    let events = s.events.subscribe();
    ws.max_message_size(1 << 20)
        .on_upgrade(move |socket| run(s, socket, account, events))
}

async fn run(s: Arc<Shared>, socket: WebSocket, account: Option<AccountId>, events: broadcast::Receiver<Arc<Batch>>) {
    s.counters.ws_connections.fetch_add(1, Ordering::Relaxed);
    let (sink, stream) = socket.split();
    let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
    let writer = tokio::spawn(writer(sink, out_rx));
    let (user_id, markets) = {
        let v = s.lock();
        let user = account
            .and_then(|a| v.exchange.accounts.get(a as usize))
            .map(|a| a.user_id.clone())
            .unwrap_or_default();
        (user, market_table(&v.exchange))
    };
    let mut session = Session {
        drop_gen: s.faults.drop_generation.load(Ordering::SeqCst),
        epoch_ms: s.clock.epoch_ms,
        s,
        account,
        user_id,
        markets,
        subs: Vec::new(),
        next_sid: 1,
        out: out_tx,
    };
    let end = session.serve(stream, events).await;
    drop(session);
    let abort = writer.abort_handle();
    match end {
        // Abrupt: the socket goes away without a close frame.
        End::Dropped => abort.abort(),
        // The writer sends what is queued and a close frame, unless the client stopped
        // reading: then the socket just goes.
        End::Closed => {
            if tokio::time::timeout(Duration::from_secs(2), writer).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// Frames the writer sends once `due` has come.
struct Out {
    due: Option<Instant>,
    frames: Vec<Message>,
}

async fn writer(mut sink: SplitSink<WebSocket, Message>, mut rx: mpsc::Receiver<Out>) {
    let mut unflushed = 0usize;
    while let Some(out) = rx.recv().await {
        if let Some(due) = out.due {
            if unflushed > 0 {
                if sink.flush().await.is_err() {
                    return;
                }
                unflushed = 0;
            }
            tokio::time::sleep_until(due).await;
        }
        for frame in out.frames {
            if sink.feed(frame).await.is_err() {
                return;
            }
            unflushed += 1;
        }
        if unflushed >= FLUSH_EVERY || rx.is_empty() {
            if sink.flush().await.is_err() {
                return;
            }
            unflushed = 0;
        }
    }
    let _ = sink.close().await;
}

enum End {
    Closed,
    Dropped,
}
