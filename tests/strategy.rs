//! The pure strategy core: events in, commands out, no clock, no I/O.

use kmm::config::Config;
use kmm::event::{ClientRef, CommandBody, Event, EventBody, MarketIdx, MarketStatus, Money, OrderId, OrderStatus, Price, Qty, Side, Stamp};
use kmm::risk::KillReason;
use kmm::strategy::{Commands, Strategy, StrategyConfig};
use kmm::testkit;

const NOW: u64 = 1_780_000_000_000;

fn ev(body: EventBody) -> Event {
    Event {
        stamp: Stamp::default(),
        body,
    }
}

fn strategy_with(cfg: &Config) -> Strategy {
    Strategy::new(StrategyConfig::from_config(cfg, 42), &testkit::setups(2, NOW))
}

fn strategy() -> Strategy {
    strategy_with(&Config::default())
}

/// A book with bids 0.40..0.44 and asks 0.46..0.50, 50 contracts each.
fn snapshot(s: &mut Strategy, market: MarketIdx, out: &mut Commands) -> Vec<CommandBody> {
    let mut all = Vec::new();
    let mut feed = |s: &mut Strategy, body| {
        s.on_event(&ev(body), NOW, out);
        all.extend_from_slice(out.as_slice());
    };
    feed(s, EventBody::BookClear { market });
    for c in 40..=44u32 {
        feed(
            s,
            EventBody::BookLevel {
                market,
                side: Side::Bid,
                price: Price(c * 100),
                qty: Qty::from_contracts(50),
            },
        );
        feed(
            s,
            EventBody::BookLevel {
                market,
                side: Side::Ask,
                price: Price((c + 6) * 100),
                qty: Qty::from_contracts(50),
            },
        );
    }
    feed(s, EventBody::BookSnapshotEnd { market });
    all
}

fn places(cmds: &[CommandBody]) -> Vec<(Side, Price, Qty, ClientRef)> {
    cmds.iter()
        .filter_map(|c| match *c {
            CommandBody::Place {
                side,
                price,
                qty,
                client,
                post_only,
                ..
            } => {
                assert!(post_only, "V1 quotes are passive");
                Some((side, price, qty, client))
            }
            _ => None,
        })
        .collect()
}

fn ack(s: &mut Strategy, market: MarketIdx, client: ClientRef, order: u128, remaining: Qty, out: &mut Commands) {
    s.on_event(
        &ev(EventBody::OrderAck {
            market,
            client,
            order: OrderId(order),
            status: OrderStatus::Resting,
            filled: Qty(0),
            remaining,
        }),
        NOW,
        out,
    );
}

#[test]
fn a_live_book_gets_a_passive_two_sided_quote_of_the_configured_size() {
    let mut s = strategy();
    let mut out = Commands::default();
    let cmds = snapshot(&mut s, 0, &mut out);
    let p = places(&cmds);
    assert_eq!(p.len(), 2, "{cmds:?}");
    let bid = p.iter().find(|x| x.0 == Side::Bid).unwrap();
    let ask = p.iter().find(|x| x.0 == Side::Ask).unwrap();
    assert!(
        bid.1 <= Price(4400) && bid.1 >= Price(3500),
        "bid {:?} inside the band, not above the touch",
        bid.1
    );
    assert!(ask.1 >= Price(4600) && ask.1 <= Price(5500), "ask {:?}", ask.1);
    assert_eq!(bid.2, Config::default().quote_size);
    assert_ne!(bid.3, ask.3, "distinct client ids");
    // The other market has no book yet: nothing there.
    assert!(cmds.iter().all(|c| !matches!(c, CommandBody::Place { market: 1, .. })));
}

