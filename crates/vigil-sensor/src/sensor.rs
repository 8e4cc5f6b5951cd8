//! Loading the eBPF programs, attaching them, and reading the ring buffer.

use crate::abi::{self, DecodeError, Record};
use crate::config::{ConfigError, SensorConfig};
use crate::error::SensorError;
use crate::ocsf::ids::event_log_activity;
use crate::ocsf::Converter;
use crate::stats::{Stats, StatsReport};
use libbpf_rs::{
    Link, MapCore, MapFlags, Object, ObjectBuilder, PrintLevel, RingBuffer, RingBufferBuilder,
};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vigil_event::OcsfEvent;

static SENSOR_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vigil.bpf.o"));
static PROBE_FENTRY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe_fentry.bpf.o"));
static PROBE_LSM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe_lsm.bpf.o"));

fn bpf_err(what: impl Into<String>) -> impl FnOnce(libbpf_rs::Error) -> SensorError {
    let what = what.into();
    move |source| SensorError::Bpf { what, source }
}

/// Optional attach types, probed at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// fentry/fexit programs load.
    pub fentry: bool,
    /// BPF-LSM programs load (needs `lsm=...,bpf` on the kernel command line).
    pub lsm: bool,
}

fn libbpf_log(level: PrintLevel, msg: String) {
    let msg = msg.trim_end();
    match level {
        PrintLevel::Warn => tracing::debug!(target: "libbpf", "{msg}"),
        PrintLevel::Info => tracing::trace!(target: "libbpf", "{msg}"),
        PrintLevel::Debug => tracing::trace!(target: "libbpf", "{msg}"),
    }
}

fn probe(obj: &[u8]) -> bool {
    ObjectBuilder::default()
        .open_memory(obj)
        .and_then(|o| o.load())
        .is_ok()
}

/// The running sensor.
pub struct Sensor {
    ring: RingBuffer<'static>,
    queue: Rc<RefCell<VecDeque<Result<Record, DecodeError>>>>,
    _links: Vec<Link>,
    object: Object,
    converter: Converter,
    features: Features,
    stats: Stats,
    config: SensorConfig,
    last_loss_check: Instant,
    lost_reported: u64,
    report: StatsReport,
    /// Whether the last drain handed over an exec: more may follow within the exec
    /// wake-up gap, so the next wait is that short.
    execs_flowing: bool,
    /// Where the reader notes that it was awake (`vigil_cfg`'s `last_wake_ns`).
    awake: AwakeNote,
}

/// The kernel side's `struct vigil_config`, with the reader last awake at `last_wake_ns`.
fn config_value(config: &SensorConfig, last_wake_ns: u64) -> [u8; 24] {
    let mut cfg = [0u8; 24];
    cfg[..4].copy_from_slice(&std::process::id().to_ne_bytes());
    let gap = u64::from(config.exec_wakeup_us) * 1000;
    cfg[8..16].copy_from_slice(&gap.to_ne_bytes());
    cfg[16..].copy_from_slice(&last_wake_ns.to_ne_bytes());
    cfg
}

/// The offset of `last_wake_ns` in `struct vigil_config`.
const LAST_WAKE_OFFSET: usize = 16;

/// How the reader tells the kernel side when it was last awake: a store into the
/// memory-mapped `vigil_cfg` map (no syscall per wake-up), else, where the mapping
/// failed, a map update of the whole value.
enum AwakeNote {
    /// The map's value, mapped shared and writable (one page).
    Mapped(std::ptr::NonNull<libc::c_void>, usize),
    /// A handle on the map, for updates.
    Update(libbpf_rs::MapHandle, [u8; 24]),
}

impl std::fmt::Debug for AwakeNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AwakeNote::Mapped(..) => "AwakeNote::Mapped",
            AwakeNote::Update(..) => "AwakeNote::Update",
        })
    }
}

