//! Vigil's events against the real OCSF 1.8.0 schema source (from the shared corpus:
//! `$VIGIL_DATA/ocsf-schema`).

use serde_json::json;
use vigil_event::example::attack_story;
use vigil_event::model::*;
use vigil_event::OcsfEvent;
use vigil_ocsf_schema::Schema;
use vigil_testdata::corpus_or_skip;

fn schema() -> Option<Schema> {
    let dir = vigil_testdata::corpus("ocsf-schema")?;
    Some(Schema::load(&dir).expect("OCSF schema loads"))
}

fn finding() -> OcsfEvent {
    let story = attack_story(1_700_000_000_000);
    let matched = story[4].to_json();
    let mut f = DetectionFinding::new(
        1,
        1_700_000_100_000,
        "hunt",
        FindingInfo {
            uid: "f-1".into(),
            title: Some("Linux Reverse Shell Indicator".into()),
            analytic: Some(Analytic {
                type_id: analytic_type::RULE,
                kind: Some(analytic_type::name(analytic_type::RULE).into()),
                uid: Some("83dcd9f6-9ca8-4af7-a16e-a1c7a6b51871".into()),
                name: Some("Linux Reverse Shell Indicator".into()),
                ..Analytic::default()
            }),
            attacks: vec![Attack {
                tactic: Some(Tactic {
                    name: Some("Execution".into()),
                    uid: Some("TA0002".into()),
                }),
                technique: Some(Technique {
                    name: Some("Command and Scripting Interpreter".into()),
                    uid: Some("T1059".into()),
                }),
                sub_technique: Some(SubTechnique {
                    name: Some("Unix Shell".into()),
                    uid: Some("T1059.004".into()),
                }),
                ..Attack::default()
            }],
            types: vec!["Sigma".into()],
            data_sources: vec!["example.jsonl".into()],
            ..FindingInfo::default()
        },
    );
    f.severity_id = severity::HIGH;
    f.is_alert = Some(true);
    f.evidences = vec![Evidences {
        data: Some(matched),
        ..Evidences::default()
    }];
    f.into()
}

/// The sensor's report of lost records: Event Log Activity, activity Other named `Drop`.
fn sensor_drop() -> OcsfEvent {
    let mut e = EventLogActivity::new(99, 1_700_000_200_000, "sensor");
    e.activity_name = Some("Drop".into());
    e.count = Some(12);
    e.status_id = Some(status::FAILURE);
    e.log_name = Some("vigil-sensor".into());
    e.log_provider = Some("ebpf".into());
    e.actor = Some(Actor {
        process: Some(Shared::new(Process {
            pid: Some(1),
            ..Process::default()
        })),
        ..Actor::default()
    });
    e.device = Some(Shared::new(Device {
        type_id: device_type::SERVER,
        hostname: Some("h".into()),
        ..Device::default()
    }));
    let e = OcsfEvent::from(e);
    assert_eq!(
        e.to_json()["activity_name"],
        "Drop",
        "activity Other keeps its own name"
    );
    e
}

#[test]
fn every_event_vigil_writes_is_valid_ocsf() {
    let Some(schema) = schema() else { return };
    assert_eq!(schema.version, "1.8.0");
    let mut events = attack_story(1_700_000_000_000);
    events.push(finding());
    events.push(sensor_drop());
    let classes: std::collections::BTreeSet<i32> =
        events.iter().map(OcsfEvent::class_uid).collect();
    assert_eq!(classes.len(), 8, "all eight classes covered: {classes:?}");
    for e in &events {
        let json = e.to_json();
        let violations = schema.validate(&json);
        assert!(
            violations.is_empty(),
            "class {} invalid:\n{}\n{json:#}",
            e.class_uid(),
            violations
                .iter()
                .map(|v| format!("  {v}\n"))
                .collect::<String>()
        );
    }
}

#[test]
fn a_deliberately_broken_event_is_rejected() {
    let _ = corpus_or_skip!("ocsf-schema");
    let Some(schema) = schema() else { return };
    let good = attack_story(0)[1].to_json(); // a Process Activity launch
    assert!(schema.validate(&good).is_empty());

    let mut broken = good.clone();
    broken["type_uid"] = json!(100799);
    broken["severity_id"] = json!(42);
    broken["process"]["pid"] = json!("4100");
    broken["process"]["file"]["hashes"][0]
        .as_object_mut()
        .unwrap()
        .remove("algorithm_id");
    broken["device"]["ip"] = json!("10.0.0.500");
    broken.as_object_mut().unwrap().remove("actor");
    broken["mystery"] = json!(true);
    let got: Vec<String> = schema
        .validate(&broken)
        .iter()
        .map(ToString::to_string)
        .collect();
    for want in [
        "type_uid: 100799 is not class_uid * 100 + activity_id (100701)",
        "severity_id: 42 is not a defined enum value",
        "process.pid: expected integer_t",
        "process.file.hashes[0].algorithm_id: required by `fingerprint` but missing",
        "device.ip: `10.0.0.500` is not an IP address",
        "actor: required by `process_activity` but missing",
        "mystery: unknown attribute of `process_activity`",
    ] {
        assert!(
            got.iter().any(|g| g.starts_with(want)),
            "missing `{want}` in {got:#?}"
        );
    }
    assert_eq!(got.len(), 7, "{got:#?}");
}

#[test]
fn container_attributes_require_the_container_profile() {
    let Some(schema) = schema() else { return };
    let OcsfEvent::Process(mut launch) = attack_story(0)[1].clone() else {
        panic!("expected a process event")
    };
    launch.process.container = Some(Container {
        uid: Some("3f4e5d".into()),
        ..Container::default()
    });
    let json = OcsfEvent::from(*launch.clone()).to_json();
    let v = schema.validate(&json);
    assert!(
        v.iter()
            .any(|v| v.path == "process.container" && v.message.contains("container")),
        "{v:?}"
    );
    launch.metadata.profiles.push("container".into());
    assert!(schema
        .validate(&OcsfEvent::from(*launch).to_json())
        .is_empty());
}
