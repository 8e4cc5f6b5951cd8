//! Why an indicator, a line or a whole source could not be used.

/// A problem in an indicator source: where it is and what is wrong. A problem with one
/// indicator leaves the others of the source loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntelError {
    /// A line of a plain list that is no indicator Vigil knows.
    #[error("{source_name}:{line}: {message}")]
    Line {
        /// The source (its file name).
        source_name: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A JSON source that does not parse (truncated, not JSON).
    #[error("{source_name}:{line}:{column}: not valid JSON: {message}")]
    Json {
        /// The source.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A JSON source that parses but is not the format it was taken for.
    #[error("{source_name}: {message}")]
    Format {
        /// The source.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// One object of a JSON source (a STIX indicator, a MISP attribute) that is left out.
    #[error("{source_name}: {object}: {message}")]
    Object {
        /// The source.
        source_name: String,
        /// The object: its id or path (`objects[3]`, `Attribute[12]`).
        object: String,
        /// Why it is left out.
        message: String,
    },
}
