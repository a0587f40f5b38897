//! The operator CLI over Herald's HTTP API: `herald endpoints`, `events`, `deliveries`,
//! `replay`, `tokens`, `links`, `tenants` (operator) and `completions`. Each command is one or a few
//! API calls with `HERALD_URL` and `HERALD_TOKEN`; it prints tables for people or, with
//! `--output json`, the API's JSON as it came, and exits with a code scripts can use
//! ([`EXIT_CODES`]).
//!
//! Must not: know more of Herald than its API says (no database, no shared types with the
//! server): what the CLI shows is what any client of the API would see. Must not print the
//! token it calls with.

/// `print!` to standard output, whose reader may have gone (`herald events list | head`):
/// what it no longer reads is dropped, without a panic.
macro_rules! out {
    ($($t:tt)*) => { $crate::client::output::emit(&format!($($t)*)) };
}

/// `println!`, as [`out!`].
macro_rules! outln {
    ($($t:tt)*) => { $crate::client::output::emit(&format!("{}\n", format_args!($($t)*))) };
}

mod completions;
mod deliveries;
mod endpoints;
mod events;
mod http;
mod links;
mod output;
mod replay;
mod tenants;
mod tokens;

use clap::{Args, Subcommand, ValueEnum};

/// The exit codes of the commands that talk to the API, for `herald --help` (docs/cli.md says
/// the same).
pub const EXIT_CODES: &str = "\
Exit codes of the commands that talk to the API (endpoints, events, deliveries, replay, tokens,
links, tenants):
  0  done
  1  the API refused the request (4xx); its error code and message are on standard error
  2  bad usage or local input, or Herald cannot be reached at HERALD_URL: nothing was done
  3  Herald failed (5xx), did not answer in time, or answered what Herald never answers: the
     request may have been done; retry later (an event sent again with the same --id is stored
     once). Also: a replay still running when `herald replay --timeout` ran out
  4  a replay job ended failed (its reason is on standard error)";

/// The commands that talk to a running Herald over its HTTP API.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Webhook endpoints over the API: list, create, show, update, enable, disable, rotate the
    /// secret, send a test event, delete.
    Endpoints(Box<endpoints::EndpointsArgs>),
    /// Events over the API: send one (data from an argument, a file or standard input), show
    /// one with its deliveries, list them, list an event's attempts.
    Events(events::EventsArgs),
    /// Deliveries over the API: show one, list its attempts, retry one now.
    Deliveries(deliveries::DeliveriesArgs),
    /// Deliver a time window's events to an endpoint again, as a background job, with its
    /// progress until it ends (exit 0 done, 4 failed).
    Replay(replay::ReplayArgs),
    /// The calling tenant's API tokens: list, create (the token is shown once), revoke.
    Tokens(tokens::TokensArgs),
    /// Links, one URL for one person instead of a token: create one for the inbox (an approver)
    /// or the portal (a customer's endpoints; the URL is shown once), list them, revoke one.
    Links(links::LinksArgs),
    /// Tenants, with an operator token (`herald admin token create`): list, create, show,
    /// disable, enable, and make a token for one.
    Tenants(tenants::TenantsArgs),
    /// Print a shell completion script for bash, zsh, fish, elvish or powershell, e.g.
    /// `herald completions bash > /etc/bash_completion.d/herald`.
    Completions(completions::CompletionsArgs),
}

/// Where the API is, the token to call it with, and how to print its answers. Given before or
/// after the subcommand.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Talking to Herald")]
pub struct Conn {
    /// Herald's HTTP API (not an endpoint's URL: that is `endpoints create URL` and
    /// `endpoints update --endpoint-url`).
    #[arg(
        long = "herald-url",
        env = "HERALD_URL",
        default_value = "http://127.0.0.1:8080",
        global = true,
        value_name = "URL"
    )]
    pub herald_url: String,

    /// The API token (a tenant's; an operator's for `herald tenants`). Better in the environment
    /// than on the command line, where other users of the machine may see it. Never printed.
    #[arg(long, env = "HERALD_TOKEN", hide_env_values = true, global = true, value_name = "TOKEN")]
    pub token: Option<ApiToken>,

    /// `table` for people; `json` prints the API's answer as it came, for scripts.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,

    /// The longest one API request may take, its answer included. A request that runs out may
    /// have been done (exit 3).
    #[arg(
        long,
        default_value = "60s",
        global = true,
        value_name = "DURATION",
        value_parser = herald_core::config::parse_duration
    )]
    pub api_timeout: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// An API token, kept out of `Debug` output. Any text parses (clap's error for a value it
/// refuses would quote the value, the token with it): [`ApiToken::checked`] judges it, without
/// quoting it, when a command is about to use it.
#[derive(Clone)]
pub struct ApiToken(String);

impl ApiToken {
    /// The token as it goes in `Authorization: Bearer`, or why it cannot: never with the token
    /// (or any part of it) in the message.
    fn checked(&self) -> std::result::Result<&str, String> {
        let s = self.0.trim();
        if s.is_empty() {
            return Err("HERALD_TOKEN (or --token) is empty: give a token, hrld_...".into());
        }
        if s.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("bearer ")) {
            return Err("HERALD_TOKEN (or --token) starts with \"Bearer \": give the token alone (hrld_...), \
                        the CLI adds the Authorization scheme"
                .into());
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("HERALD_TOKEN (or --token) is not a token: a token is visible ASCII characters \
                        only, without spaces (hrld_...)"
                .into());
        }
        Ok(s)
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

impl std::str::FromStr for ApiToken {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

/// Paging of a list: the API answers `next_cursor` and `prev_cursor`.
#[derive(Debug, Args, Clone)]
pub struct PageArgs {
    /// Items per page, 1 to 500 (the API's default is 50).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The page after this position: a list's `next_cursor` (printed on standard error).
    #[arg(long, conflicts_with = "before")]
    pub cursor: Option<String>,
    /// The page before this position: a list's `prev_cursor`.
    #[arg(long)]
    pub before: Option<String>,
}

impl PageArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(limit) = self.limit {
            q.push(("limit", limit.to_string()));
        }
        if let Some(c) = &self.cursor {
            q.push(("cursor", c.clone()));
        }
        if let Some(b) = &self.before {
            q.push(("before", b.clone()));
        }
        q
    }
}

