//! A deterministic synthetic market and a minimal venue that answers commands, for the
//! allocation tests, the strategy and pipeline benches, and anyone replaying the strategy
//! without sockets.
//!
//! [`SyntheticFeed`] produces what the io thread would: a snapshot per market, then book
//! deltas that walk the touch, and public trades. [`MiniVenue`] answers the strategy's
//! commands the way the exchange does (an ack per request, fills on some resting orders), so
//! every path of the strategy core (quoting, diffing, risk, fills) runs. Both are allocation-
//! free after construction.

use crate::event::{
    ClientRef, CommandBody, Event, EventBody, Feed, MarketIdx, Money, OrderId, OrderStatus, Price, Qty, Side, Stamp, TradeId,
};
use crate::ladder::{FeeRates, MarketLadder};
use crate::strategy::MarketSetup;
use kalshi_proto::ladder::LevelStructure;

/// xorshift64*: tiny, deterministic, good enough for test traffic.
#[derive(Clone, Copy, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Cent-ladder markets named `SYN-0`, `SYN-1`, ... closing in a day.
pub fn setups(markets: usize, now_ms: u64) -> Vec<MarketSetup> {
    (0..markets)
        .map(|i| MarketSetup {
            ticker: format!("SYN-{i}"),
            ladder: MarketLadder::from_structure(LevelStructure::LinearCent, FeeRates::quadratic(10_000)),
            close_ts_ms: now_ms + 86_400_000,
        })
        .collect()
}

/// One market's synthetic book: resting size per cent on each side, the best bid and a one-
/// or two-cent spread.
#[derive(Clone, Copy, Debug)]
struct SynBook {
    bids: [i64; 100],
    asks: [i64; 100],
    bid_cents: u32,
    spread: u32,
}

const DEPTH: u32 = 5;
const LEVEL_QTY: i64 = 40_00;

/// Deterministic market data for `markets` markets.
pub struct SyntheticFeed {
    rng: Rng,
    books: Vec<SynBook>,
    /// Events waiting to be handed out (a snapshot is several).
    queue: [EventBody; 32],
    queued: usize,
    next: usize,
    seq: u64,
    /// Public trades so far, numbering their trade ids.
    trades: u64,
    pub now_ms: u64,
}

impl SyntheticFeed {
    pub fn new(markets: usize, seed: u64, now_ms: u64) -> SyntheticFeed {
        let mut rng = Rng::new(seed);
        let books = (0..markets)
            .map(|_| {
                let mut b = SynBook {
                    bids: [0; 100],
                    asks: [0; 100],
                    bid_cents: 30 + rng.below(40) as u32,
                    spread: 1 + rng.below(2) as u32,
                };
                for d in 0..DEPTH {
                    b.bids[(b.bid_cents - d) as usize] = LEVEL_QTY;
                    b.asks[(b.bid_cents + b.spread + d) as usize] = LEVEL_QTY;
                }
                b
            })
            .collect();
        SyntheticFeed {
            rng,
            books,
            queue: [EventBody::Connected { feed: Feed::Kalshi }; 32],
            queued: 0,
            next: 0,
            seq: 0,
            trades: 0,
            now_ms,
        }
    }

    pub fn markets(&self) -> usize {
        self.books.len()
    }

    fn push(&mut self, body: EventBody) {
        self.queue[self.queued] = body;
        self.queued += 1;
    }

    fn snapshot(&mut self, market: MarketIdx) {
        let b = self.books[usize::from(market)];
        self.push(EventBody::BookClear { market });
        for c in 1..100u32 {
            for (side, qty) in [(Side::Bid, b.bids[c as usize]), (Side::Ask, b.asks[c as usize])] {
                if qty > 0 {
                    self.push(EventBody::BookLevel {
                        market,
                        side,
                        price: Price(c * 100),
                        qty: Qty(qty),
                    });
                }
            }
        }
        self.push(EventBody::BookSnapshotEnd { market });
    }

