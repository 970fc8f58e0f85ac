//! A local exchange on loopback for protocol tests, and a signing HTTP client.
#![allow(dead_code)]

use kalshi_proto::auth::Signer;
use kalshi_proto::ladder::LevelStructure;
use kalshi_proto::units::{Money, Price, Qty};
use kalshi_proto::Side;
use local_exchange::book::{AccountId, OrderNo};
use local_exchange::engine::{Exchange, ExchangeConfig, FeeType, MarketSpec, NewOrder};
use local_exchange::server::{self, Clock, NoPopulation, RunningExchange, ServerConfig};
use serde_json::Value;

pub const LIN: &str = "TEST-LIN";
pub const DECI: &str = "TEST-DECI";
pub const TAPER: &str = "TEST-TAPER";

pub struct Venue {
    pub running: RunningExchange,
    pub http: reqwest::Client,
    pub signers: Vec<Signer>,
    /// An unlimited liquidity provider placed straight into the engine.
    pub lp: AccountId,
}

pub fn spec(ticker: &str, structure: LevelStructure, fee_type: FeeType) -> MarketSpec {
    MarketSpec {
        ticker: ticker.into(),
        event_ticker: format!("{ticker}-EV"),
        series_ticker: "TEST".into(),
        title: format!("Test market {ticker}"),
        structure,
        fee_type,
        fee_multiplier_e4: 10_000,
        open_ms: 0,
        close_ms: 3_600_000,
        settlement_timer_s: 60,
    }
}

pub async fn start_with(mut config: ServerConfig) -> Venue {
    let mut ex = Exchange::new(ExchangeConfig::default());
    ex.add_market(spec(LIN, LevelStructure::LinearCent, FeeType::QuadraticWithMakerFees), 0);
    ex.add_market(spec(DECI, LevelStructure::DeciCent, FeeType::Quadratic), 0);
    ex.add_market(spec(TAPER, LevelStructure::TaperedDeciCent, FeeType::Quadratic), 0);
    let lp = ex.add_account("lp".into(), Money::from_cents(1_000_000_000), true);
    config.state_dir = std::env::temp_dir().join(format!("lx-test-{}-{}", std::process::id(), kalshi_proto::auth::random_key_id()));
    let tls = config.tls;
    let running = server::start(config, ex, Box::new(NoPopulation), Vec::new())
        .await
        .expect("exchange starts");
    let mut builder = reqwest::Client::builder().use_rustls_tls();
    if tls {
        let ca = std::fs::read(running.info.ca_file.as_ref().unwrap()).unwrap();
        builder = builder
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .tls_built_in_root_certs(false);
    }
    let http = builder.build().unwrap();
    let signers = running
        .info
        .accounts
        .iter()
        .map(|a| Signer::from_pem(&std::fs::read_to_string(&a.private_key_path).unwrap()).unwrap())
        .collect();
    Venue {
        running,
        http,
        signers,
        lp,
    }
}

pub async fn start() -> Venue {
    start_with(ServerConfig {
        accounts: 3,
        ..ServerConfig::default()
    })
    .await
}

impl Venue {
    pub fn base(&self) -> &str {
        &self.running.info.rest_url
    }

    pub fn account_id(&self, who: usize) -> AccountId {
        self.running.info.accounts[who].account
    }

    /// Sends a signed request as keyed account `who` (None: unsigned). `path` is relative to
    /// `/trade-api/v2` and may carry a query string (which is not signed).
    pub async fn call(&self, who: Option<usize>, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{}", self.base(), path);
        let method_v = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method_v, &url);
        if let Some(i) = who {
            let signed_path = format!("/trade-api/v2{}", path.split('?').next().unwrap());
            let headers = self.signers[i].headers(&self.running.info.accounts[i].key_id, Clock::wall_ms(), method, &signed_path);
            for (k, v) in headers {
                req = req.header(k, v);
            }
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, who: usize, path: &str) -> (u16, Value) {
        self.call(Some(who), "GET", path, None).await
    }
    pub async fn post(&self, who: usize, path: &str, body: Value) -> (u16, Value) {
        self.call(Some(who), "POST", path, Some(body)).await
    }
    pub async fn delete(&self, who: usize, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(Some(who), "DELETE", path, body).await
    }

    /// Rests a liquidity provider's order directly in the engine.
    pub fn lp_order(&self, ticker: &str, side: Side, price: &str, count: &str) -> OrderNo {
        self.running.shared.with_exchange(|ex, now| {
            let m = ex.market_by_ticker(ticker).unwrap();
            ex.place(
                now,
                NewOrder::limit(self.lp, m, side, Price::parse(price).unwrap(), Qty::parse(count).unwrap()),
            )
            .unwrap()
            .order
            .id
        })
    }
}
