//! `vdmm-ctl daemon --config FILE`: the agent's process.
//!
//! Start-up, in order: read and check the configuration; open and load the store (a
//! damaged state file stops the start here, untouched); load the data plane or adopt what
//! is pinned ([`crate::loader::prepare`] reuses pinned maps and programs; interfaces that
//! already have their XDP link keep it); attach the configured interfaces that have none
//! and detach unlisted ones; find the endpoints on interfaces; on a first start, import what
//! the maps hold; reconcile once; then serve.
//!
//! One thread, the state thread, owns the store, the desired state and the maps, and does
//! every change in turn; the control socket's connections (tokio tasks), the netlink
//! listener, the store watcher and the timer send it [`Command`]s. Stopping the agent
//! (SIGTERM, SIGINT, or SIGKILL) leaves the data plane running on its pins; only the
//! socket file is removed on a clean stop.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::mpsc,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::UnixListener,
    sync::oneshot,
};

use super::{
    api::{self, Request, Response},
    config::{Config, EndpointFamily, StoreKind, XdpMode},
    metrics::{AgentMetrics, Outcome, Stage, Trigger},
    natpt_state,
    netlink::{self, Event, Events},
    reconcile::{Reconciler, Report, unrouted},
    state::{Delta, DesiredState, Op},
    store::{FileStore, Revision, Store, StoreEvent, StoreHealth},
};
use crate::{
    addr::Family,
    commands::{binding::describe_route, vap::show_json},
    device,
    error::{Error, Result},
    etcd::store::{ClientIface, EtcdStore},
    loader::{self, Mode},
    pin::PinDir,
    routes::RouteOutcome,
};

/// What the state thread is asked to do.
pub enum Command {
    /// A client's request (already checked against the peer's credentials).
    Request {
        request: Request,
        reply: oneshot::Sender<Response>,
    },
    /// Link or address changes.
    Netlink(Vec<Event>),
    /// The periodic full reconcile.
    Tick,
    /// A change others made to the store.
    Store(Result<StoreEvent>),
    Stop,
}

/// The state thread's world.
pub struct Agent {
    cfg: Config,
    pins: PinDir,
    store: Box<dyn Store>,
    state: DesiredState,
    revision: Revision,
    rec: Reconciler,
    metrics: AgentMetrics,
    last_reconcile: Option<(Trigger, Report, f64)>,
}

fn families(cfg: &Config) -> Vec<Family> {
    cfg.endpoints
        .families
        .iter()
        .map(|f| match f {
            EndpointFamily::Ipv4 => Family::V4,
            EndpointFamily::Ipv6 => Family::V6,
        })
        .collect()
}

