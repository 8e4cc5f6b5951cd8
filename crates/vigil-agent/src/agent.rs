//! The agent's run: the sensor feeding the pipeline until it is told to stop.

use crate::config::AgentConfig;
use crate::content::watch::{Update, Watcher};
use crate::content::{Content, Settings};
use crate::metrics::Metrics;
use crate::pipeline::{DetectStage, Pipeline, Stage, StoryStage};
use crate::respond::RespondStage;
use crate::sink::{JsonlSink, NetSink, OnError, Select, Sink, SinkError, Threaded};
use crate::yara::FileVerdicts;
use serde_json::{json, Map};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_detect::{Detector, Storyline};
use vigil_event::model::{severity, status, EventLogActivity};
use vigil_event::time::now_ms;
use vigil_event::OcsfEvent;
use vigil_sensor::{SensorBackend, SensorError};
use vigil_sigma::Engine;

/// Where the agent writes.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// Every event, findings included (`-`: standard output).
    pub events: PathBuf,
    /// Findings and incidents again, on their own, if given.
    pub findings: Option<PathBuf>,
    /// The configuration file the agent runs with, if any: one of the agent's own
    /// files, never acted on by response.
    pub config: Option<PathBuf>,
    /// Where the latest Statistics counters go for the server's heartbeat, when the
    /// agent is enrolled (`crate::server`).
    pub stats_board: Option<crate::server::StatsBoard>,
    /// The server the agent is enrolled with: its events are shipped there through the
    /// queue on disk (`crate::server::spool`), unless `[server] ship = false`.
    pub server: Option<crate::server::Link>,
}

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The sensor could not start or failed.
    #[error("sensor: {0}")]
    Sensor(#[from] SensorError),
    /// An output could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Output {
        /// The output.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The events output failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A network output could not start.
    #[error(transparent)]
    NetOutput(#[from] vigil_output::StartError),
}

/// What the agent did, for its last log line.
#[derive(Debug, Default)]
pub struct Summary {
    /// Records the sensor received.
    pub received: u64,
    /// Records it lost.
    pub lost: u64,
    /// Counters of the pipeline's stages and sinks.
    pub counters: Vec<(String, u64)>,
}

/// How often stages are told that time passes (finding Updates, correlation windows).
const TICK: Duration = Duration::from_secs(1);
/// How long events other than findings may wait in the output's buffer.
const FLUSH: Duration = Duration::from_millis(25);

/// Runs the sensor and the pipeline (storyline, detection with `engine`) until `stop`
/// is set, then drains and writes everything held.
pub fn run(
    config: AgentConfig,
    engine: Arc<Engine>,
    outputs: &Outputs,
    stop: &AtomicBool,
) -> Result<Summary, AgentError> {
    let content = crate::content::configured(&config, engine, crate::RuleReport::default());
    run_with_metrics(config, content, outputs, stop, None)
}

/// [`run`] with `content` (a bundle's, or the configuration's: [`crate::content`]),
/// serving `metrics` while it runs: every pipeline stage is then timed, and a snapshot
/// is rendered whenever a scrape asks for one. New bundles applied in `content.dir`
/// are checked and swapped in while it runs.
pub fn run_with_metrics(
    config: AgentConfig,
    mut content: Content,
    outputs: &Outputs,
    stop: &AtomicBool,
    metrics: Option<&Metrics>,
) -> Result<Summary, AgentError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    // Each output on a thread of its own: the events output may hold 64 MiB (256 batches)
    // before the pipeline waits for it; the findings file drops and counts past 16 MiB.
    let create = |name, path: &PathBuf, select, on_error, queue| {
        JsonlSink::create(name, path, select, on_error)
            .and_then(|s| Threaded::new(s, on_error, queue))
            .map_err(|source| AgentError::Output {
                path: path.clone(),
                source,
            })
    };
    sinks.push(Box::new(create(
        "events",
        &outputs.events,
        Select::All,
        OnError::Fail,
        256,
    )?));
    if let Some(path) = &outputs.findings {
        sinks.push(Box::new(create(
            "findings",
            path,
            Select::Findings,
            OnError::Count,
            64,
        )?));
    }
    // The telemetry store: its own writer and compactor threads; never waited for.
    if let Some(store) = config.store.store_config() {
        let dir = store.dir.clone();
        let sink = crate::sink::StoreSink::open(store).map_err(|p| AgentError::Output {
            path: dir,
            source: std::io::Error::other(p.to_string()),
        })?;
        sinks.push(Box::new(sink));
    }
    // Shipping to the server: the queue on disk, one sink per stream, and its sender.
    let mut shipper = None;
    if let (Some(link), true) = (&outputs.server, config.server.ship) {
        use crate::server::{ship, spool};
        let dir = config
            .respond
            .state_dir
            .join(crate::server::DIR)
            .join("spool");
        let mut cfg = spool::SpoolConfig::new(dir.clone());
        cfg.max_bytes = config.server.queue_mib.max(1) << 20;
        cfg.segment_bytes = (cfg.max_bytes / 16).clamp(64 << 10, 8 << 20);
        let output_err = |what: String| AgentError::Output {
            path: dir.clone(),
            source: std::io::Error::other(what),
        };
        let spool::Opened {
            shared,
            writers,
            readers,
            problems,
        } = spool::open(&cfg, now_ms()).map_err(|p| output_err(p.to_string()))?;
        for p in &problems {
            tracing::warn!("server queue recovery: {p}");
        }
        for w in writers {
            let sink = Threaded::new(ship::ShipSink::new(w), OnError::Count, 64)
                .map_err(|e| output_err(e.to_string()))?;
            sinks.push(Box::new(sink));
        }
        tracing::info!(
            server = %link.info.url,
            queue = %dir.display(),
            backlog = shared.backlog(),
            "shipping to the server"
        );
        shipper = Some(
            ship::Shipper::spawn(link.clone(), readers, shared)
                .map_err(|e| output_err(e.to_string()))?,
        );
    }
    // The network outputs, each behind its bounded buffer on a thread of its own.
    for out in vigil_output::start(&config.output.network())? {
        sinks.push(Box::new(NetSink(out)));
    }
    let mut own_paths: Vec<PathBuf> = std::env::current_exe().into_iter().collect();
    own_paths.extend(outputs.config.iter().cloned());
    let mut responder = vigil_respond::Responder::new(config.respond.clone(), own_paths.clone());
    // The permission guard's helper is the agent's own binary (`vigil perm-watchdog`).
    if let Some(exe) = own_paths.first() {
        responder.set_helper(exe.clone());
    }
    if !config.intel.paths.is_empty() || content.dir.is_some() {
        content.intel_report.log();
    }
    let level = config.intel.level.severity_id();
    let mut detector = Detector::new(Arc::clone(&content.engine), config.detect.clone(), "agent");
    if !content.intel.is_empty() {
        detector = detector.with_intel(Arc::clone(&content.intel), level);
    }
    let mut detect = DetectStage::new(detector).follow_content(level, config.yara.clone());
    let files = match content.yara.take() {
        Some(rules) => FileVerdicts::start(rules, config.yara.clone())
            .map_err(|e| tracing::error!("files are not scanned: {e}"))
            .ok(),
        None if content.dir.is_none() => crate::yara::load(&config.yara),
        None => None,
    };
    if let Some(files) = files {
        detect = detect.with_files(files);
    }
    let mut respond = RespondStage::new(responder);
    // Enrolled: the actions a person asks for at the server, collected on a thread of
    // its own and carried out here.
    let collector_stop = Arc::new(AtomicBool::new(false));
    if let Some(link) = &outputs.server {
        let (tx, rx) = crate::server::actions::channel();
        crate::server::actions::spawn(link.clone(), tx, Arc::clone(&collector_stop)).map_err(
            |source| AgentError::Output {
                path: config.respond.state_dir.join(crate::server::DIR),
                source,
            },
        )?;
        respond = respond.with_remote(rx);
    }
    respond.set_content_policy(content.policy.as_deref());
    let stages: Vec<Box<dyn Stage + '_>> = vec![
        Box::new(StoryStage(Storyline::new(config.story.clone()))),
        Box::new(detect),
        Box::new(respond),
    ];
    let mut version = content.version.clone();
    let mut facts = metrics.map(|m| m.facts.clone());
    let watcher = match config.content.check_secs {
        0 => None,
        secs => Watcher::start(
            config.content.dir.clone(),
            Settings::of(&config),
            content.dir.is_some().then(|| version.clone()),
            Duration::from_secs(secs),
        )
        .map_err(|e| tracing::error!("content updates are not followed: {e}"))
        .ok(),
    };
    drop(content);
    let mut pipeline = Pipeline::new(stages, sinks);
    if metrics.is_some() {
        pipeline.time_stages();
    }
    let stats_every = Duration::from_secs(config.output.stats_interval_secs);
    let mut sensor = SensorBackend::start(config.sensor)?;
    tracing::info!(mode = sensor.mode_name(), "agent running");
    let start = sensor.start_event();
    let device = device_of(&start);
    pipeline.push(start, now_ms())?;
    // Readers see at once that the agent runs, even on a quiet host.
    pipeline.flush()?;
    let mut last_tick = Instant::now();
    let mut last_flush = Instant::now();
    let mut unflushed = false;
    let mut last_stats = Instant::now();
    let mut failed: Option<SinkError> = None;
    // The kernel wakes the reader at each exec, and otherwise only when enough records
    // wait: the poll timeout bounds how long a quiet host's other events wait (25 ms).
    while !stop.load(Ordering::Relaxed) {
        let n = sensor.poll_timed(Duration::from_millis(25), &mut |ev, kernel_ns| {
            if failed.is_none() {
                if let Err(e) = pipeline.push_timed(ev, now_ms(), kernel_ns) {
                    failed = Some(e);
                }
            }
        })?;
        if let Some(e) = failed.take() {
            return Err(e.into());
        }
        if let (Some(m), Some(f)) = (metrics.filter(|m| m.exporter.wanted()), &facts) {
            m.exporter
                .publish(crate::metrics::render(f, &pipeline, &sensor));
        }
        // New content, checked off the event thread: swapped in between two events.
        while let Some(update) = watcher.as_ref().and_then(Watcher::try_next) {
            let ev = match update {
                Update::Ready(mut c) => {
                    pipeline.replace_content(&mut c, now_ms())?;
                    let previous = std::mem::replace(&mut version, c.version.clone());
                    tracing::info!(
                        version = %c.version,
                        previous = %previous,
                        rules = c.rules.loaded,
                        indicators = c.intel.len(),
                        yara_files = c.yara_files,
                        policy_rules = c.policy.as_ref().map_or(0, Vec::len),
                        memory_mib = c.memory_bytes >> 20,
                        "new content runs"
                    );
                    if let Some(f) = &mut facts {
                        f.content_version.clone_from(&version);
                        f.rules_loaded = c.rules.loaded;
                        f.rules_failed = 0;
                    }
                    content_event(&version, Some(&previous), &[], device.clone())
                }
                Update::Refused(r) => {
                    tracing::error!("{r}; content {version} keeps running");
                    let v = r.version.as_deref().unwrap_or("(unknown)");
                    content_event(v, Some(&version), &r.problems, device.clone())
                }
            };
            pipeline.push(ev, now_ms())?;
            // Written within the flush interval even when the sensor is quiet.
            unflushed = true;
        }
        // Verdicts of files scanned off the event thread.
        pipeline.poll(now_ms())?;
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            pipeline.tick(now_ms())?;
            // The heartbeat's counters, as of the last second (`crate::server`).
            if let Some(board) = &outputs.stats_board {
                let mut map = stats_map(&pipeline, &version);
                let s = sensor.stats();
                map.insert("sensor_received".into(), json!(s.received));
                map.insert("sensor_lost".into(), json!(s.lost()));
                if let Ok(mut b) = board.lock() {
                    *b = map;
                }
            }
        }
        if !stats_every.is_zero() && last_stats.elapsed() >= stats_every {
            last_stats = Instant::now();
            let ev = stats_event(&pipeline, &version, device.clone());
            pipeline.push(ev, now_ms())?;
            // Written within the flush interval even when the sensor is quiet.
            unflushed = true;
        }
        // Findings are flushed at once, to the sinks that hold them only; other events
        // at most every 25 ms (a write per exec wake-up would cost more than the
        // matching, and waking every output's thread for each finding delayed the
        // findings' own).
        unflushed |= n > 0;
        if unflushed && last_flush.elapsed() >= FLUSH {
            last_flush = Instant::now();
            unflushed = false;
            pipeline.flush()?;
        } else if pipeline.has_unflushed_findings() {
            pipeline.flush_findings()?;
        }
    }
    sensor.finish(&mut |ev| {
        if failed.is_none() {
            if let Err(e) = pipeline.push(ev, now_ms()) {
                failed = Some(e);
            }
        }
    })?;
    if let Some(e) = failed.take() {
        return Err(e.into());
    }
    pipeline.finish(now_ms())?;
    // The last statistics count every line the outputs wrote or dropped.
    pipeline.sync()?;
    let ev = stats_event(&pipeline, &version, device);
    pipeline.push(ev, now_ms())?;
    pipeline.push(sensor.stop_event(), now_ms())?;
    pipeline.close()?;
    if let Some(shipper) = shipper {
        // A last pass: what the closed queue holds, for a few seconds at most.
        shipper.stop();
    }
    // The collector is not waited for: it may be in a long poll; it ends with the
    // process, and an action it holds unanswered is handed out again by the server.
    collector_stop.store(true, Ordering::Relaxed);
    let s = sensor.stats();
    Ok(Summary {
        received: s.received,
        lost: s.lost(),
        counters: pipeline.counters(),
    })
}

