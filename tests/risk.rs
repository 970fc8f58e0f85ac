//! Risk: limits validation, the clamp counting in-flight orders, the command gate, the kill
//! switch's trips and re-arms, and a property test that drives execution and risk against a
//! model exchange whose replies and feed messages race each other.

use kalshi_proto::ladder::LevelStructure;
use kmm::event::{ClientRef, CommandBody, EventBody, Money, OrderId, OrderStatus, Price, Qty, RejectReason, Side, TimeInForce};
use kmm::execution::{ClientIds, Desired, ExecParams, Exposure, Orders};
use kmm::ladder::{FeeRates, MarketLadder};
use kmm::risk::{KillReason, Risk, RiskBlock, RiskLimits};
use proptest::prelude::*;
use std::collections::{BTreeMap, VecDeque};

const M: u16 = 0;

fn c(n: i64) -> Qty {
    Qty::from_contracts(n)
}

fn cents(n: u32) -> Price {
    Price(n * 100)
}

fn ladder() -> MarketLadder {
    MarketLadder::from_structure(LevelStructure::LinearCent, FeeRates::NONE)
}

fn limits() -> RiskLimits {
    RiskLimits {
        max_position: c(10),
        max_order_qty: c(6),
        price_band_ticks: 5,
        max_open_orders: 4,
        max_rejects: 3,
        reject_window_ms: 1_000,
        stale_after_ms: 2_000,
    }
}

fn reject(reason: RejectReason) -> EventBody {
    EventBody::OrderReject {
        market: M,
        client: ClientRef(1),
        reason,
        http_status: 400,
    }
}

fn place(side: Side, price: Price, qty: Qty) -> CommandBody {
    CommandBody::Place {
        market: M,
        client: ClientRef(99),
        side,
        price,
        qty,
        tif: TimeInForce::GoodTillCanceled,
        post_only: true,
    }
}

#[test]
fn limits_validate_and_name_the_key() {
    assert_eq!(RiskLimits::default().validate(), Ok(()));
    assert_eq!(limits().validate(), Ok(()));
    type Spoil = fn(&mut RiskLimits);
    let cases: [(&str, Spoil); 8] = [
        ("max_position", |l| l.max_position = Qty(0)),
        ("max_order_size", |l| l.max_order_qty = Qty(-1)),
        ("max_order_size", |l| l.max_order_qty = c(11)),
        ("price_band_ticks", |l| l.price_band_ticks = 0),
        ("max_open_orders", |l| l.max_open_orders = 1),
        ("max_rejects", |l| l.max_rejects = 0),
        ("reject_window_ms", |l| l.reject_window_ms = 0),
        ("stale_after_ms", |l| l.stale_after_ms = 0),
    ];
    for (key, spoil) in cases {
        let mut l = limits();
        spoil(&mut l);
        let err = l.validate().unwrap_err();
        assert_eq!(err.key, key);
        let text = err.to_string();
        assert!(text.starts_with(key) && text.len() > key.len() + 10, "{text}");
    }
}

#[test]
fn codes_round_trip() {
    for r in KillReason::ALL {
        assert_eq!(KillReason::from_code(r.code()), Some(r));
        assert!(!r.name().is_empty());
    }
    for b in RiskBlock::ALL {
        assert_eq!(RiskBlock::from_code(b as u16), Some(b));
    }
    assert_eq!(KillReason::from_code(0), None);
}

/// Exposure of a real order table: one bid of `qty` at 45 in flight (unacked) or resting.
fn exposure_with_bid(qty: Qty, acked: bool) -> (Orders, Exposure) {
    let mut orders = Orders::new(8, ExecParams::default());
    let mut ids = ClientIds::new(1);
    let mut client = ClientRef(0);
    let bid = Desired {
        bid: Some((cents(45), qty)),
        ask: None,
    };
    orders.reconcile(M, bid, &ladder(), 0, &mut ids, &mut |cmd| {
        if let CommandBody::Place { client: cl, .. } = cmd {
            client = cl;
        }
        true
    });
    if acked {
        orders.on_event(
            &EventBody::OrderAck {
                market: M,
                client,
                order: OrderId(7),
                status: OrderStatus::Resting,
                filled: Qty(0),
                remaining: qty,
            },
            0,
            &mut |_| {},
        );
    }
    let e = orders.exposure(M);
    (orders, e)
}

