//! `vigil query`, its shortcuts and `vigil hunt --store`, run as processes over a store the
//! store's own writer filled (`vigil bench gen-store`, which also writes the same events
//! as JSON lines). Every answer is checked against what the test itself computes from the
//! JSON lines, so the store, the query engine and the CLI are held to the events, not to
//! numbers written down beforehand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
mod support;

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .output()
        .expect("run vigil")
}

fn ok(args: &[&str]) -> String {
    let out = vigil(args);
    assert!(
        out.status.success(),
        "vigil {args:?} failed ({:?}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn jsonl(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A store of generated history and the same events as JSON lines (made once).
struct History {
    store: PathBuf,
    lines: PathBuf,
    events: Vec<serde_json::Value>,
}

fn history() -> &'static History {
    static H: OnceLock<History> = OnceLock::new();
    H.get_or_init(|| {
        // Made once per run and kept in the target directory (a static is never
        // dropped): the next run starts it afresh.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("query-history");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("history dir");
        let store = dir.join("store");
        let lines = dir.join("events.jsonl");
        let out = vigil(&[
            "bench",
            "gen-store",
            "--out",
            store.to_str().expect("path"),
            "--jsonl",
            lines.to_str().expect("path"),
            "--events",
            "4000",
            "--hosts",
            "6",
            "--days",
            "2",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        // The generated events are the model's shapes: nothing falls outside the schema.
        assert!(!err.contains("do not fit the schema"), "{err}");
        let events = support::lines(&lines).expect("events");
        assert!(events.len() >= 4000, "{} events", events.len());
        History {
            store,
            lines,
            events,
        }
    })
}

fn s(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or("")
}

fn store_arg() -> &'static str {
    history().store.to_str().expect("path")
}

#[test]
fn gen_store_puts_every_event_in_parquet_by_class_and_hour() {
    let h = history();
    let parquet: Vec<PathBuf> = walk(&h.store.join("lake"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(!parquet.is_empty());
    // Two days of history: more than one hour partition per class.
    let hours: BTreeSet<_> = parquet.iter().filter_map(|p| p.parent()).collect();
    assert!(hours.len() > 4 * 24, "{} hour partitions", hours.len());
    let sql = "SELECT count(*) AS n FROM process_activity";
    let rows = jsonl(&ok(&[
        "query",
        "--store",
        store_arg(),
        "-f",
        "jsonl",
        "--sql",
        sql,
    ]));
    let launches = h.events.iter().filter(|e| e["class_uid"] == 1007).count();
    assert_eq!(rows[0]["n"], launches as u64);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn pipe_count_by_host_matches_the_events() {
    let h = history();
    let q =
        "process_activity | where actor.process.file.name == \"bash\" | count by device.hostname";
    let rows = jsonl(&ok(&["query", "--store", store_arg(), "-f", "jsonl", q]));
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for e in &h.events {
        if e["class_uid"] == 1007 && e["actor"]["process"]["file"]["name"] == "bash" {
            *want
                .entry(s(&e["device"]["hostname"]).to_string())
                .or_default() += 1;
        }
    }
    assert!(!want.is_empty());
    let got: BTreeMap<String, u64> = rows
        .iter()
        .map(|r| {
            let host = r
                .get("device.hostname")
                .or_else(|| r.get("hostname"))
                .or_else(|| r["device"].get("hostname"))
                .unwrap_or_else(|| panic!("no host in {r}"));
            let n = r
                .get("count")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or_else(|| panic!("no count in {r}"));
            (s(host).to_string(), n)
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn the_same_query_over_the_json_lines_gives_the_same_answer() {
    let h = history();
    let q = "dns_activity | where query.hostname endswith \".com\" | count";
    let from_store = ok(&["query", "--store", store_arg(), "-f", "jsonl", q]);
    let from_lines = ok(&["query", "-f", "jsonl", q, h.lines.to_str().expect("path")]);
    assert_eq!(from_store, from_lines);
    let want = h
        .events
        .iter()
        .filter(|e| e["class_uid"] == 4003 && s(&e["query"]["hostname"]).ends_with(".com"))
        .count() as u64;
    assert!(want > 0);
    assert_eq!(jsonl(&from_store)[0]["count"], want);
}

/// A story from the middle of the history, with more than two processes.
fn a_story() -> String {
    let h = history();
    let mut procs: BTreeMap<&str, usize> = BTreeMap::new();
    for e in h.events.iter().filter(|e| e["class_uid"] == 1007) {
        *procs
            .entry(s(&e["metadata"]["correlation_uid"]))
            .or_default() += 1;
    }
    let big: Vec<&str> = procs
        .iter()
        .filter(|(_, n)| **n > 2)
        .map(|(k, _)| *k)
        .collect();
    big[big.len() / 2].to_string()
}

#[test]
fn story_shortcut_gives_the_story_tree() {
    let h = history();
    let id = a_story();
    let launches: BTreeSet<&str> = h
        .events
        .iter()
        .filter(|e| e["class_uid"] == 1007 && e["metadata"]["correlation_uid"] == id.as_str())
        .map(|e| s(&e["process"]["uid"]))
        .collect();
    let rows = jsonl(&ok(&[
        "query",
        "story",
        &id,
        "--store",
        store_arg(),
        "-f",
        "jsonl",
    ]));
    let got: BTreeSet<&str> = rows.iter().map(|r| s(&r["uid"])).collect();
    assert_eq!(got, launches);
    let tree = ok(&["query", "story", &id, "--store", store_arg()]);
    assert!(
        tree.starts_with(&format!("story {id}: {} processes", launches.len())),
        "{tree}"
    );
    // The shell is the root; each command hangs under it.
    assert_eq!(
        tree.lines().filter(|l| l.contains("-bash")).count(),
        1,
        "{tree}"
    );
}

#[test]
fn process_shortcut_gives_everything_a_process_did() {
    let h = history();
    // A curl: it has files, DNS lookups and connections.
    let curl = h
        .events
        .iter()
        .filter(|e| e["class_uid"] == 1007 && e["process"]["file"]["name"] == "curl")
        .map(|e| s(&e["process"]["uid"]))
        .find(|uid| {
            h.events
                .iter()
                .filter(|e| e["actor"]["process"]["uid"] == *uid)
                .count()
                > 2
        })
        .expect("a busy curl");
    let want = h
        .events
        .iter()
        .filter(|e| e["actor"]["process"]["uid"] == curl || e["process"]["uid"] == curl)
        .count();
    let rows = jsonl(&ok(&[
        "query",
        "process",
        curl,
        "--store",
        store_arg(),
        "-f",
        "jsonl",
    ]));
    assert_eq!(rows.len(), want);
    let times: Vec<i64> = rows
        .iter()
        .map(|r| r["time_ms"].as_i64().expect("time"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn ioc_shortcut_finds_every_process_that_looked_up_a_domain() {
    let h = history();
    let domain = h
        .events
        .iter()
        .find(|e| e["class_uid"] == 4003)
        .map(|e| s(&e["query"]["hostname"]).to_string())
        .expect("a DNS lookup");
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for e in h
        .events
        .iter()
        .filter(|e| e["query"]["hostname"] == domain.as_str())
    {
        *want
            .entry(s(&e["actor"]["process"]["uid"]).to_string())
            .or_default() += 1;
    }
    let rows = jsonl(&ok(&[
        "query",
        "ioc",
        &domain,
        "--store",
        store_arg(),
        "-f",
        "jsonl",
    ]));
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rows {
        *got.entry(s(&r["process_uid"]).to_string()).or_default() +=
            r["events"].as_u64().expect("events");
    }
    assert_eq!(got, want);
}

#[test]
fn events_still_in_the_log_are_queried_with_the_lake() {
    let dir = support::tmp("query", "log");
    let store = dir.join("store");
    ok(&[
        "bench",
        "gen-store",
        "--out",
        store.to_str().expect("path"),
        "--events",
        "500",
        "--hosts",
        "2",
        "--days",
        "1",
    ]);
    let count = |store: &Path| -> u64 {
        let out = ok(&[
            "query",
            "--store",
            store.to_str().expect("path"),
            "-f",
            "jsonl",
            "--sql",
            "SELECT count(*) AS n FROM process_activity",
        ]);
        jsonl(&out)[0]["n"].as_u64().expect("n")
    };
    let before = count(&store);
    // Ten more launches through the store's writer, left in its log (not compacted).
    let launch = history()
        .events
        .iter()
        .find(|e| e["class_uid"] == 1007)
        .expect("a launch")
        .clone();
    let extra = 10u64;
    let mut lines = Vec::new();
    for i in 0..extra {
        let mut e = launch.clone();
        e["time"] = serde_json::json!(1_796_083_200_000i64 + i as i64);
        e["process"]["uid"] = serde_json::json!(format!("extra-{i}"));
        serde_json::to_writer(&mut lines, &e).expect("json");
        lines.push(b'\n');
    }
    let (mut w, _) = vigil_store::Store::open(
        vigil_store::StoreConfig::new(store.clone()),
        vigil_event::time::now_ms(),
    )
    .expect("open");
    assert!(w.append(lines, extra));
    w.sync();
    w.close();
    assert_eq!(count(&store), before + extra);
    let rows = jsonl(&ok(&[
        "query",
        "--store",
        store.to_str().expect("path"),
        "-f",
        "jsonl",
        "process_activity | where process.uid startswith \"extra-\" | project process.uid",
    ]));
    assert_eq!(rows.len() as u64, extra);
}

/// Two kinds of damage: a file that is not Parquet at all, and one whose frame is right
/// (magic at both ends, a footer length that fits) but whose metadata is garbage (the
/// second reached the Parquet reader's arithmetic, which panicked in a debug build).
#[test]
fn a_corrupt_parquet_file_is_named_and_left_out() {
    let h = history();
    let dir = support::tmp("query", "corrupt");
    let store = dir.join("store");
    copy_dir(&h.store, &store);
    let victims: Vec<PathBuf> = walk(&store.join("lake"))
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains("class=process_activity")
                && p.extension().is_some_and(|e| e == "parquet")
        })
        .take(2)
        .collect();
    assert_eq!(victims.len(), 2);
    let sql = "SELECT count(*) AS n FROM process_activity";
    let path = store.to_str().expect("path");
    let whole = jsonl(&ok(&[
        "query", "--store", path, "-f", "jsonl", "--sql", sql,
    ]))[0]["n"]
        .as_u64()
        .expect("n");
    std::fs::write(&victims[0], b"PAR1 this is not a parquet file PAR1").expect("write");
    let mut framed = b"PAR1".to_vec();
    framed.extend((0..200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    framed.extend(100u32.to_le_bytes());
    framed.extend(b"PAR1");
    std::fs::write(&victims[1], framed).expect("write");
    let out = vigil(&["query", "--store", path, "-f", "jsonl", "--sql", sql]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for v in &victims {
        let name = v.file_name().expect("name").to_string_lossy().to_string();
        assert!(err.contains(&name), "{name} is not named: {err}");
    }
    let n = jsonl(&String::from_utf8_lossy(&out.stdout))[0]["n"]
        .as_u64()
        .expect("n");
    assert!(n < whole && n > 0, "{n} of {whole}");
}

/// Runs a query with JSON logs; its rows and the "query done" log's fields.
fn query_with_stats(args: &[&str]) -> (Vec<serde_json::Value>, serde_json::Value) {
    let mut all = vec!["--log-format", "json"];
    all.extend_from_slice(args);
    let out = vigil(&all);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vigil {all:?}: {err}");
    let done = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|l| l["fields"].clone())
        .find(|f| f["message"] == "query done")
        .unwrap_or_else(|| panic!("no 'query done' log: {err}"));
    (jsonl(&String::from_utf8_lossy(&out.stdout)), done)
}

fn stat(done: &serde_json::Value, key: &str) -> u64 {
    done[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {done}"))
}

/// Story and process lookups read only the files whose id index may hold the id, and
/// answer exactly as a scan of every file does: with the indexes gone, or damaged, every
/// file is scanned and the rows are the same.
#[test]
fn lookups_skip_the_files_their_id_index_rules_out_and_answer_as_a_full_scan() {
    let h = history();
    let id = a_story();
    let curl = h
        .events
        .iter()
        .find(|e| e["class_uid"] == 1007 && e["process"]["file"]["name"] == "curl")
        .map(|e| s(&e["process"]["uid"]).to_string())
        .expect("a curl");
    let other = h
        .events
        .iter()
        .map(|e| s(&e["metadata"]["correlation_uid"]))
        .find(|c| !c.is_empty() && *c != id)
        .expect("another story")
        .to_string();
    let in_story =
        |e: &serde_json::Value, ids: &[&str]| ids.contains(&s(&e["metadata"]["correlation_uid"]));
    let want_story = h.events.iter().filter(|e| in_story(e, &[&id])).count();
    let want_two = h
        .events
        .iter()
        .filter(|e| in_story(e, &[&id, &other]))
        .count();
    let want_proc = h
        .events
        .iter()
        .filter(|e| {
            e["actor"]["process"]["uid"] == curl.as_str() || e["process"]["uid"] == curl.as_str()
        })
        .count();
    let tables = [
        "process_activity",
        "file_activity",
        "network_activity",
        "dns_activity",
    ];
    let union = |cond: &str| {
        tables
            .iter()
            .map(|t| format!("SELECT metadata.uid AS uid FROM {t} WHERE {cond}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    };
    let q_story = union(&format!("metadata.correlation_uid = '{id}'"));
    let q_two = union(&format!("metadata.correlation_uid IN ('{id}', '{other}')"));
    let dir = support::tmp("query", "idindex");
    let store = dir.join("store");
    copy_dir(&h.store, &store);
    let path = store.to_str().expect("path");
    let parquet: Vec<PathBuf> = walk(&store.join("lake"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    let n_files = parquet.len() as u64;
    assert!(
        parquet.iter().all(|p| p.with_extension("ids").is_file()),
        "every file of the store has its id index"
    );
    let run =
        |sql: &str| query_with_stats(&["query", "--store", path, "-f", "jsonl", "--sql", sql]);
    let sorted = |rows: Vec<serde_json::Value>| {
        let mut v: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
        v.sort();
        v
    };

    // With the indexes: the same rows, most files never opened.
    let (story, done) = run(&q_story);
    assert_eq!(story.len(), want_story);
    let (scanned, pruned) = (
        stat(&done, "files_scanned"),
        stat(&done, "files_skipped_by_id_index"),
    );
    assert_eq!(scanned + pruned, n_files, "{done}");
    assert!(
        scanned * 10 < n_files,
        "a story lives in a few hours: {done}"
    );
    let (two, done) = run(&q_two);
    assert_eq!(two.len(), want_two);
    assert!(stat(&done, "files_skipped_by_id_index") > 0, "{done}");
    let (procs, done) =
        query_with_stats(&["query", "process", &curl, "--store", path, "-f", "jsonl"]);
    assert_eq!(procs.len(), want_proc);
    assert!(stat(&done, "files_skipped_by_id_index") > 0, "{done}");
    // A query the index cannot answer reads every file.
    let (_, done) = run("SELECT count(*) AS n FROM process_activity WHERE process.uid LIKE 'x%'");
    assert_eq!(stat(&done, "files_skipped_by_id_index"), 0, "{done}");

    // Damaged indexes (torn, or garbage) are not believed: every file is read.
    for (i, p) in parquet.iter().enumerate() {
        let ids = p.with_extension("ids");
        let bytes = std::fs::read(&ids).expect("index");
        let damaged = if i % 2 == 0 {
            bytes[..bytes.len() / 2].to_vec()
        } else {
            bytes.iter().map(|b| b ^ 0x5a).collect()
        };
        std::fs::write(&ids, damaged).expect("damage");
    }
    let (story2, done) = run(&q_story);
    assert_eq!(sorted(story2), sorted(story.clone()));
    assert_eq!(stat(&done, "files_skipped_by_id_index"), 0, "{done}");
    // And no indexes at all (a store written before them): the same again.
    for p in &parquet {
        std::fs::remove_file(p.with_extension("ids")).expect("rm index");
    }
    let (story3, done) = run(&q_story);
    assert_eq!(sorted(story3), sorted(story));
    assert_eq!(stat(&done, "files_scanned"), n_files, "{done}");
    let (two3, _) = run(&q_two);
    assert_eq!(sorted(two3), sorted(two));
    let (procs3, _) =
        query_with_stats(&["query", "process", &curl, "--store", path, "-f", "jsonl"]);
    assert_eq!(sorted(procs3), sorted(procs));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read").flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).expect("copy");
        }
    }
}

#[test]
fn a_wrong_query_points_at_the_position_with_a_hint() {
    let out = vigil(&[
        "query",
        "--store",
        store_arg(),
        "process_activity | where actor.process.file.nmae == \"bash\"",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean"), "{err}");
    assert!(err.contains('^'), "{err}");
}

#[test]
fn limit_cuts_and_says_so() {
    let out = vigil(&[
        "query",
        "--store",
        store_arg(),
        "-f",
        "jsonl",
        "--limit",
        "3",
        "process_activity | project process.uid",
    ]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("3"),
        "the cut is not said"
    );
}

/// A Sigma rule on the generated launches: curl fetching an install script.
const RULE: &str = "\
title: Curl fetches an install script
id: 6a7b1c3e-2f0d-4c55-9a1e-0d3b5c7e9f11
status: test
logsource:
  product: linux
  category: process_creation
detection:
  selection:
    Image|endswith: '/curl'
    CommandLine|contains: 'install.sh'
  condition: selection
level: medium
";

#[test]
fn hunt_over_the_store_finds_what_hunt_over_the_json_lines_finds() {
    let h = history();
    let dir = support::tmp("query", "hunt");
    let rule = dir.join("rule.yml");
    std::fs::write(&rule, RULE).expect("rule");
    let rule = rule.to_str().expect("path");
    let want: BTreeSet<String> = h
        .events
        .iter()
        .filter(|e| {
            e["class_uid"] == 1007
                && s(&e["process"]["file"]["path"]).ends_with("/curl")
                && s(&e["process"]["cmd_line"]).contains("install.sh")
        })
        .map(|e| s(&e["process"]["uid"]).to_string())
        .collect();
    assert!(!want.is_empty());
    let from_lines = jsonl(&ok(&[
        "hunt",
        h.lines.to_str().expect("path"),
        "--rules",
        rule,
        "-f",
        "jsonl",
    ]));
    let from_store = jsonl(&ok(&[
        "hunt",
        "--store",
        store_arg(),
        "--rules",
        rule,
        "-f",
        "jsonl",
    ]));
    assert_eq!(from_lines.len(), want.len(), "hunt over the JSON lines");
    assert_eq!(from_store.len(), want.len(), "hunt over the store");
    // A time range: the first day only.
    let first_day: usize = h
        .events
        .iter()
        .filter(|e| {
            e["class_uid"] == 1007
                && s(&e["process"]["file"]["path"]).ends_with("/curl")
                && s(&e["process"]["cmd_line"]).contains("install.sh")
                && e["time"].as_i64().expect("time") < 1_796_083_200_000 - 86_400_000
        })
        .count();
    let ranged = jsonl(&ok(&[
        "hunt",
        "--store",
        store_arg(),
        "--rules",
        rule,
        "-f",
        "jsonl",
        "--to",
        "2026-11-29T23:59:59.999Z",
    ]));
    assert_eq!(ranged.len(), first_day);
}

/// Rules that reach what the column reader must get right: a keyword (which leaves the
/// lineage context out), a parent's field (which reaches it), a list of objects.
const COLUMN_RULES: &[(&str, &str)] = &[
    (
        "keyword.yml",
        "title: Keyword install.sh\nid: 0b8f4f9e-7d1c-4b1e-9d55-2c1b7a3e0a01\nlogsource:\n  product: linux\n  category: process_creation\ndetection:\n  keywords:\n    - 'install.sh'\n  condition: keywords\nlevel: low\n",
    ),
    (
        "parent.yml",
        "title: A shell's child\nid: 0b8f4f9e-7d1c-4b1e-9d55-2c1b7a3e0a02\nlogsource:\n  product: linux\n  category: process_creation\ndetection:\n  selection:\n    ParentImage|endswith: 'sh'\n  condition: selection\nlevel: low\n",
    ),
    (
        "hashes.yml",
        "title: Any hash\nid: 0b8f4f9e-7d1c-4b1e-9d55-2c1b7a3e0a03\nlogsource:\n  product: linux\n  category: process_creation\ndetection:\n  selection:\n    process.file.hashes.algorithm|contains: 'SHA'\n  condition: selection\nlevel: low\n",
    ),
];

/// JSON text with every object's members in name order (the store keeps an event's
/// members in its columns' order, which need not be the order the agent wrote them in).
fn canonical(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let members: BTreeMap<&String, String> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            let inner: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.as_str())))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        serde_json::Value::Array(a) => {
            format!(
                "[{}]",
                a.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

/// The findings of a `-f jsonl` hunt: how many of each rule on each event (its JSON).
fn findings_by_rule_and_event(text: &str) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for f in jsonl(text) {
        let rule = s(&f["finding_info"]["analytic"]["uid"]).to_string();
        let event = &f["evidences"][0]["data"];
        assert!(!rule.is_empty() && event.is_object(), "{f}");
        *out.entry((rule, canonical(event))).or_default() += 1;
    }
    out
}

/// The retro-hunt matches stored rows straight on their columns: every finding of the
/// same rules over the same events as JSON lines, each with the same event, and no other.
/// Rules: Vigil's pack, a few that reach keywords, lineage and lists, and SigmaHQ's Linux
/// rules when the corpus is there.
#[test]
fn hunt_over_the_store_fires_exactly_as_over_the_json_lines_with_the_same_events() {
    let h = history();
    let dir = support::tmp("query", "hunt-columns");
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    for (name, text) in COLUMN_RULES {
        std::fs::write(rules.join(name), text).expect("rule");
    }
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/linux");
    let mut args: Vec<String> = vec![
        "--rules".into(),
        rules.display().to_string(),
        "--rules".into(),
        pack.display().to_string(),
        "-f".into(),
        "jsonl".into(),
        "--min-level".into(),
        "informational".into(),
    ];
    // Without the corpus (outside CI) the skip is recorded, and the pack and this
    // test's rules still run.
    if let Some(sigma) = vigil_testdata::corpus("sigma/rules/linux") {
        args.extend(["--rules".into(), sigma.display().to_string()]);
    }
    let run = |input: &[&str]| {
        let mut all: Vec<&str> = vec!["-q", "hunt"];
        all.extend(input);
        all.extend(args.iter().map(String::as_str));
        findings_by_rule_and_event(&ok(&all))
    };
    let lines = run(&[h.lines.to_str().expect("path")]);
    let stored = run(&["--store", store_arg()]);
    for rule in COLUMN_RULES
        .iter()
        .map(|(_, t)| &t[t.find("id: ").expect("id") + 4..][..36])
    {
        assert!(
            lines.keys().any(|(r, _)| r == rule),
            "the rule {rule} fires on nothing: it tests nothing"
        );
    }
    let only = |a: &BTreeMap<(String, String), usize>, b: &BTreeMap<(String, String), usize>| {
        a.iter()
            .filter(|(k, n)| b.get(*k) != Some(*n))
            .take(3)
            .map(|((rule, event), n)| format!("{n} x {rule} on {event}"))
            .collect::<Vec<_>>()
    };
    assert!(
        lines == stored,
        "{} findings over the JSON lines, {} over the store; over the lines, not the store: {:?}; over the store, not the lines: {:?}",
        lines.values().sum::<usize>(),
        stored.values().sum::<usize>(),
        only(&lines, &stored),
        only(&stored, &lines)
    );
}
