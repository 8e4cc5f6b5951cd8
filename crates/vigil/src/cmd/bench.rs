//! `vigil bench` (hidden): inputs for the whole-process benchmarks (scripts/bench-query).

use crate::cmd::bench_gen::{story, Host, Rng};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `vigil bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Writes realistic history (many hosts' sessions with their files, connections and
    /// DNS lookups, in the sensor's event shapes) into a store through the store's own
    /// writer, as the agent writes it; with --jsonl, the same events as JSON lines too.
    GenStore(GenStoreArgs),
    /// Simulated agents (enrolled with a token, one mutual TLS connection each) shipping
    /// realistic events to a server as fast as it takes them or at --rate: what it
    /// acknowledged per second and how fast it answered.
    Ship(crate::cmd::bench_ship::ShipArgs),
}

/// `vigil bench gen-store` arguments.
#[derive(Debug, Args)]
pub struct GenStoreArgs {
    /// The store directory (created; must not hold a lake already).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Also (or only, without --out) write the events as JSON lines to FILE.
    #[arg(long, value_name = "FILE")]
    jsonl: Option<PathBuf>,
    /// About this many events (whole stories: a few more).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Hosts in the fleet.
    #[arg(long, default_value_t = 500)]
    hosts: usize,
    /// Days of history, ending at --end.
    #[arg(long, default_value_t = 7)]
    days: u64,
    /// The end of the history (epoch ms; default 2026-12-01T00:00:00Z, so runs compare).
    #[arg(long, default_value_t = 1_796_083_200_000)]
    end: i64,
    /// The random seed (the same seed gives the same events).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs a `vigil bench` subcommand.
pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::GenStore(a) => gen_store(&a),
        BenchCommand::Ship(a) => crate::cmd::bench_ship::ship(&a),
    }
}

/// Lines handed to the store per batch.
const BATCH_BYTES: usize = 4 << 20;
/// Batches handed over between two waits for durability (so the store's queue, which
/// drops rather than block the agent, never fills here).
const BATCHES_PER_SYNC: u32 = 16;

fn gen_store(a: &GenStoreArgs) -> Result<ExitCode> {
    if a.out.is_none() && a.jsonl.is_none() {
        bail!("give --out DIR (a store) and/or --jsonl FILE");
    }
    if a.hosts == 0 || a.days == 0 {
        bail!("--hosts and --days must be at least 1");
    }
    let started = std::time::Instant::now();
    let mut store = match &a.out {
        Some(dir) => {
            if dir.join("lake").is_dir() {
                bail!("{}: already holds a store's lake", dir.display());
            }
            let (store, problems) =
                vigil_store::Store::open(store_config(dir), vigil_event::time::now_ms())
                    .with_context(|| format!("cannot open the store {}", dir.display()))?;
            for p in problems {
                tracing::warn!("{p}");
            }
            Some(store)
        }
        None => None,
    };
    let mut jsonl = match &a.jsonl {
        Some(p) => Some(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => None,
    };
    let mut rng = Rng::new(a.seed);
    let span = a.days as i64 * 86_400_000;
    let start = a.end - span;
    let mut hosts: Vec<Host> = (0..a.hosts)
        .map(|i| Host::new(i, start - 86_400_000))
        .collect();
    // Stories start evenly over the span (a story is about 25 events); each is a few
    // minutes long, so the events come nearly in time order, as an agent writes them.
    let stories = (a.events / 25).max(1);
    let step = (span / stories as i64).max(1);
    let mut buf = Vec::with_capacity(BATCH_BYTES + (64 << 10));
    let (mut in_buf, mut total, mut batches) = (0u64, 0u64, 0u32);
    let mut failed: Option<anyhow::Error> = None;
    let mut t = start;
    while total < a.events && failed.is_none() {
        let h = rng.below(a.hosts as u64) as usize;
        let n = story(&mut rng, &mut hosts[h], t, start - 86_400_000, &mut |e| {
            let at = buf.len();
            if let Err(err) = serde_json::to_writer(&mut buf, &e) {
                failed.get_or_insert(err.into());
            }
            buf.push(b'\n');
            if let Some(w) = &mut jsonl {
                if let Err(err) = w.write_all(&buf[at..]) {
                    failed.get_or_insert(err.into());
                }
            }
        });
        total += n;
        in_buf += n;
        t += step;
        if buf.len() >= BATCH_BYTES {
            if let Some(s) = &store {
                let lines = std::mem::replace(&mut buf, s.buffer());
                if !s.append(lines, in_buf) {
                    bail!("the store dropped a batch (its queue was full or it failed)");
                }
                batches += 1;
                if batches % BATCHES_PER_SYNC == 0 {
                    s.sync();
                }
            }
            buf.clear();
            in_buf = 0;
        }
    }
    if let Some(e) = failed {
        return Err(e.context("cannot write the generated events"));
    }
    if let Some(s) = &mut store {
        if in_buf > 0 && !s.append(std::mem::take(&mut buf), in_buf) {
            bail!("the store dropped a batch (its queue was full or it failed)");
        }
        s.sync();
        s.close();
        let st = s.stats();
        if st.dropped > 0 || st.errors > 0 {
            bail!(
                "the store lost events: {} dropped, {} errors",
                st.dropped,
                st.errors
            );
        }
        // The segment still open at close is compacted when the store is next opened (as
        // the agent's would be at its restart): opened and closed once more, so the whole
        // history is in Parquet.
        let dir = a.out.as_ref().context("a store without a directory")?;
        let cfg = store_config(dir);
        let (mut again, _) = vigil_store::Store::open(cfg, vigil_event::time::now_ms())
            .with_context(|| format!("cannot reopen the store {}", dir.display()))?;
        again.close();
        let st2 = again.stats();
        if st2.errors > 0 {
            bail!(
                "the store failed to compact its last segment ({} errors)",
                st2.errors
            );
        }
        eprintln!(
            "{total} events into the store: {} durable, {} compacted into {} Parquet files",
            st.written,
            st.compacted + st2.compacted,
            st.files + st2.files
        );
    }
    if let Some(mut w) = jsonl {
        w.flush().context("cannot write the JSON lines")?;
    }
    eprintln!(
        "generated {total} events ({} hosts, {} days) in {:.1} s",
        a.hosts,
        a.days,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The generator's store: one segment (and so one Parquet file per class and hour) per
/// gigabyte of lines, as a store written for hours by a busy agent; no retention.
fn store_config(dir: &std::path::Path) -> vigil_store::StoreConfig {
    let mut cfg = vigil_store::StoreConfig::new(dir.to_path_buf());
    cfg.segment_bytes = 1 << 30;
    cfg.segment_secs = 24 * 3600;
    cfg.limits = vigil_store::retention::Limits {
        max_bytes: 0,
        max_age_hours: 0,
    };
    cfg
}
