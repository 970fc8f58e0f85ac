//! Fuzzing the WebSocket command parser over a real connection: random bytes and
//! structured-random commands never kill the connection or the server; every reply is one of
//! Kalshi's message types, and a probe command sent afterwards is still answered.

mod common;

use futures_util::{SinkExt, StreamExt};
use local_exchange::server::Clock;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(v: &common::Venue) -> Ws {
    let info = &v.running.info;
    let mut req = info.ws_url.as_str().into_client_request().unwrap();
    for (k, val) in v.signers[0].headers(&info.accounts[0].key_id, Clock::wall_ms(), "GET", "/trade-api/ws/v2") {
        req.headers_mut().insert(k, val.parse().unwrap());
    }
    let ca = std::fs::read_to_string(info.ca_file.as_ref().unwrap()).unwrap();
    let connector = tokio_tungstenite::Connector::Rustls(kalshi_proto::tls::client_config(&ca).unwrap());
    tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector))
        .await
        .unwrap()
        .0
}

#[derive(Clone, Debug)]
enum Frame {
    Bytes(Vec<u8>),
    Text(String),
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (0i64..5).prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "orderbook_delta",
            "trade",
            "ticker",
            "fill",
            "user_orders",
            "market_positions",
            "market_lifecycle_v2",
            "nope",
            "TEST-LIN",
            "TEST-DECI",
            "add_markets",
            "delete_markets",
            "get_snapshot",
            "",
            "self"
        ])
        .prop_map(|s| Value::String(s.into())),
        ".{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| prop::collection::vec(inner, 0..4).prop_map(Value::Array))
}

fn command() -> impl Strategy<Value = Frame> {
    let params = prop::collection::vec(
        (
            prop::sample::select(vec![
                "channels",
                "market_ticker",
                "market_tickers",
                "sids",
                "sid",
                "action",
                "use_yes_price",
                "send_initial_snapshot",
                "market_ids",
                "skip_ticker_ack",
            ]),
            any_value(),
        ),
        0..5,
    );
    let structured = (
        prop::option::of(any_value()),
        prop::sample::select(vec![
            "subscribe",
            "unsubscribe",
            "update_subscription",
            "list_subscriptions",
            "bogus",
        ]),
        params,
        any::<bool>(),
    )
        .prop_map(|(id, cmd, params, with_params)| {
            let mut m = Map::new();
            if let Some(id) = id {
                m.insert("id".into(), id);
            }
            m.insert("cmd".into(), json!(cmd));
            if with_params {
                m.insert(
                    "params".into(),
                    Value::Object(params.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
                );
            }
            Frame::Text(Value::Object(m).to_string())
        });
    prop_oneof![
        6 => structured,
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Frame::Bytes),
        1 => ".{0,40}".prop_map(Frame::Text),
    ]
}

const KNOWN_TYPES: &[&str] = &[
    "subscribed",
    "unsubscribed",
    "ok",
    "error",
    "orderbook_snapshot",
    "orderbook_delta",
    "trade",
    "ticker",
    "fill",
    "user_order",
    "market_position",
    "market_lifecycle_v2",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_commands_never_break_the_connection(frames in prop::collection::vec(command(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let v = common::start_with(local_exchange::server::ServerConfig { accounts: 1, rsa_bits: 1024, ..Default::default() }).await;
            v.lp_order(common::LIN, kalshi_proto::Side::Bid, "0.40", "10");
            let mut ws = connect(&v).await;
            for f in &frames {
                let msg = match f {
                    Frame::Bytes(b) => Message::Binary(b.clone().into()),
                    Frame::Text(t) => Message::Text(t.clone().into()),
                };
                ws.send(msg).await.unwrap();
            }
            ws.send(Message::Text(r#"{"id":987654,"cmd":"list_subscriptions"}"#.into())).await.unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let next = tokio::time::timeout_at(deadline, ws.next()).await.expect("probe answered before the deadline");
                let msg = next.expect("connection open").expect("no protocol error");
                let Message::Text(text) = msg else { continue };
                let reply: Value = serde_json::from_str(text.as_str()).expect("replies are JSON");
                let kind = reply["type"].as_str().unwrap_or("");
                assert!(KNOWN_TYPES.contains(&kind), "unexpected reply {reply}");
                if kind == "error" {
                    assert!(reply["msg"]["code"].is_u64() && reply["msg"]["msg"].is_string(), "{reply}");
                }
                if reply["id"] == 987654 {
                    assert_eq!(kind, "ok");
                    break;
                }
            }
            // The server still serves REST too.
            let (s, _) = v.call(None, "GET", "/exchange/status", None).await;
            assert_eq!(s, 200);
        });
    }
}
