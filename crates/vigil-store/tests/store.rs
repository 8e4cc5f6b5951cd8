//! The store as the agent writes it: durability, recovery after crashes at each step,
//! damaged files reported and skipped, retention.

use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use vigil_event::time::now_ms;
use vigil_store::retention::Limits;
use vigil_store::{compact, layout, merge, read_parquet, row_seq, row_to_json, snapshot, wal};
use vigil_store::{Store, StoreConfig};

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-store-t-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_709_300_700_000;

fn event(i: u64, time: i64) -> Json {
    json!({
        "class_uid": if i.is_multiple_of(3) { 1007 } else { 1001 },
        "activity_id": 1,
        "time": time,
        "metadata": {"uid": format!("uid-{i}"), "version": "1.8.0"},
        "process": {"pid": i, "cmd_line": format!("cmd {i}")},
        "file": {"name": format!("f{i}"), "path": format!("/tmp/f{i}")},
    })
}

fn lines(range: std::ops::Range<u64>, time: impl Fn(u64) -> i64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in range {
        out.extend_from_slice(event(i, time(i)).to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// Every stored event: seq -> metadata.uid, failing on any seq or uid seen twice.
fn stored(root: &Path) -> (BTreeMap<u64, String>, Vec<vigil_store::Problem>) {
    let snap = snapshot(root, None, None);
    let mut out = BTreeMap::new();
    let mut uids = std::collections::BTreeSet::new();
    let mut problems = snap.problems;
    let mut take = |b: &arrow_array::RecordBatch| {
        for r in 0..b.num_rows() {
            let seq = row_seq(b, r).expect("seq");
            let uid = row_to_json(b, r)["metadata"]["uid"]
                .as_str()
                .expect("uid")
                .to_string();
            assert!(uids.insert(uid.clone()), "uid {uid} stored twice");
            assert!(out.insert(seq, uid).is_none(), "seq {seq} stored twice");
        }
    };
    for files in snap.files.values() {
        for f in files {
            match read_parquet(&f.path) {
                Ok(bs) => bs.iter().for_each(&mut take),
                Err(p) => problems.push(p),
            }
        }
    }
    for bs in snap.log.values() {
        bs.iter().for_each(&mut take);
    }
    (out, problems)
}

fn config(root: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(root.to_path_buf());
    c.sync_ms = 5;
    c
}

#[test]
fn events_are_durable_after_sync_and_compacted_after_a_roll() {
    let root = tempdir("durable");
    let (mut store, problems) = Store::open(config(&root), now_ms()).expect("open");
    assert!(problems.is_empty(), "{problems:?}");
    assert!(store.append(lines(0..100, |i| T0 + i as i64 * 60_000), 100));
    assert_eq!(store.sync(), 100);
    let s = store.stats();
    assert_eq!((s.durable_seq, s.written, s.dropped), (100, 100, 0));
    store.close();
    // Reopened: the closed segment is compacted, over two hours (100 minutes).
    let (mut store, problems) = Store::open(config(&root), now_ms()).expect("reopen");
    assert!(problems.is_empty(), "{problems:?}");
    assert!(store.append(lines(100..110, |_| T0), 10));
    assert_eq!(store.sync(), 110);
    store.close();
    let (got, problems) = stored(&root);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(got.len(), 110);
    assert_eq!(got[&1], "uid-0");
    assert_eq!(got[&110], "uid-109");
    let snap = snapshot(&root, Some(&["process_activity"]), None);
    let hours: std::collections::BTreeSet<_> = snap.files["process_activity"]
        .iter()
        .map(|f| f.hour.partition())
        .collect();
    // 13:45 plus 99 minutes: hours 13, 14 and 15.
    assert_eq!(hours.len(), 3, "{hours:?}");
    // A time range prunes by partition.
    let one = snapshot(
        &root,
        Some(&["process_activity"]),
        Some((T0 + 2 * HOUR, T0 + 3 * HOUR)),
    );
    assert!(one
        .files
        .get("process_activity")
        .is_none_or(|f| f.len() <= 1));
    std::fs::remove_dir_all(&root).expect("clean");
}

#[test]
fn a_torn_tail_is_cut_and_reported_and_the_sequence_goes_on() {
    let root = tempdir("torn");
    let (mut store, _) = Store::open(config(&root), now_ms()).expect("open");
    store.append(lines(0..10, |_| T0), 10);
    assert_eq!(store.sync(), 10);
    store.close();
    let seg = wal::segments(&root).expect("segments").pop().expect("one");
    // Half a record more, as a crash part-way through a write leaves it.
    let mut extra = Vec::new();
    wal::frame(&mut extra, 11, b"{\"class_uid\":1001,\"time\":1}");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&seg.path)
        .expect("open");
    f.write_all(&extra[..extra.len() / 2]).expect("write");
    drop(f);
    let (mut store, problems) = Store::open(config(&root), now_ms()).expect("reopen");
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = problems[0].to_string();
    assert!(
        p.contains("torn tail cut") && p.contains("after 10 good records"),
        "{p}"
    );
    assert!(p.contains(&seg.path.display().to_string()), "{p}");
    assert_eq!(store.stats().recovered_cut_bytes, (extra.len() / 2) as u64);
    store.append(lines(10..12, |_| T0), 2);
    assert_eq!(store.sync(), 12);
    store.close();
    let (got, problems) = stored(&root);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );
    std::fs::remove_dir_all(&root).expect("clean");
}

#[test]
fn a_crash_between_the_parquet_rename_and_the_segment_deletion_stores_nothing_twice() {
    let root = tempdir("twice");
    let (mut w, _) = wal::Writer::open(&root, 0, T0).expect("open");
    w.append_lines(&lines(0..50, |i| T0 + (i as i64 % 5) * HOUR))
        .expect("append");
    let seg = w.roll(T0).expect("roll");
    drop(w);
    // Compacted, files renamed into place, then the crash: no mark, segment kept.
    let done = compact::compact_segment(&root, &seg, 0).expect("compact");
    assert_eq!(done.events, 50);
    assert!(done.files.len() >= 4);
    // And one file of it lost its rename (still a temporary file).
    let lost = &done.files[0];
    std::fs::rename(lost, lost.with_file_name(".00000000000000000001.tmp")).expect("rename");
    let (mut store, problems) = Store::open(config(&root), now_ms()).expect("reopen");
    assert!(problems.is_empty(), "{problems:?}");
    store.close();
    assert!(!seg.path.exists(), "the segment is deleted once compacted");
    assert_eq!(compact::read_mark(&root), 50);
    let (got, problems) = stored(&root);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(got.len(), 50, "every event exactly once");
    std::fs::remove_dir_all(&root).expect("clean");
}

#[test]
fn a_damaged_segment_in_the_middle_and_a_corrupt_parquet_file_are_reported_and_skipped() {
    let root = tempdir("damaged");
    let (mut w, _) = wal::Writer::open(&root, 0, T0).expect("open");
    w.append_lines(&lines(0..20, |_| T0)).expect("append");
    let first = w.roll(T0).expect("roll");
    w.append_lines(&lines(20..30, |_| T0 + HOUR))
        .expect("append");
    w.sync().expect("sync");
    drop(w);
    // A byte flipped in the 6th record of the older segment.
    let mut bytes = std::fs::read(&first.path).expect("read");
    let mut offsets = Vec::new();
    let scan = wal::scan(&bytes, |_, _| {});
    assert_eq!(scan.records, 20);
    let mut at = wal::MAGIC.len();
    while at < bytes.len() {
        offsets.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
        at += wal::RECORD_HEADER + len;
    }
    bytes[offsets[5] + wal::RECORD_HEADER + 3] ^= 0x20;
    std::fs::write(&first.path, &bytes).expect("write");
    let (mut store, problems) = Store::open(config(&root), now_ms()).expect("reopen");
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = &problems[0];
    assert_eq!(p.path, first.path);
    assert_eq!(p.offset, Some(offsets[5] as u64));
    assert!(
        p.what.contains("damaged segment") && p.what.contains("checksum"),
        "{p}"
    );
    store.close();
    let (got, problems) = stored(&root);
    assert!(problems.is_empty(), "{problems:?}");
    let want: Vec<u64> = (1..=5).chain(21..=30).collect();
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), want);
    // A Parquet file cut short: reported by path, the others still read.
    let snap = snapshot(&root, None, None);
    let victim = snap.files["file_activity"][0].path.clone();
    let len = std::fs::metadata(&victim).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .expect("open");
    f.set_len(len / 2).expect("cut");
    let (got, problems) = stored(&root);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, victim);
    assert!(!got.is_empty() && got.len() < want.len());
    std::fs::remove_dir_all(&root).expect("clean");
}

