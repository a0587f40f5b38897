//! `/inbox`: the page where humans answer the approvals and questions agents wait on. Static
//! HTML, CSS and a little JavaScript that talk to the tenant's own `/v1` API, with the session
//! cookie an inbox link is exchanged for (HttpOnly, SameSite=Strict: `api/links.rs`) or with a
//! pasted token. The page itself holds no data.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const HTML: &str = include_str!("inbox/index.html");
const CSS: &str = include_str!("inbox/inbox.css");
const JS: &str = include_str!("inbox/inbox.js");

/// Everything from this origin, nothing inline, never framed (the portal's pages too).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub(super) fn page(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
}

pub fn router() -> Router {
    Router::new()
        .route("/inbox", get(|| async { page("text/html; charset=utf-8", HTML) }))
        .route("/inbox/inbox.css", get(|| async { page("text/css; charset=utf-8", CSS) }))
        .route("/inbox/inbox.js", get(|| async { page("text/javascript; charset=utf-8", JS) }))
        // Browsers ask for it on every page; an empty answer keeps their consoles clean.
        .route("/favicon.ico", get(|| async { axum::http::StatusCode::NO_CONTENT }))
}
