//! Regression: a fork (OCSF Process Activity Launch with `launch_type_id` 2) carries the
//! parent's image and command line; routed as `process_creation` it made every
//! process_creation rule fire twice, once on the fork and once on the exec.

use serde_json::json;
use vigil_sigma::{EventKind, Loader};

#[test]
fn process_creation_rules_see_execs_not_forks() {
    let mut loader = Loader::new();
    loader.add(
        "curl.yml",
        "title: Curl\nid: 5e2c8a4e-0d6c-4f3e-9d59-1f0a2b3c4d5e\nlevel: low\n\
         logsource: {product: linux, category: process_creation}\n\
         detection:\n  sel:\n    Image|endswith: /curl\n  condition: sel\n",
    );
    let built = loader.build();
    assert!(built.errors.is_empty(), "{:?}", built.errors);
    let engine = built.engine;
    let launch = |launch_type_id: i64| {
        json!({"class_uid": 1007, "activity_id": 1, "launch_type_id": launch_type_id,
               "process": {"pid": 7, "file": {"path": "/usr/bin/curl", "name": "curl"}}})
    };
    let mut scratch = engine.scratch();
    let mut findings = Vec::new();
    engine.match_event(&mut scratch, &launch(3), EventKind::Ocsf, &mut findings);
    assert_eq!(findings.len(), 1, "the exec matches");
    findings.clear();
    engine.match_event(&mut scratch, &launch(2), EventKind::Ocsf, &mut findings);
    assert!(findings.is_empty(), "the fork does not");
}
