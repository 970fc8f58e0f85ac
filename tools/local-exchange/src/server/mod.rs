//! The network face of the exchange: REST, WebSocket, oracle and admin endpoints on one port,
//! over TLS (a certificate generated at start-up) or plain TCP.
//!
//! All state sits in [`Shared`]. The exchange core is behind one mutex held only for the
//! duration of a single operation; every operation's events are published as one numbered
//! [`Batch`] while the lock is still held, so WebSocket subscribers see one total order and can
//! line a snapshot up with the stream exactly.

pub mod admin;
pub mod oracle;
pub mod ratelimit;
pub mod rest;
pub mod ws;

use crate::engine::{ExEvent, Exchange, MarketId};
use crate::faults::{Fault, FaultState, ScheduledFault};
use anyhow::Context;
use axum::Router;
use kalshi_proto::auth::{self, AccountKey, KeyKind, Verifier};
use kalshi_proto::units::Money;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

/// The longest the simulation driver sleeps, whatever is scheduled: a bound on how late
/// anything scheduled without waking it could run.
const DRIVER_MAX_SLEEP_MS: u64 = 20;

/// The simulated traders and the hidden true-probability path, as the server drives them.
pub trait Population: Send {
    /// Runs every simulated event up to `until_ms`.
    fn advance(&mut self, ex: &mut Exchange, until_ms: u64);
    /// What the oracle feed publishes now (true path with the configured noise and lead/lag).
    fn oracle_probability(&self, market: MarketId, now_ms: u64) -> f64;
    /// The hidden value itself (admin and tests only).
    fn true_probability(&self, market: MarketId) -> f64;
    /// When the next simulated event is due, so the driver can sleep until then.
    fn next_due_ms(&self) -> Option<u64>;
}

/// No simulated traders: a bare venue for protocol tests.
pub struct NoPopulation;

impl Population for NoPopulation {
    fn advance(&mut self, ex: &mut Exchange, until_ms: u64) {
        ex.expire(until_ms);
    }
    fn oracle_probability(&self, _: MarketId, _: u64) -> f64 {
        0.5
    }
    fn true_probability(&self, _: MarketId) -> f64 {
        0.5
    }
    fn next_due_ms(&self) -> Option<u64> {
        None
    }
}

/// Simulated time: milliseconds since the session started, at `speed` times wall time.
pub struct Clock {
    start: Instant,
    pub epoch_ms: u64,
    speed: f64,
}

impl Clock {
    pub fn new(epoch_ms: u64, speed: f64) -> Clock {
        Clock {
            start: Instant::now(),
            epoch_ms,
            speed,
        }
    }
    pub fn now_ms(&self) -> u64 {
        (self.start.elapsed().as_secs_f64() * 1000.0 * self.speed) as u64
    }
    /// The wall instant at which `now_ms` first reads `sim_ms` (a microsecond late rather than
    /// early, so a wake-up at it finds the event due).
    pub fn instant_of(&self, sim_ms: u64) -> Instant {
        self.start + Duration::from_secs_f64(sim_ms as f64 / 1000.0 / self.speed) + Duration::from_micros(1)
    }
    /// Unix milliseconds now, for auth timestamps (always wall time).
    pub fn wall_ms() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }
}

/// One operation's events, numbered in publication order.
pub struct Batch {
    pub no: u64,
    pub events: Vec<ExEvent>,
}

pub struct Venue {
    pub exchange: Exchange,
    pub population: Box<dyn Population>,
    /// Number of the last batch published.
    pub batch_no: u64,
    pending_faults: Vec<ScheduledFault>,
    timed_restores: Vec<(u64, Fault)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AccountInfo {
    /// Ordinal among keyed accounts (0, 1, ...), as clients choose an account.
    pub index: usize,
    /// The exchange's internal account number (journal records use it).
    pub account: u32,
    pub user_id: String,
    pub key_id: String,
    pub key_type: String,
    pub private_key_path: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
pub struct Info {
    pub rest_url: String,
    pub ws_url: String,
    pub oracle_url: String,
    pub oracle_ws_url: String,
    pub admin_url: String,
    pub ca_file: Option<PathBuf>,
    pub tls: bool,
    pub port: u16,
    pub markets: Vec<String>,
    pub accounts: Vec<AccountInfo>,
    pub journal: Option<PathBuf>,
    pub seed: u64,
    pub admin_token: String,
    /// Rate-limit tier of the keyed accounts, so clients can pace themselves.
    pub rate_limit_tier: String,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub bind: IpAddr,
    pub port: u16,
    pub tls: bool,
    /// Where keys, the CA file and the info file go.
    pub state_dir: PathBuf,
    pub accounts: usize,
    pub account_cash: Money,
    pub rsa_bits: usize,
    pub auth_window_ms: u64,
    pub ping_interval_ms: u64,
    pub tier: kalshi_proto::ratelimit::Tier,
    /// Simulated seconds per wall second.
    pub speed: f64,
    pub seed: u64,
    /// Capacity of the event fan-out; a subscriber that falls this far behind is dropped with
    /// Kalshi's error 25 (outbound buffer overflow).
    pub fanout_capacity: usize,
    /// Accept WS connections without auth headers (Era-A behaviour for public channels).
    pub public_ws_without_auth: bool,
    pub oracle_interval_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            tls: true,
            state_dir: std::env::temp_dir().join(format!("local-exchange-{}", std::process::id())),
            accounts: 2,
            account_cash: Money::from_cents(10_000_000),
            rsa_bits: 2048,
            auth_window_ms: 30_000,
            ping_interval_ms: 10_000,
            tier: kalshi_proto::ratelimit::Tier::Advanced,
            speed: 1.0,
            seed: 1,
            fanout_capacity: 65_536,
            public_ws_without_auth: false,
            oracle_interval_ms: 100,
        }
    }
}

