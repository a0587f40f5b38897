//! The `herald` binary: reads its settings, starts logging, and runs one command until a
//! shutdown signal. Everything else lives in the library (`herald::run`).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = herald::Cli::parse();
    let telemetry = herald::init_logging();
    let code = match herald::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}