impl AwakeNote {
    /// Maps `map` (an array of one `struct vigil_config`, created mmapable), or keeps a
    /// handle on it for updates if the kernel refuses the mapping.
    #[allow(
        unsafe_code,
        reason = "mmap(2) of a BPF array map: the way to write it without a syscall"
    )]
    fn new(map: &libbpf_rs::Map<'_>, value: [u8; 24]) -> Result<AwakeNote, SensorError> {
        use std::os::fd::{AsFd, AsRawFd};
        let len = 4096usize;
        // SAFETY: mmap(2) of the map's descriptor, shared, one page from offset 0 (an
        // mmapable array's values start there, the whole map fitting in the page); the
        // result is checked before use and unmapped on drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr != libc::MAP_FAILED {
            if let Some(p) = std::ptr::NonNull::new(ptr) {
                return Ok(AwakeNote::Mapped(p, len));
            }
        }
        tracing::debug!(
            "cannot map vigil_cfg ({}): the reader's wake-ups update it by syscall",
            std::io::Error::last_os_error()
        );
        let handle = libbpf_rs::MapHandle::try_from(map).map_err(bpf_err("open vigil_cfg"))?;
        Ok(AwakeNote::Update(handle, value))
    }

    /// Notes that the reader is awake at `now_ns` (ns since boot).
    #[allow(
        unsafe_code,
        reason = "a store into the mapped BPF map, shared with the kernel side"
    )]
    fn note(&mut self, now_ns: u64) {
        match self {
            AwakeNote::Mapped(p, _) => {
                // The kernel side reads and writes this field with plain 8-byte
                // accesses, so an atomic store is what both can share.
                // SAFETY: the mapping is live (unmapped only on drop), page-aligned and a
                // page long at least: the 8 bytes at LAST_WAKE_OFFSET are in it, aligned.
                let field = unsafe {
                    &*p.as_ptr()
                        .cast::<u8>()
                        .add(LAST_WAKE_OFFSET)
                        .cast::<std::sync::atomic::AtomicU64>()
                };
                field.store(now_ns, Ordering::Relaxed);
            }
            AwakeNote::Update(map, value) => {
                value[LAST_WAKE_OFFSET..].copy_from_slice(&now_ns.to_ne_bytes());
                // A failed update only costs an early wake-up.
                let _ = map.update(&0u32.to_ne_bytes(), &value[..], MapFlags::ANY);
            }
        }
    }
}

impl Drop for AwakeNote {
    #[allow(
        unsafe_code,
        reason = "munmap(2) of the mapping made in AwakeNote::new"
    )]
    fn drop(&mut self) {
        if let AwakeNote::Mapped(p, len) = self {
            // SAFETY: the pointer and length are those mmap(2) returned, and nothing
            // refers to the mapping after this.
            unsafe {
                libc::munmap(p.as_ptr(), *len);
            }
        }
    }
}

