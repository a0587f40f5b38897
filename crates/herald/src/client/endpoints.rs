//! `herald endpoints`: the tenant's webhook endpoints over `/v1/endpoints`.

use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use super::http::{Answer, Api, Failure, Result};
use super::{output, Conn, Output, PageArgs};

#[derive(Debug, Args)]
pub struct EndpointsArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: EndpointsCommand,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only the endpoints of this consumer.
    #[arg(long)]
    consumer: Option<String>,
    #[command(flatten)]
    page: PageArgs,
}

#[derive(Debug, Subcommand)]
enum EndpointsCommand {
    /// List the tenant's endpoints, oldest first (never their secrets).
    List(ListArgs),
    /// Create an endpoint and print it with its secret (shown here, by rotate, and by an update
    /// that sets one; never by show or list).
    Create(CreateArgs),
    /// Show an endpoint (without its secret).
    Show(IdArg),
    /// Change the fields given; the others keep their values. `none` clears a field that can be
    /// cleared (--timeout, --retry-schedule, --max-in-flight, --rate-limit, --signature-header).
    Update(UpdateArgs),
    /// Set the status to healthy (from failing or disabled): its deliveries go again.
    Enable(IdArg),
    /// Set the status to disabled: no attempts; events published meanwhile get no delivery to it
    /// (replay them after enabling).
    Disable(IdArg),
    /// Give the endpoint a new secret, generated or --secret, and print it. With Standard
    /// Webhooks the previous secret keeps signing beside it for 24 hours.
    Rotate(RotateArgs),
    /// Send a signed `herald.test` event to this endpoint alone; prints the event's and the
    /// delivery's ids (`herald deliveries show ID` follows it).
    Test(IdArg),
    /// Delete an endpoint; its pending deliveries are cancelled.
    Delete(IdArg),
}

#[derive(Debug, Args)]
struct IdArg {
    /// The endpoint's id (ep_...).
    id: String,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Where the webhooks go: an http:// or https:// URL the tenant's URL policy allows.
    #[arg(id = "endpoint_url", value_name = "URL")]
    url: String,
    #[command(flatten)]
    fields: Fields,
    /// Create it disabled: no attempts until `herald endpoints enable`.
    #[arg(long)]
    disabled: bool,
}

#[derive(Debug, Args)]
struct UpdateArgs {
    /// The endpoint's id (ep_...).
    id: String,
    /// A new URL for the webhooks (`--herald-url` is Herald's own address, where the CLI calls).
    #[arg(long = "endpoint-url", id = "endpoint_url", value_name = "URL")]
    url: Option<String>,
    /// Every event type again (clears the --event-type filter).
    #[arg(long, conflicts_with = "event_types")]
    all_event_types: bool,
    /// Remove the endpoint's own headers.
    #[arg(long, conflicts_with = "headers")]
    no_headers: bool,
    #[command(flatten)]
    fields: Fields,
}

#[derive(Debug, Args)]
struct RotateArgs {
    /// The endpoint's id (ep_...).
    id: String,
    /// The new secret, checked for the endpoint's scheme (default: Herald makes one).
    #[arg(long)]
    secret: Option<String>,
}

