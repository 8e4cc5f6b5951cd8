//! The sensor for real: load the eBPF programs, cause activity with known properties,
//! and check the exact events. Needs root; with `CI=true` not being root fails the run.

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};
mod support;

use support::{collect, exit_of, nonce};
use vigil_sensor::{Mode, SensorBackend, SensorConfig};
use vigil_testdata::root_or_skip;

/// The eBPF sensor, never the fallback.
fn ebpf() -> SensorConfig {
    SensorConfig {
        mode: Mode::Ebpf,
        ..SensorConfig::default()
    }
}

/// One sensor at a time: the burst test must not starve the others.
static SERIAL: Mutex<()> = Mutex::new(());

fn sha256_of(path: &str) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Whether an event reports an exec: on its own (`Exec`) or with its fork (`Spawn`).
fn is_exec(e: &Value) -> bool {
    e["class_uid"] == 1007 && (e["launch_type"] == "Exec" || e["launch_type"] == "Spawn")
}

fn exec_events(events: &[Value], ppid: u32) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| is_exec(e) && e["actor"]["process"]["pid"] == ppid)
        .collect()
}

/// Runs `sh -c script` in `dir` and collects the sensor's events until the shell's
/// exit: the shell's pid and the events.
fn run_sh(sensor: &mut SensorBackend, dir: &std::path::Path, script: &str) -> (u32, Vec<Value>) {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .spawn()
        .expect("spawn sh");
    let sh = child.id();
    child.wait().expect("wait");
    let events = collect(sensor, Duration::from_secs(10), |ev| {
        exit_of(ev, sh).is_some()
    });
    (sh, events)
}

/// Root, one sensor at a time, and a running sensor with `config`; `None` (the test is
/// skipped, and says so) without root.
fn sensor_with(
    config: SensorConfig,
) -> Option<(std::sync::MutexGuard<'static, ()>, SensorBackend)> {
    if !root_or_skip() {
        return None;
    }
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Some((guard, SensorBackend::start(config).expect("sensor starts")))
}

/// A new, empty directory of this test's own.
fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(nonce());
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn nonces_are_unique() {
    let mut seen = std::collections::HashSet::new();
    let all: Vec<String> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| s.spawn(|| (0..1000).map(|_| nonce()).collect::<Vec<_>>()))
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("thread"))
            .collect()
    });
    for n in &all {
        assert!(seen.insert(n.as_str()), "{n} twice");
    }
}

#[test]
fn exec_with_argv_cwd_user_hash_and_parent_then_exit_code() {
    let Some((_g, mut sensor)) = sensor_with(ebpf()) else {
        return;
    };
    let dir = temp_dir();
    let marker = nonce();
    // sh forks and execs echo (a known binary, known argv, known cwd), then exits 3.
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "/bin/echo {marker} 'two words' > /dev/null; exit 3"
        ))
        .current_dir(&dir)
        .spawn()
        .expect("spawn sh");
    let sh_pid = child.id();
    let status = child.wait().expect("wait sh");
    assert_eq!(status.code(), Some(3));

    let events = collect(&mut sensor, Duration::from_secs(10), |ev| {
        exit_of(ev, sh_pid).is_some()
    });
    let execs = exec_events(&events, sh_pid);
    let echo = execs
        .iter()
        .find(|e| {
            e["process"]["cmd_line"]
                .as_str()
                .is_some_and(|c| c.contains(&marker))
        })
        .unwrap_or_else(|| {
            panic!(
                "no exec of echo under sh {sh_pid} in {} events",
                events.len()
            )
        });
    let p = &echo["process"];
    assert_eq!(p["cmd_line"], format!("/bin/echo {marker} two words"));
    let real_echo = std::fs::canonicalize("/bin/echo").expect("echo exists");
    assert_eq!(p["file"]["path"], real_echo.to_string_lossy().as_ref());
    assert_eq!(p["file"]["hashes"][0]["algorithm"], "SHA-256");
    assert_eq!(p["file"]["hashes"][0]["value"], sha256_of("/bin/echo"));
    assert_eq!(p["working_directory"], dir.to_string_lossy().as_ref());
    assert_eq!(p["user"]["uid"], "0");
    assert_eq!(p["user"]["name"], "root");
    assert_eq!(p["xattributes"]["filename"], "/bin/echo");
    // The parent is the shell, its parent this test process.
    assert_eq!(p["parent_process"]["pid"], sh_pid);
    assert!(p["parent_process"]["cmd_line"]
        .as_str()
        .is_some_and(|c| c.contains(&marker)));
    assert!(
        p["parent_process"].get("parent_process").is_none(),
        "one level: the rest is in ancestry"
    );
    assert_eq!(p["ancestry"][0]["pid"], sh_pid);
    assert_eq!(p["ancestry"][1]["pid"], std::process::id());
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");
    let uid_prefix = format!("{}-{}-", boot_id.trim(), p["pid"]);
    assert!(
        p["uid"]
            .as_str()
            .is_some_and(|u| u.starts_with(&uid_prefix)),
        "{} / {uid_prefix}",
        p["uid"]
    );

    let echo_pid = p["pid"].as_u64().expect("pid") as u32;
    let echo_exit = exit_of(&events, echo_pid).expect("echo exits");
    assert_eq!(echo_exit["exit_code"], 0);
    assert_eq!(
        echo_exit["process"]["uid"], p["uid"],
        "the stable uid is the same at exec and exit"
    );
    let sh_exit = exit_of(&events, sh_pid).expect("sh exits");
    assert_eq!(sh_exit["exit_code"], 3);
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `sh -c "/bin/true MARKER; (exit 5)"` under `sensor`: the events, the exec of
/// true, and the subshell's pid (a fork without exec).
fn fork_exec_and_bare_fork(mut sensor: SensorBackend) -> (Vec<Value>, Value, u32) {
    let marker = nonce();
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("/bin/true {marker}; (exit 5); exit 0"))
        .spawn()
        .expect("spawn");
    let sh_pid = child.id();
    child.wait().expect("wait");
    let mut events = collect(&mut sensor, Duration::from_secs(10), |ev| {
        exit_of(ev, sh_pid).is_some()
    });
    // Stopping reports what is still held back.
    sensor
        .finish(&mut |e| events.push(e.to_json()))
        .expect("finish");
    let truth = events
        .iter()
        .find(|e| is_exec(e) && e["process"]["cmd_line"] == format!("/bin/true {marker}"))
        .cloned()
        .unwrap_or_else(|| panic!("no exec of true in {} events", events.len()));
    let subshell = events
        .iter()
        .find(|e| {
            e["class_uid"] == 1007
                && e["activity_id"] == 2
                && e["exit_code"] == 5
                && e["process"]["parent_process"]["pid"] == sh_pid
        })
        .and_then(|e| e["process"]["pid"].as_u64())
        .expect("the subshell exits 5") as u32;
    (events, truth, subshell)
}

