//! The agent's desired state: what the data plane of this node should hold (local tunnel
//! endpoints, peers, bindings, the tunnel-wide settings, the vAPs of an AP host, and the
//! translation configuration of [`super::natpt_state`]), as one value that is validated
//! as a whole, and the changes to it. The vAP ops' own rules are in [`super::vap_state`].
//!
//! Two kinds of change exist:
//!
//! - an [`Op`] is what a client asks for (`binding add` with a default source, `--replace`,
//!   an endpoint removal that moves the ICMP source, ...). [`DesiredState::plan`] checks a
//!   list of them as one batch against the state and turns it into
//! - [`Delta`]s: key-value puts and deletes ([`Key`] -> [`Entry`]) with every default
//!   resolved. They are what a [`super::store::Store`] records and replays, and what the
//!   reconciler writes into the maps. Replaying deltas needs no validation, so a store
//!   (the embedded file, or a cluster store) only keeps keys and values.
//!
//! This module touches nothing outside memory: no maps, no files.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vdmm_common::maps::{MAX_BINDINGS, MAX_ENDPOINTS, MAX_PEERS, MAX_VAPS};

use super::natpt_state::{NatptDesired, NatptEntry, NatptImage, NatptKey, NatptOp};
use super::vap_state::{self, VapCreate};
use crate::{
    addr::{AddrText, Family, Prefix, check_tunnel_addr, parse_addr},
    error::{Error, Result},
    maps::resolve_source,
    vap::Mac,
    vap_record::VapRecord,
};

/// Serde for [`Prefix`] as its text (`10.1.0.0/16`), parsed with vdmm's one-line errors.
impl Serialize for Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(AddrText::prefix(self).as_str())
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde of addresses as text, parsed by [`parse_addr`] (so bad input gets vdmm's message).
pub mod addr_text {
    use super::*;

    pub fn serialize<S: Serializer>(a: &IpAddr, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(AddrText::addr(*a).as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<IpAddr, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_addr(&text).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<IpAddr>`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            a: &Option<IpAddr>,
            s: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            match a {
                Some(a) => s.serialize_str(AddrText::addr(*a).as_str()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> std::result::Result<Option<IpAddr>, D::Error> {
            let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
            text.map(|t| parse_addr(&t).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// One binding as desired: the home prefix (its key) -> locator, from `source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingSpec {
    pub home: Prefix,
    #[serde(with = "addr_text")]
    pub locator: IpAddr,
    /// The outer source, resolved when the binding was made (a local endpoint of the
    /// locator's family).
    #[serde(with = "addr_text")]
    pub source: IpAddr,
    /// Whether the home prefix gets its slow-path kernel route into `vdmm0`.
    pub route: bool,
}

/// Tunnel-wide settings (`VDMM_CONFIG`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelSettings {
    /// Outer TTL / hop limit; 0 means the data plane's default (64).
    pub outer_hop_limit: u8,
    /// Source of ICMPv4 errors; none: such errors are dropped and counted.
    pub icmp_source_v4: Option<Ipv4Addr>,
    /// Source of ICMPv6 errors.
    pub icmp_source_v6: Option<Ipv6Addr>,
}

impl TunnelSettings {
    pub fn icmp_source(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => self.icmp_source_v4.map(IpAddr::V4),
            Family::V6 => self.icmp_source_v6.map(IpAddr::V6),
        }
    }

    fn set_icmp_source(&mut self, family: Family, addr: Option<IpAddr>) {
        match family {
            Family::V4 => {
                self.icmp_source_v4 = match addr {
                    Some(IpAddr::V4(a)) => Some(a),
                    _ => None,
                }
            }
            Family::V6 => {
                self.icmp_source_v6 = match addr {
                    Some(IpAddr::V6(a)) => Some(a),
                    _ => None,
                }
            }
        }
    }
}

/// The key of one item of the desired state: what a store keeps values under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Endpoint(IpAddr),
    Peer(IpAddr),
    Binding(Prefix),
    Tunnel,
    /// The vAP of a client (by its MAC).
    Vap(Mac),
    /// The translation configuration (`natpt/...`).
    Natpt(NatptKey),
}

impl Key {
    /// A path-like name for key-value stores: `endpoints/192.0.2.1`, `peers/...`,
    /// `bindings/10.1.0.0/16`, `tunnel`, `vaps/00:16:3e:00:00:01`. [`Key::from_path`]
    /// reads it back.
    pub fn path(&self) -> String {
        match self {
            Key::Endpoint(a) => format!("endpoints/{a}"),
            Key::Peer(a) => format!("peers/{a}"),
            Key::Binding(p) => format!("bindings/{p}"),
            Key::Tunnel => "tunnel".to_string(),
            Key::Vap(m) => format!("vaps/{m}"),
            Key::Natpt(k) => format!("natpt/{}", k.path()),
        }
    }

    /// The key named by [`Key::path`].
    pub fn from_path(path: &str) -> Result<Self> {
        let bad = |why: &str| Error::Conflict(format!("invalid state key `{path}`: {why}"));
        if path == "tunnel" {
            return Ok(Key::Tunnel);
        }
        let (table, rest) = path.split_once('/').ok_or_else(|| bad("unknown key"))?;
        match table {
            "endpoints" => Ok(Key::Endpoint(parse_addr(rest)?)),
            "peers" => Ok(Key::Peer(parse_addr(rest)?)),
            "bindings" => Ok(Key::Binding(rest.parse()?)),
            "vaps" => Ok(Key::Vap(rest.parse()?)),
            "natpt" => Ok(Key::Natpt(NatptKey::from_path(rest).map_err(|e| bad(&e))?)),
            _ => Err(bad("unknown table")),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Key::from_path(&text).map_err(serde::de::Error::custom)
    }
}

/// The value stored under a [`Key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Endpoint {
        #[serde(with = "addr_text")]
        addr: IpAddr,
    },
    Peer {
        #[serde(with = "addr_text")]
        addr: IpAddr,
    },
    Binding(BindingSpec),
    Tunnel(TunnelSettings),
    Vap(VapRecord),
    /// `{"kind":"natpt","natpt":"eam",...}`.
    Natpt(NatptEntry),
}

