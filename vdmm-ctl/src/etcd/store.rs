//! [`EtcdStore`]: the agent's [`Store`] on etcd, for a node in a cluster.
//!
//! Bindings are shared by every node: `PREFIX/bindings/HOME` holds the home prefix, the
//! locator, whether it gets a slow-path route, and the outer source it was made with as a
//! hint. Each node resolves the source for itself: the hint when it is one of its own
//! endpoints of the locator's family, else its lowest such endpoint; a node without one
//! leaves the binding out (logged, counted in [`EtcdStore::unresolved`]). What is a
//! node's own (its endpoints, peers, tunnel settings, vAPs, translation configuration)
//! lives under `PREFIX/nodes/NAME/` with the agent's key paths (`endpoints/ADDR`,
//! `peers/ADDR`, `tunnel`, `vaps/CLIENT_MAC`, `natpt/...`).
//!
//! A commit is one transaction that checks that none of the keys it writes changed
//! since the revision the batch was planned at (else [`Error::StoreConflict`]). While
//! etcd is unreachable commits are refused at once with a clear error and the watcher
//! keeps the agent on its last state; it catches up (a `Replace` of the whole state)
//! when etcd is back. [`Store::hold_liveness`] holds the node's lease
//! ([`super::liveness`]) on the store's runtime.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
};

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::{
    client::Etcd,
    config::EtcdSettings,
    error::ClusterError,
    keys::Kind,
    liveness::{self, Registration},
    mirror::{self, Change, MirrorState, Update},
};
use crate::{
    addr::Prefix,
    agent::{
        state::{BindingSpec, Delta, DesiredState, Entry, Key, addr_text},
        store::{Loaded, Revision, Store, StoreEvent, StoreHealth, StoreWatcher},
    },
    error::{Error, Result},
    maps::resolve_source,
};

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

/// The translation of the shared records into one node's desired state.
#[derive(Debug)]
struct NodeView {
    node: String,
    shared: BTreeMap<Prefix, SharedBinding>,
    state: DesiredState,
    unresolved: Arc<AtomicU64>,
}

impl NodeView {
    fn new(node: &str, unresolved: Arc<AtomicU64>) -> Self {
        Self {
            node: node.to_string(),
            shared: BTreeMap::new(),
            state: DesiredState::default(),
            unresolved,
        }
    }

