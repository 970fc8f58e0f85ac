//! One connection's session: its subscriptions, the frame envelope and errors it answers
//! with, and the loop that interleaves client commands with the event broadcast. The session
//! owns all per-connection state so nothing a client does reaches another connection.

use super::{End, Out, FAULT_POLL};
use crate::book::AccountId;
use crate::engine::{Exchange, MarketId};
use crate::server::{Batch, Shared};
use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, MissedTickBehavior};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Channel {
    Orderbook,
    Ticker,
    Trade,
    Fill,
    UserOrders,
    Positions,
    Lifecycle,
}

impl Channel {
    pub(super) fn parse(name: &str) -> Option<Channel> {
        Some(match name {
            "orderbook_delta" => Channel::Orderbook,
            "ticker" => Channel::Ticker,
            "trade" => Channel::Trade,
            "fill" => Channel::Fill,
            "user_orders" => Channel::UserOrders,
            "market_positions" => Channel::Positions,
            "market_lifecycle_v2" => Channel::Lifecycle,
            _ => return None,
        })
    }
    pub(super) fn name(self) -> &'static str {
        match self {
            Channel::Orderbook => "orderbook_delta",
            Channel::Ticker => "ticker",
            Channel::Trade => "trade",
            Channel::Fill => "fill",
            Channel::UserOrders => "user_orders",
            Channel::Positions => "market_positions",
            Channel::Lifecycle => "market_lifecycle_v2",
        }
    }
    pub(super) fn private(self) -> bool {
        matches!(self, Channel::Fill | Channel::UserOrders | Channel::Positions)
    }
    pub(super) fn filterable(self) -> bool {
        self != Channel::Lifecycle
    }
}

pub(super) struct Sub {
    pub(super) sid: u64,
    pub(super) channel: Channel,
    /// The market filter as the client gave it (for acks); None = every market.
    pub(super) tickers: Option<Vec<String>>,
    /// Markets of the filter that exist, each with the batch its data starts after.
    pub(super) cutoff: HashMap<MarketId, u64>,
    /// For an unfiltered subscription: the batch its data starts after.
    pub(super) from_batch: u64,
    /// Last seq used.
    pub(super) seq: u64,
    pub(super) use_yes_price: bool,
    pub(super) skip_ticker_ack: bool,
    /// The seq-fault generation this subscription has already applied.
    pub(super) seq_gen: u64,
}

impl Sub {
    pub(super) fn accepts(&self, market: MarketId, batch: u64) -> bool {
        match &self.tickers {
            None => batch > self.from_batch,
            Some(_) => self.cutoff.get(&market).is_some_and(|c| batch > *c),
        }
    }
}

pub(super) struct MarketMeta {
    pub(super) ticker: String,
    pub(super) uuid: String,
}

pub(super) fn market_table(ex: &Exchange) -> Vec<MarketMeta> {
    ex.markets
        .iter()
        .map(|m| MarketMeta {
            ticker: m.spec.ticker.clone(),
            uuid: m.uuid.clone(),
        })
        .collect()
}

/// A command failure: Kalshi's WS error code and text.
pub(super) struct WsError {
    pub(super) code: u16,
    pub(super) msg: String,
}

pub(super) fn err(code: u16, msg: impl Into<String>) -> WsError {
    WsError { code, msg: msg.into() }
}

/// `{"type":..,"id":..,"sid":..,"seq":..,"msg":..}` with the optional parts left out
/// (an empty `msg` too).
pub(super) fn envelope(kind: &str, id: Option<i64>, sid: Option<u64>, seq: Option<u64>, msg: &str) -> String {
    let mut out = String::with_capacity(msg.len() + 64);
    out.push_str("{\"type\":\"");
    out.push_str(kind);
    out.push('"');
    if let Some(id) = id {
        let _ = write!(out, ",\"id\":{id}");
    }
    if let Some(sid) = sid {
        let _ = write!(out, ",\"sid\":{sid}");
    }
    if let Some(seq) = seq {
        let _ = write!(out, ",\"seq\":{seq}");
    }
    if !msg.is_empty() {
        out.push_str(",\"msg\":");
        out.push_str(msg);
    }
    out.push('}');
    out
}