/// Attaches the data plane to the configured interfaces that have no XDP link pin yet
/// (interfaces that do not exist yet are left for a later link event), and detaches it
/// from pinned interfaces not configured (`interfaces.detach_unlisted`). Returns errors
/// as text.
fn attach_interfaces(cfg: &Config, pins: &PinDir) -> Vec<String> {
    let mode = match cfg.interfaces.xdp_mode {
        XdpMode::Native => Mode::Native,
        XdpMode::Generic => Mode::Generic,
    };
    let mut errors = Vec::new();
    for iface in &cfg.interfaces.attach {
        if pins.link(iface).exists() || loader::if_index(iface).is_err() {
            continue;
        }
        match loader::load(pins, iface, mode) {
            Ok(_) => tracing::info!(%iface, "attached the data plane"),
            Err(e) => errors.push(format!("attach {iface}: {e}")),
        }
    }
    if cfg.interfaces.detach_unlisted {
        match pins.linked_interfaces() {
            Ok(linked) => {
                for iface in linked {
                    if iface == device::FRAG_RX || cfg.interfaces.attach.contains(&iface) {
                        continue;
                    }
                    match loader::unload(pins, &iface) {
                        Ok(()) => tracing::info!(%iface, "detached (not in interfaces.attach)"),
                        Err(e) => errors.push(format!("detach {iface}: {e}")),
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    errors
}

impl Agent {
    /// Everything up to serving: see the module documentation.
    pub fn start(cfg: Config, mut store: Box<dyn Store>) -> Result<Self> {
        let pins = PinDir::new(&cfg.pin_dir);
        let loaded = store.load()?;
        tracing::info!(
            store = %store.describe(),
            revision = loaded.revision,
            bindings = loaded.state.binding_count(),
            "loaded the desired state"
        );
        let report = loader::prepare(&pins)?;
        tracing::info!(
            pin_dir = %pins.path().display(),
            program = ?report.program,
            "data plane ready"
        );
        let metrics = AgentMetrics::new(&store.describe());
        let errors = attach_interfaces(&cfg, &pins);
        for e in &errors {
            tracing::warn!("{e}");
        }
        metrics.error(Stage::Attach, errors.len());
        let mut agent = Self {
            rec: Reconciler::open(&pins)?,
            pins,
            store,
            state: loaded.state,
            revision: loaded.revision,
            metrics,
            cfg,
            last_reconcile: None,
        };
        agent.discover();
        // A shared store is the truth: what one node's maps hold is not imported into it.
        if !agent.store.shared()
            && agent.revision == 0
            && agent.state.binding_count() == 0
            && agent.state.peers().count() == 0
            && agent.state.endpoints().count() == 0
            && agent.state.vap_count() == 0
            && agent.state.natpt().is_empty()
            && agent.cfg.adopt.import_on_first_start
        {
            agent.import()?;
        }
        agent.declare_natpt()?;
        agent.reconcile(Trigger::Start);
        agent.update_gauges();
        agent.store.hold_liveness(&agent.state);
        Ok(agent)
    }

    /// Takes what the maps hold as the desired state (first start).
    fn import(&mut self) -> Result<()> {
        let ops: Vec<Op> = self
            .rec
            .import_ops()?
            .into_iter()
            // Endpoints found on interfaces are not stored.
            .filter(|op| !matches!(op, Op::EndpointAdd { addr } if self.state.discovered().contains(addr)))
            .collect();
        match self.commit(&ops, false) {
            Ok((deltas, _, _)) if !deltas.is_empty() => {
                tracing::info!(
                    changes = deltas.len(),
                    "imported what the maps held (first start)"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("not importing what the maps hold: {e}"),
        }
        Ok(())
    }

    /// Makes the desired state hold what the configuration's `[natpt]` section declares
    /// (the maps follow in the reconcile after it); a conflict stops the start.
    fn declare_natpt(&mut self) -> Result<()> {
        let ops: Vec<Op> = self
            .cfg
            .natpt
            .ops_for(self.state.natpt())?
            .into_iter()
            .map(Op::Natpt)
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        let (deltas, _, _) = self.commit(&ops, false).map_err(|e| {
            Error::Conflict(format!(
                "the configuration's [natpt] section does not fit the stored desired state: \
                 {e}"
            ))
        })?;
        if !deltas.is_empty() {
            tracing::info!(
                changes = deltas.len(),
                "took the translation configuration declared in [natpt]"
            );
        }
        Ok(())
    }

    /// Reads the addresses of `endpoints.from_interfaces`; true when they changed.
    fn discover(&mut self) -> bool {
        if self.cfg.endpoints.from_interfaces.is_empty() {
            return false;
        }
        match netlink::interface_addresses(
            &self.cfg.endpoints.from_interfaces,
            &families(&self.cfg),
        ) {
            Ok(found) => {
                if &found != self.state.discovered() {
                    tracing::info!(endpoints = ?found, "endpoints on interfaces");
                    self.state.set_discovered(found);
                    return true;
                }
            }
            Err(e) => {
                tracing::warn!("cannot read the interfaces' addresses: {e}");
                self.metrics.error(Stage::Netlink, 1);
            }
        }
        false
    }

    fn update_gauges(&self) {
        let (v4, v6) = self.state.binding_counts();
        self.metrics.desired(
            v4,
            v6,
            self.state.effective_endpoints().len(),
            self.state.peers().count(),
            self.state.vap_count(),
            self.revision,
        );
        self.metrics.natpt.set(self.state.natpt());
    }

    /// A full reconcile; errors are logged and counted, and retried next time.
    pub fn reconcile(&mut self, trigger: Trigger) -> Report {
        let t0 = Instant::now();
        let report = match self.rec.full(&self.state) {
            Ok(r) => r,
            Err(e) => Report {
                errors: vec![e.to_string()],
                ..Default::default()
            },
        };
        let secs = t0.elapsed().as_secs_f64();
        for e in &report.errors {
            tracing::warn!(trigger = trigger.name(), "reconcile: {e}");
        }
        if report.changes() > 0 {
            tracing::info!(trigger = trigger.name(), ?report, secs, "reconciled");
        } else {
            tracing::debug!(
                trigger = trigger.name(),
                secs,
                "reconciled: nothing to change"
            );
        }
        self.metrics.reconciled(trigger, &report);
        self.last_reconcile = Some((trigger, report.clone(), secs));
        report
    }

    /// Plans, commits and applies a batch; returns the deltas and the apply report.
    fn commit_ops(&mut self, ops: &[Op]) -> Result<(Vec<Delta>, Report, Vec<String>)> {
        self.commit(ops, true)
    }

    /// [`Agent::commit_ops`]; without `write_maps` only the store and the desired state
    /// change (an import of what the maps already hold).
    fn commit(
        &mut self,
        ops: &[Op],
        write_maps: bool,
    ) -> Result<(Vec<Delta>, Report, Vec<String>)> {
        let t0 = Instant::now();
        let ops = self.rec.name_vap_ifaces(ops)?;
        let deltas = self.state.plan(&ops)?;
        let planned = t0.elapsed();
        if deltas.is_empty() {
            return Ok((deltas, Report::default(), Vec::new()));
        }
        let routes = if write_maps {
            self.rec.plan_routes(&deltas)?
        } else {
            Vec::new()
        };
        let undo = self.state.undo(&deltas);
        let unrouted = unrouted(&deltas, &undo);
        self.state.apply(&deltas);
        let t1 = Instant::now();
        match self.store.commit(self.revision, &deltas, &self.state) {
            Ok(r) => self.revision = r,
            Err(e) => {
                self.state.apply(&undo);
                self.metrics.error(Stage::Store, 1);
                return Err(e);
            }
        }
        self.metrics.deltas(deltas.len());
        let t2 = Instant::now();
        let report = if write_maps {
            self.rec.apply(&deltas, &self.state, &routes, &unrouted)
        } else {
            Report::default()
        };
        tracing::debug!(
            ops = ops.len(),
            deltas = deltas.len(),
            plan_ms = planned.as_millis() as u64,
            state_ms = (t1 - t0 - planned).as_millis() as u64,
            store_ms = (t2 - t1).as_millis() as u64,
            maps_ms = t2.elapsed().as_millis() as u64,
            "committed a batch"
        );
        self.metrics.changes(&report, Stage::Apply);
        for e in &report.errors {
            tracing::warn!("apply: {e} (retried by the next reconcile)");
        }
        // What `binding add` prints about its route, for the few bindings of a small batch.
        let messages = if routes.len() <= 16 {
            routes
                .iter()
                .map(|r| describe_route(&RouteOutcome::Installed(r.clone())))
                .collect()
        } else {
            vec![format!("{} slow-path routes installed\n", routes.len())]
        };
        self.update_gauges();
        Ok((deltas, report, messages))
    }

    fn status(&self) -> serde_json::Value {
        let (v4, v6) = self.state.binding_counts();
        serde_json::json!({
            "pin_dir": self.pins.path(),
            "store": self.store.describe(),
            "revision": self.revision,
            "endpoints": self.state.endpoints().map(|a| a.to_string()).collect::<Vec<_>>(),
            "discovered_endpoints": self.state.discovered().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "peers": self.state.peers().count(),
            "bindings": {"ipv4": v4, "ipv6": v6},
            "vaps": self.state.vap_count(),
            "store_health": self.store.health().map(|h| h.status()),
            // Set when vAPs follow their shared location (etcd): how long this node
            // forwards a vAP that moved away. A handover mover reads it.
            "vap_grace_ms": self.store.vap_grace().map(|g| g.as_millis() as u64),
            "interfaces": self.pins.linked_interfaces().unwrap_or_default(),
            "last_reconcile": self.last_reconcile.as_ref().map(|(t, r, s)| serde_json::json!({
                "trigger": t.name(), "report": r, "seconds": s,
            })),
        })
    }

    /// Refuses a request meant for another data plane than this agent's.
    fn check_pins(&self, pin_dir: Option<PathBuf>) -> Result<()> {
        match pin_dir {
            Some(p) if p != self.pins.path() => Err(Error::Agent(format!(
                "this agent manages the data plane pinned at {}, not {}; pass the socket of \
                 that data plane's agent (--agent-socket)",
                self.pins.path().display(),
                p.display()
            ))),
            _ => Ok(()),
        }
    }

    /// The vAP of `client` as the maps hold it, with its counters (`vap show --json`).
    fn vap_shown(&self, client: crate::vap::Mac) -> Result<serde_json::Value> {
        let dp = self.rec.dataplane();
        Ok(show_json(&dp.vap(client)?, &dp.vap_counters(client)?))
    }

    /// Answers one request.
    pub fn handle(&mut self, request: Request) -> Response {
        let name = request.name();
        let result = match request {
            Request::Apply { ops, pin_dir } => self.check_pins(pin_dir).and_then(|()| {
                let natpt_before = ops
                    .iter()
                    .any(|o| matches!(o, Op::Natpt(_)))
                    .then(|| self.state.natpt().clone());
                self.commit_ops(&ops).map(|(deltas, report, messages)| {
                    let mut v = serde_json::json!({
                        "revision": self.revision,
                        "changes": deltas.len(),
                        "messages": messages,
                        "errors": report.errors,
                    });
                    if let Some(before) = natpt_before {
                        v["natpt"] = natpt_state::allocation_outcome(&deltas, &before);
                    }
                    v
                })
            }),
            Request::State => Ok(self.state.to_json()),
            Request::Status => Ok(self.status()),
            Request::Reconcile => {
                let r = self.reconcile(Trigger::Request);
                Ok(serde_json::to_value(&r).expect("a report serializes"))
            }
            Request::VapCreate { vap, pin_dir } => self.check_pins(pin_dir).and_then(|()| {
                let client = vap.client;
                let (_, report, _) = self.commit_ops(&[Op::VapCreate(vap)])?;
                // Stored even when the maps refused it (the next reconcile retries).
                Ok(serde_json::json!({
                    "revision": self.revision,
                    "errors": report.errors,
                    "vap": self.vap_shown(client).ok(),
                }))
            }),
            Request::VapDelete { client, pin_dir } => self.check_pins(pin_dir).and_then(|()| {
                let record = self.state.vap(&client).copied();
                let (_, report, _) = self.commit_ops(&[Op::VapDelete { client }])?;
                Ok(serde_json::json!({
                    "revision": self.revision,
                    "errors": report.errors,
                    "vap": record,
                }))
            }),
            Request::VapList { pin_dir } => self.check_pins(pin_dir).and_then(|()| {
                let vaps = self.rec.dataplane().vaps()?;
                Ok(serde_json::Value::from(
                    vaps.iter()
                        .map(crate::commands::vap::entry_json)
                        .collect::<Vec<_>>(),
                ))
            }),
            Request::VapShow { client, pin_dir } => self
                .check_pins(pin_dir)
                .and_then(|()| self.vap_shown(client)),
            Request::NeighResolve { addr, timeout_ms } => {
                let timeout = timeout_ms
                    .map(Duration::from_millis)
                    .unwrap_or(crate::neigh::DEFAULT_TIMEOUT)
                    .min(Duration::from_secs(10));
                crate::neigh::resolve(addr, timeout).map(|r| {
                    let elapsed_ms = r.elapsed.as_secs_f64() * 1e3;
                    tracing::info!(
                        %addr,
                        next_hop = %r.next_hop,
                        dev = %r.dev,
                        before = %r.before,
                        state = %r.state,
                        elapsed_ms,
                        "resolved a neighbour"
                    );
                    serde_json::json!({
                        "next_hop": r.next_hop.to_string(),
                        "dev": r.dev,
                        "before": r.before,
                        "state": r.state,
                        "elapsed_ms": elapsed_ms,
                    })
                })
            }
        };
        match result {
            Ok(v) => {
                self.metrics.request(name, Outcome::Ok);
                Response::ok(v)
            }
            Err(e) => {
                self.metrics.request(name, Outcome::Refused);
                Response::error(e.to_string())
            }
        }
    }

    fn on_netlink(&mut self, events: &[Event]) {
        let link = events.contains(&Event::Link);
        for e in events {
            self.metrics.netlink_event(match e {
                Event::Link => "link",
                Event::Address => "address",
            });
        }
        if link {
            self.rec.forget_paths();
            let errors = attach_interfaces(&self.cfg, &self.pins);
            for e in &errors {
                tracing::warn!("{e}");
            }
            self.metrics.error(Stage::Attach, errors.len());
        }
        let changed = self.discover();
        if link || changed {
            self.reconcile(Trigger::Netlink);
            self.update_gauges();
        }
    }

    fn on_store(&mut self, event: Result<StoreEvent>) {
        match event {
            Ok(StoreEvent::Deltas {
                revision,
                mut deltas,
            }) => {
                self.revision = revision;
                // This agent's own commits come back too: they are in the state already.
                deltas.retain(|d| match d {
                    Delta::Put { entry } => self.state.get(&d.key()) != Some(*entry),
                    Delta::Delete { key } => self.state.get(key).is_some(),
                });
                if deltas.is_empty() {
                    self.update_gauges();
                    return;
                }
                let unrouted = unrouted(&deltas, &self.state.undo(&deltas));
                self.state.apply(&deltas);
                let routes = match self.rec.plan_routes(&deltas) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!("routes of a store change: {e}");
                        self.metrics.error(Stage::Apply, 1);
                        Vec::new()
                    }
                };
                let report = self.rec.apply(&deltas, &self.state, &routes, &unrouted);
                self.metrics.deltas(deltas.len());
                self.metrics.changes(&report, Stage::Apply);
            }
            Ok(StoreEvent::Replace { revision, state }) => {
                let discovered = self.state.discovered().clone();
                self.state = state;
                self.state.set_discovered(discovered);
                self.revision = revision;
                self.reconcile(Trigger::Store);
            }
            Err(e) => {
                tracing::warn!("store watch: {e}");
                self.metrics.error(Stage::Store, 1);
            }
        }
        self.update_gauges();
    }

    /// Serves commands until [`Command::Stop`] or until every sender is gone.
    pub fn run(mut self, commands: mpsc::Receiver<Command>) {
        while let Ok(c) = commands.recv() {
            match c {
                Command::Request { request, reply } => {
                    let _ = reply.send(self.handle(request));
                }
                Command::Netlink(events) => self.on_netlink(&events),
                Command::Tick => {
                    self.reconcile(Trigger::Interval);
                }
                Command::Store(e) => self.on_store(e),
                Command::Stop => break,
            }
        }
    }
}

/// Creates the control socket: a stale file from a killed agent is replaced, a live
/// agent's socket is refused; permissions and group from `[api]`.
fn bind_socket(cfg: &Config) -> Result<UnixListener> {
    let path = &cfg.api.socket;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::Conflict(format!(
                "another agent is listening on {}",
                path.display()
            )));
        }
        std::fs::remove_file(path)
            .map_err(|e| Error::io(format!("cannot remove the stale {}", path.display()), e))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| Error::io(format!("cannot listen on {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.socket_mode()?))
        .map_err(|e| Error::io(format!("cannot set the mode of {}", path.display()), e))?;
    if let Some(group) = &cfg.api.socket_group {
        let gid = group_id(group)?;
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| {
            Error::io(
                format!("cannot give {} to group {group}", path.display()),
                e,
            )
        })?;
    }
    Ok(listener)
}

fn group_id(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name).map_err(|_| {
        Error::Conflict(format!(
            "invalid configuration: api.socket_group = {name:?}"
        ))
    })?;
    // SAFETY: getgrnam with a valid C string; the result is read at once.
    let g = unsafe { libc::getgrnam(c.as_ptr()) };
    if g.is_null() {
        return Err(Error::Conflict(format!(
            "invalid configuration: api.socket_group = {name:?}: no such group"
        )));
    }
    // SAFETY: non-null pointer from getgrnam.
    Ok(unsafe { (*g).gr_gid })
}

/// Serves one connection: JSON lines in, JSON lines out.
async fn serve_connection(
    stream: tokio::net::UnixStream,
    commands: mpsc::Sender<Command>,
    metrics: AgentMetrics,
) {
    let uid = stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX);
    // SAFETY: geteuid cannot fail.
    let own = unsafe { libc::geteuid() };
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let t0 = Instant::now();
        let parsed = api::parse_request(&line);
        tracing::debug!(
            bytes = line.len(),
            parse_ms = t0.elapsed().as_millis() as u64,
            "read a request"
        );
        let response = match parsed {
            Err(e) => {
                metrics.request("unknown", Outcome::Invalid);
                api::bad_request(&e)
            }
            Ok(request) if !api::allowed(&request, uid, own) => {
                metrics.request(request.name(), Outcome::Denied);
                tracing::warn!(
                    uid,
                    request = request.name(),
                    "refused a change from an unprivileged peer"
                );
                Response::error(format!(
                    "permission denied: user {uid} may not change the agent's state (only root may)"
                ))
            }
            Ok(request) => {
                let (tx, rx) = oneshot::channel();
                if commands
                    .send(Command::Request { request, reply: tx })
                    .is_err()
                {
                    break;
                }
                match rx.await {
                    Ok(r) => r,
                    Err(_) => break,
                }
            }
        };
        let mut out = serde_json::to_string(&response).expect("a response serializes");
        out.push('\n');
        if write.write_all(out.as_bytes()).await.is_err() {
            break;
        }
    }
}

/// The netlink listener: waits for notifications, lets a burst settle (100 ms), and sends
/// what it was about.
fn listen_netlink(commands: mpsc::Sender<Command>) {
    let mut events = match Events::open() {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("no link and address notifications: {e}");
            return;
        }
    };
    loop {
        let mut got = match events.wait() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("netlink notifications: {e}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if got.is_empty() {
            continue;
        }
        std::thread::sleep(Duration::from_millis(100));
        // What arrived meanwhile is one more reason for the same reconcile.
        while let Ok(more) = events.try_wait() {
            for e in more {
                if !got.contains(&e) {
                    got.push(e);
                }
            }
        }
        if commands.send(Command::Netlink(got)).is_err() {
            return;
        }
    }
}