#[derive(Default)]
pub struct Counters {
    pub rest_requests: AtomicU64,
    pub rest_errors: AtomicU64,
    pub ws_connections: AtomicU64,
    pub ws_messages: AtomicU64,
    pub orders: AtomicU64,
    /// Passes of the simulation driver (it wakes only when something is due).
    pub driver_steps: AtomicU64,
}

pub struct Shared {
    venue: Mutex<Venue>,
    pub events: broadcast::Sender<Arc<Batch>>,
    pub faults: FaultState,
    pub verifier: Verifier,
    pub clock: Clock,
    pub limiter: ratelimit::Limiter,
    pub config: ServerConfig,
    pub counters: Counters,
    pub shutdown: AtomicBool,
    pub deposited: Money,
    /// Guards the admin endpoints; random per session, published in the info file.
    pub admin_token: String,
    /// The simulation driver, woken when something earlier than its planned wake-up is scheduled.
    driver: OnceLock<Thread>,
    /// The simulated millisecond the driver sleeps until.
    driver_wake_ms: AtomicU64,
}

impl Shared {
    /// Locks the venue. Callers publish before unlocking (see [`Shared::with_exchange`]).
    pub fn lock(&self) -> MutexGuard<'_, Venue> {
        // A panic while holding the lock would be a bug; keep serving rather than cascade.
        self.venue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one exchange operation at the current simulated time and publishes its events.
    pub fn with_exchange<R>(&self, f: impl FnOnce(&mut Exchange, u64) -> R) -> R {
        let mut venue = self.lock();
        let now = self.clock.now_ms();
        let out = f(&mut venue.exchange, now);
        self.publish(&mut venue);
        // An order placed with an expiry can be due before the driver's planned wake-up.
        if let Some(t) = venue.exchange.next_expiry_ms() {
            self.wake_driver_by(t);
        }
        out
    }

    /// Wakes the driver now if it sleeps past `due_ms`.
    fn wake_driver_by(&self, due_ms: u64) {
        // Lowering the planned wake-up is what tells a parked driver the wake is real.
        if self.driver_wake_ms.fetch_min(due_ms, Ordering::AcqRel) > due_ms {
            if let Some(driver) = self.driver.get() {
                driver.unpark();
            }
        }
    }

