//! Extractors that turn bad input into the contract's errors: the bearer token ([`Tenant`]),
//! JSON bodies ([`ApiJson`]) and query strings ([`ApiQuery`]).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;

use chrono::{DateTime, Utc};
use herald_core::id::{Id, TenantId};
use herald_core::token::{LinkKind, Scope};

use super::error::ApiError;
use super::AppState;
use crate::sql;

/// The tenant that the request's bearer token belongs to, once the token is known, not revoked,
/// not expired, its tenant not disabled, and its scope lets it call this route (else 401 or 403).
#[derive(Debug, Clone)]
pub struct Tenant(pub TenantId);

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// The bearer token of a request, or the 401 that says how to send one.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "missing Authorization header: send `Authorization: Bearer <token>`; `herald tenant create NAME` or POST /v1/tokens makes a token",
        ));
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))
}

/// A tenant token's row, as the cache keeps it.
#[derive(Debug, Clone)]
struct Known {
    tenant: TenantId,
    scope: Scope,
    expires_at: Option<DateTime<Utc>>,
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            if let Some(session) = session_cookie(&parts.headers).map(str::to_string) {
                let (tenant, link) = session_of(state, &session).await?;
                if !same_origin(parts) {
                    return Err(forbidden("a request made with a session cookie must come from Herald's own pages"));
                }
                let route = parts.extensions.get::<MatchedPath>().map_or("", |p| p.as_str()).to_string();
                if !link.kind.allows(parts.method.as_str(), &route) {
                    return Err(forbidden(format!("{}: it may not {} {route}", link.kind.describe(), parts.method)));
                }
                let mut id = None;
                if link.kind == LinkKind::Portal {
                    id = Path::<String>::from_request_parts(parts, state).await.ok().map(|Path(id)| id);
                    within_consumer(state, &tenant, link.consumer.as_deref(), &route, id.as_deref()).await?;
                }
                parts.extensions.insert(SessionCheck { session, route, id });
                parts.extensions.insert(link);
                return Ok(Tenant(tenant));
            }
        }
        let token = bearer(parts)?;
        let route = parts.extensions.get::<MatchedPath>().map_or("", |p| p.as_str());
        if herald_core::token::is_operator(token) {
            // A good operator token on the wrong route is 403; a bad one is 401 anywhere.
            operator_token(state, token).await?;
            return Err(forbidden(format!(
                "an operator token reaches /v1/admin only; {route} needs one of the tenant's tokens (POST /v1/admin/tenants/{{id}}/tokens makes one)"
            )));
        }
        let known = tenant_token(state, token).await?;
        if !known.scope.allows(parts.method.as_str(), route) {
            return Err(forbidden(format!(
                "this token's scope is `{}` ({}): it may not {} {route}; use a token with scope `full`, or one whose scope allows it (docs/api.md, \"Tokens\")",
                known.scope,
                known.scope.describe(),
                parts.method
            )));
        }
        Ok(Tenant(known.tenant))
    }
}

/// What a link's session narrows its requests to, put in the request's extensions by [`Tenant`]
/// for the handlers that go by it ([`Link`]): for an inbox, the operations of one run answered
/// as one person; for a portal, the endpoints of one consumer.
#[derive(Debug, Clone)]
pub struct LinkScope {
    pub link_id: String,
    pub kind: LinkKind,
    pub responder: Option<String>,
    pub run_id: Option<String>,
    /// A portal's consumer; `None` for every endpoint of the tenant (and for an inbox).
    pub consumer: Option<String>,
    pub expires_at: DateTime<Utc>,
}

impl LinkScope {
    /// The consumer a portal session is held to, if any.
    pub fn consumer(link: &Option<LinkScope>) -> Option<&str> {
        link.as_ref().and_then(|l| l.consumer.as_deref())
    }
}

/// How a portal session's request on a route is held to the session's consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalReach {
    /// The object of the path's `{id}` (a `kind`): reached only if `statement` finds it through
    /// one of the consumer's endpoints (any of the tenant's for a portal without a consumer).
    Object { kind: &'static str, statement: &'static str },
    /// No object in the path: the handler narrows what it lists or makes (it takes [`Link`]).
    Narrowed,
}

