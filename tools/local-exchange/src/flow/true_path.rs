//! The hidden true probability: a logit random walk with news and random jumps, generated in
//! fixed steps ahead of and kept behind the present, so a leading oracle can publish the
//! future and a lagging one (or an informed trader's delay) can read the past.

use crate::rng::Rng;
use std::collections::VecDeque;

/// Logit bound of the true path: p stays within about [0.0003, 0.9997].
pub(super) const X_MAX: f64 = 8.0;

pub fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

pub(super) struct Path {
    pub(super) rng: Rng,
    pub(super) step_ms: u64,
    pub(super) sigma_step: f64,
    pub(super) jump_lambda_step: f64,
    pub(super) jump_sd: f64,
    /// Scheduled jumps (at_ms, logit jump), sorted by time.
    pub(super) news: Vec<(u64, f64)>,
    pub(super) news_generated: usize,
    /// Samples: xs[i] is the logit at step first_k + i (time (first_k + i) * step_ms).
    pub(super) first_k: u64,
    pub(super) xs: VecDeque<f64>,
}

impl Path {
    fn last_k(&self) -> u64 {
        self.first_k + self.xs.len() as u64 - 1
    }

    pub(super) fn ensure(&mut self, k: u64) {
        while self.last_k() < k {
            let next = self.last_k() + 1;
            let t_hi = next * self.step_ms;
            let mut x = *self.xs.back().expect("path has a sample") + self.sigma_step * self.rng.normal();
            while let Some(&(at, jump)) = self.news.get(self.news_generated) {
                if at > t_hi {
                    break;
                }
                x += jump;
                self.news_generated += 1;
            }
            if self.jump_lambda_step > 0.0 {
                for _ in 0..self.rng.poisson(self.jump_lambda_step) {
                    x += self.jump_sd * self.rng.normal();
                }
            }
            self.xs.push_back(x.clamp(-X_MAX, X_MAX));
        }
    }

    /// The logit at step `k`, clamped to the samples held.
    pub(super) fn at(&self, k: u64) -> f64 {
        let k = k.clamp(self.first_k, self.last_k());
        self.xs[(k - self.first_k) as usize]
    }

    pub(super) fn trim_before(&mut self, k: u64) {
        while self.first_k < k && self.xs.len() > 1 {
            self.xs.pop_front();
            self.first_k += 1;
        }
    }
}
