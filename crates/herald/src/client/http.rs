//! The API as the CLI calls it: one request, one answer, and every way it can go wrong mapped
//! to an exit code ([`Failure::exit_code`]). Herald's reqwest (rustls), no redirects followed
//! (a redirect would be the wrong URL, and must not carry the token elsewhere).

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::{Conn, Output};

/// Exit codes (also in `herald --help` and docs/cli.md).
pub const OK: u8 = 0;
pub const REFUSED: u8 = 1;
pub const LOCAL: u8 = 2;
pub const SERVER: u8 = 3;
pub const JOB_FAILED: u8 = 4;

/// Why a command did not do what it was asked.
#[derive(Debug)]
pub enum Failure {
    /// The API answered 4xx: its error code and message.
    Refused { status: u16, code: String, message: String },
    /// The API answered 5xx, or something Herald never answers.
    Server { status: Option<u16>, code: String, message: String },
    /// Herald could not be reached: nothing was sent to it (or it was not Herald that answered).
    Unreachable(String),
    /// The request went out, and no whole answer came back (no answer in time, the connection
    /// cut, the body cut short): it may have been done. Also a replay still running when the
    /// CLI stopped waiting for it.
    Uncertain(String),
    /// Bad local input (a flag, a file, JSON that does not parse).
    Local(String),
    /// A replay job ended `failed`.
    JobFailed(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused { .. } => REFUSED,
            Failure::Unreachable(_) | Failure::Local(_) => LOCAL,
            Failure::Server { .. } | Failure::Uncertain(_) => SERVER,
            Failure::JobFailed(_) => JOB_FAILED,
        }
    }

    /// What standard error says: the API's code first, so that scripts may grep it.
    pub fn report(&self) -> String {
        match self {
            Failure::Refused { status, code, message } => format!("error: {code}: {message} (HTTP {status})"),
            Failure::Server { status: Some(status), code, message } => {
                format!("error: {code}: {message} (HTTP {status})")
            }
            Failure::Server { status: None, code, message } => format!("error: {code}: {message}"),
            Failure::Unreachable(m) | Failure::Uncertain(m) | Failure::Local(m) | Failure::JobFailed(m) => {
                format!("error: {m}")
            }
        }
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// An answer of 2xx: its body as received, and read as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub text: String,
    pub json: Value,
}

