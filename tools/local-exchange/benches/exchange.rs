//! Local exchange throughput: matching (orders/s) and sustained WebSocket fan-out to one
//! client (book updates/s). Run: `cargo bench --bench exchange`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::{SinkExt, StreamExt};
use kalshi_proto::ladder::LevelStructure;
use kalshi_proto::order::TimeInForce;
use kalshi_proto::units::{Money, Price, Qty};
use kalshi_proto::Side;
use local_exchange::engine::{Exchange, ExchangeConfig, FeeType, MarketSpec, NewOrder};
use local_exchange::scenario::Scenario;
use local_exchange::server::{self, Clock, NoPopulation, ServerConfig};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn spec() -> MarketSpec {
    MarketSpec {
        ticker: "BENCH".into(),
        event_ticker: "BENCH-EV".into(),
        series_ticker: "BENCH".into(),
        title: "bench".into(),
        structure: LevelStructure::LinearCent,
        fee_type: FeeType::Quadratic,
        fee_multiplier_e4: 10_000,
        open_ms: 0,
        close_ms: u64::MAX / 2,
        settlement_timer_s: 0,
    }
}

/// An exchange with a deep two-sided book: 50 orders of 100 at each of 10 levels per side.
fn deep_book() -> (Exchange, u32, u32) {
    let mut ex = Exchange::new(ExchangeConfig::default());
    let m = ex.add_market(spec(), 0);
    let maker = ex.add_account("maker".into(), Money::from_cents(1 << 50), true);
    let taker = ex.add_account("taker".into(), Money::from_cents(1 << 50), true);
    for level in 0..10u32 {
        for _ in 0..50 {
            ex.place(0, NewOrder::limit(maker, m, Side::Bid, Price(4_900 - level * 100), Qty(10_000)))
                .unwrap();
            ex.place(0, NewOrder::limit(maker, m, Side::Ask, Price(5_100 + level * 100), Qty(10_000)))
                .unwrap();
        }
    }
    ex.take_events();
    (ex, maker, taker)
}

