//! Vigil's Linux rule pack (`rules/`) proven on this host: every technique script under
//! `rules/tests/` is acted out under the real `vigil agent`, which runs the pack built into
//! it; its events are then hunted with the pack from disk (`vigil hunt --format jsonl`).
//! Each case's rules must fire on that case's own events both ways: in the agent's own
//! findings and in the hunt's. The benign workload (`rules/tests/benign.sh`) must raise
//! nothing high or critical either way. One agent serves every case; a case's events are
//! the ones whose process, parent or ancestry has the command line `/bin/bash CASE.sh`.
//! When the sensor loses records (a host flooded by other work), everything is acted out
//! again, three times at most.
//!
//! The technique tests need root (with `CI=true` not being root fails the run). Cases whose
//! rule needs telemetry the sensor does not produce yet are `#[ignore]`d: run them with
//! `cargo test -p vigil --test rulepack -- --ignored`. `VIGIL_RULEPACK_CASES=a,b` acts out
//! only those cases (and the benign workload), for working on a few rules;
//! `VIGIL_RULEPACK_KEEP=1` keeps the events.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
mod support;

use support::Agent;

/// Techniques whose rules fire on today's telemetry: these must pass.
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// The must-pass cases, by script name.
        const CASES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                check_case(stringify!($name));
            }
        )*
    };
}

/// Techniques whose rules need telemetry the sensor does not produce yet.
macro_rules! needs_sensor_cases {
    ($($name:ident),* $(,)?) => {
        /// The cases left out of the must-pass list, by script name.
        const NEEDS_SENSOR: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            #[ignore = "needs sensor telemetry that does not exist yet (rules/README.md, known gaps)"]
            fn $name() {
                check_case(stringify!($name));
            }
        )*
    };
}

cases! {
    download_pipe_shell,
    download_pipe_shell_script,
    base64_pipe_shell,
    xxd_pipe_shell_script,
    reverse_shell_dev_tcp,
    python_pty_reverse_shell,
    python_inline_download_exec,
    exec_tmp,
    exec_dev_shm,
    exec_memfd,
    exec_deleted,
    cron_persistence,
    at_job,
    systemd_unit_persistence,
    shell_rc_persistence,
    authorized_keys_persistence,
    account_created,
    account_uid0,
    passwd_direct_write,
    pam_persistence,
    ld_so_preload,
    ld_preload_env,
    udev_persistence,
    kernel_module_load,
    setuid_file,
    file_capability,
    sudoers_nopasswd,
    container_escape_nsenter,
    container_escape_release_agent,
    log_wipe,
    history_tampering,
    timestomp,
    hidden_executable,
    self_delete,
    security_tool_stop,
    agent_tamper,
    bpf_program_load,
    shadow_read,
    ssh_key_read,
    ptrace_attach,
    process_memory_write,
    process_memory_read,
    credential_file_open,
    discovery_burst,
    port_scan,
    host_sweep,
    ssh_port_forward,
    tunnel_tool,
    ransomware_simulation,
    cryptominer,
    mining_pool_dns,
    disk_wipe,
}

needs_sensor_cases! {}

/// The benign workload's script name.
const BENIGN: &str = "benign";

/// Seconds a case script may run before its process group is killed.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rules_dir() -> PathBuf {
    repo().join("rules")
}

fn tests_dir() -> PathBuf {
    repo().join("rules/tests")
}

/// A technique script's header: `# technique:`, `# rules:`, `# not-rules:` (rules the
/// case must not raise: a near miss the rule must tell apart), `# needs-sensor:` lines.
#[derive(Debug, Default)]
struct Header {
    techniques: Vec<String>,
    rules: Vec<String>,
    not_rules: Vec<String>,
    needs_sensor: Option<String>,
}

