//! The agent's rules: Vigil's pack and the configured files, compiled, then tried on
//! sample events before they run on the host. A rule file that fails to load is
//! reported and left out; one that makes matching slow is refused with the time it
//! took. Neither stops the agent.
//!
//! Regular expressions run in linear time (the `regex` crate has no backtracking), and
//! one whose compiled form would pass 4 MiB fails to load, so a single pattern cannot
//! stall a host or take its memory; what the trial catches is a rule file whose
//! matching is costly all the same (hundreds of patterns without a literal to skip them
//! by, run on every event).

use crate::config::RulesConfig;
use std::time::Instant;
use vigil_event::model::{
    Actor, DnsActivity, DnsQuery, File, FileActivity, Process, ProcessActivity, Shared,
};
use vigil_event::OcsfEvent;
use vigil_sigma::{Built, Engine, EventKind};

/// What loading the rules came to.
#[derive(Debug, Default)]
pub struct RuleReport {
    /// Rule documents that loaded.
    pub loaded: usize,
    /// Rule files read (the pack's included).
    pub files: usize,
    /// Rules of Vigil's pack among the files.
    pub builtin_files: usize,
    /// One line per problem: unreadable paths, rules that failed (`file:line:
    /// reason`), rule files refused by the trial.
    pub problems: Vec<String>,
    /// Notes about rules that loaded (a placeholder without values, a logsource no
    /// event reaches).
    pub warnings: Vec<String>,
    /// Rule files refused by the trial match.
    pub refused: Vec<String>,
    /// Microseconds per sample event the final rule set took in the trial, on average.
    pub trial_us_per_event: f64,
    /// Microseconds the slowest sample event took.
    pub trial_us_max: f64,
    /// The version of the rule content that runs: `sha256:` and the first 16 hex digits
    /// of the SHA-256 of every rule file's name and text, in order, that was not
    /// refused. The same files give the same version on every host.
    pub content_version: String,
}

/// Reads, compiles and tries the configured rules; returns the engine to run.
pub fn load(config: &RulesConfig, engine_config: &vigil_sigma::Config) -> (Engine, RuleReport) {
    let sources = vigil_rules::Sources {
        builtin: config.builtin,
        paths: config.paths.clone(),
    };
    let texts = vigil_rules::read(&sources);
    let mut report = RuleReport {
        files: texts.texts.len(),
        builtin_files: if config.builtin {
            vigil_rules::BUILTIN.len()
        } else {
            0
        },
        ..RuleReport::default()
    };
    report
        .problems
        .extend(texts.unreadable.iter().map(ToString::to_string));
    let all: Vec<(&str, &str)> = texts
        .texts
        .iter()
        .map(|(n, t)| (n.as_str(), &**t))
        .collect();
    let samples = sample_events();
    let budget_us = config.trial_budget_ms * 1000.0;
    let mut built = build(&all, engine_config);
    let mut cost = trial(&built.engine, &samples);
    if cost.max > budget_us {
        // Too slow as a whole: find the files to blame, each tried alone.
        for (name, text) in &all {
            let alone = build(&[(name, text)], engine_config);
            let t = trial(&alone.engine, &samples);
            if t.max > budget_us {
                report.refused.push((*name).to_string());
                report.problems.push(format!(
                    "{name}: refused: matching one sample event took {:.2} ms in the trial \
                     (the budget is {:.2} ms, rules.trial_budget_ms)",
                    t.max / 1000.0,
                    config.trial_budget_ms
                ));
            }
        }
        let kept: Vec<(&str, &str)> = all
            .iter()
            .copied()
            .filter(|(n, _)| !report.refused.iter().any(|r| r == n))
            .collect();
        built = build(&kept, engine_config);
        cost = trial(&built.engine, &samples);
    }
    report.content_version = content_version(
        all.iter()
            .filter(|(n, _)| !report.refused.iter().any(|r| r == n)),
    );
    report.trial_us_per_event = cost.mean;
    report.trial_us_max = cost.max;
    report.loaded = built.loaded;
    report
        .problems
        .extend(built.errors.iter().map(ToString::to_string));
    report
        .warnings
        .extend(built.warnings.iter().map(ToString::to_string));
    (built.engine, report)
}

