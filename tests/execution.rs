//! Execution: order tracking from acks, rejects, updates and fills in every order they can
//! arrive in, and quote diffing into the fewest requests.

use kalshi_proto::ladder::LevelStructure;
use kmm::event::{ClientRef, CommandBody, EventBody, OrderId, OrderStatus, Price, Qty, RejectReason, Side, TimeInForce};
use kmm::execution::{ClientIds, Desired, ExecParams, OrderState, Orders, Refusal};
use kmm::ladder::{FeeRates, MarketLadder};

const M: u16 = 0;

fn c(n: i64) -> Qty {
    Qty::from_contracts(n)
}

fn cents(n: u32) -> Price {
    Price(n * 100)
}

fn desired(bid: Option<(u32, i64)>, ask: Option<(u32, i64)>) -> Desired {
    Desired {
        bid: bid.map(|(p, q)| (cents(p), c(q))),
        ask: ask.map(|(p, q)| (cents(p), c(q))),
    }
}

struct Harness {
    orders: Orders,
    ids: ClientIds,
    ladder: MarketLadder,
    now: u64,
    next_order: u128,
}

impl Harness {
    fn new() -> Harness {
        Self::with(ExecParams::default())
    }

    fn with(params: ExecParams) -> Harness {
        Harness {
            orders: Orders::new(32, params),
            ids: ClientIds::new(0x5eed),
            ladder: MarketLadder::from_structure(LevelStructure::LinearCent, FeeRates::NONE),
            now: 1_000,
            next_order: 1,
        }
    }

    fn reconcile(&mut self, d: Desired) -> Vec<CommandBody> {
        let mut out = Vec::new();
        self.orders.reconcile(M, d, &self.ladder, self.now, &mut self.ids, &mut |cmd| {
            out.push(cmd);
            true
        });
        out
    }

    fn ev(&mut self, body: EventBody) {
        self.orders.on_event(&body, self.now, &mut |_| {});
    }

    fn new_order_id(&mut self) -> OrderId {
        self.next_order += 1;
        OrderId(self.next_order << 64 | 0xabc)
    }

    fn ack(&mut self, client: ClientRef, order: OrderId, status: OrderStatus, filled: Qty, remaining: Qty) {
        self.ev(EventBody::OrderAck {
            market: M,
            client,
            order,
            status,
            filled,
            remaining,
        });
    }

