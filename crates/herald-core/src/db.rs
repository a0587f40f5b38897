//! The connection pool and the embedded migrations (`migrations/` at the repository root, run
//! by refinery). Migrations take an advisory lock so that several processes starting at once
//! migrate one after the other.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use crate::clock::SharedClock;

refinery::embed_migrations!("../../migrations");

pub use deadpool_postgres;
/// A migration, for [`migrate_with`].
pub use refinery::Migration;
pub use tokio_postgres;

const MIGRATION_TABLE: &str = "herald.schema_history";
/// An arbitrary constant: the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x6865_7261_6c64; // "herald"

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database pool setup: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    #[error("migrations: {0}")]
    Migrate(#[from] refinery::Error),
    #[error("HERALD_DATABASE_URL: {0}")]
    Settings(String),
    /// The database's migrations and this build's do not go together.
    #[error("migrations: {0}")]
    Schema(String),
    #[error(
        "this PostgreSQL has no Citus: on the coordinator, CREATE EXTENSION citus, set it with citus_set_coordinator_host and add the workers with citus_add_node, then run `herald migrate --citus` there"
    )]
    NoCitus,
}

/// An error as an operator needs it: a database error's message, SQLSTATE and detail (its
/// `Display` is only "db error"), or the client's own error with its cause. A detail that
/// quotes a whole row ("Failing row contains ...") is left out: it may hold a URL with a token.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let detail = db
                .detail()
                .filter(|d| !d.starts_with("Failing row contains"))
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            format!("{} (SQLSTATE {}){detail}", db.message(), db.code().code())
        }
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// Whether the database could not be reached: the connection broke or could not be made, or
/// the server is shutting down or starting, or (on Citus) a worker node cannot be reached. Not
/// the request's fault, and the same for every request. (A protocol violation, 08P01, or an
/// answer that does not parse is Herald's or the server's bug.)
pub fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    let text = e.to_string();
    let link = ["error communicating with the server", "error connecting to server", "timeout waiting for server"]
        .iter()
        .any(|p| text.starts_with(p));
    let going = e.code().is_some_and(|c| {
        (c.code().starts_with("08") && c.code() != "08P01") || ["57P01", "57P02", "57P03"].contains(&c.code())
    });
    // On Citus, a worker node that cannot be reached is an internal error (XX000) with one of
    // these messages.
    let node = e.as_db_error().is_some_and(|d| {
        ["connection to the remote node", "failure on connection marked as essential"]
            .iter()
            .any(|p| d.message().starts_with(p))
    });
    e.is_closed() || link || going || node
}

/// Whether an error is about the data at hand, so that the same rows fail again however often
/// they are tried: a value out of range or refused by a constraint (SQLSTATE classes 22 and
/// 23), or a column that cannot be decoded. Anything else (a lost connection, a deadlock, a
/// missing table or privilege) is about the database, and passes or fails for every row alike.
pub fn is_data_error(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => code.code().starts_with("22") || code.code().starts_with("23"),
        None => {
            let text = e.to_string();
            text.starts_with("error deserializing") || text.starts_with("error serializing")
        }
    }
}

/// The longest Herald waits for a pooled connection, for a new one to be made (unless the URL
/// sets `connect_timeout`), or for an idle one to be checked.
pub const POOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A pool of at most `size` connections to `url`.
pub fn pool(url: &str, size: usize) -> Result<Pool, DbError> {
    let (mut config, tls) = crate::tls::config(url).map_err(DbError::Settings)?;
    if config.get_application_name().is_none() {
        config.application_name("herald");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(POOL_TIMEOUT);
    }
    let manager = Manager::from_config(config, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    // Bounded waits: with the database unreachable a request is answered (503) instead of
    // waiting for a connection, or for TCP to give up, for minutes.
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .build()?)
}

/// One connection outside any pool (migrations, LISTEN).
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, DbError> {
    let (config, tls) = crate::tls::config(url).map_err(DbError::Settings)?;
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    Ok(client)
}

/// What a run of the migrations did.
#[derive(Debug, Default)]
pub struct Migrated {
    /// The migrations applied, by name.
    pub applied: Vec<String>,
    /// The tables distributed on Citus.
    pub distributed: Vec<String>,
}

/// Applies every migration not yet applied, then makes sure the attempt partitions exist.
/// With `citus`, or on a database already distributed on Citus, then distributes by tenant
/// what is not distributed yet (see [`crate::citus`]): a later release's new tables too.
pub async fn migrate(url: &str, clock: &SharedClock, citus: bool) -> Result<Migrated, DbError> {
    migrate_with(url, clock, citus, Vec::new()).await
}

