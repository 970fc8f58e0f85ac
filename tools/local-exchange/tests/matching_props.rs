//! Property tests on matching: after any sequence of operations the book is never crossed,
//! money and contracts are conserved (fees included), no keyed account spends cash its
//! resting orders could need, and queue positions are exactly price-time.

use kalshi_proto::ladder::LevelStructure;
use kalshi_proto::order::{SelfTradePrevention, TimeInForce};
use kalshi_proto::units::{Money, Price, Qty};
use kalshi_proto::Side;
use local_exchange::book::OrderNo;
use local_exchange::engine::{Exchange, ExchangeConfig, FeeType, MarketSpec, NewOrder, Phrasing, Reduce};
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Clone, Debug)]
enum Op {
    Place {
        account: usize,
        market: usize,
        bid: bool,
        ticks_from_mid: i64,
        qty: i64,
        tif: u8,
        post_only: bool,
        reduce_only: bool,
        maker_stp: bool,
    },
    Cancel {
        pick: usize,
    },
    Decrease {
        pick: usize,
        by: i64,
    },
    Amend {
        pick: usize,
        ticks: i64,
        grow: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, 0..2usize, any::<bool>(), -6i64..=6, 1i64..=3000, 0u8..6, prop::bool::weighted(0.15), prop::bool::weighted(0.1), any::<bool>())
            .prop_map(|(account, market, bid, ticks_from_mid, qty, tif, post_only, reduce_only, maker_stp)| Op::Place { account, market, bid, ticks_from_mid, qty, tif, post_only, reduce_only, maker_stp }),
        2 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => (any::<usize>(), 1i64..=500).prop_map(|(pick, by)| Op::Decrease { pick, by }),
        1 => (any::<usize>(), -2i64..=2, -300i64..=300).prop_map(|(pick, ticks, grow)| Op::Amend { pick, ticks, grow }),
    ]
}

fn spec(ticker: &str, structure: LevelStructure) -> MarketSpec {
    MarketSpec {
        ticker: ticker.into(),
        event_ticker: "EV".into(),
        series_ticker: "S".into(),
        title: ticker.into(),
        structure,
        fee_type: FeeType::QuadraticWithMakerFees,
        fee_multiplier_e4: 10_000,
        open_ms: 0,
        close_ms: u64::MAX,
        settlement_timer_s: 0,
    }
}

struct World {
    ex: Exchange,
    deposited: Money,
    /// When each resting order last took its place in the queue (placement, or an amend that
    /// lost priority). Price-time priority means levels are ordered by this.
    priority: HashMap<OrderNo, u64>,
    clock: u64,
}

impl World {
    fn new() -> World {
        let mut ex = Exchange::new(ExchangeConfig::default());
        ex.add_market(spec("LIN", LevelStructure::LinearCent), 0);
        ex.add_market(spec("DECI", LevelStructure::DeciCent), 0);
        let mut deposited = Money::ZERO;
        for (i, cash) in [(0, 200_000), (1, 50_000), (2, 100_000_000), (3, 100_000_000)] {
            let unlimited = i >= 2;
            ex.add_account(format!("a{i}"), Money::from_cents(cash), unlimited);
            deposited += Money::from_cents(cash);
        }
        World {
            ex,
            deposited,
            priority: HashMap::new(),
            clock: 0,
        }
    }

    fn resting(&self) -> Vec<OrderNo> {
        let mut ids = Vec::new();
        for a in 0..self.ex.accounts.len() as u32 {
            for m in 0..2 {
                ids.extend(self.ex.resting_orders_of(a, m));
            }
        }
        ids.sort_unstable();
        ids
    }

