//! Headless runs: an exchange, a scenario's population, simulated time as fast as it goes, and
//! the figures that say whether the market looks like a liquid Kalshi market.

use crate::engine::{ExEvent, Exchange, TradeRecord};
use crate::flow::{AgentClass, Flow, TradeTag};
use crate::scenario::Scenario;
use kalshi_proto::market::MarketStatus;
use kalshi_proto::units::Money;
use kalshi_proto::Side;
use std::fmt;
use std::time::Instant;

/// Horizon of the maker-edge markout, seconds after each trade.
pub const EDGE_HORIZON_S: u64 = 60;

/// p10 / p50 / p90 of a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread3 {
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

/// Size distribution in contracts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SizeStats {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    /// Hill estimate of the tail index over the largest 5% (None with too few samples).
    pub tail_alpha: Option<f64>,
}

/// Maker edge against one class of takers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EdgeRow {
    /// "all", "noise", "informed", "sweep" or "external" (orders not from the flow).
    pub taker: String,
    pub trades: u64,
    pub contracts: f64,
    /// What the makers paid for the side they took: p per YES bought, 1 - p per YES sold.
    pub notional_dollars: f64,
    /// Sum over trades of the makers' value versus the reference, in dollars.
    pub edge_dollars: f64,
    /// edge / notional, in percent.
    pub edge_pct: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MarketFigures {
    pub ticker: String,
    pub structure: String,
    /// Share of the open time the book had both sides.
    pub two_sided_share: f64,
    /// Share of the open time the spread was exactly one tick.
    pub one_tick_share: f64,
    pub spread_ticks: Spread3,
    pub touch_bid_contracts: Spread3,
    pub touch_ask_contracts: Spread3,
    pub trades: u64,
    pub volume_contracts: f64,
    pub maker_edge_pct: f64,
    pub noise_edge_pct: f64,
    pub informed_edge_pct: f64,
    /// |mid - true probability| in cents, p50 and p90.
    pub mid_error_cents: Spread3,
    pub final_true_p: f64,
    pub last_price: Option<f64>,
    pub result: Option<String>,
}

/// The figures of one headless run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub simulated_s: f64,
    pub wall_s: f64,
    /// Simulated seconds per wall-clock second, the whole run (flow, engine, journal, stats).
    pub speed: f64,
    /// Simulated seconds per wall-clock second spent inside `Flow::advance` alone.
    pub advance_speed: f64,
    pub journal_bytes: Option<u64>,
    pub book_updates: u64,
    pub book_updates_per_s: f64,
    /// Pooled over markets and time (sampled every path step while a market trades).
    pub two_sided_share: f64,
    pub one_tick_share: f64,
    pub spread_ticks: Spread3,
    pub touch_bid_contracts: Spread3,
    pub touch_ask_contracts: Spread3,
    /// How far the book's mid is from the hidden true probability, in cents.
    pub mid_error_cents: Spread3,
    pub trades: u64,
    pub volume_contracts: f64,
    /// Sizes of single matches (what Kalshi's trade feed prints).
    pub trade_size: SizeStats,
    /// Sizes of whole taker orders (the filled part), from the flow's tags.
    pub taker_order_size: SizeStats,
    /// Maker edge versus the true probability EDGE_HORIZON_S after each trade (capped at the
    /// market's close and the end of the run): overall first, then by taker class.
    pub maker_edge: Vec<EdgeRow>,
    /// Maker edge versus the settled result, for markets that settled during the run.
    pub maker_edge_settlement: Vec<EdgeRow>,
    /// Fees the makers paid, as percent of their notional.
    pub maker_fees_pct: f64,
    /// Minutes with trades, and how the makers' horizon edge spread over them.
    pub minutes_with_trades: u64,
    pub negative_minutes_share: f64,
    pub worst_minute_edge_dollars: f64,
    pub best_minute_edge_dollars: f64,
    pub markets: Vec<MarketFigures>,
}

struct TradeObs {
    market: usize,
    ts_ms: u64,
    price: f64,
    qty: f64,
    maker_buys: bool,
    class: Option<AgentClass>,
}

