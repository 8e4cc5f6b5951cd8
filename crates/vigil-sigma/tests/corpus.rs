//! The SigmaHQ corpus: every rule under `sigma/rules` must load (at most 0.5% may fail,
//! each failure is listed with its reason), and the regression samples must fire.

mod support;

fn load_tree(sigma: &std::path::Path, sub: &str) -> (usize, Vec<String>, vigil_sigma::Built) {
    let files = support::yaml_files(&sigma.join(sub)).len();
    let built = support::load_rules(sigma, &[sub]).build();
    let failures: Vec<String> = built.errors.iter().map(ToString::to_string).collect();
    (files, failures, built)
}

#[test]
fn sigmahq_rules_load() {
    let sigma = vigil_testdata::corpus_or_skip!("sigma");
    for sub in ["rules", "rules-emerging-threats", "rules-threat-hunting"] {
        let (files, failures, built) = load_tree(&sigma, sub);
        let total = built.loaded + failures.len();
        for f in &failures {
            eprintln!("FAILED {f}");
        }
        for w in &built.warnings {
            eprintln!("{w}");
        }
        eprintln!(
            "{sub}: {files} files, loaded {}, failed {}",
            built.loaded,
            failures.len()
        );
        assert!(
            failures.len() * 200 <= total,
            "{sub}: {} of {total} rules failed to load (more than 0.5%)",
            failures.len()
        );
    }
}

/// SigmaHQ's regression samples: the rule each `info.yml` names must fire on its event
/// (the sample's JSON rendering of the EVTX record), routed as a Windows record.
#[test]
fn sigmahq_regression_samples_fire() {
    let sigma = vigil_testdata::corpus_or_skip!("sigma");
    let engine = support::load_rules(
        &sigma,
        &["rules", "rules-emerging-threats", "rules-threat-hunting"],
    )
    .build()
    .engine;
    let mut scratch = engine.scratch();
    let mut cases = 0;
    let mut missed = Vec::new();
    for info in support::yaml_files(&sigma.join("regression_data")) {
        if info.file_name().is_none_or(|n| n != "info.yml") {
            continue;
        }
        let text = std::fs::read_to_string(&info).expect("read info");
        let Some(id) = text
            .lines()
            .skip_while(|l| !l.starts_with("rule_metadata"))
            .find_map(|l| l.trim().strip_prefix("- id:"))
            .map(|s| s.trim().to_string())
        else {
            continue;
        };
        let dir = info.parent().expect("dir");
        let Some(json) = std::fs::read_dir(dir)
            .expect("dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "json"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&json).expect("read json");
        cases += 1;
        let mut out = Vec::new();
        // A sample may hold several records, one JSON document after another.
        for event in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>() {
            let event = event.expect("json");
            engine.match_event(
                &mut scratch,
                &event,
                vigil_sigma::EventKind::Windows,
                &mut out,
            );
        }
        if !out
            .iter()
            .any(|f| f.rule.id.as_deref() == Some(id.as_str()))
        {
            missed.push(format!("{}: rule {id} did not fire", dir.display()));
        }
    }
    for m in &missed {
        eprintln!("MISSED {m}");
    }
    eprintln!("regression samples: {cases}, missed {}", missed.len());
    assert!(cases > 150, "only {cases} regression cases found");
    assert!(
        missed.is_empty(),
        "{} regression samples missed",
        missed.len()
    );
}
