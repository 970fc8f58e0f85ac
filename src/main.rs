//! kmm: a low-latency hybrid maker/taker market-making engine for Kalshi.
//!
//! - `kmm [run] [OPTIONS]`: trade. With no venue configured, starts the local Kalshi exchange
//!   in-process and trades against it (`kmm --help` for every option).
//! - `kmm exchange [OPTIONS]`: the local Kalshi exchange alone (see tools/local-exchange/README.md).
//! - `kmm latency-report FILE [--png OUT]`: percentiles and a percentile plot of a latency log.

use clap::Parser;
use kmm::config::{Config, RunArgs};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "kmm latency-report",
    about = "Percentiles and a PNG percentile plot of an HdrHistogram interval log"
)]
struct ReportArgs {
    /// The interval log (kmm writes target/kmm-run/latency.hlog by default).
    file: PathBuf,
    /// Where the plot goes (default: FILE with a .png extension).
    #[arg(long)]
    png: Option<PathBuf>,
    /// Only these stages/tags (repeatable).
    #[arg(long)]
    stage: Vec<String>,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let program = args.first().cloned().unwrap_or_else(|| "kmm".into());
    match args.get(1).and_then(|a| a.to_str()) {
        #[cfg(feature = "embedded-venue")]
        Some("exchange") => local_exchange::cli::main_from(std::iter::once(program).chain(args.into_iter().skip(2))),
        #[cfg(not(feature = "embedded-venue"))]
        Some("exchange") => {
            eprintln!("kmm: this build has no local exchange (cargo feature `embedded-venue`)");
            ExitCode::from(2)
        }
        Some("latency-report") => latency_report(std::iter::once(OsString::from("kmm latency-report")).chain(args.into_iter().skip(2))),
        Some("run") => trade(std::iter::once(program).chain(args.into_iter().skip(2))),
        _ => trade(args),
    }
}

fn trade(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match RunArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let cfg = match Config::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kmm: bad configuration: {e:#}");
            return ExitCode::from(2);
        }
    };
    match kmm::app::run(cfg) {
        Ok(summary) => {
            let _ = kmm::app::print_summary(&summary, &mut std::io::stdout());
            if summary.open_orders_at_exchange > 0 || !summary.positions_match {
                eprintln!("kmm: the session ended with orders open or positions not matching the exchange");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kmm: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn latency_report(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match ReportArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let opts = kmm::report::ReportOptions {
        png: args.png,
        stages: args.stage,
        ..Default::default()
    };
    match kmm::report::latency_report(&args.file, &opts) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kmm latency-report: {e:#}");
            ExitCode::from(1)
        }
    }
}