impl Entry {
    pub fn key(&self) -> Key {
        match self {
            Entry::Endpoint { addr } => Key::Endpoint(*addr),
            Entry::Peer { addr } => Key::Peer(*addr),
            Entry::Binding(b) => Key::Binding(b.home),
            Entry::Tunnel(_) => Key::Tunnel,
            Entry::Vap(v) => Key::Vap(v.client),
            Entry::Natpt(e) => Key::Natpt(e.key()),
        }
    }
}

/// One resolved change: put a value, or delete a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "delta", rename_all = "snake_case")]
pub enum Delta {
    Put { entry: Entry },
    Delete { key: Key },
}

impl Delta {
    pub fn key(&self) -> Key {
        match self {
            Delta::Put { entry } => entry.key(),
            Delta::Delete { key } => *key,
        }
    }
}

fn default_true() -> bool {
    true
}

/// What a client asks for. Requests carry a list of these, checked and applied as one
/// all-or-nothing batch by [`DesiredState::plan`]. The rules are those of the `vdmm-ctl`
/// commands of the same names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// `endpoint add`: when its family has no ICMP error source, it becomes that source.
    EndpointAdd {
        #[serde(with = "addr_text")]
        addr: IpAddr,
    },
    /// `endpoint del`: refused while a binding uses it as its source; if it was the ICMP
    /// source of its family, the lowest remaining endpoint of the family takes over.
    EndpointDel {
        #[serde(with = "addr_text")]
        addr: IpAddr,
    },
    PeerAdd {
        #[serde(with = "addr_text")]
        addr: IpAddr,
    },
    PeerDel {
        #[serde(with = "addr_text")]
        addr: IpAddr,
    },
    /// `binding add`: source defaults to the lowest endpoint of the locator's family.
    BindingAdd {
        home: Prefix,
        #[serde(with = "addr_text")]
        locator: IpAddr,
        #[serde(default, with = "addr_text::option")]
        source: Option<IpAddr>,
        #[serde(default)]
        replace: bool,
        /// Install the slow-path kernel route (default true).
        #[serde(default = "default_true")]
        route: bool,
    },
    BindingDel {
        home: Prefix,
    },
    /// `config set`: outer hop limit (0: the default), ICMP sources, clearing them.
    ConfigSet {
        #[serde(default)]
        outer_hop_limit: Option<u32>,
        #[serde(default)]
        icmp_sources: Vec<IpAddr>,
        #[serde(default)]
        clear_icmp_sources: Vec<FamilyName>,
    },
    /// `vap create`: see [`VapCreate`] for the defaults.
    VapCreate(VapCreate),
    /// `vap delete`.
    VapDelete {
        client: Mac,
    },
    /// `vap forward`: packets for the client are tunnelled to `to` (a handover's grace
    /// period), from `source` (default: the lowest local endpoint of its family); without
    /// `to`, delivered locally again.
    VapForward {
        client: Mac,
        #[serde(default, with = "addr_text::option")]
        to: Option<IpAddr>,
        #[serde(default, with = "addr_text::option")]
        source: Option<IpAddr>,
    },
    /// A `natpt` change: `{"op":"natpt","natpt":"eam_add",...}` (see [`NatptOp`]).
    Natpt(NatptOp),
}

/// An address family as the API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FamilyName {
    Ipv4,
    Ipv6,
}

impl FamilyName {
    pub fn family(self) -> Family {
        match self {
            FamilyName::Ipv4 => Family::V4,
            FamilyName::Ipv6 => Family::V6,
        }
    }
}

/// The desired state of one node's data plane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    endpoints: BTreeSet<IpAddr>,
    peers: BTreeSet<IpAddr>,
    bindings: BTreeMap<Prefix, BindingSpec>,
    tunnel: TunnelSettings,
    vaps: BTreeMap<Mac, VapRecord>,
    /// How many bindings use each source (derived; for `endpoint del`).
    source_uses: HashMap<IpAddr, usize>,
    /// Bindings per home family (derived; for the table limits).
    bindings_per_family: [usize; 2],
    /// Endpoints the agent found on interfaces (`endpoints.from_interfaces`): part of the
    /// data plane's endpoints, but not stored (they follow the interfaces' addresses).
    discovered: BTreeSet<IpAddr>,
    /// The transition gateway's translation configuration (boxed: most nodes have none).
    natpt: Box<NatptDesired>,
}

/// The serialized form of a [`DesiredState`]: every entry, in key order.
#[derive(Serialize, Deserialize)]
struct StateImage {
    endpoints: Vec<Entry>,
    peers: Vec<Entry>,
    bindings: Vec<BindingSpec>,
    tunnel: TunnelSettings,
    /// Absent in states written before the agent kept vAPs.
    #[serde(default)]
    vaps: Vec<VapRecord>,
    /// Left out while empty (so nodes without translation keep their old format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    natpt: Option<NatptImage>,
}

