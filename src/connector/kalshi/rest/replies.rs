//! Order replies to [`Event`]s: create, cancel, amend, decrease, batched create and cancel,
//! cancel-all, and every error body.
//!
//! These run on the io thread between commands, so they read the body with serde_json into
//! borrowed fields (see [`super::reply_fields`]) and allocate nothing for Kalshi-shaped bodies.
//! Every request item gets exactly one `OrderAck` or `OrderReject`, whatever the body holds:
//! the strategy's in-flight bookkeeping depends on it.
//!
//! Both eras are read: the current fixed-point strings (`*_fp`, `*_dollars`) win, the older
//! integer fields (whole contracts, cents) are the fallback, and the legacy reply shapes
//! (`{"order":{...}}`, `{"old_order":..,"order":..}`) are understood beside the V2 ones.

use crate::connector::kalshi::rest::reply_fields::{for_each_item, parse_fields, Fields};
use crate::connector::kalshi::rest::request::MAX_BATCH;
use crate::event::{ClientRef, Event, EventBody, MarketIdx, OrderId, OrderStatus, Qty, RejectReason, Stamp};
use std::fmt;

/// Which request a reply answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    Create,
    Cancel,
    Amend,
    Decrease,
    BatchCreate,
    BatchCancel,
    CancelAll,
}

/// What the io thread remembers about one order of an in-flight request. For a create,
/// `order` is unknown (`OrderId(0)`); for `CancelAll`, pass one item with `ClientRef(0)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItemCtx {
    pub market: MarketIdx,
    pub client: ClientRef,
    pub order: OrderId,
}

/// Why a reply could not be read as sent. The events were pushed anyway (a reject with
/// [`RejectReason::Other`] for what could not be read); after an error on a 2xx reply the
/// exchange's state is unknown, so the io thread should resync the orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// Not JSON, or JSON cut short.
    Syntax,
    /// JSON of the wrong shape (not an object, `orders` not an array...).
    WrongType,
    /// A field the reply cannot do without is absent.
    MissingField,
    /// A count that does not parse.
    BadNumber,
    /// An order id that is not a UUID.
    BadId,
    /// The reply names a different `client_order_id` than the request (a stale order map).
    ClientMismatch,
    /// A batch reply with fewer items than the request (the rest were rejected as `Other`).
    MissingItems,
    /// A batch reply with items the request did not have (ignored).
    ExtraItems,
    /// More items than a batch may hold (all were rejected as `Other`).
    TooManyItems,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for ReplyError {}

/// Turns one REST reply into events, one per item in `items` (exactly one for single-order
/// kinds: `items[0]`), pushed to `sink` in request order. `status` is the HTTP status;
/// `stamp` the io thread's stamps (its `exchange_ts_ms` is filled from the reply's `ts_ms`).
///
/// 2xx: `OrderAck` per item (a cancel that reduced nothing, or an item error, is an
/// `OrderReject`); anything else: `OrderReject` per item, the reason from Kalshi's error code,
/// 429 as `RateLimited`, 5xx as `ServerError`.
pub fn parse_order_reply(
    kind: ReplyKind,
    status: u16,
    body: &[u8],
    items: &[ItemCtx],
    stamp: Stamp,
    sink: &mut impl FnMut(Event),
) -> Result<(), ReplyError> {
    let single = !matches!(kind, ReplyKind::BatchCreate | ReplyKind::BatchCancel);
    let default_item = [ItemCtx::default()];
    let items = match (single, items.is_empty()) {
        (true, true) => &default_item[..],
        (true, false) => &items[..1],
        (false, _) => items,
    };
    if !(200..300).contains(&status) {
        let reason = reject_reason(status, error_code(body));
        for it in items {
            sink(reject(stamp, it, reason, status));
        }
        return Ok(());
    }
    if single {
        let it = &items[0];
        if kind == ReplyKind::CancelAll {
            // 204 No Content, or an empty object: there is nothing in it to read.
            sink(ack(stamp, it, it.order, OrderStatus::Canceled, Qty(0), Qty(0)));
            return Ok(());
        }
        let result = parse_fields(body).and_then(|f| single_event(kind, status, &f, it, stamp));
        return match result {
            Ok((ev, mismatch)) => {
                sink(ev);
                if mismatch {
                    Err(ReplyError::ClientMismatch)
                } else {
                    Ok(())
                }
            }
            Err(e) => {
                sink(reject(stamp, it, RejectReason::Other, status));
                Err(e)
            }
        };
    }
    batch(kind, status, body, items, stamp, sink)
}