/// See [`RuleReport::content_version`].
fn content_version<'t>(files: impl Iterator<Item = &'t (&'t str, &'t str)>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, text) in files {
        // Lengths first, so that no two lists of files hash alike.
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn build(texts: &[(&str, &str)], config: &vigil_sigma::Config) -> Built {
    let mut loader = match vigil_sigma::Loader::with_config(config.clone()) {
        Ok(l) => l,
        // The configuration was checked when the agent started.
        Err(_) => vigil_sigma::Loader::new(),
    };
    for (name, text) in texts {
        loader.add(name, text);
    }
    loader.build()
}

/// What matching the samples cost, in microseconds.
#[derive(Debug, Clone, Copy)]
struct Cost {
    /// Per event, on average.
    mean: f64,
    /// The slowest event.
    max: f64,
}

/// Matches every sample three times; each event's cost is its best of the three (the
/// machine's noise is not the rule's).
fn trial(engine: &Engine, samples: &[OcsfEvent]) -> Cost {
    let mut scratch = engine.scratch();
    let mut found = Vec::new();
    let mut best = vec![f64::INFINITY; samples.len()];
    for _ in 0..3 {
        for (e, b) in samples.iter().zip(best.iter_mut()) {
            found.clear();
            let t = Instant::now();
            engine.match_event(&mut scratch, e, EventKind::Ocsf, &mut found);
            *b = b.min(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Cost {
        mean: best.iter().sum::<f64>() / best.len().max(1) as f64,
        max: best.iter().copied().fold(0.0, f64::max),
    }
}

/// Events like the ones a host produces, and some of the long ones an intruder can
/// make: what a rule must be able to match quickly.
pub fn sample_events() -> Vec<OcsfEvent> {
    let now = vigil_event::time::now_ms();
    let mut events = vigil_event::example::attack_story(now);
    // Long, varied text: a command line of 16 KiB, a deep path, a long DNS name.
    let words = [
        "curl",
        "-fsSL",
        "http://198.51.100.23/a.sh",
        "|",
        "bash",
        "base64",
        "-d",
        "AAAA==",
        "/tmp/.x",
        "python3",
        "-c",
        "'import socket'",
        "--user=root",
        "0>&1",
        "/dev/tcp/",
    ];
    let mut long = String::new();
    let mut i = 0usize;
    while long.len() < 16 * 1024 {
        long.push_str(words[i % words.len()]);
        long.push(if i.is_multiple_of(7) { '\t' } else { ' ' });
        i = i.wrapping_mul(31).wrapping_add(17) % 1009;
    }
    let process = Process {
        pid: Some(4242),
        uid: Some("trial-4242".into()),
        name: Some("bash".into()),
        cmd_line: Some(long.clone()),
        file: Some(File {
            name: "bash".into(),
            path: Some("/usr/bin/bash".into()),
            ..File::default()
        }),
        ..Process::default()
    };
    let mut launch = ProcessActivity::new(1, now, "trial", process.clone());
    launch.launch_type_id = Some(1);
    events.push(launch.into());
    let deep: String = (0..200).map(|i| format!("/d{i}")).collect::<String>() + "/x.sh";
    let mut write = FileActivity::new(
        1,
        now,
        "trial",
        File {
            name: "x.sh".into(),
            path: Some(deep),
            ..File::default()
        },
    );
    write.actor = Some(Actor {
        process: Some(Shared::new(process.clone())),
        ..Actor::default()
    });
    events.push(write.into());
    let mut dns = DnsActivity::new(1, now, "trial");
    dns.query = Some(DnsQuery {
        hostname: (0..20).map(|i| format!("label{i}.")).collect::<String>() + "example",
        ..DnsQuery::default()
    });
    dns.actor = Some(Actor {
        process: Some(Shared::new(process)),
        ..Actor::default()
    });
    events.push(dns.into());
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_version_follows_every_file_name_and_byte() {
        let a = [("a.yml", "title: x"), ("b.yml", "title: y")];
        let v = content_version(a.iter());
        assert!(v.starts_with("sha256:") && v.len() == 7 + 16, "{v}");
        assert_eq!(v, content_version(a.iter()));
        let changed = [("a.yml", "title: x"), ("b.yml", "title: z")];
        assert_ne!(v, content_version(changed.iter()));
        let renamed = [("a.yml", "title: x"), ("c.yml", "title: y")];
        assert_ne!(v, content_version(renamed.iter()));
        // The boundary between name and text is part of the hash.
        let shifted = [("a.ymltitle: x", ""), ("b.yml", "title: y")];
        assert_ne!(v, content_version(shifted.iter()));
    }

    #[test]
    fn the_pack_has_one_content_version_and_no_rules_another() {
        let config = RulesConfig::default();
        let (_, first) = load(&config, &vigil_sigma::Config::default());
        let (_, again) = load(&config, &vigil_sigma::Config::default());
        assert_eq!(first.content_version, again.content_version);
        let none = RulesConfig {
            builtin: false,
            ..RulesConfig::default()
        };
        let (_, empty) = load(&none, &vigil_sigma::Config::default());
        assert_ne!(first.content_version, empty.content_version);
    }
}
