//! REST protocol tests over real TLS sockets: every endpoint family, auth, errors, matching
//! rules visible through the API, faults.

mod common;

use common::{start, start_with, Venue, DECI, LIN, TAPER};
use kalshi_proto::ratelimit::Tier;
use kalshi_proto::Side;
use local_exchange::faults::Fault;
use local_exchange::server::{Clock, ServerConfig};
use serde_json::{json, Value};

fn err_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

async fn legacy_buy(v: &Venue, who: usize, ticker: &str, cents: i64, count: i64, extra: Value) -> (u16, Value) {
    let mut body = json!({"ticker": ticker, "side": "yes", "action": "buy", "count": count, "type": "limit", "yes_price": cents});
    for (k, val) in extra.as_object().unwrap() {
        body[k] = val.clone();
    }
    v.post(who, "/portfolio/orders", body).await
}

async fn v2_order(v: &Venue, who: usize, ticker: &str, side: &str, price: &str, count: &str, tif: &str) -> (u16, Value) {
    v.post(
        who,
        "/portfolio/events/orders",
        json!({"ticker": ticker, "side": side, "price": price, "count": count, "time_in_force": tif, "self_trade_prevention_type": "taker_at_cross"}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_market_data_and_pagination() {
    let v = start().await;
    let (s, body) = v.call(None, "GET", "/exchange/status", None).await;
    assert_eq!(s, 200);
    assert_eq!(body["trading_active"], true);
    let (s, body) = v.call(None, "GET", "/exchange/schedule", None).await;
    assert_eq!(s, 200);
    assert!(body["schedule"]["standard_hours"].is_array());
    let (s, body) = v.get(0, "/exchange/user_data_timestamp").await;
    assert_eq!(s, 200);
    assert!(body["as_of_time"].as_str().unwrap().ends_with('Z'));

    let (s, body) = v.call(None, "GET", "/markets?limit=2", None).await;
    assert_eq!(s, 200);
    assert_eq!(body["markets"].as_array().unwrap().len(), 2);
    let cursor = body["cursor"].as_str().unwrap().to_string();
    assert!(!cursor.is_empty());
    let (_, body2) = v.call(None, "GET", &format!("/markets?limit=2&cursor={cursor}"), None).await;
    assert_eq!(body2["markets"].as_array().unwrap().len(), 1);
    assert_eq!(body2["cursor"], "");

    let (s, m) = v.call(None, "GET", &format!("/markets/{TAPER}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(m["market"]["price_level_structure"], "tapered_deci_cent");
    assert_eq!(m["market"]["price_ranges"].as_array().unwrap().len(), 3);
    assert_eq!(m["market"]["status"], "active");

    let (s, e) = v.call(None, "GET", "/markets/NOPE", None).await;
    assert_eq!(s, 404);
    assert_eq!(err_code(&e), "market_not_found");
    let (s, e) = v.call(None, "GET", "/markets?limit=0", None).await;
    assert_eq!(s, 400);
    assert!(e["error"]["message"].as_str().unwrap().contains("limit"));
    let (s, _) = v.call(None, "GET", "/markets?status=bogus", None).await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderbook_serves_both_generations() {
    let v = start().await;
    v.lp_order(LIN, Side::Bid, "0.41", "10");
    v.lp_order(LIN, Side::Bid, "0.42", "5");
    v.lp_order(LIN, Side::Ask, "0.45", "3");
    let (s, b) = v.call(None, "GET", &format!("/markets/{LIN}/orderbook"), None).await;
    assert_eq!(s, 200);
    // Ascending, best bid last; the NO side shows the YES ask at 0.45 as a NO bid at 0.55.
    assert_eq!(b["orderbook_fp"]["yes_dollars"], json!([["0.4100", "10.00"], ["0.4200", "5.00"]]));
    assert_eq!(b["orderbook_fp"]["no_dollars"], json!([["0.5500", "3.00"]]));
    assert_eq!(b["orderbook"]["yes"], json!([[41, 10], [42, 5]]));
    assert_eq!(b["orderbook"]["yes_dollars"][0], json!(["0.4100", "10.00"]));
    let (_, b) = v.call(None, "GET", &format!("/markets/{LIN}/orderbook?depth=1"), None).await;
    assert_eq!(b["orderbook_fp"]["yes_dollars"], json!([["0.4200", "5.00"]]));
    let (s, b) = v
        .call(None, "GET", &format!("/markets/orderbooks?tickers={LIN},{DECI}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["orderbooks"].as_array().unwrap().len(), 2);
    // The market object carries the top of book in both generations.
    let (_, m) = v.call(None, "GET", &format!("/markets/{LIN}"), None).await;
    assert_eq!(m["market"]["yes_bid"], 42);
    assert_eq!(m["market"]["yes_ask_dollars"], "0.4500");
    assert_eq!(m["market"]["yes_ask_size_fp"], "3.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_required_and_checked() {
    let v = start().await;
    let (s, e) = v.call(None, "GET", "/portfolio/balance", None).await;
    assert_eq!(s, 401);
    assert!(e["error"]["message"].as_str().unwrap().contains("KALSHI-ACCESS"));

    // Signed by account 1's key but claiming account 0's key id: bad signature.
    let path = "/trade-api/v2/portfolio/balance";
    let ts = Clock::wall_ms();
    let sig = v.signers[1].sign(ts, "GET", path);
    let resp = v
        .http
        .get(format!("{}/portfolio/balance", v.base()))
        .header("KALSHI-ACCESS-KEY", &v.running.info.accounts[0].key_id)
        .header("KALSHI-ACCESS-TIMESTAMP", ts.to_string())
        .header("KALSHI-ACCESS-SIGNATURE", sig)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // A stale timestamp fails even with a valid signature.
    let old = ts - 120_000;
    let sig = v.signers[0].sign(old, "GET", path);
    let resp = v
        .http
        .get(format!("{}/portfolio/balance", v.base()))
        .header("KALSHI-ACCESS-KEY", &v.running.info.accounts[0].key_id)
        .header("KALSHI-ACCESS-TIMESTAMP", old.to_string())
        .header("KALSHI-ACCESS-SIGNATURE", sig)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("off the server clock"));

    // Every key type works, and the query string is not part of what is signed.
    for who in 0..3 {
        let (s, b) = v.get(who, "/portfolio/fills?limit=5").await;
        assert_eq!(s, 200, "account {who} ({}): {b}", v.running.info.accounts[who].key_type);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_ladder_prices_are_rejected() {
    let v = start().await;
    // Half a cent is off a linear-cent ladder.
    let (s, e) = v
        .post(
            0,
            "/portfolio/orders",
            json!({"ticker": LIN, "side": "yes", "action": "buy", "count": 1, "yes_price_dollars": "0.4150"}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(err_code(&e), "invalid_price");
    // Deci-cent prices are fine on a deci-cent ladder, and in the tails of a tapered one only.
    let (s, _) = v2_order(&v, 0, DECI, "bid", "0.4150", "1.00", "good_till_canceled").await;
    assert_eq!(s, 201);
    let (s, _) = v2_order(&v, 0, TAPER, "bid", "0.0550", "1.00", "good_till_canceled").await;
    assert_eq!(s, 201);
    let (s, e) = v2_order(&v, 0, TAPER, "bid", "0.4150", "1.00", "good_till_canceled").await;
    assert_eq!(s, 400);
    assert!(e["error"]["message"].as_str().unwrap().contains("tapered_deci_cent"));
    // Prices with too many decimals, out of range, and fractional counts.
    let (s, _) = v2_order(&v, 0, DECI, "bid", "0.41505", "1.00", "good_till_canceled").await;
    assert_eq!(s, 400);
    let (s, _) = legacy_buy(&v, 0, LIN, 100, 1, json!({})).await;
    assert_eq!(s, 400);
    let (s, b) = v2_order(&v, 0, LIN, "bid", "0.30", "2.50", "good_till_canceled").await;
    assert_eq!(s, 201);
    assert_eq!(b["remaining_count"], "2.50");
    let (s, _) = v2_order(&v, 0, LIN, "bid", "0.30", "2.505", "good_till_canceled").await;
    assert_eq!(s, 400);
    // Two price fields at once is Kalshi's invalid_order.
    let (s, e) = legacy_buy(&v, 0, LIN, 30, 1, json!({"no_price": 70})).await;
    assert_eq!(s, 400);
    assert_eq!(err_code(&e), "invalid_order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_order_lifecycle_and_queue_rules() {
    let v = start().await;
    // Someone already rests 50 at 0.40; we join behind them.
    v.lp_order(LIN, Side::Bid, "0.40", "50");
    let (s, b) = legacy_buy(&v, 0, LIN, 40, 10, json!({"client_order_id": "c-1", "post_only": true})).await;
    assert_eq!(s, 201, "{b}");
    let order = &b["order"];
    assert_eq!(order["status"], "resting");
    assert_eq!(order["yes_price"], 40);
    assert_eq!(order["no_price"], 60);
    assert_eq!(order["remaining_count_fp"], "10.00");
    assert_eq!(order["client_order_id"], "c-1");
    let id = order["order_id"].as_str().unwrap().to_string();

    let (s, q) = v.get(0, &format!("/portfolio/orders/{id}/queue_position")).await;
    assert_eq!(s, 200);
    assert_eq!(q["queue_position"], 50);
    assert_eq!(q["queue_position_fp"], "50.00");

    // Another LP order joins behind us; decrease keeps our place.
    v.lp_order(LIN, Side::Bid, "0.40", "30");
    let (s, d) = v
        .post(0, &format!("/portfolio/orders/{id}/decrease"), json!({"reduce_by": 3}))
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["order"]["remaining_count"], 7);
    let (_, q) = v.get(0, &format!("/portfolio/orders/{id}/queue_position")).await;
    assert_eq!(q["queue_position"], 50);

    // Amend that only shrinks keeps the place too.
    let (s, a) = v
        .post(0, &format!("/portfolio/orders/{id}/amend"), json!({"ticker": LIN, "side": "yes", "action": "buy", "yes_price": 40, "count": 5, "client_order_id": "c-1", "updated_client_order_id": "c-2"}))
        .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["old_order"]["remaining_count"], 7);
    assert_eq!(a["order"]["remaining_count"], 5);
    assert_eq!(a["order"]["client_order_id"], "c-2");
    let (_, q) = v.get(0, &format!("/portfolio/orders/{id}/queue_position")).await;
    assert_eq!(q["queue_position"], 50);

    // Growing the size sends it to the back: behind 50 + 30.
    let (s, _) = v
        .post(
            0,
            &format!("/portfolio/orders/{id}/amend"),
            json!({"ticker": LIN, "side": "yes", "action": "buy", "yes_price": 40, "count": 8}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, q) = v.get(0, &format!("/portfolio/orders/{id}/queue_position")).await;
    assert_eq!(q["queue_position"], 80);

    // A price change moves it to a new level (alone there: position 0).
    let (s, a) = v
        .post(
            0,
            &format!("/portfolio/orders/{id}/amend"),
            json!({"ticker": LIN, "side": "yes", "action": "buy", "yes_price": 39}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(a["order"]["yes_price_dollars"], "0.3900");
    let (_, q) = v.get(0, &format!("/portfolio/orders/queue_positions?market_tickers={LIN}")).await;
    assert_eq!(q["queue_positions"][0]["queue_position_fp"], "0.00");

    // Amend naming the wrong market or side is refused.
    let (s, e) = v
        .post(
            0,
            &format!("/portfolio/orders/{id}/amend"),
            json!({"ticker": DECI, "side": "yes", "action": "buy", "yes_price": 39}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(err_code(&e), "order_ticker_mismatch");

    let (s, c) = v.delete(0, &format!("/portfolio/orders/{id}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(c["reduced_by"], 8);
    assert_eq!(c["order"]["status"], "canceled");
    let (s, _) = v.delete(0, &format!("/portfolio/orders/{id}"), None).await;
    assert_eq!(s, 400);
    // Another account cannot see or cancel it.
    let (s, _) = v.get(1, &format!("/portfolio/orders/{id}")).await;
    assert_eq!(s, 404);
    let (s, listed) = v.get(0, "/portfolio/orders?status=canceled").await;
    assert_eq!(s, 200);
    assert_eq!(listed["orders"][0]["order_id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_only_fok_ioc_and_self_trade() {
    let v = start().await;
    v.lp_order(LIN, Side::Ask, "0.45", "5");
    // Post-only that would cross is refused.
    let (s, e) = legacy_buy(&v, 0, LIN, 45, 1, json!({"post_only": true})).await;
    assert_eq!(s, 400);
    assert_eq!(err_code(&e), "post_only_cross");
    // FOK for more than is there: nothing trades.
    let (s, e) = v2_order(&v, 0, LIN, "bid", "0.45", "6.00", "fill_or_kill").await;
    assert_eq!(s, 400);
    assert_eq!(err_code(&e), "fill_or_kill_insufficient_volume");
    let (_, b) = v.call(None, "GET", &format!("/markets/{LIN}/orderbook"), None).await;
    assert_eq!(b["orderbook_fp"]["no_dollars"], json!([["0.5500", "5.00"]]));
    // IOC for more than is there: fills 5, the rest is cancelled.
    let (s, b) = v2_order(&v, 0, LIN, "bid", "0.45", "8.00", "immediate_or_cancel").await;
    assert_eq!(s, 201);
    assert_eq!(b["fill_count"], "5.00");
    assert_eq!(b["remaining_count"], "0.00");
    assert_eq!(b["average_fill_price"], "0.4500");

    // Self-trade prevention: taker_at_cross cancels the incoming order, the resting one stays.
    let (_, resting) = v2_order(&v, 1, LIN, "ask", "0.60", "4.00", "good_till_canceled").await;
    let (s, b) = v2_order(&v, 1, LIN, "bid", "0.60", "2.00", "good_till_canceled").await;
    assert_eq!(s, 201);
    assert_eq!(b["fill_count"], "0.00");
    assert_eq!(b["status"], "canceled");
    let rid = resting["order_id"].as_str().unwrap();
    let (_, o) = v.get(1, &format!("/portfolio/orders/{rid}")).await;
    assert_eq!(o["order"]["status"], "resting");
    // maker mode cancels the resting order instead and keeps going.
    let (s, b) = v
        .post(1, "/portfolio/events/orders", json!({"ticker": LIN, "side": "bid", "price": "0.60", "count": "2.00", "time_in_force": "good_till_canceled", "self_trade_prevention_type": "maker"}))
        .await;
    assert_eq!(s, 201);
    assert_eq!(b["status"], "resting");
    let (_, o) = v.get(1, &format!("/portfolio/orders/{rid}")).await;
    assert_eq!(o["order"]["status"], "canceled");
    assert_eq!(o["order"]["last_update_reason"], "SelfTradeCancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fills_fees_positions_balance_and_settlement() {
    let v = start().await;
    let (_, bal0) = v.get(0, "/portfolio/balance").await;
    let cash0 = bal0["balance"].as_i64().unwrap();
    v.lp_order(LIN, Side::Ask, "0.50", "100");
    // 10 @ 0.50 as taker: fee ceil(0.07 * 10 * 0.25) = $0.18; cost $5.00.
    let (s, b) = legacy_buy(&v, 0, LIN, 50, 10, json!({"time_in_force": "immediate_or_cancel"})).await;
    assert_eq!(s, 201);
    assert_eq!(b["order"]["status"], "executed");
    assert_eq!(b["order"]["taker_fees"], 18);
    assert_eq!(b["order"]["taker_fill_cost"], 500);
    let (_, bal) = v.get(0, "/portfolio/balance").await;
    assert_eq!(bal["balance"].as_i64().unwrap(), cash0 - 518);
    assert_eq!(
        bal["balance_dollars"],
        format!("{}.{:02}00", (cash0 - 518) / 100, (cash0 - 518) % 100)
    );

    let (_, fills) = v.get(0, "/portfolio/fills").await;
    let f = &fills["fills"][0];
    assert_eq!(f["count"], 10);
    assert_eq!(f["is_taker"], true);
    assert_eq!(f["yes_price_dollars"], "0.5000");
    assert_eq!(f["fee_cost"], "0.1800");
    assert_eq!(f["side"], "yes");
    assert_eq!(f["action"], "buy");

    // Fees round per order: ten 1-lot fills of one order cost ceil(0.175) = 18c, not 10 x 2c.
    for _ in 0..10 {
        v.lp_order(LIN, Side::Ask, "0.49", "1");
    }
    let (_, b) = legacy_buy(&v, 0, LIN, 49, 10, json!({"time_in_force": "immediate_or_cancel"})).await;
    assert_eq!(b["order"]["fill_count"], 10);
    assert_eq!(b["order"]["taker_fees"], 18);

    let (_, pos) = v.get(0, "/portfolio/positions").await;
    let p = &pos["market_positions"][0];
    assert_eq!(p["ticker"], LIN);
    assert_eq!(p["position"], 20);
    assert_eq!(p["position_fp"], "20.00");
    assert_eq!(p["fees_paid"], 36);
    assert_eq!(pos["event_positions"][0]["event_ticker"], format!("{LIN}-EV"));

    // Selling NO is buying YES; buying NO closes YES: position nets per market.
    v.lp_order(LIN, Side::Bid, "0.48", "100");
    let (s, b) = v
        .post(
            0,
            "/portfolio/orders",
            json!({"ticker": LIN, "side": "no", "action": "buy", "count": 5, "no_price": 52, "time_in_force": "immediate_or_cancel"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["order"]["fill_count"], 5);
    let (_, pos) = v.get(0, "/portfolio/positions").await;
    assert_eq!(pos["market_positions"][0]["position"], 15);

    let (s, trades) = v.call(None, "GET", &format!("/markets/trades?ticker={LIN}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(trades["trades"][0]["taker_side"], "no");
    assert_eq!(trades["trades"][0]["yes_price_dollars"], "0.4800");

    // Determination and settlement pay $1 per winning contract.
    let admin = format!("{}/markets/{LIN}/lifecycle", v.running.info.admin_url);
    for body in [json!({"action": "determine", "result": "yes"}), json!({"action": "settle"})] {
        let r = v
            .http
            .post(&admin)
            .header("X-Admin-Token", &v.running.info.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let (_, st) = v.get(0, "/portfolio/settlements").await;
    let s0 = &st["settlements"][0];
    assert_eq!(s0["market_result"], "yes");
    assert_eq!(s0["yes_count"], 15);
    assert_eq!(s0["revenue"], 1500);
    let (_, pos) = v.get(0, "/portfolio/positions?count_filter=position").await;
    assert_eq!(pos["market_positions"].as_array().unwrap().len(), 0);
    // After close every order operation is refused.
    let (s, e) = legacy_buy(&v, 0, LIN, 50, 1, json!({})).await;
    assert_eq!(s, 400);
    assert_eq!(err_code(&e), "market_closed");
    // Both generations see a status their client accepts.
    let (_, m) = v.call(None, "GET", &format!("/markets/{LIN}"), None).await;
    assert_eq!(m["market"]["status"], "finalized");
    let r: Value = v
        .http
        .get(format!("{}/markets/{LIN}", v.base()))
        .header("User-Agent", "OpenAPI-Generator/3.2.0/python")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["market"]["status"], "settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_cancel_all() {
    let v = start().await;
    let (s, b) = v
        .post(
            0,
            "/portfolio/orders/batched",
            json!({"orders": [
                {"ticker": LIN, "side": "yes", "action": "buy", "count": 1, "yes_price": 10, "client_order_id": "a"},
                {"ticker": LIN, "side": "yes", "action": "buy", "count": 1, "yes_price_dollars": "0.105"},
                {"ticker": LIN, "side": "no", "action": "buy", "count": 2, "no_price": 20, "client_order_id": "b"}
            ]}),
        )
        .await;
    assert_eq!(s, 201);
    let items = b["orders"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items[0]["error"].is_null());
    assert_eq!(items[1]["error"]["code"], "invalid_price");
    assert_eq!(items[2]["order"]["yes_price"], 80);
    let ids: Vec<String> = [&items[0], &items[2]]
        .iter()
        .map(|i| i["order"]["order_id"].as_str().unwrap().to_string())
        .collect();
    // Legacy batch cancel is a DELETE with a JSON body.
    let (s, c) = v
        .delete(
            0,
            "/portfolio/orders/batched",
            Some(json!({"ids": [ids[0], ids[1], "00000000-0000-4000-0000-000000000000"]})),
        )
        .await;
    assert_eq!(s, 200);
    let c = c["orders"].as_array().unwrap();
    assert_eq!(c[0]["reduced_by"], 1);
    assert_eq!(c[1]["reduced_by"], 2);
    assert_eq!(c[2]["error"]["code"], "not_found");

    let (s, b) = v
        .post(0, "/portfolio/events/orders/batched", json!({"orders": [
            {"ticker": DECI, "side": "bid", "price": "0.101", "count": "1.50", "time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross"},
            {"ticker": DECI, "side": "ask", "price": "0.901", "count": "2.00", "time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross"}
        ]}))
        .await;
    assert_eq!(s, 201);
    let ids: Vec<&str> = b["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    let (s, c) = v
        .delete(
            0,
            "/portfolio/events/orders/batched",
            Some(json!({"orders": [{"order_id": ids[0]}]})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(c["orders"][0]["reduced_by"], "1.50");
    // Cancel-all answers 204 and leaves nothing resting.
    let (s, _) = v.delete(0, "/portfolio/events/orders", None).await;
    assert_eq!(s, 204);
    let (_, open) = v.get(0, "/portfolio/orders?status=resting").await;
    assert_eq!(open["orders"].as_array().unwrap().len(), 0);
    // A batch over 20 is refused whole.
    let many: Vec<Value> = (0..21)
        .map(|_| json!({"ticker": LIN, "side": "yes", "action": "buy", "count": 1, "yes_price": 5}))
        .collect();
    let (s, _) = v.post(0, "/portfolio/orders/batched", json!({ "orders": many })).await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_amend_and_decrease() {
    let v = start().await;
    let (_, b) = v2_order(&v, 0, DECI, "ask", "0.6010", "10.00", "good_till_canceled").await;
    let id = b["order_id"].as_str().unwrap().to_string();
    let (s, d) = v
        .post(0, &format!("/portfolio/events/orders/{id}/decrease"), json!({"reduce_to": "4.25"}))
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["remaining_count"], "4.25");
    let (s, a) = v
        .post(
            0,
            &format!("/portfolio/events/orders/{id}/amend"),
            json!({"ticker": DECI, "side": "ask", "price": "0.6020", "count": "6.00"}),
        )
        .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["remaining_count"], "6.00");
    let (s, e) = v
        .post(
            0,
            &format!("/portfolio/events/orders/{id}/amend"),
            json!({"ticker": DECI, "side": "bid", "price": "0.6020", "count": "6.00"}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(err_code(&e), "order_side_mismatch");
    let (s, e) = v
        .post(
            0,
            &format!("/portfolio/events/orders/{id}/decrease"),
            json!({"reduce_by": "1.00", "reduce_to": "1.00"}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(err_code(&e), "invalid_order");
    let (s, c) = v.delete(0, &format!("/portfolio/events/orders/{id}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(c["reduced_by"], "6.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_kalshi_errors() {
    let v = start().await;
    let cases: Vec<(&str, &str, Option<Value>)> = vec![
        ("POST", "/portfolio/orders", Some(json!({"ticker": LIN}))),
        (
            "POST",
            "/portfolio/orders",
            Some(json!({"ticker": LIN, "side": "maybe", "action": "buy", "count": 1, "yes_price": 5})),
        ),
        (
            "POST",
            "/portfolio/orders",
            Some(json!({"ticker": LIN, "side": "yes", "action": "buy", "count": 1, "yes_price": 5, "surprise": 1})),
        ),
        (
            "POST",
            "/portfolio/events/orders",
            Some(
                json!({"ticker": LIN, "side": "bid", "price": "abc", "count": "1", "time_in_force": "good_till_canceled", "self_trade_prevention_type": "maker"}),
            ),
        ),
        (
            "POST",
            "/portfolio/events/orders",
            Some(
                json!({"ticker": LIN, "side": "bid", "price": "0.5", "count": "1", "time_in_force": "forever", "self_trade_prevention_type": "maker"}),
            ),
        ),
        ("POST", "/portfolio/orders/abc/decrease", Some(json!({"reduce_by": 1}))),
        ("GET", "/portfolio/fills?limit=5000", None),
        ("GET", "/portfolio/fills?cursor=zzz", None),
        ("GET", "/portfolio/positions?count_filter=weird", None),
    ];
    for (method, path, body) in cases {
        let (s, e) = v.call(Some(0), method, path, body).await;
        assert!((400..500).contains(&s), "{method} {path}: {s} {e}");
        assert!(
            e["error"]["code"].is_string() && e["error"]["message"].is_string(),
            "{method} {path}: {e}"
        );
    }
    // Raw garbage bytes.
    let path = "/trade-api/v2/portfolio/orders";
    let ts = Clock::wall_ms();
    let mut req = v
        .http
        .post(format!("{}/portfolio/orders", v.base()))
        .body(vec![0xffu8, 0x00, b'{', b'"']);
    for (k, val) in v.signers[0].headers(&v.running.info.accounts[0].key_id, ts, "POST", path) {
        req = req.header(k, val);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Unknown path and wrong method.
    let (s, e) = v.call(None, "GET", "/nothing/here", None).await;
    assert_eq!(s, 404);
    assert_eq!(err_code(&e), "not_found");
    let (s, _) = v.call(Some(0), "PUT", "/portfolio/balance", None).await;
    assert_eq!(s, 405);
    // The server is still fine.
    let (s, _) = v.get(0, "/portfolio/balance").await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_kalshis_body() {
    let v = start_with(ServerConfig {
        accounts: 1,
        tier: Tier::Basic,
        ..ServerConfig::default()
    })
    .await;
    let (s, limits) = v.get(0, "/account/limits").await;
    assert_eq!(s, 200);
    assert_eq!(limits["usage_tier"], "basic");
    assert_eq!(limits["write"]["refill_rate"], 100);
    let (_, costs) = v.get(0, "/account/endpoint_costs").await;
    assert_eq!(costs["default_cost"], 10);
    // Basic write bucket: 100 tokens; a legacy create costs 50, so the third in a burst fails.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (s, body) = legacy_buy(&v, 0, LIN, 5, 1, json!({})).await;
        statuses.push((s, body));
    }
    assert_eq!(statuses[0].0, 201);
    assert_eq!(statuses[1].0, 201);
    assert_eq!(statuses[2].0, 429);
    assert_eq!(statuses[2].1, json!({"error": "too many requests"}));
    // The read bucket is separate.
    let (s, _) = v.get(0, "/portfolio/balance").await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults() {
    let v = start().await;
    let shared = v.running.shared.clone();
    shared.apply_fault(&Fault::HttpError {
        status: 503,
        count: 2,
        path_prefix: Some("/trade-api/v2/portfolio".into()),
    });
    let (s, e) = v.get(0, "/portfolio/balance").await;
    assert_eq!(s, 503);
    assert_eq!(err_code(&e), "service_unavailable");
    let (s, _) = v.call(None, "GET", "/exchange/status", None).await;
    assert_eq!(s, 200, "faults only hit their path prefix");
    let (s, _) = v.get(0, "/portfolio/balance").await;
    assert_eq!(s, 503);
    let (s, _) = v.get(0, "/portfolio/balance").await;
    assert_eq!(s, 200);

    // Through the admin endpoint: a 429 and an order rejection.
    let admin = format!("{}/faults", v.running.info.admin_url);
    let r = v
        .http
        .post(&admin)
        .json(&json!({"kind": "http_error", "status": 429}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "admin needs its token");
    for f in [
        json!({"kind": "http_error", "status": 429}),
        json!({"kind": "reject_orders", "count": 1}),
    ] {
        let r = v
            .http
            .post(&admin)
            .header("X-Admin-Token", &v.running.info.admin_token)
            .json(&f)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let (s, body) = v.get(0, "/portfolio/balance").await;
    assert_eq!((s, body), (429, json!({"error": "too many requests"})));
    let (s, e) = legacy_buy(&v, 0, LIN, 5, 1, json!({})).await;
    assert_eq!(s, 503);
    assert_eq!(err_code(&e), "service_unavailable");
    let (s, _) = legacy_buy(&v, 0, LIN, 5, 1, json!({})).await;
    assert_eq!(s, 201);

    // A trading pause refuses new orders but still allows cancels; it lifts by itself.
    let (_, b) = legacy_buy(&v, 0, LIN, 6, 1, json!({"client_order_id": "keep"})).await;
    let id = b["order"]["order_id"].as_str().unwrap().to_string();
    shared.apply_fault(&Fault::PauseTrading { duration_ms: 400 });
    let (_, st) = v.call(None, "GET", "/exchange/status", None).await;
    assert_eq!(st["trading_active"], false);
    let (s, e) = legacy_buy(&v, 0, LIN, 5, 1, json!({})).await;
    assert_eq!(s, 400);
    assert_eq!(err_code(&e), "trading_paused");
    let (s, _) = v.delete(0, &format!("/portfolio/orders/{id}"), None).await;
    assert_eq!(s, 200);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let (_, st) = v.call(None, "GET", "/exchange/status", None).await;
    assert_eq!(st["trading_active"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_and_expiry() {
    let v = start_with(ServerConfig {
        accounts: 1,
        tls: false,
        ..ServerConfig::default()
    })
    .await;
    assert!(v.base().starts_with("http://"));
    assert!(v.running.info.ca_file.is_none());
    let now_s = (Clock::wall_ms() / 1000) as u64;
    let (s, b) = v
        .post(0, "/portfolio/events/orders", json!({"ticker": LIN, "side": "bid", "price": "0.20", "count": "1.00", "time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross", "expiration_time": now_s + 2}))
        .await;
    assert_eq!(s, 201, "{b}");
    let id = b["order_id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let (_, o) = v.get(0, &format!("/portfolio/orders/{id}")).await;
    assert_eq!(o["order"]["status"], "canceled");
    assert_eq!(o["order"]["last_update_reason"], "ExpiryCancel");
    // An expiry in the past is refused.
    let (s, _) = v
        .post(0, "/portfolio/events/orders", json!({"ticker": LIN, "side": "bid", "price": "0.20", "count": "1.00", "time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross", "expiration_time": now_s - 10}))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulation_driver_sleeps_until_something_is_due() {
    // A bare venue has nothing scheduled: the driver wakes only at its longest sleep, where a
    // fixed 1 ms tick would have stepped about a thousand times in this second.
    let v = start_with(ServerConfig {
        accounts: 1,
        ..ServerConfig::default()
    })
    .await;
    let steps = || v.running.shared.counters.driver_steps.load(std::sync::atomic::Ordering::Relaxed);
    let before = steps();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let taken = steps() - before;
    assert!((1..=100).contains(&taken), "{taken} driver steps in 1 s with nothing scheduled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_is_enforced() {
    let v = start_with(ServerConfig {
        accounts: 1,
        account_cash: kalshi_proto::units::Money::from_cents(1_000),
        ..ServerConfig::default()
    })
    .await;
    // $10: 20 contracts at 0.40 need $8 plus fees; 30 would need $12.
    let (s, _) = legacy_buy(&v, 0, LIN, 40, 20, json!({})).await;
    assert_eq!(s, 201);
    let (s, e) = legacy_buy(&v, 0, LIN, 40, 30, json!({})).await;
    assert_eq!(s, 400);
    assert_eq!(err_code(&e), "insufficient_balance");
}
