//! The `yeastar-exporter` binary: parse flags, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use yeastar_exporter::config::{Cli, Command};

// Each probe makes a few hundred short-lived allocations (requests, JSON, metric families); with
// hundreds of targets glibc's malloc took a sixth of the exporter's CPU in benches/multi_target.rs,
// mimalloc much less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    yeastar_exporter::startup::init_tracing(&cli.exporter.log_level, &cli.exporter.log_format);
    yeastar_exporter::startup::install_panic_hook();
    let runtime = match yeastar_exporter::startup::runtime(cli.exporter.worker_threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("yeastar-exporter: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Some(Command::Simulate(flags)) => yeastar_exporter::sim::run(*flags).await,
        Some(Command::HashPassword { cost }) => {
            yeastar_exporter::server::webconfig::hash_password_command(cost)
        }
        None => yeastar_exporter::startup::run_exporter(cli.exporter).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // --config.check printed every error already.
        Err(e) if e.is::<yeastar_exporter::startup::CheckFailed>() => ExitCode::FAILURE,
        Err(e) => {
            // One line naming what is wrong; never a backtrace for a user's mistake.
            eprintln!("yeastar-exporter: {e:#}");
            ExitCode::FAILURE
        }
    }
}
