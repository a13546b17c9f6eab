//! The `yeastar-exporter` binary: parse flags, set up logging, run.

use clap::Parser;

// Each probe makes a few hundred short-lived allocations (requests, JSON, metric families); with
// hundreds of targets glibc's malloc took a sixth of the exporter's CPU in benches/multi_target.rs,
// mimalloc much less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use yeastar_exporter::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    yeastar_exporter::init_tracing(&cli.exporter.log_level, &cli.exporter.log_format);
    match cli.command {
        Some(Command::Simulate(flags)) => yeastar_exporter::sim::run(flags).await,
        None => yeastar_exporter::run_exporter(cli.exporter).await,
    }
}
