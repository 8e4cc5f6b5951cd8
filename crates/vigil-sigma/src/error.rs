//! Errors: every rule that cannot be loaded yields one [`RuleError`] naming its file, line
//! and reason. Loading goes on with the other rules.

use std::fmt;
use std::sync::Arc;

/// Why a rule could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The text is not valid YAML.
    #[error("{0}")]
    Yaml(String),
    /// A required key is missing or has the wrong type (`detection` is not a mapping, ...).
    #[error("{0}")]
    Schema(String),
    /// An unknown modifier or a modifier chain that makes no sense.
    #[error("{0}")]
    Modifier(String),
    /// A value the modifiers cannot take (a bad regular expression, CIDR or number).
    #[error("{0}")]
    Value(String),
    /// The `condition` cannot be parsed or names an unknown search identifier.
    #[error("condition: {0}")]
    Condition(String),
    /// A correlation or filter refers to a rule that does not exist, or refers in a cycle.
    #[error("{0}")]
    Reference(String),
    /// The rule's literals cannot be indexed: the automaton they need could not be built
    /// (refused at build time; the other rules of its logsource still load).
    #[error("{0}")]
    Index(String),
    /// A construct this engine deliberately does not support (named in the message).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Not an error: something to know about a rule that loaded (in [`Built::warnings`]).
    ///
    /// [`Built::warnings`]: crate::Built::warnings
    #[error("warning: {0}")]
    Warning(String),
}

/// One rule that failed to load: where, and why.
///
/// Displays as `file:line: reason`, the form `vigil rules check` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The source name the rule text was loaded under (usually its file path).
    pub file: Arc<str>,
    /// 1-based line the problem is on (the document's first line when there is no better one).
    pub line: usize,
    /// The rule's title or id, when it got far enough to have one.
    pub rule: Option<String>,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.kind)
    }
}

impl std::error::Error for RuleError {}

/// An error in the engine's own configuration (a field mapping file), not in a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {reason}")]
pub struct ConfigError {
    /// Which mapping (`windows.yml`, `sigma-linux.map`, or the caller's name for its own).
    pub source_name: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// An error with only a line, raised inside the parser and given its file by the loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineError {
    pub line: usize,
    pub kind: ErrorKind,
}

impl LineError {
    pub(crate) fn schema(line: usize, msg: impl Into<String>) -> Self {
        LineError {
            line,
            kind: ErrorKind::Schema(msg.into()),
        }
    }
    pub(crate) fn modifier(line: usize, msg: impl Into<String>) -> Self {
        LineError {
            line,
            kind: ErrorKind::Modifier(msg.into()),
        }
    }
    pub(crate) fn value(line: usize, msg: impl Into<String>) -> Self {
        LineError {
            line,
            kind: ErrorKind::Value(msg.into()),
        }
    }
    pub(crate) fn condition(line: usize, msg: impl Into<String>) -> Self {
        LineError {
            line,
            kind: ErrorKind::Condition(msg.into()),
        }
    }
}
