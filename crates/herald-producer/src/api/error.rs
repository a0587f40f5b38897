//! The one error type of the API: client errors pass through with the contract's shape
//! `{"error": {"code", "message"}}`; internal ones become an opaque 500 with the cause logged.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::validate::Invalid;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} with id {id:?} for this token's tenant; check the id (ids are case-sensitive)"),
        )
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// A failure that is Herald's, not the client's: logged in full, answered opaquely.
    pub fn internal(cause: impl std::fmt::Display + std::fmt::Debug) -> Self {
        // Debug, not Display: a database error's Display is only "db error"; its Debug has the
        // SQLSTATE, message and detail an operator needs (no secrets: values are not in it).
        tracing::error!(error = ?cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Herald could not complete the request; nothing was written. Try again; if it persists, the operator's logs say why",
        )
    }

    /// The database could not be reached (refused, timed out, or the connection broke).
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "the database is unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "Herald cannot reach its database right now; retry in a few seconds (an event retried with the same id is stored once)",
        )
    }
}

/// Reads a column, answering a value it cannot decode as a 500 with the cause logged (never a
/// panic, which would drop the connection without an answer).
pub trait Col {
    fn col<'a, T: tokio_postgres::types::FromSql<'a>>(&'a self, name: &str) -> Result<T, ApiError>;
}

impl Col for tokio_postgres::Row {
    fn col<'a, T: tokio_postgres::types::FromSql<'a>>(&'a self, name: &str) -> Result<T, ApiError> {
        self.try_get(name).map_err(|e| ApiError::internal(format!("reading column {name}: {e:?}")))
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Self::unprocessable(e.code, e.message)
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        if e.code() == Some(&SqlState::UNTRANSLATABLE_CHARACTER)
            || e.code() == Some(&SqlState::CHARACTER_NOT_IN_REPERTOIRE)
        {
            // PostgreSQL's jsonb and text cannot hold \u0000: the client's data, not our fault.
            return Self::unprocessable(
                "invalid_data",
                "a value holds a \\u0000 character, which Herald cannot store; remove it or encode the value",
            );
        }
        if herald_core::db::is_unavailable(&e) {
            return Self::unavailable(e);
        }
        if e.code() == Some(&SqlState::QUERY_CANCELED) {
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "list_timeout",
                "reading this took longer than HERALD_LIST_TIMEOUT (10 s unless set): narrow it with since and until (or a more common filter)",
            );
        }
        Self::internal(e)
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Timeout(_) | deadpool_postgres::PoolError::Backend(_) => Self::unavailable(e),
            _ => Self::internal(e),
        }
    }
}

impl From<crate::PublishError> for ApiError {
    fn from(e: crate::PublishError) -> Self {
        match e {
            crate::PublishError::Invalid(i) => i.into(),
            crate::PublishError::UnknownTenant(_) => Self::internal(e),
            crate::PublishError::Database(d) => d.into(),
            crate::PublishError::Pool(p) => p.into(),
            crate::PublishError::Stopped => Self::internal(e),
            crate::PublishError::Unavailable(why) => Self::unavailable(why),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

pub async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_route",
        "no such route; the API is under /v1 (see docs/api.md for the routes and their methods)",
    )
}

pub async fn wrong_method(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on this route; see docs/api.md for the methods each route takes"),
    )
}
