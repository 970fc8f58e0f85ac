//! A market's tick ladder and the model's per-price tables.
//!
//! The protocol units (`Price` in 1e-4 dollars, `Qty` in 0.01 contracts, `Money` in micro-dollars)
//! are exact integers; the model (logit reservation prices, spreads, fee hurdles) needs real
//! arithmetic. Everything the model wants to know about a ladder price (p, logit(p), p(1-p), the
//! fee per contract) is computed once here, so the hot path does table look-ups and fixed-point
//! adds, and a model result meets the ladder again only in [`MarketLadder::snap`].
//!
//! Model numbers are [`Fx`] = `I32F32`:
//! - `I16F16` was too coarse: its step (1.5e-5) is only 6.5x finer than one price unit, p(1-p) at
//!   p = 0.001 would carry ~0.8% error, and products such as `q * gamma * sigma^2 * tau` underflow.
//! - `I32F32` has a step of 2.3e-10, so table rounding never moves a snap across a tick, and a
//!   range of +-2.1e9 holds logits (|logit| <= 9.22 at $0.0001) and any intermediate the quoting
//!   formulas form from contract counts and seconds. It is one 64-bit register: add/compare are
//!   single instructions and a multiply is one widening `mul` plus a shift.

use fixed::types::I32F32;
use kalshi_proto::ladder::{LevelStructure, PriceRange, TickLadder};
use kalshi_proto::units::{DecimalError, Money, Price, Qty, PRICE_SCALE};
use std::fmt;

/// The model's fixed-point number (see the module docs for why 32.32).
pub type Fx = I32F32;

/// A position on one market's ladder: index 0 is its lowest tradable price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tick(pub u16);

impl Tick {
    #[inline]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A price as a probability in dollars (0.5 = 50 cents), for model arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Prob(pub Fx);

impl Prob {
    /// `price / 1e4`, rounded to the nearest representable value.
    pub fn from_price(price: Price) -> Prob {
        let scale = i64::from(PRICE_SCALE);
        Prob(Fx::from_bits(((i64::from(price.0) << 32) + scale / 2) / scale))
    }
}

/// log(p / (1 - p)): the coordinate in which the quoting model diffuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Logit(pub Fx);

/// How a model price meets the ladder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Snap {
    /// The highest ladder price at or below (bids: never pay more than the model says).
    Floor,
    /// The lowest ladder price at or above (asks).
    Ceil,
    /// The closer neighbour; an exact tie goes to the lower price. Clamps to the ladder's ends.
    Nearest,
}

/// Fee coefficients in 1e-4 (0.07 = 700), the same scale as the local exchange's, so both
/// sides of a simulated fill compute identical fees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FeeRates {
    pub taker_e4: u32,
    pub maker_e4: u32,
}

impl FeeRates {
    /// Kalshi's general taker coefficient, 0.07.
    pub const TAKER_E4: u32 = 700;
    /// Kalshi's maker coefficient on `quadratic_with_maker_fees` series, 0.0175.
    pub const MAKER_E4: u32 = 175;
    pub const NONE: FeeRates = FeeRates { taker_e4: 0, maker_e4: 0 };

    /// `fee_type = quadratic`: takers pay, makers do not. `multiplier_e4` is the series'
    /// `fee_multiplier` in 1e-4 (1.0 = 10_000); truncation matches the local exchange.
    pub const fn quadratic(multiplier_e4: u32) -> FeeRates {
        FeeRates {
            taker_e4: scale_rate(Self::TAKER_E4, multiplier_e4),
            maker_e4: 0,
        }
    }

    /// `fee_type = quadratic_with_maker_fees`: both sides pay.
    pub const fn quadratic_with_maker_fees(multiplier_e4: u32) -> FeeRates {
        FeeRates {
            taker_e4: scale_rate(Self::TAKER_E4, multiplier_e4),
            maker_e4: scale_rate(Self::MAKER_E4, multiplier_e4),
        }
    }
}

const fn scale_rate(base_e4: u32, multiplier_e4: u32) -> u32 {
    (base_e4 as u64 * multiplier_e4 as u64 / 10_000) as u32
}

/// Raw fee units: coefficient (1e-4) * count (1e-2) * P (1e-4) * (1 - P) (1e-4) = 1e-14 dollars.
const FEE_RAW_PER_CENT: u64 = 1_000_000_000_000;
const MICROS_PER_CENT: i64 = 10_000;