/// The one event of a single-order reply, and whether the echoed client id disagreed.
fn single_event(kind: ReplyKind, status: u16, f: &Fields<'_>, it: &ItemCtx, mut stamp: Stamp) -> Result<(Event, bool), ReplyError> {
    stamp.exchange_ts_ms = f.ts_ms()?.unwrap_or(stamp.exchange_ts_ms);
    let mismatch = f.client_mismatch(it.client);
    if f.error.is_some() {
        // A 2xx that carries an error object: believe the error.
        return Ok((reject(stamp, it, reject_reason(0, f.error_code()), status), mismatch));
    }
    let ev = match kind {
        ReplyKind::Create => {
            let order = f.order_id()?.ok_or(ReplyError::MissingField)?;
            let filled = f.filled()?.unwrap_or(Qty(0));
            let remaining = f.remaining()?.ok_or(ReplyError::MissingField)?;
            let st = f.status()?.unwrap_or(if remaining.0 > 0 {
                OrderStatus::Resting
            } else if filled.0 > 0 {
                OrderStatus::Executed
            } else {
                OrderStatus::Canceled
            });
            ack(stamp, it, order, st, filled, remaining)
        }
        ReplyKind::Cancel => cancel_event(f, it, stamp, status)?,
        ReplyKind::Amend | ReplyKind::Decrease => {
            let order = f.order_id()?.unwrap_or(it.order);
            let filled = f.filled()?.unwrap_or(Qty(0));
            let remaining = f.remaining()?.ok_or(ReplyError::MissingField)?;
            let gone = if kind == ReplyKind::Amend {
                // An amend that crosses can fill the order completely.
                OrderStatus::Executed
            } else {
                // Decreasing to zero is Kalshi's cancel.
                OrderStatus::Canceled
            };
            let st = f.status()?.unwrap_or(if remaining.0 > 0 { OrderStatus::Resting } else { gone });
            ack(stamp, it, order, st, filled, remaining)
        }
        ReplyKind::BatchCreate | ReplyKind::BatchCancel | ReplyKind::CancelAll => unreachable!("handled by the caller"),
    };
    Ok((ev, mismatch))
}

/// A cancel (single or batch item): reduced by nothing means the order was already gone.
fn cancel_event(f: &Fields<'_>, it: &ItemCtx, stamp: Stamp, status: u16) -> Result<Event, ReplyError> {
    if f.reduced_by()?.is_some_and(|q| q.0 <= 0) {
        return Ok(reject(stamp, it, RejectReason::NotFound, status));
    }
    let order = f.order_id()?.unwrap_or(it.order);
    Ok(ack(stamp, it, order, OrderStatus::Canceled, f.filled()?.unwrap_or(Qty(0)), Qty(0)))
}

