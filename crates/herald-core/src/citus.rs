//! Herald on Citus (distributed PostgreSQL): `herald migrate --citus` distributes Herald's tables
//! on a Citus coordinator, every tenant's rows together (shared/scale-out.md). Idempotent.

use crate::db::{connect, DbError};

/// The small global table every node needs whole.
const REFERENCE: &[&str] = &["herald.tenants"];

/// The tenant tables, distributed by `tenant_id` and colocated with the first: a statement that
/// names one tenant runs on one node, joins and transactions included.
const DISTRIBUTED: &[&str] = &[
    "herald.events",
    "herald.api_tokens",
    "herald.endpoints",
    "herald.pending_events",
    "herald.deliveries",
    "herald.attempts",
    "herald.operations",
    "herald.fanout_failures",
];

/// Functions that take a row of one of Herald's tables as an argument, with their definitions:
/// Citus drops them when it moves the table into shards (their argument type goes with it), so
/// they are made again afterwards.
const ROW_FUNCTIONS: &str = "SELECT DISTINCT pg_get_functiondef(p.oid) FROM pg_proc p \
       JOIN pg_class c ON c.reltype = ANY (p.proargtypes::oid[]) \
       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'herald'";

/// Functions that statements pushed down to the workers call: made known to every node
/// (`create_distributed_function` without a distribution argument: known there, never delegated;
/// `herald.publish` stays a plain function of the coordinator, scale-out.md rule 8).
const ON_WORKERS: &[&str] = &["herald.rfc3339(timestamptz)", "herald.operation_json(jsonb)"];

#[derive(Debug, thiserror::Error)]
pub enum CitusError {
    #[error(
        "this PostgreSQL has no Citus: on the coordinator, CREATE EXTENSION citus, set it with citus_set_coordinator_host and add the workers with citus_add_node, then run `herald migrate --citus` there"
    )]
    NoCitus,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for CitusError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Refuses a database without Citus, before anything is written to it.
pub async fn check(url: &str) -> Result<(), CitusError> {
    let client = connect(url).await?;
    match client.query_opt("SELECT 1 FROM pg_extension WHERE extname = 'citus'", &[]).await? {
        Some(_) => Ok(()),
        None => Err(CitusError::NoCitus),
    }
}

/// Distributes what is not distributed yet; answers the tables it changed.
pub async fn distribute(url: &str) -> Result<Vec<String>, CitusError> {
    check(url).await?;
    let client = connect(url).await?;
    let functions: Vec<String> = client.query(ROW_FUNCTIONS, &[]).await?.iter().map(|r| r.get(0)).collect();
    let mut done = Vec::new();
    for (table, reference) in REFERENCE.iter().map(|t| (*t, true)).chain(DISTRIBUTED.iter().map(|t| (*t, false))) {
        // Done: hash-distributed, or a reference table. (Citus turns tables with a foreign key
        // to a reference table into "citus local" ones on its own: those still need doing.)
        let already = client
            .query_opt(
                "SELECT 1 FROM pg_dist_partition WHERE logicalrelid = $1::text::regclass \
                   AND (partmethod = 'h' OR (partmethod = 'n' AND repmodel = 't'))",
                &[&table],
            )
            .await?
            .is_some();
        if already {
            continue;
        }
        if reference {
            client.execute("SELECT create_reference_table($1::text::regclass)", &[&table]).await?;
        } else if table == DISTRIBUTED[0] {
            client.execute("SELECT create_distributed_table($1::text::regclass, 'tenant_id')", &[&table]).await?;
        } else {
            client
                .execute(
                    "SELECT create_distributed_table($1::text::regclass, 'tenant_id', colocate_with => $2::text)",
                    &[&table, &DISTRIBUTED[0]],
                )
                .await?;
        }
        // At once, not at the end: a run that fails later must not leave them dropped (a second
        // run would no longer find them to make again).
        for f in &functions {
            client.batch_execute(f).await?;
        }
        done.push(table.to_string());
    }
    for f in ON_WORKERS {
        client.execute("SELECT create_distributed_function($1::text::regprocedure)", &[f]).await?;
    }
    Ok(done)
}
