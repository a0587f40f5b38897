//! The command line. Every setting is a flag with an `HERALD_*` environment variable.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use herald_core::config::{parse_allow_list, DatabaseArgs};
use herald_core::targets::AllowList;

#[derive(Debug, Parser)]
#[command(name = "herald", version, about = "Herald: reliable, signed webhook delivery from a PostgreSQL outbox")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process: migrations, the HTTP API, the outbox-poller, the delivery-worker.
    All(AllArgs),
    /// The HTTP API alone.
    Producer(ProducerArgs),
    /// Apply the database migrations, then exit.
    Migrate(MigrateArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its API token (shown once) alone on standard output.
    Create(TenantArgs),
    /// Print a new API token for an existing tenant.
    Token(TenantArgs),
}

#[derive(Debug, Args)]
pub struct TenantArgs {
    /// The tenant's name: 1 to 63 characters of a-z 0-9 _ -.
    pub name: String,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
}

#[derive(Debug, Args, Clone)]
pub struct ListenArgs {
    /// Address of the HTTP API and of /healthz, /readyz, /metrics.
    #[arg(long, env = "HERALD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "HERALD_MAX_PAYLOAD_BYTES", default_value_t = 262_144)]
    pub max_payload_bytes: usize,

    /// Non-public target addresses to allow: CIDRs, comma-separated, or `all`.
    #[arg(long, env = "HERALD_ALLOW_PRIVATE_TARGETS", default_value = "", value_parser = parse_allow_list, hide_default_value = true)]
    pub allow_private_targets: AllowList,
}

#[derive(Debug, Args)]
pub struct AllArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct ProducerArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}
