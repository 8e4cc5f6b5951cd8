//! The Debian package end to end (`scripts/build-deb`, packaging/): built around this
//! test build's binary (`--binary`, so the suite never builds the dist profile), then
//! `dpkg -i`: every file in its place, the installed unit verified, the agent started as
//! the unit starts it (with only the unit's capabilities) and detecting, its logs
//! rotated under it; the configuration edited, a newer version installed over it (the
//! edit kept); `dpkg -r` (configuration and state kept) and `dpkg --purge` (all gone).
//! Root and dpkg; the machine is left as it was found, failing or not.
//!
//! Also, without root: the completions and man pages the package installs, generated
//! from the CLI, load in bash and parse as roff.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
mod support;

use support::{lines, stop_agent, tmp, wait_for, Agent};

const ETC: &str = "/etc/vigil";
const STATE: &str = "/var/lib/vigil";
const LOGS: &str = "/var/log/vigil";
const UNIT: &str = "/lib/systemd/system/vigil-agent.service";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `cmd`, panics with its output unless it succeeds.
fn ok(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The package's status as dpkg-query says it (empty: unknown to dpkg).
fn status() -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status} ${Version}", "vigil"])
        .stderr(Stdio::null())
        .output()
        .map(|o| text(&o.stdout))
        .unwrap_or_default()
}

/// Undoes the install whatever happened: the agent stopped, the package purged, its
/// directories gone (they did not exist before the test), the build removed.
struct Cleanup {
    dir: PathBuf,
    agent: Option<Agent>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        drop(self.agent.take());
        if !status().is_empty() {
            let _ = Command::new("dpkg")
                .args(["--purge", "vigil"])
                .stdin(Stdio::null())
                .output();
        }
        for d in [ETC, STATE, LOGS] {
            let _ = std::fs::remove_dir_all(d);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether dpkg's configuration leaves `path` out of installs (`path-exclude`, as
/// Debian's slim container images do for man pages and docs), the last matching
/// `path-exclude`/`path-include` deciding.
fn dpkg_excludes(path: &str) -> bool {
    let mut texts = vec![std::fs::read_to_string("/etc/dpkg/dpkg.cfg").unwrap_or_default()];
    if let Ok(rd) = std::fs::read_dir("/etc/dpkg/dpkg.cfg.d") {
        let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        texts.extend(
            files
                .iter()
                .map(|f| std::fs::read_to_string(f).unwrap_or_default()),
        );
    }
    let mut excluded = false;
    for line in texts.iter().flat_map(|t| t.lines()) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("path-exclude"), Some(p)) if glob(p, path) => excluded = true,
            (Some("path-include"), Some(p)) if glob(p, path) => excluded = false,
            _ => {}
        }
    }
    excluded
}

/// fnmatch(3) without flags, as dpkg matches its filters: `*` and `?` match `/` too.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.chars().next() {
        None => s.is_empty(),
        Some('*') => (0..=s.len())
            .filter(|&i| s.is_char_boundary(i))
            .any(|i| glob(&pattern[1..], &s[i..])),
        Some(c) => {
            s.chars().next().is_some_and(|d| c == '?' || c == d) && {
                let n = s.chars().next().map_or(0, char::len_utf8);
                glob(&pattern[c.len_utf8()..], &s[n..])
            }
        }
    }
}

