//! Bootstrap and resync models: a market (ticker, status, close time, its tick ladder and
//! fees), the markets list, our orders, positions, fills and account limits.
//!
//! These allocate (they run at start-up and after a reconnect) and report errors that name the
//! field, unlike the order replies on the hot path. Both API eras are read, the fixed-point
//! fields winning.
//!
//! Fills carry a [`FillKey`] (the exchange's trade id and our order id) so the io thread can
//! count a fill seen on the WebSocket and again in a REST backfill exactly once; the WebSocket
//! side gets the same key from `Decoder::last_fill_trade`.

use crate::connector::kalshi::interner::Interner;
use crate::connector::kalshi::numbers::rfc3339_ms;
use crate::connector::kalshi::rest::reply_fields::text;
use crate::connector::pacing::Budget;
use crate::event::{ClientRef, Event, EventBody, MarketIdx, Money, OrderId, OrderStatus, Price, Qty, Side, Stamp, TradeId};
use crate::ladder::{FeeRates, MarketLadder, RangeText};
use anyhow::{anyhow, bail, Context};
use kalshi_proto::ladder::LevelStructure;
use kalshi_proto::units::parse_scaled;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A fill's identity: the exchange's trade and our order. A trade matches one taker with one
/// maker, so with self-trade prevention on, each (trade, order) is one fill of ours. The same
/// key comes from the WebSocket (`Decoder::last_fill_trade` and the event's order) and from
/// REST backfill ([`parse_fills`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FillKey {
    /// The trade id's 128 bits (a UUID; see [`OrderId::parse`]).
    pub trade: u128,
    pub order: OrderId,
}

/// A market's lifecycle state, in both eras' words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarketState {
    /// `initialized` / `unopened`
    Initialized,
    /// `active` / `open`
    Active,
    /// `inactive` / `paused`
    Inactive,
    Closed,
    /// `determined`, `disputed`, `amended`
    Determined,
    /// `settled` / `finalized`
    Settled,
    Unknown,
}

impl MarketState {
    pub fn parse(s: &str) -> MarketState {
        match s {
            "initialized" | "unopened" => MarketState::Initialized,
            "active" | "open" => MarketState::Active,
            "inactive" | "paused" => MarketState::Inactive,
            "closed" => MarketState::Closed,
            "determined" | "disputed" | "amended" => MarketState::Determined,
            "settled" | "finalized" => MarketState::Settled,
            _ => MarketState::Unknown,
        }
    }

    pub fn is_tradable(self) -> bool {
        self == MarketState::Active
    }
}

/// What kmm needs to know about a market before quoting it.
#[derive(Clone, Debug)]
pub struct MarketInfo {
    pub ticker: String,
    pub state: MarketState,
    /// The status as sent.
    pub status: String,
    /// Unix ms of `close_time`, when present and readable.
    pub close_time_ms: Option<u64>,
    pub price_level_structure: String,
    /// From `fee_type`/`fee_multiplier` when the object carries them (series and some
    /// venues do; Kalshi's market object does not), else the caller's default.
    pub fees: FeeRates,
    pub ladder: MarketLadder,
}

#[derive(Deserialize)]
struct RawRange<'a> {
    #[serde(borrow)]
    start: Cow<'a, str>,
    #[serde(borrow)]
    end: Cow<'a, str>,
    #[serde(borrow)]
    step: Cow<'a, str>,
}

#[derive(Deserialize)]
struct RawMarket<'a> {
    #[serde(borrow)]
    ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    close_time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    price_level_structure: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    price_ranges: Option<Vec<RawRange<'a>>>,
    #[serde(borrow, default)]
    tick_size: Option<&'a RawValue>,
    #[serde(borrow, default)]
    fee_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    fee_multiplier: Option<&'a RawValue>,
}

