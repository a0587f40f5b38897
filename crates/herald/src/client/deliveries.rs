//! `herald deliveries`: one delivery shown, its attempts listed, or retried now
//! (`/v1/deliveries`).

use clap::{Args, Subcommand};

use super::http::{Api, Result};
use super::{output, Conn, PageArgs};

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: DeliveriesCommand,
}

#[derive(Debug, Subcommand)]
enum DeliveriesCommand {
    /// Show a delivery: its state, attempts, next attempt and last error.
    Show(IdArg),
    /// A delivery's attempts, oldest first: status code, error class, duration and the start of
    /// the receiver's answer.
    Attempts(AttemptsArgs),
    /// Make a pending, failed or delivered delivery due now (a delivered one is sent again, with
    /// the same webhook-id), with a new round of its retry schedule.
    Retry(IdArg),
}

#[derive(Debug, Args)]
struct IdArg {
    /// The delivery's id (dlv_...).
    id: String,
}

#[derive(Debug, Args)]
struct AttemptsArgs {
    /// The delivery's id (dlv_...).
    id: String,
    #[command(flatten)]
    page: PageArgs,
}

/// The order a delivery's fields are printed in.
const FIELDS: &[&str] = &[
    "id",
    "event_id",
    "endpoint_id",
    "url",
    "state",
    "attempt_count",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "created_at",
    "updated_at",
];

pub async fn run(args: DeliveriesArgs) -> Result<()> {
    let api = Api::new(&args.conn)?;
    let out = api.output;
    match args.command {
        DeliveriesCommand::Show(a) => output::object(&api.get(&["deliveries", &a.id], &[]).await?, out, FIELDS),
        DeliveriesCommand::Attempts(a) => {
            let columns = ["attempt", "started_at", "status_code", "error", "duration_ms", "response_excerpt"];
            super::events::attempts(&api, &["deliveries", &a.id, "attempts"], &a.page, &columns).await?;
        }
        DeliveriesCommand::Retry(a) => {
            output::object(&api.post(&["deliveries", &a.id, "retry"], None).await?, out, FIELDS)
        }
    }
    Ok(())
}