/// The fields create and update share; each one given goes in the request.
#[derive(Debug, Args)]
struct Fields {
    /// An event type it gets, or a pattern such as `order.*`; give it again for more. None on
    /// create: every type.
    #[arg(long = "event-type", value_name = "TYPE")]
    event_types: Vec<String>,
    /// What it is, for people (at most 1024 characters).
    #[arg(long)]
    description: Option<String>,
    /// How requests are signed.
    #[arg(long, value_parser = ["standard-webhooks", "hmac-sha256-hex"])]
    signature_scheme: Option<String>,
    /// The signing secret (default on create: Herald makes one). Standard Webhooks: whsec_ and
    /// base64; hmac-sha256-hex: 16 to 256 printable characters. On update, a rotation.
    #[arg(long)]
    secret: Option<String>,
    /// hmac-sha256-hex only: the header the signature goes in (default x-webhook-signature).
    #[arg(long, value_name = "NAME|none")]
    signature_header: Option<String>,
    /// A header of the receiver's own sent with every attempt, NAME=VALUE; give it again for
    /// more. On update, the headers given replace them all.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// The attempt timeout for this endpoint, 1s to 60s (default HERALD_ATTEMPT_TIMEOUT).
    #[arg(long, value_name = "DURATION|none")]
    timeout: Option<String>,
    /// The body it gets.
    #[arg(long, value_parser = ["envelope", "humanlayer"])]
    payload_format: Option<String>,
    /// `fifo`: one delivery at a time, in publish order.
    #[arg(long, value_parser = ["none", "fifo"])]
    ordering: Option<String>,
    /// Your name for the customer whose endpoint it is (e.g. acme): set when the endpoint is made,
    /// never changed after (an update may only repeat it).
    #[arg(long, value_name = "NAME|none")]
    consumer: Option<String>,
    /// Delays between attempts, comma-separated (e.g. 5s,1m,10m); default HERALD_RETRY_SCHEDULE.
    #[arg(long, value_name = "DELAYS|none")]
    retry_schedule: Option<String>,
    /// Attempts in flight to it at once, across all workers.
    #[arg(long, value_name = "N|none", value_parser = number_or_none)]
    max_in_flight: Option<Nullable>,
    /// Attempts started per second, across all workers.
    #[arg(long = "rate-limit", value_name = "N|none", value_parser = number_or_none)]
    rate_limit_per_s: Option<Nullable>,
}

/// A number, or `none` (JSON null: clears the setting).
#[derive(Debug, Clone)]
struct Nullable(Option<u64>);

fn number_or_none(s: &str) -> std::result::Result<Nullable, String> {
    match s.trim() {
        "none" => Ok(Nullable(None)),
        n => n.parse().map(|n| Nullable(Some(n))).map_err(|_| format!("{s:?} is not a whole number or none")),
    }
}

/// `none` is JSON null; anything else a string.
fn string_or_none(s: &str) -> Value {
    match s.trim() {
        "none" => Value::Null,
        _ => Value::String(s.to_string()),
    }
}

impl Fields {
    fn into_body(self, body: &mut Map<String, Value>) -> Result<()> {
        if !self.event_types.is_empty() {
            body.insert("event_types".into(), self.event_types.into());
        }
        let strings = [
            ("description", self.description.map(Value::String)),
            ("signature_scheme", self.signature_scheme.map(Value::String)),
            ("secret", self.secret.map(Value::String)),
            ("signature_header", self.signature_header.as_deref().map(string_or_none)),
            ("timeout", self.timeout.as_deref().map(string_or_none)),
            ("payload_format", self.payload_format.map(Value::String)),
            ("ordering", self.ordering.map(Value::String)),
            ("consumer", self.consumer.as_deref().map(string_or_none)),
        ];
        for (name, value) in strings {
            if let Some(v) = value {
                body.insert(name.into(), v);
            }
        }
        if let Some(s) = self.retry_schedule {
            let v = match s.trim() {
                "none" => Value::Null,
                s => s.split(',').map(|step| Value::String(step.trim().to_string())).collect(),
            };
            body.insert("retry_schedule".into(), v);
        }
        for (name, value) in [("max_in_flight", self.max_in_flight), ("rate_limit_per_s", self.rate_limit_per_s)] {
            if let Some(Nullable(n)) = value {
                body.insert(name.into(), n.map_or(Value::Null, Value::from));
            }
        }
        if !self.headers.is_empty() {
            let mut headers = Map::new();
            for h in self.headers {
                let Some((name, value)) = h.split_once('=') else {
                    return Err(Failure::Local(format!("--header {h:?}: give NAME=VALUE, e.g. X-Api-Key=abc123")));
                };
                headers.insert(name.trim().to_string(), Value::String(value.to_string()));
            }
            body.insert("headers".into(), Value::Object(headers));
        }
        Ok(())
    }
}

/// The order `show` prints an endpoint's fields in.
const FIELDS: &[&str] = &[
    "id",
    "url",
    "status",
    "disabled_reason",
    "description",
    "event_types",
    "signature_scheme",
    "signature_header",
    "secret",
    "headers",
    "timeout",
    "payload_format",
    "ordering",
    "consumer",
    "retry_schedule",
    "max_in_flight",
    "rate_limit_per_s",
    "created_at",
    "updated_at",
];

