//! `herald verify`: whether a captured webhook's signature holds for a secret, in every dialect
//! Herald sends (Standard Webhooks; the hex scheme in its header). Exit 0: it holds; 1: it does
//! not; 2: the capture or the secret cannot be read.

use std::io::Read;

use herald_core::signing::{self, Scheme};

use crate::cli::VerifyArgs;

/// A captured request: its headers (names in lower case) and its body, as they arrived.
struct Capture {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Capture {
    /// A raw HTTP request (a request line is skipped) or headers alone, a blank line, the body.
    fn parse(raw: &[u8]) -> Result<Self, String> {
        // Whichever blank line comes first ends the headers (a body may hold either kind).
        let crlf = find(raw, b"\r\n\r\n").map(|i| (i, 4));
        let lf = find(raw, b"\n\n").map(|i| (i, 2));
        let (i, n) = match (crlf, lf) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return Err("no blank line between the headers and the body".into()),
        };
        let (head, body) = (&raw[..i], &raw[i + n..]);
        let head = std::str::from_utf8(head).map_err(|_| "the headers are not UTF-8".to_string())?;
        let headers: Vec<(String, String)> = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(name, _)| !name.contains(' '))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok(Self { headers, body: body.to_vec() })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a header, each split where white space or commas between values are.
    fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split_ascii_whitespace())
            .map(|v| v.trim_end_matches(','))
            .collect()
    }
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(why: impl std::fmt::Display) -> ! {
    eprintln!("herald verify: {why}");
    std::process::exit(2)
}

pub fn run(args: VerifyArgs) -> ! {
    let mut raw = Vec::new();
    let read = match &args.request {
        Some(path) => std::fs::read(path).map(|b| raw = b),
        None => std::io::stdin().read_to_end(&mut raw).map(|_| ()),
    };
    if let Err(e) = read {
        bad(format!("reading the captured request: {e}"));
    }
    let capture = Capture::parse(&raw).unwrap_or_else(|e| bad(format!("the captured request: {e}")));
    let standard = capture.header("webhook-signature");
    let scheme = match (args.scheme.as_deref(), standard) {
        (Some(s), _) => {
            Scheme::parse(s).unwrap_or_else(|| bad(format!("--scheme {s:?}: standard-webhooks or hmac-sha256-hex")))
        }
        (None, Some(_)) => Scheme::StandardWebhooks,
        (None, None) => Scheme::HmacSha256Hex,
    };
    let secrets: Vec<signing::Secret> =
        args.secret.iter().map(|s| scheme.secret(s).unwrap_or_else(|e| bad(format!("--secret: {e}")))).collect();
    let holds = match scheme {
        Scheme::StandardWebhooks => {
            let (Some(_), Some(id), Some(ts)) =
                (standard, capture.header("webhook-id"), capture.header("webhook-timestamp"))
            else {
                bad("a Standard Webhooks request has webhook-id, webhook-timestamp and webhook-signature headers")
            };
            let ts: i64 = ts.parse().unwrap_or_else(|_| bad(format!("webhook-timestamp {ts:?} is not Unix seconds")));
            let given = capture.values("webhook-signature");
            let found = secrets.iter().position(|s| {
                let want = signing::standard_webhooks(s, id, ts, &capture.body);
                given.iter().any(|g| same(g, &want))
            });
            found.map(|i| {
                format!("standard-webhooks, webhook-id {id}, signed with secret {} of {}", i + 1, secrets.len())
            })
        }
        Scheme::HmacSha256Hex => {
            let name = args
                .header
                .as_deref()
                .map(str::to_ascii_lowercase)
                .unwrap_or_else(|| herald_core::dialect::SIGNATURE_HEADER.into());
            let Some(sig) = capture.header(&name) else {
                bad(format!("no {name} header in the capture (--header names another)"))
            };
            let sig = sig.to_ascii_lowercase();
            let found = secrets.iter().position(|s| same(&signing::hmac_sha256_hex(s, &capture.body), &sig));
            found.map(|i| format!("hmac-sha256-hex in {name}, signed with secret {} of {}", i + 1, secrets.len()))
        }
    };
    match holds {
        Some(how) => {
            println!("holds: {how}");
            std::process::exit(0)
        }
        None => {
            println!("does not hold: no secret given signs this body ({})", scheme.name());
            std::process::exit(1)
        }
    }
}