fn device_of(ev: &OcsfEvent) -> Option<vigil_event::model::Shared<vigil_event::model::Device>> {
    match ev {
        OcsfEvent::EventLog(e) => e.device.clone(),
        _ => None,
    }
}

/// A content update (Event Log Activity, activity Other, `Content Update`): `version`
/// runs now (no `problems`), or was refused for `problems` and `running` still runs.
fn content_event(
    version: &str,
    running: Option<&str>,
    problems: &[String],
    device: Option<vigil_event::model::Shared<vigil_event::model::Device>>,
) -> OcsfEvent {
    let mut e = EventLogActivity::new(99, now_ms(), "agent");
    e.activity_name = Some("Content Update".into());
    e.log_name = Some("vigil-agent".into());
    e.log_provider = Some("content".into());
    let mut map = Map::new();
    map.insert("content_version".into(), json!(version));
    if problems.is_empty() {
        e.severity_id = severity::INFORMATIONAL;
        e.status_id = Some(status::SUCCESS);
        e.status_detail = Some(format!(
            "content {version} runs (was {})",
            running.unwrap_or("none")
        ));
        map.insert("previous_version".into(), json!(running));
    } else {
        e.severity_id = severity::HIGH;
        e.status_id = Some(status::FAILURE);
        e.status_detail = Some(format!(
            "content {version} refused, {} keeps running: {}",
            running.unwrap_or("none"),
            problems.join("; ")
        ));
        map.insert("running_version".into(), json!(running));
        map.insert("problems".into(), json!(problems));
    }
    e.unmapped = Some(map);
    e.device = device;
    e.into()
}