fn batch(
    kind: ReplyKind,
    status: u16,
    body: &[u8],
    items: &[ItemCtx],
    stamp: Stamp,
    sink: &mut impl FnMut(Event),
) -> Result<(), ReplyError> {
    if items.len() > MAX_BATCH {
        for it in items {
            sink(reject(stamp, it, RejectReason::Other, status));
        }
        return Err(ReplyError::TooManyItems);
    }
    // Outcomes land in request-order slots first: the reply is matched by id, not position,
    // when it carries ids, and whatever is left unanswered is rejected at the end.
    let mut slots: [Option<Event>; MAX_BATCH] = [None; MAX_BATCH];
    let mut first_error: Option<ReplyError> = None;
    let mut extra = false;
    let mut position = 0usize;
    let parsed = for_each_item(body, |f| {
        let i = position;
        position += 1;
        let by_id = match kind {
            ReplyKind::BatchCreate => f
                .client()
                .and_then(|c| (0..items.len()).find(|&j| slots[j].is_none() && items[j].client == c)),
            _ => f
                .order_id()
                .ok()
                .flatten()
                .and_then(|o| (0..items.len()).find(|&j| slots[j].is_none() && items[j].order == o)),
        };
        let Some(j) = by_id.or_else(|| (i < items.len() && slots[i].is_none()).then_some(i)) else {
            extra = true;
            return;
        };
        let it = &items[j];
        let mut st = stamp;
        let ev = (|| -> Result<Event, ReplyError> {
            st.exchange_ts_ms = f.ts_ms()?.unwrap_or(stamp.exchange_ts_ms);
            if f.error.is_some() {
                return Ok(reject(st, it, reject_reason(0, f.error_code()), status));
            }
            match kind {
                ReplyKind::BatchCreate => {
                    let order = f.order_id()?.ok_or(ReplyError::MissingField)?;
                    let filled = f.filled()?.unwrap_or(Qty(0));
                    let remaining = f.remaining()?.ok_or(ReplyError::MissingField)?;
                    let s = f.status()?.unwrap_or(if remaining.0 > 0 {
                        OrderStatus::Resting
                    } else if filled.0 > 0 {
                        OrderStatus::Executed
                    } else {
                        OrderStatus::Canceled
                    });
                    Ok(ack(st, it, order, s, filled, remaining))
                }
                _ => cancel_event(f, it, st, status),
            }
        })();
        slots[j] = Some(match ev {
            Ok(ev) => ev,
            Err(e) => {
                first_error.get_or_insert(e);
                reject(st, it, RejectReason::Other, status)
            }
        });
    });
    if let Err(e) = parsed {
        first_error.get_or_insert(e);
    }
    let mut missing = false;
    for (slot, it) in slots.iter().zip(items) {
        match slot {
            Some(ev) => sink(*ev),
            None => {
                missing = true;
                sink(reject(stamp, it, RejectReason::Other, status));
            }
        }
    }
    match (first_error, missing, extra) {
        (Some(e), _, _) => Err(e),
        (None, true, _) => Err(ReplyError::MissingItems),
        (None, false, true) => Err(ReplyError::ExtraItems),
        (None, false, false) => Ok(()),
    }
}

fn ack(stamp: Stamp, it: &ItemCtx, order: OrderId, status: OrderStatus, filled: Qty, remaining: Qty) -> Event {
    Event {
        stamp,
        body: EventBody::OrderAck {
            market: it.market,
            client: it.client,
            order,
            status,
            filled,
            remaining,
        },
    }
}

fn reject(stamp: Stamp, it: &ItemCtx, reason: RejectReason, http_status: u16) -> Event {
    Event {
        stamp,
        body: EventBody::OrderReject {
            market: it.market,
            client: it.client,
            reason,
            http_status,
        },
    }
}

/// Kalshi's error (HTTP status and `error.code`) as the hot path's reason. 429 and 5xx decide
/// by status alone; otherwise the code (any case: REST sends `market_inactive`, FIX-era text
/// `MARKET_INACTIVE`), then the status as a fallback. `status` 0 means "code only" (a batch
/// item's error inside a 2xx).
pub fn reject_reason(status: u16, code: Option<&[u8]>) -> RejectReason {
    if status == 429 {
        return RejectReason::RateLimited;
    }
    if status >= 500 {
        return RejectReason::ServerError;
    }
    let mut buf = [0u8; 48];
    let code = code.filter(|c| c.len() <= buf.len()).map(|c| {
        let b = &mut buf[..c.len()];
        b.copy_from_slice(c);
        b.make_ascii_lowercase();
        &*b
    });
    let by_code = match code.unwrap_or_default() {
        b"invalid_price" => Some(RejectReason::InvalidPrice),
        b"insufficient_balance" | b"available_balance_too_low" | b"insufficient_funds" => Some(RejectReason::InsufficientBalance),
        b"post_only_cross" | b"post_only_cross_cancel" => Some(RejectReason::PostOnlyCross),
        b"fill_or_kill_insufficient_volume" | b"fok_insufficient_volume" | b"fill_or_kill_insufficient" => {
            Some(RejectReason::FillOrKillInsufficient)
        }
        b"market_closed" | b"market_inactive" | b"market_already_closed" | b"market_not_active" => Some(RejectReason::MarketClosed),
        b"trading_paused" | b"exchange_paused" => Some(RejectReason::TradingPaused),
        b"not_found" | b"order_not_found" | b"order_not_resting" => Some(RejectReason::NotFound),
        b"too_many_requests" | b"rate_limited" => Some(RejectReason::RateLimited),
        b"internal_server_error" | b"internal_error" | b"service_unavailable" => Some(RejectReason::ServerError),
        b"invalid_order"
        | b"invalid_order_size"
        | b"invalid_parameters"
        | b"bad_request"
        | b"order_already_exists"
        | b"order_side_mismatch"
        | b"order_ticker_mismatch"
        | b"order_id_and_client_order_id_mismatch"
        | b"reduce_only_violation"
        | b"too_many_open_orders"
        | b"exceeded_per_market_risk_limit"
        | b"exceeded_order_group_risk_limit"
        | b"self_cross_attempt"
        | b"market_not_found" => Some(RejectReason::InvalidOrder),
        _ => None,
    };
    by_code.unwrap_or(match status {
        404 => RejectReason::NotFound,
        400 | 409 | 422 => RejectReason::InvalidOrder,
        _ => RejectReason::Other,
    })
}

