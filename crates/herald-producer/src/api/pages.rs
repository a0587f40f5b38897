//! What Herald's pages (`/inbox`, `/portal`) share: the headers every file of theirs is served
//! with, the script both load first (`/pages/herald.js`: the link credential, API calls,
//! elements, times) and an empty favicon. Each page is static HTML, CSS and JavaScript that
//! talks to `/v1` only; the pages hold no data.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const SHARED_JS: &str = include_str!("pages/herald.js");

/// Everything from this origin, nothing inline, never framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// A page's file, with the headers every one carries.
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
        .route("/pages/herald.js", get(|| async { page("text/javascript; charset=utf-8", SHARED_JS) }))
        // Browsers ask for it on every page; an empty answer keeps their consoles clean.
        .route("/favicon.ico", get(|| async { axum::http::StatusCode::NO_CONTENT }))
        .merge(super::inbox::router())
        .merge(super::portal::router())
}
