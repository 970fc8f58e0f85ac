//! The client commands: subscribe, unsubscribe, list and update subscriptions (add/delete
//! markets, get_snapshot). Kalshi's spec leaves some replies open; the module doc of the
//! WebSocket layer records the choices made here.

use super::session::{envelope, err, error_frame, placeholder_sub, Channel, Frames, Session, Sub, WsError};
use crate::engine::MarketId;
use crate::ids;
use crate::ids::IdKind;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

impl Session {
    pub(super) fn command(&mut self, bytes: &[u8]) -> Frames {
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

    pub(super) fn subscribe(&mut self, id: Option<i64>, p: &Map<String, Value>) -> Result<Frames, WsError> {
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
}

fn flag(p: &Map<String, Value>, name: &str) -> Result<bool, WsError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(err(1, format!("{name} must be a boolean"))),
    }
}