    /// This node's binding for a shared one, if it has an endpoint to send it from.
    fn resolve(&self, b: &SharedBinding) -> Option<BindingSpec> {
        let eps: Vec<IpAddr> = self.state.endpoints().copied().collect();
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
                self.unresolved.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(home = %b.home, "shared binding left out on this node: {e}");
                None
            }
        }
    }

    /// The delta that makes this node's binding for `home` what the shared one says.
    fn binding_delta(&self, home: Prefix) -> Option<Delta> {
        let want = self.shared.get(&home).and_then(|b| self.resolve(b));
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

    /// Applies one change of the mirror; returns the deltas of this node's state.
    fn change(&mut self, c: &Change) -> std::result::Result<Vec<Delta>, ClusterError> {
        let bad = |detail: String| ClusterError::BadRecord {
            key: format!("{}/{}", c.kind(), c.id()),
            detail,
        };
        let mut deltas = Vec::new();
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
                deltas.extend(self.binding_delta(home));
            }
            Kind::Node => {
                let Some(path) = c.id().strip_prefix(&format!("{}/", self.node)) else {
                    return Ok(deltas);
                };
                let key = Key::from_path(path).map_err(|e| bad(e.to_string()))?;
                let delta = match c {
                    Change::Put { value, .. } => Delta::Put {
                        entry: serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?,
                    },
                    Change::Delete { .. } => Delta::Delete { key },
                };
                self.state.apply(&[delta]);
                deltas.push(delta);
                if matches!(key, Key::Endpoint(_)) {
                    // Sources follow the endpoints.
                    let homes: Vec<Prefix> = self.shared.keys().copied().collect();
                    for home in homes {
                        if let Some(d) = self.binding_delta(home) {
                            self.state.apply(&[d]);
                            deltas.push(d);
                        }
                    }
                }
                return Ok(deltas);
            }
            _ => {}
        }
        self.state.apply(&deltas);
        Ok(deltas)
    }

    /// Applies a mirror update; bad records are logged and skipped.
    fn update(&mut self, u: &Update) -> Vec<Delta> {
        let mut out = Vec::new();
        // Node records first, so bindings resolve against the new endpoints.
        let (own, shared): (Vec<&Change>, Vec<&Change>) =
            u.changes.iter().partition(|c| c.kind() == Kind::Node);
        for c in own.into_iter().chain(shared) {
            match self.change(c) {
                Ok(d) => out.extend(d),
                Err(e) => tracing::warn!("{e}"),
            }
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
}

const KINDS: [Kind; 2] = [Kind::Binding, Kind::Node];

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
        Ok(Self {
            rt,
            etcd,
            node: node.to_string(),
            loaded: None,
            unresolved: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// Shared bindings this node had to leave out (no endpoint of the locator's family).
    pub fn unresolved(&self) -> u64 {
        self.unresolved.load(Ordering::Relaxed)
    }

    /// The etcd key of one of the agent's keys.
    fn etcd_key(&self, key: &Key) -> String {
        let l = self.etcd.layout();
        match key {
            Key::Binding(p) => l.key(Kind::Binding, &p.to_string()),
            k => l.key(Kind::Node, &format!("{}/{}", self.node, k.path())),
        }
    }
}

/// One node's view of everything a mirror holds.
fn view_of(node: &str, unresolved: &Arc<AtomicU64>, state: &MirrorState) -> NodeView {
    let mut v = NodeView::new(node, unresolved.clone());
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
        let view = view_of(&self.node, &self.unresolved, &state);
        view.state.validate()?;
        self.loaded = Some(state);
        Ok(Loaded {
            state: view.state,
            revision: revision as Revision,
        })
    }

    fn commit(
        &mut self,
        base: Revision,
        deltas: &[Delta],
        _after: &DesiredState,
    ) -> Result<Revision> {
        let mut compares = Vec::new();
        let mut ops = Vec::new();
        for d in deltas {
            let key = self.etcd_key(&d.key());
            compares.push(Compare::mod_revision(
                key.as_str(),
                CompareOp::Less,
                base as i64 + 1,
            ));
            ops.push(match d {
                Delta::Put {
                    entry: Entry::Binding(b),
                } => TxnOp::put(
                    key.as_str(),
                    serde_json::to_vec(&SharedBinding::from(b)).expect("serializes"),
                    None,
                ),
                Delta::Put { entry } => TxnOp::put(
                    key.as_str(),
                    serde_json::to_vec(entry).expect("serializes"),
                    None,
                ),
                Delta::Delete { .. } => TxnOp::delete(key.as_str(), None),
            });
        }
        let txn = Txn::new().when(compares).and_then(ops);
        let resp = self
            .rt
            .block_on(self.etcd.txn("commit", txn))
            .map_err(cluster)?;
        let current = resp.header().map_or(0, |h| h.revision()) as Revision;
        if !resp.succeeded() {
            return Err(Error::StoreConflict { base, current });
        }
        Ok(current)
    }

    fn watcher(&mut self, _from: Revision) -> Result<Option<Box<dyn StoreWatcher>>> {
        let start = match self.loaded.take() {
            Some(s) => s,
            None => MirrorState::new(self.etcd.layout().clone(), &KINDS),
        };
        let (node, unresolved) = (self.node.clone(), self.unresolved.clone());
        let mut view = NodeView::new(&node, unresolved.clone());
        let (tx, rx) = mpsc::channel();
        self.rt
            .spawn(mirror::run(self.etcd.clone(), start, move |m, u| {
                let event = if u.resync {
                    view = view_of(&node, &unresolved, m);
                    if u.changes.is_empty() {
                        // Read again, nothing changed: the agent is current.
                        return;
                    }
                    StoreEvent::Replace {
                        revision: m.revision() as Revision,
                        state: view.state.clone(),
                    }
                } else {
                    let deltas = view.update(u);
                    if deltas.is_empty() {
                        return;
                    }
                    StoreEvent::Deltas {
                        revision: u.revision as Revision,
                        deltas,
                    }
                };
                let _ = tx.send(event);
            }));
        Ok(Some(Box::new(EtcdWatcher { rx })))
    }

    fn shared(&self) -> bool {
        true
    }

    fn hold_liveness(&mut self, state: &DesiredState) {
        let reg = Registration {
            node: self.node.clone(),
            locators: state.endpoints().copied().collect(),
        };
        self.rt.spawn(liveness::hold(self.etcd.clone(), reg));
    }

    fn health(&self) -> Option<Arc<dyn StoreHealth>> {
        Some(self.etcd.health().clone())
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

    #[test]
    fn a_nodes_translation_configuration_is_its_own() {
        let entry = |json: &str| -> Vec<u8> { json.as_bytes().to_vec() };
        let put = |node: &str, path: &str, json: &str| Change::Put {
            kind: Kind::Node,
            id: format!("{node}/{path}"),
            value: entry(json),
        };
        let mut v = NodeView::new("gw1", Arc::new(AtomicU64::new(0)));
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
