//! The outputs' settings: `[[output.syslog]]`, `[[output.splunk]]` and
//! `[[output.elasticsearch]]` tables of the agent's configuration. Every field is
//! documented; unknown ones are refused; [`OutputsConfig::validate`] names the setting
//! that is wrong.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which events an output takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// Every event the agent writes.
    All,
    /// Detection and Incident Findings and Remediation Activity only.
    Findings,
}

/// Syslog facilities by name (RFC 5424 section 6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    /// The facility's number.
    pub fn code(self) -> u8 {
        use Facility::*;
        match self {
            Kern => 0,
            User => 1,
            Mail => 2,
            Daemon => 3,
            Auth => 4,
            Syslog => 5,
            Lpr => 6,
            News => 7,
            Uucp => 8,
            Cron => 9,
            Authpriv => 10,
            Ftp => 11,
            Local0 => 16,
            Local1 => 17,
            Local2 => 18,
            Local3 => 19,
            Local4 => 20,
            Local5 => 21,
            Local6 => 22,
            Local7 => 23,
        }
    }
}

/// The bulk API's action for each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    /// `create`: what data streams accept (and an index, too).
    Create,
    /// `index`: a plain index only.
    Index,
}

/// Defaults of the settings every output has.
pub mod defaults {
    use super::Selection;
    /// `select`.
    pub fn select() -> Selection {
        Selection::Findings
    }
    /// `buffer_bytes`: 32 MiB.
    pub fn buffer_bytes() -> u64 {
        32 << 20
    }
    /// `buffer_events`.
    pub fn buffer_events() -> u64 {
        100_000
    }
    /// `batch_events`.
    pub fn batch_events() -> u64 {
        500
    }
    /// `batch_bytes`: 4 MiB.
    pub fn batch_bytes() -> u64 {
        4 << 20
    }
    /// `flush_ms`.
    pub fn flush_ms() -> u64 {
        1000
    }
    /// `timeout_ms`.
    pub fn timeout_ms() -> u64 {
        10_000
    }
    /// `retry_initial_ms`.
    pub fn retry_initial_ms() -> u64 {
        500
    }
    /// `retry_max_ms`.
    pub fn retry_max_ms() -> u64 {
        30_000
    }
    /// `shutdown_ms`.
    pub fn shutdown_ms() -> u64 {
        5_000
    }
}

/// Declares an output's settings struct: its own fields, then the ones every output has
/// (selection, buffer, batching, retries, TLS files), with their defaults.
macro_rules! output_config {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// The output's name in statistics, metrics and logs (default: the kind,
            /// `syslog`, `splunk`, `elasticsearch`); names must differ.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub name: Option<String>,
            /// Which events go out: "findings" (Detection and Incident Findings and
            /// Remediation Activity) or "all".
            #[serde(default = "defaults::select")]
            pub select: Selection,
            /// Bytes of events held for the output at most (waiting and in flight): while
            /// the server is down or slow, events that do not fit are dropped (the
            /// newest: what was held goes out first) and counted.
            #[serde(default = "defaults::buffer_bytes")]
            pub buffer_bytes: u64,
            /// Events held at most (the same way).
            #[serde(default = "defaults::buffer_events")]
            pub buffer_events: u64,
            /// Events sent in one request (or one write) at most.
            #[serde(default = "defaults::batch_events")]
            pub batch_events: u64,
            /// Bytes of events sent in one request at most (an event larger goes alone).
            #[serde(default = "defaults::batch_bytes")]
            pub batch_bytes: u64,
            /// Milliseconds an event waits at most for its batch to fill.
            #[serde(default = "defaults::flush_ms")]
            pub flush_ms: u64,
            /// Milliseconds a connection, a write or an answer may take before the
            /// attempt counts as failed and is retried.
            #[serde(default = "defaults::timeout_ms")]
            pub timeout_ms: u64,
            /// Milliseconds before the first retry of a failed batch; each retry waits
            /// twice as long (with random jitter, half to all of it).
            #[serde(default = "defaults::retry_initial_ms")]
            pub retry_initial_ms: u64,
            /// Milliseconds between retries at most.
            #[serde(default = "defaults::retry_max_ms")]
            pub retry_max_ms: u64,
            /// Milliseconds the agent keeps trying, when it stops, to deliver what is
            /// held; what is left then is counted as dropped.
            #[serde(default = "defaults::shutdown_ms")]
            pub shutdown_ms: u64,
            /// TLS: a PEM file of the certificate authorities the server's certificate
            /// must chain to (default: the system's, /etc/ssl/certs/ca-certificates.crt).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub ca_file: Option<PathBuf>,
            /// TLS: a PEM certificate (chain) the agent authenticates itself with, for
            /// servers that ask for one (with `client_key`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub client_cert: Option<PathBuf>,
            /// TLS: the PEM private key of `client_cert`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub client_key: Option<PathBuf>,
        }

        impl $name {
            /// The settings every output has.
            pub fn common(&self) -> Common {
                Common {
                    name: self.name.clone(),
                    select: self.select,
                    buffer_bytes: self.buffer_bytes,
                    buffer_events: self.buffer_events,
                    batch_events: self.batch_events,
                    batch_bytes: self.batch_bytes,
                    flush_ms: self.flush_ms,
                    timeout_ms: self.timeout_ms,
                    retry_initial_ms: self.retry_initial_ms,
                    retry_max_ms: self.retry_max_ms,
                    shutdown_ms: self.shutdown_ms,
                    ca_file: self.ca_file.clone(),
                    client_cert: self.client_cert.clone(),
                    client_key: self.client_key.clone(),
                }
            }
        }
    };
}