/// Herald's API at a base URL, with a token.
pub struct Api {
    base: Url,
    /// Checked ([`ApiToken::checked`]): the token alone, as it goes after `Bearer `.
    token: Option<String>,
    http: reqwest::Client,
    /// The longest one request may take (`--api-timeout`); replays poll, so no request of the
    /// CLI is long.
    timeout: Duration,
    pub output: Output,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Api {
    pub fn new(conn: &Conn) -> Result<Self> {
        let raw = conn.herald_url.trim();
        let base = Url::parse(raw).map_err(|e| {
            Failure::Local(format!(
                "--herald-url / HERALD_URL {:?} is not a URL ({e}); e.g. http://127.0.0.1:8080",
                without_userinfo(raw)
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() || base.host().is_none() {
            return Err(Failure::Local(format!(
                "--herald-url / HERALD_URL {:?} must be an http:// or https:// URL, e.g. http://127.0.0.1:8080",
                without_userinfo(raw)
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            // It would go as a second Authorization header (Basic), beside the token's.
            return Err(Failure::Local(format!(
                "--herald-url / HERALD_URL {:?} holds a user name or password: remove it; Herald's API takes \
                 the token alone (HERALD_TOKEN)",
                without_userinfo(raw)
            )));
        }
        let token = match &conn.token {
            Some(t) => Some(t.checked().map_err(Failure::Local)?.to_string()),
            None => None,
        };
        let timeout = conn.api_timeout.max(Duration::from_millis(1));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .user_agent(concat!("herald-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Local(format!("building the HTTP client: {e}")))?;
        Ok(Self { base, token, http, timeout, output: conn.output })
    }

    /// `base` + `/v1/...` + the segments, each percent-encoded (ids may hold `:` or `/`).
    ///
    /// An id that is empty, `.` or `..` is refused (exit 2, nothing sent). The URL standard
    /// reads `.` and `..` as "this folder" and "the folder above", written plainly or
    /// percent-encoded (`%2E`, `%2e%2E`, ...), so `GET /v1/events/..` would go out as
    /// `GET /v1/events`: the url crate, which reqwest sends from, drops such a segment when
    /// pushed and resolves it when parsed, so it cannot send `/v1/events/%2E` at all. Herald's
    /// router does serve it (it decodes `%2E` to `.`), so the message says how to ask without
    /// the CLI.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url> {
        if let Some(bad) = segments.iter().find(|s| matches!(**s, "" | "." | "..")) {
            let how = match *bad {
                "" => "an empty id names nothing".to_string(),
                dots => {
                    // The URL Herald would answer, for a client that sends it as written.
                    let mut hint = self.base.clone();
                    hint.set_query(None);
                    hint.set_fragment(None);
                    if let Ok(mut path) = hint.path_segments_mut() {
                        path.pop_if_empty().push("v1").extend(segments.iter().map(|s| match *s {
                            "." => "%2E",
                            ".." => "%2E%2E",
                            s => s,
                        }));
                    }
                    // The segment setter escaped the `%` of `%2E`; ids hold no `%` of their own.
                    let hint = hint.as_str().replace("%252E", "%2E");
                    format!(
                        "HTTP clients, this one included, read {dots:?} in a URL path as a folder (\"this folder\", \
                         \"the folder above\"), even percent-encoded, and would ask for another path. Herald's API \
                         answers it all the same: e.g. curl --path-as-is -H \"Authorization: Bearer \
                         $HERALD_TOKEN\" '{hint}'"
                    )
                }
            };
            return Err(Failure::Local(format!("the id {bad:?} cannot be sent by this CLI: {how}")));
        }
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Answer> {
        self.send(Method::GET, segments, query, None).await
    }

    pub async fn post(&self, segments: &[&str], body: Option<String>) -> Result<Answer> {
        self.send(Method::POST, segments, &[], body).await
    }

    pub async fn post_json(&self, segments: &[&str], body: &Value) -> Result<Answer> {
        self.send(Method::POST, segments, &[], Some(body.to_string())).await
    }

    pub async fn patch_json(&self, segments: &[&str], body: &Value) -> Result<Answer> {
        self.send(Method::PATCH, segments, &[], Some(body.to_string())).await
    }

    pub async fn delete(&self, segments: &[&str]) -> Result<Answer> {
        self.send(Method::DELETE, segments, &[], None).await
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<String>,
    ) -> Result<Answer> {
        let token = self.token.as_ref().ok_or_else(|| {
            Failure::Local(
                "no API token: set HERALD_TOKEN (or pass --token); `herald tenant create NAME` or POST /v1/tokens \
                 makes a tenant's token, `herald admin token create` an operator's (for `herald tenants`)"
                    .into(),
            )
        })?;
        let url = self.url(segments, query)?;
        let mut request = self.http.request(method, url.clone()).bearer_auth(token);
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await.map_err(|e| self.not_answered(e))?;
        let status = response.status();
        let location =
            response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(String::from);
        // The request was sent and answered: a body cut short leaves it done or not.
        let text = response.text().await.map_err(|e| {
            Failure::Uncertain(format!(
                "{url} answered {status}, but its body could not be read ({}); the request may have been \
                 done: check, or retry later",
                cause(e.without_url())
            ))
        })?;
        if status.is_redirection() {
            return Err(Failure::Unreachable(format!(
                "{} answered a redirect ({status}) to {}; set HERALD_URL to Herald's own address",
                self.base,
                location.as_deref().unwrap_or("nowhere")
            )));
        }
        if status.is_success() {
            let json = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).map_err(|_| Failure::Server {
                    status: Some(status.as_u16()),
                    code: "not_json".into(),
                    message: format!(
                        "{url} answered {status} with a body that is not JSON; is HERALD_URL Herald's API?"
                    ),
                })?
            };
            return Ok(Answer { status: status.as_u16(), text, json });
        }
        let (code, message) = error_of(status, &text);
        if status.is_client_error() {
            Err(Failure::Refused { status: status.as_u16(), code, message })
        } else {
            Err(Failure::Server { status: Some(status.as_u16()), code, message })
        }
    }

    /// A request that got no answer: Herald not reached (a connection never made: nothing was
    /// sent, exit 2), or the request sent and no answer in time or the connection cut (it may
    /// have been done, exit 3).
    fn not_answered(&self, e: reqwest::Error) -> Failure {
        let connect = e.is_connect();
        let timeout = e.is_timeout();
        let why = cause(e.without_url());
        if connect {
            return Failure::Unreachable(format!(
                "cannot reach Herald at {}: {why}; is it running? Set HERALD_URL (or --herald-url) to its API",
                self.base
            ));
        }
        if timeout {
            return Failure::Uncertain(format!(
                "Herald at {} did not answer within {} (--api-timeout); the request may have been done: check, \
                 or retry later",
                self.base,
                herald_core::validate::format_duration(self.timeout)
            ));
        }
        Failure::Uncertain(format!(
            "Herald at {} did not answer: {why}; the request may have been done: check, or retry later",
            self.base
        ))
    }
}

/// The innermost cause of an error (connection refused, DNS, TLS, a connection closed), which
/// says why; never the token, which is in no error.
fn cause(e: reqwest::Error) -> String {
    let mut why = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = source {
        why = s.to_string();
        source = s.source();
    }
    if why.is_empty() {
        why = e.to_string();
    }
    why
}

/// A URL as given, for a message: a `user:password@` in it becomes `***@` (the text may not
/// parse, so this works on the text).
fn without_userinfo(raw: &str) -> String {
    let start = raw.find("://").map_or(0, |i| i + 3);
    let rest = &raw[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &raw[start + at..]),
        None => raw.to_string(),
    }
}

/// The API's `{"error": {"code", "message"}}`, or what an answer without it says.
fn error_of(status: StatusCode, text: &str) -> (String, String) {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    match (v["error"]["code"].as_str(), v["error"]["message"].as_str()) {
        (Some(code), Some(message)) => (code.to_string(), message.to_string()),
        _ => {
            let excerpt: String = text.chars().take(200).collect();
            let excerpt = excerpt.trim();
            let message =
                if excerpt.is_empty() { format!("{status}, without a body") } else { format!("{status}: {excerpt}") };
            (format!("http_{}", status.as_u16()), message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_without_the_error_shape_is_named_by_its_status() {
        let (code, message) = error_of(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>");
        assert_eq!(code, "http_502");
        assert!(message.contains("bad gateway"), "{message}");
        let (code, message) =
            error_of(StatusCode::NOT_FOUND, r#"{"error": {"code": "not_found", "message": "no endpoint"}}"#);
        assert_eq!((code.as_str(), message.as_str()), ("not_found", "no endpoint"));
    }

    fn conn(url: &str) -> Conn {
        Conn { herald_url: url.into(), token: None, output: Output::Table, api_timeout: Duration::from_secs(60) }
    }

    #[test]
    fn ids_are_one_path_segment_each() {
        let api = Api::new(&conn("http://127.0.0.1:8080/herald/")).unwrap();
        let url = api.url(&["events", "order-42/paid?x"], &[("type", "a b".into())]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/herald/v1/events/order-42%2Fpaid%3Fx?type=a+b");
        let url = api.url(&["events", "order-42:paid", "attempts"], &[]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/herald/v1/events/order-42:paid/attempts");
        for id in ["...", ".a", "a..b"] {
            let url = api.url(&["events", id], &[]).unwrap();
            assert_eq!(url.path(), format!("/herald/v1/events/{id}"), "a dot in an id is not a dot segment");
        }
    }

    #[test]
    fn an_id_a_url_path_cannot_carry_is_refused_locally() {
        let api = Api::new(&conn("http://127.0.0.1:8080")).unwrap();
        for id in [".", "..", ""] {
            let e = api.url(&["events", id], &[]).expect_err(id);
            assert_eq!(e.exit_code(), LOCAL, "{id:?}");
            assert!(e.report().contains(&format!("the id {id:?} cannot be sent")), "{}", e.report());
            if !id.is_empty() {
                let hint = format!("'http://127.0.0.1:8080/v1/events/{}'", id.replace('.', "%2E"));
                assert!(e.report().contains(&hint), "{}", e.report());
            }
        }
        // Why: the URL standard reads these as dot segments however they are written, so a URL
        // cannot name such an id (GET /v1/events/.. would be GET /v1/events).
        for written in ["..", "%2E%2E", "%2e.", ".%2E"] {
            let url = Url::parse(&format!("http://h/v1/events/{written}")).unwrap();
            assert_eq!(url.path(), "/v1/", "{written}");
        }
        for written in [".", "%2E", "%2e"] {
            let url = Url::parse(&format!("http://h/v1/events/{written}")).unwrap();
            assert_eq!(url.path(), "/v1/events/", "{written}");
        }
    }

    #[test]
    fn a_url_that_is_not_http_is_refused_locally() {
        for bad in ["127.0.0.1:8080", "ftp://x", "not a url"] {
            let e = Api::new(&conn(bad)).err().expect(bad);
            assert_eq!(e.exit_code(), LOCAL, "{bad}");
        }
    }

    #[test]
    fn a_password_in_the_url_is_refused_and_never_echoed() {
        for bad in [
            "http://admin:hunter2@127.0.0.1:8080",
            "https://admin:hunter2@herald.example/api",
            "admin:hunter2@127.0.0.1:8080",
            "http://admin:hunter2@[::1",
            "ftp://admin:hunter2@x",
        ] {
            let e = Api::new(&conn(bad)).err().expect(bad);
            assert_eq!(e.exit_code(), LOCAL, "{bad}");
            assert!(!e.report().contains("hunter2") && !e.report().contains("admin"), "{}", e.report());
        }
        assert_eq!(without_userinfo("http://u:p@h:1/x@y"), "http://***@h:1/x@y");
        assert_eq!(without_userinfo("http://h/a@b"), "http://h/a@b");
    }

    #[test]
    fn a_token_is_checked_when_used_without_being_quoted() {
        let mut c = conn("http://127.0.0.1:8080");
        c.token = Some("Bearer hrld_acme.s3cret".parse().unwrap());
        let e = Api::new(&c).err().expect("a Bearer prefix is refused");
        assert_eq!(e.exit_code(), LOCAL);
        assert!(e.report().contains("Bearer") && !e.report().contains("s3cret"), "{}", e.report());
        c.token = Some(" hrld_acme.s3cret\n".parse().unwrap());
        assert_eq!(Api::new(&c).unwrap().token.as_deref(), Some("hrld_acme.s3cret"));
    }
}
