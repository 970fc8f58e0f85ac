//! Tests of the presigner as a whole: each spawns the worker thread and checks what the io side
//! then hands out, so they belong to neither half alone.

use super::{FixedPath, OrderOp, PresignConfig, Presigner, WallClock};
use crate::connector::kalshi::rest::head::{write_http_request, SignedHeaders};
use crate::connector::kalshi::rest::order_wire::{OrderSpec, OrderWire};
use crate::connector::kalshi::rest::request::{Method, RestRequest, BATCH_PATH, ORDERS_PATH};
use crate::event::OrderId;
use kalshi_proto::auth::{generate_account_key, AccountKey, KeyKind, Signer, Verifier};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[test]
fn stock_requests_frame_exactly_like_the_general_path() {
    let (k, mut p) = stocked_ed25519(4);
    let mut req = RestRequest::new();
    let (mut fast, mut slow) = (Vec::new(), Vec::new());
    for host in [&b"a.example:443"[..], b"b.example", b"a.example:443"] {
        for f in FixedPath::ALL {
            req.method = f.method();
            req.path.clear();
            req.path.extend_from_slice(f.path());
            req.body.clear();
            if f.method() == Method::Post {
                req.body.extend_from_slice(b"{\"orders\":[]}");
            }
            let stamped = p.write_request_at(&mut fast, &req, host, T0);
            assert!(stamped.from_stock);
            let mut parsed = [httparse::EMPTY_HEADER; 8];
            let mut r = httparse::Request::new(&mut parsed);
            assert!(r.parse(&fast).unwrap().is_complete());
            let ts = r.headers.iter().find(|h| h.name == "KALSHI-ACCESS-TIMESTAMP").unwrap().value;
            let sig = r.headers.iter().find(|h| h.name == "KALSHI-ACCESS-SIGNATURE").unwrap().value;
            assert_eq!(ts, stamped.ts_ms.to_string().as_bytes());
            let h = SignedHeaders::new(stamped.ts_ms, sig).unwrap();
            write_http_request(&mut slow, &req, host, k.key_id.as_bytes(), &h);
            assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&slow));
        }
    }
}

/// A rehearsal writes byte for byte what the real write then sends, with the same
/// signature, and takes nothing: the stock and the hit counters are as they were.
#[test]
fn rehearsals_write_what_the_real_write_sends_and_take_nothing() {
    use crate::connector::kalshi::interner::Interner;
    use crate::connector::kalshi::rest::encode::{encode_batch_cancel, encode_command, SelfTradePrevention};
    use crate::event::{ClientRef, CommandBody, Price, Qty, Side, TimeInForce};
    let (k, mut p) = stocked_ed25519(3);
    let host = b"api.example:443";
    let order = OrderSpec {
        ticker: b"KXHIGHNY-26JUN24-T82",
        client: ClientRef(42),
        side: Side::Ask,
        price: Price(4321),
        qty: Qty(700),
        tif: TimeInForce::GoodTillCanceled,
        post_only: true,
        stp: SelfTradePrevention::default(),
    };
    let mut wire = OrderWire::create(host, k.key_id.as_bytes());
    let (mut rehearsed, mut real) = (Vec::new(), Vec::new());
    // The fixed-path prefixes are built by the first real request to the host.
    let mut req = RestRequest::new();
    encode_batch_cancel(&mut req, &[OrderId(7)]);
    assert!(
        !p.rehearse_request(&mut rehearsed, &req, host),
        "no prefix yet: nothing to rehearse"
    );
    p.write_request_at(&mut real, &req, host, T0);
    for _ in 0..2 {
        let before = (p.stats(), FixedPath::ALL.map(|f| p.stock(f)));
        assert!(p.rehearse_create(&mut rehearsed, &mut wire, &order));
        assert!(p.rehearse_create(&mut rehearsed, &mut wire, &order), "the same front slot twice");
        assert_eq!(before, (p.stats(), FixedPath::ALL.map(|f| p.stock(f))));
        let stamped = p.write_create_at(&mut real, &mut wire, &order, T0);
        assert!(stamped.from_stock);
        assert_eq!(String::from_utf8_lossy(&rehearsed), String::from_utf8_lossy(&real));

        let before = (p.stats(), FixedPath::ALL.map(|f| p.stock(f)));
        assert!(p.rehearse_request(&mut rehearsed, &req, host));
        assert_eq!(before, (p.stats(), FixedPath::ALL.map(|f| p.stock(f))));
        assert!(p.write_request_at(&mut real, &req, host, T0).from_stock);
        assert_eq!(String::from_utf8_lossy(&rehearsed), String::from_utf8_lossy(&real));
    }
    // An order's request: with no signature for any order there is nothing to write.
    let mut interner = Interner::with_capacity(2);
    let market = interner.intern(order.ticker).unwrap();
    let id = OrderId::parse(b"0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4").unwrap();
    let amend = CommandBody::Amend {
        market,
        client: ClientRef(42),
        order: id,
        side: Side::Bid,
        price: Price(4300),
        total: Qty(500),
    };
    encode_command(&mut req, &interner, &amend, SelfTradePrevention::default()).unwrap();
    assert!(!p.rehearse_request(&mut rehearsed, &req, host));
    p.prepare(id, OrderOp::Amend);
    p.wake();
    wait_for("the order's signature", || p.order_ready(id, OrderOp::Amend));
    let before = p.stats();
    assert!(p.rehearse_request(&mut rehearsed, &req, host));
    assert!(
        p.order_ready(id, OrderOp::Amend),
        "the rehearsal left the order's signature in place"
    );
    assert_eq!(before, p.stats());
    assert!(p.write_request_at(&mut real, &req, host, T0).from_stock);
    assert_eq!(String::from_utf8_lossy(&rehearsed), String::from_utf8_lossy(&real));
}

