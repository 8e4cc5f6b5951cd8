//! Correlation rules over event time, in bounded memory.
//!
//! Workers hand over the base findings of correlation rules as compact records (the
//! group-by and value fields, the event as JSON text). They are buffered up to
//! [`crate::HuntConfig::correlation_buffer`] bytes; past that, the buffer is sorted by event
//! time and written to a temporary run file, and at the end all runs are merged in time
//! order (an external merge sort) and fed to [`CorrelationState`]. So memory stays bounded
//! whatever the input size, and no base finding is dropped.
//!
//! The events of a correlation finding are taken from a window of the most recently fed
//! base findings, bounded by [`crate::HuntConfig::correlation_events`] bytes; an event
//! that has left it is listed by reference only (`related_events`), and
//! `related_events_count` still counts every event.

use crate::detection::{Correlated, Detection, EventRef};
use crate::input::InputFile;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use vigil_sigma::{CorrelationState, Engine, Finding, Limits};

/// A base finding of a correlation rule, waiting to be fed in time order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CorrInput {
    /// Event time (ms since the epoch).
    pub time: Option<i64>,
    /// Index of the input file.
    pub file: u32,
    /// Record number in it.
    pub record: u64,
    /// The detection rule's index in the engine.
    pub rule: u32,
    /// The values of the fields the correlations group or aggregate by.
    pub fields: Vec<(String, Option<String>)>,
    /// The event, as JSON text.
    pub event: Box<str>,
}

impl CorrInput {
    fn key(&self) -> (Option<i64>, u32, u64, u32) {
        (self.time, self.file, self.record, self.rule)
    }
    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.event.len()
            + self
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len) + 48)
                .sum::<usize>()
    }
}

/// The buffer of base findings, spilled to sorted runs past its budget.
pub(crate) struct CorrBuffer {
    mem: Vec<CorrInput>,
    mem_bytes: usize,
    budget: usize,
    runs: Vec<PathBuf>,
    /// Base findings written to runs.
    pub spilled: u64,
}

static RUN_SEQ: AtomicU64 = AtomicU64::new(0);

impl CorrBuffer {
    pub(crate) fn new(budget: usize) -> Self {
        CorrBuffer {
            mem: Vec::new(),
            mem_bytes: 0,
            budget: budget.max(1),
            runs: Vec::new(),
            spilled: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.mem.is_empty() && self.runs.is_empty()
    }

    pub(crate) fn push(&mut self, c: CorrInput) -> io::Result<()> {
        self.mem_bytes += c.bytes();
        self.mem.push(c);
        if self.mem_bytes > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.mem.sort_by_key(CorrInput::key);
        let path = std::env::temp_dir().join(format!(
            "vigil-hunt-{}-{}.run",
            std::process::id(),
            RUN_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        self.runs.push(path.clone());
        let mut w = BufWriter::new(File::create(&path)?);
        for c in self.mem.drain(..) {
            serde_json::to_writer(&mut w, &c)?;
            w.write_all(b"\n")?;
            self.spilled += 1;
        }
        w.flush()?;
        self.mem_bytes = 0;
        Ok(())
    }

    /// Merges everything in time order and feeds it to the correlations; each finding
    /// goes to `emit`. `window` bounds the bytes of recent events kept for the findings.
    pub(crate) fn correlate<'e>(
        &mut self,
        engine: &'e Engine,
        files: &[InputFile],
        window: usize,
        emit: &mut dyn FnMut(Detection<'e>) -> io::Result<()>,
    ) -> io::Result<()> {
        self.mem.sort_by_key(CorrInput::key);
        let mut sources: Vec<Box<dyn Iterator<Item = io::Result<CorrInput>>>> = Vec::new();
        for p in &self.runs {
            let r = BufReader::new(File::open(p)?);
            sources.push(Box::new(r.lines().map(|l| {
                let l = l?;
                serde_json::from_str::<CorrInput>(&l).map_err(io::Error::other)
            })));
        }
        sources.push(Box::new(std::mem::take(&mut self.mem).into_iter().map(Ok)));
        let mut heads: Vec<Option<CorrInput>> = Vec::with_capacity(sources.len());
        let mut heap = BinaryHeap::new();
        for (i, s) in sources.iter_mut().enumerate() {
            let h = s.next().transpose()?;
            if let Some(c) = &h {
                heap.push(Reverse((c.key(), i)));
            }
            heads.push(h);
        }
        let mut state = CorrelationState::new(engine, Limits::default());
        // Recent events: (reference, input), references consecutive from `base`.
        let mut recent: VecDeque<CorrInput> = VecDeque::new();
        let mut recent_bytes = 0usize;
        let mut base = 0u64;
        let mut next_ref = 0u64;
        while let Some(Reverse((_, i))) = heap.pop() {
            let Some(c) = heads[i].take() else {
                continue;
            };
            if let Some(n) = sources[i].next().transpose()? {
                heap.push(Reverse((n.key(), i)));
                heads[i] = Some(n);
            }
            let Some(rule) = engine.rules().get(c.rule as usize) else {
                continue;
            };
            let finding = Finding {
                rule,
                rule_index: c.rule as usize,
                selections: Vec::new(),
                silent: true,
                time_ms: c.time,
                fields: c
                    .fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.clone()))
                    .collect(),
            };
            let fired = state.feed(&finding, next_ref);
            drop(finding);
            recent_bytes += c.bytes();
            recent.push_back(c);
            next_ref += 1;
            while recent_bytes > window && recent.len() > 1 {
                if let Some(old) = recent.pop_front() {
                    recent_bytes -= old.bytes();
                    base += 1;
                }
            }
            for cf in fired {
                if cf.silent {
                    continue;
                }
                let events: Vec<EventRef> = cf
                    .events
                    .iter()
                    .filter_map(|r| {
                        let c = recent.get(usize::try_from(r.checked_sub(base)?).ok()?)?;
                        let f = files.get(c.file as usize)?;
                        Some(EventRef {
                            path: f.path.clone(),
                            record: c.record,
                            time_ms: c.time,
                            event: Arc::new(serde_json::from_str(&c.event).ok()?),
                        })
                    })
                    .collect();
                emit(Detection {
                    rule: cf.rule,
                    rule_index: cf.rule_index,
                    time_ms: Some(cf.last_ms),
                    correlation: Some(Correlated {
                        group: cf.group.clone(),
                        value: cf.value,
                        first_ms: cf.first_ms,
                        last_ms: cf.last_ms,
                        event_count: cf.events.len(),
                    }),
                    events,
                })?;
            }
        }
        Ok(())
    }
}

impl Drop for CorrBuffer {
    fn drop(&mut self) {
        for p in &self.runs {
            let _ = std::fs::remove_file(p);
        }
    }
}
