//! The simulated traders' decisions: competing makers, noise takers, informed takers and
//! sweeps. Each acts only through the exchange's public API, like any client would.

use super::observe::decay;
use super::state::MyOrder;
use super::true_path::logistic;
use super::{AgentClass, Flow, TradeTag};
use crate::book::AccountId;
use crate::engine::{Exchange, MarketId, NewOrder, Reduce};
use crate::rng::Rng;
use kalshi_proto::order::TimeInForce;
use kalshi_proto::units::{Price, Qty, PRICE_SCALE};
use kalshi_proto::Side;

/// How long the flow remembers where trades happened (for makers' bookkeeping).
pub(super) const TRADE_MEMORY_MS: u64 = 30_000;
/// Most levels per side a maker keeps (the scenario allows up to 50).
const MAX_LEVELS: usize = 50;
/// A maker re-reads all its orders from the exchange every this many actions.
const FULL_CHECK_EVERY: u64 = 32;

/// Half-life of the makers' notion of normal flow, seconds.
pub(super) const NORMAL_FLOW_HALFLIFE_S: f64 = 300.0;
/// Flow counts as toxic only when it is also this many times its normal level.
const TOXIC_VS_NORMAL: f64 = 3.0;

impl Flow {
    pub(super) fn maker_act(&mut self, ex: &mut Exchange, t: u64, mk: usize, mi: usize) {
        self.observe_trades(ex, t);
        let pop = &self.pop;
        let m = &self.markets[mi];
        let market = m.id;
        let ladder = m.ladder.clone();
        let maker = &mut self.makers[mk];
        let account = maker.account;
        let st = &mut maker.markets[mi];
        let rng = &mut maker.rng;

        // What is still resting, and how much. Only orders where trades happened since the
        // last look can have changed (the maker's own cancels are tracked); a full check runs
        // now and then and after anything unusual (a long gap, a pause).
        // An order that vanished where nothing traded means something else cancelled it (a
        // reactivation, an operator): then look at everything.
        let probe = (!st.orders.is_empty()).then(|| st.orders[(st.actions as usize) % st.orders.len()]);
        let vanished = probe.is_some_and(|o| {
            let resting = ex.order(o.id).is_some_and(|x| x.is_resting());
            let traded = m
                .traded
                .iter()
                .any(|&(ts, side, price)| ts >= st.last_ms && side == o.side && price == o.price);
            !resting && !traded
        });
        let full = st.actions % FULL_CHECK_EVERY == 0
            || t >= st.last_ms + TRADE_MEMORY_MS / 2
            || m.interrupted_ms.is_some_and(|x| x >= st.last_ms)
            || vanished;
        st.actions += 1;
        let mut touched: Vec<(Side, Price)> = Vec::new();
        if !full {
            for &(ts, side, price) in m.traded.iter().rev() {
                if ts < st.last_ms {
                    break;
                }
                if !touched.contains(&(side, price)) {
                    touched.push((side, price));
                }
            }
        }
        if full || !touched.is_empty() {
            st.orders.retain_mut(|o| {
                if !full && !touched.contains(&(o.side, o.price)) {
                    return true;
                }
                match ex.order(o.id) {
                    Some(x) if x.is_resting() => {
                        o.remaining = x.remaining;
                        true
                    }
                    _ => false,
                }
            });
        }

        // Value: a slow EWMA of the mid, a private bias, the flow and the inventory.
        let book = &ex.market(market).book;
        let bb = book.best_price(Side::Bid);
        let ba = book.best_price(Side::Ask);
        let mid = match (bb, ba) {
            (Some(b), Some(a)) => Some((f64::from(b.0) + f64::from(a.0)) / 2e4),
            _ => None,
        };
        let dt = (t.saturating_sub(st.last_ms)) as f64 / 1000.0;
        st.last_ms = t;
        if let Some(mid) = mid {
            st.value += (1.0 - decay(dt, maker.value_halflife_s)) * (mid - st.value);
        }
        let d = decay(dt, pop.maker_value_noise_halflife_s);
        st.bias = st.bias * d + pop.maker_value_noise_cents / 100.0 * (1.0 - d * d).sqrt() * rng.normal();
        // Toxic flow: a maker that keeps being hit stops believing its value and moves it to
        // the price the flow has reached (the side being hit also backs off, below).
        let flow = m.flow;
        let toxic_threshold = (pop.maker_toxic_flow_contracts * m.depth_scale).max(TOXIC_VS_NORMAL * m.normal_flow);
        let toxic_bid = flow < -toxic_threshold;
        let toxic_ask = flow > toxic_threshold;
        let persistent = pop.maker_toxic_min_orders.max(TOXIC_VS_NORMAL * m.normal_orders_flow);
        if toxic_ask && m.orders_flow >= persistent {
            if let Some(p) = m.last_lifted {
                st.value = st.value.max(f64::from(p.0) / 1e4);
            }
        }
        if toxic_bid && m.orders_flow <= -persistent {
            if let Some(p) = m.last_hit {
                st.value = st.value.min(f64::from(p.0) / 1e4);
            }
        }
        let inventory = ex.accounts[account as usize]
            .positions
            .get(&market)
            .map_or(0.0, |p| p.qty.0 as f64 / 100.0);
        // Square-root impact: the value follows net aggressive flow, concavely.
        let flow_shift = pop.maker_flow_shift_cents_at_1000 / 100.0 * flow.signum() * (flow.abs() / 1000.0).sqrt();
        let fair = st.value + st.bias + flow_shift - pop.maker_inventory_skew_cents_per_1000 / 100.0 * inventory / 1000.0;
        let lo = f64::from(ladder.min_price().0) / 1e4;
        let hi = f64::from(ladder.max_price().0) / 1e4;
        let fair = fair.clamp(lo, hi);

        // Scheduled news is public: around it makers quote both sides as if the flow were
        // toxic (wider and smaller), not knowing which way it will go.
        let cautious = m
            .path
            .news
            .iter()
            .any(|&(at, _)| t + pop.maker_news_caution_before_ms >= at && t <= at + pop.maker_news_caution_after_ms);
        let toxic_bid = toxic_bid || cautious;
        let toxic_ask = toxic_ask || cautious;
        let h = m.half_spread_cents / 100.0;
        let mut bid_top = ladder
            .floor(Price(((fair - h) * 1e4).floor().max(0.0) as u32))
            .unwrap_or(ladder.min_price());
        let mut ask_top = ladder
            .ceil(Price(((fair + h) * 1e4).ceil().min(1e4) as u32))
            .unwrap_or(ladder.max_price());
        if toxic_bid {
            bid_top = ladder.step_from(bid_top, -i64::from(pop.maker_pull_ticks));
        }
        if toxic_ask {
            ask_top = ladder.step_from(ask_top, i64::from(pop.maker_pull_ticks));
        }
        if bid_top >= ask_top {
            bid_top = ladder.step_from(ask_top, -1);
        }

        // Orders through the new quote are stale: pull them all now.
        let mut i = 0;
        while i < st.orders.len() {
            let o = st.orders[i];
            let stale = match o.side {
                Side::Bid => o.price > bid_top,
                Side::Ask => o.price < ask_top,
            };
            if stale {
                let _ = ex.cancel(t, account, o.id);
                st.orders.swap_remove(i);
            } else {
                i += 1;
            }
        }
        // Never cross someone else's quote.
        let book = &ex.market(market).book;
        if let Some(a) = book.best_price(Side::Ask) {
            if bid_top >= a {
                bid_top = ladder.step_from(a, -1);
            }
        }
        if let Some(b) = book.best_price(Side::Bid) {
            if ask_top <= b {
                ask_top = ladder.step_from(b, 1);
            }
        }

        // The levels and their target sizes.
        let levels = (pop.maker_levels as usize).min(MAX_LEVELS);
        let spacing = ((pop.maker_level_spacing_cents * 100.0).round() as u32).max(1);
        let mut prices: [Vec<Price>; 2] = [Vec::with_capacity(levels), Vec::with_capacity(levels)];
        for (s, side) in [Side::Bid, Side::Ask].into_iter().enumerate() {
            let top = if side == Side::Bid { bid_top } else { ask_top };
            let sign = side.sign();
            // A bid at the ladder floor or an ask at its ceiling cannot be on the book.
            if (side == Side::Bid && bid_top >= ask_top) || ladder.index(top).is_none() {
                continue;
            }
            prices[s].push(top);
            for j in 1..levels {
                let prev = prices[s][j - 1];
                let offset = spacing as i64 * j as i64;
                let raw = i64::from(top.0) - sign * offset;
                let snapped = if raw <= 0 || raw >= i64::from(PRICE_SCALE) {
                    None
                } else if side == Side::Bid {
                    ladder.floor(Price(raw as u32))
                } else {
                    ladder.ceil(Price(raw as u32))
                };
                let one_step = ladder.step_from(prev, -sign);
                let next = match (snapped, side) {
                    (Some(p), Side::Bid) => p.min(one_step),
                    (Some(p), Side::Ask) => p.max(one_step),
                    (None, _) => one_step,
                };
                if next == prev {
                    break;
                }
                prices[s].push(next);
            }
        }

        let med = pop.maker_order_contracts_median;
        let order_size = |rng: &mut Rng| -> Qty {
            let c = rng
                .lognormal_median(med, pop.maker_order_contracts_sigma)
                .clamp(1.0, med * 20.0)
                .round();
            Qty::from_contracts(c as i64)
        };
        // A maker with nothing in the market (at the start, after a reactivation) builds its
        // whole book at once; otherwise it adjusts a few orders per action.
        let building = st.orders.is_empty();
        let mut budget = if building { 10_000 } else { pop.maker_ops_per_action as i64 };
        let per_level = if building { 1_000 } else { 3 };

        // Orders far behind the last level go (they would never trade).
        let far = [
            prices[0].last().map(|&p| ladder.step_from(p, -2)),
            prices[1].last().map(|&p| ladder.step_from(p, 2)),
        ];
        let mut i = 0;
        while i < st.orders.len() && budget > 0 {
            let o = st.orders[i];
            let too_deep = match (o.side, far[usize::from(o.side == Side::Ask)]) {
                (Side::Bid, Some(far)) => o.price < far,
                (Side::Ask, Some(far)) => o.price > far,
                (_, None) => true,
            };
            if too_deep {
                let _ = ex.cancel(t, account, o.id);
                st.orders.swap_remove(i);
                budget -= 1;
            } else {
                i += 1;
            }
        }

        // Fill each level up to its target, touch first; trim levels far over target.
        let base = pop.maker_level_contracts * m.depth_scale * maker.size_factor;
        let mut have_at = [[0f64; MAX_LEVELS]; 2];
        for o in &st.orders {
            let s = usize::from(o.side == Side::Ask);
            if let Some(j) = prices[s].iter().position(|&p| p == o.price) {
                have_at[s][j] += o.remaining.0 as f64 / 100.0;
            }
        }
        #[allow(clippy::needless_range_loop)] // j indexes two sides' levels and their sizes
        'levels: for j in 0..levels {
            for (s, side) in [Side::Bid, Side::Ask].into_iter().enumerate() {
                let Some(&price) = prices[s].get(j) else {
                    continue;
                };
                let toxic = (side == Side::Bid && toxic_bid) || (side == Side::Ask && toxic_ask);
                let mut target = base * pop.maker_level_growth.powi(j as i32);
                if toxic {
                    target *= pop.maker_toxic_size_factor;
                }
                let mut have = have_at[s][j];
                let mut placed = 0;
                while have + med / 2.0 < target && placed < per_level {
                    if budget <= 0 {
                        break 'levels;
                    }
                    let qty = order_size(rng);
                    budget -= 1;
                    placed += 1;
                    let mut req = NewOrder::limit(account, market, side, price, qty);
                    req.post_only = true;
                    match ex.place(t, req) {
                        Ok(p) if p.order.is_resting() => {
                            st.orders.push(MyOrder {
                                id: p.order.id,
                                side,
                                price,
                                remaining: p.order.remaining,
                            });
                            have += p.order.remaining.0 as f64 / 100.0;
                        }
                        _ => break,
                    }
                }
                if have > target * 1.6 && budget > 0 {
                    let mine: Vec<usize> = (0..st.orders.len())
                        .filter(|&k| st.orders[k].side == side && st.orders[k].price == price)
                        .collect();
                    if !mine.is_empty() {
                        let k = mine[rng.index(mine.len())];
                        let _ = ex.cancel(t, account, st.orders[k].id);
                        st.orders.swap_remove(k);
                        budget -= 1;
                    }
                }
            }
        }

