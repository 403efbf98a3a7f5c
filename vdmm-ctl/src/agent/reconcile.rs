//! Keeps the pinned maps and vdmm's kernel routes in step with the desired state.
//!
//! - [`Reconciler::full`] compares everything (endpoints, peers, bindings, tunnel
//!   settings, the bindings' slow-path routes into `vdmm0`, the vAPs and their addresses)
//!   and changes only what differs:
//!   missing entries are added, stale ones removed, different ones overwritten in place.
//!   Equal entries are not touched, so a restarted agent adopts what is pinned without a
//!   gap in forwarding; nothing is detached or reloaded.
//! - [`Reconciler::apply`] writes one committed batch of deltas.
//! - [`Reconciler::plan_routes`] works out the slow-path routes of new bindings before
//!   the batch is committed, so a binding whose locator has no route is refused, as
//!   `vdmm-ctl binding add` refuses it.
//!
//! Map writes use the same layouts as [`crate::maps`], opened from the same pins (vAPs
//! through [`crate::vap_sync`]); only the agent's own routes (protocol 118, into `vdmm0`)
//! are ever removed.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use aya::maps::{Array, HashMap as BpfHashMap, MapData};
use serde::Serialize;
use vdmm_common::{Binding, IpAddrKey, TunnelConfig, maps as names, tunnel::AddressFlags};

use super::{
    natpt_reconcile::NatptMaps,
    netlink::RouteBatch,
    state::{BindingSpec, Delta, DesiredState, Entry, Key, Op, TunnelSettings},
    vap_state::VapCreate,
};
use crate::{
    addr::{Family, Prefix},
    binding_table::BindingTable,
    device::DEVICE,
    error::{Error, Result},
    maps::{Dataplane, errno, open_map},
    pin::PinDir,
    routes::{Netlink, SlowPathRoute},
    vap::{Mac, client_iface},
    vap_record::VapRecord,
    vap_sync::{Interfaces, matches},
};

/// What a reconcile or an apply changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Map entries written because they were missing.
    pub added: u64,
    /// Map entries overwritten because they differed.
    pub updated: u64,
    /// Map entries removed because they are not desired.
    pub removed: u64,
    pub routes_installed: u64,
    pub routes_removed: u64,
    /// What failed (the rest was still done); retried by the next reconcile.
    pub errors: Vec<String>,
}

impl Report {
    pub fn changes(&self) -> u64 {
        self.added + self.updated + self.removed + self.routes_installed + self.routes_removed
    }
}

/// The maps the agent writes, and its netlink sockets.
pub struct Reconciler {
    endpoints: BpfHashMap<MapData, IpAddrKey, AddressFlags>,
    peers: BpfHashMap<MapData, IpAddrKey, AddressFlags>,
    bindings: BindingTable,
    config: Array<MapData, TunnelConfig>,
    /// The vAP maps (and the pins, for the default client-facing interface).
    dp: Dataplane,
    nl: Netlink,
    batch: RouteBatch,
    /// Route MTU and egress interface per locator, until the next link change.
    paths: HashMap<IpAddr, (u32, String, u32)>,
    slow_path: Option<u32>,
    /// The translator's maps.
    natpt: NatptMaps,
}

fn value(b: &BindingSpec) -> Binding {
    Binding::new(IpAddrKey::from(b.locator), IpAddrKey::from(b.source))
}

fn tunnel_config(t: &TunnelSettings, current: &TunnelConfig) -> TunnelConfig {
    TunnelConfig {
        outer_hop_limit: t.outer_hop_limit,
        _reserved: current._reserved,
        icmp_source_v4: t.icmp_source_v4.map_or([0; 4], |a| a.octets()),
        icmp_source_v6: t.icmp_source_v6.map_or([0; 16], |a| a.octets()),
    }
}

fn map_error(what: &str, e: aya::maps::MapError) -> Error {
    match errno(&e) {
        Some(libc::E2BIG) | Some(libc::ENOSPC) => Error::Conflict(format!("{what} is full")),
        _ => Error::ebpf(format!("cannot update {what}"), e),
    }
}

