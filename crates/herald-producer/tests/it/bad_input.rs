//! The bad-input table: every refused request answers the contract's 4xx error shape with a
//! message that says how to fix it, never a 5xx, and leaves nothing written.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use crate::App;

enum Auth {
    Good,
    None,
    Unknown,
    Malformed,
}

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    auth: Auth,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    code: &'static str,
}

fn case(name: &'static str, method: Method, path: &str, body: &str, status: u16, code: &'static str) -> Case {
    Case {
        name,
        method,
        path: path.to_string(),
        auth: Auth::Good,
        content_type: Some("application/json"),
        body: body.to_string(),
        status,
        code,
    }
}

#[tokio::test]
async fn bad_requests_are_refused_cleanly_and_write_nothing() {
    let app = App::new().await;
    let token = app.db.tenant("acme").await;
    let other = app.db.tenant("globex").await;
    // An endpoint of another tenant, whose id acme must not reach.
    let (_, foreign) = app
        .call(Method::POST, "/v1/endpoints", Some(&other), Some(serde_json::json!({"url": "https://g.example.com/"})))
        .await;
    let foreign_ep = foreign["id"].as_str().unwrap().to_string();
    let (_, mine) = app
        .call(Method::POST, "/v1/endpoints", Some(&token), Some(serde_json::json!({"url": "https://a.example.com/"})))
        .await;
    let my_ep = mine["id"].as_str().unwrap().to_string();
    let big = format!(r#"{{"type": "t", "data": "{}"}}"#, "x".repeat(5000));
    let long_id = "a".repeat(129);
    let long_url = format!("https://example.com/{}", "a".repeat(2100));

    let mut cases = vec![
        case("malformed JSON", Method::POST, "/v1/events", r#"{"type": "t", "data": "#, 400, "malformed_json"),
        case("trailing garbage", Method::POST, "/v1/events", r#"{"type": "t", "data": 1} x"#, 400, "malformed_json"),
        Case {
            content_type: None,
            ..case(
                "no content type",
                Method::POST,
                "/v1/events",
                r#"{"type": "t", "data": 1}"#,
                415,
                "unsupported_media_type",
            )
        },
        Case {
            content_type: Some("text/plain"),
            ..case(
                "text content type",
                Method::POST,
                "/v1/events",
                r#"{"type": "t", "data": 1}"#,
                415,
                "unsupported_media_type",
            )
        },
        case("body over the limit", Method::POST, "/v1/events", &big, 413, "payload_too_large"),
        case("missing type", Method::POST, "/v1/events", r#"{"data": 1}"#, 422, "invalid_field"),
        case("missing data", Method::POST, "/v1/events", r#"{"type": "t"}"#, 422, "invalid_field"),
        case("type not a string", Method::POST, "/v1/events", r#"{"type": 5, "data": 1}"#, 422, "invalid_field"),
        case(
            "unknown field",
            Method::POST,
            "/v1/events",
            r#"{"type": "t", "data": 1, "colour": "red"}"#,
            422,
            "invalid_field",
        ),
        case(
            "description with a NUL character",
            Method::POST,
            "/v1/endpoints",
            r#"{"url": "https://example.com/", "description": "a\u0000b"}"#,
            422,
            "invalid_data",
        ),
        // Event data is stored as sent (a NUL is fine there); what receivers cannot read is not.
        case(
            "data with a number past a double",
            Method::POST,
            "/v1/events",
            r#"{"type": "t", "data": {"x": 1e400}}"#,
            422,
            "invalid_data",
        ),
        case(
            "data with a lone surrogate",
            Method::POST,
            "/v1/events",
            r#"{"type": "t", "data": ["\ud800"]}"#,
            422,
            "invalid_data",
        ),
        case(
            "data nested 127 deep",
            Method::POST,
            "/v1/events",
            &format!(r#"{{"type": "t", "data": {}{}}}"#, "[".repeat(127), "]".repeat(127)),
            422,
            "invalid_data",
        ),
        case("body is an array", Method::POST, "/v1/events", r#"[1, 2]"#, 422, "invalid_field"),
        case(
            "type with a space",
            Method::POST,
            "/v1/events",
            r#"{"type": "run finished", "data": 1}"#,
            422,
            "invalid_event_type",
        ),
        case(
            "type with CR/LF",
            Method::POST,
            "/v1/events",
            r#"{"type": "a\r\nb", "data": 1}"#,
            422,
            "invalid_event_type",
        ),
        case("empty type", Method::POST, "/v1/events", r#"{"type": "", "data": 1}"#, 422, "invalid_event_type"),
        case(
            "id with CR/LF",
            Method::POST,
            "/v1/events",
            r#"{"id": "a\r\nX-Injected: 1", "type": "t", "data": 1}"#,
            422,
            "invalid_event_id",
        ),
        case(
            "id with a slash",
            Method::POST,
            "/v1/events",
            r#"{"id": "a/b", "type": "t", "data": 1}"#,
            422,
            "invalid_event_id",
        ),
        case(
            "id too long",
            Method::POST,
            "/v1/events",
            &format!(r#"{{"id": "{long_id}", "type": "t", "data": 1}}"#),
            422,
            "invalid_event_id",
        ),
        case(
            "callback_url not http",
            Method::POST,
            "/v1/events",
            r#"{"type": "t", "data": 1, "callback_url": "ftp://x.example.com/"}"#,
            422,
            "invalid_url",
        ),
        case(
            "callback_url the parser would repair",
            Method::POST,
            "/v1/events",
            r#"{"type": "t", "data": 1, "callback_url": "http:///x.example.com/"}"#,
            422,
            "invalid_url",
        ),
        case(
            "endpoint url with an empty label",
            Method::POST,
            "/v1/endpoints",
            r#"{"url": "https://example.com../hook"}"#,
            422,
            "invalid_url",
        ),
        case(
            "endpoint url with port 0",
            Method::POST,
            "/v1/endpoints",
            r#"{"url": "https://example.com:0/hook"}"#,
            422,
            "invalid_url",
        ),
        case(
            "callback_url private",
            Method::POST,
            "/v1/events",
            r#"{"type": "t", "data": 1, "callback_url": "http://169.254.169.254/latest"}"#,
            422,
            "blocked_target",
        ),
        case(
            "callback_secret malformed",
            Method::POST,
            "/v1/events",
            r#"{"type": "t", "data": 1, "callback_url": "https://x.example.com/", "callback_secret": "hunter2"}"#,
            422,
            "invalid_secret",
        ),
        case(
            "retry_schedule without callback",
            Method::POST,
            "/v1/events",
            r#"{"type": "t", "data": 1, "retry_schedule": ["3s"]}"#,
            422,
            "callback_url_required",
        ),
        case(
            "retry_schedule unparsable",
            Method::POST,
            "/v1/events",
            r#"{"type": "t", "data": 1, "callback_url": "https://x.example.com/", "retry_schedule": ["soon"]}"#,
            422,
            "invalid_retry_schedule",
        ),
        case("endpoint url missing", Method::POST, "/v1/endpoints", r#"{"description": "x"}"#, 422, "invalid_field"),
        case(
            "endpoint url with credentials",
            Method::POST,
            "/v1/endpoints",
            r#"{"url": "https://user:pw@example.com/"}"#,
            422,
            "invalid_url",
        ),
        case(
            "endpoint url javascript",
            Method::POST,
            "/v1/endpoints",
            r#"{"url": "javascript:alert(1)"}"#,
            422,
            "invalid_url",
        ),
        case(
            "endpoint url too long",
            Method::POST,
            "/v1/endpoints",
            &format!(r#"{{"url": "{long_url}"}}"#),
            422,
            "invalid_url",
        ),
        case(
            "endpoint url localhost",
            Method::POST,
            "/v1/endpoints",
            r#"{"url": "http://localhost:8080/"}"#,
            422,
            "blocked_target",
        ),
        case(
            "endpoint url with CR/LF",
            Method::POST,
            "/v1/endpoints",
            r#"{"url": "https://example.com/\r\nX: 1"}"#,
            422,
            "invalid_url",
        ),
        case(
            "event_types bad pattern",
            Method::POST,
            "/v1/endpoints",
            r#"{"url": "https://example.com/", "event_types": ["meet*"]}"#,
            422,
            "invalid_event_types",
        ),
        case(
            "event_types not a list",
            Method::POST,
            "/v1/endpoints",
            r#"{"url": "https://example.com/", "event_types": "meeting.*"}"#,
            422,
            "invalid_field",
        ),
        case(
            "secret too short",
            Method::POST,
            "/v1/endpoints",
            r#"{"url": "https://example.com/", "secret": "whsec_c2hvcnQ="}"#,
            422,
            "invalid_secret",
        ),
        case(
            "unknown signature scheme",
            Method::POST,
            "/v1/endpoints",
            r#"{"url": "https://example.com/", "signature_scheme": "md5"}"#,
            422,
            "invalid_signature_scheme",
        ),
        case(
            "max_in_flight zero",
            Method::POST,
            "/v1/endpoints",
            r#"{"url": "https://example.com/", "max_in_flight": 0}"#,
            422,
            "invalid_limit",
        ),
        case(
            "rate limit wrong type",
            Method::POST,
            "/v1/endpoints",
            r#"{"url": "https://example.com/", "rate_limit_per_s": "fast"}"#,
            422,
            "invalid_field",
        ),
        case(
            "patch unknown field",
            Method::PATCH,
            &format!("/v1/endpoints/{my_ep}"),
            r#"{"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#,
            422,
            "invalid_field",
        ),
        case(
            "patch bad url",
            Method::PATCH,
            &format!("/v1/endpoints/{my_ep}"),
            r#"{"url": "gopher://example.com/"}"#,
            422,
            "invalid_url",
        ),
        case("list limit too big", Method::GET, "/v1/endpoints?limit=501", "", 422, "invalid_limit"),
        case("list limit not a number", Method::GET, "/v1/endpoints?limit=many", "", 422, "invalid_query"),
        case("list bad cursor", Method::GET, "/v1/endpoints?cursor=%0d%0a", "", 422, "invalid_cursor"),
        case(
            "another tenant's endpoint",
            Method::PATCH,
            &format!("/v1/endpoints/{foreign_ep}"),
            r#"{"description": "x"}"#,
            404,
            "not_found",
        ),
        case(
            "another tenant's endpoint delete",
            Method::DELETE,
            &format!("/v1/endpoints/{foreign_ep}"),
            "",
            404,
            "not_found",
        ),
        case("unknown event", Method::GET, "/v1/events/evt_nope", "", 404, "not_found"),
        case("path id not UTF-8", Method::GET, "/v1/endpoints/%FF", "", 404, "not_found"),
        case("unknown route", Method::GET, "/v1/nothing-here", "", 404, "no_such_route"),
        case("unknown route outside /v1", Method::GET, "/nothing-here", "", 404, "no_such_route"),
        case("wrong method", Method::PUT, "/v1/events", r#"{"type": "t", "data": 1}"#, 405, "method_not_allowed"),
        Case {
            auth: Auth::None,
            ..case("wrong method outside /v1", Method::POST, "/healthz", "", 405, "method_not_allowed")
        },
        Case {
            auth: Auth::None,
            ..case("missing token", Method::POST, "/v1/events", r#"{"type": "t", "data": 1}"#, 401, "unauthorized")
        },
        Case {
            auth: Auth::Unknown,
            ..case("unknown token", Method::POST, "/v1/events", r#"{"type": "t", "data": 1}"#, 401, "unauthorized")
        },
        Case {
            auth: Auth::Malformed,
            ..case("not a bearer token", Method::GET, "/v1/endpoints", "", 401, "unauthorized")
        },
    ];
    assert!(cases.len() >= 25);

    let before = app.db.row_counts().await;
    for c in cases.drain(..) {
        let mut req = Request::builder().method(c.method.clone()).uri(&c.path);
        match c.auth {
            Auth::Good => req = req.header("authorization", format!("Bearer {token}")),
            Auth::None => {}
            Auth::Unknown => {
                req = req.header("authorization", format!("Bearer {}", herald_core::token::generate("acme")))
            }
            Auth::Malformed => req = req.header("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
        }
        if let Some(ct) = c.content_type {
            if !c.body.is_empty() {
                req = req.header("content-type", ct);
            }
        }
        let (status, v) = app.send(req.body(Body::from(c.body.clone())).unwrap()).await;
        assert!(status.is_client_error(), "{}: answered {status}: {v}", c.name);
        assert_eq!(status, StatusCode::from_u16(c.status).unwrap(), "{}: {v}", c.name);
        assert_eq!(v["error"]["code"], c.code, "{}: {v}", c.name);
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.len() > 20, "{}: the message must say how to fix it: {v}", c.name);
        assert!(!message.contains('\r') && !message.contains('\n'), "{}: {message:?}", c.name);
    }
    assert_eq!(app.db.row_counts().await, before, "a refused request leaves nothing written");
}