#[test]
fn clamp_counts_orders_in_flight() {
    let risk = Risk::new(limits());
    let want = Desired {
        bid: Some((cents(45), c(5))),
        ask: Some((cents(55), c(5))),
    };
    // Position 8, max 10, a 5-lot bid in flight: worst case already 13, no bid room at all.
    let (_, inflight) = exposure_with_bid(c(5), false);
    assert_eq!(inflight.buy.in_flight, c(5));
    let d = risk.clamp(want, c(8), inflight);
    assert_eq!(d.bid, None);
    assert_eq!(d.ask, Some((cents(55), c(5))), "selling only reduces a long");
    // The same bid resting is the quote itself: the desired size replaces it, so 2 are left.
    let (_, resting) = exposure_with_bid(c(5), true);
    assert_eq!(risk.clamp(want, c(8), resting).bid, Some((cents(45), c(2))));
    // Flat: limited by the order size.
    let big = Desired {
        bid: Some((cents(45), c(9))),
        ask: None,
    };
    assert_eq!(risk.clamp(big, Qty(0), Exposure::default()).bid, Some((cents(45), c(6))));
    // Short 8: the ask side has 2 left; a fractional position still cuts to whole contracts.
    assert_eq!(risk.clamp(want, c(-8), Exposure::default()).ask, Some((cents(55), c(2))));
    assert_eq!(risk.clamp(want, Qty(-850), Exposure::default()).ask, Some((cents(55), c(1))));
    assert_eq!(risk.clamp(want, c(-10), Exposure::default()).ask, None);
}

#[test]
fn gate_checks_size_band_ladder_orders_and_position() {
    let mut risk = Risk::new(limits());
    let l = ladder();
    let e = Exposure::default();
    let mid = Some(Price(5_050));
    let ok = |r: &mut Risk, cmd: CommandBody, pos: Qty, e: Exposure, open: usize| r.check(&cmd, mid, &l, pos, e, open);
    assert_eq!(ok(&mut risk, place(Side::Bid, cents(48), c(6)), Qty(0), e, 0), Ok(()));
    assert_eq!(
        ok(&mut risk, place(Side::Bid, cents(48), c(7)), Qty(0), e, 0),
        Err(RiskBlock::OrderSize)
    );
    assert_eq!(
        ok(&mut risk, place(Side::Bid, cents(48), Qty(0)), Qty(0), e, 0),
        Err(RiskBlock::OrderSize)
    );
    // The mid is between 50 and 51: 45 and 56 are 5 ticks out, 44 and 57 six.
    assert_eq!(ok(&mut risk, place(Side::Bid, cents(45), c(1)), Qty(0), e, 0), Ok(()));
    assert_eq!(ok(&mut risk, place(Side::Ask, cents(56), c(1)), Qty(0), e, 0), Ok(()));
    assert_eq!(
        ok(&mut risk, place(Side::Bid, cents(44), c(1)), Qty(0), e, 0),
        Err(RiskBlock::PriceBand)
    );
    assert_eq!(
        ok(&mut risk, place(Side::Ask, cents(57), c(1)), Qty(0), e, 0),
        Err(RiskBlock::PriceBand)
    );
    assert_eq!(
        ok(&mut risk, place(Side::Bid, Price(4_850), c(1)), Qty(0), e, 0),
        Err(RiskBlock::OffLadder)
    );
    assert_eq!(
        risk.check(&place(Side::Bid, cents(48), c(1)), None, &l, Qty(0), e, 0),
        Err(RiskBlock::NoReference)
    );
    assert_eq!(
        ok(&mut risk, place(Side::Bid, cents(48), c(1)), Qty(0), e, 4),
        Err(RiskBlock::OpenOrders)
    );
    // Position: 8 long with a 5-lot bid in flight leaves no room for another bid.
    let (_, inflight) = exposure_with_bid(c(5), false);
    assert_eq!(
        ok(&mut risk, place(Side::Bid, cents(48), c(1)), c(8), inflight, 1),
        Err(RiskBlock::Position)
    );
    assert_eq!(ok(&mut risk, place(Side::Ask, cents(52), c(6)), c(8), inflight, 1), Ok(()));
    assert_eq!(
        ok(&mut risk, place(Side::Ask, cents(52), c(3)), c(-8), e, 1),
        Err(RiskBlock::Position)
    );
    assert_eq!(risk.blocks(RiskBlock::PriceBand), 2);
}

