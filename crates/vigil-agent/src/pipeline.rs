//! The agent's pipeline: events from a source pass through stages, in order, and every
//! event (the source's and the ones stages add) is offered to every sink.
//!
//! ```text
//!  sensor ──▶ story (enrich) ──▶ detect ──▶ [response, later] ──▶ sinks: events file, findings file
//! ```
//!
//! A stage sees each event once, may change it (the storyline writes its story id) and
//! may emit new events (the detector's findings and incidents); an emitted event goes on
//! through the stages after the one that emitted it, so a response stage placed after
//! detection will see the findings. An event is written before the events it caused.

use crate::config::YaraConfig;
use crate::content::Content;
use crate::latency::Histogram;
use crate::sink::{Select, Sink, SinkError};
use crate::yara::FileVerdicts;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use vigil_detect::{DetectStats, Detector, StoryStats, Storyline};
use vigil_event::OcsfEvent;

/// One step between the source and the sinks.
pub trait Stage {
    /// A short name, for logs and statistics.
    fn name(&self) -> &'static str;
    /// Handles one event: may change it, and may push new events to `emit`.
    fn process(&mut self, event: &mut OcsfEvent, now_ms: i64, emit: &mut Vec<OcsfEvent>);
    /// Time passes (`now_ms`, the wall clock): may emit what waited for it.
    fn tick(&mut self, _now_ms: i64, _emit: &mut Vec<OcsfEvent>) {}
    /// Called after every batch from the source (every few milliseconds): may emit
    /// what work off the event thread finished (a file's verdict).
    fn poll(&mut self, _now_ms: i64, _emit: &mut Vec<OcsfEvent>) {}
    /// The stream ends: emit everything still held.
    fn finish(&mut self, _now_ms: i64, _emit: &mut Vec<OcsfEvent>) {}
    /// New content (checked) runs from the next event on: a stage that uses rules,
    /// indicators or policy takes its part of `content`.
    fn replace_content(
        &mut self,
        _content: &mut Content,
        _now_ms: i64,
        _emit: &mut Vec<OcsfEvent>,
    ) {
    }
    /// Counters for the agent's statistics.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Gives every event the story of its process ([`Storyline`]).
pub struct StoryStage(pub Storyline);

impl Stage for StoryStage {
    fn name(&self) -> &'static str {
        "story"
    }
    fn process(&mut self, event: &mut OcsfEvent, _now_ms: i64, _emit: &mut Vec<OcsfEvent>) {
        self.0.assign(event);
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let StoryStats {
            processes,
            stories,
            from_ancestry,
            untracked,
        } = self.0.stats();
        vec![
            ("story_processes", processes as u64),
            ("stories", stories),
            ("story_from_ancestry", from_ancestry),
            ("story_untracked", untracked),
        ]
    }
}

/// Matches every event against the rules ([`Detector`]), and asks for the verdicts of
/// the files events name ([`FileVerdicts`]) when YARA rules are loaded.
pub struct DetectStage {
    detector: Detector,
    /// What new content needs besides itself: the level of indicator findings and the
    /// settings to scan files with when it brings YARA rules.
    follow: Option<(i32, YaraConfig)>,
    /// How far behind the wall clock event time may be when windows are closed on a
    /// tick (events held for fork coalescing arrive late).
    slack_ms: i64,
    files: Option<FileVerdicts>,
}

/// How long the end of the stream waits for the file scans asked for.
const FILES_FINISH: Duration = Duration::from_secs(3);

impl DetectStage {
    /// A stage around a detector.
    pub fn new(detector: Detector) -> Self {
        DetectStage {
            detector,
            follow: None,
            slack_ms: 2_000,
            files: None,
        }
    }

    /// Judges the files events name with YARA as well.
    pub fn with_files(mut self, files: FileVerdicts) -> Self {
        self.files = Some(files);
        self
    }

    /// Takes new content when it comes ([`Stage::replace_content`]): indicator findings
    /// at `intel_level`, files scanned with `yara`'s settings.
    pub fn follow_content(mut self, intel_level: i32, yara: YaraConfig) -> Self {
        self.follow = Some((intel_level, yara));
        self
    }

    /// The detector's counters.
    pub fn stats(&self) -> DetectStats {
        self.detector.stats()
    }
}

