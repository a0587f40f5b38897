//! `herald tokens`: the calling tenant's API tokens (`/v1/tokens`; a token of scope `full`).

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::http::{Answer, Api, Failure, Result};
use super::{output, Conn, Output, PageArgs};

#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// List the tenant's tokens that are not revoked (never the tokens themselves).
    List(PageArgs),
    /// Make a token and print it: it is shown this once (only its hash is kept).
    Create(CreateArgs),
    /// Revoke a token: every API process refuses it from the answer on.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub(super) struct CreateArgs {
    /// A name to tell the token apart, e.g. ci-publisher.
    pub name: String,
    /// What it may do: full (everything), publish (publish, and read events and operations),
    /// read (every GET but /v1/tokens), respond (read and answer approvals and human contacts).
    #[arg(long, value_parser = ["full", "publish", "read", "respond"])]
    pub scope: String,
    /// When it stops working: an RFC 3339 time in the future (default: never).
    #[arg(long, value_name = "TIME", conflicts_with = "expires_in")]
    pub expires_at: Option<String>,
    /// How long it works, from now (90d, 12h).
    #[arg(long, value_name = "DURATION", value_parser = herald_core::config::parse_duration)]
    pub expires_in: Option<std::time::Duration>,
}

impl CreateArgs {
    pub fn body(&self) -> Result<Value> {
        let expires_at = match (&self.expires_at, self.expires_in) {
            (Some(t), _) => Value::String(t.clone()),
            (None, Some(d)) => {
                let at = chrono::Duration::from_std(d).ok().and_then(|d| chrono::Utc::now().checked_add_signed(d));
                let at = at.ok_or_else(|| {
                    Failure::Local(
                        "--expires-in: a duration that long is out of range; leave it out for a token \
                                    that never expires"
                            .into(),
                    )
                })?;
                Value::String(super::rfc3339(at))
            }
            (None, None) => Value::Null,
        };
        Ok(json!({"name": self.name, "scope": self.scope, "expires_at": expires_at}))
    }
}

#[derive(Debug, Args)]
struct RevokeArgs {
    /// The token's id (tok_...), as `herald tokens list` shows it.
    id: String,
}

/// A token just made: its row, and the token itself on a line of its own.
pub(super) fn print_created(answer: &Answer, out: Output) {
    match out {
        Output::Json => output::json(answer),
        Output::Table => {
            out!(
                "{}",
                output::fields(&answer.json, &["id", "name", "scope", "created_at", "expires_at", "token"], &[])
            );
            eprintln!("the token is shown this once: keep it now");
        }
    }
}

pub async fn run(args: TokensArgs) -> Result<()> {
    let api = Api::new(&args.conn)?;
    let out = api.output;
    match args.command {
        TokensCommand::List(page) => {
            let answer = api.get(&["tokens"], &page.query()).await?;
            output::list(&answer, out, "tokens", &["id", "name", "scope", "created_at", "expires_at"]);
        }
        TokensCommand::Create(a) => print_created(&api.post_json(&["tokens"], &a.body()?).await?, out),
        TokensCommand::Revoke(a) => {
            let answer = api.delete(&["tokens", &a.id]).await?;
            match out {
                Output::Json => output::json(&answer),
                Output::Table => outln!("revoked {}", a.id),
            }
        }
    }
    Ok(())
}
