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

use super::rest::{self, ApiError};
use super::{Batch, Shared};
use crate::book::AccountId;
use crate::engine::{
    ExEvent, Exchange, FillRecord, LifecycleKind, MarketId, MarketResult, OrderRecord, Position, TickerState, TradeRecord,
};
use crate::faults::Fault;
use crate::ids::{self, IdKind};
use crate::wire::{self, outcome_side};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use kalshi_proto::units::{Price, Qty};
use kalshi_proto::Side;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, MissedTickBehavior};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    Orderbook,
    Ticker,
    Trade,
    Fill,
    UserOrders,
    Positions,
    Lifecycle,
}

impl Channel {
    fn parse(name: &str) -> Option<Channel> {
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
    fn name(self) -> &'static str {
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
    fn private(self) -> bool {
        matches!(self, Channel::Fill | Channel::UserOrders | Channel::Positions)
    }
    fn filterable(self) -> bool {
        self != Channel::Lifecycle
    }
}

struct Sub {
    sid: u64,
    channel: Channel,
    /// The market filter as the client gave it (for acks); None = every market.
    tickers: Option<Vec<String>>,
    /// Markets of the filter that exist, each with the batch its data starts after.
    cutoff: HashMap<MarketId, u64>,
    /// For an unfiltered subscription: the batch its data starts after.
    from_batch: u64,
    /// Last seq used.
    seq: u64,
    use_yes_price: bool,
    skip_ticker_ack: bool,
    /// The seq-fault generation this subscription has already applied.
    seq_gen: u64,
}

impl Sub {
    fn accepts(&self, market: MarketId, batch: u64) -> bool {
        match &self.tickers {
            None => batch > self.from_batch,
            Some(_) => self.cutoff.get(&market).is_some_and(|c| batch > *c),
        }
    }
}

struct MarketMeta {
    ticker: String,
    uuid: String,
}

fn market_table(ex: &Exchange) -> Vec<MarketMeta> {
    ex.markets
        .iter()
        .map(|m| MarketMeta {
            ticker: m.spec.ticker.clone(),
            uuid: m.uuid.clone(),
        })
        .collect()
}

/// A command failure: Kalshi's WS error code and text.
struct WsError {
    code: u16,
    msg: String,
}

fn err(code: u16, msg: impl Into<String>) -> WsError {
    WsError { code, msg: msg.into() }
}

/// `{"type":..,"id":..,"sid":..,"seq":..,"msg":..}` with the optional parts left out
/// (an empty `msg` too).
fn envelope(kind: &str, id: Option<i64>, sid: Option<u64>, seq: Option<u64>, msg: &str) -> String {
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

fn error_frame(id: Option<i64>, sid: Option<u64>, e: &WsError) -> String {
    envelope("error", id, sid, None, &json!({"code": e.code, "msg": e.msg}).to_string())
}

struct Session {
    s: Arc<Shared>,
    account: Option<AccountId>,
    user_id: String,
    markets: Vec<MarketMeta>,
    subs: Vec<Sub>,
    next_sid: u64,
    out: mpsc::Sender<Out>,
    drop_gen: u64,
    epoch_ms: u64,
}

/// Output of one step: text frames in order.
type Frames = Vec<String>;

impl Session {
    async fn serve(&mut self, mut stream: SplitStream<WebSocket>, mut events: broadcast::Receiver<Arc<Batch>>) -> End {
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

    // ------------------------------------------------------------------ commands

    fn command(&mut self, bytes: &[u8]) -> Frames {
        let value: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(_) => return vec![error_frame(None, None, &err(1, "Unable to parse message"))],
        };
        let Some(obj) = value.as_object() else {
            return vec![error_frame(None, None, &err(1, "Message must be a JSON object"))];
        };
        let id = match obj.get("id") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64() {
                Some(0) => None,
                Some(i) => Some(i),
                None => return vec![error_frame(None, None, &err(1, "id must be an integer"))],
            },
        };
        let cmd = obj.get("cmd").and_then(Value::as_str).unwrap_or("");
        let params = match obj.get("params") {
            None | Some(Value::Null) => None,
            Some(Value::Object(p)) => Some(p),
            Some(_) => return vec![error_frame(id, None, &err(1, "params must be an object"))],
        };
        let result = match cmd {
            "subscribe" => params.ok_or_else(|| err(2, "Params required")).and_then(|p| self.subscribe(id, p)),
            "unsubscribe" => params.ok_or_else(|| err(2, "Params required")).map(|p| self.unsubscribe(id, p)),
            "update_subscription" => params
                .ok_or_else(|| err(2, "Params required"))
                .and_then(|p| self.update_subscription(id, p)),
            "list_subscriptions" => Ok(self.list_subscriptions(id)),
            _ => Err(err(5, "Unknown command")),
        };
        result.unwrap_or_else(|e| vec![error_frame(id, None, &e)])
    }

    fn list_subscriptions(&self, id: Option<i64>) -> Frames {
        let list: Vec<Value> = self
            .subs
            .iter()
            .map(|s| json!({"channel": s.channel.name(), "sid": s.sid}))
            .collect();
        vec![envelope("ok", id, None, None, &Value::Array(list).to_string())]
    }

    /// The market filter of a command: `market_ticker`, `market_tickers` and (when allowed)
    /// `market_id`/`market_ids`, merged in order without repeats. Empty is None.
    fn market_filter(&self, p: &Map<String, Value>, allow_ids: bool) -> Result<Option<Vec<String>>, WsError> {
        let mut out: Vec<String> = Vec::new();
        let push = |t: String, out: &mut Vec<String>| {
            if !out.contains(&t) {
                out.push(t);
            }
        };
        match p.get("market_ticker") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) => push(t.clone(), &mut out),
            Some(_) => return Err(err(1, "market_ticker must be a string")),
        }
        match p.get("market_tickers") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for t in list {
                    match t.as_str() {
                        Some(t) => push(t.to_string(), &mut out),
                        None => return Err(err(1, "market_tickers must be an array of strings")),
                    }
                }
            }
            Some(_) => return Err(err(1, "market_tickers must be an array of strings")),
        }
        if allow_ids {
            let mut ids: Vec<&Value> = Vec::new();
            match p.get("market_id") {
                None | Some(Value::Null) => {}
                Some(v) => ids.push(v),
            }
            match p.get("market_ids") {
                None | Some(Value::Null) => {}
                Some(Value::Array(list)) => ids.extend(list.iter()),
                Some(_) => return Err(err(1, "market_ids must be an array of strings")),
            }
            for v in ids {
                let text = v.as_str().ok_or_else(|| err(1, "market ids must be strings"))?;
                let meta = ids::decode(IdKind::Market, text)
                    .and_then(|m| usize::try_from(m).ok())
                    .and_then(|m| self.markets.get(m))
                    .ok_or_else(|| err(11, format!("Invalid market id {text:?}")))?;
                push(meta.ticker.clone(), &mut out);
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }

    fn market_of(&self, ticker: &str) -> Option<MarketId> {
        self.markets.iter().position(|m| m.ticker == ticker).map(|i| i as MarketId)
    }

    fn subscribe(&mut self, id: Option<i64>, p: &Map<String, Value>) -> Result<Frames, WsError> {
        let channels: Vec<Channel> = match p.get("channels") {
            None | Some(Value::Null) => return Err(err(3, "Channels required")),
            Some(Value::Array(list)) if list.is_empty() => return Err(err(3, "Channels required")),
            Some(Value::Array(list)) => {
                let mut out = Vec::new();
                for c in list {
                    let name = c.as_str().ok_or_else(|| err(1, "channels must be strings"))?;
                    out.push(Channel::parse(name).ok_or_else(|| err(8, format!("Unknown channel name {name:?}")))?);
                }
                out
            }
            Some(_) => return Err(err(1, "channels must be an array")),
        };
        let use_yes_price = flag(p, "use_yes_price")?;
        let send_initial_snapshot = flag(p, "send_initial_snapshot")?;
        let skip_ticker_ack = flag(p, "skip_ticker_ack")?;
        let with_ids = self.market_filter(p, true)?;
        let tickers_only = self.market_filter(p, false)?;
        for c in &channels {
            if c.private() && self.account.is_none() {
                return Err(err(9, format!("Channel {} requires authentication", c.name())));
            }
            if *c == Channel::Orderbook && tickers_only.is_none() {
                return Err(err(14, "Market ticker required for orderbook_delta"));
            }
        }
        let mut frames = Vec::new();
        for c in channels {
            let filter = match c {
                Channel::Orderbook => tickers_only.clone(),
                Channel::Lifecycle => None,
                _ => with_ids.clone(),
            };
            if let Some(i) = self.subs.iter().position(|s| s.channel == c) {
                frames.extend(self.add_markets(id, i, filter, send_initial_snapshot));
                continue;
            }
            let sid = self.next_sid;
            self.next_sid += 1;
            let mut sub = Sub {
                sid,
                channel: c,
                tickers: filter,
                cutoff: HashMap::new(),
                from_batch: 0,
                seq: 0,
                use_yes_price,
                skip_ticker_ack,
                seq_gen: self.s.faults.seq_generation.load(Ordering::SeqCst),
            };
            frames.push(envelope(
                "subscribed",
                id,
                None,
                None,
                &json!({"channel": c.name(), "sid": sid}).to_string(),
            ));
            let v = self.s.lock();
            let batch = v.batch_no;
            sub.from_batch = batch;
            let known: Vec<MarketId> = sub.tickers.iter().flatten().filter_map(|t| self.market_of(t)).collect();
            for m in &known {
                sub.cutoff.insert(*m, batch);
            }
            match c {
                Channel::Orderbook => {
                    for m in known {
                        frames.extend(self.snapshot(&v.exchange, &mut sub, m, None));
                    }
                }
                Channel::Ticker if send_initial_snapshot => {
                    let all: Vec<MarketId> = match &sub.tickers {
                        None => (0..v.exchange.markets.len() as MarketId).collect(),
                        Some(_) => known,
                    };
                    for m in all {
                        let state = v.exchange.ticker_state(m);
                        let now = self.s.clock.now_ms();
                        frames.push(self.ticker_frame(&sub, m, &state, now));
                    }
                }
                _ => {}
            }
            drop(v);
            self.subs.push(sub);
        }
        Ok(frames)
    }

    fn unsubscribe(&mut self, id: Option<i64>, p: &Map<String, Value>) -> Frames {
        let sids: Vec<u64> = match p.get("sids") {
            None | Some(Value::Null) => return vec![error_frame(id, None, &err(4, "Subscription IDs required"))],
            Some(Value::Array(list)) if list.is_empty() => return vec![error_frame(id, None, &err(4, "Subscription IDs required"))],
            Some(Value::Array(list)) => match list.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>() {
                Some(s) => s,
                None => return vec![error_frame(id, None, &err(1, "sids must be an array of integers"))],
            },
            Some(_) => return vec![error_frame(id, None, &err(1, "sids must be an array of integers"))],
        };
        let mut frames = Vec::new();
        for sid in sids {
            match self.subs.iter().position(|s| s.sid == sid) {
                Some(i) => {
                    let sub = self.subs.remove(i);
                    frames.push(envelope("unsubscribed", id, Some(sid), Some(sub.seq + 1), ""));
                }
                None => frames.push(error_frame(id, None, &err(7, format!("Unknown subscription ID {sid}")))),
            }
        }
        frames
    }

    fn update_subscription(&mut self, id: Option<i64>, p: &Map<String, Value>) -> Result<Frames, WsError> {
        let action = match p.get("action") {
            None | Some(Value::Null) => return Err(err(15, "Action required")),
            Some(Value::String(a)) => a.clone(),
            Some(_) => return Err(err(1, "action must be a string")),
        };
        let sid = match (p.get("sid").filter(|v| !v.is_null()), p.get("sids").filter(|v| !v.is_null())) {
            (Some(s), None) => s.as_u64().ok_or_else(|| err(1, "sid must be an integer"))?,
            (None, Some(Value::Array(list))) if list.len() == 1 => {
                list[0].as_u64().ok_or_else(|| err(1, "sids must be an array of integers"))?
            }
            (None, Some(Value::Array(_))) | (None, None) | (Some(_), Some(_)) => {
                return Err(err(12, "Exactly one subscription ID is required"))
            }
            (None, Some(_)) => return Err(err(1, "sids must be an array of integers")),
        };
        let i = self
            .subs
            .iter()
            .position(|s| s.sid == sid)
            .ok_or_else(|| err(7, format!("Unknown subscription ID {sid}")))?;
        let channel = self.subs[i].channel;
        match action.as_str() {
            "add_markets" | "delete_markets" if !channel.filterable() => {
                Err(err(13, format!("Action {action} is not supported by {}", channel.name())))
            }
            "add_markets" => {
                let filter = self.market_filter(p, channel != Channel::Orderbook)?;
                if filter.is_none() {
                    return Err(err(2, "market_tickers required"));
                }
                let snapshot = flag(p, "send_initial_snapshot")?;
                Ok(self.add_markets(id, i, filter, snapshot))
            }
            "delete_markets" => {
                let filter = self
                    .market_filter(p, channel != Channel::Orderbook)?
                    .ok_or_else(|| err(2, "market_tickers required"))?;
                let sub = &mut self.subs[i];
                let Some(tickers) = sub.tickers.as_mut() else {
                    return Err(err(13, "The subscription has no market filter to delete from"));
                };
                tickers.retain(|t| !filter.contains(t));
                let remove: Vec<MarketId> = filter.iter().filter_map(|t| self.market_of(t)).collect();
                let sub = &mut self.subs[i];
                for m in remove {
                    sub.cutoff.remove(&m);
                }
                Ok(vec![self.ok_ack(id, i)])
            }
            "get_snapshot" => {
                if channel != Channel::Orderbook {
                    return Err(err(13, format!("get_snapshot is not supported by {}", channel.name())));
                }
                let wanted: Vec<String> = match p.get("market_tickers") {
                    Some(Value::Array(list)) if !list.is_empty() => list
                        .iter()
                        .map(|t| t.as_str().map(String::from))
                        .collect::<Option<Vec<String>>>()
                        .ok_or_else(|| err(1, "market_tickers must be an array of strings"))?,
                    _ => return Err(err(2, "market_tickers required for get_snapshot")),
                };
                let mut markets = Vec::new();
                for t in &wanted {
                    let held = self.subs[i].tickers.as_ref().is_some_and(|ts| ts.contains(t));
                    match self.market_of(t) {
                        Some(m) if held => markets.push(m),
                        _ => return Err(err(11, format!("Market {t} is not part of subscription {sid}"))),
                    }
                }
                let v = self.s.lock();
                let batch = v.batch_no;
                let mut sub = std::mem::replace(&mut self.subs[i], placeholder_sub());
                let mut frames = Vec::new();
                for m in markets {
                    sub.cutoff.insert(m, batch);
                    frames.extend(self.snapshot(&v.exchange, &mut sub, m, id));
                }
                drop(v);
                self.subs[i] = sub;
                Ok(frames)
            }
            other => Err(err(13, format!("Unsupported action {other:?}"))),
        }
    }

    /// Merges markets into subscription `i` (update_subscription add_markets, or a repeated
    /// subscribe): `ok` with the full list, then snapshots of the added markets.
    fn add_markets(&mut self, id: Option<i64>, i: usize, filter: Option<Vec<String>>, ticker_snapshot: bool) -> Frames {
        let channel = self.subs[i].channel;
        let mut added: Vec<String> = Vec::new();
        let sub = &mut self.subs[i];
        match (sub.tickers.as_mut(), filter) {
            (Some(tickers), Some(new)) => {
                for t in new {
                    if !tickers.contains(&t) {
                        tickers.push(t.clone());
                        added.push(t);
                    }
                }
            }
            // A repeated subscribe without a filter widens the subscription to every market
            // (never for orderbook_delta, whose subscribe always names markets).
            (Some(_), None) => {
                sub.tickers = None;
                sub.cutoff.clear();
            }
            // Already every market.
            (None, _) => {}
        }
        let mut frames = vec![self.ok_ack(id, i)];
        if added.is_empty() {
            return frames;
        }
        let v = self.s.lock();
        let batch = v.batch_no;
        let now = self.s.clock.now_ms();
        let mut sub = std::mem::replace(&mut self.subs[i], placeholder_sub());
        for t in &added {
            let Some(m) = self.market_of(t) else { continue };
            sub.cutoff.insert(m, batch);
            match channel {
                Channel::Orderbook => frames.extend(self.snapshot(&v.exchange, &mut sub, m, None)),
                Channel::Ticker if ticker_snapshot => {
                    let state = v.exchange.ticker_state(m);
                    frames.push(self.ticker_frame(&sub, m, &state, now));
                }
                _ => {}
            }
        }
        drop(v);
        self.subs[i] = sub;
        frames
    }

    fn ok_ack(&mut self, id: Option<i64>, i: usize) -> String {
        let sub = &mut self.subs[i];
        sub.seq += 1;
        let msg = match (&sub.tickers, sub.skip_ticker_ack) {
            (Some(t), false) => json!({"market_tickers": t}),
            _ => json!({}),
        };
        envelope("ok", id, Some(sub.sid), Some(sub.seq), &msg.to_string())
    }

    // ------------------------------------------------------------------ data

    /// The seq for a subscription's next data message, applying an armed seq fault once.
    /// Returns (seq, send twice).
    fn data_seq(&self, sub: &mut Sub) -> (u64, bool) {
        let gen = self.s.faults.seq_generation.load(Ordering::Relaxed);
        let mut twice = false;
        if gen != sub.seq_gen {
            sub.seq_gen = gen;
            let fault = self.s.faults.seq_fault.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match fault {
                Some(Fault::SkipSeq { count }) => sub.seq += count,
                Some(Fault::DuplicateSeq) => twice = true,
                _ => {}
            }
        }
        sub.seq += 1;
        (sub.seq, twice)
    }

    fn sequenced(&self, out: &mut Frames, sub: &mut Sub, kind: &str, id: Option<i64>, msg: &str) {
        let (seq, twice) = self.data_seq(sub);
        let frame = envelope(kind, id, Some(sub.sid), Some(seq), msg);
        if twice {
            out.push(frame.clone());
        }
        out.push(frame);
    }

    fn meta(&self, market: MarketId) -> (&str, &str) {
        match self.markets.get(market as usize) {
            Some(m) => (&m.ticker, &m.uuid),
            None => ("", ""),
        }
    }

    fn snapshot(&self, ex: &Exchange, sub: &mut Sub, market: MarketId, id: Option<i64>) -> Frames {
        let Some(m) = ex.markets.get(market as usize) else {
            return Vec::new();
        };
        let mut msg = Map::new();
        msg.insert("market_ticker".into(), json!(m.spec.ticker));
        msg.insert("market_id".into(), json!(m.uuid));
        for (side, name) in [(Side::Bid, "yes"), (Side::Ask, "no")] {
            let levels = wire::book_levels(m, side, sub.use_yes_price, 0);
            if levels.is_empty() {
                continue;
            }
            let fp: Vec<Value> = levels.iter().map(|(p, q)| json!([p.dollars(), q.fp()])).collect();
            let dollars: Vec<Value> = levels.iter().map(|(p, q)| json!([p.dollars(), q.whole()])).collect();
            let cents: Vec<Value> = levels.iter().map(|(p, q)| json!([p.cents_rounded(), q.whole()])).collect();
            msg.insert(format!("{name}_dollars_fp"), Value::Array(fp));
            msg.insert(format!("{name}_dollars"), Value::Array(dollars));
            msg.insert(name.to_string(), Value::Array(cents));
        }
        let mut out = Vec::new();
        self.sequenced(&mut out, sub, "orderbook_snapshot", id, &Value::Object(msg).to_string());
        out
    }

    fn ticker_frame(&self, sub: &Sub, market: MarketId, st: &TickerState, ts_ms: u64) -> String {
        let (ticker, uuid) = self.meta(market);
        let bid = st.yes_bid.map_or(Price(0), |b| b.0);
        let ask = st.yes_ask.map_or(Price(10_000), |a| a.0);
        let last = st.last_price.unwrap_or(Price(0));
        let e = self.epoch_ms;
        // Open interest in whole dollars at the last price; volume is the exact traded notional.
        let dollars = |q: Qty| (q.0 as i128 * i128::from(last.0) / 1_000_000) as i64;
        let msg = json!({
            "market_ticker": ticker,
            "market_id": uuid,
            "price_dollars": st.last_price.map_or(String::new(), |p| p.dollars()),
            "yes_bid_dollars": bid.dollars(),
            "yes_ask_dollars": ask.dollars(),
            "no_bid_dollars": ask.complement().dollars(),
            "no_ask_dollars": bid.complement().dollars(),
            "yes_bid_size_fp": st.yes_bid.map_or(Qty::ZERO, |b| b.1).fp(),
            "yes_ask_size_fp": st.yes_ask.map_or(Qty::ZERO, |a| a.1).fp(),
            "volume_fp": st.volume.fp(),
            "open_interest_fp": st.open_interest.fp(),
            "dollar_volume": st.notional_volume.0 / 1_000_000,
            "dollar_open_interest": dollars(st.open_interest),
            "last_trade_size_fp": st.last_trade_qty.fp(),
            "ts": wire::unix_s(e, ts_ms),
            "ts_ms": wire::unix_ms(e, ts_ms),
            "time": wire::rfc3339(e, ts_ms),
            "price": last.cents_rounded(),
            "yes_bid": bid.cents_rounded(),
            "yes_ask": ask.cents_rounded(),
            "volume": st.volume.whole(),
            "open_interest": st.open_interest.whole(),
        });
        envelope("ticker", None, Some(sub.sid), None, &msg.to_string())
    }

    #[allow(clippy::too_many_arguments)]
    fn delta_msg(
        &self,
        sub: &Sub,
        market: MarketId,
        side: Side,
        price: Price,
        delta: Qty,
        owner: AccountId,
        coid: &str,
        ts_ms: u64,
    ) -> String {
        let (ticker, uuid) = self.meta(market);
        let shown = match side {
            Side::Ask if !sub.use_yes_price => price.complement(),
            _ => price,
        };
        let e = self.epoch_ms;
        let mut msg = json!({
            "market_ticker": ticker,
            "market_id": uuid,
            "price_dollars": shown.dollars(),
            "delta_fp": delta.fp(),
            "side": outcome_side(side),
            "price": shown.cents_rounded(),
            "delta": delta.whole(),
            "ts": wire::rfc3339(e, ts_ms),
            "ts_ms": wire::unix_ms(e, ts_ms),
        });
        if self.account == Some(owner) && !coid.is_empty() {
            msg["client_order_id"] = json!(coid);
            msg["subaccount"] = json!(0);
        }
        msg.to_string()
    }

    fn trade_msg(&self, t: &TradeRecord) -> String {
        let (ticker, uuid) = self.meta(t.market);
        let e = self.epoch_ms;
        json!({
            "trade_id": ids::encode(IdKind::Trade, t.trade_id),
            "market_ticker": ticker,
            "market_id": uuid,
            "yes_price_dollars": t.yes_price.dollars(),
            "no_price_dollars": t.yes_price.complement().dollars(),
            "count_fp": t.qty.fp(),
            "taker_side": outcome_side(t.taker_side),
            "taker_outcome_side": outcome_side(t.taker_side),
            "taker_book_side": t.taker_side.name(),
            "is_block_trade": false,
            "ts": wire::unix_s(e, t.ts_ms),
            "ts_ms": wire::unix_ms(e, t.ts_ms),
            "yes_price": t.yes_price.cents_rounded(),
            "no_price": t.yes_price.complement().cents_rounded(),
            "count": t.qty.whole(),
        })
        .to_string()
    }

    fn fill_msg(&self, f: &FillRecord) -> String {
        let (ticker, _) = self.meta(f.market);
        let e = self.epoch_ms;
        json!({
            "trade_id": ids::encode(IdKind::Trade, f.trade_id),
            "order_id": ids::encode(IdKind::Order, f.order_id),
            "client_order_id": f.client_order_id,
            "market_ticker": ticker,
            "exchange_index": 0,
            "is_taker": f.is_taker,
            "side": if f.phrasing.contract_yes { "yes" } else { "no" },
            "action": if f.phrasing.buy { "buy" } else { "sell" },
            "purchased_side": outcome_side(f.side),
            "outcome_side": outcome_side(f.side),
            "book_side": f.side.name(),
            "yes_price_dollars": f.yes_price.dollars(),
            "no_price_dollars": f.yes_price.complement().dollars(),
            "count_fp": f.qty.fp(),
            "fee_cost": f.fee.dollars(6),
            "post_position_fp": f.post_position.fp(),
            "ts": wire::unix_s(e, f.ts_ms),
            "ts_ms": wire::unix_ms(e, f.ts_ms),
            "subaccount": 0,
            "yes_price": f.yes_price.cents_rounded(),
            "no_price": f.yes_price.complement().cents_rounded(),
            "count": f.qty.whole(),
            "post_position": f.post_position.whole(),
        })
        .to_string()
    }

    fn user_order_msg(&self, o: &OrderRecord) -> String {
        let (ticker, _) = self.meta(o.market);
        let e = self.epoch_ms;
        let mut msg = json!({
            "order_id": o.uuid(),
            "user_id": self.user_id,
            "ticker": ticker,
            "exchange_index": 0,
            "status": o.status.name(),
            "side": if o.phrasing.contract_yes { "yes" } else { "no" },
            "action": if o.phrasing.buy { "buy" } else { "sell" },
            "is_yes": o.phrasing.contract_yes,
            "outcome_side": outcome_side(o.side),
            "book_side": o.side.name(),
            "type": "limit",
            "yes_price_dollars": o.price.dollars(),
            "no_price_dollars": o.price.complement().dollars(),
            "fill_count_fp": o.filled.fp(),
            "remaining_count_fp": o.remaining.fp(),
            "initial_count_fp": o.initial.fp(),
            "taker_fill_cost_dollars": o.taker_fill_cost.dollars(6),
            "maker_fill_cost_dollars": o.maker_fill_cost.dollars(6),
            "taker_fees_dollars": o.taker_fees.dollars(6),
            "maker_fees_dollars": o.maker_fees.dollars(6),
            "client_order_id": o.client_order_id,
            "self_trade_prevention_type": o.stp.name(),
            "time_in_force": o.tif.name(),
            "post_only": o.post_only,
            "reduce_only": o.reduce_only,
            "created_time": wire::rfc3339(e, o.created_ms),
            "created_ts_ms": wire::unix_ms(e, o.created_ms),
            "last_update_time": wire::rfc3339(e, o.updated_ms),
            "last_updated_ts_ms": wire::unix_ms(e, o.updated_ms),
            "last_update_reason": o.last_update.name(),
            "subaccount_number": 0,
            "yes_price": o.price.cents_rounded(),
            "no_price": o.price.complement().cents_rounded(),
            "fill_count": o.filled.whole(),
            "remaining_count": o.remaining.whole(),
            "initial_count": o.initial.whole(),
        });
        if let Some(t) = o.expiration_ms {
            msg["expiration_time"] = json!(wire::rfc3339(e, t));
            msg["expiration_ts_ms"] = json!(wire::unix_ms(e, t));
        }
        msg.to_string()
    }

    fn position_msg(&self, market: MarketId, p: &Position) -> String {
        let (ticker, _) = self.meta(market);
        json!({
            "user_id": self.user_id,
            "market_ticker": ticker,
            "position_fp": p.qty.fp(),
            "position_cost_dollars": p.cost.dollars(4),
            "realized_pnl_dollars": p.realized_pnl.dollars(4),
            "fees_paid_dollars": p.fees_paid.dollars(4),
            "position_fee_cost_dollars": p.fees_paid.dollars(4),
            "volume_fp": p.volume.fp(),
            "subaccount": 0,
            "position": p.qty.whole(),
            "position_cost": p.cost.centicents_floor(),
            "realized_pnl": p.realized_pnl.centicents_floor(),
            "fees_paid": p.fees_paid.centicents_floor(),
            "position_fee_cost": p.fees_paid.centicents_floor(),
            "volume": p.volume.whole(),
        })
        .to_string()
    }

    fn lifecycle_msg(&self, market: MarketId, kind: LifecycleKind, ts_ms: u64) -> String {
        let (ticker, _) = self.meta(market);
        let ts = wire::unix_s(self.epoch_ms, ts_ms);
        let settlement = |r: MarketResult| match r {
            MarketResult::Yes => "1.0000",
            MarketResult::No => "0.0000",
        };
        match kind {
            LifecycleKind::Activated => {
                json!({"market_ticker": ticker, "event_type": "activated", "is_deactivated": false, "exchange_index": 0})
            }
            LifecycleKind::Deactivated => {
                json!({"market_ticker": ticker, "event_type": "deactivated", "is_deactivated": true, "exchange_index": 0})
            }
            LifecycleKind::Closed => {
                json!({"market_ticker": ticker, "event_type": "close_date_updated", "close_ts": ts, "exchange_index": 0})
            }
            LifecycleKind::Determined(r) => json!({
                "market_ticker": ticker, "event_type": "determined", "result": r.name(),
                "determination_ts": ts, "settlement_value": settlement(r), "exchange_index": 0,
            }),
            LifecycleKind::Settled => json!({"market_ticker": ticker, "event_type": "settled", "settled_ts": ts, "exchange_index": 0}),
        }
        .to_string()
    }

    fn on_batch(&mut self, batch: &Batch) -> Frames {
        let mut out = Vec::new();
        if self.subs.is_empty() {
            return out;
        }
        if let Some(max) = batch.events.iter().filter_map(event_market).max() {
            if max as usize >= self.markets.len() {
                self.markets = market_table(&self.s.lock().exchange);
            }
        }
        let mut subs = std::mem::take(&mut self.subs);
        let no = batch.no;
        for ev in &batch.events {
            for sub in subs.iter_mut() {
                match (sub.channel, ev) {
                    (
                        Channel::Orderbook,
                        ExEvent::BookDelta {
                            market,
                            side,
                            price,
                            delta,
                            owner,
                            client_order_id,
                            ts_ms,
                        },
                    ) if sub.accepts(*market, no) => {
                        let msg = self.delta_msg(sub, *market, *side, *price, *delta, *owner, client_order_id, *ts_ms);
                        self.sequenced(&mut out, sub, "orderbook_delta", None, &msg);
                    }
                    (Channel::Trade, ExEvent::Trade(t)) if sub.accepts(t.market, no) => {
                        let msg = self.trade_msg(t);
                        self.sequenced(&mut out, sub, "trade", None, &msg);
                    }
                    (Channel::Ticker, ExEvent::Ticker { market, state, ts_ms }) if sub.accepts(*market, no) => {
                        out.push(self.ticker_frame(sub, *market, state, *ts_ms));
                    }
                    (Channel::Fill, ExEvent::Fill { account, fill }) if self.account == Some(*account) && sub.accepts(fill.market, no) => {
                        out.push(envelope("fill", None, Some(sub.sid), None, &self.fill_msg(fill)));
                    }
                    (Channel::UserOrders, ExEvent::UserOrder { account, order })
                        if self.account == Some(*account) && sub.accepts(order.market, no) =>
                    {
                        out.push(envelope("user_order", None, Some(sub.sid), None, &self.user_order_msg(order)));
                    }
                    (Channel::Positions, ExEvent::Position { account, market, position })
                        if self.account == Some(*account) && sub.accepts(*market, no) =>
                    {
                        out.push(envelope(
                            "market_position",
                            None,
                            Some(sub.sid),
                            None,
                            &self.position_msg(*market, position),
                        ));
                    }
                    (Channel::Lifecycle, ExEvent::Lifecycle { market, kind, ts_ms }) if no > sub.from_batch => {
                        let msg = self.lifecycle_msg(*market, *kind, *ts_ms);
                        self.sequenced(&mut out, sub, "market_lifecycle_v2", None, &msg);
                    }
                    _ => {}
                }
            }
        }
        self.subs = subs;
        out
    }

    /// The broadcast overwrote batches this connection had not seen: every subscription has
    /// lost data, so each gets the terminal error 25 and ends.
    fn on_lag(&mut self) -> Frames {
        let e = err(25, "Subscription outbound buffer overflow");
        self.subs.drain(..).map(|sub| error_frame(None, Some(sub.sid), &e)).collect()
    }
}

fn event_market(ev: &ExEvent) -> Option<MarketId> {
    Some(match ev {
        ExEvent::BookDelta { market, .. } => *market,
        ExEvent::Trade(t) => t.market,
        ExEvent::Ticker { market, .. } => *market,
        ExEvent::Fill { fill, .. } => fill.market,
        ExEvent::UserOrder { order, .. } => order.market,
        ExEvent::Position { market, .. } => *market,
        ExEvent::Lifecycle { market, .. } => *market,
    })
}

fn placeholder_sub() -> Sub {
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

fn flag(p: &Map<String, Value>, name: &str) -> Result<bool, WsError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(err(1, format!("{name} must be a boolean"))),
    }
}

fn texts(frames: Frames) -> Vec<Message> {
    frames.into_iter().map(|f| Message::Text(f.into())).collect()
}
