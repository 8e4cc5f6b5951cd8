//! Every Remediation Activity record response writes is valid OCSF 1.8: each class
//! (File 7002, Process 7003, Network 7004), each mode, each cause, each outcome, checked
//! against the real schema source.

use serde_json::{json, Map};
use vigil_event::model::remediation_status;
use vigil_event::OcsfEvent;
use vigil_respond::config::{Action, Mode};
use vigil_respond::policy::FindingFacts;
use vigil_respond::record::{self, Cause, Common, Outcome};

fn facts() -> FindingFacts {
    FindingFacts {
        uid: "finding-1".into(),
        rule_uid: Some("0f5e2c1a-0000-4000-8000-000000000001".into()),
        title: Some("Marker run by a shell".into()),
        severity_id: 4,
        story: Some("boot-1-100".into()),
        is_new: true,
        ..FindingFacts::default()
    }
}

fn common<'a>(
    action: Action,
    restore: bool,
    mode: Mode,
    cause: Cause<'a>,
    status: i32,
) -> Common<'a> {
    let mut extra = Map::new();
    extra.insert("killed".into(), json!([{"pid": 4, "name": "sh"}]));
    Common {
        action,
        restore,
        mode,
        cause,
        command_uid: format!("{}:x", action.name()),
        outcome: Outcome::failed(status, "what happened"),
        extra,
        time: 1_700_000_000_000,
    }
}

#[test]
fn every_kind_of_record_is_valid_ocsf() {
    let Some(dir) = vigil_testdata::corpus("ocsf-schema") else {
        return;
    };
    let schema = vigil_ocsf_schema::Schema::load(&dir).expect("schema");
    let f = facts();
    let mut records: Vec<OcsfEvent> = Vec::new();
    let causes = [Cause::Finding(&f, 1), Cause::Manual("vigil respond kill 4")];
    for cause in &causes {
        for mode in [Mode::Detect, Mode::Protect] {
            for status in [
                remediation_status::SUCCESS,
                remediation_status::DOES_NOT_EXIST,
                remediation_status::PARTIAL,
                remediation_status::UNSUPPORTED,
                remediation_status::ERROR,
                remediation_status::FAILURE,
            ] {
                let process = vigil_respond::record::process_of(
                    std::process::id() as i32,
                    &vigil_respond::procs::boot_id(),
                );
                for action in [Action::Kill, Action::Block] {
                    records.push(record::process(
                        common(action, false, mode, cause.clone(), status),
                        process.clone(),
                    ));
                }
                let mut file = record::file_of(std::path::Path::new("/tmp/payload"));
                file.size = Some(12);
                for (action, restore) in [
                    (Action::Quarantine, false),
                    (Action::Quarantine, true),
                    (Action::Rollback, true),
                ] {
                    records.push(record::file(
                        common(action, restore, mode, cause.clone(), status),
                        file.clone(),
                    ));
                }
                for restore in [false, true] {
                    records.push(record::network(common(
                        Action::Isolate,
                        restore,
                        mode,
                        cause.clone(),
                        status,
                    )));
                }
            }
        }
    }
    let mut classes = std::collections::BTreeSet::new();
    for r in &records {
        let j = r.to_json();
        classes.insert((j["class_uid"].as_i64(), j["activity_id"].as_i64()));
        let v = schema.validate(&j);
        assert!(v.is_empty(), "{v:?}\n{j:#}");
        // Each record names its finding and story, or who asked.
        let u = &j["unmapped"];
        assert!(u["finding_uid"] == "finding-1" || u["requested_by"] == "vigil respond kill 4");
        if u["mode"] == "detect" {
            assert_eq!(j["status_id"], 99, "detect mode: not done");
        }
        // Read back as the same class.
        let back = OcsfEvent::from_json(j.clone()).expect("reads back");
        assert_eq!(back.to_json(), j);
    }
    for want in [
        (7002, 2),
        (7002, 3),
        (7003, 2),
        (7003, 1),
        (7004, 1),
        (7004, 3),
    ] {
        assert!(
            classes.contains(&(Some(want.0), Some(want.1))),
            "{want:?} in {classes:?}"
        );
    }
}