fn position(events: &[Value], what: impl Fn(&Value) -> bool) -> Option<usize> {
    events.iter().position(what)
}

#[test]
fn fork_then_exec_is_one_spawn_event_and_a_bare_fork_stays_a_fork() {
    let Some((_g, sensor)) = sensor_with(SensorConfig {
        coalesce_fork_ms: 100,
        ..ebpf()
    }) else {
        return;
    };
    let (events, truth, subshell) = fork_exec_and_bare_fork(sensor);
    assert_eq!(truth["launch_type"], "Spawn");
    assert_eq!(truth["launch_type_id"], 1);
    let pid = truth["process"]["pid"].clone();
    assert!(
        !events
            .iter()
            .any(|e| e["launch_type"] == "Fork" && e["process"]["pid"] == pid),
        "the fork of the exec'd child is not reported apart"
    );
    assert!(
        truth["process"]["created_time"].as_i64() <= truth["time"].as_i64(),
        "the process started (forked) before its exec"
    );
    // The subshell never execs: its fork is reported, as a Fork, before its exit.
    let fork = position(&events, |e| {
        e["launch_type"] == "Fork" && e["process"]["pid"] == subshell
    })
    .expect("the subshell's fork is reported");
    let exit = position(&events, |e| {
        e["activity_id"] == 2 && e["process"]["pid"] == subshell
    })
    .expect("exit");
    assert!(fork < exit, "fork before exit");
}

#[test]
fn without_coalescing_every_fork_and_exec_is_reported_apart() {
    let Some((_g, sensor)) = sensor_with(SensorConfig {
        coalesce_fork_ms: 0,
        ..ebpf()
    }) else {
        return;
    };
    let (events, truth, subshell) = fork_exec_and_bare_fork(sensor);
    assert_eq!(truth["launch_type"], "Exec");
    let pid = truth["process"]["pid"].clone();
    let fork = position(&events, |e| {
        e["launch_type"] == "Fork" && e["process"]["pid"] == pid
    })
    .expect("the fork of true's process");
    let exec = position(&events, |e| *e == truth).expect("exec");
    assert!(fork < exec);
    assert!(events
        .iter()
        .any(|e| e["launch_type"] == "Fork" && e["process"]["pid"] == subshell));
}

#[test]
fn killed_by_signal_and_fork() {
    let Some((_g, mut sensor)) = sensor_with(ebpf()) else {
        return;
    };
    // sh forks a subshell (no exec) that kills itself with SIGKILL.
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg("(kill -9 $(exec sh -c 'echo $PPID')) ; true")
        .spawn()
        .expect("spawn");
    let sh_pid = child.id();
    child.wait().expect("wait");
    let events = collect(&mut sensor, Duration::from_secs(10), |ev| {
        exit_of(ev, sh_pid).is_some()
    });
    let forks: Vec<&Value> = events
        .iter()
        .filter(|e| e["launch_type"] == "Fork" && e["actor"]["process"]["pid"] == sh_pid)
        .collect();
    assert!(!forks.is_empty(), "sh forked a subshell");
    let sub_pid = forks[0]["process"]["pid"].as_u64().expect("pid") as u32;
    assert_eq!(
        forks[0]["process"]["file"]["path"],
        std::fs::canonicalize("/bin/sh")
            .expect("sh")
            .to_string_lossy()
            .as_ref()
    );
    let killed = exit_of(&events, sub_pid).expect("subshell exit");
    assert_eq!(killed["process"]["xattributes"]["signal"], 9);
    assert_eq!(killed["status_detail"], "killed by signal 9");
    assert!(killed.get("exit_code").is_none());
}

