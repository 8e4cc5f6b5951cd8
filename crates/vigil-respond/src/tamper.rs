//! Anti-tamper: attempts on the agent itself raise Detection Findings (Defense Evasion,
//! T1562.001 Impair Defenses: Disable or Modify Tools):
//!
//! * **signals**: stop and other signals are read through a signalfd with their sender
//!   (pid, uid): who asked the agent to stop, who continued it after a SIGSTOP;
//! * **stalls**: the agent did not run for seconds (stopped, frozen);
//! * **its process**: another process traces it or writes its memory (the sensor's
//!   `ptrace` and `process_vm_writev` events naming the agent or its helper);
//! * **its eBPF programs**: its links counted at start and checked every ten seconds
//!   (the raw tracepoint links cannot be detached from outside; closing them takes
//!   code run inside the agent);
//! * **its files**: its binary, configuration, vault, journal and state changed,
//!   renamed or removed by another process (the sensor's file events);
//! * **the gap**: a heartbeat file in the state directory says, at the next start, how
//!   long the agent was not running and whether it stopped cleanly.
//!
//! The findings go to the outputs, not back through the policy: response never acts on
//! who stopped it (that may be the service manager).

use crate::config::RespondConfig;
use crate::procs::Guard;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil_event::model::{
    analytic_type, severity, Actor, Analytic, Attack, DetectionFinding, FindingInfo, Process,
    SubTechnique, Tactic, Technique,
};
use vigil_event::OcsfEvent;

/// A signal the agent received, with its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalNote {
    /// The signal number.
    pub signo: i32,
    /// The sender's pid (0: the kernel).
    pub pid: i32,
    /// The sender's uid.
    pub uid: u32,
    /// The sender's parent, read as the signal arrived (0: unknown, gone already).
    pub ppid: i32,
    /// When (ms since the epoch).
    pub time_ms: i64,
}

/// Signals read by the listener, waiting for the response stage (one agent per process).
static INBOX: Mutex<Vec<SignalNote>> = Mutex::new(Vec::new());

/// Signals the agent reads instead of taking their default action.
const WATCHED: [nix::sys::signal::Signal; 8] = [
    nix::sys::signal::Signal::SIGINT,
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGHUP,
    nix::sys::signal::Signal::SIGQUIT,
    nix::sys::signal::Signal::SIGTSTP,
    nix::sys::signal::Signal::SIGCONT,
    nix::sys::signal::Signal::SIGUSR1,
    nix::sys::signal::Signal::SIGUSR2,
];

/// Blocks the watched signals in the calling thread (call it first in `main`, before
/// any thread starts: threads inherit the mask) and reads them on a thread of their own
/// through a signalfd: each is noted with its sender; SIGINT and SIGTERM set `stop`.
pub fn listen_signals(stop: Arc<AtomicBool>) -> nix::Result<std::thread::JoinHandle<()>> {
    let mut mask = nix::sys::signal::SigSet::empty();
    for s in WATCHED {
        mask.add(s);
    }
    mask.thread_block()?;
    let fd = nix::sys::signalfd::SignalFd::new(&mask)?;
    Ok(std::thread::spawn(move || loop {
        let info = match fd.read_signal() {
            Ok(Some(i)) => i,
            Ok(None) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("cannot read signals: {e}");
                return;
            }
        };
        let signo = info.ssi_signo as i32;
        let pid = info.ssi_pid as i32;
        // At once: a `kill` command is gone moments later.
        let ppid = crate::procs::ProcInfo::read(pid).map_or(0, |p| p.ppid);
        if signo == nix::libc::SIGINT || signo == nix::libc::SIGTERM {
            stop.store(true, Ordering::Relaxed);
        }
        if let Ok(mut inbox) = INBOX.lock() {
            if inbox.len() < 1024 {
                inbox.push(SignalNote {
                    signo,
                    pid,
                    uid: info.ssi_uid,
                    ppid,
                    time_ms: vigil_event::time::now_ms(),
                });
            }
        }
    }))
}

/// Takes the signals noted so far.
pub fn take_signals() -> Vec<SignalNote> {
    INBOX
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default()
}

/// What the heartbeat file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The agent's pid.
    pub pid: i32,
    /// The boot it ran in.
    pub boot_id: String,
    /// When it last wrote (ms since the epoch).
    pub last_ms: i64,
    /// Whether it stopped cleanly.
    pub clean: bool,
    /// Who asked it to stop, when it did: pid and uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<(i32, u32)>,
}

