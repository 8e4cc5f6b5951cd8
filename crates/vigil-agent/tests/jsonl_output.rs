//! The agent's JSON lines files across restarts and log rotation.

use std::path::PathBuf;
use vigil_agent::{JsonlSink, OnError, Select, Sink};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-jsonl-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn write(path: &std::path::Path, line: &str) {
    let mut sink =
        JsonlSink::create("events", path, Select::All, OnError::Fail).expect("sink opens");
    sink.write(format!("{line}\n").as_bytes(), 1)
        .expect("write");
    sink.flush().expect("flush");
}

/// The packaged service restarts the agent on the same files: a restart (after a kill,
/// the very moment an attacker wants the record gone) used to truncate them.
#[test]
fn agent_restart_keeps_what_the_earlier_run_wrote() {
    let dir = tmp("restart");
    let path = dir.join("events.jsonl");
    write(&path, r#"{"run":1}"#);
    write(&path, r#"{"run":2}"#);
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "{\"run\":1}\n{\"run\":2}\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// logrotate's copytruncate empties the file under the open sink: the next line must
/// land at its start, not at the old offset behind a hole of zero bytes.
#[test]
fn copytruncate_under_a_running_sink_leaves_no_hole() {
    let dir = tmp("truncate");
    let path = dir.join("events.jsonl");
    let mut sink =
        JsonlSink::create("events", &path, Select::All, OnError::Fail).expect("sink opens");
    sink.write(b"{\"before\":\"rotation, a long line\"}\n", 1)
        .expect("write");
    sink.flush().expect("flush");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    sink.write(b"{\"after\":1}\n", 1).expect("write");
    sink.flush().expect("flush");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        b"{\"after\":1}\n".to_vec()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
