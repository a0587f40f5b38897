//! `/portal`: the page where the owner of a receiving system (a tenant's customer, its
//! `consumer`) manages its endpoints: adds and fixes them, reads what reached it and what its
//! receiver answered, retries, replays, rotates the secret and sends a test. Static HTML, CSS
//! and JavaScript that use only the public `/v1` API, with the session cookie a portal link is
//! exchanged for (`api/links.rs`); what the session may do is enforced by the API
//! (`extract::Tenant`), not by the page.

use axum::routing::get;
use axum::Router;

use super::pages::page;

const HTML: &str = include_str!("portal/index.html");
const CSS: &str = include_str!("portal/portal.css");
const JS: &str = include_str!("portal/portal.js");

pub fn router() -> Router {
    Router::new()
        .route("/portal", get(|| async { page("text/html; charset=utf-8", HTML) }))
        .route("/portal/portal.css", get(|| async { page("text/css; charset=utf-8", CSS) }))
        .route("/portal/portal.js", get(|| async { page("text/javascript; charset=utf-8", JS) }))
}
