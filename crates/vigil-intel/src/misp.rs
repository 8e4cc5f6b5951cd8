//! MISP events (JSON export): `{"Event": {...}}`, a list of them, or a `{"response":
//! [...]}` of them. Each attribute marked for detection (`to_ids`) of a type Vigil
//! matches is loaded: `md5`, `sha1`, `sha256` (and `filename|` of each), `ip-src`,
//! `ip-dst` (and `|port`), `domain`, `hostname` (and `|port`), `domain|ip`. Attributes
//! of objects count as the event's. Deleted attributes and ones not for detection are
//! left out quietly; marked ones of other types (URLs, e-mail addresses) are counted in
//! one note per event.

use crate::error::IntelError;
use crate::value::{parse_domain, parse_hash, parse_ip, parse_json, Collect, Meta, Value};
use serde_json::Value as Json;
use std::collections::BTreeMap;

pub(crate) fn load(into: &mut dyn Collect, source: &str, text: &str) {
    let Some(doc) = parse_json(into, source, text) else {
        return;
    };
    let list = match &doc {
        Json::Array(a) => a.iter().collect::<Vec<_>>(),
        Json::Object(o) => match o.get("response") {
            Some(Json::Array(a)) => a.iter().collect(),
            _ => vec![&doc],
        },
        _ => Vec::new(),
    };
    let events: Vec<&Json> = list.into_iter().filter_map(|e| e.get("Event")).collect();
    if events.is_empty() {
        into.problem(IntelError::Format {
            source_name: source.to_string(),
            message: "not a MISP event: no \"Event\" object".into(),
        });
        return;
    }
    for (n, event) in events.into_iter().enumerate() {
        let name = event.get("info").and_then(Json::as_str).map(str::to_string);
        let event_uid = event.get("uuid").and_then(Json::as_str).unwrap_or_default();
        let mut attributes: Vec<(String, &Json)> = Vec::new();
        if let Some(a) = event.get("Attribute").and_then(Json::as_array) {
            attributes.extend(
                a.iter()
                    .enumerate()
                    .map(|(i, a)| (format!("Event[{n}].Attribute[{i}]"), a)),
            );
        }
        if let Some(objects) = event.get("Object").and_then(Json::as_array) {
            for (j, o) in objects.iter().enumerate() {
                if let Some(a) = o.get("Attribute").and_then(Json::as_array) {
                    attributes.extend(
                        a.iter()
                            .enumerate()
                            .map(|(i, a)| (format!("Event[{n}].Object[{j}].Attribute[{i}]"), a)),
                    );
                }
            }
        }
        let mut other_types: BTreeMap<String, usize> = BTreeMap::new();
        for (place, a) in attributes {
            if truthy(a.get("deleted")) || !truthy(a.get("to_ids")) {
                continue;
            }
            let kind = a.get("type").and_then(Json::as_str).unwrap_or_default();
            let Some(value) = a.get("value").and_then(Json::as_str) else {
                into.problem(IntelError::Object {
                    source_name: source.to_string(),
                    object: place,
                    message: format!("a {kind} attribute without a value"),
                });
                continue;
            };
            let values = match values_of(kind, value) {
                Some(Ok(v)) => v,
                Some(Err(why)) => {
                    into.problem(IntelError::Object {
                        source_name: source.to_string(),
                        object: place,
                        message: why,
                    });
                    continue;
                }
                None => {
                    *other_types.entry(kind.to_string()).or_default() += 1;
                    continue;
                }
            };
            let uid = a.get("uuid").and_then(Json::as_str).unwrap_or(event_uid);
            let meta = into.meta(Meta {
                source: source.to_string(),
                uid: (!uid.is_empty()).then(|| uid.to_string()),
                name: name.clone(),
                pattern: None,
            });
            for v in values {
                into.value(v, meta);
            }
        }
        if !other_types.is_empty() {
            let list: Vec<String> = other_types
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            into.problem(IntelError::Object {
                source_name: source.to_string(),
                object: format!("Event[{n}]"),
                message: format!(
                    "attributes marked for detection of types Vigil does not match are left out ({})",
                    list.join(", ")
                ),
            });
        }
    }
}

