//! The fallback sensor for real (netlink proc connector + fanotify), as the agent runs
//! it on kernels that refuse eBPF. Needs root; with `CI=true` not being root fails.

mod support;

use std::process::Command;
use std::time::Duration;
use support::{collect, exit_of, nonce};
use vigil_sensor::{Mode, SensorBackend, SensorConfig};
use vigil_testdata::root_or_skip;

#[test]
fn fallback_sees_exec_fork_exit_and_written_files() {
    if !root_or_skip() {
        return;
    }
    let config = SensorConfig {
        mode: Mode::Fallback,
        ..SensorConfig::default()
    };
    let mut sensor = SensorBackend::start(config).expect("fallback starts");
    assert_eq!(sensor.mode_name(), "netlink+fanotify");
    let start = sensor.start_event().to_json();
    assert_eq!(start["log_provider"], "netlink+fanotify");

    let dir = std::env::temp_dir().join(nonce());
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("written.txt");
    // sh forks sleep (alive long enough for /proc to be read), writes a file, exits 4.
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "/bin/sleep 0.3; echo data > {}; exit 4",
            file.display()
        ))
        .spawn()
        .expect("spawn");
    let sh = child.id();
    let path = file.to_string_lossy().into_owned();
    // Read events while the processes run: the fallback learns argv from /proc.
    let events = collect(&mut sensor, Duration::from_secs(10), |ev| {
        exit_of(ev, sh).is_some() && ev.iter().any(|e| e["file"]["path"] == path.as_str())
    });
    assert_eq!(child.wait().expect("wait").code(), Some(4));

    let sleep = events
        .iter()
        .find(|e| e["class_uid"] == 1007 && e["process"]["cmd_line"] == "/bin/sleep 0.3")
        .unwrap_or_else(|| {
            let seen: Vec<String> = events
                .iter()
                .filter(|e| e["class_uid"] == 1007)
                .map(|e| {
                    format!(
                        "{} {} {}",
                        e["launch_type"], e["process"]["pid"], e["process"]["cmd_line"]
                    )
                })
                .collect();
            panic!("no exec of sleep (argv from /proc) among {seen:#?}")
        });
    assert_eq!(sleep["process"]["parent_process"]["pid"], sh);
    assert_eq!(sleep["process"]["user"]["uid"], "0");
    assert!(
        sleep["process"]["file"]["hashes"][0]["value"].is_string(),
        "hashed"
    );
    let sleep_pid = sleep["process"]["pid"].as_u64().expect("pid") as u32;
    // sh forked a child that exec'd sleep at once: one event for both (fork coalescing).
    assert_eq!(sleep["launch_type"], "Spawn");
    assert!(
        !events
            .iter()
            .any(|e| e["launch_type"] == "Fork" && e["process"]["pid"] == sleep_pid),
        "the fork is not reported apart"
    );
    assert_eq!(
        exit_of(&events, sleep_pid).expect("sleep exits")["exit_code"],
        0
    );
    assert_eq!(exit_of(&events, sh).expect("sh exits")["exit_code"], 4);
    let written = events
        .iter()
        .find(|e| e["class_uid"] == 1001 && e["file"]["path"] == path.as_str())
        .expect("fanotify close-after-write");
    assert_eq!(written["activity_id"], 3);
    assert_eq!(written["file"]["xattributes"]["close_write"], true);
    assert_eq!(written["actor"]["process"]["pid"], sh);
    let stop = sensor.stop_event().to_json();
    assert_eq!(stop["activity_name"], "Stop");
    let _ = std::fs::remove_dir_all(dir);

    // Every event the fallback writes is valid OCSF too.
    if let Some(schema_dir) = vigil_testdata::corpus("ocsf-schema") {
        let schema = vigil_ocsf_schema::Schema::load(&schema_dir).expect("schema");
        for e in events.iter().chain([&start, &stop]) {
            let v = schema.validate(e);
            assert!(v.is_empty(), "invalid: {v:?}\n{e:#}");
        }
    }
}

#[test]
fn auto_mode_prefers_ebpf_here() {
    if !root_or_skip() {
        return;
    }
    // This kernel has BTF and tracepoints: auto picks eBPF (fentry and BPF-LSM are
    // refused here, and that is not a reason to fall back).
    let sensor = SensorBackend::start(SensorConfig::default()).expect("starts");
    assert_eq!(sensor.mode_name(), "ebpf");
    let detail = sensor.start_event().to_json()["status_detail"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        detail.contains("fentry") && detail.contains("BPF-LSM"),
        "{detail}"
    );
}