/// An endpoint for people: an empty type filter means every type.
fn for_people(mut v: Value) -> Value {
    if v["event_types"].as_array().is_some_and(Vec::is_empty) {
        v["event_types"] = Value::String("(every type)".into());
    }
    v
}

fn print_endpoint(answer: &Answer, output: Output) {
    match output {
        Output::Json => output::json(answer),
        Output::Table => out!("{}", output::fields(&for_people(answer.json.clone()), FIELDS, &[])),
    }
}

pub async fn run(args: EndpointsArgs) -> Result<()> {
    let api = Api::new(&args.conn)?;
    let out = api.output;
    match args.command {
        EndpointsCommand::List(list) => {
            let mut query = list.page.query();
            if let Some(c) = list.consumer {
                query.push(("consumer", c));
            }
            let mut answer = api.get(&["endpoints"], &query).await?;
            if let Some(items) = answer.json["data"].as_array_mut() {
                for item in items {
                    *item = for_people(item.take());
                }
            }
            output::list(&answer, out, "endpoints", &["id", "status", "url", "event_types", "description"]);
        }
        EndpointsCommand::Create(a) => {
            let mut body = Map::new();
            body.insert("url".into(), Value::String(a.url));
            a.fields.into_body(&mut body)?;
            let created = api.post_json(&["endpoints"], &Value::Object(body)).await?;
            if !a.disabled {
                print_endpoint(&created, out);
                return Ok(());
            }
            let id = created.json["id"].as_str().unwrap_or_default().to_string();
            let disabled = match api.post(&["endpoints", &id, "disable"], None).await {
                Ok(d) => d,
                Err(e) => {
                    // Created all the same: say so, with its secret, before the failure.
                    print_endpoint(&created, out);
                    eprintln!("created {id}, but it could not be disabled:");
                    // Something was done: not exit 2, which says nothing was.
                    return Err(match e {
                        Failure::Unreachable(m) | Failure::Local(m) => Failure::Uncertain(m),
                        e => e,
                    });
                }
            };
            // The secret is answered by the create alone: it goes with the disabled endpoint.
            let mut v = disabled.json;
            v["secret"] = created.json["secret"].clone();
            print_endpoint(&Answer { status: created.status, text: v.to_string(), json: v }, out);
        }
        EndpointsCommand::Show(a) => print_endpoint(&api.get(&["endpoints", &a.id], &[]).await?, out),
        EndpointsCommand::Update(a) => {
            let mut body = Map::new();
            if let Some(url) = a.url {
                body.insert("url".into(), Value::String(url));
            }
            if a.all_event_types {
                body.insert("event_types".into(), Value::Array(vec![]));
            }
            if a.no_headers {
                body.insert("headers".into(), Value::Null);
            }
            a.fields.into_body(&mut body)?;
            if body.is_empty() {
                return Err(Failure::Local(
                    "nothing to change: give a field to set, e.g. --description, --event-type or --endpoint-url \
                     (`herald endpoints update --help` lists them)"
                        .into(),
                ));
            }
            print_endpoint(&api.patch_json(&["endpoints", &a.id], &Value::Object(body)).await?, out);
        }
        EndpointsCommand::Enable(a) => print_endpoint(&api.post(&["endpoints", &a.id, "enable"], None).await?, out),
        EndpointsCommand::Disable(a) => print_endpoint(&api.post(&["endpoints", &a.id, "disable"], None).await?, out),
        EndpointsCommand::Rotate(a) => {
            let body = a.secret.map(|s| serde_json::json!({ "secret": s }).to_string());
            print_endpoint(&api.post(&["endpoints", &a.id, "rotate-secret"], body).await?, out);
        }
        EndpointsCommand::Test(a) => {
            let answer = api.post(&["endpoints", &a.id, "test"], None).await?;
            output::object(&answer, out, &["event_id", "delivery_id"]);
            if out == Output::Table {
                if let Some(d) = answer.json["delivery_id"].as_str() {
                    eprintln!("follow it: herald deliveries show {d}");
                }
            }
        }
        EndpointsCommand::Delete(a) => {
            let answer = api.delete(&["endpoints", &a.id]).await?;
            match out {
                Output::Json => output::json(&answer),
                Output::Table => outln!("deleted {}", a.id),
            }
        }
    }
    Ok(())
}
