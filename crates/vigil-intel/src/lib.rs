//! Threat-intelligence indicators, parsed and matched. No I/O: texts come in, matches
//! go out, so the same set runs in the agent, in a hunt and in tests.
//!
//! * [`IntelSet`]: every indicator loaded, indexed for matching: SHA-256, SHA-1 and MD5
//!   hashes; IPv4 and IPv6 addresses and networks (CIDR, most specific first); domains,
//!   matched by suffix on label boundaries (`evil.example` matches `a.evil.example`).
//! * Formats ([`Format`]): plain lists (one indicator per line, its kind recognised,
//!   `#` comments), STIX 2.1 bundles (indicators with `stix` patterns), MISP events
//!   (attributes marked for IDS). Every line or object that cannot be used is reported
//!   with where it is and why ([`IntelError`]); the rest loads.
//! * [`IntelSet::match_event`]: the indicators an OCSF event names: the hashes of a
//!   process's executable or of a file, the addresses of a connection, the name a DNS
//!   query asks for and the addresses it gets.

mod error;
mod event;
mod list;
mod misp;
mod set;
mod stix;
mod value;

pub use error::IntelError;
pub use set::{Format, Hit, IndicatorKind, IntelSet, LoadReport};
pub use value::Meta;
