//! `herald links`: one URL for one person, instead of a token (`/v1/links`; a token of scope
//! `full`). An inbox link lets an approver answer operations; a portal link lets a customer
//! manage its own endpoints.

use clap::{Args, Subcommand};
use reqwest::Url;
use serde::Serialize;
use serde_json::{Map, Value};

use super::http::{Answer, Api, Failure, Result};
use super::{output, Conn, Output, PageArgs};

#[derive(Debug, Args)]
pub struct LinksArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: LinksCommand,
}

#[derive(Debug, Subcommand)]
enum LinksCommand {
    /// Make a link and print its URL: it is shown this once (only its hash is kept).
    #[command(subcommand)]
    Create(Kind),
    /// List the tenant's links, newest first, revoked and expired ones too (never their URLs).
    List(PageArgs),
    /// Revoke a link: its URL and every session opened with it stop working at once.
    Revoke(IdArg),
}

#[derive(Debug, Subcommand)]
enum Kind {
    /// A link to the inbox (/inbox), for a person who answers approvals and questions; the
    /// answers are recorded with --responder.
    Inbox(InboxArgs),
    /// A link to the portal (/portal), for a customer who manages its own webhook endpoints,
    /// their deliveries and replays.
    Portal(PortalArgs),
}

#[derive(Debug, Args)]
struct InboxArgs {
    /// Who answers through the link (1 to 200 characters), e.g. "Jane Doe": recorded with each
    /// answer.
    #[arg(long, value_name = "NAME")]
    responder: String,
    /// Only this run's operations (default: every run's).
    #[arg(long, value_name = "RUN")]
    run_id: Option<String>,
    /// How long the link works, from now: 30m, 24h, 7d; at most 30d (the API's default 24h).
    #[arg(long, value_name = "DURATION")]
    expires_in: Option<String>,
}

#[derive(Debug, Args)]
struct PortalArgs {
    /// The consumer whose endpoints it manages, e.g. acme (default: every endpoint of the
    /// tenant).
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,
    /// How long the link works, from now: 30m, 24h, 7d; at most 30d (the API's default 24h).
    #[arg(long, value_name = "DURATION")]
    expires_in: Option<String>,
}

#[derive(Debug, Args)]
struct IdArg {
    /// The link's id (lnk_...), as `herald links list` shows it.
    id: String,
}

/// The body of `POST /v1/links`: the fields given, and no others.
#[derive(Debug, Serialize)]
struct NewLink {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    responder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<String>,
}

impl From<Kind> for NewLink {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Inbox(a) => NewLink {
                kind: "inbox",
                responder: Some(a.responder),
                run_id: a.run_id,
                consumer: None,
                expires_in: a.expires_in,
            },
            Kind::Portal(a) => NewLink {
                kind: "portal",
                responder: None,
                run_id: None,
                consumer: a.consumer,
                expires_in: a.expires_in,
            },
        }
    }
}

/// The page's URL a person opens: Herald's address (its base path kept, as the API calls keep
/// it) joined with the link's `url` as the API answers it (`/portal#hrldl_...`).
fn page_url(herald_url: &str, link: &str) -> String {
    let Some(path) = link.strip_prefix('/') else { return link.to_string() };
    let Ok(mut base) = Url::parse(herald_url.trim()) else { return link.to_string() };
    base.set_query(None);
    base.set_fragment(None);
    let (path, fragment) = path.split_once('#').map_or((path, None), |(p, f)| (p, Some(f)));
    if let Ok(mut segments) = base.path_segments_mut() {
        segments.pop_if_empty().extend(path.split('/'));
    }
    base.set_fragment(fragment);
    base.to_string()
}

/// A link just made: its page's whole URL on the first line, then what it is for.
fn print_created(answer: &Answer, out: Output, herald_url: &str) {
    if out == Output::Json {
        return output::json(answer);
    }
    let mut v = answer.json.clone();
    if let Some(link) = v["url"].as_str() {
        v["url"] = page_url(herald_url, link).into();
    }
    // What it reaches, with what no limit means said in words.
    let (scope, unlimited): (&[&str], _) = match v["kind"].as_str() {
        Some("inbox") => (&["responder", "run_id"], ("run_id", "(every run)")),
        _ => (&["consumer"], ("consumer", "(every endpoint)")),
    };
    if v[unlimited.0].is_null() {
        v[unlimited.0] = unlimited.1.into();
    }
    let first: Vec<&str> = ["url", "id", "kind"].iter().chain(scope).chain(&["expires_at"]).copied().collect();
    let shown: Map<String, Value> =
        first.iter().filter_map(|k| v.get(*k).map(|value| (k.to_string(), value.clone()))).collect();
    out!("{}", output::fields(&Value::Object(shown), &first, &[]));
    eprintln!(
        "the URL is shown this once (Herald keeps only its hash): send it to the person now; \
         `herald links revoke {}` ends it",
        output::cell(&v["id"])
    );
}

pub async fn run(args: LinksArgs) -> Result<()> {
    let api = Api::new(&args.conn)?;
    let out = api.output;
    match args.command {
        LinksCommand::Create(kind) => {
            let body =
                serde_json::to_value(NewLink::from(kind)).map_err(|e| Failure::Local(format!("the request: {e}")))?;
            print_created(&api.post_json(&["links"], &body).await?, out, &args.conn.herald_url)
        }
        LinksCommand::List(page) => {
            let answer = api.get(&["links"], &page.query()).await?;
            let columns = ["id", "kind", "responder", "run_id", "consumer", "expires_at", "revoked_at"];
            output::list(&answer, out, "links", &columns);
        }
        LinksCommand::Revoke(a) => {
            let answer = api.delete(&["links", &a.id]).await?;
            match out {
                Output::Json => output::json(&answer),
                Output::Table => outln!("revoked {}", a.id),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_url_keeps_heralds_base_path_and_the_fragment() {
        let link = "/portal#hrldl_acme.abc-DEF_123";
        assert_eq!(page_url("http://127.0.0.1:8080", link), "http://127.0.0.1:8080/portal#hrldl_acme.abc-DEF_123");
        assert_eq!(page_url("http://127.0.0.1:8080/", link), "http://127.0.0.1:8080/portal#hrldl_acme.abc-DEF_123");
        assert_eq!(
            page_url("https://example.com/herald/?x=1", "/inbox#hrldl_acme.x"),
            "https://example.com/herald/inbox#hrldl_acme.x"
        );
        assert_eq!(page_url("http://h", "https://elsewhere/portal#c"), "https://elsewhere/portal#c", "as given");
    }

    #[test]
    fn a_link_asks_for_the_fields_of_its_kind_only() {
        let inbox =
            Kind::Inbox(InboxArgs { responder: "Jane Doe".into(), run_id: None, expires_in: Some("2h".into()) });
        let body = serde_json::to_value(NewLink::from(inbox)).unwrap();
        assert_eq!(body, serde_json::json!({"kind": "inbox", "responder": "Jane Doe", "expires_in": "2h"}));
        let portal = Kind::Portal(PortalArgs { consumer: Some("acme".into()), expires_in: None });
        let body = serde_json::to_value(NewLink::from(portal)).unwrap();
        assert_eq!(body, serde_json::json!({"kind": "portal", "consumer": "acme"}));
    }
}
