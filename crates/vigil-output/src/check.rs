//! The check of the outputs' settings at start: URLs and addresses parsed, tokens and
//! ranges checked, TLS files read, each problem named as `output.KIND[N].KEY`.

use crate::config::{Common, Invalid, OutputsConfig};

impl OutputsConfig {
    /// Checks every setting (URLs, tokens, ranges) and reads the TLS files, so that a
    /// bad output is refused when the agent starts, not when it first sends.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut names: Vec<String> = Vec::new();
        for (kind, index, c) in self.each() {
            let bad = |key: &'static str, message: String| Invalid {
                kind,
                index,
                key,
                message,
            };
            check_common(&c).map_err(|(k, m)| bad(k, m))?;
            let name = c.name.clone().unwrap_or_else(|| kind.to_string());
            if names.contains(&name) {
                return Err(bad(
                    "name",
                    format!("`{name}` is taken by another output; give each output its own name"),
                ));
            }
            names.push(name);
        }
        for (i, s) in self.syslog.iter().enumerate() {
            let bad = |key, message| Invalid {
                kind: "syslog",
                index: i + 1,
                key,
                message,
            };
            let addr = crate::syslog::Address::parse(&s.address).map_err(|m| bad("address", m))?;
            let tls = matches!(addr, crate::syslog::Address::Tls { .. });
            if !tls {
                for (key, set) in [
                    ("ca_file", s.ca_file.is_some()),
                    ("client_cert", s.client_cert.is_some()),
                    ("server_name", s.server_name.is_some()),
                ] {
                    if set {
                        return Err(bad(key, "is used with a tls:// address only".into()));
                    }
                }
            }
            if let Some(h) = &s.hostname {
                if h.is_empty() || h.len() > 255 || !h.bytes().all(|b| (33..=126).contains(&b)) {
                    return Err(bad(
                        "hostname",
                        format!("`{h}` is not 1 to 255 printable ASCII characters"),
                    ));
                }
            }
            if tls {
                crate::tls::client_config(&s.common()).map_err(|(k, m)| bad(k, m))?;
            }
        }
        for (i, s) in self.splunk.iter().enumerate() {
            let bad = |key, message| Invalid {
                kind: "splunk",
                index: i + 1,
                key,
                message,
            };
            let url = crate::http::Url::parse(&s.url).map_err(|m| bad("url", m))?;
            if s.token.trim().is_empty() {
                return Err(bad("token", "is empty".into()));
            }
            if !s.token.bytes().all(|b| (33..=126).contains(&b)) {
                return Err(bad(
                    "token",
                    "holds spaces or characters a header cannot carry".into(),
                ));
            }
            if url.tls {
                crate::tls::client_config(&s.common()).map_err(|(k, m)| bad(k, m))?;
            }
        }
        for (i, s) in self.elasticsearch.iter().enumerate() {
            let bad = |key, message| Invalid {
                kind: "elasticsearch",
                index: i + 1,
                key,
                message,
            };
            let url = crate::http::Url::parse(&s.url).map_err(|m| bad("url", m))?;
            if s.index.is_empty()
                || s.index.starts_with(['-', '_', '+'])
                || s.index
                    .chars()
                    .any(|c| c.is_ascii_uppercase() || r#"\/*?"<>| ,#:"#.contains(c))
            {
                return Err(bad(
                    "index",
                    format!("`{}` is not a valid index or data stream name", s.index),
                ));
            }
            match (&s.username, &s.password, &s.api_key) {
                (Some(_), None, _) => {
                    return Err(bad("password", "is missing for username".into()))
                }
                (None, Some(_), _) => {
                    return Err(bad("username", "is missing for password".into()))
                }
                (Some(_), Some(_), Some(_)) => {
                    return Err(bad(
                        "api_key",
                        "and username are both given; give one".into(),
                    ))
                }
                _ => {}
            }
            if s.api_key
                .as_deref()
                .is_some_and(|k| k.is_empty() || !k.bytes().all(|b| (33..=126).contains(&b)))
            {
                return Err(bad(
                    "api_key",
                    "is empty or holds characters a header cannot carry".into(),
                ));
            }
            if url.tls {
                crate::tls::client_config(&s.common()).map_err(|(k, m)| bad(k, m))?;
            }
        }
        Ok(())
    }
}

fn check_common(c: &Common) -> Result<(), (&'static str, String)> {
    let positive = [
        ("buffer_bytes", c.buffer_bytes),
        ("buffer_events", c.buffer_events),
        ("batch_events", c.batch_events),
        ("batch_bytes", c.batch_bytes),
        ("timeout_ms", c.timeout_ms),
        ("retry_initial_ms", c.retry_initial_ms),
        ("retry_max_ms", c.retry_max_ms),
    ];
    for (k, v) in positive {
        if v == 0 {
            return Err((k, "must be at least 1".into()));
        }
    }
    if c.batch_events > c.buffer_events {
        return Err((
            "batch_events",
            format!(
                "{} is more than buffer_events ({})",
                c.batch_events, c.buffer_events
            ),
        ));
    }
    if c.batch_bytes > c.buffer_bytes {
        return Err((
            "batch_bytes",
            format!(
                "{} is more than buffer_bytes ({})",
                c.batch_bytes, c.buffer_bytes
            ),
        ));
    }
    if c.retry_initial_ms > c.retry_max_ms {
        return Err((
            "retry_initial_ms",
            format!(
                "{} is more than retry_max_ms ({})",
                c.retry_initial_ms, c.retry_max_ms
            ),
        ));
    }
    if let Some(n) = &c.name {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(("name", format!("`{n}` is not letters, digits and _")));
        }
    }
    if c.client_cert.is_some() != c.client_key.is_some() {
        let key = if c.client_cert.is_some() {
            "client_key"
        } else {
            "client_cert"
        };
        return Err((
            key,
            "is missing: client_cert and client_key go together".into(),
        ));
    }
    Ok(())
}
