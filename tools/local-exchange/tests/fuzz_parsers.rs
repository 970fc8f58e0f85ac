//! Fuzzing the request parsers with proptest: raw bytes and structured-random JSON never
//! panic, every failure is a Kalshi error with a code and a message, and whatever parses
//! can be placed without breaking the engine's invariants.

use kalshi_proto::ladder::LevelStructure;
use kalshi_proto::units::{Money, Price, Qty};
use local_exchange::engine::{Exchange, ExchangeConfig, FeeType, MarketSpec};
use local_exchange::server::rest::{parse_batch_cancel_request, parse_decrease_request, parse_order_request, OrderFamily};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn exchange() -> (Exchange, Money) {
    let mut ex = Exchange::new(ExchangeConfig::default());
    for (t, s) in [
        ("LIN", LevelStructure::LinearCent),
        ("DECI", LevelStructure::DeciCent),
        ("TAPER", LevelStructure::TaperedDeciCent),
    ] {
        ex.add_market(
            MarketSpec {
                ticker: t.into(),
                event_ticker: "EV".into(),
                series_ticker: "S".into(),
                title: t.into(),
                structure: s,
                fee_type: FeeType::Quadratic,
                fee_multiplier_e4: 10_000,
                open_ms: 0,
                close_ms: u64::MAX / 2,
                settlement_timer_s: 0,
            },
            0,
        );
    }
    ex.add_account("keyed".into(), Money::from_cents(100_000), false);
    ex.add_account("sim".into(), Money::from_cents(1 << 40), true);
    (ex, Money::from_cents(100_000) + Money::from_cents(1 << 40))
}

/// JSON values of every type, biased toward what order fields look like.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-200i64..20_000).prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[0-9]{0,3}(\\.[0-9]{0,6})?".prop_map(Value::String),
        "-?[0-9]{1,2}\\.[0-9]{1,4}".prop_map(Value::String),
        prop::sample::select(vec![
            "yes",
            "no",
            "buy",
            "sell",
            "bid",
            "ask",
            "LIN",
            "DECI",
            "TAPER",
            "limit",
            "market",
            "good_till_canceled",
            "immediate_or_cancel",
            "fill_or_kill",
            "taker_at_cross",
            "maker",
            ""
        ])
        .prop_map(|s| Value::String(s.into())),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| prop::collection::vec(inner, 0..4).prop_map(Value::Array))
}

const FIELDS: &[&str] = &[
    "ticker",
    "side",
    "action",
    "count",
    "count_fp",
    "type",
    "yes_price",
    "no_price",
    "yes_price_dollars",
    "no_price_dollars",
    "price",
    "client_order_id",
    "time_in_force",
    "expiration_ts",
    "expiration_time",
    "buy_max_cost",
    "post_only",
    "reduce_only",
    "sell_position_floor",
    "self_trade_prevention_type",
    "order_group_id",
    "cancel_order_on_pause",
    "subaccount",
    "exchange_index",
    "reduce_by",
    "reduce_to",
    "ids",
    "orders",
];

fn object() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((prop::sample::select(FIELDS), value()), 0..14).prop_map(|pairs| {
        let mut m = Map::new();
        for (k, v) in pairs {
            m.insert(k.to_string(), v);
        }
        serde_json::to_vec(&Value::Object(m)).unwrap()
    })
}

fn check_parse(ex: &mut Exchange, deposited: Money, body: &[u8], now: u64) {
    for family in [OrderFamily::Legacy, OrderFamily::V2] {
        match parse_order_request(ex, 0, family, body) {
            Ok(order) => {
                // Whatever parses is placeable (or refused cleanly) without breaking invariants.
                if let Err(e) = ex.place(now, order) {
                    assert!(!e.code.is_empty() && !e.message.is_empty());
                }
                ex.take_events();
                ex.check_conservation(deposited).unwrap();
            }
            Err(e) => {
                assert!(e.status.is_client_error() || e.status.is_server_error());
                assert!(
                    !e.code.is_empty() && !e.message.is_empty(),
                    "empty error for {:?}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }
    let _ = parse_decrease_request(body);
    let _ = parse_batch_cancel_request(body);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn raw_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let (mut ex, deposited) = exchange();
        check_parse(&mut ex, deposited, &body, 1);
    }

    #[test]
    fn structured_json_never_panics(bodies in prop::collection::vec(object(), 1..8)) {
        let (mut ex, deposited) = exchange();
        for (i, body) in bodies.iter().enumerate() {
            check_parse(&mut ex, deposited, body, i as u64 + 1);
        }
    }

    #[test]
    fn decimal_parsers_never_panic_and_round_trip(text in ".{0,24}") {
        if let Ok(p) = Price::parse(&text) {
            prop_assert_eq!(Price::parse(&p.dollars()).unwrap(), p);
        }
        if let Ok(q) = Qty::parse(&text) {
            prop_assert_eq!(Qty::parse(&q.fp()).unwrap(), q);
        }
    }
}

#[test]
fn a_valid_order_of_each_family_parses() {
    let (ex, _) = exchange();
    let legacy = br#"{"ticker":"LIN","side":"no","action":"buy","count":3,"no_price":40}"#;
    let o = parse_order_request(&ex, 0, OrderFamily::Legacy, legacy).unwrap();
    assert_eq!(o.price, Price(6_000));
    let v2 = br#"{"ticker":"DECI","side":"ask","count":"2.50","price":"0.4150","time_in_force":"immediate_or_cancel","self_trade_prevention_type":"maker"}"#;
    let o = parse_order_request(&ex, 0, OrderFamily::V2, v2).unwrap();
    assert_eq!((o.price, o.qty), (Price(4_150), Qty(250)));
}