/// What the maps hold now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actual {
    pub endpoints: Vec<IpAddr>,
    pub peers: Vec<IpAddr>,
    pub bindings: BTreeMap<Prefix, (IpAddr, IpAddr)>,
    pub config: TunnelConfig,
}

impl Reconciler {
    /// Opens the maps pinned under `pins` and the netlink sockets.
    pub fn open(pins: &PinDir) -> Result<Self> {
        Ok(Self {
            endpoints: open_map(pins, names::ENDPOINTS)?,
            peers: open_map(pins, names::PEERS)?,
            bindings: BindingTable::open(pins)?,
            config: open_map(pins, names::CONFIG)?,
            dp: Dataplane::open(pins)?,
            nl: Netlink::open()?,
            batch: RouteBatch::open()?,
            paths: HashMap::new(),
            slow_path: None,
            natpt: NatptMaps::open(pins)?,
        })
    }

    /// Forgets what it knows about interfaces and paths (after a link change).
    pub fn forget_paths(&mut self) {
        self.paths.clear();
        self.slow_path = None;
    }

    /// Reads the maps.
    pub fn actual(&self) -> Result<Actual> {
        let read = |what: &str| {
            let what = what.to_string();
            move |e| Error::ebpf(format!("cannot read {what}"), e)
        };
        let mut a = Actual::default();
        for k in self.endpoints.keys() {
            a.endpoints
                .push(IpAddr::from(k.map_err(read("the endpoints"))?));
        }
        for k in self.peers.keys() {
            a.peers.push(IpAddr::from(k.map_err(read("the peers"))?));
        }
        for (home, v) in self.bindings.entries()? {
            a.bindings
                .insert(home, (IpAddr::from(v.locator), IpAddr::from(v.source)));
        }
        a.config = self.config.get(&0, 0).map_err(read("the configuration"))?;
        Ok(a)
    }

    /// The ops that make an empty desired state equal to what the maps hold (adopting a
    /// data plane programmed before the agent's first start). Bindings keep their sources;
    /// they get a route when vdmm's route for them exists.
    pub fn import_ops(&mut self) -> Result<Vec<Op>> {
        let a = self.actual()?;
        let routed: Vec<Prefix> = if a.bindings.is_empty() {
            Vec::new()
        } else {
            self.nl.vdmm_routes()?.into_iter().map(|r| r.home).collect()
        };
        let mut ops = Vec::new();
        for addr in &a.endpoints {
            ops.push(Op::EndpointAdd { addr: *addr });
        }
        for addr in &a.peers {
            ops.push(Op::PeerAdd { addr: *addr });
        }
        for (home, (locator, source)) in &a.bindings {
            ops.push(Op::BindingAdd {
                home: *home,
                locator: *locator,
                source: Some(*source),
                replace: false,
                route: routed.contains(home),
            });
        }
        let cfg = &a.config;
        let mut sources = Vec::new();
        let mut clear = Vec::new();
        for (f, name) in [
            (Family::V4, super::state::FamilyName::Ipv4),
            (Family::V6, super::state::FamilyName::Ipv6),
        ] {
            match crate::maps::icmp_source(cfg, f) {
                Some(a) => sources.push(a),
                None => clear.push(name),
            }
        }
        ops.push(Op::ConfigSet {
            outer_hop_limit: Some(cfg.outer_hop_limit as u32),
            icmp_sources: sources,
            clear_icmp_sources: clear,
        });
        // vAPs whose interface is gone are left out (the reconcile removes them).
        for v in self.dp.vaps()?.iter().filter_map(VapRecord::of_entry) {
            ops.push(Op::VapCreate(VapCreate {
                client: v.client,
                ipv4: v.ipv4.map(IpAddr::V4),
                ipv6: v.ipv6.map(IpAddr::V6),
                anchor: v.anchor,
                source: v.source,
                vap_mac: Some(v.vap_mac),
                iface: Some(v.iface.to_string()),
                breakout: v.breakout,
            }));
            if let Some((to, source)) = v.forwarding() {
                ops.push(Op::VapForward {
                    client: v.client,
                    to: Some(to),
                    source: Some(source),
                });
            }
        }
        ops.extend(self.natpt.import_ops()?.into_iter().map(Op::Natpt));
        Ok(ops)
    }

