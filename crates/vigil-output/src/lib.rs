//! Vigil's network outputs: the agent's events to a SIEM.
//!
//! ```text
//!  pipeline ──offer──▶ bounded buffer ──▶ output thread ──batches──▶ syslog / HEC / _bulk
//!                      (full: newest dropped, counted)    (retries with backoff and jitter)
//! ```
//!
//! * [`config`]: the `[[output.syslog]]`, `[[output.splunk]]` and
//!   `[[output.elasticsearch]]` settings, checked at start.
//! * [`Output`] (`queue`): the buffer and the thread: batching by size and age, retries,
//!   the counters of every event's fate. The pipeline never waits on the network.
//! * `syslog`, `splunk`, `elastic`: each product's wire format and what its answers mean.
//! * `http`, `net`, `tls`: HTTP/1.1 POST with keep-alive over TCP or rustls, every step
//!   bounded by a timeout.

mod check;
pub mod config;
mod elastic;
mod event;
mod http;
mod net;
mod queue;
mod splunk;
mod syslog;
mod tls;

pub use config::{
    Common, ElasticConfig, Invalid, OutputsConfig, Selection, SplunkConfig, SyslogConfig,
};
pub use queue::Output;
pub use tls::SYSTEM_BUNDLE;

/// Why an output could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong (a TLS file unreadable since the check, for one).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The output's thread could not start.
    #[error("output {name}: cannot start its thread: {source}")]
    Thread {
        /// The output.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Checks the settings and starts every output, each on a thread of its own.
pub fn start(config: &OutputsConfig) -> Result<Vec<Output>, StartError> {
    config.validate()?;
    let mut out = Vec::new();
    let invalid = |kind, index: usize| {
        move |(key, message): (&'static str, String)| Invalid {
            kind,
            index: index + 1,
            key,
            message,
        }
    };
    for (i, c) in config.syslog.iter().enumerate() {
        let d = syslog::SyslogDeliver::new(c).map_err(invalid("syslog", i))?;
        out.push(spawn("syslog", &c.common(), Box::new(d))?);
    }
    for (i, c) in config.splunk.iter().enumerate() {
        let d = splunk::HecDeliver::new(c).map_err(invalid("splunk", i))?;
        out.push(spawn("splunk", &c.common(), Box::new(d))?);
    }
    for (i, c) in config.elasticsearch.iter().enumerate() {
        let d = elastic::BulkDeliver::new(c).map_err(invalid("elasticsearch", i))?;
        out.push(spawn("elasticsearch", &c.common(), Box::new(d))?);
    }
    Ok(out)
}

fn spawn(kind: &str, c: &Common, d: Box<dyn queue::Deliver>) -> Result<Output, StartError> {
    let name = c.name.clone().unwrap_or_else(|| kind.to_string());
    Output::start(name.clone(), c, d).map_err(|source| StartError::Thread { name, source })
}
