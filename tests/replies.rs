//! REST reply parsing against the bodies a running local exchange really sends: every order
//! reply kind (V2 create, cancel, amend, decrease, batched create and cancel, cancel-all),
//! error bodies (including a real 429), and the bootstrap reads (markets, orders, positions,
//! fills, account limits). Requests are built by the codec's encoders, signed by the
//! presigner's stock and framed by `head::write_http_request`, so this is also the
//! end-to-end check that presigned headers are accepted by an exchange.
//!
//! Also: malformed bodies never panic and still answer every item once (proptest), and the
//! order-reply parser allocates nothing (counting allocator).

use kalshi_proto::auth::Signer;
use kalshi_proto::ladder::LevelStructure;
use kalshi_proto::ratelimit::Tier;
use kalshi_proto::units::Money;
use kmm::connector::kalshi::interner::Interner;
use kmm::connector::kalshi::rest::encode::encode_amend;
use kmm::connector::kalshi::rest::encode::{
    encode_batch_cancel, encode_batch_create, encode_cancel, encode_cancel_all, encode_create, encode_decrease, SelfTradePrevention,
};
use kmm::connector::kalshi::rest::head::write_http_request;
use kmm::connector::kalshi::rest::models::{
    parse_account_limits, parse_fills, parse_market, parse_markets, parse_orders, parse_positions, FillKey, MarketState,
};
use kmm::connector::kalshi::rest::order_wire::OrderSpec;
use kmm::connector::kalshi::rest::replies::{parse_order_reply, ItemCtx, ReplyKind};
use kmm::connector::kalshi::rest::request::{Method, RestRequest};
use kmm::connector::kalshi::ws::decode::Decoder;
use kmm::connector::pacing::Budget;
use kmm::connector::presign::{FixedPath, OrderOp, PresignConfig, Presigner};
use kmm::event::{Channel, ClientRef, Event, EventBody, OrderId, OrderStatus, Price, Qty, RejectReason, Side, Stamp, TimeInForce};
use kmm::ladder::FeeRates;
use local_exchange::book::AccountId;
use local_exchange::engine::{Exchange, ExchangeConfig, FeeType, MarketSpec, NewOrder};
use local_exchange::server::{self, NoPopulation, RunningExchange, ServerConfig};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;

// ------------------------------------------------------------------------------------ allocations

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

/// Counts allocations per thread, so parallel tests do not disturb each other's counts.
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}

// ------------------------------------------------------------------------------------ venue

const LIN: &str = "REPLY-LIN";
const DECI: &str = "REPLY-DECI";
const TAPER: &str = "REPLY-TAPER";

fn spec(ticker: &str, structure: LevelStructure, fee_type: FeeType) -> MarketSpec {
    MarketSpec {
        ticker: ticker.into(),
        event_ticker: format!("{ticker}-EV"),
        series_ticker: "REPLY".into(),
        title: format!("Reply test {ticker}"),
        structure,
        fee_type,
        fee_multiplier_e4: 10_000,
        open_ms: 0,
        close_ms: 3_600_000,
        settlement_timer_s: 60,
    }
}

/// A local exchange over plain HTTP on loopback, and one keyed client per account.
struct Venue {
    _rt: tokio::runtime::Runtime,
    running: RunningExchange,
    lp: AccountId,
    host: String,
    clients: Vec<Client>,
}

struct Client {
    presigner: Presigner,
    out: Vec<u8>,
}