fn mode(path: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

/// Builds the package around this test's binary.
fn build(out: &Path, version: &str) -> PathBuf {
    let o = ok(Command::new(repo().join("scripts/build-deb"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .args(["--version", version, "--out"])
        .arg(out));
    let deb = PathBuf::from(text(&o.stdout).lines().last().unwrap_or_default());
    assert!(
        deb.is_file(),
        "build-deb printed no package: {}",
        text(&o.stdout)
    );
    deb
}

/// `dpkg -i`, and checks that dpkg then has `version` installed.
fn install(deb: &Path, version: &str) {
    ok(Command::new("dpkg").arg("-i").arg(deb));
    let now = status();
    assert!(
        now.starts_with(&format!("install ok installed {version}")),
        "{now}"
    );
}

/// Every file the package should install, with its mode; each rule of the pack.
fn expected_files() -> Vec<(String, u32)> {
    let mut want: Vec<(String, u32)> = [
        ("/usr/bin/vigil", 0o755),
        (UNIT, 0o644),
        ("/etc/vigil/agent.toml", 0o600),
        ("/etc/logrotate.d/vigil", 0o644),
        ("/usr/share/bash-completion/completions/vigil", 0o644),
        ("/usr/share/zsh/vendor-completions/_vigil", 0o644),
        ("/usr/share/fish/vendor_completions.d/vigil.fish", 0o644),
        ("/usr/share/man/man1/vigil.1.gz", 0o644),
        ("/usr/share/man/man1/vigil-agent.1.gz", 0o644),
        ("/usr/share/man/man1/vigil-rules-check.1.gz", 0o644),
        ("/usr/share/doc/vigil/copyright", 0o644),
        ("/usr/share/doc/vigil/changelog.Debian.gz", 0o644),
        ("/usr/share/vigil/rules/README.md", 0o644),
    ]
    .iter()
    .map(|(p, m)| (p.to_string(), *m))
    .collect();
    let mut stack = vec![repo().join("rules/linux")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("rules/linux").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yml") {
                let rel = p.strip_prefix(repo().join("rules")).expect("under rules/");
                want.push((format!("/usr/share/vigil/rules/{}", rel.display()), 0o644));
            }
        }
    }
    want
}

/// The unit's `Key=` value (the last one).
fn unit_setting(unit: &str, key: &str) -> String {
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
        .to_string()
}

#[test]
fn the_package_installs_a_detecting_agent_keeps_its_configuration_on_upgrade_and_purges_clean() {
    if !vigil_testdata::root_or_skip() {
        return;
    }
    for tool in ["dpkg", "dpkg-deb", "dpkg-shlibdeps", "setpriv"] {
        if !has(tool) {
            assert!(
                !vigil_testdata::in_ci(),
                "{tool} is missing (scripts/setup installs it)"
            );
            vigil_testdata::skip(&format!("{tool} is not installed"));
            return;
        }
    }
    // Never touch a real installation, nor a by-hand one's directories: purge would
    // delete them.
    let before = status();
    // dpkg may remember a purged package as "unknown ok not-installed".
    let present = !before.is_empty() && !before.contains("not-installed");
    let taken: Vec<&str> = [ETC, STATE, LOGS]
        .into_iter()
        .filter(|d| Path::new(d).exists())
        .collect();
    if present || !taken.is_empty() {
        let why = format!(
            "vigil is installed on this host ({before}) or its directories exist ({taken:?}): \
             the package test would remove them"
        );
        assert!(!vigil_testdata::in_ci(), "{why}");
        vigil_testdata::skip(&why);
        return;
    }
    let dir = tmp("package", "debs");
    let mut guard = Cleanup {
        dir: dir.clone(),
        agent: None,
    };
    let deb1 = build(&dir.join("v1"), "0.1.0-1");
    // Lintian-clean where lintian is installed (scripts/setup leaves it out: heavy);
    // the overrides are justified in packaging/debian/lintian-overrides.
    if has("lintian") {
        let o = Command::new("lintian")
            .arg(&deb1)
            .stdin(Stdio::null())
            .output()
            .expect("lintian");
        let tags: Vec<String> = text(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
            .map(str::to_string)
            .collect();
        assert!(tags.is_empty(), "lintian: {tags:#?}");
    }

    // Install.
    install(&deb1, "0.1.0-1");
    for (path, m) in expected_files() {
        if dpkg_excludes(&path) {
            assert!(
                !Path::new(&path).exists(),
                "{path} is excluded by dpkg's configuration"
            );
            continue;
        }
        assert_eq!(mode(&path), m, "{path}: mode {:o}", mode(&path));
    }
    assert_eq!(
        std::fs::read(format!("{ETC}/agent.toml")).expect("config"),
        std::fs::read(repo().join("config/agent.toml")).expect("repo config"),
        "the installed configuration is the repository's"
    );
    for d in [STATE, LOGS] {
        assert_eq!(mode(d), 0o700, "{d}");
    }
    let conffiles =
        text(&ok(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "vigil"])).stdout);
    for c in ["/etc/vigil/agent.toml", "/etc/logrotate.d/vigil"] {
        assert!(conffiles.contains(c), "{c} is not a conffile: {conffiles}");
    }
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/vigil-agent.service").exists(),
        "installing must not enable the service"
    );
    let deps = text(
        &ok(Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb1)
            .arg("Depends"))
        .stdout,
    );
    assert!(deps.contains("libc6 (>= "), "Depends: {deps}");
    // The installed binary is the one packaged (stripped) and runs.
    let v = ok(Command::new("/usr/bin/vigil").arg("--version"));
    assert_eq!(
        text(&v.stdout).trim(),
        format!("vigil {}", env!("CARGO_PKG_VERSION"))
    );
    let check =
        ok(Command::new("/usr/bin/vigil").args(["rules", "check", "/usr/share/vigil/rules"]));
    assert!(
        text(&check.stdout).contains(", failed 0"),
        "{}",
        text(&check.stdout)
    );

    // The installed unit passes systemd's checks (its man page included, where man
    // pages are installed).
    let unit = std::fs::read_to_string(UNIT).expect("unit");
    if has("systemd-analyze") {
        let mut verify = Command::new("systemd-analyze");
        verify.arg("verify");
        if !has("man") || dpkg_excludes("/usr/share/man/man1/vigil-agent.1.gz") {
            verify.arg("--man=no");
        }
        let out = ok(verify.arg(UNIT));
        let err = text(&out.stderr);
        assert!(err.trim().is_empty(), "systemd-analyze verify: {err}");
    } else {
        assert!(
            !vigil_testdata::in_ci(),
            "systemd-analyze is missing (scripts/setup installs systemd)"
        );
    }

    // The agent as the unit starts it, with only the capabilities the unit leaves it
    // (no systemd here to start the unit itself), detects a program run from /tmp
    // with the installed configuration and rule pack.
    let exec = unit_setting(&unit, "ExecStart");
    let caps = unit_setting(&unit, "CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(argv[0], "/usr/bin/vigil");
    let events = Path::new(LOGS).join("events.jsonl");
    let findings = Path::new(LOGS).join("findings.jsonl");
    // Much as systemd would: a mount namespace of its own with the root file system
    // read-only but for the unit's ReadWritePaths= and its state and logs (what
    // ProtectSystem=strict does; /home is on the root here), no new privileges, and
    // only the bounding set's capabilities.
    let writable: Vec<String> = unit_setting(&unit, "ReadWritePaths")
        .split_whitespace()
        .map(|p| p.trim_start_matches('-').to_string())
        .chain([STATE.to_string(), LOGS.to_string()])
        .filter(|p| Path::new(p).is_dir())
        .collect();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "slave", "--", "sh", "-c"])
        .arg(
            "set -e; for d in $RW; do mount --bind \"$d\" \"$d\"; done; \
             mount -o remount,bind,ro /; \
             if touch /usr/vigil-ro-check 2>/dev/null; then rm -f /usr/vigil-ro-check; echo / is writable >&2; exit 1; fi; \
             exec setpriv \"--bounding-set=-all,$CAPS\" --inh-caps=-all --no-new-privs -- \"$@\"",
        )
        .arg("sh")
        .args(&argv)
        .env("RW", writable.join(" "))
        .env("CAPS", &caps);
    guard.agent = Some(support::start_agent(cmd, &events, &dir.join("agent.log")));
    let rule_id =
        std::fs::read_to_string("/usr/share/vigil/rules/linux/execution/vigil_exec_from_tmp.yml")
            .expect("installed rule")
            .lines()
            .find_map(|l| l.strip_prefix("id: ").map(str::to_string))
            .expect("rule id");
    let probe_dir = PathBuf::from(format!("/tmp/vigil-package-{}", std::process::id()));
    std::fs::create_dir_all(&probe_dir).expect("probe dir");
    let detects = |name: &str| {
        let probe = probe_dir.join(name);
        std::fs::copy("/bin/true", &probe).expect("copy /bin/true");
        ok(&mut Command::new(&probe));
        wait_for(&findings, 30, |e| {
            e["class_uid"] == 2004
                && e["finding_info"]["analytic"]["uid"] == rule_id.as_str()
                && e["actor"]["process"]["cmd_line"] == probe.to_str().unwrap_or_default()
        })
        .unwrap_or_else(|| {
            panic!(
                "no finding of vigil_exec_from_tmp for {}:\n{}",
                probe.display(),
                std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
            )
        })
    };
    detects("probe-1");
    // The eBPF sensor itself, not the fallback a missing capability would leave.
    if Path::new("/sys/kernel/btf/vmlinux").exists() {
        let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
        assert!(log.contains("agent running mode=\"ebpf\""), "{log}");
    }
    // Log rotation under the running agent: the old lines move to .1, the next ones
    // start the emptied file (appended, no hole of zero bytes).
    if has("logrotate") {
        ok(Command::new("logrotate")
            .args(["-f", "-s"])
            .arg(dir.join("logrotate.state"))
            .arg("/etc/logrotate.d/vigil"));
        let rotated = std::fs::read_to_string(findings.with_extension("jsonl.1")).expect("rotated");
        assert!(
            rotated.contains("probe-1"),
            "the rotated file keeps the earlier finding"
        );
        detects("probe-2");
        let bytes = std::fs::read(&findings).expect("findings");
        assert!(!bytes.contains(&0), "a hole of zero bytes after rotation");
        let now = lines(&findings).expect("findings are JSON lines");
        assert!(
            now.iter().all(|e| !e.to_string().contains("probe-1")),
            "the emptied file holds only what came after the rotation"
        );
    } else {
        assert!(
            !vigil_testdata::in_ci(),
            "logrotate is missing (scripts/setup installs it)"
        );
    }
    let code = stop_agent(guard.agent.as_mut().expect("agent"));
    assert_eq!(code, Some(0), "the agent stops cleanly");
    guard.agent = None;
    let _ = std::fs::remove_dir_all(&probe_dir);

    // `vigil demo` beside the installed service leaves the service's state alone: its
    // heartbeat, read at the service's next start to report the gap, never names the
    // demo's agent (which runs in the demo's process). (Agents of other test runs on
    // a shared machine may write it meanwhile: they have other pids.)
    let heartbeat = Path::new(STATE).join("agent.heartbeat");
    assert!(heartbeat.exists(), "the agent's heartbeat in the state dir");
    let demo = Command::new("/usr/bin/vigil")
        .arg("demo")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vigil demo");
    let demo_pid = demo.id();
    let demo = demo.wait_with_output().expect("vigil demo runs");
    assert!(
        demo.status.success()
            && text(&demo.stdout)
                .lines()
                .any(|l| l.starts_with("incident ")),
        "{}{}",
        text(&demo.stdout),
        text(&demo.stderr)
    );
    let beat = std::fs::read_to_string(&heartbeat).unwrap_or_default();
    assert!(
        !beat.contains(&format!("\"pid\":{demo_pid},")),
        "the demo wrote the service's heartbeat: {beat}"
    );

    // An edited configuration survives an upgrade.
    let config = format!("{ETC}/agent.toml");
    let edited = std::fs::read_to_string(&config)
        .expect("config")
        .replace("lineage_depth = 8", "lineage_depth = 6");
    assert!(edited.contains("lineage_depth = 6"));
    std::fs::write(&config, &edited).expect("edit");
    let deb2 = build(&dir.join("v2"), "0.1.0-2");
    install(&deb2, "0.1.0-2");
    assert_eq!(std::fs::read_to_string(&config).expect("config"), edited);
    ok(Command::new("/usr/bin/vigil").args(["rules", "check", "--builtin"]));

    // Remove: the program goes, the configuration and state stay.
    std::fs::write(Path::new(STATE).join("marker"), "state").expect("state file");
    ok(Command::new("dpkg").args(["-r", "vigil"]));
    assert!(
        status().starts_with("deinstall ok config-files"),
        "{}",
        status()
    );
    for gone in ["/usr/bin/vigil", UNIT, "/usr/share/vigil/rules/README.md"] {
        assert!(
            !Path::new(gone).exists(),
            "{gone} is still there after dpkg -r"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&config).expect("config kept"),
        edited
    );
    assert!(
        Path::new(STATE).join("marker").exists(),
        "state kept by dpkg -r"
    );

    // Purge: nothing left.
    ok(Command::new("dpkg").args(["--purge", "vigil"]));
    assert!(
        status().is_empty() || status().contains("not-installed"),
        "{}",
        status()
    );
    for gone in [ETC, STATE, LOGS, "/etc/logrotate.d/vigil"] {
        assert!(
            !Path::new(gone).exists(),
            "{gone} is still there after dpkg --purge"
        );
    }
}