#[test]
fn retention_deletes_the_oldest_hours_first_and_says_why() {
    let root = tempdir("retention");
    let now = T0 + 10 * HOUR;
    let (mut w, _) = wal::Writer::open(&root, 0, T0).expect("open");
    w.append_lines(&lines(0..100, |i| T0 + (i as i64 % 10) * HOUR))
        .expect("append");
    let seg = w.roll(T0).expect("roll");
    drop(w);
    let done = compact::compact_segment(&root, &seg, 0).expect("compact");
    compact::finish_segment(&root, &seg, done.last_seq.expect("some")).expect("finish");
    let by_age = Limits {
        max_bytes: 0,
        max_age_hours: 5,
    };
    let (deleted, problems) = vigil_store::retention::apply(&root, by_age, now);
    assert!(problems.is_empty(), "{problems:?}");
    // Hours T0..T0+4 ended 6 to 10 hours before now (and T0+5 exactly 5): 2 classes each.
    let hours: std::collections::BTreeSet<String> = deleted
        .iter()
        .map(|d| {
            d.path
                .parent()
                .expect("date")
                .file_name()
                .expect("n")
                .to_string_lossy()
                .to_string()
                + "/"
                + &d.path.file_name().expect("h").to_string_lossy()
        })
        .collect();
    assert_eq!(hours.len(), 5, "{hours:?}");
    assert!(deleted
        .iter()
        .all(|d| d.reason.contains("age limit") && d.bytes > 0));
    let left: u64 = vigil_store::CLASSES
        .iter()
        .flat_map(|c| vigil_store::read::lake_files(&root, c, None, &mut Vec::new()))
        .map(|f| f.bytes)
        .sum();
    let by_size = Limits {
        max_bytes: left / 2,
        max_age_hours: 0,
    };
    let (deleted, _) = vigil_store::retention::apply(&root, by_size, now);
    assert!(!deleted.is_empty());
    assert!(deleted.iter().all(|d| d.reason.contains("over its limit")));
    let (got, _) = stored(&root);
    // What is left is the newest.
    let oldest_left = got.keys().map(|s| (s - 1) % 10).min().expect("some left");
    assert!(oldest_left >= 5, "{oldest_left}");
    assert!(!layout::partition_dir(&root, "file_activity", layout::Hour::of(T0)).exists());
    std::fs::remove_dir_all(&root).expect("clean");
}

