//! Typed access to the data plane's pinned maps, with the rules that keep them consistent.
//!
//! [`Dataplane::open`] opens the maps pinned under a pin directory (checking that each has
//! the layout this build expects); its methods validate completely before they write, so a
//! refused request leaves every map as it was. The `vdmm-ctl` commands, the tests and the
//! future daemon all go through here:
//!
//! ```no_run
//! # fn main() -> vdmm_ctl::error::Result<()> {
//! use vdmm_ctl::{maps::Dataplane, pin::PinDir};
//! let mut dp = Dataplane::open(&PinDir::new("/run/vdmm/gw-a"))?;
//! dp.add_endpoint("192.0.2.1".parse().unwrap())?;
//! dp.add_peer("192.0.2.2".parse().unwrap())?;
//! dp.add_binding("10.1.0.0/16".parse()?, "192.0.2.2".parse().unwrap(), None, false)?;
//! # Ok(()) }
//! ```

use std::net::IpAddr;

use aya::maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray};
use vdmm_common::{
    Action, Binding, CounterValue, IpAddrKey, Reason, TunnelConfig, TunnelKind,
    counters::{COUNTER_ENTRIES, counter_labels},
    maps as names,
    tunnel::{AddressFlags, DEFAULT_OUTER_HOP_LIMIT},
    vap::{MacKey, Vap, VapAddr, VapCounters},
};

use crate::{
    addr::{Family, Prefix, check_tunnel_addr},
    binding_table::BindingTable,
    error::{Error, Result},
    pin::PinDir,
};

const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;

/// One binding as stored: home prefix -> locator, with the outer source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingEntry {
    pub home: Prefix,
    pub locator: IpAddr,
    pub source: IpAddr,
}

impl BindingEntry {
    /// The family of the outer header (the locator's).
    pub fn outer(&self) -> Family {
        Family::of(&self.locator)
    }

    /// The tunnel kind: the home prefix is the inner destination, the locator the outer.
    pub fn kind(&self) -> TunnelKind {
        TunnelKind::of(self.home.family() == Family::V6, self.outer() == Family::V6)
    }
}

/// Which program a counter belongs to: each has its own per-CPU array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Program {
    /// `vdmm_xdp` ([`names::COUNTERS`]): every packet received on an attached interface.
    Xdp,
    /// `vdmm_tc_egress` ([`names::TC_COUNTERS`]): every packet sent on an attached
    /// interface (the slow path; `pass` is `TC_ACT_OK`, `drop` `TC_ACT_SHOT`).
    Tc,
}

impl Program {
    /// "xdp" / "tc", as in `vdmm-ctl stats`.
    pub const fn name(self) -> &'static str {
        match self {
            Program::Xdp => "xdp",
            Program::Tc => "tc",
        }
    }
}

/// One non-zero counter, summed over CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterRow {
    pub program: Program,
    pub reason: Reason,
    pub kind: TunnelKind,
    pub action: Action,
    pub packets: u64,
    pub bytes: u64,
}

/// A change to the tunnel-wide configuration (`VDMM_CONFIG` entry 0); `None` / empty
/// fields are left as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigChange {
    /// Outer TTL / hop limit, 1..=255; 0 restores the default (64).
    pub outer_hop_limit: Option<u32>,
    /// New ICMP error sources, at most one per family.
    pub icmp_sources: Vec<IpAddr>,
    /// Families whose ICMP error source is cleared (those errors are then dropped).
    pub clear_icmp_sources: Vec<Family>,
}

/// The ICMP error source of `family` in `cfg`, if set.
pub fn icmp_source(cfg: &TunnelConfig, family: Family) -> Option<IpAddr> {
    match family {
        Family::V4 => (cfg.icmp_source_v4 != [0; 4]).then(|| IpAddr::from(cfg.icmp_source_v4)),
        Family::V6 => (cfg.icmp_source_v6 != [0; 16]).then(|| IpAddr::from(cfg.icmp_source_v6)),
    }
}