/// [`migrate`], with `later` migrations after Herald's own (a test's stand-in for the
/// migrations of a later release).
pub async fn migrate_with(
    url: &str,
    clock: &SharedClock,
    citus: bool,
    later: Vec<refinery::Migration>,
) -> Result<Migrated, DbError> {
    let mut client = connect(url).await?;
    if citus {
        crate::citus::check(&client).await?;
    }
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = async {
        client.batch_execute("CREATE SCHEMA IF NOT EXISTS herald").await?;
        let mut all = migrations::runner().get_migrations().clone();
        all.extend(later);
        let on_citus = crate::citus::distributed(&client).await?;
        // A later release migrated this database, and this one was rolled back to: its
        // migrations only add (docs/operations.md, Upgrading), so this release runs on them.
        // One of its own missing below the newest applied is another matter: refused.
        let applied: Vec<(i32, String)> = client
            .query(&format!("SELECT version, name FROM {MIGRATION_TABLE} ORDER BY version"), &[])
            .await
            .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            .unwrap_or_default();
        let newest = all.iter().map(|m| m.version() as i32).max().unwrap_or(0);
        let top = applied.iter().map(|(v, _)| *v).max().unwrap_or(0);
        let skipped: Vec<String> = all
            .iter()
            .filter(|m| (m.version() as i32) < top && !applied.iter().any(|(v, _)| *v == m.version() as i32))
            .map(|m| m.to_string())
            .collect();
        if !skipped.is_empty() {
            return Err(DbError::Schema(format!(
                "the database is at V{top} but never applied {}: it was migrated by a Herald without them; migrate it with a release that has them all",
                skipped.join(", ")
            )));
        }
        let ahead: Vec<&str> = applied.iter().filter(|(v, _)| *v > newest).map(|(_, n)| n.as_str()).collect();
        if !ahead.is_empty() {
            tracing::warn!(later = ?ahead, "the database has migrations of a later Herald than this one; running on them");
        }
        let report = refinery::Runner::new(&all)
            .set_abort_missing(false)
            .set_migration_table_name(MIGRATION_TABLE)
            .run_async(&mut OneByOne { client: &mut client, on_citus })
            .await?;
        let applied = report.applied_migrations().iter().map(|m| m.to_string()).collect();
        let distributed = if citus || on_citus { crate::citus::distribute(&client).await? } else { Vec::new() };
        client.execute("SELECT herald.ensure_partitions($1)", &[&clock.now()]).await?;
        Ok::<_, DbError>(Migrated { applied, distributed })
    }
    .await;
    unlock(&client, result).await
}

/// Citus's way back ([`crate::citus::undistribute`]), under the lock migrations take: a Herald
/// starting meanwhile must not distribute again what is being brought back.
pub async fn undistribute(url: &str) -> Result<Vec<String>, DbError> {
    let client = connect(url).await?;
    crate::citus::check(&client).await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = crate::citus::undistribute(&client).await;
    unlock(&client, result).await
}

/// Gives the migration lock back; the work's own error, if any, is the one answered.
async fn unlock<T>(client: &tokio_postgres::Client, result: Result<T, DbError>) -> Result<T, DbError> {
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    let value = result?;
    unlocked?;
    Ok(value)
}

/// Runs a migration one statement at a time (in one transaction, as refinery does), for Citus:
/// see [`crate::statements`]. On a distributed schema, Citus is asked to use one connection per
/// node for the whole transaction: it refuses a function's DDL after DDL it ran in parallel.
struct OneByOne<'a> {
    client: &'a mut tokio_postgres::Client,
    on_citus: bool,
}

#[async_trait::async_trait]
impl refinery_core::traits::r#async::AsyncTransaction for OneByOne<'_> {
    type Error = tokio_postgres::Error;

    async fn execute(&mut self, queries: &[&str]) -> Result<usize, Self::Error> {
        let transaction = self.client.transaction().await?;
        if self.on_citus {
            transaction.batch_execute("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'").await?;
        }
        for query in queries {
            for statement in crate::statements::split(query) {
                transaction.batch_execute(statement).await?;
            }
        }
        transaction.commit().await?;
        Ok(queries.len())
    }
}

#[async_trait::async_trait]
impl refinery_core::traits::r#async::AsyncQuery<Vec<refinery::Migration>> for OneByOne<'_> {
    async fn query(&mut self, query: &str) -> Result<Vec<refinery::Migration>, Self::Error> {
        refinery_core::traits::r#async::AsyncQuery::query(&mut *self.client, query).await
    }
}