/// An amend through its wire carries its own order's signature: from stock when the order
/// has one (and the rehearsal before it took nothing), signed inline otherwise; both verify
/// for the amend's path and no other.
#[test]
fn amend_wires_carry_their_orders_signature() {
    use crate::connector::kalshi::rest::encode::SelfTradePrevention;
    use crate::event::{ClientRef, Price, Qty, Side, TimeInForce};
    let k = key(KeyKind::Ed25519);
    let v = verifier(k);
    let (clock, _) = WallClock::manual(T0);
    let mut p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, quiet([1, 1, 1, 1]), clock).unwrap();
    let host = b"api.example:443";
    let mut wire = OrderWire::amend(host, k.key_id.as_bytes());
    let spec = OrderSpec {
        ticker: b"KXHIGHNY-26JUN24-T82",
        client: ClientRef(42),
        side: Side::Bid,
        price: Price(4300),
        qty: Qty(500),
        tif: TimeInForce::GoodTillCanceled,
        post_only: true,
        stp: SelfTradePrevention::default(),
    };
    let stocked = OrderId(0x0b6e_2a9a_0a11_41c0_4f77_2a9a_1c02_1af4);
    let unstocked = OrderId(42);
    let (mut rehearsed, mut real) = (Vec::new(), Vec::new());
    assert!(
        !p.rehearse_amend(&mut rehearsed, &mut wire, stocked, &spec),
        "no order has a signature yet"
    );
    p.prepare(stocked, OrderOp::Amend);
    p.wake();
    wait_for("the order's signature", || p.order_ready(stocked, OrderOp::Amend));
    let header = |req: &[u8], name: &str| -> String {
        let text = std::str::from_utf8(req).unwrap();
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len() + 2..].to_string()
    };
    let verifies = |req: &[u8], id: OrderId| {
        let mut path = Vec::new();
        OrderOp::Amend.write_path(id, &mut path);
        let request_line = format!("POST {} HTTP/1.1", std::str::from_utf8(&path).unwrap());
        let ts = header(req, "KALSHI-ACCESS-TIMESTAMP");
        let sig = header(req, "KALSHI-ACCESS-SIGNATURE");
        std::str::from_utf8(req).unwrap().starts_with(&request_line)
            && v.verify(
                Some(&k.key_id),
                Some(&ts),
                Some(&sig),
                "POST",
                std::str::from_utf8(&path).unwrap(),
                T0 as i64,
            ) == Ok(7)
    };

    let before = p.stats();
    assert!(p.rehearse_amend(&mut rehearsed, &mut wire, stocked, &spec));
    assert_eq!(before, p.stats(), "a rehearsal takes nothing");
    assert!(p.order_ready(stocked, OrderOp::Amend));
    let stamped = p.write_amend_at(&mut real, &mut wire, stocked, &spec, T0);
    assert!(stamped.from_stock);
    assert_eq!(p.stats().hits, before.hits + 1);
    assert_eq!(String::from_utf8_lossy(&rehearsed), String::from_utf8_lossy(&real));
    assert!(verifies(&real, stocked));
    assert!(!verifies(&real, unstocked), "bound to its own order");

    let misses = p.stats().misses;
    let stamped = p.write_amend_at(&mut real, &mut wire, unstocked, &spec, T0);
    assert!(!stamped.from_stock);
    assert_eq!(p.stats().misses, misses + 1);
    assert!(verifies(&real, unstocked));
}