/// A process event carrying every id column with a Bloom filter.
fn ids_event(i: u64) -> Json {
    json!({
        "class_uid": 1007,
        "activity_id": 1,
        "time": T0,
        "metadata": {"uid": format!("ev-{i}"), "correlation_uid": format!("story-{}", i / 10), "version": "1.8.0"},
        "process": {"pid": i, "uid": format!("proc-{i}"), "cmd_line": format!("cmd {i}")},
        "actor": {"process": {"pid": 1, "uid": format!("parent-{}", i / 5)}},
    })
}

/// A log segment of [`ids_event`]s `range`, the log's sequence starting after `floor`,
/// compacted into the lake.
fn compact_ids_events(root: &Path, floor: u64, range: std::ops::Range<u64>) -> compact::Compacted {
    let (mut w, _) = wal::Writer::open(root, floor, T0).expect("open");
    let mut text = Vec::new();
    for i in range {
        text.extend_from_slice(ids_event(i).to_string().as_bytes());
        text.push(b'\n');
    }
    w.append_lines(&text).expect("append");
    let seg = w.roll(T0).expect("roll");
    drop(w);
    let done = compact::compact_segment(root, &seg, 0).expect("compact");
    compact::finish_segment(root, &seg, done.last_seq.expect("last")).expect("finish");
    // The writer's fresh, empty segment.
    for s in wal::segments(root).expect("segments") {
        std::fs::remove_file(s.path).expect("rm");
    }
    done
}