fn start(tier: Tier, accounts: usize) -> Venue {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut ex = Exchange::new(ExchangeConfig::default());
    ex.add_market(spec(LIN, LevelStructure::LinearCent, FeeType::QuadraticWithMakerFees), 0);
    ex.add_market(spec(DECI, LevelStructure::DeciCent, FeeType::Quadratic), 0);
    ex.add_market(spec(TAPER, LevelStructure::TaperedDeciCent, FeeType::Quadratic), 0);
    let lp = ex.add_account("lp".into(), Money::from_cents(1_000_000_000), true);
    let config = ServerConfig {
        tls: false,
        accounts,
        tier,
        rsa_bits: 1024,
        state_dir: std::env::temp_dir().join(format!(
            "kmm-replies-{}-{}",
            std::process::id(),
            kalshi_proto::auth::random_key_id()
        )),
        ..ServerConfig::default()
    };
    let running = rt
        .block_on(server::start(config, ex, Box::new(NoPopulation), Vec::new()))
        .expect("exchange starts");
    let host = running
        .info
        .rest_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let clients = running
        .info
        .accounts
        .iter()
        .map(|a| {
            let signer = Signer::from_pem(&std::fs::read_to_string(&a.private_key_path).unwrap()).unwrap();
            Client {
                presigner: Presigner::spawn(signer, &a.key_id, PresignConfig::default()).unwrap(),
                out: Vec::with_capacity(16 << 10),
            }
        })
        .collect::<Vec<Client>>();
    for c in &clients {
        let full = PresignConfig::default().stock;
        wait_for("fixed stock", || {
            FixedPath::ALL.iter().zip(full).all(|(f, n)| c.presigner.stock(*f) == n)
        });
    }
    Venue {
        _rt: rt,
        running,
        lp,
        host,
        clients,
    }
}

impl Venue {
    /// One request on a fresh connection; (status, body).
    fn send(&mut self, who: usize, req: &RestRequest) -> (u16, Vec<u8>) {
        let host = self.host.clone();
        let c = &mut self.clients[who];
        c.presigner.write_request(&mut c.out, req, host.as_bytes());
        let mut s = TcpStream::connect(&host).unwrap();
        s.write_all(&c.out).unwrap();
        c.presigner.wake();
        read_response(&mut s)
    }

    /// Presigned decrease, amend and cancel for `order`, and waits until they are in stock.
    fn prepare(&mut self, who: usize, order: OrderId) {
        let p = &mut self.clients[who].presigner;
        for op in [OrderOp::Cancel, OrderOp::Amend, OrderOp::Decrease] {
            assert!(p.prepare(order, op));
        }
        p.wake();
        for op in [OrderOp::Cancel, OrderOp::Amend, OrderOp::Decrease] {
            wait_for("per-order stock", || p.has_order_stock(order, op));
        }
    }

    fn get(&mut self, who: usize, path_and_query: &str) -> (u16, Vec<u8>) {
        let mut req = RestRequest::new();
        req.method = Method::Get;
        req.path.extend_from_slice(b"/trade-api/v2");
        req.path.extend_from_slice(path_and_query.as_bytes());
        self.send(who, &req)
    }

    fn lp_order(&self, ticker: &str, side: Side, price: &str, count: &str) {
        self.running.shared.with_exchange(|ex, now| {
            let m = ex.market_by_ticker(ticker).unwrap();
            ex.place(
                now,
                NewOrder::limit(
                    self.lp,
                    m,
                    side,
                    kalshi_proto::units::Price::parse(price).unwrap(),
                    kalshi_proto::units::Qty::parse(count).unwrap(),
                ),
            )
            .unwrap();
        });
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Reads one HTTP/1.1 response framed by Content-Length (what the exchange sends).
fn read_response(s: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "connection closed before a full response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = resp.parse(&buf).unwrap() {
            let status = resp.code.unwrap();
            let len = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map_or(0, |h| std::str::from_utf8(h.value).unwrap().parse::<usize>().unwrap());
            assert!(!resp.headers.iter().any(|h| h.name.eq_ignore_ascii_case("transfer-encoding")));
            if buf.len() >= head + len {
                return (status, buf[head..head + len].to_vec());
            }
        }
    }
}

fn order<'a>(ticker: &'a str, client: u64, side: Side, price: &str, qty: &str, post_only: bool) -> OrderSpec<'a> {
    OrderSpec {
        ticker: ticker.as_bytes(),
        client: ClientRef(client),
        side,
        price: Price::parse(price).unwrap(),
        qty: Qty::parse(qty).unwrap(),
        tif: TimeInForce::GoodTillCanceled,
        post_only,
        stp: SelfTradePrevention::TakerAtCross,
    }
}

