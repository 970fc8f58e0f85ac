//! V1 quoting: Avellaneda-Stoikov for a bounded [0, 1] contract.
//!
//! The classic model prices inventory risk as `gamma * sigma^2 * (T - t)`, which vanishes at
//! expiry. A binary contract is the opposite: its value is a martingale that ends at 0 or 1,
//! so the variance still to come is `p(1 - p)` however close the close is. The risk term here
//! is the variance of the contract's value over the holding horizon `h` of a maker who expects
//! to flatten within `h`:
//!
//! `V(p) = p(1-p) * (1 - exp(-p(1-p) * sigma_x^2 * h))` for a logit diffusion with volatility
//! `sigma_x` (it tends to `p^2(1-p)^2 sigma_x^2 h` for short horizons and saturates at
//! `p(1-p)`), and `V(p) = p(1-p)` once the market resolves within the horizon (the position is
//! held through resolution). Then, in dollars and contracts:
//!
//! - reservation price `r = p - q * gamma * V(p)`
//! - half-spread `delta = gamma * V(p) / 2 + (1/gamma) ln(1 + gamma/k)`
//!
//! `(1/gamma) ln(1 + gamma/k)` tends to `1/k` as `gamma -> 0` (a known bug in a public logit
//! A-S port gets this limit wrong; a test pins it). `V` depends on `sigma_x` and the time to
//! resolution, which change slowly: it is tabulated per ladder price by [`RiskTable::refresh`]
//! (floating point, off the per-event path), and [`quote`] is then fixed-point table look-ups,
//! two multiplies and a snap to the ladder.

use crate::event::{Price, Qty};

use kalshi_proto::ladder::TickLadder;

pub use crate::ladder::Fx;

/// Model parameters, in dollars and contracts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StoikovParams {
    /// Risk aversion, per dollar per contract.
    pub gamma: f64,
    /// Decay of fill intensity with distance from the mid, per dollar (A e^{-k delta}).
    pub k: f64,
    /// How long the maker expects to hold inventory, in seconds.
    pub horizon_s: f64,
    /// No new bids at or above this long position, no new asks at or below its negative.
    pub max_position: Qty,
    /// Never quote inside this many ticks of the reservation price.
    pub min_half_spread_ticks: u16,
}

impl Default for StoikovParams {
    fn default() -> Self {
        StoikovParams {
            gamma: 0.05,
            k: 150.0,
            horizon_s: 300.0,
            max_position: Qty::from_contracts(500),
            min_half_spread_ticks: 1,
        }
    }
}

impl StoikovParams {
    /// The liquidity part of the half-spread: (1/gamma) ln(1 + gamma/k), in dollars.
    pub fn liquidity_half_spread(&self) -> f64 {
        if self.gamma <= 1e-12 {
            1.0 / self.k
        } else {
            (1.0 + self.gamma / self.k).ln() / self.gamma
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.gamma >= 0.0 && self.gamma.is_finite()) {
            return Err(format!("gamma must be >= 0, got {}", self.gamma));
        }
        if !(self.k > 0.0 && self.k.is_finite()) {
            return Err(format!("k must be > 0, got {}", self.k));
        }
        if !(self.horizon_s > 0.0 && self.horizon_s.is_finite()) {
            return Err(format!("horizon_s must be > 0, got {}", self.horizon_s));
        }
        if self.max_position.0 <= 0 {
            return Err("max_position must be positive".into());
        }
        Ok(())
    }
}

/// Per-ladder-price risk terms, refreshed when volatility or time to resolution moves.
#[derive(Clone, Debug)]
pub struct RiskTable {
    /// gamma * V(p) per ladder index, dollars per contract.
    gamma_v: Vec<Fx>,
    /// The full half-spread per ladder index: gamma V / 2 + liquidity term, dollars.
    half_spread: Vec<Fx>,
    sigma2_per_s: f64,
    seconds_to_resolution: f64,
    /// Bumped by every refresh, so a quote made from the tables can tell they changed.
    generation: u64,
}

impl RiskTable {
    pub fn new(ladder: &TickLadder) -> RiskTable {
        RiskTable {
            gamma_v: vec![Fx::ZERO; ladder.len()],
            half_spread: vec![Fx::ZERO; ladder.len()],
            sigma2_per_s: f64::NAN,
            seconds_to_resolution: f64::NAN,
            generation: 0,
        }
    }

