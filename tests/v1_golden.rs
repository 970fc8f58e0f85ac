//! V1's decisions, pinned: a long recorded event stream through the strategy core must give
//! exactly the commands the V1 engine gave for it when the fixture was recorded.
//!
//! The fixture (`tests/fixtures/v1_golden.txt`) holds, per scenario, every event the strategy
//! was fed (market data from the synthetic feed, the mini venue's answers to its own commands,
//! injected rejects, disconnects, lifecycle changes and clock gaps) and the commands each event
//! and timer pass produced. Replaying reads only the events and the timer passes and compares
//! the commands, so the feed and venue that wrote it may change freely; the strategy may not.
//!
//! Recording (only ever from a commit whose behaviour is the reference):
//! `KMM_RECORD_GOLDEN=1 cargo test --test v1_golden`.

use std::fmt::Write as _;

use kmm::config::Config;
use kmm::event::{
    ClientRef, CommandBody, Event, EventBody, MarketIdx, MarketStatus, Money, OrderId, OrderStatus, Price, Qty, RejectReason, Side, Stamp,
};
use kmm::strategy::{Commands, Strategy, StrategyConfig};
use kmm::testkit::{self, MiniVenue, Rng, SyntheticFeed};

const NOW: u64 = 1_780_000_000_000;
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1_golden.txt");

/// One recorded session: its configuration is code (here), its stream is data (the fixture).
struct Scenario {
    name: &'static str,
    markets: usize,
    seed: u64,
    fill_one_in: u64,
    steps: u32,
    config: fn() -> Config,
}

fn scenarios() -> [Scenario; 3] {
    [
        Scenario {
            name: "defaults",
            markets: 4,
            seed: 7,
            fill_one_in: 4,
            steps: 12_000,
            config: Config::default,
        },
        Scenario {
            // Small limits: risk clamps sizes, blocks places and the open-order cap binds.
            name: "tight-risk",
            markets: 3,
            seed: 11,
            fill_one_in: 2,
            steps: 8_000,
            config: || {
                let mut c = Config::default();
                c.risk.max_position = Qty::from_contracts(12);
                c.risk.max_open_orders = 4;
                c.risk.price_band_ticks = 3;
                c.risk.max_rejects = 5;
                c
            },
        },
        Scenario {
            // The model's estimators switched the other way from the defaults.
            name: "estimators-flipped",
            markets: 2,
            seed: 23,
            fill_one_in: 6,
            steps: 8_000,
            config: || {
                let mut c = Config::default();
                c.modules.vol_estimator = !c.modules.vol_estimator;
                c.modules.k_estimator = !c.modules.k_estimator;
                c
            },
        },
    ]
}

fn strategy(s: &Scenario) -> Strategy {
    Strategy::new(StrategyConfig::from_config(&(s.config)(), 42), &testkit::setups(s.markets, NOW))
}

fn side(s: Side) -> &'static str {
    match s {
        Side::Bid => "bid",
        Side::Ask => "ask",
    }
}

fn parse_side(t: &str) -> Side {
    match t {
        "bid" => Side::Bid,
        "ask" => Side::Ask,
        _ => panic!("bad side {t}"),
    }
}

fn status(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Resting => "resting",
        OrderStatus::Canceled => "canceled",
        OrderStatus::Executed => "executed",
    }
}

fn parse_status(t: &str) -> OrderStatus {
    match t {
        "resting" => OrderStatus::Resting,
        "canceled" => OrderStatus::Canceled,
        "executed" => OrderStatus::Executed,
        _ => panic!("bad status {t}"),
    }
}

const REASONS: [(RejectReason, &str); 4] = [
    (RejectReason::PostOnlyCross, "post-only-cross"),
    (RejectReason::RateLimited, "rate-limited"),
    (RejectReason::InsufficientBalance, "insufficient-balance"),
    (RejectReason::ServerError, "server-error"),
];