/// A time flag: a duration means that long ago (`2h`, `30m`, `7d`), written in RFC 3339;
/// anything else goes to the API as given, which checks it (RFC 3339). `flag` names it in the
/// message for a duration that reaches before the calendar's first year.
fn time_or_ago(flag: &str, s: &str) -> http::Result<String> {
    shifted(flag, s, |now, d| now.checked_sub_signed(d))
}

/// A time flag that may be a duration from now (`--deliver-at 10m`).
fn time_or_in(flag: &str, s: &str) -> http::Result<String> {
    shifted(flag, s, |now, d| now.checked_add_signed(d))
}

fn shifted(
    flag: &str,
    s: &str,
    shift: impl Fn(chrono::DateTime<chrono::Utc>, chrono::Duration) -> Option<chrono::DateTime<chrono::Utc>>,
) -> http::Result<String> {
    let Ok(d) = herald_core::config::parse_duration(s) else { return Ok(s.trim().to_string()) };
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| shift(chrono::Utc::now(), d))
        .map(rfc3339)
        .ok_or_else(|| http::Failure::Local(format!("{flag} {}: a duration that long is out of range", s.trim())))
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Runs one command; a failure is said on standard error. Answers the exit code.
pub async fn run(command: ClientCommand) -> u8 {
    let result = match command {
        ClientCommand::Endpoints(a) => endpoints::run(*a).await,
        ClientCommand::Events(a) => events::run(a).await,
        ClientCommand::Deliveries(a) => deliveries::run(a).await,
        ClientCommand::Replay(a) => replay::run(a).await,
        ClientCommand::Tokens(a) => tokens::run(a).await,
        ClientCommand::Links(a) => links::run(a).await,
        ClientCommand::Tenants(a) => tenants::run(a).await,
        ClientCommand::Completions(a) => completions::run(a),
    };
    let code = match result {
        Ok(()) => http::OK,
        Err(failure) => {
            eprintln!("{}", failure.report());
            failure.exit_code()
        }
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_is_a_time_that_long_ago_and_a_time_goes_as_given() {
        let ago = |s| time_or_ago("--since", s).unwrap();
        assert_eq!(ago("2026-11-22T10:00:00Z"), "2026-11-22T10:00:00Z");
        assert_eq!(ago("yesterday-ish"), "yesterday-ish", "the API judges what is not a duration");
        let t = chrono::DateTime::parse_from_rfc3339(&ago("2h")).unwrap();
        let ago = chrono::Utc::now().signed_duration_since(t);
        assert!(ago >= chrono::Duration::minutes(119) && ago <= chrono::Duration::minutes(121), "{ago}");
        let t = chrono::DateTime::parse_from_rfc3339(&time_or_in("--deliver-at", "10m").unwrap()).unwrap();
        let ahead = t.signed_duration_since(chrono::Utc::now());
        assert!(ahead >= chrono::Duration::minutes(9) && ahead <= chrono::Duration::minutes(10), "{ahead}");
    }

    #[test]
    fn a_duration_out_of_the_calendar_is_a_local_error_not_a_panic() {
        for (flag, f) in [("--since", time_or_ago as fn(&str, &str) -> _), ("--deliver-at", time_or_in)] {
            let e = f(flag, "1000000y").expect_err(flag);
            assert_eq!(e.exit_code(), http::LOCAL, "{flag}");
            assert!(e.report().contains(flag) && e.report().contains("out of range"), "{}", e.report());
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        crate::Cli::command().debug_assert();
    }

    #[test]
    fn a_token_never_shows_in_debug_output_nor_in_its_refusal() {
        let t: ApiToken = "hrld_acme.s3cret".parse().unwrap();
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(t.checked(), Ok("hrld_acme.s3cret"));
        assert_eq!(" hrld_acme.s3cret\n".parse::<ApiToken>().unwrap().checked(), Ok("hrld_acme.s3cret"));
        for bad in ["Bearer hrld_acme.s3cret", "bearer hrld_acme.s3cret", "hrld acme.s3cret", "hrld_acme.s3crét", " "]
        {
            let t: ApiToken = bad.parse().unwrap();
            let why = t.checked().expect_err(bad);
            assert!(!why.contains("s3cr") && !why.contains("acme"), "{why}");
            assert!(why.contains("HERALD_TOKEN"), "{why}");
        }
    }

    #[test]
    fn every_list_pages_both_ways() {
        use clap::CommandFactory;
        let cli = crate::Cli::command();
        let lists = [
            ("tokens", "list"),
            ("tenants", "list"),
            ("endpoints", "list"),
            ("events", "list"),
            ("events", "attempts"),
            ("deliveries", "attempts"),
            ("links", "list"),
        ];
        for (command, list) in lists {
            let found = cli.find_subcommand(command).and_then(|c| c.find_subcommand(list)).expect(command);
            assert!(found.get_arguments().any(|a| a.get_long() == Some("before")), "{command} {list} --before");
        }
    }
}