/// The routes a portal session may call whose handlers narrow them ([`PortalReach::Narrowed`]).
pub const PORTAL_NARROWED: [&str; 3] = ["/v1/endpoints", "/v1/replays", "/v1/sessions/current"];

/// How a portal session's request on `route` (its pattern) is held to its consumer; `None` for
/// a route this does not know, which a portal session may not call, whatever
/// [`LinkKind::allows`] says.
pub fn portal_reach(route: &str) -> Option<PortalReach> {
    let object = |kind, statement| Some(PortalReach::Object { kind, statement });
    if route == "/v1/endpoints/{id}" || route.starts_with("/v1/endpoints/{id}/") {
        object("endpoint", sql::ENDPOINT_OF_CONSUMER)
    } else if route == "/v1/deliveries/{id}" || route.starts_with("/v1/deliveries/{id}/") {
        object("delivery", sql::DELIVERY_OF_CONSUMER)
    } else if route == "/v1/replays/{id}" {
        object("replay", sql::REPLAY_OF_CONSUMER)
    } else if PORTAL_NARROWED.contains(&route) {
        Some(PortalReach::Narrowed)
    } else {
        None
    }
}

/// A portal session reaches the object in the route's path (`id`) only if it is (or belongs
/// to) one of its consumer's endpoints, or one of the tenant's for a portal without a consumer
/// (never a delivery to a callback URL): checked before any handler runs, and again by the body
/// extractors once the body is in ([`SessionCheck`]). A route [`portal_reach`] does not know
/// is 403. What lies outside is 404, the answer for an id that does not exist: a consumer
/// learns nothing of another's.
async fn within_consumer(
    state: &AppState,
    tenant: &TenantId,
    consumer: Option<&str>,
    route: &str,
    id: Option<&str>,
) -> Result<(), ApiError> {
    let (kind, statement) = match portal_reach(route) {
        Some(PortalReach::Object { kind, statement }) => (kind, statement),
        Some(PortalReach::Narrowed) => return Ok(()),
        None => return Err(forbidden(format!("{}: {route} is not one it may call", LinkKind::Portal.describe()))),
    };
    let Some(id) = id else { return Err(ApiError::not_found(kind, "")) };
    let client = state.pool.get().await?;
    match client.query_opt(statement, &[tenant, &id, &consumer]).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(kind, id)),
    }
}

/// What [`Tenant`] checked of a link's session, kept in the request's extensions: a client may
/// hold its body back (up to the request timeout) while the tenant revokes the link or gives the
/// endpoint to another consumer, so [`ApiJson`] checks it all again once the body is in.
#[derive(Debug, Clone)]
struct SessionCheck {
    session: String,
    route: String,
    /// The path's `{id}`, for a portal session.
    id: Option<String>,
}

impl SessionCheck {
    /// The session still valid, and a portal's object still its consumer's (else 401, 403 or
    /// 404, as [`Tenant`] answers).
    async fn again(&self, state: &AppState) -> Result<(), ApiError> {
        let (tenant, link) = session_of(state, &self.session).await?;
        if link.kind == LinkKind::Portal {
            within_consumer(state, &tenant, link.consumer.as_deref(), &self.route, self.id.as_deref()).await?;
        }
        Ok(())
    }
}

/// The [`LinkScope`] of a request made with a link's session, `None` for a token's. Comes after
/// [`Tenant`] among a handler's arguments.
pub struct Link(pub Option<LinkScope>);

impl FromRequestParts<AppState> for Link {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        Ok(Link(parts.extensions.get::<LinkScope>().cloned()))
    }
}

/// The cookie a link's session rides in.
pub const SESSION_COOKIE: &str = "herald_session";

/// The value of the session cookie, if the request has one.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}

/// A change made with a cookie must come from a page of this origin: SameSite=Strict keeps other
/// sites' requests from carrying it, and this asks for the `Origin` every browser sends with a
/// `fetch` that changes something, naming this host (a second line, for browsers that ignore
/// SameSite). A proxy in front of Herald must pass the `Host` the browser used.
fn same_origin(parts: &Parts) -> bool {
    if matches!(parts.method.as_str(), "GET" | "HEAD") {
        return true;
    }
    let Some(origin) = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return false };
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    origin.split_once("://").is_some_and(|(_, rest)| !host.is_empty() && rest.eq_ignore_ascii_case(host))
}

