//! Random rules, events and JSON texts for the randomized tests (deterministic: a seeded
//! generator, so a failure reproduces).

#![allow(dead_code)]

/// xorshift64*: small, deterministic, good enough to drive mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const MODIFIERS: &[&str] = &[
    "contains",
    "startswith",
    "endswith",
    "all",
    "exists",
    "cased",
    "neq",
    "windash",
    "re",
    "i",
    "m",
    "s",
    "base64",
    "base64offset",
    "utf16le",
    "utf16be",
    "utf16",
    "wide",
    "lt",
    "lte",
    "gt",
    "gte",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "year",
    "cidr",
    "expand",
    "fieldref",
    "bogus",
    "",
];
const VALUES: &[&str] = &[
    "'x'",
    "'*'",
    "'?'",
    "'\\\\*'",
    "'a*b?c'",
    "''",
    "null",
    "true",
    "4688",
    "-1",
    "1.5",
    "'10.0.0.0/8'",
    "'::1/128'",
    "'(unclosed'",
    "'^a.*$'",
    "'%ph%'",
    "'Image'",
    "[]",
    "['a', 'b']",
    "{a: 1}",
    "'é\u{2013}x'",
    "'-enc'",
];
const CONDITIONS: &[&str] = &[
    "sel",
    "sel and not f",
    "1 of sel*",
    "all of them",
    "2 of them",
    "(sel or f",
    "sel |",
    "not not sel",
    "1 of nothing*",
    "sel and (f or (sel and f))",
    "",
    "of",
    "all of _*",
    "sel or",
    "x of them",
    "0 of them",
];

pub fn random_rule(rng: &mut Rng) -> String {
    let mut r = String::from("title: Fuzz\nlogsource: {product: test}\ndetection:\n");
    let n = 1 + rng.below(3);
    for i in 0..n {
        let name = if i == 0 {
            "sel".to_string()
        } else {
            format!("f{i}")
        };
        r.push_str(&format!("    {name}:\n"));
        if rng.below(5) == 0 {
            r.push_str(&format!("        - {}\n", rng.pick(VALUES)));
            continue;
        }
        for _ in 0..1 + rng.below(3) {
            let mut key = rng
                .pick(&["Image", "CommandLine", "EventID", "a.b", ""])
                .to_string();
            for _ in 0..rng.below(4) {
                key.push('|');
                key.push_str(rng.pick(MODIFIERS));
            }
            r.push_str(&format!("        '{key}': {}\n", rng.pick(VALUES)));
        }
    }
    r.push_str(&format!("    condition: '{}'\n", rng.pick(CONDITIONS)));
    r
}

pub fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut b: Vec<u8> = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(8) {
        if b.is_empty() {
            break;
        }
        let i = rng.below(b.len());
        match rng.below(4) {
            0 => {
                b.remove(i);
            }
            1 => {
                let chars = b" :-|*?'\"[]{}\n\t\\%&!#";
                b.insert(i, chars[rng.below(chars.len())])
            }
            2 => b[i] = (rng.next() & 0x7f) as u8,
            _ => {
                let j = rng.below(b.len());
                let (lo, hi) = (i.min(j), i.max(j));
                let chunk: Vec<u8> = b[lo..hi].to_vec();
                b.splice(i..i, chunk);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

pub fn seeds() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = std::fs::read_to_string(&p) {
                // The rules part of a case.
                let rules = t.rsplit_once("\n---\n").map_or(t.as_str(), |(r, _)| r);
                out.push(rules.to_string());
            }
        }
    }
    out.sort();
    out
}

