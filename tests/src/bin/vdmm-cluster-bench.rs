//! `vdmm-cluster-bench`: how fast a binding change reaches every node of a cluster.
//!
//! Starts a real etcd (one member, Debian's etcd-server, data on /dev/shm) and, in this
//! one process, `--nodes` simulated AP hosts: each an [`EtcdStore`] of its own (its own
//! connection, runtime and watch, exactly what `vdmm-ctl daemon` runs with
//! `store = "etcd"`) with its own endpoint, and a thread that takes its watcher's events
//! and applies them to a desired state as the agent's state thread does (no kernel data
//! plane). Then:
//!
//! 1. preloads `--clients` bindings (one home /24 per client) and waits until every node
//!    holds all of them;
//! 2. one change at a time (`--changes`): a controller re-points one client's binding to
//!    a new locator; the convergence time of a change is from just before its commit to
//!    the moment the last node has it; p50, p99, max;
//! 3. sustained changes (`--writers` controllers, each on its own clients, as fast as
//!    they can for `--seconds`): changes committed per second, and per second applied by
//!    every node (until the last node has the last change), with the convergence p50/p99
//!    under that load.
//!
//! Every change carries its number in the locator (198.18.0.0/15 + n), so a node's
//! thread knows which change it got. Target: p99 convergence of one change at a time
//! under 100 ms on loopback; the exit status is 3 when it is missed.

use std::{
    net::{IpAddr, Ipv4Addr},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Parser;
use vdmm_ctl::{
    addr::Prefix,
    agent::{
        state::{BindingSpec, Delta, DesiredState, Entry},
        store::{Store, StoreEvent},
    },
    etcd::{EtcdSettings, store::EtcdStore},
};
use vdmm_tests::etcd::EtcdCluster;

#[derive(Parser)]
#[command(about = "Convergence of binding changes through etcd to many nodes")]
struct Opts {
    /// Simulated AP hosts (agents' stores in this process).
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Clients (one binding each, preloaded).
    #[arg(long, default_value_t = 10_000)]
    clients: u32,
    /// Changes of the one-at-a-time phase.
    #[arg(long, default_value_t = 200)]
    changes: u32,
    /// Controllers writing in the sustained phase.
    #[arg(long, default_value_t = 4)]
    writers: u32,
    /// Length of the sustained phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Target of the one-at-a-time p99, milliseconds.
    #[arg(long, default_value_t = 100.0)]
    target_p99_ms: f64,
}

/// Change numbers a locator can carry (198.18.0.0/15).
const MAX_CHANGES: usize = 1 << 17;
const CHANGE_BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
/// Bindings per preload transaction (etcd allows 128 operations in one by default).
const PRELOAD_BATCH: u32 = 100;

fn home(client: u32) -> Prefix {
    Prefix::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (client << 8))), 24).expect("a /24 of 10/8")
}

fn change_locator(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(CHANGE_BASE + n))
}

fn change_of(locator: IpAddr) -> Option<usize> {
    let IpAddr::V4(v4) = locator else { return None };
    let n = u32::from(v4).checked_sub(CHANGE_BASE)? as usize;
    (n < MAX_CHANGES).then_some(n)
}

fn binding(client: u32, locator: IpAddr) -> Delta {
    Delta::Put {
        entry: Entry::Binding(BindingSpec {
            home: home(client),
            locator,
            source: IpAddr::V4(Ipv4Addr::new(100, 127, 255, 254)),
            route: false,
        }),
    }
}

/// When each change was started and when (and by how many nodes) it was applied; times
/// in ns since `t0`.
struct Tracker {
    t0: Instant,
    started: Vec<AtomicU64>,
    applied: Vec<AtomicU32>,
    last: Vec<AtomicU64>,
    /// Bindings per node (for the preload).
    counts: Vec<AtomicU64>,
    replaced: AtomicU64,
}