    fn reject(&mut self, client: ClientRef, reason: RejectReason) {
        self.ev(EventBody::OrderReject {
            market: M,
            client,
            reason,
            http_status: 400,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn update(&mut self, client: ClientRef, order: OrderId, status: OrderStatus, side: Side, price: Price, remaining: Qty, filled: Qty) {
        self.ev(EventBody::OrderUpdate {
            market: M,
            client,
            order,
            status,
            side,
            price,
            remaining,
            filled,
        });
    }

    fn fill(&mut self, client: ClientRef, order: OrderId, side: Side, qty: Qty) {
        self.ev(EventBody::Fill {
            market: M,
            client,
            order,
            side,
            yes_price: cents(50),
            qty,
            is_taker: false,
            fee: kmm::event::Money(0),
            post_position: Qty(0),
            trade: kmm::event::TradeId::NONE,
        });
    }

    /// Places the desired quote and acks it resting; returns the (client, order) per side sent.
    fn live(&mut self, d: Desired) -> Vec<(ClientRef, OrderId)> {
        let cmds = self.reconcile(d);
        let mut out = Vec::new();
        for cmd in cmds {
            let CommandBody::Place { client, qty, .. } = cmd else {
                panic!("expected a place, got {cmd:?}")
            };
            let id = self.new_order_id();
            self.ack(client, id, OrderStatus::Resting, Qty(0), qty);
            out.push((client, id));
        }
        out
    }

    fn state(&self, client: ClientRef) -> OrderState {
        self.orders.get(client).expect("tracked").state
    }
}

#[test]
fn client_ids_are_unique_per_session_and_never_zero() {
    let mut a = ClientIds::new(0);
    let mut b = ClientIds::new(1);
    let ra = a.next();
    let rb = b.next();
    assert_ne!(ra.0, 0);
    assert_ne!(ra, rb);
    assert!(a.is_ours(ra) && !a.is_ours(rb) && !a.is_ours(ClientRef(0)));
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        assert!(seen.insert(a.next()));
    }
}

#[test]
fn new_quote_places_post_only_gtc_orders() {
    let mut h = Harness::new();
    let cmds = h.reconcile(desired(Some((45, 10)), Some((55, 5))));
    assert_eq!(cmds.len(), 2);
    match cmds[0] {
        CommandBody::Place {
            market,
            side,
            price,
            qty,
            tif,
            post_only,
            client,
        } => {
            assert_eq!((market, side, price, qty), (M, Side::Bid, cents(45), c(10)));
            assert_eq!(tif, TimeInForce::GoodTillCanceled);
            assert!(post_only);
            assert_eq!(h.state(client), OrderState::PendingNew);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(cmds[1], CommandBody::Place { side: Side::Ask, qty, .. } if qty == c(5)));
    assert_eq!(h.orders.open_count(), 2);
    let e = h.orders.exposure(M);
    assert_eq!((e.buy.in_flight, e.sell.in_flight, e.buy.resting), (c(10), c(5), Qty(0)));
}

#[test]
fn same_quote_sends_nothing() {
    let mut h = Harness::new();
    let d = desired(Some((45, 10)), Some((55, 10)));
    let placed = h.live(d);
    assert_eq!(placed.len(), 2);
    assert!(h.reconcile(d).is_empty());
    assert_eq!(h.state(placed[0].0), OrderState::Live);
    let e = h.orders.exposure(M);
    assert_eq!((e.buy.resting, e.buy.in_flight), (c(10), Qty(0)));
    assert_eq!(e.buy.quote.map(|q| q.client), Some(placed[0].0));
}

#[test]
fn nothing_while_a_request_is_in_flight() {
    let mut h = Harness::new();
    let cmds = h.reconcile(desired(Some((45, 10)), None));
    assert_eq!(cmds.len(), 1);
    // A new price, a new size, nothing at all: the create is unanswered, so wait.
    assert!(h.reconcile(desired(Some((40, 3)), None)).is_empty());
    assert!(h.reconcile(desired(None, None)).is_empty());
    assert_eq!(h.orders.open_count(), 1);
}

#[test]
fn shrinking_decreases_and_keeps_priority() {
    let mut h = Harness::new();
    let placed = h.live(desired(Some((45, 10)), None));
    let (client, id) = placed[0];
    let cmds = h.reconcile(desired(Some((45, 4)), None));
    assert_eq!(
        cmds,
        vec![CommandBody::Decrease {
            market: M,
            client,
            order: id,
            reduce_to: c(4)
        }]
    );
    // Until the ack, the old size still counts.
    assert_eq!(h.orders.exposure(M).buy.in_flight, c(10));
    let queued = h.orders.get(client).unwrap().queued_ms;
    h.now += 10;
    h.ack(client, id, OrderStatus::Resting, Qty(0), c(4));
    let o = h.orders.get(client).unwrap();
    assert_eq!((o.state, o.remaining, o.requeues, o.queued_ms), (OrderState::Live, c(4), 0, queued));
    assert!(h.reconcile(desired(Some((45, 4)), None)).is_empty());
}

#[test]
fn price_move_amends_to_filled_plus_wanted() {
    let mut h = Harness::new();
    let placed = h.live(desired(None, Some((55, 10))));
    let (client, id) = placed[0];
    h.fill(client, id, Side::Ask, c(3));
    let cmds = h.reconcile(desired(None, Some((57, 10))));
    assert_eq!(
        cmds,
        vec![CommandBody::Amend {
            market: M,
            client,
            order: id,
            side: Side::Ask,
            price: cents(57),
            total: c(13),
        }]
    );
    // In flight the amend counts at the larger of old (7) and new (10) remaining.
    assert_eq!(h.orders.exposure(M).sell.in_flight, c(10));
    h.now += 5;
    h.ack(client, id, OrderStatus::Resting, c(3), c(10));
    let o = h.orders.get(client).unwrap();
    assert_eq!((o.price, o.remaining, o.filled, o.total), (cents(57), c(10), c(3), c(13)));
    assert_eq!((o.requeues, o.queued_ms), (1, h.now));
}

#[test]
fn growth_amends_only_beyond_the_hysteresis() {
    let mut h = Harness::with(ExecParams {
        min_size_change: c(3),
        ..ExecParams::default()
    });
    let placed = h.live(desired(Some((45, 10)), None));
    let (client, id) = placed[0];
    h.fill(client, id, Side::Bid, c(2));
    // 8 left, 10 wanted: below the 3-contract threshold.
    assert!(h.reconcile(desired(Some((45, 10)), None)).is_empty());
    h.fill(client, id, Side::Bid, c(2));
    let cmds = h.reconcile(desired(Some((45, 10)), None));
    assert_eq!(
        cmds,
        vec![CommandBody::Amend {
            market: M,
            client,
            order: id,
            side: Side::Bid,
            price: cents(45),
            total: c(14),
        }]
    );
}

#[test]
fn price_hysteresis_in_ticks() {
    let mut h = Harness::with(ExecParams {
        min_price_move_ticks: 2,
        ..ExecParams::default()
    });
    h.live(desired(Some((45, 10)), None));
    assert!(h.reconcile(desired(Some((46, 10)), None)).is_empty());
    // A shrink within the price hysteresis is still a decrease, at the old price.
    assert!(matches!(h.reconcile(desired(Some((46, 5)), None))[..], [CommandBody::Decrease { reduce_to, .. }] if reduce_to == c(5)));
}

#[test]
fn nothing_desired_cancels() {
    let mut h = Harness::new();
    let placed = h.live(desired(Some((45, 10)), Some((55, 10))));
    let cmds = h.reconcile(desired(Some((45, 10)), None));
    assert_eq!(
        cmds,
        vec![CommandBody::Cancel {
            market: M,
            client: placed[1].0,
            order: placed[1].1
        }]
    );
    assert_eq!(h.state(placed[1].0), OrderState::PendingCancel);
    // The cancel is in flight: nothing more, and no new ask beside it.
    assert!(h.reconcile(desired(Some((45, 10)), Some((56, 10)))).is_empty());
    assert_eq!(h.orders.exposure(M).sell.in_flight, c(10));
    h.ack(placed[1].0, placed[1].1, OrderStatus::Canceled, Qty(0), Qty(0));
    assert_eq!(h.state(placed[1].0), OrderState::Done);
    assert_eq!(h.orders.open_count(), 1);
    let cmds = h.reconcile(desired(Some((45, 10)), Some((56, 10))));
    assert!(matches!(cmds[..], [CommandBody::Place { side: Side::Ask, .. }]));
}

#[test]
fn reject_is_retried_after_the_backoff() {
    let mut h = Harness::with(ExecParams {
        reject_backoff_ms: 50,
        ..ExecParams::default()
    });
    let d = desired(Some((45, 10)), None);
    let CommandBody::Place { client, .. } = h.reconcile(d)[0] else {
        panic!()
    };
    h.reject(client, RejectReason::PostOnlyCross);
    assert_eq!(h.state(client), OrderState::Done);
    assert_eq!(h.orders.open_count(), 0);
    assert!(h.reconcile(d).is_empty(), "inside the backoff");
    h.now += 50;
    let cmds = h.reconcile(d);
    let CommandBody::Place { client: again, .. } = cmds[0] else {
        panic!("{cmds:?}")
    };
    assert_ne!(again, client, "a retry is a new order with a new reference");
}

#[test]
fn rejected_amend_and_cancel_leave_the_order_live() {
    let mut h = Harness::with(ExecParams {
        reject_backoff_ms: 0,
        ..ExecParams::default()
    });
    let placed = h.live(desired(Some((45, 10)), None));
    let (client, id) = placed[0];
    assert_eq!(h.reconcile(desired(Some((47, 10)), None)).len(), 1);
    h.reject(client, RejectReason::PostOnlyCross);
    let o = h.orders.get(client).unwrap();
    assert_eq!((o.state, o.price), (OrderState::Live, cents(45)));
    assert_eq!(h.reconcile(desired(None, None)).len(), 1);
    h.reject(client, RejectReason::RateLimited);
    assert_eq!(h.state(client), OrderState::Live);
    // Retried; this time the order was already gone.
    assert_eq!(
        h.reconcile(desired(None, None)),
        vec![CommandBody::Cancel {
            market: M,
            client,
            order: id
        }]
    );
    h.reject(client, RejectReason::NotFound);
    assert_eq!(h.state(client), OrderState::Done);
    assert_eq!(h.orders.open_count(), 0);
}

#[test]
fn fill_before_ack_counts_once() {
    // Fill, then an ack that already includes it.
    let mut h = Harness::new();
    let CommandBody::Place { client, .. } = h.reconcile(desired(Some((45, 10)), None))[0] else {
        panic!()
    };
    let id = h.new_order_id();
    h.fill(client, id, Side::Bid, c(4));
    assert_eq!(h.orders.get(client).unwrap().remaining, c(6));
    h.ack(client, id, OrderStatus::Resting, c(4), c(6));
    let o = h.orders.get(client).unwrap();
    assert_eq!((o.state, o.filled, o.remaining), (OrderState::Live, c(4), c(6)));

    // Fill, then an ack from before it.
    let mut h = Harness::new();
    let CommandBody::Place { client, .. } = h.reconcile(desired(Some((45, 10)), None))[0] else {
        panic!()
    };
    h.fill(client, id, Side::Bid, c(4));
    h.ack(client, id, OrderStatus::Resting, Qty(0), c(10));
    let o = h.orders.get(client).unwrap();
    assert_eq!((o.filled, o.remaining), (c(4), c(6)));

    // A fill that does not name our client id, before the ack tells us the order id.
    let mut h = Harness::new();
    let CommandBody::Place { client, .. } = h.reconcile(desired(Some((45, 10)), None))[0] else {
        panic!()
    };
    h.fill(ClientRef(0), id, Side::Bid, c(4));
    h.ack(client, id, OrderStatus::Resting, Qty(0), c(10));
    let o = h.orders.get(client).unwrap();
    assert_eq!((o.filled, o.remaining), (c(4), c(6)));
    assert_eq!(h.orders.stats().early_fills, 1);

    // Fully filled before the ack: the executed ack finishes it.
    let mut h = Harness::new();
    let CommandBody::Place { client, .. } = h.reconcile(desired(Some((45, 10)), None))[0] else {
        panic!()
    };
    h.fill(client, id, Side::Bid, c(10));
    assert_eq!(h.state(client), OrderState::PendingNew, "the ack decides");
    h.ack(client, id, OrderStatus::Executed, c(10), Qty(0));
    assert_eq!(h.state(client), OrderState::Done);
    assert_eq!(h.orders.open_count(), 0);
}

#[test]
fn duplicate_updates_and_fills_do_not_double_count() {
    let mut h = Harness::new();
    let placed = h.live(desired(Some((45, 10)), None));
    let (client, id) = placed[0];
    // The update first, then its fill, then the update again.
    h.update(client, id, OrderStatus::Resting, Side::Bid, cents(45), c(7), c(3));
    let e = h.orders.exposure(M);
    assert_eq!(
        (e.buy.resting, e.buy.unbooked),
        (c(7), c(3)),
        "reported fill not yet booked still counts"
    );
    h.fill(client, id, Side::Bid, c(3));
    h.update(client, id, OrderStatus::Resting, Side::Bid, cents(45), c(7), c(3));
    let o = h.orders.get(client).unwrap();
    assert_eq!((o.filled, o.remaining, o.total), (c(3), c(7), c(10)));
    let e = h.orders.exposure(M);
    assert_eq!((e.buy.resting, e.buy.unbooked, e.buy.worst()), (c(7), Qty(0), c(7)));
    // A second fill arrives first this time; the update then repeats it.
    h.fill(client, id, Side::Bid, c(2));
    h.update(client, id, OrderStatus::Resting, Side::Bid, cents(45), c(5), c(5));
    h.update(client, id, OrderStatus::Resting, Side::Bid, cents(45), c(5), c(5));
    let o = h.orders.get(client).unwrap();
    assert_eq!((o.filled, o.remaining), (c(5), c(5)));
    // Executed by update before its last fill arrives: still exposure until the fill is booked.
    h.update(client, id, OrderStatus::Executed, Side::Bid, cents(45), Qty(0), c(10));
    assert_eq!(h.orders.open_count(), 0);
    assert_eq!(h.orders.exposure(M).buy.worst(), c(5));
    h.fill(client, id, Side::Bid, c(5));
    assert_eq!(h.orders.exposure(M).buy.worst(), Qty(0));
}

#[test]
fn resync_adopts_ours_and_closes_the_missing() {
    let mut h = Harness::new();
    let placed = h.live(desired(Some((45, 10)), Some((55, 10))));
    let (bid, bid_id) = placed[0];
    let (ask, _) = placed[1];
    h.ev(EventBody::Disconnected {
        feed: kmm::event::Feed::Kalshi,
    });
    assert!(h.orders.resyncing());
    h.update(bid, bid_id, OrderStatus::Resting, Side::Bid, cents(45), c(10), Qty(0));
    // An order of ours the table lost track of (an earlier session's, say).
    let stray = ClientRef(0x77 << 32 | 9);
    let stray_id = h.new_order_id();
    h.update(stray, stray_id, OrderStatus::Resting, Side::Bid, cents(44), c(2), Qty(0));
    // Someone else's order (no kmm client id) is not ours to track.
    h.update(
        ClientRef(0),
        h.next_order_id_peek(),
        OrderStatus::Resting,
        Side::Bid,
        cents(40),
        c(1),
        Qty(0),
    );
    h.ev(EventBody::Connected {
        feed: kmm::event::Feed::Kalshi,
    });
    assert!(!h.orders.resyncing());
    assert_eq!(h.state(bid), OrderState::Live);
    assert_eq!(h.state(stray), OrderState::Live);
    assert_eq!(h.state(ask), OrderState::Done, "not listed: gone while we were away");
    assert_eq!(h.orders.stats().adopted, 1);
    assert_eq!(h.orders.stats().closed_by_resync, 1);
    assert_eq!(h.orders.exposure(M).buy.resting, c(12));
    // One order per side: of two bids the one longest in its queue stays (a tie here, so the
    // lower reference: the stray) and moves to the quote; the other is cancelled; the ask is replaced.
    let cmds = h.reconcile(desired(Some((45, 10)), Some((55, 10))));
    assert_eq!(cmds.len(), 3, "{cmds:?}");
    assert_eq!(
        cmds[0],
        CommandBody::Cancel {
            market: M,
            client: bid,
            order: bid_id
        }
    );
    assert_eq!(
        cmds[1],
        CommandBody::Amend {
            market: M,
            client: stray,
            order: stray_id,
            side: Side::Bid,
            price: cents(45),
            total: c(10)
        }
    );
    assert!(matches!(cmds[2], CommandBody::Place { side: Side::Ask, .. }));
}

#[test]
fn a_wrongly_closed_order_comes_back() {
    let mut h = Harness::new();
    let placed = h.live(desired(Some((45, 10)), None));
    let (client, id) = placed[0];
    h.ev(EventBody::Disconnected {
        feed: kmm::event::Feed::Kalshi,
    });
    h.ev(EventBody::Connected {
        feed: kmm::event::Feed::Kalshi,
    });
    assert_eq!(h.state(client), OrderState::Done);
    // The listing was older than the order's last state: the exchange says it rests.
    h.update(client, id, OrderStatus::Resting, Side::Bid, cents(45), c(10), Qty(0));
    assert_eq!(h.state(client), OrderState::Live);
    assert_eq!(h.orders.stats().revived, 1);
    // A terminal report is final; a stale resting one after it is ignored.
    h.update(client, id, OrderStatus::Canceled, Side::Bid, cents(45), Qty(0), Qty(0));
    h.update(client, id, OrderStatus::Resting, Side::Bid, cents(45), c(10), Qty(0));
    assert_eq!(h.state(client), OrderState::Done);
}

#[test]
fn unanswered_request_holds_the_side_until_an_update() {
    let mut h = Harness::with(ExecParams {
        inflight_timeout_ms: 1_000,
        ..ExecParams::default()
    });
    let CommandBody::Place { client, .. } = h.reconcile(desired(Some((45, 10)), None))[0] else {
        panic!()
    };
    h.now += 5_000;
    assert_eq!(h.orders.unknown_count(h.now), 1);
    // Unknown: never a second order beside it, and no cancel (it has no id).
    assert!(h.reconcile(desired(Some((47, 10)), None)).is_empty());
    let id = h.new_order_id();
    h.update(client, id, OrderStatus::Resting, Side::Bid, cents(45), c(10), Qty(0));
    assert_eq!(h.state(client), OrderState::Live);
    assert!(matches!(
        h.reconcile(desired(Some((47, 10)), None))[..],
        [CommandBody::Amend { .. }]
    ));
}

#[test]
fn timed_out_cancel_is_sent_again() {
    let mut h = Harness::with(ExecParams {
        inflight_timeout_ms: 1_000,
        ..ExecParams::default()
    });
    let placed = h.live(desired(Some((45, 10)), None));
    assert_eq!(h.reconcile(Desired::NONE).len(), 1);
    assert!(h.reconcile(Desired::NONE).is_empty());
    h.now += 1_000;
    assert_eq!(
        h.reconcile(Desired::NONE),
        vec![CommandBody::Cancel {
            market: M,
            client: placed[0].0,
            order: placed[0].1
        }]
    );
}

#[test]
fn cancel_all_respects_requests_in_flight() {
    let mut h = Harness::new();
    let placed = h.live(desired(Some((45, 10)), Some((55, 10))));
    // A third order in another market, still unacked.
    let mut out = Vec::new();
    h.orders
        .reconcile(1, desired(Some((30, 1)), None), &h.ladder, h.now, &mut h.ids, &mut |c| {
            out.push(c);
            true
        });
    let CommandBody::Place { client: pending, .. } = out[0] else {
        panic!()
    };
    let mut cancels = Vec::new();
    let open = h.orders.cancel_all(None, &mut |c| {
        cancels.push(c);
        true
    });
    assert_eq!(open, 3);
    assert_eq!(cancels.len(), 2);
    assert!(cancels.iter().all(|c| matches!(c, CommandBody::Cancel { market: M, .. })));
    // Idempotent: nothing new to send.
    let mut again = Vec::new();
    assert_eq!(
        h.orders.cancel_all(None, &mut |c| {
            again.push(c);
            true
        }),
        3
    );
    assert!(again.is_empty());
    // The create's ack arrives: now it can be cancelled too.
    let id = h.new_order_id();
    h.ev(EventBody::OrderAck {
        market: 1,
        client: pending,
        order: id,
        status: OrderStatus::Resting,
        filled: Qty(0),
        remaining: c(1),
    });
    let mut last = Vec::new();
    h.orders.cancel_all(Some(1), &mut |c| {
        last.push(c);
        true
    });
    assert_eq!(
        last,
        vec![CommandBody::Cancel {
            market: 1,
            client: pending,
            order: id
        }]
    );
    for (client, id) in placed {
        h.ack(client, id, OrderStatus::Canceled, Qty(0), Qty(0));
    }
    assert_eq!(h.orders.cancel_all(Some(M), &mut |_| true), 0);
}

#[test]
fn a_cancel_all_ack_by_order_id_closes_the_order() {
    let mut h = Harness::new();
    let placed = h.live(desired(Some((45, 10)), None));
    h.ack(ClientRef(0), placed[0].1, OrderStatus::Canceled, Qty(0), Qty(0));
    assert_eq!(h.state(placed[0].0), OrderState::Done);
    // And one without any id is ignored (the updates will follow).
    h.ack(ClientRef(0), OrderId(0), OrderStatus::Canceled, Qty(0), Qty(0));
}

#[test]
fn vetoed_commands_leave_no_trace() {
    let mut h = Harness::new();
    let mut tried = 0;
    h.orders
        .reconcile(M, desired(Some((45, 10)), None), &h.ladder, h.now, &mut h.ids, &mut |_| {
            tried += 1;
            false
        });
    assert_eq!(tried, 1);
    assert_eq!(h.orders.open_count(), 0);
    let placed = h.live(desired(Some((45, 10)), None));
    h.orders
        .reconcile(M, desired(Some((47, 10)), None), &h.ladder, h.now, &mut h.ids, &mut |_| false);
    assert_eq!(h.state(placed[0].0), OrderState::Live);
    assert!(matches!(
        h.reconcile(desired(Some((47, 10)), None))[..],
        [CommandBody::Amend { .. }]
    ));
}

#[test]
fn direct_requests_for_v2() {
    let mut h = Harness::new();
    let mut sent = Vec::new();
    let client = h
        .orders
        .place(M, Side::Bid, cents(40), c(5), h.now, &mut h.ids, &mut |c| {
            sent.push(c);
            true
        })
        .unwrap();
    assert_eq!(h.orders.decrease(client, c(2), h.now, &mut |_| true), Err(Refusal::Busy));
    let id = h.new_order_id();
    h.ack(client, id, OrderStatus::Resting, Qty(0), c(5));
    assert_eq!(h.orders.decrease(client, c(2), h.now, &mut |_| true), Ok(()));
    h.ack(client, id, OrderStatus::Resting, Qty(0), c(2));
    assert_eq!(
        h.orders.amend(client, cents(41), Qty(0), h.now, &mut |_| true),
        Err(Refusal::BadSize)
    );
    assert_eq!(h.orders.cancel(ClientRef(12345), h.now, &mut |_| true), Err(Refusal::NotFound));
    assert_eq!(h.orders.cancel(client, h.now, &mut |_| false), Err(Refusal::Vetoed));
    assert_eq!(h.orders.cancel(client, h.now, &mut |_| true), Ok(()));
}

#[test]
fn a_full_table_refuses_to_place() {
    let h = Harness::new();
    let mut ids = ClientIds::new(3);
    let mut orders = Orders::new(4, ExecParams::default());
    let mut n = 0;
    for m in 0..4u16 {
        orders.reconcile(m, desired(Some((45, 1)), Some((55, 1))), &h.ladder, h.now, &mut ids, &mut |_| {
            n += 1;
            true
        });
    }
    assert_eq!(n, 4);
    assert_eq!(orders.open_count(), 4);
    assert_eq!(orders.stats().full, 4);
}

impl Harness {
    fn next_order_id_peek(&self) -> OrderId {
        OrderId((self.next_order + 1000) << 64)
    }
}

#[test]
fn a_stale_update_cannot_shrink_or_move_a_known_order() {
    let mut h = Harness::new();
    let placed = h.live(desired(Some((45, 5)), None));
    let (client, id) = placed[0];
    assert_eq!(h.reconcile(desired(Some((46, 10)), None)).len(), 1);
    h.ack(client, id, OrderStatus::Resting, Qty(0), c(10));
    // The placement's own update, overtaken by the amend's REST ack.
    h.update(client, id, OrderStatus::Resting, Side::Bid, cents(45), c(5), Qty(0));
    let o = h.orders.get(client).unwrap();
    assert_eq!((o.price, o.remaining), (cents(46), c(10)));
    // Its fills still count.
    h.update(client, id, OrderStatus::Resting, Side::Bid, cents(45), c(3), c(2));
    let o = h.orders.get(client).unwrap();
    assert_eq!((o.remaining, o.filled), (c(8), c(2)));
}

#[test]
fn a_vanished_order_stays_exposure_until_its_end_is_known() {
    let mut h = Harness::new();
    let placed = h.live(desired(Some((45, 10)), None));
    let (client, id) = placed[0];
    assert_eq!(h.reconcile(Desired::NONE).len(), 1);
    // "Not found": filled, most likely, with the fills still on their way.
    h.reject(client, RejectReason::NotFound);
    assert_eq!(h.orders.open_count(), 0);
    assert_eq!(h.orders.exposure(M).buy.in_doubt, c(10));
    // A stale resting report does not bring it back.
    h.update(client, id, OrderStatus::Resting, Side::Bid, cents(45), c(10), Qty(0));
    assert_eq!(h.state(client), OrderState::Done);
    h.fill(client, id, Side::Bid, c(4));
    assert_eq!(h.orders.exposure(M).buy.worst(), c(6));
    h.update(client, id, OrderStatus::Executed, Side::Bid, cents(45), Qty(0), c(10));
    assert_eq!(h.orders.exposure(M).buy.worst(), c(6), "executed: 6 more to book");
    h.fill(client, id, Side::Bid, c(6));
    assert_eq!(h.orders.exposure(M).buy.worst(), Qty(0));
}
