//! The oracle feed over real sockets, with the real simulated population behind it.

use futures_util::StreamExt;
use local_exchange::cli::{launch, LaunchOptions};
use local_exchange::scenario::Scenario;
use local_exchange::server::ServerConfig;
use serde_json::Value;
use std::time::Duration;

static VENUES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn venue(lead_ms: i64, noise: f64) -> local_exchange::server::RunningExchange {
    let mut scenario = Scenario::default_calm();
    scenario.oracle.lead_ms = lead_ms;
    scenario.oracle.noise_logit_sd = noise;
    scenario.oracle.publish_interval_ms = 100;
    let server = ServerConfig {
        accounts: 1,
        // One directory per venue: tests run at once, and each writes its own CA there.
        state_dir: std::env::temp_dir().join(format!(
            "lx-oracle-{}-{}",
            std::process::id(),
            VENUES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )),
        ..ServerConfig::default()
    };
    launch(
        &scenario,
        LaunchOptions {
            server,
            journal: None,
            tier_override: None,
        },
    )
    .await
    .unwrap()
}

fn client(running: &local_exchange::server::RunningExchange) -> reqwest::Client {
    let ca = std::fs::read(running.info.ca_file.as_ref().unwrap()).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_the_true_probability_without_noise_or_lead() {
    let running = venue(0, 0.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = client(&running);
    let all: Value = http
        .get(format!("{}/markets", running.info.oracle_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let markets = all["markets"].as_array().unwrap();
    assert_eq!(markets.len(), running.info.markets.len());
    for m in markets {
        let ticker = m["ticker"].as_str().unwrap();
        let p = m["probability"].as_f64().unwrap();
        assert!(p > 0.0 && p < 1.0);
        assert_eq!(m["probability_e4"].as_u64().unwrap(), (p * 10_000.0).round() as u64);
        let truth = {
            let v = running.shared.lock();
            let id = v.exchange.market_by_ticker(ticker).unwrap();
            v.population.true_probability(id)
        };
        // Published on a 100 ms grid: within one step of a calm path.
        assert!((p - truth).abs() < 0.02, "{ticker}: oracle {p} vs truth {truth}");
    }
    let one = http
        .get(format!("{}/markets/{}", running.info.oracle_url, running.info.markets[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status().as_u16(), 200);
    let missing = http.get(format!("{}/markets/NOPE", running.info.oracle_url)).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_websocket() {
    let running = venue(-500, 0.05).await;
    let ca = std::fs::read_to_string(running.info.ca_file.as_ref().unwrap()).unwrap();
    let connector = tokio_tungstenite::Connector::Rustls(kalshi_proto::tls::client_config(&ca).unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(running.info.oracle_ws_url.as_str(), None, false, Some(connector))
        .await
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.len() < running.info.markets.len() && tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
            if let Ok(v) = serde_json::from_str::<Value>(msg.to_text().unwrap_or("")) {
                assert_eq!(v["type"], "oracle");
                seen.insert(v["ticker"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(seen.len(), running.info.markets.len());
}

/// A `drop_oracle` fault closes the oracle stream, and a new connection streams again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oracle_closes_the_stream_and_a_reconnect_streams_again() {
    let running = venue(0, 0.0).await;
    let ca = std::fs::read_to_string(running.info.ca_file.as_ref().unwrap()).unwrap();
    let connect = || async {
        let connector = tokio_tungstenite::Connector::Rustls(kalshi_proto::tls::client_config(&ca).unwrap());
        tokio_tungstenite::connect_async_tls_with_config(running.info.oracle_ws_url.as_str(), None, false, Some(connector))
            .await
            .unwrap()
            .0
    };
    let mut ws = connect().await;
    let first = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
    assert!(matches!(first, Ok(Some(Ok(_)))), "the stream publishes before the fault");
    running.shared.apply_fault(&local_exchange::faults::Fault::DropOracle);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut closed = false;
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Ok(None) | Ok(Some(Err(_))) => {
                closed = true;
                break;
            }
            Ok(Some(Ok(m))) if m.is_close() => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "the fault closes the oracle connection");
    let mut again = connect().await;
    let next = tokio::time::timeout(Duration::from_secs(2), again.next()).await;
    assert!(matches!(next, Ok(Some(Ok(m))) if m.is_text()), "a new connection streams");
}
