//! Vigil's Sigma detection engine: the Sigma 2.1 specification, compiled and indexed.
//!
//! # Use
//!
//! ```
//! use vigil_sigma::{Loader, EventKind};
//!
//! let mut loader = Loader::new();
//! loader.add("whoami.yml", r#"
//! title: Whoami
//! id: 11111111-2222-3333-4444-555555555555
//! level: low
//! logsource: {product: windows, category: process_creation}
//! detection:
//!     selection:
//!         Image|endswith: '\whoami.exe'
//!     condition: selection
//! "#);
//! let built = loader.build();
//! assert!(built.errors.is_empty());
//! let engine = built.engine;
//!
//! let event = serde_json::json!({"Event": {
//!     "System": {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1},
//!     "EventData": {"Image": "C:\\Windows\\System32\\WHOAMI.EXE"}}});
//! let mut scratch = engine.scratch();
//! let mut findings = Vec::new();
//! engine.match_event(&mut scratch, &event, EventKind::Windows, &mut findings);
//! assert_eq!(findings[0].rule.title, "Whoami");
//! assert_eq!(findings[0].selections, ["selection"]);
//! ```
//!
//! # Design
//!
//! * **Loading** ([`Loader`]): rule texts come in as (name, text) pairs (this crate does no
//!   I/O). Each YAML document is parsed with line numbers; a bad rule becomes a
//!   [`RuleError`] (`file:line: reason`) and loading goes on. Modifiers are applied at load
//!   time: every value becomes a literal with an anchor (exact, prefix, suffix, contains),
//!   a glob, a regular expression, a number, a CIDR network, a time part, ... Correlations
//!   and filters are resolved by id or name when [`Loader::build`] runs.
//! * **Routing** (data, not code): rules are grouped by logsource into buckets. Windows
//!   records are routed by channel, provider and EventID through `data/windows.yml`, which
//!   also renames fields per source (Security 4688 `NewProcessName` is `Image`) and knows
//!   both the nested `evtx` JSON shape and flat records. Vigil's OCSF events are routed by
//!   `class_uid`/`activity_id` through `vigil_event`'s Linux taxonomy, which also maps
//!   field names. Any other JSON is matched under a logsource the caller declares
//!   ([`Engine::declare`]). A rule never sees events of another logsource.
//! * **Matching** ([`Engine::match_event`]): per bucket, all literals of one field (across
//!   all rules) form one literal index: exact values in a hash table, prefixes and
//!   suffixes in tries, substrings in an Aho-Corasick DFA (or, past
//!   [`Config::dfa_literals_max`], an index of their rarest 4-byte pieces), case-sensitive
//!   literals in another automaton, integers in a table; one pass over each field value
//!   sets the hit bits of every literal it holds (a repeated value is answered from a memo
//!   of recent scans). Each rule has a trigger set (literals one of which must hit for it
//!   to match, derived from its condition) and required literals; only rules whose trigger
//!   fired, and the few without a trigger, are evaluated, if their required literals hit.
//!   Each field is read from the event once per event, and nothing is allocated unless a
//!   rule matches.
//! * **Testing**: [`Reference`] evaluates the parsed rules plainly (no index); the engine
//!   must find exactly what it finds (`tests/differential.rs`).
//! * **Correlations** ([`CorrelationState`]): kept apart from the immutable [`Engine`], so
//!   detection can run on many threads and correlation afterwards, fed in time order.
//!
//! Semantics chosen where the specification leaves room are documented on the items and
//! in the crate's README: keywords match as substrings of any string value; a field
//! holding a list matches when an element does; `''` also matches a present `null`;
//! `neq` requires the field to exist; base rules of a correlation are `silent` unless a
//! correlation referring to them says `generate: true`.

mod anchor;
mod build;
mod compile;
mod cond;
mod correlation;
mod correlation_rules;
mod engine;
mod error;
mod eval;
mod fields;
mod fxhash;
mod json;
mod loader;
mod mapping;
mod matcher;
mod memo;
mod model;
mod parse;
mod pattern;
mod record;
mod reference;
mod route;
mod rx;
mod scan;
mod yaml;

pub use build::Built;
pub use correlation::{CorrelationFinding, CorrelationState, Limits};
pub use engine::{Engine, Finding, Scratch};
pub use error::{ConfigError, ErrorKind, RuleError};
pub use json::{JsonBuffers, JsonError, JsonEvent};
pub use loader::{Config, Loader};
pub use mapping::WINDOWS_MAP;
pub use model::{Level, LogSource, RuleKind, RuleMeta};
pub use parse::CorrelationType;
pub use record::WinRecord;
pub use reference::Reference;
pub use route::{Declared, EventKind};

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn engine_is_shareable_and_scratch_movable() {
        send_sync::<crate::Engine>();
        send::<crate::Scratch>();
        send::<crate::CorrelationState>();
    }
}
