//! [`EtcdStore`]: the agent's [`Store`] on etcd, for a node in a cluster.
//!
//! Bindings are shared by every node: `PREFIX/bindings/HOME` holds the home prefix, the
//! locator, whether it gets a slow-path route, and the outer source it was made with as a
//! hint. Each node resolves the source for itself: the hint when it is one of its own
//! endpoints of the locator's family, else its lowest such endpoint; a node without one
//! leaves the binding out (logged, counted in [`EtcdStore::unresolved`]). A vAP is its
//! location `PREFIX/vaps/CLIENT_MAC`: the agent's vAP writes go there (with this node as
//! the AP host), and each node derives from the locations the vAPs it serves, the
//! bindings of the clients it anchors and the vAPs it forwards for a grace period after
//! they left ([`super::placement`]). What is a node's own (its endpoints, peers, tunnel
//! settings, translation configuration) lives under `PREFIX/nodes/NAME/` with the
//! agent's key paths (`endpoints/ADDR`, `peers/ADDR`, `tunnel`, `natpt/...`).
//!
//! A commit is one transaction that checks that none of the keys it writes changed
//! since the revision the batch was planned at (else [`Error::StoreConflict`]). While
//! etcd is unreachable commits are refused at once with a clear error and the watcher
//! keeps the agent on its last state; it catches up (a `Replace` of the whole state)
//! when etcd is back. [`Store::hold_liveness`] holds the node's lease
//! ([`super::liveness`]) on the store's runtime.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::Duration,
};

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::{
    client::Etcd,
    config::EtcdSettings,
    error::ClusterError,
    keys::Kind,
    liveness,
    mirror::{self, Change, MirrorState, Update},
    placement::{Placement, location_of},
};
use crate::{
    addr::Prefix,
    agent::{
        state::{BindingSpec, Delta, DesiredState, Entry, Key, addr_text},
        store::{Loaded, Revision, Store, StoreEvent, StoreHealth, StoreWatcher},
    },
    error::{Error, Result},
    maps::resolve_source,
    pin::PinDir,
    vap::{Mac, client_iface},
    vap_record::{IfName, VapRecord},
};
use tokio::sync::watch;

/// A binding as every node shares it (the source only as a hint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedBinding {
    pub home: Prefix,
    #[serde(with = "addr_text")]
    pub locator: IpAddr,
    pub route: bool,
    #[serde(with = "addr_text")]
    pub source_hint: IpAddr,
}

impl From<&BindingSpec> for SharedBinding {
    fn from(b: &BindingSpec) -> Self {
        Self {
            home: b.home,
            locator: b.locator,
            route: b.route,
            source_hint: b.source,
        }
    }
}

fn cluster(e: ClusterError) -> Error {
    Error::Agent(e.to_string())
}

/// How a node names the client-facing interface of the vAPs located on it.
#[derive(Clone, Debug)]
pub enum ClientIface {
    /// The one interface `vdmm_vap` is attached to under this pin directory (looked up
    /// when needed, so an interface attached later is found).
    Pins(PinDir),
    Named(IfName),
    /// None: vAPs located on this node are left out (a gateway, not an AP host).
    Absent,
}

impl ClientIface {
    fn get(&self) -> Option<IfName> {
        match self {
            ClientIface::Pins(p) => client_iface(p, None).ok().and_then(|n| n.parse().ok()),
            ClientIface::Named(n) => Some(*n),
            ClientIface::Absent => None,
        }
    }
}

/// What a node's view needs besides the records.
#[derive(Clone)]
struct ViewSettings {
    node: String,
    unresolved: Arc<AtomicU64>,
    iface: ClientIface,
    grace: Duration,
    /// The node's endpoints, for its host record's locators ([`liveness`]).
    locators: Arc<watch::Sender<Vec<IpAddr>>>,
}

