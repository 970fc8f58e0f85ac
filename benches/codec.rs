//! Codec hot paths: decoding an orderbook delta, a trade and a 10-level snapshot, and encoding
//! a V2 create body. Frames carry a fixed-width seq that is bumped in place each iteration, so
//! every decode is a fresh in-sequence frame (a duplicate would be dropped early).

use criterion::{criterion_group, criterion_main, Criterion};
use kmm::connector::kalshi::interner::Interner;
use kmm::connector::kalshi::rest::encode::{encode_create, SelfTradePrevention};
use kmm::connector::kalshi::rest::order_wire::OrderSpec;
use kmm::connector::kalshi::rest::request::RestRequest;
use kmm::connector::kalshi::ws::decode::Decoder;
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
    d.register_subscribe(3, &[Channel::Fill], &[], false).unwrap();
    d.register_subscribe(4, &[Channel::UserOrders], &[], false).unwrap();
    for f in [
        r#"{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}"#,
        r#"{"id":2,"type":"subscribed","msg":{"channel":"trade","sid":2}}"#,
        r#"{"id":3,"type":"subscribed","msg":{"channel":"fill","sid":3}}"#,
        r#"{"id":4,"type":"subscribed","msg":{"channel":"user_orders","sid":4}}"#,
    ] {
        d.decode(f.as_bytes(), Stamp::default(), &mut |_| {}).unwrap();
    }
    d
}

/// A frame whose `"seq":` value is ten digits wide, and where those digits are (unsequenced
/// channels such as fills have none, and nothing to bump).
struct Frame {
    bytes: Vec<u8>,
    seq_at: Option<usize>,
}

impl Frame {
    fn new(text: &str) -> Frame {
        let text = text.replace("SEQ", "1000000000");
        let seq_at = text.find("\"seq\":").map(|at| at + 6);
        Frame {
            bytes: text.into_bytes(),
            seq_at,
        }
    }

    /// Decimal increment in place.
    fn bump(&mut self) {
        let Some(at) = self.seq_at else { return };
        let digits = &mut self.bytes[at..at + 10];
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
    // The local exchange's own frames (Era-A integers beside the fixed-point fields), as the
    // engine receives them: a trade, one of our fills and one of our order updates.
    let trade_lx = r#"{"type":"trade","sid":2,"seq":SEQ,"msg":{"count":6,"count_fp":"6.00","is_block_trade":false,"market_id":"116f338b-3a7c-4aed-de94-338baed89116","market_ticker":"KXHIGHNY-26JUN24-T82","no_price":72,"no_price_dollars":"0.7200","taker_book_side":"bid","taker_outcome_side":"yes","taker_side":"yes","trade_id":"116f338b-7ade-4aed-de94-338baed89116","ts":1795531786,"ts_ms":1795531786769,"yes_price":28,"yes_price_dollars":"0.2800"}}"#;
    bench_decode(c, "decode/trade_local_exchange", trade_lx, 1);
    let fill_lx = r#"{"type":"fill","sid":3,"msg":{"action":"sell","book_side":"ask","client_order_id":"kmm-83b29c4800000002","count":5,"count_fp":"5.00","exchange_index":0,"fee_cost":"0.000000","is_taker":false,"market_ticker":"KXHIGHNY-26JUN24-T82","no_price":48,"no_price_dollars":"0.4800","order_id":"6250b03a-0a11-478c-6737-b03a78cc5b8a","outcome_side":"no","post_position":-5,"post_position_fp":"-5.00","purchased_side":"no","side":"yes","subaccount":0,"trade_id":"6c2fd1a5-7ade-4253-1e91-d1a525352c53","ts":1795531788,"ts_ms":1795531788873,"yes_price":52,"yes_price_dollars":"0.5200"}}"#;
    bench_decode(c, "decode/fill_local_exchange", fill_lx, 1);
    let user_order_lx = r#"{"type":"user_order","sid":4,"msg":{"action":"buy","book_side":"bid","client_order_id":"kmm-83b29c4800000001","created_time":"2026-11-24T14:49:46.694Z","created_ts_ms":1795531786694,"exchange_index":0,"fill_count":0,"fill_count_fp":"0.00","initial_count":5,"initial_count_fp":"5.00","is_yes":true,"last_update_reason":"","last_update_time":"2026-11-24T14:49:46.694Z","last_updated_ts_ms":1795531786694,"maker_fees_dollars":"0.000000","maker_fill_cost_dollars":"0.000000","no_price":49,"no_price_dollars":"0.4900","order_id":"c189ca7d-0a11-4fb8-4813-ca7dfb86d777","outcome_side":"yes","post_only":true,"reduce_only":false,"remaining_count":5,"remaining_count_fp":"5.00","self_trade_prevention_type":"taker_at_cross","side":"yes","status":"resting","subaccount_number":0,"taker_fees_dollars":"0.000000","taker_fill_cost_dollars":"0.000000","ticker":"KXHIGHNY-26JUN24-T82","time_in_force":"good_till_canceled","type":"limit","user_id":"user-0000-6b1dc959","yes_price":51,"yes_price_dollars":"0.5100"}}"#;
    bench_decode(c, "decode/user_order_local_exchange", user_order_lx, 1);
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