fn market_info(m: RawMarket<'_>, default_fees: FeeRates) -> anyhow::Result<MarketInfo> {
    let ticker = m.ticker.ok_or_else(|| anyhow!("market has no ticker"))?.into_owned();
    let status = m.status.map(Cow::into_owned).unwrap_or_default();
    let multiplier_e4 = match m.fee_multiplier.map(|r| text(r.get().as_bytes())) {
        None | Some(b"null") => 10_000,
        Some(t) => parse_scaled(t, 4)
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| anyhow!("market {ticker}: fee_multiplier {:?} is not a decimal", String::from_utf8_lossy(t)))?,
    };
    let fees = match m.fee_type.as_deref() {
        Some("quadratic") => FeeRates::quadratic(multiplier_e4),
        Some("quadratic_with_maker_fees") => FeeRates::quadratic_with_maker_fees(multiplier_e4),
        _ => default_fees,
    };
    let structure = m.price_level_structure.map(Cow::into_owned).unwrap_or_default();
    let ladder = match m.price_ranges.as_deref() {
        Some(r) if !r.is_empty() => {
            let texts: Vec<RangeText<'_>> = r
                .iter()
                .map(|r| RangeText {
                    start: &r.start,
                    end: &r.end,
                    step: &r.step,
                })
                .collect();
            MarketLadder::from_price_ranges(&texts, fees).map_err(|e| anyhow!("market {ticker}: {e}"))?
        }
        // Older objects: the named structure, or the one-cent tick of `tick_size` days.
        _ => match LevelStructure::parse(&structure) {
            Some(s) => MarketLadder::from_structure(s, fees),
            None if m.tick_size.is_some_and(|t| text(t.get().as_bytes()) == b"1") => {
                MarketLadder::from_structure(LevelStructure::LinearCent, fees)
            }
            None => bail!("market {ticker}: no price_ranges and price_level_structure {structure:?} is not one kmm knows"),
        },
    };
    Ok(MarketInfo {
        close_time_ms: m.close_time.as_deref().and_then(|t| rfc3339_ms(t.as_bytes())),
        state: MarketState::parse(&status),
        status,
        price_level_structure: structure,
        fees,
        ladder,
        ticker,
    })
}

/// `GET /markets/{ticker}`: `{"market":{...}}` (or the bare object).
pub fn parse_market(body: &[u8], default_fees: FeeRates) -> anyhow::Result<MarketInfo> {
    #[derive(Deserialize)]
    struct Wrapped<'a> {
        #[serde(borrow)]
        market: RawMarket<'a>,
    }
    let raw = match serde_json::from_slice::<Wrapped<'_>>(body) {
        Ok(w) => w.market,
        Err(_) => serde_json::from_slice::<RawMarket<'_>>(body).context("GET /markets/{ticker}: not a market object")?,
    };
    market_info(raw, default_fees)
}

/// One page of `GET /markets`.
#[derive(Debug)]
pub struct MarketsPage {
    pub markets: Vec<MarketInfo>,
    /// Markets whose objects kmm cannot trade on (ticker, why).
    pub rejected: Vec<(String, String)>,
    /// The next page's cursor; `None` on the last page.
    pub cursor: Option<String>,
}

pub fn parse_markets(body: &[u8], default_fees: FeeRates) -> anyhow::Result<MarketsPage> {
    #[derive(Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        markets: Vec<RawMarket<'a>>,
        #[serde(borrow, default)]
        cursor: Option<Cow<'a, str>>,
    }
    let page: Page<'_> = serde_json::from_slice(body).context("GET /markets: not a markets page")?;
    let mut out = MarketsPage {
        markets: Vec::with_capacity(page.markets.len()),
        rejected: Vec::new(),
        cursor: cursor(page.cursor),
    };
    for m in page.markets {
        let ticker = m.ticker.as_deref().unwrap_or("").to_string();
        match market_info(m, default_fees) {
            Ok(info) => out.markets.push(info),
            Err(e) => out.rejected.push((ticker, e.to_string())),
        }
    }
    Ok(out)
}

fn cursor(c: Option<Cow<'_, str>>) -> Option<String> {
    c.filter(|c| !c.is_empty()).map(Cow::into_owned)
}

/// A list item's market and ticker: `ticker`, or the older `market_ticker`. `Ok(None)`
/// (counted in `info`) when the market is not one this run trades; an error when the item
/// names none.
fn item_market<'t>(
    ticker: Option<&'t str>,
    market_ticker: Option<&'t str>,
    interner: &Interner,
    info: &mut PageInfo,
    list: &str,
    i: usize,
) -> anyhow::Result<Option<(MarketIdx, &'t str)>> {
    let ticker = ticker.or(market_ticker).ok_or_else(|| anyhow!("{list}[{i}]: no ticker"))?;
    let Some(market) = interner.get(ticker.as_bytes()) else {
        info.unknown_market += 1;
        return Ok(None);
    };
    Ok(Some((market, ticker)))
}

