//! The table against a model: random event and request sequences checked against invariants
//! and a scan-based exposure, plus targeted cases for the side index.

use super::order::OrderState;
use super::side_index::{SideIndex, NIL};
use super::*;
use crate::event::{ClientRef, CommandBody, EventBody, MarketIdx, OrderId, OrderStatus, Price, Qty, RejectReason, Side};
use crate::ladder::FeeRates;
use crate::ladder::MarketLadder;
use kalshi_proto::ladder::LevelStructure;
use proptest::prelude::*;

/// `exposure` as it was before the side index: a scan over every open and settling order.
fn exposure_by_scan(orders: &Orders, market: MarketIdx) -> Exposure {
    let mut e = Exposure::default();
    for &i in &orders.open {
        let o = &orders.slots[usize::from(i)];
        if o.market != market {
            continue;
        }
        let s = match o.side {
            Side::Bid => &mut e.buy,
            Side::Ask => &mut e.sell,
        };
        s.orders += 1;
        s.unbooked += o.unbooked();
        if o.state == OrderState::Live {
            s.resting += o.remaining;
        } else {
            s.in_flight += o.worst_remaining();
        }
    }
    for &i in &orders.settling {
        let o = &orders.slots[usize::from(i)];
        if o.market == market {
            let s = match o.side {
                Side::Bid => &mut e.buy,
                Side::Ask => &mut e.sell,
            };
            s.unbooked += o.unbooked();
            s.in_doubt += o.in_doubt;
        }
    }
    let reusable = |side: Side| {
        let mut best: Option<usize> = None;
        for &i in &orders.open {
            let i = usize::from(i);
            let o = &orders.slots[i];
            if o.market != market || o.side != side {
                continue;
            }
            match o.state {
                OrderState::PendingNew | OrderState::PendingAmend { .. } | OrderState::PendingDecrease { .. } => return None,
                OrderState::Live if o.order.is_some() && best.is_none_or(|b| o.keeper_key() < orders.slots[b].keeper_key()) => {
                    best = Some(i)
                }
                _ => {}
            }
        }
        best
    };
    e.buy.quote = reusable(Side::Bid).map(|i| orders.quote_of(i));
    e.sell.quote = reusable(Side::Ask).map(|i| orders.quote_of(i));
    e
}

const MARKETS: MarketIdx = 3;