/// The translation of the shared records into one node's desired state.
struct NodeView {
    s: ViewSettings,
    shared: BTreeMap<Prefix, SharedBinding>,
    placement: Placement,
    /// The bindings of the clients anchored here, derived from their locations.
    anchored: BTreeMap<Prefix, BindingSpec>,
    /// vAPs that left this node, forwarded to their new AP host until the grace timer of
    /// this generation fires.
    leaving: BTreeMap<Mac, u64>,
    generation: u64,
    /// Grace timers to start: client and generation.
    timers: Vec<(Mac, u64)>,
    /// Why records are left out on this node (logged once each).
    left_out: BTreeSet<String>,
    state: DesiredState,
    revision: i64,
    /// The revision of the last change handed to the agent: up to [`Self::revision`],
    /// the records changed nothing of this node's state.
    delta_revision: i64,
}

impl NodeView {
    fn new(s: ViewSettings) -> Self {
        Self {
            s,
            shared: BTreeMap::new(),
            placement: Placement::default(),
            anchored: BTreeMap::new(),
            leaving: BTreeMap::new(),
            generation: 0,
            timers: Vec::new(),
            left_out: BTreeSet::new(),
            state: DesiredState::default(),
            revision: 0,
            delta_revision: 0,
        }
    }

    /// The revision a batch planned at `base` may be checked against: the latest one
    /// when nothing since `base` changed this node's state (keys that changed meanwhile
    /// without concerning this node, such as another AP host's vAP location, do not make
    /// its plan stale).
    fn check_base(&self, base: i64) -> i64 {
        if self.delta_revision <= base {
            self.revision.max(base)
        } else {
            base
        }
    }

    fn endpoints(&self) -> Vec<IpAddr> {
        self.state.endpoints().copied().collect()
    }

    /// This node's binding for a shared one, if it has an endpoint to send it from.
    fn resolve(&self, b: &SharedBinding) -> Option<BindingSpec> {
        let eps = self.endpoints();
        let source = resolve_source(&eps, b.locator, Some(b.source_hint))
            .or_else(|_| resolve_source(&eps, b.locator, None));
        match source {
            Ok(source) => Some(BindingSpec {
                home: b.home,
                locator: b.locator,
                source,
                route: b.route,
            }),
            Err(e) => {
                self.s.unresolved.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(home = %b.home, "shared binding left out on this node: {e}");
                None
            }
        }
    }

    /// The delta that makes this node's binding for `home` what the records say: the
    /// binding of a client anchored here (its location), else the shared one.
    fn binding_delta(&self, home: Prefix) -> Option<Delta> {
        let want = match self.anchored.get(&home) {
            Some(b) => Some(*b),
            None => self.shared.get(&home).and_then(|b| self.resolve(b)),
        };
        let have = self.state.binding(&home).copied();
        match (want, have) {
            (Some(w), h) if Some(w) != h => Some(Delta::Put {
                entry: Entry::Binding(w),
            }),
            (None, Some(_)) => Some(Delta::Delete {
                key: Key::Binding(home),
            }),
            _ => None,
        }
    }

    fn push(&mut self, out: &mut Vec<Delta>, d: Delta) {
        self.state.apply(&[d]);
        out.push(d);
    }

    /// Logs and counts the reasons of records left out that are new.
    fn note_left_out(&mut self, reasons: Vec<String>) {
        let now: BTreeSet<String> = reasons.into_iter().collect();
        for r in now.difference(&self.left_out) {
            self.s.unresolved.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("left out on this node: {r}");
        }
        self.left_out = now;
    }

