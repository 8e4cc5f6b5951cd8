//! Storylines: which session of the host every process, and so every event, belongs to.
//!
//! A *story* is the tree of processes one session started: an SSH logon, a cron job, a
//! systemd unit, a container's entrypoint. Attacks are told in stories (a logon, a
//! download, a shell, a persistence write), so findings are grouped by story, and a
//! story with findings is an incident.
//!
//! # The rule
//!
//! A process joins its parent's story (across fork and exec), except where the parent is
//! a *boundary*, where it starts a story of its own:
//!
//! * the parent is a service manager (pid 1, or any `systemd`): each child is a service
//!   ([`StoryKind::Service`]);
//! * the parent is a container runtime's shim (`containerd-shim*`, `conmon`): each child
//!   is a container ([`StoryKind::Container`]);
//! * the parent is a session spawner (`sshd`, `cron`, `atd`, `login`, ...) *and* it is
//!   the main process of a service (the root of a service story, or of a story whose
//!   start is unknown): each child is a session ([`StoryKind::Session`]). The spawner's processes inside a session (sshd's
//!   privilege-separated children, cron's job runner) do not cut again.
//!
//! A process keeps the story it was given for its whole life: re-parenting (its parent
//! exits and init adopts it) changes nothing, and an exec only updates whether it is a
//! boundary. A story's id is its first process's uid (`process.uid`: boot id, pid and
//! start time), so an agent that restarts gives the same ids.
//!
//! Processes first seen mid-life (started before the agent, or their launch lost) are
//! placed by their ancestry (the event's `process.ancestry`, nearest first), replaying
//! the rule from the farthest known ancestor down. An ancestry cut short (deeper than the
//! sensor's `lineage_depth`) starts its story at the farthest ancestor known.
//!
//! Memory is bounded: exited processes are forgotten after a linger in event time, and
//! past [`StoryConfig::max_processes`] the newest are placed but not remembered (counted
//! in [`StoryStats::untracked`]).

use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use vigil_event::model::{Process, ProcessActivity};
use vigil_event::OcsfEvent;

/// Process Activity `activity_id` Terminate.
const TERMINATE: i32 = 2;
/// Process Activity `launch_type_id` Exec: a new program in the same process.
const LAUNCH_EXEC: i32 = 3;

/// Storyline settings (the agent configuration's `[story]` table).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoryConfig {
    /// Executable names (the last path component) whose children each start a service
    /// story. pid 1 always is one.
    pub service_managers: Vec<String>,
    /// Executable names that start a session story for each child when they run as a
    /// service's main process (SSH daemons, cron, at, console login).
    pub session_spawners: Vec<String>,
    /// Executable name prefixes of container runtime shims: each child starts a
    /// container story.
    pub container_runtimes: Vec<String>,
    /// Milliseconds (event time) an exited process is remembered, for events that arrive
    /// after its exit and for children forked just before it.
    pub linger_ms: i64,
    /// Processes remembered at most.
    pub max_processes: usize,
}

impl Default for StoryConfig {
    fn default() -> Self {
        let names = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        StoryConfig {
            service_managers: names(&["systemd", "init", "runit", "s6-svscan", "supervisord"]),
            session_spawners: names(&[
                "sshd",
                "sshd-session",
                "dropbear",
                "cron",
                "crond",
                "atd",
                "anacron",
                "login",
                "in.telnetd",
            ]),
            container_runtimes: names(&["containerd-shim", "conmon", "docker-containerd-shim"]),
            linger_ms: 60_000,
            max_processes: 131_072,
        }
    }
}

/// How a story began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoryKind {
    /// The service manager itself (pid 1) or a process with no known parent.
    Root,
    /// A child of a service manager: a systemd unit, a daemon.
    Service,
    /// A session a service's spawner started: an SSH logon, a cron job, an at job.
    Session,
    /// A container's processes, started by its runtime shim.
    Container,
}

impl StoryKind {
    /// A lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            StoryKind::Root => "root",
            StoryKind::Service => "service",
            StoryKind::Session => "session",
            StoryKind::Container => "container",
        }
    }
}

/// What a process's current program makes it, for its children's stories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Plain,
    ServiceManager,
    SessionSpawner,
    ContainerRuntime,
}

