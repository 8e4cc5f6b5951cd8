//! Bounded random testing of the parser, compiler and matcher (runs on stable, in CI):
//! mutated rule texts and random conditions and modifier chains must load or fail with a
//! `RuleError`, never panic; whatever loads must match random events without panicking.
//! Random and mutated JSON texts must be accepted or refused by `JsonEvent` as by
//! `serde_json`, and read alike.
//!
//! `VIGIL_FUZZ_ITERS` sets the number of iterations (default 2000); `VIGIL_FUZZ_SEED` the
//! seed (default fixed, so failures reproduce).

use vigil_sigma::{Loader, LogSource, Source};

/// xorshift64*: small, deterministic, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
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

fn random_rule(rng: &mut Rng) -> String {
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

fn mutate(text: &str, rng: &mut Rng) -> String {
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

fn seeds() -> Vec<String> {
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
fn iterations() -> usize {
    std::env::var("VIGIL_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

#[test]
fn random_rules_never_panic() {
    let iters = iterations();
    let seed: u64 = std::env::var("VIGIL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_CAFE);
    let mut rng = Rng(seed | 1);
    let seeds = seeds();
    let events = [
        serde_json::json!({"Image": "C:\\x\\a*b.exe", "CommandLine": "-enc eA==", "EventID": 4688,
            "a": {"b": ["10.0.0.1", null, 3]}, "time": "2024-01-01T00:00:00Z"}),
        serde_json::json!({"Event": {"System": {"Channel": "Security", "EventID": {"#text": 1}},
            "EventData": {"Image": ""}}}),
        serde_json::json!([1, "x", {"y": "z"}]),
        serde_json::json!({"time": "2024-01-1\u{e9}T00:00", "Image": "\u{e9}\u{20ac}*?", "EventID": "0x10"}),
    ];
    let (mut loaded, mut failed) = (0usize, 0usize);
    for i in 0..iters {
        let text = if i % 2 == 0 {
            random_rule(&mut rng)
        } else {
            mutate(&seeds[rng.below(seeds.len())], &mut rng)
        };
        let mut loader = Loader::new();
        loader.add("fuzz.yml", &text);
        let built = loader.build();
        loaded += built.loaded;
        failed += built.errors.len();
        for e in &built.errors {
            assert!(e.line >= 1 || e.to_string().contains(":0:"), "{e}");
        }
        let engine = built.engine;
        let mut scratch = engine.scratch();
        let declared = engine.declare(&LogSource::new(Some("test"), None, None));
        let mut out = Vec::new();
        for ev in &events {
            engine.match_event(&mut scratch, ev, Source::Declared(&declared), &mut out);
            engine.match_event(&mut scratch, ev, Source::Windows, &mut out);
            engine.match_event(&mut scratch, ev, Source::Ocsf, &mut out);
        }
    }
    eprintln!("fuzz: {iters} iterations, {loaded} rules loaded, {failed} rejected");
    assert!(
        loaded > 0 && failed > 0,
        "the generator should produce both"
    );
}

/// A scratch from one engine given to another is rebuilt, not misread.
#[test]
fn scratch_from_another_engine_is_rebuilt() {
    let mut small = Loader::new();
    small.add(
        "a.yml",
        "title: A\nlogsource: {product: test}\ndetection:\n  s:\n    X: 1\n  condition: s\n",
    );
    let small = small.build().engine;
    let mut big = Loader::new();
    for i in 0..50 {
        big.add(
            &format!("r{i}.yml"),
            &format!(
                "title: R{i}\nlogsource: {{product: test}}\ndetection:\n  s:\n    F{i}|contains: 'v{i}'\n  condition: s\n"
            ),
        );
    }
    let big = big.build().engine;
    let mut scratch = small.scratch();
    let d = big.declare(&LogSource::new(Some("test"), None, None));
    let mut out = Vec::new();
    let ev = serde_json::json!({"F7": "xv7x"});
    big.match_event(&mut scratch, &ev, Source::Declared(&d), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rule.title, "R7");
}

/// A random JSON text (objects with distinct keys), with escapes, non-ASCII text,
/// whitespace and numbers both parsers read exactly.
fn random_json(rng: &mut Rng, depth: usize, out: &mut String) {
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
fn same(a: &vigil_event::Value<'_>, b: &vigil_event::Value<'_>) -> bool {
    use vigil_event::Value as V;
    match (a, b) {
        (V::Float(x), V::Float(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
        (V::List(x), V::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        _ => a == b,
    }
}

#[test]
fn random_json_reads_as_serde_json_does() {
    use vigil_event::{Event, FieldPath};
    let iters = iterations();
    let mut rng = Rng(0x15_0E_7E_57 | 1);
    let paths: Vec<FieldPath> = [
        "a",
        "b",
        "Image",
        "k",
        "a.b",
        "a.Image",
        "b.a.k",
        "Event.System",
        "Event.System.k",
        "x.y",
        "a.x.y",
        "Event",
        "a.b.k",
        "",
    ]
    .iter()
    .map(|p| FieldPath::new(p))
    .collect();
    let strs = |e: &dyn Event| {
        let mut v: Vec<String> = Vec::new();
        e.for_each_str(&mut |s| v.push(s.to_string()));
        v.sort();
        v
    };
    let mut parsed = 0;
    let mut buffers = vigil_sigma::JsonBuffers::default();
    for i in 0..iters {
        let mut text = String::new();
        random_json(&mut rng, 3, &mut text);
        let mutated = i % 2 == 1;
        if mutated {
            text = mutate(&text, &mut rng);
        }
        let theirs = serde_json::from_str::<serde_json::Value>(&text);
        let ours = vigil_sigma::JsonEvent::parse(&text);
        assert_eq!(
            theirs.is_ok(),
            ours.is_ok(),
            "{text:?}: serde_json {:?}, JsonEvent {:?}",
            theirs.as_ref().err(),
            ours.as_ref().err()
        );
        let (Ok(theirs), Ok(ours)) = (theirs, ours) else {
            continue;
        };
        parsed += 1;
        // The strings joined while parsing are those visited, in order; also with buffers
        // holding the bytes of earlier texts.
        let mut joined = Vec::new();
        ours.for_each_str(&mut |s| {
            joined.extend_from_slice(s.as_bytes());
            joined.push(0);
        });
        assert_eq!(ours.joined_strs(), Some(&joined[..]), "{text:?}");
        let again = vigil_sigma::JsonEvent::parse_with(&text, &mut buffers).expect("reparse");
        assert_eq!(again.joined_strs(), Some(&joined[..]), "{text:?}");
        again.recycle(&mut buffers);
        for p in &paths {
            let (a, b) = (ours.field(p), theirs.field(p));
            let ok = match (&a, &b) {
                (Some(x), Some(y)) => same(x, y),
                (None, None) => true,
                _ => false,
            };
            assert!(ok, "{text:?} at {p:?}: JsonEvent {a:?}, serde_json {b:?}");
        }
        // Mutation may repeat a key, whose overwritten value serde_json drops.
        if !mutated {
            assert_eq!(strs(&ours), strs(&theirs), "{text:?}");
        }
    }
    assert!(parsed > iters / 2, "only {parsed} of {iters} texts parsed");
}