#[test]
fn comm_filter_drops_in_kernel_and_memfd_exec_is_flagged_fileless() {
    let Some((_g, mut sensor)) = sensor_with(SensorConfig {
        exclude_comms: vec!["vigilquiet".into()],
        ..ebpf()
    }) else {
        return;
    };
    let dir = temp_dir();
    let quiet = dir.join("vigilquiet");
    let loud = dir.join("vigilloud");
    for p in [&quiet, &loud] {
        std::fs::copy("/bin/true", p).expect("copy");
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let q = Command::new(&quiet).status().expect("run quiet");
    let l = Command::new(&loud).status().expect("run loud");
    assert!(q.success() && l.success());
    // Fileless: copy /bin/true into a memfd (memfd_create is syscall 319 on x86_64) and
    // exec it through /proc/self/fd. perl-base is part of every Debian system.
    let memfd = Command::new("perl")
        .arg("-e")
        .arg(
            r#"my $fd = syscall(319, my $n = "vigilmemfd", 0); die "memfd_create: $!" if $fd < 0;
               open(my $src, "<:raw", "/bin/true") or die; open(my $dst, ">&=", $fd) or die;
               my $data = do { local $/; <$src> }; syswrite($dst, $data) == length($data) or die;
               exec {"/proc/self/fd/$fd"} "vigilmemfd-argv0", "x" or die "exec: $!";"#,
        )
        .status()
        .expect("perl");
    assert!(memfd.success(), "memfd exec ran");
    let loud_path = loud.to_string_lossy().into_owned();
    let events = collect(&mut sensor, Duration::from_secs(10), |ev| {
        ev.iter()
            .any(|e| e["process"]["file"]["path"] == loud_path.as_str() && e["activity_id"] == 2)
    });
    let paths: Vec<&str> = events
        .iter()
        .filter_map(|e| e["process"]["file"]["path"].as_str())
        .collect();
    let fileless = events
        .iter()
        .find(|e| e["launch_type"] == "Exec" && e["process"]["cmd_line"] == "vigilmemfd-argv0 x")
        .expect("the memfd exec is reported");
    let f = &fileless["process"]["file"];
    assert_eq!(f["path"], "/memfd:vigilmemfd");
    assert_eq!(f["is_deleted"], true);
    assert_eq!(
        fileless["process"]["xattributes"]["flags"],
        serde_json::json!(["fileless"])
    );
    assert!(fileless["process"]["xattributes"]["filename"]
        .as_str()
        .is_some_and(|n| n.starts_with("/proc/self/fd/")));
    assert!(paths.contains(&loud_path.as_str()), "loud is reported");
    assert!(
        !paths.iter().any(|p| p.ends_with("vigilquiet")),
        "quiet is filtered in the kernel"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn every_event_is_valid_ocsf_and_statistics_are_reported() {
    let Some(schema_dir) = vigil_testdata::corpus("ocsf-schema") else {
        return;
    };
    let schema = vigil_ocsf_schema::Schema::load(&schema_dir).expect("schema");
    let Some((_g, mut sensor)) = sensor_with(SensorConfig {
        stats_interval_secs: 1,
        ..ebpf()
    }) else {
        return;
    };
    let mut events = vec![sensor.start_event().to_json()];
    let dir = temp_dir();
    let (pid, more) = run_sh(
        &mut sensor,
        &dir,
        "/bin/true; echo x > f; head -c 0 /etc/shadow; (exit 2); kill -TERM $$",
    );
    events.extend(more);
    let is_stats = |e: &Value| e["class_uid"] == 1008 && e["activity_name"] == "Statistics";
    if !events.iter().any(is_stats) {
        events.extend(collect(&mut sensor, Duration::from_secs(3), |ev| {
            ev.iter().any(is_stats)
        }));
    }
    events.push(sensor.stop_event().to_json());
    assert!(exit_of(&events, pid).is_some());
    assert!(events.len() >= 6);
    assert!(
        events
            .iter()
            .any(|e| e["file"]["path"] == "/etc/shadow" && e["activity_id"] == 14),
        "the read-only open of a watched file is among the events validated"
    );
    for e in &events {
        let v = schema.validate(e);
        assert!(v.is_empty(), "invalid event: {v:?}\n{e:#}");
    }
    // The sensor's health, as a metric: counters that add up.
    let stats = events
        .iter()
        .find(|e| is_stats(e))
        .expect("a Statistics event");
    assert_eq!(stats["activity_id"], 99);
    let m = &stats["unmapped"];
    assert!(m["received"].as_u64() >= Some(4), "{m}");
    assert!(m["emitted"].as_u64() >= Some(1), "{m}");
    assert!(m["processes"].as_u64() > Some(1), "{m}");
    let by_kind: u64 = m["lost_by_kind"]
        .as_object()
        .expect("lost_by_kind")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(m["lost"].as_u64(), Some(by_kind));
    assert_eq!(
        stats["count"].as_u64(),
        m["lost"].as_u64(),
        "the first report"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn burst_of_execs_received_plus_lost_equals_generated() {
    const N: usize = 20_000;
    let Some((_g, mut sensor)) = sensor_with(ebpf()) else {
        return;
    };
    // A loop in one shell: N fork+exec of /bin/true, as fast as the machine goes.
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "i=0; while [ $i -lt {N} ]; do /bin/true; i=$((i+1)); done"
        ))
        .spawn()
        .expect("spawn");
    let sh_pid = child.id();
    let mut execs = 0usize;
    let mut lost_reported = 0u64;
    let mut sh_exited = false;
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        sensor
            .poll(Duration::from_millis(50), &mut |e| {
                let j = e.to_json();
                if is_exec(&j) && j["actor"]["process"]["pid"] == sh_pid {
                    execs += 1;
                }
                if j["class_uid"] == 1008 && j["activity_name"] == "Drop" {
                    lost_reported += j["count"].as_u64().unwrap_or(0);
                }
                if j["activity_id"] == 2 && j["class_uid"] == 1007 && j["process"]["pid"] == sh_pid
                {
                    sh_exited = true;
                }
            })
            .expect("poll");
        if sh_exited {
            break;
        }
    }
    assert!(child.wait().expect("wait").success());
    sensor
        .check_loss(&mut |e| {
            let j = e.to_json();
            lost_reported += j["count"].as_u64().unwrap_or(0);
        })
        .expect("loss check");
    let lost_total = sensor.stats().lost();
    assert_eq!(
        lost_reported, lost_total,
        "every loss is reported as an event"
    );
    // Losses are counted for the whole system; the execs lost can only be among them.
    assert!(execs <= N);
    assert!(
        execs as u64 + lost_total >= N as u64,
        "received {execs} + lost {lost_total} < generated {N}: events vanished without being counted"
    );
    eprintln!("burst: {N} execs generated, {execs} received, {lost_total} lost (all kinds)");
}

/// Runs `script` with perl (perl-base is on every Debian system) and waits for it.
fn perl(script: &str, args: &[&str]) -> u32 {
    let mut child = Command::new("perl")
        .arg("-e")
        .arg(script)
        .args(args)
        .spawn()
        .expect("perl");
    let pid = child.id();
    assert!(
        child.wait().expect("wait").success(),
        "perl script failed: {script}"
    );
    pid
}

/// Runs a perl `script` with the pid of a `sleep 30` it acts on, then kills the sleeper:
/// perl's pid and the sleeper's.
fn perl_on_sleeper(script: &str) -> (u32, u32) {
    let mut target = Command::new("/bin/sleep").arg("30").spawn().expect("sleep");
    let tpid = target.id();
    let pid = perl(script, &[&tpid.to_string()]);
    let _ = target.kill();
    let _ = target.wait();
    (pid, tpid)
}

#[test]
fn excluded_file_paths_are_not_reported_unless_a_rename_leaves_them() {
    let dir = temp_dir();
    let noisy = dir.join("noisy");
    std::fs::create_dir_all(&noisy).expect("noisy dir");
    let Some((_g, mut sensor)) = sensor_with(SensorConfig {
        exclude_file_prefixes: vec![format!("{}/", noisy.display())],
        ..ebpf()
    }) else {
        return;
    };
    let (_, events) = run_sh(
        &mut sensor,
        &dir,
        "echo a > noisy/a.txt; echo b > noisy/b.txt; echo k > kept.txt; mv noisy/b.txt out.txt",
    );
    let d = dir.to_string_lossy().into_owned();
    let paths: Vec<(u64, String)> = events
        .iter()
        .filter(|e| e["class_uid"] == 1001)
        .filter_map(|e| {
            let p = e["file"]["path"].as_str()?;
            p.starts_with(&d).then(|| {
                (
                    e["activity_id"].as_u64().unwrap_or(0),
                    p[d.len()..].to_string(),
                )
            })
        })
        .collect();
    assert!(paths.contains(&(1, "/kept.txt".into())), "{paths:?}");
    let noisy_seen: Vec<&(u64, String)> = paths
        .iter()
        .filter(|(_, p)| p.starts_with("/noisy/"))
        .collect();
    assert_eq!(
        noisy_seen,
        [&(5, "/noisy/b.txt".to_string())],
        "only the rename out of the excluded directory"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Regression: the record header took the start time of the thread, not of its process,
/// so a thread's events named another process identity and lost their lineage.
#[test]
fn events_of_a_thread_are_attributed_to_its_process() {
    let Some((_g, mut sensor)) = sensor_with(ebpf()) else {
        return;
    };
    let dir = temp_dir();
    let path = dir.join("from-a-thread.txt");
    let path_s = path.to_string_lossy().into_owned();
    let child = Command::new(env!("CARGO_BIN_EXE_vigil-sensor-thread-writer"))
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("thread writer");
    let pid = child.id();
    let out = child.wait_with_output().expect("thread writer runs");
    assert!(out.status.success());
    let tid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the writer prints its thread's id");
    assert_ne!(tid, pid, "written by another thread than the main one");
    let events = collect(&mut sensor, Duration::from_secs(10), |ev| {
        exit_of(ev, pid).is_some()
    });
    let write = events
        .iter()
        .find(|e| e["class_uid"] == 1001 && e["file"]["path"] == path_s.as_str())
        .expect("the thread's write is reported");
    let launch = events
        .iter()
        .find(|e| is_exec(e) && e["process"]["pid"] == pid)
        .expect("the writer's launch");
    let actor = &write["actor"]["process"];
    assert_eq!(actor["pid"], pid);
    assert_eq!(actor["tid"], tid);
    assert_eq!(
        actor["uid"], launch["process"]["uid"],
        "the thread's event names its process, as the launch did"
    );
    assert_eq!(
        actor["file"]["path"], launch["process"]["file"]["path"],
        "known to the process table, not a bare pid"
    );
    assert_eq!(actor["parent_process"]["pid"], std::process::id());
    let _ = std::fs::remove_dir_all(dir);
}

/// A file written and never closed by the process is reported closed when the process
/// exits; one opened close-on-exec, when it execs.
#[test]
fn files_left_open_are_reported_closed_at_exit_and_at_exec() {
    let Some((_g, mut sensor)) = sensor_with(ebpf()) else {
        return;
    };
    let dir = temp_dir();
    let kept = dir.join("kept-open.txt").to_string_lossy().into_owned();
    let cloexec = dir.join("cloexec.txt").to_string_lossy().into_owned();
    // One process: writes `kept` on fd 3 (inherited across the exec) and `cloexec`
    // (closed by the exec), closes neither, execs /bin/true, which exits.
    let pid = perl(
        r#"use Fcntl; open(my $k, ">", $ARGV[0]) or die; syswrite($k, "x") or die;
           fcntl($k, F_SETFD, 0) or die;
           sysopen(my $c, $ARGV[1], O_WRONLY|O_CREAT|O_CLOEXEC) or die; syswrite($c, "y") or die;
           exec "/bin/true" or die;"#,
        &[&kept, &cloexec],
    );
    let events = collect(&mut sensor, Duration::from_secs(10), |ev| {
        exit_of(ev, pid).is_some()
    });
    let close_of = |path: &str| {
        events
            .iter()
            .find(|e| e["class_uid"] == 1001 && e["activity_id"] == 3 && e["file"]["path"] == path)
            .unwrap_or_else(|| panic!("no close of {path}"))
    };
    let at_exec = close_of(&cloexec);
    assert_eq!(at_exec["file"]["xattributes"]["closed_by"], "exec");
    assert_eq!(at_exec["actor"]["process"]["pid"], pid);
    assert!(at_exec["actor"]["process"]["cmd_line"]
        .as_str()
        .is_some_and(|c| c.starts_with("perl")));
    let at_exit = close_of(&kept);
    assert_eq!(at_exit["file"]["xattributes"]["closed_by"], "exit");
    assert_eq!(at_exit["file"]["xattributes"]["close_write"], true);
    assert_eq!(at_exit["actor"]["process"]["file"]["path"], "/usr/bin/true");
    let exit = position(&events, |e| {
        e["class_uid"] == 1007 && e["activity_id"] == 2 && e["process"]["pid"] == pid
    });
    let closed = position(&events, |e| *e == *at_exit);
    assert!(closed < exit, "closed, then exited");
    let _ = std::fs::remove_dir_all(dir);
}

fn by_actor(events: &[Value], pid: u32, class: u32) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["class_uid"] == class && e["actor"]["process"]["pid"] == pid)
        .collect()
}

#[test]
fn file_create_write_rename_setuid_chmod_link_and_delete() {
    let Some((_g, mut sensor)) = sensor_with(ebpf()) else {
        return;
    };
    let dir = temp_dir();
    let d = dir.to_string_lossy().into_owned();
    // Relative paths on purpose: the sensor resolves them against the cwd.
    let (sh, events) = run_sh(
        &mut sensor,
        &dir,
        "echo one > new.txt; echo two >> new.txt; mv new.txt moved.txt; chmod 4755 moved.txt; \
          ln -s moved.txt sym; ln moved.txt hard; rm moved.txt sym hard; exit 0",
    );
    let files: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["class_uid"] == 1001
                && e["file"]["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(&d))
        })
        .collect();
    let find = |activity: u32, name: &str| {
        files
            .iter()
            .find(|e| e["activity_id"] == activity && e["file"]["name"] == name)
            .copied()
            .unwrap_or_else(|| panic!("no activity {activity} on {name} in {files:#?}"))
    };
    let created = find(1, "new.txt");
    assert_eq!(created["file"]["path"], format!("{d}/new.txt"));
    assert_eq!(
        created["actor"]["process"]["pid"], sh,
        "the shell's redirection created it"
    );
    let closed = find(3, "new.txt");
    assert_eq!(
        closed["file"]["xattributes"]["close_write"], true,
        "close after write"
    );
    let reopened = find(14, "new.txt");
    assert!(reopened["file"]["xattributes"]["open_flags"].is_string());
    let renamed = find(5, "new.txt");
    assert_eq!(renamed["file_result"]["path"], format!("{d}/moved.txt"));
    assert!(renamed["actor"]["process"]["cmd_line"]
        .as_str()
        .is_some_and(|c| c.starts_with("mv ")));
    let chmod = find(6, "moved.txt");
    assert_eq!(chmod["file"]["attributes"], 0o4755);
    assert_eq!(chmod["file"]["xattributes"]["setuid"], true);
    let sym = find(1, "sym");
    assert_eq!(sym["file"]["type"], "Symbolic Link");
    assert_eq!(sym["file"]["xattributes"]["link_target"], "moved.txt");
    let hard = find(1, "hard");
    assert_eq!(hard["file"]["xattributes"]["link_type"], "hardlink");
    assert_eq!(
        hard["file"]["xattributes"]["link_target"],
        format!("{d}/moved.txt")
    );
    for name in ["moved.txt", "sym", "hard"] {
        assert_eq!(find(4, name)["file"]["path"], format!("{d}/{name}"));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tcp_listen_accept_connect_and_a_dns_query_over_loopback() {
    let Some((_g, mut sensor)) = sensor_with(ebpf()) else {
        return;
    };
    // One perl process: listen on a loopback port, connect to it, accept, then send a
    // DNS query for vigil-test.example (type A) to 127.0.0.1:53 over UDP.
    let pid = perl(
        r#"use IO::Socket::INET;
           my $l = IO::Socket::INET->new(Listen => 5, LocalAddr => "127.0.0.1", LocalPort => 0, Proto => "tcp") or die "listen: $!";
           my $port = $l->sockport;
           my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port, Proto => "tcp") or die "connect: $!";
           my $a = $l->accept or die "accept: $!";
           my $q = pack("nnnnnn", 0xbeef, 0x0100, 1, 0, 0, 0)
                 . join("", map { chr(length $_) . $_ } split /\./, "vigil-test.example") . "\0" . pack("nn", 1, 1);
           my $u = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => 53, Proto => "udp") or die "udp: $!";
           $u->send($q) or die "send: $!";
           print STDERR "port $port\n";"#,
        &[],
    );
    let events = collect(&mut sensor, Duration::from_secs(10), |ev| {
        exit_of(ev, pid).is_some()
    });
    let net = by_actor(&events, pid, 4001);
    let listen = net.iter().find(|e| e["activity_id"] == 7).expect("listen");
    let port = listen["src_endpoint"]["port"].clone();
    assert_eq!(listen["src_endpoint"]["ip"], "127.0.0.1");
    assert_eq!(listen["connection_info"]["protocol_name"], "tcp");
    let connect = net
        .iter()
        .find(|e| {
            e["activity_id"] == 1
                && e["connection_info"]["direction"] == "Local"
                && e["dst_endpoint"]["port"] == port
        })
        .expect("connect");
    assert_eq!(connect["dst_endpoint"]["ip"], "127.0.0.1");
    let client_port = connect["src_endpoint"]["port"].clone();
    let accept = net
        .iter()
        .find(|e| {
            e["activity_id"] == 1
                && e["dst_endpoint"]["port"] == port
                && e["src_endpoint"]["port"] == client_port
        })
        .expect("accept, with the client as source");
    assert_eq!(
        accept["connection_info"]["protocol_ver"],
        "Internet Protocol version 4 (IPv4)"
    );
    let dns = by_actor(&events, pid, 4003);
    assert_eq!(dns.len(), 1, "{dns:#?}");
    let q = &dns[0]["query"];
    assert_eq!(q["hostname"], "vigil-test.example");
    assert_eq!(q["type"], "A");
    assert_eq!(q["class"], "IN");
    assert_eq!(q["packet_uid"], 0xbeef);
    assert_eq!(dns[0]["dst_endpoint"]["port"], 53);
    assert_eq!(dns[0]["dst_endpoint"]["ip"], "127.0.0.1");
    assert_eq!(dns[0]["connection_info"]["protocol_name"], "udp");
}

#[test]
fn ptrace_attach_setuid_and_memfd_create() {
    let Some((_g, mut sensor)) = sensor_with(ebpf()) else {
        return;
    };
    // PTRACE_ATTACH (16) the sleeper, a child's PTRACE_TRACEME (0), then memfd_create and
    // drop root with setuid(65534): syscalls 101, 319 and 105 on x86_64.
    let (pid, tpid) = perl_on_sleeper(
        r#"my $t = $ARGV[0] + 0;
           syscall(101, 16, $t, 0, 0) == 0 or die "ptrace: $!";
           waitpid($t, 0);
           syscall(101, 17, $t, 0, 0);
           my $c = fork() // die "fork: $!";
           if ($c == 0) { syscall(101, 0, 0, 0, 0) == 0 or exit 1; exit 0 }
           waitpid($c, 0); $? == 0 or die "traceme failed";
           syscall(319, my $n = "vigil-memfd-test", 0) >= 0 or die "memfd: $!";
           syscall(105, 65534) == 0 or die "setuid: $!";"#,
    );
    let events = collect(&mut sensor, Duration::from_secs(10), |ev| {
        exit_of(ev, pid).is_some()
    });
    let procs = by_actor(&events, pid, 1007);
    let attach = procs
        .iter()
        .find(|e| e["activity_id"] == 3 && e["unmapped"]["ptrace_request"] == "PTRACE_ATTACH")
        .expect("ptrace attach");
    assert_eq!(attach["process"]["pid"], tpid);
    assert_eq!(attach["process"]["cmd_line"], "/bin/sleep 30");
    assert_eq!(attach["status"], "Success");
    // A child asking its parent to trace it: the target is the parent.
    let traceme = events
        .iter()
        .find(|e| e["class_uid"] == 1007 && e["unmapped"]["ptrace_request"] == "PTRACE_TRACEME")
        .expect("ptrace traceme");
    assert_eq!(
        traceme["process"]["pid"], pid,
        "the tracer-to-be is the parent"
    );
    assert_eq!(traceme["actor"]["process"]["parent_process"]["pid"], pid);
    assert_eq!(traceme["status"], "Success");
    let setuid = procs
        .iter()
        .find(|e| e["activity_id"] == 5)
        .expect("setuid");
    assert_eq!(setuid["unmapped"]["syscall"], "setuid");
    assert_eq!(setuid["unmapped"]["ids"], serde_json::json!([65534]));
    let memfd = by_actor(&events, pid, 1001)
        .into_iter()
        .find(|e| e["file"]["name"] == "memfd:vigil-memfd-test")
        .expect("memfd_create");
    assert_eq!(memfd["activity_id"], 1);
}

#[test]
fn ipv6_connect_and_a_mount() {
    let Some((_g, mut sensor)) = sensor_with(ebpf()) else {
        return;
    };
    let pid = perl(
        r#"use IO::Socket::IP;
           my $l = IO::Socket::IP->new(Listen => 1, LocalHost => "::1", LocalPort => 0, Proto => "tcp") or die "listen: $@";
           my $c = IO::Socket::IP->new(PeerHost => "::1", PeerPort => $l->sockport, Proto => "tcp") or die "connect: $@";"#,
        &[],
    );
    let dir = temp_dir();
    let mut m = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "vigil-test-tmpfs"])
        .arg(&dir)
        .spawn()
        .expect("mount");
    let mount_pid = m.id();
    assert!(m.wait().expect("wait").success(), "mount");
    let umount = Command::new("umount").arg(&dir).status().expect("umount");
    assert!(umount.success());
    let d = dir.to_string_lossy().into_owned();
    let events = collect(&mut sensor, Duration::from_secs(10), |ev| {
        exit_of(ev, pid).is_some() && exit_of(ev, mount_pid).is_some()
    });
    let connect = by_actor(&events, pid, 4001)
        .into_iter()
        .find(|e| e["activity_id"] == 1 && e["dst_endpoint"]["ip"] == "::1")
        .expect("IPv6 connect");
    assert_eq!(connect["src_endpoint"]["ip"], "::1");
    assert_eq!(connect["connection_info"]["protocol_ver_id"], 6);
    let mount = by_actor(&events, mount_pid, 1001)
        .into_iter()
        .find(|e| e["activity_id"] == 12)
        .expect("mount event");
    assert_eq!(mount["file"]["path"], d.as_str());
    assert_eq!(mount["file"]["xattributes"]["fstype"], "tmpfs");
    assert_eq!(mount["file"]["xattributes"]["source"], "vigil-test-tmpfs");
    assert_eq!(mount["status"], "Success");
    let _ = std::fs::remove_dir_all(dir);
}

