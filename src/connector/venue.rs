//! Where kmm trades and the REST calls made around a session (never on the hot path): market
//! metadata and ladders at start-up, open orders, positions and fills for resync and for the
//! final check, cancel-everything at shutdown.
//!
//! Every reply is parsed from the current fixed-point fields first (`*_dollars`, `*_fp`), with
//! the Era-A integers as a fallback, without floats.

use super::kalshi::rest::blocking::{BlockingClient, BlockingResponse};
use crate::event::{ClientRef, Money, OrderId, Price, Qty, Side};
use crate::ladder::{FeeRates, MarketLadder, RangeText};
use anyhow::{anyhow, bail, Context};
use kalshi_proto::auth::Signer;
use kalshi_proto::ratelimit::Tier;
use serde_json::Value;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A private key in PEM form. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct SecretPem(String);

impl SecretPem {
    pub fn new(pem: String) -> SecretPem {
        SecretPem(pem)
    }

    /// The PEM text, for loading the signer only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything needed to reach a Kalshi-protocol venue as one account.
#[derive(Clone, Debug)]
pub struct VenueConfig {
    /// e.g. `https://127.0.0.1:41987/trade-api/v2`
    pub rest_url: String,
    /// e.g. `wss://127.0.0.1:41987/trade-api/ws/v2`
    pub ws_url: String,
    /// Trust only this CA (a local exchange's); None: the webpki roots (real Kalshi).
    pub ca_pem: Option<String>,
    pub key_id: String,
    /// Secret: redacted in `Debug`, never logged.
    pub key_pem: SecretPem,
    /// The account's rate-limit tier (for pacing).
    pub tier: Tier,
    /// The oracle feed a local exchange publishes beside it (its info file names it).
    pub oracle_ws_url: Option<String>,
}

impl VenueConfig {
    /// Explicit endpoints and key (any Kalshi-protocol venue). The key is checked here, so a
    /// bad key file fails at start-up with its reason rather than at the first order.
    pub fn new(rest_url: String, ws_url: String, ca_pem: Option<String>, key_id: String, key_pem: String) -> anyhow::Result<VenueConfig> {
        let venue = VenueConfig {
            oracle_ws_url: None,
            rest_url,
            ws_url,
            ca_pem,
            key_id,
            key_pem: SecretPem(key_pem),
            tier: Tier::Basic,
        };
        venue.signer()?;
        Ok(venue)
    }

    /// From a local exchange's info file (`--info-file`), as keyed account `account_index`.
    /// The tier is not in the info file: Advanced, the local exchange's default, unless changed.
    pub fn from_info_file(path: &Path, account_index: usize) -> anyhow::Result<VenueConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the info file {}", path.display()))?;
        let info: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let field = |name: &str| -> anyhow::Result<String> {
            info.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| anyhow!("info file {}: missing string field {name:?}", path.display()))
        };
        let accounts = info
            .get("accounts")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("info file {}: missing \"accounts\"", path.display()))?;
        let account = accounts.get(account_index).ok_or_else(|| {
            anyhow!(
                "info file {} has {} accounts; account index {account_index} does not exist",
                path.display(),
                accounts.len()
            )
        })?;
        let key_id = account
            .get("key_id")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("info file {}: account {account_index} has no key_id", path.display()))?
            .to_string();
        let key_path = account
            .get("private_key_path")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("info file {}: account {account_index} has no private_key_path", path.display()))?;
        let key_pem = std::fs::read_to_string(key_path).with_context(|| format!("reading the key file {key_path}"))?;
        let ca_pem = match info.get("ca_file").and_then(Value::as_str) {
            Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("reading the CA file {p}"))?),
            None => None,
        };
        Ok(VenueConfig {
            rest_url: field("rest_url")?,
            ws_url: field("ws_url")?,
            oracle_ws_url: info.get("oracle_ws_url").and_then(Value::as_str).map(str::to_string),
            ca_pem,
            key_id,
            key_pem: SecretPem(key_pem),
            // Older info files do not say; Advanced is the exchange's own default.
            tier: info
                .get("rate_limit_tier")
                .and_then(Value::as_str)
                .and_then(Tier::parse)
                .unwrap_or(Tier::Advanced),
        })
    }

    /// The request signer (RSA PKCS#1/PKCS#8 or Ed25519, detected from the PEM).
    pub fn signer(&self) -> anyhow::Result<Signer> {
        Signer::from_pem(self.key_pem.expose()).context("loading the account's private key")
    }

    /// A blocking REST client for bootstrap calls.
    pub fn blocking_client(&self) -> anyhow::Result<BlockingClient> {
        BlockingClient::new(&self.rest_url, self.ca_pem.as_deref(), &self.key_id, Arc::new(self.signer()?))
    }
}