fn reply(kind: ReplyKind, status: u16, body: &[u8], items: &[ItemCtx]) -> Vec<Event> {
    let mut out = Vec::new();
    let r = parse_order_reply(kind, status, body, items, Stamp::default(), &mut |e| out.push(e));
    assert_eq!(r, Ok(()), "{kind:?} {status} {}", String::from_utf8_lossy(body));
    assert_eq!(out.len(), items.len().max(1));
    out
}

fn acked(ev: &Event) -> (OrderId, OrderStatus, Qty, Qty) {
    match ev.body {
        EventBody::OrderAck {
            order,
            status,
            filled,
            remaining,
            ..
        } => (order, status, filled, remaining),
        other => panic!("expected an ack, got {other:?}"),
    }
}

fn rejected(ev: &Event) -> (RejectReason, u16) {
    match ev.body {
        EventBody::OrderReject { reason, http_status, .. } => (reason, http_status),
        other => panic!("expected a reject, got {other:?}"),
    }
}

fn ctx(market: u16, client: u64, order: OrderId) -> ItemCtx {
    ItemCtx {
        market,
        client: ClientRef(client),
        order,
    }
}

// ------------------------------------------------------------------------------------ tests

#[test]
fn every_reply_kind_from_a_running_exchange() {
    let mut v = start(Tier::Unlimited, 2);
    let mut interner = Interner::with_capacity(8);
    let lin = interner.intern(LIN.as_bytes()).unwrap();
    let deci = interner.intern(DECI.as_bytes()).unwrap();
    let mut req = RestRequest::new();

    // --- bootstrap: markets and their ladders
    let (st, body) = v.get(0, "/markets?limit=2");
    assert_eq!(st, 200);
    let page = parse_markets(&body, FeeRates::quadratic(10_000)).unwrap();
    assert_eq!(page.markets.len(), 2);
    assert!(page.rejected.is_empty(), "{:?}", page.rejected);
    let cursor = page.cursor.expect("a second page");
    let (_, body) = v.get(0, &format!("/markets?limit=2&cursor={cursor}"));
    let page2 = parse_markets(&body, FeeRates::NONE).unwrap();
    assert_eq!(page2.markets.len(), 1);
    assert_eq!(page2.cursor, None);
    for (ticker, structure) in [
        (LIN, LevelStructure::LinearCent),
        (DECI, LevelStructure::DeciCent),
        (TAPER, LevelStructure::TaperedDeciCent),
    ] {
        let ticks = kalshi_proto::ladder::TickLadder::new(structure).len();
        let (st, body) = v.get(0, &format!("/markets/{ticker}"));
        assert_eq!(st, 200);
        let m = parse_market(&body, FeeRates::quadratic(10_000)).unwrap();
        assert_eq!(m.ticker, ticker);
        assert_eq!(m.state, MarketState::Active);
        assert!(m.close_time_ms.is_some_and(|t| t > 1_600_000_000_000));
        assert_eq!(m.ladder.len(), ticks, "{ticker}");
        assert_eq!(m.fees, FeeRates::quadratic(10_000), "no fee info on a market object: the default");
    }

    // --- single orders
    let lin_order = |client, side, price, qty, post_only| order(LIN, client, side, price, qty, post_only);
    encode_create(&mut req, &lin_order(1, Side::Bid, "0.5000", "10", true));
    let (st, body) = v.send(0, &req);
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    let ev = reply(ReplyKind::Create, st, &body, &[ctx(lin, 1, OrderId(0))]);
    let (id1, status, filled, remaining) = acked(&ev[0]);
    assert_eq!((status, filled, remaining), (OrderStatus::Resting, Qty(0), Qty(1000)));
    assert!(ev[0].stamp.exchange_ts_ms > 1_600_000_000_000, "ts_ms is carried into the stamp");
    // As the io thread does on an ack: signatures for what may follow, made ahead.
    v.prepare(0, id1);

    encode_decrease(&mut req, id1, Qty(400));
    let (st, body) = v.send(0, &req);
    let (o, status, _, remaining) = acked(&reply(ReplyKind::Decrease, st, &body, &[ctx(lin, 1, id1)])[0]);
    assert_eq!((o, status, remaining), (id1, OrderStatus::Resting, Qty(400)));

    encode_amend(&mut req, id1, LIN.as_bytes(), ClientRef(1), Side::Bid, Price(5200), Qty(600));
    let (st, body) = v.send(0, &req);
    let (o, status, filled, remaining) = acked(&reply(ReplyKind::Amend, st, &body, &[ctx(lin, 1, id1)])[0]);
    assert_eq!((o, status, filled, remaining), (id1, OrderStatus::Resting, Qty(0), Qty(600)));

    encode_cancel(&mut req, id1);
    let (st, body) = v.send(0, &req);
    let (o, status, _, remaining) = acked(&reply(ReplyKind::Cancel, st, &body, &[ctx(lin, 1, id1)])[0]);
    assert_eq!((o, status, remaining), (id1, OrderStatus::Canceled, Qty(0)));
    // Cancelling it again: already gone.
    let (st, body) = v.send(0, &req);
    assert_eq!(
        rejected(&reply(ReplyKind::Cancel, st, &body, &[ctx(lin, 1, id1)])[0]).0,
        RejectReason::NotFound
    );

    // --- rejections
    v.lp_order(LIN, Side::Ask, "0.6000", "50");
    encode_create(&mut req, &lin_order(2, Side::Bid, "0.6000", "1", true));
    let (st, body) = v.send(0, &req);
    assert_eq!(
        rejected(&reply(ReplyKind::Create, st, &body, &[ctx(lin, 2, OrderId(0))])[0]),
        (RejectReason::PostOnlyCross, st)
    );
    encode_create(&mut req, &lin_order(3, Side::Bid, "0.5050", "1", false));
    let (st, body) = v.send(0, &req);
    assert_eq!(
        rejected(&reply(ReplyKind::Create, st, &body, &[ctx(lin, 3, OrderId(0))])[0]).0,
        RejectReason::InvalidPrice
    );

    // --- a taker order that fills at once
    encode_create(&mut req, &lin_order(4, Side::Bid, "0.6000", "2", false));
    let (st, body) = v.send(0, &req);
    let (taker, status, filled, remaining) = acked(&reply(ReplyKind::Create, st, &body, &[ctx(lin, 4, OrderId(0))])[0]);
    assert_eq!((status, filled, remaining), (OrderStatus::Executed, Qty(200), Qty(0)));

    // --- batches: results in request order, an item's failure in its own slot
    let batch = [
        order(DECI, 10, Side::Bid, "0.3010", "5", true),
        order(DECI, 11, Side::Bid, "0.3015", "5", true),
        order(LIN, 12, Side::Ask, "0.9000", "3", true),
    ];
    encode_batch_create(&mut req, &batch);
    let items = [ctx(deci, 10, OrderId(0)), ctx(deci, 11, OrderId(0)), ctx(lin, 12, OrderId(0))];
    let (st, body) = v.send(0, &req);
    assert_eq!(st, 201);
    let ev = reply(ReplyKind::BatchCreate, st, &body, &items);
    let (b10, s10, _, r10) = acked(&ev[0]);
    assert_eq!((s10, r10), (OrderStatus::Resting, Qty(500)));
    assert!(matches!(ev[1].body, EventBody::OrderReject { client: ClientRef(11), .. }));
    let (b12, _, _, _) = acked(&ev[2]);
    assert!(matches!(ev[2].body, EventBody::OrderAck { client: ClientRef(12), market, .. } if market == lin));

    encode_batch_cancel(&mut req, &[b10, id1]);
    let (st, body) = v.send(0, &req);
    let ev = reply(ReplyKind::BatchCancel, st, &body, &[ctx(deci, 10, b10), ctx(lin, 1, id1)]);
    assert_eq!(acked(&ev[0]).1, OrderStatus::Canceled);
    assert_eq!(rejected(&ev[1]).0, RejectReason::NotFound);

    // --- resync reads: our resting orders, positions, fills
    let (st, body) = v.get(0, "/portfolio/orders?status=resting");
    assert_eq!(st, 200);
    let mut events = Vec::new();
    let info = parse_orders(&body, &interner, Stamp::default(), &mut |e| events.push(e.body)).unwrap();
    assert_eq!((info.events, info.unknown_market, info.cursor), (1, 0, None));
    assert_eq!(
        events[0],
        EventBody::OrderUpdate {
            market: lin,
            client: ClientRef(12),
            order: b12,
            status: OrderStatus::Resting,
            side: Side::Ask,
            price: Price(9000),
            remaining: Qty(300),
            filled: Qty(0),
        }
    );
    // All orders, any status, newest first: every one parses.
    let (_, body) = v.get(0, "/portfolio/orders");
    let mut all = Vec::new();
    parse_orders(&body, &interner, Stamp::default(), &mut |e| all.push(e.body)).unwrap();
    assert_eq!(all.len(), 4);

    let (_, body) = v.get(0, "/portfolio/positions");
    let mut events = Vec::new();
    parse_positions(&body, &interner, Stamp::default(), &mut |e| events.push(e.body)).unwrap();
    assert!(
        matches!(events[..], [EventBody::Position { market, position: Qty(200), .. }] if market == lin),
        "{events:?}"
    );

    let (_, body) = v.get(0, "/portfolio/fills");
    let mut fills: Vec<(FillKey, Event)> = Vec::new();
    parse_fills(&body, &interner, Stamp::default(), &mut |k, e| fills.push((k, e))).unwrap();
    assert_eq!(fills.len(), 1);
    let (key, ev) = fills[0];
    assert_eq!(key.order, taker);
    assert!(matches!(
        ev.body,
        EventBody::Fill { client: ClientRef(4), side: Side::Bid, yes_price: Price(6000), qty: Qty(200), is_taker: true, fee, .. }
            if fee.0 > 0
    ));
    // The WebSocket's fill frame for the same fill names the same trade: one key for both.
    let text = std::str::from_utf8(&body).unwrap();
    let trade_id = text.split("\"trade_id\":\"").nth(1).unwrap().split('"').next().unwrap();
    let mut d = Decoder::new({
        let mut i = Interner::with_capacity(4);
        i.intern(LIN.as_bytes()).unwrap();
        i
    });
    d.register_subscribe(1, &[Channel::Fill], &[], false).unwrap();
    d.decode(
        br#"{"id":1,"type":"subscribed","msg":{"channel":"fill","sid":1}}"#,
        Stamp::default(),
        &mut |_| {},
    )
    .unwrap();
    let mut oid = [0u8; 36];
    taker.write(&mut oid);
    let frame = format!(
        r#"{{"type":"fill","sid":1,"msg":{{"trade_id":"{trade_id}","order_id":"{}","market_ticker":"{LIN}","is_taker":true,"book_side":"bid","yes_price_dollars":"0.6000","count_fp":"2.00","fee_cost":"0.010000","post_position_fp":"2.00","ts_ms":1}}}}"#,
        std::str::from_utf8(&oid).unwrap()
    );
    d.decode(frame.as_bytes(), Stamp::default(), &mut |_| {}).unwrap();
    assert_eq!(d.last_fill_trade(), Some(key.trade));

    // --- cancel-all: 204 and no body
    encode_cancel_all(&mut req);
    let (st, body) = v.send(0, &req);
    assert_eq!(st, 204);
    assert_eq!(acked(&reply(ReplyKind::CancelAll, st, &body, &[])[0]).1, OrderStatus::Canceled);
    let (_, body) = v.get(0, "/portfolio/orders?status=resting");
    assert_eq!(parse_orders(&body, &interner, Stamp::default(), &mut |_| {}).unwrap().events, 0);

    // --- limits; every order request above was served from presigned stock
    let (_, body) = v.get(0, "/account/limits");
    assert_eq!(parse_account_limits(&body).unwrap(), (None, None));
    let s = v.clients[0].presigner.stats();
    // One miss: the second cancel of the same order, for which nothing was prepared.
    assert_eq!(s.misses, 1, "{s:?}");
    assert_eq!(s.hits, 10, "{s:?}");
}

