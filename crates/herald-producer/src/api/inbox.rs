//! `/inbox`: the page where humans answer the approvals and questions agents wait on, with the
//! session cookie an inbox link is exchanged for (HttpOnly, SameSite=Strict: `api/links.rs`) or
//! with a pasted token. Served as `api/pages.rs` serves every page.

use axum::routing::get;
use axum::Router;

use super::pages::page;

const HTML: &str = include_str!("inbox/index.html");
const CSS: &str = include_str!("inbox/inbox.css");
const JS: &str = include_str!("inbox/inbox.js");

pub fn router() -> Router {
    Router::new()
        .route("/inbox", get(|| async { page("text/html; charset=utf-8", HTML) }))
        .route("/inbox/inbox.css", get(|| async { page("text/css; charset=utf-8", CSS) }))
        .route("/inbox/inbox.js", get(|| async { page("text/javascript; charset=utf-8", JS) }))
}
