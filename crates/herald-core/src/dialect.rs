//! What receivers that already exist expect of a webhook, set per endpoint (docs/receiving.md):
//! the body's shape, the hex scheme's header, headers of their own, and a timeout. The API
//! checks them where they enter; the worker applies them.

use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::validate::Invalid;

/// The body a receiver gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadFormat {
    /// `{"id", "type", "created_at", "data"}` (contract section 1).
    #[default]
    Envelope,
    /// `{"type", "is_test": false, "event"}`, as HumanLayer-style agent servers read it: for an
    /// operation's event, the operation with the agent's state at `event.spec.state` and the
    /// answer at `event.status`; for any other event, its data.
    HumanLayer,
}

impl PayloadFormat {
    pub const NAMES: [&'static str; 2] = ["envelope", "humanlayer"];

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "envelope" => Ok(Self::Envelope),
            "humanlayer" => Ok(Self::HumanLayer),
            _ => Err(Invalid::new(
                "invalid_payload_format",
                format!("payload_format {s:?} is unknown: use \"envelope\" (the default) or \"humanlayer\""),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Envelope => Self::NAMES[0],
            Self::HumanLayer => Self::NAMES[1],
        }
    }
}

/// The event types whose data is an operation (`herald.operation_json`).
const OPERATION_EVENTS: [&str; 4] =
    ["approval_completed", "approval_expired", "human_contact_completed", "human_contact_expired"];

/// The HumanLayer-shaped body of an event whose data is `data` (valid JSON text, as stored).
/// Values are spliced in as stored text: nothing is parsed into numbers and written again.
pub fn humanlayer_body(event_type: &str, data: &str) -> Vec<u8> {
    let event = match OPERATION_EVENTS.contains(&event_type).then(|| operation_event(data)).flatten() {
        Some(moved) => moved,
        None => data.to_string(),
    };
    let mut body = String::with_capacity(event.len() + event_type.len() + 48);
    body.push_str("{\"type\":");
    body.push_str(&Value::String(event_type.to_string()).to_string());
    body.push_str(",\"is_test\":false,\"event\":");
    body.push_str(&event);
    body.push('}');
    body.into_bytes()
}

/// The operation with its `state` moved into `spec.state`; None if `data` is not one.
fn operation_event(data: &str) -> Option<String> {
    let mut fields = serde_json::from_str::<object::Object>(data).ok()?.0;
    let state = take(&mut fields, "state");
    let spec = take(&mut fields, "spec")?;
    let mut spec = serde_json::from_str::<object::Object>(spec.get()).ok()?.0;
    spec.retain(|(k, _)| k != "state");
    let null = || RawValue::from_string("null".into()).expect("null is JSON");
    spec.push(("state".to_string(), state.unwrap_or_else(null)));
    let spec = RawValue::from_string(object::write(&spec)).ok()?;
    let at = fields.iter().position(|(k, _)| k == "kind").map_or(0, |i| i + 1);
    fields.insert(at, ("spec".to_string(), spec));
    Some(object::write(&fields))
}

fn take(fields: &mut Vec<(String, Box<RawValue>)>, key: &str) -> Option<Box<RawValue>> {
    let i = fields.iter().position(|(k, _)| k == key)?;
    Some(fields.remove(i).1)
}

/// A JSON object read as its members in order, each value kept as its text.
mod object {
    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
    use serde_json::value::RawValue;

    pub struct Object(pub Vec<(String, Box<RawValue>)>);

    impl<'de> Deserialize<'de> for Object {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Object;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Object, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = m.next_entry::<String, Box<RawValue>>()? {
                        out.push((k, v));
                    }
                    Ok(Object(out))
                }
            }
            d.deserialize_map(V)
        }
    }

    pub fn write(fields: &[(String, Box<RawValue>)]) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&serde_json::Value::String(k.clone()).to_string());
            s.push(':');
            s.push_str(v.get());
        }
        s.push('}');
        s
    }
}

