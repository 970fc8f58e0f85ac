//! The WebSocket API over real TLS sockets: auth on the upgrade, every channel, seq rules,
//! snapshots lined up with deltas, error codes, faults, heartbeats and slow readers.

mod common;

use common::{Venue, DECI, LIN, TAPER};
use futures_util::{SinkExt, StreamExt};
use kalshi_proto::Side;
use local_exchange::faults::Fault;
use local_exchange::server::{Clock, ServerConfig};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WS_PATH: &str = "/trade-api/ws/v2";

fn connector(v: &Venue) -> Connector {
    let ca = std::fs::read_to_string(v.running.info.ca_file.as_ref().unwrap()).unwrap();
    Connector::Rustls(kalshi_proto::tls::client_config(&ca).unwrap())
}

/// The upgrade request, signed as account `who` (None: unsigned). `sign_as` signs with another
/// account's key while presenting `who`'s key id (a bad signature).
fn request(v: &Venue, who: Option<usize>, sign_as: Option<usize>) -> tungstenite::handshake::client::Request {
    let mut req = v.running.info.ws_url.as_str().into_client_request().unwrap();
    if let Some(i) = who {
        let signer = &v.signers[sign_as.unwrap_or(i)];
        for (k, val) in signer.headers(&v.running.info.accounts[i].key_id, Clock::wall_ms(), "GET", WS_PATH) {
            req.headers_mut().insert(k, HeaderValue::from_str(&val).unwrap());
        }
    }
    req
}

async fn try_connect(v: &Venue, who: Option<usize>, sign_as: Option<usize>) -> Result<Ws, tungstenite::Error> {
    tokio_tungstenite::connect_async_tls_with_config(request(v, who, sign_as), None, true, Some(connector(v)))
        .await
        .map(|(ws, _)| ws)
}