/// What a list page held, beside the events it produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageInfo {
    /// The next page's cursor; `None` on the last page.
    pub cursor: Option<String>,
    pub events: usize,
    /// Items in markets that are not interned (not traded by this run): skipped.
    pub unknown_market: usize,
}

/// Scalars of list items: raw JSON text, so decimals are read exactly.
type Raw<'a> = Option<&'a RawValue>;

fn raw_text<'a>(r: Raw<'a>) -> Option<&'a [u8]> {
    r.map(|r| text(r.get().as_bytes())).filter(|t| *t != b"null")
}

fn qty_of(fp: Raw<'_>, whole: Raw<'_>, what: &str) -> anyhow::Result<Option<Qty>> {
    match raw_text(fp).or(raw_text(whole)) {
        None => Ok(None),
        Some(t) => parse_scaled(t, 2)
            .map(|v| Some(Qty(v)))
            .map_err(|e| anyhow!("{what} {:?}: {e}", String::from_utf8_lossy(t))),
    }
}

/// `*_dollars` (1e-4 $ price) else Era-A integer cents.
fn price_of(dollars: Raw<'_>, cents: Raw<'_>, what: &str) -> anyhow::Result<Option<Price>> {
    let (t, places) = match (raw_text(dollars), raw_text(cents)) {
        (Some(t), _) => (t, 4),
        (None, Some(t)) => (t, 2),
        (None, None) => return Ok(None),
    };
    match parse_scaled(t, places) {
        Ok(v) if (0..=10_000).contains(&v) => Ok(Some(Price(v as u32))),
        _ => bail!("{what} {:?} is not a price", String::from_utf8_lossy(t)),
    }
}

/// `*_dollars` (up to 6 places) else Era-A integer cents.
fn money_of(dollars: Raw<'_>, cents: Raw<'_>, what: &str) -> anyhow::Result<Money> {
    let (t, places) = match (raw_text(dollars), raw_text(cents)) {
        (Some(t), _) => (t, 6),
        (None, Some(t)) => (t, 4),
        (None, None) => return Ok(Money(0)),
    };
    parse_scaled(t, places)
        .map(Money)
        .map_err(|e| anyhow!("{what} {:?}: {e}", String::from_utf8_lossy(t)))
}

fn side_of(book: Option<&str>, outcome: Option<&str>, contract: Option<&str>, action: Option<&str>) -> anyhow::Result<Side> {
    match (book, outcome) {
        (Some("bid"), _) => return Ok(Side::Bid),
        (Some("ask"), _) => return Ok(Side::Ask),
        (Some(b), _) => bail!("book_side {b:?}"),
        (None, Some("yes")) => return Ok(Side::Bid),
        (None, Some("no")) => return Ok(Side::Ask),
        (None, Some(o)) => bail!("outcome_side {o:?}"),
        (None, None) => {}
    }
    let yes = match contract {
        Some("yes") => true,
        Some("no") => false,
        other => bail!("no book_side/outcome_side and side {other:?}"),
    };
    let buy = match action {
        Some("buy") => true,
        Some("sell" | "sell_partial" | "sell_to_close") => false,
        other => bail!("action {other:?}"),
    };
    // Buying YES or selling NO bids on the YES book.
    Ok(if yes == buy { Side::Bid } else { Side::Ask })
}

fn uuid(text: Option<&str>) -> Option<u128> {
    OrderId::parse(text?.as_bytes()).map(|o| o.0)
}

fn ts_of(ts_ms: Raw<'_>, time: Option<&str>, ts_s: Raw<'_>) -> u64 {
    if let Some(v) = raw_text(ts_ms).and_then(|t| parse_scaled(t, 0).ok()) {
        return v.max(0) as u64;
    }
    if let Some(v) = time.and_then(|t| rfc3339_ms(t.as_bytes())) {
        return v;
    }
    raw_text(ts_s).and_then(|t| parse_scaled(t, 3).ok()).map_or(0, |v| v.max(0) as u64)
}