/// Sets (`Some`) or clears (`None`) the ICMP error source of `family` in `cfg`.
fn set_icmp_source(cfg: &mut TunnelConfig, family: Family, addr: Option<IpAddr>) {
    match family {
        Family::V4 => {
            cfg.icmp_source_v4 = match addr {
                Some(IpAddr::V4(a)) => a.octets(),
                _ => [0; 4],
            }
        }
        Family::V6 => {
            cfg.icmp_source_v6 = match addr {
                Some(IpAddr::V6(a)) => a.octets(),
                _ => [0; 16],
            }
        }
    }
}

/// Applies `change` to `cfg` after checking all of it (pure, so unit tested).
pub fn apply_config_change(cfg: &TunnelConfig, change: &ConfigChange) -> Result<TunnelConfig> {
    let mut new = *cfg;
    if let Some(h) = change.outer_hop_limit {
        if h > 255 {
            return Err(Error::BadHopLimit(h));
        }
        new.outer_hop_limit = h as u8;
    }
    for family in &change.clear_icmp_sources {
        set_icmp_source(&mut new, *family, None);
    }
    let mut seen = Vec::new();
    for addr in &change.icmp_sources {
        check_tunnel_addr("ICMP source", *addr)?;
        let family = Family::of(addr);
        if seen.contains(&family) || change.clear_icmp_sources.contains(&family) {
            return Err(Error::Conflict(format!(
                "more than one ICMP source change for {}",
                family.name()
            )));
        }
        seen.push(family);
        set_icmp_source(&mut new, family, Some(*addr));
    }
    Ok(new)
}

/// The outer source of a new binding: `source` when it is a local endpoint of the
/// locator's family, else (when omitted) the lowest local endpoint of that family.
pub fn resolve_source(
    endpoints: &[IpAddr],
    locator: IpAddr,
    source: Option<IpAddr>,
) -> Result<IpAddr> {
    check_tunnel_addr("locator", locator)?;
    let family = Family::of(&locator);
    match source {
        Some(s) => {
            if Family::of(&s) != family {
                return Err(Error::FamilyMismatch { locator, src: s });
            }
            if !endpoints.contains(&s) {
                return Err(Error::SourceNotEndpoint(s));
            }
            Ok(s)
        }
        None => endpoints
            .iter()
            .filter(|e| Family::of(e) == family)
            .min()
            .copied()
            .ok_or(Error::NoEndpointOfFamily {
                family: family.name(),
                locator,
            }),
    }
}

/// Refuses to remove endpoint `addr` while a binding uses it as its source.
pub fn check_endpoint_unused(bindings: &[BindingEntry], addr: IpAddr) -> Result<()> {
    let mut users = bindings.iter().filter(|b| b.source == addr);
    match users.next() {
        None => Ok(()),
        Some(first) => Err(Error::EndpointInUse {
            addr,
            binding: first.home,
            more: users.count(),
        }),
    }
}

/// Sorts addresses IPv4 first, then numerically.
pub fn sort_addrs(addrs: &mut [IpAddr]) {
    addrs.sort_by_key(|a| (Family::of(a), *a));
}

/// The maps of a loaded data plane, opened from their pins.
pub struct Dataplane {
    endpoints: HashMap<MapData, IpAddrKey, AddressFlags>,
    peers: HashMap<MapData, IpAddrKey, AddressFlags>,
    bindings: BindingTable,
    config: Array<MapData, TunnelConfig>,
    counters: PerCpuArray<MapData, CounterValue>,
    tc_counters: PerCpuArray<MapData, CounterValue>,
    // The vAPs (see `crate::vap`).
    pub(crate) vaps: HashMap<MapData, MacKey, Vap>,
    pub(crate) vap_addrs: HashMap<MapData, IpAddrKey, VapAddr>,
    pub(crate) vap_stats: PerCpuArray<MapData, VapCounters>,
    /// `VDMM_VAP_GEN`, incremented after every change to the vAPs (see `crate::cache_gen`).
    pub(crate) vap_gen: MapData,
    /// `VDMM_TUNNEL_GEN`, incremented after every change to the endpoints and peers.
    tunnel_gen: MapData,
    pub(crate) pins: PinDir,
}

