//! The OCSF 1.8 event classes Vigil speaks, and the objects they are made of.
//!
//! Each class is a plain struct declared once by a macro that derives both its JSON form
//! and by-name field access from the same list of attributes. Construct events with the
//! class's `new` function, fill what you know, then call [`OcsfClass::seal`] (done by
//! [`OcsfEvent::from`]) to set the derived classification attributes: `type_uid`,
//! captions and the profiles the event uses.

#[macro_use]
mod macros;
mod classes;
pub mod enums;
mod objects;
pub mod shape;
mod shared;

pub use classes::*;
pub use enums::*;
pub use objects::*;
pub use shape::{Shape, Shaped};
pub use shared::Shared;

use crate::access::{Event, Fields};
use crate::value::{FieldPath, Value};
use serde::Serialize;

/// A caption or other text that is usually a constant: no allocation when it is.
pub type Text = std::borrow::Cow<'static, str>;

/// The OCSF schema version Vigil writes.
pub const OCSF_VERSION: &str = "1.8.0";

/// Decides which attributes are left out of the JSON: absent options and empty lists.
pub trait Omit {
    /// True when the attribute should not be written.
    fn omit(&self) -> bool;
}

impl<T> Omit for Option<T> {
    fn omit(&self) -> bool {
        self.is_none()
    }
}

impl<T> Omit for Vec<T> {
    fn omit(&self) -> bool {
        self.is_empty()
    }
}

macro_rules! never_omit {
    ($($t:ty),*) => {$(impl Omit for $t { fn omit(&self) -> bool { false } })*};
}
never_omit!(i32, i64, bool, String, Text);

/// What every OCSF event class struct knows about itself.
pub trait OcsfClass: Event + Serialize {
    /// `class_uid`.
    const CLASS_UID: i32;
    /// `category_uid`.
    const CATEGORY_UID: i32;
    /// `class_name`.
    const CLASS_NAME: &'static str;

    /// The event's `activity_id`.
    fn activity_id(&self) -> i32;
    /// Mutable access to `metadata`.
    fn metadata_mut(&mut self) -> &mut Metadata;
    /// The `activity_name` already set, if any.
    fn custom_activity_name(&self) -> Option<Text>;
    /// Writes the classification attributes (ids and captions).
    fn set_identity(&mut self, activity_name: Text, type_uid: i64);
    /// Whether the event carries an attribute that this class takes from the `host`
    /// profile (`device` or `actor`, depending on the class).
    fn uses_host_profile(&self) -> bool;
    /// The caption of an `activity_id` of this class.
    fn activity_name(activity_id: i32) -> &'static str;

    /// Sets every derived attribute: class and category ids and names,
    /// `type_uid = class_uid * 100 + activity_id`, captions of the id enums, the schema
    /// version, and the profiles whose attributes the event uses.
    fn seal(&mut self) {
        let activity = self.activity_id();
        let type_uid = i64::from(Self::CLASS_UID) * 100 + i64::from(activity);
        // Activity 99 (Other) keeps the producer's own name for it, as OCSF asks.
        let name = match (activity, self.custom_activity_name()) {
            (99, Some(own)) => own,
            _ => Text::Borrowed(Self::activity_name(activity)),
        };
        self.set_identity(name, type_uid);
        let host = self.uses_host_profile();
        let metadata = self.metadata_mut();
        metadata.version = Text::Borrowed(OCSF_VERSION);
        if host && !metadata.profiles.iter().any(|p| p == "host") {
            metadata.profiles.push("host".to_string());
        }
    }
}

/// The caption of an OCSF category.
pub fn category_name(category_uid: i32) -> &'static str {
    match category_uid {
        1 => "System Activity",
        2 => "Findings",
        3 => "Identity & Access Management",
        4 => "Network Activity",
        5 => "Discovery",
        6 => "Application Activity",
        7 => "Remediation",
        _ => "Uncategorized",
    }
}

/// Any event Vigil produces or reads back, tagged by its class (boxed: events are
/// kilobytes and move through queues).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OcsfEvent {
    /// Process Activity (1007).
    Process(Box<ProcessActivity>),
    /// File System Activity (1001).
    File(Box<FileActivity>),
    /// Module Activity (1005).
    Module(Box<ModuleActivity>),
    /// Network Activity (4001).
    Network(Box<NetworkActivity>),
    /// DNS Activity (4003).
    Dns(Box<DnsActivity>),
    /// Authentication (3002).
    Authentication(Box<Authentication>),
    /// Event Log Activity (1008).
    EventLog(Box<EventLogActivity>),
    /// Detection Finding (2004).
    Finding(Box<DetectionFinding>),
    /// Incident Finding (2005).
    Incident(Box<IncidentFinding>),
    /// File Remediation Activity (7002).
    FileRemediation(Box<FileRemediationActivity>),
    /// Process Remediation Activity (7003).
    ProcessRemediation(Box<ProcessRemediationActivity>),
    /// Network Remediation Activity (7004).
    NetworkRemediation(Box<NetworkRemediationActivity>),
}

/// Why a JSON document is not one of Vigil's OCSF events.
#[derive(Debug)]
pub enum ParseError {
    /// Not JSON, or not the shape the class requires.
    Json(serde_json::Error),
    /// `class_uid` missing or not one Vigil models.
    UnknownClass(Option<i64>),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Json(e) => write!(f, "invalid OCSF event: {e}"),
            ParseError::UnknownClass(Some(c)) => write!(f, "unsupported OCSF class_uid {c}"),
            ParseError::UnknownClass(None) => f.write_str("event has no integer class_uid"),
        }
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ParseError::Json(e) => Some(e),
            ParseError::UnknownClass(_) => None,
        }
    }
}

