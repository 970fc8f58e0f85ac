//! Kalshi's rate limits as the protocol defines them (since 2026-04-23): the account tiers and
//! their read and write token rates, and what each request costs. The exchange enforces them
//! with token buckets; the engine paces itself by the same numbers.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Basic,
    Advanced,
    Expert,
    Premier,
    Paragon,
    Prime,
    Prestige,
    /// No limits: for benchmarks and stress tests of the engine itself.
    Unlimited,
}

impl Tier {
    pub fn parse(name: &str) -> Option<Tier> {
        serde_json::from_value(serde_json::Value::String(name.to_ascii_lowercase())).ok()
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::Basic => "basic",
            Tier::Advanced => "advanced",
            Tier::Expert => "expert",
            Tier::Premier => "premier",
            Tier::Paragon => "paragon",
            Tier::Prime => "prime",
            Tier::Prestige => "prestige",
            Tier::Unlimited => "unlimited",
        }
    }

    /// (read tokens/s, write tokens/s).
    pub fn rates(self) -> (f64, f64) {
        match self {
            Tier::Basic => (200.0, 100.0),
            Tier::Advanced => (300.0, 300.0),
            Tier::Expert => (600.0, 600.0),
            Tier::Premier => (1000.0, 1000.0),
            Tier::Paragon => (2000.0, 2000.0),
            Tier::Prime => (4000.0, 4000.0),
            Tier::Prestige => (10_000.0, 8000.0),
            Tier::Unlimited => (f64::INFINITY, f64::INFINITY),
        }
    }

    /// Bucket capacities in seconds of budget: write buckets above Basic and the Basic and
    /// Advanced read buckets hold 2 s; the Basic write bucket and higher read buckets hold 1 s.
    pub fn capacities(self) -> (f64, f64) {
        let (r, w) = self.rates();
        let read_s = if matches!(self, Tier::Basic | Tier::Advanced) { 2.0 } else { 1.0 };
        let write_s = if self == Tier::Basic { 1.0 } else { 2.0 };
        (r * read_s, w * write_s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    Read,
    Write,
}

pub const DEFAULT_COST: u32 = 10;

/// Token cost of a request, by method and path (path under `/trade-api/v2`).
pub fn cost(method: &str, path: &str) -> (Bucket, u32) {
    let legacy = path.starts_with("/portfolio/orders");
    let v2 = path.starts_with("/portfolio/events/orders");
    match method {
        "GET" => {
            // Single-order reads are cheap; everything else costs the default.
            let single = (legacy || v2) && path.matches('/').count() >= 3 && !path.ends_with("queue_positions");
            (Bucket::Read, if single { 2 } else { DEFAULT_COST })
        }
        "DELETE" if v2 => (Bucket::Write, 2),
        // Legacy mutations were priced up to push clients to the V2 endpoints.
        "DELETE" if legacy => (Bucket::Write, 10),
        "POST" if legacy && (path.ends_with("/decrease")) => (Bucket::Write, 10),
        "POST" if legacy => (Bucket::Write, 50),
        "POST" if v2 && path.ends_with("/decrease") => (Bucket::Write, 2),
        "POST" | "PUT" if v2 => (Bucket::Write, DEFAULT_COST),
        _ => (Bucket::Read, DEFAULT_COST),
    }
}

/// The table `GET /account/endpoint_costs` reports: every non-default cost.
pub fn endpoint_costs() -> Vec<(&'static str, &'static str, u32)> {
    vec![
        ("GET", "/trade-api/v2/portfolio/orders/{order_id}", 2),
        ("GET", "/trade-api/v2/portfolio/events/orders/{order_id}", 2),
        ("POST", "/trade-api/v2/portfolio/orders", 50),
        ("POST", "/trade-api/v2/portfolio/orders/batched", 50),
        ("POST", "/trade-api/v2/portfolio/orders/{order_id}/amend", 50),
        ("POST", "/trade-api/v2/portfolio/orders/{order_id}/decrease", 10),
        ("DELETE", "/trade-api/v2/portfolio/orders/{order_id}", 10),
        ("DELETE", "/trade-api/v2/portfolio/orders/batched", 10),
        ("DELETE", "/trade-api/v2/portfolio/events/orders/{order_id}", 2),
        ("DELETE", "/trade-api/v2/portfolio/events/orders/batched", 2),
        ("DELETE", "/trade-api/v2/portfolio/events/orders", 2),
        ("POST", "/trade-api/v2/portfolio/events/orders/{order_id}/decrease", 2),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_creates_cost_more_than_v2() {
        assert_eq!(cost("POST", "/portfolio/orders"), (Bucket::Write, 50));
        assert_eq!(cost("POST", "/portfolio/events/orders"), (Bucket::Write, 10));
        assert_eq!(cost("DELETE", "/portfolio/events/orders/abc"), (Bucket::Write, 2));
        assert_eq!(cost("GET", "/markets"), (Bucket::Read, 10));
        assert_eq!(Tier::parse("Premier"), Some(Tier::Premier));
        assert_eq!(Tier::parse("nope"), None);
    }
}
