//! The contract's input rules (contract sections 3 and 8), as pure functions. Each error carries
//! the rule's code (`error.code` in the API) and a message that says how to fix the input.

use std::net::IpAddr;
use std::time::Duration;

use crate::targets::AllowList;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

pub const MAX_URL_LEN: usize = 2048;

fn all_chars(s: &str, extra: &[u8]) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// Show a value in a message without letting it break the line.
/// A URL as error messages show it: without its query or fragment (a token may be there).
fn shown_url(s: &str) -> String {
    shown(s.split(['?', '#']).next().unwrap_or(""))
}

fn shown(s: &str) -> String {
    let cut: String = s.chars().take(64).collect();
    format!("{:?}{}", cut, if s.chars().count() > 64 { "…" } else { "" })
}

pub fn event_id(id: &str) -> Result<(), Invalid> {
    if (1..=128).contains(&id.len()) && all_chars(id, b"_-.:") {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_event_id",
            format!("event id {} is not allowed: use 1 to 128 characters of A-Z a-z 0-9 _ - . :", shown(id)),
        ))
    }
}

pub fn event_type(t: &str) -> Result<(), Invalid> {
    if (1..=128).contains(&t.len()) && all_chars(t, b"_-.") {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_event_type",
            format!("event type {} is not allowed: use 1 to 128 characters of A-Z a-z 0-9 _ - .", shown(t)),
        ))
    }
}

/// A consumer: the tenant's name for one of its customers, on endpoints, events and portal links.
pub fn consumer(c: &str) -> Result<(), Invalid> {
    if (1..=100).contains(&c.len()) && all_chars(c, b"_.:-") {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_consumer",
            format!(
                "consumer {}: 1 to 100 characters of A-Z a-z 0-9 _ . : - (your name for the customer, e.g. \"acme\")",
                shown(c)
            ),
        ))
    }
}

pub fn call_id(id: &str) -> Result<(), Invalid> {
    if (1..=100).contains(&id.len()) && event_id(id).is_ok() {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_call_id",
            format!(
                "call_id {} is not allowed: use 1 to 100 characters of A-Z a-z 0-9 _ - . : (or leave it out to get one)",
                shown(id)
            ),
        ))
    }
}

/// An endpoint's filter: exact types, or prefixes ending in `.*` (`meeting.*`).
pub fn event_type_patterns(patterns: &[String]) -> Result<(), Invalid> {
    if patterns.len() > 100 {
        return Err(Invalid::new("invalid_event_types", "at most 100 event_types per endpoint"));
    }
    for p in patterns {
        let base = p.strip_suffix(".*").unwrap_or(p);
        if event_type(base).is_err() || base.contains('*') {
            return Err(Invalid::new(
                "invalid_event_types",
                format!(
                    "event_types entry {} is not allowed: use an exact type (1 to 128 characters of A-Z a-z 0-9 _ - .) or a prefix ending in `.*` like `meeting.*`",
                    shown(p)
                ),
            ));
        }
    }
    Ok(())
}

/// Whether an event type is selected by an endpoint's patterns (empty selects all).
pub fn type_matches(patterns: &[String], event_type: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => event_type.starts_with(prefix),
            None => p == event_type,
        })
}

pub fn tenant_name(name: &str) -> Result<(), Invalid> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_tenant",
            format!(
                "tenant name {} is not allowed: use 1 to 63 characters of a-z 0-9 _ -, starting with a letter or digit",
                shown(name)
            ),
        ))
    }
}

