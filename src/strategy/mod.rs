//! The strategy core: a pure state machine, `on_event(&Event, now_ms, out)`.
//!
//! It holds the books, the per-market model state, our orders and the risk state, and turns
//! each event into the commands it calls for. It reads no clock (time comes in as `now_ms`),
//! does no I/O and allocates nothing after construction, so the same code runs on the live
//! strategy thread, against the local exchange and in replay, and is benchmarked directly.
//!
//! A decision for one market is two steps: [`plan`](plan::plan), a pure function of the
//! market's state that says what the market should have (an [`Intent`]: quotes, and perhaps a
//! take), then one commit that clamps the intent through risk and turns it into commands
//! through execution. The plan consults the quoting modules in the seed's priority order, each
//! behind its own switch in [`Modules`]: V1 has one, Stoikov; V2's bailout (taker) and queue
//! optimisation come ahead of it there and need nothing from the io side.
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | the event dispatch, the timer, the commit, the kill switch's enforcement |
//! | `plan.rs` | the pure decision: `plan`, `Intent`, `Take` |
//! | `market.rs` | per-market state: the model's, the lifecycle, derived market data |
//! | `portfolio.rs` | our account per market, booked from fills |
//! | `commands.rs` | the fixed-size output buffer of one call |

mod commands;
mod market;
mod plan;
mod portfolio;
mod tape;

pub use commands::{Commands, MAX_COMMANDS};
pub use market::{MarketSetup, OracleReading};
pub use plan::{Intent, Take};
pub use portfolio::MarketAccount;

use crate::config::{Config, Modules};
use crate::event::MarketStatus;
use crate::event::{ClientRef, CommandBody, Event, EventBody, Feed, MarketIdx, Money, Price, Qty};
use crate::execution::{ChangeCounts, ClientIds, ExecParams, Exposure, Orders, Refusal};
use crate::ladder::MarketLadder;
use crate::logger::LogBody;
use crate::orderbook::{Apply, Books, Integrity};
use crate::risk::{KillReason, Risk, RiskLimits};
use crate::stoikov::{self, IntensityEstimator, RiskTable, StoikovParams, VolEstimator};
use market::{logit_mid, top, MarketLife, MarketState, StoikovState};
use plan::{plan, Memo};
use tape::OwnTrades;

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
    /// Oracle-feed readings taken (see [`Strategy::oracle`]).
    pub oracle_ticks: u64,
    /// What order events did to our orders (rested, requeued, decreased, filled, ended).
    pub order_changes: ChangeCounts,
    /// Public trades recognised as our own fills (by trade id, whichever channel came first).
    pub own_trades: u64,
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
    own_trades: OwnTrades,
}

