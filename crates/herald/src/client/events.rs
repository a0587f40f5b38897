//! `herald events`: publish an event, show one with its deliveries, list them, list an event's
//! attempts (`/v1/events`).

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::http::{Api, Failure, Result};
use super::{output, time_or_ago, time_or_in, Conn, Output, PageArgs};

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: EventsCommand,
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Publish an event to every endpoint whose event types match. Its data: --data JSON,
    /// --data-file PATH, or --data-file - for standard input; `{}` when none is given. The data
    /// is sent as written (the receivers get the same bytes, outer white space aside).
    Send(SendArgs),
    /// Show an event, its data, and its deliveries.
    Show(IdArg),
    /// List the tenant's events, newest first, by type, time window, and failed deliveries.
    List(ListArgs),
    /// Every attempt of every delivery of an event, oldest first.
    Attempts(AttemptsArgs),
}

#[derive(Debug, Args)]
struct IdArg {
    /// The event's id.
    id: String,
}

#[derive(Debug, Args)]
struct SendArgs {
    /// The event's type, e.g. order.paid.
    #[arg(value_name = "TYPE")]
    event_type: String,
    /// The event's id (default: Herald makes one, evt_...). Sending an id again stores nothing
    /// new: the answer says `duplicate`.
    #[arg(long)]
    id: Option<String>,
    /// The event's data, as JSON.
    #[arg(long, value_name = "JSON", conflicts_with = "data_file")]
    data: Option<String>,
    /// Read the data from this file; `-` reads standard input.
    #[arg(long, value_name = "PATH")]
    data_file: Option<PathBuf>,
    /// Also deliver the event to this URL (its callback).
    #[arg(long, value_name = "URL")]
    callback_url: Option<String>,
    /// Deliver it no sooner than this: an RFC 3339 time, or a duration from now (10m, 2h); at
    /// most 30 days ahead.
    #[arg(long, value_name = "TIME")]
    deliver_at: Option<String>,
    /// The customer it is for, e.g. acme: only that consumer's endpoints (and the tenant's own,
    /// of no consumer) get it. Default: the tenant's own endpoints only.
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only this type, or types under a prefix (`order.*`).
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// Published at or after this: an RFC 3339 time, or a duration ago (2h, 7d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Published before this: an RFC 3339 time, or a duration ago.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Only events with a failed delivery (`--failed false`: only those without).
    #[arg(long, value_name = "true|false", num_args = 0..=1, default_missing_value = "true")]
    failed: Option<bool>,
    #[command(flatten)]
    page: PageArgs,
}

#[derive(Debug, Args)]
struct AttemptsArgs {
    /// The event's id.
    id: String,
    #[command(flatten)]
    page: PageArgs,
}

/// The body of `POST /v1/events`, with `data` spliced in as the text given.
#[derive(Serialize)]
struct Publish<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type")]
    event_type: &'a str,
    data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deliver_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer: Option<&'a str>,
}

/// The data's text: from --data, the file, or standard input; checked to be JSON.
fn data(a: &SendArgs) -> Result<Box<RawValue>> {
    let (text, from) = match (&a.data, &a.data_file) {
        (Some(d), _) => (d.clone(), "--data".to_string()),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::Local(format!("reading the data from standard input: {e}")))?;
            (text, "standard input".to_string())
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Local(format!("reading --data-file {}: {e}", path.display())))?;
            (text, format!("--data-file {}", path.display()))
        }
        (None, None) => ("{}".to_string(), String::new()),
    };
    // A BOM (editors on Windows write one) is no part of the JSON.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    RawValue::from_string(text.trim().to_string())
        .map_err(|e| Failure::Local(format!("the data from {from} is not JSON: {e}")))
}

