//! Order requests: the commands reconcile and the direct calls (`place`, `amend`, `decrease`,
//! `cancel`, `cancel_all`) send, and the client ids they carry.
//!
//! At most one request in flight per order. Acks carry no request id, so a second request
//! would make the next ack ambiguous; instead the side waits. After
//! [`ExecParams::inflight_timeout_ms`](super::ExecParams::inflight_timeout_ms) without an answer
//! the order counts as *unknown*: the side stays held (never a second order placed beside it)
//! until an update about the order arrives or a resync closes it. Only a timed-out cancel is
//! sent again (that is harmless).

use super::order::{Order, OrderState, Role, EMPTY};
use super::Orders;
use crate::event::{ClientRef, CommandBody, MarketIdx, Price, Qty, Side, TimeInForce};

/// Client order ids unique to this session: the session nonce in the high 32 bits and a
/// counter from 1 in the low 32, so a reference is never 0 (0 means "none") and two sessions
/// with different nonces never collide.
#[derive(Clone, Debug)]
pub struct ClientIds {
    nonce: u32,
    next: u32,
}

impl ClientIds {
    /// `session_nonce` is folded to 32 bits; give each session a different one (a start time
    /// in ms, or random bits).
    pub fn new(session_nonce: u64) -> ClientIds {
        ClientIds {
            nonce: (session_nonce ^ (session_nonce >> 32)) as u32,
            next: 1,
        }
    }

    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> ClientRef {
        let n = self.next;
        // Wrapping skips 0 so the reference stays non-zero; 4e9 orders per session is far off.
        self.next = self.next.wrapping_add(1).max(1);
        ClientRef((u64::from(self.nonce) << 32) | u64::from(n))
    }

    pub fn session(&self) -> u32 {
        self.nonce
    }

    /// Whether `client` was issued by this session.
    pub fn is_ours(&self, client: ClientRef) -> bool {
        client.0 != 0 && (client.0 >> 32) as u32 == self.nonce
    }
}

/// Why a direct order request ([`Orders::place`], [`Orders::amend`], ...) was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such open order.
    NotFound,
    /// A request for the order is already in flight (or unknown).
    Busy,
    /// No exchange id yet (its create has not been acked).
    NoOrderId,
    /// The order table is full.
    Full,
    /// Size or total out of range (non-positive, or an amend total at or below `filled`).
    BadSize,
    /// The sink refused the command (risk, or a full ring).
    Vetoed,
}

impl Orders {
    /// Cancels every open order (of one market, or all) that can be cancelled now: live ones,
    /// and cancels whose answer is overdue. Orders with another request in flight are left for
    /// a later call, once that request is answered (a create cannot be cancelled before its
    /// ack gives us its id). Idempotent: call it on every event while killed or shutting down.
    /// Returns how many orders in scope are still open.
    pub fn cancel_all(&mut self, market: Option<MarketIdx>, sink: &mut impl FnMut(CommandBody) -> bool) -> usize {
        let now_ms = self.now_ms;
        let timeout = self.params.inflight_timeout_ms;
        let mut k = 0;
        let mut remaining = 0;
        while k < self.open.len() {
            let i = usize::from(self.open[k]);
            k += 1;
            let o = &self.slots[i];
            if market.is_some_and(|m| m != o.market) {
                continue;
            }
            remaining += 1;
            let retry = o.state == OrderState::PendingCancel && o.is_unknown(now_ms, timeout);
            if (o.state == OrderState::Live || retry) && o.order.is_some() {
                self.send_cancel(i, now_ms, sink);
            }
        }
        remaining
    }

