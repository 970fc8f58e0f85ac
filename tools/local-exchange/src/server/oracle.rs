//! The external oracle feed (the seed's External_Oracle): the hidden true probability of each
//! market as a data vendor would publish it, with configurable noise and lead or lag. It is a
//! separate feed from Kalshi's API (no Kalshi auth, its own paths), served on the same port.
//!
//! - `GET /oracle/v1/markets` and `GET /oracle/v1/markets/{ticker}`: the current value.
//! - `GET /oracle/v1/ws` (WebSocket): `{"type":"oracle","ticker":..,"probability":..,
//!   "probability_e4":..,"ts_ms":..}` for every market each publish interval. A `drop_oracle`
//!   fault closes these connections, and only these.

use super::Shared;
use crate::engine::MarketId;
use crate::server::rest::ApiError;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/oracle/v1/markets", get(all))
        .route("/oracle/v1/markets/{ticker}", get(one))
        .route("/oracle/v1/ws", get(stream))
}

fn reading(s: &Shared, market: MarketId, now: u64) -> Value {
    let v = s.lock();
    let p = v.population.oracle_probability(market, now).clamp(0.0, 1.0);
    json!({
        "type": "oracle",
        "ticker": v.exchange.market(market).spec.ticker,
        "probability": p,
        // Integer 1e-4 form, so integer-only consumers need no float parsing.
        "probability_e4": (p * 10_000.0).round() as u32,
        "ts_ms": s.clock.epoch_ms + now,
    })
}

fn market_count(s: &Shared) -> u32 {
    s.lock().exchange.markets.len() as u32
}

async fn all(State(s): State<Arc<Shared>>) -> Json<Value> {
    let now = s.clock.now_ms();
    let markets: Vec<Value> = (0..market_count(&s)).map(|m| reading(&s, m, now)).collect();
    Json(json!({ "markets": markets }))
}

async fn one(State(s): State<Arc<Shared>>, Path(ticker): Path<String>) -> Response {
    let id = s.lock().exchange.market_by_ticker(&ticker);
    match id {
        Some(m) => Json(reading(&s, m, s.clock.now_ms())).into_response(),
        None => ApiError::new(404, "market_not_found", format!("market {ticker} not found")).into_response(),
    }
}

async fn stream(State(s): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| publish(s, socket))
}

async fn publish(s: Arc<Shared>, mut socket: WebSocket) {
    let interval = Duration::from_millis(s.config.oracle_interval_ms.max(1));
    let mut ticker = tokio::time::interval(interval);
    let drops = s.faults.oracle_drop_generation.load(Ordering::SeqCst);
    loop {
        ticker.tick().await;
        // A `drop_oracle` fault ends the connection without a close frame, as a lost link would.
        if s.shutdown.load(Ordering::Relaxed) || s.faults.oracle_drop_generation.load(Ordering::SeqCst) != drops {
            return;
        }
        let now = s.clock.now_ms();
        for m in 0..market_count(&s) {
            let text = reading(&s, m, now).to_string();
            if socket.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
    }
}