/// Polls with a long timeout until the exec of `pid` comes; how long that took.
fn wait_for_exec(sensor: &mut SensorBackend, pid: u32, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut seen = false;
    while !seen && start.elapsed() < limit {
        sensor
            .poll(limit, &mut |e| {
                let e = e.to_json();
                seen |= is_exec(&e) && e["process"]["pid"] == pid;
            })
            .expect("poll");
    }
    assert!(seen, "the exec of {pid} never came");
    start.elapsed()
}

/// An exec wakes the reader (sensor.exec_wakeup_us): a reader waiting a minute for
/// records gets it at once, after a quiet spell and again after a short one that
/// followed an exec (the wake-up note, a store into the mapped configuration, must
/// not hold the next exec back once the gap has passed). Without the wake-up, the
/// exec waits for 256 KiB of records or the end of the wait: the whole minute on a
/// quiet host, seconds on this busy shared one (measured with `exec_wakeup_us = 0`:
/// 2 s each); with it, milliseconds. The bound, 3 s, leaves room for a loaded host's
/// scheduling delays.
#[test]
fn an_exec_wakes_a_reader_waiting_for_a_minute() {
    let Some((_guard, mut sensor)) = sensor_with(ebpf()) else {
        return;
    };
    let minute = Duration::from_secs(60);
    for quiet in [Duration::from_millis(300), Duration::from_millis(5)] {
        // Settle: take what is pending, then let the gap pass.
        sensor
            .poll(Duration::from_millis(20), &mut |_| {})
            .expect("poll");
        std::thread::sleep(quiet);
        let mut child = Command::new("/bin/true").spawn().expect("spawn true");
        let pid = child.id();
        let took = wait_for_exec(&mut sensor, pid, minute);
        child.wait().expect("wait");
        assert!(
            took < Duration::from_secs(3),
            "the exec of {pid} after {quiet:?} of quiet took {took:?}: it did not wake the reader"
        );
    }
}