/// The index agrees with `open`: each side's list is exactly its slots, in `open` order.
fn check_index(orders: &Orders) -> Result<(), TestCaseError> {
    for (k, &i) in orders.open.iter().enumerate() {
        prop_assert_eq!(orders.open_at(usize::from(i)), Some(k));
    }
    for (i, o) in orders.slots.iter().enumerate() {
        prop_assert_eq!(
            orders.open_at(i).is_some(),
            orders.open.contains(&(i as u16)),
            "slot {} {:?}",
            i,
            o.state
        );
    }
    for market in 0..MARKETS {
        for side in [Side::Bid, Side::Ask] {
            let scan: Vec<usize> = orders
                .open
                .iter()
                .map(|&i| usize::from(i))
                .filter(|&i| orders.slots[i].market == market && orders.slots[i].side == side)
                .collect();
            let indexed: Vec<usize> = orders.side_slots(market, side).collect();
            prop_assert_eq!(&indexed, &scan, "market {} {:?}", market, side);
            let mut back = Vec::new();
            let key = SideIndex::key(market, side);
            let mut at = orders.sides.tail.get(key).copied().unwrap_or(NIL);
            while at != NIL {
                back.push(usize::from(at));
                at = orders.sides.prev[usize::from(at)];
            }
            back.reverse();
            prop_assert_eq!(&back, &scan, "backward, market {} {:?}", market, side);
        }
        prop_assert_eq!(orders.exposure(market), exposure_by_scan(orders, market));
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Op {
    Reconcile {
        market: MarketIdx,
        bid: Option<(u32, i64)>,
        ask: Option<(u32, i64)>,
    },
    Place {
        market: MarketIdx,
        ask: bool,
        cents: u32,
        qty: i64,
    },
    Ack {
        pick: usize,
        status: u8,
        filled: i64,
        remaining: i64,
        by_order: bool,
    },
    Reject {
        pick: usize,
        reason: u8,
    },
    Update {
        pick: usize,
        status: u8,
        cents: u32,
        filled: i64,
        remaining: i64,
    },
    Adopt {
        market: MarketIdx,
        ask: bool,
        seed: u64,
        remaining: i64,
    },
    Fill {
        pick: usize,
        qty: i64,
        by_order: bool,
    },
    Cancel {
        pick: usize,
    },
    Amend {
        pick: usize,
        cents: u32,
        total: i64,
    },
    Decrease {
        pick: usize,
        remaining: i64,
    },
    Disconnect,
    Connect,
    Wait {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let market = 0..MARKETS;
    let level = proptest::option::of((1u32..99, 1i64..6));
    prop_oneof![
        3 => (market.clone(), level.clone(), level).prop_map(|(market, bid, ask)| Op::Reconcile { market, bid, ask }),
        2 => (market.clone(), any::<bool>(), 1u32..99, 1i64..6).prop_map(|(market, ask, cents, qty)| Op::Place { market, ask, cents, qty }),
        3 => (any::<usize>(), 0u8..3, 0i64..4, 0i64..6, any::<bool>())
            .prop_map(|(pick, status, filled, remaining, by_order)| Op::Ack { pick, status, filled, remaining, by_order }),
        1 => (any::<usize>(), 0u8..11).prop_map(|(pick, reason)| Op::Reject { pick, reason }),
        2 => (any::<usize>(), 0u8..3, 1u32..99, 0i64..4, 0i64..6)
            .prop_map(|(pick, status, cents, filled, remaining)| Op::Update { pick, status, cents, filled, remaining }),
        1 => (market.clone(), any::<bool>(), 0u64..1_000, 1i64..6).prop_map(|(market, ask, seed, remaining)| Op::Adopt { market, ask, seed, remaining }),
        2 => (any::<usize>(), 1i64..3, any::<bool>()).prop_map(|(pick, qty, by_order)| Op::Fill { pick, qty, by_order }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => (any::<usize>(), 1u32..99, 1i64..8).prop_map(|(pick, cents, total)| Op::Amend { pick, cents, total }),
        1 => (any::<usize>(), 0i64..5).prop_map(|(pick, remaining)| Op::Decrease { pick, remaining }),
        1 => Just(Op::Disconnect),
        1 => Just(Op::Connect),
        1 => (0u64..8_000).prop_map(|ms| Op::Wait { ms }),
    ]
}

fn order_id(client: ClientRef) -> OrderId {
    OrderId(u128::from(client.0) + 1)
}

fn status(code: u8) -> OrderStatus {
    [OrderStatus::Resting, OrderStatus::Canceled, OrderStatus::Executed][usize::from(code % 3)]
}

fn side(ask: bool) -> Side {
    if ask {
        Side::Ask
    } else {
        Side::Bid
    }
}

fn run(ops: &[Op], reserve: bool) -> Result<(), TestCaseError> {
    let params = ExecParams {
        min_size_change: Qty(100),
        min_price_move_ticks: 1,
        inflight_timeout_ms: 5_000,
        reject_backoff_ms: 100,
    };
    // Few slots, so slots are reused and the table fills up.
    let mut orders = Orders::new(10, params);
    if reserve {
        orders.reserve_markets(usize::from(MARKETS) - 1);
    }
    let ladder = MarketLadder::from_structure(LevelStructure::LinearCent, FeeRates::NONE);
    let mut ids = ClientIds::new(7);
    let mut now = 1_000u64;
    let mut sink = |_: CommandBody| true;
    for op in ops {
        now += 1;
        match *op {
            Op::Reconcile { market, bid, ask } => {
                let level = |l: Option<(u32, i64)>| l.map(|(c, q)| (Price(c * 100), Qty(q * 100)));
                let desired = Desired {
                    bid: level(bid),
                    ask: level(ask),
                };
                // A rehearsal (even a minute ahead) changes nothing the real decision sees.
                let (mut twin, mut twin_ids) = (orders.clone(), ids.clone());
                let mut rehearsed = 0;
                for later in [0, 60_000] {
                    orders.rehearse(market, desired, &ladder, now + later, &ids, &mut |_| rehearsed += 1);
                }
                prop_assert_eq!(twin.stats(), orders.stats());
                let (mut sent, mut twin_sent) = (Vec::new(), Vec::new());
                orders.reconcile(market, desired, &ladder, now, &mut ids, &mut |c| {
                    sent.push(c);
                    sink(c)
                });
                twin.reconcile(market, desired, &ladder, now, &mut twin_ids, &mut |c| {
                    twin_sent.push(c);
                    true
                });
                prop_assert_eq!(&sent, &twin_sent);
                prop_assert_eq!(twin.stats(), orders.stats());
                prop_assert!(rehearsed >= sent.len(), "the rehearsal saw at least what was sent");
            }
            Op::Place { market, ask, cents, qty } => {
                let _ = orders.place(market, side(ask), Price(cents * 100), Qty(qty * 100), now, &mut ids, &mut sink);
            }
            Op::Adopt {
                market,
                ask,
                seed,
                remaining,
            } => {
                let client = ClientRef((7u64 << 32) | (1_000_000 + seed));
                orders.on_event(
                    &EventBody::OrderUpdate {
                        market,
                        client,
                        order: order_id(client),
                        status: OrderStatus::Resting,
                        side: side(ask),
                        price: Price(5_000),
                        remaining: Qty(remaining * 100),
                        filled: Qty(0),
                    },
                    now,
                    &mut |_| {},
                );
            }
            Op::Disconnect => orders.on_event(&crate::testkit::disconnected(), now, &mut |_| {}),
            Op::Connect => orders.on_event(&crate::testkit::connected(), now, &mut |_| {}),
            Op::Wait { ms } => now += ms,
            ref other => {
                let pick = match *other {
                    Op::Ack { pick, .. }
                    | Op::Reject { pick, .. }
                    | Op::Update { pick, .. }
                    | Op::Fill { pick, .. }
                    | Op::Cancel { pick }
                    | Op::Amend { pick, .. }
                    | Op::Decrease { pick, .. } => pick,
                    _ => unreachable!(),
                };
                // Any order the table has seen, open or finished.
                let seen = orders.slots.iter().filter(|o| o.client.0 != 0).count();
                if seen == 0 {
                    continue;
                }
                let o = *orders.slots.iter().filter(|o| o.client.0 != 0).nth(pick % seen).unwrap();
                let (client, market) = (o.client, o.market);
                match *other {
                    Op::Ack {
                        status: s,
                        filled,
                        remaining,
                        by_order,
                        ..
                    } => orders.on_event(
                        &EventBody::OrderAck {
                            market,
                            client: if by_order { ClientRef(0) } else { client },
                            order: order_id(client),
                            status: status(s),
                            filled: Qty(filled * 100),
                            remaining: Qty(remaining * 100),
                        },
                        now,
                        &mut |_| {},
                    ),
                    Op::Reject { reason, .. } => {
                        let reasons = [
                            RejectReason::InvalidPrice,
                            RejectReason::InvalidOrder,
                            RejectReason::InsufficientBalance,
                            RejectReason::PostOnlyCross,
                            RejectReason::FillOrKillInsufficient,
                            RejectReason::MarketClosed,
                            RejectReason::TradingPaused,
                            RejectReason::RateLimited,
                            RejectReason::NotFound,
                            RejectReason::ServerError,
                            RejectReason::Other,
                        ];
                        orders.on_event(
                            &EventBody::OrderReject {
                                market,
                                client,
                                reason: reasons[usize::from(reason) % reasons.len()],
                                http_status: 400,
                            },
                            now,
                            &mut |_| {},
                        )
                    }
                    Op::Update {
                        status: s,
                        cents,
                        filled,
                        remaining,
                        ..
                    } => orders.on_event(
                        &EventBody::OrderUpdate {
                            market,
                            client,
                            order: order_id(client),
                            status: status(s),
                            side: o.side,
                            price: Price(cents * 100),
                            remaining: Qty(remaining * 100),
                            filled: Qty(filled * 100),
                        },
                        now,
                        &mut |_| {},
                    ),
                    Op::Fill { qty, by_order, .. } => orders.on_event(
                        &EventBody::Fill {
                            market,
                            client: if by_order { ClientRef(0) } else { client },
                            order: order_id(client),
                            side: o.side,
                            yes_price: o.price,
                            qty: Qty(qty * 100),
                            is_taker: false,
                            fee: crate::event::Money(0),
                            post_position: Qty(0),
                            trade: crate::event::TradeId::NONE,
                        },
                        now,
                        &mut |_| {},
                    ),
                    Op::Cancel { .. } => {
                        let _ = orders.cancel(client, now, &mut sink);
                    }
                    Op::Amend { cents, total, .. } => {
                        let _ = orders.amend(client, Price(cents * 100), Qty(total * 100), now, &mut sink);
                    }
                    Op::Decrease { remaining, .. } => {
                        let _ = orders.decrease(client, Qty(remaining * 100), now, &mut sink);
                    }
                    _ => unreachable!(),
                }
            }
        }
        check_index(&orders)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn side_index_matches_a_scan_of_open_orders(ops in proptest::collection::vec(op(), 1..120), reserve in any::<bool>()) {
        run(&ops, reserve)?;
    }
}

#[test]
fn moved_slot_keeps_open_order_within_its_side() {
    // Three bids in market 0 and an ask in market 1; closing the first bid moves the ask
    // (last in `open`) to its place, and closing the second moves the third bid forward:
    // the side list must follow `open` each time.
    let mut orders = Orders::new(8, ExecParams::default());
    let mut ids = ClientIds::new(1);
    let mut sink = |_: CommandBody| true;
    let mut refs = Vec::new();
    for (market, side) in [(0, Side::Bid), (0, Side::Bid), (0, Side::Bid), (1, Side::Ask)] {
        refs.push(orders.place(market, side, Price(5_000), Qty(100), 1, &mut ids, &mut sink).unwrap());
    }
    let reject = |orders: &mut Orders, client: ClientRef| {
        orders.on_event(
            &EventBody::OrderReject {
                market: 0,
                client,
                reason: RejectReason::Other,
                http_status: 400,
            },
            2,
            &mut |_| {},
        )
    };
    reject(&mut orders, refs[0]);
    assert_eq!(orders.open, [3, 1, 2]);
    assert_eq!(orders.side_slots(0, Side::Bid).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(orders.side_slots(1, Side::Ask).collect::<Vec<_>>(), [3]);
    reject(&mut orders, refs[1]);
    assert_eq!(orders.open, [3, 2]);
    assert_eq!(orders.side_slots(0, Side::Bid).collect::<Vec<_>>(), [2]);
    assert_eq!(orders.exposure(0), exposure_by_scan(&orders, 0));
    // A market the index was never sized for works too.
    orders.place(9, Side::Ask, Price(5_000), Qty(100), 3, &mut ids, &mut sink).unwrap();
    assert_eq!(orders.side_slots(9, Side::Ask).count(), 1);
    assert_eq!(orders.side_slots(8, Side::Ask).count(), 0);
}
