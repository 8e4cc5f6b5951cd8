//! STIX 2.1 bundles: each `indicator` object whose `stix` pattern Vigil can match.
//!
//! A pattern is matched as a set of values when any one of them is enough: comparisons
//! `=` (or `IN (...)`) on a file's hashes, an address (`ipv4-addr:value`,
//! `ipv6-addr:value`, `network-traffic:dst_ref.value`), or a domain
//! (`domain-name:value`), joined by `OR`, in one observation or several joined by `OR`.
//! Hashes of one file joined by `AND` are also taken (any of them names the file). What
//! needs more (other comparisons joined by `AND`, `FOLLOWEDBY`, qualifiers such as
//! `WITHIN`, `NOT`, `LIKE`, `MATCHES`, URLs, other objects) is left out and reported:
//! matching part of such a pattern would report what it does not say. The supported
//! values of an `OR` are loaded even when other values of it are not.

use crate::error::IntelError;
use crate::value::{parse_domain, parse_hash, parse_ip, parse_json, Collect, Meta, Value};
use serde_json::Value as Json;

/// Longest pattern kept with an indicator (for the finding).
const PATTERN_KEPT: usize = 1024;

pub(crate) fn load(into: &mut dyn Collect, source: &str, text: &str) {
    let Some(doc) = parse_json(into, source, text) else {
        return;
    };
    let Some(objects) = doc.get("objects").and_then(Json::as_array) else {
        into.problem(IntelError::Format {
            source_name: source.to_string(),
            message: "not a STIX bundle: no \"objects\" list".into(),
        });
        return;
    };
    for (i, o) in objects.iter().enumerate() {
        if o.get("type").and_then(Json::as_str) != Some("indicator") {
            continue;
        }
        let id = o.get("id").and_then(Json::as_str);
        let object = id.map_or_else(|| format!("objects[{i}]"), str::to_string);
        let problem = |message: String| IntelError::Object {
            source_name: source.to_string(),
            object: object.clone(),
            message,
        };
        if o.get("revoked").and_then(Json::as_bool) == Some(true) {
            continue;
        }
        let pattern_type = o
            .get("pattern_type")
            .and_then(Json::as_str)
            .unwrap_or("stix");
        if pattern_type != "stix" {
            into.problem(problem(format!(
                "pattern_type {pattern_type:?}: only STIX patterns are matched"
            )));
            continue;
        }
        let Some(pattern) = o.get("pattern").and_then(Json::as_str) else {
            into.problem(problem("an indicator without a pattern".into()));
            continue;
        };
        let (values, unsupported) = match values_of(pattern) {
            Ok(v) => v,
            Err(why) => {
                into.problem(problem(why));
                continue;
            }
        };
        if let Some(why) = unsupported {
            into.problem(problem(if values.is_empty() {
                why
            } else {
                format!("{why} (its other values are loaded)")
            }));
        }
        if values.is_empty() {
            continue;
        }
        let meta = into.meta(Meta {
            source: source.to_string(),
            uid: id.map(str::to_string),
            name: o.get("name").and_then(Json::as_str).map(str::to_string),
            pattern: Some(pattern.chars().take(PATTERN_KEPT).collect()),
        });
        for v in values {
            into.value(v, meta);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    LParen,
    RParen,
    Comma,
    Op(String),
    Word(String),
    Str(String),
}

fn tokens(p: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut it = p.chars().peekable();
    let quoted = |it: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Result<String, String> {
        let mut s = String::new();
        loop {
            match it.next() {
                Some('\\') => match it.next() {
                    Some(c) => s.push(c),
                    None => return Err("a string ends in a backslash".into()),
                },
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
                None => return Err("a string is not closed".into()),
            }
        }
    };
    while let Some(&c) = it.peek() {
        match c {
            c if c.is_whitespace() => {
                it.next();
            }
            '[' | ']' | '(' | ')' | ',' => {
                it.next();
                out.push(match c {
                    '[' => Token::Open,
                    ']' => Token::Close,
                    '(' => Token::LParen,
                    ')' => Token::RParen,
                    _ => Token::Comma,
                });
            }
            '\'' => {
                it.next();
                out.push(Token::Str(quoted(&mut it)?));
            }
            '=' | '!' | '<' | '>' => {
                let mut op = String::from(c);
                it.next();
                if it.peek() == Some(&'=') {
                    op.push('=');
                    it.next();
                }
                out.push(Token::Op(op));
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => {
                let mut w = String::new();
                while let Some(&c) = it.peek() {
                    if c.is_ascii_alphanumeric() || "_-:.".contains(c) {
                        w.push(c);
                        it.next();
                    } else if c == '\'' && (w.ends_with('.') || w.len() == 1) {
                        // A quoted path step (`hashes.'SHA-256'`) or a typed literal
                        // (`t'...'`, `h'...'`, `b'...'`).
                        it.next();
                        let q = quoted(&mut it)?;
                        if w.len() == 1 && !w.ends_with('.') {
                            w.clear();
                            out.push(Token::Str(q));
                            break;
                        }
                        w.push_str(&q);
                    } else {
                        break;
                    }
                }
                if !w.is_empty() {
                    out.push(Token::Word(w));
                }
            }
            other => return Err(format!("unexpected {other:?} in the pattern")),
        }
    }
    Ok(out)
}

/// What a comparison's object path names.
fn kind_of(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    match lower.as_str() {
        "file:hashes.sha-256" | "file:hashes.sha256" => Some("sha256"),
        "file:hashes.sha-1" | "file:hashes.sha1" => Some("sha1"),
        "file:hashes.md5" => Some("md5"),
        "ipv4-addr:value"
        | "ipv6-addr:value"
        | "network-traffic:dst_ref.value"
        | "network-traffic:src_ref.value" => Some("ip"),
        "domain-name:value" => Some("domain"),
        _ => None,
    }
}

fn value_of(kind: &str, v: &str) -> Result<Value, String> {
    match kind {
        "sha256" | "sha1" | "md5" => parse_hash(&v.to_ascii_lowercase())
            .filter(|h| {
                matches!(
                    (kind, h),
                    ("sha256", Value::Sha256(_))
                        | ("sha1", Value::Sha1(_))
                        | ("md5", Value::Md5(_))
                )
            })
            .ok_or_else(|| format!("{v:?} is not a {kind} hash")),
        "ip" => parse_ip(v)?.ok_or_else(|| format!("{v:?} is not an address or a network")),
        _ => parse_domain(v),
    }
}

/// The values a pattern is matched as, and why part of it is not (if it is not).
fn values_of(pattern: &str) -> Result<(Vec<Value>, Option<String>), String> {
    let toks = tokens(pattern)?;
    for t in &toks {
        if let Token::Word(w) = t {
            let up = w.to_ascii_uppercase();
            if ["FOLLOWEDBY", "WITHIN", "REPEATS", "START", "STOP", "NOT"].contains(&up.as_str()) {
                return Err(format!("{up}: patterns with it are not matched"));
            }
        }
    }
    // Observations: [ ... ] joined by OR (AND at this level needs them all).
    let mut depth = 0usize;
    let mut observations: Vec<Vec<Token>> = Vec::new();
    for t in toks {
        match (&t, depth) {
            (Token::Open, 0) => {
                depth = 1;
                observations.push(Vec::new());
            }
            (Token::Close, 1) => depth = 0,
            (Token::Open, _) => return Err("nested observations".into()),
            (Token::Close, 0) => return Err("an unmatched ]".into()),
            (Token::Word(w), 0) if w.eq_ignore_ascii_case("OR") => {}
            (Token::Word(w), 0) if w.eq_ignore_ascii_case("AND") => {
                return Err("observations joined by AND: patterns that need several observations are not matched".into())
            }
            (Token::LParen | Token::RParen, 0) => {}
            (_, 0) => return Err(format!("unexpected {t:?} between observations")),
            _ => {
                if let Some(o) = observations.last_mut() {
                    o.push(t);
                }
            }
        }
    }
    if depth != 0 {
        return Err("an observation is not closed with ]".into());
    }
    if observations.is_empty() {
        return Err("no observation in the pattern".into());
    }
    let mut values = Vec::new();
    let mut unsupported: Option<String> = None;
    for obs in &observations {
        let (vals, why) = observation(obs)?;
        values.extend(vals);
        if unsupported.is_none() {
            unsupported = why;
        }
    }
    Ok((values, unsupported))
}

/// One observation's comparisons: path, operator, value or `IN (values)`, joined by
/// AND/OR, with parentheses.
fn observation(toks: &[Token]) -> Result<(Vec<Value>, Option<String>), String> {
    let mut comparisons: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut has_and = false;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Token::LParen | Token::RParen => i += 1,
            Token::Word(w) if w.eq_ignore_ascii_case("AND") => {
                has_and = true;
                i += 1;
            }
            Token::Word(w) if w.eq_ignore_ascii_case("OR") => i += 1,
            Token::Word(path) => {
                let op = match toks.get(i + 1) {
                    Some(Token::Op(op)) => op.clone(),
                    Some(Token::Word(w)) => w.to_ascii_uppercase(),
                    other => return Err(format!("{path}: no operator ({other:?})")),
                };
                i += 2;
                let mut vals = Vec::new();
                match toks.get(i) {
                    Some(Token::Str(s)) => {
                        vals.push(s.clone());
                        i += 1;
                    }
                    Some(Token::LParen) if op == "IN" => {
                        i += 1;
                        loop {
                            match toks.get(i) {
                                Some(Token::Str(s)) => vals.push(s.clone()),
                                Some(Token::Comma) => {}
                                Some(Token::RParen) => {
                                    i += 1;
                                    break;
                                }
                                other => return Err(format!("{path} IN: unexpected {other:?}")),
                            }
                            i += 1;
                        }
                    }
                    Some(Token::Word(n)) => {
                        // A number or a boolean: no indicator Vigil matches.
                        vals.push(n.clone());
                        i += 1;
                    }
                    other => return Err(format!("{path} {op}: no value ({other:?})")),
                }
                comparisons.push((path.clone(), op, vals));
            }
            other => return Err(format!("unexpected {other:?} in an observation")),
        }
    }
    let all_hashes = comparisons
        .iter()
        .all(|(p, op, _)| matches!(kind_of(p), Some("sha256" | "sha1" | "md5")) && op == "=");
    if has_and && !all_hashes {
        return Err(
            "comparisons joined by AND (other than hashes of one file) are not matched".into(),
        );
    }
    let mut values = Vec::new();
    let mut unsupported = None;
    for (path, op, vals) in comparisons {
        let Some(kind) = kind_of(&path) else {
            unsupported.get_or_insert(format!("{path}: not an object Vigil matches"));
            continue;
        };
        if op != "=" && op != "IN" {
            unsupported.get_or_insert(format!("{path} {op}: only = and IN are matched"));
            continue;
        }
        for v in vals {
            match value_of(kind, &v) {
                Ok(v) => values.push(v),
                Err(why) => {
                    unsupported.get_or_insert(format!("{path}: {why}"));
                }
            }
        }
    }
    Ok((values, unsupported))
}

#[cfg(test)]
mod tests {
    use crate::{Format, IntelSet};

    fn bundle(objects: &str) -> String {
        format!("{{\"type\": \"bundle\", \"id\": \"bundle--1\", \"objects\": [{objects}]}}")
    }

    fn indicator(id: &str, pattern: &str) -> String {
        let p = serde_json::to_string(pattern).expect("json");
        format!(
            "{{\"type\": \"indicator\", \"spec_version\": \"2.1\", \"id\": \"{id}\", \
             \"name\": \"Bad {id}\", \"pattern_type\": \"stix\", \"pattern\": {p}, \
             \"valid_from\": \"2024-01-01T00:00:00Z\"}}"
        )
    }

    #[test]
    fn hashes_addresses_and_domains_load_with_their_indicator() {
        let sha = "e".repeat(64);
        let objects = [
            indicator(
                "indicator--a",
                &format!("[file:hashes.'SHA-256' = '{sha}']"),
            ),
            indicator(
                "indicator--b",
                "[ipv4-addr:value = '198.51.100.0/24'] OR [ipv6-addr:value = '2001:db8::1']",
            ),
            indicator(
                "indicator--c",
                "[domain-name:value = 'evil.example' OR domain-name:value = 'worse.example']",
            ),
            indicator(
                "indicator--d",
                &format!(
                    "[file:hashes.MD5 = '{}' AND file:hashes.'SHA-1' = '{}']",
                    "a".repeat(32),
                    "b".repeat(40)
                ),
            ),
            indicator(
                "indicator--e",
                "[network-traffic:dst_ref.value IN ('203.0.113.1', '203.0.113.2')]",
            ),
            "{\"type\": \"malware\", \"id\": \"malware--x\"}".to_string(),
        ];
        let mut s = IntelSet::new();
        let r = s.add("feed.json", &bundle(&objects.join(",")), Format::Auto);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.added, 9);
        let h = s.match_hash(&sha).expect("sha256");
        assert_eq!(h.meta.uid.as_deref(), Some("indicator--a"));
        assert_eq!(h.meta.name.as_deref(), Some("Bad indicator--a"));
        assert!(h
            .meta
            .pattern
            .as_deref()
            .is_some_and(|p| p.contains("SHA-256")));
        assert_eq!(
            s.match_ip("198.51.100.3".parse().expect("ip"))
                .map(|h| h.indicator)
                .as_deref(),
            Some("198.51.100.0/24")
        );
        assert!(s.match_domain("x.worse.example").is_some());
        assert!(s.match_hash(&"b".repeat(40)).is_some());
        assert!(s.match_ip("203.0.113.2".parse().expect("ip")).is_some());
    }

    #[test]
    fn patterns_that_need_more_than_one_value_are_left_out_with_the_reason() {
        let objects = [
            indicator("indicator--and", "[ipv4-addr:value = '1.2.3.4' AND domain-name:value = 'x.example']"),
            indicator("indicator--seq", "[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [ipv4-addr:value = '5.6.7.8']"),
            indicator("indicator--within", "[ipv4-addr:value = '1.2.3.4'] WITHIN 10 SECONDS"),
            indicator("indicator--url", "[url:value = 'http://x.example/']"),
            indicator("indicator--like", "[domain-name:value LIKE '%.example']"),
            indicator("indicator--part", "[url:value = 'http://y.example/' OR domain-name:value = 'y.example']"),
            indicator("indicator--broken", "[ipv4-addr:value = '1.2.3.4'"),
            "{\"type\": \"indicator\", \"id\": \"indicator--yara\", \"pattern_type\": \"yara\", \"pattern\": \"rule x {condition: true}\"}".into(),
        ];
        let mut s = IntelSet::new();
        let r = s.add("f.json", &bundle(&objects.join(",")), Format::Stix);
        assert_eq!(r.added, 1, "only y.example: {:?}", r.problems);
        let msgs: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        let says = |id: &str, what: &str| {
            assert!(
                msgs.iter()
                    .any(|m| m.starts_with(&format!("f.json: {id}: ")) && m.contains(what)),
                "{id}: {what}: {msgs:#?}"
            );
        };
        says("indicator--and", "joined by AND");
        says("indicator--seq", "FOLLOWEDBY");
        says("indicator--within", "WITHIN");
        says("indicator--url", "url:value: not an object");
        says("indicator--like", "only = and IN");
        says("indicator--part", "other values are loaded");
        says("indicator--broken", "not closed");
        says("indicator--yara", "pattern_type \"yara\"");
        assert_eq!(msgs.len(), 8);
    }

    #[test]
    fn truncated_json_and_other_documents_are_clear_errors() {
        let mut s = IntelSet::new();
        let text = bundle(&indicator("indicator--a", "[ipv4-addr:value = '1.2.3.4']"));
        let r = s.add("cut.json", &text[..text.len() - 20], Format::Stix);
        let m = r.problems[0].to_string();
        assert!(
            m.starts_with("cut.json:1:") && m.contains("not valid JSON"),
            "{m}"
        );
        let r = s.add("other.json", "{\"type\": \"bundle\"}", Format::Stix);
        assert_eq!(
            r.problems[0].to_string(),
            "other.json: not a STIX bundle: no \"objects\" list"
        );
        assert!(s.is_empty());
    }

    #[test]
    fn revoked_indicators_are_left_out_quietly() {
        let o = "{\"type\": \"indicator\", \"id\": \"indicator--r\", \"revoked\": true, \"pattern_type\": \"stix\", \"pattern\": \"[ipv4-addr:value = '1.2.3.4']\"}";
        let mut s = IntelSet::new();
        let r = s.add("r.json", &bundle(o), Format::Stix);
        assert_eq!((r.added, r.problems.len()), (0, 0));
    }
}