impl Stage for DetectStage {
    fn name(&self) -> &'static str {
        "detect"
    }
    fn process(&mut self, event: &mut OcsfEvent, now_ms: i64, emit: &mut Vec<OcsfEvent>) {
        self.detector.process(event, now_ms, emit);
        if let Some(files) = &mut self.files {
            files.check(event, &mut self.detector, now_ms, emit);
        }
    }
    fn tick(&mut self, now_ms: i64, emit: &mut Vec<OcsfEvent>) {
        self.detector.tick(now_ms - self.slack_ms, now_ms, emit);
    }
    fn poll(&mut self, now_ms: i64, emit: &mut Vec<OcsfEvent>) {
        if let Some(files) = &mut self.files {
            files.poll(&mut self.detector, now_ms, emit);
        }
    }
    fn finish(&mut self, now_ms: i64, emit: &mut Vec<OcsfEvent>) {
        if let Some(files) = &mut self.files {
            files.finish(FILES_FINISH, &mut self.detector, now_ms, emit);
        }
        self.detector.finish(now_ms, emit);
    }
    fn replace_content(&mut self, content: &mut Content, now_ms: i64, emit: &mut Vec<OcsfEvent>) {
        let Some((level, yara)) = &self.follow else {
            return;
        };
        let intel = (!content.intel.is_empty()).then(|| (Arc::clone(&content.intel), *level));
        self.detector
            .replace_content(Arc::clone(&content.engine), intel, now_ms, emit);
        match (content.yara.take(), &mut self.files) {
            (Some(rules), Some(files)) => {
                if let Err(e) = files.replace_rules(rules) {
                    tracing::error!("the new YARA rules do not run: {e}");
                }
            }
            (Some(rules), None) => match FileVerdicts::start(rules, yara.clone()) {
                Ok(f) => self.files = Some(f),
                Err(e) => tracing::error!("the new YARA rules do not run: {e}"),
            },
            (None, _) => {
                // The new content has no YARA rules: the old ones stop; scans asked for
                // are counted as dropped.
                if let Some(mut files) = self.files.take() {
                    files.finish(Duration::ZERO, &mut self.detector, now_ms, emit);
                }
            }
        }
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.detector.stats();
        let mut out = vec![
            ("events_matched", s.events),
            ("rule_matches", s.matches),
            ("findings", s.findings),
            ("finding_repeats", s.repeats),
            ("finding_updates", s.updates),
            ("correlations", s.correlations),
            ("incidents", s.incidents),
            ("findings_untracked", s.untracked),
            ("incidents_untracked", s.untracked_incidents),
        ];
        if let Some(files) = &self.files {
            out.extend(files.counters());
        }
        out
    }
}

/// Stages and sinks, run on one thread.
pub struct Pipeline<'a> {
    stages: Vec<Box<dyn Stage + 'a>>,
    sinks: Vec<Box<dyn Sink + 'a>>,
    /// Reused buffers: what each stage emitted for the current event.
    emitted: Vec<Vec<OcsfEvent>>,
    /// One event's JSON line, serialized once for every sink.
    line: Vec<u8>,
    written: u64,
    /// From the kernel's time of an exec to its findings being written (µs).
    exec_to_finding: Arc<Mutex<Histogram>>,
    /// The sink whose writing times the findings: the findings file, else the first.
    timed_sink: usize,
    /// Kernel times of the execs whose findings wait for the next flush.
    unflushed: Vec<u64>,
    /// Whether a finding or incident was written since the last flush.
    findings_unflushed: bool,
    /// Per sink, whether it took a finding or incident since its last flush.
    holds_finding: Vec<bool>,
    /// Events that went through, by class: `(class_uid, class_name, count)`.
    classes: Vec<(i32, &'static str, u64)>,
    /// New findings (activity Create) by `severity_id`: index 0..=6, 7 for any other.
    findings_by_level: [u64; 8],
    /// New incidents by `severity_id`, as `findings_by_level`.
    incidents_by_level: [u64; 8],
    /// Per stage, the ns each event took in it; `None` unless timing was asked for
    /// ([`Pipeline::time_stages`]): two clock reads per stage and event.
    stage_ns: Option<Vec<Histogram>>,
}

/// What the pipeline counted of the events that went through it, for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct Tallies<'p> {
    /// Events by class: `(class_uid, class_name, count)`.
    pub classes: &'p [(i32, &'static str, u64)],
    /// New findings by `severity_id` (index 7: any id above 6).
    pub findings_by_level: &'p [u64; 8],
    /// New incidents by `severity_id` (index 7: any id above 6).
    pub incidents_by_level: &'p [u64; 8],
}