fn header(case: &str) -> Header {
    let path = tests_dir().join(format!("{case}.sh"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = Header::default();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(t) = line.strip_prefix("# technique: ") {
            h.techniques.push(t.trim().to_string());
        } else if let Some(r) = line.strip_prefix("# rules: ") {
            h.rules.extend(r.split_whitespace().map(str::to_string));
        } else if let Some(r) = line.strip_prefix("# not-rules: ") {
            h.not_rules.extend(r.split_whitespace().map(str::to_string));
        } else if let Some(n) = line.strip_prefix("# needs-sensor: ") {
            h.needs_sensor = Some(n.trim().to_string());
        }
    }
    h
}

/// Every technique script's name (`rules/tests/*.sh` but the benign workload).
fn script_names() -> BTreeSet<String> {
    let dir = tests_dir();
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".sh").map(str::to_string)
        })
        .filter(|n| n != BENIGN)
        .collect()
}

/// One rule of the pack, as the engine loaded it.
#[derive(Debug, Clone)]
struct PackRule {
    id: String,
    title: String,
    level: Option<vigil_sigma::Level>,
    file: PathBuf,
    tags: Vec<String>,
    logsource: vigil_sigma::LogSource,
    kind: vigil_sigma::RuleKind,
}

/// The pack's rule files: `rules/linux/<tactic>/*.yml`, sorted (nothing else is there).
fn rule_files() -> Vec<PathBuf> {
    let sorted = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    };
    let mut out = Vec::new();
    for tactic in sorted(&rules_dir().join("linux")) {
        assert!(
            tactic.is_dir(),
            "{}: rules go in a tactic directory",
            tactic.display()
        );
        for f in sorted(&tactic) {
            assert!(
                f.is_file() && f.extension().is_some_and(|x| x == "yml"),
                "{}: a tactic directory holds only rule files (*.yml)",
                f.display()
            );
            out.push(f);
        }
    }
    out
}

/// The pack's rules by name, loaded with the engine (every load error fails).
fn pack() -> BTreeMap<String, PackRule> {
    let mut loader = vigil_sigma::Loader::new();
    for f in rule_files() {
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        loader.add(&f.display().to_string(), &text);
    }
    let built = loader.build();
    assert!(
        built.errors.is_empty(),
        "the pack does not load: {:?}",
        built.errors
    );
    let mut out = BTreeMap::new();
    for m in built.engine.rules() {
        let name = m
            .name
            .clone()
            .unwrap_or_else(|| panic!("{}:{}: rule without `name`", m.source, m.line));
        let rule = PackRule {
            id: m.id.clone().unwrap_or_default(),
            title: m.title.clone(),
            level: m.level,
            file: PathBuf::from(&*m.source),
            tags: m.tags.clone(),
            logsource: m.logsource.clone(),
            kind: m.kind,
        };
        assert!(
            out.insert(name.clone(), rule).is_none(),
            "two rules are named {name}"
        );
    }
    out
}

/// A finding, with the cases its events belong to.
#[derive(Debug)]
struct Hit {
    rule_id: String,
    title: String,
    severity_id: i64,
    cases: BTreeSet<String>,
    /// Raised by the agent itself (its built-in pack, in-process), not by the hunt.
    live: bool,
}

impl Hit {
    /// A Detection Finding (OCSF 2004) as a hit; `None` for anything else.
    fn of(f: &Value, live: bool) -> Option<Hit> {
        if f["class_uid"] != 2004 {
            return None;
        }
        let mut cases = BTreeSet::new();
        for ev in f["evidences"].as_array().into_iter().flatten() {
            if ev["name"] != "group_by" {
                markers(&ev["data"], &mut cases);
            }
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Some(Hit {
            rule_id: text(&f["finding_info"]["analytic"]["uid"]),
            title: text(&f["finding_info"]["title"]),
            severity_id: f["severity_id"].as_i64().unwrap_or(0),
            cases,
            live,
        })
    }

    /// Who raised it, for messages.
    fn by(&self) -> &'static str {
        if self.live {
            "the agent"
        } else {
            "vigil hunt"
        }
    }
}

/// What one acted-out case did.
#[derive(Debug)]
struct Outcome {
    status: String,
    ok: bool,
    output: String,
    seconds: f64,
}

/// The shared run: every case under one agent (which runs the pack in-process), then one
/// hunt over the agent's events with the pack.
#[derive(Debug)]
struct Run {
    outcomes: BTreeMap<String, Outcome>,
    hits: Vec<Hit>,
    events_per_case: BTreeMap<String, usize>,
    lost: u64,
}

