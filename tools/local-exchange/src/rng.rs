//! A small, self-contained deterministic PRNG for the simulator.
//!
//! xoshiro256** (Blackman & Vigna) seeded through splitmix64. Written out here rather than taken
//! from `rand` so that a seed gives the same order flow, and so the same journal, on every
//! version of every dependency. The distributions are textbook algorithms written against
//! [`Rng::uniform`] only; floats are fine here (this drives simulated traders, never the
//! exchange's accounting).

/// One splitmix64 step: advances `state` and returns a well-mixed 64-bit value.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mixes several words into one, order-sensitively (a stateless hash for keyed draws).
pub fn mix(words: &[u64]) -> u64 {
    let mut state = 0x243F_6A88_85A3_08D3u64;
    let mut out = 0u64;
    for &w in words {
        state ^= w;
        out = splitmix64(&mut state);
        state = out;
    }
    out
}

/// A uniform in (0, 1) from a 64-bit word: never exactly 0 or 1.
fn unit_open(word: u64) -> f64 {
    ((word >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal that depends only on `key` (Box-Muller over two hashed uniforms).
/// Used where a value must be the same however often it is asked for (oracle noise).
pub fn keyed_normal(key: &[u64]) -> f64 {
    let h = mix(key);
    let mut s = h;
    let u1 = unit_open(splitmix64(&mut s));
    let u2 = unit_open(splitmix64(&mut s));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// xoshiro256**: 256 bits of state, period 2^256 - 1, fast and statistically strong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Seeds the state with four splitmix64 outputs (never all zero).
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm)];
        Rng { s }
    }

    /// An independent stream for `stream`: a pure function of this generator's current state
    /// and the id (this generator does not advance), so fork the master before drawing from it
    /// and each agent's stream stays the same whatever the others do.
    pub fn fork(&self, stream: u64) -> Rng {
        Rng::new(mix(&[self.s[0], self.s[1], self.s[2], self.s[3], stream]))
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1): safe to take the logarithm of.
    pub fn uniform_open(&mut self) -> f64 {
        unit_open(self.next_u64())
    }

    /// Uniform in [lo, hi).
    pub fn range_f64(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject). `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        let mut low = m as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// Uniform index into a non-empty slice of length `len`.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Exponential with the given rate (mean 1/rate).
    pub fn exponential(&mut self, rate: f64) -> f64 {
        -self.uniform_open().ln() / rate
    }

    /// Standard normal (Box-Muller; one draw per call, the sine half is discarded so the
    /// generator has no hidden cache).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform_open();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn normal_with(&mut self, mean: f64, sd: f64) -> f64 {
        mean + sd * self.normal()
    }

    /// Lognormal with the given median and log-space standard deviation.
    pub fn lognormal_median(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Pareto (type I) with scale `x_min` and tail index `alpha`: P(X > x) = (x_min/x)^alpha.
    pub fn pareto(&mut self, x_min: f64, alpha: f64) -> f64 {
        x_min * self.uniform_open().powf(-1.0 / alpha)
    }

    /// Poisson with mean `lambda`: multiplication (Knuth) below 30, PTRS (Hörmann 1993) above.
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda < 30.0 {
            let limit = (-lambda).exp();
            let mut k = 0u64;
            let mut prod = self.uniform_open();
            while prod > limit {
                k += 1;
                prod *= self.uniform_open();
            }
            return k;
        }
        let slam = lambda.sqrt();
        let loglam = lambda.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform_open();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k as u64;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln() <= -lambda + k * loglam - log_gamma(k + 1.0) {
                return k as u64;
            }
        }
    }
}

/// ln Γ(x) for x > 0 (Stirling series after shifting x above 7, as numpy's `random_loggam`).
pub fn log_gamma(x: f64) -> f64 {
    const A: [f64; 10] = [
        8.333333333333333e-02,
        -2.777777777777778e-03,
        7.936507936507937e-04,
        -5.952380952380952e-04,
        8.417508417508418e-04,
        -1.917526917526918e-03,
        6.41025641025641e-03,
        -2.955065359477124e-02,
        1.796443723688307e-01,
        -1.39243221690590e+00,
    ];
    if x == 1.0 || x == 2.0 {
        return 0.0;
    }
    let n = if x < 7.0 { (7.0 - x) as i32 } else { 0 };
    let mut x0 = x + f64::from(n);
    let x2 = 1.0 / (x0 * x0);
    let mut gl0 = A[9];
    for k in (0..9).rev() {
        gl0 = gl0 * x2 + A[k];
    }
    let mut gl = gl0 / x0 + 0.5 * (std::f64::consts::TAU).ln() + (x0 - 0.5) * x0.ln() - x0;
    if x < 7.0 {
        for _ in 0..n {
            x0 -= 1.0;
            gl -= x0.ln();
        }
    }
    gl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_reference_vector() {
        // Reference: state {1, 2, 3, 4} gives 11520, 0, 1509978240, 1215971899390074240.
        let mut r = Rng { s: [1, 2, 3, 4] };
        assert_eq!(r.next_u64(), 11520);
        assert_eq!(r.next_u64(), 0);
        assert_eq!(r.next_u64(), 1509978240);
        assert_eq!(r.next_u64(), 1215971899390074240);
    }

    #[test]
    fn splitmix_matches_reference_vector() {
        let mut s = 1234567u64;
        assert_eq!(splitmix64(&mut s), 6457827717110365317);
        assert_eq!(splitmix64(&mut s), 3203168211198807973);
    }

    #[test]
    fn same_seed_same_stream_and_forks_differ() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        let master = Rng::new(7);
        let mut f1 = master.fork(1);
        let mut f2 = master.fork(2);
        assert_ne!(f1.next_u64(), f2.next_u64());
        assert_eq!(master.fork(1), master.fork(1));
    }

    #[test]
    fn distributions_have_the_right_moments() {
        let mut r = Rng::new(42);
        let n = 200_000;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let var = |v: &[f64]| {
            let m = mean(v);
            v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64
        };
        let u: Vec<f64> = (0..n).map(|_| r.uniform()).collect();
        assert!((mean(&u) - 0.5).abs() < 0.005);
        let e: Vec<f64> = (0..n).map(|_| r.exponential(4.0)).collect();
        assert!((mean(&e) - 0.25).abs() < 0.005);
        let z: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        assert!(mean(&z).abs() < 0.01);
        assert!((var(&z) - 1.0).abs() < 0.02);
        for lambda in [0.5, 3.0, 29.0, 45.0, 1000.0] {
            let p: Vec<f64> = (0..n).map(|_| r.poisson(lambda) as f64).collect();
            assert!(
                (mean(&p) - lambda).abs() < 0.02 * lambda + 0.02,
                "poisson {lambda}: mean {}",
                mean(&p)
            );
            assert!((var(&p) - lambda).abs() < 0.05 * lambda + 0.05, "poisson {lambda}: var {}", var(&p));
        }
        // Pareto: P(X > 10 x_min) = 10^-alpha.
        let tail = (0..n).filter(|_| r.pareto(1.0, 1.5) > 10.0).count() as f64 / n as f64;
        assert!((tail - 10f64.powf(-1.5)).abs() < 0.003);
        let ln: Vec<f64> = (0..n).map(|_| r.lognormal_median(50.0, 0.5).ln()).collect();
        assert!((mean(&ln) - 50f64.ln()).abs() < 0.01);
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            counts[r.below(7) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_400..10_600).contains(&c)));
    }

    #[test]
    fn log_gamma_is_accurate() {
        assert!((log_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((log_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        assert!((log_gamma(101.0) - (1..=100).map(|k| (k as f64).ln()).sum::<f64>()).abs() < 1e-9);
    }

    #[test]
    fn keyed_normal_is_stable() {
        assert_eq!(keyed_normal(&[1, 2, 3]), keyed_normal(&[1, 2, 3]));
        assert_ne!(keyed_normal(&[1, 2, 3]), keyed_normal(&[1, 2, 4]));
    }
}
