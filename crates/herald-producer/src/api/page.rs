//! Paging of every list: an answer is `{"data", "next_cursor", "prev_cursor"}` in a stable order
//! of Herald's own keys (ids, or an event's `seq`: never a database sequence), and a request
//! asks for the page after a position (`cursor`) or the page before one (`before`).
//!
//! A cursor names a position between two items of one list: just after an item, or just before
//! it. `next_cursor` is the position just after a page's last item, `prev_cursor` the one just
//! before its first; a page that came back empty answers its own position on the side where
//! items remain, so a client can always go back. Both are null at the ends (a probe of one row
//! past the page's other side tells). A cursor is opaque to clients (base64url of the list's
//! name, the side and the item's key) and checked when it comes back: one that does not decode,
//! belongs to another list, or holds a key that list's items cannot have answers 422
//! `invalid_cursor`. A made-up cursor can at most start a page of the caller's own list at
//! another place: every query names the tenant.

use std::future::Future;

use axum::Json;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::error::ApiError;

/// `limit`, `cursor` and `before` of a list request without filters of its own (lists with
/// filters have their own query type and make one of these from it).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub before: Option<String>,
}

/// One column of a list's key.
#[derive(Debug)]
pub struct KeyCol {
    /// The column as the list's statement names it (`e.seq`).
    pub sql: &'static str,
    /// Its name in the rows the statement answers (`seq`).
    pub name: &'static str,
    pub kind: Kind,
    /// Whether a text part is one this column can hold (the others need only parse).
    pub valid: fn(&str) -> bool,
}

/// The type of a key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `bigint`.
    Int,
    /// `text`.
    Text,
    /// `timestamptz`, carried in a cursor as microseconds (PostgreSQL's own precision).
    Time,
}

impl KeyCol {
    const fn text(sql: &'static str, name: &'static str, valid: fn(&str) -> bool) -> Self {
        Self { sql, name, kind: Kind::Text, valid }
    }
}

/// A list: its name in cursors, its key (unique, in the order of the list) and its direction.
#[derive(Debug)]
pub struct List {
    pub name: &'static str,
    pub keys: &'static [KeyCol],
    /// Newest first: the key descends.
    pub desc: bool,
}

/// An id Herald made: `prefix` and 26 characters of Crockford base32.
pub(super) fn issued(prefix: &str, s: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()))
}

fn endpoint_id(s: &str) -> bool {
    issued(herald_core::id::ENDPOINT, s)
}
fn delivery_id(s: &str) -> bool {
    issued(herald_core::id::DELIVERY, s)
}
fn attempt_id(s: &str) -> bool {
    issued(herald_core::id::ATTEMPT, s)
}
fn replay_id(s: &str) -> bool {
    issued(super::deliveries::REPLAY, s)
}
fn link_id(s: &str) -> bool {
    issued(herald_core::id::LINK, s)
}
fn token_id(s: &str) -> bool {
    issued(herald_core::id::TOKEN, s)
}
fn tenant_id(s: &str) -> bool {
    herald_core::validate::tenant_name(s).is_ok()
}
fn event_id(s: &str) -> bool {
    herald_core::validate::event_id(s).is_ok()
}
fn call_id(s: &str) -> bool {
    herald_core::validate::call_id(s).is_ok()
}
fn any(_: &str) -> bool {
    true
}

/// `GET /v1/endpoints`: by id, oldest first.
pub static ENDPOINTS: List =
    List { name: "endpoints", keys: &[KeyCol::text("endpoint_id", "endpoint_id", endpoint_id)], desc: false };
/// `GET /v1/approvals`: by call_id, as text.
pub static APPROVALS: List =
    List { name: "approvals", keys: &[KeyCol::text("o.call_id", "call_id", call_id)], desc: false };
/// `GET /v1/human_contacts`: by call_id, as text.
pub static HUMAN_CONTACTS: List =
    List { name: "human_contacts", keys: &[KeyCol::text("o.call_id", "call_id", call_id)], desc: false };
