//! Vigil's response: the only code that acts on the host.
//!
//! * [`config`]: the `[respond]` table: policy, modes, guard rails, each action's limits.
//! * [`policy`]: which actions a finding calls for (pure).
//! * [`record`]: Remediation Activity records (File 7002, Process 7003, Network 7004; OCSF 1.8 numbers them so: 7001 is the base class).
//! * [`procs`]: processes from /proc, their identity, and the guard rails.
//! * [`kill`]: a branch frozen (cgroup v2 or SIGSTOP), then killed.
//! * [`vault`]: the quarantine vault.
//! * [`isolate`]: network isolation with nftables.
//! * [`guard`]: fanotify permission events: executables refused before they run, files
//!   journaled before they are written; a helper that answers when the agent cannot.
//! * [`journal`]: the rollback journal and `vigil rollback`'s plan.
//! * [`prevent`]: the blocklist, the journal and rollback, as the responder runs them.
//! * [`tamper`]: findings on attempts against the agent; the gap after a restart.
//! * [`responder`]: the stream followed, findings answered, every action reported once.

pub mod config;
pub mod guard;
pub mod isolate;
pub mod journal;
pub mod kill;
pub mod policy;
pub mod prevent;
pub mod procs;
pub mod record;
pub mod responder;
pub mod tamper;
pub mod vault;

pub use config::{Action, Mode, RespondConfig};
pub use policy::{FindingFacts, Planned, Policy};
pub use responder::{RespondStats, Responder};
