//! Request signing: what a signature costs inline (RSA-PSS 2048 vs Ed25519), what taking a
//! presigned one from stock costs, and the whole order write as the io thread does it: stamp a
//! V2 create and its presigned `KALSHI-ACCESS-*` lines into the market's prebuilt HTTP/1.1
//! request and copy it into a preallocated buffer (beside the generic encode-then-frame path).
//!
//! Stock is refilled by the presigner's worker at signing speed, far slower than the io side
//! consumes it here, so the stock benchmarks time batches that the stock can cover and wait for
//! the worker between batches (criterion's `iter_custom`): every timed take is a hit, which is
//! asserted at the end.

use criterion::{criterion_group, criterion_main, Criterion};
use kalshi_proto::auth::{generate_account_key, KeyKind, Signer};
use kmm::connector::kalshi::rest::encode::{encode_amend, encode_create, SelfTradePrevention};
use kmm::connector::kalshi::rest::head::write_http_request;
use kmm::connector::kalshi::rest::order_wire::{OrderSpec, OrderWire};
use kmm::connector::kalshi::rest::request::{Method, RestRequest, ORDERS_PATH};
use kmm::connector::presign::{sign, FixedPath, PresignConfig, Presigner, WallClock};
use kmm::event::{ClientRef, OrderId, Price, Qty, Side, TimeInForce};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TICKER: &str = "KXHIGHNY-26JUN24-T82";
const HOST: &[u8] = b"api.elections.kalshi.com";
const DEPTH: usize = 256;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// (name, private PEM, key id) of an RSA-2048 and an Ed25519 key, generated once.
fn keys() -> &'static [(&'static str, String, String); 2] {
    static KEYS: OnceLock<[(&'static str, String, String); 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = generate_account_key(KeyKind::RsaPkcs8, 2048).unwrap();
        let ed = generate_account_key(KeyKind::Ed25519, 0).unwrap();
        [("rsa2048", rsa.private_pem, rsa.key_id), ("ed25519", ed.private_pem, ed.key_id)]
    })
}

fn inline(c: &mut Criterion) {
    for (name, pem, _) in keys() {
        let signer = Signer::from_pem(pem).unwrap();
        let mut ts = now_ms();
        c.bench_function(&format!("sign/inline_{name}"), |b| {
            b.iter(|| {
                ts += 1;
                black_box(sign(&signer, Method::Post, black_box(ORDERS_PATH), ts))
            })
        });
    }
}

fn presigner(pem: &str, key_id: &str) -> Presigner {
    let config = PresignConfig {
        stock: [DEPTH, 1, 1, 1],
        // The benchmark consumes one path's signatures far faster than a thousand a second, so
        // Ed25519's one-signature-per-millisecond timestamps run ahead of the clock: never let
        // that make stock "stale" here.
        max_age_ms: 1 << 40,
        refresh_age_ms: 1 << 40,
        // The worker refills when woken between batches, not on its own mid-batch: taking 256
        // signatures in ~25 us (live: a few a second) while it pushes more would time the two
        // cores fighting over the ring's cache lines, not the io side's write.
        poll_ms: 3_600_000,
        ..PresignConfig::default()
    };
    Presigner::spawn_with_clock(Signer::from_pem(pem).unwrap(), key_id, config, WallClock::System).unwrap()
}

/// Times `iters` calls of `f`, in batches the stock covers, refilling between them. Between
/// batches the io side's `maintain` runs (untimed), as it does in the io loop's idle turns.
fn with_stock(p: &mut Presigner, iters: u64, mut f: impl FnMut(&mut Presigner)) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        p.wake();
        // Busy-waits, as the io thread polls in spin mode: a thread that slept finds its core
        // slow for tens of microseconds (on these VMs), which would be timed, not the write.
        while p.stock(FixedPath::Create) < DEPTH {
            std::hint::spin_loop();
        }
        p.maintain_at(now_ms());
        let n = left.min(DEPTH as u64);
        let t0 = Instant::now();
        for _ in 0..n {
            f(p);
        }
        total += t0.elapsed();
        left -= n;
    }
    total
}