/// A link's session: known, not ended, its link neither revoked nor expired (401), its tenant not
/// disabled (403). Looked up at every request: a revoked link ends its sessions at once.
async fn session_of(state: &AppState, session: &str) -> Result<(TenantId, LinkScope), ApiError> {
    let ended = || unauthorized("this session is unknown or has ended: open your link again, or ask for a new one");
    let tenant: TenantId = herald_core::token::tenant_of_with(herald_core::token::SESSION_PREFIX, session)
        .and_then(|t| t.parse().ok())
        .ok_or_else(ended)?;
    let client = state.pool.get().await?;
    let row = client
        .query_opt(sql::SESSION_LOOKUP, &[&tenant, &herald_core::token::hash(session)])
        .await?
        .ok_or_else(ended)?;
    if row.get::<_, Option<DateTime<Utc>>>("revoked_at").is_some() {
        return Err(unauthorized("the link of this session was revoked: ask for a new one"));
    }
    let expires_at: DateTime<Utc> = row.get("expires_at");
    if expires_at <= state.clock.now() {
        return Err(unauthorized("this link has expired: ask for a new one"));
    }
    if row.get::<_, Option<DateTime<Utc>>>("disabled_at").is_some() {
        return Err(tenant_disabled(&tenant));
    }
    let kind: String = row.get("kind");
    let link = LinkScope {
        link_id: row.get("link_id"),
        kind: LinkKind::parse(&kind).ok_or_else(|| ApiError::internal(format!("a link of kind {kind:?}")))?,
        responder: row.get("responder"),
        run_id: row.get("run_id"),
        consumer: row.get("consumer"),
        expires_at,
    };
    Ok((tenant, link))
}

/// A tenant's token, checked in this order: known (401), not revoked (401), not expired (401),
/// its tenant not disabled (403). From the cache when it may be trusted.
async fn tenant_token(state: &AppState, token: &str) -> Result<Known, ApiError> {
    let unknown = || {
        unauthorized("unknown API token: check it, or make a new one (POST /v1/tokens, or `herald tenant token NAME`)")
    };
    let tenant: TenantId = herald_core::token::tenant_of(token).and_then(|t| t.parse().ok()).ok_or_else(unknown)?;
    let hash = herald_core::token::hash(token);
    let known = match state.tokens.get(&hash) {
        Some(known) => known,
        None => {
            let mark = state.tokens.mark();
            let client = state.pool.get().await?;
            let row = client.query_opt(sql::TOKEN_LOOKUP, &[&tenant, &hash]).await?.ok_or_else(unknown)?;
            if let Some(at) = row.get::<_, Option<DateTime<Utc>>>("revoked_at") {
                return Err(unauthorized(format!(
                    "this API token was revoked at {}; use another, or make one with POST /v1/tokens",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )));
            }
            let scope: String = row.get("scope");
            let scope =
                Scope::parse(&scope).ok_or_else(|| ApiError::internal(format!("a token of scope {scope:?}")))?;
            let known = Known { tenant, scope, expires_at: row.get("expires_at") };
            expired(&known, state)?;
            if row.get::<_, Option<DateTime<Utc>>>("disabled_at").is_some() {
                return Err(tenant_disabled(&known.tenant));
            }
            state.tokens.remember(hash, known.clone(), mark);
            known
        }
    };
    expired(&known, state)?;
    Ok(known)
}

fn expired(known: &Known, state: &AppState) -> Result<(), ApiError> {
    match known.expires_at.filter(|at| *at <= state.clock.now()) {
        Some(at) => Err(unauthorized(format!(
            "this API token expired at {}; make a new one with POST /v1/tokens",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))),
        None => Ok(()),
    }
}

fn tenant_disabled(tenant: &TenantId) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "tenant_disabled",
        format!(
            "tenant {tenant} is disabled by its operator: its tokens are refused until the operator enables it again"
        ),
    )
}