/// Headers Herald sets itself, and hop-by-hop or framing ones: never an endpoint's own.
const RESERVED: [&str; 19] = [
    "content-type",
    "content-length",
    "content-encoding",
    "user-agent",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "traceparent",
    "tracestate",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// The hex scheme's header by default.
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";

/// A header name an endpoint may set (`field` names it in the message), in lower case: an HTTP
/// token of 1 to 64 characters, not one Herald sets itself nor a hop-by-hop one.
pub fn header_name(field: &str, name: &str) -> Result<String, Invalid> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || name.len() > 64 || !name.bytes().all(token) {
        return Err(Invalid::new(
            "invalid_header",
            format!("{field} {name:?} is not a header name: 1 to 64 letters, digits or !#$%&'*+-.^_`|~"),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || lower.starts_with("proxy-") {
        return Err(Invalid::new(
            "invalid_header",
            format!("{field} {name:?} is a header Herald sets itself or a hop-by-hop one; choose another name"),
        ));
    }
    Ok(lower)
}

/// An endpoint's own headers, names in lower case; `{:?}` shows the names only (values are
/// secrets: API keys, tokens).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| format!("{name}: ****"))).finish()
    }
}

/// At most this many headers of an endpoint's own.
pub const MAX_HEADERS: usize = 20;
const MAX_HEADER_VALUE: usize = 4096;

/// An endpoint's own headers, checked: at most 20, names as [`header_name`] and unique whatever
/// their case, values of 1 to 4096 visible ASCII characters, spaces and tabs (no line breaks).
/// Sorted by name, in lower case.
pub fn headers(object: &Map<String, Value>, signature_header: Option<&str>) -> Result<Headers, Invalid> {
    if object.len() > MAX_HEADERS {
        return Err(Invalid::new(
            "invalid_header",
            format!("headers has {} entries; at most {MAX_HEADERS}", object.len()),
        ));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(object.len());
    for (name, value) in object {
        let lower = header_name("headers:", name)?;
        let Some(value) = value.as_str() else {
            return Err(Invalid::new("invalid_header", format!("headers: the value of {name:?} must be a string")));
        };
        let visible = value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
        if value.is_empty() || value.len() > MAX_HEADER_VALUE || !visible {
            return Err(Invalid::new(
                "invalid_header",
                format!(
                    "headers: the value of {name:?} must be 1 to {MAX_HEADER_VALUE} visible ASCII characters, spaces or tabs"
                ),
            ));
        }
        if out.iter().any(|(n, _)| *n == lower) || signature_header == Some(lower.as_str()) {
            return Err(Invalid::new(
                "invalid_header",
                format!("headers: {name:?} is given twice (names are case-insensitive), or is the signature's header"),
            ));
        }
        out.push((lower, value.to_string()));
    }
    out.sort();
    Ok(Headers(out))
}

/// A header value as reads answer it: secrets stay hidden, the last four characters of a long
/// one tell which it is.
pub fn mask(value: &str) -> String {
    if value.len() >= 16 {
        format!("****{}", &value[value.len() - 4..])
    } else {
        "****".to_string()
    }
}

/// An endpoint's attempt timeout: a duration like `5s`, from 1 s to 60 s.
pub fn timeout(s: &str) -> Result<Duration, Invalid> {
    let bad =
        || Invalid::new("invalid_timeout", format!("timeout {s:?} must be a duration from 1s to 60s, like \"5s\""));
    let d = humantime::parse_duration(s.trim()).map_err(|_| bad())?;
    if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&d) {
        return Err(bad());
    }
    Ok(Duration::from_millis(d.as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanlayer_moves_the_state_into_the_spec_and_keeps_values_as_written() {
        let data = r#"{"call_id":"c1","run_id":"r1","kind":"approval","spec":{"fn":"deploy","kwargs":{"n":1.50}},"state":{"thread_id":"t9"},"status":{"state":"approved","approved":true,"comment":"ok"}}"#;
        let body: Value = serde_json::from_slice(&humanlayer_body("approval_completed", data)).unwrap();
        assert_eq!(body["type"], "approval_completed");
        assert_eq!(body["is_test"], false);
        assert_eq!(body["event"]["spec"]["state"]["thread_id"], "t9");
        assert_eq!(body["event"]["status"]["approved"], true);
        assert!(body["event"].get("state").is_none());
        let text = String::from_utf8(humanlayer_body("approval_completed", data)).unwrap();
        assert!(text.contains(r#""kwargs":{"n":1.50}"#), "{text}");
        // Not an operation's event: the data as it is.
        let other = String::from_utf8(humanlayer_body("run.finished", r#"{"a": 1}"#)).unwrap();
        assert_eq!(other, r#"{"type":"run.finished","is_test":false,"event":{"a": 1}}"#);
        // An operation event whose data is not an operation object still goes out whole.
        let odd = String::from_utf8(humanlayer_body("approval_completed", "[1]")).unwrap();
        assert!(odd.ends_with(r#""event":[1]}"#));
    }

    #[test]
    fn header_names_and_values_are_checked() {
        assert_eq!(header_name("h", "X-Api-Key").unwrap(), "x-api-key");
        for bad in ["", "a b", "Content-Type", "webhook-signature", "Transfer-Encoding", "proxy-foo", "x\r\ny"] {
            assert!(header_name("h", bad).is_err(), "{bad:?}");
        }
        let obj = |v: Value| v.as_object().unwrap().clone();
        assert!(headers(&obj(serde_json::json!({"X-A": "1", "x-a": "2"})), None).is_err());
        assert!(headers(&obj(serde_json::json!({"X-A": "line\nbreak"})), None).is_err());
        assert!(headers(&obj(serde_json::json!({"X-A": 1})), None).is_err());
        assert!(headers(&obj(serde_json::json!({"X-Sig": "v"})), Some("x-sig")).is_err());
        let many: Map<String, Value> = (0..21).map(|i| (format!("x-{i}"), Value::from("v"))).collect();
        assert!(headers(&many, None).is_err());
        let h = headers(&obj(serde_json::json!({"X-B": "2", "X-A": "secret-value"})), None).unwrap();
        assert_eq!(h.0, vec![("x-a".to_string(), "secret-value".to_string()), ("x-b".to_string(), "2".to_string())]);
        assert!(!format!("{h:?}").contains("secret-value"), "{h:?}");
        assert_eq!(mask("short"), "****");
        assert_eq!(mask("sk_live_0123456789abcd"), "****abcd");
    }

    #[test]
    fn timeouts_are_one_to_sixty_seconds() {
        assert_eq!(timeout("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(timeout("1500ms").unwrap(), Duration::from_millis(1500));
        for bad in ["0s", "999ms", "61s", "soon", ""] {
            assert!(timeout(bad).is_err(), "{bad}");
        }
    }
}
