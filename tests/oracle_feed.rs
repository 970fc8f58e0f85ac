//! The io thread's second feed against the local exchange's oracle stream: it comes up, reads
//! every traded market's probability, and survives its own disconnect (a `drop_oracle` fault)
//! by redialling on its own.

use kmm::connector::net::tls_config;
use kmm::connector::oracle_feed::{FeedNews, OracleFeed, OracleTiming};
use kmm::event::MarketIdx;
use local_exchange::cli::{launch, LaunchOptions};
use local_exchange::faults::Fault;
use local_exchange::scenario::Scenario;
use local_exchange::server::{RunningExchange, ServerConfig};
use mio::{Events, Poll, Token};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn exchange(rt: &tokio::runtime::Runtime) -> RunningExchange {
    let mut scenario = Scenario::default_calm();
    scenario.oracle.publish_interval_ms = 50;
    let server = ServerConfig {
        accounts: 1,
        state_dir: std::env::temp_dir().join(format!("kmm-oracle-feed-{}", std::process::id())),
        ..ServerConfig::default()
    };
    rt.block_on(launch(
        &scenario,
        LaunchOptions {
            server,
            journal: None,
            tier_override: None,
        },
    ))
    .unwrap()
}

/// Polls the feed until `done` says so (or the deadline passes); returns all news seen.
fn pump(feed: &mut OracleFeed, poll: &mut Poll, tickers: &[String], mut done: impl FnMut(&[FeedNews]) -> bool) -> Vec<FeedNews> {
    let mut events = Events::with_capacity(16);
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !done(&seen) && Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(5))).unwrap();
        if events.iter().any(|e| e.token() == feed.token()) {
            feed.on_readable();
        }
        let market_of = |t: &[u8]| tickers.iter().position(|x| x.as_bytes() == t).map(|i| i as MarketIdx);
        feed.poll(Instant::now(), poll.registry(), market_of, |n| seen.push(n));
    }
    seen
}

fn ticked_every(news: &[FeedNews], markets: usize) -> bool {
    (0..markets).all(|m| news.iter().any(|n| matches!(n, FeedNews::Tick(t) if usize::from(t.market) == m)))
}

#[test]
fn the_oracle_feed_streams_and_survives_its_own_disconnect() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut running = exchange(&rt);
    let ca = std::fs::read_to_string(running.info.ca_file.as_ref().unwrap()).unwrap();
    // We trade all but the first market: the feed's ticks for it are skipped, not delivered.
    // The feed publishes the markets in order each round, so by the time every traded market
    // has ticked, the untraded one has been read (and skipped) at least once.
    let tickers: Vec<String> = running.info.markets[1..].to_vec();
    let mut poll = Poll::new().unwrap();
    let timing = OracleTiming {
        backoff_initial: Duration::from_millis(20),
        ..OracleTiming::default()
    };
    let mut feed = OracleFeed::new(&running.info.oracle_ws_url, Some(tls_config(Some(&ca)).unwrap()), Token(7), timing).unwrap();

    let first = pump(&mut feed, &mut poll, &tickers, |n| ticked_every(n, tickers.len()));
    assert_eq!(first.first(), Some(&FeedNews::Up), "{first:?}");
    assert!(ticked_every(&first, tickers.len()), "a tick for every traded market: {first:?}");
    for n in &first {
        if let FeedNews::Tick(t) = n {
            assert!(usize::from(t.market) < tickers.len());
            assert!(t.probability.0 > 0 && t.probability.0 < 10_000, "{t:?}");
            assert!(t.publish_ms > 1_600_000_000_000, "{t:?}");
        }
    }
    assert!(feed.stats().skipped > 0, "the untraded market's ticks are skipped");

    running.shared.apply_fault(&Fault::DropOracle);
    let after = pump(&mut feed, &mut poll, &tickers, |n| {
        n.iter()
            .position(|x| *x == FeedNews::Down)
            .is_some_and(|down| ticked_every(&n[down..], tickers.len()))
    });
    let down = after.iter().position(|x| *x == FeedNews::Down).expect("the drop is seen");
    let up = after.iter().position(|x| *x == FeedNews::Up).expect("the feed comes back");
    assert!(up > down, "{after:?}");
    assert!(ticked_every(&after[up..], tickers.len()), "ticks again after the redial");
    let stats = feed.stats();
    assert_eq!((stats.connects, stats.disconnects), (2, 1));
    assert!(stats.last.is_some());
    feed.close(poll.registry());
    running.stop().unwrap();
}