fn matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("matching");
    g.throughput(Throughput::Elements(1));

    // A passive order joins the back of a 50-order level and is cancelled: two operations.
    let (mut ex, maker, _) = deep_book();
    let mut t = 1u64;
    g.bench_function("rest_then_cancel", |b| {
        b.iter(|| {
            t += 1;
            let placed = ex.place(t, NewOrder::limit(maker, 0, Side::Bid, Price(4_800), Qty(500))).unwrap();
            ex.cancel(t, maker, placed.order.id).unwrap();
            ex.take_events();
        })
    });

    // An IOC taker consumes one resting order at the touch, which is then replenished.
    let (mut ex, maker, taker) = deep_book();
    g.bench_function("ioc_take_one_order", |b| {
        b.iter(|| {
            t += 1;
            let mut take = NewOrder::limit(taker, 0, Side::Bid, Price(5_100), Qty(10_000));
            take.tif = TimeInForce::ImmediateOrCancel;
            ex.place(t, take).unwrap();
            ex.place(t, NewOrder::limit(maker, 0, Side::Ask, Price(5_100), Qty(10_000)))
                .unwrap();
            ex.take_events();
        })
    });

    // A sweep through three levels (150 fills), measured per fill.
    g.throughput(Throughput::Elements(150));
    g.bench_function("sweep_three_levels", |b| {
        b.iter_batched(
            deep_book,
            |(mut ex, _, taker)| {
                let mut sweep = NewOrder::limit(taker, 0, Side::Bid, Price(5_300), Qty(150 * 10_000));
                sweep.tif = TimeInForce::ImmediateOrCancel;
                let placed = ex.place(1, sweep).unwrap();
                assert_eq!(placed.order.filled, Qty(150 * 10_000));
                ex
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // The stress scenario's population, per simulated second, as the server would drive it.
    let scenario = Scenario::load(concat!(env!("CARGO_MANIFEST_DIR"), "/config/stress.toml")).unwrap();
    let mut g = c.benchmark_group("population");
    g.sample_size(10);
    g.bench_function("stress_scenario_one_simulated_second", |b| {
        b.iter_custom(|iters| {
            let mut ex = Exchange::new(scenario.exchange_config());
            let mut flow = local_exchange::flow::Flow::new(&scenario, 3, &mut ex);
            flow.advance(&mut ex, 5_000);
            ex.take_events();
            let start = Instant::now();
            for i in 0..iters {
                flow.advance(&mut ex, 5_000 + (i + 1) * 1_000);
                ex.take_events();
            }
            start.elapsed()
        })
    });
    g.finish();
}

/// One WS client subscribed to a market's book; the bench injects book updates into the
/// exchange and times until the client has received all of them.
fn fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (running, mut ws, lp) = rt.block_on(async {
        let mut ex = Exchange::new(ExchangeConfig::default());
        ex.add_market(spec(), 0);
        let lp = ex.add_account("lp".into(), Money::from_cents(1 << 50), true);
        let config = ServerConfig {
            accounts: 1,
            tls: true,
            fanout_capacity: 1 << 20,
            state_dir: std::env::temp_dir().join(format!("lx-bench-{}", std::process::id())),
            ..ServerConfig::default()
        };
        let running = server::start(config, ex, Box::new(NoPopulation), Vec::new()).await.unwrap();
        let info = &running.info;
        let ca = std::fs::read_to_string(info.ca_file.as_ref().unwrap()).unwrap();
        let signer = kalshi_proto::auth::Signer::from_pem(&std::fs::read_to_string(&info.accounts[0].private_key_path).unwrap()).unwrap();
        let mut req = info.ws_url.as_str().into_client_request().unwrap();
        for (k, v) in signer.headers(&info.accounts[0].key_id, Clock::wall_ms(), "GET", "/trade-api/ws/v2") {
            req.headers_mut().insert(k, v.parse().unwrap());
        }
        let connector = tokio_tungstenite::Connector::Rustls(kalshi_proto::tls::client_config(&ca).unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector))
            .await
            .unwrap();
        ws.send(Message::Text(
            r#"{"id":1,"cmd":"subscribe","params":{"channels":["orderbook_delta"],"market_ticker":"BENCH"}}"#.into(),
        ))
        .await
        .unwrap();
        // subscribed + snapshot
        let mut seen = 0;
        while seen < 2 {
            if let Some(Ok(Message::Text(_))) = ws.next().await {
                seen += 1;
            }
        }
        (running, ws, lp)
    });
    let shared = running.shared.clone();
    let mut g = c.benchmark_group("ws_fanout");
    const UPDATES: u64 = 2_000;
    g.throughput(Throughput::Elements(UPDATES));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("orderbook_deltas_to_one_client", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                // Each place and each cancel is one published book update.
                let producer = {
                    let shared = shared.clone();
                    std::thread::spawn(move || {
                        for i in 0..UPDATES / 2 {
                            let price = Price(3_000 + (i % 20) as u32 * 100);
                            let id = shared.with_exchange(|ex, now| {
                                ex.place(now, NewOrder::limit(lp, 0, Side::Bid, price, Qty(100))).unwrap().order.id
                            });
                            shared.with_exchange(|ex, now| ex.cancel(now, lp, id).unwrap());
                        }
                    })
                };
                rt.block_on(async {
                    let mut got = 0;
                    while got < UPDATES {
                        match ws.next().await {
                            Some(Ok(Message::Text(t))) if t.contains("orderbook_delta") => got += 1,
                            Some(Ok(_)) => {}
                            other => panic!("websocket ended: {other:?}"),
                        }
                    }
                });
                producer.join().unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
    drop(ws);
    drop(running);
}

criterion_group!(benches, matching, fanout);
criterion_main!(benches);