#[derive(Deserialize)]
struct RawOrder<'a> {
    #[serde(borrow, default)]
    order_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client_order_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    market_ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    outcome_side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    book_side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    yes_price_dollars: Raw<'a>,
    #[serde(borrow, default)]
    yes_price: Raw<'a>,
    #[serde(borrow, default)]
    fill_count_fp: Raw<'a>,
    #[serde(borrow, default)]
    fill_count: Raw<'a>,
    #[serde(borrow, default)]
    remaining_count_fp: Raw<'a>,
    #[serde(borrow, default)]
    remaining_count: Raw<'a>,
    #[serde(borrow, default)]
    last_updated_ts_ms: Raw<'a>,
    #[serde(borrow, default)]
    last_update_time: Option<Cow<'a, str>>,
}

/// `GET /portfolio/orders` (or `/portfolio/events/orders`): each of our orders in an interned
/// market as an `OrderUpdate` (kmm's client ids parsed to `ClientRef`, others `ClientRef(0)`).
pub fn parse_orders(body: &[u8], interner: &Interner, stamp: Stamp, sink: &mut impl FnMut(Event)) -> anyhow::Result<PageInfo> {
    #[derive(Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        orders: Vec<RawOrder<'a>>,
        #[serde(borrow, default)]
        cursor: Option<Cow<'a, str>>,
    }
    let page: Page<'_> = serde_json::from_slice(body).context("GET /portfolio/orders: not an orders page")?;
    let mut info = PageInfo {
        cursor: cursor(page.cursor),
        ..PageInfo::default()
    };
    for (i, o) in page.orders.iter().enumerate() {
        let Some((market, ticker)) = item_market(o.ticker.as_deref(), o.market_ticker.as_deref(), interner, &mut info, "orders", i)? else {
            continue;
        };
        let ev = (|| -> anyhow::Result<Event> {
            let order = o
                .order_id
                .as_deref()
                .and_then(|t| OrderId::parse(t.as_bytes()))
                .ok_or_else(|| anyhow!("order_id"))?;
            let status = match o.status.as_deref() {
                Some("resting" | "pending") => OrderStatus::Resting,
                Some("canceled" | "cancelled") => OrderStatus::Canceled,
                Some("executed") => OrderStatus::Executed,
                other => bail!("status {other:?}"),
            };
            let mut st = stamp;
            st.exchange_ts_ms = ts_of(o.last_updated_ts_ms, o.last_update_time.as_deref(), None);
            Ok(Event {
                stamp: st,
                body: EventBody::OrderUpdate {
                    market,
                    client: o
                        .client_order_id
                        .as_deref()
                        .and_then(|c| ClientRef::parse(c.as_bytes()))
                        .unwrap_or_default(),
                    order,
                    status,
                    side: side_of(
                        o.book_side.as_deref(),
                        o.outcome_side.as_deref(),
                        o.side.as_deref(),
                        o.action.as_deref(),
                    )?,
                    price: price_of(o.yes_price_dollars, o.yes_price, "yes_price")?.ok_or_else(|| anyhow!("no yes price"))?,
                    remaining: qty_of(o.remaining_count_fp, o.remaining_count, "remaining_count")?
                        .ok_or_else(|| anyhow!("no remaining_count"))?,
                    filled: qty_of(o.fill_count_fp, o.fill_count, "fill_count")?.unwrap_or(Qty(0)),
                },
            })
        })()
        .with_context(|| format!("GET /portfolio/orders: orders[{i}] ({ticker})"))?;
        sink(ev);
        info.events += 1;
    }
    Ok(info)
}

#[derive(Deserialize)]
struct RawPosition<'a> {
    #[serde(borrow, default)]
    ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    market_ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    position_fp: Raw<'a>,
    #[serde(borrow, default)]
    position: Raw<'a>,
    #[serde(borrow, default)]
    realized_pnl_dollars: Raw<'a>,
    #[serde(borrow, default)]
    realized_pnl: Raw<'a>,
    #[serde(borrow, default)]
    fees_paid_dollars: Raw<'a>,
    #[serde(borrow, default)]
    fees_paid: Raw<'a>,
}