/// An operator token, looked up at every request (they are few, and /v1/admin is rare): known,
/// not revoked, not expired, else 401.
async fn operator_token(state: &AppState, token: &str) -> Result<(), ApiError> {
    let client = state.pool.get().await?;
    let row = client
        .query_opt(sql::OPERATOR_TOKEN_LOOKUP, &[&herald_core::token::hash(token)])
        .await?
        .ok_or_else(|| unauthorized("unknown operator token: make one with `herald admin token create`"))?;
    if row.get::<_, Option<DateTime<Utc>>>("revoked_at").is_some() {
        return Err(unauthorized("this operator token was revoked; make another with `herald admin token create`"));
    }
    if row.get::<_, Option<DateTime<Utc>>>("expires_at").is_some_and(|at| at <= state.clock.now()) {
        return Err(unauthorized("this operator token expired; make another with `herald admin token create`"));
    }
    Ok(())
}

/// The operator, by an operator token (`herald admin token create`): reaches `/v1/admin`.
#[derive(Debug, Clone)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if !herald_core::token::is_operator(token) {
            // A good tenant token here is 403; a bad token of either kind is 401.
            tenant_token(state, token).await?;
            return Err(forbidden(
                "/v1/admin needs an operator token (`herald admin token create`); a tenant's token reaches its own /v1 routes only",
            ));
        }
        operator_token(state, token).await?;
        Ok(Operator)
    }
}

/// Tenant tokens looked up lately, so that a request with one needs no query. An entry is used
/// only while this process listens for `herald_tokens` notifications, which a revocation or a
/// tenant's disabling sends: each one empties the cache, so a revoked token is refused at once
/// by every process (and within [`TokenCache::TTL`] if a process cannot hear them). Expiry is
/// checked at every request. Unknown tokens are never remembered. Bounded: when full, it
/// forgets everything and starts again.
#[derive(Debug, Default)]
pub struct TokenCache {
    seen: std::sync::Mutex<std::collections::HashMap<Vec<u8>, (Known, std::time::Instant, u64)>>,
    generation: std::sync::atomic::AtomicU64,
    /// Set by the process's `herald_tokens` listener (`None`: no listener, no caching).
    wake: Option<Arc<herald_core::listen::Wake>>,
}

impl TokenCache {
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(10);
    const MAX: usize = 10_000;
    /// The channel revocations are announced on.
    pub const CHANNEL: &'static str = "herald_tokens";

    /// A cache that trusts its entries while `wake`'s listener listens on [`Self::CHANNEL`].
    pub fn listening(wake: Arc<herald_core::listen::Wake>) -> Self {
        Self { wake: Some(wake), ..Self::default() }
    }

    pub fn wake(&self) -> Option<Arc<herald_core::listen::Wake>> {
        self.wake.clone()
    }

    fn trusted(&self) -> bool {
        self.wake.as_ref().is_some_and(|w| w.listening())
    }

    fn get(&self, hash: &[u8]) -> Option<Known> {
        if !self.trusted() {
            return None;
        }
        let epoch = self.epoch();
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(hash).filter(|(_, at, e)| at.elapsed() < Self::TTL && *e == epoch).map(|(k, _, _)| k.clone())
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The listener's connection: an entry made under an earlier one is never used (a token
    /// revoked while nobody listened would otherwise pass until the emptying that follows the
    /// reconnect).
    fn epoch(&self) -> u64 {
        self.wake.as_ref().map_or(0, |w| w.epoch())
    }

    /// Where the cache stands before a lookup: see [`TokenCache::remember`].
    fn mark(&self) -> (u64, u64) {
        (self.generation(), self.epoch())
    }

    /// Keeps `known` unless the cache was emptied, or the listener reconnected, since `mark`
    /// (the row may be stale).
    fn remember(&self, hash: Vec<u8>, known: Known, (generation, epoch): (u64, u64)) {
        if !self.trusted() {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation() != generation || self.epoch() != epoch {
            return;
        }
        if seen.len() >= Self::MAX {
            seen.clear();
        }
        seen.insert(hash, (known, std::time::Instant::now(), epoch));
    }

    /// Forgets every token: a token was revoked or a tenant disabled somewhere.
    pub fn forget_all(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        seen.clear();
    }

    /// Empties the cache at every notification on [`Self::CHANNEL`] until `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let Some(wake) = self.wake.clone() else { return };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {
                    wake.take();
                    self.forget_all();
                }
            }
        }
    }
}