    /// Recomputes the tables. `sigma2_per_s` is the logit variance per second; floats are
    /// fine here: this runs when inputs move materially, not per event, and writes in place.
    pub fn refresh(&mut self, ladder: &TickLadder, params: &StoikovParams, sigma2_per_s: f64, seconds_to_resolution: f64) {
        let liquidity = params.liquidity_half_spread();
        let held_through_resolution = seconds_to_resolution <= params.horizon_s;
        for (i, p) in ladder.prices().iter().enumerate() {
            let p = f64::from(p.0) / 10_000.0;
            let pq = p * (1.0 - p);
            let v = if held_through_resolution {
                pq
            } else {
                pq * (1.0 - (-pq * sigma2_per_s.max(0.0) * params.horizon_s).exp())
            };
            let gv = params.gamma * v;
            self.gamma_v[i] = fx_from_f64(gv);
            self.half_spread[i] = fx_from_f64(gv / 2.0 + liquidity);
        }
        self.sigma2_per_s = sigma2_per_s;
        self.seconds_to_resolution = seconds_to_resolution;
        self.generation += 1;
    }

    /// Changes whenever the tables' contents may have.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the tables were never filled (no quote can be made from them yet).
    pub fn is_unset(&self) -> bool {
        self.sigma2_per_s.is_nan()
    }

    /// Whether inputs moved enough (10% in variance, or crossing the resolution horizon) to
    /// be worth a refresh.
    pub fn is_stale(&self, params: &StoikovParams, sigma2_per_s: f64, seconds_to_resolution: f64) -> bool {
        if self.sigma2_per_s.is_nan() {
            return true;
        }
        let rel = (sigma2_per_s - self.sigma2_per_s).abs() / self.sigma2_per_s.max(1e-12);
        let crossed = (self.seconds_to_resolution <= params.horizon_s) != (seconds_to_resolution <= params.horizon_s);
        rel > 0.10 || crossed
    }
}

/// Desired quotes for one market; `None` means no quote on that side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    pub bid: Option<Price>,
    pub ask: Option<Price>,
    /// Reservation price, in 1e-4 dollars (rounded), for logs.
    pub reservation: Price,
}

/// The market as the quoting model needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuoteInput {
    /// Fair value (mid or micro-price) on the ladder or between two ladder prices.
    pub fair: Price,
    pub position: Qty,
    /// The current touch, to stay passive: a bid never at or above the best ask.
    pub best_bid: Option<Price>,
    pub best_ask: Option<Price>,
}

/// `Fx::saturating_from_num(x)`, bit for bit, without its generic float decoding (which
/// cost as much as the `exp` in a table refresh). For |x| < 2^18, `x * 2^32` is exact and
/// below 2^51, where adding and removing 1.5 * 2^52 rounds it to an integer the way `fixed`
/// rounds (to nearest, ties to even); anything else takes the library's path.
#[inline]
fn fx_from_f64(x: f64) -> Fx {
    const SHIFT: f64 = 4_294_967_296.0;
    const ROUND: f64 = 6_755_399_441_055_744.0;
    if x.abs() < 262_144.0 {
        let scaled = x * SHIFT;
        Fx::from_bits(((scaled + ROUND) - ROUND) as i64)
    } else {
        Fx::saturating_from_num(x)
    }
}

/// `p / 1e4` as `Fx::from_num(p) / Fx::from_num(10_000)` rounds it (toward zero), in one
/// 64-bit division by a constant instead of a 128-bit one.
#[inline]
fn to_fx(p: Price) -> Fx {
    Fx::from_bits(Fx::from_num(p.0).to_bits() / 10_000)
}

/// Contracts from 1e-2 units, rounded as the `Fx` division would; see [`to_fx`].
#[inline]
fn contracts_fx(q: Qty) -> Fx {
    Fx::from_bits(Fx::from_num(q.0).to_bits() / 100)
}

fn from_fx(x: Fx) -> i64 {
    (x * Fx::from_num(10_000)).round().to_num::<i64>()
}

