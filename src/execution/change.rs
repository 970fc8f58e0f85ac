//! What applying one exchange event did to one of our orders, told the way a queue estimator
//! (and the metrics) need it: did it come to rest, go to the back of its queue, shrink in
//! place, fill in part, end cancelled or executed.
//!
//! The handlers in `events` change the table as the exchange says; this file compares the
//! order before and after and names the difference, so the report cannot drift from what the
//! table did. One event may report two changes (an immediate-or-cancel that filled in part and
//! cancelled the rest), and a reconnect reports every order its resync closed.

use super::order::{Order, OrderState, Role};
use super::Orders;
use crate::event::{ClientRef, MarketIdx, Price, Qty, Side};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// Now resting at `price`, at the back of its queue (a new order's ack, or one brought
    /// back by an exchange report).
    Rested,
    /// Moved to the back of the queue at `price` (an amend of price or a growth).
    Requeued,
    /// Shrunk in place, keeping its queue position (a decrease, or an amend that only shrinks).
    Decreased,
    /// `qty` filled; `remaining` still rests (0 for a fill that arrived after the order ended).
    PartlyFilled { qty: Qty },
    /// Ended without filling the rest: cancelled by us or the exchange, an immediate-or-cancel's
    /// unfilled part, or gone while we were disconnected.
    Cancelled,
    /// Filled in full.
    Executed,
}

/// One change to one of our orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderChange {
    pub client: ClientRef,
    pub market: MarketIdx,
    pub side: Side,
    pub role: Role,
    /// The order's price after the change.
    pub price: Price,
    /// What still rests after the change.
    pub remaining: Qty,
    pub kind: ChangeKind,
}

/// How many changes of each kind, for the summary and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChangeCounts {
    pub rested: u64,
    pub requeued: u64,
    pub decreased: u64,
    pub partly_filled: u64,
    pub cancelled: u64,
    pub executed: u64,
}

impl ChangeCounts {
    #[inline]
    pub fn count(&mut self, kind: ChangeKind) {
        let n = match kind {
            ChangeKind::Rested => &mut self.rested,
            ChangeKind::Requeued => &mut self.requeued,
            ChangeKind::Decreased => &mut self.decreased,
            ChangeKind::PartlyFilled { .. } => &mut self.partly_filled,
            ChangeKind::Cancelled => &mut self.cancelled,
            ChangeKind::Executed => &mut self.executed,
        };
        *n += 1;
    }
}

/// The parts of an order a change is read from, taken before an event is applied.
#[derive(Clone, Copy, Debug)]
pub(super) struct Before {
    state: OrderState,
    remaining: Qty,
    filled: Qty,
    total: Qty,
    requeues: u32,
}

impl Before {
    #[inline]
    pub(super) fn of(o: &Order) -> Before {
        Before {
            state: o.state,
            remaining: o.remaining,
            filled: o.filled,
            total: o.total,
            requeues: o.requeues,
        }
    }
}