// ------------------------------------------------------------------------------------ parsing

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// A price from `*_dollars` ("0.5600") or, failing that, integer cents.
fn price_field(v: &Value, dollars: &str, cents: &str) -> Option<Price> {
    if let Some(p) = str_field(v, dollars).and_then(|s| Price::parse(s).ok()) {
        return Some(p);
    }
    v.get(cents).and_then(Value::as_i64).and_then(Price::from_cents)
}

/// A count from `*_fp` ("10.00"), a fixed-point string in the plain field, or whole contracts.
fn qty_field(v: &Value, fp: &str, whole: &str) -> Option<Qty> {
    if let Some(q) = str_field(v, fp).and_then(|s| Qty::parse(s).ok()) {
        return Some(q);
    }
    match v.get(whole)? {
        Value::String(s) => Qty::parse(s).ok(),
        Value::Number(n) => n.as_i64().and_then(Qty::checked_from_contracts),
        _ => None,
    }
}

/// Money from `*_dollars` or integer cents.
fn money_field(v: &Value, dollars: &str, cents: &str) -> Option<Money> {
    if let Some(m) = str_field(v, dollars).and_then(|s| Money::from_dollars_str(s).ok()) {
        return Some(m);
    }
    match v.get(cents)? {
        Value::String(s) => Money::from_dollars_str(s).ok(),
        Value::Number(n) => n.as_i64().and_then(Money::checked_from_cents),
        _ => None,
    }
}

/// The YES-book side of an order or fill: `book_side` when present, else from side + action.
fn book_side(v: &Value) -> Option<Side> {
    match str_field(v, "book_side") {
        Some("bid") => return Some(Side::Bid),
        Some("ask") => return Some(Side::Ask),
        _ => {}
    }
    let yes = match str_field(v, "side")? {
        "yes" => true,
        "no" => false,
        "bid" => return Some(Side::Bid),
        "ask" => return Some(Side::Ask),
        _ => return None,
    };
    let buy = str_field(v, "action").is_none_or(|a| a == "buy");
    Some(if yes == buy { Side::Bid } else { Side::Ask })
}

/// Follows `cursor` through a list endpoint, collecting `key` arrays.
fn get_paged(client: &mut BlockingClient, path: &str, key: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    let sep = if path.contains('?') { '&' } else { '?' };
    for _ in 0..10_000 {
        let url = if cursor.is_empty() {
            format!("{path}{sep}limit=1000")
        } else {
            format!("{path}{sep}limit=1000&cursor={cursor}")
        };
        let v = client.get_json(&url)?;
        if let Some(items) = v.get(key).and_then(Value::as_array) {
            out.extend(items.iter().cloned());
        }
        match str_field(&v, "cursor") {
            Some(c) if !c.is_empty() => cursor = c.to_string(),
            _ => return Ok(out),
        }
    }
    bail!("GET {path}: more than 10000 pages")
}

// ------------------------------------------------------------------------------------ markets