/// A target URL: http or https, a host, no user or password, at most 2,048 characters; a host
/// that is `localhost` or a literal non-public address is refused unless `allow` permits it.
pub fn target_url(field: &str, raw: &str, allow: &AllowList) -> Result<url::Url, Invalid> {
    let bad = |why: &str| {
        Invalid::new(
            "invalid_url",
            format!("{field} {} {why}: give an http or https URL with a host and no user or password, at most {MAX_URL_LEN} characters", shown_url(raw)),
        )
    };
    if raw.len() > MAX_URL_LEN {
        return Err(bad("is too long"));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains white space or control characters"));
    }
    // The URL parser repairs what it is given (`http:/x`, `http:x`, `http:///x` and `http:\\x`
    // all become `http://x/`): what is stored must be what the caller wrote, so the scheme and
    // the `//` before the host are checked on the text itself.
    let after_scheme = ["http://", "https://"]
        .iter()
        .find(|p| raw.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p)))
        .map(|p| &raw[p.len()..]);
    match after_scheme {
        None if raw.contains(':') => return Err(bad("does not start with http:// or https://")),
        None => return Err(bad("is not a URL")),
        Some(rest) if rest.starts_with(['/', '\\']) || rest.is_empty() => return Err(bad("has no host")),
        Some(_) if raw.contains('\\') => return Err(bad("contains a backslash")),
        Some(_) => {}
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&format!("does not parse ({e})")))?;
    if url.port() == Some(0) {
        return Err(bad("has port 0"));
    }
    // Parsing normalises (a trailing `/`, percent-encoding): what is stored must fit too.
    if url.as_str().len() > MAX_URL_LEN {
        return Err(bad("is too long once normalised"));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("has a scheme other than http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("carries a user or password"));
    }
    let blocked = |what: &str| {
        Invalid::new(
            "blocked_target",
            format!("{field} {} points at {what}, which Herald does not deliver to; use a public address, or allow it with HERALD_ALLOW_PRIVATE_TARGETS", shown_url(raw)),
        )
    };
    match url.host() {
        None => return Err(bad("has no host")),
        Some(url::Host::Domain(d)) => {
            // One trailing dot names the same host; an empty label anywhere else is no host.
            if d.strip_suffix('.').unwrap_or(d).split('.').any(str::is_empty) {
                return Err(bad("has an empty label in its host name"));
            }
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if (d == "localhost" || d.ends_with(".localhost")) && !allow.permits(IpAddr::from([127, 0, 0, 1])) {
                return Err(blocked("localhost"));
            }
        }
        Some(url::Host::Ipv4(ip)) if !allow.permits(ip.into()) => return Err(blocked("a non-public address")),
        Some(url::Host::Ipv6(ip)) if !allow.permits(ip.into()) => return Err(blocked("a non-public address")),
        Some(_) => {}
    }
    Ok(url)
}

/// A W3C traceparent: `00-<32 hex>-<16 hex>-<2 hex>`, lowercase.
pub fn traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    parts.len() == 4 && hex(parts[0], 2) && hex(parts[1], 32) && hex(parts[2], 16) && hex(parts[3], 2)
}

/// A W3C tracestate (Trace Context, section 3.3): at most 32 comma-separated `key=value`
/// members and 512 characters; a key is `a-z` then up to 255 of `a-z 0-9 _ - * /`, or
/// `tenant@system` (tenant: `a-z 0-9` then up to 240 of those; system: `a-z` then up to 13); a
/// value is 1 to 256 of visible ASCII but `,` and `=`, with spaces inside but not at its end.
pub fn tracestate(v: &str) -> bool {
    let rest = |s: &[u8], max: usize| {
        s.len() <= max && s.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/".contains(&b))
    };
    let key = |k: &str| match k.split_once('@') {
        None => k.as_bytes().first().is_some_and(u8::is_ascii_lowercase) && rest(&k.as_bytes()[1..], 255),
        Some((tenant, system)) => {
            tenant.as_bytes().first().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && rest(&tenant.as_bytes()[1..], 240)
                && system.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
                && rest(&system.as_bytes()[1..], 13)
        }
    };
    let value = |v: &str| {
        !v.is_empty()
            && v.len() <= 256
            && !v.ends_with(' ')
            && v.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b',' && b != b'=')
    };
    let members: Vec<&str> = v.split(',').map(|m| m.trim_matches([' ', '\t'])).filter(|m| !m.is_empty()).collect();
    v.len() <= 512
        && !members.is_empty()
        && members.len() <= 32
        && members.iter().all(|m| m.split_once('=').is_some_and(|(k, v)| key(k) && value(v)))
}

/// A client-given signing secret (`field` names it in the message).
pub fn secret(field: &str, s: &str) -> Result<crate::signing::Secret, Invalid> {
    crate::signing::Secret::parse(s).map_err(|m| Invalid::new("invalid_secret", format!("{field}: {m}")))
}

/// `callback_secret` and `retry_schedule` belong to a callback: without a `callback_url` they are
/// refused rather than silently ignored. `owner` is "event" or "operation".
pub fn callback_fields(has_url: bool, has_secret: bool, has_schedule: bool, owner: &str) -> Result<(), Invalid> {
    if !has_url && (has_secret || has_schedule) {
        return Err(Invalid::new(
            "callback_url_required",
            format!("callback_secret, callback_payload_format and retry_schedule apply to the {owner}'s callback: give callback_url too, or leave them out"),
        ));
    }
    Ok(())
}

