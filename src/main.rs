//! The `yeastar-exporter` binary: parse flags, set up logging, run.

use clap::Parser;
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