#[test]
fn gate_judges_amends_by_what_they_add() {
    let mut risk = Risk::new(limits());
    let l = ladder();
    let mid = Some(cents(50));
    let (orders, e) = exposure_with_bid(c(5), true);
    let quote = e.buy.quote.expect("the resting bid is the quote");
    let o = orders.get(quote.client).unwrap();
    let amend = |total: Qty| CommandBody::Amend {
        market: M,
        client: o.client,
        order: OrderId(7),
        side: Side::Bid,
        price: cents(47),
        total,
    };
    // Long 5 with 5 resting: worst 10; moving the same size adds nothing.
    assert_eq!(risk.check(&amend(c(5)), mid, &l, c(5), e, 1), Ok(()));
    assert_eq!(risk.check(&amend(c(6)), mid, &l, c(5), e, 1), Err(RiskBlock::Position));
    assert_eq!(risk.check(&amend(c(6)), mid, &l, c(4), e, 1), Ok(()));
    assert_eq!(risk.check(&amend(c(7)), mid, &l, Qty(0), e, 1), Err(RiskBlock::OrderSize));
    // Shrinking and cancelling always pass, killed or not.
    risk.kill(KillReason::Manual, 0);
    assert_eq!(risk.check(&amend(c(5)), mid, &l, Qty(0), e, 1), Err(RiskBlock::Killed));
    let dec = CommandBody::Decrease {
        market: M,
        client: o.client,
        order: OrderId(7),
        reduce_to: c(1),
    };
    assert_eq!(risk.check(&dec, mid, &l, c(50), e, 99), Ok(()));
    assert_eq!(risk.check(&CommandBody::CancelAll, None, &l, Qty(0), e, 0), Ok(()));
    assert_eq!(
        risk.clamp(
            Desired {
                bid: Some((cents(45), c(1))),
                ask: None
            },
            Qty(0),
            e
        ),
        Desired::NONE
    );
}

#[test]
fn reject_storm_trips_and_stays_until_cleared() {
    let mut risk = Risk::new(limits());
    // Benign rejects do not count (pacing handles rate limits); spread-out ones do not trip.
    for t in 0..10 {
        assert_eq!(risk.on_event(&reject(RejectReason::PostOnlyCross), t), None);
        assert_eq!(risk.on_event(&reject(RejectReason::NotFound), t), None);
        assert_eq!(risk.on_event(&reject(RejectReason::RateLimited), t), None);
    }
    assert_eq!(risk.on_event(&reject(RejectReason::ServerError), 0), None);
    assert_eq!(risk.on_event(&reject(RejectReason::ServerError), 600), None);
    assert_eq!(
        risk.on_event(&reject(RejectReason::ServerError), 1_200),
        None,
        "3 in 1200 ms > window"
    );
    assert_eq!(
        risk.on_event(&reject(RejectReason::InsufficientBalance), 1_300),
        Some(KillReason::RejectStorm)
    );
    assert_eq!(risk.killed(), Some(KillReason::RejectStorm));
    // Reconnecting and fresh data do not re-arm a reject storm.
    risk.on_event(
        &EventBody::Connected {
            feed: kmm::event::Feed::Kalshi,
        },
        2_000,
    );
    risk.on_event(&EventBody::BookSnapshotEnd { market: M }, 2_001);
    assert_eq!(risk.killed(), Some(KillReason::RejectStorm));
    assert!(risk.clear(KillReason::RejectStorm));
    assert_eq!(risk.killed(), None);
    // The cleared history does not trip again on the next one.
    assert_eq!(risk.on_event(&reject(RejectReason::ServerError), 2_100), None);
}

