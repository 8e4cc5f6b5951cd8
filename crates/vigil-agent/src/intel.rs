//! The agent's indicators: the `[intel]` files read and loaded into one set. A file or
//! an indicator that cannot be used is reported (file, line or object, why) and left
//! out; neither stops the agent.

use crate::config::IntelConfig;
use std::path::{Path, PathBuf};
use vigil_intel::{Format, IntelSet};

/// What loading the indicators came to.
#[derive(Debug, Default)]
pub struct IntelReport {
    /// Files read.
    pub files: usize,
    /// Indicators loaded.
    pub indicators: usize,
    /// Indicators listed again (the first is kept).
    pub duplicates: usize,
    /// One line per problem: unreadable files, lines and objects left out.
    pub problems: Vec<String>,
    /// Problems counted but not listed (past 100 per file).
    pub more_problems: usize,
    /// The files read, as their indicators name them.
    pub sources: Vec<String>,
}

/// Reads every configured file (directories: every regular file below them, in name
/// order) into one set.
pub fn load(config: &IntelConfig) -> (IntelSet, IntelReport) {
    let mut set = IntelSet::new();
    let mut report = IntelReport::default();
    let mut files = Vec::new();
    for p in &config.paths {
        collect(p, &mut files, &mut report.problems);
    }
    for f in files {
        let name = f.display().to_string();
        let text = match std::fs::read(&f) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(e) => {
                    report.problems.push(format!(
                        "{name}: not UTF-8 text (byte {})",
                        e.utf8_error().valid_up_to()
                    ));
                    continue;
                }
            },
            Err(e) => {
                report.problems.push(format!("{name}: cannot read: {e}"));
                continue;
            }
        };
        report.files += 1;
        let r = set.add(&name, &text, Format::Auto);
        report.sources.push(name);
        report.duplicates += r.duplicates;
        report.more_problems += r.more_problems;
        report
            .problems
            .extend(r.problems.iter().map(ToString::to_string));
    }
    report.indicators = set.len();
    (set, report)
}

impl IntelReport {
    /// Logs each problem (a warning) and what was loaded.
    pub fn log(&self) {
        for p in &self.problems {
            tracing::warn!("indicator not loaded: {p}");
        }
        tracing::info!(
            indicators = self.indicators,
            files = self.files,
            duplicates = self.duplicates,
            problems = self.problems.len() + self.more_problems,
            "indicators loaded"
        );
    }
}

fn collect(path: &Path, out: &mut Vec<PathBuf>, problems: &mut Vec<String>) {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) => {
                    problems.push(format!("{}: cannot list: {e}", path.display()));
                    return;
                }
            };
            entries.sort();
            for e in entries {
                let hidden = e
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'));
                if !hidden {
                    collect(&e, out, problems);
                }
            }
        }
        Ok(m) if m.is_file() => out.push(path.to_path_buf()),
        Ok(_) => problems.push(format!("{}: not a file or a directory", path.display())),
        Err(e) => problems.push(format!("{}: cannot read: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_directories_load_and_every_problem_names_its_place() {
        let dir = std::env::temp_dir().join(format!("vigil-intel-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("feeds")).expect("dir");
        std::fs::write(dir.join("feeds/a.txt"), "203.0.113.1\nbad line here\n").expect("a");
        std::fs::write(
            dir.join("feeds/b.json"),
            "{\"type\": \"bundle\", \"objects\": [{\"type\": \"indicator\", \"id\": \"indicator--1\", \"pattern_type\": \"stix\", \"pattern\": \"[domain-name:value = 'c2.example']\"}]}",
        )
        .expect("b");
        std::fs::write(dir.join("feeds/.hidden"), "198.51.100.1\n").expect("hidden");
        std::fs::write(dir.join("latin1.txt"), [0xe9u8, b'\n']).expect("latin1");
        let config = IntelConfig {
            paths: vec![
                dir.join("feeds"),
                dir.join("latin1.txt"),
                dir.join("missing.txt"),
            ],
            ..IntelConfig::default()
        };
        let (set, report) = load(&config);
        assert_eq!(
            (report.files, report.indicators),
            (2, 2),
            "{:?}",
            report.problems
        );
        assert!(set.match_domain("x.c2.example").is_some());
        assert!(
            set.match_ip("198.51.100.1".parse().expect("ip")).is_none(),
            "hidden files are skipped"
        );
        let a = dir.join("feeds/a.txt").display().to_string();
        let problems = report.problems.join("\n");
        assert!(
            problems.contains(&format!("{a}:2: \"bad\" is not a hash")),
            "{problems}"
        );
        assert!(
            problems.contains("latin1.txt: not UTF-8 text (byte 0)"),
            "{problems}"
        );
        assert!(
            problems.contains("missing.txt: cannot read: "),
            "{problems}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
