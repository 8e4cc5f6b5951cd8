//! The collecting side of a hunt: counts, findings to the sink, the base findings of
//! correlation rules kept for the end, the report.

use crate::config::HuntConfig;
use crate::correlate::{correlate, CorrBuffer};
use crate::detection::Detection;
use crate::discover::InputFile;
use crate::error::{HuntError, InputError};
use crate::matcher::Batch;
use crate::report::{FileReport, Progress, Report, RuleCount, Sink};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use vigil_detect::finding::{level_rank, tactics};
use vigil_sigma::Engine;

/// The collecting side: counts, findings to the sink, correlation inputs.
pub(crate) struct Collector<'e, 'f> {
    engine: &'e Engine,
    files: &'f [InputFile],
    config: &'f HuntConfig,
    start: Instant,
    file_reports: Vec<FileReport>,
    errors: Vec<InputError>,
    records: u64,
    bytes: u64,
    findings: u64,
    by_level: [u64; 5],
    by_rule: HashMap<usize, u64>,
    tactics: HashMap<&'static str, u64>,
    unrouted: u64,
    corr: CorrBuffer,
    files_done: usize,
    corr_spilled: u64,
    last_progress: Instant,
}

/// How often progress is told.
pub(crate) const PROGRESS_TICK: Duration = Duration::from_millis(250);

impl<'e, 'f> Collector<'e, 'f> {
    pub(crate) fn new(
        engine: &'e Engine,
        files: &'f [InputFile],
        config: &'f HuntConfig,
        start: Instant,
    ) -> Self {
        Collector {
            engine,
            files,
            config,
            start,
            file_reports: files
                .iter()
                .map(|f| FileReport {
                    path: f.path.clone(),
                    records: 0,
                    errors: 0,
                    fatal: false,
                })
                .collect(),
            errors: Vec::new(),
            records: 0,
            bytes: 0,
            findings: 0,
            by_level: [0; 5],
            by_rule: HashMap::new(),
            tactics: HashMap::new(),
            unrouted: 0,
            corr: CorrBuffer::new(config.correlation_buffer),
            files_done: 0,
            corr_spilled: 0,
            last_progress: Instant::now(),
        }
    }

    pub(crate) fn error(&mut self, file: u32, e: InputError) {
        let Some(fr) = self.file_reports.get_mut(file as usize) else {
            return;
        };
        fr.errors += 1;
        fr.fatal |= e.fatal;
        if fr.errors <= self.config.max_errors_per_file {
            self.errors.push(e);
        }
    }

    fn emit(&mut self, d: &Detection<'e>, sink: &mut dyn Sink) -> Result<(), HuntError> {
        if level_rank(d.rule.level) < level_rank(self.config.min_level) {
            return Ok(());
        }
        self.findings += 1;
        self.by_level[level_rank(d.rule.level)] += 1;
        *self.by_rule.entry(d.rule_index).or_default() += 1;
        for t in tactics(d.rule) {
            *self.tactics.entry(t).or_default() += 1;
        }
        sink.detection(d)?;
        Ok(())
    }

    /// Takes what a worker made: counts, errors, findings to the sink, correlation inputs.
    pub(crate) fn batch(&mut self, b: Batch<'e>, sink: &mut dyn Sink) -> Result<(), HuntError> {
        self.bytes += b.bytes;
        self.unrouted += b.unrouted;
        for (file, n) in b.records {
            self.records += n;
            if let Some(fr) = self.file_reports.get_mut(file as usize) {
                fr.records += n;
            }
        }
        for (file, e) in b.errors {
            self.error(file, e);
        }
        for d in &b.detections {
            self.emit(d, sink)?;
        }
        for c in b.corr {
            self.corr.push(c).map_err(HuntError::Spill)?;
        }
        Ok(())
    }

    /// A file was read to its end (or as far as it could be).
    pub(crate) fn file_done(&mut self) {
        self.files_done += 1;
    }

    /// Tells `progress` how far the hunt is, if a tick has passed since it was last told.
    pub(crate) fn progress(&mut self, progress: &mut Option<&mut dyn FnMut(&Progress)>) {
        let Some(p) = progress.as_deref_mut() else {
            return;
        };
        if self.last_progress.elapsed() < PROGRESS_TICK {
            return;
        }
        self.last_progress = Instant::now();
        p(&Progress {
            files_done: self.files_done,
            files_total: self.files.len(),
            records: self.records,
            bytes: self.bytes,
            findings: self.findings,
            elapsed: self.start.elapsed(),
        });
    }

    /// Feeds the base findings to the correlations in event-time order.
    pub(crate) fn correlate(&mut self, sink: &mut dyn Sink) -> Result<(), HuntError> {
        if self.corr.is_empty() {
            return Ok(());
        }
        let mut corr = std::mem::replace(&mut self.corr, CorrBuffer::new(1));
        let mut failed = None;
        let engine = self.engine;
        let files = self.files;
        let window = self.config.correlation_events;
        let r = correlate(&mut corr, engine, files, window, &mut |d| {
            self.emit(&d, sink).map_err(|e| {
                let msg = e.to_string();
                failed = Some(e);
                std::io::Error::other(msg)
            })
        });
        self.corr_spilled = corr.spilled;
        if let Some(e) = failed {
            return Err(e);
        }
        r.map_err(HuntError::Spill)
    }

    pub(crate) fn report(&self) -> Report {
        let mut by_rule: Vec<RuleCount> = self
            .by_rule
            .iter()
            .filter_map(|(i, n)| {
                let engine_rules = self.engine.rules().len();
                let r = match self.engine.rules().get(*i) {
                    Some(r) => r,
                    None => self
                        .config
                        .intel
                        .as_deref()?
                        .rules()
                        .get(*i - engine_rules)?,
                };
                Some(RuleCount {
                    title: r.title.clone(),
                    id: r.id.clone(),
                    level: level_rank(r.level),
                    count: *n,
                })
            })
            .collect();
        by_rule.sort_by(|a, b| b.count.cmp(&a.count).then(a.title.cmp(&b.title)));
        let mut tactics: Vec<(String, u64)> = self
            .tactics
            .iter()
            .map(|(k, v)| ((*k).to_string(), *v))
            .collect();
        tactics.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Report {
            files: self.file_reports.clone(),
            records: self.records,
            bytes: self.bytes,
            findings: self.findings,
            by_level: self.by_level,
            by_rule,
            tactics,
            errors: self.errors.clone(),
            unrouted: self.unrouted,
            correlation_spilled: self.corr_spilled,
            elapsed: Duration::ZERO,
        }
    }
}
