//! The events-ring side of the io thread: every event goes out through [`Out::push`], which
//! waits on a full ring (counting the stall) rather than drop an ack or a fill.
//!
//! Separate from the decoder and the REST pool so the decode sink can borrow it while they are
//! borrowed too; it also keeps the bookkeeping the events imply (stale markets, fill dedupe,
//! order -> client, orders to presign for or release) and the latency histograms.

use super::fills::{FillBook, FillKey};
use super::in_flight::{Item, Pending};
use super::IoCounters;
use crate::event::{ClientRef, Event, EventBody, MarketIdx, OrderId, OrderStatus, RejectReason, Stamp};
use crate::metrics::{tsc, Stage, StageHistograms, TscClock};
use std::collections::HashMap;
use std::time::Instant;

/// Everything the WS decode sink touches, split from the decoder so both can be borrowed.
pub(super) struct Out {
    pub(super) events: rtrb::Producer<Event>,
    pub(super) hists: StageHistograms,
    pub(super) clock: TscClock,
    pub(super) counters: IoCounters,
    pub(super) fills: FillBook,
    /// Order -> client, from acks and updates (REST fills may not name the client).
    pub(super) clients: HashMap<u128, ClientRef>,
    /// Markets that went stale and await a snapshot request.
    pub(super) stale_new: Vec<MarketIdx>,
    /// When each stale market's snapshot was requested (None: live).
    pub(super) stale_since: Vec<Option<Instant>>,
    pub(super) subscribed: usize,
    /// Orders to stop presigning for.
    pub(super) released: Vec<OrderId>,
    /// Orders to presign amend/decrease for.
    pub(super) prepared: Vec<OrderId>,
}

impl Out {
    /// Pushes an event; a full ring is waited on, never dropped.
    #[inline]
    pub(super) fn push(&mut self, mut ev: Event) {
        ev.stamp.parsed_tsc = tsc();
        let mut stalled = false;
        loop {
            match self.events.push(ev) {
                Ok(()) => {
                    self.counters.events += 1;
                    return;
                }
                Err(rtrb::PushError::Full(back)) => {
                    ev = back;
                    if self.events.is_abandoned() {
                        self.counters.ring_dropped += 1;
                        return;
                    }
                    if !stalled {
                        stalled = true;
                        self.counters.ring_full_stalls += 1;
                    }
                    std::thread::yield_now();
                }
            }
        }
    }

    /// One decoded WS event: bookkeeping, then the ring.
    #[inline]
    pub(super) fn on_ws_event(&mut self, ev: Event) {
        match ev.body {
            EventBody::Stale { market, .. } => {
                self.counters.stale_markets += 1;
                if let Some(s) = self.stale_since.get_mut(usize::from(market)) {
                    if s.is_none() {
                        self.stale_new.push(market);
                    }
                }
            }
            EventBody::BookSnapshotEnd { market } => {
                if let Some(s) = self.stale_since.get_mut(usize::from(market)) {
                    *s = None;
                }
            }
            EventBody::Subscribed { .. } => self.subscribed += 1,
            EventBody::Fill { order, qty, yes_price, .. } => {
                let key = FillKey {
                    order: order.0,
                    qty: qty.0,
                    price: yes_price.0,
                    ts_s: ev.stamp.exchange_ts_ms / 1000,
                };
                if !self.fills.on_ws(key) {
                    // A resync already reported it from REST.
                    self.counters.fills_deduplicated += 1;
                    return;
                }
            }
            EventBody::OrderUpdate { client, order, status, .. } => {
                if status == OrderStatus::Resting {
                    self.clients.insert(order.0, client);
                } else {
                    self.clients.remove(&order.0);
                    self.released.push(order);
                }
            }
            _ => {}
        }
        self.push(ev);
    }

    /// Answers a command here, without the exchange (pacing, no slot, shutting down):
    /// `OrderReject` with no HTTP status.
    pub(super) fn reject(&mut self, item: Item, reason: RejectReason) {
        self.counters.rejects += 1;
        self.push(Event {
            stamp: Stamp {
                read_tsc: tsc(),
                decoded_tsc: tsc(),
                ..Stamp::default()
            },
            body: EventBody::OrderReject {
                market: item.market,
                client: item.client,
                reason,
                http_status: 0,
            },
        });
    }

    pub(super) fn record_command(&mut self, p: &Pending, write_tsc: u64) {
        if p.cause.read_tsc == 0 || write_tsc == 0 {
            return;
        }
        let c = self.clock;
        self.hists.record(Stage::RingToStrategy, c.between(p.cause.parsed_tsc, p.dequeued));
        self.hists.record(Stage::Decide, c.between(p.dequeued, p.decided));
        self.hists.record(Stage::RingToIo, c.between(p.decided, p.io_dequeued));
        self.hists.record(Stage::Encode, c.between(p.io_dequeued, write_tsc));
        self.hists.record(Stage::TickToOrder, c.between(p.cause.read_tsc, write_tsc));
    }
}