/// Reads of another process's memory: ptrace's PEEKDATA after an attach,
/// process_vm_readv, and a read-only open of /proc/PID/mem (on the default watch list).
/// A reader's repeated successful reads of the same target are reported once; a failed
/// one is reported each time.
#[test]
fn reads_of_another_process_memory_peek_process_vm_readv_and_proc_mem() {
    let Some((_g, mut sensor)) = sensor_with(ebpf()) else {
        return;
    };
    // x86_64: ptrace 101 (ATTACH 16, PEEKDATA 2, DETACH 17), process_vm_readv 310. The
    // address read is the start of the sleeper's first mapping (its executable).
    let (pid, tpid) = perl_on_sleeper(
        r#"my $t = $ARGV[0] + 0;
           open(my $maps, "<", "/proc/$t/maps") or die "maps: $!";
           my ($addr) = (<$maps> =~ /^([0-9a-f]+)-/); $addr = hex($addr); close($maps);
           syscall(101, 16, $t, 0, 0) == 0 or die "ptrace attach: $!";
           waitpid($t, 0);
           my $word = "\0" x 8;
           for (1..3) { syscall(101, 2, $t, $addr, $word) == 0 or die "peekdata: $!" }
           syscall(101, 17, $t, 0, 0) == 0 or die "detach: $!";
           my $buf = "\0" x 16;
           my $local = pack("QQ", unpack("J", pack("p", $buf)), 16);
           my $remote = pack("QQ", $addr, 16);
           for (1..3) { syscall(310, $t, $local, 1, $remote, 1, 0) == 16 or die "readv: $!" }
           substr($buf, 0, 4) eq "\x7fELF" or die "readv read no ELF header";
           # Its own memory: not reported.
           syscall(310, $$ + 0, $local, 1, $local, 1, 0) == 16 or die "self readv: $!";
           # No such process: fails (ESRCH), twice, and both are reported.
           for (1..2) { syscall(310, 0x3ffffff0, $local, 1, $remote, 1, 0) == -1 or die }
           open(my $mem, "<", "/proc/$t/mem") or die "mem: $!"; close($mem);
           # Its own memory file: not reported.
           open(my $own, "<", "/proc/self/mem") or die "own mem: $!"; close($own);"#,
    );
    let events = collect(&mut sensor, Duration::from_secs(10), |ev| {
        exit_of(ev, pid).is_some()
    });
    let procs = by_actor(&events, pid, 1007);
    let peeks: Vec<_> = procs
        .iter()
        .filter(|e| e["unmapped"]["ptrace_request"] == "PTRACE_PEEKDATA")
        .collect();
    assert_eq!(peeks.len(), 1, "three peeks, reported once: {peeks:#?}");
    assert_eq!(peeks[0]["activity_id"], 3);
    assert_eq!(peeks[0]["process"]["pid"], tpid);
    assert_eq!(peeks[0]["process"]["file"]["path"], "/usr/bin/sleep");
    assert_eq!(peeks[0]["unmapped"]["syscall"], "ptrace");
    assert_eq!(peeks[0]["status"], "Success");
    let readv: Vec<_> = procs
        .iter()
        .filter(|e| e["unmapped"]["syscall"] == "process_vm_readv")
        .collect();
    let (ok, failed): (Vec<&Value>, Vec<&Value>) = readv
        .iter()
        .copied()
        .partition(|e| e["status"] == "Success");
    assert_eq!(ok.len(), 1, "three reads, reported once: {ok:#?}");
    let r = ok[0];
    assert_eq!(r["activity_id"], 3);
    assert_eq!(r["activity_name"], "Open");
    assert_eq!(r["process"]["pid"], tpid);
    assert_eq!(r["process"]["cmd_line"], "/bin/sleep 30");
    assert_eq!(r["process"]["file"]["path"], "/usr/bin/sleep");
    assert_eq!(r["actor"]["process"]["pid"], pid);
    assert_eq!(r["unmapped"]["flags"], 0);
    assert_eq!(r["unmapped"]["remote_iovecs"], 1);
    assert_eq!(failed.len(), 2, "failures are each reported: {failed:#?}");
    assert!(
        !readv.iter().any(|e| e["process"]["pid"] == pid),
        "a read of its own memory is no event"
    );
    assert!(failed
        .iter()
        .all(|e| e["status"] == "Failure" && e["process"]["pid"] == 0x3fff_fff0));
    let mem_path = format!("/proc/{tpid}/mem");
    let mem = by_actor(&events, pid, 1001)
        .into_iter()
        .find(|e| e["file"]["path"] == mem_path.as_str())
        .unwrap_or_else(|| panic!("no open of {mem_path}"));
    assert_eq!(mem["activity_id"], 14);
    let own = format!("/proc/{pid}/mem");
    assert!(
        !events.iter().any(|e| e["file"]["path"] == own.as_str()),
        "an open of its own memory file is no event"
    );
    assert_eq!(mem["file"]["xattributes"]["watched_read"], true);
    assert_eq!(
        mem["file"]["xattributes"]["open_flags"], "0o2000000",
        "O_RDONLY|O_CLOEXEC"
    );
}