    /// `ops` with the client-facing interface of every vAP create named: the one given
    /// (which must exist), or else the one interface `vdmm_vap` is attached to. Borrowed
    /// unchanged when there is no vAP create. An error names the op (1-based) like
    /// [`DesiredState::plan`]'s.
    pub fn name_vap_ifaces<'a>(&self, ops: &'a [Op]) -> Result<std::borrow::Cow<'a, [Op]>> {
        if !ops.iter().any(|op| matches!(op, Op::VapCreate(_))) {
            return Ok(std::borrow::Cow::Borrowed(ops));
        }
        let mut out = ops.to_vec();
        let n = out.len();
        for (i, op) in out.iter_mut().enumerate() {
            if let Op::VapCreate(c) = op {
                let iface = client_iface(&self.dp.pins, c.iface.as_deref()).map_err(|e| {
                    if n > 1 {
                        Error::Conflict(format!("change {} of {n}: {e}", i + 1))
                    } else {
                        e
                    }
                })?;
                c.iface = Some(iface);
            }
        }
        Ok(std::borrow::Cow::Owned(out))
    }

    /// The data plane's maps (for reading vAPs and their counters).
    pub fn dataplane(&self) -> &Dataplane {
        &self.dp
    }

    fn slow_path_index(&mut self) -> Result<u32> {
        if let Some(i) = self.slow_path {
            return Ok(i);
        }
        let dev = self
            .nl
            .link_by_name(DEVICE)?
            .ok_or(Error::NoSlowPathDevice(DEVICE))?;
        self.slow_path = Some(dev.index);
        Ok(dev.index)
    }

    /// The slow-path route of one binding (cached per locator).
    fn route_for(&mut self, b: &BindingSpec) -> Result<SlowPathRoute> {
        let oif = self.slow_path_index()?;
        let (mtu, egress, egress_mtu) = match self.paths.get(&b.locator) {
            Some(p) => p.clone(),
            None => {
                let plan = self.nl.plan(b.home, b.locator)?;
                let p = (plan.mtu, plan.egress.clone(), plan.egress_mtu);
                self.paths.insert(b.locator, p.clone());
                p
            }
        };
        Ok(SlowPathRoute {
            home: b.home,
            oif,
            dev: DEVICE.to_string(),
            mtu,
            egress,
            egress_mtu,
        })
    }

    /// The routes the bindings put by `deltas` need (those with `route`); an error (no
    /// route to a locator, no `vdmm0`) refuses the batch before anything is committed.
    pub fn plan_routes(&mut self, deltas: &[Delta]) -> Result<Vec<SlowPathRoute>> {
        let mut out = Vec::new();
        for d in deltas {
            if let Delta::Put {
                entry: Entry::Binding(b),
            } = d
                && b.route
            {
                out.push(self.route_for(b)?);
            }
        }
        Ok(out)
    }

    fn del_binding(&mut self, home: &Prefix) -> Result<()> {
        match self.bindings.remove(home) {
            Err(e) if errno(&e) != Some(libc::ENOENT) => Err(map_error("the binding table", e)),
            _ => Ok(()),
        }
    }

    fn put_addr(&mut self, peer: bool, addr: IpAddr) -> Result<()> {
        let (map, what) = if peer {
            (&mut self.peers, "the peer table")
        } else {
            (&mut self.endpoints, "the endpoint table")
        };
        map.insert(IpAddrKey::from(addr), 0, 0)
            .map_err(|e| map_error(what, e))
    }

    fn del_addr(&mut self, peer: bool, addr: IpAddr) -> Result<()> {
        let (map, what) = if peer {
            (&mut self.peers, "the peer table")
        } else {
            (&mut self.endpoints, "the endpoint table")
        };
        match map.remove(&IpAddrKey::from(addr)) {
            Err(e) if errno(&e) != Some(libc::ENOENT) => Err(map_error(what, e)),
            _ => Ok(()),
        }
    }

    fn write_tunnel(&mut self, t: &TunnelSettings) -> Result<bool> {
        let current = self
            .config
            .get(&0, 0)
            .map_err(|e| Error::ebpf("cannot read the configuration", e))?;
        let want = tunnel_config(t, &current);
        if want == current {
            return Ok(false);
        }
        self.config
            .set(0, want, 0)
            .map_err(|e| map_error("the configuration", e))?;
        Ok(true)
    }

    /// Writes a committed batch: `deltas` took the state to `after`; `routes` are the
    /// routes [`Reconciler::plan_routes`] made for it and `unrouted` the homes whose route
    /// goes ([`unrouted`]). Additions go first (endpoints before the bindings that use
    /// them), removals last.
    pub fn apply(
        &mut self,
        deltas: &[Delta],
        after: &DesiredState,
        routes: &[SlowPathRoute],
        unrouted: &[Prefix],
    ) -> Report {
        let mut report = Report::default();
        let phase = |d: &Delta| match d {
            Delta::Put {
                entry: Entry::Endpoint { .. },
            } => 0,
            Delta::Put {
                entry: Entry::Peer { .. },
            } => 1,
            Delta::Put {
                entry: Entry::Tunnel(_),
            } => 2,
            Delta::Put {
                entry: Entry::Binding(_),
            } => 3,
            // A vAP deleted before the batch's vAPs are written (they may take its
            // addresses); those are written after this loop.
            Delta::Delete { key: Key::Vap(_) } => 4,
            Delta::Put {
                entry: Entry::Vap(_),
            } => 5,
            Delta::Delete {
                key: Key::Binding(_),
            } => 6,
            Delta::Delete { key: Key::Peer(_) } => 7,
            Delta::Delete { .. } => 8,
            // The translator's maps are written by [`NatptMaps::apply`].
            Delta::Put {
                entry: Entry::Natpt(_),
            } => 9,
        };
        let mut ordered: Vec<&Delta> = deltas.iter().collect();
        ordered.sort_by_key(|d| phase(d));
        let mut vaps = Vec::new();
        // The results of the binding puts, written together when the first one comes up
        // (they are contiguous in `ordered`).
        let mut binding_puts: Option<std::vec::IntoIter<_>> = None;
        self.natpt.apply(&ordered, &mut report);
        for (i, d) in ordered.iter().enumerate() {
            let d = *d;
            if let Delta::Put {
                entry: Entry::Vap(v),
            } = d
            {
                vaps.push(*v);
                continue;
            }
            let r = match d {
                Delta::Put {
                    entry: Entry::Natpt(_),
                }
                | Delta::Delete { key: Key::Natpt(_) } => continue,
                Delta::Put { entry } => match entry {
                    Entry::Endpoint { addr } => self.put_addr(false, *addr),
                    Entry::Peer { addr } => self.put_addr(true, *addr),
                    Entry::Tunnel(t) => self.write_tunnel(t).map(drop),
                    Entry::Natpt(_) => unreachable!("skipped above"),
                    Entry::Binding(_) => binding_puts
                        .get_or_insert_with(|| {
                            let items: Vec<(Prefix, Binding)> = ordered[i..]
                                .iter()
                                .map_while(|d| match d {
                                    Delta::Put {
                                        entry: Entry::Binding(b),
                                    } => Some((b.home, value(b))),
                                    _ => None,
                                })
                                .collect();
                            self.bindings.insert_many(&items).into_iter()
                        })
                        .next()
                        .expect("one result per binding put")
                        .map_err(|e| map_error("the binding table", e)),
                    Entry::Vap(_) => unreachable!("vAPs are written after the loop"),
                },
                Delta::Delete { key } => match key {
                    Key::Binding(home) => self.del_binding(home),
                    Key::Peer(a) => self.del_addr(true, *a),
                    // An endpoint also found on an interface stays.
                    Key::Endpoint(a) if after.discovered().contains(a) => Ok(()),
                    Key::Endpoint(a) => self.del_addr(false, *a),
                    Key::Tunnel => self.write_tunnel(&TunnelSettings::default()).map(drop),
                    Key::Vap(client) => self.del_vap(*client),
                    Key::Natpt(_) => unreachable!("skipped above"),
                },
            };
            match r {
                Ok(()) => match d {
                    Delta::Put { .. } => report.added += 1,
                    Delta::Delete { .. } => report.removed += 1,
                },
                Err(e) => report.errors.push(format!("{}: {e}", d.key())),
            }
        }
        if !vaps.is_empty() {
            self.put_vaps(&vaps, &mut report.added, &mut report.errors);
        }
        if !routes.is_empty() {
            match self.batch.install(routes) {
                Ok(n) => report.routes_installed += n as u64,
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        if !unrouted.is_empty() {
            match self.slow_path_index() {
                Ok(oif) => match self.batch.remove(unrouted, oif) {
                    Ok(0) => {}
                    Ok(n) => report
                        .errors
                        .push(format!("{n} slow-path routes could not be removed")),
                    Err(e) => report.errors.push(e.to_string()),
                },
                // No vdmm0: no routes into it either.
                Err(Error::NoSlowPathDevice(_)) => {}
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        report
    }

    /// Compares everything with `desired` and changes what differs.
    pub fn full(&mut self, desired: &DesiredState) -> Result<Report> {
        let mut report = Report::default();
        let actual = self.actual()?;
        self.forget_paths();
        let mut errors = Vec::new();

        // Additions and updates: endpoints, peers, tunnel settings, bindings.
        let endpoints = desired.effective_endpoints();
        for a in &endpoints {
            if !actual.endpoints.contains(a) {
                count(self.put_addr(false, *a), &mut report.added, &mut errors, a);
            }
        }
        for a in desired.peers() {
            if !actual.peers.contains(a) {
                count(self.put_addr(true, *a), &mut report.added, &mut errors, a);
            }
        }
        match self.write_tunnel(desired.tunnel()) {
            Ok(true) => report.updated += 1,
            Ok(false) => {}
            Err(e) => errors.push(format!("tunnel: {e}")),
        }
        // (binding, whether it replaces a different one)
        let puts: Vec<(&BindingSpec, bool)> = desired
            .bindings()
            .filter_map(|b| match actual.bindings.get(&b.home) {
                Some((l, s)) if *l == b.locator && *s == b.source => None,
                have => Some((b, have.is_some())),
            })
            .collect();
        let items: Vec<(Prefix, Binding)> = puts.iter().map(|(b, _)| (b.home, value(b))).collect();
        for ((b, update), r) in puts.iter().zip(self.bindings.insert_many(&items)) {
            count(
                r.map_err(|e| map_error("the binding table", e)),
                if *update {
                    &mut report.updated
                } else {
                    &mut report.added
                },
                &mut errors,
                &b.home,
            );
        }
        // Removals: bindings, peers, endpoints.
        for home in actual.bindings.keys() {
            if desired.binding(home).is_none() {
                count(
                    self.del_binding(home),
                    &mut report.removed,
                    &mut errors,
                    home,
                );
            }
        }
        let peers: std::collections::BTreeSet<&IpAddr> = desired.peers().collect();
        for a in &actual.peers {
            if !peers.contains(a) {
                count(self.del_addr(true, *a), &mut report.removed, &mut errors, a);
            }
        }
        for a in &actual.endpoints {
            if !endpoints.contains(a) {
                count(
                    self.del_addr(false, *a),
                    &mut report.removed,
                    &mut errors,
                    a,
                );
            }
        }
        self.full_routes(desired, &mut report, &mut errors);
        self.full_vaps(desired, &mut report, &mut errors);
        self.natpt.full(desired.natpt(), &mut report, &mut errors);
        report.errors = errors;
        Ok(report)
    }

    fn del_vap(&mut self, client: Mac) -> Result<()> {
        match self.dp.del_vap(client) {
            Err(Error::NoSuchVap(_)) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Writes `vaps`, counting each written one in `counter`.
    fn put_vaps(&mut self, vaps: &[VapRecord], counter: &mut u64, errors: &mut Vec<String>) {
        let existing = match self.dp.vaps() {
            Ok(e) => e,
            Err(e) => {
                errors.push(format!("vaps: {e}"));
                return;
            }
        };
        let results = self
            .dp
            .put_vaps(vaps, &existing, &mut Interfaces::default());
        for (v, r) in vaps.iter().zip(results) {
            count(r, counter, errors, &Key::Vap(v.client));
        }
    }

    /// The vAPs part of [`Reconciler::full`]: stale vAPs removed first (they may hold
    /// addresses desired ones need), then missing ones added and differing ones
    /// rewritten in place, then the address table made to match.
    fn full_vaps(&mut self, desired: &DesiredState, report: &mut Report, errors: &mut Vec<String>) {
        let actual = match self.dp.vaps() {
            Ok(a) => a,
            Err(e) => {
                errors.push(format!("vaps: {e}"));
                return;
            }
        };
        for e in actual.iter().filter(|e| desired.vap(&e.client).is_none()) {
            count(
                self.del_vap(e.client),
                &mut report.removed,
                errors,
                &Key::Vap(e.client),
            );
        }
        let mut ifaces = Interfaces::default();
        let mut missing = Vec::new();
        let mut differing = Vec::new();
        let mut unplaced = Vec::new();
        for v in desired.vaps() {
            let iface = match ifaces.get(v.iface.as_str()) {
                Ok(i) => i,
                Err(e) => {
                    errors.push(format!("{}: {e}", Key::Vap(v.client)));
                    unplaced.push(v.client);
                    continue;
                }
            };
            match actual.iter().find(|e| e.client == v.client) {
                None => missing.push(*v),
                Some(e) if !matches(v, e, iface) => differing.push(*v),
                Some(_) => {}
            }
        }
        if !missing.is_empty() {
            self.put_vaps(&missing, &mut report.added, errors);
        }
        if !differing.is_empty() {
            self.put_vaps(&differing, &mut report.updated, errors);
        }
        let owners = match self.dp.vap_addr_owners() {
            Ok(o) => o,
            Err(e) => {
                errors.push(format!("vap addresses: {e}"));
                return;
            }
        };
        let want: BTreeMap<IpAddr, Mac> = desired
            .vaps()
            .filter(|v| !unplaced.contains(&v.client))
            .flat_map(|v| v.addrs().into_iter().map(|a| (a, v.client)))
            .collect();
        for (a, client) in &want {
            match owners.get(a) {
                Some(o) if o == client => {}
                have => count(
                    self.dp.set_vap_addr(*a, *client),
                    if have.is_some() {
                        &mut report.updated
                    } else {
                        &mut report.added
                    },
                    errors,
                    &format!("vap address {a}"),
                ),
            }
        }
        for a in owners.keys().filter(|a| !want.contains_key(a)) {
            count(
                self.dp.del_vap_addr(*a),
                &mut report.removed,
                errors,
                &format!("vap address {a}"),
            );
        }
    }

    /// The routes part of [`Reconciler::full`].
    fn full_routes(
        &mut self,
        desired: &DesiredState,
        report: &mut Report,
        errors: &mut Vec<String>,
    ) {
        let oif = match self.slow_path_index() {
            Ok(i) => i,
            Err(e) => {
                if desired.bindings().any(|b| b.route) {
                    errors.push(format!("routes: {e}"));
                }
                return;
            }
        };
        let installed = match self.nl.vdmm_routes() {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("routes: {e}"));
                return;
            }
        };
        let have: HashMap<Prefix, Option<u32>> = installed
            .iter()
            .filter(|r| r.oif == Some(oif) && r.via.is_none())
            .map(|r| (r.home, r.mtu))
            .collect();
        let mut install = Vec::new();
        for b in desired.bindings().filter(|b| b.route) {
            match self.route_for(b) {
                Ok(r) => {
                    if have.get(&b.home) != Some(&Some(r.mtu)) {
                        install.push(r);
                    }
                }
                Err(e) => errors.push(format!("route for {}: {e}", b.home)),
            }
        }
        let stale: Vec<Prefix> = have
            .keys()
            .filter(|h| !matches!(desired.binding(h), Some(b) if b.route))
            .copied()
            .collect();
        if !install.is_empty() {
            match self.batch.install(&install) {
                Ok(n) => report.routes_installed += n as u64,
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !stale.is_empty() {
            match self.batch.remove(&stale, oif) {
                Ok(failed) => report.routes_removed += (stale.len() - failed) as u64,
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
}

/// The homes whose slow-path route `deltas` take away: bindings that had a route before
/// (`undo`, from [`DesiredState::undo`]) and are deleted or put without one. A binding
/// that never had a route costs no netlink request (a batch of unrouted adds would
/// otherwise send a delete each).
pub fn unrouted(deltas: &[Delta], undo: &[Delta]) -> Vec<Prefix> {
    deltas
        .iter()
        .zip(undo)
        .filter_map(|(d, before)| {
            // `before` has the key of `d`: a binding was there, `d` puts or deletes it.
            let Delta::Put {
                entry: Entry::Binding(had),
            } = before
            else {
                return None;
            };
            let keeps = matches!(d, Delta::Put { entry: Entry::Binding(b) } if b.route);
            (had.route && !keeps).then_some(had.home)
        })
        .collect()
}

fn count(r: Result<()>, counter: &mut u64, errors: &mut Vec<String>, what: &dyn std::fmt::Display) {
    match r {
        Ok(()) => *counter += 1,
        Err(e) => errors.push(format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(home: &str, route: bool) -> Op {
        Op::BindingAdd {
            home: home.parse().unwrap(),
            locator: "192.0.2.1".parse().unwrap(),
            source: None,
            replace: true,
            route,
        }
    }

    /// The homes [`unrouted`] names for `ops` planned on `before`.
    fn unrouted_homes(before: &DesiredState, ops: &[Op]) -> Vec<String> {
        let deltas = before.plan(ops).unwrap();
        unrouted(&deltas, &before.undo(&deltas))
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn only_bindings_that_had_a_route_lose_it() {
        let mut before = DesiredState::default();
        let d = before
            .plan(&[
                Op::EndpointAdd {
                    addr: "192.0.2.9".parse().unwrap(),
                },
                add("10.0.0.1", true),
                add("10.0.0.2", false),
            ])
            .unwrap();
        before.apply(&d);
        let ops = [
            // Had a route, put without one: the route goes.
            add("10.0.0.1", false),
            // Never had one: no netlink request.
            add("10.0.0.2", false),
            // New and unrouted: nothing to remove either.
            add("10.0.0.3", false),
        ];
        assert_eq!(unrouted_homes(&before, &ops), ["10.0.0.1/32"]);
        let ops = ["10.0.0.1", "10.0.0.2"].map(|h| Op::BindingDel {
            home: h.parse().unwrap(),
        });
        assert_eq!(unrouted_homes(&before, &ops), ["10.0.0.1/32"]);
    }

    #[test]
    fn tunnel_settings_become_the_config_entry() {
        let t = TunnelSettings {
            outer_hop_limit: 32,
            icmp_source_v4: Some("192.0.2.1".parse().unwrap()),
            icmp_source_v6: None,
        };
        let c = tunnel_config(&t, &TunnelConfig::default());
        assert_eq!(c.outer_hop_limit, 32);
        assert_eq!(c.icmp_source_v4, [192, 0, 2, 1]);
        assert_eq!(c.icmp_source_v6, [0; 16]);
        assert_eq!(
            tunnel_config(&TunnelSettings::default(), &c),
            TunnelConfig::default()
        );
    }
}