/// Opens one pinned map as a typed map, turning a wrong type or size into
/// [`Error::MapLayout`].
pub(crate) fn open_map<T>(pins: &PinDir, name: &'static str) -> Result<T>
where
    T: TryFrom<Map, Error = MapError>,
{
    let path = pins.map(name);
    if !path.exists() {
        return Err(Error::NotLoaded(pins.path().to_path_buf()));
    }
    let data = MapData::from_pin(&path)
        .map_err(|e| Error::ebpf(format!("cannot open {}", path.display()), e))?;
    let layout = |e: MapError| Error::MapLayout {
        name,
        path: path.clone(),
        detail: e.to_string(),
    };
    let map = Map::from_map_data(data).map_err(layout)?;
    T::try_from(map).map_err(layout)
}

pub(crate) fn errno(e: &MapError) -> Option<i32> {
    match e {
        MapError::SyscallError(s) => s.io_error.raw_os_error(),
        MapError::IoError(io) => io.raw_os_error(),
        _ => None,
    }
}

fn map_err(what: &'static str, e: MapError) -> Error {
    Error::ebpf(format!("cannot update {what}"), e)
}

impl Dataplane {
    /// Opens the maps pinned under `pins`. Errors with [`Error::NotLoaded`] when they are
    /// missing and [`Error::MapLayout`] when one was made by an incompatible build.
    pub fn open(pins: &PinDir) -> Result<Self> {
        let dp = Self {
            endpoints: open_map(pins, names::ENDPOINTS)?,
            peers: open_map(pins, names::PEERS)?,
            bindings: BindingTable::open(pins)?,
            config: open_map(pins, names::CONFIG)?,
            counters: open_map(pins, names::COUNTERS)?,
            tc_counters: open_map(pins, names::TC_COUNTERS)?,
            vaps: open_map(pins, names::VAPS)?,
            vap_addrs: open_map(pins, names::VAP_ADDRS)?,
            vap_stats: open_map(pins, names::VAP_STATS)?,
            vap_gen: crate::cache_gen::open(pins, names::VAP_GEN)?,
            tunnel_gen: crate::cache_gen::open(pins, names::TUNNEL_GEN)?,
            pins: pins.clone(),
        };
        Ok(dp)
    }

    /// True when every map of the data plane is pinned under `pins`.
    pub fn is_pinned(pins: &PinDir) -> bool {
        names::ALL.iter().all(|n| pins.map(n).exists())
    }

    // ----- endpoints -----

    /// Local tunnel endpoints (outer destinations this node decapsulates), sorted.
    pub fn endpoints(&self) -> Result<Vec<IpAddr>> {
        let mut v = Vec::new();
        for k in self.endpoints.keys() {
            let k = k.map_err(|e| Error::ebpf("cannot read the endpoints", e))?;
            v.push(IpAddr::from(k));
        }
        sort_addrs(&mut v);
        Ok(v)
    }

    /// Adds a local tunnel endpoint. When the ICMP error source of its family is unset, it
    /// becomes that source.
    pub fn add_endpoint(&mut self, addr: IpAddr) -> Result<()> {
        check_tunnel_addr("endpoint", addr)?;
        let current = self.endpoints()?;
        if current.contains(&addr) {
            return Err(Error::EndpointExists(addr));
        }
        let mut cfg = self.config()?;
        let family = Family::of(&addr);
        self.endpoints
            .insert(IpAddrKey::from(addr), 0, BPF_NOEXIST)
            .map_err(|e| match errno(&e) {
                Some(libc::EEXIST) => Error::EndpointExists(addr),
                Some(libc::E2BIG) | Some(libc::ENOSPC) => Error::Full {
                    what: "the endpoint table",
                    max: names::MAX_ENDPOINTS,
                },
                _ => map_err("the endpoints", e),
            })?;
        self.tunnel_addresses_changed()?;
        if icmp_source(&cfg, family).is_none() {
            set_icmp_source(&mut cfg, family, Some(addr));
            self.write_config(&cfg)?;
        }
        Ok(())
    }

    /// Removes a local tunnel endpoint; refused while a binding uses it as its source. If
    /// it was the ICMP error source of its family, the lowest remaining endpoint of that
    /// family takes over (or the source is cleared).
    pub fn del_endpoint(&mut self, addr: IpAddr) -> Result<()> {
        let current = self.endpoints()?;
        if !current.contains(&addr) {
            return Err(Error::NoSuchEndpoint(addr));
        }
        check_endpoint_unused(&self.bindings()?, addr)?;
        let mut cfg = self.config()?;
        self.endpoints
            .remove(&IpAddrKey::from(addr))
            .map_err(|e| match errno(&e) {
                Some(libc::ENOENT) => Error::NoSuchEndpoint(addr),
                _ => map_err("the endpoints", e),
            })?;
        self.tunnel_addresses_changed()?;
        let family = Family::of(&addr);
        if icmp_source(&cfg, family) == Some(addr) {
            let next = current
                .iter()
                .filter(|e| **e != addr && Family::of(e) == family)
                .min()
                .copied();
            set_icmp_source(&mut cfg, family, next);
            self.write_config(&cfg)?;
        }
        Ok(())
    }

    // ----- peers -----

    /// Peers allowed to send tunnel packets to a local endpoint, sorted.
    pub fn peers(&self) -> Result<Vec<IpAddr>> {
        let mut v = Vec::new();
        for k in self.peers.keys() {
            let k = k.map_err(|e| Error::ebpf("cannot read the peers", e))?;
            v.push(IpAddr::from(k));
        }
        sort_addrs(&mut v);
        Ok(v)
    }

    /// Allows `addr` to send tunnel packets to this node's endpoints.
    pub fn add_peer(&mut self, addr: IpAddr) -> Result<()> {
        check_tunnel_addr("peer", addr)?;
        self.peers
            .insert(IpAddrKey::from(addr), 0, BPF_NOEXIST)
            .map_err(|e| match errno(&e) {
                Some(libc::EEXIST) => Error::PeerExists(addr),
                Some(libc::E2BIG) | Some(libc::ENOSPC) => Error::Full {
                    what: "the peer table",
                    max: names::MAX_PEERS,
                },
                _ => map_err("the peers", e),
            })?;
        self.tunnel_addresses_changed()
    }

    /// Stops accepting tunnel packets from `addr`.
    pub fn del_peer(&mut self, addr: IpAddr) -> Result<()> {
        self.peers
            .remove(&IpAddrKey::from(addr))
            .map_err(|e| match errno(&e) {
                Some(libc::ENOENT) => Error::NoSuchPeer(addr),
                _ => map_err("the peers", e),
            })?;
        self.tunnel_addresses_changed()
    }

    /// After every change to the endpoints or peers: the data plane's first-level cache of
    /// them (`tunnel::addresses`) must not answer from the old tables.
    fn tunnel_addresses_changed(&self) -> Result<()> {
        crate::cache_gen::invalidate(&self.tunnel_gen).map(|_| ())
    }

    // ----- bindings -----

    /// Every binding, IPv4 home prefixes first, sorted by prefix.
    pub fn bindings(&self) -> Result<Vec<BindingEntry>> {
        let mut v: Vec<BindingEntry> = self
            .bindings
            .entries()?
            .into_iter()
            .map(|(home, b)| BindingEntry {
                home,
                locator: IpAddr::from(b.locator),
                source: IpAddr::from(b.source),
            })
            .collect();
        v.sort_by_key(|b| b.home);
        Ok(v)
    }

    /// The binding stored for exactly `home`, if any.
    pub fn binding(&self, home: &Prefix) -> Result<Option<BindingEntry>> {
        Ok(self.bindings()?.into_iter().find(|b| b.home == *home))
    }

    /// Binds `home` to `locator`: packets to the prefix are encapsulated toward the
    /// locator, from `source` (a local endpoint of the locator's family; by default the
    /// lowest one). Refused when a binding for exactly `home` exists, unless `replace`
    /// (a handover: the binding moves to the new locator atomically).
    pub fn add_binding(
        &mut self,
        home: Prefix,
        locator: IpAddr,
        source: Option<IpAddr>,
        replace: bool,
    ) -> Result<BindingEntry> {
        let source = resolve_source(&self.endpoints()?, locator, source)?;
        let value = Binding::new(IpAddrKey::from(locator), IpAddrKey::from(source));
        let flags = if replace { BPF_ANY } else { BPF_NOEXIST };
        if let Err(e) = self.bindings.insert(&home, value, flags) {
            return Err(match errno(&e) {
                Some(libc::EEXIST) => {
                    let existing = self.binding(&home)?;
                    Error::BindingExists {
                        prefix: home,
                        locator: existing.map(|b| b.locator).unwrap_or(locator),
                    }
                }
                Some(libc::E2BIG) | Some(libc::ENOSPC) => Error::Full {
                    what: "the binding table",
                    max: names::MAX_BINDINGS,
                },
                _ => map_err("the bindings", e),
            });
        }
        Ok(BindingEntry {
            home,
            locator,
            source,
        })
    }

    /// Removes the binding for exactly `home`.
    pub fn del_binding(&mut self, home: Prefix) -> Result<()> {
        self.bindings.remove(&home).map_err(|e| match errno(&e) {
            Some(libc::ENOENT) => Error::NoSuchBinding(home),
            _ => map_err("the bindings", e),
        })
    }

    // ----- configuration -----

    /// The tunnel-wide configuration (entry 0 of `VDMM_CONFIG`).
    pub fn config(&self) -> Result<TunnelConfig> {
        self.config
            .get(&0, 0)
            .map_err(|e| Error::ebpf("cannot read the configuration", e))
    }

    /// Applies `change` (all checked before anything is written); returns the new value.
    pub fn set_config(&mut self, change: &ConfigChange) -> Result<TunnelConfig> {
        let new = apply_config_change(&self.config()?, change)?;
        self.write_config(&new)?;
        Ok(new)
    }

    fn write_config(&mut self, cfg: &TunnelConfig) -> Result<()> {
        self.config
            .set(0, cfg, 0)
            .map_err(|e| map_err("the configuration", e))
    }

    // ----- counters -----

    /// Every non-zero counter, summed over CPUs: the XDP program's, then the TC egress
    /// program's, each in index order.
    pub fn counters(&self) -> Result<Vec<CounterRow>> {
        let mut rows = Vec::new();
        for (program, array) in [
            (Program::Xdp, &self.counters),
            (Program::Tc, &self.tc_counters),
        ] {
            read_counters(program, array, &mut rows)?;
        }
        Ok(rows)
    }
}

/// Appends the non-zero counters of one array to `rows`.
fn read_counters(
    program: Program,
    array: &PerCpuArray<MapData, CounterValue>,
    rows: &mut Vec<CounterRow>,
) -> Result<()> {
    {
        let n = array.len().min(COUNTER_ENTRIES);
        for index in 0..n {
            let per_cpu = array.get(&index, 0).map_err(|e| {
                Error::ebpf(format!("cannot read the {} counters", program.name()), e)
            })?;
            let (packets, bytes) = per_cpu.iter().fold((0u64, 0u64), |(p, b), v| {
                (p.wrapping_add(v.packets), b.wrapping_add(v.bytes))
            });
            if packets == 0 && bytes == 0 {
                continue;
            }
            if let Some((reason, kind, action)) = counter_labels(index) {
                rows.push(CounterRow {
                    program,
                    reason,
                    kind,
                    action,
                    packets,
                    bytes,
                });
            }
        }
    }
    Ok(())
}

/// A [`BindingEntry`] from a trie key and value.
/// The effective outer hop limit of `cfg`.
pub fn effective_hop_limit(cfg: &TunnelConfig) -> u8 {
    if cfg.outer_hop_limit == 0 {
        DEFAULT_OUTER_HOP_LIMIT
    } else {
        cfg.outer_hop_limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn source_defaults_to_lowest_endpoint_of_the_locator_family() {
        let eps = [
            ip("2001:db8::9"),
            ip("192.0.2.9"),
            ip("192.0.2.3"),
            ip("2001:db8::2"),
        ];
        assert_eq!(
            resolve_source(&eps, ip("198.51.100.1"), None).unwrap(),
            ip("192.0.2.3")
        );
        assert_eq!(
            resolve_source(&eps, ip("2001:db8:1::1"), None).unwrap(),
            ip("2001:db8::2")
        );
        assert_eq!(
            resolve_source(&eps, ip("198.51.100.1"), Some(ip("192.0.2.9"))).unwrap(),
            ip("192.0.2.9")
        );
    }

    #[test]
    fn source_must_be_an_endpoint_of_the_same_family() {
        let eps = [ip("192.0.2.3")];
        assert!(matches!(
            resolve_source(&eps, ip("198.51.100.1"), Some(ip("2001:db8::1"))),
            Err(Error::FamilyMismatch { .. })
        ));
        assert!(matches!(
            resolve_source(&eps, ip("198.51.100.1"), Some(ip("192.0.2.4"))),
            Err(Error::SourceNotEndpoint(_))
        ));
        let e = resolve_source(&eps, ip("2001:db8::1"), None).unwrap_err();
        assert!(
            matches!(e, Error::NoEndpointOfFamily { family: "IPv6", .. }),
            "{e}"
        );
        assert!(matches!(
            resolve_source(&eps, ip("224.0.0.1"), None),
            Err(Error::NotUnicast { .. })
        ));
    }

    #[test]
    fn endpoint_in_use_names_a_binding() {
        let b = |h: &str, s: &str| BindingEntry {
            home: h.parse().unwrap(),
            locator: ip("198.51.100.1"),
            source: ip(s),
        };
        let bs = [
            b("10.0.0.0/8", "192.0.2.1"),
            b("10.1.0.0/16", "192.0.2.2"),
            b("10.2.0.0/16", "192.0.2.2"),
        ];
        assert!(check_endpoint_unused(&bs, ip("192.0.2.3")).is_ok());
        let e = check_endpoint_unused(&bs, ip("192.0.2.2")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "endpoint 192.0.2.2 is the source of the binding 10.1.0.0/16 (and 1 more); delete or change those bindings first"
        );
    }

    #[test]
    fn binding_kind_is_inner_from_home_and_outer_from_locator() {
        let e = BindingEntry {
            home: "10.0.0.0/8".parse().unwrap(),
            locator: ip("2001:db8::1"),
            source: ip("2001:db8::2"),
        };
        assert_eq!(e.kind(), TunnelKind::Ip4in6);
        assert_eq!(e.outer(), Family::V6);
    }

    #[test]
    fn config_changes_are_checked_as_a_whole() {
        let cfg = TunnelConfig::default();
        let c = ConfigChange {
            outer_hop_limit: Some(32),
            icmp_sources: vec![ip("192.0.2.1"), ip("2001:db8::1")],
            clear_icmp_sources: vec![],
        };
        let n = apply_config_change(&cfg, &c).unwrap();
        assert_eq!(n.outer_hop_limit, 32);
        assert_eq!(icmp_source(&n, Family::V4), Some(ip("192.0.2.1")));
        assert_eq!(icmp_source(&n, Family::V6), Some(ip("2001:db8::1")));
        let cleared = apply_config_change(
            &n,
            &ConfigChange {
                clear_icmp_sources: vec![Family::V4],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(icmp_source(&cleared, Family::V4), None);
        assert_eq!(effective_hop_limit(&cleared), 32);
        assert!(
            apply_config_change(
                &cfg,
                &ConfigChange {
                    outer_hop_limit: Some(256),
                    ..Default::default()
                }
            )
            .is_err()
        );
        let twice = ConfigChange {
            icmp_sources: vec![ip("192.0.2.1"), ip("192.0.2.2")],
            ..Default::default()
        };
        assert!(matches!(
            apply_config_change(&cfg, &twice),
            Err(Error::Conflict(_))
        ));
        assert_eq!(effective_hop_limit(&cfg), 64);
    }
}