/// Builds an exchange (with `journal` attached) and the scenario's flow, runs `duration_ms` of
/// simulated time as fast as possible, checks conservation, and reports the figures.
pub fn run_headless(
    scenario: &Scenario,
    seed: u64,
    duration_ms: u64,
    journal: Option<Box<dyn std::io::Write + Send>>,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut ex = Exchange::new(scenario.exchange_config());
    let journaling = journal.is_some();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    if let Some(j) = journal {
        // serde_json writes a line in many small pieces: buffer them before the sink.
        ex.set_journal(Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            CountingWriter {
                inner: j,
                count: counter.clone(),
            },
        )));
    }
    let mut flow = Flow::new(scenario, seed, &mut ex);
    flow.set_trade_tagging(true);
    let deposited = Money(ex.accounts.iter().map(|a| a.cash.0).sum());
    let ids = flow.market_ids();
    let n = ids.len();
    let step = scenario.session.path_step_ms.max(1);

    let mut true_p: Vec<Vec<f32>> = vec![Vec::new(); n];
    let mut spreads: Vec<Vec<u16>> = vec![Vec::new(); n];
    let mut touch: Vec<[Vec<f32>; 2]> = (0..n).map(|_| [Vec::new(), Vec::new()]).collect();
    let mut mid_error: Vec<Vec<f32>> = vec![Vec::new(); n];
    let mut open_samples = vec![0u64; n];
    let mut close_k: Vec<Option<u64>> = vec![None; n];
    let mut trades: Vec<TradeObs> = Vec::new();
    let mut tags: Vec<TradeTag> = Vec::new();
    let mut order_sizes: Vec<f64> = Vec::new();
    let mut book_updates = 0u64;
    let mut cursor = 0usize;
    let mut advance_wall = 0f64;

    let mut t = 0u64;
    loop {
        let a = Instant::now();
        flow.advance(&mut ex, t);
        advance_wall += a.elapsed().as_secs_f64();
        for e in ex.take_events() {
            if matches!(e, ExEvent::BookDelta { .. }) {
                book_updates += 1;
            }
        }
        for (mi, &id) in ids.iter().enumerate() {
            true_p[mi].push(flow.true_probability(id) as f32);
            let m = ex.market(id);
            if m.status != MarketStatus::Active {
                if m.status != MarketStatus::Initialized && close_k[mi].is_none() && m.status != MarketStatus::Inactive {
                    close_k[mi] = Some(t / step);
                }
                continue;
            }
            open_samples[mi] += 1;
            let bid = m.book.best(Side::Bid);
            let ask = m.book.best(Side::Ask);
            if let Some((_, q)) = bid {
                touch[mi][0].push(q.0 as f32 / 100.0);
            }
            if let Some((_, q)) = ask {
                touch[mi][1].push(q.0 as f32 / 100.0);
            }
            if let (Some(b), Some(a)) = (m.book.best_index(Side::Bid), m.book.best_index(Side::Ask)) {
                spreads[mi].push((a - b) as u16);
                let mid = (f64::from(m.ladder.price(a).0) + f64::from(m.ladder.price(b).0)) / 2e4;
                let truth = f64::from(*true_p[mi].last().expect("sampled above"));
                mid_error[mi].push((100.0 * (mid - truth).abs()) as f32);
            }
        }
        let new_tags = flow.take_trade_tags();
        for tag in &new_tags {
            order_sizes.push(tag.filled.0 as f64 / 100.0);
        }
        tags.extend(new_tags);
        for tr in &ex.trades[cursor..] {
            trades.push(observe(tr, &ids));
        }
        cursor = ex.trades.len();
        if t >= duration_ms {
            break;
        }
        t = (t + step).min(duration_ms);
    }
    ex.flush_journal()?;
    ex.check_conservation(deposited)
        .map_err(|e| anyhow::anyhow!("conservation failed after the run: {e}"))?;

    // Taker class of each trade, from the tags (both are in trade-id order).
    let mut ti = 0usize;
    for (k, tr) in ex.trades.iter().enumerate() {
        while ti < tags.len() && tags[ti].last_trade_id < tr.trade_id {
            ti += 1;
        }
        if let Some(tag) = tags.get(ti) {
            if (tag.first_trade_id..=tag.last_trade_id).contains(&tr.trade_id) {
                trades[k].class = Some(tag.class);
            }
        }
    }

    let wall_s = started.elapsed().as_secs_f64();
    let simulated_s = duration_ms as f64 / 1000.0;
    let horizon_k = EDGE_HORIZON_S * 1000 / step;
    let classes: [(&str, Option<AgentClass>); 4] = [
        ("noise", Some(AgentClass::Noise)),
        ("informed", Some(AgentClass::Informed)),
        ("sweep", Some(AgentClass::Sweep)),
        ("external", None),
    ];
    let mut rows: Vec<EdgeRow> = std::iter::once("all")
        .chain(classes.iter().map(|c| c.0))
        .map(|name| EdgeRow {
            taker: name.into(),
            ..EdgeRow::default()
        })
        .collect();
    let mut settle_rows = rows.clone();
    // Per market: (edge, cost) overall, from noise, from informed.
    let mut per_market_edge = vec![[(0f64, 0f64); 3]; n];
    let mut minutes: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    let results: Vec<Option<bool>> = ids.iter().map(|&id| flow.result(id)).collect();
    for tr in &trades {
        let series = &true_p[tr.market];
        let mut k = tr.ts_ms / step + horizon_k;
        if let Some(c) = close_k[tr.market] {
            k = k.min(c.saturating_sub(1));
        }
        let k = (k as usize).min(series.len() - 1);
        let reference = f64::from(series[k]);
        let (edge, cost) = edge_of(tr, reference);
        let row = 1 + classes.iter().position(|c| c.1 == tr.class).unwrap_or(3);
        for r in [0, row] {
            add(&mut rows[r], tr, edge, cost);
        }
        let cell = &mut per_market_edge[tr.market];
        for j in [
            Some(0),
            match tr.class {
                Some(AgentClass::Noise) => Some(1),
                Some(AgentClass::Informed) => Some(2),
                _ => None,
            },
        ]
        .into_iter()
        .flatten()
        {
            cell[j].0 += edge;
            cell[j].1 += cost;
        }
        *minutes.entry(tr.ts_ms / 60_000).or_default() += edge;
        if let Some(yes) = results[tr.market] {
            let (edge, cost) = edge_of(tr, f64::from(u8::from(yes)));
            for r in [0, row] {
                add(&mut settle_rows[r], tr, edge, cost);
            }
        }
    }
    for r in rows.iter_mut().chain(settle_rows.iter_mut()) {
        r.edge_pct = if r.notional_dollars > 0.0 {
            100.0 * r.edge_dollars / r.notional_dollars
        } else {
            0.0
        };
    }
    if settle_rows[0].trades == 0 {
        settle_rows.clear();
    }
    let maker_fees: i64 = flow
        .agents()
        .iter()
        .filter(|(_, c)| *c == AgentClass::Maker)
        .flat_map(|(a, _)| ex.accounts[*a as usize].positions.values())
        .map(|p| p.fees_paid.0)
        .sum();
    let maker_fees_pct = if rows[0].notional_dollars > 0.0 {
        100.0 * (maker_fees as f64 / 1e6) / rows[0].notional_dollars
    } else {
        0.0
    };

    let markets: Vec<MarketFigures> = ids
        .iter()
        .enumerate()
        .map(|(mi, &id)| {
            let m = ex.market(id);
            let samples = open_samples[mi].max(1) as f64;
            let mut s: Vec<f64> = spreads[mi].iter().map(|&x| f64::from(x)).collect();
            let one = spreads[mi].iter().filter(|&&x| x == 1).count() as f64;
            let mut b: Vec<f64> = touch[mi][0].iter().map(|&x| f64::from(x)).collect();
            let mut a: Vec<f64> = touch[mi][1].iter().map(|&x| f64::from(x)).collect();
            let market_trades: Vec<&TradeObs> = trades.iter().filter(|t| t.market == mi).collect();
            MarketFigures {
                ticker: m.spec.ticker.clone(),
                structure: m.spec.structure.name().into(),
                two_sided_share: spreads[mi].len() as f64 / samples,
                one_tick_share: one / samples,
                spread_ticks: spread3(&mut s),
                touch_bid_contracts: spread3(&mut b),
                touch_ask_contracts: spread3(&mut a),
                trades: market_trades.len() as u64,
                volume_contracts: market_trades.iter().map(|t| t.qty).sum::<f64>() + 0.0,
                maker_edge_pct: pct(per_market_edge[mi][0].0, per_market_edge[mi][0].1),
                noise_edge_pct: pct(per_market_edge[mi][1].0, per_market_edge[mi][1].1),
                informed_edge_pct: pct(per_market_edge[mi][2].0, per_market_edge[mi][2].1),
                mid_error_cents: spread3(&mut mid_error[mi].iter().map(|&x| f64::from(x)).collect::<Vec<_>>()),
                final_true_p: f64::from(*true_p[mi].last().unwrap_or(&f32::NAN)),
                last_price: m.last_price.map(|p| f64::from(p.0) / 1e4),
                result: m.result.map(|r| r.name().to_string()),
            }
        })
        .collect();

    let total_samples: u64 = open_samples.iter().sum::<u64>().max(1);
    let mut all_spreads: Vec<f64> = spreads.iter().flatten().map(|&x| f64::from(x)).collect();
    let ones = spreads.iter().flatten().filter(|&&x| x == 1).count();
    let mut all_bid: Vec<f64> = touch.iter().flat_map(|t| t[0].iter()).map(|&x| f64::from(x)).collect();
    let mut all_ask: Vec<f64> = touch.iter().flat_map(|t| t[1].iter()).map(|&x| f64::from(x)).collect();
    let mut sizes: Vec<f64> = trades.iter().map(|t| t.qty).collect();
    let mut all_mid_error: Vec<f64> = mid_error.iter().flatten().map(|&x| f64::from(x)).collect();
    let negative = minutes.values().filter(|&&e| e < 0.0).count();

    Ok(Report {
        scenario: scenario.session.name.clone(),
        seed,
        simulated_s,
        wall_s,
        speed: simulated_s / wall_s.max(1e-9),
        advance_speed: simulated_s / advance_wall.max(1e-9),
        journal_bytes: journaling.then(|| counter.load(std::sync::atomic::Ordering::Relaxed)),
        book_updates,
        book_updates_per_s: if simulated_s > 0.0 {
            book_updates as f64 / simulated_s
        } else {
            0.0
        },
        two_sided_share: all_spreads.len() as f64 / total_samples as f64,
        one_tick_share: ones as f64 / total_samples as f64,
        spread_ticks: spread3(&mut all_spreads),
        touch_bid_contracts: spread3(&mut all_bid),
        touch_ask_contracts: spread3(&mut all_ask),
        mid_error_cents: spread3(&mut all_mid_error),
        trades: trades.len() as u64,
        volume_contracts: sizes.iter().sum::<f64>() + 0.0, // an empty f64 sum is -0.0
        trade_size: size_stats(&mut sizes),
        taker_order_size: size_stats(&mut order_sizes),
        maker_edge: rows,
        maker_edge_settlement: settle_rows,
        maker_fees_pct,
        minutes_with_trades: minutes.len() as u64,
        negative_minutes_share: negative as f64 / minutes.len().max(1) as f64,
        worst_minute_edge_dollars: minutes.values().copied().fold(0.0, f64::min),
        best_minute_edge_dollars: minutes.values().copied().fold(0.0, f64::max),
        markets,
    })
}