static RUN: OnceLock<Result<Run, String>> = OnceLock::new();

/// The case names whose marker (`/bin/bash CASE.sh` as a command line) `v` carries.
fn markers(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "cmd_line" {
                    if let Some(case) = x
                        .as_str()
                        .and_then(|s| s.strip_prefix("/bin/bash "))
                        .and_then(|s| s.strip_suffix(".sh"))
                        .filter(|s| !s.contains(' ') && !s.contains('/'))
                    {
                        out.insert(case.to_string());
                    }
                } else {
                    markers(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| markers(x, out)),
        _ => {}
    }
}

/// Starts the agent (its built-in pack running in-process) writing events and findings to
/// `out`, and waits for its Start event. Two settings keep up with a busy host: a ring
/// buffer large enough for its bursts, and no executable hashing (no rule uses hashes).
fn start_agent(out: &Path, log: &Path) -> Result<Agent, String> {
    let config = out.with_file_name("agent.toml");
    std::fs::write(
        &config,
        "[sensor]\nring_buffer_mib = 64\nhash_executables = false\n",
    )
    .map_err(|e| format!("{}: {e}", config.display()))?;
    let log = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("agent")
        .arg("--config")
        .arg(&config)
        .arg("--output")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the agent: {e}"))?;
    let agent = Agent(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let started = std::fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("\"class_uid\":1008") && l.contains("\"Start\""));
        if started {
            return Ok(agent);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("the agent did not start within 30 s".into())
}

/// Sends a signal to a process group (the case's own, which it leads).
fn kill_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

fn describe(status: Option<ExitStatus>) -> String {
    match status {
        None => format!("killed after {} s", CASE_TIMEOUT.as_secs()),
        Some(s) => match s.code() {
            Some(c) => format!("exit {c}"),
            None => format!("{s}"),
        },
    }
}

/// Runs `/bin/bash CASE.sh` from rules/tests with a fresh VIGIL_RP_WORK, in its own process
/// group (killed afterwards with whatever it left behind).
fn act_out(case: &str, scratch: &Path) -> Outcome {
    let work = scratch.join(case);
    let log = scratch.join(format!("{case}.log"));
    let started = Instant::now();
    let setup = std::fs::create_dir_all(&work).and_then(|()| std::fs::File::create(&log));
    let log_file = match setup {
        Ok(f) => f,
        Err(e) => {
            return Outcome {
                status: format!("cannot prepare {}: {e}", work.display()),
                ok: false,
                output: String::new(),
                seconds: 0.0,
            }
        }
    };
    let spawned = log_file.try_clone().and_then(|err| {
        Command::new("/bin/bash")
            .arg(format!("{case}.sh"))
            .current_dir(tests_dir())
            .env("VIGIL_RP_WORK", &work)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err)
            .process_group(0)
            .spawn()
    });
    let (status, ok) = match spawned {
        Err(e) => (format!("cannot run: {e}"), false),
        Ok(mut child) => {
            let pgid = child.id();
            let mut status = None;
            while started.elapsed() < CASE_TIMEOUT {
                match child.try_wait() {
                    Ok(Some(s)) => {
                        status = Some(s);
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    Err(_) => break,
                }
            }
            if status.is_none() {
                // Overran: SIGTERM lets the script undo its changes, then whatever is left
                // of the group is killed.
                kill_group(pgid, "-TERM");
                std::thread::sleep(Duration::from_secs(2));
            }
            kill_group(pgid, "-KILL");
            if status.is_none() {
                let _ = child.wait();
            }
            (describe(status), status.is_some_and(|s| s.success()))
        }
    };
    let _ = std::fs::remove_dir_all(&work);
    Outcome {
        status,
        ok,
        output: std::fs::read_to_string(&log).unwrap_or_default(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn selected_cases() -> Vec<String> {
    let all: Vec<String> = CASES
        .iter()
        .chain(NEEDS_SENSOR)
        .map(|s| s.to_string())
        .collect();
    match std::env::var("VIGIL_RULEPACK_CASES") {
        Ok(list) if !list.trim().is_empty() => {
            let want: BTreeSet<&str> = list.split(',').map(str::trim).collect();
            all.into_iter()
                .filter(|c| want.contains(c.as_str()))
                .collect()
        }
        _ => all,
    }
}

/// Runs everything; again (up to three times in all) when the sensor lost records, which
/// happens when other work floods a busy host and leaves the run's results unattributable.
fn run_everything() -> Result<Run, String> {
    const ATTEMPTS: u32 = 3;
    let mut attempt = 1;
    loop {
        let run = run_once(attempt)?;
        if run.lost == 0 || attempt == ATTEMPTS {
            return Ok(run);
        }
        eprintln!(
            "rulepack: the sensor lost {} records on a busy host; acting everything out again",
            run.lost
        );
        attempt += 1;
    }
}

fn run_once(attempt: u32) -> Result<Run, String> {
    let scratch = PathBuf::from(format!(
        "/tmp/vigil-rulepack-{}-{attempt}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let events = scratch.join("events.jsonl");
    let mut agent = start_agent(&events, &scratch.join("agent.log"))?;
    let mut outcomes = BTreeMap::new();
    let mut cases = selected_cases();
    cases.push(BENIGN.to_string());
    for case in &cases {
        let outcome = act_out(case, &scratch);
        eprintln!(
            "rulepack: {case}: {} in {:.1} s",
            outcome.status, outcome.seconds
        );
        outcomes.insert(case.clone(), outcome);
    }
    // Let the last events through (fork coalescing, the loss check), then stop cleanly.
    std::thread::sleep(Duration::from_millis(1500));
    let pid = agent.0.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        match agent.0.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => return Err("the agent did not stop within 60 s of SIGINT".into()),
        }
    };
    if !status.success() {
        let log = std::fs::read_to_string(scratch.join("agent.log")).unwrap_or_default();
        return Err(format!("the agent exited with {status}:\n{log}"));
    }
    let all = support::lines(&events)?;
    let mut events_per_case: BTreeMap<String, usize> = BTreeMap::new();
    let mut lost = 0;
    let mut hits: Vec<Hit> = all.iter().filter_map(|f| Hit::of(f, true)).collect();
    for e in &all {
        if matches!(e["class_uid"].as_i64(), Some(2004 | 2005)) {
            continue;
        }
        let mut m = BTreeSet::new();
        markers(e, &mut m);
        for c in m {
            *events_per_case.entry(c).or_default() += 1;
        }
        if e["class_uid"] == 1008 && e["activity_name"] == "Drop" {
            lost += e["count"].as_u64().unwrap_or(0);
        }
    }
    let hunt = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["hunt", "--format", "jsonl", "--rules"])
        .arg(rules_dir())
        .arg(&events)
        .output()
        .map_err(|e| format!("cannot run vigil hunt: {e}"))?;
    if !hunt.status.success() {
        return Err(format!(
            "vigil hunt failed ({}): {}",
            hunt.status,
            String::from_utf8_lossy(&hunt.stderr)
        ));
    }
    for line in String::from_utf8_lossy(&hunt.stdout).lines() {
        let f: Value =
            serde_json::from_str(line).map_err(|e| format!("a finding is not JSON: {e}"))?;
        hits.extend(Hit::of(&f, false));
    }
    if std::env::var_os("VIGIL_RULEPACK_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    } else {
        eprintln!("rulepack: events kept in {}", events.display());
    }
    Ok(Run {
        outcomes,
        hits,
        events_per_case,
        lost,
    })
}

fn shared_run() -> &'static Run {
    match RUN.get_or_init(run_everything) {
        Ok(run) => run,
        Err(e) => panic!("the rule pack run failed: {e}"),
    }
}

/// The titles of the rules that fired on a case's events, and by whom.
fn fired_on(run: &Run, case: &str) -> BTreeSet<String> {
    run.hits
        .iter()
        .filter(|h| h.cases.contains(case))
        .map(|h| format!("{} (by {})", h.title, h.by()))
        .collect()
}

/// The outcome of a case's script, which must have succeeded.
fn ran<'r>(run: &'r Run, case: &str) -> &'r Outcome {
    let outcome = &run.outcomes[case];
    assert!(
        outcome.ok,
        "{case}: the script failed ({}):\n{}",
        outcome.status, outcome.output
    );
    outcome
}