#[test]
fn a_real_429_and_a_bad_signature() {
    let mut v = start(Tier::Basic, 1);
    let (_, body) = v.get(0, "/account/limits");
    assert_eq!(
        parse_account_limits(&body).unwrap(),
        (
            Some(Budget {
                rate_per_s: 200,
                capacity: 400
            }),
            Some(Budget {
                rate_per_s: 100,
                capacity: 100
            })
        )
    );
    // Basic: a 100-token write bucket, 10 tokens a create; keep going until refused.
    let mut req = RestRequest::new();
    let mut limited = None;
    for i in 0..200 {
        encode_create(&mut req, &order(LIN, 100 + i, Side::Bid, "0.0100", "1", true));
        let (st, body) = v.send(0, &req);
        if st == 429 {
            limited = Some(body);
            break;
        }
    }
    let body = limited.expect("the Basic tier refuses a burst of creates");
    let ev = reply(ReplyKind::Create, 429, &body, &[ctx(0, 1, OrderId(0))]);
    assert_eq!(rejected(&ev[0]), (RejectReason::RateLimited, 429));

    // A request signed for another path is refused with Kalshi's wrapped error.
    let mut wrong = RestRequest::new();
    wrong.method = Method::Get;
    wrong.path.extend_from_slice(b"/trade-api/v2/portfolio/balance");
    let h = v.clients[0].presigner.sign_now(Method::Get, b"/trade-api/v2/portfolio/positions");
    let mut out = Vec::new();
    write_http_request(&mut out, &wrong, v.host.as_bytes(), v.clients[0].presigner.key_id(), &h);
    let mut s = TcpStream::connect(&v.host).unwrap();
    s.write_all(&out).unwrap();
    let (st, body) = read_response(&mut s);
    assert_eq!(st, 401);
    assert_eq!(kmm::connector::kalshi::rest::replies::error_code(&body), Some(&b"unauthorized"[..]));
    assert_eq!(
        rejected(&reply(ReplyKind::Amend, st, &body, &[ctx(0, 1, OrderId(1))])[0]),
        (RejectReason::Other, 401)
    );
}

