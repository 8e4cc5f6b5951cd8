//! Conformance fixtures: `tests/conformance/**/*.case`. Each case is a YAML stream: the
//! rules, then (after the last `---`) one document with `events` (each may carry a
//! `_source`: `windows`, `ocsf`, or a logsource mapping; default `source` of the case,
//! else `{product: test}`), optional `placeholders`, and `expect`: the golden findings,
//! one string each:
//!
//! * `"<event>: <rule title> [<selection>, ...]"` (with ` (silent)` for silent findings),
//! * `"error line <n>: <reason>"` for a rule that does not load, `"warning line <n>: ..."`
//!   for one that loads with a warning (both before the findings),
//! * `"corr <rule title> {<field>=<value>, ...} events=[<event>, ...] value=<n>"`, after
//!   the event whose finding made it fire or closed its window; windows still open after
//!   the last event are closed (`CorrelationState::finish`) and their findings come last.
//!
//! Run with `VIGIL_BLESS=1` to rewrite the `expect` list of every case whose findings
//! differ with what the engine finds (the run still fails, naming the cases blessed; review
//! them with `git diff`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use vigil_sigma::{
    Config, CorrelationState, EventKind, Finding, JsonEvent, Limits, Loader, LogSource, WinRecord,
};
use yaml_rust2::{Yaml, YamlLoader};

fn to_json(y: &Yaml) -> serde_json::Value {
    use serde_json::Value as J;
    match y {
        Yaml::Real(s) => s.parse::<f64>().map(J::from).unwrap_or(J::Null),
        Yaml::Integer(i) => J::from(*i),
        Yaml::String(s) => J::from(s.clone()),
        Yaml::Boolean(b) => J::from(*b),
        Yaml::Array(a) => J::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => J::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        _ => J::Null,
    }
}

fn logsource(v: &serde_json::Value) -> LogSource {
    let g = |k: &str| v.get(k).and_then(|x| x.as_str());
    LogSource::new(g("product"), g("category"), g("service"))
}

fn cases(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("conformance dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            cases(&p, out);
        } else if p.extension().is_some_and(|x| x == "case") {
            out.push(p);
        }
    }
}

fn corr_line(c: &vigil_sigma::CorrelationFinding<'_>) -> String {
    let group: Vec<String> = c
        .group
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("null")))
        .collect();
    format!(
        "corr {} {{{}}} events={:?} value={}{}",
        c.rule.title,
        group.join(", "),
        c.events,
        c.value,
        if c.silent { " (silent)" } else { "" }
    )
}