fn check_case(case: &str) {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    if !selected_cases().iter().any(|c| c == case) {
        vigil_testdata::skip(&format!("{case} is not in VIGIL_RULEPACK_CASES"));
        return;
    }
    let h = header(case);
    let pack = pack();
    let run = shared_run();
    let outcome = ran(run, case);
    let mut missing = Vec::new();
    for name in &h.rules {
        let rule = pack
            .get(name)
            .unwrap_or_else(|| panic!("{case}: no rule is named {name}"));
        // Both the agent, in-process, and the hunt over its events must raise it.
        for live in [true, false] {
            let fired = run
                .hits
                .iter()
                .any(|hit| hit.live == live && hit.rule_id == rule.id && hit.cases.contains(case));
            if !fired {
                let by = if live { "the agent" } else { "vigil hunt" };
                missing.push(format!("{name} ({}) by {by}", rule.title));
            }
        }
        let loud = matches!(
            rule.level,
            Some(vigil_sigma::Level::High | vigil_sigma::Level::Critical)
        );
        if let Some(hit) = run
            .hits
            .iter()
            .find(|hit| loud && hit.rule_id == rule.id && hit.cases.contains(BENIGN))
        {
            panic!(
                "{case}: {name} ({}) also fires on the benign workload (by {})",
                rule.title,
                hit.by()
            );
        }
    }
    for name in &h.not_rules {
        let rule = pack
            .get(name)
            .unwrap_or_else(|| panic!("{case}: no rule is named {name}"));
        if let Some(hit) = run
            .hits
            .iter()
            .find(|hit| hit.rule_id == rule.id && hit.cases.contains(case))
        {
            panic!(
                "{case}: {name} ({}) fires on it (by {}), and the case is a near miss of it",
                rule.title,
                hit.by()
            );
        }
    }
    assert!(
        missing.is_empty(),
        "{case} ({}): expected rule(s) did not fire: {}\n\
         events carrying the case's marker: {}; records lost by the sensor: {}\n\
         rules that did fire on the case: {:?}\nscript output:\n{}",
        h.techniques.join("; "),
        missing.join(", "),
        run.events_per_case.get(case).copied().unwrap_or(0),
        run.lost,
        fired_on(run, case),
        outcome.output
    );
}