/// Computes the quotes. Fixed-point only; no allocation.
// Inlined into the decision so the `Quote` is not returned through memory and read back at
// a different width (a store-forwarding stall that cost more than the arithmetic).
#[inline]
pub fn quote(ladder: &TickLadder, table: &RiskTable, params: &StoikovParams, input: &QuoteInput) -> Quote {
    // Risk terms at the ladder price nearest the fair value.
    let i = match ladder.index(input.fair) {
        Some(i) => i,
        None => ladder.index(ladder.floor(input.fair).unwrap_or(ladder.min_price())).unwrap_or(0),
    };
    let fair = to_fx(input.fair);
    let q = contracts_fx(input.position);
    let r = fair - q * table.gamma_v[i];
    let half = table.half_spread[i];
    let raw_bid = from_fx(r - half);
    let raw_ask = from_fx(r + half);
    let reservation = Price(from_fx(r).clamp(0, 10_000) as u32);

    let mut bid = (raw_bid > 0).then(|| ladder.floor(Price(raw_bid.min(10_000) as u32))).flatten();
    let mut ask = (raw_ask < 10_000).then(|| ladder.ceil(Price(raw_ask.max(0) as u32))).flatten();
    // At least `min_half_spread_ticks` ladder steps from the reservation price. With `lo`
    // the first index at or above r and `hi` the first strictly above, the bid may sit at
    // index lo - gap at most and the ask at hi + gap - 1 at least, whether or not r is itself
    // a ladder price.
    let gap = usize::from(params.min_half_spread_ticks.max(1));
    let lo = ladder.count_below(reservation);
    let hi = ladder.count_at_or_below(reservation);
    let bid_cap = lo.checked_sub(gap).map(|i| ladder.price(i));
    let ask_floor = Some(hi + gap - 1).filter(|i| *i < ladder.len()).map(|i| ladder.price(i));
    bid = match (bid, bid_cap) {
        (Some(b), Some(cap)) => Some(b.min(cap)),
        _ => None,
    };
    ask = match (ask, ask_floor) {
        (Some(a), Some(floor)) => Some(a.max(floor)),
        _ => None,
    };
    // Stay passive: never cross the other side's best.
    if let (Some(b), Some(best_ask)) = (bid, input.best_ask) {
        if b >= best_ask {
            bid = (best_ask > ladder.min_price()).then(|| ladder.step_from(best_ask, -1));
        }
    }
    if let (Some(a), Some(best_bid)) = (ask, input.best_bid) {
        if a <= best_bid {
            ask = (best_bid < ladder.max_price()).then(|| ladder.step_from(best_bid, 1));
        }
    }
    // Inventory limits: stop adding to a position at the cap.
    if input.position >= params.max_position {
        bid = None;
    }
    if input.position.0 <= -params.max_position.0 {
        ask = None;
    }
    if let (Some(b), Some(a)) = (bid, ask) {
        if b >= a {
            // A degenerate table (huge gamma or position) would cross our own quotes.
            bid = None;
        }
    }
    Quote { bid, ask, reservation }
}

/// Online estimate of the logit volatility from mid changes, per second.
///
/// An EWMA of squared logit increments divided by elapsed time, in fixed point, fed per
/// mid change (allocation-free). Mid moves of a single tick dominate on Kalshi, which makes
/// this an upper bound of the diffusion part; the jump part is left in on purpose: a maker
/// holds through jumps too.
#[derive(Clone, Copy, Debug)]
pub struct VolEstimator {
    /// EWMA of squared logit change per second.
    var_per_s: Fx,
    last_logit: Option<Fx>,
    last_ms: u64,
    /// Weight of a new observation, in fixed point.
    alpha: Fx,
}

impl VolEstimator {
    pub fn new(prior_sigma2_per_s: f64, alpha: f64) -> VolEstimator {
        VolEstimator {
            var_per_s: Fx::saturating_from_num(prior_sigma2_per_s),
            last_logit: None,
            last_ms: 0,
            alpha: Fx::saturating_from_num(alpha),
        }
    }

    /// Feeds the logit of the current fair value (from the ladder's logit table).
    pub fn observe(&mut self, logit: Fx, now_ms: u64) {
        if let Some(prev) = self.last_logit {
            let dt_ms = now_ms.saturating_sub(self.last_ms);
            if dt_ms == 0 {
                self.last_logit = Some(logit);
                return;
            }
            let d = logit - prev;
            // Increments over very short intervals are noise in the ratio; floor dt at 50 ms.
            let dt_s = Fx::from_num(dt_ms.max(50)) / Fx::from_num(1000);
            let sample = d.saturating_mul(d) / dt_s;
            self.var_per_s = self.var_per_s + self.alpha * (sample - self.var_per_s);
        }
        self.last_logit = Some(logit);
        self.last_ms = now_ms;
    }

    pub fn sigma2_per_s(&self) -> f64 {
        self.var_per_s.to_num::<f64>().max(0.0)
    }
}

/// Fill-intensity decay `k` from public trades.
///
/// With market orders arriving at intensity `A e^{-k delta}` for depth `delta` from the mid,
/// the depth at which trades print is exponential with mean `1/k`, so `k` is the reciprocal of
/// an EWMA of trade depth. Depth is floored at half a cent: trades at the mid of a locked
/// book say nothing about decay, and an unbounded `k` would collapse the spread.
#[derive(Clone, Copy, Debug)]
pub struct IntensityEstimator {
    mean_depth: Fx,
    alpha: Fx,
    samples: u32,
}