fn observe(tr: &TradeRecord, ids: &[u32]) -> TradeObs {
    TradeObs {
        market: ids.iter().position(|&id| id == tr.market).unwrap_or(0),
        ts_ms: tr.ts_ms,
        price: f64::from(tr.yes_price.0) / 1e4,
        qty: tr.qty.0 as f64 / 100.0,
        // A taker selling YES hits a maker's bid: the maker buys.
        maker_buys: tr.taker_side == Side::Ask,
        class: None,
    }
}

/// The maker's edge (dollars) and cost (dollars) of one trade against a reference value.
fn edge_of(tr: &TradeObs, reference: f64) -> (f64, f64) {
    if tr.maker_buys {
        ((reference - tr.price) * tr.qty, tr.price * tr.qty)
    } else {
        ((tr.price - reference) * tr.qty, (1.0 - tr.price) * tr.qty)
    }
}

fn add(row: &mut EdgeRow, tr: &TradeObs, edge: f64, cost: f64) {
    row.trades += 1;
    row.contracts += tr.qty;
    row.notional_dollars += cost;
    row.edge_dollars += edge;
}

fn pct(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        100.0 * a / b
    } else {
        0.0
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn spread3(v: &mut [f64]) -> Spread3 {
    v.sort_by(f64::total_cmp);
    Spread3 {
        p10: quantile(v, 0.1),
        p50: quantile(v, 0.5),
        p90: quantile(v, 0.9),
    }
}

fn size_stats(v: &mut [f64]) -> SizeStats {
    v.sort_by(f64::total_cmp);
    SizeStats {
        count: v.len() as u64,
        p50: quantile(v, 0.5),
        p90: quantile(v, 0.9),
        p99: quantile(v, 0.99),
        max: v.last().copied().unwrap_or(f64::NAN),
        tail_alpha: hill(v),
    }
}

/// Hill estimator of the tail index over the largest 5% of an ascending sample.
pub fn hill(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    if n < 200 {
        return None;
    }
    let k = n / 20;
    let threshold = sorted[n - 1 - k];
    if threshold <= 0.0 {
        return None;
    }
    let s: f64 = sorted[n - k..].iter().map(|x| (x / threshold).ln()).sum();
    (s > 0.0).then(|| k as f64 / s)
}

struct CountingWriter {
    inner: Box<dyn std::io::Write + Send>,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s3 = |s: &Spread3| format!("{:.0} / {:.0} / {:.0}", s.p10, s.p50, s.p90);
        let sz = |s: &SizeStats| {
            format!(
                "n={} p50={:.0} p90={:.0} p99={:.0} max={:.0} tail alpha={}",
                s.count,
                s.p50,
                s.p90,
                s.p99,
                s.max,
                s.tail_alpha.map_or("-".into(), |a| format!("{a:.2}"))
            )
        };
        writeln!(
            f,
            "scenario {} seed {}: {:.0} simulated s in {:.2} wall s ({:.0}x real time; advance() alone {:.0}x){}",
            self.scenario,
            self.seed,
            self.simulated_s,
            self.wall_s,
            self.speed,
            self.advance_speed,
            self.journal_bytes
                .map_or(String::new(), |b| format!(", journal {:.1} MB", b as f64 / 1e6))
        )?;
        writeln!(
            f,
            "  book updates: {} ({:.0}/s)   trades: {}   volume: {:.0} contracts",
            self.book_updates, self.book_updates_per_s, self.trades, self.volume_contracts
        )?;
        writeln!(
            f,
            "  spread: 1 tick {:.1}% of the time, two-sided {:.1}%, ticks p50 {:.0} p90 {:.0}",
            100.0 * self.one_tick_share,
            100.0 * self.two_sided_share,
            self.spread_ticks.p50,
            self.spread_ticks.p90
        )?;
        writeln!(
            f,
            "  touch contracts p10/p50/p90: bid {}   ask {}",
            s3(&self.touch_bid_contracts),
            s3(&self.touch_ask_contracts)
        )?;
        writeln!(
            f,
            "  |mid - true p| cents p10/p50/p90: {:.2} / {:.2} / {:.2}",
            self.mid_error_cents.p10, self.mid_error_cents.p50, self.mid_error_cents.p90
        )?;
        writeln!(f, "  trade sizes (per match): {}", sz(&self.trade_size))?;
        writeln!(f, "  taker order sizes:       {}", sz(&self.taker_order_size))?;
        writeln!(
            f,
            "  maker edge vs true p {EDGE_HORIZON_S}s later (% of maker notional; maker fees paid {:.3}%):",
            self.maker_fees_pct
        )?;
        for r in &self.maker_edge {
            writeln!(
                f,
                "    {:<9} {:>+7.3}%  ${:>+12.2} on ${:>13.2}  ({} trades, {:.0} contracts)",
                r.taker, r.edge_pct, r.edge_dollars, r.notional_dollars, r.trades, r.contracts
            )?;
        }
        if !self.maker_edge_settlement.is_empty() {
            writeln!(f, "  maker edge vs settlement (markets that settled):")?;
            for r in &self.maker_edge_settlement {
                writeln!(
                    f,
                    "    {:<9} {:>+7.3}%  ${:>+12.2} on ${:>13.2}  ({} trades)",
                    r.taker, r.edge_pct, r.edge_dollars, r.notional_dollars, r.trades
                )?;
            }
        }
        writeln!(
            f,
            "  per minute: {} minutes, {:.1}% with negative maker edge, worst ${:+.2}, best ${:+.2}",
            self.minutes_with_trades,
            100.0 * self.negative_minutes_share,
            self.worst_minute_edge_dollars,
            self.best_minute_edge_dollars
        )?;
        writeln!(
            f,
            "  {:<20} {:<17} {:>6} {:>6} {:>6} {:>17} {:>17} {:>7} {:>9} {:>7} {:>7} {:>8} {:>6} {:>6} {:>6} {:>3}",
            "market",
            "ladder",
            "1tick%",
            "2side%",
            "sprd50",
            "bid p10/50/90",
            "ask p10/50/90",
            "trades",
            "volume",
            "edge%",
            "noise%",
            "inform%",
            "err50c",
            "true",
            "last",
            "res"
        )?;
        for m in &self.markets {
            writeln!(
                f,
                "  {:<20} {:<17} {:>6.1} {:>6.1} {:>6.0} {:>17} {:>17} {:>7} {:>9.0} {:>+7.2} {:>+7.2} {:>+8.2} {:>6.2} {:>6.3} {:>6} {:>3}",
                m.ticker,
                m.structure,
                100.0 * m.one_tick_share,
                100.0 * m.two_sided_share,
                m.spread_ticks.p50,
                s3(&m.touch_bid_contracts),
                s3(&m.touch_ask_contracts),
                m.trades,
                m.volume_contracts,
                m.maker_edge_pct,
                m.noise_edge_pct,
                m.informed_edge_pct,
                m.mid_error_cents.p50,
                m.final_true_p,
                m.last_price.map_or("-".into(), |p| format!("{p:.3}")),
                m.result.as_deref().unwrap_or("-")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct SharedBuf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn journal_of(scenario: &Scenario, seed: u64, ms: u64) -> Vec<u8> {
        let buf = SharedBuf::default();
        run_headless(scenario, seed, ms, Some(Box::new(buf.clone()))).unwrap();
        let out = buf.0.lock().unwrap().clone();
        out
    }

    fn config(name: &str) -> Scenario {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        Scenario::load(dir.join(format!("{name}.toml"))).unwrap()
    }

    #[test]
    fn same_seed_same_journal_bytes() {
        let s = Scenario::default_calm();
        let a = journal_of(&s, 7, 60_000);
        let b = journal_of(&s, 7, 60_000);
        assert!(a.len() > 100_000, "journal has {} bytes", a.len());
        assert!(a == b, "same seed, different journals");
        let c = journal_of(&s, 8, 60_000);
        assert!(a != c, "different seeds gave the same journal");
        let text = String::from_utf8(a).unwrap();
        assert!(text.contains("\"kind\":\"true_p\""));
        assert!(text.contains("\"kind\":\"trade\""));
    }

    #[test]
    fn conservation_holds_through_settlement() {
        let mut s = Scenario::default_calm();
        for (i, m) in s.markets.iter_mut().enumerate() {
            m.close_s = Some(20 + 5 * i as u64);
            m.settlement_timer_s = 3;
        }
        let r = run_headless(&s, 3, 45_000, None).unwrap();
        assert!(r.markets.iter().all(|m| m.result.is_some()), "{r}");
        assert!(!r.maker_edge_settlement.is_empty());
        assert!(r.trades > 50, "{r}");
    }

    #[test]
    fn stress_reaches_ten_thousand_book_updates_per_second() {
        let r = run_headless(&config("stress"), 1, 5_000, None).unwrap();
        assert!(r.book_updates_per_s >= 10_000.0, "{r}");
    }

    #[test]
    fn calm_has_tight_spreads_and_makers_earn() {
        let r = run_headless(&Scenario::default_calm(), 11, 600_000, None).unwrap();
        let linear: Vec<&MarketFigures> = r.markets.iter().filter(|m| m.structure == "linear_cent").collect();
        for m in &linear {
            assert!(m.one_tick_share > 0.5, "{}: {r}", m.ticker);
        }
        assert!(r.maker_edge[0].edge_pct > 0.0, "{r}");
        assert!(r.touch_bid_contracts.p50 >= 100.0, "{r}");
    }

    #[test]
    #[ignore = "prints every scenario's figures; run in release: see SCENARIOS.md"]
    fn scenario_reports() {
        let seed = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
        let only = std::env::var("SIM_SCENARIO").ok();
        let files: Vec<String> = match std::env::var("SIM_FILE") {
            Ok(f) => f.split(',').map(String::from).collect(),
            Err(_) => ["calm", "toxic", "news-jump", "thin-book", "stress"]
                .iter()
                .filter(|n| only.as_deref().is_none_or(|o| o == **n))
                .map(|n| format!("{}/../../config/{n}.toml", env!("CARGO_MANIFEST_DIR")))
                .collect(),
        };
        for file in files {
            let s = Scenario::load(&file).unwrap();
            let ms = std::env::var("SIM_SECONDS")
                .ok()
                .and_then(|x| x.parse::<u64>().ok())
                .map_or(s.session.duration_s * 1000, |x| x * 1000);
            let journal: Option<Box<dyn std::io::Write + Send>> = match std::env::var("SIM_JOURNAL").as_deref() {
                Ok("none") => None,
                Ok(path) if !path.is_empty() => Some(Box::new(std::io::BufWriter::new(std::fs::File::create(path).unwrap()))),
                _ => Some(Box::new(std::io::sink())),
            };
            let r = run_headless(&s, seed, ms, journal).unwrap();
            println!("{r}");
        }
    }
}