/// Anti-tamper state, held by the responder.
#[derive(Debug, Default)]
pub struct TamperState {
    /// eBPF links at the first check.
    links: Option<usize>,
    last_links_check: Option<Instant>,
    last_tick: Option<(Instant, i64)>,
    heartbeat_written: Option<Instant>,
    stopped_by: Option<(i32, u32)>,
    links_reported: bool,
    /// Findings raised.
    pub findings: u64,
}

/// Counts the eBPF links this process holds (`link_type:` in its fdinfo).
pub fn own_links() -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc/self/fdinfo")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(t) = std::fs::read_to_string(e.path()) {
            if t.lines().any(|l| l.starts_with("link_type:")) {
                n += 1;
            }
        }
    }
    n
}

fn signal_name(signo: i32) -> String {
    nix::sys::signal::Signal::try_from(signo)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signo}"))
}

/// A Detection Finding of Vigil's own about itself.
fn finding(
    rule: &str,
    title: &str,
    sev: i32,
    desc: String,
    actor: Option<Process>,
    time: i64,
) -> OcsfEvent {
    let info = FindingInfo {
        uid: format!("{rule}@{time}"),
        title: Some(title.to_string()),
        desc: Some(desc.clone()),
        analytic: Some(Analytic {
            type_id: analytic_type::BEHAVIORAL,
            kind: Some(analytic_type::name(analytic_type::BEHAVIORAL).into()),
            uid: Some(rule.to_string()),
            name: Some(title.to_string()),
            ..Analytic::default()
        }),
        attacks: vec![Attack {
            tactic: Some(Tactic {
                name: Some("Defense Evasion".into()),
                uid: Some("TA0005".into()),
            }),
            technique: Some(Technique {
                name: Some("Impair Defenses".into()),
                uid: Some("T1562".into()),
            }),
            sub_technique: Some(SubTechnique {
                name: Some("Disable or Modify Tools".into()),
                uid: Some("T1562.001".into()),
            }),
            ..Attack::default()
        }],
        types: vec!["Tamper".into()],
        created_time: Some(time),
        ..FindingInfo::default()
    };
    let mut f = DetectionFinding::new(1, time, "respond", info);
    f.severity_id = sev;
    f.is_alert = Some(true);
    f.message = Some(desc);
    if let Some(p) = actor {
        f.actor = Some(Actor {
            process: Some(vigil_event::model::Shared::new(p)),
            ..Actor::default()
        });
    }
    f.into()
}

/// What the checks read of the responder that holds them.
pub(crate) struct Context<'a> {
    /// The response configuration (`tamper` on or off, the state directory).
    pub config: &'a RespondConfig,
    /// This boot's id.
    pub boot_id: &'a str,
    /// What is the agent's own (processes, paths).
    pub guard: &'a Guard,
}

impl Context<'_> {
    fn config(&self) -> &RespondConfig {
        self.config
    }

    fn boot_id(&self) -> &str {
        self.boot_id
    }

    fn guard(&self) -> &Guard {
        self.guard
    }

    fn heartbeat_file(&self) -> PathBuf {
        self.config.state_dir.join("agent.heartbeat")
    }

    fn write_heartbeat(&self, clean: bool, stopped_by: Option<(i32, u32)>) {
        let hb = Heartbeat {
            pid: std::process::id() as i32,
            boot_id: self.boot_id().to_string(),
            last_ms: vigil_event::time::now_ms(),
            clean,
            stopped_by,
        };
        let path = self.heartbeat_file();
        // Kept only where the state directory exists (the unit's StateDirectory= makes
        // it): a development run leaves nothing behind.
        if !self.config().state_dir.is_dir() {
            return;
        }
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string(&hb).unwrap_or_default();
        if std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, &path))
            .is_err()
        {
            tracing::warn!("cannot write the agent's heartbeat {}", path.display());
        }
    }
}