    fn apply(&mut self, op: &Op) {
        self.clock += 1;
        let now = self.clock;
        match *op {
            Op::Place {
                account,
                market,
                bid,
                ticks_from_mid,
                qty,
                tif,
                post_only,
                reduce_only,
                maker_stp,
            } => {
                let m = market as u32;
                let ladder = self.ex.market(m).ladder.clone();
                let price = ladder.step_from(Price(5_000), ticks_from_mid);
                let side = if bid { Side::Bid } else { Side::Ask };
                let tif = match tif {
                    0 => TimeInForce::ImmediateOrCancel,
                    1 => TimeInForce::FillOrKill,
                    _ => TimeInForce::GoodTillCanceled,
                };
                let req = NewOrder {
                    account: account as u32,
                    market: m,
                    side,
                    price,
                    qty: Qty(qty),
                    phrasing: Phrasing::for_side(side),
                    tif,
                    post_only: post_only && tif == TimeInForce::GoodTillCanceled,
                    reduce_only,
                    stp: if maker_stp {
                        SelfTradePrevention::Maker
                    } else {
                        SelfTradePrevention::TakerAtCross
                    },
                    client_order_id: None,
                    expiration_ms: None,
                    cancel_on_pause: false,
                };
                if let Ok(placed) = self.ex.place(now, req) {
                    let o = placed.order;
                    if let Some(avg) = placed.average_fill_price {
                        // Never filled worse than the limit.
                        match side {
                            Side::Bid => assert!(avg <= price, "bid filled at {avg} above limit {price}"),
                            Side::Ask => assert!(avg >= price, "ask filled at {avg} below limit {price}"),
                        }
                    }
                    if o.is_resting() {
                        self.priority.insert(o.id, now);
                    }
                }
            }
            Op::Cancel { pick } => {
                let ids = self.resting();
                if let Some(&id) = ids.get(pick % ids.len().max(1)) {
                    let account = self.ex.order(id).unwrap().account;
                    self.ex.cancel(now, account, id).unwrap();
                }
            }
            Op::Decrease { pick, by } => {
                let ids = self.resting();
                if let Some(&id) = ids.get(pick % ids.len().max(1)) {
                    let account = self.ex.order(id).unwrap().account;
                    self.ex.decrease(now, account, id, Reduce::By(Qty(by))).unwrap();
                }
            }
            Op::Amend { pick, ticks, grow } => {
                let ids = self.resting();
                if let Some(&id) = ids.get(pick % ids.len().max(1)) {
                    let o = self.ex.order(id).unwrap().clone();
                    let ladder = self.ex.market(o.market).ladder.clone();
                    let price = ladder.step_from(o.price, ticks);
                    let total = Qty((o.filled.0 + o.remaining.0 + grow).max(o.filled.0 + 1));
                    if self.ex.amend(now, o.account, id, price, Some(total)).is_ok() {
                        let keeps = price == o.price && total.0 - o.filled.0 <= o.remaining.0;
                        if !keeps {
                            self.priority.insert(id, now);
                        }
                    }
                }
            }
        }
        self.ex.take_events();
    }

    fn check(&self) {
        self.ex.check_conservation(self.deposited).unwrap();
        for m in 0..2u32 {
            let market = self.ex.market(m);
            for side in [Side::Bid, Side::Ask] {
                for &price in market.ladder.prices() {
                    let Some(level) = market.book.level(side, price) else { continue };
                    let mut ahead = Qty::ZERO;
                    let mut last = 0;
                    for e in &level.entries {
                        let p = self.priority[&e.order];
                        assert!(
                            p >= last,
                            "level {price} {side:?}: order {} (priority {p}) behind a later one",
                            e.order
                        );
                        last = p;
                        assert_eq!(self.ex.queue_position(e.order), Some(ahead));
                        let o = self.ex.order(e.order).unwrap();
                        assert_eq!(o.remaining, e.remaining);
                        assert_eq!(o.price, price);
                        ahead += e.remaining;
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn matching_keeps_its_invariants(ops in prop::collection::vec(op(), 1..120)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
            w.check();
        }
        // Cancelling everything leaves no reservation behind.
        for id in w.resting() {
            let a = w.ex.order(id).unwrap().account;
            w.ex.cancel(w.clock + 1, a, id).unwrap();
        }
        for a in &w.ex.accounts {
            prop_assert_eq!(a.reserved, Money::ZERO);
        }
        w.check();
    }
}

#[test]
fn settlement_conserves_money() {
    let mut w = World::new();
    for (i, op) in [
        Op::Place {
            account: 2,
            market: 0,
            bid: false,
            ticks_from_mid: 0,
            qty: 5000,
            tif: 2,
            post_only: false,
            reduce_only: false,
            maker_stp: false,
        },
        Op::Place {
            account: 0,
            market: 0,
            bid: true,
            ticks_from_mid: 0,
            qty: 1000,
            tif: 2,
            post_only: false,
            reduce_only: false,
            maker_stp: false,
        },
        Op::Place {
            account: 3,
            market: 0,
            bid: true,
            ticks_from_mid: 1,
            qty: 2000,
            tif: 0,
            post_only: false,
            reduce_only: false,
            maker_stp: false,
        },
        Op::Place {
            account: 1,
            market: 0,
            bid: false,
            ticks_from_mid: -3,
            qty: 700,
            tif: 2,
            post_only: false,
            reduce_only: false,
            maker_stp: false,
        },
    ]
    .iter()
    .enumerate()
    {
        w.apply(op);
        w.check();
        assert!(i < 10);
    }
    let before: i64 = w.ex.accounts.iter().map(|a| a.cash.0).sum();
    w.ex.determine(100, 0, local_exchange::engine::MarketResult::Yes);
    w.ex.settle(101, 0);
    w.ex.check_conservation(w.deposited).unwrap();
    let after: i64 = w.ex.accounts.iter().map(|a| a.cash.0).sum();
    // Settlement moves exactly the collateral to the winners.
    assert!(after > before);
    assert_eq!(w.ex.collateral, Money::ZERO);
}
