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
use crate::discover::InputFile;
use crate::sort::{ExternalSort, Sortable};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use vigil_sigma::{CorrelationFinding, CorrelationState, Engine, Finding, Limits};

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

/// The buffer of base findings, spilled to sorted runs past its budget.
pub(crate) type CorrBuffer = ExternalSort<CorrInput>;

impl Sortable for CorrInput {
    type Key = (Option<i64>, u32, u64, u32);
    fn key(&self) -> Self::Key {
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

/// Merges the base findings in time order and feeds them to the correlations; each finding
/// goes to `emit`. `window` bounds the bytes of recent events kept for the findings.
pub(crate) fn correlate<'e>(
    buffer: &mut CorrBuffer,
    engine: &'e Engine,
    files: &[InputFile],
    window: usize,
    emit: &mut dyn FnMut(Detection<'e>) -> io::Result<()>,
) -> io::Result<()> {
    let merged = buffer.sorted()?;
    let mut state = CorrelationState::new(engine, Limits::default());
    // Recent events: (reference, input), references consecutive from `base`.
    let mut recent: VecDeque<CorrInput> = VecDeque::new();
    let mut recent_bytes = 0usize;
    let mut base = 0u64;
    let mut next_ref = 0u64;
    for c in merged {
        let c = c?;
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
        let fired = state.feed(engine, &finding, next_ref);
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
        report(fired, &recent, base, files, emit)?;
    }
    // End of input: windows still open (conditions judged when they close) close now.
    report(state.finish(engine), &recent, base, files, emit)?;
    Ok(())
}

/// Emits the correlations that fired (silent ones only feed others); their events are
/// taken from `recent`, whose first element has reference `base`.
fn report<'e>(
    fired: Vec<CorrelationFinding<'e>>,
    recent: &VecDeque<CorrInput>,
    base: u64,
    files: &[InputFile],
    emit: &mut dyn FnMut(Detection<'e>) -> io::Result<()>,
) -> io::Result<()> {
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
            rendered: None,
        })?;
    }
    Ok(())
}
