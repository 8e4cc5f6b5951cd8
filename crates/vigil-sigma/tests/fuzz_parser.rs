//! Bounded random testing of the parser, compiler and matcher (runs on stable, in CI):
//! mutated rule texts and random conditions and modifier chains must load or fail with a
//! `RuleError`, never panic; whatever loads must match random events without panicking.
//! Random and mutated JSON texts must be accepted or refused by `JsonEvent` as by
//! `serde_json`, and read alike.
//!
//! `VIGIL_FUZZ_ITERS` sets the number of iterations (default 2000); `VIGIL_FUZZ_SEED` the
//! seed (default fixed, so failures reproduce).

mod support;

use support::random::{iterations, mutate, random_json, random_rule, same, seeds, Rng};
use vigil_sigma::{EventKind, Loader, LogSource};

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
        // Every error names the file and a line of the text (or the one after its end,
        // for an error at the end of the text), lines as YAML counts them (a line break
        // is `\n`, `\r\n` or a lone `\r`).
        let lines = text
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .lines()
            .count();
        for e in &built.errors {
            assert!(
                e.line >= 1 && e.line <= lines + 1,
                "{e} (of {lines} lines): {text:?}"
            );
            assert!(
                e.to_string().starts_with(&format!("fuzz.yml:{}: ", e.line)),
                "{e}"
            );
        }
        let engine = built.engine;
        let mut scratch = engine.scratch();
        let declared = engine.declare(&LogSource::new(Some("test"), None, None));
        let mut out = Vec::new();
        for ev in &events {
            engine.match_event(&mut scratch, ev, EventKind::Declared(&declared), &mut out);
            engine.match_event(&mut scratch, ev, EventKind::Windows, &mut out);
            engine.match_event(&mut scratch, ev, EventKind::Ocsf, &mut out);
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
    big.match_event(&mut scratch, &ev, EventKind::Declared(&d), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rule.title, "R7");
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