impl Tracker {
    fn new(nodes: usize) -> Self {
        let v = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Self {
            t0: Instant::now(),
            started: v(MAX_CHANGES),
            applied: (0..MAX_CHANGES).map(|_| AtomicU32::new(0)).collect(),
            last: v(MAX_CHANGES),
            counts: v(nodes),
            replaced: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    fn start(&self, n: usize) {
        self.started[n].store(self.now(), Ordering::Relaxed);
    }

    /// Convergence of change `n` in ms, once every one of `nodes` has it.
    fn converged_ms(&self, n: usize, nodes: usize) -> Option<f64> {
        (self.applied[n].load(Ordering::Acquire) as usize >= nodes).then(|| {
            let d = self.last[n]
                .load(Ordering::Relaxed)
                .saturating_sub(self.started[n].load(Ordering::Relaxed));
            d as f64 / 1e6
        })
    }
}

/// A node's thread: applies its watcher's events to its desired state, noting changes.
fn follow(
    i: usize,
    mut watcher: Box<dyn vdmm_ctl::agent::store::StoreWatcher>,
    mut state: DesiredState,
    tracker: Arc<Tracker>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(event) = watcher.next() else { return };
        match event {
            StoreEvent::Deltas { deltas, .. } => {
                let at = tracker.now();
                for d in &deltas {
                    if let Delta::Put {
                        entry: Entry::Binding(b),
                    } = d
                        && let Some(n) = change_of(b.locator)
                    {
                        tracker.last[n].fetch_max(at, Ordering::Relaxed);
                        tracker.applied[n].fetch_add(1, Ordering::Release);
                    }
                }
                state.apply(&deltas);
            }
            StoreEvent::Replace { state: s, .. } => {
                tracker.replaced.fetch_add(1, Ordering::Relaxed);
                state = s;
            }
        }
        tracker.counts[i].store(state.binding_count() as u64, Ordering::Relaxed);
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn wait_until(what: &str, within: Duration, cond: impl Fn() -> bool) -> Result<Duration> {
    let t0 = Instant::now();
    while !cond() {
        if t0.elapsed() > within {
            bail!("{what}: not within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(t0.elapsed())
}

/// A controller's store (no endpoint of its own: it only writes shared bindings).
struct Writer {
    store: EtcdStore,
    revision: u64,
}

impl Writer {
    fn open(settings: &EtcdSettings, name: &str) -> Result<Self> {
        let mut store = EtcdStore::open(settings, name)?;
        let revision = store.load()?.revision;
        Ok(Self { store, revision })
    }

    fn commit(&mut self, deltas: &[Delta]) -> Result<()> {
        self.revision = self
            .store
            .commit(self.revision, deltas, &DesiredState::default())?;
        Ok(())
    }
}

fn run(o: &Opts) -> Result<bool> {
    if o.nodes == 0 || o.clients == 0 || o.writers == 0 || o.clients < o.writers {
        bail!("need --nodes, --clients, --writers > 0 and --clients >= --writers");
    }
    let etcd = EtcdCluster::start("etbench", 1)?;
    let mut settings = EtcdSettings::new(etcd.endpoints(), "/bench");
    settings.request_timeout_ms = 10_000;
    let tracker = Arc::new(Tracker::new(o.nodes));
    let stop = Arc::new(AtomicBool::new(false));

    // 1. The clients' bindings, then the nodes (each loads them all at once).
    let mut ctl = Writer::open(&settings, "controller")?;
    let t = Instant::now();
    let mut c = 0;
    while c < o.clients {
        let end = (c + PRELOAD_BATCH).min(o.clients);
        let batch: Vec<Delta> = (c..end)
            .map(|k| binding(k, IpAddr::V4(Ipv4Addr::new(192, 0, 2, (k % 250 + 1) as u8))))
            .collect();
        ctl.commit(&batch)?;
        c = end;
    }
    eprintln!("preloaded {} bindings in {:?}", o.clients, t.elapsed());
    let t = Instant::now();
    let mut nodes = Vec::new();
    for i in 0..o.nodes {
        let mut store = EtcdStore::open(&settings, &format!("ap{i}"))?;
        let loaded = store.load()?;
        let endpoint = Entry::Endpoint {
            addr: IpAddr::V4(Ipv4Addr::from(
                u32::from_be_bytes([100, 64, 0, 0]) + i as u32,
            )),
        };
        store.commit(
            loaded.revision,
            &[Delta::Put { entry: endpoint }],
            &DesiredState::default(),
        )?;
        let loaded = store.load()?;
        if loaded.state.binding_count() != o.clients as usize {
            bail!(
                "node {i} loaded {} bindings, not {}",
                loaded.state.binding_count(),
                o.clients
            );
        }
        let watcher = store.watcher(loaded.revision)?.context("no watcher")?;
        let (tracker, stop) = (tracker.clone(), stop.clone());
        tracker.counts[i].store(o.clients as u64, Ordering::Relaxed);
        let thread = std::thread::Builder::new()
            .name(format!("ap{i}"))
            .spawn(move || follow(i, watcher, loaded.state, tracker, stop))?;
        nodes.push((store, thread));
    }
    eprintln!(
        "{} nodes started, each holding {} bindings, in {:?}",
        o.nodes,
        o.clients,
        t.elapsed()
    );
    // Let every watch settle (its first read) before measuring.
    std::thread::sleep(Duration::from_secs(1));

    // 2. One change at a time.
    let mut one = Vec::new();
    for k in 0..o.changes {
        let n = k as usize;
        let client = (k * 7919) % o.clients;
        tracker.start(n);
        ctl.commit(&[binding(client, change_locator(k))])?;
        wait_until(&format!("change {k}"), Duration::from_secs(30), || {
            tracker.converged_ms(n, o.nodes).is_some()
        })?;
        one.push(tracker.converged_ms(n, o.nodes).expect("converged"));
        std::thread::sleep(Duration::from_millis(5));
    }
    one.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50, p99, max) = (
        percentile(&one, 0.5),
        percentile(&one, 0.99),
        *one.last().unwrap(),
    );

    // 3. Sustained: writers on disjoint clients, as fast as they go.
    let next = Arc::new(AtomicU32::new(o.changes));
    let mut writers = Vec::new();
    for w in 0..o.writers {
        writers.push(Writer::open(&settings, &format!("controller{w}"))?);
    }
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let t_start = Instant::now();
    let mut handles = Vec::new();
    for (w, mut writer) in (0..o.writers).zip(writers) {
        let (tracker, next) = (tracker.clone(), next.clone());
        let (writers, clients) = (o.writers, o.clients);
        handles.push(std::thread::spawn(move || -> Result<Vec<usize>> {
            let mut mine = Vec::new();
            let mut client = w;
            while Instant::now() < deadline {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k as usize >= MAX_CHANGES {
                    break;
                }
                tracker.start(k as usize);
                writer.commit(&[binding(client, change_locator(k))])?;
                mine.push(k as usize);
                client = (client + writers) % clients;
            }
            Ok(mine)
        }));
    }
    let mut sustained = Vec::new();
    for h in handles {
        sustained.extend(h.join().expect("a writer panicked")?);
    }
    let committed_in = t_start.elapsed();
    wait_until("the sustained changes", Duration::from_secs(120), || {
        sustained
            .iter()
            .all(|&n| tracker.converged_ms(n, o.nodes).is_some())
    })?;
    let all_applied_in = sustained
        .iter()
        .map(|&n| tracker.last[n].load(Ordering::Relaxed))
        .max()
        .map_or(Duration::ZERO, |ns| {
            Duration::from_nanos(ns) - (t_start - tracker.t0)
        });
    let mut conv: Vec<f64> = sustained
        .iter()
        .filter_map(|&n| tracker.converged_ms(n, o.nodes))
        .collect();
    conv.sort_by(|a, b| a.partial_cmp(b).unwrap());
    stop.store(true, Ordering::Relaxed);

    let ok = p99 < o.target_p99_ms;
    println!(
        "cluster convergence: {} nodes (agents' etcd stores in one process, no kernel data plane), {} clients, etcd 1 member on loopback",
        o.nodes, o.clients
    );
    println!(
        "  one change at a time  {:>6} changes: p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (target p99 < {} ms) {}",
        one.len(),
        p50,
        p99,
        max,
        o.target_p99_ms,
        if ok { "OK" } else { "FAIL" }
    );
    println!(
        "  sustained, {} writers {:>6} changes in {:.2} s: {:>8.0} changes/s committed, {:>8.0} changes/s applied by all {} nodes",
        o.writers,
        sustained.len(),
        committed_in.as_secs_f64(),
        sustained.len() as f64 / committed_in.as_secs_f64(),
        sustained.len() as f64 / all_applied_in.as_secs_f64(),
        o.nodes
    );
    println!(
        "  convergence under that load: p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        percentile(&conv, 0.5),
        percentile(&conv, 0.99),
        conv.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  node events: {} full re-reads (lost watches) during the run",
        tracker.replaced.load(Ordering::Relaxed)
    );
    for (i, c) in tracker.counts.iter().enumerate() {
        let c = c.load(Ordering::Relaxed);
        if c != o.clients as u64 {
            bail!("node {i} ends with {c} bindings, not {}", o.clients);
        }
    }
    drop(nodes);
    Ok(ok)
}

fn main() -> ExitCode {
    let o = Opts::parse();
    match run(&o) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("vdmm-cluster-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