fn family_index(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

impl DesiredState {
    /// The stored endpoints (those added through the API).
    pub fn endpoints(&self) -> impl Iterator<Item = &IpAddr> {
        self.endpoints.iter()
    }

    /// The endpoints found on interfaces.
    pub fn discovered(&self) -> &BTreeSet<IpAddr> {
        &self.discovered
    }

    /// Replaces the endpoints found on interfaces.
    pub fn set_discovered(&mut self, addrs: BTreeSet<IpAddr>) {
        self.discovered = addrs;
    }

    /// Every endpoint the data plane should have: stored and discovered.
    pub fn effective_endpoints(&self) -> BTreeSet<IpAddr> {
        self.endpoints.union(&self.discovered).copied().collect()
    }

    pub fn peers(&self) -> impl Iterator<Item = &IpAddr> {
        self.peers.iter()
    }

    /// Bindings in home-prefix order (IPv4 first).
    pub fn bindings(&self) -> impl Iterator<Item = &BindingSpec> {
        self.bindings.values()
    }

    pub fn binding(&self, home: &Prefix) -> Option<&BindingSpec> {
        self.bindings.get(home)
    }

    pub fn binding_count(&self) -> usize {
        self.bindings.len()
    }

    /// Bindings by home family: `(IPv4, IPv6)`.
    pub fn binding_counts(&self) -> (usize, usize) {
        (self.bindings_per_family[0], self.bindings_per_family[1])
    }

    pub fn tunnel(&self) -> &TunnelSettings {
        &self.tunnel
    }

    /// The vAPs, by client MAC.
    pub fn vaps(&self) -> impl Iterator<Item = &VapRecord> {
        self.vaps.values()
    }

    pub fn vap(&self, client: &Mac) -> Option<&VapRecord> {
        self.vaps.get(client)
    }

    pub fn vap_count(&self) -> usize {
        self.vaps.len()
    }

    /// The translation configuration.
    pub fn natpt(&self) -> &NatptDesired {
        &self.natpt
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &Key) -> Option<Entry> {
        match key {
            Key::Endpoint(a) => self
                .endpoints
                .contains(a)
                .then_some(Entry::Endpoint { addr: *a }),
            Key::Peer(a) => self.peers.contains(a).then_some(Entry::Peer { addr: *a }),
            Key::Binding(p) => self.bindings.get(p).map(|b| Entry::Binding(*b)),
            Key::Tunnel => Some(Entry::Tunnel(self.tunnel)),
            Key::Vap(m) => self.vaps.get(m).map(|v| Entry::Vap(*v)),
            Key::Natpt(k) => self.natpt.get(k).map(Entry::Natpt),
        }
    }

    /// Every entry, as puts (what a snapshot of the state is).
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.endpoints
            .iter()
            .map(|a| Entry::Endpoint { addr: *a })
            .chain(self.peers.iter().map(|a| Entry::Peer { addr: *a }))
            .chain(self.bindings.values().map(|b| Entry::Binding(*b)))
            .chain(std::iter::once(Entry::Tunnel(self.tunnel)))
            .chain(self.vaps.values().map(|v| Entry::Vap(*v)))
            .chain(self.natpt.entries().map(Entry::Natpt))
    }

    /// Applies resolved deltas (from [`DesiredState::plan`] or a store) without checking
    /// them.
    /// The deltas that take the state back from `deltas` to now, one per delta: what
    /// each key holds now (a put), or its deletion.
    pub fn undo(&self, deltas: &[Delta]) -> Vec<Delta> {
        deltas
            .iter()
            .map(|d| match self.get(&d.key()) {
                Some(entry) => Delta::Put { entry },
                None => Delta::Delete { key: d.key() },
            })
            .collect()
    }

    pub fn apply(&mut self, deltas: &[Delta]) {
        for d in deltas {
            match *d {
                Delta::Put { entry } => self.put(entry),
                Delta::Delete { key } => self.delete(key),
            }
        }
    }

    fn put(&mut self, entry: Entry) {
        match entry {
            Entry::Endpoint { addr } => {
                self.endpoints.insert(addr);
            }
            Entry::Peer { addr } => {
                self.peers.insert(addr);
            }
            Entry::Binding(b) => {
                if let Some(old) = self.bindings.insert(b.home, b) {
                    self.forget_use(&old);
                }
                *self.source_uses.entry(b.source).or_default() += 1;
                self.bindings_per_family[family_index(b.home.family())] += 1;
            }
            Entry::Tunnel(t) => self.tunnel = t,
            Entry::Vap(v) => {
                self.vaps.insert(v.client, v);
            }
            Entry::Natpt(e) => self.natpt.put(e),
        }
    }

    fn delete(&mut self, key: Key) {
        match key {
            Key::Endpoint(a) => {
                self.endpoints.remove(&a);
            }
            Key::Peer(a) => {
                self.peers.remove(&a);
            }
            Key::Binding(p) => {
                if let Some(old) = self.bindings.remove(&p) {
                    self.forget_use(&old);
                }
            }
            Key::Tunnel => self.tunnel = TunnelSettings::default(),
            Key::Vap(m) => {
                self.vaps.remove(&m);
            }
            Key::Natpt(k) => self.natpt.delete(k),
        }
    }

    fn forget_use(&mut self, old: &BindingSpec) {
        if let Some(n) = self.source_uses.get_mut(&old.source) {
            *n -= 1;
            if *n == 0 {
                self.source_uses.remove(&old.source);
            }
        }
        self.bindings_per_family[family_index(old.home.family())] -= 1;
    }

    /// Checks the whole state (a loaded snapshot, a store's contents): every address
    /// usable, every binding's source a local endpoint of its locator's family, the
    /// ICMP sources unicast, every vAP valid and none sharing a MAC or an address with
    /// another, the tables within their limits.
    pub fn validate(&self) -> Result<()> {
        for a in &self.endpoints {
            check_tunnel_addr("endpoint", *a)?;
        }
        for a in &self.peers {
            check_tunnel_addr("peer", *a)?;
        }
        // A binding's source was a local endpoint when the binding was made; an interface
        // address may have gone since, so only its family and kind are checked here.
        for b in self.bindings.values() {
            resolve_source(&[b.source], b.locator, Some(b.source))?;
        }
        for f in [Family::V4, Family::V6] {
            if let Some(a) = self.tunnel.icmp_source(f) {
                check_tunnel_addr("ICMP source", a)?;
            }
        }
        let mut seen: Vec<VapRecord> = Vec::with_capacity(self.vaps.len());
        for v in self.vaps.values() {
            v.check(&seen)?;
            seen.push(*v);
        }
        check_limits(
            self.endpoints.len(),
            self.peers.len(),
            self.bindings_per_family,
            self.vaps.len(),
        )?;
        self.natpt.validate()
    }

    /// Checks `ops` as one batch against this state and resolves them into deltas; the
    /// state itself is not changed (apply the deltas for that). Nothing of a refused batch
    /// takes effect: the error names the first op that failed (1-based) when there are
    /// several.
    pub fn plan(&self, ops: &[Op]) -> Result<Vec<Delta>> {
        let mut overlay = Overlay::new(self);
        for (i, op) in ops.iter().enumerate() {
            overlay.op(op).map_err(|e| {
                if ops.len() > 1 {
                    Error::Conflict(format!("change {} of {}: {e}", i + 1, ops.len()))
                } else {
                    e
                }
            })?;
        }
        overlay.finish()
    }

    /// The state as JSON (`{endpoints, peers, bindings, tunnel}`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.image()).expect("the state serializes")
    }

    fn image(&self) -> StateImage {
        StateImage {
            endpoints: self
                .endpoints
                .iter()
                .map(|a| Entry::Endpoint { addr: *a })
                .collect(),
            peers: self
                .peers
                .iter()
                .map(|a| Entry::Peer { addr: *a })
                .collect(),
            bindings: self.bindings.values().copied().collect(),
            tunnel: self.tunnel,
            vaps: self.vaps.values().copied().collect(),
            natpt: (!self.natpt.is_empty()).then(|| self.natpt.image()),
        }
    }
}