pub(super) fn error_frame(id: Option<i64>, sid: Option<u64>, e: &WsError) -> String {
    envelope("error", id, sid, None, &json!({"code": e.code, "msg": e.msg}).to_string())
}

pub(super) struct Session {
    pub(super) s: Arc<Shared>,
    pub(super) account: Option<AccountId>,
    pub(super) user_id: String,
    pub(super) markets: Vec<MarketMeta>,
    pub(super) subs: Vec<Sub>,
    pub(super) next_sid: u64,
    pub(super) out: mpsc::Sender<Out>,
    pub(super) drop_gen: u64,
    pub(super) epoch_ms: u64,
}

/// Output of one step: text frames in order.
pub(super) type Frames = Vec<String>;

impl Session {
    pub(super) async fn serve(&mut self, mut stream: SplitStream<WebSocket>, mut events: broadcast::Receiver<Arc<Batch>>) -> End {
        let period = Duration::from_millis(self.s.config.ping_interval_ms.max(1));
        let mut ping = tokio::time::interval_at(Instant::now() + period, period);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut fault_poll = tokio::time::interval(FAULT_POLL);
        fault_poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if self.drop_requested() {
                return End::Dropped;
            }
            if self.s.shutdown.load(Ordering::Relaxed) {
                return End::Closed;
            }
            let step: Result<Vec<Message>, ()> = tokio::select! {
                biased;
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Text(text))) => Ok(texts(self.command(text.as_str().as_bytes()))),
                    Some(Ok(Message::Binary(bytes))) => Ok(texts(self.command(&bytes))),
                    // Pings are answered by the protocol layer; pongs need nothing.
                    Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => Ok(Vec::new()),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Err(()),
                },
                batch = events.recv() => match batch {
                    Ok(batch) => Ok(texts(self.on_batch(&batch))),
                    Err(broadcast::error::RecvError::Lagged(_)) => Ok(texts(self.on_lag())),
                    Err(broadcast::error::RecvError::Closed) => Err(()),
                },
                _ = ping.tick() => Ok(vec![Message::Ping("heartbeat".into())]),
                _ = fault_poll.tick() => Ok(Vec::new()),
            };
            let frames = match step {
                Ok(f) => f,
                Err(()) => return End::Closed,
            };
            if frames.is_empty() {
                continue;
            }
            if let Some(end) = self.send(frames).await {
                return end;
            }
        }
    }

    /// Queues frames for the writer; waits while the queue is full (the client reads slowly).
    async fn send(&mut self, frames: Vec<Message>) -> Option<End> {
        let texts = frames.iter().filter(|f| matches!(f, Message::Text(_))).count() as u64;
        self.s.counters.ws_messages.fetch_add(texts, Ordering::Relaxed);
        let due = self
            .s
            .faults
            .ws_delay(self.s.clock.now_ms())
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        let item = match self.out.try_send(Out { due, frames }) {
            Ok(()) => return None,
            Err(mpsc::error::TrySendError::Closed(_)) => return Some(End::Closed),
            Err(mpsc::error::TrySendError::Full(back)) => back,
        };
        loop {
            let timed_out = match tokio::time::timeout(FAULT_POLL, self.out.reserve()).await {
                Ok(Ok(permit)) => {
                    permit.send(item);
                    return None;
                }
                Ok(Err(_)) => return Some(End::Closed),
                Err(_) => true,
            };
            if timed_out && self.drop_requested() {
                return Some(End::Dropped);
            }
        }
    }

    fn drop_requested(&mut self) -> bool {
        let gen = self.s.faults.drop_generation.load(Ordering::SeqCst);
        if gen == self.drop_gen {
            return false;
        }
        self.drop_gen = gen;
        let target = *self.s.faults.drop_account.lock().unwrap_or_else(|e| e.into_inner());
        match target {
            None => true,
            Some(a) => self.account == Some(a),
        }
    }
}

pub(super) fn placeholder_sub() -> Sub {
    Sub {
        sid: 0,
        channel: Channel::Lifecycle,
        tickers: None,
        cutoff: HashMap::new(),
        from_batch: u64::MAX,
        seq: 0,
        use_yes_price: false,
        skip_ticker_ack: false,
        seq_gen: 0,
    }
}

fn texts(frames: Frames) -> Vec<Message> {
    frames.into_iter().map(|f| Message::Text(f.into())).collect()
}
