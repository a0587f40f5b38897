//! An event's data: JSON text kept exactly as the publisher wrote it, checked once where it
//! enters, and never parsed again on its way to a receiver.
//!
//! Why text and not a parsed value: a JSON number is text. A parsed value (serde_json's `f64`,
//! PostgreSQL's `numeric`) rewrites it: `1.7976931348623157e308` becomes 309 digits that
//! serde_json then refuses to read back, `5e-324` a 324-place decimal, `-0.0` loses its sign.
//! Herald stores the text (`herald.events.data` is `json`, not `jsonb`) and splices it into the
//! webhook body as it is, so a receiver gets what the publisher sent, byte for byte.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::validate::Invalid;

/// How deep arrays and objects may nest: serde_json refuses a 128th level, and the webhook body
/// wraps the data in one more object, so that every receiver that uses serde_json (and most
/// others) can read what Herald delivers.
pub const MAX_DEPTH: usize = 126;

/// Valid JSON text, as it will be delivered.
#[derive(Debug, Clone)]
pub struct EventData(Box<RawValue>);

impl EventData {
    /// Checks JSON text from outside: well-formed, every number within a double's range (so
    /// that receivers can read it as a number), every string valid Unicode (no lone surrogate in
    /// a `\u` escape), nested at most [`MAX_DEPTH`] deep. Integers of any length, `-0.0`, long
    /// exponents that stay in range, and `\u0000` are kept as written.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        check(text)?;
        let raw = RawValue::from_string(text.trim().to_string()).map_err(|e| invalid("data", &e))?;
        Ok(Self(raw))
    }

    /// The same check for text already split out of a request body.
    pub fn from_raw(raw: Box<RawValue>) -> Result<Self, Invalid> {
        check(raw.get())?;
        Ok(Self(raw))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

fn check(text: &str) -> Result<(), Invalid> {
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, serde_json::Value>(&mut de) {
        Ok(v) if depth(&v) > MAX_DEPTH => Err(too_deep("data")),
        Ok(_) => de.end().map_err(|e| invalid("data", &e)),
        Err(e) => {
            let path = e.path().to_string();
            let at = match path.as_str() {
                _ if e.inner().to_string().starts_with("recursion limit") => "data".to_string(),
                "." => "data".to_string(),
                p if p.starts_with('[') => format!("data{p}"),
                p => format!("data.{p}"),
            };
            Err(invalid(&at, e.inner()))
        }
    }
}

/// Levels of arrays and objects (a scalar is 0). The value came from serde_json's parser, so it
/// is at most 127 deep and this recursion is bounded.
fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn too_deep(at: &str) -> Invalid {
    Invalid::new(
        "invalid_data",
        format!("{at} nests arrays and objects deeper than {MAX_DEPTH} levels; flatten it, or send the deep part as a string"),
    )
}

fn invalid(at: &str, e: &serde_json::Error) -> Invalid {
    let what = e.to_string();
    let message = if what.starts_with("number out of range") {
        format!(
            "{at} holds a number beyond a double's range (about ±1.8e308), which receivers cannot read as a number; send it as a string"
        )
    } else if what.contains("surrogate") || what.contains("hex escape") {
        format!(
            "{at} holds a \\u escape that is a lone UTF-16 surrogate, which is not Unicode text; escape both halves of the pair (\\ud83d\\ude00) or send the character as UTF-8"
        )
    } else if what.starts_with("recursion limit exceeded") {
        return too_deep(at);
    } else {
        format!("{at} is not JSON Herald can store ({what})")
    };
    Invalid::new("invalid_data", message)
}

impl From<&serde_json::Value> for EventData {
    /// A value's own serialisation is always valid JSON.
    fn from(v: &serde_json::Value) -> Self {
        Self(serde_json::value::to_raw_value(v).expect("a serde_json::Value serialises"))
    }
}

impl From<serde_json::Value> for EventData {
    fn from(v: serde_json::Value) -> Self {
        Self::from(&v)
    }
}

impl Default for EventData {
    fn default() -> Self {
        Self::from(serde_json::Value::Null)
    }
}

impl PartialEq for EventData {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for EventData {}

impl Serialize for EventData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(text: &str) {
        let d = EventData::parse(text).unwrap_or_else(|e| panic!("{text:.60}: {e}"));
        assert_eq!(d.as_str(), text, "kept as written");
    }

    fn refused(text: &str, says: &str) {
        let e = EventData::parse(text).expect_err(text);
        assert_eq!(e.code, "invalid_data");
        assert!(e.message.contains(says), "{text:.60}: {}", e.message);
    }

    #[test]
    fn numbers_are_kept_as_written() {
        for n in [
            "1.7976931348623157e308",
            "-1.7976931348623157e308",
            "5e-324",
            "-0.0",
            "1e-400",
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678901234567890123456789",
            "1E+0000000000000000000000308",
            "0e999999999999999999",
            "1.0",
        ] {
            kept(&format!(r#"{{"x":{n}}}"#));
        }
        let digits = format!("17976931348623157{}", "0".repeat(292));
        kept(&format!("[{digits}]"));
    }

    #[test]
    fn numbers_past_a_double_are_refused_with_their_path() {
        refused(r#"{"a":[1,{"x":1e400}]}"#, "data.a[1].x holds a number beyond a double's range");
        refused("-1e400", "data holds a number");
        refused(r#"{"x":1e99999999999999999999}"#, "send it as a string");
    }

    #[test]
    fn text_in_every_plane_is_kept_and_lone_surrogates_refused() {
        kept(r#"["\u0000","\ud83d\ude00","😀","\uffff","𐀀","󠀁","􏿿","ä","\n"]"#);
        kept(&format!("\"{}\"", "x".repeat(200_000)));
        refused(r#"{"s":"\ud800"}"#, "data.s holds a \\u escape that is a lone UTF-16 surrogate");
        refused(r#"["\udc00x"]"#, "lone UTF-16 surrogate");
    }

    #[test]
    fn depth_is_bounded_by_what_receivers_read() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        kept(&ok);
        let body = format!(r#"{{"id":"e","data":{ok}}}"#);
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok(), "a receiver reads the webhook body");
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        refused(&deep, "data nests arrays and objects deeper than 126 levels");
        let deeper = format!("{}{}", "[".repeat(200), "]".repeat(200));
        refused(&deeper, "data nests arrays and objects deeper than 126 levels");
    }

    #[test]
    fn malformed_text_is_refused() {
        refused("{", "is not JSON");
        refused("1 2", "is not JSON");
        refused("NaN", "is not JSON");
    }

    #[test]
    fn serialises_as_the_text_itself() {
        let d = EventData::parse(r#"{"b":1.0,"a":-0.0}"#).unwrap();
        #[derive(Serialize)]
        struct Wrap<'a> {
            data: &'a EventData,
        }
        assert_eq!(serde_json::to_string(&Wrap { data: &d }).unwrap(), r#"{"data":{"b":1.0,"a":-0.0}}"#);
    }
}