    /// Changes one level by `delta` and queues the matching book delta.
    fn change(&mut self, market: MarketIdx, side: Side, cents: u32, delta: i64) {
        if !(1..100).contains(&cents) || delta == 0 {
            return;
        }
        let b = &mut self.books[usize::from(market)];
        let level = match side {
            Side::Bid => &mut b.bids[cents as usize],
            Side::Ask => &mut b.asks[cents as usize],
        };
        let delta = delta.max(-*level);
        if delta == 0 {
            return;
        }
        *level += delta;
        self.push(EventBody::BookDelta {
            market,
            side,
            price: Price(cents * 100),
            delta: Qty(delta),
            own: false,
        });
    }

    /// The snapshots of every market, as the first events of a session.
    pub fn start(&mut self, mut sink: impl FnMut(Event)) {
        for m in 0..self.books.len() {
            self.queued = 0;
            self.snapshot(m as MarketIdx);
            for i in 0..self.queued {
                let ev = self.stamp(self.queue[i]);
                sink(ev);
            }
        }
        self.queued = 0;
        self.next = 0;
    }

    fn stamp(&mut self, body: EventBody) -> Event {
        self.seq += 1;
        Event {
            stamp: Stamp {
                sid: 1,
                seq: self.seq,
                exchange_ts_ms: self.now_ms,
                read_tsc: 0,
                decoded_tsc: 0,
                parsed_tsc: 0,
            },
            body,
        }
    }

    /// The venue's oldest answer in `pending` if there is one, else the next market-data event:
    /// a strategy fed this way sees its orders answered before the market moves on.
    pub fn answer_or_next(&mut self, pending: &mut Vec<EventBody>) -> EventBody {
        if pending.is_empty() {
            self.next_event().body
        } else {
            pending.remove(0)
        }
    }

    /// The next market-data event. Time advances 5 ms per event.
    pub fn next_event(&mut self) -> Event {
        self.now_ms += 5;
        if self.next < self.queued {
            let body = self.queue[self.next];
            self.next += 1;
            return self.stamp(body);
        }
        self.queued = 0;
        self.next = 0;
        let market = self.rng.below(self.books.len() as u64) as MarketIdx;
        let b = self.books[usize::from(market)];
        let roll = self.rng.below(10);
        if roll < 2 {
            // The touch moves a cent: the old best level empties, a new one appears on the
            // other side of the spread, and a level is added at the far end.
            let m = usize::from(market);
            if self.rng.below(2) == 0 && b.bid_cents + b.spread < 94 {
                let ask = b.bid_cents + b.spread;
                self.change(market, Side::Ask, ask, -b.asks[ask as usize]);
                self.change(market, Side::Bid, b.bid_cents + 1, LEVEL_QTY);
                self.change(market, Side::Ask, ask + DEPTH, LEVEL_QTY);
                self.change(
                    market,
                    Side::Bid,
                    b.bid_cents + 1 - DEPTH,
                    -b.bids[(b.bid_cents + 1 - DEPTH) as usize],
                );
                self.books[m].bid_cents += 1;
            } else if b.bid_cents > DEPTH + 1 {
                self.change(market, Side::Bid, b.bid_cents, -b.bids[b.bid_cents as usize]);
                self.change(market, Side::Ask, b.bid_cents + b.spread - 1, LEVEL_QTY);
                self.change(market, Side::Bid, b.bid_cents - DEPTH, LEVEL_QTY);
                let far = b.bid_cents + b.spread - 1 + DEPTH;
                if far < 100 {
                    self.change(market, Side::Ask, far, -b.asks[far as usize]);
                }
                self.books[m].bid_cents -= 1;
            }
            if self.queued > 0 {
                self.next = 1;
                return self.stamp(self.queue[0]);
            }
        }
        if roll < 4 {
            let taker = if self.rng.below(2) == 0 { Side::Bid } else { Side::Ask };
            let price = match taker {
                Side::Bid => (b.bid_cents + b.spread) * 100,
                Side::Ask => b.bid_cents * 100,
            };
            let qty = Qty(100 * (1 + self.rng.below(20) as i64));
            self.trades += 1;
            return self.stamp(EventBody::Trade {
                market,
                yes_price: Price(price),
                qty,
                taker,
                trade: TradeId::from_u128(u128::from(self.trades)),
            });
        }
        // Size changes at the touch that never empty it (that would move it).
        let side = if self.rng.below(2) == 0 { Side::Bid } else { Side::Ask };
        let (cents, level) = match side {
            Side::Bid => (b.bid_cents, b.bids[b.bid_cents as usize]),
            Side::Ask => (b.bid_cents + b.spread, b.asks[(b.bid_cents + b.spread) as usize]),
        };
        let delta = if self.rng.below(2) == 0 || level <= 100 { 100 } else { -100 };
        self.queued = 0;
        self.next = 0;
        self.change(market, side, cents, delta);
        self.queued = 0;
        self.stamp(self.queue[0])
    }
}

