//! Vigil's event model.
//!
//! * [`model`]: the OCSF 1.8 classes Vigil writes and reads: Process Activity (1007),
//!   File System Activity (1001), Module Activity (1005), Network Activity (4001),
//!   DNS Activity (4003), Authentication (3002) and Detection Finding (2004).
//! * [`Event`]: how the detection engine reads any field of any event by name, without
//!   copying: Vigil's OCSF events, JSON log records and Windows event records alike.
//! * [`encode`]: base64, shared by the HTTP outputs and the hunt report.
//! * [`taxonomy`]: the Sigma field names of the Linux logsources, mapped onto OCSF paths.
//!
//! Invariant: this crate does no I/O and holds no global state.

pub mod access;
pub mod encode;
pub mod example;
pub mod model;
pub mod taxonomy;
pub mod time;
mod value;

pub use access::{Event, Fields, OcsfJson};
pub use model::{OcsfClass, OcsfEvent};
pub use value::{key_hash, key_hash_step, FieldPath, Value};