/// A story: its id and how it began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Story {
    /// The story id: the uid of its first process.
    pub id: Arc<str>,
    /// How it began.
    pub kind: StoryKind,
}

#[derive(Debug, Clone)]
struct Node {
    story: Arc<str>,
    kind: StoryKind,
    /// Whether the process began its story.
    root: bool,
    role: Role,
    exited: bool,
}

/// Counters of the storyline, for the agent's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoryStats {
    /// Processes remembered now.
    pub processes: usize,
    /// Stories begun.
    pub stories: u64,
    /// Processes first seen mid-life and placed by their ancestry.
    pub from_ancestry: u64,
    /// Processes placed but not remembered, because the table was full.
    pub untracked: u64,
}

/// The storyline of a host: assigns every event its story.
#[derive(Debug)]
pub struct Storyline {
    config: StoryConfig,
    nodes: HashMap<Box<str>, Node>,
    /// Exited processes in exit order: (event time of the exit, uid).
    exits: VecDeque<(i64, Box<str>)>,
    stats: StoryStats,
}

/// The process an event is about: `process` for Process Activity, else
/// `actor.process`.
pub fn subject(ev: &OcsfEvent) -> Option<&Process> {
    match ev {
        OcsfEvent::Process(p) => Some(&p.process),
        OcsfEvent::File(e) => e.actor.as_ref()?.process.as_deref(),
        OcsfEvent::Module(e) => e.actor.as_ref()?.process.as_deref(),
        OcsfEvent::Network(e) => e.actor.as_ref()?.process.as_deref(),
        OcsfEvent::Dns(e) => e.actor.as_ref()?.process.as_deref(),
        OcsfEvent::Authentication(e) => e.actor.as_ref()?.process.as_deref(),
        OcsfEvent::EventLog(_)
        | OcsfEvent::Finding(_)
        | OcsfEvent::Incident(_)
        | OcsfEvent::FileRemediation(_)
        | OcsfEvent::ProcessRemediation(_)
        | OcsfEvent::NetworkRemediation(_) => None,
    }
}

/// One link of a process's chain: what the rule needs of a process.
struct Link<'a> {
    uid: &'a str,
    pid: Option<i32>,
    path: Option<&'a str>,
}