/// `GET /portfolio/positions`: each `market_positions` entry in an interned market as a
/// `Position` event. Era-A REST money is in cents (unlike the WebSocket's centi-cents).
pub fn parse_positions(body: &[u8], interner: &Interner, stamp: Stamp, sink: &mut impl FnMut(Event)) -> anyhow::Result<PageInfo> {
    #[derive(Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        market_positions: Vec<RawPosition<'a>>,
        #[serde(borrow, default)]
        cursor: Option<Cow<'a, str>>,
    }
    let page: Page<'_> = serde_json::from_slice(body).context("GET /portfolio/positions: not a positions page")?;
    let mut info = PageInfo {
        cursor: cursor(page.cursor),
        ..PageInfo::default()
    };
    for (i, p) in page.market_positions.iter().enumerate() {
        let Some((market, ticker)) = item_market(
            p.ticker.as_deref(),
            p.market_ticker.as_deref(),
            interner,
            &mut info,
            "market_positions",
            i,
        )?
        else {
            continue;
        };
        let ev = (|| -> anyhow::Result<Event> {
            Ok(Event {
                stamp,
                body: EventBody::Position {
                    market,
                    position: qty_of(p.position_fp, p.position, "position")?.ok_or_else(|| anyhow!("no position"))?,
                    realized_pnl: money_of(p.realized_pnl_dollars, p.realized_pnl, "realized_pnl")?,
                    fees_paid: money_of(p.fees_paid_dollars, p.fees_paid, "fees_paid")?,
                },
            })
        })()
        .with_context(|| format!("GET /portfolio/positions: market_positions[{i}] ({ticker})"))?;
        sink(ev);
        info.events += 1;
    }
    Ok(info)
}

#[derive(Deserialize)]
struct RawFill<'a> {
    #[serde(borrow, default)]
    trade_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    fill_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    order_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client_order_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    market_ticker: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    outcome_side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    purchased_side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    book_side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    yes_price_dollars: Raw<'a>,
    /// The 2026-03 name of `yes_price_dollars`, removed 2026-04.
    #[serde(borrow, default)]
    yes_price_fixed: Raw<'a>,
    #[serde(borrow, default)]
    yes_price: Raw<'a>,
    #[serde(borrow, default)]
    count_fp: Raw<'a>,
    #[serde(borrow, default)]
    count: Raw<'a>,
    #[serde(default)]
    is_taker: Option<bool>,
    #[serde(borrow, default)]
    fee_cost: Raw<'a>,
    #[serde(borrow, default)]
    post_position_fp: Raw<'a>,
    #[serde(borrow, default)]
    post_position: Raw<'a>,
    #[serde(borrow, default)]
    ts_ms: Raw<'a>,
    #[serde(borrow, default)]
    created_time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ts: Raw<'a>,
}