/// What completions and man pages the package installs come from the CLI definition:
/// the bash script completes subcommands, every visible command has a page, and every
/// page parses as roff without a warning.
#[test]
fn completions_complete_subcommands_and_every_command_has_a_man_page() {
    let vigil = env!("CARGO_BIN_EXE_vigil");
    let dir = tmp("package", "docs");
    let script = dir.join("vigil.bash");
    let out = ok(Command::new(vigil).args(["completions", "bash"]));
    std::fs::write(&script, &out.stdout).expect("script");
    // Completes `vigil ru` and `vigil rules ch` as bash would call the function.
    let complete = |words: &str| {
        let o = ok(Command::new("bash").arg("-c").arg(format!(
            "source '{}' && complete -p vigil >/dev/null && COMP_WORDS=({words}) && \
             COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)) && \
             _vigil vigil \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\" && \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        )));
        text(&o.stdout)
    };
    assert_eq!(complete("vigil ru").trim(), "rules");
    assert_eq!(complete("vigil rules ch").trim(), "check");
    assert!(complete("vigil agent --fin")
        .lines()
        .any(|l| l == "--findings"));
    for shell in ["zsh", "fish"] {
        let o = ok(Command::new(vigil).args(["completions", shell]));
        assert!(text(&o.stdout).contains("vigil"), "{shell}");
        if has(shell) {
            let f = dir.join(format!("vigil.{shell}"));
            std::fs::write(&f, &o.stdout).expect("script");
            ok(Command::new(shell).arg("-n").arg(&f));
        }
    }

    let man = dir.join("man");
    let listed = text(&ok(Command::new(vigil).arg("man").arg(&man)).stdout);
    let pages: Vec<&str> = listed.lines().collect();
    // Every command the help lists has its page (and nested ones, `vigil rules check`).
    let help = text(&ok(Command::new(vigil).arg("--help")).stdout);
    let commands = support::help_commands(&help);
    assert!(commands.contains(&"agent"), "{help}");
    for c in commands
        .iter()
        .chain(["rules-check", "ocsf-validate"].iter())
    {
        let want = man.join(format!("vigil-{c}.1"));
        assert!(
            pages.contains(&want.to_str().unwrap_or_default()),
            "no page for {c}: {listed}"
        );
    }
    assert!(!pages
        .iter()
        .any(|p| p.contains("completions") || p.contains("perm-watchdog")));
    for p in &pages {
        let o = ok(Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(p));
        assert!(
            text(&o.stderr).trim().is_empty(),
            "{p}: {}",
            text(&o.stderr)
        );
    }
    if has("man") {
        let o = ok(Command::new("man")
            .arg("-l")
            .arg(man.join("vigil-agent.1"))
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_FORMATTING", "0"));
        // man's bold and underline are overstruck characters: `X\x08X`, `_\x08X`.
        let mut page = String::new();
        for c in text(&o.stdout).chars() {
            if c == '\x08' {
                page.pop();
            } else {
                page.push(c);
            }
        }
        assert!(
            page.contains("vigil-agent") && page.contains("--findings"),
            "{page}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