    /// Places a post-only GTC quote directly (V2 modules that manage their quotes themselves).
    /// Returns its reference.
    #[allow(clippy::too_many_arguments)]
    pub fn place(
        &mut self,
        market: MarketIdx,
        side: Side,
        price: Price,
        qty: Qty,
        now_ms: u64,
        ids: &mut ClientIds,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> Result<ClientRef, Refusal> {
        self.now_ms = self.now_ms.max(now_ms);
        self.send_place(market, side, price, qty, Role::Quote, now_ms, ids, sink)
    }

    /// Sends an aggressive immediate-or-cancel order: buy (`Bid`) or sell (`Ask`) up to `qty`
    /// at `limit` or better, the rest cancelled by the exchange. It is tracked with the
    /// [`Role::Take`] role until its answer ends it, counts in exposure meanwhile, and quote
    /// reconciliation never touches it. Returns its reference.
    #[allow(clippy::too_many_arguments)]
    pub fn take(
        &mut self,
        market: MarketIdx,
        side: Side,
        limit: Price,
        qty: Qty,
        now_ms: u64,
        ids: &mut ClientIds,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> Result<ClientRef, Refusal> {
        self.now_ms = self.now_ms.max(now_ms);
        self.send_place(market, side, limit, qty, Role::Take, now_ms, ids, sink)
    }

    /// Amends an order to `price` and total size `total` (= filled + the remaining wanted).
    pub fn amend(
        &mut self,
        client: ClientRef,
        price: Price,
        total: Qty,
        now_ms: u64,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> Result<(), Refusal> {
        let i = self.idle_order(client)?;
        self.send_amend(i, price, total, now_ms, sink)
    }

    /// Shrinks an order to `remaining`, keeping its queue priority.
    pub fn decrease(
        &mut self,
        client: ClientRef,
        remaining: Qty,
        now_ms: u64,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> Result<(), Refusal> {
        let i = self.idle_order(client)?;
        self.send_decrease(i, remaining, now_ms, sink)
    }

    /// Cancels an order (also one whose cancel has gone unanswered past the timeout).
    pub fn cancel(&mut self, client: ClientRef, now_ms: u64, sink: &mut impl FnMut(CommandBody) -> bool) -> Result<(), Refusal> {
        self.now_ms = self.now_ms.max(now_ms);
        let i = self
            .find_client(client)
            .filter(|&i| self.slots[i].is_open())
            .ok_or(Refusal::NotFound)?;
        let o = &self.slots[i];
        let retry = o.state == OrderState::PendingCancel && o.is_unknown(now_ms, self.params.inflight_timeout_ms);
        if o.state != OrderState::Live && !retry {
            return Err(Refusal::Busy);
        }
        if o.order.is_none() {
            return Err(Refusal::NoOrderId);
        }
        if self.send_cancel(i, now_ms, sink) {
            Ok(())
        } else {
            Err(Refusal::Vetoed)
        }
    }

    fn idle_order(&mut self, client: ClientRef) -> Result<usize, Refusal> {
        let i = self
            .find_client(client)
            .filter(|&i| self.slots[i].is_open())
            .ok_or(Refusal::NotFound)?;
        if self.slots[i].state != OrderState::Live {
            return Err(Refusal::Busy);
        }
        if self.slots[i].order.is_none() {
            return Err(Refusal::NoOrderId);
        }
        Ok(i)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_place(
        &mut self,
        market: MarketIdx,
        side: Side,
        price: Price,
        qty: Qty,
        role: Role,
        now_ms: u64,
        ids: &mut ClientIds,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> Result<ClientRef, Refusal> {
        if qty.0 <= 0 {
            return Err(Refusal::BadSize);
        }
        let Some(i) = self.free_slot() else {
            self.stats.full += 1;
            return Err(Refusal::Full);
        };
        let client = ids.next();
        let cmd = CommandBody::Place {
            market,
            client,
            side,
            price,
            qty,
            // A quote rests and must never take; a take must never rest.
            tif: match role {
                Role::Quote => TimeInForce::GoodTillCanceled,
                Role::Take => TimeInForce::ImmediateOrCancel,
            },
            post_only: role == Role::Quote,
        };
        if !sink(cmd) {
            return Err(Refusal::Vetoed);
        }
        self.slots[i] = Order {
            client,
            order: None,
            market,
            role,
            side,
            price,
            total: qty,
            remaining: qty,
            filled: Qty(0),
            state: OrderState::PendingNew,
            sent_ms: now_ms,
            queued_ms: now_ms,
            ..EMPTY
        };
        self.open_slot(i);
        self.stats.placed += 1;
        Ok(client)
    }

    pub(super) fn send_amend(
        &mut self,
        i: usize,
        price: Price,
        total: Qty,
        now_ms: u64,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> Result<(), Refusal> {
        let o = &self.slots[i];
        if total <= o.filled {
            return Err(Refusal::BadSize);
        }
        let Some(order) = o.order else { return Err(Refusal::NoOrderId) };
        let cmd = CommandBody::Amend {
            market: o.market,
            client: o.client,
            order,
            side: o.side,
            price,
            total,
        };
        if !sink(cmd) {
            return Err(Refusal::Vetoed);
        }
        let o = &mut self.slots[i];
        o.amended_from = (o.price, o.total);
        o.state = OrderState::PendingAmend { price, total };
        o.sent_ms = now_ms;
        self.stats.amended += 1;
        Ok(())
    }

    pub(super) fn send_decrease(
        &mut self,
        i: usize,
        remaining: Qty,
        now_ms: u64,
        sink: &mut impl FnMut(CommandBody) -> bool,
    ) -> Result<(), Refusal> {
        let o = &self.slots[i];
        if remaining.0 < 0 {
            return Err(Refusal::BadSize);
        }
        let Some(order) = o.order else { return Err(Refusal::NoOrderId) };
        let cmd = CommandBody::Decrease {
            market: o.market,
            client: o.client,
            order,
            reduce_to: remaining,
        };
        if !sink(cmd) {
            return Err(Refusal::Vetoed);
        }
        let o = &mut self.slots[i];
        o.state = OrderState::PendingDecrease { remaining };
        o.sent_ms = now_ms;
        self.stats.decreased += 1;
        Ok(())
    }

    pub(super) fn send_cancel(&mut self, i: usize, now_ms: u64, sink: &mut impl FnMut(CommandBody) -> bool) -> bool {
        let o = &self.slots[i];
        let Some(order) = o.order else { return false };
        if now_ms < o.retry_after_ms {
            return false;
        }
        let cmd = CommandBody::Cancel {
            market: o.market,
            client: o.client,
            order,
        };
        if !sink(cmd) {
            return false;
        }
        let o = &mut self.slots[i];
        o.state = OrderState::PendingCancel;
        o.sent_ms = now_ms;
        self.stats.cancelled += 1;
        true
    }
}