#[test]
fn benign_workload_raises_no_high_or_critical_finding() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    let run = shared_run();
    ran(run, BENIGN);
    assert!(
        run.events_per_case.get(BENIGN).copied().unwrap_or(0) > 100,
        "the agent saw almost nothing of the benign workload: {:?}",
        run.events_per_case.get(BENIGN)
    );
    let mut lower = BTreeMap::new();
    let mut loud = BTreeSet::new();
    for h in run.hits.iter().filter(|h| h.cases.contains(BENIGN)) {
        let line = format!("{} (by {})", h.title, h.by());
        if h.severity_id >= 4 {
            loud.insert(line);
        } else {
            *lower.entry(line).or_insert(0) += 1;
        }
    }
    eprintln!("benign workload: findings below high: {lower:?}");
    assert!(
        loud.is_empty(),
        "the benign workload raised high or critical findings: {loud:?}"
    );
}

#[test]
fn every_script_has_a_test_and_every_rule_a_case() {
    let listed: BTreeSet<String> = CASES
        .iter()
        .chain(NEEDS_SENSOR)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        listed,
        script_names(),
        "rules/tests/*.sh and the case list in this file differ"
    );
    let pack = pack();
    let mut covered = BTreeSet::new();
    for case in &listed {
        let h = header(case);
        assert!(!h.techniques.is_empty(), "{case}.sh names no technique");
        assert!(!h.rules.is_empty(), "{case}.sh names no rule");
        assert_eq!(
            h.needs_sensor.is_some(),
            NEEDS_SENSOR.contains(&case.as_str()),
            "{case}.sh: a `# needs-sensor:` header if and only if the case is in NEEDS_SENSOR"
        );
        for r in &h.rules {
            assert!(pack.contains_key(r), "{case}.sh names unknown rule {r}");
            covered.insert(r.clone());
        }
    }
    // Base rules of correlations are tested through their correlation.
    for (name, rule) in &pack {
        if covered.contains(name) {
            continue;
        }
        let text = std::fs::read_to_string(&rule.file).expect("rule file");
        let referenced = text
            .split("\n---\n")
            .filter(|doc| doc.contains("\ncorrelation:"))
            .any(|doc| doc.contains(&format!("    - {name}\n")));
        assert!(
            referenced,
            "{name} ({}) is tested by no case and used by no correlation",
            rule.file.display()
        );
    }
}

