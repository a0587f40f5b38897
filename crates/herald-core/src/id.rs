//! Herald's ids: a prefix and a ULID (48 bits of milliseconds, 80 random bits, Crockford base32),
//! so that ids sort as text in creation order. `herald.new_id` in SQL makes the same shape.
//! `seq` is the outbox's order key: never a database sequence (shared/scale-out.md, rule 5).

use std::error::Error;
use std::sync::Mutex;

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use rand::Rng;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use ulid::Generator;

use crate::validate::{self, Invalid};

pub const EVENT: &str = "evt_";
pub const ENDPOINT: &str = "ep_";
pub const DELIVERY: &str = "dlv_";
pub const ATTEMPT: &str = "att_";
pub const CALL: &str = "call_";
pub const TOKEN: &str = "tok_";
pub const LINK: &str = "lnk_";

static GENERATOR: Mutex<Option<Generator>> = Mutex::new(None);

/// A new id with `prefix`, time-ordered at `at`; monotonic within this process.
pub fn new_id(prefix: &str, at: DateTime<Utc>) -> String {
    let mut guard = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    let generator = guard.get_or_insert_with(Generator::new);
    let ulid = generator
        .generate_from_datetime(at.into())
        // Overflow needs 2^80 ids in one millisecond; fall back to a fresh random one.
        .unwrap_or_else(|_| ulid::Ulid::from_datetime(at.into()));
    format!("{prefix}{ulid}")
}

/// The outbox order key for an event published at `at`: microseconds since the epoch times
/// 1024 plus 10 random bits, as in `herald.publish_event` (`& !1023`: the smallest at `at`).
pub fn seq_at(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros() * 1024 + rand::rng().random_range(0..1024)
}

/// Herald's typed ids and names: each is checked once, where it enters (an API path or body, a
/// flag, a token), and is then passed around and bound to statements as itself. A row read
/// back from the database is trusted: Herald wrote it.
pub trait Id: Sized {
    /// What the id names, for messages: "event", "endpoint".
    const KIND: &'static str;
    fn parse(s: &str) -> Result<Self, Invalid>;
    fn as_str(&self) -> &str;
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr) => {
        $(#[$doc])*
        ///
        /// `Default` is empty: only for a stored row whose id cannot be read.
        #[derive(Debug, Default, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl Id for $name {
            const KIND: &'static str = $kind;
            fn parse(s: &str) -> Result<Self, Invalid> {
                let check: fn(&str) -> Result<(), Invalid> = $check;
                check(s).map(|()| Self(s.to_string()))
            }
            fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl $name {
            /// Checks `s` (see the type's rule) where it enters Herald.
            pub fn parse(s: &str) -> Result<Self, Invalid> {
                <Self as Id>::parse(s)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Invalid;
            fn from_str(s: &str) -> Result<Self, Invalid> {
                Self::parse(s)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl ToSql for $name {
            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
                self.0.to_sql(ty, out)
            }
            fn accepts(ty: &Type) -> bool {
                <String as ToSql>::accepts(ty)
            }
            to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $name {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
                String::from_sql(ty, raw).map(Self)
            }
            fn accepts(ty: &Type) -> bool {
                <String as FromSql>::accepts(ty)
            }
        }
    };
}

typed_id!(
    /// A tenant's name: 1 to 63 of a-z 0-9 _ -, starting with a letter or digit.
    TenantId, "tenant", validate::tenant_name
);
typed_id!(
    /// An event's id: the publisher's own (1 to 128 of A-Z a-z 0-9 _ - . :) or a generated `evt_` one.
    EventId, "event", validate::event_id
);
typed_id!(
    /// An operation's `call_id`: the caller's own (1 to 100 of A-Z a-z 0-9 _ - . :) or a generated `call_` one.
    CallId, "operation", validate::call_id
);
typed_id!(
    /// An endpoint's id: `ep_` and a ULID, always made by Herald.
    EndpointId, "endpoint", |s| issued(ENDPOINT, "endpoint", s)
);
typed_id!(
    /// An API token's id: `tok_` and 26 characters, always made by Herald (tokens made before
    /// ids existed have one taken from their hash).
    TokenId, "token", |s| issued(TOKEN, "token", s)
);
typed_id!(
    /// A delivery's id: `dlv_` and a ULID, always made by Herald.
    DeliveryId, "delivery", |s| issued(DELIVERY, "delivery", s)
);

impl EventId {
    /// A new time-ordered `evt_` id.
    pub fn generate(at: DateTime<Utc>) -> Self {
        Self(new_id(EVENT, at))
    }
}

impl CallId {
    pub fn generate(at: DateTime<Utc>) -> Self {
        Self(new_id(CALL, at))
    }
}

impl EndpointId {
    pub fn generate(at: DateTime<Utc>) -> Self {
        Self(new_id(ENDPOINT, at))
    }
}

typed_id!(
    /// A link's id: `lnk_` and a ULID, always made by Herald.
    LinkId, "link", |s| issued(LINK, "link", s)
);

impl LinkId {
    pub fn generate(at: DateTime<Utc>) -> Self {
        Self(new_id(LINK, at))
    }
}

impl TokenId {
    pub fn generate(at: DateTime<Utc>) -> Self {
        Self(new_id(TOKEN, at))
    }
}

impl DeliveryId {
    pub fn generate(at: DateTime<Utc>) -> Self {
        Self(new_id(DELIVERY, at))
    }

    /// The smallest id made at `at`: every id made before sorts before it (retention).
    pub fn first_at(at: DateTime<Utc>) -> Self {
        let ms = at.timestamp_millis().max(0) as u64;
        Self(format!("{DELIVERY}{}", ulid::Ulid::from_parts(ms, 0)))
    }
}

/// An id Herald made: `prefix` and 26 characters of Crockford base32.
fn issued(prefix: &str, kind: &str, s: &str) -> Result<(), Invalid> {
    let ok = s
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
    if ok {
        Ok(())
    } else {
        let shown: String = s.chars().take(64).collect();
        Err(Invalid::new(
            "not_found",
            format!("no {kind} {shown:?}: {kind} ids are `{prefix}` and 26 characters, as Herald gave them"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_in_creation_order() {
        let t = Utc::now();
        let ids: Vec<String> = (0..1000).map(|_| new_id(EVENT, t)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids[0].starts_with("evt_") && ids[0].len() == 30);
        let later = new_id(EVENT, t + chrono::Duration::milliseconds(5));
        assert!(later > ids[999]);
    }

    #[test]
    fn typed_ids_are_checked_where_they_enter() {
        let t = Utc::now();
        let ep = EndpointId::generate(t);
        assert_eq!(EndpointId::parse(ep.as_str()).unwrap(), ep);
        assert_eq!(DeliveryId::parse(DeliveryId::generate(t).as_str()).unwrap().as_str().len(), 30);
        for bad in ["", "ep_", "ep_01", "dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV", "ep_01arz3ndektsv4rrffq69g5fav"] {
            let e = EndpointId::parse(bad).unwrap_err();
            assert_eq!(e.code, "not_found", "{bad}");
        }
        assert!(EventId::parse("order-1:paid").is_ok() && EventId::parse("a b").is_err());
        assert!(EventId::generate(t).as_str().starts_with("evt_"));
        assert!(TenantId::parse("acme").is_ok() && TenantId::parse("Acme").is_err());
    }
}