impl IntensityEstimator {
    const MIN_DEPTH: f64 = 0.005;
    /// Trades before the estimate replaces the configured prior.
    pub const WARM_UP: u32 = 20;

    pub fn new(prior_k: f64, alpha: f64) -> IntensityEstimator {
        IntensityEstimator {
            mean_depth: Fx::saturating_from_num(1.0 / prior_k.max(1e-6)),
            alpha: Fx::saturating_from_num(alpha),
            samples: 0,
        }
    }

    /// Feeds one public trade at `price` while the mid was `mid`.
    pub fn observe(&mut self, price: Price, mid: Price) {
        let depth = Fx::from_num(price.0.abs_diff(mid.0)) / Fx::from_num(10_000);
        self.mean_depth += self.alpha * (depth - self.mean_depth);
        self.samples = self.samples.saturating_add(1);
    }

    /// The estimate, or `prior_k` until enough trades were seen.
    pub fn k(&self, prior_k: f64) -> f64 {
        if self.samples < Self::WARM_UP {
            return prior_k;
        }
        1.0 / self.mean_depth.to_num::<f64>().max(Self::MIN_DEPTH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kalshi_proto::ladder::LevelStructure;

    fn setup(params: &StoikovParams, tau_s: f64) -> (TickLadder, RiskTable) {
        let ladder = TickLadder::new(LevelStructure::LinearCent);
        let mut t = RiskTable::new(&ladder);
        t.refresh(&ladder, params, 0.0004, tau_s);
        (ladder, t)
    }

    fn input(fair: u32, position: i64) -> QuoteInput {
        QuoteInput {
            fair: Price(fair),
            position: Qty::from_contracts(position),
            best_bid: None,
            best_ask: None,
        }
    }

    #[test]
    fn intensity_estimate_is_the_reciprocal_mean_depth_after_warm_up() {
        let mut e = IntensityEstimator::new(150.0, 0.2);
        let mid = Price(5000);
        for _ in 0..(IntensityEstimator::WARM_UP - 1) {
            e.observe(Price(5200), mid);
        }
        assert_eq!(e.k(150.0), 150.0, "prior until warm");
        for _ in 0..200 {
            e.observe(Price(5200), mid);
        }
        // Trades two cents from the mid: k = 1 / 0.02 = 50.
        assert!((e.k(150.0) - 50.0).abs() < 0.5, "{}", e.k(150.0));
        for _ in 0..200 {
            e.observe(mid, mid);
        }
        // Depth floored at half a cent.
        assert!((e.k(150.0) - 200.0).abs() < 1.0, "{}", e.k(150.0));
    }

    #[test]
    fn liquidity_term_tends_to_one_over_k() {
        let mut p = StoikovParams {
            gamma: 1e-9,
            ..StoikovParams::default()
        };
        assert!((p.liquidity_half_spread() - 1.0 / p.k).abs() < 1e-9);
        p.gamma = 0.0;
        assert_eq!(p.liquidity_half_spread(), 1.0 / p.k);
        p.gamma = 1.0;
        assert!(p.liquidity_half_spread() < 1.0 / p.k);
    }

    #[test]
    fn flat_inventory_quotes_symmetrically() {
        let params = StoikovParams::default();
        let (ladder, t) = setup(&params, 86_400.0);
        let q = quote(&ladder, &t, &params, &input(5_000, 0));
        let (b, a) = (q.bid.unwrap().0, q.ask.unwrap().0);
        assert_eq!(5_000 - b, a - 5_000, "{q:?}");
        assert!(b < 5_000 && a > 5_000);
    }

    #[test]
    fn long_inventory_skews_quotes_down() {
        let params = StoikovParams {
            gamma: 0.5,
            ..StoikovParams::default()
        };
        let (ladder, t) = setup(&params, 86_400.0);
        let flat = quote(&ladder, &t, &params, &input(5_000, 0));
        let long = quote(&ladder, &t, &params, &input(5_000, 20));
        let short = quote(&ladder, &t, &params, &input(5_000, -20));
        assert!(long.reservation < flat.reservation && short.reservation > flat.reservation);
        assert!(long.ask.unwrap() <= flat.ask.unwrap() && long.bid.unwrap() <= flat.bid.unwrap());
        assert!(short.bid.unwrap() >= flat.bid.unwrap());
    }

    #[test]
    fn risk_does_not_vanish_at_expiry() {
        // Classic A-S would quote tighter as the close nears; a binary's risk grows to p(1-p).
        let params = StoikovParams {
            gamma: 0.5,
            ..StoikovParams::default()
        };
        let (ladder, far) = setup(&params, 86_400.0);
        let (_, near) = setup(&params, 10.0);
        let i = ladder.index(Price(5_000)).unwrap();
        assert!(near.gamma_v[i] > far.gamma_v[i]);
        assert!((near.gamma_v[i].to_num::<f64>() - 0.5 * 0.25).abs() < 1e-6);
        let q_far = quote(&ladder, &far, &params, &input(5_000, 100));
        let q_near = quote(&ladder, &near, &params, &input(5_000, 100));
        assert!(q_near.reservation < q_far.reservation);
    }

    #[test]
    fn stays_passive_and_respects_limits() {
        let params = StoikovParams {
            gamma: 0.0,
            k: 1_000.0,
            ..StoikovParams::default()
        };
        let (ladder, t) = setup(&params, 86_400.0);
        let mut inp = input(5_000, 0);
        inp.best_bid = Some(Price(4_900));
        inp.best_ask = Some(Price(5_000));
        let q = quote(&ladder, &t, &params, &inp);
        assert!(q.bid.unwrap() < Price(5_000));
        assert!(q.ask.unwrap() > Price(4_900));
        let capped = quote(&ladder, &t, &params, &input(5_000, 500));
        assert_eq!(capped.bid, None);
        assert!(capped.ask.is_some());
        let capped = quote(&ladder, &t, &params, &input(5_000, -500));
        assert_eq!(capped.ask, None);
        // Quotes at the edges of the ladder stay on it.
        let edge = quote(&ladder, &t, &params, &input(100, 0));
        assert!(edge.bid.is_none_or(|b| ladder.index(b).is_some()));
        assert!(ladder.index(edge.ask.unwrap()).is_some());
    }

    #[test]
    fn volatility_estimate_tracks_a_known_walk() {
        // Logit steps of +-0.02 every 100 ms: variance 0.0004 per 0.1 s = 0.004 per second.
        let mut v = VolEstimator::new(0.0, 0.05);
        let mut x = Fx::ZERO;
        for i in 0..2_000u64 {
            let step = if (i * 7919) % 2 == 0 { 0.02 } else { -0.02 };
            x += Fx::from_num(step);
            v.observe(x, i * 100);
        }
        assert!((v.sigma2_per_s() - 0.004).abs() < 0.0004, "{}", v.sigma2_per_s());
    }

    #[test]
    fn float_conversion_matches_fixed() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut values = vec![
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            1e-300,
            262_143.999_999,
            262_144.0,
            -262_144.0,
            2_147_483_647.9,
            -2_147_483_648.0,
            1e20,
            -1e20,
        ];
        // Exact halves of the last fractional bit, where ties to even decides.
        for k in 0..64i64 {
            values.push((k as f64 + 0.5) / 4_294_967_296.0);
            values.push(-(k as f64 + 0.5) / 4_294_967_296.0);
            values.push(1.0 + (k as f64 + 0.5) / 4_294_967_296.0);
        }
        for _ in 0..200_000 {
            let bits = next();
            let v = f64::from_bits(bits);
            if !v.is_nan() {
                values.push(v);
            }
            // The range refresh produces: dollars, up to a few.
            values.push((bits >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0);
        }
        for v in values {
            let (fast, lib) = (fx_from_f64(v), Fx::saturating_from_num(v));
            assert_eq!(fast.to_bits(), lib.to_bits(), "{v:e}");
        }
    }

    #[test]
    fn integer_conversions_round_as_fixed_division() {
        let prices = (0..=20_000u32).chain([u32::MAX / 2, i32::MAX as u32]);
        for p in prices {
            assert_eq!(to_fx(Price(p)), Fx::from_num(p) / Fx::from_num(10_000), "{p}");
        }
        let sizes = (-200_000i64..=200_000).chain([i64::from(i32::MIN), i64::from(i32::MAX), -7, 7]);
        for q in sizes {
            assert_eq!(contracts_fx(Qty(q)), Fx::from_num(q) / Fx::from_num(100), "{q}");
        }
    }

    #[test]
    fn refresh_moves_the_generation() {
        let params = StoikovParams::default();
        let (ladder, mut t) = setup(&params, 86_400.0);
        let g = t.generation();
        t.refresh(&ladder, &params, 0.0004, 86_400.0);
        assert_ne!(t.generation(), g);
    }

    #[test]
    fn staleness_follows_inputs() {
        let params = StoikovParams::default();
        let (_, t) = setup(&params, 86_400.0);
        assert!(!t.is_stale(&params, 0.0004, 80_000.0));
        assert!(t.is_stale(&params, 0.0005, 80_000.0));
        assert!(t.is_stale(&params, 0.0004, 10.0));
    }
}