/// An event as one line of text; `None` for kinds the recording never produces.
fn render_event(body: &EventBody) -> String {
    match *body {
        EventBody::BookClear { market } => format!("clear {market}"),
        EventBody::BookLevel {
            market,
            side: s,
            price,
            qty,
        } => format!("level {market} {} {} {}", side(s), price.0, qty.0),
        EventBody::BookSnapshotEnd { market } => format!("snapshot-end {market}"),
        EventBody::BookDelta {
            market,
            side: s,
            price,
            delta,
            own,
        } => format!("delta {market} {} {} {} {}", side(s), price.0, delta.0, u8::from(own)),
        EventBody::Trade {
            market,
            yes_price,
            qty,
            taker,
            ..
        } => format!("trade {market} {} {} {}", yes_price.0, qty.0, side(taker)),
        EventBody::Ticker {
            market,
            yes_bid,
            yes_ask,
            last,
        } => format!("ticker {market} {} {} {}", yes_bid.0, yes_ask.0, last.0),
        EventBody::Fill {
            market,
            client,
            order,
            side: s,
            yes_price,
            qty,
            is_taker,
            fee,
            post_position,
            ..
        } => format!(
            "fill {market} {} {} {} {} {} {} {} {}",
            client.0,
            order.0,
            side(s),
            yes_price.0,
            qty.0,
            u8::from(is_taker),
            fee.0,
            post_position.0
        ),
        EventBody::OrderUpdate {
            market,
            client,
            order,
            status: st,
            side: s,
            price,
            remaining,
            filled,
        } => format!(
            "update {market} {} {} {} {} {} {} {}",
            client.0,
            order.0,
            status(st),
            side(s),
            price.0,
            remaining.0,
            filled.0
        ),
        EventBody::Position { market, position, .. } => format!("position {market} {}", position.0),
        EventBody::Lifecycle { market, status, yes: None } => {
            let k = match status {
                MarketStatus::Active => "activated",
                MarketStatus::Inactive => "deactivated",
                other => panic!("the recording never sends {other:?}"),
            };
            format!("lifecycle {market} {k}")
        }
        EventBody::OrderAck {
            market,
            client,
            order,
            status: st,
            filled,
            remaining,
        } => format!("ack {market} {} {} {} {} {}", client.0, order.0, status(st), filled.0, remaining.0),
        EventBody::OrderReject {
            market,
            client,
            reason,
            http_status,
        } => {
            let name = REASONS.iter().find(|(r, _)| *r == reason).expect("recorded reason").1;
            format!("reject {market} {} {name} {http_status}", client.0)
        }
        EventBody::Stale { market, .. } => format!("stale {market}"),
        EventBody::Connected { .. } => "connected".into(),
        EventBody::Disconnected { .. } => "disconnected".into(),
        other => panic!("the recording never sends {other:?}"),
    }
}