fn titles(findings: &[Finding<'_>]) -> Vec<String> {
    findings
        .iter()
        .map(|f| format!("{} {:?}", f.rule.title, f.selections))
        .collect()
}

fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let split = text
        .rfind("\n---\n")
        .ok_or("no `---` before the expectations")?;
    let (rules, spec) = (&text[..split], &text[split + 5..]);
    let spec = YamlLoader::load_from_str(spec).map_err(|e| e.to_string())?;
    let spec = to_json(spec.first().ok_or("empty expectations")?);
    let mut cfg = Config::default();
    if let Some(p) = spec.get("placeholders").and_then(|p| p.as_object()) {
        for (k, v) in p {
            let vals = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            cfg.placeholders.insert(k.clone(), vals);
        }
    }
    let mut loader = Loader::with_config(cfg).map_err(|e| e.to_string())?;
    loader.add(&path.display().to_string(), rules);
    let built = loader.build();
    let mut actual: Vec<String> = built
        .errors
        .iter()
        .chain(&built.warnings)
        .map(|e| match &e.kind {
            vigil_sigma::ErrorKind::Warning(w) => format!("warning line {}: {w}", e.line),
            kind => format!("error line {}: {kind}", e.line),
        })
        .collect();
    let engine = built.engine;
    let default_source = spec
        .get("source")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"product": "test"}));
    let mut declared: HashMap<String, vigil_sigma::Declared> = HashMap::new();
    let mut scratch = engine.scratch();
    let mut corr = CorrelationState::new(&engine, Limits::default());
    let events = spec
        .get("events")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    for (i, ev) in events.iter().enumerate() {
        let mut ev = ev.clone();
        let src = ev
            .as_object_mut()
            .and_then(|o| o.remove("_source"))
            .unwrap_or_else(|| default_source.clone());
        let source = match src.as_str() {
            Some("windows") => EventKind::Windows,
            Some("ocsf") => EventKind::Ocsf,
            _ => {
                let key = src.to_string();
                if !declared.contains_key(&key) {
                    declared.insert(key.clone(), engine.declare(&logsource(&src)));
                }
                EventKind::Declared(&declared[&key])
            }
        };
        let mut findings = Vec::new();
        engine.match_event(&mut scratch, &ev, source, &mut findings);
        // The same record as the JSON readers see it (`JsonEvent`, and `WinRecord` for
        // Windows records) finds the same, as does a fresh scratch.
        let text = ev.to_string();
        let json = JsonEvent::parse(&text).map_err(|e| format!("event {i}: {e}"))?;
        let mut others = vec![("JsonEvent", Vec::new()), ("fresh scratch", Vec::new())];
        engine.match_event(&mut engine.scratch(), &json, source, &mut others[0].1);
        engine.match_event(&mut engine.scratch(), &ev, source, &mut others[1].1);
        if matches!(source, EventKind::Windows) {
            let mut out = Vec::new();
            engine.match_event(&mut scratch, &WinRecord::new(&ev), source, &mut out);
            others.push(("WinRecord", out));
        }
        for (reader, other) in &others {
            if *other != findings {
                return Err(format!(
                    "{}: event {i}: {reader} finds {:?}, serde_json::Value {:?}",
                    path.display(),
                    titles(other),
                    titles(&findings)
                ));
            }
        }
        for f in &findings {
            actual.push(format!(
                "{i}: {} [{}]{}",
                f.rule.title,
                f.selections.join(", "),
                if f.silent { " (silent)" } else { "" }
            ));
            for c in corr.feed(&engine, f, i as u64) {
                actual.push(corr_line(&c));
            }
        }
    }
    for c in corr.finish(&engine) {
        actual.push(corr_line(&c));
    }
    let expected: Vec<String> = spec
        .get("expect")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if actual != expected && blessing() {
        return bless(path, &text, &actual);
    }
    if actual != expected {
        let mut msg = format!("{}:\n  expected:\n", path.display());
        for e in &expected {
            msg.push_str(&format!("    - {e:?}\n"));
        }
        msg.push_str("  actual:\n");
        for a in &actual {
            msg.push_str(&format!("    - {a:?}\n"));
        }
        return Err(msg);
    }
    Ok(())
}

/// Whether `VIGIL_BLESS=1`: golden findings that differ are rewritten, not failed.
fn blessing() -> bool {
    std::env::var("VIGIL_BLESS").is_ok_and(|v| v == "1")
}

/// Rewrites the `expect` list of the case at `path` (its text `text`, where `expect` is
/// the last key) with `actual`, and says so (the test still fails: the new golden
/// findings are for a person to review, and pass on the next run).
fn bless(path: &Path, text: &str, actual: &[String]) -> Result<(), String> {
    let at = text
        .rfind("\nexpect:")
        .ok_or_else(|| format!("{}: no `expect:` to bless", path.display()))?;
    let mut out = text[..at + 1].to_string();
    out.push_str("expect:\n");
    for line in actual {
        // A JSON string is a YAML double-quoted scalar.
        let quoted = serde_json::to_string(line).map_err(|e| e.to_string())?;
        out.push_str(&format!("  - {quoted}\n"));
    }
    std::fs::write(path, out).map_err(|e| format!("{}: {e}", path.display()))?;
    Err(format!(
        "{}: blessed ({} expected lines written)",
        path.display(),
        actual.len()
    ))
}

#[test]
fn conformance_fixtures() {
    let mut all = Vec::new();
    cases(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance"),
        &mut all,
    );
    all.sort();
    assert!(all.len() >= 20, "only {} conformance cases", all.len());
    let failures: Vec<String> = all.iter().filter_map(|c| run_case(c).err()).collect();
    for f in &failures {
        eprintln!("{f}");
    }
    eprintln!(
        "conformance: {} cases, {} failed",
        all.len(),
        failures.len()
    );
    assert!(failures.is_empty());
}
