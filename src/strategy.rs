//! The strategy core: a pure state machine, `on_event(&Event, now_ms, out)`.
//!
//! It holds the books, the per-market model state, our orders and the risk state, and turns
//! each event into the commands it calls for. It reads no clock (time comes in as `now_ms`),
//! does no I/O and allocates nothing after construction, so the same code runs on the live
//! strategy thread, against the local exchange and in replay, and is benchmarked directly.
//!
//! A decision for one market runs the quoting modules in the seed's priority order. V1 has
//! one, Stoikov; V2's bailout (taker) and queue optimisation slot in ahead of it in
//! [`Strategy::decide`], each behind its own switch in [`Modules`], and need nothing from the
//! io side: they read the same events and write the same commands.

use crate::config::{Config, Modules};
use crate::event::{CommandBody, Event, EventBody, Lifecycle, MarketIdx, Money, Price, Qty, Side};
use crate::execution::{ClientIds, Desired, ExecParams, Orders};
use crate::ladder::{Fx, MarketLadder, Tick};
use crate::logger::LogBody;
use crate::orderbook::{Apply, Book, Books, Integrity};
use crate::risk::{KillReason, Risk, RiskLimits};
use crate::stoikov::{self, IntensityEstimator, Quote, QuoteInput, RiskTable, StoikovParams, VolEstimator};

/// What the strategy knows about a market before the first event.
#[derive(Clone, Debug)]
pub struct MarketSetup {
    pub ticker: String,
    pub ladder: MarketLadder,
    /// When the market closes, Unix ms; 0 when unknown (treated as far away).
    pub close_ts_ms: u64,
}

/// The strategy's share of the configuration.
#[derive(Clone, Debug)]
pub struct StrategyConfig {
    pub modules: Modules,
    pub stoikov: StoikovParams,
    pub quote_size: Qty,
    pub vol_prior_sigma2_per_s: f64,
    pub vol_alpha: f64,
    pub risk: RiskLimits,
    pub exec: ExecParams,
    /// Makes this session's client order ids unique across sessions.
    pub session_nonce: u64,
}

impl StrategyConfig {
    pub fn from_config(cfg: &Config, session_nonce: u64) -> StrategyConfig {
        let mut stoikov = cfg.stoikov;
        stoikov.max_position = cfg.risk.max_position;
        StrategyConfig {
            modules: cfg.modules,
            stoikov,
            quote_size: cfg.quote_size,
            vol_prior_sigma2_per_s: cfg.vol_prior_sigma2_per_s,
            vol_alpha: cfg.vol_alpha,
            risk: cfg.risk,
            exec: cfg.exec,
            session_nonce,
        }
    }
}

/// Most commands one event can produce: a cancel of every open order plus a resync.
pub const MAX_COMMANDS: usize = 160;
const MAX_NOTES: usize = 16;

/// The output of one `on_event`: commands for the io thread and notes for the log, in fixed
/// arrays reused across calls.
pub struct Commands {
    items: [CommandBody; MAX_COMMANDS],
    len: usize,
    notes: [LogBody; MAX_NOTES],
    notes_len: usize,
    /// Commands that did not fit (a wiring bug; counted, never silent).
    pub overflow: u64,
}

impl Default for Commands {
    fn default() -> Self {
        Commands {
            items: [CommandBody::CancelAll; MAX_COMMANDS],
            len: 0,
            notes: [LogBody::Note { code: 0, a: 0, b: 0 }; MAX_NOTES],
            notes_len: 0,
            overflow: 0,
        }
    }
}

