//! Herald on Citus (distributed PostgreSQL): `herald migrate --citus` distributes Herald's tables
//! on a Citus coordinator, every tenant's rows together (shared/scale-out.md). Idempotent.

use tokio_postgres::Client;

use crate::db::DbError;

/// The small global table every node needs whole.
pub const REFERENCE: &[&str] = &["herald.tenants", "herald.operator_tokens"];

/// The tenant tables, distributed by `tenant_id` and colocated with the first: a statement that
/// names one tenant runs on one node, joins and transactions included.
pub const DISTRIBUTED: &[&str] = &[
    "herald.events",
    "herald.api_tokens",
    "herald.endpoints",
    "herald.pending_events",
    "herald.deliveries",
    "herald.attempts",
    "herald.operations",
    "herald.fanout_failures",
    "herald.notices",
    "herald.replays",
    "herald.links",
    "herald.sessions",
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

/// Refuses a database without Citus, before anything is written to it.
pub async fn check(client: &Client) -> Result<(), DbError> {
    match client.query_opt("SELECT 1 FROM pg_extension WHERE extname = 'citus'", &[]).await? {
        Some(_) => Ok(()),
        None => Err(DbError::NoCitus),
    }
}

/// Whether Herald's tables are distributed on Citus already (so that a migration's new tables
/// must be too).
pub async fn distributed(client: &Client) -> Result<bool, DbError> {
    let row = client
        .query_one(
            "SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL \
                AND to_regclass('herald.events') IS NOT NULL",
            &[],
        )
        .await?;
    if !row.get::<_, bool>(0) {
        return Ok(false);
    }
    is_distributed(client, "herald.events").await
}

/// Distributes what is not distributed yet; answers the tables it changed. On a database with
/// Citus ([`check`]; `db::migrate_with` runs it under the migration lock).
pub async fn distribute(client: &Client) -> Result<Vec<String>, DbError> {
    let functions = row_functions(client).await?;
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
        remake(client, &functions).await?;
        done.push(table.to_string());
    }
    for f in ON_WORKERS {
        client.execute("SELECT create_distributed_function($1::text::regprocedure)", &[f]).await?;
    }
    place(client, true).await?;
    Ok(done)
}

/// Tells `herald.publish` where it runs (V11): the database setting `herald.citus`, which every
/// session opened afterwards reads (one open before keeps the other way, which is right there
/// too, only slower).
async fn place(client: &Client, on_citus: bool) -> Result<(), DbError> {
    let set = if on_citus { "SET herald.citus = on" } else { "RESET herald.citus" };
    client
        .batch_execute(&format!("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I {set}', current_database()); END $$"))
        .await?;
    Ok(())
}

/// The way back: every Herald table becomes a plain table of the coordinator again, its rows
/// brought back from the workers (`undistribute_table`). Answers the tables it changed; then
/// the coordinator is a single PostgreSQL for Herald (and `pg_dump` moves it to another). On a
/// database with Citus ([`check`]; `db::undistribute` runs it under the migration lock).
pub async fn undistribute(client: &Client) -> Result<Vec<String>, DbError> {
    let functions = row_functions(client).await?;
    let mut done = Vec::new();
    for table in DISTRIBUTED.iter().chain(REFERENCE) {
        if is_distributed(client, table).await? {
            done.push(table.to_string());
        }
    }
    for table in DISTRIBUTED.iter().rev().chain(REFERENCE) {
        // The tables it has foreign keys with come back with it.
        if is_distributed(client, table).await? {
            client
                .execute("SELECT undistribute_table($1::text::regclass, cascade_via_foreign_keys => true)", &[table])
                .await?;
            remake(client, &functions).await?;
        }
    }
    place(client, false).await?;
    Ok(done)
}

async fn is_distributed(client: &Client, table: &str) -> Result<bool, DbError> {
    let row =
        client.query_opt("SELECT 1 FROM pg_dist_partition WHERE logicalrelid = $1::text::regclass", &[&table]).await?;
    Ok(row.is_some())
}

async fn row_functions(client: &Client) -> Result<Vec<String>, DbError> {
    Ok(client.query(ROW_FUNCTIONS, &[]).await?.iter().map(|r| r.get(0)).collect())
}

/// Makes again the functions over a table's row that moving the table dropped.
async fn remake(client: &Client, functions: &[String]) -> Result<(), DbError> {
    for f in functions {
        client.batch_execute(f).await?;
    }
    Ok(())
}

/// Which node holds each tenant's rows, so that work for several tenants can go in one
/// transaction per node, never one that commits on two (Citus's two-phase commit). On a single
/// PostgreSQL every tenant is on node 0. Looked up on the coordinator (Citus's metadata, no
/// worker asked) and kept for a minute: a tenant moved by a rebalance meanwhile only costs a
/// two-node commit, never a wrong result.
#[derive(Debug, Default)]
pub struct Nodes {
    known: std::sync::Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    /// When `on_citus` was found; everything is forgotten a minute later.
    since: Option<std::time::Instant>,
    /// Counts the forgettings: what was looked up before one is not kept after it.
    generation: u64,
    on_citus: Option<bool>,
    node: std::collections::HashMap<crate::id::TenantId, i32>,
}

const NODES_KEPT: std::time::Duration = std::time::Duration::from_secs(60);

const NODE_OF: &str = "SELECT (SELECT p.groupid FROM pg_dist_placement p \
        WHERE p.shardid = get_shard_id_for_distribution_column('herald.events', t.id) LIMIT 1) \
     FROM unnest($1::text[]) WITH ORDINALITY AS t(id, n) ORDER BY t.n";

impl Nodes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.since.is_some_and(|t| t.elapsed() > NODES_KEPT) {
            known.since = None;
            known.generation += 1;
            known.on_citus = None;
            known.node.clear();
        }
        known
    }

    /// The node of each of `tenants`, in their order, if every one is known already.
    pub fn known(&self, tenants: &[&crate::id::TenantId]) -> Option<Vec<i32>> {
        let known = self.lock();
        match known.on_citus {
            Some(false) => Some(vec![0; tenants.len()]),
            Some(true) => tenants.iter().map(|t| known.node.get(*t).copied()).collect(),
            None => None,
        }
    }

    /// The node of each of `tenants`, in their order, looking up those not known.
    pub async fn of(&self, client: &Client, tenants: &[&crate::id::TenantId]) -> Result<Vec<i32>, DbError> {
        if let Some(nodes) = self.known(tenants) {
            return Ok(nodes);
        }
        let (generation, on_citus, missing) = {
            let known = self.lock();
            let missing: Vec<&crate::id::TenantId> =
                tenants.iter().copied().filter(|t| !known.node.contains_key(*t)).collect();
            (known.generation, known.on_citus, missing)
        };
        let on_citus = match on_citus {
            Some(v) => v,
            None => distributed(client).await?,
        };
        let found: std::collections::HashMap<&crate::id::TenantId, i32> = if on_citus {
            let rows = client.query(NODE_OF, &[&missing]).await?;
            missing.iter().copied().zip(rows.iter().map(|r| r.get::<_, Option<i32>>(0).unwrap_or(0))).collect()
        } else {
            std::collections::HashMap::new()
        };
        let mut known = self.lock();
        if known.generation == generation {
            if known.on_citus.is_none() {
                known.on_citus = Some(on_citus);
                known.since = Some(std::time::Instant::now());
            }
            for (t, n) in &found {
                known.node.insert((*t).clone(), *n);
            }
        }
        Ok(tenants.iter().map(|t| found.get(*t).or_else(|| known.node.get(*t)).copied().unwrap_or(0)).collect())
    }
}