/// The key of the lists of settled operations: when an operation settled (its answer's time, or
/// an expired one's deadline), then its call_id.
static SETTLED: [KeyCol; 2] = [
    KeyCol { sql: "coalesce(o.responded_at, o.expires_at)", name: "settled_at", kind: Kind::Time, valid: any },
    KeyCol::text("o.call_id", "call_id", call_id),
];
/// `GET /v1/approvals?order=settled`: the settled ones, last settled first.
pub static APPROVALS_SETTLED: List = List { name: "approvals_settled", keys: &SETTLED, desc: true };
/// `GET /v1/human_contacts?order=settled`: the settled ones, last settled first.
pub static HUMAN_CONTACTS_SETTLED: List = List { name: "human_contacts_settled", keys: &SETTLED, desc: true };
/// `GET /v1/events/{id}/attempts`: oldest first.
pub static EVENT_ATTEMPTS: List =
    List { name: "event_attempts", keys: &[KeyCol::text("attempt_id", "attempt_id", attempt_id)], desc: false };
/// `GET /v1/deliveries/{id}/attempts`: oldest first.
pub static DELIVERY_ATTEMPTS: List =
    List { name: "delivery_attempts", keys: &[KeyCol::text("attempt_id", "attempt_id", attempt_id)], desc: false };
/// `GET /v1/events`: newest first, by Herald's time-ordered key (`seq`, then the id).
pub static EVENTS: List = List {
    name: "events",
    keys: &[
        KeyCol { sql: "e.seq", name: "seq", kind: Kind::Int, valid: any },
        KeyCol::text("e.event_id", "event_id", event_id),
    ],
    desc: true,
};
/// `GET /v1/endpoints/{id}/deliveries`: newest first.
pub static ENDPOINT_DELIVERIES: List =
    List { name: "endpoint_deliveries", keys: &[KeyCol::text("delivery_id", "delivery_id", delivery_id)], desc: true };
/// `GET /v1/endpoints/{id}/attempts`: newest first, by when they started (then by id).
pub static ENDPOINT_ATTEMPTS: List = List {
    name: "endpoint_attempts",
    keys: &[
        KeyCol { sql: "started_at", name: "started_at", kind: Kind::Time, valid: any },
        KeyCol::text("attempt_id", "attempt_id", attempt_id),
    ],
    desc: true,
};
/// `GET /v1/tokens`: by id.
pub static TOKENS: List = List { name: "tokens", keys: &[KeyCol::text("token_id", "token_id", token_id)], desc: false };
/// `GET /v1/links`: newest first.
pub static LINKS: List = List { name: "links", keys: &[KeyCol::text("link_id", "link_id", link_id)], desc: true };
/// `GET /v1/admin/tenants`: by id (a tenant's name).
pub static TENANTS: List =
    List { name: "tenants", keys: &[KeyCol::text("tenant_id", "tenant_id", tenant_id)], desc: false };
/// `GET /v1/replays`: newest first.
pub static REPLAYS: List =
    List { name: "replays", keys: &[KeyCol::text("replay_id", "replay_id", replay_id)], desc: true };

/// A part of a key, as a cursor carries it and a statement binds it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Int(i64),
    Text(String),
    Time(DateTime<Utc>),
}

impl Part {
    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Part::Int(i) => i,
            Part::Text(s) => s,
            Part::Time(t) => t,
        }
    }
}

/// A position between two items: just after the item with `key` (in the list's order), or
/// just before it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    key: Vec<Part>,
    after: bool,
}

const VERSION: &str = "v1";

