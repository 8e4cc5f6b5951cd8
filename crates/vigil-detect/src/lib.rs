//! Vigil's detection stage: what turns a stream of OCSF events into findings and
//! incidents, the same way on a live host and over recorded events.
//!
//! * [`story`]: every event's storyline (the session its process belongs to).
//! * [`detector`]: Sigma rules over every event, one finding per rule and process,
//!   correlations in event time, an incident per story with findings.
//! * [`finding`]: the one way a rule that fired becomes an OCSF Detection Finding.
//! * [`incidents`]: incidents read back from the agent's output, as process trees.
//!
//! Invariant: this crate does no I/O and carries no runtime; it is a pure function of
//! the events, rules and time it is given.

pub mod detector;
pub mod finding;
pub mod incidents;
pub mod story;

pub use detector::{DetectConfig, DetectStats, Detector};
pub use incidents::{Incident, Incidents};
pub use story::{Story, StoryConfig, StoryKind, StoryStats, Storyline};