fn parse_event(line: &str) -> EventBody {
    let f: Vec<&str> = line.split(' ').collect();
    let n = |i: usize| -> i64 { f[i].parse().unwrap_or_else(|_| panic!("field {i} of {line:?}")) };
    let m = |i: usize| -> MarketIdx { n(i) as MarketIdx };
    let price = |i: usize| Price(n(i) as u32);
    let qty = |i: usize| Qty(n(i));
    let client = |i: usize| ClientRef(f[i].parse().unwrap());
    let order = |i: usize| OrderId(f[i].parse().unwrap());
    match f[0] {
        "clear" => EventBody::BookClear { market: m(1) },
        "level" => EventBody::BookLevel {
            market: m(1),
            side: parse_side(f[2]),
            price: price(3),
            qty: qty(4),
        },
        "snapshot-end" => EventBody::BookSnapshotEnd { market: m(1) },
        "delta" => EventBody::BookDelta {
            market: m(1),
            side: parse_side(f[2]),
            price: price(3),
            delta: qty(4),
            own: n(5) == 1,
        },
        "trade" => testkit::trade(m(1), price(2), qty(3), parse_side(f[4])),
        "ticker" => EventBody::Ticker {
            market: m(1),
            yes_bid: price(2),
            yes_ask: price(3),
            last: price(4),
        },
        "fill" => testkit::fill(
            m(1),
            client(2),
            order(3),
            parse_side(f[4]),
            price(5),
            qty(6),
            n(7) == 1,
            Money(n(8)),
            qty(9),
        ),
        "update" => EventBody::OrderUpdate {
            market: m(1),
            client: client(2),
            order: order(3),
            status: parse_status(f[4]),
            side: parse_side(f[5]),
            price: price(6),
            remaining: qty(7),
            filled: qty(8),
        },
        "position" => EventBody::Position {
            market: m(1),
            position: qty(2),
            realized_pnl: Money(0),
            fees_paid: Money(0),
        },
        "lifecycle" => EventBody::Lifecycle {
            market: m(1),
            status: match f[2] {
                "activated" => MarketStatus::Active,
                "deactivated" => MarketStatus::Inactive,
                k => panic!("bad lifecycle {k}"),
            },
            yes: None,
        },
        "ack" => EventBody::OrderAck {
            market: m(1),
            client: client(2),
            order: order(3),
            status: parse_status(f[4]),
            filled: qty(5),
            remaining: qty(6),
        },
        "reject" => EventBody::OrderReject {
            market: m(1),
            client: client(2),
            reason: REASONS.iter().find(|(_, t)| *t == f[3]).expect("known reason").0,
            http_status: n(4) as u16,
        },
        "stale" => testkit::stale(m(1)),
        "connected" => testkit::connected(),
        "disconnected" => testkit::disconnected(),
        k => panic!("bad event kind {k}"),
    }
}

fn render_command(c: &CommandBody) -> String {
    let mut s = String::new();
    match *c {
        CommandBody::Place {
            market,
            client,
            side: sd,
            price,
            qty,
            tif,
            post_only,
            ..
        } => write!(
            s,
            "place {market} {} {} {} {} {tif:?} {}",
            client.0,
            side(sd),
            price.0,
            qty.0,
            u8::from(post_only)
        ),
        CommandBody::Cancel { market, client, order } => write!(s, "cancel {market} {} {}", client.0, order.0),
        CommandBody::Amend {
            market,
            client,
            order,
            side: sd,
            price,
            total,
        } => write!(s, "amend {market} {} {} {} {} {}", client.0, order.0, side(sd), price.0, total.0),
        CommandBody::Decrease {
            market,
            client,
            order,
            reduce_to,
        } => write!(s, "decrease {market} {} {} {}", client.0, order.0, reduce_to.0),
        CommandBody::CancelAll => write!(s, "cancel-all"),
        CommandBody::Resync { market } => write!(s, "resync {market}"),
    }
    .unwrap();
    s
}

/// The recording's state: the strategy, the venue answering it and the text written so far.
struct Recorder {
    s: Strategy,
    venue: MiniVenue,
    chaos: Rng,
    out: Commands,
    pending: Vec<EventBody>,
    text: String,
    now: u64,
}

impl Recorder {
    fn event(&mut self, body: EventBody) {
        writeln!(self.text, "E {} {}", self.now, render_event(&body)).unwrap();
        self.s.on_event(
            &Event {
                stamp: Stamp::default(),
                body,
            },
            self.now,
            &mut self.out,
        );
        for cmd in self.out.as_slice() {
            writeln!(self.text, "C {}", render_command(cmd)).unwrap();
            // One request in 40 is refused instead of answered; one in 200 is never answered.
            let roll = self.chaos.below(200);
            if let (CommandBody::Place { market, client, .. }, true) = (cmd, roll < 5) {
                let (reason, _) = REASONS[self.chaos.below(REASONS.len() as u64) as usize];
                self.pending.push(EventBody::OrderReject {
                    market: *market,
                    client: *client,
                    reason,
                    http_status: 409,
                });
            } else if roll != 199 {
                let pending = &mut self.pending;
                self.venue.answer(cmd, |b| pending.push(b));
            }
        }
    }