impl Strategy {
    pub fn new(cfg: StrategyConfig, setups: &[MarketSetup]) -> Strategy {
        let books = Books::new(setups.iter().map(|s| s.ladder.clone()));
        let markets = setups
            .iter()
            .map(|s| MarketState {
                model: StoikovState {
                    table: RiskTable::new(s.ladder.ticks()),
                    vol: VolEstimator::new(cfg.vol_prior_sigma2_per_s, cfg.vol_alpha),
                    intensity: IntensityEstimator::new(cfg.stoikov.k, 0.05),
                    table_k: cfg.stoikov.k,
                    quote: stoikov::Quote {
                        bid: None,
                        ask: None,
                        reservation: Price(0),
                    },
                    quoted_from: None,
                },
                account: MarketAccount::default(),
                // Quoted markets are open when chosen; the first lifecycle event says otherwise.
                life: MarketLife {
                    close_ts_ms: s.close_ts_ms,
                    status: MarketStatus::Active,
                },
                mid: None,
                last_data_ms: 0,
                oracle: None,
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
            own_trades: OwnTrades::default(),
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
        self.markets[usize::from(market)].model.quote
    }

    /// The oracle feed's last reading for `market`, if any arrived.
    pub fn oracle(&self, market: MarketIdx) -> Option<OracleReading> {
        self.markets[usize::from(market)].oracle
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
            | EventBody::Stale { market, .. } => {
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
            EventBody::Trade {
                market, yes_price, trade, ..
            } => {
                self.stats.own_trades += u64::from(self.own_trades.on_trade(trade));
                if let Some(m) = self.markets.get_mut(usize::from(market)) {
                    m.last_data_ms = now_ms;
                    if let (true, Some(mid)) = (self.cfg.modules.k_estimator, m.mid) {
                        m.model.intensity.observe(yes_price, mid);
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
                trade,
                ..
            } => {
                self.stats.own_trades += u64::from(self.own_trades.on_fill(trade));
                let changes = &mut self.stats.order_changes;
                self.orders.on_event(body, now_ms, &mut |c| changes.count(c.kind));
                if let Some(m) = self.markets.get_mut(usize::from(market)) {
                    m.account.book_fill(side, yes_price, qty, fee);
                    self.decide(market, now_ms, out);
                }
            }
            EventBody::OrderUpdate { market, .. } | EventBody::OrderAck { market, .. } | EventBody::OrderReject { market, .. } => {
                let changes = &mut self.stats.order_changes;
                self.orders.on_event(body, now_ms, &mut |c| changes.count(c.kind));
                if usize::from(market) < self.markets.len() {
                    self.decide(market, now_ms, out);
                }
            }
            EventBody::Position { market, position, .. } => {
                if let Some(m) = self.markets.get_mut(usize::from(market)) {
                    m.account.exchange_position = Some(position);
                }
            }
            EventBody::Lifecycle { market, status, yes } => {
                if let Some(m) = self.markets.get_mut(usize::from(market)) {
                    m.life.status = status;
                    if let Some(yes) = yes {
                        m.account.settled_yes = Some(yes);
                    }
                    self.decide(market, now_ms, out);
                }
            }
            EventBody::WsError { .. } => {}
            EventBody::Oracle {
                market,
                probability,
                publish_ms,
            } => {
                // Kept for alpha; V1's quoting does not read it, so nothing is decided here.
                if let Some(m) = self.markets.get_mut(usize::from(market)) {
                    self.stats.oracle_ticks += 1;
                    m.oracle = Some(OracleReading {
                        probability,
                        publish_ms,
                        received_ms: now_ms,
                    });
                }
            }
            EventBody::Disconnected { feed: Feed::Kalshi } => {
                // The io thread is about to list our resting orders again; orders it does not
                // report by `Connected` are gone.
                let changes = &mut self.stats.order_changes;
                self.orders.on_event(body, now_ms, &mut |c| changes.count(c.kind));
                // Blind: every book is stale until the resubscribe's snapshots arrive.
                for (i, m) in self.markets.iter_mut().enumerate() {
                    m.mid = None;
                    if let Some(b) = self.books.get_mut(i as MarketIdx) {
                        b.mark_stale(Integrity::FeedGap);
                    }
                }
            }
            EventBody::Connected { feed: Feed::Kalshi } => {
                let changes = &mut self.stats.order_changes;
                self.orders.on_event(body, now_ms, &mut |c| changes.count(c.kind));
            }
            // The oracle's readings carry their own times; what a silent oracle means is
            // alpha's to decide, and it touches neither the books nor our orders.
            EventBody::Connected { feed: Feed::Oracle } | EventBody::Disconnected { feed: Feed::Oracle } => {}
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
            let model = &mut m.model;
            let sigma2 = if self.cfg.modules.vol_estimator {
                model.vol.sigma2_per_s()
            } else {
                self.cfg.vol_prior_sigma2_per_s
            };
            let tau = m.life.seconds_to_close(now_ms);
            let k = if self.cfg.modules.k_estimator {
                model.intensity.k(self.cfg.stoikov.k)
            } else {
                self.cfg.stoikov.k
            };
            let k_moved = (k - model.table_k).abs() > 0.1 * model.table_k;
            if k_moved || model.table.is_stale(&self.cfg.stoikov, sigma2, tau) {
                let params = StoikovParams { k, ..self.cfg.stoikov };
                let ladder = self.books[market].ladder().ticks();
                model.table.refresh(ladder, &params, sigma2, tau);
                model.table_k = k;
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
                m.model.vol.observe(logit_mid(book.ladder(), bid, ask), now_ms);
            }
        }
    }

    /// One market's decision: its plan, committed.
    #[inline]
    fn decide(&mut self, market: MarketIdx, now_ms: u64, out: &mut Commands) {
        if self.risk.killed().is_some() {
            return;
        }
        self.stats.decisions += 1;
        let i = usize::from(market);
        let book = &self.books[market];
        let m = &mut self.markets[i];
        if m.model.table.is_unset() {
            let sigma2 = self.cfg.vol_prior_sigma2_per_s;
            let tau = m.life.seconds_to_close(now_ms);
            m.model.table.refresh(book.ladder().ticks(), &self.cfg.stoikov, sigma2, tau);
        }
        let planned = plan(&self.cfg, &self.risk, book, m, Memo::Use);
        if let Some((quote, from)) = planned.fresh_quote {
            m.model.quote = quote;
            m.model.quoted_from = Some(from);
        }
        self.commit(market, planned.intent, now_ms, out);
    }

    /// Turns one market's intent into commands: the quotes clamped to what risk allows, then
    /// reconciled against our quotes, and the take if there is one; every request passes
    /// risk's final check.
    #[inline]
    fn commit(&mut self, market: MarketIdx, intent: Intent, now_ms: u64, out: &mut Commands) {
        let m = &self.markets[usize::from(market)];
        let mut gate = Gate::open(&mut self.risk, &mut self.stats, out, &self.books, &self.orders, market, m);
        let desired = gate.risk.clamp(intent.quotes, gate.position, gate.exposure);
        self.orders
            .reconcile(market, desired, gate.ladder, now_ms, &mut self.ids, &mut |cmd| gate.pass(cmd));
        if let Some(take) = intent.take {
            // Risk judges the take against the exposure the quotes left.
            let _ = self.send_take(market, take, now_ms, out);
        }
    }

    /// Sends one aggressive immediate-or-cancel order now, through risk, outside any module's
    /// plan (an operator's flatten, a test of the take path). Returns its reference, or why
    /// it was not sent (risk's reason is in `out`'s notes and the block counters).
    pub fn take(&mut self, market: MarketIdx, take: Take, now_ms: u64, out: &mut Commands) -> Result<ClientRef, Refusal> {
        out.clear();
        if usize::from(market) >= self.markets.len() {
            return Err(Refusal::NotFound);
        }
        if self.risk.killed().is_some() {
            return Err(Refusal::Vetoed);
        }
        let sent = self.send_take(market, take, now_ms, out);
        self.stats.commands += out.len() as u64;
        sent
    }

    fn send_take(&mut self, market: MarketIdx, take: Take, now_ms: u64, out: &mut Commands) -> Result<ClientRef, Refusal> {
        let m = &self.markets[usize::from(market)];
        let mut gate = Gate::open(&mut self.risk, &mut self.stats, out, &self.books, &self.orders, market, m);
        self.orders
            .take(market, take.side, take.limit, take.qty, now_ms, &mut self.ids, &mut |cmd| {
                gate.pass(cmd)
            })
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
        if m.model.table.is_unset() || !m.life.active() || !book.is_live() {
            return 0;
        }
        let Some(fair) = m.mid else { return 0 };
        // A mid change's volatility update, on a copy a second later (a real one is a few
        // times a second per market, so its code and the logit table go cold in between).
        if let Some((bid, ask, _)) = top(book) {
            let mut vol = m.model.vol;
            vol.observe(logit_mid(book.ladder(), bid, ask), now_ms + 1_000);
            std::hint::black_box(vol);
        }
        let intent = plan(&self.cfg, &self.risk, book, m, Memo::Bypass).intent;
        let exposure = self.orders.exposure(market);
        let position = m.account.position;
        let desired = self.risk.clamp(intent.quotes, position, exposure);
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

/// Risk's final check between a decision and the ring: a command that passes goes out, one
/// that does not is counted and noted, and the order table forgets it was tried.
struct Gate<'a> {
    risk: &'a mut Risk,
    stats: &'a mut StrategyStats,
    out: &'a mut Commands,
    market: MarketIdx,
    reference: Option<Price>,
    ladder: &'a MarketLadder,
    position: Qty,
    exposure: Exposure,
    /// Open orders across markets, counting places this decision already sent.
    open: usize,
}

impl<'a> Gate<'a> {
    /// The gate for one market's requests, judged against its position and exposure now.
    #[inline]
    fn open(
        risk: &'a mut Risk,
        stats: &'a mut StrategyStats,
        out: &'a mut Commands,
        books: &'a Books,
        orders: &Orders,
        market: MarketIdx,
        m: &MarketState,
    ) -> Gate<'a> {
        Gate {
            risk,
            stats,
            out,
            market,
            reference: m.mid,
            ladder: books[market].ladder(),
            position: m.account.position,
            exposure: orders.exposure(market),
            open: orders.open_count(),
        }
    }

    #[inline]
    fn pass(&mut self, cmd: CommandBody) -> bool {
        match self
            .risk
            .check(&cmd, self.reference, self.ladder, self.position, self.exposure, self.open)
        {
            Ok(()) => {
                if matches!(cmd, CommandBody::Place { .. }) {
                    self.open += 1;
                }
                self.out.push(cmd)
            }
            Err(block) => {
                self.stats.risk_blocks += 1;
                self.out.note(LogBody::RiskBlock {
                    market: self.market,
                    reason: block.code(),
                });
                false
            }
        }
    }
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
            let before: Vec<_> = s.markets.iter().map(|m| m.model.quoted_from).collect();
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
                let Some((input, generation)) = m.model.quoted_from else { continue };
                hits += u64::from(before[i] == m.model.quoted_from);
                checked += 1;
                assert_eq!(generation, m.model.table.generation());
                let ladder = s.books[i as MarketIdx].ladder().ticks();
                assert_eq!(
                    m.model.quote,
                    stoikov::quote(ladder, &m.model.table, &s.cfg.stoikov, &input),
                    "step {step}"
                );
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

    /// An oracle reading is kept for its market and decides nothing: V1's quotes do not read
    /// it, and another feed's data never refreshes the Kalshi stale-data clock.
    #[test]
    fn oracle_readings_are_kept_and_decide_nothing() {
        let now = 1_780_000_000_000;
        let cfg = StrategyConfig::from_config(&Config::default(), 9);
        let mut s = Strategy::new(cfg, &testkit::setups(2, now));
        let mut feed = SyntheticFeed::new(2, 3, now);
        let mut out = Commands::default();
        let mut pending = Vec::new();
        feed.start(|ev| pending.push(ev.body));
        for body in pending.drain(..) {
            s.on_event(
                &Event {
                    stamp: Default::default(),
                    body,
                },
                now,
                &mut out,
            );
        }
        assert_eq!(s.oracle(1), None);
        let reading = EventBody::Oracle {
            market: 1,
            probability: Price(6_150),
            publish_ms: now - 40,
        };
        s.on_event(
            &Event {
                stamp: Default::default(),
                body: reading,
            },
            now + 5,
            &mut out,
        );
        assert!(out.is_empty(), "{:?}", out.as_slice());
        assert_eq!(
            s.oracle(1),
            Some(OracleReading {
                probability: Price(6_150),
                publish_ms: now - 40,
                received_ms: now + 5,
            })
        );
        assert_eq!((s.oracle(0), s.stats().oracle_ticks), (None, 1));
        // An unknown market's reading is dropped, not a panic.
        let stray = EventBody::Oracle {
            market: 9,
            probability: Price(1),
            publish_ms: now,
        };
        s.on_event(
            &Event {
                stamp: Default::default(),
                body: stray,
            },
            now + 6,
            &mut out,
        );
        assert_eq!(s.stats().oracle_ticks, 1);
        // Oracle readings every second for a minute do not keep quoting alive past the
        // stale-data limit: only Kalshi's data does.
        for t in 1..=60u64 {
            s.on_event(
                &Event {
                    stamp: Default::default(),
                    body: reading,
                },
                now + t * 1_000,
                &mut out,
            );
            s.on_timer(now + t * 1_000, &mut out);
        }
        assert_eq!(s.killed(), Some(KillReason::StaleData));
    }
}