/// The index of a `severity_id` in a by-level tally.
fn level_index(severity_id: i32) -> usize {
    usize::try_from(severity_id).map_or(7, |i| i.min(7))
}

impl<'a> Pipeline<'a> {
    /// A pipeline of these stages, in order, writing to these sinks.
    pub fn new(stages: Vec<Box<dyn Stage + 'a>>, sinks: Vec<Box<dyn Sink + 'a>>) -> Self {
        let emitted = stages.iter().map(|_| Vec::new()).collect();
        let sinks_len = sinks.len();
        let timed_sink = sinks
            .iter()
            .position(|s| s.select() == Select::Findings && s.writes_on_flush())
            .unwrap_or(0);
        Pipeline {
            stages,
            sinks,
            emitted,
            line: Vec::with_capacity(16 * 1024),
            written: 0,
            exec_to_finding: Arc::default(),
            timed_sink,
            unflushed: Vec::new(),
            findings_unflushed: false,
            holds_finding: vec![false; sinks_len],
            classes: Vec::new(),
            findings_by_level: [0; 8],
            incidents_by_level: [0; 8],
            stage_ns: None,
        }
    }

    /// Times every stage on every event from now on (for the metrics).
    pub fn time_stages(&mut self) {
        self.stage_ns
            .get_or_insert_with(|| self.stages.iter().map(|_| Histogram::default()).collect());
    }

    /// Per stage, its name and the ns each event took in it (empty unless
    /// [`Pipeline::time_stages`] was called).
    pub fn stage_times(&self) -> Vec<(&'static str, &Histogram)> {
        match &self.stage_ns {
            Some(h) => self.stages.iter().map(|s| s.name()).zip(h).collect(),
            None => Vec::new(),
        }
    }