/// Read-only opens are dropped in the kernel except those of the files on the watch
/// list: /etc/shadow and an SSH private key (the default list), a file of the test's
/// own pattern; not a file beside them, nor one whose name and parent directory match
/// a pattern but whose whole path does not.
#[test]
fn read_only_opens_of_watched_files_are_reported_and_others_are_not() {
    let dir = temp_dir();
    let d = dir.display().to_string();
    let mut config = ebpf();
    config.watched_reads.push(format!("{d}/vault/secret-*.key"));
    let Some((_g, mut sensor)) = sensor_with(config) else {
        return;
    };
    std::fs::create_dir_all(dir.join("home/.ssh")).expect("dirs");
    std::fs::create_dir_all(dir.join("vault")).expect("dirs");
    std::fs::create_dir_all(dir.join("elsewhere/vault")).expect("dirs");
    for f in [
        "home/.ssh/id_ed25519",
        "home/.ssh/known_hosts",
        "vault/secret-1.key",
        "vault/secret-1.pub",
        "elsewhere/vault/secret-2.key",
    ] {
        std::fs::write(dir.join(f), "x").expect("write");
    }
    let (sh, events) = run_sh(
        &mut sensor,
        &dir,
        "cat /etc/shadow home/.ssh/id_ed25519 home/.ssh/known_hosts vault/secret-1.key \
         vault/secret-1.pub elsewhere/vault/secret-2.key /etc/passwd > /dev/null",
    );
    let opened: Vec<String> = events
        .iter()
        .filter(|e| {
            e["class_uid"] == 1001
                && e["actor"]["process"]["parent_process"]["pid"] == sh
                && e["file"]["xattributes"]["watched_read"] == true
        })
        .map(|e| {
            assert_eq!(e["activity_id"], 14, "{e:#}");
            assert_eq!(e["actor"]["process"]["file"]["path"], "/usr/bin/cat");
            assert_eq!(e["file"]["xattributes"]["open_flags"], "0o0", "{e:#}");
            e["file"]["path"].as_str().unwrap_or("").to_string()
        })
        .collect();
    assert_eq!(
        opened,
        [
            "/etc/shadow".to_string(),
            format!("{d}/home/.ssh/id_ed25519"),
            format!("{d}/vault/secret-1.key"),
        ]
    );
    let _ = std::fs::remove_dir_all(dir);
}