    fn timer(&mut self) {
        writeln!(self.text, "T {}", self.now).unwrap();
        self.s.on_timer(self.now, &mut self.out);
        for cmd in self.out.as_slice() {
            writeln!(self.text, "C {}", render_command(cmd)).unwrap();
            let pending = &mut self.pending;
            self.venue.answer(cmd, |b| pending.push(b));
        }
    }
}

/// Drives one scenario: the synthetic feed's market data, the venue's answers, and what the
/// recording injects between them (drawn from its own generator so the feed's stream is the
/// feed's): rejects, lost requests, disconnects, stale books, lifecycle changes, position
/// reports and a quiet spell past the stale-data limit.
fn record(sc: &Scenario) -> String {
    let mut feed = SyntheticFeed::new(sc.markets, sc.seed, NOW);
    let mut r = Recorder {
        s: strategy(sc),
        venue: MiniVenue::new(sc.markets, sc.seed, sc.fill_one_in).with_partial_fills(3),
        chaos: Rng::new(sc.seed * 31 + 5),
        out: Commands::default(),
        pending: Vec::new(),
        text: format!("scenario {}\n", sc.name),
        now: NOW,
    };
    feed.start(|ev| r.pending.push(ev.body));
    let mut disconnected_until: Option<u32> = None;
    let mut feed_paused_until: Option<u32> = None;
    for step in 0..sc.steps {
        // Answers first, as the live feed interleaves them, then market data (unless paused).
        if !r.pending.is_empty() || feed_paused_until.is_none() {
            let b = feed.answer_or_next(&mut r.pending);
            r.now = r.now.max(feed.now_ms);
            r.event(b);
        }
        match r.chaos.below(1000) {
            0 if disconnected_until.is_none() => {
                r.event(testkit::disconnected());
                disconnected_until = Some(step + 20 + r.chaos.below(50) as u32);
            }
            1 | 2 => {
                let market = r.chaos.below(sc.markets as u64) as MarketIdx;
                r.event(testkit::stale(market));
                feed.start(|ev| r.pending.push(ev.body));
            }
            3 => {
                let market = r.chaos.below(sc.markets as u64) as MarketIdx;
                r.event(EventBody::Lifecycle {
                    market,
                    status: MarketStatus::Inactive,
                    yes: None,
                });
                r.pending.push(EventBody::Lifecycle {
                    market,
                    status: MarketStatus::Active,
                    yes: None,
                });
            }
            4..=9 => {
                let market = r.chaos.below(sc.markets as u64) as MarketIdx;
                let position = r.s.account(market).position;
                r.event(EventBody::Position {
                    market,
                    position,
                    realized_pnl: Money(0),
                    fees_paid: Money(0),
                });
            }
            11..=15 => {
                // A fill of an order this session did not place (a manual trade on the same
                // account): the position moves under quotes that stay at their price.
                let market = r.chaos.below(sc.markets as u64) as MarketIdx;
                let side = if r.chaos.below(2) == 0 { Side::Bid } else { Side::Ask };
                let qty = Qty::from_contracts(1 + r.chaos.below(4) as i64);
                let position = r.s.account(market).position;
                let post = match side {
                    Side::Bid => position + qty,
                    Side::Ask => position - qty,
                };
                let order = OrderId(u128::from(r.chaos.next_u64()) << 64);
                r.event(testkit::fill(
                    market,
                    ClientRef(0),
                    order,
                    side,
                    Price(5_000),
                    qty,
                    true,
                    Money(0),
                    post,
                ));
            }
            10 if feed_paused_until.is_none() && step > sc.steps / 2 => {
                // The market goes quiet past the stale-data limit while we quote.
                feed_paused_until = Some(step + 40);
            }
            _ => {}
        }
        if disconnected_until == Some(step) {
            disconnected_until = None;
            r.event(testkit::connected());
            feed.start(|ev| r.pending.push(ev.body));
        }
        if let Some(until) = feed_paused_until {
            r.now += 1_000;
            if until == step {
                feed_paused_until = None;
                feed.now_ms = r.now;
                feed.start(|ev| r.pending.push(ev.body));
            }
        }
        if step % 4 == 0 {
            r.timer();
        }
    }
    r.text
}

