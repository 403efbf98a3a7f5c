//! The controller's watchdog: marks a node down when its liveness lease expired (its
//! `PREFIX/alive/NAME` key is gone, see [`super::liveness`]) and hands the clients whose
//! vAP it served to other nodes by rewriting their `PREFIX/vaps/CLIENT_MAC` locations.
//!
//! [`plan`] is the pure decision (unit tested): a node is dead when it has a host record
//! and no `alive` key; a dead node still marked up is marked down; each vAP on a dead
//! node moves to a node that is up and alive: one of the dead node's `neighbours` when
//! one is, else any, the one with the fewest vAPs (ties by name). With no node left, the
//! vAP stays where it is (counted as stranded) until one comes.
//!
//! [`run`] mirrors the hosts, alive keys and vAP locations and carries the plan out after
//! every change: each write is a transaction that checks the record is still what the
//! plan read (and, for a move, that the target is still alive), so a node registering
//! again or a concurrent handover wins over the watchdog.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde::Serialize;

use super::{
    client::Etcd,
    error::Result,
    keys::Kind,
    mirror::{self, MirrorState},
    records::{HostRecord, HostState, VapLocation, unix_now},
};

/// One write the watchdog makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The node's lease expired: mark it down.
    MarkDown {
        node: String,
        old: Vec<u8>,
        new: HostRecord,
    },
    /// Move a client's vAP off a dead node.
    Move {
        client: String,
        old: Vec<u8>,
        new: VapLocation,
    },
}

/// What the watchdog would do with the records of `m`, and the vAPs it cannot move.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Clients on dead nodes with no node to take them.
    pub stranded: Vec<String>,
}

/// Decides what to write; see the module documentation.
pub fn plan(m: &MirrorState) -> Plan {
    let hosts: BTreeMap<&str, (HostRecord, &[u8])> = m
        .of_kind(Kind::Host)
        .filter_map(|(id, v)| {
            serde_json::from_slice::<HostRecord>(v)
                .ok()
                .map(|h| (id, (h, v)))
        })
        .collect();
    let alive: BTreeSet<&str> = m.of_kind(Kind::Alive).map(|(id, _)| id).collect();
    let dead: BTreeSet<&str> = hosts
        .keys()
        .copied()
        .filter(|h| !alive.contains(h))
        .collect();
    let candidates: Vec<&str> = hosts
        .iter()
        .filter(|(id, (h, _))| h.state == HostState::Up && alive.contains(*id))
        .map(|(id, _)| *id)
        .collect();
    let mut out = Plan::default();
    for node in &dead {
        let (h, old) = &hosts[node];
        if h.state == HostState::Up {
            out.actions.push(Action::MarkDown {
                node: node.to_string(),
                old: old.to_vec(),
                new: HostRecord {
                    state: HostState::Down,
                    since_unix: unix_now(),
                    ..h.clone()
                },
            });
        }
    }
    let vaps: Vec<(&str, VapLocation, &[u8])> = m
        .of_kind(Kind::VapLocation)
        .filter_map(|(id, v)| {
            serde_json::from_slice::<VapLocation>(v)
                .ok()
                .map(|l| (id, l, v))
        })
        .collect();
    let mut load: BTreeMap<&str, usize> = candidates.iter().map(|c| (*c, 0)).collect();
    for (_, l, _) in &vaps {
        if let Some(n) = load.get_mut(l.ap_host.as_str()) {
            *n += 1;
        }
    }
    for (client, l, old) in vaps {
        if !dead.contains(l.ap_host.as_str()) {
            continue;
        }
        let neighbours = &hosts[l.ap_host.as_str()].0.neighbours;
        let pick = |only_neighbours: bool| {
            candidates
                .iter()
                .copied()
                .filter(|c| !only_neighbours || neighbours.iter().any(|n| n == c))
                .min_by_key(|c| (load[c], *c))
        };
        let Some(target) = pick(true).or_else(|| pick(false)) else {
            out.stranded.push(client.to_string());
            continue;
        };
        *load.get_mut(target).expect("a candidate") += 1;
        out.actions.push(Action::Move {
            client: client.to_string(),
            old: old.to_vec(),
            new: VapLocation {
                ap_host: target.to_string(),
                rehomed: l.rehomed + 1,
                ..l
            },
        });
    }
    out
}

/// Counters of what the watchdog did.
#[derive(Debug, Default)]
pub struct Counters {
    pub marked_down: AtomicU64,
    pub moved: AtomicU64,
    /// Writes refused because the record changed since the plan read it.
    pub superseded: AtomicU64,
    pub stranded: AtomicU64,
    pub errors: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub marked_down: u64,
    pub moved: u64,
    pub superseded: u64,
    pub stranded: u64,
    pub errors: u64,
}

impl Counters {
    pub fn report(&self) -> Report {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Report {
            marked_down: g(&self.marked_down),
            moved: g(&self.moved),
            superseded: g(&self.superseded),
            stranded: g(&self.stranded),
            errors: g(&self.errors),
        }
    }
}

/// Carries out one action; false when the record changed meanwhile (superseded).
async fn act(etcd: &Etcd, a: &Action) -> Result<bool> {
    let layout = etcd.layout();
    let txn = match a {
        Action::MarkDown { node, old, new } => {
            let key = layout.key(Kind::Host, node);
            Txn::new()
                .when([
                    Compare::value(key.as_str(), CompareOp::Equal, old.clone()),
                    Compare::version(layout.key(Kind::Alive, node), CompareOp::Equal, 0),
                ])
                .and_then([TxnOp::put(
                    key,
                    serde_json::to_vec(new).expect("a host record serializes"),
                    None,
                )])
        }
        Action::Move { client, old, new } => {
            let key = layout.key(Kind::VapLocation, client);
            Txn::new()
                .when([
                    Compare::value(key.as_str(), CompareOp::Equal, old.clone()),
                    Compare::version(layout.key(Kind::Alive, &new.ap_host), CompareOp::Greater, 0),
                ])
                .and_then([TxnOp::put(
                    key,
                    serde_json::to_vec(new).expect("a vAP location serializes"),
                    None,
                )])
        }
    };
    Ok(etcd.txn("watchdog", txn).await?.succeeded())
}