    /// What was counted of the events that went through.
    pub fn tallies(&self) -> Tallies<'_> {
        Tallies {
            classes: &self.classes,
            findings_by_level: &self.findings_by_level,
            incidents_by_level: &self.incidents_by_level,
        }
    }

    /// Each sink's name and its counters.
    pub fn sink_counters(&self) -> Vec<(&str, Vec<(&'static str, u64)>)> {
        self.sinks
            .iter()
            .map(|s| (s.name(), s.counters()))
            .collect()
    }

    /// Each sink's name and its gauges (lines queued, bytes buffered).
    pub fn sink_gauges(&self) -> Vec<(&str, Vec<(&'static str, u64)>)> {
        self.sinks.iter().map(|s| (s.name(), s.gauges())).collect()
    }

    /// Each stage's name and its counters.
    pub fn stage_counters(&self) -> Vec<(&'static str, Vec<(&'static str, u64)>)> {
        self.stages
            .iter()
            .map(|s| (s.name(), s.counters()))
            .collect()
    }

    /// Runs one event from the source through every stage and writes it and what it
    /// caused. A sink that must not lose anything (the events output) fails the call.
    pub fn push(&mut self, event: OcsfEvent, now_ms: i64) -> Result<(), SinkError> {
        self.run(event, 0, now_ms, None)
    }

    /// [`Pipeline::push`] for an event the sensor made from a kernel record at
    /// `kernel_ns` (ns since boot): a finding an exec causes is timed from then to its
    /// writing ([`Pipeline::exec_to_finding`]).
    pub fn push_timed(
        &mut self,
        event: OcsfEvent,
        now_ms: i64,
        kernel_ns: Option<u64>,
    ) -> Result<(), SinkError> {
        let exec = matches!(&event, OcsfEvent::Process(p) if p.activity_id == 1);
        self.run(event, 0, now_ms, kernel_ns.filter(|_| exec))
    }

    /// The time from an exec (the kernel's record) to each finding it caused being
    /// written out (by the findings file's thread, or the first output's, at the flush
    /// that follows), in µs.
    pub fn exec_to_finding(&self) -> Histogram {
        self.exec_to_finding
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn run(
        &mut self,
        mut event: OcsfEvent,
        from: usize,
        now_ms: i64,
        exec_ns: Option<u64>,
    ) -> Result<(), SinkError> {
        let mut caused: Vec<(usize, OcsfEvent)> = Vec::new();
        let mut clock = self.stage_ns.as_ref().map(|_| Instant::now());
        for i in from..self.stages.len() {
            let mut out = std::mem::take(&mut self.emitted[i]);
            self.stages[i].process(&mut event, now_ms, &mut out);
            caused.extend(out.drain(..).map(|e| (i + 1, e)));
            self.emitted[i] = out;
            if let (Some(times), Some(then)) = (&mut self.stage_ns, &mut clock) {
                let now = Instant::now();
                let ns = u64::try_from((now - *then).as_nanos()).unwrap_or(u64::MAX);
                times[i].record(ns);
                *then = now;
            }
        }
        self.tally(&event);
        self.write(&event)?;
        if let Some(t) = exec_ns {
            if matches!(&event, OcsfEvent::Finding(f) if f.activity_id == 1) {
                self.unflushed.push(t);
            }
        }
        for (next, e) in caused {
            self.run(e, next, now_ms, exec_ns)?;
        }
        Ok(())
    }

    fn tally(&mut self, event: &OcsfEvent) {
        let uid = event.class_uid();
        match self.classes.iter_mut().find(|(c, _, _)| *c == uid) {
            Some((_, _, n)) => *n += 1,
            None => self.classes.push((uid, event.class_name(), 1)),
        }
        match event {
            OcsfEvent::Finding(f) if f.activity_id == 1 => {
                self.findings_by_level[level_index(f.severity_id)] += 1;
            }
            OcsfEvent::Incident(f) if f.activity_id == 1 => {
                self.incidents_by_level[level_index(f.severity_id)] += 1;
            }
            _ => {}
        }
    }

    /// Lets every stage emit what finished off the event thread (after each batch).
    pub fn poll(&mut self, now_ms: i64) -> Result<(), SinkError> {
        self.each_stage(now_ms, |s, now, out| s.poll(now, out))
    }

    /// Lets every stage act on the passing of time.
    pub fn tick(&mut self, now_ms: i64) -> Result<(), SinkError> {
        self.each_stage(now_ms, |s, now, out| s.tick(now, out))
    }

    /// Ends the stream: every stage emits what it holds; then the sinks are flushed.
    pub fn finish(&mut self, now_ms: i64) -> Result<(), SinkError> {
        self.each_stage(now_ms, |s, now, out| s.finish(now, out))?;
        self.flush()
    }

    /// New content (checked) runs from the next event on, in every stage; what the
    /// change makes stages emit (the old rules' last correlations) is written.
    pub fn replace_content(&mut self, content: &mut Content, now_ms: i64) -> Result<(), SinkError> {
        self.each_stage(now_ms, |s, now, out| s.replace_content(content, now, out))
    }

    fn each_stage(
        &mut self,
        now_ms: i64,
        mut f: impl FnMut(&mut dyn Stage, i64, &mut Vec<OcsfEvent>),
    ) -> Result<(), SinkError> {
        for i in 0..self.stages.len() {
            let mut events = Vec::new();
            f(self.stages[i].as_mut(), now_ms, &mut events);
            for e in events {
                self.run(e, i + 1, now_ms, None)?;
            }
        }
        Ok(())
    }

    fn write(&mut self, event: &OcsfEvent) -> Result<(), SinkError> {
        if !self.sinks.iter().any(|s| s.accepts(event)) {
            return Ok(());
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, event)
            .map_err(|e| SinkError::Serialize(e.to_string()))?;
        self.line.push(b'\n');
        self.written += 1;
        let finding = matches!(event, OcsfEvent::Finding(_) | OcsfEvent::Incident(_));
        self.findings_unflushed |= finding;
        for (s, holds) in self.sinks.iter_mut().zip(&mut self.holds_finding) {
            if s.accepts(event) {
                s.write(&self.line, 1)?;
                *holds |= finding;
            }
        }
        Ok(())
    }

    /// Flushes only the sinks that took a finding or an incident since their last flush
    /// (the findings file, or the one file of everything): a finding is written at once,
    /// while the other sinks keep to the run loop's interval and their threads are not
    /// woken for it.
    pub fn flush_findings(&mut self) -> Result<(), SinkError> {
        self.flush_sinks(false)
    }

    /// Flushes every sink (at the run loop's interval, so readers do not wait for a
    /// buffer to fill, and before a sync or the end).
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.flush_sinks(true)
    }

    /// Flushes every sink (`all`), or those holding a finding; the timed sink, when
    /// flushed, counts the latency of the findings' execs.
    fn flush_sinks(&mut self, all: bool) -> Result<(), SinkError> {
        for i in 0..self.sinks.len() {
            if !std::mem::take(&mut self.holds_finding[i]) && !all {
                continue;
            }
            if i == self.timed_sink {
                let timed = std::mem::take(&mut self.unflushed);
                self.sinks[i].flush_timed(timed, &self.exec_to_finding)?;
            } else {
                self.sinks[i].flush()?;
            }
        }
        self.findings_unflushed = false;
        Ok(())
    }

    /// Writes out everything and waits for the sinks to have written it (their counters
    /// are then exact).
    pub fn sync(&mut self) -> Result<(), SinkError> {
        self.flush()?;
        for s in &mut self.sinks {
            s.sync()?;
        }
        Ok(())
    }

    /// Writes out everything the sinks hold and stops their threads.
    pub fn close(&mut self) -> Result<(), SinkError> {
        self.flush()?;
        for s in &mut self.sinks {
            s.close()?;
        }
        Ok(())
    }

    /// Whether a finding or an incident was written since the last flush: one that
    /// waits in a buffer is a finding no one sees yet.
    pub fn has_unflushed_findings(&self) -> bool {
        self.findings_unflushed
    }

    /// Counters of every stage and sink, and the events written.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let h = self.exec_to_finding();
        let mut out = vec![
            ("events".to_string(), self.written),
            ("exec_findings".to_string(), h.count()),
            ("exec_to_finding_p50_us".to_string(), h.quantile(0.5)),
            ("exec_to_finding_p99_us".to_string(), h.quantile(0.99)),
            ("exec_to_finding_max_us".to_string(), h.max()),
        ];
        for s in &self.stages {
            out.extend(s.counters().into_iter().map(|(k, v)| (k.to_string(), v)));
        }
        for s in &self.sinks {
            out.extend(
                s.counters()
                    .into_iter()
                    .map(|(k, v)| (format!("{}_{k}", s.name()), v)),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use crate::sink::{Select, SinkError};
    use vigil_detect::detector::Detector;

    /// What a test sink was given: its lines and how many flushes.
    #[derive(Default)]
    struct Kept {
        lines: usize,
        flushes: usize,
    }

    struct KeptSink(Select, Arc<Mutex<Kept>>);

    impl Sink for KeptSink {
        fn name(&self) -> &str {
            "kept"
        }
        fn select(&self) -> Select {
            self.0
        }
        fn write(&mut self, _lines: &[u8], count: u64) -> Result<(), SinkError> {
            self.1.lock().expect("lock").lines += count as usize;
            Ok(())
        }
        fn flush(&mut self) -> Result<(), SinkError> {
            self.1.lock().expect("lock").flushes += 1;
            Ok(())
        }
    }

    /// A finding is flushed to the sink that holds it and wakes no other: the events
    /// output keeps to its own interval.
    #[test]
    fn a_finding_flushes_only_the_sinks_that_hold_it() {
        let config = AgentConfig::default();
        let (engine, _) = crate::rules::load(&config.rules, &vigil_sigma::Config::default());
        let stages: Vec<Box<dyn Stage>> = vec![
            Box::new(StoryStage(vigil_detect::story::Storyline::new(
                config.story.clone(),
            ))),
            Box::new(DetectStage::new(Detector::new(
                Arc::new(engine),
                config.detect.clone(),
                "agent",
            ))),
        ];
        let events = Arc::new(Mutex::new(Kept::default()));
        let findings = Arc::new(Mutex::new(Kept::default()));
        let sinks: Vec<Box<dyn Sink>> = vec![
            Box::new(KeptSink(Select::NotFindings, events.clone())),
            Box::new(KeptSink(Select::Findings, findings.clone())),
        ];
        let mut p = Pipeline::new(stages, sinks);
        let mut flushed_findings = 0;
        for e in vigil_event::example::attack_story(1_700_000_000_000) {
            p.push(e, 1_700_000_000_000).expect("push");
            if p.has_unflushed_findings() {
                p.flush_findings().expect("flush findings");
                flushed_findings += 1;
                assert!(!p.has_unflushed_findings());
            }
        }
        let (ev, fi) = (events.lock().expect("lock"), findings.lock().expect("lock"));
        assert!(flushed_findings > 0, "the example intrusion makes findings");
        assert!(fi.lines > 0 && ev.lines > 0);
        assert_eq!(
            fi.flushes, flushed_findings,
            "each finding's flush reached its sink"
        );
        assert_eq!(
            ev.flushes, 0,
            "the events sink was not flushed for findings"
        );
        drop((ev, fi));
        p.flush().expect("flush");
        assert_eq!(events.lock().expect("lock").flushes, 1);
    }
}