        // Churn: cancel a random order from anywhere in the queue and re-post it at the back,
        // or shrink one in place.
        for _ in 0..rng.poisson(pop.maker_refreshes_per_action) {
            if st.orders.is_empty() {
                break;
            }
            let k = rng.index(st.orders.len());
            let o = st.orders.swap_remove(k);
            let Ok((_, cancelled)) = ex.cancel(t, account, o.id) else {
                continue;
            };
            if cancelled.0 <= 0 {
                continue;
            }
            let mut req = NewOrder::limit(account, market, o.side, o.price, cancelled);
            req.post_only = true;
            if let Ok(p) = ex.place(t, req) {
                if p.order.is_resting() {
                    st.orders.push(MyOrder {
                        id: p.order.id,
                        side: o.side,
                        price: o.price,
                        remaining: p.order.remaining,
                    });
                }
            }
        }
        if !st.orders.is_empty() && rng.bernoulli(pop.maker_decrease_prob) {
            let k = rng.index(st.orders.len());
            let o = st.orders[k];
            if o.remaining.0 >= 200 {
                let by = Qty::from_contracts((o.remaining.0 / 200).max(1));
                if let Ok((order, _)) = ex.decrease(t, account, o.id, Reduce::By(by)) {
                    st.orders[k].remaining = order.remaining;
                }
            }
        }
    }

    pub(super) fn noise(&mut self, ex: &mut Exchange, t: u64, mi: usize) {
        let pop = &self.pop;
        let m = &mut self.markets[mi];
        let rng = &mut m.noise_rng;
        let side = if rng.bernoulli(pop.noise_buy_prob) { Side::Bid } else { Side::Ask };
        let walk = rng.bernoulli(pop.noise_walk_prob);
        let walk_ticks = 1 + rng.below(u64::from(pop.noise_walk_max_ticks.max(1))) as i64;
        let size = rng
            .pareto(pop.noise_size_min_contracts, pop.noise_size_tail_alpha)
            .min(pop.noise_size_max_contracts);
        let account = self.noise_accounts[rng.index(self.noise_accounts.len())];
        let Some(touch) = ex.market(m.id).book.best_price(side.opposite()) else {
            return;
        };
        let limit = if walk {
            m.ladder.step_from(touch, side.sign() * walk_ticks)
        } else {
            touch
        };
        let qty = contracts(size);
        let market = m.id;
        self.take(ex, t, account, AgentClass::Noise, market, side, limit, qty);
    }

    pub(super) fn informed_check(&mut self, ex: &mut Exchange, t: u64, a: usize, mi: usize) {
        let pop = &self.pop;
        let m = &self.markets[mi];
        let agent = &mut self.informed[a];
        let seen = t.saturating_sub(agent.reaction_ms);
        let v = m.true_p_at_ms(seen);
        let threshold = pop.informed_threshold_cents / 100.0;
        let fee = |p: Price| {
            let p = f64::from(p.0) / 1e4;
            m.taker_fee_coef * p * (1.0 - p)
        };
        let book = &ex.market(m.id).book;
        let edge_buy = |p: Price| v - f64::from(p.0) / 1e4 - fee(p) - threshold;
        let edge_sell = |p: Price| f64::from(p.0) / 1e4 - fee(p) - v - threshold;
        let (side, touch, edge): (Side, Price, &dyn Fn(Price) -> f64) = match (book.best_price(Side::Ask), book.best_price(Side::Bid)) {
            (Some(ask), _) if edge_buy(ask) > 0.0 => (Side::Bid, ask, &edge_buy),
            (_, Some(bid)) if edge_sell(bid) > 0.0 => (Side::Ask, bid, &edge_sell),
            _ => return,
        };
        // The worst price still worth taking.
        let mut limit = touch;
        for _ in 0..200 {
            let next = m.ladder.step_from(limit, side.sign());
            if next == limit || edge(next) <= 0.0 {
                break;
            }
            limit = next;
        }
        let gap = edge(touch) + threshold;
        let scale = (gap / (threshold + fee(touch)).max(0.005)).clamp(0.5, 3.0);
        let size = (agent
            .rng
            .lognormal_median(pop.informed_size_median_contracts, pop.informed_size_sigma)
            * scale)
            .min(pop.informed_max_contracts);
        let account = agent.account;
        let market = m.id;
        self.take(ex, t, account, AgentClass::Informed, market, side, limit, contracts(size));
    }

    pub(super) fn sweep(&mut self, ex: &mut Exchange, t: u64, mi: usize) {
        let pop = &self.pop;
        let m = &mut self.markets[mi];
        let v = logistic(m.path.at(t / m.path.step_ms));
        let book = &ex.market(m.id).book;
        let (Some(bid), Some(ask)) = (book.best_price(Side::Bid), book.best_price(Side::Ask)) else {
            return;
        };
        let mid = (f64::from(bid.0) + f64::from(ask.0)) / 2e4;
        let rng = &mut m.sweep_rng;
        let side = if rng.bernoulli(pop.sweep_informed_prob) {
            if v >= mid {
                Side::Bid
            } else {
                Side::Ask
            }
        } else if rng.bernoulli(0.5) {
            Side::Bid
        } else {
            Side::Ask
        };
        let share = pop.sweep_depth_share * rng.range_f64(0.7, 1.1) / 0.9;
        let levels = book.depth(side.opposite());
        let walked = &levels[..levels.len().min(pop.sweep_levels as usize)];
        let Some(&(limit, _)) = walked.last() else {
            return;
        };
        let depth: i64 = walked.iter().map(|(_, q)| q.0).sum();
        let qty = Qty(((depth as f64 * share) as i64 / 100 * 100).max(100));
        let market = m.id;
        let account = self.sweep_account;
        self.take(ex, t, account, AgentClass::Sweep, market, side, limit, qty);
    }

    /// Sends an IOC order for a taker and tags the trades it caused.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn take(
        &mut self,
        ex: &mut Exchange,
        t: u64,
        account: AccountId,
        class: AgentClass,
        market: MarketId,
        side: Side,
        limit: Price,
        qty: Qty,
    ) {
        if qty.0 <= 0 {
            return;
        }
        let before = ex.trades.last().map_or(0, |tr| tr.trade_id);
        let mut req = NewOrder::limit(account, market, side, limit, qty);
        req.tif = TimeInForce::ImmediateOrCancel;
        let Ok(placed) = ex.place(t, req) else { return };
        if self.tagging {
            let after = ex.trades.last().map_or(0, |tr| tr.trade_id);
            if after > before {
                self.tags.push(TradeTag {
                    first_trade_id: before + 1,
                    last_trade_id: after,
                    class,
                    account,
                    market,
                    requested: qty,
                    filled: placed.order.filled,
                });
            }
        }
    }
}

/// Whole contracts (at least one) from a float size.
pub(super) fn contracts(size: f64) -> Qty {
    Qty::from_contracts((size.round() as i64).max(1))
}

pub(super) fn round6(p: f64) -> f64 {
    (p * 1e6).round() / 1e6
}
