//! The Herald binary's library: the command line (contract section 7) and the wiring of
//! components into processes. `herald all` runs the API, the outbox-poller and the
//! delivery-worker in one process; each also runs alone.
//!
//! Must not: hold business rules. Those live in the component crates.

mod cli;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use herald_core::clock::{self, SharedClock};
use herald_core::db;
use herald_producer::api::{self, AppState};
use tokio_util::sync::CancellationToken;

pub use cli::Cli;
use cli::{Command, TenantCommand};

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let clock = clock::system();
    match cli.command {
        Command::Migrate(args) => {
            let applied = migrate(&args.db.database_url.0, &clock).await?;
            eprintln!(
                "migrations applied: {}",
                if applied.is_empty() { "none (already current)".into() } else { applied.join(", ") }
            );
            Ok(())
        }
        Command::Tenant(TenantCommand::Create(args)) => {
            let mut client = connect(&args.db.database_url.0).await?;
            let token = herald_producer::tenant::create(&mut client, &args.name, clock.now()).await?;
            println!("{token}");
            Ok(())
        }
        Command::Tenant(TenantCommand::Token(args)) => {
            let mut client = connect(&args.db.database_url.0).await?;
            let token = herald_producer::tenant::issue_token(&mut client, &args.name, clock.now()).await?;
            println!("{token}");
            Ok(())
        }
        Command::All(args) => {
            migrate(&args.db.database_url.0, &clock).await?;
            let pool = db::pool(&args.db.database_url.0, args.db.database_pool_size)?;
            let shutdown = shutdown_signal();
            let state = AppState {
                pool: pool.clone(),
                clock: clock.clone(),
                allow: args.api.allow_private_targets.clone(),
                max_payload_bytes: args.api.max_payload_bytes,
            };
            serve(args.listen.listen, api::router(state), shutdown).await
        }
        Command::Producer(args) => {
            let pool = db::pool(&args.db.database_url.0, args.db.database_pool_size)?;
            let state = AppState {
                pool,
                clock,
                allow: args.api.allow_private_targets.clone(),
                max_payload_bytes: args.api.max_payload_bytes,
            };
            serve(args.listen.listen, api::router(state), shutdown_signal()).await
        }
    }
}

/// A connection, retried with backoff while the database is starting or restarting.
async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let attempt = || async { db::connect(url).await };
    attempt
        .retry(ExponentialBuilder::default().with_max_times(8).with_max_delay(Duration::from_secs(5)))
        .notify(|e, wait| tracing::warn!(error = %e, ?wait, "database not reachable yet; retrying"))
        .await
        .context("connecting to HERALD_DATABASE_URL")
}

async fn migrate(url: &str, clock: &SharedClock) -> anyhow::Result<Vec<String>> {
    connect(url).await?;
    db::migrate(url, clock).await.context("migrating the database")
}

/// Cancelled on SIGINT or SIGTERM.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}

async fn serve(addr: SocketAddr, app: axum::Router, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
    tracing::info!(%addr, "Herald listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("serving HTTP")
}