impl Serialize for DesiredState {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.image().serialize(s)
    }
}

impl<'de> Deserialize<'de> for DesiredState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let image = StateImage::deserialize(d)?;
        let mut s = DesiredState::default();
        for e in image.endpoints.into_iter().chain(image.peers) {
            s.put(e);
        }
        for b in image.bindings {
            s.put(Entry::Binding(b));
        }
        s.tunnel = image.tunnel;
        for v in image.vaps {
            s.put(Entry::Vap(v));
        }
        s.natpt = Box::new(
            image
                .natpt
                .map(NatptDesired::from_image)
                .unwrap_or_default(),
        );
        Ok(s)
    }
}

fn check_limits(endpoints: usize, peers: usize, bindings: [usize; 2], vaps: usize) -> Result<()> {
    if vaps > MAX_VAPS as usize {
        return Err(Error::Full {
            what: "the vAP table",
            max: MAX_VAPS,
        });
    }
    if endpoints > MAX_ENDPOINTS as usize {
        return Err(Error::Full {
            what: "the endpoint table",
            max: MAX_ENDPOINTS,
        });
    }
    if peers > MAX_PEERS as usize {
        return Err(Error::Full {
            what: "the peer table",
            max: MAX_PEERS,
        });
    }
    if bindings.iter().any(|n| *n > MAX_BINDINGS as usize) {
        return Err(Error::Full {
            what: "the binding table",
            max: MAX_BINDINGS,
        });
    }
    Ok(())
}

/// A batch being planned: the changed keys over the unchanged state.
struct Overlay<'a> {
    base: &'a DesiredState,
    changed: BTreeMap<Key, Option<Entry>>,
    endpoints: isize,
    peers: isize,
    bindings: [isize; 2],
    vaps: isize,
    /// The vAPs as they are now in the batch, once a vAP op needs them (until a delete).
    vaps_now: Option<Vec<VapRecord>>,
    /// Change of the number of bindings that use a source.
    source_uses: HashMap<IpAddr, isize>,
    /// [`Overlay::endpoints`], until an op changes an endpoint (a batch of bindings
    /// computes it once).
    endpoints_now: Option<Vec<IpAddr>>,
    /// The translation configuration as the batch changes it (a copy, made by the first
    /// `natpt` op).
    natpt: Option<NatptDesired>,
}

impl<'a> Overlay<'a> {
    fn new(base: &'a DesiredState) -> Self {
        Self {
            base,
            changed: BTreeMap::new(),
            endpoints: 0,
            peers: 0,
            bindings: [0; 2],
            vaps: 0,
            vaps_now: None,
            source_uses: HashMap::new(),
            endpoints_now: None,
            natpt: None,
        }
    }

    fn get(&self, key: &Key) -> Option<Entry> {
        match self.changed.get(key) {
            Some(v) => *v,
            None => self.base.get(key),
        }
    }

    fn tunnel(&self) -> TunnelSettings {
        match self.get(&Key::Tunnel) {
            Some(Entry::Tunnel(t)) => t,
            _ => TunnelSettings::default(),
        }
    }