impl Storyline {
    /// An empty storyline.
    pub fn new(config: StoryConfig) -> Self {
        Storyline {
            config,
            nodes: HashMap::new(),
            exits: VecDeque::new(),
            stats: StoryStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> StoryStats {
        StoryStats {
            processes: self.nodes.len(),
            ..self.stats
        }
    }

    /// The story of a process already seen, by its uid.
    pub fn story_of(&self, process_uid: &str) -> Option<Story> {
        self.nodes.get(process_uid).map(|n| Story {
            id: Arc::clone(&n.story),
            kind: n.kind,
        })
    }

    /// Places the event's process in its story, writes the story id into the event's
    /// `metadata.correlation_uid`, and returns the story. Events without a process
    /// (the sensor's own) get none.
    pub fn assign(&mut self, ev: &mut OcsfEvent) -> Option<Story> {
        let story = self.observe(ev)?;
        let id = story.id.to_string();
        match ev {
            OcsfEvent::Process(e) => e.metadata.correlation_uid = Some(id),
            OcsfEvent::File(e) => e.metadata.correlation_uid = Some(id),
            OcsfEvent::Module(e) => e.metadata.correlation_uid = Some(id),
            OcsfEvent::Network(e) => e.metadata.correlation_uid = Some(id),
            OcsfEvent::Dns(e) => e.metadata.correlation_uid = Some(id),
            OcsfEvent::Authentication(e) => e.metadata.correlation_uid = Some(id),
            OcsfEvent::EventLog(_)
            | OcsfEvent::Finding(_)
            | OcsfEvent::Incident(_)
            | OcsfEvent::FileRemediation(_)
            | OcsfEvent::ProcessRemediation(_)
            | OcsfEvent::NetworkRemediation(_) => {}
        }
        Some(story)
    }

    /// Like [`Storyline::assign`], without writing into the event.
    pub fn observe(&mut self, ev: &OcsfEvent) -> Option<Story> {
        let time = ev.time();
        self.expire(time);
        let process = subject(ev)?;
        let uid = process.uid.as_deref()?;
        let story = self.place(process, uid);
        if let OcsfEvent::Process(p) = ev {
            self.after_process_event(p, uid, time);
        }
        Some(story)
    }

    /// The story of `process`, placing it (and its unknown ancestors) first if new.
    fn place(&mut self, process: &Process, uid: &str) -> Story {
        if let Some(n) = self.nodes.get(uid) {
            return Story {
                id: Arc::clone(&n.story),
                kind: n.kind,
            };
        }
        // The chain from the farthest known ancestor down to the parent.
        let mut chain: Vec<Link<'_>> = process
            .ancestry
            .iter()
            .filter_map(|a| {
                Some(Link {
                    uid: a.uid.as_deref()?,
                    pid: a.pid,
                    path: a.path.as_deref(),
                })
            })
            .collect();
        if chain.is_empty() {
            if let Some(p) = process.parent_process.as_deref() {
                if let Some(puid) = p.uid.as_deref() {
                    chain.push(Link {
                        uid: puid,
                        pid: p.pid,
                        path: p.file.as_ref().and_then(|f| f.path.as_deref()),
                    });
                }
            }
        }
        // Nearest known ancestor: everything above it is already placed.
        let known = chain.iter().position(|l| self.nodes.contains_key(l.uid));
        let unknown_above = known.unwrap_or(chain.len());
        if unknown_above > 0 {
            self.stats.from_ancestry += 1;
        }
        let mut parent: Option<Node> = known.and_then(|i| self.nodes.get(chain[i].uid).cloned());
        for link in chain[..unknown_above].iter().rev() {
            let node = self.child_of(parent.as_ref(), link.pid, link.path, link.uid);
            self.remember(link.uid, node.clone());
            parent = Some(node);
        }
        let me = Link {
            uid,
            pid: process.pid,
            path: process.file.as_ref().and_then(|f| f.path.as_deref()),
        };
        let node = self.child_of(parent.as_ref(), me.pid, me.path, me.uid);
        let story = Story {
            id: Arc::clone(&node.story),
            kind: node.kind,
        };
        self.remember(uid, node);
        story
    }

    /// The node of a new process whose parent is `parent` (`None`: unknown).
    fn child_of(
        &mut self,
        parent: Option<&Node>,
        pid: Option<i32>,
        path: Option<&str>,
        uid: &str,
    ) -> Node {
        let role = self.role_of(pid, path);
        let begins = match parent {
            None => Some(StoryKind::Root),
            Some(p) => match p.role {
                Role::ServiceManager => Some(StoryKind::Service),
                Role::ContainerRuntime => Some(StoryKind::Container),
                // A spawner whose own parent is unknown (Root) is taken for a daemon.
                Role::SessionSpawner
                    if p.root && matches!(p.kind, StoryKind::Service | StoryKind::Root) =>
                {
                    Some(StoryKind::Session)
                }
                Role::SessionSpawner | Role::Plain => None,
            },
        };
        match (begins, parent) {
            (None, Some(p)) => Node {
                story: Arc::clone(&p.story),
                kind: p.kind,
                root: false,
                role,
                exited: false,
            },
            (kind, _) => {
                self.stats.stories += 1;
                Node {
                    story: Arc::from(uid),
                    kind: kind.unwrap_or(StoryKind::Root),
                    root: true,
                    role,
                    exited: false,
                }
            }
        }
    }

    fn role_of(&self, pid: Option<i32>, path: Option<&str>) -> Role {
        if pid == Some(1) {
            return Role::ServiceManager;
        }
        let Some(path) = path else {
            return Role::Plain;
        };
        let name = path.rsplit('/').next().unwrap_or(path);
        // The kernel appends " (deleted)" to the path of an unlinked executable.
        let name = name.strip_suffix(" (deleted)").unwrap_or(name);
        let c = &self.config;
        if c.service_managers.iter().any(|n| n == name) {
            Role::ServiceManager
        } else if c
            .container_runtimes
            .iter()
            .any(|n| name.starts_with(n.as_str()))
        {
            Role::ContainerRuntime
        } else if c.session_spawners.iter().any(|n| n == name) {
            Role::SessionSpawner
        } else {
            Role::Plain
        }
    }

    fn remember(&mut self, uid: &str, node: Node) {
        if self.nodes.len() >= self.config.max_processes {
            self.stats.untracked += 1;
            return;
        }
        self.nodes.insert(uid.into(), node);
    }

    /// An exec changes the process's role; an exit starts its linger.
    fn after_process_event(&mut self, p: &ProcessActivity, uid: &str, time: i64) {
        if p.activity_id == TERMINATE {
            if let Some(n) = self.nodes.get_mut(uid) {
                if !n.exited {
                    n.exited = true;
                    self.exits.push_back((time, uid.into()));
                }
            }
        } else if p.launch_type_id == Some(LAUNCH_EXEC) {
            let role = self.role_of(
                p.process.pid,
                p.process.file.as_ref().and_then(|f| f.path.as_deref()),
            );
            if let Some(n) = self.nodes.get_mut(uid) {
                n.role = role;
            }
        }
    }

    /// Forgets processes that exited more than the linger before `now` (event time).
    fn expire(&mut self, now: i64) {
        while let Some((t, _)) = self.exits.front() {
            if now.saturating_sub(*t) <= self.config.linger_ms {
                break;
            }
            if let Some((_, uid)) = self.exits.pop_front() {
                // A pid reused within the linger has another uid (start time differs),
                // so this removes only the exited process.
                if self.nodes.get(&uid).is_some_and(|n| n.exited) {
                    self.nodes.remove(&uid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_event::model::{Actor, File, FileActivity, ProcessEntity, Shared};

    /// A process tree built by hand: each process knows its ancestry, nearest first.
    #[derive(Clone)]
    struct P(Process);

    impl P {
        fn root(pid: i32, exe: &str) -> P {
            P(Process {
                pid: Some(pid),
                uid: Some(format!("boot-{pid}")),
                file: Some(File {
                    path: Some(exe.into()),
                    ..File::default()
                }),
                ..Process::default()
            })
        }

        fn child(&self, pid: i32, exe: &str) -> P {
            let mut c = P::root(pid, exe);
            let me = &self.0;
            c.0.ancestry.push(Shared::new(ProcessEntity {
                pid: me.pid,
                uid: me.uid.clone(),
                path: me.file.as_ref().and_then(|f| f.path.clone()),
                ..ProcessEntity::default()
            }));
            c.0.ancestry.extend(me.ancestry.iter().cloned());
            c.0.parent_process = Some(Shared::new(Process {
                ancestry: Vec::new(),
                ..me.clone()
            }));
            c
        }

        fn uid(&self) -> &str {
            self.0.uid.as_deref().unwrap_or_default()
        }

        /// The same process as seen after re-parenting: only init above it.
        fn adopted_by(&self, init: &P) -> P {
            let mut c = P::root(self.0.pid.unwrap_or_default(), "/x");
            c.0 = self.0.clone();
            c.0.ancestry = init.child(0, "/x").0.ancestry;
            c
        }
    }

    fn launch(p: &P, launch_type: i32, time: i64) -> OcsfEvent {
        let mut e = ProcessActivity::new(1, time, "test", p.0.clone());
        e.launch_type_id = Some(launch_type);
        e.into()
    }

    fn exit(p: &P, time: i64) -> OcsfEvent {
        ProcessActivity::new(TERMINATE, time, "test", p.0.clone()).into()
    }

    fn file_write(p: &P, time: i64) -> OcsfEvent {
        let mut e = FileActivity::new(
            3,
            time,
            "test",
            File {
                path: Some("/tmp/x".into()),
                ..File::default()
            },
        );
        e.actor = Some(Actor {
            process: Some(Shared::new(p.0.clone())),
            ..Actor::default()
        });
        e.into()
    }

    const SPAWN: i32 = 1;
    const FORK: i32 = 2;

    /// Feeds the launches of `chain` (parent first) and returns the last one's story.
    fn launch_all(s: &mut Storyline, chain: &[&P]) -> Story {
        let mut last = None;
        for (i, p) in chain.iter().enumerate() {
            last = s.observe(&launch(p, SPAWN, i as i64));
        }
        last.expect("a story")
    }

    #[test]
    fn an_ssh_logon_is_one_session_story_below_the_daemon() {
        let mut s = Storyline::new(StoryConfig::default());
        let init = P::root(1, "/usr/lib/systemd/systemd");
        let sshd = init.child(600, "/usr/sbin/sshd");
        let conn = sshd.child(4000, "/usr/sbin/sshd");
        let privsep = conn.child(4001, "/usr/sbin/sshd");
        let bash = privsep.child(4002, "/usr/bin/bash");
        let curl = bash.child(4003, "/usr/bin/curl");
        let story = launch_all(&mut s, &[&init, &sshd, &conn, &privsep, &bash, &curl]);
        assert_eq!(&*story.id, conn.uid());
        assert_eq!(story.kind, StoryKind::Session);
        // The daemon itself is a service story of its own.
        let d = s.story_of(sshd.uid()).expect("sshd placed");
        assert_eq!((&*d.id, d.kind), (sshd.uid(), StoryKind::Service));
        // A second logon is a second story.
        let conn2 = sshd.child(5000, "/usr/sbin/sshd");
        let bash2 = conn2.child(5001, "/usr/bin/bash");
        let story2 = launch_all(&mut s, &[&conn2, &bash2]);
        assert_eq!(&*story2.id, conn2.uid());
    }

    #[test]
    fn a_cron_job_and_a_unit_each_begin_a_story() {
        let mut s = Storyline::new(StoryConfig::default());
        let init = P::root(1, "/sbin/init");
        let cron = init.child(500, "/usr/sbin/cron");
        let job = cron.child(7000, "/usr/sbin/cron");
        let sh = job.child(7001, "/bin/sh");
        let backup = sh.child(7002, "/usr/local/bin/backup");
        let story = launch_all(&mut s, &[&init, &cron, &job, &sh, &backup]);
        assert_eq!((&*story.id, story.kind), (job.uid(), StoryKind::Session));
        let nginx = init.child(800, "/usr/sbin/nginx");
        let worker = nginx.child(801, "/usr/sbin/nginx");
        let story = launch_all(&mut s, &[&nginx, &worker]);
        assert_eq!((&*story.id, story.kind), (nginx.uid(), StoryKind::Service));
        // A user's systemd manager starts services too.
        let user_mgr = init.child(900, "/usr/lib/systemd/systemd");
        let agent = user_mgr.child(901, "/usr/bin/ssh-agent");
        let story = launch_all(&mut s, &[&user_mgr, &agent]);
        assert_eq!((&*story.id, story.kind), (agent.uid(), StoryKind::Service));
    }

    #[test]
    fn a_container_entrypoint_begins_a_story() {
        let mut s = Storyline::new(StoryConfig::default());
        let init = P::root(1, "/sbin/init");
        let containerd = init.child(300, "/usr/bin/containerd");
        let shim = containerd.child(310, "/usr/bin/containerd-shim-runc-v2");
        let runc = shim.child(320, "/usr/sbin/runc");
        let entry = runc.child(321, "/docker-entrypoint.sh");
        let app = entry.child(322, "/usr/bin/python3");
        let story = launch_all(&mut s, &[&init, &containerd, &shim, &runc, &entry, &app]);
        assert_eq!((&*story.id, story.kind), (runc.uid(), StoryKind::Container));
        // The shim itself stays in containerd's service story.
        assert_eq!(&*s.story_of(shim.uid()).expect("shim").id, containerd.uid());
    }

    #[test]
    fn a_story_is_kept_across_exec_and_re_parenting() {
        let mut s = Storyline::new(StoryConfig::default());
        let init = P::root(1, "/sbin/init");
        let sshd = init.child(600, "/usr/sbin/sshd");
        let conn = sshd.child(4000, "/usr/sbin/sshd");
        let bash = conn.child(4002, "/usr/bin/bash");
        let nohup = bash.child(4010, "/usr/bin/bash");
        let story = launch_all(&mut s, &[&init, &sshd, &conn, &bash]);
        s.observe(&launch(&nohup, FORK, 10));
        // The forked shell execs a miner in the same process.
        let mut miner = nohup.clone();
        miner.0.file = Some(File {
            path: Some("/tmp/xmrig".into()),
            ..File::default()
        });
        assert_eq!(
            s.observe(&launch(&miner, LAUNCH_EXEC, 11)),
            Some(story.clone())
        );
        // Its parents exit; init adopts it; its later events keep the story.
        for (i, p) in [&bash, &conn].iter().enumerate() {
            s.observe(&exit(p, 12 + i as i64));
        }
        let adopted = miner.adopted_by(&init);
        assert_eq!(s.observe(&file_write(&adopted, 20)), Some(story));
    }

    #[test]
    fn an_exec_into_a_spawner_makes_a_boundary_only_as_a_service() {
        let mut s = Storyline::new(StoryConfig::default());
        let init = P::root(1, "/sbin/init");
        let sshd = init.child(600, "/usr/sbin/sshd");
        let conn = sshd.child(4000, "/usr/sbin/sshd");
        let bash = conn.child(4002, "/usr/bin/bash");
        let story = launch_all(&mut s, &[&init, &sshd, &conn, &bash]);
        // An intruder's shell starts its own sshd: still the intruder's story.
        let fork = bash.child(4100, "/usr/bin/bash");
        s.observe(&launch(&fork, FORK, 10));
        let mut rogue = fork.clone();
        rogue.0.file = Some(File {
            path: Some("/usr/sbin/sshd".into()),
            ..File::default()
        });
        s.observe(&launch(&rogue, LAUNCH_EXEC, 11));
        let child = rogue.child(4101, "/usr/bin/bash");
        assert_eq!(s.observe(&launch(&child, SPAWN, 12)), Some(story));
    }

    #[test]
    fn a_process_first_seen_mid_life_is_placed_by_its_ancestry() {
        let mut s = Storyline::new(StoryConfig::default());
        let init = P::root(1, "/sbin/init");
        let sshd = init.child(600, "/usr/sbin/sshd");
        let conn = sshd.child(4000, "/usr/sbin/sshd");
        let bash = conn.child(4002, "/usr/bin/bash");
        let vim = bash.child(4003, "/usr/bin/vim");
        let mut ev = file_write(&vim, 5);
        let story = s.assign(&mut ev).expect("story");
        assert_eq!((&*story.id, story.kind), (conn.uid(), StoryKind::Session));
        assert_eq!(s.stats().from_ancestry, 1);
        assert_eq!(s.stats().processes, 5);
        let OcsfEvent::File(f) = &ev else {
            panic!("a file event")
        };
        assert_eq!(f.metadata.correlation_uid.as_deref(), Some(conn.uid()));
        // Its shell, seen next, is already known.
        assert_eq!(s.observe(&file_write(&bash, 6)), Some(story));
        assert_eq!(s.stats().from_ancestry, 1);
    }

    #[test]
    fn an_orphan_without_ancestry_begins_its_own_story() {
        let mut s = Storyline::new(StoryConfig::default());
        let lone = P::root(4242, "/usr/bin/sleep");
        let story = s.observe(&file_write(&lone, 1)).expect("story");
        assert_eq!((&*story.id, story.kind), (lone.uid(), StoryKind::Root));
        let sensor = vigil_event::model::EventLogActivity::new(1, 1, "test");
        assert_eq!(s.observe(&OcsfEvent::from(sensor)), None);
    }

    #[test]
    fn exited_processes_are_forgotten_after_the_linger_and_the_table_is_bounded() {
        let config = StoryConfig {
            linger_ms: 100,
            max_processes: 4,
            ..StoryConfig::default()
        };
        let mut s = Storyline::new(config);
        let init = P::root(1, "/sbin/init");
        let svc = init.child(10, "/usr/bin/svc");
        let a = svc.child(11, "/usr/bin/a");
        launch_all(&mut s, &[&init, &svc, &a]);
        s.observe(&exit(&a, 1000));
        // Late events within the linger still find it.
        assert!(s.story_of(a.uid()).is_some());
        s.observe(&file_write(&svc, 1100));
        assert!(s.story_of(a.uid()).is_some());
        s.observe(&file_write(&svc, 1101));
        assert!(s.story_of(a.uid()).is_none(), "forgotten after 100 ms");
        assert_eq!(s.stats().processes, 2);
        for pid in 20..25 {
            s.observe(&launch(&svc.child(pid, "/usr/bin/b"), SPAWN, 1200));
        }
        assert_eq!(s.stats().processes, 4);
        assert_eq!(s.stats().untracked, 3);
        // Untracked processes are still placed in the right story.
        let late = svc.child(30, "/usr/bin/c");
        assert_eq!(
            s.observe(&launch(&late, SPAWN, 1300)).map(|x| x.id),
            Some(Arc::from(svc.uid()))
        );
    }
}