#[derive(Clone, Copy, Debug)]
struct Resting {
    client: ClientRef,
    order: OrderId,
    market: MarketIdx,
    side: Side,
    price: Price,
    remaining: Qty,
    filled: Qty,
}

/// Answers commands like the exchange: every request gets its ack; one resting order in
/// `fill_one_in` is filled in full at its next ack.
pub struct MiniVenue {
    resting: Vec<Resting>,
    next_order: u128,
    rng: Rng,
    fill_one_in: u64,
    /// One ack in this many fills half the order and leaves the rest resting (0: never).
    partial_one_in: u64,
    positions: Vec<i64>,
    /// Answers waiting to be delivered.
    out: [EventBody; 8],
    out_len: usize,
    pub fills: u64,
}

impl MiniVenue {
    pub fn new(markets: usize, seed: u64, fill_one_in: u64) -> MiniVenue {
        MiniVenue {
            resting: Vec::with_capacity(256),
            next_order: 1,
            rng: Rng::new(seed ^ 0x9e37_79b9),
            fill_one_in,
            partial_one_in: 0,
            positions: vec![0; markets],
            out: [EventBody::Connected { feed: Feed::Kalshi }; 8],
            out_len: 0,
            fills: 0,
        }
    }

    /// Also fills half of one order in `one_in` at its ack, leaving the rest resting: the
    /// partial fills that make a quote shrink in place.
    pub fn with_partial_fills(mut self, one_in: u64) -> MiniVenue {
        self.partial_one_in = one_in;
        self
    }

    fn push(&mut self, body: EventBody) {
        if self.out_len < self.out.len() {
            self.out[self.out_len] = body;
            self.out_len += 1;
        }
    }

    fn find(&self, order: OrderId) -> Option<usize> {
        self.resting.iter().position(|r| r.order == order)
    }

    fn ack(&mut self, r: &Resting, status: OrderStatus) {
        self.push(EventBody::OrderAck {
            market: r.market,
            client: r.client,
            order: r.order,
            status,
            filled: r.filled,
            remaining: r.remaining,
        });
    }

    /// The exchange's answers to one command, handed to `sink` in order.
    pub fn answer(&mut self, cmd: &CommandBody, mut sink: impl FnMut(EventBody)) {
        self.out_len = 0;
        match *cmd {
            CommandBody::Place {
                market,
                client,
                side,
                price,
                qty,
                ..
            } => {
                let r = Resting {
                    client,
                    order: OrderId(self.next_order),
                    market,
                    side,
                    price,
                    remaining: qty,
                    filled: Qty(0),
                };
                self.next_order += 1;
                if self.resting.len() < self.resting.capacity() {
                    self.resting.push(r);
                }
                self.ack(&r, OrderStatus::Resting);
                self.maybe_fill(self.resting.len() - 1);
            }
            CommandBody::Cancel { order, .. } => {
                if let Some(i) = self.find(order) {
                    let mut r = self.resting.swap_remove(i);
                    r.remaining = Qty(0);
                    self.ack(&r, OrderStatus::Canceled);
                }
            }
            CommandBody::Amend { order, price, total, .. } => {
                if let Some(i) = self.find(order) {
                    let r = &mut self.resting[i];
                    r.price = price;
                    r.remaining = Qty(total.0 - r.filled.0);
                    let r = *r;
                    self.ack(&r, OrderStatus::Resting);
                    self.maybe_fill(i);
                }
            }
            CommandBody::Decrease { order, reduce_to, .. } => {
                if let Some(i) = self.find(order) {
                    let r = &mut self.resting[i];
                    r.remaining = reduce_to;
                    let r = *r;
                    self.ack(&r, OrderStatus::Resting);
                }
            }
            CommandBody::CancelAll => {
                while let Some(mut r) = self.resting.pop() {
                    r.remaining = Qty(0);
                    self.ack(&r, OrderStatus::Canceled);
                    if self.out_len == self.out.len() {
                        break;
                    }
                }
            }
            CommandBody::Resync { .. } => {}
        }
        for i in 0..self.out_len {
            sink(self.out[i]);
        }
    }