/// One market's metadata as kmm uses it.
#[derive(Clone, Debug)]
pub struct MarketMeta {
    pub ticker: String,
    pub status: String,
    pub ladder: MarketLadder,
    /// `close_time` in Unix ms; 0 when the venue gives none.
    pub close_ts_ms: u64,
}

/// The series' fee schedule, when the venue publishes it (`GET /series/{s}`); `None` otherwise.
fn series_fees(client: &mut BlockingClient, series: &str) -> Option<FeeRates> {
    let r = client.get(&format!("/series/{series}")).ok()?;
    if !r.is_success() {
        return None;
    }
    let v = r.json().ok()?;
    let s = v.get("series")?;
    let multiplier_e4 = match s.get("fee_multiplier") {
        Some(Value::Number(n)) => {
            // An exact decimal via its text: "1", "0.5".
            let t = n.to_string();
            u32::try_from(kalshi_proto::units::parse_scaled(t.as_bytes(), 4).ok()?).ok()?
        }
        Some(Value::String(t)) => u32::try_from(kalshi_proto::units::parse_scaled(t.as_bytes(), 4).ok()?).ok()?,
        _ => 10_000,
    };
    match str_field(s, "fee_type")? {
        "quadratic" => Some(FeeRates::quadratic(multiplier_e4)),
        "quadratic_with_maker_fees" => Some(FeeRates::quadratic_with_maker_fees(multiplier_e4)),
        "flat" | "fee_free" | "none" => Some(FeeRates::NONE),
        _ => None,
    }
}

/// `GET /markets/{ticker}`: status and the tick ladder from `price_ranges`. Fees come from the
/// series when the venue publishes it, else `default_fees` (the local exchange has no series
/// endpoint).
pub fn fetch_market(client: &mut BlockingClient, ticker: &str, default_fees: FeeRates) -> anyhow::Result<MarketMeta> {
    let v = client.get_json(&format!("/markets/{ticker}"))?;
    let m = v
        .get("market")
        .ok_or_else(|| anyhow!("GET /markets/{ticker}: no \"market\" in the reply"))?;
    let ranges = m
        .get("price_ranges")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("market {ticker}: no price_ranges"))?;
    let mut texts = Vec::with_capacity(ranges.len());
    for r in ranges {
        texts.push(RangeText {
            start: str_field(r, "start").ok_or_else(|| anyhow!("market {ticker}: price_ranges entry without start"))?,
            end: str_field(r, "end").ok_or_else(|| anyhow!("market {ticker}: price_ranges entry without end"))?,
            step: str_field(r, "step").ok_or_else(|| anyhow!("market {ticker}: price_ranges entry without step"))?,
        });
    }
    let series = str_field(m, "series_ticker")
        .map(str::to_string)
        .or_else(|| str_field(m, "event_ticker").and_then(|e| e.split('-').next()).map(str::to_string));
    let fees = series.and_then(|s| series_fees(client, &s)).unwrap_or(default_fees);
    let ladder = MarketLadder::from_price_ranges(&texts, fees).map_err(|e| anyhow!("market {ticker}: {e}"))?;
    let close_ts_ms = str_field(m, "close_time")
        .and_then(|t| crate::connector::kalshi::numbers::rfc3339_ms(t.as_bytes()))
        .unwrap_or(0);
    Ok(MarketMeta {
        ticker: ticker.to_string(),
        status: str_field(m, "status").unwrap_or("").to_string(),
        ladder,
        close_ts_ms,
    })
}

/// Ladders for `tickers`, in the same order (the MarketIdx order).
pub fn fetch_ladders(client: &mut BlockingClient, tickers: &[String], default_fees: FeeRates) -> anyhow::Result<Vec<MarketLadder>> {
    tickers
        .iter()
        .map(|t| fetch_market(client, t, default_fees).map(|m| m.ladder))
        .collect()
}