#[test]
fn the_id_columns_have_bloom_filters_that_reject_an_absent_id() {
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};
    let root = tempdir("bloom");
    let done = compact_ids_events(&root, 0, 0..200);
    assert_eq!((done.events, done.files.len()), (200, 1));
    let opts = ReadOptionsBuilder::new()
        .with_reader_properties(
            parquet::file::properties::ReaderProperties::builder()
                .set_read_bloom_filter(true)
                .build(),
        )
        .build();
    let file = std::fs::File::open(&done.files[0]).expect("file");
    let reader = SerializedFileReader::new_with_options(file, opts).expect("parquet");
    let rg = reader.get_row_group(0).expect("row group");
    let paths: Vec<String> = rg
        .metadata()
        .columns()
        .iter()
        .map(|c| c.column_path().string())
        .collect();
    let filter = |path: &str| {
        let i = paths.iter().position(|p| p == path).expect(path);
        rg.get_column_bloom_filter(i)
    };
    let present = [
        ("metadata.correlation_uid", "story-7"),
        ("metadata.uid", "ev-123"),
        ("process.uid", "proc-42"),
        ("actor.process.uid", "parent-39"),
    ];
    for (path, id) in present {
        let f = filter(path).unwrap_or_else(|| panic!("no Bloom filter on {path}"));
        assert!(f.check(id), "{path}: {id} is there");
        assert!(!f.check("no-such-id"), "{path}: an absent id is rejected");
    }
    assert!(
        filter("process.cmd_line").is_none(),
        "only the id columns have filters"
    );
    std::fs::remove_dir_all(&root).expect("clean");
}