impl std::fmt::Debug for Sensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sensor")
            .field("features", &self.features)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Sensor {
    /// Loads and attaches the eBPF programs and seeds the process table.
    pub fn start(config: SensorConfig) -> Result<Sensor, SensorError> {
        config.validate()?;
        let uid = crate::proc::euid();
        if uid != 0 {
            return Err(SensorError::NotRoot(uid));
        }
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            return Err(SensorError::NoBtf);
        }
        libbpf_rs::set_print(Some((PrintLevel::Debug, libbpf_log)));
        let features = Features {
            fentry: probe(PROBE_FENTRY),
            lsm: probe(PROBE_LSM),
        };
        tracing::info!(
            fentry = features.fentry,
            bpf_lsm = features.lsm,
            "optional eBPF attach types (base: tp_btf tracepoints)"
        );

        let mut open = ObjectBuilder::default()
            .open_memory(SENSOR_OBJ)
            .map_err(bpf_err("open the sensor object"))?;
        for mut map in open.maps_mut() {
            if map.name() == "vigil_events" {
                map.set_max_entries(config.ring_buffer_mib * 1024 * 1024)
                    .map_err(bpf_err("size the ring buffer"))?;
            }
        }
        let object = open.load().map_err(bpf_err("load the sensor programs"))?;

        let find = |name: &str| object.maps().find(|m| m.name() == name);
        let cfg_map = find("vigil_cfg").ok_or_else(|| missing_map("vigil_cfg"))?;
        let cfg = config_value(&config, 0);
        cfg_map
            .update(&0u32.to_ne_bytes(), &cfg, MapFlags::ANY)
            .map_err(bpf_err("configure the sensor"))?;
        let awake = AwakeNote::new(&cfg_map, cfg)?;
        let watch =
            crate::watch::WatchList::parse(&config.watched_reads).map_err(ConfigError::from)?;
        find("vigil_watch")
            .ok_or_else(|| missing_map("vigil_watch"))?
            .update(&0u32.to_ne_bytes(), &watch.kernel_bytes(), MapFlags::ANY)
            .map_err(bpf_err("load the watch list"))?;
        let comm_map = find("vigil_comm_filter").ok_or_else(|| missing_map("vigil_comm_filter"))?;
        for comm in &config.exclude_comms {
            let mut key = [0u8; 16];
            key[..comm.len()].copy_from_slice(comm.as_bytes());
            comm_map
                .update(&key, &[1u8], MapFlags::ANY)
                .map_err(bpf_err(format!("exclude comm `{comm}`")))?;
        }

        let mut links = Vec::new();
        for prog in object.progs_mut() {
            let name = prog.name().to_string_lossy().into_owned();
            links.push(prog.attach().map_err(bpf_err(format!("attach {name}")))?);
            tracing::debug!(program = %name, section = %prog.section().to_string_lossy(), "attached");
        }

        let queue: Rc<RefCell<VecDeque<Result<Record, DecodeError>>>> = Rc::default();
        let sink = Rc::clone(&queue);
        let events = find("vigil_events").ok_or_else(|| missing_map("vigil_events"))?;
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&events, move |data: &[u8]| {
                sink.borrow_mut().push_back(abi::decode(data));
                0
            })
            .map_err(bpf_err("open the ring buffer"))?;
        let ring = builder.build().map_err(bpf_err("open the ring buffer"))?;

        let converter = Converter::for_this_host(config.clone());
        tracing::info!(
            programs = links.len(),
            ring_buffer_mib = config.ring_buffer_mib,
            processes = converter.table().len(),
            "eBPF sensor running"
        );
        Ok(Sensor {
            ring,
            queue,
            _links: links,
            object,
            converter,
            features,
            stats: Stats {
                lost_by_kind: vec![0; abi::KIND_MAX as usize],
                ..Stats::default()
            },
            report: StatsReport::every(config.stats_interval_secs),
            config,
            last_loss_check: Instant::now(),
            lost_reported: 0,
            execs_flowing: false,
            awake,
        })
    }

    /// Optional attach types this kernel accepts.
    pub fn features(&self) -> Features {
        self.features
    }

    /// Counters so far (kernel loss counters as of the last check).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Processes in the sensor's process table.
    pub fn processes(&self) -> usize {
        self.converter.table().len()
    }

    /// The `Start` event that opens an agent's output.
    pub fn start_event(&self) -> OcsfEvent {
        let f = self.features;
        self.converter.sensor_event(
            event_log_activity::START,
            "ebpf",
            format!(
                "eBPF sensor started: tp_btf tracepoints; fentry {}, BPF-LSM {}",
                if f.fentry { "available" } else { "unavailable" },
                if f.lsm { "available" } else { "unavailable" }
            ),
            None,
        )
    }

    /// The `Stop` event that closes an agent's output.
    pub fn stop_event(&self) -> OcsfEvent {
        let s = &self.stats;
        self.converter.sensor_event(
            event_log_activity::STOP,
            "ebpf",
            format!(
                "eBPF sensor stopped: {} records received, {} lost, {} malformed",
                s.received,
                s.lost(),
                s.malformed
            ),
            Some(s.lost()),
        )
    }

    /// Waits up to `timeout` for records and hands each resulting event to `sink`.
    /// Returns the number of events emitted.
    pub fn poll(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(OcsfEvent),
    ) -> Result<usize, SensorError> {
        self.poll_timed(timeout, &mut |ev, _| sink(ev))
    }

    /// [`Sensor::poll`], handing each event with the kernel's time of the record it
    /// came from (ns since boot, `CLOCK_BOOTTIME`; `None` for the sensor's own events):
    /// what the agent measures its latency from.
    pub fn poll_timed(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(OcsfEvent, Option<u64>),
    ) -> Result<usize, SensorError> {
        let gap = Duration::from_micros(u64::from(self.config.exec_wakeup_us));
        let timeout = if self.execs_flowing && !gap.is_zero() {
            timeout.min(gap)
        } else {
            if !gap.is_zero() {
                // A long wait: the next exec must wake us whenever it comes. The last
                // note (ours, or the kernel's at a forced wake-up) may be fresh: a
                // wake-up for an exec that the last drain had already taken finds
                // nothing and ends the short waits. Left as it is, an exec within the
                // gap after it would wait for the timeout (about 1% of findings did, in
                // bursts of execs, at 25 ms). Every time: the kernel side rewrites it.
                self.awake.note(0);
            }
            timeout
        };
        match self.ring.poll(timeout) {
            Ok(()) => {}
            // A signal (the agent's stop request) interrupted the wait: not an error.
            Err(e) if e.kind() == libbpf_rs::ErrorKind::Interrupted => {}
            Err(e) => return Err(bpf_err("read the ring buffer")(e)),
        }
        let n = self.drain_timed(sink)?;
        if !gap.is_zero() && self.execs_flowing {
            // Awake now, with execs coming: those within the gap need not wake us (the
            // next wait is that short). Without execs the next wait is long, and the
            // next exec must wake us at once (the note is cleared before that wait).
            self.awake.note(crate::host::boot_ns());
        }
        Ok(n)
    }

    /// Hands every queued record to `sink` without waiting, then checks the loss
    /// counters when due.
    pub fn drain(&mut self, sink: &mut dyn FnMut(OcsfEvent)) -> Result<usize, SensorError> {
        self.drain_timed(&mut |ev, _| sink(ev))
    }

    /// [`Sensor::drain`] with the records' times (see [`Sensor::poll_timed`]).
    pub fn drain_timed(
        &mut self,
        sink: &mut dyn FnMut(OcsfEvent, Option<u64>),
    ) -> Result<usize, SensorError> {
        self.ring
            .consume()
            .map_err(bpf_err("read the ring buffer"))?;
        let mut emitted = 0;
        self.execs_flowing = false;
        loop {
            let next = self.queue.borrow_mut().pop_front();
            let Some(item) = next else { break };
            self.stats.received += 1;
            match item {
                Ok(record) => {
                    self.execs_flowing |= matches!(record, Record::Exec(_));
                    let t = record.ktime();
                    emitted += self.converter.convert(record, &mut |ev| sink(ev, Some(t)));
                }
                Err(e) => self
                    .converter
                    .note_malformed(&format_args!("ring buffer record: {e}")),
            }
        }
        self.stats.malformed = self.converter.malformed();
        let sink = &mut |ev| sink(ev, None);
        emitted += self.converter.expire_forks(false, sink);
        if self.last_loss_check.elapsed() >= Duration::from_millis(self.config.loss_check_ms) {
            emitted += self.check_loss(sink)?;
            self.converter.sweep();
        }
        if let Some(lost_since) = self.report.due(&self.stats) {
            sink(self.converter.stats_event("ebpf", &self.stats, lost_since));
            emitted += 1;
        }
        self.stats.emitted += emitted as u64;
        Ok(emitted)
    }

    /// Reads the kernel's per-CPU loss counters now; emits a `Drop` event for records
    /// lost since the last report.
    pub fn check_loss(&mut self, sink: &mut dyn FnMut(OcsfEvent)) -> Result<usize, SensorError> {
        self.last_loss_check = Instant::now();
        let drops = self
            .object
            .maps()
            .find(|m| m.name() == "vigil_drops")
            .ok_or_else(|| missing_map("vigil_drops"))?;
        for kind in 0..abi::KIND_MAX {
            let per_cpu = drops
                .lookup_percpu(&kind.to_ne_bytes(), MapFlags::ANY)
                .map_err(bpf_err("read loss counters"))?
                .unwrap_or_default();
            let mut total = 0u64;
            for v in &per_cpu {
                match v.first_chunk::<8>() {
                    Some(b) => total = total.saturating_add(u64::from_ne_bytes(*b)),
                    None => self.converter.note_malformed(&format_args!(
                        "loss counter of kind {kind}: a per-CPU value of {} bytes, not 8",
                        v.len()
                    )),
                }
            }
            self.stats.lost_by_kind[kind as usize] = total;
        }
        self.stats.malformed = self.converter.malformed();
        let lost = self.stats.lost();
        if lost > self.lost_reported {
            let new = lost - self.lost_reported;
            self.lost_reported = lost;
            tracing::warn!(
                lost = new,
                total = lost,
                "sensor records lost: the ring buffer was full"
            );
            sink(self.converter.sensor_event(
                event_log_activity::OTHER,
                "ebpf",
                format!("{new} sensor records lost (ring buffer full); {lost} in all"),
                Some(new),
            ));
            return Ok(1);
        }
        Ok(0)
    }

    /// Runs until `stop` is set: polls, converts, hands events to `sink`; at the end
    /// drains what is left and checks the loss counters a last time.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        sink: &mut dyn FnMut(OcsfEvent),
    ) -> Result<(), SensorError> {
        while !stop.load(Ordering::Relaxed) {
            self.poll(Duration::from_millis(25), sink)?;
        }
        self.finish(sink)?;
        Ok(())
    }

    /// At stop: hands every queued record to `sink`, reports the forks still held back,
    /// and checks the loss counters a last time.
    pub fn finish(&mut self, sink: &mut dyn FnMut(OcsfEvent)) -> Result<usize, SensorError> {
        let drained = self.drain(sink)?;
        let more = self.converter.expire_forks(true, sink) + self.check_loss(sink)?;
        self.stats.emitted += more as u64;
        Ok(drained + more)
    }
}

fn missing_map(name: &str) -> SensorError {
    SensorError::Bpf {
        what: format!("find map {name} in the sensor object"),
        source: libbpf_rs::Error::from(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            name.to_string(),
        )),
    }
}