/// Tickers of open markets (`status=open`), in the venue's order, at most `limit`.
pub fn list_open_markets(client: &mut BlockingClient, limit: usize) -> anyhow::Result<Vec<String>> {
    let v = client.get_json(&format!("/markets?status=open&limit={}", limit.clamp(1, 1000)))?;
    Ok(v.get("markets")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .filter_map(|m| str_field(m, "ticker").map(str::to_string))
                .take(limit)
                .collect()
        })
        .unwrap_or_default())
}

// ------------------------------------------------------------------------------------ portfolio

/// One market position at the exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangePosition {
    pub ticker: String,
    /// + YES, - NO.
    pub position: Qty,
    pub realized_pnl: Money,
    pub fees_paid: Money,
}

/// `GET /portfolio/positions`, every page.
pub fn fetch_positions(client: &mut BlockingClient) -> anyhow::Result<Vec<ExchangePosition>> {
    let items = get_paged(client, "/portfolio/positions", "market_positions")?;
    let mut out = Vec::with_capacity(items.len());
    for p in &items {
        let Some(ticker) = str_field(p, "ticker").or_else(|| str_field(p, "market_ticker")) else {
            continue;
        };
        out.push(ExchangePosition {
            ticker: ticker.to_string(),
            position: qty_field(p, "position_fp", "position").ok_or_else(|| anyhow!("position of {ticker}: no position"))?,
            realized_pnl: money_field(p, "realized_pnl_dollars", "realized_pnl").unwrap_or(Money::ZERO),
            fees_paid: money_field(p, "fees_paid_dollars", "fees_paid").unwrap_or(Money::ZERO),
        });
    }
    Ok(out)
}

/// One of our orders at the exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestOrder {
    pub order: OrderId,
    /// kmm's reference when the order was placed by kmm.
    pub client: Option<ClientRef>,
    pub ticker: String,
    pub side: Side,
    pub price: Price,
    pub remaining: Qty,
    pub filled: Qty,
    pub status: String,
}

fn parse_order(o: &Value) -> Option<RestOrder> {
    Some(RestOrder {
        order: OrderId::parse(str_field(o, "order_id")?.as_bytes())?,
        client: str_field(o, "client_order_id").and_then(|c| ClientRef::parse(c.as_bytes())),
        ticker: str_field(o, "ticker").or_else(|| str_field(o, "market_ticker"))?.to_string(),
        side: book_side(o)?,
        price: price_field(o, "yes_price_dollars", "yes_price")?,
        remaining: qty_field(o, "remaining_count_fp", "remaining_count")?,
        filled: qty_field(o, "fill_count_fp", "fill_count").unwrap_or(Qty::ZERO),
        status: str_field(o, "status").unwrap_or("").to_string(),
    })
}

/// `GET /portfolio/orders?status=resting`, every page.
pub fn fetch_resting_orders(client: &mut BlockingClient) -> anyhow::Result<Vec<RestOrder>> {
    let items = get_paged(client, "/portfolio/orders?status=resting", "orders")?;
    items
        .iter()
        .map(|o| parse_order(o).ok_or_else(|| anyhow!("unreadable order in GET /portfolio/orders: {o}")))
        .collect()
}

/// One of our fills at the exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestFill {
    pub trade_id: String,
    pub order: OrderId,
    pub client: Option<ClientRef>,
    pub ticker: String,
    pub side: Side,
    pub yes_price: Price,
    pub qty: Qty,
    pub is_taker: bool,
    pub fee: Money,
    /// Unix milliseconds (from `created_time`, else `ts` seconds).
    pub ts_ms: u64,
}

