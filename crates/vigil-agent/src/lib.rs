//! Vigil's agent: the pipeline from the sensor to the outputs, and its configuration.
//!
//! ```text
//!  sensor ──▶ story ──▶ detect ──▶ respond ──▶ sinks (events, findings)
//! ```
//!
//! * [`config`]: the configuration file, every setting documented, unknown ones refused.
//! * [`content`]: content bundles: checked whole, applied and rolled back atomically,
//!   followed by the running agent.
//! * [`intel`]: the indicators the agent matches: the `[intel]` files, read and loaded.
//! * [`rules`]: the rules the agent runs: Vigil's pack and configured files, compiled and
//!   tried on sample events before they run.
//! * [`pipeline`]: stages and sinks; the seam response and shipping plug into.
//! * [`respond`]: the response stage: findings answered by the `[respond]` policy.
//! * [`sink`]: JSON lines outputs, with what happens when a write fails, and the network
//!   outputs of `vigil-output` (syslog, Splunk HEC, Elasticsearch) as sinks.
//! * [`yara`]: file verdicts with YARA: executables at exec and files closed after
//!   writing, scanned off the event thread, cached; matches reported by the detector.
//! * [`agent`]: the run loop.
//! * [`latency`]: the histogram of the time from an exec to its finding.
//! * [`metrics`]: the Prometheus metrics, and their HTTP server.

pub mod agent;
pub mod config;
pub mod content;
pub mod intel;
pub mod latency;
pub mod metrics;
pub mod pipeline;
pub mod respond;
pub mod rules;
pub mod server;
pub mod sink;
pub mod yara;

pub use agent::{run, run_with_metrics, AgentError, Outputs, Summary};
pub use config::{
    AgentConfig, ConfigError, ContentConfig, IntelConfig, OutputConfig, RulesConfig, YaraConfig,
};
pub use pipeline::{DetectStage, Pipeline, Stage, StoryStage};
pub use respond::RespondStage;
pub use rules::RuleReport;
pub use sink::{JsonlSink, NetSink, OnError, Select, Sink, SinkError};