/// MISP writes flags as booleans, or as `"1"`/`"0"` in older exports.
fn truthy(v: Option<&Json>) -> bool {
    match v {
        Some(Json::Bool(b)) => *b,
        Some(Json::String(s)) => s == "1" || s.eq_ignore_ascii_case("true"),
        Some(Json::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

/// The values of an attribute of a type Vigil matches (`None` for other types).
fn values_of(kind: &str, value: &str) -> Option<Result<Vec<Value>, String>> {
    let hash = |want: &str, v: &str| {
        parse_hash(&v.trim().to_ascii_lowercase())
            .filter(|h| {
                matches!(
                    (want, h),
                    ("sha256", Value::Sha256(_))
                        | ("sha1", Value::Sha1(_))
                        | ("md5", Value::Md5(_))
                )
            })
            .map(|h| vec![h])
            .ok_or_else(|| format!("{v:?} is not a {want} hash"))
    };
    let ip = |v: &str| match parse_ip(v.trim()) {
        Ok(Some(x)) => Ok(vec![x]),
        Ok(None) => Err(format!("{v:?} is not an address or a network")),
        Err(e) => Err(e),
    };
    let second = |v: &str| v.split_once('|').map_or("", |(_, b)| b).to_string();
    let first = |v: &str| v.split_once('|').map_or(v, |(a, _)| a).to_string();
    Some(match kind {
        "md5" | "sha1" | "sha256" => hash(kind, value),
        "filename|md5" | "filename|sha1" | "filename|sha256" => hash(&kind[9..], &second(value)),
        "ip-src" | "ip-dst" => ip(value),
        "ip-src|port" | "ip-dst|port" => ip(&first(value)),
        "domain" | "hostname" => parse_domain(value).map(|d| vec![d]),
        "hostname|port" => parse_domain(&first(value)).map(|d| vec![d]),
        "domain|ip" => {
            let d = parse_domain(&first(value));
            let a = ip(&second(value));
            match (d, a) {
                (Ok(d), Ok(mut a)) => {
                    a.push(d);
                    Ok(a)
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use crate::{Format, IntelSet};

    fn event(attrs: &str) -> String {
        format!(
            "{{\"Event\": {{\"info\": \"Campaign X\", \"uuid\": \"ev-1\", \"Attribute\": [{attrs}], \
             \"Object\": [{{\"name\": \"file\", \"Attribute\": [{{\"type\": \"sha1\", \"value\": \"{}\", \"to_ids\": \"1\", \"uuid\": \"at-9\"}}]}}]}}}}",
            "9".repeat(40)
        )
    }

    #[test]
    fn attributes_for_detection_load_with_the_event_and_attribute() {
        let attrs = [
            format!(
                "{{\"type\": \"sha256\", \"value\": \"{}\", \"to_ids\": true, \"uuid\": \"at-1\"}}",
                "f".repeat(64)
            ),
            format!(
                "{{\"type\": \"filename|md5\", \"value\": \"x.exe|{}\", \"to_ids\": true}}",
                "1".repeat(32)
            ),
            "{\"type\": \"ip-dst|port\", \"value\": \"203.0.113.5|443\", \"to_ids\": true}".into(),
            "{\"type\": \"domain|ip\", \"value\": \"c2.example|198.51.100.2\", \"to_ids\": true}"
                .into(),
            "{\"type\": \"hostname\", \"value\": \"quiet.example\", \"to_ids\": false}".into(),
            "{\"type\": \"ip-src\", \"value\": \"192.0.2.1\", \"to_ids\": true, \"deleted\": true}"
                .into(),
            "{\"type\": \"url\", \"value\": \"http://c2.example/x\", \"to_ids\": true}".into(),
            "{\"type\": \"comment\", \"value\": \"hello\", \"to_ids\": false}".into(),
        ];
        let mut s = IntelSet::new();
        let r = s.add(
            "misp.json",
            &format!("{{\"response\": [{}]}}", event(&attrs.join(","))),
            Format::Auto,
        );
        assert_eq!(r.added, 6, "{:?}", r.problems);
        let msgs: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            ["misp.json: Event[0]: attributes marked for detection of types Vigil does not match are left out (url: 1)"]
        );
        let h = s.match_hash(&"f".repeat(64)).expect("sha256");
        assert_eq!(
            (h.meta.uid.as_deref(), h.meta.name.as_deref()),
            (Some("at-1"), Some("Campaign X"))
        );
        assert_eq!(
            s.match_hash(&"1".repeat(32))
                .and_then(|h| h.meta.uid.clone())
                .as_deref(),
            Some("ev-1")
        );
        assert_eq!(
            s.match_hash(&"9".repeat(40))
                .and_then(|h| h.meta.uid.clone())
                .as_deref(),
            Some("at-9")
        );
        assert!(s.match_ip("203.0.113.5".parse().expect("ip")).is_some());
        assert!(s.match_ip("198.51.100.2".parse().expect("ip")).is_some());
        assert!(s.match_domain("www.c2.example").is_some());
        assert!(
            s.match_domain("quiet.example").is_none(),
            "not for detection"
        );
        assert!(
            s.match_ip("192.0.2.1".parse().expect("ip")).is_none(),
            "deleted"
        );
    }

    #[test]
    fn bad_values_and_documents_are_reported_where_they_are() {
        let attrs = "{\"type\": \"sha256\", \"value\": \"abc\", \"to_ids\": true}, {\"type\": \"ip-dst\", \"to_ids\": true}";
        let mut s = IntelSet::new();
        let r = s.add("m.json", &format!("[{}]", event(attrs)), Format::Misp);
        let msgs: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs[0],
            "m.json: Event[0].Attribute[0]: \"abc\" is not a sha256 hash"
        );
        assert_eq!(
            msgs[1],
            "m.json: Event[0].Attribute[1]: a ip-dst attribute without a value"
        );
        let r = s.add("x.json", "{\"Events\": []}", Format::Misp);
        assert_eq!(
            r.problems[0].to_string(),
            "x.json: not a MISP event: no \"Event\" object"
        );
        let r = s.add("t.json", "{\"Event\": {\"Attribute\": [", Format::Misp);
        assert!(
            r.problems[0].to_string().starts_with("t.json:1:"),
            "{:?}",
            r.problems
        );
    }
}