#[test]
fn disconnect_rearms_after_connected_and_a_fresh_snapshot() {
    let mut risk = Risk::new(limits());
    assert_eq!(
        risk.on_event(
            &EventBody::Disconnected {
                feed: kmm::event::Feed::Kalshi
            },
            10
        ),
        Some(KillReason::Disconnected)
    );
    assert_eq!(
        risk.on_event(
            &EventBody::Disconnected {
                feed: kmm::event::Feed::Kalshi
            },
            11
        ),
        None,
        "already tripped"
    );
    // Snapshots arrive on resubscribe, before the resync ends with Connected.
    risk.on_event(&EventBody::BookSnapshotEnd { market: M }, 20);
    assert_eq!(risk.killed(), Some(KillReason::Disconnected));
    risk.on_event(
        &EventBody::Connected {
            feed: kmm::event::Feed::Kalshi,
        },
        30,
    );
    assert_eq!(risk.killed(), None);
    // Connected alone is not enough.
    risk.on_event(
        &EventBody::Disconnected {
            feed: kmm::event::Feed::Kalshi,
        },
        40,
    );
    risk.on_event(
        &EventBody::Connected {
            feed: kmm::event::Feed::Kalshi,
        },
        50,
    );
    assert_eq!(risk.killed(), Some(KillReason::Disconnected));
    risk.on_event(&EventBody::BookSnapshotEnd { market: M }, 60);
    assert_eq!(risk.killed(), None);
    assert_eq!(risk.trips(), 2);
}

#[test]
fn stale_data_trips_only_while_quoting_and_rearms_on_a_snapshot() {
    let mut risk = Risk::new(limits());
    risk.on_event(
        &EventBody::BookDelta {
            market: M,
            side: Side::Bid,
            price: cents(45),
            delta: c(1),
            own: false,
        },
        1_000,
    );
    assert_eq!(risk.on_clock(2_999, 0, true), None);
    assert_eq!(risk.on_clock(10_000, 0, false), None, "not quoting: quiet is fine");
    // The caller's own newest-data time counts too.
    assert_eq!(risk.on_clock(10_000, 9_000, true), None);
    assert_eq!(risk.on_clock(11_000, 9_000, true), Some(KillReason::StaleData));
    // Deltas alone do not re-arm; a fresh snapshot does.
    risk.on_event(
        &EventBody::Trade {
            market: M,
            yes_price: cents(45),
            qty: c(1),
            taker: Side::Ask,
            trade: kmm::event::TradeId::NONE,
        },
        11_100,
    );
    assert_eq!(risk.killed(), Some(KillReason::StaleData));
    risk.on_event(&EventBody::BookSnapshotEnd { market: M }, 11_200);
    assert_eq!(risk.killed(), None);
    assert_eq!(risk.on_clock(11_300, 0, true), None);
}

#[test]
fn manual_kill_needs_an_operator_and_reasons_stack() {
    let mut risk = Risk::new(limits());
    assert!(risk.kill(KillReason::Manual, 5));
    risk.on_event(
        &EventBody::Disconnected {
            feed: kmm::event::Feed::Kalshi,
        },
        6,
    );
    assert!(risk.is_tripped(KillReason::Manual) && risk.is_tripped(KillReason::Disconnected));
    risk.on_event(&EventBody::BookSnapshotEnd { market: M }, 7);
    risk.on_event(
        &EventBody::Connected {
            feed: kmm::event::Feed::Kalshi,
        },
        8,
    );
    assert_eq!(risk.killed(), Some(KillReason::Manual), "disconnect re-armed, manual stays");
    assert!(!risk.is_tripped(KillReason::Disconnected));
    assert!(risk.clear(KillReason::Manual));
}

// ------------------------------------------------------------------ model exchange property

#[derive(Clone, Copy, Debug)]
struct ExOrder {
    client: ClientRef,
    side: Side,
    remaining: Qty,
    filled: Qty,
    resting: bool,
}