async fn connect(v: &Venue, who: usize) -> Ws {
    try_connect(v, Some(who), None).await.expect("WS connects")
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON message (pings and pongs skipped).
async fn recv(ws: &mut Ws) -> Value {
    recv_within(ws, Duration::from_secs(5)).await.expect("a message within 5 s")
}

async fn recv_within(ws: &mut Ws, d: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + d;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()?;
        match msg {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

/// Nothing but pings arrives for `ms`.
async fn silent(ws: &mut Ws, ms: u64) {
    if let Some(v) = recv_within(ws, Duration::from_millis(ms)).await {
        panic!("expected silence, got {v}");
    }
}

async fn call(ws: &mut Ws, v: Value) -> Value {
    send(ws, v).await;
    recv(ws).await
}

fn assert_error(v: &Value, code: i64, id: Option<i64>) {
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["msg"]["code"], code, "{v}");
    assert!(v["msg"]["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    match id {
        Some(id) => assert_eq!(v["id"], id, "{v}"),
        None => assert!(v.get("id").is_none(), "{v}"),
    }
}

fn v2_order(ticker: &str, side: &str, price: &str, count: &str, coid: &str) -> Value {
    json!({"ticker": ticker, "side": side, "price": price, "count": count, "client_order_id": coid,
           "time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross"})
}

async fn admin_lifecycle(v: &Venue, ticker: &str, body: Value) {
    let url = format!("{}/markets/{ticker}/lifecycle", v.running.info.admin_url);
    let resp = v
        .http
        .post(url)
        .header("X-Admin-Token", &v.running.info.admin_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn upgrade_requires_a_valid_signature() {
    let v = common::start().await;
    for (who, sign_as) in [(None, None), (Some(0), Some(1))] {
        match try_connect(&v, who, sign_as).await {
            Err(tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 401);
                let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or(b"null")).unwrap();
                assert_eq!(body["error"]["code"], "unauthorized", "{body}");
            }
            Err(e) => panic!("expected HTTP 401, got {e}"),
            Ok(_) => panic!("connected without a valid signature"),
        }
    }
    for who in 0..3 {
        let mut ws = connect(&v, who).await;
        let r = call(&mut ws, json!({"id": 1, "cmd": "list_subscriptions"})).await;
        assert_eq!(r, json!({"id": 1, "type": "ok", "msg": []}));
    }
    assert!(v.running.shared.counters.ws_connections.load(Ordering::Relaxed) >= 3);
}

#[tokio::test]
async fn orderbook_snapshot_deltas_and_subscription_management() {
    let v = common::start().await;
    v.lp_order(LIN, Side::Bid, "0.40", "10");
    v.lp_order(LIN, Side::Ask, "0.60", "5");

    let mut a = connect(&v, 0).await;
    let mut b = connect(&v, 1).await;
    send(
        &mut a,
        json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_ticker": LIN}}),
    )
    .await;
    assert_eq!(
        recv(&mut a).await,
        json!({"id": 1, "type": "subscribed", "msg": {"channel": "orderbook_delta", "sid": 1}})
    );
    let snap = recv(&mut a).await;
    assert_eq!(snap["type"], "orderbook_snapshot");
    assert_eq!((snap["sid"].as_u64(), snap["seq"].as_u64()), (Some(1), Some(1)));
    assert!(snap.get("id").is_none());
    let m = &snap["msg"];
    assert_eq!(m["market_ticker"], LIN);
    assert!(m["market_id"].as_str().is_some_and(|s| s.len() == 36));
    assert_eq!(m["yes_dollars_fp"], json!([["0.4000", "10.00"]]));
    assert_eq!(m["no_dollars_fp"], json!([["0.4000", "5.00"]]));
    assert_eq!(m["yes"], json!([[40, 10]]));
    assert_eq!(m["no"], json!([[40, 5]]));
    assert_eq!(m["yes_dollars"], json!([["0.4000", 10]]));

    send(
        &mut b,
        json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_tickers": [LIN], "use_yes_price": true}}),
    )
    .await;
    assert_eq!(recv(&mut b).await["type"], "subscribed");
    let snap_b = recv(&mut b).await;
    assert_eq!(snap_b["msg"]["no_dollars_fp"], json!([["0.6000", "5.00"]]));
    assert_eq!(snap_b["msg"]["yes_dollars_fp"], json!([["0.4000", "10.00"]]));

    // Account 0's own order: its client_order_id shows to account 0 only.
    let (st, _) = v
        .post(0, "/portfolio/events/orders", v2_order(LIN, "bid", "0.45", "3", "mine-1"))
        .await;
    assert_eq!(st, 201);
    let d = recv(&mut a).await;
    assert_eq!(d["type"], "orderbook_delta");
    assert_eq!((d["sid"].as_u64(), d["seq"].as_u64()), (Some(1), Some(2)));
    let m = &d["msg"];
    assert_eq!(
        (m["side"].as_str(), m["price_dollars"].as_str(), m["delta_fp"].as_str()),
        (Some("yes"), Some("0.4500"), Some("3.00"))
    );
    assert_eq!((m["price"].as_i64(), m["delta"].as_i64()), (Some(45), Some(3)));
    assert_eq!(m["client_order_id"], "mine-1");
    assert_eq!(m["subaccount"], 0);
    assert!(m["ts"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')), "{m}");
    assert!(m["ts_ms"].as_u64().is_some_and(|t| t > 1_600_000_000_000));
    let d = recv(&mut b).await;
    assert_eq!(d["msg"]["price_dollars"], "0.4500");
    assert!(d["msg"].get("client_order_id").is_none(), "{d}");
    assert_eq!(d["seq"], 2);

    // A YES offer at 0.55 is a NO bid at 0.45 (NO-leg price), or 0.55 with use_yes_price.
    v.lp_order(LIN, Side::Ask, "0.55", "2");
    let d = recv(&mut a).await;
    assert_eq!(d["seq"], 3);
    assert_eq!(
        (
            d["msg"]["side"].as_str(),
            d["msg"]["price_dollars"].as_str(),
            d["msg"]["price"].as_i64()
        ),
        (Some("no"), Some("0.4500"), Some(45))
    );
    assert!(d["msg"].get("client_order_id").is_none());
    let d = recv(&mut b).await;
    assert_eq!(
        (d["msg"]["side"].as_str(), d["msg"]["price_dollars"].as_str()),
        (Some("no"), Some("0.5500"))
    );

    // get_snapshot: carries the command id and takes a seq; deltas go on from there.
    send(
        &mut a,
        json!({"id": 7, "cmd": "update_subscription", "params": {"sids": [1], "action": "get_snapshot", "market_tickers": [LIN]}}),
    )
    .await;
    let s = recv(&mut a).await;
    assert_eq!(
        (s["type"].as_str(), s["id"].as_i64(), s["sid"].as_u64(), s["seq"].as_u64()),
        (Some("orderbook_snapshot"), Some(7), Some(1), Some(4))
    );
    assert_eq!(s["msg"]["yes_dollars_fp"], json!([["0.4000", "10.00"], ["0.4500", "3.00"]]));
    assert_eq!(s["msg"]["no_dollars_fp"], json!([["0.4000", "5.00"], ["0.4500", "2.00"]]));
    v.lp_order(LIN, Side::Bid, "0.30", "1");
    assert_eq!(recv(&mut a).await["seq"], 5);

    // add_markets: ok with the full list (takes a seq), then the added market's snapshot.
    send(
        &mut a,
        json!({"id": 8, "cmd": "update_subscription", "params": {"sid": 1, "action": "add_markets", "market_tickers": [DECI]}}),
    )
    .await;
    assert_eq!(
        recv(&mut a).await,
        json!({"id": 8, "type": "ok", "sid": 1, "seq": 6, "msg": {"market_tickers": [LIN, DECI]}})
    );
    let s = recv(&mut a).await;
    assert_eq!(
        (s["type"].as_str(), s["seq"].as_u64(), s["msg"]["market_ticker"].as_str()),
        (Some("orderbook_snapshot"), Some(7), Some(DECI))
    );
    assert!(
        s["msg"].get("yes_dollars_fp").is_none() && s["msg"].get("no_dollars_fp").is_none(),
        "{s}"
    );
    v.lp_order(DECI, Side::Bid, "0.123", "1.5");
    let d = recv(&mut a).await;
    assert_eq!(
        (d["seq"].as_u64(), d["msg"]["price_dollars"].as_str(), d["msg"]["delta_fp"].as_str()),
        (Some(8), Some("0.1230"), Some("1.50"))
    );

    // delete_markets: LIN deltas stop.
    send(
        &mut a,
        json!({"id": 9, "cmd": "update_subscription", "params": {"sids": [1], "action": "delete_markets", "market_tickers": [LIN]}}),
    )
    .await;
    assert_eq!(
        recv(&mut a).await,
        json!({"id": 9, "type": "ok", "sid": 1, "seq": 9, "msg": {"market_tickers": [DECI]}})
    );
    v.lp_order(LIN, Side::Bid, "0.31", "1");
    v.lp_order(DECI, Side::Bid, "0.124", "1");
    let d = recv(&mut a).await;
    assert_eq!((d["seq"].as_u64(), d["msg"]["market_ticker"].as_str()), (Some(10), Some(DECI)));

    // A repeated subscribe merges into the existing subscription.
    send(
        &mut a,
        json!({"id": 10, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_ticker": TAPER}}),
    )
    .await;
    assert_eq!(
        recv(&mut a).await,
        json!({"id": 10, "type": "ok", "sid": 1, "seq": 11, "msg": {"market_tickers": [DECI, TAPER]}})
    );
    let s = recv(&mut a).await;
    assert_eq!((s["seq"].as_u64(), s["msg"]["market_ticker"].as_str()), (Some(12), Some(TAPER)));

    send(&mut a, json!({"id": 11, "cmd": "subscribe", "params": {"channels": ["trade"]}})).await;
    assert_eq!(
        recv(&mut a).await,
        json!({"id": 11, "type": "subscribed", "msg": {"channel": "trade", "sid": 2}})
    );
    let l = call(&mut a, json!({"id": 12, "cmd": "list_subscriptions"})).await;
    assert_eq!(
        l,
        json!({"id": 12, "type": "ok", "msg": [{"channel": "orderbook_delta", "sid": 1}, {"channel": "trade", "sid": 2}]})
    );

    let u = call(&mut a, json!({"id": 13, "cmd": "unsubscribe", "params": {"sids": [1]}})).await;
    assert_eq!(u, json!({"id": 13, "type": "unsubscribed", "sid": 1, "seq": 13}));
    v.lp_order(DECI, Side::Bid, "0.125", "1");
    silent(&mut a, 200).await;
    let l = call(&mut a, json!({"id": 14, "cmd": "list_subscriptions"})).await;
    assert_eq!(l["msg"], json!([{"channel": "trade", "sid": 2}]));
    // Sids are never reused on a connection.
    send(
        &mut a,
        json!({"id": 15, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_ticker": DECI}}),
    )
    .await;
    assert_eq!(recv(&mut a).await["msg"], json!({"channel": "orderbook_delta", "sid": 3}));
    let s = recv(&mut a).await;
    assert_eq!((s["sid"].as_u64(), s["seq"].as_u64()), (Some(3), Some(1)));
    assert_eq!(
        s["msg"]["yes_dollars_fp"],
        json!([["0.1230", "1.50"], ["0.1240", "1.00"], ["0.1250", "1.00"]])
    );
}

#[tokio::test]
async fn error_codes() {
    let v = common::start().await;
    let mut ws = connect(&v, 0).await;
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_error(&recv(&mut ws).await, 1, None);
    assert_error(&call(&mut ws, json!({"id": "x", "cmd": "list_subscriptions"})).await, 1, None);
    assert_error(&call(&mut ws, json!([1, 2])).await, 1, None);
    assert_error(&call(&mut ws, json!({"id": 2, "cmd": "subscribe"})).await, 2, Some(2));
    assert_error(&call(&mut ws, json!({"id": 3, "cmd": "subscribe", "params": {}})).await, 3, Some(3));
    assert_error(
        &call(&mut ws, json!({"id": 3, "cmd": "subscribe", "params": {"channels": []}})).await,
        3,
        Some(3),
    );
    assert_error(
        &call(&mut ws, json!({"id": 4, "cmd": "unsubscribe", "params": {}})).await,
        4,
        Some(4),
    );
    assert_error(&call(&mut ws, json!({"id": 5, "cmd": "bogus", "params": {}})).await, 5, Some(5));
    assert_error(
        &call(&mut ws, json!({"id": 6, "cmd": "unsubscribe", "params": {"sids": [99]}})).await,
        7,
        Some(6),
    );
    assert_error(
        &call(
            &mut ws,
            json!({"id": 7, "cmd": "subscribe", "params": {"channels": ["trade", "nope"]}}),
        )
        .await,
        8,
        Some(7),
    );
    assert_error(
        &call(
            &mut ws,
            json!({"id": 8, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"]}}),
        )
        .await,
        14,
        Some(8),
    );
    assert_error(
        &call(
            &mut ws,
            json!({"id": 9, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_ids": ["not-a-uuid"]}}),
        )
        .await,
        11,
        Some(9),
    );
    // Nothing was subscribed by the failed commands.
    assert_eq!(
        call(&mut ws, json!({"id": 10, "cmd": "list_subscriptions"})).await["msg"],
        json!([])
    );

    send(&mut ws, json!({"id": 11, "cmd": "subscribe", "params": {"channels": ["trade"]}})).await;
    assert_eq!(recv(&mut ws).await["msg"]["sid"], 1);
    let upd = |params: Value| json!({"id": 12, "cmd": "update_subscription", "params": params});
    assert_error(
        &call(
            &mut ws,
            upd(json!({"sids": [1, 2], "action": "add_markets", "market_tickers": [LIN]})),
        )
        .await,
        12,
        Some(12),
    );
    assert_error(
        &call(&mut ws, upd(json!({"action": "add_markets", "market_tickers": [LIN]}))).await,
        12,
        Some(12),
    );
    assert_error(&call(&mut ws, upd(json!({"sid": 1, "market_tickers": [LIN]}))).await, 15, Some(12));
    assert_error(
        &call(&mut ws, upd(json!({"sid": 1, "action": "get_snapshot", "market_tickers": [LIN]}))).await,
        13,
        Some(12),
    );
    assert_error(&call(&mut ws, upd(json!({"sid": 1, "action": "shuffle"}))).await, 13, Some(12));
    assert_error(
        &call(&mut ws, upd(json!({"sid": 42, "action": "add_markets", "market_tickers": [LIN]}))).await,
        7,
        Some(12),
    );
    assert_error(&call(&mut ws, json!({"id": 13, "cmd": "update_subscription"})).await, 2, Some(13));

    // Malformed frames of every kind leave the connection working.
    ws.send(Message::Binary(vec![0xff, 0x00, 0x13].into())).await.unwrap();
    assert_error(&recv(&mut ws).await, 1, None);
    assert_error(
        &call(&mut ws, json!({"id": 14, "cmd": "subscribe", "params": {"channels": [1]}})).await,
        1,
        Some(14),
    );
    assert_error(
        &call(
            &mut ws,
            json!({"id": 15, "cmd": "subscribe", "params": {"channels": ["trade"], "market_tickers": "X"}}),
        )
        .await,
        1,
        Some(15),
    );
    assert_error(
        &call(&mut ws, json!({"id": 16, "cmd": "unsubscribe", "params": {"sids": [-1]}})).await,
        1,
        Some(16),
    );
    assert_error(
        &call(&mut ws, json!({"id": 17, "cmd": "subscribe", "params": 5})).await,
        1,
        Some(17),
    );
    ws.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
            Some(Ok(Message::Pong(_))) => break,
            Some(Ok(Message::Ping(_))) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    assert_eq!(
        call(&mut ws, json!({"id": 18, "cmd": "list_subscriptions"})).await["msg"],
        json!([{"channel": "trade", "sid": 1}])
    );
}

#[tokio::test]
async fn private_channels_after_a_cross() {
    let v = common::start().await;
    let mut a = connect(&v, 0).await;
    let mut b = connect(&v, 1).await;
    send(
        &mut a,
        json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["fill", "user_orders", "market_positions", "trade", "ticker"]}}),
    )
    .await;
    for sid in 1..=5 {
        let r = recv(&mut a).await;
        assert_eq!(
            (r["type"].as_str(), r["id"].as_i64(), r["msg"]["sid"].as_u64()),
            (Some("subscribed"), Some(1), Some(sid))
        );
    }
    send(
        &mut b,
        json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["fill", "user_orders", "trade"], "market_ticker": LIN}}),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(recv(&mut b).await["type"], "subscribed");
    }

    v.lp_order(LIN, Side::Ask, "0.60", "10");
    let t = recv(&mut a).await;
    assert_eq!((t["type"].as_str(), t["sid"].as_u64()), (Some("ticker"), Some(5)));
    assert!(t.get("seq").is_none());
    assert_eq!(
        (t["msg"]["yes_ask_dollars"].as_str(), t["msg"]["yes_ask_size_fp"].as_str()),
        (Some("0.6000"), Some("10.00"))
    );
    assert_eq!(
        (t["msg"]["yes_bid_dollars"].as_str(), t["msg"]["price_dollars"].as_str()),
        (Some("0.0000"), Some(""))
    );
    assert_eq!(t["msg"]["market_ticker"], LIN);

    let (st, _) = v
        .post(0, "/portfolio/events/orders", v2_order(LIN, "bid", "0.60", "4", "c-fill"))
        .await;
    assert_eq!(st, 201);
    let mut got = std::collections::HashMap::new();
    while got.len() < 5 {
        let m = recv(&mut a).await;
        let kind = m["type"].as_str().unwrap().to_string();
        assert!(got.insert(kind.clone(), m).is_none(), "two {kind} messages");
    }
    let fill = &got["fill"];
    assert_eq!(fill["sid"], 1);
    assert!(fill.get("seq").is_none());
    let f = &fill["msg"];
    assert_eq!(f["market_ticker"], LIN);
    assert_eq!(f["client_order_id"], "c-fill");
    assert_eq!(
        (
            f["side"].as_str(),
            f["action"].as_str(),
            f["outcome_side"].as_str(),
            f["book_side"].as_str()
        ),
        (Some("yes"), Some("buy"), Some("yes"), Some("bid"))
    );
    assert_eq!(f["purchased_side"], "yes");
    assert_eq!(f["is_taker"], true);
    assert_eq!(
        (
            f["yes_price_dollars"].as_str(),
            f["count_fp"].as_str(),
            f["post_position_fp"].as_str()
        ),
        (Some("0.6000"), Some("4.00"), Some("4.00"))
    );
    // 0.07 * 4 * 0.6 * 0.4 = 0.0672, rounded up to the cent.
    assert_eq!(f["fee_cost"], "0.070000");
    assert_eq!(
        (f["yes_price"].as_i64(), f["count"].as_i64(), f["post_position"].as_i64()),
        (Some(60), Some(4), Some(4))
    );
    assert!(f["trade_id"].as_str().is_some() && f["order_id"].as_str().is_some());
    assert!(f["ts"].as_u64().is_some() && f["ts_ms"].as_u64().is_some());

    let trade = &got["trade"];
    assert_eq!((trade["sid"].as_u64(), trade["seq"].as_u64()), (Some(4), Some(1)));
    let tr = &trade["msg"];
    assert_eq!(tr["trade_id"], f["trade_id"]);
    assert_eq!(
        (
            tr["yes_price_dollars"].as_str(),
            tr["no_price_dollars"].as_str(),
            tr["count_fp"].as_str()
        ),
        (Some("0.6000"), Some("0.4000"), Some("4.00"))
    );
    assert_eq!(
        (
            tr["taker_side"].as_str(),
            tr["taker_outcome_side"].as_str(),
            tr["taker_book_side"].as_str()
        ),
        (Some("yes"), Some("yes"), Some("bid"))
    );
    assert_eq!(
        (tr["yes_price"].as_i64(), tr["no_price"].as_i64(), tr["count"].as_i64()),
        (Some(60), Some(40), Some(4))
    );

    let order = &got["user_order"];
    assert_eq!(order["sid"], 2);
    let o = &order["msg"];
    assert_eq!(
        (o["status"].as_str(), o["ticker"].as_str(), o["client_order_id"].as_str()),
        (Some("executed"), Some(LIN), Some("c-fill"))
    );
    assert_eq!(
        (
            o["fill_count_fp"].as_str(),
            o["remaining_count_fp"].as_str(),
            o["initial_count_fp"].as_str()
        ),
        (Some("4.00"), Some("0.00"), Some("4.00"))
    );
    assert_eq!(o["order_id"], f["order_id"]);
    assert_eq!(o["user_id"], v.running.info.accounts[0].user_id);
    assert_eq!(o["taker_fees_dollars"], "0.070000");
    assert_eq!(o["taker_fill_cost_dollars"], "2.400000");

    let pos = &got["market_position"];
    assert_eq!(pos["sid"], 3);
    let p = &pos["msg"];
    assert_eq!(
        (
            p["market_ticker"].as_str(),
            p["position_fp"].as_str(),
            p["position_cost_dollars"].as_str()
        ),
        (Some(LIN), Some("4.00"), Some("2.4000"))
    );
    assert_eq!(
        (p["fees_paid_dollars"].as_str(), p["volume_fp"].as_str()),
        (Some("0.0700"), Some("4.00"))
    );
    // Era-A money fields are centi-cents.
    assert_eq!(
        (p["position"].as_i64(), p["position_cost"].as_i64(), p["fees_paid"].as_i64()),
        (Some(4), Some(24_000), Some(700))
    );

    let tick = &got["ticker"]["msg"];
    assert_eq!(
        (
            tick["price_dollars"].as_str(),
            tick["yes_ask_size_fp"].as_str(),
            tick["volume_fp"].as_str()
        ),
        (Some("0.6000"), Some("6.00"), Some("4.00"))
    );
    assert_eq!(
        (tick["last_trade_size_fp"].as_str(), tick["price"].as_i64(), tick["volume"].as_i64()),
        (Some("4.00"), Some(60), Some(4))
    );

    // Account 1 sees the public trade but none of account 0's private messages.
    let m = recv(&mut b).await;
    assert_eq!((m["type"].as_str(), m["seq"].as_u64()), (Some("trade"), Some(1)));
    silent(&mut b, 300).await;

    // A ticker subscription with send_initial_snapshot gets the current state at once.
    send(
        &mut b,
        json!({"id": 2, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_tickers": [LIN], "send_initial_snapshot": true}}),
    )
    .await;
    assert_eq!(recv(&mut b).await["type"], "subscribed");
    let t = recv(&mut b).await;
    assert_eq!(
        (
            t["type"].as_str(),
            t["msg"]["market_ticker"].as_str(),
            t["msg"]["price_dollars"].as_str()
        ),
        (Some("ticker"), Some(LIN), Some("0.6000"))
    );
    // ...and market_id works as a filter on the ticker channel.
    let uuid = t["msg"]["market_id"].as_str().unwrap().to_string();
    let mut c = connect(&v, 2).await;
    send(
        &mut c,
        json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["ticker"], "market_id": uuid, "send_initial_snapshot": true}}),
    )
    .await;
    assert_eq!(recv(&mut c).await["type"], "subscribed");
    assert_eq!(recv(&mut c).await["msg"]["market_ticker"], LIN);
    silent(&mut c, 100).await;
}

#[tokio::test]
async fn lifecycle_events() {
    let v = common::start().await;
    let mut ws = connect(&v, 0).await;
    send(
        &mut ws,
        json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["market_lifecycle_v2", "market_positions"]}}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["msg"], json!({"channel": "market_lifecycle_v2", "sid": 1}));
    assert_eq!(recv(&mut ws).await["msg"], json!({"channel": "market_positions", "sid": 2}));
    // Account 0 buys 2 YES so settlement has a position to pay.
    v.lp_order(LIN, Side::Ask, "0.50", "2");
    let (st, _) = v.post(0, "/portfolio/events/orders", v2_order(LIN, "bid", "0.50", "2", "")).await;
    assert_eq!(st, 201);
    assert_eq!(recv(&mut ws).await["msg"]["position_fp"], "2.00");

    admin_lifecycle(&v, LIN, json!({"action": "close"})).await;
    let m = recv(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["sid"].as_u64(), m["seq"].as_u64()),
        (Some("market_lifecycle_v2"), Some(1), Some(1))
    );
    assert_eq!(
        (m["msg"]["market_ticker"].as_str(), m["msg"]["event_type"].as_str()),
        (Some(LIN), Some("close_date_updated"))
    );
    assert!(m["msg"]["close_ts"]
        .as_u64()
        .is_some_and(|t| t > 1_600_000_000 && t < 100_000_000_000));

    admin_lifecycle(&v, LIN, json!({"action": "determine", "result": "yes"})).await;
    let m = recv(&mut ws).await;
    assert_eq!(m["seq"], 2);
    assert_eq!(
        (
            m["msg"]["event_type"].as_str(),
            m["msg"]["result"].as_str(),
            m["msg"]["settlement_value"].as_str()
        ),
        (Some("determined"), Some("yes"), Some("1.0000"))
    );
    assert!(m["msg"]["determination_ts"].as_u64().is_some());

    admin_lifecycle(&v, LIN, json!({"action": "settle"})).await;
    let p = recv(&mut ws).await;
    assert_eq!(
        (p["type"].as_str(), p["msg"]["position_fp"].as_str()),
        (Some("market_position"), Some("0.00"))
    );
    let m = recv(&mut ws).await;
    assert_eq!((m["seq"].as_u64(), m["msg"]["event_type"].as_str()), (Some(3), Some("settled")));
    assert!(m["msg"]["settled_ts"].as_u64().is_some());

    admin_lifecycle(&v, DECI, json!({"action": "deactivate"})).await;
    let m = recv(&mut ws).await;
    assert_eq!(
        (
            m["seq"].as_u64(),
            m["msg"]["market_ticker"].as_str(),
            m["msg"]["event_type"].as_str()
        ),
        (Some(4), Some(DECI), Some("deactivated"))
    );
    assert_eq!(m["msg"]["is_deactivated"], true);
    admin_lifecycle(&v, DECI, json!({"action": "activate"})).await;
    let m = recv(&mut ws).await;
    assert_eq!((m["seq"].as_u64(), m["msg"]["event_type"].as_str()), (Some(5), Some("activated")));

    // The lifecycle channel takes no market filter.
    send(
        &mut ws,
        json!({"id": 2, "cmd": "update_subscription", "params": {"sid": 1, "action": "add_markets", "market_tickers": [LIN]}}),
    )
    .await;
    assert_error(&recv(&mut ws).await, 13, Some(2));
}

#[tokio::test]
async fn seq_faults_and_dropped_connections() {
    let v = common::start().await;
    let s = &v.running.shared;
    let mut a = connect(&v, 0).await;
    send(
        &mut a,
        json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_ticker": LIN}}),
    )
    .await;
    recv(&mut a).await;
    assert_eq!(recv(&mut a).await["seq"], 1);
    v.lp_order(LIN, Side::Bid, "0.10", "1");
    assert_eq!(recv(&mut a).await["seq"], 2);

    s.apply_fault(&Fault::SkipSeq { count: 2 });
    // A subscription made after the fault is not affected by it.
    let mut b = connect(&v, 1).await;
    send(
        &mut b,
        json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_ticker": LIN}}),
    )
    .await;
    recv(&mut b).await;
    assert_eq!(recv(&mut b).await["seq"], 1);
    v.lp_order(LIN, Side::Bid, "0.11", "1");
    assert_eq!(recv(&mut a).await["seq"], 5, "skip_seq leaves a gap of 2");
    assert_eq!(recv(&mut b).await["seq"], 2);
    v.lp_order(LIN, Side::Bid, "0.12", "1");
    assert_eq!(recv(&mut a).await["seq"], 6);
    assert_eq!(recv(&mut b).await["seq"], 3);

    s.apply_fault(&Fault::DuplicateSeq);
    v.lp_order(LIN, Side::Bid, "0.13", "1");
    let first = recv(&mut a).await;
    let second = recv(&mut a).await;
    assert_eq!(first["seq"], 7);
    assert_eq!(first, second, "duplicate_seq sends the message twice");
    assert_eq!(recv(&mut b).await["seq"], 4);
    assert_eq!(recv(&mut b).await["seq"], 4);
    v.lp_order(LIN, Side::Bid, "0.14", "1");
    assert_eq!(recv(&mut a).await["seq"], 8);
    assert_eq!(recv(&mut b).await["seq"], 5);

    // delay_ws holds outgoing frames.
    s.apply_fault(&Fault::DelayWs {
        delay_ms: 300,
        duration_ms: 600,
    });
    let t0 = Instant::now();
    call(&mut a, json!({"id": 2, "cmd": "list_subscriptions"})).await;
    assert!(t0.elapsed() >= Duration::from_millis(280), "reply came after {:?}", t0.elapsed());
    tokio::time::sleep(Duration::from_millis(400)).await;

    // drop_ws for one account closes only that account's connections, without a close frame.
    s.apply_fault(&Fault::DropWs {
        account: Some(v.account_id(1)),
    });
    expect_dropped(&mut b).await;
    assert_eq!(call(&mut a, json!({"id": 3, "cmd": "list_subscriptions"})).await["id"], 3);
    s.apply_fault(&Fault::DropWs { account: None });
    expect_dropped(&mut a).await;
    // New connections are fine afterwards.
    let mut c = connect(&v, 0).await;
    assert_eq!(call(&mut c, json!({"id": 4, "cmd": "list_subscriptions"})).await["msg"], json!([]));
}

async fn expect_dropped(ws: &mut Ws) {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("dropped within 5 s")
        {
            Some(Ok(Message::Close(f))) => {
                panic!("got a close frame {f:?}; expected an abrupt drop")
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return,
        }
    }
}

#[tokio::test]
async fn heartbeat_and_public_access_without_auth() {
    let v = common::start_with(ServerConfig {
        accounts: 1,
        ping_interval_ms: 200,
        public_ws_without_auth: true,
        ..ServerConfig::default()
    })
    .await;
    // A key header with a bad signature is still refused.
    let bad = {
        let mut req = request(&v, Some(0), None);
        req.headers_mut()
            .insert("KALSHI-ACCESS-SIGNATURE", HeaderValue::from_static("AAAA"));
        tokio_tungstenite::connect_async_tls_with_config(req, None, true, Some(connector(&v))).await
    };
    assert!(matches!(bad, Err(tungstenite::Error::Http(ref r)) if r.status() == 401));

    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(request(&v, None, None), None, true, Some(connector(&v)))
        .await
        .expect("public connection");
    let t0 = Instant::now();
    match tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .expect("a ping within 2 s")
    {
        Some(Ok(Message::Ping(p))) => assert_eq!(&p[..], b"heartbeat"),
        other => panic!("expected a ping, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_millis(1000));

    for ch in ["fill", "user_orders", "market_positions"] {
        let r = call(&mut ws, json!({"id": 1, "cmd": "subscribe", "params": {"channels": [ch]}})).await;
        assert_error(&r, 9, Some(1));
    }
    send(
        &mut ws,
        json!({"id": 2, "cmd": "subscribe", "params": {"channels": ["orderbook_delta", "trade"], "market_ticker": LIN}}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["msg"], json!({"channel": "orderbook_delta", "sid": 1}));
    // The snapshot of the first channel comes before the second channel's reply.
    assert_eq!(recv(&mut ws).await["type"], "orderbook_snapshot");
    assert_eq!(recv(&mut ws).await["msg"], json!({"channel": "trade", "sid": 2}));
    v.lp_order(LIN, Side::Bid, "0.20", "1");
    let d = recv(&mut ws).await;
    assert_eq!((d["type"].as_str(), d["seq"].as_u64()), (Some("orderbook_delta"), Some(2)));
    assert!(d["msg"].get("client_order_id").is_none());
}

/// A client that stops reading gets error 25 once the broadcast has overrun it, and nobody
/// else notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_error_25_and_others_are_served() {
    const CAPACITY: usize = 256;
    let v = common::start_with(ServerConfig {
        accounts: 1,
        fanout_capacity: CAPACITY,
        ..ServerConfig::default()
    })
    .await;
    let shared = v.running.shared.clone();

    // The slow client: a small receive buffer so the server's side fills sooner.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(v.running.local_addr).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async_tls_with_config(request(&v, Some(0), None), tcp, None, Some(connector(&v)))
        .await
        .unwrap();
    send(
        &mut slow,
        json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta", "ticker"], "market_ticker": LIN}}),
    )
    .await;
    for _ in 0..3 {
        recv(&mut slow).await;
    }

    // The healthy client reads everything and checks the seq.
    let mut fast = connect(&v, 0).await;
    send(
        &mut fast,
        json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_ticker": LIN}}),
    )
    .await;
    recv(&mut fast).await;
    assert_eq!(recv(&mut fast).await["seq"], 1);
    let deltas = Arc::new(AtomicU64::new(0));
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let (deltas, problems) = (deltas.clone(), problems.clone());
        tokio::spawn(async move {
            let mut last = 1u64;
            while let Some(Ok(msg)) = fast.next().await {
                let Message::Text(t) = msg else { continue };
                let m: Value = serde_json::from_str(t.as_str()).unwrap();
                if m["type"] != "orderbook_delta" {
                    problems.lock().unwrap().push(m.to_string());
                    continue;
                }
                let seq = m["seq"].as_u64().unwrap();
                if seq != last + 1 {
                    problems.lock().unwrap().push(format!("seq {seq} after {last}"));
                }
                last = seq;
                deltas.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    // Book changes in rounds; after each round wait for the healthy client to catch up. The
    // messages counter tells when the slow connection has stopped taking messages (blocked on
    // its full socket, or already overrun): from then on, three more rounds (600 batches) are
    // more than the broadcast holds.
    let lp = v.lp;
    let messages = || shared.counters.ws_messages.load(Ordering::SeqCst);
    let base = messages();
    let mut produced = 0u64;
    let started = Instant::now();
    let (mut slow_msgs, mut stable_rounds) = (0u64, 0);
    while stable_rounds < 3 {
        for i in 0..100u32 {
            let price = format!("0.{:02}", 10 + i % 30);
            let id = v.lp_order(LIN, Side::Bid, &price, "1");
            shared.with_exchange(|ex, now| ex.cancel(now, lp, id).unwrap());
            tokio::task::yield_now().await;
        }
        produced += 200;
        let wait = Instant::now();
        while deltas.load(Ordering::SeqCst) < produced {
            assert!(
                wait.elapsed() < Duration::from_secs(5),
                "healthy client stalled at {} of {produced}",
                deltas.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let now_slow = messages() - base - produced;
        stable_rounds = if now_slow == slow_msgs { stable_rounds + 1 } else { 0 };
        slow_msgs = now_slow;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the slow reader never stalled ({produced} deltas, {slow_msgs} to it)"
        );
    }

    // Now the slow client reads: the backlog, then error 25 for both subscriptions.
    let mut errors = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while errors.len() < 2 {
        assert!(Instant::now() < deadline, "no error 25 after {produced} deltas");
        let m = recv(&mut slow).await;
        if m["type"] == "error" {
            assert_eq!(m["msg"]["code"], 25, "{m}");
            errors.push(m["sid"].as_u64().unwrap());
        }
    }
    errors.sort();
    assert_eq!(errors, vec![1, 2]);
    // The slow connection itself still works and can resubscribe.
    let l = loop {
        let m = call(&mut slow, json!({"id": 5, "cmd": "list_subscriptions"})).await;
        if m["id"] == 5 {
            break m;
        }
    };
    assert_eq!(l["msg"], json!([]));
    send(
        &mut slow,
        json!({"id": 6, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_ticker": LIN}}),
    )
    .await;
    assert_eq!(recv(&mut slow).await["msg"]["sid"], 3);
    assert_eq!(recv(&mut slow).await["seq"], 1);

    assert!(
        problems.lock().unwrap().is_empty(),
        "healthy client saw: {:?}",
        problems.lock().unwrap()
    );
    assert_eq!(deltas.load(Ordering::SeqCst), produced);
    reader.abort();
}