#[test]
fn rules_carry_the_required_metadata() {
    let pack = pack();
    let mut ids = BTreeSet::new();
    for (name, r) in &pack {
        let at = r.file.display();
        assert!(
            is_uuid(&r.id) && ids.insert(r.id.clone()),
            "{name} ({at}): `id` must be a fresh, unique UUID, not {:?}",
            r.id
        );
        assert!(r.level.is_some(), "{name} ({at}): no level");
        assert!(
            r.tags.iter().any(|t| {
                t.strip_prefix("attack.")
                    .is_some_and(|x| !x.starts_with('t') && x.contains(|c: char| c.is_alphabetic()))
            }),
            "{name} ({at}): no ATT&CK tactic tag"
        );
        assert!(
            r.tags.iter().any(|t| t
                .strip_prefix("attack.t")
                .is_some_and(|x| x.len() >= 4 && x[..4].chars().all(|c| c.is_ascii_digit()))),
            "{name} ({at}): no ATT&CK technique tag"
        );
        if r.kind == vigil_sigma::RuleKind::Detection {
            assert_eq!(
                r.logsource.product.as_deref(),
                Some("linux"),
                "{name} ({at}): logsource product must be linux"
            );
        }
    }
    // The keys the engine does not keep, document by document.
    for file in rule_files() {
        let text = std::fs::read_to_string(&file).expect("rule file");
        for (i, doc) in text.split("\n---\n").enumerate() {
            for key in [
                "title: ",
                "id: ",
                "name: ",
                "status: ",
                "description: ",
                "author: Vigil\n",
                "date: ",
                "tags:\n",
                "falsepositives:\n",
                "level: ",
            ] {
                assert!(
                    doc.starts_with(key) || doc.contains(&format!("\n{key}")),
                    "{} (document {}): no top-level `{}`",
                    file.display(),
                    i + 1,
                    key.trim()
                );
            }
            assert!(
                doc.contains("\nlogsource:\n") || doc.contains("\ncorrelation:\n"),
                "{} (document {}): neither logsource nor correlation",
                file.display(),
                i + 1
            );
        }
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        assert!(
            name.as_deref().is_some_and(|n| n.starts_with("vigil_")),
            "{}: rule files are named vigil_*.yml",
            file.display()
        );
    }
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn rules_check_is_clean() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["rules", "check"])
        .arg(rules_dir())
        .output()
        .expect("vigil rules check runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let loaded = stdout
        .lines()
        .find_map(|l| l.strip_prefix("loaded "))
        .unwrap_or_default();
    assert!(loaded.ends_with(", failed 0"), "{stdout}");
    assert!(
        !stderr.contains("WARN") && !stdout.contains("warning"),
        "warnings: {stdout}{stderr}"
    );
}

#[test]
fn readme_covers_every_case_and_rule() {
    let readme = std::fs::read_to_string(rules_dir().join("README.md")).expect("rules/README.md");
    let pack = pack();
    for case in CASES.iter().chain(NEEDS_SENSOR) {
        assert!(
            readme.contains(&format!("`{case}`")),
            "rules/README.md does not list the test {case}"
        );
        for r in header(case).rules {
            let file = pack[&r]
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            assert!(
                readme.contains(&file),
                "rules/README.md does not list {file} (rule {r}, test {case})"
            );
        }
    }
}
