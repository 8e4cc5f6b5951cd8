//! `Config::dfa_literals_max` trades memory for scan speed and nothing else: the same
//! rules find the same things with every automaton kind.

use vigil_sigma::{Config, Engine, EventKind, Loader, LogSource};

/// The engine of `rules` built with `dfa_literals_max`, and the titles of the rules each
/// of `texts` (as `{"CommandLine": text}`, of logsource product `test`) fires, numbered.
fn titles_fired(rules: &str, dfa_literals_max: Option<usize>, texts: &[&str]) -> Vec<String> {
    let mut loader = Loader::with_config(Config {
        dfa_literals_max,
        ..Config::default()
    })
    .expect("config");
    loader.add("rules.yml", rules);
    let built = loader.build();
    assert!(built.errors.is_empty(), "{:?}", built.errors);
    let engine: Engine = built.engine;
    let declared = engine.declare(&LogSource::new(Some("test"), None, None));
    let mut scratch = engine.scratch();
    let mut out = Vec::new();
    let mut all = Vec::new();
    for (n, text) in texts.iter().enumerate() {
        let event = serde_json::json!({ "CommandLine": text, "Other": "zz" });
        out.clear();
        engine.match_event(
            &mut scratch,
            &event,
            EventKind::Declared(&declared),
            &mut out,
        );
        all.extend(out.iter().map(|f| format!("{n}:{}", f.rule.title)));
    }
    all.sort();
    all
}

fn findings(dfa_literals_max: Option<usize>) -> Vec<String> {
    let mut rules = String::new();
    for i in 0..40 {
        rules.push_str(&format!(
            "title: R{i}\nlogsource: {{product: test}}\ndetection:\n  s:\n    \
             CommandLine|contains:\n      - 'tool{i} '\n      - '-flag{i}'\n  \
             k:\n    - 'kw{i}x'\n  condition: s or k\n---\n"
        ));
    }
    titles_fired(
        &rules,
        dfa_literals_max,
        &[
            "run TOOL7 now",
            "x -flag12 -flag3",
            "nothing here",
            "KW39X and tool0 ",
            "tool4-flag4",
        ],
    )
}

#[test]
fn every_automaton_kind_finds_the_same() {
    let nfa = findings(Some(0));
    assert_eq!(nfa, findings(Some(10_000)));
    assert_eq!(nfa, findings(None));
    assert_eq!(
        nfa,
        ["0:R7", "1:R1", "1:R12", "1:R3", "3:R0", "3:R39", "4:R4"],
        "case-insensitive substrings (-flag12 holds -flag1) and keywords"
    );
}

/// Keyword literals are prefiltered by SIMD searchers of up to 64 literals each: with
/// 150 of them (three searchers), a literal of each is still found, and a text holding
/// none finds nothing.
#[test]
fn keyword_prefilter_of_several_searchers() {
    let mut rules = String::new();
    for i in 0..150 {
        rules.push_str(&format!(
            "title: R{i}\nlogsource: {{product: test}}\ndetection:\n  k:\n    - 'kw{i}x'\n  \
             condition: k\n---\n"
        ));
    }
    for dfa_literals_max in [Some(0), Some(10_000), None] {
        let texts = [
            "first KW0X",
            "KW77X in the middle",
            "aa",
            "kw15 kw149x",
            "kw1",
        ];
        assert_eq!(
            titles_fired(&rules, dfa_literals_max, &texts),
            ["0:R0", "1:R77", "3:R149"],
            "{dfa_literals_max:?}"
        );
    }
}
