//! The shared corpora through the whole hunt pipeline: SigmaHQ's regression set (every
//! sample's rule must fire on its EVTX file), golden detection sets for a few corpus
//! files, and Vigil's own example intrusion against the Linux rules.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::{config, rendered_as_built, run_files, walk};
use vigil_hunt::{Format, InputFile};

fn sigmahq(sigma: &Path) -> vigil_hunt::RuleSet {
    let paths: Vec<PathBuf> = ["rules", "rules-emerging-threats", "rules-threat-hunting"]
        .iter()
        .map(|s| sigma.join(s))
        .collect();
    vigil_hunt::load_rules(&paths).expect("rules")
}

/// SigmaHQ's regression set: 202 EVTX files, each with an `info.yml` naming the rule that
/// must fire on it. All must fire, through the hunt pipeline.
#[test]
fn sigmahq_regression_set_fires_every_rule() {
    let sigma = vigil_testdata::corpus_or_skip!("sigma");
    let rules = sigmahq(&sigma);
    let mut all = Vec::new();
    walk(&sigma.join("regression_data"), &mut all);
    let mut expected: BTreeMap<PathBuf, String> = BTreeMap::new();
    for info in all
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "info.yml"))
    {
        let text = std::fs::read_to_string(info).expect("info");
        let id = text
            .lines()
            .skip_while(|l| !l.starts_with("rule_metadata"))
            .find_map(|l| l.trim().strip_prefix("- id:"))
            .map(|s| s.trim().to_string())
            .expect("rule id");
        let dir = info.parent().expect("dir");
        for p in all.iter().filter(|p| p.parent() == Some(dir)) {
            if p.extension().is_some_and(|e| e == "evtx") {
                expected.insert(p.clone(), id.clone());
            }
        }
    }
    let files: Vec<InputFile> = expected
        .keys()
        .map(|p| InputFile {
            opener: None,
            path: p.as_path().into(),
            format: Format::Evtx,
            gzip: false,
            size: 0,
        })
        .collect();
    // Findings rendered by the matching threads, as `vigil hunt -f jsonl` has them.
    let rendering = vigil_hunt::HuntConfig {
        render: vigil_hunt::Render::Jsonl,
        ..config()
    };
    let (seen, report) = run_files(&rules.built.engine, &files, &rendering);
    let (plain, _) = run_files(&rules.built.engine, &files, &config());
    let key = |s: &support::Seen| (s.file.clone(), s.record, s.rule.clone());
    let mut a: Vec<_> = seen.iter().map(|s| (key(s), s.ocsf.clone())).collect();
    let mut b: Vec<_> = plain.iter().map(|s| (key(s), s.ocsf.clone())).collect();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert!(a == b, "rendered lines differ from the sink's");
    let mut fired: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &seen {
        fired
            .entry(s.file.clone())
            .or_default()
            .insert(s.rule.clone());
    }
    let mut missed = Vec::new();
    for (p, id) in &expected {
        let name = support::file_name(p);
        if !fired.get(&name).is_some_and(|r| r.contains(id)) {
            missed.push(format!("{}: rule {id} did not fire", p.display()));
        }
    }
    for m in &missed {
        eprintln!("MISSED {m}");
    }
    eprintln!(
        "regression set: {} files, {} fired as expected, {} errors",
        expected.len(),
        expected.len() - missed.len(),
        report.errors.len()
    );
    assert!(
        expected.len() >= 200,
        "only {} regression files",
        expected.len()
    );
    assert!(
        missed.is_empty(),
        "{} of {} missed",
        missed.len(),
        expected.len()
    );
}

/// Rule ids that fire on a few corpus files with the SigmaHQ Windows rules (all levels).
/// Reviewed by hand when made; a change here is a change in what Vigil detects.
const GOLDEN: &[(&str, &[&str])] = include!("golden/evtx.in");

#[test]
fn golden_detection_sets_for_corpus_files() {
    let data = vigil_testdata::corpus_or_skip!("sigma");
    let evtx = vigil_testdata::corpus_or_skip!("evtx");
    let rules = sigmahq(&data);
    let mut all = Vec::new();
    walk(&evtx, &mut all);
    let mut failures = Vec::new();
    for (name, want) in GOLDEN {
        let path = all
            .iter()
            .find(|p| p.to_string_lossy().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not in the corpus"));
        let files = [InputFile {
            opener: None,
            path: path.as_path().into(),
            format: Format::Evtx,
            gzip: false,
            size: 0,
        }];
        let (seen, _) = run_files(&rules.built.engine, &files, &config());
        let got: BTreeSet<&str> = seen.iter().map(|s| s.rule.as_str()).collect();
        let want: BTreeSet<&str> = want.iter().copied().collect();
        if got != want {
            failures.push(format!(
                "{name}:\n  missing {:?}\n  extra {:?}",
                want.difference(&got).collect::<Vec<_>>(),
                got.difference(&want).collect::<Vec<_>>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The findings on the golden corpus files, written by the matching threads from each
/// rule's template and the record's text, are the findings built from the events.
#[test]
fn findings_written_from_evtx_records_are_the_findings_built_from_values() {
    let data = vigil_testdata::corpus_or_skip!("sigma");
    let evtx = vigil_testdata::corpus_or_skip!("evtx");
    let rules = sigmahq(&data);
    let mut all = Vec::new();
    walk(&evtx, &mut all);
    let files: Vec<InputFile> = GOLDEN
        .iter()
        .map(|(name, _)| {
            let path = all
                .iter()
                .find(|p| p.to_string_lossy().ends_with(name))
                .unwrap_or_else(|| panic!("{name} not in the corpus"));
            InputFile {
                opener: None,
                path: path.as_path().into(),
                format: Format::Evtx,
                gzip: false,
                size: 0,
            }
        })
        .collect();
    let n = rendered_as_built(&rules.built.engine, &files, &config());
    assert!(n > 50, "{n} findings");
}

/// Vigil's own example intrusion (OCSF events, routed by class_uid) against the SigmaHQ
/// Linux rules.
#[test]
fn example_story_is_found_by_the_linux_rules() {
    let sigma = vigil_testdata::corpus_or_skip!("sigma");
    let rules = vigil_hunt::load_rules(&[sigma.join("rules/linux")]).expect("rules");
    let s = support::Scratch::new("story");
    let events = vigil_event::example::attack_story(1_700_000_000_000);
    let text: String = events
        .iter()
        .map(|e| format!("{}\n", serde_json::to_string(e).expect("json")))
        .collect();
    let f = s.write("example.jsonl", text.as_bytes());
    let (files, _) = vigil_hunt::discover(&[f]).expect("discover");
    let (seen, report) = run_files(&rules.built.engine, &files, &config());
    for x in &seen {
        eprintln!(
            "{} line {}: {}",
            x.file, x.record, x.ocsf["finding_info"]["title"]
        );
    }
    assert_eq!(report.unrouted, 0, "OCSF events must route by class_uid");
    assert!(
        seen.len() >= 3,
        "only {} findings on the example story",
        seen.len()
    );
}