/// A tiny exchange with Kalshi's create/amend/decrease/cancel semantics. Requests wait in a
/// queue and are processed in any order; REST replies and WS messages travel on two FIFO
/// channels delivered in any interleaving, and a fill's `Fill` and `OrderUpdate` in either order.
#[derive(Default)]
struct Exchange {
    orders: BTreeMap<u128, ExOrder>,
    next_id: u128,
    requests: Vec<CommandBody>,
    rest: VecDeque<EventBody>,
    ws: VecDeque<EventBody>,
    position: i64,
}

impl Exchange {
    fn update(&self, id: u128) -> EventBody {
        let o = self.orders[&id];
        EventBody::OrderUpdate {
            market: M,
            client: o.client,
            order: OrderId(id),
            status: if o.resting {
                OrderStatus::Resting
            } else if o.remaining.0 == 0 && o.filled.0 > 0 {
                OrderStatus::Executed
            } else {
                OrderStatus::Canceled
            },
            side: o.side,
            price: cents(50),
            remaining: o.remaining,
            filled: o.filled,
        }
    }

    fn ack(&self, id: u128) -> EventBody {
        let o = self.orders[&id];
        let EventBody::OrderUpdate { status, .. } = self.update(id) else {
            unreachable!()
        };
        EventBody::OrderAck {
            market: M,
            client: o.client,
            order: OrderId(id),
            status,
            filled: o.filled,
            remaining: o.remaining,
        }
    }

    fn reply_reject(&mut self, client: ClientRef, reason: RejectReason) {
        self.rest.push_back(EventBody::OrderReject {
            market: M,
            client,
            reason,
            http_status: 400,
        });
    }

    fn resting(&self, order: OrderId) -> Option<u128> {
        self.orders.get(&order.0).filter(|o| o.resting).map(|_| order.0)
    }

    fn process(&mut self, k: usize, refuse: bool) {
        let cmd = self.requests.remove(k);
        match cmd {
            CommandBody::Place { client, side, qty, .. } => {
                if refuse {
                    return self.reply_reject(client, RejectReason::PostOnlyCross);
                }
                self.next_id += 1;
                let id = self.next_id;
                self.orders.insert(
                    id,
                    ExOrder {
                        client,
                        side,
                        remaining: qty,
                        filled: Qty(0),
                        resting: true,
                    },
                );
                self.rest.push_back(self.ack(id));
                self.ws.push_back(self.update(id));
            }
            CommandBody::Amend { client, order, total, .. } => match self.resting(order) {
                Some(id) if !refuse && total > self.orders[&id].filled => {
                    let o = self.orders.get_mut(&id).unwrap();
                    o.remaining = total - o.filled;
                    self.rest.push_back(self.ack(id));
                    self.ws.push_back(self.update(id));
                }
                Some(_) => self.reply_reject(client, RejectReason::PostOnlyCross),
                None => self.reply_reject(client, RejectReason::NotFound),
            },
            CommandBody::Decrease {
                client, order, reduce_to, ..
            } => match self.resting(order) {
                Some(id) => {
                    let o = self.orders.get_mut(&id).unwrap();
                    o.remaining = o.remaining.min(reduce_to);
                    o.resting = o.remaining.0 > 0;
                    self.rest.push_back(self.ack(id));
                    self.ws.push_back(self.update(id));
                }
                None => self.reply_reject(client, RejectReason::NotFound),
            },
            CommandBody::Cancel { client, order, .. } => match self.resting(order) {
                Some(id) => {
                    let o = self.orders.get_mut(&id).unwrap();
                    o.remaining = Qty(0);
                    o.resting = false;
                    self.rest.push_back(self.ack(id));
                    self.ws.push_back(self.update(id));
                }
                None => self.reply_reject(client, RejectReason::NotFound),
            },
            CommandBody::CancelAll | CommandBody::Resync { .. } => {}
        }
    }

