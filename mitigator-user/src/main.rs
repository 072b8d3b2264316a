use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    mitigator::cli::main(mitigator::cli::Cli::parse()).await
}