/// The counters of the agent's stages and outputs, and the content version it runs.
fn stats_map(pipeline: &Pipeline<'_>, version: &str) -> Map<String, serde_json::Value> {
    let mut map: Map<String, serde_json::Value> = pipeline
        .counters()
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    map.insert("content_version".into(), json!(version));
    map
}

/// The agent's `Statistics` event (Event Log Activity, activity Other): the counters
/// of its stages and outputs in `unmapped`, and the content version it runs.
fn stats_event(
    pipeline: &Pipeline<'_>,
    version: &str,
    device: Option<vigil_event::model::Shared<vigil_event::model::Device>>,
) -> OcsfEvent {
    let counters = pipeline.counters();
    let mut e = EventLogActivity::new(99, now_ms(), "agent");
    e.activity_name = Some("Statistics".into());
    e.log_name = Some("vigil-agent".into());
    e.log_provider = Some("pipeline".into());
    let dropped: u64 = counters
        .iter()
        .filter(|(k, _)| k.ends_with("_dropped"))
        .map(|(_, v)| v)
        .sum();
    e.severity_id = if dropped > 0 {
        severity::MEDIUM
    } else {
        severity::INFORMATIONAL
    };
    e.status_id = Some(status::SUCCESS);
    e.status_detail = Some(
        counters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    e.unmapped = Some(stats_map(pipeline, version));
    e.device = device;
    e.into()
}