#[test]
fn fills_move_position_and_cash_exactly() {
    let mut s = strategy();
    let mut out = Commands::default();
    let p = places(&snapshot(&mut s, 0, &mut out));
    let (_, bid_px, bid_qty, bid_client) = *p.iter().find(|x| x.0 == Side::Bid).unwrap();
    ack(&mut s, 0, bid_client, 1, bid_qty, &mut out);
    s.on_event(
        &ev(EventBody::Fill {
            market: 0,
            client: bid_client,
            order: OrderId(1),
            side: Side::Bid,
            yes_price: bid_px,
            qty: Qty(300),
            is_taker: false,
            fee: Money(10_000),
            post_position: Qty(300),
            trade: kmm::event::TradeId::NONE,
        }),
        NOW,
        &mut out,
    );
    let a = s.account(0);
    assert_eq!(a.position, Qty(300));
    assert_eq!(a.fills, 1);
    assert_eq!(a.fees, Money(10_000));
    // 3 contracts at the bid price, plus a cent of fee: exact micro-dollars.
    assert_eq!(a.cash, Money(-(i64::from(bid_px.0) * 300) - 10_000));
    // Marked at the mid (0.45): value 3 * 0.45 - cost.
    assert_eq!(s.pnl(), Money(4500 * 300 - i64::from(bid_px.0) * 300 - 10_000));
}

#[test]
fn a_stale_book_pulls_its_quotes_and_a_fresh_snapshot_restores_them() {
    let mut s = strategy();
    let mut out = Commands::default();
    let p = places(&snapshot(&mut s, 0, &mut out));
    for (i, (_, _, q, c)) in p.iter().enumerate() {
        ack(&mut s, 0, *c, 10 + i as u128, *q, &mut out);
    }
    s.on_event(&ev(kmm::testkit::stale(0)), NOW, &mut out);
    let cancels = out.as_slice().iter().filter(|c| matches!(c, CommandBody::Cancel { .. })).count();
    assert_eq!(cancels, 2, "both quotes pulled: {:?}", out.as_slice());
    // A delta while stale changes nothing.
    s.on_event(
        &ev(EventBody::BookDelta {
            market: 0,
            side: Side::Bid,
            price: Price(4400),
            delta: Qty(100),
            own: false,
        }),
        NOW,
        &mut out,
    );
    assert!(places(out.as_slice()).is_empty());
    // Cancels confirmed, then a new snapshot: quoting resumes.
    for (i, (_, _, _, c)) in p.iter().enumerate() {
        s.on_event(
            &ev(EventBody::OrderAck {
                market: 0,
                client: *c,
                order: OrderId(10 + i as u128),
                status: OrderStatus::Canceled,
                filled: Qty(0),
                remaining: Qty(0),
            }),
            NOW,
            &mut out,
        );
    }
    assert_eq!(places(&snapshot(&mut s, 0, &mut out)).len(), 2);
}

#[test]
fn a_disconnect_trips_the_kill_switch_and_reconnect_with_a_snapshot_rearms_it() {
    let mut s = strategy();
    let mut out = Commands::default();
    let p = places(&snapshot(&mut s, 0, &mut out));
    for (i, (_, _, q, c)) in p.iter().enumerate() {
        ack(&mut s, 0, *c, 20 + i as u128, *q, &mut out);
    }
    s.on_event(
        &ev(EventBody::Disconnected {
            feed: kmm::event::Feed::Kalshi,
        }),
        NOW,
        &mut out,
    );
    assert_eq!(s.killed(), Some(KillReason::Disconnected));
    let cancels = out.as_slice().iter().filter(|c| matches!(c, CommandBody::Cancel { .. })).count();
    assert_eq!(cancels, 2, "everything cancelled on disconnect: {:?}", out.as_slice());
    // The resync reports the orders gone (cancelled meanwhile), then Connected and snapshots.
    for (i, (side, price, _, c)) in p.iter().enumerate() {
        s.on_event(
            &ev(EventBody::OrderUpdate {
                market: 0,
                client: *c,
                order: OrderId(20 + i as u128),
                status: OrderStatus::Canceled,
                side: *side,
                price: *price,
                remaining: Qty(0),
                filled: Qty(0),
            }),
            NOW,
            &mut out,
        );
    }
    s.on_event(
        &ev(EventBody::Connected {
            feed: kmm::event::Feed::Kalshi,
        }),
        NOW,
        &mut out,
    );
    let again = places(&snapshot(&mut s, 0, &mut out));
    assert_eq!(s.killed(), None, "re-armed by Connected + snapshot");
    assert_eq!(again.len(), 2, "quoting resumes");
}