/// Kalshi's fee for ONE order (or one fill accumulated into its order) of `qty` at `price`:
/// `ceil_to_cent(rate * C * P * (1 - P))`, in exact integers. The sign of `qty` is ignored.
///
/// The rounding is per order, which is why this takes the whole count: ten 1-lots at $0.50
/// pay $0.20, one 10-lot pays $0.18.
#[inline]
pub fn order_fee(rate_e4: u32, price: Price, qty: Qty) -> Money {
    let p = u64::from(price.0.min(PRICE_SCALE));
    // rate < 2^32 and P(1-P) <= 2.5e7 < 2^25, so this cannot overflow.
    let per_unit = u64::from(rate_e4) * p * (u64::from(PRICE_SCALE) - p);
    let count = qty.0.unsigned_abs();
    let cents = match per_unit.checked_mul(count) {
        Some(raw) => u128::from(raw.div_ceil(FEE_RAW_PER_CENT)),
        None => (u128::from(per_unit) * u128::from(count)).div_ceil(u128::from(FEE_RAW_PER_CENT)),
    };
    Money(
        i64::try_from(cents)
            .ok()
            .and_then(|c| c.checked_mul(MICROS_PER_CENT))
            .unwrap_or(i64::MAX),
    )
}

/// One `{start, end, step}` entry of a market's `price_ranges`, as the wire's dollar strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeText<'a> {
    pub start: &'a str,
    pub end: &'a str,
    pub step: &'a str,
}

/// Why a market's `price_ranges` were refused. `range` is the index into the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LadderError {
    NoRanges,
    BadNumber {
        range: usize,
        field: &'static str,
        text: String,
        error: DecimalError,
    },
    EmptyRange {
        range: usize,
        start: Price,
        end: Price,
    },
    ZeroStep {
        range: usize,
    },
    StepDoesNotDivide {
        range: usize,
        start: Price,
        end: Price,
        step: Price,
    },
    /// Ranges must ascend without overlapping (a shared end point is fine).
    NotAscending {
        range: usize,
        start: Price,
        previous_end: Price,
    },
    /// Valid ranges, but not a ladder the shared `TickLadder` can index.
    Unsupported {
        prices: usize,
    },
}

impl fmt::Display for LadderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LadderError::NoRanges => f.write_str("price_ranges is empty"),
            LadderError::BadNumber {
                range,
                field,
                text,
                error: DecimalError::OutOfRange,
            } => {
                write!(f, "price_ranges[{range}].{field} {text:?}: outside $0..$1")
            }
            LadderError::BadNumber { range, field, text, error } => write!(f, "price_ranges[{range}].{field} {text:?}: {error}"),
            LadderError::EmptyRange { range, start, end } => {
                write!(f, "price_ranges[{range}] (start {start}, end {end}): start must be below end")
            }
            LadderError::ZeroStep { range } => write!(f, "price_ranges[{range}]: step is zero"),
            LadderError::StepDoesNotDivide { range, start, end, step } => {
                write!(
                    f,
                    "price_ranges[{range}] (start {start}, end {end}, step {step}): step does not divide the range"
                )
            }
            LadderError::NotAscending {
                range,
                start,
                previous_end,
            } => {
                write!(
                    f,
                    "price_ranges[{range}] starts at {start}, below the previous range's end {previous_end}"
                )
            }
            LadderError::Unsupported { prices } => write!(
                f,
                "price_ranges give a {prices}-price ladder that is none of linear_cent, deci_cent, tapered_deci_cent"
            ),
        }
    }
}

impl std::error::Error for LadderError {}

/// One market's ladder: price <-> tick, and per-tick model tables. Immutable after construction.
#[derive(Clone, Debug)]
pub struct MarketLadder {
    ticks: TickLadder,
    fees: FeeRates,
    prob: Box<[Fx]>,
    logit: Box<[Fx]>,
    pq: Box<[Fx]>,
    taker_fee: Box<[Fx]>,
    maker_fee: Box<[Fx]>,
}

impl MarketLadder {
    pub fn from_structure(structure: LevelStructure, fees: FeeRates) -> MarketLadder {
        MarketLadder::with_ticks(TickLadder::new(structure), fees)
    }

