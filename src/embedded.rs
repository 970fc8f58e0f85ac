//! The embedded venue: the local Kalshi exchange started in-process on loopback, kmm's default
//! when no venue is configured. It exists only in builds with the `embedded-venue` feature (the
//! default); a trading binary built without it links no HTTP server stack and refuses, with the
//! way out, a configuration that asks for it.

use crate::config::Config;
use std::path::PathBuf;

#[cfg(feature = "embedded-venue")]
pub struct EmbeddedVenue {
    running: local_exchange::server::RunningExchange,
}

#[cfg(feature = "embedded-venue")]
impl EmbeddedVenue {
    /// Starts the exchange on `tokio` with the configured scenario and seed and writes its info
    /// file (URLs, CA, keys) under the log directory; returns the venue and that file's path.
    pub fn start(cfg: &Config, tokio: &tokio::runtime::Runtime) -> anyhow::Result<(EmbeddedVenue, PathBuf)> {
        use anyhow::Context;
        let scenario = match &cfg.scenario {
            Some(p) => local_exchange::scenario::Scenario::load(p)?,
            None => local_exchange::scenario::Scenario::default_calm(),
        };
        let server = local_exchange::server::ServerConfig {
            state_dir: cfg.log_dir.join("exchange"),
            seed: cfg.seed,
            ..Default::default()
        };
        let opts = local_exchange::cli::LaunchOptions {
            server,
            journal: None,
            tier_override: None,
        };
        let running = tokio
            .block_on(local_exchange::cli::launch(&scenario, opts))
            .context("starting the embedded local exchange")?;
        let info_path = cfg.log_dir.join("exchange").join("info.json");
        local_exchange::server::write_info(&info_path, &running.info)?;
        Ok((EmbeddedVenue { running }, info_path))
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        self.running.stop()
    }
}

/// In a build without the embedded venue there is nothing to start.
#[cfg(not(feature = "embedded-venue"))]
pub enum EmbeddedVenue {}

#[cfg(not(feature = "embedded-venue"))]
impl EmbeddedVenue {
    pub fn start(_cfg: &Config, _tokio: &tokio::runtime::Runtime) -> anyhow::Result<(EmbeddedVenue, PathBuf)> {
        anyhow::bail!(
            "this kmm was built without the embedded local exchange (cargo feature `embedded-venue`): \
             give --info-file of a running one, --rest-url and --ws-url, or --venue demo|prod"
        )
    }

    pub fn stop(self) -> anyhow::Result<()> {
        match self {}
    }
}
