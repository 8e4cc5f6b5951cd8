//! File verdicts with YARA: rule sets compiled with `yara-x` (one namespace per rule file,
//! every file either loaded or refused with `file:line` and the reason), files scanned
//! with per-file external variables, a size bound and a timeout, without ever opening a
//! special file or following a directory symlink, and verdicts cached by device, inode,
//! times and size so an unchanged file costs a stat and a lookup.

pub mod cache;
pub mod depth;
pub mod externals;
pub mod finding;
pub mod rules;
pub mod scan;
pub mod trial;
pub mod walk;

pub use cache::{CacheKey, VerdictCache};
pub use externals::{file_type, Owners, EXTERNALS};
pub use rules::{LoadError, LoadReport, RuleError, RuleSet};
pub use scan::{
    cache_key, key_of, Cache, FileScanner, Outcome, RuleHit, ScanConfig, Skip, Verdict,
};
pub use trial::{trial, TrialCost, TrialError};
pub use walk::{Walk, WalkItem};