    fn fill(&mut self, pick: usize, qty: i64, fill_first: bool) {
        let resting: Vec<u128> = self.orders.iter().filter(|(_, o)| o.resting).map(|(id, _)| *id).collect();
        if resting.is_empty() {
            return;
        }
        let id = resting[pick % resting.len()];
        let o = self.orders.get_mut(&id).unwrap();
        let q = Qty(qty.min(o.remaining.0));
        o.remaining -= q;
        o.filled += q;
        o.resting = o.remaining.0 > 0;
        self.position += o.side.sign() * q.0;
        let fill = EventBody::Fill {
            market: M,
            client: o.client,
            order: OrderId(id),
            side: o.side,
            yes_price: cents(50),
            qty: q,
            is_taker: false,
            fee: Money(0),
            post_position: Qty(self.position),
            trade: kmm::event::TradeId::NONE,
        };
        let update = self.update(id);
        if fill_first {
            self.ws.push_back(fill);
            self.ws.push_back(update);
        } else {
            self.ws.push_back(update);
            self.ws.push_back(fill);
        }
    }

    /// Worst-case position if every resting order and every request not yet processed filled.
    fn worst(&self, side: Side) -> i64 {
        let mut worst = self.position;
        for o in self.orders.values().filter(|o| o.resting && o.side == side) {
            let mut rem = o.remaining.0;
            for r in &self.requests {
                if let CommandBody::Amend { client, total, .. } = *r {
                    if client == o.client {
                        rem = rem.max(total.0 - o.filled.0);
                    }
                }
            }
            worst += side.sign() * rem;
        }
        for r in &self.requests {
            if let CommandBody::Place { side: s, qty, .. } = *r {
                if s == side {
                    worst += side.sign() * qty.0;
                }
            }
        }
        worst
    }

    /// Orders working on a side: resting, or a create not yet processed.
    fn working(&self, side: Side) -> usize {
        self.orders.values().filter(|o| o.resting && o.side == side).count()
            + self
                .requests
                .iter()
                .filter(|r| matches!(r, CommandBody::Place { side: s, .. } if *s == side))
                .count()
    }
}

#[derive(Clone, Debug)]
enum Step {
    Decide { bid: Option<(u32, i64)>, ask: Option<(u32, i64)> },
    Process { pick: usize, refuse: bool },
    Fill { pick: usize, qty: i64, fill_first: bool },
    Deliver { ws: bool, duplicate: bool },
    Tick(u64),
}