/// Feeds a scenario's recorded events and timer passes through a fresh strategy; returns the
/// recording's lines and the replay's, command lines as produced.
fn replay(sc: &Scenario, recorded: &[&str]) -> (Vec<String>, u64) {
    let mut s = strategy(sc);
    let mut out = Commands::default();
    let mut lines = Vec::with_capacity(recorded.len());
    for line in recorded {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "scenario" => lines.push(line.to_string()),
            "E" => {
                lines.push(line.to_string());
                let (now, ev) = rest.split_once(' ').unwrap();
                let body = parse_event(ev);
                s.on_event(
                    &Event {
                        stamp: Stamp::default(),
                        body,
                    },
                    now.parse().unwrap(),
                    &mut out,
                );
                lines.extend(out.as_slice().iter().map(|c| format!("C {}", render_command(c))));
            }
            "T" => {
                lines.push(line.to_string());
                s.on_timer(rest.parse().unwrap(), &mut out);
                lines.extend(out.as_slice().iter().map(|c| format!("C {}", render_command(c))));
            }
            "C" => {}
            other => panic!("bad fixture line kind {other}"),
        }
    }
    (lines, s.stats().kills)
}

#[test]
fn v1_decisions_are_unchanged_over_the_recorded_stream() {
    if std::env::var_os("KMM_RECORD_GOLDEN").is_some() {
        let text: String = scenarios().iter().map(record).collect();
        std::fs::create_dir_all(std::path::Path::new(FIXTURE).parent().unwrap()).unwrap();
        std::fs::write(FIXTURE, text).unwrap();
    }
    let fixture = std::fs::read_to_string(FIXTURE).expect("the V1 fixture (record it at the reference commit)");
    let mut sections: Vec<Vec<&str>> = Vec::new();
    for line in fixture.lines() {
        if line.starts_with("scenario ") {
            sections.push(Vec::new());
        }
        sections.last_mut().expect("fixture starts with a scenario").push(line);
    }
    let scs = scenarios();
    let mut tripped = 0;
    assert_eq!(sections.len(), scs.len(), "one recorded section per scenario");
    for (sc, recorded) in scs.iter().zip(&sections) {
        assert_eq!(recorded[0], format!("scenario {}", sc.name));
        let commands = recorded.iter().filter(|l| l.starts_with("C ")).count();
        // The stream exercises what V1 does, or it pins nothing.
        for k in ["place", "amend", "cancel "] {
            assert!(
                recorded.iter().any(|l| l.starts_with(&format!("C {k}"))),
                "{}: no {k} recorded",
                sc.name
            );
        }
        assert!(commands > 500, "{}: only {commands} commands", sc.name);
        let (replayed, kills) = replay(sc, recorded);
        tripped += kills;
        for (i, (want, got)) in recorded.iter().zip(&replayed).enumerate() {
            assert_eq!(want, got, "{}: line {} differs", sc.name, i + 1);
        }
        assert_eq!(recorded.len(), replayed.len(), "{}: a different number of lines", sc.name);
    }
    assert!(tripped > 0, "the kill switch never tripped: its cancels are not pinned");
    // A shrink at an unchanged price is rare (inventory moves the quote's price too), but it
    // is its own request and must be pinned somewhere.
    assert!(fixture.lines().any(|l| l.starts_with("C decrease")), "no decrease recorded");
}