impl refinery::AsyncMigrate for OneByOne<'_> {}

/// The newest migration version this build knows.
pub fn latest_version() -> i32 {
    migrations::runner().get_migrations().iter().map(|m| m.version() as i32).max().unwrap_or(0)
}

/// Whether the database has every migration this build knows (for `/readyz`).
pub async fn migrations_current(client: &tokio_postgres::Client) -> Result<bool, DbError> {
    let row = client
        .query_opt(
            "SELECT max(version) FROM herald.schema_history WHERE to_regclass('herald.schema_history') IS NOT NULL",
            &[],
        )
        .await;
    match row {
        Ok(Some(row)) => Ok(row.get::<_, Option<i32>>(0).unwrap_or(0) >= latest_version()),
        Ok(None) => Ok(false),
        // The history table does not exist yet: not migrated.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Every tenant, in name order (a reference table under Citus: read on the coordinator).
pub async fn tenants(client: &tokio_postgres::Client) -> Result<Vec<crate::id::TenantId>, DbError> {
    let rows = client.query("SELECT tenant_id FROM herald.tenants ORDER BY tenant_id", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The tenants for which `probe` (a statement that takes the tenant as `$1`, then `params`,
/// and answers one boolean) is true. One statement per tenant, each naming one tenant (so each
/// is a one-node query under Citus and an index probe under PostgreSQL), pipelined on one
/// connection. Cheaper than any "distinct tenants with work" query once a backlog is large.
///
/// A tenant whose probe fails is left out (logged, one line for all of them): on Citus, a
/// worker node that is down fails its own tenants' probes, and the tenants on the other nodes
/// go on. Only when every probe fails (the database itself is unreachable) is it an error.
pub async fn tenants_where(
    client: &tokio_postgres::Client,
    probe: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<crate::id::TenantId>, DbError> {
    let tenants = tenants(client).await?;
    let statement = client.prepare(probe).await?;
    let probes = tenants.iter().map(|t| {
        let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![t];
        all.extend_from_slice(params);
        let statement = &statement;
        async move { client.query_one(statement, &all).await.map(|r| r.get::<_, bool>(0)) }
    });
    let answers = futures_util::future::join_all(probes).await;
    let failed = answers.iter().filter(|a| a.is_err()).count();
    if failed > 0 && failed == answers.len() {
        return Err(answers.into_iter().find_map(Result::err).map(DbError::from).expect("a failed probe"));
    }
    if let Some(e) = answers.iter().find_map(|a| a.as_ref().err()) {
        tracing::warn!(failed, of = answers.len(), error = %describe(e),
                       "some tenants could not be asked (their node may be down); the others go on");
    }
    Ok(tenants.into_iter().zip(answers).filter(|(_, due)| matches!(due, Ok(true))).map(|(t, _)| t).collect())
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// A migration that has landed is never edited: databases that applied it would refuse to
    /// migrate again ("applied migration ... is different"). A change is a new `V<n>__*.sql`.
    /// Add a line here for each new migration once it lands.
    const LANDED: &[(&str, &str)] = &[
        ("V1__initial.sql", "3dd12485ff2b761ce4f9fbdd4f48a54aacda353d9778d39d058746edfb3656e6"),
        ("V2__delivery.sql", "429cbe51628c25b4871ef7e1d1a9c3cf2a95220f98bcf69fada909a9c3f97b17"),
        ("V3__operations.sql", "269e33f7b360513f571bd891f1b83647832a01ff9acff0dc8f5e2dd51b637392"),
        ("V4__event_data_as_sent.sql", "5c6f7739220523b6ee96aac18625de1470a0ee7e81a2f52cc012b8d19240b5b2"),
        ("V5__hot_claims.sql", "a0b7e6e9eb333915de6db4203ee3539525cfe26f761018b30a53dd366f6be759"),
        ("V6__fewer_index_entries.sql", "5d2e258d157b176f11eca65d30c533358e49b779380491b1ddb085b1e89ed996"),
        ("V7__operation_json_from_jsonb.sql", "faa59da54008aaa77942688f582746cf4d74e834c9c187e2b1ca870f391dfbba"),
        ("V8__citus_time_partitions.sql", "0c611312cd1b4dfbd14bcb6ec7b3e6ab1f11ca0f25d74023194615902f72ffcb"),
        ("V9__publish_on_one_node.sql", "9445ce19f601646946b711ee2c94f64c02f8b77421c6fdad45400c1f619d90ac"),
        ("V10__retention.sql", "ba578b03fc841f597d2de7b54160c3015c21b72acba56f31a93147c3da5a9713"),
        ("V11__publish_by_placement.sql", "99cb83f4c71d2f0738529b529f3a56275150e09464d09eef8b1123de01d0e063"),
        ("V12__tracestate.sql", "5d140983db8f0c3f959b7041c6ac73c0b2e935cf5d6c246522d4cfb4cd8abfc4"),
        ("V13__publish_door.sql", "5852b7defba3f5ce1c2471cf13ff8af6edafda1ab5a825f0eb581762ec4abfa2"),
        ("V14__receiver_dialects.sql", "0e504a2f740dc5941008ad812b8c404642aa8cf85866e41702a88d090ad2faa0"),
        ("V15__deliver_at_and_tenant_settings.sql", "d8371c24b791bae55a3f5a85a5d291849f581690d90607290b4a2ca9f2bc56e5"),
        ("V16__fifo.sql", "b00a243544c9316c6d94af3bfdc74240d5ecdde516b271181152c4016f0f0cb9"),
        ("V17__callback_payload_format.sql", "b8f19c0827978797a52c344766800d0a6ec72941171fddb6db573670066af265"),
        (
            "V18__callback_url_error_without_query.sql",
            "54dca6fd517081a12d98f209f22dd11e108c638ff156ac85e4a184996606d24a",
        ),
        ("V19__scoped_tokens.sql", "9e366b54b3ecdc4657bc06aa6d6b2c92d5330197524ed8bfded688e8fa44780f"),
        ("V20__notices.sql", "2181a9aeec65287cf0d3427b357d13ce4a97a55023aec6d3ea2ee8da055c5b6a"),
        ("V21__replay_jobs.sql", "467ec17c291aa9ee40a923951cbedf0e4312820009df68a0a8c8be5f1a4b1b13"),
        ("V22__links.sql", "1a3657493d24a7ba7dc94f02bc3d592f9b2cc37265e490809100462020167cf6"),
        ("V23__endpoint_consumer.sql", "55228a300ed7de8a490bdb6d3ce19c5475a6f900b913eb572e91e372870689eb"),
        ("V24__portal_links.sql", "4bc77973c150a451df2de23c009f2bba7581b36622e249a5f19ac0b46316cfff"),
        ("V25__operations_by_settled.sql", "ac77ab6cde1997c36ac6af2850ee5be8cc549bbb366839822f8f6c3533791495"),
        ("V26__events_for_a_consumer.sql", "6c42849ed1768018e81aef86b9c8b2e2a7880e2e3e8ce941ac6a6374833755a1"),
    ];

    #[test]
    fn landed_migrations_are_never_edited() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
        for (name, want) in LANDED {
            let text = std::fs::read(format!("{dir}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"));
            let got = format!("{:x}", Sha256::digest(&text));
            assert_eq!(&got, want, "{name} was edited after it landed; put the change in a new migration instead");
        }
    }

    /// `sql` without its comments, and with every string literal emptied (`''`): what is left
    /// is the statement's shape, whose parentheses and commas are its own.
    fn shape(sql: &str) -> String {
        let (mut out, mut rest) = (String::new(), sql);
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("--") {
                rest = rest.find('\n').map_or("", |n| &rest[n..]);
            } else if rest.starts_with("/*") {
                rest = rest.find("*/").map_or("", |n| &rest[n + 2..]);
                out.push(' ');
            } else if c == '\'' {
                // To the closing quote; a doubled one is a quote inside.
                let mut end = 1;
                while let Some(n) = rest[end..].find('\'') {
                    end += n + 1;
                    if !rest[end..].starts_with('\'') {
                        break;
                    }
                    end += 1;
                }
                out.push_str("''");
                rest = &rest[end.min(rest.len())..];
            } else {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        out
    }

    /// An ALTER TABLE's subcommands, each as its words outside parentheses (upper case); the
    /// first without `ALTER TABLE [IF EXISTS] [ONLY] name`. `None` for another statement.
    fn subcommands(statement: &str) -> Option<Vec<Vec<String>>> {
        let (mut pieces, mut piece, mut depth) = (Vec::new(), String::new(), 0usize);
        for c in shape(statement).chars() {
            match c {
                '(' => {
                    depth += 1;
                    piece.push(' ');
                }
                ')' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => pieces.push(std::mem::take(&mut piece)),
                _ if depth == 0 => piece.push(c),
                _ => {}
            }
        }
        pieces.push(piece);
        let mut pieces: Vec<Vec<String>> =
            pieces.iter().map(|p| p.split_whitespace().map(str::to_ascii_uppercase).collect()).collect();
        let first = &mut pieces[0];
        if first.len() < 3 || first[0] != "ALTER" || first[1] != "TABLE" {
            return None;
        }
        let mut skip = 2;
        if first[skip..].starts_with(&["IF".to_string(), "EXISTS".to_string()]) {
            skip += 2;
        }
        if first.get(skip).is_some_and(|w| w == "ONLY") {
            skip += 1;
        }
        first.drain(..(skip + 1).min(first.len()));
        Some(pieces)
    }

    /// Why Citus would refuse `statement` on an already distributed table, if it would: an ADD
    /// COLUMN carrying an unnamed PRIMARY KEY, UNIQUE, REFERENCES or CHECK, or an ADD
    /// CONSTRAINT (or an unnamed table constraint) beside other subcommands.
    fn citus_refuses(statement: &str) -> Option<String> {
        let subcommands = subcommands(statement)?;
        let table_constraint = ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "EXCLUDE"];
        for words in &subcommands {
            let adds = words.first().is_some_and(|w| w == "ADD");
            let constraint = adds && words.get(1).is_some_and(|w| table_constraint.contains(&w.as_str()));
            if constraint && subcommands.len() > 1 {
                return Some("ADD CONSTRAINT beside other subcommands in one ALTER TABLE".into());
            }
            if adds && !constraint {
                for (i, w) in words.iter().enumerate() {
                    let named = i >= 2 && words[i - 2] == "CONSTRAINT";
                    if ["PRIMARY", "UNIQUE", "REFERENCES", "CHECK"].contains(&w.as_str()) && !named {
                        return Some(format!("ADD COLUMN with an unnamed {w} constraint"));
                    }
                }
            }
        }
        None
    }

    /// Every migration from V24 on runs on a database already distributed on Citus, whose
    /// ALTER TABLE refuses what [`citus_refuses`] finds (citus 13.2,
    /// `commands/table.c`): one subcommand per ALTER TABLE that adds a constraint, every
    /// constraint named (`ADD COLUMN c text; ADD CONSTRAINT t_c_check CHECK (...)`). V14, V19
    /// and V23 break this rule but landed before it; a database distributed after them is fine.
    #[test]
    fn migrations_alter_tables_as_citus_takes_it() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
        let version = |name: &str| -> u32 {
            name.strip_prefix('V').and_then(|r| r.split_once("__")).and_then(|(v, _)| v.parse().ok()).unwrap_or(0)
        };
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !name.ends_with(".sql") || version(&name) < 24 {
                continue;
            }
            let text = std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
            for statement in crate::statements::split(&text) {
                if let Some(why) = citus_refuses(statement) {
                    panic!(
                        "{name}: {why}: Citus refuses this on an already distributed database (`herald migrate` \
                         after distributing); write one ALTER TABLE per subcommand and name every constraint:\n{statement}"
                    );
                }
            }
            checked += 1;
        }
        assert!(checked >= 2, "only {checked} migrations from V24 on: is {dir} read right?");
    }

    #[test]
    fn the_citus_check_knows_what_citus_refuses() {
        let refused = |sql: &str| citus_refuses(sql).is_some();
        assert!(refused("ALTER TABLE herald.links ADD COLUMN consumer text CHECK (consumer ~ '^a$')"));
        assert!(refused("alter table only t add c int references u (id), add d int"));
        assert!(refused("ALTER TABLE t ADD COLUMN c text, ADD CONSTRAINT t_c CHECK (c <> '')"));
        assert!(refused("ALTER TABLE IF EXISTS t ADD x int, ADD UNIQUE (x)"));
        assert!(refused("ALTER TABLE t ADD COLUMN s text NOT NULL DEFAULT 'a,b' /* ( */ UNIQUE"));
        assert!(!refused("ALTER TABLE t ADD COLUMN c text CONSTRAINT t_c_check CHECK (c ~ 'x, check (')"));
        assert!(!refused("ALTER TABLE t ADD CONSTRAINT t_c CHECK (c IN ('a', 'b'))"));
        assert!(!refused("ALTER TABLE t ADD COLUMN c numeric(10, 2) NOT NULL DEFAULT 0, ADD COLUMN d text"));
        assert!(!refused("ALTER TABLE t DROP CONSTRAINT t_c, DROP COLUMN d"));
        assert!(!refused("CREATE TABLE t (c text CHECK (c <> ''), UNIQUE (c))"));
        // The landed ones that break the rule are found.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
        for name in ["V14__receiver_dialects.sql", "V19__scoped_tokens.sql", "V23__endpoint_consumer.sql"] {
            let text = std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
            assert!(crate::statements::split(&text).into_iter().any(refused), "{name}");
        }
    }
}