impl Position {
    fn encode(&self, list: &List) -> String {
        let mut text = format!("{VERSION}|{}|{}", list.name, if self.after { 'a' } else { 'b' });
        for part in &self.key {
            text.push('|');
            match part {
                Part::Int(i) => text.push_str(&i.to_string()),
                Part::Text(s) => text.push_str(s),
                Part::Time(t) => text.push_str(&t.timestamp_micros().to_string()),
            }
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    fn decode(list: &List, cursor: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.split('|');
        if parts.next()? != VERSION || parts.next()? != list.name {
            return None;
        }
        let after = match parts.next()? {
            "a" => true,
            "b" => false,
            _ => return None,
        };
        let mut key = Vec::with_capacity(list.keys.len());
        for col in list.keys {
            let part = parts.next()?;
            key.push(match col.kind {
                Kind::Int => Part::Int(part.parse().ok()?),
                Kind::Time => Part::Time(DateTime::from_timestamp_micros(part.parse().ok()?)?),
                Kind::Text if (col.valid)(part) => Part::Text(part.to_string()),
                Kind::Text => return None,
            });
        }
        parts.next().is_none().then_some(Self { key, after })
    }

    /// The position of `row`'s item, on `after`'s side of it.
    fn of(list: &List, row: &Row, after: bool) -> Result<Self, ApiError> {
        let key = list
            .keys
            .iter()
            .map(|col| {
                let read = match col.kind {
                    Kind::Int => row.try_get(col.name).map(Part::Int),
                    Kind::Text => row.try_get(col.name).map(Part::Text),
                    Kind::Time => row.try_get(col.name).map(Part::Time),
                };
                read.map_err(|e| ApiError::internal(format!("reading the key column {}: {e:?}", col.name)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { key, after })
    }
}

fn invalid_cursor(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_cursor", message)
}

impl Page {
    pub const DEFAULT_LIMIT: i64 = 50;
    pub const MAX_LIMIT: i64 = 500;

    /// The request for a page of `list`, checked.
    pub fn request(&self, list: &'static List) -> Result<Request, ApiError> {
        let limit = self.limit.unwrap_or(Self::DEFAULT_LIMIT);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(ApiError::unprocessable(
                "invalid_limit",
                format!("limit {limit} is out of range: use 1 to {}", Self::MAX_LIMIT),
            ));
        }
        let given = |c: &Option<String>| c.clone().filter(|c| !c.is_empty());
        let (cursor, backward) = match (given(&self.cursor), given(&self.before)) {
            (Some(_), Some(_)) => {
                return Err(invalid_cursor(
                    "give `cursor` (for the page after it) or `before` (for the page before it), not both",
                ))
            }
            (Some(c), None) => (Some(c), false),
            (None, Some(c)) => (Some(c), true),
            (None, None) => (None, false),
        };
        let from = match cursor {
            None => None,
            Some(c) => Some(Position::decode(list, &c).ok_or_else(|| {
                invalid_cursor(format!(
                    "this cursor is not one Herald gave for this list ({}): pass a page's `next_cursor` as `cursor` or its `prev_cursor` as `before`, unchanged, or leave both out for the first page",
                    list.name
                ))
            })?),
        };
        Ok(Request { list, limit, from, backward, fetch: limit + 1 })
    }
}

/// How long a list's statements may run by default (HERALD_LIST_TIMEOUT): a filter that matches
/// little of a long history would otherwise read it all. Past it PostgreSQL stops the statement
/// and the answer is 503 `list_timeout`, which asks for a narrower window.
pub const LIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A read-only transaction whose statements stop after `timeout` (`SET LOCAL`, as
/// shared/scale-out.md rule 9 asks). Dropped unfinished, it rolls back.
pub async fn bounded(
    conn: &mut deadpool_postgres::Object,
    timeout: std::time::Duration,
) -> Result<deadpool_postgres::Transaction<'_>, ApiError> {
    let tx = conn.build_transaction().read_only(true).start().await?;
    tx.batch_execute(&format!("SET LOCAL statement_timeout = {}", timeout.as_millis().max(1))).await?;
    Ok(tx)
}

/// A checked page request: what its statement adds (a bound on the key, an order, a limit) and
/// binds, and how its rows become the answer.
#[derive(Debug, Clone)]
pub struct Request {
    list: &'static List,
    pub limit: i64,
    from: Option<Position>,
    /// The page before `from` (else after it).
    backward: bool,
    /// Rows to fetch: one more than the page, which says whether there is more.
    fetch: i64,
}

impl Request {
    /// Whether the statement walks the key upwards (else downwards).
    fn ascending(&self) -> bool {
        self.backward == self.list.desc
    }

    /// ` AND <key> > ($first, ...)` (or `>=`, `<`, `<=`): the side of the position the page is
    /// on, in the walk's direction. Empty on a first page.
    pub fn bound(&self, first: usize) -> String {
        let Some(from) = &self.from else { return String::new() };
        // Which side of the position the item itself is on, in key order.
        let key_above = if self.list.desc { from.after } else { !from.after };
        let op = match (self.ascending(), key_above) {
            (true, true) => ">=",
            (true, false) => ">",
            (false, true) => "<",
            (false, false) => "<=",
        };
        let cols: Vec<&str> = self.list.keys.iter().map(|k| k.sql).collect();
        let params: Vec<String> = (0..cols.len()).map(|i| format!("${}", first + i)).collect();
        if cols.len() == 1 {
            format!(" AND {} {op} {}", cols[0], params[0])
        } else {
            format!(" AND ({}) {op} ({})", cols.join(", "), params.join(", "))
        }
    }

    /// What a list's statement ends with: [`Request::bound`], [`Request::order`] and
    /// [`Request::limit_at`], the key's parameters from `first` on.
    pub fn tail(&self, first: usize) -> String {
        format!("{}{}{}", self.bound(first), self.order(), self.limit_at(first))
    }

    /// ` ORDER BY ...` in the walk's direction, by the key's columns as the statement names them.
    pub fn order(&self) -> String {
        self.order_by(self.list.keys.iter().map(|k| k.sql))
    }

    /// ` ORDER BY ...` by the key's column names, for an outer query over a union.
    pub fn order_by_name(&self) -> String {
        self.order_by(self.list.keys.iter().map(|k| k.name))
    }

    fn order_by<'a>(&self, cols: impl Iterator<Item = &'a str>) -> String {
        let dir = if self.ascending() { "" } else { " DESC" };
        let cols: Vec<String> = cols.map(|c| format!("{c}{dir}")).collect();
        format!(" ORDER BY {}", cols.join(", "))
    }

    /// ` LIMIT $n`, its parameter after the key's (see [`Request::params`]).
    pub fn limit_at(&self, first: usize) -> String {
        format!(" LIMIT ${}", first + self.from.as_ref().map_or(0, |f| f.key.len()))
    }

    /// The key's parts (if the request has a position), then the number of rows to fetch: to
    /// bind after the statement's own parameters, from `first` on.
    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut p: Vec<&(dyn ToSql + Sync)> = self.from.iter().flat_map(|f| f.key.iter().map(Part::param)).collect();
        p.push(&self.fetch);
        p
    }

    /// Runs `statement` (one of `crate::sql`'s list functions, made for this request) with the
    /// statement's own parameters `own`, then the page's: what [`Request::answer`] runs.
    pub async fn rows(
        &self,
        client: &tokio_postgres::Client,
        statement: &str,
        own: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, ApiError> {
        let mut params = own.to_vec();
        params.extend(self.params());
        Ok(client.query(statement, &params).await?)
    }

    /// One row from the other side of the position, if the request has one: whether anything
    /// lies beyond the page's other end.
    fn probe(&self) -> Option<Self> {
        self.from.as_ref().map(|_| Self { backward: !self.backward, limit: 0, fetch: 1, ..self.clone() })
    }

    /// Runs the page's statement (`run`, with this request or its probe) and answers the page:
    /// its items in the list's order, and the cursors of its two sides.
    pub async fn answer<T, F, Fut>(
        &self,
        run: F,
        item: impl Fn(&Row) -> Result<T, ApiError>,
    ) -> Result<Json<Listed<T>>, ApiError>
    where
        F: Fn(Self) -> Fut,
        Fut: Future<Output = Result<Vec<Row>, ApiError>>,
    {
        let mut rows = run(self.clone()).await?;
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let beyond = match self.probe() {
            Some(probe) => !run(probe).await?.is_empty(),
            None => false,
        };
        if self.backward {
            rows.reverse();
        }
        let (first, last) = (rows.first(), rows.last());
        // `ahead` is the side the request went towards, `behind` the side it came from.
        let (ahead, behind) = (more, beyond);
        let (more_after, more_before) = if self.backward { (behind, ahead) } else { (ahead, behind) };
        let next = match last {
            Some(row) if more_after => Some(Position::of(self.list, row, true)?),
            None if more_after => self.from.clone(),
            _ => None,
        };
        let prev = match first {
            Some(row) if more_before => Some(Position::of(self.list, row, false)?),
            None if more_before => self.from.clone(),
            _ => None,
        };
        let data = rows.iter().map(item).collect::<Result<_, _>>()?;
        Ok(Json(Listed {
            data,
            next_cursor: next.map(|p| p.encode(self.list)),
            prev_cursor: prev.map(|p| p.encode(self.list)),
        }))
    }
}

/// A page of a list, as every list answers it.
#[derive(Debug, Serialize)]
pub struct Listed<T> {
    pub data: Vec<T>,
    /// The page after this one (pass it as `cursor`); null at the end.
    pub next_cursor: Option<String>,
    /// The page before this one (pass it as `before`); null at the start.
    pub prev_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(list: &'static List, cursor: Option<String>, before: Option<String>) -> Result<Request, ApiError> {
        Page { limit: Some(10), cursor, before }.request(list)
    }

    #[test]
    fn cursors_come_back_as_they_went_and_only_to_their_own_list() {
        let p = Position { key: vec![Part::Int(-42), Part::Text("order-1:paid".into())], after: true };
        let c = p.encode(&EVENTS);
        assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{c}");
        assert_eq!(Position::decode(&EVENTS, &c), Some(p));
        assert_eq!(Position::decode(&ENDPOINT_DELIVERIES, &c), None, "another list's");
        for bad in ["", "ep_01ARZ3NDEKTSV4RRFFQ69G5FAV", "!!!", "djF8ZXZlbnRzfGF8eHw"] {
            assert_eq!(Position::decode(&EVENTS, bad), None, "{bad}");
        }
        // A key its list's items cannot have.
        let wrong = Position { key: vec![Part::Text("dlv_x".into())], after: true }.encode(&ENDPOINT_DELIVERIES);
        assert_eq!(Position::decode(&ENDPOINT_DELIVERIES, &wrong), None);
        let e = req(&ENDPOINTS, Some("ep_01ARZ3NDEKTSV4RRFFQ69G5FAV".into()), None).unwrap_err();
        assert_eq!(e.code, "invalid_cursor");
        let both = req(&ENDPOINTS, Some("a".into()), Some("b".into())).unwrap_err();
        assert_eq!(both.code, "invalid_cursor");
        assert_eq!(Page { limit: Some(501), ..Page::default() }.request(&ENDPOINTS).unwrap_err().code, "invalid_limit");
    }

    #[test]
    fn bounds_take_the_side_of_the_position_the_page_is_on() {
        let at = |after| Position { key: vec![Part::Text("dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV".into())], after };
        // Newest first: the page after an item holds smaller keys, walked downwards.
        let r = req(&ENDPOINT_DELIVERIES, Some(at(true).encode(&ENDPOINT_DELIVERIES)), None).unwrap();
        assert_eq!(
            (r.bound(3), r.order(), r.limit_at(3)),
            (" AND delivery_id < $3".into(), " ORDER BY delivery_id DESC".into(), " LIMIT $4".into())
        );
        // The page before the position just before an item holds larger keys, walked upwards.
        let r = req(&ENDPOINT_DELIVERIES, None, Some(at(false).encode(&ENDPOINT_DELIVERIES))).unwrap();
        assert_eq!((r.bound(3), r.order()), (" AND delivery_id > $3".into(), " ORDER BY delivery_id".into()));
        // The page before the position just after an item includes it.
        let r = req(&ENDPOINT_DELIVERIES, None, Some(at(true).encode(&ENDPOINT_DELIVERIES))).unwrap();
        assert_eq!(r.bound(3), " AND delivery_id >= $3");
        // Oldest first, two columns.
        let r = req(&EVENTS, None, None).unwrap();
        assert_eq!(
            (r.bound(2), r.order(), r.limit_at(2)),
            (String::new(), " ORDER BY e.seq DESC, e.event_id DESC".into(), " LIMIT $2".into())
        );
        let p = Position { key: vec![Part::Int(7), Part::Text("e".into())], after: false }.encode(&EVENTS);
        let r = req(&EVENTS, Some(p), None).unwrap();
        assert_eq!(r.bound(5), " AND (e.seq, e.event_id) <= ($5, $6)");
        let r = req(&ENDPOINTS, None, None).unwrap();
        assert_eq!(r.order(), " ORDER BY endpoint_id");
    }
}