/// Durations written back the way a person would write them: `1m`, `2h`, `200ms`.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracestate_shapes() {
        for ok in ["vendor=abc", "a=1,b=2", "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7", "t@sys-1/x*y=v a l", "0t@a=1"] {
            assert!(tracestate(ok), "{ok}");
        }
        let long = format!("a={}", "x".repeat(600));
        let vendor = format!("t@{}=1", "s".repeat(15));
        for bad in [
            "",
            ",",
            "novalue",
            "Upper=1",
            "a=b=c",
            "a=\u{7f}",
            "a=1\r\nx: y",
            "_a=1",
            "a@b@c=1",
            "0a=1",
            &long,
            &vendor,
        ] {
            assert!(!tracestate(bad), "{bad:?}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(!tracestate(&many.join(",")));
    }

    #[test]
    fn ids_and_types_follow_the_contract() {
        assert!(event_id("evt_01:a-b.c").is_ok());
        assert!(event_id(&"a".repeat(128)).is_ok());
        assert_eq!(event_id(&"a".repeat(129)).unwrap_err().code, "invalid_event_id");
        assert!(event_id("").is_err() && event_id("a b").is_err() && event_id("a\r\nb").is_err());
        assert!(event_type("meeting.room_booked-2").is_ok());
        assert!(event_type("a:b").is_err() && event_type("").is_err());
    }

    #[test]
    fn prefix_patterns_match_below_the_dot_only() {
        let p = vec!["meeting.*".to_string(), "run.finished".to_string()];
        assert!(event_type_patterns(&p).is_ok());
        assert!(type_matches(&p, "meeting.completed"));
        assert!(type_matches(&p, "meeting.room.booked"));
        assert!(!type_matches(&p, "meeting"));
        assert!(type_matches(&p, "run.finished"));
        assert!(!type_matches(&p, "run.finished.x"));
        assert!(type_matches(&[], "anything"));
        assert!(event_type_patterns(&["meet*".into()]).is_err());
        assert!(event_type_patterns(&["*".into()]).is_err());
        assert!(event_type_patterns(&["a.*.b".into()]).is_err());
    }

    #[test]
    fn urls_are_checked() {
        let none = AllowList::none();
        assert!(target_url("url", "https://example.com/hook?x=1", &none).is_ok());
        for bad in [
            "ftp://example.com",
            "https://u:p@example.com",
            "not a url",
            "https://exa mple.com",
            "mailto:a@b.c",
            "http://",
            "http:///x",
            "http:/x",
            "http:x",
            "http:\\\\x/",
            "http://x\\y/",
            "https:example.com",
            "HTTP:/example.com",
            "http://example.com../",
            "http://.example.com/",
            "http://a..b/",
            "http://example.com:0/",
            "example.com/hook",
        ] {
            assert_eq!(target_url("url", bad, &none).unwrap_err().code, "invalid_url", "{bad}");
        }
        let at_limit = format!("https://{}", "a".repeat(2040));
        assert_eq!(at_limit.len(), 2048);
        assert_eq!(target_url("url", &at_limit, &none).unwrap_err().code, "invalid_url", "2049 once a / is added");
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert_eq!(target_url("url", &long, &none).unwrap_err().code, "invalid_url");
        for blocked in [
            "http://localhost:8080/",
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://169.254.169.254/",
            "http://10.0.0.1/",
        ] {
            assert_eq!(target_url("url", blocked, &none).unwrap_err().code, "blocked_target", "{blocked}");
        }
        // Stored as parsed: lower-case scheme and host, a path of at least `/`.
        let ok = target_url("url", "HTTPS://Example.COM.:8443", &none).unwrap();
        assert_eq!(ok.as_str(), "https://example.com.:8443/");
        assert!(target_url("url", "http://127.0.0.1:9/", &AllowList::loopback()).is_ok());
        assert!(target_url("url", "http://localhost:9/", &AllowList::loopback()).is_ok());
    }

    #[test]
    fn durations_are_written_back() {
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
    }

    #[test]
    fn tenant_names() {
        assert!(tenant_name("acme").is_ok() && tenant_name("dev-1_x").is_ok());
        assert!(tenant_name("Acme").is_err() && tenant_name("-a").is_err() && tenant_name("").is_err());
        assert!(tenant_name("a.b").is_err());
    }
}