/// Logs to standard error at `log_level` (`RUST_LOG` overrides it).
pub fn init_logging(cfg: &Config) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(&cfg.log_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs the daemon with the configuration file at `path` until SIGTERM or SIGINT.
pub fn run(path: &Path) -> Result<String> {
    let cfg = Config::load(path)?;
    init_logging(&cfg);
    let store: Box<dyn Store> = match (cfg.store, &cfg.etcd) {
        (StoreKind::Etcd, Some(settings)) => Box::new(
            EtcdStore::open(settings, &cfg.node_name())?
                .with_client_iface(ClientIface::Pins(PinDir::new(&cfg.pin_dir))),
        ),
        _ => Box::new(FileStore::open(&cfg.state_dir)?),
    };
    let agent = Agent::start(cfg.clone(), store)?;
    serve(cfg, agent)
}

/// Serves `agent` (already started) until SIGTERM or SIGINT.
pub fn serve(cfg: Config, mut agent: Agent) -> Result<String> {
    let (tx, rx) = mpsc::channel::<Command>();
    let metrics = agent.metrics.clone();
    let pins = agent.pins.clone();
    let store_health: Option<std::sync::Arc<dyn StoreHealth>> = agent.store.health();

    if let Some(mut watcher) = agent.store.watcher(agent.revision)? {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("store-watch".into())
            .spawn(move || {
                loop {
                    let e = watcher.next();
                    let failed = e.is_err();
                    if tx.send(Command::Store(e)).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| Error::io("cannot start the store watcher", e))?;
    }
    {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("netlink".into())
            .spawn(move || listen_netlink(tx))
            .map_err(|e| Error::io("cannot start the netlink listener", e))?;
    }
    if cfg.metrics.enabled {
        let listen = cfg.metrics_listen()?;
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| Error::io(format!("cannot listen on {listen} (metrics)"), e))?;
        let m = metrics.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                let render = || {
                    let mut text = crate::metrics::render(&pins)?;
                    text.push_str(&m.encode()?);
                    if let Some(h) = &store_health {
                        text.push_str(&h.metrics());
                    }
                    Ok(text)
                };
                if let Err(e) = crate::commands::metrics::serve_with(&listener, &render) {
                    tracing::error!("metrics server stopped: {e}");
                }
            })
            .map_err(|e| Error::io("cannot start the metrics server", e))?;
        tracing::info!(%listen, "serving metrics at /metrics");
    }
    let state_thread = std::thread::Builder::new()
        .name("state".into())
        .spawn(move || agent.run(rx))
        .map_err(|e| Error::io("cannot start the state thread", e))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))?;
    let socket = cfg.api.socket.clone();
    let result = runtime.block_on(async {
        let listener = bind_socket(&cfg)?;
        tracing::info!(socket = %socket.display(), "listening for control requests");
        if let Some(every) = cfg.reconcile_interval() {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut t = tokio::time::interval(every);
                t.tick().await;
                loop {
                    t.tick().await;
                    if tx.send(Command::Tick).is_err() {
                        return;
                    }
                }
            });
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Error::io("cannot catch SIGTERM", e))?;
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(serve_connection(stream, tx.clone(), metrics.clone()));
                    }
                    Err(e) => tracing::warn!("cannot accept a control connection: {e}"),
                },
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        Ok::<(), Error>(())
    });
    let _ = std::fs::remove_file(&socket);
    let _ = tx.send(Command::Stop);
    let _ = state_thread.join();
    runtime.shutdown_timeout(Duration::from_secs(1));
    result?;
    tracing::info!("stopped; the data plane keeps running on its pins");
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_follow_the_configuration() {
        let mut cfg = Config::default();
        assert_eq!(families(&cfg), [Family::V4, Family::V6]);
        cfg.endpoints.families = vec![EndpointFamily::Ipv6];
        assert_eq!(families(&cfg), [Family::V6]);
    }
}