    /// Endpoints as they are now in the batch.
    fn endpoints(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .base
            .endpoints
            .iter()
            .filter(|a| !matches!(self.changed.get(&Key::Endpoint(**a)), Some(None)))
            .chain(
                self.base
                    .discovered
                    .iter()
                    .filter(|a| !self.base.endpoints.contains(a)),
            )
            .copied()
            .collect();
        for (k, e) in self
            .changed
            .range(Key::Endpoint(IpAddr::V4(Ipv4Addr::UNSPECIFIED))..)
        {
            match (k, e) {
                (Key::Endpoint(a), Some(_)) if !self.base.endpoints.contains(a) => v.push(*a),
                (Key::Endpoint(_), _) => {}
                _ => break,
            }
        }
        v
    }

    fn set(&mut self, key: Key, value: Option<Entry>) {
        let old = self.get(&key);
        self.set_from(key, old, value);
    }

    /// [`Overlay::set`] when the caller already looked up the current value `old`.
    fn set_from(&mut self, key: Key, old: Option<Entry>, value: Option<Entry>) {
        if matches!(key, Key::Endpoint(_)) {
            self.endpoints_now = None;
        }
        match (&old, &value) {
            (Some(Entry::Binding(b)), _) => {
                *self.source_uses.entry(b.source).or_default() -= 1;
                self.bindings[family_index(b.home.family())] -= 1;
            }
            (Some(Entry::Endpoint { .. }), None) => self.endpoints -= 1,
            (Some(Entry::Peer { .. }), None) => self.peers -= 1,
            (None, Some(Entry::Endpoint { .. })) => self.endpoints += 1,
            (None, Some(Entry::Peer { .. })) => self.peers += 1,
            (Some(Entry::Vap(_)), None) => self.vaps -= 1,
            (None, Some(Entry::Vap(_))) => self.vaps += 1,
            _ => {}
        }
        if let Some(Entry::Binding(b)) = &value {
            *self.source_uses.entry(b.source).or_default() += 1;
            self.bindings[family_index(b.home.family())] += 1;
        }
        self.changed.insert(key, value);
    }

    fn op(&mut self, op: &Op) -> Result<()> {
        match op {
            Op::EndpointAdd { addr } => {
                check_tunnel_addr("endpoint", *addr)?;
                if self.get(&Key::Endpoint(*addr)).is_some() || self.base.discovered.contains(addr)
                {
                    return Err(Error::EndpointExists(*addr));
                }
                self.set(Key::Endpoint(*addr), Some(Entry::Endpoint { addr: *addr }));
                let family = Family::of(addr);
                let mut t = self.tunnel();
                if t.icmp_source(family).is_none() {
                    t.set_icmp_source(family, Some(*addr));
                    self.set(Key::Tunnel, Some(Entry::Tunnel(t)));
                }
            }
            Op::EndpointDel { addr } => {
                if self.get(&Key::Endpoint(*addr)).is_none() && self.base.discovered.contains(addr)
                {
                    return Err(Error::Conflict(format!(
                        "endpoint {addr} is an address of an interface the agent takes endpoints \
                         from (endpoints.from_interfaces); remove the address or change the \
                         configuration"
                    )));
                }
                if self.get(&Key::Endpoint(*addr)).is_none() {
                    return Err(Error::NoSuchEndpoint(*addr));
                }
                self.set(Key::Endpoint(*addr), None);
                let family = Family::of(addr);
                let mut t = self.tunnel();
                if t.icmp_source(family) == Some(*addr) {
                    let next = self
                        .endpoints()
                        .into_iter()
                        .filter(|e| Family::of(e) == family)
                        .min();
                    t.set_icmp_source(family, next);
                    self.set(Key::Tunnel, Some(Entry::Tunnel(t)));
                }
            }
            Op::PeerAdd { addr } => {
                check_tunnel_addr("peer", *addr)?;
                if self.get(&Key::Peer(*addr)).is_some() {
                    return Err(Error::PeerExists(*addr));
                }
                self.set(Key::Peer(*addr), Some(Entry::Peer { addr: *addr }));
            }
            Op::PeerDel { addr } => {
                if self.get(&Key::Peer(*addr)).is_none() {
                    return Err(Error::NoSuchPeer(*addr));
                }
                self.set(Key::Peer(*addr), None);
            }
            Op::BindingAdd {
                home,
                locator,
                source,
                replace,
                route,
            } => {
                if self.endpoints_now.is_none() {
                    self.endpoints_now = Some(self.endpoints());
                }
                let eps = self.endpoints_now.as_deref().unwrap_or_default();
                let source = resolve_source(eps, *locator, *source)?;
                let old = self.get(&Key::Binding(*home));
                if !replace && let Some(Entry::Binding(b)) = old {
                    return Err(Error::BindingExists {
                        prefix: *home,
                        locator: b.locator,
                    });
                }
                let spec = BindingSpec {
                    home: *home,
                    locator: *locator,
                    source,
                    route: *route,
                };
                self.set_from(Key::Binding(*home), old, Some(Entry::Binding(spec)));
            }
            Op::BindingDel { home } => {
                let old = self.get(&Key::Binding(*home));
                if old.is_none() {
                    return Err(Error::NoSuchBinding(*home));
                }
                self.set_from(Key::Binding(*home), old, None);
            }
            Op::ConfigSet {
                outer_hop_limit,
                icmp_sources,
                clear_icmp_sources,
            } => {
                let mut t = self.tunnel();
                if let Some(h) = outer_hop_limit {
                    t.outer_hop_limit = u8::try_from(*h).map_err(|_| Error::BadHopLimit(*h))?;
                }
                let clear: Vec<Family> = clear_icmp_sources.iter().map(|f| f.family()).collect();
                for f in &clear {
                    t.set_icmp_source(*f, None);
                }
                let mut seen = Vec::new();
                for a in icmp_sources {
                    check_tunnel_addr("ICMP source", *a)?;
                    let f = Family::of(a);
                    if seen.contains(&f) || clear.contains(&f) {
                        return Err(Error::Conflict(format!(
                            "more than one ICMP source change for {}",
                            f.name()
                        )));
                    }
                    seen.push(f);
                    t.set_icmp_source(f, Some(*a));
                }
                self.set(Key::Tunnel, Some(Entry::Tunnel(t)));
            }
            Op::VapCreate(create) => {
                let eps = self.endpoints();
                let record = create.resolve(self.vaps_now(), &eps)?;
                self.set(Key::Vap(record.client), Some(Entry::Vap(record)));
                if let Some(now) = &mut self.vaps_now {
                    now.push(record);
                }
            }
            Op::VapDelete { client } => {
                if self.get(&Key::Vap(*client)).is_none() {
                    return Err(Error::NoSuchVap(*client));
                }
                self.set(Key::Vap(*client), None);
                self.vaps_now = None;
            }
            Op::VapForward { client, to, source } => {
                let Some(Entry::Vap(old)) = self.get(&Key::Vap(*client)) else {
                    return Err(Error::NoSuchVap(*client));
                };
                let eps = self.endpoints();
                let new = vap_state::forwarding(&old, *to, *source, &eps)?;
                self.set(Key::Vap(*client), Some(Entry::Vap(new)));
                self.vaps_now = None;
            }
            Op::Natpt(n) => self
                .natpt
                .get_or_insert_with(|| (*self.base.natpt).clone())
                .change(n)?,
        }
        Ok(())
    }

