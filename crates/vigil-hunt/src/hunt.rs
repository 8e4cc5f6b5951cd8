//! The hunt itself: files read into units of work, units matched, findings collected, and
//! the correlations run over event time at the end.
//!
//! With one matching thread ([`HuntConfig::threads`] = 1) the calling thread does it all,
//! unit after unit, with no thread beside it: nothing is queued or handed over, which on
//! one core would only cost switches between threads. With more, reader threads cut files
//! into units, workers match them, and the calling thread collects the findings and writes
//! them.

use crate::collect::{Collector, PROGRESS_TICK};
use crate::config::HuntConfig;
use crate::discover::InputFile;
use crate::error::{HuntError, InputError};
use crate::input::{self, Pool, Reading, Work};
use crate::matcher::{Batch, Matcher};
use crate::report::{Progress, Report, Sink};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Mutex;
use std::time::Instant;
use vigil_sigma::Engine;

/// Runs a hunt with `engine` over `files`, handing findings to `sink` and progress to
/// `progress` (about four times a second). Input problems are in the report; only a
/// failing sink or a crashed worker is an error.
pub fn hunt(
    engine: &Engine,
    files: &[InputFile],
    config: &HuntConfig,
    sink: &mut dyn Sink,
    mut progress: Option<&mut dyn FnMut(&Progress)>,
) -> Result<Report, HuntError> {
    let start = Instant::now();
    let matcher = Matcher::new(engine, files, config);
    let mut collector = Collector::new(engine, files, config, start);
    let pool = Pool::default();
    let how = Reading {
        pool: &pool,
        max_record: config.max_record,
    };
    if config.threads <= 1 {
        on_this_thread(&matcher, files, &how, &mut collector, sink, &mut progress)?;
    } else {
        on_threads(
            &matcher,
            files,
            config.threads,
            &how,
            &mut collector,
            sink,
            &mut progress,
        )?;
    }
    collector.correlate(sink)?;
    let mut report = collector.report();
    report.elapsed = start.elapsed();
    sink.finish(&report)?;
    Ok(report)
}

/// Reads, matches and collects every unit on the calling thread, in file order.
fn on_this_thread<'e>(
    matcher: &Matcher<'e>,
    files: &[InputFile],
    how: &Reading<'_>,
    collector: &mut Collector<'e, '_>,
    sink: &mut dyn Sink,
    progress: &mut Option<&mut dyn FnMut(&Progress)>,
) -> Result<(), HuntError> {
    let mut worker = matcher.worker();
    let collector = RefCell::new(collector);
    let mut failed = None;
    for (i, file) in files.iter().enumerate() {
        let id = i as u32;
        input::read_file(
            id,
            file,
            how,
            &mut |unit| {
                worker.unit(matcher, unit, how.pool);
                let mut c = collector.borrow_mut();
                match c.batch(std::mem::take(&mut worker.out), sink) {
                    Ok(()) => {
                        c.progress(progress);
                        true
                    }
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            },
            &mut |e| collector.borrow_mut().error(id, e),
        );
        if let Some(e) = failed {
            return Err(e);
        }
        collector.borrow_mut().file_done();
    }
    Ok(())
}

/// What workers and readers tell the collecting thread.
enum Msg<'e> {
    /// What a worker made of a unit.
    Batch(Batch<'e>),
    /// A reader's problem with a file.
    Error(u32, InputError),
    /// A reader finished a file.
    FileDone,
}

/// Readers and workers on threads of their own; the calling thread collects.
fn on_threads<'e>(
    matcher: &Matcher<'e>,
    files: &[InputFile],
    workers: usize,
    how: &Reading<'_>,
    collector: &mut Collector<'e, '_>,
    sink: &mut dyn Sink,
    progress: &mut Option<&mut dyn FnMut(&Progress)>,
) -> Result<(), HuntError> {
    let readers = workers.div_ceil(2).min(files.len().max(1));
    let stop = AtomicBool::new(false);
    let next_file = AtomicUsize::new(0);
    let (work_tx, work_rx) = sync_channel::<Work>(workers * 8);
    let work_rx = Mutex::new(work_rx);
    let (msg_tx, msg_rx) = sync_channel::<Msg<'e>>(workers * 2);
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for _ in 0..readers {
            let work_tx = work_tx.clone();
            let msg_tx = msg_tx.clone();
            let (stop, next_file) = (&stop, &next_file);
            handles.push(s.spawn(move || reader(files, next_file, stop, how, &work_tx, &msg_tx)));
        }
        drop(work_tx);
        for _ in 0..workers {
            let msg_tx = msg_tx.clone();
            let (work_rx, stop) = (&work_rx, &stop);
            handles.push(s.spawn(move || worker(matcher, how.pool, work_rx, &msg_tx, stop)));
        }
        drop(msg_tx);
        let r = collect(collector, &msg_rx, sink, progress);
        if r.is_err() {
            stop.store(true, Ordering::Relaxed);
            // Let blocked threads finish.
            while msg_rx.recv().is_ok() {}
        }
        for h in handles {
            if let Err(p) = h.join() {
                let what = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(HuntError::Worker(what));
            }
        }
        r
    })
}

fn reader(
    files: &[InputFile],
    next: &AtomicUsize,
    stop: &AtomicBool,
    how: &Reading<'_>,
    work: &SyncSender<Work>,
    msgs: &SyncSender<Msg<'_>>,
) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(file) = files.get(i) else {
            return;
        };
        let id = i as u32;
        input::read_file(
            id,
            file,
            how,
            &mut |w| !stop.load(Ordering::Relaxed) && work.send(w).is_ok(),
            &mut |e| {
                let _ = msgs.send(Msg::Error(id, e));
            },
        );
        let _ = msgs.send(Msg::FileDone);
    }
}

fn worker<'e>(
    matcher: &Matcher<'e>,
    pool: &Pool,
    work: &Mutex<Receiver<Work>>,
    msgs: &SyncSender<Msg<'e>>,
    stop: &AtomicBool,
) {
    let mut w = matcher.worker();
    loop {
        let unit = {
            // Poisoning is no reason to stop: the receiver itself is consistent.
            let rx = work
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            rx.recv()
        };
        let Ok(unit) = unit else {
            return;
        };
        if stop.load(Ordering::Relaxed) {
            continue;
        }
        w.unit(matcher, unit, pool);
        if msgs.send(Msg::Batch(std::mem::take(&mut w.out))).is_err() {
            return;
        }
    }
}

/// Collects what readers and workers send until they are all done.
fn collect<'e>(
    collector: &mut Collector<'e, '_>,
    rx: &Receiver<Msg<'e>>,
    sink: &mut dyn Sink,
    progress: &mut Option<&mut dyn FnMut(&Progress)>,
) -> Result<(), HuntError> {
    loop {
        match rx.recv_timeout(PROGRESS_TICK) {
            Ok(Msg::FileDone) => collector.file_done(),
            Ok(Msg::Error(file, e)) => collector.error(file, e),
            Ok(Msg::Batch(b)) => collector.batch(b, sink)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        collector.progress(progress);
    }
}