impl TamperState {
    /// At start: the gap since the last run, from its heartbeat.
    pub(crate) fn start(&mut self, cx: &Context<'_>, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        if !cx.config().tamper {
            return;
        }
        let path = cx.heartbeat_file();
        if !cx.config().state_dir.is_dir() {
            tracing::info!(
                "no state directory {}: the gap after a restart is not tracked",
                cx.config().state_dir.display()
            );
        }
        if let Ok(text) = std::fs::read_to_string(&path) {
            match serde_json::from_str::<Heartbeat>(&text) {
                Ok(hb) => {
                    let gap_s = (now_ms - hb.last_ms).max(0) as f64 / 1000.0;
                    let same_boot = hb.boot_id == cx.boot_id();
                    let (sev, title, how) = if hb.clean {
                        (
                            severity::LOW,
                            "Vigil agent was stopped",
                            match hb.stopped_by {
                                Some((pid, uid)) => format!(
                                    "stopped cleanly at the request of pid {pid} (uid {uid})"
                                ),
                                None => "stopped cleanly".to_string(),
                            },
                        )
                    } else if same_boot {
                        (
                            severity::HIGH,
                            "Vigil agent was killed or crashed",
                            format!(
                                "pid {} ended without a clean stop (killed, or crashed)",
                                hb.pid
                            ),
                        )
                    } else {
                        (
                            severity::MEDIUM,
                            "Vigil agent did not stop before a reboot",
                            "the host restarted without the agent's clean stop".to_string(),
                        )
                    };
                    let desc = format!(
                        "the agent was not running for {gap_s:.1} s, from {} to {}: {how}",
                        vigil_event::time::format_ms(hb.last_ms),
                        vigil_event::time::format_ms(now_ms)
                    );
                    self.findings += 1;
                    out.push(finding("vigil-tamper-gap", title, sev, desc, None, now_ms));
                }
                Err(e) => tracing::warn!("{}: unreadable heartbeat: {e}", path.display()),
            }
        }
        cx.write_heartbeat(false, None);
    }

    /// The clean stop, noted for the next start.
    pub(crate) fn stop(&mut self, cx: &Context<'_>) {
        if cx.config().tamper {
            cx.write_heartbeat(true, self.stopped_by);
        }
    }

    /// Each tick: signals received, a stall, the eBPF links, the heartbeat.
    pub(crate) fn tick(&mut self, cx: &Context<'_>, now_ms: i64, out: &mut Vec<OcsfEvent>) {
        if !cx.config().tamper {
            let _ = take_signals();
            return;
        }
        let now = Instant::now();
        // A stall: wall time ran on while the agent did not.
        let mut stalled = None;
        if let Some((at, at_ms)) = self.last_tick {
            let wall = now_ms - at_ms;
            if at.elapsed() > Duration::from_secs(5) || wall > 5_000 {
                stalled = Some(wall.max(at.elapsed().as_millis() as i64));
            }
        }
        self.last_tick = Some((now, now_ms));
        let signals = take_signals();
        let continued = signals
            .iter()
            .find(|s| s.signo == nix::libc::SIGCONT)
            .copied();
        for s in signals {
            if s.signo == nix::libc::SIGCONT {
                continue;
            }
            let sender = crate::record::process_of(s.pid, cx.boot_id());
            let stop = s.signo == nix::libc::SIGINT || s.signo == nix::libc::SIGTERM;
            if stop {
                self.stopped_by = Some((s.pid, s.uid));
            }
            // The terminal (the kernel sends its Ctrl-C), the service manager, the
            // process that started the agent or a command it ran (`kill` from the
            // agent's own script or shell): the usual ways to stop it.
            let parent = nix::unistd::getppid().as_raw();
            let usual = s.pid == 0 || s.pid == 1 || s.pid == parent || s.ppid == parent;
            let sev = match (stop, usual) {
                (true, true) => severity::LOW,
                (false, true) => severity::MEDIUM,
                (_, false) => severity::HIGH,
            };
            let what = match (stop, usual) {
                (true, true) => "asked the agent to stop (its terminal, service manager or parent)",
                (true, false) => "asked the agent to stop",
                (false, _) => "sent the agent a signal it ignores",
            };
            let desc = format!(
                "{} from pid {} (uid {}, {}): {what}",
                signal_name(s.signo),
                s.pid,
                s.uid,
                sender
                    .cmd_line
                    .as_deref()
                    .or(sender.name.as_deref())
                    .unwrap_or("gone")
            );
            self.findings += 1;
            out.push(finding(
                "vigil-tamper-signal",
                "Signal to the Vigil agent",
                sev,
                desc,
                Some(sender),
                s.time_ms,
            ));
        }
        if continued.is_some() || stalled.is_some() {
            let ms = stalled.unwrap_or(0);
            let desc = match continued {
                Some(c) => format!(
                    "the agent was stopped and continued by pid {} (uid {}); it did not run for {ms} ms",
                    c.pid, c.uid
                ),
                None => format!("the agent did not run for {ms} ms (stopped, frozen or starved)"),
            };
            let actor = continued.map(|c| crate::record::process_of(c.pid, cx.boot_id()));
            self.findings += 1;
            out.push(finding(
                "vigil-tamper-stall",
                "Vigil agent stopped",
                severity::HIGH,
                desc,
                actor,
                now_ms,
            ));
        }
        // The eBPF links: counted once the sensor runs, then every ten seconds.
        let check = self
            .last_links_check
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if check {
            self.last_links_check = Some(now);
            let n = own_links();
            match self.links {
                None => self.links = Some(n),
                Some(at_start) if n < at_start && !self.links_reported => {
                    self.links_reported = true;
                    self.findings += 1;
                    out.push(finding(
                        "vigil-tamper-ebpf",
                        "Vigil agent's eBPF programs detached",
                        severity::CRITICAL,
                        format!("the agent held {at_start} eBPF links at start and holds {n} now: its sensor is partly blind"),
                        None,
                        now_ms,
                    ));
                }
                _ => {}
            }
        }
        if self
            .heartbeat_written
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.heartbeat_written = Some(now);
            cx.write_heartbeat(false, None);
        }
    }

    /// An event of the stream that touches the agent: its process traced or written,
    /// its files changed.
    pub(crate) fn event(&mut self, cx: &Context<'_>, ev: &OcsfEvent, out: &mut Vec<OcsfEvent>) {
        if !cx.config().tamper {
            return;
        }
        match ev {
            OcsfEvent::Process(p) if p.activity_id == 3 || p.activity_id == 4 => {
                let Some(pid) = p.process.pid else { return };
                if !cx.guard().is_own(pid) {
                    return;
                }
                let actor = p.actor.as_ref().and_then(|a| a.process.as_deref()).cloned();
                if actor
                    .as_ref()
                    .and_then(|a| a.pid)
                    .is_some_and(|a| cx.guard().is_own(a))
                {
                    return;
                }
                let how = if p.activity_id == 4 {
                    "wrote into its memory (process_vm_writev)"
                } else {
                    "traced it (ptrace)"
                };
                let who = actor
                    .as_ref()
                    .and_then(|a| a.cmd_line.clone())
                    .unwrap_or_default();
                self.findings += 1;
                out.push(finding(
                    "vigil-tamper-process",
                    "Vigil agent's process tampered with",
                    severity::CRITICAL,
                    format!("{who} {how}: pid {pid} is the agent's"),
                    actor,
                    p.time,
                ));
            }
            OcsfEvent::File(f) => {
                let paths = [
                    f.file.path.as_deref(),
                    f.file_result.as_ref().and_then(|r| r.path.as_deref()),
                ];
                let Some(hit) = paths
                    .into_iter()
                    .flatten()
                    .find(|p| cx.guard().is_own_path(Path::new(p)))
                else {
                    return;
                };
                let actor = f.actor.as_ref().and_then(|a| a.process.as_deref()).cloned();
                if actor
                    .as_ref()
                    .and_then(|a| a.pid)
                    .is_some_and(|a| cx.guard().is_own(a))
                {
                    return;
                }
                // Vigil's own commands (restore from the vault, a person's quarantine)
                // change these files too: reported, lower.
                let by_vigil = actor
                    .as_ref()
                    .and_then(|a| a.file.as_ref())
                    .and_then(|f| f.path.as_deref())
                    .is_some_and(|p| std::env::current_exe().is_ok_and(|e| e == Path::new(p)));
                let what = f.activity_name.as_deref().unwrap_or("Change").to_string();
                let who = actor
                    .as_ref()
                    .and_then(|a| a.cmd_line.clone().or(a.name.clone()))
                    .unwrap_or_default();
                self.findings += 1;
                out.push(finding(
                    "vigil-tamper-files",
                    "Vigil agent's files changed",
                    if by_vigil { severity::LOW } else { severity::HIGH },
                    format!("{what} of {hit} by {who}: the agent's own file (binary, configuration, vault, journal or state)"),
                    actor,
                    f.time,
                ));
            }
            _ => {}
        }
    }
}