/// `GET /portfolio/fills`: each of our fills in an interned market as a `Fill` event with its
/// [`FillKey`], in the order listed (Kalshi lists newest first: the caller orders them).
/// REST fills carry no post-fill position: `post_position` is 0 unless the object has one
/// (the `Position` events of the same resync carry the truth).
pub fn parse_fills(body: &[u8], interner: &Interner, stamp: Stamp, sink: &mut impl FnMut(FillKey, Event)) -> anyhow::Result<PageInfo> {
    #[derive(Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        fills: Vec<RawFill<'a>>,
        #[serde(borrow, default)]
        cursor: Option<Cow<'a, str>>,
    }
    let page: Page<'_> = serde_json::from_slice(body).context("GET /portfolio/fills: not a fills page")?;
    let mut info = PageInfo {
        cursor: cursor(page.cursor),
        ..PageInfo::default()
    };
    for (i, f) in page.fills.iter().enumerate() {
        let Some((market, ticker)) = item_market(f.ticker.as_deref(), f.market_ticker.as_deref(), interner, &mut info, "fills", i)? else {
            continue;
        };
        let (key, ev) = (|| -> anyhow::Result<(FillKey, Event)> {
            let order = f
                .order_id
                .as_deref()
                .and_then(|t| OrderId::parse(t.as_bytes()))
                .ok_or_else(|| anyhow!("order_id"))?;
            let trade = uuid(f.trade_id.as_deref())
                .or_else(|| uuid(f.fill_id.as_deref()))
                .ok_or_else(|| anyhow!("no trade_id or fill_id UUID"))?;
            let yes_price =
                price_of(f.yes_price_dollars.or(f.yes_price_fixed), f.yes_price, "yes_price")?.ok_or_else(|| anyhow!("no yes price"))?;
            let mut st = stamp;
            st.exchange_ts_ms = ts_of(f.ts_ms, f.created_time.as_deref(), f.ts);
            let ev = Event {
                stamp: st,
                body: EventBody::Fill {
                    market,
                    client: f
                        .client_order_id
                        .as_deref()
                        .and_then(|c| ClientRef::parse(c.as_bytes()))
                        .unwrap_or_default(),
                    order,
                    side: side_of(
                        f.book_side.as_deref(),
                        f.outcome_side.as_deref().or(f.purchased_side.as_deref()),
                        f.side.as_deref(),
                        f.action.as_deref(),
                    )?,
                    yes_price,
                    qty: qty_of(f.count_fp, f.count, "count")?.ok_or_else(|| anyhow!("no count"))?,
                    is_taker: f.is_taker.unwrap_or(false),
                    fee: money_of(f.fee_cost, None, "fee_cost")?,
                    post_position: qty_of(f.post_position_fp, f.post_position, "post_position")?.unwrap_or(Qty(0)),
                    trade: TradeId::from_u128(trade),
                },
            };
            Ok((FillKey { trade, order }, ev))
        })()
        .with_context(|| format!("GET /portfolio/fills: fills[{i}] ({ticker})"))?;
        sink(key, ev);
        info.events += 1;
    }
    Ok(info)
}

/// `GET /account/limits`: (read, write) budgets for [`crate::connector::pacing::Pacer::new`]; `None` is
/// unlimited (the local exchange's `unlimited` tier sends `null`). Falls back to the older
/// flat `read_limit`/`write_limit` (requests per second, at the default 10 tokens each).
pub fn parse_account_limits(body: &[u8]) -> anyhow::Result<(Option<Budget>, Option<Budget>)> {
    #[derive(Deserialize)]
    struct Bucket {
        refill_rate: Option<f64>,
        bucket_capacity: Option<f64>,
    }
    #[derive(Deserialize)]
    struct Limits {
        read: Option<Bucket>,
        write: Option<Bucket>,
        read_limit: Option<f64>,
        write_limit: Option<f64>,
    }
    let l: Limits = serde_json::from_slice(body).context("GET /account/limits: not a limits object")?;
    let budget = |b: Option<Bucket>, flat: Option<f64>| -> Option<Budget> {
        let (rate, cap) = match b {
            Some(b) => (b.refill_rate?, b.bucket_capacity?),
            None => {
                let per_s = flat? * f64::from(crate::connector::pacing::DEFAULT_COST);
                (per_s, per_s)
            }
        };
        (rate.is_finite() && cap.is_finite() && rate >= 0.0 && cap >= 0.0).then(|| Budget {
            rate_per_s: rate.min(f64::from(u32::MAX)) as u32,
            capacity: cap.min(f64::from(u32::MAX)) as u32,
        })
    };
    Ok((budget(l.read, l.read_limit), budget(l.write, l.write_limit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_limits() {
        let (r, w) = parse_account_limits(
            br#"{"usage_tier":"basic","read":{"refill_rate":200,"bucket_capacity":400},"write":{"refill_rate":100,"bucket_capacity":100},"grants":[]}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Some(Budget {
                rate_per_s: 200,
                capacity: 400
            })
        );
        assert_eq!(
            w,
            Some(Budget {
                rate_per_s: 100,
                capacity: 100
            })
        );
        let (r, w) = parse_account_limits(
            br#"{"read":{"refill_rate":null,"bucket_capacity":null},"write":{"refill_rate":null,"bucket_capacity":null}}"#,
        )
        .unwrap();
        assert_eq!((r, w), (None, None));
        let (_, w) = parse_account_limits(br#"{"read_limit":20,"write_limit":10}"#).unwrap();
        assert_eq!(
            w,
            Some(Budget {
                rate_per_s: 100,
                capacity: 100
            })
        );
    }
}