    /// From the market object's `price_ranges` strings, parsed without floats and validated.
    pub fn from_price_ranges(ranges: &[RangeText<'_>], fees: FeeRates) -> Result<MarketLadder, LadderError> {
        let mut parsed = Vec::with_capacity(ranges.len());
        for (i, r) in ranges.iter().enumerate() {
            let field = |name: &'static str, text: &str| {
                Price::parse(text).map_err(|error| LadderError::BadNumber {
                    range: i,
                    field: name,
                    text: text.to_string(),
                    error,
                })
            };
            parsed.push(PriceRange {
                start: field("start", r.start)?,
                end: field("end", r.end)?,
                step: field("step", r.step)?,
            });
        }
        MarketLadder::from_ranges(&parsed, fees)
    }

    /// From already-parsed ranges (e.g. the local exchange's `PriceRange`, which deserializes
    /// from the same strings).
    pub fn from_ranges(ranges: &[PriceRange], fees: FeeRates) -> Result<MarketLadder, LadderError> {
        if ranges.is_empty() {
            return Err(LadderError::NoRanges);
        }
        let mut on = vec![false; PRICE_SCALE as usize + 1];
        let mut previous_end: Option<Price> = None;
        for (i, r) in ranges.iter().enumerate() {
            let (start, end, step) = (r.start, r.end, r.step);
            if end.0 > PRICE_SCALE {
                return Err(LadderError::BadNumber {
                    range: i,
                    field: "end",
                    text: end.0.to_string(),
                    error: DecimalError::OutOfRange,
                });
            }
            if step.0 == 0 {
                return Err(LadderError::ZeroStep { range: i });
            }
            if start >= end {
                return Err(LadderError::EmptyRange { range: i, start, end });
            }
            if (end.0 - start.0) % step.0 != 0 {
                return Err(LadderError::StepDoesNotDivide {
                    range: i,
                    start,
                    end,
                    step,
                });
            }
            if let Some(prev) = previous_end {
                if start < prev {
                    return Err(LadderError::NotAscending {
                        range: i,
                        start,
                        previous_end: prev,
                    });
                }
            }
            previous_end = Some(end);
            for p in (start.0..=end.0).step_by(step.0 as usize) {
                on[p as usize] = true;
            }
        }
        // $0 and $1 bound the ladder but are never limit prices (as in TickLadder).
        on[0] = false;
        on[PRICE_SCALE as usize] = false;
        let prices: Vec<Price> = (0..=PRICE_SCALE).filter(|&p| on[p as usize]).map(Price).collect();
        // Markets name their structure, but the ranges are the truth: match on the price set so a
        // structure written with different (equivalent) ranges is still recognised.
        for structure in [
            LevelStructure::LinearCent,
            LevelStructure::DeciCent,
            LevelStructure::TaperedDeciCent,
        ] {
            let ticks = TickLadder::new(structure);
            if ticks.prices() == prices.as_slice() {
                return Ok(MarketLadder::with_ticks(ticks, fees));
            }
        }
        Err(LadderError::Unsupported { prices: prices.len() })
    }

    fn with_ticks(ticks: TickLadder, fees: FeeRates) -> MarketLadder {
        let table = |f: &dyn Fn(Price) -> Fx| ticks.prices().iter().map(|&p| f(p)).collect::<Box<[Fx]>>();
        let prob = table(&|p| Prob::from_price(p).0);
        let logit = table(&|p| logit_of(p.0));
        let pq = table(&|p| ratio(pq_e8(p), 100_000_000));
        // rate (1e-4) * P(1-P) (1e-8) is in 1e-12 dollars per contract.
        let taker_fee = table(&|p| ratio(i128::from(fees.taker_e4) * pq_e8(p), 1_000_000_000_000));
        let maker_fee = table(&|p| ratio(i128::from(fees.maker_e4) * pq_e8(p), 1_000_000_000_000));
        MarketLadder {
            ticks,
            fees,
            prob,
            logit,
            pq,
            taker_fee,
            maker_fee,
        }
    }

    #[inline]
    pub fn structure(&self) -> LevelStructure {
        self.ticks.structure()
    }

    /// The shared price <-> index map (the same one the local exchange validates orders with).
    #[inline]
    pub fn ticks(&self) -> &TickLadder {
        &self.ticks
    }

    #[inline]
    pub fn fees(&self) -> FeeRates {
        self.fees
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.ticks.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ticks.is_empty()
    }

    /// `None` for a price off this ladder (including $0 and $1).
    #[inline]
    pub fn tick(&self, price: Price) -> Option<Tick> {
        self.ticks.index(price).map(|i| Tick(i as u16))
    }

    #[inline]
    pub fn price(&self, tick: Tick) -> Price {
        self.ticks.price(tick.index())
    }