#[test]
fn quotes_shrink_as_the_position_nears_its_limit_counting_orders_in_flight() {
    let mut cfg = Config::default();
    cfg.risk.max_position = Qty::from_contracts(8);
    cfg.quote_size = Qty::from_contracts(5);
    let mut s = strategy_with(&cfg);
    let mut out = Commands::default();
    let p = places(&snapshot(&mut s, 0, &mut out));
    let (_, bid_px, bid_qty, bid_client) = *p.iter().find(|x| x.0 == Side::Bid).unwrap();
    assert_eq!(bid_qty, Qty::from_contracts(5));
    ack(&mut s, 0, bid_client, 1, bid_qty, &mut out);
    // Filled 5: long 5 with 3 of room; the bid is done, a new one may be at most 3.
    s.on_event(
        &ev(EventBody::Fill {
            market: 0,
            client: bid_client,
            order: OrderId(1),
            side: Side::Bid,
            yes_price: bid_px,
            qty: Qty::from_contracts(5),
            is_taker: false,
            fee: Money(0),
            post_position: Qty::from_contracts(5),
            trade: kmm::event::TradeId::NONE,
        }),
        NOW,
        &mut out,
    );
    let mut after = out.as_slice().to_vec();
    s.on_event(
        &ev(EventBody::OrderUpdate {
            market: 0,
            client: bid_client,
            order: OrderId(1),
            status: OrderStatus::Executed,
            side: Side::Bid,
            price: bid_px,
            remaining: Qty(0),
            filled: Qty::from_contracts(5),
        }),
        NOW,
        &mut out,
    );
    after.extend_from_slice(out.as_slice());
    let new_bids: Vec<_> = places(&after).into_iter().filter(|x| x.0 == Side::Bid).collect();
    assert_eq!(new_bids.len(), 1, "a new, smaller bid: {after:?}");
    for b in &new_bids {
        assert!(b.2 <= Qty::from_contracts(3), "bid of {} with 3 contracts of room", b.2);
    }
}

#[test]
fn a_closed_market_is_not_quoted_and_the_monitor_mode_places_nothing() {
    let mut s = strategy();
    let mut out = Commands::default();
    s.on_event(
        &ev(EventBody::Lifecycle {
            market: 0,
            status: MarketStatus::Closed,
            yes: None,
        }),
        NOW,
        &mut out,
    );
    assert!(places(&snapshot(&mut s, 0, &mut out)).is_empty());

    let mut cfg = Config::default();
    cfg.modules.stoikov = false;
    let mut s = strategy_with(&cfg);
    assert!(snapshot(&mut s, 0, &mut out).is_empty(), "--no-stoikov: no commands at all");
}

#[test]
fn a_manual_kill_cancels_everything_and_stays_down() {
    let mut s = strategy();
    let mut out = Commands::default();
    let p = places(&snapshot(&mut s, 0, &mut out));
    for (i, (_, _, q, c)) in p.iter().enumerate() {
        ack(&mut s, 0, *c, 30 + i as u128, *q, &mut out);
    }
    s.kill(KillReason::Manual, NOW, &mut out);
    assert_eq!(out.as_slice().iter().filter(|c| matches!(c, CommandBody::Cancel { .. })).count(), 2);
    let again = snapshot(&mut s, 0, &mut out);
    assert!(places(&again).is_empty(), "a manual kill does not re-arm on data");
}

#[test]
fn a_quote_outside_the_price_band_is_dropped_before_it_reaches_risk() {
    let mut cfg = Config::default();
    cfg.stoikov.k = 50.0; // a two-cent liquidity half-spread: quotes two ticks from the mid
    cfg.risk.price_band_ticks = 1;
    let mut s = strategy_with(&cfg);
    let mut out = Commands::default();
    let cmds = snapshot(&mut s, 0, &mut out);
    assert!(places(&cmds).is_empty(), "{cmds:?}");
    assert_eq!(s.stats().risk_blocks, 0, "dropped by the strategy, not refused by the gate");
    let q = s.quote(0);
    assert!(q.bid.is_some() && q.ask.is_some(), "the model still quotes: {q:?}");
    cfg.risk.price_band_ticks = 3;
    let mut s = strategy_with(&cfg);
    assert_eq!(places(&snapshot(&mut s, 0, &mut out)).len(), 2, "a wider band lets them through");
}