/// The `code` of an error body (`{"error":{"code":..}}`, or a flat `{"code":..}`); `None` for
/// Kalshi's 429 body `{"error":"too many requests"}`, an empty body or one that is not JSON.
pub fn error_code(body: &[u8]) -> Option<&[u8]> {
    parse_fields(body).ok()?.error_code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ClientRef, EventBody, OrderId, OrderStatus, Qty, RejectReason, Stamp};

    const OID: &str = "0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4";
    const OID2: &str = "1b6e2a9a-0a11-41c0-4f77-2a9a1c021af4";

    fn run(kind: ReplyKind, status: u16, body: &str, items: &[ItemCtx]) -> (Vec<EventBody>, Result<(), ReplyError>) {
        let mut out = Vec::new();
        let r = parse_order_reply(kind, status, body.as_bytes(), items, Stamp::default(), &mut |e| out.push(e.body));
        (out, r)
    }

    fn item(client: u64, order: &str) -> ItemCtx {
        ItemCtx {
            market: 3,
            client: ClientRef(client),
            order: OrderId::parse(order.as_bytes()).unwrap_or_default(),
        }
    }

    #[test]
    fn reasons_by_status_and_code() {
        assert_eq!(reject_reason(429, Some(b"invalid_price")), RejectReason::RateLimited);
        assert_eq!(reject_reason(503, Some(b"post_only_cross")), RejectReason::ServerError);
        assert_eq!(reject_reason(400, Some(b"MARKET_INACTIVE")), RejectReason::MarketClosed);
        assert_eq!(reject_reason(400, Some(b"post_only_cross")), RejectReason::PostOnlyCross);
        assert_eq!(reject_reason(400, Some(b"something_new")), RejectReason::InvalidOrder);
        assert_eq!(reject_reason(404, None), RejectReason::NotFound);
        assert_eq!(reject_reason(401, Some(b"unauthorized")), RejectReason::Other);
        assert_eq!(reject_reason(0, Some(b"insufficient_balance")), RejectReason::InsufficientBalance);
        assert_eq!(reject_reason(0, Some(&[b'x'; 100])), RejectReason::Other);
    }

    #[test]
    fn error_codes_in_every_shape() {
        assert_eq!(
            error_code(br#"{"error":{"code":"invalid_order","message":"a \"quoted\" text","details":""}}"#),
            Some(&b"invalid_order"[..])
        );
        assert_eq!(
            error_code(br#"{"code":"invalid_price","message":"m"}"#),
            Some(&b"invalid_price"[..])
        );
        assert_eq!(error_code(br#"{"error":"too many requests"}"#), None);
        assert_eq!(error_code(b"<html>bad gateway</html>"), None);
        assert_eq!(error_code(b""), None);
    }

    #[test]
    fn v2_create_acks() {
        let body = format!(
            r#"{{"order_id":"{OID}","client_order_id":"kmm-0000000000000007","fill_count":"2.00","remaining_count":"8.00","status":"resting","ts_ms":1715793600123}}"#
        );
        let (ev, r) = run(ReplyKind::Create, 201, &body, &[item(7, "")]);
        assert_eq!(r, Ok(()));
        assert_eq!(
            ev,
            vec![EventBody::OrderAck {
                market: 3,
                client: ClientRef(7),
                order: OrderId::parse(OID.as_bytes()).unwrap(),
                status: OrderStatus::Resting,
                filled: Qty(200),
                remaining: Qty(800),
            }]
        );
        // No status field (Kalshi's documented V2 reply): inferred from the counts.
        let body = format!(r#"{{"order_id":"{OID}","fill_count":"10.00","remaining_count":"0.00"}}"#);
        let (ev, _) = run(ReplyKind::Create, 201, &body, &[item(7, "")]);
        assert!(matches!(
            ev[0],
            EventBody::OrderAck {
                status: OrderStatus::Executed,
                ..
            }
        ));
        // A client id echo that is someone else's: acked for ours, reported.
        let body = format!(r#"{{"order_id":"{OID}","client_order_id":"kmm-0000000000000008","remaining_count":"1.00"}}"#);
        let (ev, r) = run(ReplyKind::Create, 201, &body, &[item(7, "")]);
        assert_eq!(r, Err(ReplyError::ClientMismatch));
        assert!(matches!(ev[0], EventBody::OrderAck { client: ClientRef(7), .. }));
    }

    #[test]
    fn legacy_create_reads_the_nested_order() {
        let body = format!(
            r#"{{"order":{{"order_id":"{OID}","status":"executed","fill_count":10,"remaining_count":0,"yes_price":42,"expiration_time":null}}}}"#
        );
        let (ev, r) = run(ReplyKind::Create, 201, &body, &[item(1, "")]);
        assert_eq!(r, Ok(()));
        assert!(matches!(
            ev[0],
            EventBody::OrderAck {
                status: OrderStatus::Executed,
                filled: Qty(1000),
                remaining: Qty(0),
                ..
            }
        ));
    }

    #[test]
    fn errors_reject_every_item() {
        let body = r#"{"error":{"code":"post_only_cross","message":"m","details":""}}"#;
        let (ev, _) = run(ReplyKind::Create, 400, body, &[item(1, "")]);
        assert_eq!(
            ev,
            vec![EventBody::OrderReject {
                market: 3,
                client: ClientRef(1),
                reason: RejectReason::PostOnlyCross,
                http_status: 400
            }]
        );
        let (ev, r) = run(
            ReplyKind::BatchCreate,
            429,
            r#"{"error":"too many requests"}"#,
            &[item(1, ""), item(2, "")],
        );
        assert_eq!(r, Ok(()));
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| matches!(
            e,
            EventBody::OrderReject {
                reason: RejectReason::RateLimited,
                http_status: 429,
                ..
            }
        )));
        let (ev, _) = run(ReplyKind::Cancel, 502, "<html>", &[item(1, OID)]);
        assert!(matches!(
            ev[0],
            EventBody::OrderReject {
                reason: RejectReason::ServerError,
                ..
            }
        ));
    }

    #[test]
    fn malformed_2xx_still_answers_once() {
        for body in [
            "",
            "{",
            "[1]",
            r#"{"order_id":"nope","remaining_count":"1.00"}"#,
            r#"{"order_id":null}"#,
        ] {
            let (ev, r) = run(ReplyKind::Create, 201, body, &[item(1, "")]);
            assert!(r.is_err(), "{body}");
            assert_eq!(ev.len(), 1, "{body}");
            assert!(matches!(
                ev[0],
                EventBody::OrderReject {
                    reason: RejectReason::Other,
                    ..
                }
            ));
        }
    }

    #[test]
    fn cancels_amends_decreases() {
        let it = item(5, OID);
        let body = format!(r#"{{"order_id":"{OID}","client_order_id":"kmm-0000000000000005","reduced_by":"3.00","ts_ms":9}}"#);
        let (ev, _) = run(ReplyKind::Cancel, 200, &body, &[it]);
        assert!(matches!(
            ev[0],
            EventBody::OrderAck {
                status: OrderStatus::Canceled,
                remaining: Qty(0),
                ..
            }
        ));
        // Legacy: integer reduced_by 0 means it had already filled: gone.
        let (ev, _) = run(ReplyKind::Cancel, 200, r#"{"order":{"status":"executed"},"reduced_by":0}"#, &[it]);
        assert!(matches!(
            ev[0],
            EventBody::OrderReject {
                reason: RejectReason::NotFound,
                ..
            }
        ));
        let (ev, _) = run(
            ReplyKind::Cancel,
            404,
            r#"{"error":{"code":"not_found","message":"order not found"}}"#,
            &[it],
        );
        assert!(matches!(
            ev[0],
            EventBody::OrderReject {
                reason: RejectReason::NotFound,
                http_status: 404,
                ..
            }
        ));
        let body = format!(r#"{{"order_id":"{OID}","remaining_count":"4.00","fill_count":"1.00","ts_ms":1}}"#);
        let (ev, _) = run(ReplyKind::Amend, 200, &body, &[it]);
        assert!(matches!(
            ev[0],
            EventBody::OrderAck {
                status: OrderStatus::Resting,
                remaining: Qty(400),
                filled: Qty(100),
                ..
            }
        ));
        let body = format!(
            r#"{{"old_order":{{"order_id":"{OID2}","remaining_count":9}},"order":{{"order_id":"{OID}","status":"resting","remaining_count":4,"fill_count":1}}}}"#
        );
        let (ev, _) = run(ReplyKind::Amend, 200, &body, &[it]);
        assert!(matches!(ev[0], EventBody::OrderAck { remaining: Qty(400), order, .. } if order == it.order));
        let (ev, _) = run(ReplyKind::Decrease, 200, r#"{"remaining_count":"0.00"}"#, &[it]);
        assert!(matches!(ev[0], EventBody::OrderAck { status: OrderStatus::Canceled, order, .. } if order == it.order));
        let (ev, _) = run(ReplyKind::CancelAll, 204, "", &[]);
        assert!(matches!(
            ev[0],
            EventBody::OrderAck {
                client: ClientRef(0),
                status: OrderStatus::Canceled,
                ..
            }
        ));
    }

    #[test]
    fn batches_answer_in_request_order() {
        let items = [item(1, ""), item(2, ""), item(3, "")];
        // Item 2 failed; the reply lists 3 before 1 (matched by client id).
        let body = format!(
            r#"{{"orders":[
            {{"order_id":"{OID2}","client_order_id":"kmm-0000000000000003","fill_count":"0.00","remaining_count":"1.00"}},
            {{"client_order_id":"kmm-0000000000000002","order":null,"error":{{"code":"invalid_price","message":"x"}}}},
            {{"order_id":"{OID}","client_order_id":"kmm-0000000000000001","fill_count":"0.00","remaining_count":"1.00"}}]}}"#
        );
        let (ev, r) = run(ReplyKind::BatchCreate, 201, &body, &items);
        assert_eq!(r, Ok(()));
        let clients: Vec<_> = ev
            .iter()
            .map(|e| match *e {
                EventBody::OrderAck { client, .. } | EventBody::OrderReject { client, .. } => client.0,
                _ => 0,
            })
            .collect();
        assert_eq!(clients, [1, 2, 3]);
        assert!(matches!(
            ev[1],
            EventBody::OrderReject {
                reason: RejectReason::InvalidPrice,
                http_status: 201,
                ..
            }
        ));
        assert!(matches!(ev[0], EventBody::OrderAck { order, .. } if order == OrderId::parse(OID.as_bytes()).unwrap()));
        // A short reply: the missing item is still answered.
        let body = format!(r#"{{"orders":[{{"order_id":"{OID}","remaining_count":"1.00"}}]}}"#);
        let (ev, r) = run(ReplyKind::BatchCreate, 201, &body, &items[..2]);
        assert_eq!(r, Err(ReplyError::MissingItems));
        assert_eq!(ev.len(), 2);
        let cancels = [item(1, OID), item(2, OID2)];
        let body = format!(
            r#"{{"orders":[{{"order_id":"{OID2}","reduced_by":"0.00","error":{{"code":"not_found","message":"m"}}}},{{"order_id":"{OID}","reduced_by":"5.00","ts_ms":3}}]}}"#
        );
        let (ev, r) = run(ReplyKind::BatchCancel, 200, &body, &cancels);
        assert_eq!(r, Ok(()));
        assert!(matches!(
            ev[0],
            EventBody::OrderAck {
                client: ClientRef(1),
                status: OrderStatus::Canceled,
                ..
            }
        ));
        assert!(matches!(
            ev[1],
            EventBody::OrderReject {
                client: ClientRef(2),
                reason: RejectReason::NotFound,
                ..
            }
        ));
    }
}