/// The files of `root`'s lake with the given extension.
fn lake_files_with(root: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walk(&layout::lake_dir(root))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

#[test]
fn every_file_has_an_id_index_holding_its_ids_and_a_merge_keeps_file_and_index_paired() {
    use vigil_store::ids::IdIndex;
    let root = tempdir("idindex");
    // Four segments of 50 events each, one hour: four files, one per segment.
    let mut floor = 0;
    for s in 0..4u64 {
        floor = compact_ids_events(&root, floor, s * 50..(s + 1) * 50)
            .last_seq
            .expect("last");
    }
    let files = lake_files_with(&root, "parquet");
    assert_eq!(files.len(), 4);
    assert_eq!(
        lake_files_with(&root, "ids"),
        files
            .iter()
            .map(|f| f.with_extension("ids"))
            .collect::<Vec<_>>(),
        "an index beside every file"
    );
    for (s, f) in files.iter().enumerate() {
        let index = IdIndex::read_for(f).expect("a readable index");
        let mine = (s as u64 * 50)..((s as u64 + 1) * 50);
        for i in 0..200u64 {
            let holds = mine.contains(&i);
            // Every id of the file is in its index; the other files' ids are not (the
            // filters' false positives are rare, and these values are fixed).
            assert_eq!(
                index.may_hold("process.uid", &format!("proc-{i}")),
                Some(holds),
                "{}: proc-{i}",
                f.display()
            );
        }
        for i in mine {
            assert_eq!(
                index.may_hold("metadata.correlation_uid", &format!("story-{}", i / 10)),
                Some(true)
            );
            assert_eq!(
                index.may_hold("actor.process.uid", &format!("parent-{}", i / 5)),
                Some(true)
            );
        }
        // Not indexed: one value per event.
        assert_eq!(index.may_hold("metadata.uid", "ev-1"), None);
    }
    let pass = merge::merge_closed(&root, merge::MergeLimits::default(), now_ms());
    assert!(pass.problems.is_empty(), "{:?}", pass.problems);
    assert_eq!(pass.merged.len(), 1);
    let merged = lake_files_with(&root, "parquet");
    assert_eq!(merged.len(), 1);
    // The inputs' indexes went with them; the merged file has its own, with every id.
    assert_eq!(
        lake_files_with(&root, "ids"),
        vec![merged[0].with_extension("ids")]
    );
    let index = IdIndex::read_for(&merged[0]).expect("the merged file's index");
    for i in 0..200u64 {
        assert_eq!(
            index.may_hold("process.uid", &format!("proc-{i}")),
            Some(true)
        );
    }
    assert_eq!(index.may_hold("process.uid", "proc-200"), Some(false));
    std::fs::remove_dir_all(&root).expect("clean");
}

#[test]
fn a_file_written_before_id_indexes_gets_one_at_the_next_merge_pass() {
    use vigil_store::ids::IdIndex;
    let root = tempdir("idbackfill");
    let done = compact_ids_events(&root, 0, 0..100);
    assert_eq!(done.files.len(), 1);
    // As a store written before indexes: the file alone.
    let index = done.files[0].with_extension("ids");
    let written = std::fs::read(&index).expect("written with the file");
    std::fs::remove_file(&index).expect("rm");
    let pass = merge::merge_closed(&root, merge::MergeLimits::default(), now_ms());
    assert!(pass.problems.is_empty(), "{:?}", pass.problems);
    assert!(pass.merged.is_empty(), "one file: nothing to merge");
    assert_eq!(pass.indexed, 1);
    // The same index as compaction writes, from the id columns alone.
    assert_eq!(std::fs::read(&index).expect("made"), written);
    let made = IdIndex::read_for(&done.files[0]).expect("readable");
    assert_eq!(made.may_hold("process.uid", "proc-99"), Some(true));
    assert_eq!(made.may_hold("process.uid", "proc-100"), Some(false));
    // Nothing left to do.
    assert_eq!(
        merge::merge_closed(&root, merge::MergeLimits::default(), now_ms()).indexed,
        0
    );
    // An index that cannot be read (one of the earlier whole-file format, whose magic
    // was "VIGILID1"; one torn by a crash) is made again too.
    let old_format = [b"VIGILID1".as_slice(), &written[8..]].concat();
    let torn = written[..written.len() - 3].to_vec();
    for bad in [old_format, torn] {
        std::fs::write(&index, &bad).expect("write");
        assert!(IdIndex::read_for(&done.files[0]).is_none());
        let pass = merge::merge_closed(&root, merge::MergeLimits::default(), now_ms());
        assert!(pass.problems.is_empty(), "{:?}", pass.problems);
        assert_eq!(pass.indexed, 1);
        assert_eq!(std::fs::read(&index).expect("made"), written);
    }
    std::fs::remove_dir_all(&root).expect("clean");
}

#[test]
fn a_line_malformed_after_its_head_is_rejected_and_the_rest_stored() {
    let root = tempdir("malformed");
    let mut text = lines(0..10, |_| T0);
    // class_uid and time read fine; the rest is not JSON.
    text.extend_from_slice(b"{\"class_uid\":1007,\"time\":1709300700000,\"metadata\":{\"uid\":\n");
    text.extend_from_slice(&lines(10..20, |_| T0));
    let (mut w, _) = wal::Writer::open(&root, 0, T0).expect("open");
    w.append_lines(&text).expect("append");
    w.sync().expect("sync");
    // Read from the log: the bad line left out and reported, all the others there.
    let (got, problems) = stored(&root);
    assert_eq!(got.len(), 20, "{problems:?}");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].what.contains("seq 11"), "{problems:?}");
    // Compacted: the same.
    let seg = w.roll(T0).expect("roll");
    let done = compact::compact_segment(&root, &seg, 0).expect("compact");
    assert_eq!(done.events, 20);
    assert_eq!(done.rejected.len(), 1, "{:?}", done.rejected);
    assert!(
        done.rejected[0].what.contains("seq 11"),
        "{:?}",
        done.rejected
    );
    compact::finish_segment(&root, &seg, done.last_seq.expect("last")).expect("finish");
    let (got, problems) = stored(&root);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(got.len(), 20);
    let temps = walk(&layout::lake_dir(&root))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(temps, 0, "the first attempt's temporary files are deleted");
    std::fs::remove_dir_all(&root).expect("clean");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// A lake of `segments` compacted segments of 30 events each, in 3 partitions (a class
