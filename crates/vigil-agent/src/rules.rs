//! The agent's rules: Vigil's pack and the configured files, compiled, then tried on
//! sample events before they run on the host. A rule file that fails to load is
//! reported and left out; one that makes matching slow (a costly regular expression)
//! is refused with the time it took. Neither stops the agent.

use crate::config::RulesConfig;
use std::time::Instant;
use vigil_event::model::{
    Actor, DnsActivity, DnsQuery, File, FileActivity, Process, ProcessActivity, Shared,
};
use vigil_event::OcsfEvent;
use vigil_sigma::{Built, Engine, Source};

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
    /// Microseconds per sample event the final rule set took in the trial.
    pub trial_us_per_event: f64,
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
    let mut per_event = trial(&built.engine, &samples);
    if per_event > budget_us {
        // Too slow as a whole: find the files to blame, each tried alone.
        for (name, text) in &all {
            let alone = build(&[(name, text)], engine_config);
            let t = trial(&alone.engine, &samples);
            if t > budget_us {
                report.refused.push((*name).to_string());
                report.problems.push(format!(
                    "{name}: refused: matching took {:.2} ms per sample event in the trial \
                     (the budget is {:.2} ms, rules.trial_budget_ms)",
                    t / 1000.0,
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
        per_event = trial(&built.engine, &samples);
    }
    report.trial_us_per_event = per_event;
    report.loaded = built.loaded;
    report
        .problems
        .extend(built.errors.iter().map(ToString::to_string));
    report
        .warnings
        .extend(built.warnings.iter().map(ToString::to_string));
    report
        .warnings
        .extend(built.engine.warnings().iter().cloned());
    (built.engine, report)
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

/// Microseconds per event of the best of three passes over the samples.
fn trial(engine: &Engine, samples: &[OcsfEvent]) -> f64 {
    let mut scratch = engine.scratch();
    let mut found = Vec::new();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        for e in samples {
            found.clear();
            engine.match_event(&mut scratch, e, Source::Ocsf, &mut found);
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / samples.len().max(1) as f64);
    }
    best
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