    /// The vAPs as they are now in the batch.
    fn vaps_now(&mut self) -> &[VapRecord] {
        if self.vaps_now.is_none() {
            let mut v: Vec<VapRecord> = self
                .base
                .vaps
                .values()
                .filter(|r| !self.changed.contains_key(&Key::Vap(r.client)))
                .copied()
                .collect();
            v.extend(self.changed.values().filter_map(|e| match e {
                Some(Entry::Vap(r)) => Some(*r),
                _ => None,
            }));
            self.vaps_now = Some(v);
        }
        self.vaps_now.as_deref().unwrap_or_default()
    }

    /// Checks what only the whole batch decides (an endpoint removed while a binding still
    /// uses it, the table limits) and returns the deltas.
    fn finish(self) -> Result<Vec<Delta>> {
        for (k, v) in &self.changed {
            if let (Key::Endpoint(addr), None) = (k, v)
                && !self.base.discovered.contains(addr)
            {
                let uses = self.base.source_uses.get(addr).copied().unwrap_or(0) as isize
                    + self.source_uses.get(addr).copied().unwrap_or(0);
                if uses > 0 {
                    let first = self
                        .changed
                        .values()
                        .filter_map(|v| match v {
                            Some(Entry::Binding(b)) if b.source == *addr => Some(b.home),
                            _ => None,
                        })
                        .chain(
                            self.base
                                .bindings
                                .values()
                                .filter(|b| {
                                    b.source == *addr
                                        && !self.changed.contains_key(&Key::Binding(b.home))
                                })
                                .map(|b| b.home),
                        )
                        .next()
                        .expect("a binding uses the endpoint");
                    return Err(Error::EndpointInUse {
                        addr: *addr,
                        binding: first,
                        more: uses as usize - 1,
                    });
                }
            }
        }
        let n = |base: usize, d: isize| (base as isize + d).max(0) as usize;
        check_limits(
            n(self.base.endpoints.len(), self.endpoints),
            n(self.base.peers.len(), self.peers),
            [
                n(self.base.bindings_per_family[0], self.bindings[0]),
                n(self.base.bindings_per_family[1], self.bindings[1]),
            ],
            n(self.base.vaps.len(), self.vaps),
        )?;
        let natpt = self
            .natpt
            .as_ref()
            .map(|n| self.base.natpt.diff(n))
            .unwrap_or_default();
        Ok(self
            .changed
            .into_iter()
            .filter(|(k, v)| self.base.get(k) != *v)
            .map(|(key, v)| match v {
                Some(entry) => Delta::Put { entry },
                None => Delta::Delete { key },
            })
            .chain(natpt)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn bind(home: &str, loc: &str) -> Op {
        Op::BindingAdd {
            home: home.parse().unwrap(),
            locator: ip(loc),
            source: None,
            replace: false,
            route: true,
        }
    }

    fn planned(s: &mut DesiredState, ops: &[Op]) -> Result<Vec<Delta>> {
        let d = s.plan(ops)?;
        s.apply(&d);
        s.validate().unwrap();
        Ok(d)
    }

    #[test]
    fn a_gateway_is_built_and_torn_down() {
        let mut s = DesiredState::default();
        let d = planned(
            &mut s,
            &[
                Op::EndpointAdd {
                    addr: ip("192.0.2.1"),
                },
                Op::PeerAdd {
                    addr: ip("198.51.100.1"),
                },
                bind("10.1.0.0/16", "198.51.100.1"),
            ],
        )
        .unwrap();
        // endpoint, peer, binding, and the ICMP source the endpoint became.
        assert_eq!(d.len(), 4, "{d:?}");
        assert_eq!(
            s.tunnel().icmp_source_v4,
            Some("192.0.2.1".parse().unwrap())
        );
        let b = s.binding(&"10.1.0.0/16".parse().unwrap()).unwrap();
        assert_eq!(b.source, ip("192.0.2.1"));
        // The endpoint is in use.
        let e = s
            .plan(&[Op::EndpointDel {
                addr: ip("192.0.2.1"),
            }])
            .unwrap_err();
        assert!(matches!(e, Error::EndpointInUse { .. }), "{e}");
        // ... but not once the same batch removes the binding first or after.
        planned(
            &mut s,
            &[
                Op::EndpointDel {
                    addr: ip("192.0.2.1"),
                },
                Op::BindingDel {
                    home: "10.1.0.0/16".parse().unwrap(),
                },
            ],
        )
        .unwrap();
        assert_eq!(s.tunnel().icmp_source_v4, None);
        assert_eq!(s.binding_count(), 0);
        assert_eq!(s.endpoints().count(), 0);
    }

    #[test]
    fn a_refused_batch_changes_nothing_and_names_the_op() {
        let mut s = DesiredState::default();
        planned(
            &mut s,
            &[Op::EndpointAdd {
                addr: ip("192.0.2.1"),
            }],
        )
        .unwrap();
        let before = s.clone();
        let e = s
            .plan(&[
                bind("10.1.0.0/16", "198.51.100.1"),
                bind("10.2.0.0/16", "2001:db8::1"),
            ])
            .unwrap_err();
        assert!(
            e.to_string().starts_with("change 2 of 2: no local IPv6"),
            "{e}"
        );
        assert_eq!(s, before);
        // Duplicates inside one batch.
        let e = s
            .plan(&[
                bind("10.1.0.0/16", "198.51.100.1"),
                bind("10.1.0.0/16", "198.51.100.2"),
            ])
            .unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        let e = s
            .plan(&[Op::PeerDel {
                addr: ip("192.0.2.9"),
            }])
            .unwrap_err();
        assert_eq!(e.to_string(), "192.0.2.9 is not a tunnel peer");
    }

    #[test]
    fn replace_moves_a_binding_and_source_counts_follow() {
        let mut s = DesiredState::default();
        planned(
            &mut s,
            &[
                Op::EndpointAdd {
                    addr: ip("192.0.2.1"),
                },
                Op::EndpointAdd {
                    addr: ip("192.0.2.2"),
                },
                bind("10.1.0.0/16", "198.51.100.1"),
            ],
        )
        .unwrap();
        planned(
            &mut s,
            &[Op::BindingAdd {
                home: "10.1.0.0/16".parse().unwrap(),
                locator: ip("198.51.100.7"),
                source: Some(ip("192.0.2.2")),
                replace: true,
                route: false,
            }],
        )
        .unwrap();
        // 192.0.2.1 is no longer used: it can go; its ICMP role moves to 192.0.2.2.
        planned(
            &mut s,
            &[Op::EndpointDel {
                addr: ip("192.0.2.1"),
            }],
        )
        .unwrap();
        assert_eq!(
            s.tunnel().icmp_source_v4,
            Some("192.0.2.2".parse().unwrap())
        );
        assert!(
            s.plan(&[Op::EndpointDel {
                addr: ip("192.0.2.2")
            }])
            .is_err()
        );
    }

    #[test]
    fn a_noop_batch_has_no_deltas() {
        let mut s = DesiredState::default();
        planned(
            &mut s,
            &[Op::PeerAdd {
                addr: ip("198.51.100.1"),
            }],
        )
        .unwrap();
        let d = s
            .plan(&[
                Op::PeerDel {
                    addr: ip("198.51.100.1"),
                },
                Op::PeerAdd {
                    addr: ip("198.51.100.1"),
                },
            ])
            .unwrap();
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn config_set_checks_like_the_cli() {
        let s = DesiredState::default();
        let e = s
            .plan(&[Op::ConfigSet {
                outer_hop_limit: Some(300),
                icmp_sources: vec![],
                clear_icmp_sources: vec![],
            }])
            .unwrap_err();
        assert!(matches!(e, Error::BadHopLimit(300)));
        let e = s
            .plan(&[Op::ConfigSet {
                outer_hop_limit: None,
                icmp_sources: vec![ip("192.0.2.1")],
                clear_icmp_sources: vec![FamilyName::Ipv4],
            }])
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)));
    }