fn step() -> impl Strategy<Value = Step> {
    let level = proptest::option::weighted(0.85, (44u32..=56, 1i64..=8));
    prop_oneof![
        3 => (level.clone(), level).prop_map(|(b, a)| Step::Decide {
            bid: b.map(|(p, q)| (p.min(49), q)),
            ask: a.map(|(p, q)| (p.max(51), q)),
        }),
        3 => (any::<usize>(), proptest::bool::weighted(0.15)).prop_map(|(pick, refuse)| Step::Process { pick, refuse }),
        2 => (any::<usize>(), 1i64..=500, any::<bool>()).prop_map(|(pick, qty, fill_first)| Step::Fill { pick, qty, fill_first }),
        4 => (any::<bool>(), proptest::bool::weighted(0.1)).prop_map(|(ws, duplicate)| Step::Deliver { ws, duplicate }),
        1 => (1u64..200).prop_map(Step::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn worst_case_position_stays_within_limits(steps in proptest::collection::vec(step(), 1..250)) {
        let lim = RiskLimits { max_order_qty: c(8), price_band_ticks: 20, max_open_orders: 10, max_rejects: 1_000, ..limits() };
        let mut risk = Risk::new(lim);
        // The io thread answers every request, so in-flight timeouts (for a broken promise) stay out of play.
        let params = ExecParams { reject_backoff_ms: 0, min_size_change: c(1), inflight_timeout_ms: 1 << 40, ..ExecParams::default() };
        let mut orders = Orders::new(64, params);
        let mut ids = ClientIds::new(42);
        let l = ladder();
        let mut ex = Exchange::default();
        let mut position = 0i64; // booked from delivered fills, as the strategy does
        let mut now = 0u64;
        let trace = std::env::var_os("KMM_TRACE").is_some();
        let mut log = String::new();
        for s in steps {
            if trace {
                log += &format!("STEP {s:?}\n");
            }
            match s {
                Step::Decide { bid, ask } => {
                    let want = Desired { bid: bid.map(|(p, q)| (cents(p), c(q))), ask: ask.map(|(p, q)| (cents(p), c(q))) };
                    let exposure = orders.exposure(M);
                    let d = risk.clamp(want, Qty(position), exposure);
                    let mut open = orders.open_count();
                    let requests = &mut ex.requests;
                    orders.reconcile(M, d, &l, now, &mut ids, &mut |cmd| {
                        match risk.check(&cmd, Some(cents(50)), &l, Qty(position), exposure, open) {
                            Ok(()) => {
                                if matches!(cmd, CommandBody::Place { .. }) { open += 1; }
                                requests.push(cmd);
                                true
                            }
                            Err(_) => false,
                        }
                    });
                }
                Step::Process { pick, refuse } => {
                    if !ex.requests.is_empty() {
                        let k = pick % ex.requests.len();
                        ex.process(k, refuse);
                    }
                }
                Step::Fill { pick, qty, fill_first } => ex.fill(pick, qty, fill_first),
                Step::Deliver { ws, duplicate } => {
                    let q = if ws { &mut ex.ws } else { &mut ex.rest };
                    if let Some(ev) = q.pop_front() {
                        if duplicate && matches!(ev, EventBody::OrderUpdate { .. }) {
                            q.push_front(ev);
                        }
                        if let EventBody::Fill { side, qty, .. } = ev {
                            position += side.sign() * qty.0;
                        }
                        orders.on_event(&ev, now, &mut |_| {});
                        risk.on_event(&ev, now);
                    }
                }
                Step::Tick(ms) => now += ms,
            }
            if trace {
                log += &format!("  pos booked {position} true {} exp {:?}\n", ex.position, orders.exposure(M));
                for o in orders.iter() { log += &format!("  ours {:?} {:?} rem {} fil {} unb {}\n", o.client, o.state, o.remaining.0, o.filled.0, o.unbooked().0); }
                for (id, o) in &ex.orders { if o.resting { log += &format!("  ex {id} {o:?}\n"); } }
                log += &format!("  requests {:?}\n  rest {:?}\n  ws {:?}\n", ex.requests, ex.rest, ex.ws);
                if ex.worst(Side::Bid) > lim.max_position.0 || ex.worst(Side::Ask) < -lim.max_position.0 { eprintln!("FAILCASE\n{log}"); }
            }
            let max = lim.max_position.0;
            prop_assert!(ex.worst(Side::Bid) <= max, "worst long {} > {}", ex.worst(Side::Bid), max);
            prop_assert!(ex.worst(Side::Ask) >= -max, "worst short {} < {}", ex.worst(Side::Ask), -max);
            prop_assert!(ex.working(Side::Bid) <= 1, "two working bids");
            prop_assert!(ex.working(Side::Ask) <= 1, "two working asks");
        }
        // Drain everything: the table must agree with the exchange.
        loop {
            if !ex.requests.is_empty() {
                ex.process(0, false);
            } else if let Some(ev) = ex.rest.pop_front().or_else(|| ex.ws.pop_front()) {
                if let EventBody::Fill { side, qty, .. } = ev {
                    position += side.sign() * qty.0;
                }
                orders.on_event(&ev, now, &mut |_| {});
            } else {
                break;
            }
        }
        prop_assert_eq!(position, ex.position);
        let resting: i64 = ex.orders.values().filter(|o| o.resting).map(|o| o.remaining.0).sum();
        let e = orders.exposure(M);
        prop_assert_eq!(e.buy.worst().0 + e.sell.worst().0, resting);
        prop_assert_eq!(orders.open_count(), ex.orders.values().filter(|o| o.resting).count());
        for o in orders.iter() {
            let theirs = ex.orders.values().find(|x| x.client == o.client).unwrap();
            prop_assert_eq!((o.remaining, o.filled), (theirs.remaining, theirs.filled));
        }
    }
}
