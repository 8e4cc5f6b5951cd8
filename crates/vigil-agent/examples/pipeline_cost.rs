//! The agent's pipeline cost per event, as a deterministic instruction count: the events
//! of a JSON-lines file (an agent's own output, e.g. under `exec_load`) pushed through
//! the stages the agent runs (storyline, detection with Vigil's pack and any `--rules`,
//! response with the default policy) to an events output on its own thread writing to
//! /dev/null, flushed every `--flush-every` events (as the agent's wake-ups do). For A/B
//! comparisons that timing on a shared machine cannot resolve:
//!
//! ```text
//! cargo build --release -p vigil-agent --example pipeline_cost
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/pipeline_cost EVENTS.jsonl REPEAT [--rules DIR ...] [--flush-every N]
//! ```
//!
//! Run it with REPEAT 0 too: that is the start (loading the rules, reading the file), to
//! subtract; or count the pushing alone with `--toggle-collect=pipeline_cost::drive`.
//! `--yara PATH` adds YARA file verdicts as the agent runs them (their cache lookups
//! include an `lstat` each, kernel time callgrind does not count: compare the process's
//! CPU time, `/usr/bin/time -f %U+%S`, with and without, at a large REPEAT).
//! Events of the agent's own (Event Log Activity) in the file are skipped.

use std::path::PathBuf;
use vigil_agent::config::AgentConfig;
use vigil_agent::{DetectStage, JsonlSink, OnError, Pipeline, RespondStage, Select, Stage};
use vigil_agent::{Sink, StoryStage};
use vigil_detect::{Detector, Storyline};
use vigil_event::OcsfEvent;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage =
        "usage: pipeline_cost EVENTS.jsonl REPEAT [--rules PATH ...] [--yara PATH ...] [--flush-every N]";
    let file = PathBuf::from(args.next().expect(usage));
    let repeat: usize = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let mut config = AgentConfig::default();
    let mut flush_every = 2usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rules" => config.rules.paths.push(args.next().expect(usage).into()),
            "--yara" => config.yara.paths.push(args.next().expect(usage).into()),
            "--flush-every" => flush_every = args.next().and_then(|n| n.parse().ok()).expect(usage),
            _ => panic!("{usage}"),
        }
    }
    let text = std::fs::read_to_string(&file).expect("read the events file");
    let events: Vec<OcsfEvent> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            OcsfEvent::from_json(v).expect("an OCSF event")
        })
        .filter(|e| !matches!(e, OcsfEvent::EventLog(_)))
        .collect();
    let (engine, report) = vigil_agent::rules::load(&config.rules, &vigil_sigma::Config::default());
    eprintln!(
        "{} events, {} rules loaded, {} problems",
        events.len(),
        report.loaded,
        report.problems.len()
    );
    let state = std::env::temp_dir().join(format!("vigil-pipeline-cost-{}", std::process::id()));
    config.respond.state_dir = state.clone();
    let responder = vigil_respond::Responder::new(config.respond.clone(), Vec::new());
    let stages: Vec<Box<dyn Stage + '_>> = vec![
        Box::new(StoryStage(Storyline::new(config.story.clone()))),
        Box::new({
            let stage = DetectStage::new(Detector::new(
                std::sync::Arc::new(engine),
                config.detect.clone(),
                "agent",
            ));
            match vigil_agent::yara::load(&config.yara) {
                Some(files) => stage.with_files(files),
                None => stage,
            }
        }),
        Box::new(RespondStage::new(responder)),
    ];
    let sink = JsonlSink::create("events", "/dev/null".as_ref(), Select::All, OnError::Fail)
        .and_then(|s| vigil_agent::sink::Threaded::new(s, OnError::Fail, 256))
        .expect("open /dev/null");
    let sinks: Vec<Box<dyn Sink>> = vec![Box::new(sink)];
    let mut pipeline = Pipeline::new(stages, sinks);
    let n = drive(&mut pipeline, &events, repeat, flush_every);
    pipeline.close().expect("close");
    let _ = std::fs::remove_dir_all(&state);
    eprintln!("{n} events pushed");
}

/// Pushes the events `repeat` times, flushing every `flush_every`: the part measured.
#[inline(never)]
fn drive(
    pipeline: &mut Pipeline<'_>,
    events: &[OcsfEvent],
    repeat: usize,
    flush_every: usize,
) -> usize {
    let mut n = 0usize;
    for _ in 0..repeat {
        for e in events {
            pipeline.push(e.clone(), e.time()).expect("push");
            n += 1;
            if n.is_multiple_of(flush_every.max(1)) {
                pipeline.poll(e.time()).expect("poll");
                pipeline.flush().expect("flush");
            }
        }
    }
    n
}
