//! JSON lines read from files or standard input (`-`): what the commands that read the
//! agent's output (`vigil incidents`, `vigil respond plan`) share.

use anyhow::{Context, Result};
use std::io::BufRead;
use std::path::PathBuf;

/// How many bad lines are listed one by one; the rest are counted.
const LISTED: usize = 20;

/// Calls `each` with the JSON value of every line of `files` that is not blank. A line
/// that is not JSON, or that `each` refuses (`Err(reason)`), is reported as
/// `file:line: not WHAT: reason` (the first 20) and counted; a file that cannot be read
/// is an error. Returns how many lines were bad.
pub fn for_each_json(
    files: &[PathBuf],
    what: &str,
    mut each: impl FnMut(serde_json::Value) -> Result<(), String>,
) -> Result<usize> {
    let mut bad = 0usize;
    for path in files {
        let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            let f = std::fs::File::open(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Box::new(std::io::BufReader::new(f))
        };
        for (i, line) in reader.split(b'\n').enumerate() {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let done = serde_json::from_slice::<serde_json::Value>(&line)
                .map_err(|e| e.to_string())
                .and_then(&mut each);
            if let Err(e) = done {
                bad += 1;
                if bad <= LISTED {
                    tracing::warn!("{}:{}: not {what}: {e}", path.display(), i + 1);
                }
            }
        }
    }
    if bad > LISTED {
        tracing::warn!("{bad} lines were not {what} (the first {LISTED} are listed)");
    }
    Ok(bad)
}