/// Carries out the plan of `m`, counting every outcome.
pub async fn sweep(etcd: &Etcd, m: &MirrorState, counters: &Counters) {
    let p = plan(m);
    counters
        .stranded
        .store(p.stranded.len() as u64, Ordering::Relaxed);
    for a in &p.actions {
        match act(etcd, a).await {
            Ok(true) => match a {
                Action::MarkDown { node, .. } => {
                    counters.marked_down.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%node, "node marked down: its liveness lease expired");
                }
                Action::Move { client, new, .. } => {
                    counters.moved.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%client, to = %new.ap_host, "vAP handed to a neighbour");
                }
            },
            Ok(false) => {
                counters.superseded.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("watchdog: {e}");
            }
        }
    }
    if !p.stranded.is_empty() {
        tracing::warn!(
            clients = p.stranded.len(),
            "vAPs on dead nodes and no node up to take them"
        );
    }
}

/// Watches the hosts, alive keys and vAP locations and sweeps after every change, for as
/// long as the task runs (abort it to stop).
pub async fn run(etcd: Etcd, counters: Arc<Counters>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<MirrorState>();
    let state = MirrorState::new(
        etcd.layout().clone(),
        &[Kind::Host, Kind::Alive, Kind::VapLocation],
    );
    let mirror = tokio::spawn(mirror::run(etcd.clone(), state, move |m, _| {
        let _ = tx.send(m.clone());
    }));
    while let Some(mut m) = rx.recv().await {
        // Act on the newest state only.
        while let Ok(newer) = rx.try_recv() {
            m = newer;
        }
        sweep(&etcd, &m, &counters).await;
    }
    mirror.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::keys::KeyLayout;

    fn host(state: HostState, neighbours: &[&str]) -> Vec<u8> {
        serde_json::to_vec(&HostRecord {
            state,
            locators: Vec::new(),
            neighbours: neighbours.iter().map(|s| s.to_string()).collect(),
            since_unix: 1,
        })
        .unwrap()
    }

    fn vap(on: &str) -> Vec<u8> {
        serde_json::to_vec(&VapLocation {
            ap_host: on.into(),
            vap_mac: "02:56:44:00:00:01".into(),
            ipv4: None,
            ipv6: None,
            anchor: None,
            breakout: false,
            rehomed: 0,
        })
        .unwrap()
    }

    fn mirror(records: Vec<(&str, Vec<u8>)>) -> MirrorState {
        let layout = KeyLayout::new("/w").unwrap();
        let mut m = MirrorState::new(layout, &[Kind::Host, Kind::Alive, Kind::VapLocation]);
        m.replace(records.into_iter().map(|(k, v)| (format!("/w/{k}"), v)), 5);
        m
    }

    fn moves(p: &Plan) -> Vec<(String, String)> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Move { client, new, .. } => Some((client.clone(), new.ap_host.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_node_without_its_alive_key_is_marked_down_and_its_vaps_go_to_neighbours() {
        let m = mirror(vec![
            ("hosts/a", host(HostState::Up, &["c"])),
            ("hosts/b", host(HostState::Up, &[])),
            ("hosts/c", host(HostState::Up, &[])),
            ("alive/b", b"b".to_vec()),
            ("alive/c", b"c".to_vec()),
            ("vaps/m1", vap("a")),
            ("vaps/m2", vap("a")),
            ("vaps/m3", vap("b")),
        ]);
        let p = plan(&m);
        assert!(matches!(&p.actions[0], Action::MarkDown { node, new, .. }
            if node == "a" && new.state == HostState::Down && new.neighbours == ["c"]));
        // Both to the neighbour c, though b has no more vAPs than c.
        assert_eq!(
            moves(&p),
            [("m1".into(), "c".into()), ("m2".into(), "c".into())]
        );
        assert!(p.stranded.is_empty());
    }

    #[test]
    fn without_neighbours_the_least_loaded_node_takes_each_vap() {
        let m = mirror(vec![
            ("hosts/a", host(HostState::Down, &[])),
            ("hosts/b", host(HostState::Up, &[])),
            ("hosts/c", host(HostState::Up, &[])),
            ("alive/b", b"b".to_vec()),
            ("alive/c", b"c".to_vec()),
            ("vaps/m1", vap("a")),
            ("vaps/m2", vap("a")),
            ("vaps/m3", vap("a")),
            ("vaps/m4", vap("b")),
        ]);
        let p = plan(&m);
        // Already down: no second mark; its vAPs still move.
        assert_eq!(
            moves(&p),
            [
                ("m1".into(), "c".into()),
                ("m2".into(), "b".into()),
                ("m3".into(), "c".into())
            ]
        );
        assert_eq!(p.actions.len(), 3);
    }

    #[test]
    fn nothing_to_do_while_every_node_lives_and_vaps_are_stranded_without_any() {
        let live = mirror(vec![
            ("hosts/a", host(HostState::Up, &[])),
            ("alive/a", b"a".to_vec()),
            ("vaps/m1", vap("a")),
        ]);
        assert_eq!(plan(&live), Plan::default());
        let none = mirror(vec![
            ("hosts/a", host(HostState::Up, &[])),
            ("vaps/m1", vap("a")),
        ]);
        let p = plan(&none);
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.stranded, ["m1"]);
    }
}