const T0: u64 = 1_782_316_195_000;

/// Key generation is slow (RSA especially): once per kind for the whole test binary.
fn key(kind: KeyKind) -> &'static AccountKey {
    static KEYS: OnceLock<[AccountKey; 3]> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        [
            generate_account_key(KeyKind::RsaPkcs1, 2048).unwrap(),
            generate_account_key(KeyKind::RsaPkcs8, 1024).unwrap(),
            generate_account_key(KeyKind::Ed25519, 0).unwrap(),
        ]
    });
    match kind {
        KeyKind::RsaPkcs1 => &keys[0],
        KeyKind::RsaPkcs8 => &keys[1],
        KeyKind::Ed25519 => &keys[2],
    }
}

fn verifier(k: &AccountKey) -> Verifier {
    let mut v = Verifier::new();
    v.add_key(k.key_id.clone(), 7, k.public.clone());
    v
}

fn check(v: &Verifier, k: &AccountKey, h: &SignedHeaders, method: Method, path: &[u8], now_ms: u64) -> bool {
    let m = std::str::from_utf8(method.as_bytes()).unwrap();
    let ts = std::str::from_utf8(h.timestamp()).unwrap();
    let sig = std::str::from_utf8(h.signature()).unwrap();
    v.verify(
        Some(&k.key_id),
        Some(ts),
        Some(sig),
        m,
        std::str::from_utf8(path).unwrap(),
        now_ms as i64,
    ) == Ok(7)
}

/// Test config: no timed refills, so what the test sees is what it asked for.
fn quiet(stock: [usize; 4]) -> PresignConfig {
    PresignConfig {
        stock,
        poll_ms: 3_600_000,
        ..PresignConfig::default()
    }
}

/// An Ed25519 presigner at `T0` whose every fixed path holds `depth` signatures.
fn stocked_ed25519(depth: usize) -> (&'static AccountKey, Presigner) {
    let k = key(KeyKind::Ed25519);
    let (clock, _) = WallClock::manual(T0);
    let p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, quiet([depth; 4]), clock).unwrap();
    wait_for("stock", || FixedPath::ALL.iter().all(|f| p.stock(*f) == depth));
    (k, p)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn stock_signatures_verify_for_their_path_with_every_key_kind() {
    for kind in [KeyKind::RsaPkcs1, KeyKind::RsaPkcs8, KeyKind::Ed25519] {
        let k = key(kind);
        let v = verifier(k);
        let (clock, _) = WallClock::manual(T0);
        let mut p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, quiet([2, 2, 2, 2]), clock).unwrap();
        wait_for("stock", || FixedPath::ALL.iter().all(|f| p.stock(*f) == 2));
        for f in FixedPath::ALL {
            let h = p.take_at(f.method(), f.path(), T0);
            assert!(check(&v, k, &h, f.method(), f.path(), T0), "{kind} {f:?}");
            // Bound to its path and method: useless for any other request.
            let other = if f.path() == ORDERS_PATH { BATCH_PATH } else { ORDERS_PATH };
            assert!(!check(&v, k, &h, f.method(), other, T0), "{kind} {f:?}");
            assert!(!check(&v, k, &h, Method::Get, f.path(), T0), "{kind} {f:?}");
        }
        let s = p.stats();
        assert_eq!((s.hits, s.misses, s.unstocked), (4, 0, 0), "{kind}");
        assert!(s.signed_ahead >= 8);
        assert!(!format!("{p:?}").contains(std::str::from_utf8(p.take_at(Method::Post, ORDERS_PATH, T0).signature()).unwrap()));
    }
}

#[test]
fn no_signature_is_handed_out_twice() {
    let k = key(KeyKind::Ed25519);
    let (clock, _) = WallClock::manual(T0);
    let mut p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, quiet([8, 1, 1, 1]), clock).unwrap();
    wait_for("stock", || p.stock(FixedPath::Create) == 8);
    // Stock, then inline misses, all in the same (frozen) millisecond.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..12 {
        let h = p.take_at(Method::Post, ORDERS_PATH, T0);
        assert!(seen.insert(h.signature().to_vec()), "a signature came back twice");
    }
    assert_eq!(p.stats().hits + p.stats().misses, 12);
    assert!(p.stats().hits >= 8);
}