impl Commands {
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
        self.notes_len = 0;
    }

    /// Adds a command; false (and counted) when the buffer is full, so execution leaves
    /// its order table as if the command had never been tried.
    #[inline]
    pub fn push(&mut self, cmd: CommandBody) -> bool {
        if self.len < MAX_COMMANDS {
            self.items[self.len] = cmd;
            self.len += 1;
            true
        } else {
            self.overflow += 1;
            false
        }
    }

    #[inline]
    fn note(&mut self, body: LogBody) {
        if self.notes_len < MAX_NOTES {
            self.notes[self.notes_len] = body;
            self.notes_len += 1;
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[CommandBody] {
        &self.items[..self.len]
    }

    #[inline]
    pub fn notes(&self) -> &[LogBody] {
        &self.notes[..self.notes_len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Our account in one market, from our own fills.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarketAccount {
    /// Contracts: YES long positive, NO long (YES short) negative.
    pub position: Qty,
    /// Cash paid and received for contracts, fees included.
    pub cash: Money,
    pub fees: Money,
    pub fills: u32,
    pub volume: Qty,
    /// The exchange's view of our position (from `market_positions` or a resync).
    pub exchange_position: Option<Qty>,
    /// Set when the market resolved: the payout per YES contract (0 or 1 dollar).
    pub settled_yes: Option<bool>,
}

impl MarketAccount {
    /// Mark-to-market value: cash plus the position at `mark` (or at the payout once resolved).
    pub fn pnl(&self, mark: Option<Price>) -> Money {
        let mark = match self.settled_yes {
            Some(true) => Some(Price(10_000)),
            Some(false) => Some(Price(0)),
            None => mark,
        };
        match mark {
            Some(p) => Money(self.cash.0 + i64::from(p.0) * self.position.0),
            None => self.cash,
        }
    }
}

struct MarketState {
    table: RiskTable,
    vol: VolEstimator,
    intensity: IntensityEstimator,
    /// The `k` the risk table was last built with.
    table_k: f64,
    account: MarketAccount,
    close_ts_ms: u64,
    active: bool,
    last_data_ms: u64,
    mid: Option<Price>,
    /// The last quote the model wanted, for the status line.
    quote: stoikov::Quote,
    /// What `quote` was computed from (the input and the risk table's generation): order
    /// acks and timer passes decide again with nothing the model reads changed.
    quoted_from: Option<(QuoteInput, u64)>,
}

/// Counters for the summary and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StrategyStats {
    pub events: u64,
    pub decisions: u64,
    pub commands: u64,
    pub risk_blocks: u64,
    pub resyncs: u64,
    /// Books that went stale because they crossed (a feed or resync bug if ever above 0).
    pub crossed_books: u64,
    pub kills: u64,
}

pub struct Strategy {
    cfg: StrategyConfig,
    books: Books,
    markets: Vec<MarketState>,
    orders: Orders,
    ids: ClientIds,
    risk: Risk,
    stats: StrategyStats,
    /// Whether the kill switch's cancels have been sent for the current kill.
    kill_handled: bool,
    /// Markets rehearsed so far, to take each in turn.
    rehearsals: usize,
}

impl Strategy {
    pub fn new(cfg: StrategyConfig, setups: &[MarketSetup]) -> Strategy {
        let books = Books::new(setups.iter().map(|s| s.ladder.clone()));
        let markets = setups
            .iter()
            .map(|s| MarketState {
                table: RiskTable::new(s.ladder.ticks()),
                vol: VolEstimator::new(cfg.vol_prior_sigma2_per_s, cfg.vol_alpha),
                intensity: IntensityEstimator::new(cfg.stoikov.k, 0.05),
                table_k: cfg.stoikov.k,
                account: MarketAccount::default(),
                close_ts_ms: s.close_ts_ms,
                active: true,
                last_data_ms: 0,
                mid: None,
                quote: stoikov::Quote {
                    bid: None,
                    ask: None,
                    reservation: Price(0),
                },
                quoted_from: None,
            })
            .collect();
        let capacity = usize::from(cfg.risk.max_open_orders).max(8) * 2;
        let mut orders = Orders::new(capacity, cfg.exec);
        orders.reserve_markets(setups.len());
        Strategy {
            books,
            markets,
            orders,
            ids: ClientIds::new(cfg.session_nonce),
            risk: Risk::new(cfg.risk),
            stats: StrategyStats::default(),
            kill_handled: false,
            rehearsals: 0,
            cfg,
        }
    }

    pub fn books(&self) -> &Books {
        &self.books
    }

    pub fn orders(&self) -> &Orders {
        &self.orders
    }

    pub fn stats(&self) -> StrategyStats {
        self.stats
    }

    pub fn account(&self, market: MarketIdx) -> MarketAccount {
        self.markets[usize::from(market)].account
    }

    pub fn mid(&self, market: MarketIdx) -> Option<Price> {
        self.markets[usize::from(market)].mid
    }

    pub fn quote(&self, market: MarketIdx) -> stoikov::Quote {
        self.markets[usize::from(market)].quote
    }

    pub fn killed(&self) -> Option<KillReason> {
        self.risk.killed()
    }

    pub fn market_count(&self) -> usize {
        self.markets.len()
    }

    /// Total mark-to-market P&L across markets.
    pub fn pnl(&self) -> Money {
        Money(self.markets.iter().map(|m| m.account.pnl(m.mid).0).sum())
    }

    /// Trips the kill switch by hand (operator, shutdown): cancels everything, places nothing.
    pub fn kill(&mut self, reason: KillReason, now_ms: u64, out: &mut Commands) {
        out.clear();
        self.risk.kill(reason, now_ms);
        self.enforce_kill(out);
    }

    /// Handles one event. `out` is cleared first and holds the commands to send.
    pub fn on_event(&mut self, ev: &Event, now_ms: u64, out: &mut Commands) {
        out.clear();
        self.stats.events += 1;
        let was_killed = self.risk.killed().is_some();
        if let Some(reason) = self.risk.on_event(&ev.body, now_ms) {
            out.note(LogBody::KillSwitch { reason: reason.code() });
        }
        let body = &ev.body;
        match *body {
            EventBody::BookClear { market }
            | EventBody::BookLevel { market, .. }
            | EventBody::BookSnapshotEnd { market }
            | EventBody::BookDelta { market, .. }
            | EventBody::Stale { market } => {
                if usize::from(market) >= self.markets.len() {
                    return;
                }
                match self.books.apply(body) {
                    Some(Apply::Delta { top_changed: true, .. }) | Some(Apply::Live) => {
                        self.markets[usize::from(market)].last_data_ms = now_ms;
                        self.on_top_change(market, now_ms);
                        self.decide(market, now_ms, out);
                    }
                    Some(Apply::Delta { .. }) => {
                        self.markets[usize::from(market)].last_data_ms = now_ms;
                    }
                    Some(Apply::Stale(why)) => {
                        self.stats.resyncs += 1;
                        if why == Integrity::Crossed {
                            self.stats.crossed_books += 1;
                        }
                        self.markets[usize::from(market)].mid = None;
                        // The io thread already asked for a snapshot on a feed gap; for the
                        // book's own integrity failures only we know to ask.
                        if why != Integrity::FeedGap {
                            out.push(CommandBody::Resync { market });
                        }
                        self.decide(market, now_ms, out);
                    }
                    Some(Apply::Building) | Some(Apply::Dropped) | None => {}
                }
            }
            EventBody::Trade { market, yes_price, .. } => {
                if let Some(m) = self.markets.get_mut(usize::from(market)) {
                    m.last_data_ms = now_ms;
                    if let (true, Some(mid)) = (self.cfg.modules.k_estimator, m.mid) {
                        m.intensity.observe(yes_price, mid);
                    }
                }
            }
            EventBody::Ticker { .. } | EventBody::Subscribed { .. } => {}
            EventBody::Fill {
                market,
                side,
                yes_price,
                qty,
                fee,
                ..
            } => {
                self.orders.on_event(body, now_ms);
                if let Some(m) = self.markets.get_mut(usize::from(market)) {
                    let a = &mut m.account;
                    let notional = Money::notional(yes_price, qty).0;
                    match side {
                        Side::Bid => {
                            a.position = Qty(a.position.0 + qty.0);
                            a.cash = Money(a.cash.0 - notional);
                        }
                        Side::Ask => {
                            a.position = Qty(a.position.0 - qty.0);
                            a.cash = Money(a.cash.0 + notional);
                        }
                    }
                    a.cash = Money(a.cash.0 - fee.0);
                    a.fees = Money(a.fees.0 + fee.0);
                    a.fills += 1;
                    a.volume = Qty(a.volume.0 + qty.0);
                    self.decide(market, now_ms, out);
                }
            }
            EventBody::OrderUpdate { market, .. } | EventBody::OrderAck { market, .. } | EventBody::OrderReject { market, .. } => {
                self.orders.on_event(body, now_ms);
                if usize::from(market) < self.markets.len() {
                    self.decide(market, now_ms, out);
                }
            }
            EventBody::Position { market, position, .. } => {
                if let Some(m) = self.markets.get_mut(usize::from(market)) {
                    m.account.exchange_position = Some(position);
                }
            }
            EventBody::Lifecycle { market, kind } => {
                if let Some(m) = self.markets.get_mut(usize::from(market)) {
                    match kind {
                        Lifecycle::Activated => m.active = true,
                        Lifecycle::Deactivated | Lifecycle::Closed => m.active = false,
                        Lifecycle::Determined { yes } => {
                            m.active = false;
                            m.account.settled_yes = Some(yes);
                        }
                        Lifecycle::Settled => m.active = false,
                    }
                    self.decide(market, now_ms, out);
                }
            }
            EventBody::WsError { .. } => {}
            EventBody::Disconnected => {
                // The io thread is about to list our resting orders again; orders it does not
                // report by `Connected` are gone.
                self.orders.begin_resync();
                // Blind: every book is stale until the resubscribe's snapshots arrive.
                for (i, m) in self.markets.iter_mut().enumerate() {
                    m.mid = None;
                    if let Some(b) = self.books.get_mut(i as MarketIdx) {
                        b.mark_stale(Integrity::FeedGap);
                    }
                }
            }
            EventBody::Connected => {
                self.orders.end_resync(now_ms);
            }
        }
        if self.risk.killed().is_some() {
            if !was_killed {
                self.kill_handled = false;
                self.stats.kills += 1;
            }
            self.enforce_kill(out);
        } else {
            self.kill_handled = false;
        }
        self.stats.commands += out.len() as u64;
    }

    /// Periodic work with no event behind it: stale-data checks, in-flight timeouts and the
    /// refresh of the model's per-price tables. Call every few tens of milliseconds.
    pub fn on_timer(&mut self, now_ms: u64, out: &mut Commands) {
        out.clear();
        let newest_data = self.markets.iter().map(|m| m.last_data_ms).max().unwrap_or(0);
        let quoting = self.orders.open_count() > 0;
        let was_killed = self.risk.killed().is_some();
        if let Some(reason) = self.risk.on_clock(now_ms, newest_data, quoting) {
            out.note(LogBody::KillSwitch { reason: reason.code() });
        }
        for i in 0..self.markets.len() {
            let market = i as MarketIdx;
            let m = &mut self.markets[i];
            let sigma2 = if self.cfg.modules.vol_estimator {
                m.vol.sigma2_per_s()
            } else {
                self.cfg.vol_prior_sigma2_per_s
            };
            let tau = seconds_to(m.close_ts_ms, now_ms);
            let k = if self.cfg.modules.k_estimator {
                m.intensity.k(self.cfg.stoikov.k)
            } else {
                self.cfg.stoikov.k
            };
            let k_moved = (k - m.table_k).abs() > 0.1 * m.table_k;
            if k_moved || m.table.is_stale(&self.cfg.stoikov, sigma2, tau) {
                let params = StoikovParams { k, ..self.cfg.stoikov };
                let ladder = self.books[market].ladder().ticks();
                m.table.refresh(ladder, &params, sigma2, tau);
                m.table_k = k;
            }
            self.decide(market, now_ms, out);
        }
        if self.risk.killed().is_some() {
            if !was_killed {
                self.kill_handled = false;
                self.stats.kills += 1;
            }
            self.enforce_kill(out);
        }
        self.stats.commands += out.len() as u64;
    }

    fn on_top_change(&mut self, market: MarketIdx, now_ms: u64) {
        let book = &self.books[market];
        let m = &mut self.markets[usize::from(market)];
        let Some((bid, ask, mid)) = top(book) else {
            m.mid = None;
            return;
        };
        if m.mid != Some(mid) {
            m.mid = Some(mid);
            if self.cfg.modules.vol_estimator {
                m.vol.observe(logit_mid(book.ladder(), bid, ask), now_ms);
            }
        }
    }

    /// One market's decision: what it should quote, within risk, turned into commands.
    fn decide(&mut self, market: MarketIdx, now_ms: u64, out: &mut Commands) {
        if self.risk.killed().is_some() {
            return;
        }
        self.stats.decisions += 1;
        let i = usize::from(market);
        let book = &self.books[market];
        let m = &mut self.markets[i];
        // V2's bailout (taker) and queue optimisation run here, ahead of Stoikov, and may
        // decide the market on their own.
        let mut desired = Desired::default();
        if m.table.is_unset() {
            let sigma2 = self.cfg.vol_prior_sigma2_per_s;
            m.table
                .refresh(book.ladder().ticks(), &self.cfg.stoikov, sigma2, seconds_to(m.close_ts_ms, now_ms));
        }
        if self.cfg.modules.stoikov && m.active && book.is_live() {
            if let Some(fair) = m.mid {
                let input = QuoteInput {
                    fair,
                    position: m.account.position,
                    best_bid: book.best_bid(),
                    best_ask: book.best_ask(),
                };
                // The model is a pure function of the input, the tables and the fixed
                // parameters and ladder.
                let from = Some((input, m.table.generation()));
                if m.quoted_from != from {
                    m.quote = stoikov::quote(book.ladder().ticks(), &m.table, &self.cfg.stoikov, &input);
                    m.quoted_from = from;
                }
                desired = in_band(&self.risk, &m.quote, fair, book.ladder(), self.cfg.quote_size);
            }
        }
        let exposure = self.orders.exposure(market);
        let position = m.account.position;
        let desired = self.risk.clamp(desired, position, exposure);
        let reference = m.mid;
        let ladder = book.ladder();
        let risk = &mut self.risk;
        let mut open = self.orders.open_count();
        let stats = &mut self.stats;
        self.orders
            .reconcile(market, desired, ladder, now_ms, &mut self.ids, &mut |cmd| match risk
                .check(&cmd, reference, ladder, position, exposure, open)
            {
                Ok(()) => {
                    if matches!(cmd, CommandBody::Place { .. }) {
                        open += 1;
                    }
                    out.push(cmd)
                }
                Err(block) => {
                    stats.risk_blocks += 1;
                    out.note(LogBody::RiskBlock {
                        market,
                        reason: block.code(),
                    });
                    false
                }
            });
    }

    /// Runs one market's decision (each market in turn) as a book change would, and keeps
    /// nothing: no command leaves, no order is recorded, no client id or counter is used, the
    /// quote cache is not touched. A spinning strategy thread calls it while idle: on these
    /// VMs a line untouched for a millisecond is back in DRAM, and an event that finds the
    /// book, the model tables and the order table there costs microseconds more. Returns how
    /// many commands the decision would have sent (risk-checked, not counted as blocks).
    pub fn rehearse(&mut self, now_ms: u64) -> usize {
        if self.markets.is_empty() || self.risk.killed().is_some() || !self.cfg.modules.stoikov {
            return 0;
        }
        self.rehearsals = self.rehearsals.wrapping_add(1);
        let i = self.rehearsals % self.markets.len();
        let Ok(market) = MarketIdx::try_from(i) else { return 0 };
        let book = &self.books[market];
        let m = &self.markets[i];
        // An unset table is filled by the first real decision, at that decision's time.
        if m.table.is_unset() || !m.active || !book.is_live() {
            return 0;
        }
        let Some(fair) = m.mid else { return 0 };
        // A mid change's volatility update, on a copy a second later (a real one is a few
        // times a second per market, so its code and the logit table go cold in between).
        if let Some((bid, ask, _)) = top(book) {
            let mut vol = m.vol;
            vol.observe(logit_mid(book.ladder(), bid, ask), now_ms + 1_000);
            std::hint::black_box(vol);
        }
        let input = QuoteInput {
            fair,
            position: m.account.position,
            best_bid: book.best_bid(),
            best_ask: book.best_ask(),
        };
        let q = stoikov::quote(book.ladder().ticks(), &m.table, &self.cfg.stoikov, &input);
        let desired = in_band(&self.risk, &q, fair, book.ladder(), self.cfg.quote_size);
        let exposure = self.orders.exposure(market);
        let position = m.account.position;
        let desired = self.risk.clamp(desired, position, exposure);
        let ladder = book.ladder();
        let risk = &self.risk;
        let open = self.orders.open_count();
        let mut passed = 0;
        self.orders.rehearse(market, desired, ladder, now_ms, &self.ids, &mut |cmd| {
            passed += usize::from(risk.verdict(&cmd, Some(fair), ladder, position, exposure, open).is_ok());
        });
        passed
    }

    fn enforce_kill(&mut self, out: &mut Commands) {
        if self.kill_handled && self.orders.open_count() == 0 {
            return;
        }
        self.orders.cancel_all(None, &mut |cmd| out.push(cmd));
        self.kill_handled = true;
    }
}

/// The best bid and best ask ticks, and the mid price between them.
#[inline]
fn top(book: &Book) -> Option<(Tick, Tick, Price)> {
    let (bid, ask) = (book.best_tick(Side::Bid)?, book.best_tick(Side::Ask)?);
    let ladder = book.ladder();
    Some((bid, ask, Price((ladder.price(bid).0 + ladder.price(ask).0) / 2)))
}

/// The logit of the mid, between the two ticks' table values. Only a mid change needs it: the
/// table look-ups and the fixed-point division stay off the other top changes.
#[inline]
fn logit_mid(ladder: &MarketLadder, bid: Tick, ask: Tick) -> Fx {
    (ladder.logit(bid).0 + ladder.logit(ask).0) / Fx::from_num(2)
}

/// The model's quote as sizes to rest, each side kept only inside the risk band: a side the
/// model pushes outside it is pulled, not left resting at its old price behind a refused amend.
#[inline]
fn in_band(risk: &Risk, q: &Quote, fair: Price, ladder: &MarketLadder, size: Qty) -> Desired {
    let inside = |p: &Price| risk.within_band(*p, fair, ladder);
    Desired {
        bid: q.bid.filter(inside).map(|p| (p, size)),
        ask: q.ask.filter(inside).map(|p| (p, size)),
    }
}

fn seconds_to(close_ts_ms: u64, now_ms: u64) -> f64 {
    if close_ts_ms == 0 {
        return f64::INFINITY;
    }
    close_ts_ms.saturating_sub(now_ms) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{self, MiniVenue, SyntheticFeed};

    /// The cached quote is what the model gives for the input it was cached under, with the
    /// tables as they are now: a table refresh (timer) or any input change recomputes it.
    #[test]
    fn cached_quote_matches_the_model() {
        const MARKETS: usize = 3;
        let now = 1_780_000_000_000;
        let cfg = StrategyConfig::from_config(&Config::default(), 9);
        let mut s = Strategy::new(cfg, &testkit::setups(MARKETS, now));
        let mut feed = SyntheticFeed::new(MARKETS, 3, now);
        let mut venue = MiniVenue::new(MARKETS, 3, 4);
        let mut out = Commands::default();
        let mut pending = Vec::new();
        feed.start(|ev| pending.push(ev.body));
        let (mut hits, mut checked) = (0u64, 0u64);
        for step in 0..30_000u32 {
            let body = feed.answer_or_next(&mut pending);
            let now = feed.now_ms;
            let before: Vec<_> = s.markets.iter().map(|m| m.quoted_from).collect();
            let ev = Event {
                stamp: Default::default(),
                body,
            };
            s.on_event(&ev, now, &mut out);
            for cmd in out.as_slice() {
                venue.answer(cmd, |b| pending.push(b));
            }
            if step % 4 == 0 {
                s.on_timer(now, &mut out);
                for cmd in out.as_slice() {
                    venue.answer(cmd, |b| pending.push(b));
                }
            }
            for (i, m) in s.markets.iter().enumerate() {
                let Some((input, generation)) = m.quoted_from else { continue };
                hits += u64::from(before[i] == m.quoted_from);
                checked += 1;
                assert_eq!(generation, m.table.generation());
                let ladder = s.books[i as MarketIdx].ladder().ticks();
                assert_eq!(m.quote, stoikov::quote(ladder, &m.table, &s.cfg.stoikov, &input), "step {step}");
            }
        }
        assert!(checked > 10_000 && hits > 1_000, "checked {checked}, reused {hits}");
    }

    /// Rehearsing between events changes nothing a later event sees: the same commands, in
    /// the same order with the same client ids, and the same counters as without.
    #[test]
    fn rehearsals_leave_no_trace() {
        const MARKETS: usize = 3;
        let now = 1_780_000_000_000;
        let cfg = StrategyConfig::from_config(&Config::default(), 9);
        let mut plain = Strategy::new(cfg.clone(), &testkit::setups(MARKETS, now));
        let mut rehearsed = Strategy::new(cfg, &testkit::setups(MARKETS, now));
        let mut feed = SyntheticFeed::new(MARKETS, 5, now);
        let mut venue = MiniVenue::new(MARKETS, 5, 3);
        let (mut out_plain, mut out_rehearsed) = (Commands::default(), Commands::default());
        let mut pending = Vec::new();
        feed.start(|ev| pending.push(ev.body));
        let (mut would, mut sent) = (0usize, 0usize);
        for step in 0..20_000u32 {
            let body = feed.answer_or_next(&mut pending);
            let now = feed.now_ms;
            // A minute on, in-flight requests are overdue and holds have lapsed: decisions
            // that would send something, which must still leave nothing behind.
            for later in [0, 60_000] {
                would += rehearsed.rehearse(now + later);
            }
            let ev = Event {
                stamp: Default::default(),
                body,
            };
            plain.on_event(&ev, now, &mut out_plain);
            rehearsed.on_event(&ev, now, &mut out_rehearsed);
            assert_eq!(out_plain.as_slice(), out_rehearsed.as_slice(), "step {step}");
            sent += out_plain.as_slice().len();
            for cmd in out_plain.as_slice() {
                venue.answer(cmd, |b| pending.push(b));
            }
            if step % 7 == 0 {
                plain.on_timer(now, &mut out_plain);
                rehearsed.on_timer(now, &mut out_rehearsed);
                assert_eq!(out_plain.as_slice(), out_rehearsed.as_slice(), "timer at step {step}");
                for cmd in out_plain.as_slice() {
                    venue.answer(cmd, |b| pending.push(b));
                }
            }
        }
        assert_eq!(plain.stats(), rehearsed.stats());
        assert_eq!(plain.orders().stats(), rehearsed.orders().stats());
        for b in crate::risk::RiskBlock::ALL {
            assert_eq!(plain.risk.blocks(b), rehearsed.risk.blocks(b), "{b:?}");
        }
        // The rehearsals really ran decisions that would have sent commands.
        assert!(would > 10 && sent > 100, "would {would}, sent {sent}");
    }
}