/// `GET /portfolio/fills?min_ts=` (Unix seconds), every page, oldest first.
pub fn fetch_fills(client: &mut BlockingClient, min_ts_s: u64) -> anyhow::Result<Vec<RestFill>> {
    let items = get_paged(client, &format!("/portfolio/fills?min_ts={min_ts_s}"), "fills")?;
    let mut out = Vec::with_capacity(items.len());
    for f in &items {
        let parsed = (|| {
            let ts_ms = str_field(f, "created_time")
                .and_then(|t| super::kalshi::numbers::rfc3339_ms(t.as_bytes()))
                .or_else(|| f.get("ts").and_then(Value::as_u64).map(|s| s * 1000))?;
            Some(RestFill {
                trade_id: str_field(f, "trade_id").or_else(|| str_field(f, "fill_id"))?.to_string(),
                order: OrderId::parse(str_field(f, "order_id")?.as_bytes())?,
                client: str_field(f, "client_order_id").and_then(|c| ClientRef::parse(c.as_bytes())),
                ticker: str_field(f, "ticker").or_else(|| str_field(f, "market_ticker"))?.to_string(),
                side: book_side(f)?,
                yes_price: price_field(f, "yes_price_dollars", "yes_price")
                    .or_else(|| str_field(f, "yes_price_fixed").and_then(|s| Price::parse(s).ok()))?,
                qty: qty_field(f, "count_fp", "count")?,
                is_taker: f.get("is_taker").and_then(Value::as_bool).unwrap_or(false),
                fee: money_field(f, "fee_cost", "fee_cost_cents").unwrap_or(Money::ZERO),
                ts_ms,
            })
        })();
        out.push(parsed.ok_or_else(|| anyhow!("unreadable fill in GET /portfolio/fills: {f}"))?);
    }
    out.sort_by_key(|f| f.ts_ms);
    Ok(out)
}

/// `DELETE /portfolio/events/orders` then polls the resting orders until none remain (or
/// `timeout`). Returns how many were resting before.
pub fn cancel_all_and_confirm(client: &mut BlockingClient, timeout: Duration) -> anyhow::Result<usize> {
    let before = fetch_resting_orders(client)?.len();
    let deadline = Instant::now() + timeout;
    loop {
        let r: BlockingResponse = client.request(super::kalshi::rest::request::Method::Delete, "/portfolio/events/orders", b"")?;
        if !r.is_success() && r.status != 429 {
            bail!("cancel all: HTTP {}: {:.300}", r.status, r.text());
        }
        let left = fetch_resting_orders(client)?;
        if left.is_empty() {
            return Ok(before);
        }
        if Instant::now() >= deadline {
            bail!(
                "{} orders still resting after cancel-all: {:?}",
                left.len(),
                left.iter().map(|o| o.order).collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug() {
        let v = VenueConfig {
            oracle_ws_url: None,
            rest_url: "https://x/trade-api/v2".into(),
            ws_url: "wss://x/trade-api/ws/v2".into(),
            ca_pem: None,
            key_id: "kid".into(),
            key_pem: SecretPem::new("-----BEGIN PRIVATE KEY-----\nSECRETBODY\n".into()),
            tier: Tier::Basic,
        };
        let text = format!("{v:?}");
        assert!(!text.contains("SECRETBODY"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn reads_orders_in_both_eras() {
        let b: Value = serde_json::json!({"order_id": "0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4", "client_order_id": "kmm-00000000000000ff",
            "ticker": "K", "side": "no", "action": "buy", "yes_price": 42, "remaining_count": 3, "status": "resting"});
        let o = parse_order(&b).unwrap();
        assert_eq!(
            (o.side, o.price, o.remaining, o.client),
            (Side::Ask, Price(4200), Qty(300), Some(ClientRef(255)))
        );
        let b: Value = serde_json::json!({"order_id": "0b6e2a9a-0a11-41c0-4f77-2a9a1c021af4", "ticker": "K", "book_side": "bid",
            "yes_price_dollars": "0.4210", "remaining_count_fp": "2.50", "fill_count_fp": "0.50"});
        let o = parse_order(&b).unwrap();
        assert_eq!(
            (o.side, o.price, o.remaining, o.filled, o.client),
            (Side::Bid, Price(4210), Qty(250), Qty(50), None)
        );
    }
}