#[test]
fn stale_stock_is_never_handed_out() {
    let k = key(KeyKind::Ed25519);
    let v = verifier(k);
    let (clock, now) = WallClock::manual(T0);
    let cfg = quiet([4, 1, 1, 1]);
    let max_age = cfg.max_age_ms;
    let mut p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, cfg, clock).unwrap();
    wait_for("stock", || p.stock(FixedPath::Create) == 4);
    let later = T0 + max_age + 1;
    now.store(later, Ordering::Relaxed);
    let h = p.take_at(Method::Post, ORDERS_PATH, later);
    assert!(h.timestamp_ms().abs_diff(later) <= max_age, "stale signature handed out");
    assert!(check(&v, k, &h, Method::Post, ORDERS_PATH, later));
    let s = p.stats();
    assert!(s.stale_dropped >= 1, "{s:?}");
    assert_eq!(s.hits + s.misses, 1);
}

#[test]
fn maintain_retires_aging_stock() {
    let k = key(KeyKind::Ed25519);
    let (clock, now) = WallClock::manual(T0);
    let cfg = quiet([3, 1, 1, 1]);
    let refresh = cfg.refresh_age_ms;
    let mut p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, cfg, clock).unwrap();
    wait_for("stock", || p.stock(FixedPath::Create) == 3);
    p.maintain_at(T0 + refresh / 2);
    assert_eq!(p.stats().retired, 0);
    let later = T0 + refresh + 100;
    now.store(later, Ordering::Relaxed);
    p.maintain_at(later);
    assert!(p.stats().retired >= 6, "{:?}", p.stats());
    // Woken, the worker restocks at the new time.
    p.wake();
    wait_for("restock", || p.stock(FixedPath::Create) == 3);
    let h = p.take_at(Method::Post, ORDERS_PATH, later);
    assert!(h.timestamp_ms() >= later);
    assert_eq!(p.stats().misses, 0);
}

#[test]
fn misses_are_counted_and_still_verify() {
    let k = key(KeyKind::RsaPkcs8);
    let v = verifier(k);
    let (clock, _) = WallClock::manual(T0);
    // No stock at all for creates.
    let mut p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, quiet([0, 1, 1, 1]), clock).unwrap();
    for i in 0..3 {
        let h = p.take_at(Method::Post, ORDERS_PATH, T0 + i);
        assert!(check(&v, k, &h, Method::Post, ORDERS_PATH, T0));
    }
    let markets = b"/trade-api/v2/markets";
    let h = p.take_at(Method::Get, markets, T0);
    assert!(check(&v, k, &h, Method::Get, markets, T0));
    let ws = p.sign_now(Method::Get, b"/trade-api/ws/v2");
    assert!(check(&v, k, &ws, Method::Get, b"/trade-api/ws/v2", T0));
    let s = p.stats();
    assert_eq!((s.hits, s.misses, s.unstocked), (0, 3, 1));
}

#[test]
fn per_order_signatures_on_request() {
    let k = key(KeyKind::Ed25519);
    let v = verifier(k);
    let (clock, _) = WallClock::manual(T0);
    let mut p = Presigner::spawn_with_clock(Signer::from_pem(&k.private_pem).unwrap(), &k.key_id, quiet([1, 1, 1, 1]), clock).unwrap();
    let order = OrderId(0x0b6e_2a9a_0a11_41c0_4f77_2a9a_1c02_1af4);
    let other = OrderId(42);
    let mut path = Vec::new();
    for op in [OrderOp::Cancel, OrderOp::Amend, OrderOp::Decrease] {
        assert!(p.prepare(order, op));
    }
    p.wake();
    for op in [OrderOp::Cancel, OrderOp::Amend, OrderOp::Decrease] {
        wait_for("order stock", || p.has_order_stock(order, op));
        op.write_path(order, &mut path);
        let hits = p.stats().hits;
        let h = p.take_at(op.method(), &path, T0);
        assert_eq!(p.stats().hits, hits + 1, "{op:?}");
        assert!(check(&v, k, &h, op.method(), &path, T0), "{op:?}");
        // Not valid for another order.
        op.write_path(other, &mut path);
        assert!(!check(&v, k, &h, op.method(), &path, T0));
    }
    // An order may be decreased again: a replacement is made without asking.
    p.wake();
    wait_for("replacement", || p.has_order_stock(order, OrderOp::Decrease));
    assert!(!p.has_order_stock(order, OrderOp::Cancel));
    // Never prepared: signed inline.
    OrderOp::Amend.write_path(other, &mut path);
    let misses = p.stats().misses;
    let h = p.take_at(Method::Post, &path, T0);
    assert!(check(&v, k, &h, Method::Post, &path, T0));
    assert_eq!(p.stats().misses, misses + 1);
    p.release(order);
    assert!(!p.has_order_stock(order, OrderOp::Decrease));
}