impl Orders {
    /// Reports what happened to slot `i` since `before`.
    #[inline]
    pub(super) fn report_change(&self, i: usize, before: Before, changes: &mut impl FnMut(OrderChange)) {
        let o = &self.slots[i];
        let mut tell = |kind| {
            changes(OrderChange {
                client: o.client,
                market: o.market,
                side: o.side,
                role: o.role,
                price: o.price,
                remaining: o.remaining,
                kind,
            })
        };
        let finished = before.state != OrderState::Done && o.state == OrderState::Done;
        let filled = o.filled.0 - before.filled.0;
        if filled > 0 {
            if finished && o.filled >= before.total {
                return tell(ChangeKind::Executed);
            }
            tell(ChangeKind::PartlyFilled { qty: Qty(filled) });
        }
        if finished {
            return tell(ChangeKind::Cancelled);
        }
        if o.state != OrderState::Live {
            return;
        }
        if matches!(before.state, OrderState::PendingNew | OrderState::Done) {
            tell(ChangeKind::Rested);
        } else if o.requeues > before.requeues {
            tell(ChangeKind::Requeued);
        } else if o.remaining < before.remaining && filled == 0 {
            tell(ChangeKind::Decreased);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CommandBody, EventBody, OrderId, OrderStatus, TimeInForce};
    use crate::execution::{ClientIds, Desired, ExecParams};
    use crate::ladder::{FeeRates, MarketLadder};
    use kalshi_proto::ladder::LevelStructure;

    /// One market's table with the commands it sent and the changes it reported.
    struct Bench {
        orders: Orders,
        changes: Vec<(ClientRef, ChangeKind)>,
        now: u64,
    }

    impl Bench {
        fn new() -> Bench {
            Bench {
                orders: Orders::new(16, ExecParams::default()),
                changes: Vec::new(),
                now: 1_000,
            }
        }

        fn event(&mut self, body: EventBody) -> Vec<ChangeKind> {
            self.now += 1;
            let mut got = Vec::new();
            self.orders.on_event(&body, self.now, &mut |c| got.push((c.client, c.kind)));
            self.changes.extend(got.iter().copied());
            got.into_iter().map(|(_, k)| k).collect()
        }

        fn ack(&mut self, client: ClientRef, id: u128, status: OrderStatus, filled: i64, remaining: i64) -> Vec<ChangeKind> {
            self.event(EventBody::OrderAck {
                market: 0,
                client,
                order: OrderId(id),
                status,
                filled: Qty::from_contracts(filled),
                remaining: Qty::from_contracts(remaining),
            })
        }

        fn fill(&mut self, client: ClientRef, id: u128, side: Side, contracts: i64) -> Vec<ChangeKind> {
            self.event(crate::testkit::fill(
                0,
                client,
                OrderId(id),
                side,
                Price(5_000),
                Qty::from_contracts(contracts),
                false,
                crate::event::Money(0),
                Qty(0),
            ))
        }
    }

    fn cents(c: u32) -> Price {
        Price(c * 100)
    }

    #[test]
    fn a_quotes_life_reads_as_the_queue_estimator_needs_it() {
        let mut b = Bench::new();
        let (now, mut ids, sent) = (b.now, ClientIds::new(7), std::cell::RefCell::new(Vec::new()));
        let mut sink = |c| {
            sent.borrow_mut().push(c);
            true
        };
        let q = b
            .orders
            .place(0, Side::Bid, cents(40), Qty::from_contracts(10), now, &mut ids, &mut sink)
            .unwrap();
        assert_eq!(b.ack(q, 1, OrderStatus::Resting, 0, 10), [ChangeKind::Rested]);
        // A move of price goes to the back of the queue.
        b.orders.amend(q, cents(41), Qty::from_contracts(10), b.now, &mut sink).unwrap();
        assert_eq!(b.ack(q, 1, OrderStatus::Resting, 0, 10), [ChangeKind::Requeued]);
        // A decrease keeps the place.
        b.orders.decrease(q, Qty::from_contracts(6), b.now, &mut sink).unwrap();
        assert_eq!(b.ack(q, 1, OrderStatus::Resting, 0, 6), [ChangeKind::Decreased]);
        assert_eq!(
            b.fill(q, 1, Side::Bid, 2),
            [ChangeKind::PartlyFilled {
                qty: Qty::from_contracts(2)
            }]
        );
        // The same fill reported again by an update is not news.
        assert_eq!(
            b.event(EventBody::OrderUpdate {
                market: 0,
                client: q,
                order: OrderId(1),
                status: OrderStatus::Resting,
                side: Side::Bid,
                price: cents(41),
                remaining: Qty::from_contracts(4),
                filled: Qty::from_contracts(2),
            }),
            []
        );
        assert_eq!(b.fill(q, 1, Side::Bid, 4), [ChangeKind::Executed]);
        assert!(b.orders.get(q).is_some_and(|o| !o.is_open()));
    }

    #[test]
    fn an_immediate_or_cancel_that_fills_in_part_reports_the_fill_then_the_cancel() {
        let mut b = Bench::new();
        let (now, mut ids, sent) = (b.now, ClientIds::new(7), std::cell::RefCell::new(Vec::new()));
        let mut sink = |c| {
            sent.borrow_mut().push(c);
            true
        };
        let t = b
            .orders
            .take(0, Side::Bid, cents(60), Qty::from_contracts(8), now, &mut ids, &mut sink)
            .unwrap();
        assert!(matches!(
            sent.borrow()[..],
            [CommandBody::Place {
                tif: TimeInForce::ImmediateOrCancel,
                post_only: false,
                ..
            }]
        ));
        assert_eq!(b.orders.get(t).map(|o| o.role), Some(Role::Take));
        assert_eq!(
            b.orders.exposure(0).buy.in_flight,
            Qty::from_contracts(8),
            "a take in flight is exposure"
        );
        assert_eq!(
            b.ack(t, 9, OrderStatus::Canceled, 5, 0),
            [
                ChangeKind::PartlyFilled {
                    qty: Qty::from_contracts(5)
                },
                ChangeKind::Cancelled
            ]
        );
        assert_eq!(b.orders.open_count(), 0);
        // One that fills whole is executed.
        let now = b.now;
        let t2 = b
            .orders
            .take(0, Side::Ask, cents(40), Qty::from_contracts(3), now, &mut ids, &mut sink)
            .unwrap();
        assert_eq!(b.ack(t2, 10, OrderStatus::Executed, 3, 0), [ChangeKind::Executed]);
    }

    #[test]
    fn quote_reconciliation_neither_reuses_nor_waits_for_a_take() {
        let mut b = Bench::new();
        let ladder = MarketLadder::from_structure(LevelStructure::LinearCent, FeeRates::quadratic(10_000));
        let (now, mut ids, sent) = (b.now, ClientIds::new(7), std::cell::RefCell::new(Vec::new()));
        let mut sink = |c| {
            sent.borrow_mut().push(c);
            true
        };
        b.orders
            .take(0, Side::Bid, cents(60), Qty::from_contracts(8), now, &mut ids, &mut sink)
            .unwrap();
        let desired = Desired {
            bid: Some((cents(45), Qty::from_contracts(2))),
            ask: None,
        };
        sent.borrow_mut().clear();
        b.orders.reconcile(0, desired, &ladder, now, &mut ids, &mut sink);
        let sent = sent.borrow();
        // A quote goes out beside the take, and nothing is sent about the take.
        assert!(
            matches!(sent[..], [CommandBody::Place { price, tif: TimeInForce::GoodTillCanceled, post_only: true, .. }] if price == cents(45)),
            "{sent:?}"
        );
        assert_eq!(b.orders.exposure(0).buy.quote, None, "the take is not the side's reusable quote");
    }

    #[test]
    fn a_reconnect_reports_the_orders_it_found_gone() {
        let mut b = Bench::new();
        let (now, mut ids, sent) = (b.now, ClientIds::new(7), std::cell::RefCell::new(Vec::new()));
        let mut sink = |c| {
            sent.borrow_mut().push(c);
            true
        };
        let kept = b
            .orders
            .place(0, Side::Bid, cents(40), Qty::from_contracts(1), now, &mut ids, &mut sink)
            .unwrap();
        let gone = b
            .orders
            .place(0, Side::Ask, cents(60), Qty::from_contracts(1), now, &mut ids, &mut sink)
            .unwrap();
        b.ack(kept, 1, OrderStatus::Resting, 0, 1);
        b.ack(gone, 2, OrderStatus::Resting, 0, 1);
        b.changes.clear();
        assert_eq!(b.event(crate::testkit::disconnected()), []);
        // The listing after the reconnect has only one of the two.
        b.event(EventBody::OrderUpdate {
            market: 0,
            client: kept,
            order: OrderId(1),
            status: OrderStatus::Resting,
            side: Side::Bid,
            price: cents(40),
            remaining: Qty::from_contracts(1),
            filled: Qty(0),
        });
        assert_eq!(b.event(crate::testkit::connected()), [ChangeKind::Cancelled]);
        assert_eq!(b.changes, [(gone, ChangeKind::Cancelled)]);
    }
}