/// and hour each) of 2024, closed long ago: a file per segment in each. Returns the partitions' file counts.
fn lake_of_small_files(root: &Path, segments: u64) -> BTreeMap<PathBuf, usize> {
    add_small_files(root, 0, segments)
}

/// Adds segments `from..from + segments` (30 events each) to the lake of
/// [`lake_of_small_files`]: a file per segment in each of its partitions.
fn add_small_files(root: &Path, from: u64, segments: u64) -> BTreeMap<PathBuf, usize> {
    let mut floor = from * 30;
    for s in from..from + segments {
        let (mut w, _) = wal::Writer::open(root, floor, T0).expect("open");
        let from = s * 30;
        w.append_lines(&lines(from..from + 30, |i| T0 + (i as i64 % 3) * HOUR))
            .expect("append");
        let seg = w.roll(T0).expect("roll");
        drop(w);
        let done = compact::compact_segment(root, &seg, 0).expect("compact");
        let last = done.last_seq.expect("last");
        compact::finish_segment(root, &seg, last).expect("finish");
        floor = last;
        // The writer's fresh, empty segment.
        for s in wal::segments(root).expect("segments") {
            std::fs::remove_file(s.path).expect("rm");
        }
    }
    per_partition(root)
}

fn per_partition(root: &Path) -> BTreeMap<PathBuf, usize> {
    let mut out = BTreeMap::new();
    for p in walk(&layout::lake_dir(root)) {
        if p.extension().is_some_and(|e| e == "parquet") {
            *out.entry(p.parent().expect("dir").to_path_buf())
                .or_default() += 1;
        }
    }
    out
}

#[test]
fn a_closed_hours_files_are_merged_into_one_and_every_event_read_once() {
    let root = tempdir("merge");
    let before = lake_of_small_files(&root, 4);
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(before.values().all(|&n| n == 4), "{before:?}");
    let (want, problems) = stored(&root);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(want.len(), 120);
    // An hour not closed yet (its end within the grace period) is not merged.
    let open = merge::MergeLimits {
        grace_ms: 100_000 * HOUR,
        ..merge::MergeLimits::default()
    };
    assert!(merge::merge_closed(&root, open, now_ms()).merged.is_empty());
    let pass = merge::merge_closed(&root, merge::MergeLimits::default(), now_ms());
    assert!(pass.problems.is_empty(), "{:?}", pass.problems);
    assert_eq!(pass.merged.len(), 3);
    assert!(pass.merged.iter().all(|m| m.inputs == 4));
    assert_eq!(pass.merged.iter().map(|m| m.rows).sum::<u64>(), 120);
    let after = per_partition(&root);
    assert!(after.values().all(|&n| n == 1), "{after:?}");
    let (got, problems) = stored(&root);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(got, want, "the same events, each once");
    // A second pass has nothing to do.
    let again = merge::merge_closed(&root, merge::MergeLimits::default(), now_ms());
    assert!(again.merged.is_empty() && again.leftovers == 0);
    std::fs::remove_dir_all(&root).expect("clean");
}

#[test]
fn a_crash_between_the_merged_files_rename_and_the_inputs_deletion_reads_nothing_twice() {
    let root = tempdir("mergecrash");
    lake_of_small_files(&root, 3);
    let (want, _) = stored(&root);
    // Keep copies of every input, merge, then put them back: as if the merge crashed
    // after its rename, before deleting its inputs.
    let inputs: Vec<(PathBuf, Vec<u8>)> = walk(&layout::lake_dir(&root))
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).expect("read");
            (p, b)
        })
        .collect();
    // And a temporary file of a merge that crashed before its rename.
    let some_dir = inputs[0].0.parent().expect("dir").to_path_buf();
    let pass = merge::merge_closed(&root, merge::MergeLimits::default(), now_ms());
    assert_eq!(pass.merged.len(), 3);
    for (p, b) in &inputs {
        std::fs::write(p, b).expect("restore");
    }
    std::fs::write(some_dir.join(".merge-00000000000000000001.tmp"), b"half").expect("tmp");
    assert!(
        per_partition(&root).values().all(|&n| n == 4),
        "3 inputs and the merged file"
    );
    // Read: every event once (the inputs are left out), in the log's view too.
    let (got, problems) = stored(&root);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(got, want);
    let (mut store, problems) = Store::open(config(&root), now_ms()).expect("reopen");
    assert!(problems.is_empty(), "{problems:?}");
    // The store's compactor finishes the merge at open: the inputs deleted, nothing
    // merged twice.
    store.close();
    assert!(per_partition(&root).values().all(|&n| n == 1));
    assert!(!some_dir.join(".merge-00000000000000000001.tmp").exists());
    let (got, problems) = stored(&root);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(got, want);
    std::fs::remove_dir_all(&root).expect("clean");
}

