//! Differential testing of the engine against the reference evaluator
//! (`vigil_sigma::Reference`, the parsed rules evaluated as written, without index, memo
//! or prefilter): on random rules and events, and on SigmaHQ's rules over the EVTX corpus
//! and Vigil's OCSF example events, the engine must find exactly what the reference
//! finds, whatever its settings (automaton kinds), with a reused scratch (its memo of
//! recent texts) or a fresh one, and whichever reader the event comes through
//! (`serde_json::Value`, `JsonEvent`, `WinRecord`).
//!
//! `VIGIL_FUZZ_ITERS` scales the random part (default 2000: 100 rounds of 30 rules and
//! 60 events); `VIGIL_FUZZ_SEED` sets its seed.

mod support;

use std::collections::HashMap;
use support::random::{iterations, random_event, random_valid_rule, RandomEvent, Rng};
use vigil_event::Event;
use vigil_sigma::{
    Config, Declared, Engine, EventKind, Finding, JsonEvent, Loader, LogSource, Reference, Scratch,
    WinRecord, WINDOWS_MAP,
};

/// What two evaluations must agree on: per finding, the rule, the searches reported and
/// whether it is silent.
fn summary(findings: &[Finding<'_>]) -> Vec<(usize, Vec<String>, bool)> {
    findings
        .iter()
        .map(|f| {
            let selections = f.selections.iter().map(|s| s.to_string()).collect();
            (f.rule_index, selections, f.silent)
        })
        .collect()
}

/// The embedded Windows mapping with more sources: a service whose channel has sources
/// with and without EventIDs and a renaming one, a category routed by provider.
fn custom_windows_map() -> String {
    WINDOWS_MAP
        .replacen(
            "\nservices:\n",
            "\nservices:\n  custom:\n    - {channel: Custom, event_id: [1], rename: {Image: NewProcessName}}\n    \
             - {channel: Custom}\n    - {channel: Other, provider: Prov-A}\n",
            1,
        )
        .replacen(
            "\ncategories:\n",
            "\ncategories:\n  routed_by_provider:\n    - {channel: Application, provider: Prov-A, event_id: [1, 4688]}\n    \
             - {channel: Application, event_id: [400]}\n",
            1,
        )
}

/// Engines of the same rules under every automaton setting, and the reference.
struct Subjects {
    engines: Vec<(String, Engine)>,
    reference: Reference,
}

fn subjects(texts: &[(String, String)], config: &Config) -> Subjects {
    let load = |dfa: Option<usize>| {
        let mut loader = Loader::with_config(Config {
            dfa_literals_max: dfa,
            ..config.clone()
        })
        .expect("config");
        for (name, text) in texts {
            loader.add(name, text);
        }
        loader
    };
    let (built, reference) = load(None).build_with_reference();
    let mut engines = vec![("default automata".to_string(), built.engine)];
    for dfa in [Some(0), Some(100_000)] {
        engines.push((
            format!("dfa_literals_max {dfa:?}"),
            load(dfa).build().engine,
        ));
    }
    Subjects { engines, reference }
}

fn declared_of(engine: &Engine) -> HashMap<&'static str, Declared> {
    let mut m = HashMap::new();
    for (name, ls) in [
        ("test", LogSource::new(Some("test"), None, None)),
        (
            "test/other",
            LogSource::new(Some("test"), None, Some("other")),
        ),
        (
            "windows/security",
            LogSource::new(Some("windows"), None, Some("security")),
        ),
        ("-", LogSource::default()),
    ] {
        m.insert(name, engine.declare(&ls));
    }
    m
}