    /// The earliest simulated millisecond at which the driver has work: a population event,
    /// an order expiry, a scheduled fault or a timed restore.
    fn next_due_ms(&self) -> Option<u64> {
        let venue = self.lock();
        [
            venue.population.next_due_ms(),
            venue.exchange.next_expiry_ms(),
            venue.pending_faults.iter().map(|f| f.at_ms).min(),
            venue.timed_restores.iter().map(|(t, _)| *t).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Publishes the outbox as the next batch. Must be called with the venue locked.
    pub fn publish(&self, venue: &mut Venue) {
        let events = venue.exchange.take_events();
        if events.is_empty() {
            return;
        }
        venue.batch_no += 1;
        // No receivers is fine: nobody is subscribed yet.
        let _ = self.events.send(Arc::new(Batch {
            no: venue.batch_no,
            events,
        }));
    }

    /// Applies a fault now: server-side parts are armed, exchange-side parts applied.
    pub fn apply_fault(&self, fault: &Fault) {
        let mut venue = self.lock();
        let now = self.clock.now_ms();
        self.faults.arm(fault, now);
        match fault {
            Fault::PauseTrading { duration_ms } => {
                venue.exchange.set_trading_active(now, false);
                venue.timed_restores.push((now + duration_ms, fault.clone()));
                self.wake_driver_by(now + duration_ms);
            }
            Fault::DeactivateMarket { market, duration_ms } => {
                if let Some(id) = venue.exchange.market_by_ticker(market) {
                    venue.exchange.deactivate(now, id);
                    venue.timed_restores.push((now + duration_ms, fault.clone()));
                    self.wake_driver_by(now + duration_ms);
                }
            }
            _ => {}
        }
        self.publish(&mut venue);
    }

    /// One step of the simulation driver: scheduled faults, restores, the population.
    fn step(&self) {
        self.counters.driver_steps.fetch_add(1, Ordering::Relaxed);
        let mut venue = self.lock();
        let now = self.clock.now_ms();
        let due: Vec<ScheduledFault> = {
            let (due, rest): (Vec<_>, Vec<_>) = venue.pending_faults.drain(..).partition(|f| f.at_ms <= now);
            venue.pending_faults = rest;
            due
        };
        let restores: Vec<Fault> = {
            let (due, rest): (Vec<_>, Vec<_>) = venue.timed_restores.drain(..).partition(|(t, _)| *t <= now);
            venue.timed_restores = rest;
            due.into_iter().map(|(_, f)| f).collect()
        };
        for fault in restores {
            match fault {
                Fault::PauseTrading { .. } => venue.exchange.set_trading_active(now, true),
                Fault::DeactivateMarket { market, .. } => {
                    if let Some(id) = venue.exchange.market_by_ticker(&market) {
                        venue.exchange.activate(now, id);
                    }
                }
                _ => {}
            }
        }
        let Venue { exchange, population, .. } = &mut *venue;
        population.advance(exchange, now);
        self.publish(&mut venue);
        drop(venue);
        for f in due {
            self.apply_fault(&f.fault);
        }
    }
}

/// A running exchange: its addresses, accounts and a handle to stop it.
pub struct RunningExchange {
    pub info: Info,
    pub shared: Arc<Shared>,
    pub local_addr: SocketAddr,
    driver: Option<std::thread::JoinHandle<()>>,
}

impl RunningExchange {
    /// Stops the simulation driver and flushes the journal. Connections close when the
    /// runtime that serves them stops.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        if let Some(h) = self.driver.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        self.shared.lock().exchange.flush_journal().context("flushing the journal")
    }
}

impl Drop for RunningExchange {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn key_kind_for(index: usize) -> KeyKind {
    // Account 0 uses Kalshi's own key format; the others cover every format the SDKs load.
    match index % 3 {
        0 => KeyKind::RsaPkcs1,
        1 => KeyKind::RsaPkcs8,
        _ => KeyKind::Ed25519,
    }
}

/// Starts the exchange on the current tokio runtime: generates keys and TLS material, adds
/// the keyed accounts, binds the listener, writes the info file and starts the driver thread.
pub async fn start(
    config: ServerConfig,
    mut exchange: Exchange,
    population: Box<dyn Population>,
    faults: Vec<ScheduledFault>,
) -> anyhow::Result<RunningExchange> {
    std::fs::create_dir_all(&config.state_dir).with_context(|| format!("creating state directory {}", config.state_dir.display()))?;

    // Key generation is CPU work; a few RSA keys take a noticeable fraction of a second each.
    let n = config.accounts;
    let rsa_bits = config.rsa_bits;
    let keys: Vec<AccountKey> = tokio::task::spawn_blocking(move || {
        (0..n)
            .map(|i| auth::generate_account_key(key_kind_for(i), rsa_bits))
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await
    .context("key generation task")??;

    let mut verifier = Verifier::new().with_window_ms(config.auth_window_ms);
    let mut accounts = Vec::new();
    let mut deposited = Money::ZERO;
    for a in &exchange.accounts {
        deposited += a.cash;
    }
    for (i, key) in keys.iter().enumerate() {
        let user_id = format!("user-{i:04}-{}", &key.key_id[..8]);
        let id = exchange.add_account(user_id.clone(), config.account_cash, false);
        deposited += config.account_cash;
        verifier.add_key(key.key_id.clone(), id, key.public.clone());
        let path = auth::write_private_key(&config.state_dir, &format!("account-{i}"), &key.private_pem)
            .with_context(|| format!("writing the key of account {i}"))?;
        accounts.push(AccountInfo {
            index: i,
            account: id,
            user_id,
            key_id: key.key_id.clone(),
            key_type: key.kind.name().to_string(),
            private_key_path: path,
        });
    }

    let listener = TcpListener::bind((config.bind, config.port))
        .await
        .with_context(|| format!("binding {}:{}", config.bind, config.port))?;
    let local_addr = listener.local_addr()?;
    let host = match config.bind {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let (http, ws) = if config.tls { ("https", "wss") } else { ("http", "ws") };
    let base = format!("{http}://{host}:{}", local_addr.port());
    let ws_base = format!("{ws}://{host}:{}", local_addr.port());

    let tls = if config.tls {
        let material = crate::tls::generate(&[host.trim_matches(['[', ']']).to_string()])?;
        let ca_path = config.state_dir.join("ca.pem");
        kalshi_proto::tls::write_ca(&ca_path, &material.ca_pem).with_context(|| format!("writing {}", ca_path.display()))?;
        Some((material, ca_path))
    } else {
        None
    };

    let info = Info {
        rest_url: format!("{base}/trade-api/v2"),
        ws_url: format!("{ws_base}/trade-api/ws/v2"),
        oracle_url: format!("{base}/oracle/v1"),
        oracle_ws_url: format!("{ws_base}/oracle/v1/ws"),
        admin_url: format!("{base}/admin/v1"),
        ca_file: tls.as_ref().map(|(_, p)| p.clone()),
        tls: config.tls,
        port: local_addr.port(),
        markets: exchange.markets.iter().map(|m| m.spec.ticker.clone()).collect(),
        accounts,
        journal: None,
        seed: config.seed,
        admin_token: auth::random_key_id(),
        rate_limit_tier: config.tier.name().to_string(),
    };

    let (events, _) = broadcast::channel(config.fanout_capacity);
    let limiter = ratelimit::Limiter::new(config.tier, exchange.accounts.len());
    let shared = Arc::new(Shared {
        venue: Mutex::new(Venue {
            exchange,
            population,
            batch_no: 0,
            pending_faults: faults,
            timed_restores: Vec::new(),
        }),
        events,
        faults: FaultState::default(),
        verifier,
        clock: Clock::new(
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            config.speed,
        ),
        limiter,
        config,
        counters: Counters::default(),
        shutdown: AtomicBool::new(false),
        deposited,
        admin_token: info.admin_token.clone(),
        driver: OnceLock::new(),
        driver_wake_ms: AtomicU64::new(0),
    });
    shared.lock().exchange.config.epoch_ms = shared.clock.epoch_ms;

    let app = router(shared.clone());
    let acceptor = tls.as_ref().map(|(m, _)| tokio_rustls::TlsAcceptor::from(m.server_config.clone()));
    tokio::spawn(accept_loop(listener, acceptor, app, shared.clone()));

    let driver_shared = shared.clone();
    let driver = std::thread::Builder::new()
        .name("exchange-sim".into())
        .spawn(move || {
            let shared = driver_shared;
            let _ = shared.driver.set(std::thread::current());
            while !shared.shutdown.load(Ordering::Relaxed) {
                shared.step();
                // Asleep until the next thing is due, not on a fixed tick: the venue shares its
                // host with the client it serves, and each needless wake-up preempts it.
                let now = shared.clock.now_ms();
                let wake = shared
                    .next_due_ms()
                    .map_or(now + DRIVER_MAX_SLEEP_MS, |t| t.min(now + DRIVER_MAX_SLEEP_MS));
                shared.driver_wake_ms.store(wake, Ordering::Release);
                // Something scheduled between the look-up and this store is caught here.
                if shared.next_due_ms().is_some_and(|t| t < wake) {
                    continue;
                }
                let deadline = shared.clock.instant_of(wake);
                let mut left = deadline.saturating_duration_since(Instant::now());
                while !left.is_zero() && !shared.shutdown.load(Ordering::Relaxed) {
                    std::thread::park_timeout(left);
                    if shared.driver_wake_ms.load(Ordering::Acquire) != wake {
                        break;
                    }
                    left = deadline.saturating_duration_since(Instant::now());
                }
            }
        })
        .context("spawning the simulation driver")?;

    Ok(RunningExchange {
        info,
        shared,
        local_addr,
        driver: Some(driver),
    })
}

pub fn write_info(path: &Path, info: &Info) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(info)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    // Renamed into place so a reader polling for the file never sees half of it.
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(rest::router(shared.clone()))
        .merge(ws::router())
        .merge(oracle::router())
        .merge(admin::router())
        .with_state(shared)
}

async fn accept_loop(listener: TcpListener, acceptor: Option<tokio_rustls::TlsAcceptor>, app: Router, shared: Arc<Shared>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                // Out of descriptors or similar: back off briefly rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shared.shutdown.load(Ordering::Relaxed) {
            return;
        }
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move { tower::ServiceExt::oneshot(app, req.map(axum::body::Body::new)).await }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acceptor) => {
                    // A failed handshake only ends this connection.
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                            .with_upgrades()
                            .await;
                    }
                }
                None => {
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                }
            }
        });
    }
}
