//! `vigil agent --store`: the agent killed with SIGKILL at random moments while the host
//! is busy (a shell running programs and writing files as fast as it can), 50 times.
//! After each restart the store holds every event up to the last durable sequence the
//! agent reported, exactly once (by sequence, and by `metadata.uid` where events have
//! one); a torn tail left by the kill is cut and reported at the restart. Last, a clean
//! run's events (the agent's own output, findings among them) read back from the store
//! exactly as the agent wrote them. Needs root (eBPF); with `CI=true` not being root
//! fails the run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use vigil_store::{read_parquet, row_seq, row_to_json, snapshot, wal};
mod support;

/// Every stored event, by sequence; panics on a sequence or a `metadata.uid` stored
/// twice, or anything unreadable.
fn stored(root: &Path) -> BTreeMap<u64, serde_json::Value> {
    let snap = snapshot(root, None, None);
    let mut out = BTreeMap::new();
    let mut uids = BTreeSet::new();
    let mut take = |b: &arrow_array::RecordBatch| {
        for r in 0..b.num_rows() {
            let seq = row_seq(b, r).expect("seq");
            let ev = row_to_json(b, r);
            if let Some(uid) = ev["metadata"]["uid"].as_str() {
                assert!(
                    uids.insert(uid.to_string()),
                    "metadata.uid {uid} stored twice"
                );
            }
            assert!(out.insert(seq, ev).is_none(), "seq {seq} stored twice");
        }
    };
    let mut problems: Vec<String> = Vec::new();
    for files in snap.files.values() {
        for f in files {
            match read_parquet(&f.path) {
                Ok(bs) => bs.iter().for_each(&mut take),
                Err(p) => problems.push(p.to_string()),
            }
        }
    }
    for bs in snap.log.values() {
        bs.iter().for_each(&mut take);
    }
    // The segment the killed agent was writing may end in a torn record: not a problem
    // until the next agent opens it (and reports it); anything else is.
    let last = wal::segments(root).expect("segments").pop().map(|s| s.path);
    problems.extend(
        snap.problems
            .iter()
            .filter(|p| Some(&p.path) != last.as_ref())
            .map(ToString::to_string),
    );
    assert!(problems.is_empty(), "{problems:?}");
    out
}

/// The last `store_durable_seq` the agent's statistics reported in `events`.
fn reported_durable(events: &Path) -> Option<u64> {
    support::lines(events)
        .ok()?
        .iter()
        .rev()
        .find(|e| e["activity_name"] == "Statistics" && e["log_provider"] == "pipeline")
        .and_then(|e| e["unmapped"]["store_durable_seq"].as_u64())
}

fn agent(dir: &Path, config: &Path, store: &Path, out: &Path, builtin: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("agent");
    if !builtin {
        cmd.arg("--no-builtin-rules");
    }
    cmd.arg("--config")
        .arg(config)
        .arg("--store")
        .arg(store)
        .arg("--output")
        .arg(out)
        .current_dir(dir);
    cmd
}

#[test]
fn sigkill_during_heavy_writing_loses_and_duplicates_nothing_counted_as_written() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let dir = support::tmp("store", "crash");
    let store = dir.join("store");
    let config = dir.join("agent.toml");
    // Small segments, so that kills land during rolls and compactions too.
    std::fs::write(
        &config,
        "[output]\nstats_interval_secs = 1\n\n[store]\nsync_ms = 20\nsegment_mib = 1\nsegment_secs = 1\n",
    )
    .expect("config");
    // The busy host: programs run and files written as fast as a shell can.
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let mut busy = support::Agent(
        Command::new("/bin/sh")
            .arg("-c")
            .arg("i=0; while :; do i=$((i+1)); /bin/true; echo $i > f$((i % 50)); done")
            .current_dir(&work)
            .spawn()
            .expect("workload"),
    );
    let started = Instant::now();
    let mut seed = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut durable = 0u64;
    let mut torn_reported = 0;
    let mut expect_torn: Option<String> = None;
    for round in 0..50 {
        let out = dir.join(format!("events-{round}.jsonl"));
        let log = dir.join(format!("agent-{round}.log"));
        let mut a = support::start_agent(agent(&dir, &config, &store, &out, false), &out, &log);
        // Statistics (with the durable sequence) come every second: most agents live
        // past one, and some are killed before (a quiet host starts an agent quickly;
        // with kills only in its first second, no statistics were ever reported).
        std::thread::sleep(Duration::from_millis(400 + rand(2000)));
        a.0.kill().expect("SIGKILL");
        a.0.wait().expect("reaped");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(name) = expect_torn.take() {
            assert!(
                text.contains("torn tail cut") && text.contains(&name),
                "round {round}: the torn tail of {name} was not reported:\n{text}"
            );
            torn_reported += 1;
        }
        if let Some(d) = reported_durable(&out) {
            assert!(
                d >= durable,
                "the durable sequence went back: {d} < {durable}"
            );
            durable = d;
        }
        // The segment the killed agent was writing: torn if the kill cut a write.
        if let Some(seg) = wal::segments(&store).expect("segments").pop() {
            let scan = wal::read_segment(&seg.path, |_, _| {}).expect("read");
            if scan.damage.is_some() {
                let name = seg
                    .path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .to_string();
                expect_torn = Some(name);
            }
        }
        if round % 10 == 9 {
            let got = stored(&store);
            let seqs: Vec<u64> = got.keys().copied().collect();
            let n = seqs.len() as u64;
            assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "round {round}: a gap");
            assert!(
                n >= durable,
                "round {round}: {n} events stored, {durable} counted as written"
            );
        }
    }
    // A clean run, with the rule pack (findings): what it wrote is what the store holds.
    let before = stored(&store).len() as u64;
    let out = dir.join("events-last.jsonl");
    let log = dir.join("agent-last.log");
    let mut a = support::start_agent(agent(&dir, &config, &store, &out, true), &out, &log);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(support::stop_agent(&mut a), Some(0));
    let _ = busy.0.kill();
    let _ = busy.0.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if let Some(name) = expect_torn.take() {
        assert!(
            text.contains("torn tail cut") && text.contains(&name),
            "{text}"
        );
        torn_reported += 1;
    }
    let written = support::lines(&out).expect("events");
    let got = stored(&store);
    let mine: Vec<&serde_json::Value> = got.range(before + 1..).map(|(_, v)| v).collect();
    assert_eq!(
        mine.len(),
        written.len(),
        "the clean run's events, all stored"
    );
    for (i, (s, w)) in mine.iter().zip(&written).enumerate() {
        assert_eq!(*s, w, "event {i} of the clean run");
    }
    assert!(durable > 0, "some statistics reported a durable sequence");
    eprintln!(
        "50 kills in {:.0?}: {} events stored, {durable} the last durable sequence reported, \
         {torn_reported} torn tails cut and reported, {} events in the clean run",
        started.elapsed(),
        got.len(),
        written.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
