//! Many concurrent clients, and faults scheduled by a scenario file.

mod common;

use futures_util::{SinkExt, StreamExt};
use local_exchange::cli::{launch, LaunchOptions};
use local_exchange::scenario::Scenario;
use local_exchange::server::{Clock, ServerConfig};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_rest_and_websocket_clients() {
    let v = std::sync::Arc::new(
        common::start_with(ServerConfig {
            accounts: 3,
            tier: kalshi_proto::ratelimit::Tier::Unlimited,
            ..ServerConfig::default()
        })
        .await,
    );
    v.lp_order(common::LIN, kalshi_proto::Side::Ask, "0.60", "100000");
    let info = v.running.info.clone();
    let ca = std::fs::read_to_string(info.ca_file.as_ref().unwrap()).unwrap();

    // 48 WebSocket clients subscribe to the same market's book.
    let mut sockets = Vec::new();
    for i in 0..48 {
        let who = i % 3;
        let mut req = info.ws_url.as_str().into_client_request().unwrap();
        for (k, val) in v.signers[who].headers(&info.accounts[who].key_id, Clock::wall_ms(), "GET", "/trade-api/ws/v2") {
            req.headers_mut().insert(k, val.parse().unwrap());
        }
        let connector = tokio_tungstenite::Connector::Rustls(kalshi_proto::tls::client_config(&ca).unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector))
            .await
            .unwrap();
        ws.send(Message::Text(
            json!({"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], "market_ticker": common::LIN}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        sockets.push(ws);
    }
    // 60 REST clients at once, each placing and cancelling.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let v = v.clone();
        tasks.push(tokio::spawn(async move {
            let who = i % 3;
            let (s, b) = v
                .post(who, "/portfolio/events/orders", json!({"ticker": common::LIN, "side": "bid", "price": "0.10", "count": "1.00", "time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross"}))
                .await;
            assert_eq!(s, 201, "{b}");
            let id = b["order_id"].as_str().unwrap().to_string();
            let (s, _) = v.delete(who, &format!("/portfolio/events/orders/{id}"), None).await;
            assert_eq!(s, 200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Every socket saw its snapshot and all 120 deltas, in seq order.
    for ws in sockets.iter_mut() {
        let mut last_seq = 0;
        let mut deltas = 0;
        while deltas < 120 {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if let Some(seq) = v["seq"].as_u64() {
                assert_eq!(seq, last_seq + 1, "{v}");
                last_seq = seq;
            }
            if v["type"] == "orderbook_delta" {
                deltas += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_faults_fire_at_their_time() {
    let mut scenario = Scenario::parse(
        r#"
        [[markets]]
        ticker = "KXF-26-T1"
        structure = "linear_cent"
        initial_probability = 0.5

        [[faults]]
        at_ms = 300
        kind = "pause_trading"
        duration_ms = 600
        "#,
        "test",
        "faults",
    )
    .unwrap();
    scenario.session.duration_s = 60;
    let server = ServerConfig {
        accounts: 1,
        state_dir: std::env::temp_dir().join(format!("lx-faults-{}", std::process::id())),
        ..ServerConfig::default()
    };
    let running = launch(
        &scenario,
        LaunchOptions {
            server,
            journal: None,
            tier_override: None,
        },
    )
    .await
    .unwrap();
    let active = || running.shared.lock().exchange.trading_active;
    assert!(active());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!active(), "paused at 300 ms");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(active(), "resumed after 600 ms");
}
