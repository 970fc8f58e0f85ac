//! REST replies to events: one `OrderAck`/`OrderReject` per item of the request, in request
//! order, with the bookkeeping they imply (order -> client, signatures to make or drop) and the
//! pacer told of a 429.
//!
//! Separate from the loop because a reply needs only itself, its in-flight record and the
//! output: the pool's callback borrows those, not the whole io state.

use super::gateway::Gateway;
use super::in_flight::{InFlight, ReqKind};
use super::out::Out;
use super::{note, wall_ms, Io};
use crate::connector::kalshi::rest::pool::Reply;
use crate::connector::kalshi::rest::replies::{parse_order_reply, ItemCtx, ReplyKind};
use crate::connector::kalshi::rest::request::MAX_BATCH;
use crate::connector::pacing::Pacer;
use crate::connector::presign::OrderOp;
use crate::event::{EventBody, OrderId, OrderStatus, Stamp};
use crate::logger::{LogBody, LogProducer};
use crate::metrics::tsc;
use std::time::Instant;

impl Io {
    pub(super) fn poll_http(&mut self, now: Instant) -> bool {
        let Io {
            pool,
            poll,
            gateway: Gateway { inflight, .. },
            out,
            pacer,
            log,
            ..
        } = self;
        let n = pool.poll(poll.registry(), now, &mut |r: Reply<'_>| {
            let slot = r.tag as usize;
            let Some(f) = inflight.take(slot) else {
                return;
            };
            on_reply(out, pacer, log, &f, &r);
        });
        n > 0
    }

    pub(super) fn apply_presign_requests(&mut self) {
        for o in self.out.prepared.drain(..) {
            // Amends are the common request on a resting order: its signature is made first.
            self.presigner.prepare(o, OrderOp::Amend);
            self.presigner.prepare(o, OrderOp::Decrease);
        }
        for o in self.out.released.drain(..) {
            self.presigner.release(o);
        }
    }
}

/// One REST reply to events.
fn on_reply(out: &mut Out, pacer: &mut Pacer, log: &mut LogProducer, f: &InFlight, r: &Reply<'_>) {
    let decoded = tsc();
    let stamp = Stamp {
        read_tsc: r.read_tsc,
        decoded_tsc: decoded,
        ..Stamp::default()
    };
    if r.status == 429 {
        out.counters.http_429 += 1;
        pacer.on_rate_limited(f.kind.pacing(), None, wall_ms());
        log.log(LogBody::Note {
            code: note::RATE_LIMITED,
            a: f.kind as i64,
            b: 0,
        });
    } else if r.status >= 500 || r.status == 0 {
        if r.status == 0 {
            out.counters.http_failed += 1;
        } else {
            out.counters.http_5xx += 1;
        }
        log.log(LogBody::Note {
            code: note::SERVER_ERROR,
            a: i64::from(r.status),
            b: f.kind as i64,
        });
    }
    let kind = match f.kind {
        ReqKind::Create => ReplyKind::Create,
        ReqKind::BatchCreate => ReplyKind::BatchCreate,
        ReqKind::BatchCancel => ReplyKind::BatchCancel,
        ReqKind::Amend => ReplyKind::Amend,
        ReqKind::Decrease => ReplyKind::Decrease,
        ReqKind::CancelAll => ReplyKind::CancelAll,
    };
    let mut items = [ItemCtx::default(); MAX_BATCH];
    for (ctx, item) in items.iter_mut().zip(&f.items[..f.n]) {
        *ctx = ItemCtx {
            market: item.market,
            client: item.client,
            order: item.order,
        };
    }
    // One event per item, in request order: the bookkeeping follows the events.
    let mut next = 0;
    let parsed = parse_order_reply(kind, r.status, r.body, &items[..f.n], stamp, &mut |ev| {
        let sent = items[next.min(MAX_BATCH - 1)];
        next += 1;
        match ev.body {
            EventBody::OrderAck { client, order, status, .. } => {
                out.counters.acks += 1;
                if order != OrderId(0) {
                    if status == OrderStatus::Resting {
                        out.clients.insert(order.0, client);
                        out.prepared.push(order);
                    } else {
                        out.released.push(order);
                    }
                }
                if order != sent.order && sent.order != OrderId(0) {
                    // An amend that re-issued the order: the old id is gone.
                    out.released.push(sent.order);
                }
            }
            EventBody::OrderReject { .. } => out.counters.rejects += 1,
            _ => {}
        }
        out.push(ev);
    });
    if parsed.is_err() {
        // The events went out anyway (unreadable items as rejects); say so in the log.
        log.log(LogBody::Note {
            code: note::UNREADABLE_REPLY,
            a: i64::from(r.status),
            b: f.kind as i64,
        });
    }
}
