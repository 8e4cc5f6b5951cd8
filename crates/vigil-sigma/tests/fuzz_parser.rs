//! Bounded random testing of the parser, compiler and matcher (runs on stable, in CI):
//! mutated rule texts and random conditions and modifier chains must load or fail with a
//! `RuleError`, never panic; whatever loads must match random events without panicking.
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

#[test]
fn random_rules_never_panic() {
    let iters: usize = std::env::var("VIGIL_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
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
