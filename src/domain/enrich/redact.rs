//! Secrets out of log excerpts before they are stored.
//!
//! A crashed container's last lines are the evidence responders open
//! first, and they are also where applications print their configuration,
//! connection strings and request headers. Whatever Klaxon keeps of them
//! (in an Incident's status, so in etcd, in every `kubectl describe` and in
//! the postmortem) is redacted first: each secret is replaced by
//! [`REDACTED`], the text around it kept, so the line still says what
//! failed.
//!
//! What is recognised:
//! - `Bearer <token>` anywhere, and `Authorization: Basic <credentials>`;
//! - the value of a key that names a secret (`password`, `passwd`, `pwd`,
//!   `secret`, `token`, `api_key`/`apikey`, `access_key`, `private_key`,
//!   `client_secret`, `credentials`, with any prefix such as `db_` or
//!   `aws_secret_access_`), written `key=value`, `key: value` or
//!   `"key": "value"`;
//! - credentials in a URL (`scheme://user:password@host`);
//! - private key blocks (`-----BEGIN ... PRIVATE KEY-----` to its `END`
//!   line, across lines);
//! - JSON Web Tokens (three base64url parts, the first `eyJ`);
//! - AWS access key ids (`AKIA...`, `ASIA...`).

use std::sync::LazyLock;

use regex::Regex;

/// What a secret is replaced by.
pub const REDACTED: &str = "[redacted]";

struct Rules {
    bearer: Regex,
    keyed: Regex,
    url: Regex,
    jwt: Regex,
    aws: Regex,
    begin: Regex,
    end: Regex,
}

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    Rules {
    // A bearer token; Basic credentials only in a header, since "basic" is
    // also a word.
    bearer: Regex::new(r"(?i)\b(bearer|authorization:\s*basic)(\s+)[A-Za-z0-9\-._~+/]{8,}=*")
        .expect("bearer rule"),
    // A key naming a secret, its separator (`=`, `:`, with optional
    // quotes and spaces), then the value: quoted, or up to a space, comma,
    // semicolon, ampersand or closing bracket.
    keyed: Regex::new(
        r#"(?i)([A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)"?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&)}\]]+)"#,
    )
    .expect("keyed rule"),
    url: Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+@").expect("url rule"),
    jwt: Regex::new(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}").expect("jwt rule"),
    aws: Regex::new(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b").expect("aws rule"),
    begin: Regex::new(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----").expect("begin rule"),
    end: Regex::new(r"-----END [A-Z0-9 ]*PRIVATE KEY-----").expect("end rule"),
}
});

/// `lines` with every secret replaced by [`REDACTED`]; a private key
/// block becomes one line saying so.
pub fn lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let rules = &*RULES;
    let mut out = Vec::new();
    let mut in_key = false;
    for line in lines {
        if in_key {
            if rules.end.is_match(line) {
                in_key = false;
            }
            continue;
        }
        if rules.begin.is_match(line) {
            in_key = !rules.end.is_match(line);
            out.push(format!("{REDACTED} (a private key)"));
            continue;
        }
        out.push(line_of(rules, line));
    }
    out
}

/// One line, redacted.
pub fn line(text: &str) -> String {
    line_of(&RULES, text)
}

fn line_of(rules: &Rules, text: &str) -> String {
    let text = rules.jwt.replace_all(text, REDACTED);
    let text = rules.url.replace_all(&text, format!("${{1}}{REDACTED}@"));
    let text = rules
        .bearer
        .replace_all(&text, format!("${{1}}${{2}}{REDACTED}"));
    let text = rules
        .keyed
        .replace_all(&text, |caps: &regex::Captures<'_>| {
            let value = &caps[2];
            // Already redacted by a rule above: keep the key's text as is.
            if value.contains(REDACTED) {
                return format!("{}{value}", &caps[1]);
            }
            match value.chars().next() {
                Some(quote @ ('"' | '\'')) => format!("{}{quote}{REDACTED}{quote}", &caps[1]),
                _ => format!("{}{REDACTED}", &caps[1]),
            }
        });
    rules.aws.replace_all(&text, REDACTED).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_and_the_rest_of_the_line_kept() {
        let cases = [
            (
                "GET /api failed: Authorization: Bearer abc.DEF-123_x~+/= (401)",
                "GET /api failed: Authorization: Bearer [redacted] (401)",
            ),
            (
                "connecting with password=hunter2 user=app",
                "connecting with password=[redacted] user=app",
            ),
            (
                "DB_PASSWORD: s3cr3t, retrying",
                "DB_PASSWORD: [redacted], retrying",
            ),
            (
                r#"{"client_secret": "x y z", "user": "app"}"#,
                r#"{"client_secret": "[redacted]", "user": "app"}"#,
            ),
            ("?token=abc&page=2", "?token=[redacted]&page=2"),
            ("secret='q w'", "secret='[redacted]'"),
            (
                "dial postgres://app:pa55@db:5432/ledger: refused",
                "dial postgres://app:[redacted]@db:5432/ledger: refused",
            ),
            (
                "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "aws_secret_access_key=[redacted]",
            ),
            (
                "using key AKIAIOSFODNN7EXAMPLE for s3",
                "using key [redacted] for s3",
            ),
            (
                "session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlX2hlcmU expired",
                "session [redacted] expired",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(line(input), expected, "{input}");
        }
    }

    #[test]
    fn plain_failures_are_left_alone() {
        for text in [
            "panic: runtime error: index out of range [3] with length 3",
            "OOMKilled: container app exceeded its memory limit",
            "Error: connect ECONNREFUSED 10.0.0.7:5432",
            "token bucket empty, backing off 2s",
            "basic validation failed for field email",
            "level=error msg=\"cannot reach ledger-db\" attempt=3",
        ] {
            assert_eq!(line(text), text);
        }
    }

    #[test]
    fn a_private_key_block_becomes_one_line() {
        let input = [
            "loading TLS key",
            "-----BEGIN RSA PRIVATE KEY-----",
            "MIIEowIBAAKCAQEA7x",
            "Zm9vYmFy",
            "-----END RSA PRIVATE KEY-----",
            "listening on :8443",
        ];
        assert_eq!(
            lines(input),
            [
                "loading TLS key",
                "[redacted] (a private key)",
                "listening on :8443"
            ]
        );
        // A block cut off by the tail: everything after BEGIN goes.
        assert_eq!(
            lines(["-----BEGIN PRIVATE KEY-----", "MIIE", "Zm9v"]),
            ["[redacted] (a private key)"]
        );
    }
}
