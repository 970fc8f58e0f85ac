//! The whole engine against the embedded local exchange over TLS: quotes rest, fills are
//! journaled, our position equals the exchange's at the end, shutdown leaves no order open,
//! and an injected sequence gap and a dropped connection are recovered without a crossed
//! book or a lost fill. Runs in yield mode, unpinned, as CI's 2-core machines require.

use kmm::config::{Config, Modules};
use kmm::poll::PollMode;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kmm-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The thin-book scenario (small queues, so our quotes get filled within seconds) with the
/// faults a test asks for appended.
fn scenario(dir: &Path, faults: &str) -> PathBuf {
    let base = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/thin-book.toml")).unwrap();
    let path = dir.join("scenario.toml");
    std::fs::write(&path, format!("{base}\n{faults}\n")).unwrap();
    path
}

fn config(dir: &Path, scenario: PathBuf, seconds: u64) -> Config {
    Config {
        scenario: Some(scenario),
        duration: Some(Duration::from_secs(seconds)),
        poll: Some(PollMode::Yield),
        no_pin: true,
        quiet: true,
        log_dir: dir.join("run"),
        summary_json: Some(dir.join("summary.json")),
        market_count: 3,
        modules: Modules {
            stoikov: true,
            vol_estimator: true,
            k_estimator: false,
        },
        ..Config::default()
    }
}

fn journaled_fills(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

#[test]
fn quotes_fill_and_shut_down_clean_through_a_seq_gap_and_a_dropped_connection() {
    let dir = temp_dir("faults");
    let faults = r#"
[[faults]]
at_ms = 8000
kind = "skip_seq"
count = 3

[[faults]]
at_ms = 16000
kind = "drop_ws"
"#;
    let cfg = config(&dir, scenario(&dir, faults), 28);
    cfg.validate().unwrap();
    let summary = kmm::app::run(cfg).expect("session runs");

    assert_eq!(
        summary.open_orders_at_exchange, 0,
        "shutdown must leave no order open: {summary:#?}"
    );
    assert!(
        summary.positions_match,
        "our positions must equal the exchange's: {:#?}",
        summary.markets
    );
    assert!(summary.commands > 0, "the engine must have quoted");
    assert!(summary.io.gaps >= 1, "the injected seq gap was not seen: {:#?}", summary.io);
    assert!(
        summary.io.reconnects >= 1,
        "the dropped connection was not reconnected: {:#?}",
        summary.io
    );
    assert_eq!(summary.crossed_books, 0, "a book crossed");
    assert!(summary.fills > 0, "no fill in a thin market in 28 s: {summary:#?}");
    assert_eq!(
        journaled_fills(&summary.paths.fills),
        summary.fills as usize,
        "every fill is journaled exactly once"
    );
    let t2o = summary.latency.iter().find(|l| l.stage == "tick_to_order").unwrap();
    assert!(t2o.count > 0, "tick-to-order was never recorded");
    assert!(summary.paths.hdr.exists());
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["open_orders_at_exchange"], 0);
    assert_eq!(json["positions_match"], true);
}

/// Quoting off (the monitor) with the oracle feed dropped mid-run: nothing is placed, market
/// data and the oracle's readings still flow, and the oracle's drop and redial never touch the
/// Kalshi session (no reconnect, no kill).
#[test]
fn monitor_mode_places_nothing_and_the_oracle_survives_its_own_drop() {
    let dir = temp_dir("monitor");
    let faults = r#"
[[faults]]
at_ms = 2500
kind = "drop_oracle"
"#;
    let mut cfg = config(&dir, scenario(&dir, faults), 7);
    cfg.modules.stoikov = false;
    let summary = kmm::app::run(cfg).expect("session runs");
    assert_eq!(summary.commands, 0, "--no-stoikov must place nothing");
    assert_eq!(summary.fills, 0);
    assert!(summary.events > 0, "market data still flows");
    assert_eq!(summary.open_orders_at_exchange, 0);
    let oracle = summary.oracle.as_ref().expect("the embedded exchange's oracle is read by default");
    assert!(oracle.readings >= 6, "readings on both sides of the drop: {oracle:?}");
    assert_eq!((oracle.connects, oracle.disconnects), (2, 1), "{oracle:?}");
    assert!(oracle.last.is_some());
    assert_eq!(summary.io.reconnects, 0, "the oracle's drop is not Kalshi's: {:#?}", summary.io);
    assert_ne!(summary.kill_switch.as_deref(), Some("Disconnected"));

    let dir = temp_dir("no-oracle");
    let mut cfg = config(&dir, scenario(&dir, ""), 3);
    cfg.modules.stoikov = false;
    cfg.oracle = false;
    let summary = kmm::app::run(cfg).expect("session runs");
    assert!(summary.oracle.is_none(), "--no-oracle reads none");
}