fn stock(c: &mut Criterion) {
    // Ed25519 refills the stock ~10x faster than RSA; what is timed is the same either way.
    let (_, pem, key_id) = &keys()[1];
    let mut p = presigner(pem, key_id);
    let now = now_ms();
    c.bench_function("sign/take_from_stock", |b| {
        b.iter_custom(|iters| {
            with_stock(&mut p, iters, |p| {
                black_box(p.take_at(Method::Post, black_box(ORDERS_PATH), now));
            })
        })
    });
    let s = p.stats();
    assert_eq!(s.misses, 0, "{s:?}");

    let mut req = RestRequest::new();
    let mut out = Vec::with_capacity(16 << 10);
    let mut client = 0u64;
    let mut spec = OrderSpec {
        ticker: TICKER.as_bytes(),
        client: ClientRef(0),
        side: Side::Bid,
        price: Price(5600),
        qty: Qty(1000),
        tif: TimeInForce::GoodTillCanceled,
        post_only: true,
        stp: SelfTradePrevention::TakerAtCross,
    };
    // What the io thread does for a single create: stamp the order and its signature into the
    // market and side's wire image, and copy that into the connection's buffer.
    let mut wire = OrderWire::create(HOST, p.key_id());
    c.bench_function("sign/encode_create_and_stamp", |b| {
        b.iter_custom(|iters| {
            let took = with_stock(&mut p, iters, |p| {
                client += 1;
                spec.client = ClientRef(client);
                spec.price = Price(5600 + (client % 7) as u32);
                black_box(p.write_create_at(&mut out, &mut wire, black_box(&spec), now));
            });
            // Untimed: what was written is a whole create.
            assert!(out.windows(5).any(|w| w == b"0.560") && out.ends_with(b"\"}"), "not a create");
            took
        })
    });
    let s = p.stats();
    assert_eq!(s.misses, 0, "{s:?}");

    // The generic path, for the ratio: encode the body, then frame it behind the signature.
    c.bench_function("sign/encode_create_then_stamp_generic", |b| {
        b.iter_custom(|iters| {
            let took = with_stock(&mut p, iters, |p| {
                client += 1;
                spec.client = ClientRef(client);
                encode_create(&mut req, black_box(&spec));
                black_box(p.write_request_at(&mut out, &req, HOST, now));
            });
            assert!(out.ends_with(&req.body));
            took
        })
    });
    let s = p.stats();
    assert_eq!(s.misses, 0, "{s:?}");

    // The same with the wall clock read per request (what `write_request` does).
    c.bench_function("sign/encode_create_and_stamp_reading_clock", |b| {
        b.iter_custom(|iters| {
            with_stock(&mut p, iters, |p| {
                client += 1;
                spec.client = ClientRef(client);
                black_box(p.write_create(&mut out, &mut wire, black_box(&spec)));
            })
        })
    });
    assert_eq!(p.stats().misses, 0);

    // The encode alone, to split the figure above into encode and stamp.
    c.bench_function("sign/encode_create_only", |b| {
        b.iter(|| {
            client += 1;
            spec.client = ClientRef(client);
            encode_create(&mut req, black_box(&spec));
            black_box(req.body.len())
        })
    });

    // Framing alone, with headers already in hand: the cost floor of the write.
    let h = sign(&Signer::from_pem(&keys()[0].1).unwrap(), Method::Post, ORDERS_PATH, now);
    encode_create(&mut req, &spec);
    c.bench_function("sign/frame_http_rsa2048_headers", |b| {
        b.iter(|| {
            write_http_request(&mut out, black_box(&req), HOST, b"a952bcbe-ec3b-4b5b-b8f9-11a1e9e3e5a1", &h);
            black_box(out.len())
        })
    });
    // The wire image with the same RSA headers: the create path's floor for a 2048-bit key.
    let mut wire = OrderWire::create(HOST, b"a952bcbe-ec3b-4b5b-b8f9-11a1e9e3e5a1");
    c.bench_function("sign/stamp_wire_rsa2048_headers", |b| {
        b.iter(|| {
            client += 1;
            spec.client = ClientRef(client);
            wire.write(&mut out, black_box(&spec), h.auth_lines());
            black_box(out.len())
        })
    });
    // An amend, most of the order flow once quotes rest, with the same headers: its wire (the
    // order id patched in) against encoding it and framing it generically, for the ratio.
    let mut amend_wire = OrderWire::amend(HOST, b"a952bcbe-ec3b-4b5b-b8f9-11a1e9e3e5a1");
    let order = OrderId(0x0b6e_2a9a_0a11_41c0_4f77_2a9a_1c02_1af4);
    c.bench_function("sign/amend_wire_rsa2048_headers", |b| {
        b.iter(|| {
            client += 1;
            spec.client = ClientRef(client);
            amend_wire.write_amend(&mut out, black_box(order), black_box(&spec), h.auth_lines());
            black_box(out.len())
        })
    });
    c.bench_function("sign/amend_encode_then_frame_rsa2048_headers", |b| {
        b.iter(|| {
            client += 1;
            encode_amend(
                &mut req,
                black_box(order),
                TICKER.as_bytes(),
                ClientRef(client),
                spec.side,
                spec.price,
                spec.qty,
            );
            write_http_request(&mut out, black_box(&req), HOST, b"a952bcbe-ec3b-4b5b-b8f9-11a1e9e3e5a1", &h);
            black_box(out.len())
        })
    });
}

criterion_group!(benches, inline, stock);
criterion_main!(benches);
