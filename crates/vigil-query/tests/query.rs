//! `vigil-query` over real OCSF events (the example attack story), as JSON lines and as
//! Parquet: the pipe language and SQL give the same answers, dotted paths reach nested
//! fields, typos are reported at their place, and a corrupt Parquet file is left out.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_query::datafusion;
use vigil_query::{Engine, Language, QueryError, Sources, Stopped};

/// 2026-12-06T22:00:00Z.
const T0: i64 = 1_796_594_400_000;

fn scratch(name: &str) -> vigil_testdata::TempDir {
    vigil_testdata::TempDir::new("query-test", name)
}

/// The example story as JSON lines, every event in story `story-1`.
fn story_jsonl(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for ev in vigil_event::example::attack_story(T0) {
        let mut v = serde_json::to_value(&ev).expect("serializes");
        v["metadata"]["correlation_uid"] = "story-1".into();
        text.push_str(&v.to_string());
        text.push('\n');
    }
    let p = dir.join("events.jsonl");
    std::fs::write(&p, text).expect("write");
    p
}

fn engine_over(paths: &[&Path]) -> Engine {
    let mut s = Sources::default();
    for p in paths {
        s.add_path(p).expect("adds");
    }
    Engine::new(s, 2).expect("engine")
}

/// The rows as text, `|` between columns.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let opts = FormatOptions::default();
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("formats"))
            .collect();
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .zip(&fmts)
                .map(|(c, f)| {
                    if c.is_null(r) {
                        "null".into()
                    } else {
                        f.value(r).to_string()
                    }
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

fn query(e: &mut Engine, q: &str) -> Vec<String> {
    let o = e
        .run(q, Language::guess(q), None, None)
        .unwrap_or_else(|err| panic!("{q}: {err}"));
    rows(&o.batches)
}

/// Writes the tables of `e` (from JSON lines) as Parquet files in the store's layout.
fn to_parquet(e: &mut Engine, dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for t in e.table_names() {
        let o = e
            .run(&format!("SELECT * FROM \"{t}\""), Language::Sql, None, None)
            .expect("reads");
        let d = dir.join(format!("lake/class={t}/date=2026-12-06/hour=22"));
        std::fs::create_dir_all(&d).expect("dir");
        let p = d.join("1-100.parquet");
        let f = std::fs::File::create(&p).expect("create");
        let mut w = ArrowWriter::try_new(f, o.batches[0].schema(), None).expect("writer");
        for b in &o.batches {
            w.write(b).expect("write");
        }
        w.close().expect("close");
        out.push(p);
    }
    out
}

#[test]
fn the_issue_example_counts_curl_by_host_in_both_languages() {
    let dir = scratch("example");
    let jsonl = story_jsonl(&dir);
    let mut e = engine_over(&[&jsonl]);
    let pipe = query(
        &mut e,
        r#"process_activity | where process.file.name == "curl" | count by device.hostname"#,
    );
    assert_eq!(pipe, vec!["web-01|1"]);
    let sql = query(
        &mut e,
        "SELECT device.hostname, count(*) FROM process_activity WHERE process.file.name = 'curl' GROUP BY device.hostname",
    );
    assert_eq!(sql, pipe);
}

#[test]
fn where_operators_select_the_right_rows() {
    let dir = scratch("ops");
    let jsonl = story_jsonl(&dir);
    let mut e = engine_over(&[&jsonl]);
    let names = |e: &mut Engine, w: &str| {
        query(
            e,
            &format!("process_activity | where {w} | distinct process.name | sort by process.name"),
        )
    };
    assert_eq!(
        names(&mut e, r#"process.cmd_line contains "/dev/tcp""#),
        vec!["bash"]
    );
    assert_eq!(
        names(&mut e, r#"process.file.path startswith "/tmp/""#),
        vec!["kworker"]
    );
    assert_eq!(
        names(&mut e, r#"process.name in ("sudo", "insmod")"#),
        vec!["insmod", "sudo"]
    );
    assert_eq!(
        names(
            &mut e,
            r#"process.cmd_line matches "^(chmod|sudo) " and not process.name == "sudo""#
        ),
        vec!["chmod"]
    );
    assert_eq!(
        names(
            &mut e,
            r#"activity_id == 2 or (process.name == "dash" and process.pid > 4000)"#
        ),
        vec!["bash", "dash"]
    );
    // A 100% in the text is a literal percent sign, not a wildcard.
    assert!(names(&mut e, r#"process.cmd_line contains "%""#).is_empty());
}

#[test]
fn summarize_sort_take_and_time_filters() {
    let dir = scratch("summarize");
    let jsonl = story_jsonl(&dir);
    let mut e = engine_over(&[&jsonl]);
    let got = query(
        &mut e,
        "process_activity | summarize count(), min(time), max(time) by activity_name | sort by count desc | take 1",
    );
    assert_eq!(got.len(), 1);
    assert!(got[0].starts_with("Launch|8|"), "{got:?}");
    let between = query(
        &mut e,
        r#"process_activity | between "2026-12-06T22:00:21Z" and "2026-12-06T22:00:21.100Z" | project process.name | sort by process.name"#,
    );
    assert_eq!(between, vec!["curl", "dash"]);
    // Everything in the story is older than an hour from now (the example is fixed in
    // time): `since 1h` keeps nothing unless the clock is near the example's time.
    let recent = query(&mut e, "process_activity | since 1h | count");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    if now > T0 + 2 * 3_600_000 {
        assert_eq!(recent, vec!["0"]);
    }
}

#[test]
fn a_typo_gets_the_nearest_field_and_a_caret() {
    let dir = scratch("typo");
    let jsonl = story_jsonl(&dir);
    let e = engine_over(&[&jsonl]);
    let q = r#"process_activity | where actor.process.file.nme == "curl""#;
    let Err(QueryError::Syntax(msg)) = e.to_sql(q, Language::Pipe) else {
        panic!("not a syntax error");
    };
    assert_eq!(
        msg,
        "1:26: no field actor.process.file.nme in process_activity\n  \
         process_activity | where actor.process.file.nme == \"curl\"\n  \
         \x20                        ^^^^^^^^^^^^^^^^^^^^^^\n  \
         hint: did you mean actor.process.file.name?"
    );
}

#[test]
fn sql_typos_are_explained_too() {
    let dir = scratch("sqltypo");
    let jsonl = story_jsonl(&dir);
    let mut e = engine_over(&[&jsonl]);
    let err = e
        .run(
            "SELECT devise.hostname FROM process_activity",
            Language::Sql,
            None,
            None,
        )
        .expect_err("no such field");
    let msg = err.to_string();
    assert!(msg.contains("did you mean device.hostname?"), "{msg}");
    assert!(msg.contains("^^^^"), "{msg}");
    let err = e
        .run("SELECT * FROM proces_activity", Language::Sql, None, None)
        .expect_err("no such table");
    assert!(
        err.to_string().contains("did you mean process_activity?"),
        "{err}"
    );
    let err = e
        .run(
            "SELECT * FROM process_activity WHER 1",
            Language::Sql,
            None,
            None,
        )
        .expect_err("syntax");
    assert!(err.to_string().starts_with("1:"), "{err}");
}

#[test]
fn parquet_answers_as_json_lines_do() {
    let dir = scratch("parquet");
    let jsonl = story_jsonl(&dir);
    let mut from_json = engine_over(&[&jsonl]);
    to_parquet(&mut from_json, &dir.join("store"));
    let mut from_parquet = engine_over(&[&dir.join("store")]);
    assert_eq!(from_parquet.table_names(), from_json.table_names());
    for q in [
        "process_activity | count by process.name | sort by process.name",
        "network_activity | project dst_endpoint.ip, dst_endpoint.port | sort by dst_endpoint.port",
        "SELECT query.hostname FROM dns_activity",
    ] {
        assert_eq!(query(&mut from_parquet, q), query(&mut from_json, q), "{q}");
    }
}

#[test]
fn a_corrupt_parquet_file_is_reported_and_the_rest_still_queried() {
    let dir = scratch("corrupt");
    let jsonl = story_jsonl(&dir);
    let mut from_json = engine_over(&[&jsonl]);
    let files = to_parquet(&mut from_json, &dir.join("store"));
    // A second process_activity file whose footer is cut off.
    let good = files
        .iter()
        .find(|p| p.to_string_lossy().contains("process_activity"))
        .expect("file");
    let bytes = std::fs::read(good).expect("read");
    let torn = good.with_file_name("101-200.parquet");
    std::fs::write(&torn, &bytes[..bytes.len() - 10]).expect("write");
    let mut s = Sources::default();
    s.add_path(&dir.join("store")).expect("adds");
    assert_eq!(s.skipped.len(), 1);
    assert_eq!(s.skipped[0].path, torn);
    assert!(
        s.skipped[0].reason.contains("footer"),
        "{}",
        s.skipped[0].reason
    );
    let mut e = Engine::new(s, 2).expect("engine");
    assert_eq!(query(&mut e, "process_activity | count"), vec!["9"]);
}

#[test]
fn damaged_data_found_while_reading_names_the_file_and_the_query_runs_without_it() {
    let dir = scratch("damaged");
    let jsonl = story_jsonl(&dir);
    let mut from_json = engine_over(&[&jsonl]);
    let files = to_parquet(&mut from_json, &dir.join("store"));
    let good = files
        .iter()
        .find(|p| p.to_string_lossy().contains("process_activity"))
        .expect("file");
    // A copy with its footer intact and its data pages overwritten.
    let mut bytes = std::fs::read(good).expect("read");
    let n = bytes.len();
    let footer = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    for b in &mut bytes[4..n - 8 - footer] {
        *b = 0xA5;
    }
    let bad = good.with_file_name("101-200.parquet");
    std::fs::write(&bad, &bytes).expect("write");
    let mut e = engine_over(&[&dir.join("store")]);
    let o = e
        .run(
            "SELECT count(*) FROM process_activity WHERE process.cmd_line LIKE '%x%'",
            Language::Sql,
            None,
            None,
        )
        .expect("runs without the damaged file");
    assert_eq!(o.failed_files.len(), 1, "{:?}", o.failed_files);
    assert_eq!(o.failed_files[0].path, bad);
    assert_eq!(rows(&o.batches), vec!["5"]);
}

#[test]
fn limit_cuts_and_says_so() {
    let dir = scratch("limit");
    let jsonl = story_jsonl(&dir);
    let mut e = engine_over(&[&jsonl]);
    let o = e
        .run(
            "process_activity | project process.name",
            Language::Pipe,
            Some(3),
            None,
        )
        .expect("runs");
    assert_eq!(o.stopped, Stopped::Limit(3));
    assert_eq!(rows(&o.batches).len(), 3);
    let o = e
        .run(
            "process_activity | project process.name",
            Language::Pipe,
            Some(100),
            None,
        )
        .expect("runs");
    assert_eq!(o.stopped, Stopped::No);
    assert_eq!(rows(&o.batches).len(), 9);
}

#[test]
fn timeout_stops_a_long_query_and_says_so() {
    let mut e = Engine::new(Sources::default(), 2).expect("engine");
    // A cross join of a large range with itself: runs for minutes unless stopped.
    let o = e
        .run(
            "SELECT count(*) FROM range(100000000) a, range(100000000) b WHERE a.value + b.value = 7",
            Language::Sql,
            None,
            Some(Duration::from_millis(300)),
        )
        .expect("stops, not fails");
    assert_eq!(o.stopped, Stopped::Timeout(Duration::from_millis(300)));
    assert!(o.elapsed < Duration::from_secs(30), "{:?}", o.elapsed);
}

/// A query only reads: DDL (an external table over another directory: another
/// organisation's lake, on a server), DML, `COPY ... TO` (a file written) and `SET` are
/// refused with an error, and nothing is written.
#[test]
fn statements_that_define_write_or_set_are_refused() {
    let dir = scratch("read-only");
    let p = story_jsonl(dir.as_path());
    let mut e = engine_over(&[&p]);
    let out = dir.as_path().join("copied.parquet");
    let elsewhere = dir.as_path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    for q in [
        format!(
            "CREATE EXTERNAL TABLE other STORED AS PARQUET LOCATION '{}'",
            elsewhere.display()
        ),
        format!("COPY (SELECT 1) TO '{}' STORED AS PARQUET", out.display()),
        "INSERT INTO process_activity SELECT * FROM process_activity".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "DROP TABLE process_activity".to_string(),
    ] {
        let r = e.run(&q, Language::Sql, None, None);
        assert!(r.is_err(), "{q} must be refused");
    }
    assert!(!out.exists(), "nothing written");
    assert!(!query(&mut e, "SELECT count(*) FROM process_activity").is_empty());
}