macro_rules! event_dispatch {
    ($self:ident, $e:ident => $body:expr) => {
        match $self {
            OcsfEvent::Process($e) => $body,
            OcsfEvent::File($e) => $body,
            OcsfEvent::Module($e) => $body,
            OcsfEvent::Network($e) => $body,
            OcsfEvent::Dns($e) => $body,
            OcsfEvent::Authentication($e) => $body,
            OcsfEvent::EventLog($e) => $body,
            OcsfEvent::Finding($e) => $body,
            OcsfEvent::Incident($e) => $body,
            OcsfEvent::FileRemediation($e) => $body,
            OcsfEvent::ProcessRemediation($e) => $body,
            OcsfEvent::NetworkRemediation($e) => $body,
        }
    };
}

impl OcsfEvent {
    /// Reads an event from JSON, choosing the class by `class_uid`.
    pub fn from_json(value: serde_json::Value) -> Result<Self, ParseError> {
        let class = value.get("class_uid").and_then(serde_json::Value::as_i64);
        let ev = match class {
            Some(c) if c == i64::from(ProcessActivity::CLASS_UID) => {
                OcsfEvent::Process(serde_json::from_value(value).map_err(ParseError::Json)?)
            }
            Some(c) if c == i64::from(FileActivity::CLASS_UID) => {
                OcsfEvent::File(serde_json::from_value(value).map_err(ParseError::Json)?)
            }
            Some(c) if c == i64::from(ModuleActivity::CLASS_UID) => {
                OcsfEvent::Module(serde_json::from_value(value).map_err(ParseError::Json)?)
            }
            Some(c) if c == i64::from(NetworkActivity::CLASS_UID) => {
                OcsfEvent::Network(serde_json::from_value(value).map_err(ParseError::Json)?)
            }
            Some(c) if c == i64::from(DnsActivity::CLASS_UID) => {
                OcsfEvent::Dns(serde_json::from_value(value).map_err(ParseError::Json)?)
            }
            Some(c) if c == i64::from(Authentication::CLASS_UID) => {
                OcsfEvent::Authentication(serde_json::from_value(value).map_err(ParseError::Json)?)
            }
            Some(c) if c == i64::from(EventLogActivity::CLASS_UID) => {
                OcsfEvent::EventLog(serde_json::from_value(value).map_err(ParseError::Json)?)
            }
            Some(c) if c == i64::from(DetectionFinding::CLASS_UID) => {
                OcsfEvent::Finding(serde_json::from_value(value).map_err(ParseError::Json)?)
            }
            Some(c) if c == i64::from(IncidentFinding::CLASS_UID) => {
                OcsfEvent::Incident(serde_json::from_value(value).map_err(ParseError::Json)?)
            }
            Some(c) if c == i64::from(FileRemediationActivity::CLASS_UID) => {
                OcsfEvent::FileRemediation(serde_json::from_value(value).map_err(ParseError::Json)?)
            }
            Some(c) if c == i64::from(ProcessRemediationActivity::CLASS_UID) => {
                OcsfEvent::ProcessRemediation(
                    serde_json::from_value(value).map_err(ParseError::Json)?,
                )
            }
            Some(c) if c == i64::from(NetworkRemediationActivity::CLASS_UID) => {
                OcsfEvent::NetworkRemediation(
                    serde_json::from_value(value).map_err(ParseError::Json)?,
                )
            }
            other => return Err(ParseError::UnknownClass(other)),
        };
        Ok(ev)
    }

    /// The event's `class_uid`.
    pub fn class_uid(&self) -> i32 {
        event_dispatch!(self, e => e.class_uid)
    }

    /// The event's `class_name` (the class's caption in the schema).
    pub fn class_name(&self) -> &'static str {
        fn name<T: OcsfClass>(_: &T) -> &'static str {
            T::CLASS_NAME
        }
        event_dispatch!(self, e => name(&**e))
    }

    /// The event's time (ms since the epoch).
    pub fn time(&self) -> i64 {
        event_dispatch!(self, e => e.time)
    }

    /// Whether the event is a Remediation Activity (7002, 7003, 7004): what Vigil did.
    pub fn is_remediation(&self) -> bool {
        matches!(
            self,
            OcsfEvent::FileRemediation(_)
                | OcsfEvent::ProcessRemediation(_)
                | OcsfEvent::NetworkRemediation(_)
        )
    }

    /// The event's `metadata`.
    pub fn metadata(&self) -> &Metadata {
        event_dispatch!(self, e => &e.metadata)
    }

    /// The event's `metadata`, to change.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        event_dispatch!(self, e => &mut e.metadata)
    }

    /// The event as a JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        // Serializing these plain structs cannot fail: every map key is a string.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

macro_rules! from_class {
    ($($class:ident => $variant:ident),*) => {$(
        impl From<$class> for OcsfEvent {
            /// Seals the event ([`OcsfClass::seal`]) and wraps it.
            fn from(mut e: $class) -> Self {
                e.seal();
                OcsfEvent::$variant(Box::new(e))
            }
        }
    )*};
}
from_class!(
    ProcessActivity => Process,
    FileActivity => File,
    ModuleActivity => Module,
    NetworkActivity => Network,
    DnsActivity => Dns,
    Authentication => Authentication,
    EventLogActivity => EventLog,
    DetectionFinding => Finding,
    IncidentFinding => Incident,
    FileRemediationActivity => FileRemediation,
    ProcessRemediationActivity => ProcessRemediation,
    NetworkRemediationActivity => NetworkRemediation
);

impl Event for OcsfEvent {
    fn field(&self, path: &FieldPath) -> Option<Value<'_>> {
        event_dispatch!(self, e => e.field_at(path, 0))
    }
    fn for_each_str<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        event_dispatch!(self, e => e.visit_strs(f))
    }
}
