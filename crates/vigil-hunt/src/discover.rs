//! Finding the input files under the given paths and telling their format.

use crate::error::{HuntError, InputError, Location};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vigil_event::Event;

/// The format of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A Windows XML event log (`.evtx`).
    Evtx,
    /// One JSON object, a JSON array of objects, or objects one after another (`.json`).
    Json,
    /// One JSON object per line (`.jsonl`, `.ndjson`).
    JsonLines,
}

impl Format {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Evtx => "evtx",
            Format::Json => "json",
            Format::JsonLines => "jsonl",
        }
    }
}

/// One input file to hunt through.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Its path.
    pub path: Arc<Path>,
    /// Its format.
    pub format: Format,
    /// Whether it is gzip-compressed.
    pub gzip: bool,
    /// Its size on disk, in bytes.
    pub size: u64,
    /// How to read it when it is not a plain file to open (the store's Parquet files and
    /// log, whose rows are read straight from their columns); `None` for a file on disk.
    pub opener: Option<Opener>,
}

/// Records another reader has already parsed (the store's rows, read straight from their
/// columns), each an [`Event`] for the rule engine; the JSON text of one is written only
/// when a rule fires on it (the finding carries it).
pub trait Rows: Send {
    /// How many records.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The bytes of input they stand for (for the hunt's progress).
    fn bytes(&self) -> u64;
    /// Calls `f` with record `i` as an event. With `lineage`, its keyword search sees an
    /// OCSF event's lineage context too (for a record that is not one of Vigil's OCSF
    /// events, as a JSON record of that kind is searched).
    fn with_event(&self, i: usize, lineage: bool, f: &mut dyn FnMut(&dyn Event));
    /// Appends record `i` as one line of JSON text (no newline).
    fn write_json(&self, i: usize, out: &mut Vec<u8>);
}

/// The batches of records of one input, in order; an error ends the input (reported).
pub type RowsIter = Box<dyn Iterator<Item = io::Result<Box<dyn Rows>>> + Send>;

/// Opens an input that is not a file the hunt reads itself: its records come already
/// parsed ([`Rows`]).
#[derive(Clone)]
pub struct Opener(pub Arc<dyn Fn() -> io::Result<RowsIter> + Send + Sync>);

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opener")
    }
}

/// The format a file name tells: `(format, gzip)`.
pub fn format_of_name(path: &Path) -> Option<(Format, bool)> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let (stem, gzip) = match name.strip_suffix(".gz") {
        Some(s) => (s.to_string(), true),
        None => (name, false),
    };
    let ext = stem.rsplit_once('.')?.1;
    let format = match ext {
        "evtx" => Format::Evtx,
        "json" => Format::Json,
        "jsonl" | "ndjson" => Format::JsonLines,
        _ => return None,
    };
    Some((format, gzip))
}

/// The format of a file named explicitly whose name says nothing: from its first bytes.
fn sniff(path: &Path) -> io::Result<Option<(Format, bool)>> {
    let mut head = [0u8; 8];
    let mut f = File::open(path)?;
    let n = read_full(&mut f, &mut head)?;
    let head = &head[..n];
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut gz = MultiGzDecoder::new(File::open(path)?);
        let mut inner = [0u8; 8];
        let n = read_full(&mut gz, &mut inner).unwrap_or(0);
        return Ok(sniff_bytes(&inner[..n]).map(|f| (f, true)));
    }
    Ok(sniff_bytes(head).map(|f| (f, false)))
}

fn sniff_bytes(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"ElfFile\0") {
        return Some(Format::Evtx);
    }
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{' | b'[') => Some(Format::Json),
        _ => None,
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Every input file under `paths`: files as given (their format from the name, else from
/// their first bytes), directories walked recursively for `.evtx`, `.json`, `.jsonl`,
/// `.ndjson` and the `.gz` forms of each. Sorted by path within each directory.
///
/// A path that does not exist is an error; a file given explicitly whose format cannot be
/// told is reported in the second list and skipped.
pub fn discover(paths: &[PathBuf]) -> Result<(Vec<InputFile>, Vec<InputError>), HuntError> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| HuntError::Input {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        if meta.is_dir() {
            walk(p, &mut files, &mut skipped, &mut Vec::new());
            continue;
        }
        let format = match format_of_name(p) {
            Some(f) => Some(f),
            None => sniff(p).unwrap_or(None),
        };
        match format {
            Some((format, gzip)) => files.push(InputFile {
                opener: None,
                path: Arc::from(p.as_path()),
                format,
                gzip,
                size: meta.len(),
            }),
            None => skipped.push(InputError {
                path: p.clone(),
                location: Location::File,
                reason: "not an EVTX, JSON or JSON lines file (by name or content)".into(),
                fatal: true,
            }),
        }
    }
    Ok((files, skipped))
}

fn walk(
    dir: &Path,
    files: &mut Vec<InputFile>,
    errors: &mut Vec<InputError>,
    open: &mut Vec<PathBuf>,
) {
    // Symbolic links are followed; a link back to a directory being walked is not.
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if open.contains(&real) {
        return;
    }
    open.push(real);
    walk_entries(dir, files, errors, open);
    open.pop();
}

fn walk_entries(
    dir: &Path,
    files: &mut Vec<InputFile>,
    errors: &mut Vec<InputError>,
    open: &mut Vec<PathBuf>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(InputError {
                path: dir.to_path_buf(),
                location: Location::File,
                reason: format!("cannot list directory: {e}"),
                fatal: true,
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            walk(&p, files, errors, open);
        } else if let Some((format, gzip)) = format_of_name(&p) {
            files.push(InputFile {
                opener: None,
                path: Arc::from(p.as_path()),
                format,
                gzip,
                size: meta.len(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let f = |s: &str| format_of_name(Path::new(s));
        assert_eq!(f("a/Security.evtx"), Some((Format::Evtx, false)));
        assert_eq!(f("x.EVTX.gz"), Some((Format::Evtx, true)));
        assert_eq!(f("x.ndjson"), Some((Format::JsonLines, false)));
        assert_eq!(f("x.json.gz"), Some((Format::Json, true)));
        assert_eq!(f("x.txt"), None);
        assert_eq!(f("gz"), None);
    }
}