    fn vap(client: &str, v4: &str) -> Op {
        Op::VapCreate(VapCreate {
            client: client.parse().unwrap(),
            ipv4: Some(ip(v4)),
            anchor: Some(ip("198.51.100.1")),
            iface: Some("ap1c".into()),
            ..VapCreate::default()
        })
    }

    fn with_endpoint() -> DesiredState {
        let mut s = DesiredState::default();
        planned(
            &mut s,
            &[Op::EndpointAdd {
                addr: ip("192.0.2.1"),
            }],
        )
        .unwrap();
        s
    }

    #[test]
    fn vaps_in_a_batch_are_checked_as_a_whole() {
        let mut s = with_endpoint();
        let d = planned(
            &mut s,
            &[
                vap("00:16:3e:00:00:01", "10.1.0.1"),
                vap("00:16:3e:00:00:02", "10.1.0.2"),
            ],
        )
        .unwrap();
        assert_eq!(d.len(), 2);
        let one = *s.vap(&"00:16:3e:00:00:01".parse().unwrap()).unwrap();
        assert_eq!(one.source, Some(ip("192.0.2.1")));
        let before = s.clone();
        // The third takes the first's address: the batch is refused, the second of it
        // (valid alone) with it.
        let e = s
            .plan(&[
                vap("00:16:3e:00:00:03", "10.1.0.3"),
                vap("00:16:3e:00:00:04", "10.1.0.1"),
            ])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "change 2 of 2: address 10.1.0.1 already belongs to the vAP of client 00:16:3e:00:00:01"
        );
        // Two creates of one batch meet each other too.
        let e = s
            .plan(&[
                vap("00:16:3e:00:00:03", "10.1.0.3"),
                vap("00:16:3e:00:00:03", "10.1.0.4"),
            ])
            .unwrap_err();
        assert!(e.to_string().contains("already has a vAP"), "{e}");
        let e = s
            .plan(&[Op::VapDelete {
                client: "00:16:3e:00:00:09".parse().unwrap(),
            }])
            .unwrap_err();
        assert_eq!(e.to_string(), "no vAP for client 00:16:3e:00:00:09");
        assert_eq!(s, before);
        // A delete frees the address for a create later in the same batch.
        planned(
            &mut s,
            &[
                Op::VapDelete { client: one.client },
                vap("00:16:3e:00:00:05", "10.1.0.1"),
            ],
        )
        .unwrap();
        assert_eq!(s.vap_count(), 2);
        // Forwarding on and off.
        let five: Mac = "00:16:3e:00:00:05".parse().unwrap();
        planned(
            &mut s,
            &[Op::VapForward {
                client: five,
                to: Some(ip("192.0.2.12")),
                source: None,
            }],
        )
        .unwrap();
        assert_eq!(
            s.vap(&five).unwrap().forwarding(),
            Some((ip("192.0.2.12"), ip("192.0.2.1")))
        );
        let e = s
            .plan(&[Op::VapForward {
                client: five,
                to: Some(ip("2001:db8::12")),
                source: None,
            }])
            .unwrap_err();
        assert!(matches!(e, Error::NoEndpointOfFamily { .. }), "{e}");
    }

    #[test]
    fn the_vap_table_limit_holds() {
        let mut s = with_endpoint();
        let full: Vec<Delta> = (0..MAX_VAPS)
            .map(|i| {
                let mut v = match vap("00:16:3e:00:00:00", "10.0.0.0") {
                    Op::VapCreate(c) => c,
                    _ => unreachable!(),
                };
                v.client = Mac([0, 0x16, 0x3e, 0, (i >> 8) as u8, i as u8]);
                v.ipv4 = Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
                v.vap_mac = Some(Mac([2, 0, 0, 0, (i >> 8) as u8, i as u8]));
                Delta::Put {
                    entry: Entry::Vap(v.resolve(&[], &[ip("192.0.2.1")]).unwrap()),
                }
            })
            .collect();
        s.apply(&full);
        s.validate().unwrap();
        let e = s
            .plan(&[vap("00:16:3e:10:00:01", "10.99.0.1")])
            .unwrap_err();
        assert!(matches!(e, Error::Full { max: MAX_VAPS, .. }), "{e}");
        // A state file holding two vAPs with one address is refused when loaded.
        let mut bad = with_endpoint();
        let mut dup = match full[1] {
            Delta::Put {
                entry: Entry::Vap(v),
            } => v,
            _ => unreachable!(),
        };
        bad.apply(&full[..1]);
        dup.ipv4 = Some(Ipv4Addr::from(0x0a00_0000));
        bad.apply(&[Delta::Put {
            entry: Entry::Vap(dup),
        }]);
        assert!(matches!(bad.validate(), Err(Error::VapTaken { .. })));
    }

    #[test]
    fn ops_and_state_round_trip_through_json() {
        let ops: Vec<Op> = serde_json::from_str(
            r#"[{"op":"endpoint_add","addr":"192.0.2.1"},
                {"op":"binding_add","home":"10.1.0.0/16","locator":"198.51.100.1"}]"#,
        )
        .unwrap();
        assert_eq!(ops[1], bind("10.1.0.0/16", "198.51.100.1"));
        let mut s = DesiredState::default();
        planned(&mut s, &ops).unwrap();
        let vap_op: Op = serde_json::from_str(
            r#"{"op":"vap_create","client":"00:16:3e:00:00:01","ipv4":"10.1.0.5",
                "anchor":"198.51.100.1","iface":"ap1c"}"#,
        )
        .unwrap();
        assert_eq!(vap_op, vap("00:16:3e:00:00:01", "10.1.0.5"));
        planned(&mut s, &[vap_op]).unwrap();
        let text = serde_json::to_string(&s).unwrap();
        let back: DesiredState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.vap_count(), 1);
        // A state written before vAPs were kept still loads.
        let old: DesiredState = serde_json::from_str(
            r#"{"endpoints":[],"peers":[],"bindings":[],"tunnel":{"outer_hop_limit":0,"icmp_source_v4":null,"icmp_source_v6":null}}"#,
        )
        .unwrap();
        assert_eq!(old.vap_count(), 0);
        assert!(
            serde_json::from_str::<Op>(
                r#"{"op":"vap_create","client":"00:16:3e:00:00:01","ipv4":"10.1.0.5","x":1}"#
            )
            .is_err()
        );
        for e in s.entries() {
            assert_eq!(Key::from_path(&e.key().path()).unwrap(), e.key());
        }
        let e = serde_json::from_str::<Op>(
            r#"{"op":"binding_add","home":"10.1.2.3/16","locator":"198.51.100.1"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("did you mean 10.1.0.0/16"), "{e}");
        let e = serde_json::from_str::<Op>(r#"{"op":"peer_add","addr":"300.1.2.3"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid address `300.1.2.3`"), "{e}");
        assert!(
            serde_json::from_str::<Op>(r#"{"op":"peer_add","addr":"192.0.2.1","x":1}"#).is_err()
        );
    }
}