pub async fn run(args: EventsArgs) -> Result<()> {
    let api = Api::new(&args.conn)?;
    let out = api.output;
    match args.command {
        EventsCommand::Send(a) => {
            let data = data(&a)?;
            let deliver_at = a.deliver_at.as_deref().map(|t| time_or_in("--deliver-at", t)).transpose()?;
            let body = Publish {
                id: a.id.as_deref(),
                event_type: &a.event_type,
                data: &data,
                callback_url: a.callback_url.as_deref(),
                deliver_at,
                consumer: a.consumer.as_deref(),
            };
            let body = serde_json::to_string(&body).map_err(|e| Failure::Local(format!("the request: {e}")))?;
            let answer = api.post(&["events"], Some(body)).await?;
            output::object(&answer, out, &["id", "created_at", "duplicate"]);
        }
        EventsCommand::Show(a) => {
            let answer = api.get(&["events", &a.id], &[]).await?;
            if out == Output::Json {
                output::json(&answer);
                return Ok(());
            }
            out!(
                "{}",
                output::fields(&answer.json, &["id", "type", "consumer", "created_at", "data"], &["deliveries"])
            );
            let mut deliveries = answer.json["deliveries"].as_array().cloned().unwrap_or_default();
            for d in &mut deliveries {
                if d["endpoint_id"].is_null() {
                    d["endpoint_id"] = Value::String("(callback)".into());
                }
            }
            if deliveries.is_empty() {
                outln!("\nno deliveries");
            } else {
                let columns = [
                    "id",
                    "endpoint_id",
                    "state",
                    "attempt_count",
                    "next_attempt_at",
                    "last_status_code",
                    "last_error",
                ];
                let headers =
                    ["DELIVERY", "ENDPOINT", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "LAST STATUS", "LAST ERROR"];
                out!("\n{}", output::table(&headers, &output::rows(&deliveries, &columns)));
            }
        }
        EventsCommand::List(a) => {
            let mut query = Vec::new();
            if let Some(t) = a.event_type {
                query.push(("type", t));
            }
            if let Some(s) = a.since {
                query.push(("since", time_or_ago("--since", &s)?));
            }
            if let Some(u) = a.until {
                query.push(("until", time_or_ago("--until", &u)?));
            }
            if let Some(f) = a.failed {
                query.push(("failed", f.to_string()));
            }
            query.extend(a.page.query());
            if out == Output::Table {
                // A table shows no data: leave it out of the answer.
                query.push(("with_data", "false".into()));
            }
            let mut answer = api.get(&["events"], &query).await?;
            // Each event's deliveries counted by state, as columns.
            for item in answer.json["data"].as_array_mut().into_iter().flatten() {
                let counts = item["delivery_counts"].take();
                for (column, count) in
                    [("deliveries", "total"), ("delivered", "delivered"), ("failed", "failed"), ("pending", "pending")]
                {
                    item[column] = counts[count].clone();
                }
            }
            let columns = ["id", "type", "created_at", "deliveries", "delivered", "failed", "pending"];
            output::list(&answer, out, "events", &columns);
        }
        EventsCommand::Attempts(a) => {
            let columns = [
                "id",
                "delivery_id",
                "attempt",
                "started_at",
                "duration_ms",
                "status_code",
                "error",
                "response_excerpt",
            ];
            attempts(&api, &["events", &a.id, "attempts"], &a.page, &columns).await?;
        }
    }
    Ok(())
}

/// The most of a receiver's answer an attempts table shows (`-o json` has all of it).
const EXCERPT_CHARS: usize = 60;

/// One page of attempts (an event's, a delivery's): a table of `columns`, each receiver's
/// answer on one short line.
pub(super) async fn attempts(api: &Api, path: &[&str], page: &PageArgs, columns: &[&str]) -> Result<()> {
    let mut answer = api.get(path, &page.query()).await?;
    for item in answer.json["data"].as_array_mut().into_iter().flatten() {
        if let Some(text) = item["response_excerpt"].as_str() {
            item["response_excerpt"] = Value::String(excerpt(text, EXCERPT_CHARS));
        }
    }
    output::list(&answer, api.output, "attempts", columns);
    Ok(())
}

/// `text` on one line (white space runs, line breaks included, as one space), cut to `max`
/// characters with `…` where it was cut.
fn excerpt(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let cut: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_one_short_line() {
        assert_eq!(excerpt("  upstream\r\n  busy \t", 60), "upstream busy");
        assert_eq!(excerpt("<html>\n  <body>Internal Server Error</body>\n</html>", 20), "<html> <body>Intern…");
        assert_eq!(excerpt("日本語のエラー", 4), "日本語…", "cut between characters, not bytes");
        assert_eq!(excerpt("", 10), "");
    }
}