/// The settings every output has, as its configuration table gives them (each is
/// documented at the field of the same name of [`SyslogConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// `name`.
    pub name: Option<String>,
    /// `select`.
    pub select: Selection,
    /// `buffer_bytes`.
    pub buffer_bytes: u64,
    /// `buffer_events`.
    pub buffer_events: u64,
    /// `batch_events`.
    pub batch_events: u64,
    /// `batch_bytes`.
    pub batch_bytes: u64,
    /// `flush_ms`.
    pub flush_ms: u64,
    /// `timeout_ms`.
    pub timeout_ms: u64,
    /// `retry_initial_ms`.
    pub retry_initial_ms: u64,
    /// `retry_max_ms`.
    pub retry_max_ms: u64,
    /// `shutdown_ms`.
    pub shutdown_ms: u64,
    /// `ca_file`.
    pub ca_file: Option<PathBuf>,
    /// `client_cert`.
    pub client_cert: Option<PathBuf>,
    /// `client_key`.
    pub client_key: Option<PathBuf>,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            name: None,
            select: defaults::select(),
            buffer_bytes: defaults::buffer_bytes(),
            buffer_events: defaults::buffer_events(),
            batch_events: defaults::batch_events(),
            batch_bytes: defaults::batch_bytes(),
            flush_ms: defaults::flush_ms(),
            timeout_ms: defaults::timeout_ms(),
            retry_initial_ms: defaults::retry_initial_ms(),
            retry_max_ms: defaults::retry_max_ms(),
            shutdown_ms: defaults::shutdown_ms(),
            ca_file: None,
            client_cert: None,
            client_key: None,
        }
    }
}

fn default_syslog_address() -> String {
    "unix:/dev/log".into()
}
fn default_facility() -> Facility {
    Facility::Local0
}
fn default_source() -> String {
    "vigil".into()
}
fn default_sourcetype() -> String {
    "vigil:ocsf".into()
}
fn default_index() -> String {
    "logs-vigil-default".into()
}
fn default_action() -> BulkAction {
    BulkAction::Create
}
fn default_timestamp_field() -> String {
    "@timestamp".into()
}

output_config! {
    /// A syslog output (RFC 5424 messages, the OCSF event as the message).
    SyslogConfig {
        /// Where: "unix:/dev/log" (a local socket: datagrams, or a stream of lines when
        /// the socket is a stream socket), "tcp://HOST:PORT" (RFC 6587 octet counting) or
        /// "tls://HOST:PORT" (RFC 5425).
        #[serde(default = "default_syslog_address")]
        address: String,
        /// The facility of every message ("auth", "authpriv", "daemon", "local0" ...
        /// "local7", ...); the severity comes from the event's.
        #[serde(default = "default_facility")]
        facility: Facility,
        /// HOSTNAME of every message (default: this host's name).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hostname: Option<String>,
        /// TLS: the name the server's certificate must carry (default: the host of
        /// `address`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_name: Option<String>,
    }
}

