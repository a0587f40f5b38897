//! The command line. Every setting is a flag with an `HERALD_*` environment variable.

use herald_delivery_worker::WorkerConfig;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use herald_core::config::{parse_allow_list, parse_duration, DatabaseArgs, RetrySchedule};
use herald_core::targets::AllowList;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: reliable, signed webhook delivery from a PostgreSQL outbox",
    after_help = crate::client::EXIT_CODES
)]
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
    /// The outbox-poller alone: fans events out into deliveries.
    Poller(PollerArgs),
    /// A delivery-worker alone: sends due deliveries. Run as many as you like.
    Worker(WorkerArgs),
    /// Apply the database migrations, then exit.
    Migrate(MigrateArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// The operator's own tokens, for /v1/admin (with database access).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Whether a captured webhook's signature holds for a secret (exit 0 holds, 1 does not, 2
    /// the capture or secret cannot be read).
    Verify(VerifyArgs),
    /// The commands that talk to a running Herald's API (HERALD_URL, HERALD_TOKEN).
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The secret to check with; give it twice during a rotation (either may sign).
    #[arg(long, required = true)]
    pub secret: Vec<String>,
    /// The captured request: its headers, a blank line, its body, as received (a request line
    /// first is skipped). Default: standard input.
    #[arg(long)]
    pub request: Option<std::path::PathBuf>,
    /// standard-webhooks or hmac-sha256-hex; default: Standard Webhooks when the capture has a
    /// webhook-signature header, else hmac-sha256-hex.
    #[arg(long)]
    pub scheme: Option<String>,
    /// The hex scheme's header (default x-webhook-signature).
    #[arg(long)]
    pub header: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its API token (shown once) alone on standard output.
    Create(TenantArgs),
    /// Print a new API token for an existing tenant.
    Token(TenantArgs),
    /// Change a tenant's settings (only those given), then print them all as JSON.
    Set(TenantSetArgs),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Operator tokens: they reach /v1/admin (tenants) and nothing else.
    #[command(subcommand)]
    Token(AdminTokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Make an operator token and print it (shown once) alone on standard output.
    Create(AdminTokenCreateArgs),
    /// List operator tokens not revoked (never the tokens themselves).
    List(AdminDbArgs),
    /// Revoke an operator token by its id (tok_...).
    Revoke(AdminTokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct AdminTokenCreateArgs {
    /// A name to tell the token apart.
    #[arg(long, default_value = "operator")]
    pub name: String,
    /// How long it lasts (e.g. 90d, 12h); default: until revoked.
    #[arg(long, value_parser = parse_duration)]
    pub expires_in: Option<Duration>,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct AdminDbArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct AdminTokenRevokeArgs {
    /// The token's id, as `herald admin token list` shows it.
    pub id: herald_core::id::TokenId,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct TenantSetArgs {
    /// The tenant's name.
    pub name: herald_core::id::TenantId,
    /// Endpoints and callbacks must be https:// (checked where they are set, and at every attempt).
    #[arg(long, value_name = "true|false")]
    pub require_https: Option<bool>,
    /// Hosts endpoints and callbacks may be on, comma-separated: api.example.com or *.example.com
    /// (any name below it). An empty value allows any host again.
    #[arg(long, value_name = "DOMAINS")]
    pub allowed_domains: Option<String>,
    /// Callbacks published without a secret go unsigned, instead of with one Herald makes.
    #[arg(long, value_name = "true|false")]
    pub unsigned_callbacks: Option<bool>,
    /// Email failing-endpoint notices (failing, disabled, recovered) to this address (sent by
    /// the poller through HERALD_SMTP_URL). An empty value stops them.
    #[arg(long, value_name = "ADDRESS")]
    pub notify_email: Option<String>,
    /// Post failing-endpoint notices to this Slack-compatible incoming-webhook URL. An empty
    /// value stops them.
    #[arg(long, value_name = "URL")]
    pub notify_slack_url: Option<String>,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct TenantArgs {
    /// The tenant's name: 1 to 63 characters of a-z 0-9 _ -.
    pub name: herald_core::id::TenantId,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,

    /// On a Citus coordinator: then distribute Herald's tables by tenant (idempotent).
    #[arg(long)]
    pub citus: bool,

    /// On a Citus coordinator, the way back: bring every Herald table back onto the coordinator
    /// as a plain table, rows included (then `pg_dump` moves it to a single PostgreSQL).
    #[arg(long, conflicts_with = "citus")]
    pub undistribute: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ListenArgs {
    /// Address of the HTTP API and of /healthz, /readyz, /metrics.
    #[arg(long, env = "HERALD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// How long a client has to send a request's headers, and how long an idle keep-alive
    /// connection stays open: a client that sends too slowly is cut off.
    #[arg(long, env = "HERALD_HTTP_READ_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub http_read_timeout: Duration,

    /// The longest a request may take, its body included: a slow upload is answered 408.
    #[arg(long, env = "HERALD_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// How often the queue's gauges on /metrics (outbox depth, due deliveries, endpoints by
    /// status) are counted, by whichever one Herald process holds the lock for it.
    #[arg(long, env = "HERALD_METRICS_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub metrics_interval: Duration,
}

#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Non-public target addresses to allow: CIDRs, comma-separated, or `all`.
    /// Loopback is `127.0.0.0/8,::1/128`.
    #[arg(long, env = "HERALD_ALLOW_PRIVATE_TARGETS", default_value = "", value_parser = parse_allow_list, hide_default_value = true)]
    pub allow_private_targets: AllowList,
}

#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "HERALD_MAX_PAYLOAD_BYTES", default_value_t = 262_144)]
    pub max_payload_bytes: usize,
    /// How long the statements of a filtered list (events, an endpoint's deliveries, attempts,
    /// stats) may run before the answer is 503 list_timeout.
    #[arg(long, env = "HERALD_LIST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub list_timeout: Duration,
}

#[derive(Debug, Args, Clone)]
pub struct PollArgs {
    /// How often to look for work when no notification arrives (jittered ±20 %).
    #[arg(long, env = "HERALD_POLL_INTERVAL", default_value = herald_core::config::POLL_INTERVAL, value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// Events fanned out per transaction.
    #[arg(long, env = "HERALD_POLLER_BATCH", default_value_t = herald_outbox_poller::PollerConfig::BATCH)]
    pub poller_batch: usize,
}

/// Failing-endpoint notices (sent by the poller): the SMTP server, and their retries.
#[derive(Debug, Args, Clone)]
pub struct NoticeArgs {
    /// The SMTP server for email notices: smtp://host:25, smtp://user:password@host:587?tls=required
    /// (STARTTLS), smtps://user:password@host:465 (TLS). Unset: email notices are dropped.
    #[arg(long, env = "HERALD_SMTP_URL", value_name = "URL", hide_env_values = true)]
    pub smtp_url: Option<herald_outbox_poller::notices::SmtpUrl>,

    /// The From of email notices: `Herald <herald@example.com>` or an address; needed with
    /// HERALD_SMTP_URL.
    #[arg(long, env = "HERALD_SMTP_FROM", value_name = "MAILBOX")]
    pub smtp_from: Option<String>,

    /// Delays between a notice's attempts while the mail server or Slack is down; after the
    /// last it is given up.
    #[arg(long, env = "HERALD_NOTICE_RETRY_SCHEDULE", default_value = herald_outbox_poller::notices::NoticeConfig::RETRY_SCHEDULE)]
    pub notice_retry_schedule: RetrySchedule,

    /// How often to look for notices to send (jittered ±20 %).
    #[arg(long, env = "HERALD_NOTICE_INTERVAL", default_value = herald_outbox_poller::notices::NoticeConfig::INTERVAL, value_parser = parse_duration)]
    pub notice_interval: Duration,

    /// The longest one notice's attempt may take (email or Slack).
    #[arg(long, env = "HERALD_NOTICE_TIMEOUT", default_value = herald_outbox_poller::notices::NoticeConfig::TIMEOUT, value_parser = parse_duration)]
    pub notice_timeout: Duration,
}

#[derive(Debug, Args, Clone)]
pub struct RetentionArgs {
    /// How long events, finished deliveries and attempts are kept (attempts by whole months, so
    /// up to a month longer), or `off`. A delivery still pending or delivering is never removed.
    #[arg(long, env = "HERALD_RETENTION", default_value = "30d", value_parser = parse_retention)]
    pub retention: Retention,

    /// How often retention runs (in one poller at a time).
    #[arg(long, env = "HERALD_RETENTION_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub retention_interval: Duration,
}

/// `HERALD_RETENTION`: a duration, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct Retention(pub Option<Duration>);

fn parse_retention(s: &str) -> Result<Retention, String> {
    if s == "off" {
        return Ok(Retention(None));
    }
    match parse_duration(s)? {
        d if d.is_zero() => Err("a retention of 0 would remove everything at once; give a duration, or off".into()),
        d => Ok(Retention(Some(d))),
    }
}

#[derive(Debug, Args, Clone)]
pub struct DeliveryArgs {
    /// Delays between attempts, e.g. `1m,5m,30m,2h,12h` or `200ms,1s`.
    #[arg(long, env = "HERALD_RETRY_SCHEDULE", default_value = RetrySchedule::DEFAULT)]
    pub retry_schedule: RetrySchedule,

    /// How long a claimed delivery stays leased before another worker may take it; must be
    /// longer than the attempt timeout. Default: the attempt timeout + 30s.
    #[arg(long, env = "HERALD_LEASE", value_parser = parse_duration)]
    pub lease: Option<Duration>,

    /// Total time allowed for one HTTP attempt.
    #[arg(long, env = "HERALD_ATTEMPT_TIMEOUT", default_value = WorkerConfig::ATTEMPT_TIMEOUT, value_parser = parse_duration)]
    pub attempt_timeout: Duration,

    /// Time allowed to connect (TCP and TLS) within an attempt.
    #[arg(long, env = "HERALD_CONNECT_TIMEOUT", default_value = WorkerConfig::CONNECT_TIMEOUT, value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Attempts in flight per worker process.
    #[arg(long, env = "HERALD_WORKER_CONCURRENCY", default_value_t = WorkerConfig::CONCURRENCY)]
    pub worker_concurrency: usize,

    /// Attempts in flight per worker process to any one endpoint.
    #[arg(long, env = "HERALD_ENDPOINT_CONCURRENCY", default_value_t = WorkerConfig::ENDPOINT_CONCURRENCY)]
    pub endpoint_concurrency: usize,

    /// On SIGTERM, how long attempts in flight may take before their leases are given back.
    #[arg(long, env = "HERALD_SHUTDOWN_GRACE", default_value = WorkerConfig::SHUTDOWN_GRACE, value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// A FIFO endpoint's next delivery waits until its event was published this long ago, so
    /// that an earlier event still being committed comes first.
    #[arg(long, env = "HERALD_FIFO_SETTLE", default_value = WorkerConfig::FIFO_SETTLE, value_parser = parse_duration)]
    pub fifo_settle: Duration,

    /// Names this worker's leases; default: host name and process id.
    #[arg(long, env = "HERALD_WORKER_ID")]
    pub worker_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct AllArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub poll: PollArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub notices: NoticeArgs,
}

#[derive(Debug, Args)]
pub struct ProducerArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct PollerArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub poll: PollArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Where Slack notices may go (the same setting as the worker's).
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub notices: NoticeArgs,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub poll: PollArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are the contract's (section 7 and section 2): checked once, here, since
    /// every other test runs with short times.
    #[test]
    fn defaults_are_the_contracts() {
        for (k, _) in std::env::vars() {
            assert!(
                !k.starts_with("HERALD_") || k == "HERALD_TEST_DATABASE_URL",
                "{k} is set; this test needs the defaults"
            );
        }
        let cli = Cli::try_parse_from(["herald", "all", "--database-url", "postgres://x@127.0.0.1/h"]).unwrap();
        let Command::All(args) = cli.command else { panic!("parsed as another command") };
        assert_eq!(args.delivery.retry_schedule.written(), ["1m", "5m", "30m", "2h", "12h"]);
        assert_eq!(args.delivery.attempt_timeout, Duration::from_secs(15));
        assert_eq!(args.listen.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(args.listen.http_read_timeout, Duration::from_secs(60));
        assert_eq!(args.listen.request_timeout, Duration::from_secs(30));
        assert_eq!(args.api.max_payload_bytes, 262_144);
        assert_eq!(args.api.list_timeout, std::time::Duration::from_secs(10));
        assert_eq!(args.targets.allow_private_targets, AllowList::none());
        let config = crate::worker_config(&args.delivery, &args.targets, &args.poll).unwrap();
        assert!(config.lease > config.attempt_timeout, "the default lease outlives an attempt");
        assert!(!config.allow.permits("127.0.0.1".parse().unwrap()), "loopback refused by default");

        let bad = Cli::try_parse_from([
            "herald",
            "all",
            "--database-url",
            "postgres://x@h/d",
            "--retry-schedule",
            "1m,never",
        ]);
        assert!(bad.is_err());
        let short =
            Cli::try_parse_from(["herald", "all", "--database-url", "postgres://x@h/d", "--lease", "5s"]).unwrap();
        let Command::All(args) = short.command else { panic!() };
        let err = crate::worker_config(&args.delivery, &args.targets, &args.poll).unwrap_err();
        assert!(err.to_string().contains("HERALD_LEASE"), "{err}");
    }
}