/// `VIGIL_FUZZ_ITERS`, default 2000.
pub fn iterations() -> usize {
    std::env::var("VIGIL_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// A random JSON text (objects with distinct keys), with escapes, non-ASCII text,
/// whitespace and numbers both parsers read exactly.
pub fn random_json(rng: &mut Rng, depth: usize, out: &mut String) {
    const KEYS: &[&str] = &[
        "a",
        "b",
        "Image",
        "Event",
        "System",
        "Event.System",
        "x.y",
        "k",
    ];
    const STRS: &[&str] = &[
        "",
        "plain",
        "C:\\\\Windows\\\\cmd.exe",
        "quote \\\" inside",
        "\\u00e9t\\u00E9",
        "\\ud83d\\ude00 emoji",
        "tab\\tnew\\nline\\/slash\\b\\f\\r",
        "Ünïcödé Σ",
        "0x10",
        "4688",
    ];
    let ws = |rng: &mut Rng, out: &mut String| {
        if rng.below(4) == 0 {
            out.push_str(rng.pick(&[" ", "\n", "\t", "\r\n  "]));
        }
    };
    ws(rng, out);
    match if depth == 0 {
        rng.below(5)
    } else {
        rng.below(7)
    } {
        0 => out.push_str(rng.pick(&["null", "true", "false"])),
        1 => {
            let n = rng.next() as i64 >> rng.below(64);
            out.push_str(&n.to_string());
        }
        2 => {
            // Quarters and powers of ten: exact in binary or read alike by both parsers.
            let q = (rng.next() % 4000) as f64 / 4.0 - 500.0;
            out.push_str(rng.pick(&["", "-"]));
            out.push_str(&format!("{}", q.abs()));
            if q.fract() == 0.0 && rng.below(2) == 0 {
                out.push_str(rng.pick(&[".0", "e2", "E-1", "e+0"]));
            }
        }
        3 | 4 => {
            out.push('"');
            out.push_str(rng.pick(STRS));
            out.push('"');
        }
        5 => {
            out.push('[');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                random_json(rng, depth - 1, out);
            }
            ws(rng, out);
            out.push(']');
        }
        _ => {
            out.push('{');
            let mut used = Vec::new();
            for _ in 0..rng.below(5) {
                let k = rng.pick(KEYS);
                if used.contains(&k) {
                    continue;
                }
                if !used.is_empty() {
                    out.push(',');
                }
                used.push(k);
                ws(rng, out);
                out.push_str(&format!("\"{k}\":"));
                random_json(rng, depth - 1, out);
            }
            ws(rng, out);
            out.push('}');
        }
    }
    ws(rng, out);
}

/// Equal values, floats within a relative 1e-12 (the parsers may round the last bit of
/// long numbers differently).
pub fn same(a: &vigil_event::Value<'_>, b: &vigil_event::Value<'_>) -> bool {
    use vigil_event::Value as V;
    match (a, b) {
        (V::Float(x), V::Float(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
        (V::List(x), V::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        _ => a == b,
    }
}

/// Logsources of the differential test's rules: each kind of routing (declared, default,
/// Windows by product, service, category and both, Linux by product and category, and
/// ones no mapping knows).
pub const LOGSOURCES: &[&str] = &[
    "{product: test}",
    "{product: test}",
    "{}",
    "{product: windows}",
    "{product: windows, service: security}",
    "{product: windows, service: application}",
    "{product: windows, service: sysmon}",
    "{product: windows, category: process_creation}",
    "{product: windows, category: process_creation}",
    "{product: windows, service: sysmon, category: process_creation}",
    "{product: windows, category: ps_classic_start}",
    "{product: windows, category: routed_by_provider}",
    "{product: windows, service: custom}",
    "{category: process_creation}",
    "{product: linux}",
    "{product: linux, category: process_creation}",
    "{product: linux, category: network_connection}",
    "{product: windows, category: nonexistent}",
    "{product: test, service: other}",
];

/// Field names of the differential test's rules and events (Windows, OCSF-mapped, and
/// dotted ones).
pub const FIELDS: &[&str] = &[
    "Image",
    "CommandLine",
    "ParentImage",
    "User",
    "EventID",
    "Data",
    "a.b",
    "DestinationIp",
    "Count",
    "UtcTime",
    "Channel",
];

/// Words the rules' values and the events' strings are made of, so that they meet.
pub const WORDS: &[&str] = &[
    "cmd.exe",
    "C:\\Windows\\System32\\cmd.exe",
    "powershell",
    "-enc",
    "/c",
    "Whoami",
    "10.0.0.1",
    "ADMIN",
    "\u{e9}t\u{e9}",
    "\u{130}stanbul",
    "x",
    "4688",
    "1",
    "CLIENT: 10.",
    "HostName=ConsoleHost",
    "AAAA",
    "\u{2013}flag",
    "root",
    "a b",
    "2024-02-29T12:34:56Z",
];

/// A rule's string value: words, maybe with wildcards, escapes or an expanded
/// placeholder.
fn rule_string(rng: &mut Rng) -> String {
    let mut s = String::new();
    for i in 0..1 + rng.below(2) {
        if i > 0 {
            s.push_str(rng.pick(&["", " ", "*", "?", "\\"]));
        }
        s.push_str(rng.pick(WORDS));
    }
    match rng.below(10) {
        0 => s.insert(0, '*'),
        1 => s.push('*'),
        2 => s = format!("*{s}*"),
        3 => s = s.replace('o', "?"),
        4 => s.push_str("\\*"),
        5 => s = String::new(),
        6 => s = format!("%ph%{s}"),
        _ => {}
    }
    s
}

/// A single-quoted YAML scalar.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One `field|modifiers: values` entry of a search (or a keyword entry when `field` is
/// empty), valid by construction (mostly: a few combinations the loader refuses are fine).
fn random_test(rng: &mut Rng, field: &str) -> String {
    let list = |rng: &mut Rng, f: &dyn Fn(&mut Rng) -> String| -> String {
        let n = 1 + rng.below(3);
        if n == 1 {
            f(rng)
        } else {
            let items: Vec<String> = (0..n).map(|_| f(rng)).collect();
            format!("[{}]", items.join(", "))
        }
    };
    let strs = |rng: &mut Rng| quoted(&rule_string(rng));
    let nums = |rng: &mut Rng| {
        rng.pick(&["1", "4688", "3.5", "-2", "0", "'12'"])
            .to_string()
    };
    let (mods, value): (&str, String) = match rng.below(24) {
        0..=2 => ("", list(rng, &strs)),
        3..=5 => ("|contains", list(rng, &strs)),
        6 => ("|startswith", list(rng, &strs)),
        7 => ("|endswith", list(rng, &strs)),
        8 => ("|contains|all", list(rng, &strs)),
        9 => (
            rng.pick(&["|contains|cased", "|cased", "|endswith|cased"]),
            list(rng, &strs),
        ),
        10 => (
            rng.pick(&[
                "|windash|contains",
                "|base64offset|contains",
                "|base64",
                "|wide|base64offset|contains",
            ]),
            list(rng, &strs),
        ),
        11 => (
            rng.pick(&["|re", "|re|i", "|re|s"]),
            list(rng, &|rng: &mut Rng| {
                quoted(rng.pick(&[
                    "^C:\\\\Win",
                    "cmd\\.exe$",
                    "power.hell",
                    ".{5,}",
                    "a|b",
                    "\\d+",
                    "^$",
                    "(?i)WHO",
                    "é",
                ]))
            }),
        ),
        12 => ("|exists", rng.pick(&["true", "false"]).to_string()),
        13 => (
            rng.pick(&["|neq", "|contains|neq", "|startswith|neq"]),
            list(rng, &strs),
        ),
        14 => (rng.pick(&["|lt", "|lte", "|gt", "|gte"]), list(rng, &nums)),
        15 => (
            "|cidr",
            list(rng, &|rng: &mut Rng| {
                quoted(rng.pick(&[
                    "10.0.0.0/8",
                    "::1/128",
                    "192.168.1.0/24",
                    "0.0.0.0/0",
                    "10.0.0.1",
                ]))
            }),
        ),
        16 => (
            rng.pick(&[
                "|fieldref",
                "|fieldref|contains",
                "|fieldref|endswith|cased",
                "|fieldref|neq",
            ]),
            rng.pick(FIELDS).to_string(),
        ),
        17 => (
            rng.pick(&["|hour", "|day|gte", "|minute|lt", "|year"]),
            list(rng, &|rng: &mut Rng| {
                rng.pick(&["12", "29", "30", "2024", "0"]).to_string()
            }),
        ),
        18 => (
            "|expand",
            list(rng, &|rng: &mut Rng| {
                quoted(&format!("%ph%{}", rng.pick(WORDS)))
            }),
        ),
        19 => ("", rng.pick(&["null", "''", "true", "false"]).to_string()),
        20 => ("", list(rng, &nums)),
        21 => ("|all", list(rng, &strs)),
        _ => ("|contains", "''".to_string()),
    };
    format!("'{field}{mods}': {value}")
}

/// A search: a map of tests, a list of maps, or a keyword list.
fn random_search(rng: &mut Rng, out: &mut String) {
    match rng.below(8) {
        0 => {
            let items: Vec<String> = (0..1 + rng.below(3))
                .map(|_| quoted(&rule_string(rng)))
                .collect();
            out.push_str(&format!("    - {}\n", items.join("\n    - ")));
        }
        1 => out.push_str(&format!("    {}\n", random_test(rng, ""))),
        2 => {
            for _ in 0..2 {
                let f = rng.pick(FIELDS);
                out.push_str(&format!("    - {}\n", random_test(rng, f)));
            }
        }
        _ => {
            let mut used = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let f = rng.pick(FIELDS);
                if !used.contains(&f) {
                    used.push(f);
                    out.push_str(&format!("    {}\n", random_test(rng, f)));
                }
            }
        }
    }
}

/// A condition over search names `names`.
fn random_condition(rng: &mut Rng, names: &[String], depth: usize) -> String {
    let leaf = |rng: &mut Rng| match rng.below(10) {
        0 => "1 of sel*".to_string(),
        1 => "all of them".to_string(),
        2 => "2 of them".to_string(),
        3 => "all of sel*".to_string(),
        _ => names[rng.below(names.len())].clone(),
    };
    if depth == 0 {
        return leaf(rng);
    }
    match rng.below(6) {
        0 => format!("not {}", random_condition(rng, names, depth - 1)),
        1 => format!(
            "({} or {})",
            random_condition(rng, names, depth - 1),
            random_condition(rng, names, depth - 1)
        ),
        2 => format!(
            "{} and not {}",
            random_condition(rng, names, depth - 1),
            random_condition(rng, names, depth - 1)
        ),
        3 => format!(
            "{} and {}",
            random_condition(rng, names, depth - 1),
            random_condition(rng, names, depth - 1)
        ),
        _ => leaf(rng),
    }
}

/// A random detection rule (or, now and then, a filter) numbered `i`, with id `id-{i}`.
pub fn random_valid_rule(rng: &mut Rng, i: usize) -> String {
    let ls = rng.pick(LOGSOURCES);
    let n = 1 + rng.below(3);
    let names: Vec<String> = (0..n)
        .map(|k| {
            if k == 0 {
                "sel".into()
            } else {
                format!("{}{k}", rng.pick(&["sel", "filter_"]))
            }
        })
        .collect();
    let mut body = String::new();
    for name in &names {
        body.push_str(&format!("  {name}:\n"));
        random_search(rng, &mut body);
    }
    let depth = rng.below(3);
    let condition = random_condition(rng, &names, depth);
    if rng.below(12) == 0 {
        let target = match rng.below(3) {
            0 => String::new(),
            _ => format!("  rules: [id-{}]\n", rng.below(i + 1)),
        };
        return format!(
            "title: F{i}\nid: id-{i}\nlogsource: {ls}\nfilter:\n{target}{body}  condition: 'not ({condition})'\n"
        );
    }
    format!(
        "title: R{i}\nid: id-{i}\nlogsource: {ls}\ndetection:\n{body}  condition: '{condition}'\n"
    )
}

/// A random event value: words (changed in case, joined, cut), numbers, booleans, null,
/// times, addresses, lists, and `evtx` element objects.
pub fn random_value(rng: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::json;
    let word = |rng: &mut Rng| -> String {
        let mut s = String::new();
        for _ in 0..1 + rng.below(3) {
            s.push_str(rng.pick(&["", " ", "\\", "-", "/", "ADMIN", "%ph%"]));
            s.push_str(rng.pick(WORDS));
        }
        match rng.below(4) {
            0 => s.to_uppercase(),
            1 => s.to_lowercase(),
            _ => s,
        }
    };
    match rng.below(if depth == 0 { 9 } else { 11 }) {
        0..=3 => json!(word(rng)),
        4 => json!(rng.pick(&[
            "",
            "adm",
            "root",
            "admroot",
            "10.1.2.3",
            "[::1]",
            "2024-02-29 14:34:56+02:00",
            "12"
        ])),
        5 => json!([1, 4688, -2, 0, 12, 1_700_000_000_000_i64][rng.below(6)]),
        6 => json!([3.5, 1.0, -0.5][rng.below(3)]),
        7 => json!(rng.below(2) == 0),
        8 => serde_json::Value::Null,
        9 => serde_json::Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => json!({"#text": random_value(rng, depth - 1)}),
    }
}

/// Random fields of an event, under their Sigma names or under Windows' renamed ones.
fn random_fields(rng: &mut Rng, into: &mut serde_json::Map<String, serde_json::Value>) {
    for _ in 0..rng.below(6) {
        let name = match rng.below(FIELDS.len() + 2) {
            i if i < FIELDS.len() => FIELDS[i],
            i => ["NewProcessName", "SubjectUserName"][i - FIELDS.len()],
        };
        match name.split_once('.') {
            Some((outer, inner)) => {
                let v = serde_json::json!({ inner: random_value(rng, 1) });
                into.insert(outer.to_string(), v)
            }
            None => into.insert(name.to_string(), random_value(rng, 1)),
        };
    }
}

/// The kind of a random event, and the event.
pub enum RandomEvent {
    /// Matched under the logsource `{product: test}` (or another declared one).
    Declared(&'static str, serde_json::Value),
    /// A Windows record, nested or flat.
    Windows(serde_json::Value),
    /// One of Vigil's OCSF events as JSON.
    Ocsf(serde_json::Value),
}

/// A random event of any kind.
pub fn random_event(rng: &mut Rng) -> RandomEvent {
    use serde_json::{json, Map, Value};
    let mut fields = Map::new();
    random_fields(rng, &mut fields);
    match rng.below(5) {
        0 => RandomEvent::Declared(
            rng.pick(&["test", "test/other", "windows/security", "-"]),
            Value::Object(fields),
        ),
        1 | 2 => {
            let channel = rng.pick(&[
                "Security",
                "security",
                "Microsoft-Windows-Sysmon/Operational",
                "Application",
                "Windows PowerShell",
                "Custom",
                "Other",
            ]);
            let eid: Value = match rng.below(4) {
                0 => json!([1, 4688, 400, 18456, 3, 11, 7][rng.below(7)]),
                1 => {
                    let text = [1, 4688, 400][rng.below(3)];
                    json!({"#text": text, "#attributes": {"Qualifiers": 0}})
                }
                2 => json!(["1", "4688"][rng.below(2)]),
                _ => json!(4688),
            };
            let provider = rng.pick(&["Prov-A", "prov-a", "Other"]);
            if rng.below(2) == 0 {
                let mut system = json!({"Channel": channel, "EventID": eid,
                    "Provider": {"#attributes": {"Name": provider}},
                    "TimeCreated": {"#attributes": {"SystemTime": "2024-02-29T12:34:56.000Z"}}});
                if rng.below(6) == 0 {
                    system.as_object_mut().map(|s| s.remove("Channel"));
                }
                let data = if rng.below(5) == 0 {
                    json!({"UserData": {"Wrapper": Value::Object(fields)}})
                } else {
                    json!({"EventData": Value::Object(fields)})
                };
                let mut event = json!({"System": system});
                if let (Some(e), Value::Object(d)) = (event.as_object_mut(), data) {
                    e.extend(d);
                }
                RandomEvent::Windows(json!({ "Event": event }))
            } else {
                fields.insert("Channel".into(), json!(channel));
                fields.insert("EventID".into(), eid);
                fields.insert("Provider_Name".into(), json!(provider));
                RandomEvent::Windows(Value::Object(fields))
            }
        }
        _ => {
            let (class, activity, launch) = (
                [1007, 4001, 1001][rng.below(3)],
                [1, 2, 3][rng.below(3)],
                [2, 3][rng.below(2)],
            );
            let mut e = json!({
                "class_uid": class,
                "activity_id": activity,
                "launch_type_id": launch,
                "time": 1_709_210_096_000_i64,
                "process": {"file": {"path": random_value(rng, 0)}, "cmd_line": random_value(rng, 0),
                    "user": {"name": random_value(rng, 0)},
                    "parent_process": {"file": {"path": random_value(rng, 0)}}},
                "dst_endpoint": {"ip": random_value(rng, 0)},
            });
            if let Some(o) = e.as_object_mut() {
                o.extend(fields);
            }
            RandomEvent::Ocsf(e)
        }
    }
}