    /// Brings the vAPs and the anchored bindings in step with the locations.
    fn place(&mut self, out: &mut Vec<Delta>) {
        let eps = self.endpoints();
        let (anchored, mut left) = self.placement.anchored(&eps);
        let old = std::mem::replace(&mut self.anchored, anchored);
        let homes: BTreeSet<Prefix> = old
            .keys()
            .chain(self.anchored.keys())
            .copied()
            .filter(|h| old.get(h) != self.anchored.get(h))
            .collect();
        for home in homes {
            if let Some(d) = self.binding_delta(home) {
                self.push(out, d);
            }
        }
        let (served, left_vaps) = self
            .placement
            .served(&self.s.node, &eps, self.s.iface.get());
        left.extend(left_vaps);
        self.note_left_out(left);
        for (client, r) in &served {
            self.leaving.remove(client);
            if self.state.vap(client) != Some(r) {
                self.push(
                    out,
                    Delta::Put {
                        entry: Entry::Vap(*r),
                    },
                );
            }
        }
        let gone: Vec<VapRecord> = self
            .state
            .vaps()
            .filter(|v| !served.contains_key(&v.client) && !self.leaving.contains_key(&v.client))
            .copied()
            .collect();
        for v in gone {
            let target = (!self.s.grace.is_zero())
                .then(|| self.placement.forward_target(&v.client, &eps))
                .flatten();
            match target {
                Some((to, source)) => {
                    let mut f = v;
                    f.forward = Some(to);
                    f.forward_source = Some(source);
                    self.generation += 1;
                    self.leaving.insert(v.client, self.generation);
                    self.timers.push((v.client, self.generation));
                    tracing::info!(client = %v.client, %to, "vAP moved away: forwarding to its new AP host for the grace period");
                    self.push(
                        out,
                        Delta::Put {
                            entry: Entry::Vap(f),
                        },
                    );
                }
                None => self.push(
                    out,
                    Delta::Delete {
                        key: Key::Vap(v.client),
                    },
                ),
            }
        }
    }

    /// The grace period of a vAP that left ends: its removal, unless it came back or
    /// was removed meanwhile.
    fn grace_over(&mut self, client: Mac, generation: u64) -> Option<Delta> {
        if self.leaving.get(&client) != Some(&generation) {
            return None;
        }
        self.leaving.remove(&client);
        if self.placement.is_on(&client, &self.s.node) || self.state.vap(&client).is_none() {
            return None;
        }
        let d = Delta::Delete {
            key: Key::Vap(client),
        };
        self.state.apply(&[d]);
        Some(d)
    }