/// Checks one event: the reference's findings against every engine, reader and scratch.
/// `scratches` are the engines' reused scratches. `Err` describes the first difference.
fn check_event(
    s: &Subjects,
    scratches: &mut [Scratch],
    event: &serde_json::Value,
    windows: bool,
    kinds: &[EventKind<'_>],
) -> Result<usize, String> {
    let text = event.to_string();
    let json = JsonEvent::parse(&text).map_err(|e| e.to_string())?;
    let record = WinRecord::new(event);
    // Each reader against the reference reading the same (plain JSON has no `UserData`
    // wrapper lookup; `JsonEvent` and `WinRecord` read Windows records alike).
    let mut readers: Vec<(&str, &dyn Event)> = vec![("serde_json", event), ("JsonEvent", &json)];
    if windows {
        readers.push(("WinRecord", &record));
    }
    let mut found = 0;
    for (reader, ev) in readers {
        let mut want = Vec::new();
        s.reference.match_event(ev, kinds[0], &mut want);
        let want = summary(&want);
        found = want.len();
        for (((name, engine), scratch), &kind) in s.engines.iter().zip(&mut *scratches).zip(kinds) {
            for fresh in [false, true] {
                let mut out = Vec::new();
                if fresh {
                    engine.match_event(&mut engine.scratch(), ev, kind, &mut out);
                } else {
                    engine.match_event(scratch, ev, kind, &mut out);
                }
                let got = summary(&out);
                if got != want {
                    return Err(format!(
                        "{name}, {reader}, {} scratch: engine {got:?}, reference {want:?}",
                        if fresh { "fresh" } else { "reused" }
                    ));
                }
            }
        }
    }
    Ok(found)
}

#[test]
fn random_rules_and_events_match_the_reference() {
    let rounds = (iterations() / 20).max(1);
    let seed: u64 = std::env::var("VIGIL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xD1FF_5EED);
    let mut rng = Rng(seed | 1);
    let (mut loaded, mut findings, mut events) = (0, 0, 0);
    for round in 0..rounds {
        let texts: Vec<(String, String)> = (0..30)
            .map(|i| (format!("r{i}.yml"), random_valid_rule(&mut rng, i)))
            .collect();
        let mut config = Config::default();
        config
            .placeholders
            .insert("ph".into(), vec!["adm".into(), "root".into()]);
        if round % 2 == 1 {
            config.windows_map = Some(custom_windows_map());
        }
        let s = subjects(&texts, &config);
        loaded += s.reference.rules().len();
        let declared: Vec<HashMap<&'static str, Declared>> =
            s.engines.iter().map(|(_, e)| declared_of(e)).collect();
        let mut scratches: Vec<Scratch> = s.engines.iter().map(|(_, e)| e.scratch()).collect();
        for n in 0..60 {
            let e = random_event(&mut rng);
            let (value, windows) = match &e {
                RandomEvent::Declared(_, v) | RandomEvent::Ocsf(v) => (v, false),
                RandomEvent::Windows(v) => (v, true),
            };
            let kinds: Vec<EventKind<'_>> = declared
                .iter()
                .map(|d| match &e {
                    RandomEvent::Declared(ls, _) => EventKind::Declared(&d[ls]),
                    RandomEvent::Windows(_) => EventKind::Windows,
                    RandomEvent::Ocsf(_) => EventKind::Ocsf,
                })
                .collect();
            match check_event(&s, &mut scratches, value, windows, &kinds) {
                Ok(k) => findings += k,
                Err(diff) => {
                    let kind = match &e {
                        RandomEvent::Declared(ls, _) => format!("declared {ls}"),
                        RandomEvent::Windows(_) => "windows".into(),
                        RandomEvent::Ocsf(_) => "ocsf".into(),
                    };
                    let metas = s.reference.rules();
                    let listed: Vec<String> = metas
                        .iter()
                        .enumerate()
                        .map(|(i, m)| format!("{i}: {} ({})", m.title, m.source))
                        .collect();
                    let rules: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
                    panic!(
                        "round {round} event {n}: {diff}\n{kind} event: {value}\nloaded: {}\nrules:\n{}",
                        listed.join(", "),
                        rules.join("---\n")
                    );
                }
            }
            events += 1;
        }
    }
    eprintln!("differential: {rounds} rounds, {loaded} rules loaded, {events} events, {findings} findings");
    assert!(
        findings > events / 4,
        "the rules fire: {findings} findings on {events} events"
    );
}

/// SigmaHQ's rules (every product) over every record of the EVTX corpus, read as
/// `vigil hunt` reads them (`JsonEvent`), and over Vigil's OCSF example events (typed,
/// and as JSON): the engine finds exactly what the reference finds, under every
/// automaton setting, with a reused scratch (its memo) and, for the default setting, a
/// fresh one for every event.
#[test]
fn sigmahq_rules_over_the_corpora_match_the_reference() {
    let sigma = vigil_testdata::corpus_or_skip!("sigma");
    let evtx = vigil_testdata::corpus_or_skip!("evtx");
    let dirs = ["rules", "rules-emerging-threats", "rules-threat-hunting"];
    let (built, reference) = support::load_rules(&sigma, &dirs).build_with_reference();
    assert!(built.errors.is_empty(), "{:?}", built.errors);
    let mut engines = vec![("default automata", built.engine)];
    for (name, dfa) in [
        ("dfa_literals_max 0", 0),
        ("dfa_literals_max 100,000", 100_000),
    ] {
        let config = Config {
            dfa_literals_max: Some(dfa),
            ..Config::default()
        };
        engines.push((
            name,
            support::load_rules_with(&sigma, &dirs, config)
                .build()
                .engine,
        ));
    }
    let mut scratches: Vec<Scratch> = engines.iter().map(|(_, e)| e.scratch()).collect();
    let (mut records, mut findings) = (0usize, 0usize);
    let mut differences = Vec::new();
    let mut compare = |what: &dyn Fn() -> String, ev: &dyn Event, kind: EventKind<'_>| {
        let mut want = Vec::new();
        reference.match_event(ev, kind, &mut want);
        let want = summary(&want);
        findings += want.len();
        for (i, (name, engine)) in engines.iter().enumerate() {
            let mut got = Vec::new();
            engine.match_event(&mut scratches[i], ev, kind, &mut got);
            if i == 0 {
                engine.match_event(&mut engine.scratch(), ev, kind, &mut got);
                // Both passes found the same: one copy to compare.
                let half = got.len() / 2;
                if summary(&got[..half]) != summary(&got[half..]) && differences.len() < 20 {
                    differences.push(format!("{}: {name}: a fresh scratch differs", what()));
                }
                got.truncate(half);
            }
            let got = summary(&got);
            if want != got && differences.len() < 20 {
                differences.push(format!(
                    "{}: {name}: engine {got:?}, reference {want:?}",
                    what()
                ));
            }
        }
    };
    for file in support::evtx_files(&evtx) {
        for (i, text) in support::evtx_records(&file).iter().enumerate() {
            let json = JsonEvent::parse(text).expect("evtx renders JSON");
            let what = || format!("{} record {i}", file.display());
            compare(&what, &json, EventKind::Windows);
            records += 1;
        }
    }
    let story = vigil_event::example::attack_story(1_700_000_000_000);
    for (i, e) in story.iter().enumerate() {
        let what = || format!("OCSF example event {i}");
        compare(&what, e, EventKind::Ocsf);
        let value = e.to_json();
        compare(&what, &vigil_event::OcsfJson(&value), EventKind::Ocsf);
    }
    eprintln!(
        "corpus: {} rules, {records} EVTX records and {} OCSF events, {findings} findings",
        reference.rules().len(),
        story.len()
    );
    assert!(differences.is_empty(), "{differences:#?}");
    assert!(
        records > 20_000 && findings > 5_000,
        "{records} records, {findings} findings"
    );
}