/// A JSON body whose rejections answer the contract's codes: 415 not JSON, 400 malformed,
/// 413 too large, 422 a field of the wrong type, missing or unknown. Under a link's session,
/// what [`Tenant`] checked is checked again once the body is in (`SessionCheck`).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        // Axum's `Json`, in three steps, so that the body's first character can say whether it
        // was an object: serde fills a struct from an array too, field by field in order, and
        // every body of this API is an object.
        if !json_content_type(req.headers()) {
            return Err(not_json());
        }
        let max = state.max_payload_bytes;
        let session = req.extensions().get::<SessionCheck>().cloned();
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(max)
            } else {
                ApiError::new(e.status(), "bad_request", e.body_text())
            }
        })?;
        if let Some(session) = session {
            session.again(state).await?;
        }
        let Json(v) = Json::<T>::from_bytes(&bytes).map_err(|e| json_rejection(e, max))?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError::unprocessable(
                "invalid_field",
                "the body is a JSON array: send one JSON object, with the fields docs/api.md lists for this request",
            ));
        }
        Ok(Self(v))
    }
}

/// `application/json`, or `application/<anything>+json`, as axum's `Json` takes it.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the body must be JSON: send it with `content-type: application/json`",
    )
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than {max} bytes (HERALD_MAX_PAYLOAD_BYTES); send less data, or a reference to it"),
    )
}

/// [`ApiJson`] when the request has a body, `None` when it has none (`POST .../rotate-secret`
/// takes an optional one). A link's session is checked again after a body (by [`ApiJson`]);
/// without one nothing was waited for.
pub struct MaybeJson<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for MaybeJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let headers = req.headers();
        let length = headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
        let chunked = headers.contains_key(axum::http::header::TRANSFER_ENCODING);
        if !chunked && matches!(length, None | Some("0")) {
            return Ok(Self(None));
        }
        ApiJson::<T>::from_request(req, state).await.map(|ApiJson(v)| Self(Some(v)))
    }
}

fn serde_message(body_text: String) -> String {
    body_text
        .trim_start_matches("Failed to deserialize the JSON body into the target type: ")
        .trim_start_matches("Failed to parse the request body as JSON: ")
        .to_string()
}

fn json_rejection(rejection: JsonRejection, max: usize) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => not_json(),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON ({}); check quotes, commas and brackets", serde_message(e.body_text())),
        ),
        JsonRejection::JsonDataError(e) => ApiError::unprocessable(
            "invalid_field",
            format!("{}; see docs/api.md for this request's fields and their types", serde_message(e.body_text())),
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(max),
        other => ApiError::new(other.status(), "bad_request", other.body_text()),
    }
}

/// A query string whose rejections answer 422 `invalid_query`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(e @ QueryRejection::FailedToDeserializeQueryString(_)) => Err(ApiError::unprocessable(
                "invalid_query",
                format!(
                    "{}; `limit` is a number from 1 to 500 and `cursor` the `next_cursor` of the previous page",
                    e.body_text()
                ),
            )),
            Err(e) => Err(ApiError::unprocessable("invalid_query", e.body_text())),
        }
    }
}

/// An integer in a JSON body as JSON Schema's `integer` means it: `47` and `47.0` alike. A
/// fraction, a string, or a number past i64 is refused as the wrong type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole(pub i64);

impl<'de> serde::Deserialize<'de> for Whole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Whole;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Whole, E> {
                Ok(Whole(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Whole, E> {
                i64::try_from(v).map(Whole).map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Whole, E> {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(Whole(v as i64))
                } else {
                    Err(E::invalid_type(serde::de::Unexpected::Float(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One id from the path, parsed as its type. An id that is not of its type's shape (or not
/// UTF-8) names nothing Herald issued: 404 with the contract's error shape, like any unknown id.
pub struct ApiPath<T>(pub T);

impl<T: Id + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => T::parse(&id).map(Self).map_err(|_| ApiError::not_found(T::KIND, &id)),
            Err(_) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such object: the id in the path is not one Herald issued (ids are ASCII and case-sensitive)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Whole;

    #[test]
    fn whole_numbers_as_json_schema_has_them() {
        let w = |s: &str| serde_json::from_str::<Whole>(s).ok();
        assert_eq!(
            (w("47"), w("47.0"), w("-3"), w("1e3")),
            (Some(Whole(47)), Some(Whole(47)), Some(Whole(-3)), Some(Whole(1000)))
        );
        assert_eq!((w("47.5"), w("\"47\""), w("1e300"), w("true")), (None, None, None, None));
    }
}