    /// Applies one change of the mirror; returns the deltas of this node's state and
    /// whether the placement of vAPs must be derived again.
    fn change(
        &mut self,
        c: &Change,
        out: &mut Vec<Delta>,
    ) -> std::result::Result<bool, ClusterError> {
        let bad = |detail: String| ClusterError::BadRecord {
            key: format!("{}/{}", c.kind(), c.id()),
            detail,
        };
        match c.kind() {
            Kind::Binding => {
                let home: Prefix = c.id().parse().map_err(|e| bad(format!("{e}")))?;
                match c {
                    Change::Put { value, .. } => {
                        let b: SharedBinding =
                            serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?;
                        self.shared.insert(home, b);
                    }
                    Change::Delete { .. } => {
                        self.shared.remove(&home);
                    }
                }
                if let Some(d) = self.binding_delta(home) {
                    self.push(out, d);
                }
                Ok(false)
            }
            Kind::VapLocation => {
                match c {
                    Change::Put { value, .. } => {
                        self.placement.put_location(c.id(), value).map_err(bad)?;
                    }
                    Change::Delete { .. } => self.placement.delete_location(c.id()),
                }
                Ok(true)
            }
            Kind::Host => {
                match c {
                    Change::Put { value, .. } => {
                        self.placement.put_host(c.id(), value).map_err(bad)?;
                    }
                    Change::Delete { .. } => self.placement.delete_host(c.id()),
                }
                Ok(true)
            }
            Kind::Node => {
                let Some(path) = c.id().strip_prefix(&format!("{}/", self.s.node)) else {
                    return Ok(false);
                };
                let key = Key::from_path(path).map_err(|e| bad(e.to_string()))?;
                if matches!(key, Key::Vap(_)) {
                    // In cluster mode a vAP is its location (PREFIX/vaps/CLIENT_MAC).
                    return Ok(false);
                }
                let delta = match c {
                    Change::Put { value, .. } => Delta::Put {
                        entry: serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?,
                    },
                    Change::Delete { .. } => Delta::Delete { key },
                };
                self.push(out, delta);
                if !matches!(key, Key::Endpoint(_)) {
                    return Ok(false);
                }
                // Sources follow the endpoints.
                let homes: Vec<Prefix> = self.shared.keys().copied().collect();
                for home in homes {
                    if let Some(d) = self.binding_delta(home) {
                        self.push(out, d);
                    }
                }
                let eps = self.endpoints();
                self.s.locators.send_if_modified(|now| {
                    let changed = *now != eps;
                    *now = eps;
                    changed
                });
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Applies a mirror update; bad records are logged and skipped.
    fn update(&mut self, u: &Update) -> Vec<Delta> {
        let mut out = Vec::new();
        self.revision = u.revision;
        // Node records first, so bindings resolve against the new endpoints.
        let (own, shared): (Vec<&Change>, Vec<&Change>) =
            u.changes.iter().partition(|c| c.kind() == Kind::Node);
        let mut place = false;
        for c in own.into_iter().chain(shared) {
            match self.change(c, &mut out) {
                Ok(p) => place |= p,
                Err(e) => tracing::warn!("{e}"),
            }
        }
        if place {
            self.place(&mut out);
        }
        out
    }
}

/// The agent's store on etcd.
pub struct EtcdStore {
    rt: tokio::runtime::Runtime,
    etcd: Etcd,
    node: String,
    /// The mirror as of the last load, where the watcher starts.
    loaded: Option<MirrorState>,
    unresolved: Arc<AtomicU64>,
    iface: ClientIface,
    locators: Arc<watch::Sender<Vec<IpAddr>>>,
    /// This node's view of the records, shared with the watcher.
    view: Arc<Mutex<NodeView>>,
}

const KINDS: [Kind; 4] = [Kind::Binding, Kind::Node, Kind::VapLocation, Kind::Host];

impl EtcdStore {
    /// Connects (without waiting for etcd: see [`Etcd::connect`]) as node `node`.
    pub fn open(settings: &EtcdSettings, node: &str) -> Result<Self> {
        if node.is_empty() || node.contains('/') || node.chars().any(char::is_whitespace) {
            return Err(cluster(ClusterError::BadSetting {
                field: "node",
                value: node.to_string(),
                reason: "a node name is one non-empty word without `/`".into(),
            }));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd")
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the etcd client's runtime", e))?;
        let etcd = rt.block_on(Etcd::connect(settings)).map_err(cluster)?;
        let store = Self {
            rt,
            etcd,
            node: node.to_string(),
            loaded: None,
            unresolved: Arc::new(AtomicU64::new(0)),
            iface: ClientIface::Absent,
            locators: Arc::new(watch::channel(Vec::new()).0),
            view: Arc::new(Mutex::new(NodeView::new(ViewSettings {
                node: String::new(),
                unresolved: Arc::new(AtomicU64::new(0)),
                iface: ClientIface::Absent,
                grace: Duration::ZERO,
                locators: Arc::new(watch::channel(Vec::new()).0),
            }))),
        };
        *store.view.lock().expect("not poisoned") = NodeView::new(store.view_settings());
        Ok(store)
    }

    /// Names the client-facing interface of the vAPs located on this node (an AP host).
    pub fn with_client_iface(mut self, iface: ClientIface) -> Self {
        self.iface = iface;
        *self.view.lock().expect("not poisoned") = NodeView::new(self.view_settings());
        self
    }

    fn view_settings(&self) -> ViewSettings {
        ViewSettings {
            node: self.node.clone(),
            unresolved: self.unresolved.clone(),
            iface: self.iface.clone(),
            grace: self.etcd.settings().vap_grace(),
            locators: self.locators.clone(),
        }
    }

    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// Shared bindings and vAP locations this node had to leave out (no endpoint of the
    /// locator's family, no client-facing interface, ...).
    pub fn unresolved(&self) -> u64 {
        self.unresolved.load(Ordering::Relaxed)
    }

    /// The etcd key of one of the agent's keys.
    fn etcd_key(&self, key: &Key) -> String {
        let l = self.etcd.layout();
        match key {
            Key::Binding(p) => l.key(Kind::Binding, &p.to_string()),
            Key::Vap(c) => l.key(Kind::VapLocation, &c.to_string()),
            k => l.key(Kind::Node, &format!("{}/{}", self.node, k.path())),
        }
    }

    /// What a commit writes for one delta: the operation (None when it only touches
    /// this node, a vAP leaving it), or why it is refused.
    fn plan_write(&self, v: &NodeView, d: &Delta, key: &str) -> Result<Option<TxnOp>> {
        let refuse = |e: String| Err(Error::Conflict(e));
        match d {
            Delta::Put {
                entry: Entry::Binding(b),
            } if v.anchored.get(&b.home).is_some_and(|a| a != b) => refuse(format!(
                "binding {} follows the vAP location of a client anchored on this node \
                 ({}/*): move the vAP instead (vap create on its new AP host)",
                b.home,
                self.etcd
                    .layout()
                    .dir(Kind::VapLocation)
                    .trim_end_matches('/')
            )),
            Delta::Delete {
                key: Key::Binding(home),
            } if v.anchored.contains_key(home) => refuse(format!(
                "binding {home} follows the vAP location of a client anchored on this node: \
                 delete or move the vAP instead"
            )),
            Delta::Put {
                entry: Entry::Binding(b),
            } => Ok(Some(TxnOp::put(
                key,
                serde_json::to_vec(&SharedBinding::from(b)).expect("serializes"),
                None,
            ))),
            Delta::Put {
                entry: Entry::Vap(r),
            } => {
                if r.forwarding().is_some() {
                    if v.leaving.contains_key(&r.client) && v.state.vap(&r.client) == Some(r) {
                        return Ok(None);
                    }
                    return refuse(format!(
                        "in cluster mode the vAP of {} forwards by itself when its location \
                         moves to another AP host (for vap_grace_ms); move it with vap create \
                         on the new AP host",
                        r.client
                    ));
                }
                let l = location_of(r, &self.node);
                let again = Placement::record(r.client, &l, &v.endpoints(), v.s.iface.get())
                    .map_err(|e| {
                        Error::Conflict(format!(
                            "the vAP of {} cannot be served here: {e}",
                            r.client
                        ))
                    })?;
                if again.iface != r.iface {
                    return refuse(format!(
                        "in cluster mode a vAP uses its AP host's client-facing interface \
                         ({}), not {}",
                        again.iface, r.iface
                    ));
                }
                if again.source != r.source {
                    return refuse(format!(
                        "in cluster mode a vAP's outer source is the one each AP host \
                         resolves ({}), not {}; pass no source",
                        again.source.map_or("none".into(), |a| a.to_string()),
                        r.source.map_or("none".into(), |a| a.to_string())
                    ));
                }
                Ok(Some(TxnOp::put(
                    key,
                    serde_json::to_vec(&l).expect("serializes"),
                    None,
                )))
            }
            Delta::Delete {
                key: Key::Vap(client),
            } if !v.placement.is_on(client, &self.node) => Ok(None),
            Delta::Put { entry } => Ok(Some(TxnOp::put(
                key,
                serde_json::to_vec(entry).expect("serializes"),
                None,
            ))),
            Delta::Delete { .. } => Ok(Some(TxnOp::delete(key, None))),
        }
    }
}

/// One node's view of everything a mirror holds.
fn view_of(s: &ViewSettings, state: &MirrorState) -> NodeView {
    let mut v = NodeView::new(s.clone());
    let all: Vec<Change> = state
        .records()
        .iter()
        .map(|((kind, id), value)| Change::Put {
            kind: *kind,
            id: id.clone(),
            value: value.clone(),
        })
        .collect();
    v.update(&Update {
        revision: state.revision(),
        resync: true,
        changes: all,
    });
    v.timers.clear();
    v
}

impl Store for EtcdStore {
    fn describe(&self) -> String {
        format!(
            "etcd {} prefix {} node {}",
            self.etcd.settings().endpoints.join(","),
            self.etcd.layout().prefix(),
            self.node
        )
    }

    fn load(&mut self) -> Result<Loaded> {
        let (kvs, revision) = self
            .rt
            .block_on(self.etcd.get_prefix(&self.etcd.layout().root()))
            .map_err(|e| {
                Error::Agent(format!(
                    "cannot load the desired state from etcd: {e} (a pinned data plane keeps \
                     forwarding; start the agent again when etcd is reachable)"
                ))
            })?;
        let mut state = MirrorState::new(self.etcd.layout().clone(), &KINDS);
        state.replace(
            kvs.into_iter().map(|kv| {
                let (k, v) = kv.into_key_value();
                (String::from_utf8_lossy(&k).into_owned(), v)
            }),
            revision,
        );
        let view = view_of(&self.view_settings(), &state);
        view.state.validate()?;
        let loaded = Loaded {
            state: view.state.clone(),
            revision: revision as Revision,
        };
        *self.view.lock().expect("not poisoned") = view;
        self.loaded = Some(state);
        Ok(loaded)
    }

    fn commit(
        &mut self,
        base: Revision,
        deltas: &[Delta],
        _after: &DesiredState,
    ) -> Result<Revision> {
        let mut compares = Vec::new();
        let mut ops = Vec::new();
        // vAPs that leave this node's state only (they moved away and are forwarded).
        let mut local = Vec::new();
        let checked;
        {
            // Not held across the request: the watcher takes it on the store's runtime.
            let view = self.view.lock().expect("not poisoned");
            checked = view.check_base(base as i64);
            for d in deltas {
                let key = self.etcd_key(&d.key());
                match self.plan_write(&view, d, &key)? {
                    Some(op) => {
                        compares.push(Compare::mod_revision(
                            key.as_str(),
                            CompareOp::Less,
                            checked + 1,
                        ));
                        ops.push(op);
                    }
                    None => local.push(*d),
                }
            }
        }
        let revision = if ops.is_empty() {
            base
        } else {
            let txn = Txn::new().when(compares).and_then(ops);
            let resp = self
                .rt
                .block_on(self.etcd.txn("commit", txn))
                .map_err(cluster)?;
            let current = resp.header().map_or(0, |h| h.revision()) as Revision;
            if !resp.succeeded() {
                return Err(Error::StoreConflict { base, current });
            }
            current
        };
        if !local.is_empty() {
            let mut view = self.view.lock().expect("not poisoned");
            for d in &local {
                if let Delta::Delete { key: Key::Vap(c) } = d {
                    view.leaving.remove(c);
                }
            }
            view.state.apply(&local);
        }
        Ok(revision)
    }

    fn watcher(&mut self, _from: Revision) -> Result<Option<Box<dyn StoreWatcher>>> {
        let start = match self.loaded.take() {
            Some(s) => s,
            None => MirrorState::new(self.etcd.layout().clone(), &KINDS),
        };
        let settings = self.view_settings();
        let view = self.view.clone();
        let (tx, rx) = mpsc::channel();
        self.rt
            .spawn(mirror::run(self.etcd.clone(), start, move |m, u| {
                let mut v = view.lock().expect("not poisoned");
                let event = if u.resync {
                    // A read again ends the grace periods: what left is removed now.
                    *v = view_of(&settings, m);
                    (!u.changes.is_empty()).then(|| StoreEvent::Replace {
                        revision: m.revision() as Revision,
                        state: v.state.clone(),
                    })
                } else {
                    let deltas = v.update(u);
                    (!deltas.is_empty()).then_some(StoreEvent::Deltas {
                        revision: u.revision as Revision,
                        deltas,
                    })
                };
                // Sent under the lock, so a grace timer's removal comes after it.
                if let Some(e) = event {
                    v.delta_revision = v.revision;
                    let _ = tx.send(e);
                }
                for (client, generation) in std::mem::take(&mut v.timers) {
                    let (view, tx, grace) = (view.clone(), tx.clone(), settings.grace);
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        let mut v = view.lock().expect("not poisoned");
                        if let Some(d) = v.grace_over(client, generation) {
                            tracing::info!(%client, "grace period over: vAP removed");
                            v.delta_revision = v.revision;
                            let _ = tx.send(StoreEvent::Deltas {
                                revision: v.revision as Revision,
                                deltas: vec![d],
                            });
                        }
                    });
                }
            }));
        Ok(Some(Box::new(EtcdWatcher { rx })))
    }

    fn shared(&self) -> bool {
        true
    }

    fn hold_liveness(&mut self, state: &DesiredState) {
        self.locators
            .send_replace(state.endpoints().copied().collect());
        self.rt.spawn(liveness::hold_following(
            self.etcd.clone(),
            self.node.clone(),
            self.locators.subscribe(),
        ));
    }

    fn health(&self) -> Option<Arc<dyn StoreHealth>> {
        Some(self.etcd.health().clone())
    }

    fn vap_grace(&self) -> Option<Duration> {
        Some(self.etcd.settings().vap_grace())
    }
}

struct EtcdWatcher {
    rx: mpsc::Receiver<StoreEvent>,
}

impl StoreWatcher for EtcdWatcher {
    fn next(&mut self) -> Result<StoreEvent> {
        self.rx
            .recv()
            .map_err(|_| Error::Agent("the etcd watch stopped".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(node: &str, iface: Option<&str>) -> ViewSettings {
        ViewSettings {
            node: node.into(),
            unresolved: Arc::new(AtomicU64::new(0)),
            iface: iface.map_or(ClientIface::Absent, |n| {
                ClientIface::Named(n.parse().unwrap())
            }),
            grace: Duration::from_millis(500),
            locators: Arc::new(watch::channel(Vec::new()).0),
        }
    }

    fn put(kind: Kind, id: &str, json: &str) -> Change {
        Change::Put {
            kind,
            id: id.into(),
            value: json.as_bytes().to_vec(),
        }
    }

    fn update(v: &mut NodeView, revision: i64, changes: Vec<Change>) -> Vec<Delta> {
        v.update(&Update {
            revision,
            resync: false,
            changes,
        })
    }

    const CLIENT: &str = "00:16:3e:00:00:01";

    fn location(host: &str) -> Change {
        put(
            Kind::VapLocation,
            CLIENT,
            &format!(
                r#"{{"ap_host":"{host}","vap_mac":"02:56:44:00:00:01","ipv4":"10.1.0.5","anchor":"192.0.2.1"}}"#
            ),
        )
    }

    /// Node `name` with endpoint `ep`, and the host records of ap1 and ap2.
    fn node(name: &str, ep: &str, iface: Option<&str>) -> NodeView {
        let mut v = NodeView::new(settings(name, iface));
        update(
            &mut v,
            1,
            vec![
                put(
                    Kind::Node,
                    &format!("{name}/endpoints/{ep}"),
                    &format!(r#"{{"kind":"endpoint","addr":"{ep}"}}"#),
                ),
                put(
                    Kind::Host,
                    "ap1",
                    r#"{"state":"up","locators":["192.0.2.11"]}"#,
                ),
                put(
                    Kind::Host,
                    "ap2",
                    r#"{"state":"up","locators":["192.0.2.12"]}"#,
                ),
            ],
        );
        v
    }

    #[test]
    fn a_vap_follows_its_location_on_ap_hosts_and_anchor() {
        let c: Mac = CLIENT.parse().unwrap();
        let home: Prefix = "10.1.0.5/32".parse().unwrap();
        let mut ap1 = node("ap1", "192.0.2.11", Some("wlan0"));
        let mut ap2 = node("ap2", "192.0.2.12", Some("wlan1"));
        let mut gw = node("gw", "192.0.2.1", None);
        for v in [&mut ap1, &mut ap2, &mut gw] {
            update(v, 2, vec![location("ap1")]);
        }
        let r = *ap1.state.vap(&c).expect("served on ap1");
        assert_eq!(
            (r.source, r.iface.as_str()),
            (Some("192.0.2.11".parse().unwrap()), "wlan0")
        );
        assert!(ap2.state.vap(&c).is_none() && gw.state.vap(&c).is_none());
        let b = *gw.state.binding(&home).expect("bound on its anchor");
        assert_eq!(b.locator.to_string(), "192.0.2.11");
        assert!(
            ap1.state.binding(&home).is_none(),
            "only the anchor binds it"
        );

        // Moved to ap2: ap2 serves it, the anchor points at ap2, ap1 forwards for a while.
        for v in [&mut ap1, &mut ap2, &mut gw] {
            update(v, 3, vec![location("ap2")]);
        }
        assert_eq!(ap2.state.vap(&c).unwrap().iface.as_str(), "wlan1");
        assert_eq!(
            gw.state.binding(&home).unwrap().locator.to_string(),
            "192.0.2.12"
        );
        let f = *ap1.state.vap(&c).expect("forwarding on ap1");
        assert_eq!(
            f.forward.map(|a| a.to_string()).as_deref(),
            Some("192.0.2.12")
        );
        let timers = std::mem::take(&mut ap1.timers);
        assert_eq!(timers.len(), 1);
        // A commit may not point the anchor's binding elsewhere.
        let wrong = BindingSpec {
            locator: "192.0.2.11".parse().unwrap(),
            ..b
        };
        assert!(gw.anchored.get(&home).is_some_and(|a| *a != wrong));
        // The grace period ends: removed; a stale timer does nothing.
        assert_eq!(ap1.grace_over(c, timers[0].1 + 1), None);
        assert_eq!(
            ap1.grace_over(c, timers[0].1),
            Some(Delta::Delete { key: Key::Vap(c) })
        );
        assert!(ap1.state.vap(&c).is_none());

        // Deleted: gone from ap2 at once, the anchor's binding with it.
        for v in [&mut ap2, &mut gw] {
            update(
                v,
                4,
                vec![Change::Delete {
                    kind: Kind::VapLocation,
                    id: CLIENT.into(),
                }],
            );
        }
        assert!(
            ap2.state.vap(&c).is_none(),
            "a deleted location is not forwarded"
        );
        assert!(gw.state.binding(&home).is_none());
    }

    #[test]
    fn a_location_on_a_node_without_client_facing_interface_is_left_out_once() {
        let mut gw = node("gw", "192.0.2.1", None);
        update(&mut gw, 2, vec![location("gw")]);
        assert_eq!(gw.state.vap_count(), 0);
        // No client-facing interface, and (as its anchor) no host record of `gw`.
        assert_eq!(gw.s.unresolved.load(Ordering::Relaxed), 2);
        assert!(
            gw.left_out
                .iter()
                .any(|r| r.contains("no client-facing interface"))
        );
        update(
            &mut gw,
            3,
            vec![put(Kind::Host, "ap3", r#"{"state":"up"}"#)],
        );
        assert_eq!(gw.s.unresolved.load(Ordering::Relaxed), 2, "counted once");
    }

    #[test]
    fn a_nodes_translation_configuration_is_its_own() {
        let entry = |json: &str| -> Vec<u8> { json.as_bytes().to_vec() };
        let put = |node: &str, path: &str, json: &str| Change::Put {
            kind: Kind::Node,
            id: format!("{node}/{path}"),
            value: entry(json),
        };
        let mut v = NodeView::new(settings("gw1", None));
        let deltas = v.update(&Update {
            revision: 3,
            resync: true,
            changes: vec![
                put(
                    "gw1",
                    "natpt/eamt/10.0.0.0/24",
                    r#"{"kind":"natpt","natpt":"eam","ipv6":"2001:db8::/120","ipv4":"10.0.0.0/24"}"#,
                ),
                put(
                    "gw1",
                    "natpt/pools/192.0.2.0/25",
                    r#"{"kind":"natpt","natpt":"pool","prefix":"192.0.2.0/25"}"#,
                ),
                put(
                    "gw2",
                    "natpt/pools/198.51.100.0/24",
                    r#"{"kind":"natpt","natpt":"pool","prefix":"198.51.100.0/24"}"#,
                ),
            ],
        });
        assert_eq!(deltas.len(), 2, "{deltas:?}");
        assert_eq!(v.state.natpt().eamt().len(), 1);
        assert_eq!(
            v.state.natpt().pool_prefixes(),
            vec!["192.0.2.0/25".parse::<Prefix>().unwrap()]
        );
        // The etcd keys are the node's: PREFIX/nodes/NAME/natpt/....
        let key = Key::Natpt(crate::agent::natpt_state::NatptKey::Pool(
            "192.0.2.0/25".parse().unwrap(),
        ));
        assert_eq!(key.path(), "natpt/pools/192.0.2.0/25");
    }
}