#[test]
fn order_replies_allocate_nothing() {
    let oid = "0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4";
    let bodies: Vec<(ReplyKind, u16, String, Vec<ItemCtx>)> = vec![
        (
            ReplyKind::Create,
            201,
            format!(
                r#"{{"order_id":"{oid}","client_order_id":"kmm-0000000000000001","fill_count":"0.00","remaining_count":"10.00","status":"resting","ts_ms":1782316195033}}"#
            ),
            vec![ctx(0, 1, OrderId(0))],
        ),
        (
            ReplyKind::Create,
            400,
            r#"{"error":{"code":"post_only_cross","message":"post-only order would \"cross\" the book","details":""}}"#.into(),
            vec![ctx(0, 1, OrderId(0))],
        ),
        (
            ReplyKind::Create,
            429,
            r#"{"error":"too many requests"}"#.into(),
            vec![ctx(0, 1, OrderId(0))],
        ),
        (
            ReplyKind::Cancel,
            200,
            format!(r#"{{"order_id":"{oid}","client_order_id":"kmm-0000000000000001","reduced_by":"10.00","ts_ms":1}}"#),
            vec![ctx(0, 1, OrderId::parse(oid.as_bytes()).unwrap())],
        ),
        (
            ReplyKind::Amend,
            200,
            format!(
                r#"{{"old_order":{{"order_id":"{oid}","remaining_count":9,"yes_price":41}},"order":{{"order_id":"{oid}","status":"resting","remaining_count":4,"fill_count":1,"expiration_time":null}}}}"#
            ),
            vec![ctx(0, 1, OrderId(0))],
        ),
        (
            ReplyKind::BatchCreate,
            201,
            format!(
                r#"{{"orders":[{{"order_id":"{oid}","client_order_id":"kmm-0000000000000001","fill_count":"0.00","remaining_count":"1.00","status":"resting","ts_ms":1}},{{"client_order_id":"kmm-0000000000000002","order":null,"error":{{"code":"invalid_price","message":"price 0.30105 is not on the ladder"}}}}]}}"#
            ),
            vec![ctx(0, 1, OrderId(0)), ctx(0, 2, OrderId(0))],
        ),
        (
            ReplyKind::BatchCancel,
            200,
            format!(
                r#"{{"orders":[{{"order_id":"{oid}","reduced_by":"0.00","error":{{"code":"not_found","message":"order not found"}}}}]}}"#
            ),
            vec![ctx(0, 1, OrderId::parse(oid.as_bytes()).unwrap())],
        ),
    ];
    let mut n = 0usize;
    let mut sink = |_: Event| n += 1;
    // Warm-up (nothing should be lazily allocated anyway).
    for (kind, status, body, items) in &bodies {
        parse_order_reply(*kind, *status, body.as_bytes(), items, Stamp::default(), &mut sink).unwrap();
    }
    let before = allocations();
    for _ in 0..100 {
        for (kind, status, body, items) in &bodies {
            parse_order_reply(*kind, *status, body.as_bytes(), items, Stamp::default(), &mut sink).unwrap();
        }
    }
    assert_eq!(allocations() - before, 0);
    assert_eq!(n, 101 * 8);
}

mod malformed {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [ReplyKind; 7] = [
        ReplyKind::Create,
        ReplyKind::Cancel,
        ReplyKind::Amend,
        ReplyKind::Decrease,
        ReplyKind::BatchCreate,
        ReplyKind::BatchCancel,
        ReplyKind::CancelAll,
    ];

    const SHAPES: [&str; 6] = [
        r#"{"order_id":"0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4","client_order_id":"kmm-0000000000000001","fill_count":"0.00","remaining_count":"10.00","status":"resting","ts_ms":1782316195033}"#,
        r#"{"orders":[{"order_id":"0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4","reduced_by":"1.00"},{"client_order_id":"kmm-0000000000000002","order":null,"error":{"code":"invalid_price","message":"m"}}]}"#,
        r#"{"error":{"code":"invalid_order","message":"m","details":""}}"#,
        r#"{"order":{"order_id":"0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4","status":"canceled","remaining_count":0},"reduced_by":3}"#,
        r#"{"markets":[{"ticker":"K","status":"active","price_level_structure":"linear_cent","price_ranges":[{"start":"0.0000","end":"1.0000","step":"0.0100"}]}],"cursor":""}"#,
        r#"{"fills":[{"trade_id":"0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4","order_id":"0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4","ticker":"K","book_side":"bid","yes_price_dollars":"0.5","count_fp":"1","is_taker":true}],"market_positions":[{"ticker":"K","position_fp":"1.00"}],"orders":[{"order_id":"x","ticker":"K"}]}"#,
    ];

    fn check(body: &[u8], status: u16, n_items: usize) {
        let items: Vec<ItemCtx> = (0..n_items as u64).map(|i| ctx(0, i, OrderId(u128::from(i)))).collect();
        for kind in KINDS {
            let mut n = 0usize;
            let _ = parse_order_reply(kind, status, body, &items, Stamp::default(), &mut |_| n += 1);
            let batch = matches!(kind, ReplyKind::BatchCreate | ReplyKind::BatchCancel);
            let expect = if batch { n_items } else { 1 };
            assert_eq!(n, expect, "{kind:?} must answer every item exactly once");
        }
        let mut interner = Interner::with_capacity(2);
        interner.intern(b"K").unwrap();
        let _ = parse_market(body, FeeRates::NONE);
        let _ = parse_markets(body, FeeRates::NONE);
        let _ = parse_orders(body, &interner, Stamp::default(), &mut |_| {});
        let _ = parse_positions(body, &interner, Stamp::default(), &mut |_| {});
        let _ = parse_fills(body, &interner, Stamp::default(), &mut |_, _| {});
        let _ = parse_account_limits(body);
        let _ = kmm::connector::kalshi::rest::replies::error_code(body);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300), status in 0u16..600, n in 0usize..24) {
            check(&body, status, n);
        }

        #[test]
        fn mutated_replies_never_panic(
            shape in 0..SHAPES.len(),
            cut in any::<prop::sample::Index>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            status in prop::sample::select(vec![200u16, 201, 204, 400, 404, 429, 503]),
            n in 0usize..4,
        ) {
            let mut body = SHAPES[shape].as_bytes().to_vec();
            for (at, byte) in flips {
                let i = at.index(body.len());
                body[i] = byte;
            }
            let keep = cut.index(body.len() + 1);
            if keep < body.len() / 4 {
                // Mostly whole bodies with flipped bytes, sometimes truncated.
                body.truncate(keep * 4);
            }
            check(&body, status, n);
        }
    }
}