/// The bug: a merged hour that kept receiving files (a server's lake fed from agents'
/// backlogs) was rewritten whole at every merge pass, each event once per late file.
#[test]
fn a_merged_file_is_not_rewritten_for_each_late_file_of_its_hour() {
    let root = tempdir("mergetier");
    lake_of_small_files(&root, 4);
    let pass = merge::merge_closed(&root, merge::MergeLimits::default(), now_ms());
    assert_eq!(pass.merged.len(), 3);
    let merged: Vec<PathBuf> = walk(&layout::lake_dir(&root));
    // One late file per partition: the merged file, larger, is left as it is.
    add_small_files(&root, 4, 1);
    let pass = merge::merge_closed(&root, merge::MergeLimits::default(), now_ms());
    assert!(pass.problems.is_empty(), "{:?}", pass.problems);
    assert!(pass.merged.is_empty(), "{:?}", pass.merged);
    assert!(merged.iter().all(|p| p.exists()), "not rewritten");
    assert!(per_partition(&root).values().all(|&n| n == 2));
    // Late files that add up to the merged file's size are merged into it.
    add_small_files(&root, 5, 6);
    let pass = merge::merge_closed(&root, merge::MergeLimits::default(), now_ms());
    assert_eq!(pass.merged.len(), 3, "{:?}", pass.merged);
    assert!(
        pass.merged.iter().all(|m| m.inputs == 8),
        "{:?}",
        pass.merged
    );
    assert!(per_partition(&root).values().all(|&n| n == 1));
    let (got, problems) = stored(&root);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(got.len(), 11 * 30, "every event once");
    std::fs::remove_dir_all(&root).expect("clean");
}

#[test]
fn a_merge_makes_files_of_a_bounded_size() {
    let root = tempdir("mergesize");
    lake_of_small_files(&root, 6);
    let (want, _) = stored(&root);
    // The classes' files differ in size; the bound is set from the partition whose
    // smallest file is the largest, where three files fit within it and four do not.
    let mut smallest: BTreeMap<PathBuf, u64> = BTreeMap::new();
    for p in lake_files_with(&root, "parquet") {
        let len = std::fs::metadata(&p).expect("meta").len();
        let dir = p.parent().expect("partition").to_path_buf();
        let e = smallest.entry(dir).or_insert(u64::MAX);
        *e = (*e).min(len);
    }
    let (widest, floor) = smallest
        .iter()
        .max_by_key(|(_, &len)| len)
        .map(|(d, &len)| (d.clone(), len))
        .expect("files");
    let largest = lake_files_with(&root, "parquet")
        .iter()
        .filter(|p| p.parent() == Some(widest.as_path()))
        .map(|p| std::fs::metadata(p).expect("meta").len())
        .max()
        .expect("files");
    assert!(
        4 * floor > 3 * largest,
        "files of one partition of similar sizes"
    );
    let limits = merge::MergeLimits {
        max_bytes: 3 * largest,
        ..merge::MergeLimits::default()
    };
    let pass = merge::merge_closed(&root, limits, now_ms());
    assert!(pass.problems.is_empty(), "{:?}", pass.problems);
    let after = per_partition(&root);
    assert!((2..=3).contains(&after[&widest]), "{after:?}");
    // Every partition's files were merged (how far depends on its files' sizes).
    assert!(after.values().all(|&n| n < 6), "{after:?}");
    let (got, problems) = stored(&root);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(got, want);
    std::fs::remove_dir_all(&root).expect("clean");
}
