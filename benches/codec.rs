//! Codec hot paths: decoding an orderbook delta, a trade and a 10-level snapshot, and encoding
//! a V2 create body. Frames carry a fixed-width seq that is bumped in place each iteration, so
//! every decode is a fresh in-sequence frame (a duplicate would be dropped early).

use criterion::{criterion_group, criterion_main, Criterion};
use kmm::connector::codec::{encode_create, Decoder, Interner, OrderSpec, RestRequest, SelfTradePrevention};
use kmm::event::{Channel, ClientRef, Price, Qty, Side, Stamp, TimeInForce};
use std::hint::black_box;

const TICKER: &str = "KXHIGHNY-26JUN24-T82";

fn decoder() -> Decoder {
    let mut interner = Interner::with_capacity(64);
    interner.intern(TICKER.as_bytes()).unwrap();
    for i in 0..20 {
        interner.intern(format!("KXOTHER-26JUN24-T{i}").as_bytes()).unwrap();
    }
    let mut d = Decoder::new(interner);
    d.register_subscribe(1, &[Channel::OrderbookDelta], &[0], false).unwrap();
    d.register_subscribe(2, &[Channel::Trade], &[0], false).unwrap();
    for f in [
        r#"{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}"#,
        r#"{"id":2,"type":"subscribed","msg":{"channel":"trade","sid":2}}"#,
    ] {
        d.decode(f.as_bytes(), Stamp::default(), &mut |_| {}).unwrap();
    }
    d
}

/// A frame whose `"seq":` value is ten digits wide, and where those digits are.
struct Frame {
    bytes: Vec<u8>,
    seq_at: usize,
}

impl Frame {
    fn new(text: &str) -> Frame {
        let text = text.replace("SEQ", "1000000000");
        let seq_at = text.find("\"seq\":").unwrap() + 6;
        Frame {
            bytes: text.into_bytes(),
            seq_at,
        }
    }

    /// Decimal increment in place.
    fn bump(&mut self) {
        let digits = &mut self.bytes[self.seq_at..self.seq_at + 10];
        for d in digits.iter_mut().rev() {
            if *d == b'9' {
                *d = b'0';
            } else {
                *d += 1;
                return;
            }
        }
    }
}

fn bench_decode(c: &mut Criterion, name: &str, text: &str, expect: usize) {
    let mut d = decoder();
    let mut f = Frame::new(text);
    let mut n = 0usize;
    assert_eq!(d.decode(&f.bytes, Stamp::default(), &mut |_| n += 1), Ok(expect), "{name}");
    c.bench_function(name, |b| {
        b.iter(|| {
            f.bump();
            let mut sum = 0u64;
            let r = d.decode(black_box(&f.bytes), Stamp::default(), &mut |e| sum = sum.wrapping_add(e.stamp.seq));
            black_box((r, sum))
        })
    });
    let c = d.counters();
    assert_eq!((c.malformed, c.duplicates, c.seq_gaps), (0, 0, 0), "{name}: {c:?}");
}

fn decode(c: &mut Criterion) {
    // Kalshi's current shape (spec example).
    let delta = r#"{"type":"orderbook_delta","sid":1,"seq":SEQ,"msg":{"market_ticker":"KXHIGHNY-26JUN24-T82","market_id":"0445cdcb-e22f-4522-9981-aed4b66015ff","price_dollars":"0.5800","delta_fp":"-7.00","side":"no","ts":"2026-06-24T15:49:55.033836Z","ts_ms":1782316195033}}"#;
    bench_decode(c, "decode/orderbook_delta", delta, 1);
    // The local exchange's superset (Era-A integers beside the fixed-point fields).
    let delta_lx = r#"{"type":"orderbook_delta","sid":1,"seq":SEQ,"msg":{"delta":-7,"delta_fp":"-7.00","market_id":"0445cdcb-e22f-4522-9981-aed4b66015ff","market_ticker":"KXHIGHNY-26JUN24-T82","price":58,"price_dollars":"0.5800","side":"no","ts":"2026-06-24T15:49:55.033Z","ts_ms":1782316195033}}"#;
    bench_decode(c, "decode/orderbook_delta_local_exchange", delta_lx, 1);
    let trade = r#"{"type":"trade","sid":2,"seq":SEQ,"msg":{"trade_id":"d91bc706-ee49-470d-82d8-11418bda6fed","market_ticker":"KXHIGHNY-26JUN24-T82","yes_price_dollars":"0.3600","no_price_dollars":"0.6400","count_fp":"136.00","taker_side":"no","taker_outcome_side":"no","taker_book_side":"ask","is_block_trade":false,"ts":1669149841,"ts_ms":1669149841000}}"#;
    bench_decode(c, "decode/trade", trade, 1);
    let mut snap = String::from(
        r#"{"type":"orderbook_snapshot","sid":1,"seq":SEQ,"msg":{"market_ticker":"KXHIGHNY-26JUN24-T82","market_id":"0445cdcb-e22f-4522-9981-aed4b66015ff","yes_dollars_fp":["#,
    );
    for i in 0..5 {
        snap.push_str(&format!(
            r#"{}["0.{:02}00","{}.00"]"#,
            if i > 0 { "," } else { "" },
            30 + i,
            100 + 7 * i
        ));
    }
    snap.push_str(r#"],"no_dollars_fp":["#);
    for i in 0..5 {
        snap.push_str(&format!(
            r#"{}["0.{:02}00","{}.50"]"#,
            if i > 0 { "," } else { "" },
            50 + i,
            20 + 3 * i
        ));
    }
    snap.push_str("]}}");
    bench_decode(c, "decode/orderbook_snapshot_10_levels", &snap, 12);
}

fn encode(c: &mut Criterion) {
    let mut req = RestRequest::new();
    let mut client = 0u64;
    c.bench_function("encode/v2_create", |b| {
        b.iter(|| {
            client += 1;
            let spec = OrderSpec {
                ticker: TICKER.as_bytes(),
                client: ClientRef(client),
                side: Side::Bid,
                price: Price(5600),
                qty: Qty(1000),
                tif: TimeInForce::GoodTillCanceled,
                post_only: true,
                stp: SelfTradePrevention::TakerAtCross,
            };
            encode_create(&mut req, black_box(&spec));
            black_box(req.body.len())
        })
    });
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
