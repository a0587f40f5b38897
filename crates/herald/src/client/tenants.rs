//! `herald tenants`: the operator's routes (`/v1/admin/tenants`), with an operator token from
//! `herald admin token create`.

use clap::{Args, Subcommand};

use super::http::{Api, Result};
use super::tokens::{print_created, CreateArgs};
use super::{output, Conn, Output, PageArgs};

#[derive(Debug, Args)]
pub struct TenantsArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: TenantsCommand,
}

#[derive(Debug, Subcommand)]
enum TenantsCommand {
    /// List tenants, in id order.
    List(PageArgs),
    /// Create a tenant; prints it with its first token (scope full), shown this once.
    Create(IdArg),
    /// Show a tenant and its settings.
    Show(IdArg),
    /// Disable a tenant: its tokens are refused (403 tenant_disabled); its deliveries go on.
    Disable(IdArg),
    /// Enable a disabled tenant: its tokens work again.
    Enable(IdArg),
    /// Make a token for a tenant (shown this once).
    Token(TokenArgs),
}

#[derive(Debug, Args)]
struct IdArg {
    /// The tenant's id: 1 to 63 of a-z 0-9 _ -, starting with a letter or digit.
    id: String,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The tenant's id.
    tenant: String,
    #[command(flatten)]
    token: CreateArgs,
}

const FIELDS: &[&str] = &["id", "created_at", "disabled_at"];

pub async fn run(args: TenantsArgs) -> Result<()> {
    let api = Api::new(&args.conn)?;
    let out = api.output;
    match args.command {
        TenantsCommand::List(page) => {
            let answer = api.get(&["admin", "tenants"], &page.query()).await?;
            output::list(&answer, out, "tenants", &["id", "created_at", "disabled_at"]);
        }
        TenantsCommand::Create(a) => {
            let answer = api.post_json(&["admin", "tenants"], &serde_json::json!({ "id": a.id })).await?;
            match out {
                Output::Json => output::json(&answer),
                Output::Table => {
                    let mut v = answer.json.clone();
                    v["token_id"] = v["token"]["id"].clone();
                    v["token"] = v["token"]["token"].take();
                    out!("{}", output::fields(&v, &["id", "created_at", "disabled_at", "token_id", "token"], &[]));
                    eprintln!("the tenant's first token (scope full) is shown this once: keep it now");
                }
            }
        }
        TenantsCommand::Show(a) => output::object(&api.get(&["admin", "tenants", &a.id], &[]).await?, out, FIELDS),
        TenantsCommand::Disable(a) => {
            output::object(&api.post(&["admin", "tenants", &a.id, "disable"], None).await?, out, FIELDS)
        }
        TenantsCommand::Enable(a) => {
            output::object(&api.post(&["admin", "tenants", &a.id, "enable"], None).await?, out, FIELDS)
        }
        TenantsCommand::Token(a) => {
            print_created(&api.post_json(&["admin", "tenants", &a.tenant, "tokens"], &a.token.body()?).await?, out)
        }
    }
    Ok(())
}