    #[inline]
    pub fn min_tick(&self) -> Tick {
        Tick(0)
    }

    #[inline]
    pub fn max_tick(&self) -> Tick {
        Tick(self.len() as u16 - 1)
    }

    /// The tick `steps` away (positive is up), or `None` past either end.
    #[inline]
    pub fn offset(&self, tick: Tick, steps: i32) -> Option<Tick> {
        let i = i64::from(tick.0) + i64::from(steps);
        (0..self.len() as i64).contains(&i).then_some(Tick(i as u16))
    }

    #[inline]
    pub fn prob(&self, tick: Tick) -> Prob {
        Prob(self.prob[tick.index()])
    }

    /// logit(p); exactly 0 at $0.50 and exactly antisymmetric (logit(1-p) = -logit(p)).
    #[inline]
    pub fn logit(&self, tick: Tick) -> Logit {
        Logit(self.logit[tick.index()])
    }

    /// p(1-p): the binary's variance, and dp/dlogit (converts logit spreads to price spreads).
    #[inline]
    pub fn pq(&self, tick: Tick) -> Fx {
        self.pq[tick.index()]
    }

    /// Taker fee per contract in dollars before rounding: the marginal cost of crossing at this
    /// price for an order large enough that the per-order cent rounding is noise.
    #[inline]
    pub fn taker_fee_per_contract(&self, tick: Tick) -> Fx {
        self.taker_fee[tick.index()]
    }

    /// Maker fee per contract in dollars before rounding (0 on series without maker fees).
    #[inline]
    pub fn maker_fee_per_contract(&self, tick: Tick) -> Fx {
        self.maker_fee[tick.index()]
    }

    /// Exact taker fee of one order of `qty` at `price` (see [`order_fee`]).
    #[inline]
    pub fn taker_fee(&self, price: Price, qty: Qty) -> Money {
        order_fee(self.fees.taker_e4, price, qty)
    }

    /// Exact maker fee of one order of `qty` at `price`.
    #[inline]
    pub fn maker_fee(&self, price: Price, qty: Qty) -> Money {
        order_fee(self.fees.maker_e4, price, qty)
    }

    /// Brings a model probability onto the ladder. `None` only for Floor below the lowest price
    /// or Ceil above the highest: there is no price to quote on that side.
    #[inline]
    pub fn snap(&self, p: Prob, mode: Snap) -> Option<Tick> {
        snap_sorted(&self.prob, p.0, mode)
    }

    /// As [`MarketLadder::snap`] for a logit; logit is monotone in p, so no exp is needed. For
    /// `Nearest` the distance is measured in logit units, the model's own metric.
    #[inline]
    pub fn snap_logit(&self, x: Logit, mode: Snap) -> Option<Tick> {
        snap_sorted(&self.logit, x.0, mode)
    }
}

/// P(1-P) in 1e-8 dollars^2.
fn pq_e8(p: Price) -> i128 {
    let p = i128::from(p.0);
    p * (i128::from(PRICE_SCALE) - p)
}

/// `num / den` in 32.32, rounded to nearest.
fn ratio(num: i128, den: i128) -> Fx {
    Fx::from_bits((((num << 32) + den / 2) / den) as i64)
}

/// Built at construction only, so a float `ln` is fine here; computing the lower half and
/// mirroring makes logit(0.5) = 0 and the antisymmetry exact whatever libm rounds.
fn logit_of(p: u32) -> Fx {
    let half = PRICE_SCALE / 2;
    if p > half {
        return -logit_of(PRICE_SCALE - p);
    }
    Fx::from_num((f64::from(p) / f64::from(PRICE_SCALE - p)).ln())
}

fn snap_sorted(table: &[Fx], x: Fx, mode: Snap) -> Option<Tick> {
    let below = table.partition_point(|&v| v < x);
    let tick = |i: usize| Some(Tick(i as u16));
    match mode {
        Snap::Ceil => (below < table.len()).then_some(Tick(below as u16)),
        Snap::Floor => {
            let at_or_below = if table.get(below) == Some(&x) { below + 1 } else { below };
            at_or_below.checked_sub(1).map(|i| Tick(i as u16))
        }
        Snap::Nearest => {
            if below == 0 {
                tick(0)
            } else if below == table.len() {
                tick(table.len() - 1)
            } else if x - table[below - 1] <= table[below] - x {
                tick(below - 1)
            } else {
                tick(below)
            }
        }
    }
}
