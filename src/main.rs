//! kmm: a low-latency hybrid maker/taker market-making engine for Kalshi.
//!
//! `kmm exchange [OPTIONS]` runs the embedded local Kalshi exchange (the same program as
//! `local-exchange`; see tools/local-exchange/README.md).

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_default();
    match args.next() {
        Some(cmd) if cmd == "exchange" => local_exchange::cli::main_from(std::iter::once(program.clone()).chain(args)),
        _ => {
            eprintln!(
                "usage: {} exchange [OPTIONS]   run the embedded local Kalshi exchange (--help for options)",
                program.to_string_lossy()
            );
            ExitCode::from(2)
        }
    }
}