output_config! {
    /// A Splunk HTTP Event Collector output (`/services/collector/event`).
    SplunkConfig {
        /// The collector: "https://HOST:8088" (the path defaults to
        /// /services/collector/event).
        url: String,
        /// The HEC token (sent as `Authorization: Splunk TOKEN`).
        token: String,
        /// The index events go to (default: the token's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<String>,
        /// `source` of every event.
        #[serde(default = "default_source")]
        source: String,
        /// `sourcetype` of every event.
        #[serde(default = "default_sourcetype")]
        sourcetype: String,
        /// `host` of every event (default: this host's name).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    }
}

output_config! {
    /// An Elasticsearch or OpenSearch output (the `_bulk` API).
    ElasticConfig {
        /// The cluster: "https://HOST:9200" (requests go to its `/_bulk`).
        url: String,
        /// The data stream or index events go to.
        #[serde(default = "default_index")]
        index: String,
        /// "create" (data streams, and indices) or "index" (indices only).
        #[serde(default = "default_action")]
        action: BulkAction,
        /// The field added to each event with its time as RFC 3339 (data streams need
        /// `@timestamp`); "" adds none.
        #[serde(default = "default_timestamp_field")]
        timestamp_field: String,
        /// Basic authentication: the user (with `password`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        /// Basic authentication: the password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// An API key, sent as `Authorization: ApiKey KEY` (the base64 `encoded` form
        /// Elasticsearch returns); instead of `username`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key: Option<String>,
    }
}

impl SyslogConfig {
    /// A syslog output to `address` with every other setting at its default.
    pub fn new(address: &str) -> Self {
        let c = Common::default();
        SyslogConfig {
            address: address.into(),
            facility: default_facility(),
            hostname: None,
            server_name: None,
            name: c.name,
            select: c.select,
            buffer_bytes: c.buffer_bytes,
            buffer_events: c.buffer_events,
            batch_events: c.batch_events,
            batch_bytes: c.batch_bytes,
            flush_ms: c.flush_ms,
            timeout_ms: c.timeout_ms,
            retry_initial_ms: c.retry_initial_ms,
            retry_max_ms: c.retry_max_ms,
            shutdown_ms: c.shutdown_ms,
            ca_file: c.ca_file,
            client_cert: c.client_cert,
            client_key: c.client_key,
        }
    }
}

/// Every output of the agent beside its files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputsConfig {
    /// Syslog outputs (`[[output.syslog]]`).
    pub syslog: Vec<SyslogConfig>,
    /// Splunk HEC outputs (`[[output.splunk]]`).
    pub splunk: Vec<SplunkConfig>,
    /// Elasticsearch / OpenSearch outputs (`[[output.elasticsearch]]`).
    pub elasticsearch: Vec<ElasticConfig>,
}

/// A setting refused, named as `output.KIND[N].KEY` (N from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("output.{kind}[{index}].{key}: {message}")]
pub struct Invalid {
    /// `syslog`, `splunk` or `elasticsearch`.
    pub kind: &'static str,
    /// Which of them, from 1.
    pub index: usize,
    /// The setting.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

impl OutputsConfig {
    /// Every output, as its kind, its position (from 1) and its common settings.
    pub fn each(&self) -> Vec<(&'static str, usize, Common)> {
        let mut v = Vec::new();
        v.extend(
            self.syslog
                .iter()
                .enumerate()
                .map(|(i, c)| ("syslog", i + 1, c.common())),
        );
        v.extend(
            self.splunk
                .iter()
                .enumerate()
                .map(|(i, c)| ("splunk", i + 1, c.common())),
        );
        v.extend(
            self.elasticsearch
                .iter()
                .enumerate()
                .map(|(i, c)| ("elasticsearch", i + 1, c.common())),
        );
        v
    }
}