    fn maybe_fill(&mut self, i: usize) {
        if i < self.resting.len() && self.rng.below(self.fill_one_in) == 0 {
            self.fill_at(i);
        } else if i < self.resting.len() && self.partial_one_in > 0 && self.rng.below(self.partial_one_in) == 0 {
            self.fill_half(i);
        }
    }

    fn fill_half(&mut self, i: usize) {
        let half = Qty(self.resting[i].remaining.0 / 200 * 100);
        if half.0 == 0 {
            return;
        }
        let r = &mut self.resting[i];
        r.filled = Qty(r.filled.0 + half.0);
        r.remaining = Qty(r.remaining.0 - half.0);
        let r = *r;
        self.fill_event(&r, half);
        self.push(EventBody::OrderUpdate {
            market: r.market,
            client: r.client,
            order: r.order,
            status: OrderStatus::Resting,
            side: r.side,
            price: r.price,
            remaining: r.remaining,
            filled: r.filled,
        });
    }

    fn fill_event(&mut self, r: &Resting, qty: Qty) {
        let slot = &mut self.positions[usize::from(r.market)];
        *slot += match r.side {
            Side::Bid => qty.0,
            Side::Ask => -qty.0,
        };
        let pos = *slot;
        self.fills += 1;
        self.push(EventBody::Fill {
            market: r.market,
            client: r.client,
            order: r.order,
            side: r.side,
            yes_price: r.price,
            qty,
            is_taker: false,
            fee: Money(0),
            post_position: Qty(pos),
            // Negative space, so a venue's fills never share an id with the feed's trades.
            trade: TradeId::from_u128(u128::MAX - u128::from(self.fills)),
        });
    }

    fn fill_at(&mut self, i: usize) {
        let mut r = self.resting.swap_remove(i);
        let qty = r.remaining;
        r.filled = Qty(r.filled.0 + qty.0);
        r.remaining = Qty(0);
        self.fill_event(&r, qty);
        self.push(EventBody::OrderUpdate {
            market: r.market,
            client: r.client,
            order: r.order,
            status: OrderStatus::Executed,
            side: r.side,
            price: r.price,
            remaining: Qty(0),
            filled: r.filled,
        });
    }
}

/// Event constructors for tests and recorded streams, so a test names what it means and not
/// every field the event carries (fields added later get their neutral value here, once).
pub fn trade(market: MarketIdx, yes_price: Price, qty: Qty, taker: Side) -> EventBody {
    EventBody::Trade {
        market,
        yes_price,
        qty,
        taker,
        trade: TradeId::NONE,
    }
}

/// One of our fills as the exchange reports it.
#[allow(clippy::too_many_arguments)]
pub fn fill(
    market: MarketIdx,
    client: ClientRef,
    order: OrderId,
    side: Side,
    yes_price: Price,
    qty: Qty,
    is_taker: bool,
    fee: Money,
    post_position: Qty,
) -> EventBody {
    EventBody::Fill {
        market,
        client,
        order,
        side,
        yes_price,
        qty,
        is_taker,
        fee,
        post_position,
        trade: TradeId::NONE,
    }
}

/// The Kalshi feed's book for `market` is stale until its next snapshot.
pub fn stale(market: MarketIdx) -> EventBody {
    EventBody::Stale {
        market,
        feed: Feed::Kalshi,
    }
}

/// The Kalshi feed connected (and, after a disconnect, the open orders were listed again).
pub fn connected() -> EventBody {
    EventBody::Connected { feed: Feed::Kalshi }
}

/// The Kalshi feed dropped.
pub fn disconnected() -> EventBody {
    EventBody::Disconnected { feed: Feed::Kalshi }
}
