//! The transition gateway's part of the agent's desired state: the translator settings
//! (RFC 6052 prefix, RFC 6791 addresses, lowest IPv6 MTU, UDP zero-checksum and traffic
//! class policies), the RFC 7757 EAMT (pool allocations are EAMT entries `/32 <-> /128`,
//! as in the maps), the IPv4 address pool prefixes and the IPv6 prefixes of IPv4
//! segments.
//!
//! [`NatptOp`]s (`{"op":"natpt","natpt":"eam_add",...}`) are checked against a working
//! copy of [`NatptDesired`] with the rules of [`crate::natpt`] that `vdmm-ctl natpt ...`
//! applies to the maps, so both refuse the same input with the same one-line errors. A
//! batch's result becomes [`Delta`]s on [`NatptKey`]s (`natpt/settings`,
//! `natpt/eamt/PREFIX4`, `natpt/pools/PREFIX4`, `natpt/segments/PREFIX4`). Pure: no maps.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vdmm_common::{
    maps::{MAX_EAMT, MAX_POOLS, MAX_SEGMENTS},
    translate::{
        Prefix6,
        maps::{XLAT_RESET_TRAFFIC_CLASS, XLAT_UDP_ZERO_DROP, XlatConfig},
    },
};

use super::state::{Delta, Entry, Key, addr_text};
use crate::{
    addr::{Family, Prefix, check_tunnel_addr},
    error::{Error, Result},
    natpt::{
        Allocation, Eam, Pool, Segment, XlatChange, alloc_ipv6, allocation_eam, apply_xlat_change,
        check_eam_add, check_eam_del, check_pool_add, check_segment_add, find_allocation,
        find_segment, parse_mtu, parse_prefix_of, parse_prefix6, plan_alloc, plan_pool_del,
        pool_usage, prefix6_display,
    },
};

/// Serde of an RFC 6052 prefix as its text, parsed by [`parse_prefix6`].
pub mod prefix6_text {
    use super::*;

    pub fn serialize<S: Serializer>(p: &Prefix6, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&prefix6_display(p))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Prefix6, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_prefix6(&text).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<Prefix6>`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            p: &Option<Prefix6>,
            s: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            match p {
                Some(p) => s.collect_str(&prefix6_display(p)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> std::result::Result<Option<Prefix6>, D::Error> {
            let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
            text.map(|t| parse_prefix6(&t).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// The translator settings (`VDMM_XLAT_CFG` without the fragmentation interface, which
/// `load` records).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XlatSettings {
    /// The RFC 6052 prefix; none: EAMT only.
    #[serde(default, with = "prefix6_text::option")]
    pub prefix: Option<Prefix6>,
    #[serde(default)]
    pub rfc6791_v4: Option<Ipv4Addr>,
    #[serde(default)]
    pub rfc6791_v6: Option<Ipv6Addr>,
    /// None: the default (1280).
    #[serde(default)]
    pub lowest_ipv6_mtu: Option<u16>,
    /// IPv4 UDP with checksum zero: dropped (else computed).
    #[serde(default)]
    pub udp_zero_drop: bool,
    /// Traffic class / TOS reset to zero (else copied).
    #[serde(default)]
    pub reset_traffic_class: bool,
}

impl XlatSettings {
    /// The map value, keeping `frag_ifindex` (not the agent's).
    pub fn to_config(&self, frag_ifindex: u32) -> XlatConfig {
        let mut flags = 0;
        if self.udp_zero_drop {
            flags |= XLAT_UDP_ZERO_DROP;
        }
        if self.reset_traffic_class {
            flags |= XLAT_RESET_TRAFFIC_CLASS;
        }
        XlatConfig {
            pool6: self.prefix.unwrap_or_default(),
            flags,
            lowest_ipv6_mtu: self.lowest_ipv6_mtu.unwrap_or(0),
            rfc6791_v4: self.rfc6791_v4.map_or([0; 4], |a| a.octets()),
            rfc6791_v6: self.rfc6791_v6.map_or([0; 16], |a| a.octets()),
            frag_ifindex,
        }
    }

    /// The settings of a map value.
    pub fn from_config(c: &XlatConfig) -> Self {
        Self {
            prefix: crate::natpt::pool6(c),
            rfc6791_v4: (c.rfc6791_v4 != [0; 4]).then(|| Ipv4Addr::from(c.rfc6791_v4)),
            rfc6791_v6: (c.rfc6791_v6 != [0; 16]).then(|| Ipv6Addr::from(c.rfc6791_v6)),
            lowest_ipv6_mtu: (c.lowest_ipv6_mtu != 0).then_some(c.lowest_ipv6_mtu),
            udp_zero_drop: c.flags & XLAT_UDP_ZERO_DROP != 0,
            reset_traffic_class: c.flags & XLAT_RESET_TRAFFIC_CLASS != 0,
        }
    }

    /// The lowest IPv6 MTU in effect.
    pub fn lowest_mtu(&self) -> u32 {
        self.to_config(0).lowest_mtu()
    }

    /// Checks settings that did not come through [`apply_xlat_change`] (a store's).
    fn validate(&self) -> Result<()> {
        if let Some(p) = self.prefix {
            parse_prefix6(&prefix6_display(&p).to_string())?;
        }
        for a in [
            self.rfc6791_v4.map(IpAddr::V4),
            self.rfc6791_v6.map(IpAddr::V6),
        ]
        .into_iter()
        .flatten()
        {
            check_tunnel_addr("RFC 6791 address", a)?;
        }
        if let Some(m) = self.lowest_ipv6_mtu {
            parse_mtu(&m.to_string())?;
        }
        Ok(())
    }
}

/// The key of one translation item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NatptKey {
    Settings,
    /// An EAMT entry, by its IPv4 prefix.
    Eam(Prefix),
    Pool(Prefix),
    /// A segment, by its IPv4 prefix.
    Segment(Prefix),
}

impl NatptKey {
    /// The path under `natpt/`: `settings`, `eamt/10.0.0.0/24`, `pools/...`,
    /// `segments/...`.
    pub fn path(&self) -> String {
        match self {
            NatptKey::Settings => "settings".to_string(),
            NatptKey::Eam(p) => format!("eamt/{p}"),
            NatptKey::Pool(p) => format!("pools/{p}"),
            NatptKey::Segment(p) => format!("segments/{p}"),
        }
    }

    /// The key named by [`NatptKey::path`] (`Err` carries the reason).
    pub fn from_path(path: &str) -> std::result::Result<Self, String> {
        if path == "settings" {
            return Ok(NatptKey::Settings);
        }
        let (table, rest) = path
            .split_once('/')
            .ok_or_else(|| "unknown key".to_string())?;
        let v4 = |what: &str| -> std::result::Result<Prefix, String> {
            let p: Prefix = rest.parse().map_err(|e: Error| e.to_string())?;
            if p.family() != Family::V4 {
                return Err(format!("{what} {p} is not an IPv4 prefix"));
            }
            Ok(p)
        };
        match table {
            "eamt" => Ok(NatptKey::Eam(v4("an EAMT key")?)),
            "pools" => Ok(NatptKey::Pool(v4("a pool")?)),
            "segments" => Ok(NatptKey::Segment(v4("a segment")?)),
            _ => Err("unknown table".to_string()),
        }
    }
}

/// The value under a [`NatptKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "natpt", rename_all = "snake_case", deny_unknown_fields)]
pub enum NatptEntry {
    Settings(XlatSettings),
    Eam {
        ipv6: Prefix,
        ipv4: Prefix,
    },
    Pool {
        prefix: Prefix,
    },
    Segment {
        ipv4: Prefix,
        #[serde(with = "prefix6_text")]
        prefix6: Prefix6,
    },
}

impl NatptEntry {
    pub fn key(&self) -> NatptKey {
        match self {
            NatptEntry::Settings(_) => NatptKey::Settings,
            NatptEntry::Eam { ipv4, .. } => NatptKey::Eam(*ipv4),
            NatptEntry::Pool { prefix } => NatptKey::Pool(*prefix),
            NatptEntry::Segment { ipv4, .. } => NatptKey::Segment(*ipv4),
        }
    }

    fn eam(e: &Eam) -> Self {
        NatptEntry::Eam {
            ipv6: e.v6,
            ipv4: e.v4,
        }
    }
}

/// A change to the translation configuration, as a client asks for it: the
/// `vdmm-ctl natpt` command of the same name, with its rules and messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "natpt", rename_all = "snake_case", deny_unknown_fields)]
pub enum NatptOp {
    /// `natpt prefix set`.
    PrefixSet {
        #[serde(with = "prefix6_text")]
        prefix: Prefix6,
    },
    /// `natpt prefix clear [PREFIX]`.
    PrefixClear {
        #[serde(default, with = "prefix6_text::option")]
        prefix: Option<Prefix6>,
    },
    /// `natpt rfc6791 set`.
    Rfc6791Set {
        #[serde(with = "addr_text")]
        addr: IpAddr,
    },
    /// `natpt rfc6791 clear [ADDR]`.
    Rfc6791Clear {
        #[serde(default, with = "addr_text::option")]
        addr: Option<IpAddr>,
    },
    /// `natpt mtu set MTU` (`mtu`), `natpt mtu clear` (no `mtu`).
    Mtu {
        #[serde(default)]
        mtu: Option<u32>,
    },
    /// `natpt udp-zero-checksum drop|compute`.
    UdpZeroChecksum { drop: bool },
    /// `natpt traffic-class reset|copy`.
    TrafficClass { reset: bool },
    /// `natpt eam add`.
    EamAdd { prefix6: Prefix, prefix4: Prefix },
    /// `natpt eam del`.
    EamDel { prefix6: Prefix, prefix4: Prefix },
    /// `natpt pool add`.
    PoolAdd { prefix: Prefix },
    /// `natpt pool del [--force]`.
    PoolDel {
        prefix: Prefix,
        #[serde(default)]
        force: bool,
    },
    /// `natpt pool alloc IPV6 [--from POOL]`.
    PoolAlloc {
        #[serde(with = "addr_text")]
        ipv6: IpAddr,
        #[serde(default)]
        from: Option<Prefix>,
    },
    /// `natpt pool release ADDR`.
    PoolRelease {
        #[serde(with = "addr_text")]
        addr: IpAddr,
    },
    /// `natpt segment add PREFIX4 --prefix6 PREFIX6 [--replace]`.
    SegmentAdd {
        prefix4: Prefix,
        #[serde(with = "prefix6_text")]
        prefix6: Prefix6,
        #[serde(default)]
        replace: bool,
    },
    /// `natpt segment del`.
    SegmentDel { prefix4: Prefix },
}

/// `p` when it is an IPv4 prefix, else the error `vdmm-ctl natpt` gives for its text.
fn v4_prefix(what: &str, p: &Prefix) -> Result<Prefix> {
    parse_prefix_of(Family::V4, what, &p.to_string())
}

/// The translation configuration as desired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatptDesired {
    settings: XlatSettings,
    /// By IPv4 prefix.
    eamt: BTreeMap<Prefix, Eam>,
    pools: BTreeSet<Prefix>,
    /// By IPv4 prefix.
    segments: BTreeMap<Prefix, Prefix6>,
}

/// The serialized form: `{settings, eamt, pools, segments}`.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NatptImage {
    #[serde(default)]
    settings: XlatSettings,
    #[serde(default)]
    eamt: Vec<EamImage>,
    #[serde(default)]
    pools: Vec<Prefix>,
    #[serde(default)]
    segments: Vec<SegmentImage>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EamImage {
    ipv6: Prefix,
    ipv4: Prefix,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentImage {
    ipv4: Prefix,
    #[serde(with = "prefix6_text")]
    prefix6: Prefix6,
}

impl NatptDesired {
    pub fn settings(&self) -> &XlatSettings {
        &self.settings
    }

    /// The EAMT entries (allocations included), sorted by IPv4 prefix.
    pub fn eamt(&self) -> Vec<Eam> {
        self.eamt.values().copied().collect()
    }

    pub fn pool_prefixes(&self) -> Vec<Prefix> {
        self.pools.iter().copied().collect()
    }

    /// The pools with their usage.
    pub fn pools(&self) -> Vec<Pool> {
        pool_usage(&self.pool_prefixes(), &self.eamt())
    }

    pub fn segments(&self) -> Vec<Segment> {
        self.segments
            .iter()
            .map(|(v4, p6)| Segment {
                v4: *v4,
                prefix6: *p6,
            })
            .collect()
    }

    /// True when nothing is configured (the default settings, empty tables).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The value under `key`, if any (default settings count as absent).
    pub fn get(&self, key: &NatptKey) -> Option<NatptEntry> {
        match key {
            NatptKey::Settings => (self.settings != XlatSettings::default())
                .then_some(NatptEntry::Settings(self.settings)),
            NatptKey::Eam(p) => self.eamt.get(p).map(NatptEntry::eam),
            NatptKey::Pool(p) => self
                .pools
                .contains(p)
                .then_some(NatptEntry::Pool { prefix: *p }),
            NatptKey::Segment(p) => self.segments.get(p).map(|p6| NatptEntry::Segment {
                ipv4: *p,
                prefix6: *p6,
            }),
        }
    }

    /// Every entry (what [`NatptDesired::get`] finds).
    pub fn entries(&self) -> impl Iterator<Item = NatptEntry> + '_ {
        self.get(&NatptKey::Settings)
            .into_iter()
            .chain(self.eamt.values().map(NatptEntry::eam))
            .chain(self.pools.iter().map(|p| NatptEntry::Pool { prefix: *p }))
            .chain(self.segments.iter().map(|(v4, p6)| NatptEntry::Segment {
                ipv4: *v4,
                prefix6: *p6,
            }))
    }

    /// Puts a value without checking it.
    pub fn put(&mut self, e: NatptEntry) {
        match e {
            NatptEntry::Settings(s) => self.settings = s,
            NatptEntry::Eam { ipv6, ipv4 } => {
                self.eamt.insert(ipv4, Eam { v4: ipv4, v6: ipv6 });
            }
            NatptEntry::Pool { prefix } => {
                self.pools.insert(prefix);
            }
            NatptEntry::Segment { ipv4, prefix6 } => {
                self.segments.insert(ipv4, prefix6);
            }
        }
    }

    pub fn delete(&mut self, key: NatptKey) {
        match key {
            NatptKey::Settings => self.settings = XlatSettings::default(),
            NatptKey::Eam(p) => {
                self.eamt.remove(&p);
            }
            NatptKey::Pool(p) => {
                self.pools.remove(&p);
            }
            NatptKey::Segment(p) => {
                self.segments.remove(&p);
            }
        }
    }

    /// Checks the whole configuration (a store's contents) with the rules the changes
    /// are made with: valid settings, well-formed EAMT entries no two of which share a
    /// prefix, disjoint pools outside the reserved ranges, one IPv6 prefix per segment,
    /// the tables within their limits.
    pub fn validate(&self) -> Result<()> {
        let bad = |e: Error| Error::Conflict(format!("translation configuration: {e}"));
        self.settings.validate().map_err(bad)?;
        // Keyed by IPv4 prefix, so only the IPv6 prefixes can repeat (`eam add`'s rule).
        let mut v6 = BTreeSet::new();
        for e in self.eamt.values() {
            Eam::new(e.v6, e.v4).map_err(bad)?;
            if !v6.insert(e.v6) {
                return Err(bad(Error::Conflict(format!(
                    "{} already has an EAMT entry",
                    e.v6
                ))));
            }
        }
        let mut pools = Vec::new();
        for p in &self.pools {
            check_pool_add(&pools, p).map_err(bad)?;
            pools.push(*p);
        }
        let mut segs = Vec::new();
        for s in self.segments() {
            check_segment_add(&segs, &s, false).map_err(bad)?;
            segs.push(s);
        }
        self.check_limits()
    }

    fn check_limits(&self) -> Result<()> {
        for (n, what, max) in [
            (self.eamt.len(), "the EAMT", MAX_EAMT),
            (self.pools.len(), "the address pool table", MAX_POOLS),
            (self.segments.len(), "the segment table", MAX_SEGMENTS),
        ] {
            if n > max as usize {
                return Err(Error::Full { what, max });
            }
        }
        Ok(())
    }

    /// Applies one client change to this (working) copy after checking it.
    pub fn change(&mut self, op: &NatptOp) -> Result<()> {
        let xlat = |s: &mut Self, c: XlatChange| -> Result<()> {
            let new = apply_xlat_change(&s.settings.to_config(0), c)?;
            s.settings = XlatSettings::from_config(&new);
            Ok(())
        };
        match op {
            NatptOp::PrefixSet { prefix } => xlat(self, XlatChange::SetPrefix(*prefix))?,
            NatptOp::PrefixClear { prefix } => xlat(self, XlatChange::ClearPrefix(*prefix))?,
            NatptOp::Rfc6791Set { addr } => xlat(self, XlatChange::SetRfc6791(*addr))?,
            NatptOp::Rfc6791Clear { addr } => xlat(self, XlatChange::ClearRfc6791(*addr))?,
            NatptOp::Mtu { mtu } => {
                let m = mtu.map(|m| parse_mtu(&m.to_string())).transpose()?;
                xlat(self, XlatChange::Mtu(m))?
            }
            NatptOp::UdpZeroChecksum { drop } => xlat(self, XlatChange::UdpZeroDrop(*drop))?,
            NatptOp::TrafficClass { reset } => xlat(self, XlatChange::ResetTrafficClass(*reset))?,
            NatptOp::EamAdd { prefix6, prefix4 } => {
                let e = Eam::new(*prefix6, *prefix4)?;
                check_eam_add(&self.eamt(), &e)?;
                self.eamt.insert(e.v4, e);
            }
            NatptOp::EamDel { prefix6, prefix4 } => {
                let e = Eam::new(*prefix6, *prefix4)?;
                check_eam_del(&self.eamt(), &e)?;
                self.eamt.remove(&e.v4);
            }
            NatptOp::PoolAdd { prefix } => {
                v4_prefix("address pool", prefix)?;
                check_pool_add(&self.pool_prefixes(), prefix)?;
                self.pools.insert(*prefix);
            }
            NatptOp::PoolDel { prefix, force } => {
                v4_prefix("address pool", prefix)?;
                let pools = self.pools();
                let pool = plan_pool_del(&pools, prefix, *force)?;
                for a in &pool.allocations {
                    self.eamt.remove(&allocation_eam(a).v4);
                }
                self.pools.remove(prefix);
            }
            NatptOp::PoolAlloc { ipv6, from } => {
                let v6 = alloc_ipv6(*ipv6)?;
                let from = from.map(|f| v4_prefix("pool", &f)).transpose()?;
                let a = plan_alloc(&self.pools(), &self.eamt(), v6, from.as_ref())?;
                let e = allocation_eam(&a);
                self.eamt.insert(e.v4, e);
            }
            NatptOp::PoolRelease { addr } => {
                let a = find_allocation(&self.pools(), *addr)?;
                self.eamt.remove(&allocation_eam(&a).v4);
            }
            NatptOp::SegmentAdd {
                prefix4,
                prefix6,
                replace,
            } => {
                let s = Segment {
                    v4: v4_prefix("segment", prefix4)?,
                    prefix6: *prefix6,
                };
                check_segment_add(&self.segments(), &s, *replace)?;
                self.segments.insert(s.v4, s.prefix6);
            }
            NatptOp::SegmentDel { prefix4 } => {
                let s = find_segment(&self.segments(), &v4_prefix("segment", prefix4)?)?;
                self.segments.remove(&s.v4);
            }
        }
        self.check_limits()
    }

    /// The deltas that take `self` to `after`.
    pub fn diff(&self, after: &NatptDesired) -> Vec<Delta> {
        let mut out = Vec::new();
        let mut push = |key: NatptKey, before: Option<NatptEntry>, now: Option<NatptEntry>| {
            if before != now {
                out.push(match now {
                    Some(e) => Delta::Put {
                        entry: Entry::Natpt(e),
                    },
                    None => Delta::Delete {
                        key: Key::Natpt(key),
                    },
                });
            }
        };
        push(
            NatptKey::Settings,
            self.get(&NatptKey::Settings),
            after.get(&NatptKey::Settings),
        );
        let keys = |a: &NatptDesired, b: &NatptDesired| -> BTreeSet<NatptKey> {
            a.eamt
                .keys()
                .chain(b.eamt.keys())
                .map(|p| NatptKey::Eam(*p))
                .chain(a.pools.iter().chain(&b.pools).map(|p| NatptKey::Pool(*p)))
                .chain(
                    a.segments
                        .keys()
                        .chain(b.segments.keys())
                        .map(|p| NatptKey::Segment(*p)),
                )
                .collect()
        };
        for k in keys(self, after) {
            push(k, self.get(&k), after.get(&k));
        }
        out
    }

    /// The serialized form.
    pub fn image(&self) -> NatptImage {
        NatptImage {
            settings: self.settings,
            eamt: self
                .eamt
                .values()
                .map(|e| EamImage {
                    ipv6: e.v6,
                    ipv4: e.v4,
                })
                .collect(),
            pools: self.pool_prefixes(),
            segments: self
                .segments
                .iter()
                .map(|(v4, p6)| SegmentImage {
                    ipv4: *v4,
                    prefix6: *p6,
                })
                .collect(),
        }
    }

    /// The configuration a serialized form describes (checked by [`Self::validate`]
    /// where the state is loaded).
    pub fn from_image(image: NatptImage) -> Self {
        let mut s = Self {
            settings: image.settings,
            ..Self::default()
        };
        for e in image.eamt {
            s.put(NatptEntry::Eam {
                ipv6: e.ipv6,
                ipv4: e.ipv4,
            });
        }
        for p in image.pools {
            s.put(NatptEntry::Pool { prefix: p });
        }
        for g in image.segments {
            s.put(NatptEntry::Segment {
                ipv4: g.ipv4,
                prefix6: g.prefix6,
            });
        }
        s
    }

    /// The ops that build this configuration from an empty one (adopting what the maps
    /// hold): settings, pools, segments, then the EAMT (allocations are entries).
    pub fn ops(&self) -> Vec<NatptOp> {
        let mut ops = Vec::new();
        let s = &self.settings;
        if let Some(prefix) = s.prefix {
            ops.push(NatptOp::PrefixSet { prefix });
        }
        for a in [s.rfc6791_v4.map(IpAddr::V4), s.rfc6791_v6.map(IpAddr::V6)]
            .into_iter()
            .flatten()
        {
            ops.push(NatptOp::Rfc6791Set { addr: a });
        }
        if let Some(m) = s.lowest_ipv6_mtu {
            ops.push(NatptOp::Mtu {
                mtu: Some(m as u32),
            });
        }
        if s.udp_zero_drop {
            ops.push(NatptOp::UdpZeroChecksum { drop: true });
        }
        if s.reset_traffic_class {
            ops.push(NatptOp::TrafficClass { reset: true });
        }
        ops.extend(self.pools.iter().map(|p| NatptOp::PoolAdd { prefix: *p }));
        ops.extend(self.segments().iter().map(|g| NatptOp::SegmentAdd {
            prefix4: g.v4,
            prefix6: g.prefix6,
            replace: false,
        }));
        ops.extend(self.eamt.values().map(|e| NatptOp::EamAdd {
            prefix6: e.v6,
            prefix4: e.v4,
        }));
        ops
    }
}

/// What a committed batch did to pool allocations, for `pool alloc|release|del`'s
/// output: EAMT entries `/32 <-> /128` that appeared (`allocated`) and went
/// (`released`), from the batch's deltas and the configuration before it.
pub fn allocation_outcome(deltas: &[Delta], before: &NatptDesired) -> serde_json::Value {
    let alloc = |e: &Eam| -> Option<Allocation> {
        match (e.v4.addr(), e.v6.addr()) {
            (IpAddr::V4(ipv4), IpAddr::V6(ipv6)) if e.v4.is_host() && e.v6.is_host() => {
                Some(Allocation { ipv4, ipv6 })
            }
            _ => None,
        }
    };
    let json = |a: &Allocation| serde_json::json!({"ipv4": a.ipv4.to_string(), "ipv6": a.ipv6.to_string()});
    let mut allocated = Vec::new();
    let mut released = Vec::new();
    for d in deltas {
        match d {
            Delta::Put {
                entry: Entry::Natpt(NatptEntry::Eam { ipv6, ipv4 }),
            } if !before.eamt.contains_key(ipv4) => {
                allocated.extend(alloc(&Eam {
                    v4: *ipv4,
                    v6: *ipv6,
                }));
            }
            Delta::Delete {
                key: Key::Natpt(NatptKey::Eam(p)),
            } => released.extend(before.eamt.get(p).and_then(alloc)),
            _ => {}
        }
    }
    allocated.sort();
    released.sort();
    serde_json::json!({
        "allocated": allocated.iter().map(json).collect::<Vec<_>>(),
        "released": released.iter().map(json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::state::{DesiredState, Op};

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn op(json: &str) -> Op {
        serde_json::from_str(json).unwrap()
    }

    fn planned(s: &mut DesiredState, ops: &[Op]) -> Result<Vec<Delta>> {
        let d = s.plan(ops)?;
        s.apply(&d);
        s.validate().unwrap();
        Ok(d)
    }

    fn gateway() -> DesiredState {
        let mut s = DesiredState::default();
        planned(
            &mut s,
            &[
                op(r#"{"op":"natpt","natpt":"prefix_set","prefix":"64:ff9b::/96"}"#),
                op(r#"{"op":"natpt","natpt":"rfc6791_set","addr":"192.0.2.254"}"#),
                op(r#"{"op":"natpt","natpt":"mtu","mtu":1400}"#),
                op(r#"{"op":"natpt","natpt":"udp_zero_checksum","drop":true}"#),
                op(
                    r#"{"op":"natpt","natpt":"eam_add","prefix6":"2001:db8:6::/120","prefix4":"198.51.100.0/24"}"#,
                ),
                op(r#"{"op":"natpt","natpt":"pool_add","prefix":"192.0.2.0/30"}"#),
                op(r#"{"op":"natpt","natpt":"pool_alloc","ipv6":"2001:db8:1::7"}"#),
                op(
                    r#"{"op":"natpt","natpt":"segment_add","prefix4":"10.0.0.0/8","prefix6":"2001:db8:a::/96"}"#,
                ),
            ],
        )
        .unwrap();
        s
    }

    #[test]
    fn a_gateway_configuration_is_planned_into_keys() {
        let s = gateway();
        let n = s.natpt();
        assert_eq!(
            n.settings().prefix.map(|p| prefix6_display(&p).to_string()),
            Some("64:ff9b::/96".into())
        );
        assert_eq!(n.settings().lowest_mtu(), 1400);
        assert!(n.settings().udp_zero_drop);
        // The allocation is the lowest usable address of the pool, as an EAMT entry.
        assert_eq!(
            n.eamt(),
            vec![
                Eam::new(p("2001:db8:1::7/128"), p("192.0.2.1/32")).unwrap(),
                Eam::new(p("2001:db8:6::/120"), p("198.51.100.0/24")).unwrap(),
            ]
        );
        let keys: Vec<String> = s.entries().map(|e| e.key().path()).collect();
        for k in [
            "natpt/settings",
            "natpt/eamt/192.0.2.1/32",
            "natpt/eamt/198.51.100.0/24",
            "natpt/pools/192.0.2.0/30",
            "natpt/segments/10.0.0.0/8",
        ] {
            assert!(keys.contains(&k.to_string()), "{k} in {keys:?}");
            assert_eq!(Key::from_path(k).unwrap().path(), k);
        }
        assert!(Key::from_path("natpt/pools/2001:db8::/64").is_err());
        assert!(Key::from_path("natpt/nope/1").is_err());
        // The state and every entry survive JSON (the stores' formats).
        let text = serde_json::to_string(&s).unwrap();
        let back: DesiredState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        for e in s.entries() {
            let t = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<Entry>(&t).unwrap(), e, "{t}");
        }
        // A state without translation keeps the old format.
        let plain = serde_json::to_value(DesiredState::default()).unwrap();
        assert!(plain.get("natpt").is_none(), "{plain}");
    }

    #[test]
    fn refused_changes_carry_the_commands_messages_and_change_nothing() {
        let s = gateway();
        let cases = [
            (
                r#"{"op":"natpt","natpt":"eam_add","prefix6":"2001:db8:7::/120","prefix4":"198.51.100.0/24"}"#,
                "198.51.100.0/24 already has an EAMT entry (2001:db8:6::/120 <-> 198.51.100.0/24); delete it first (`vdmm-ctl natpt eam del 2001:db8:6::/120 198.51.100.0/24`)",
            ),
            (
                r#"{"op":"natpt","natpt":"pool_add","prefix":"192.0.2.0/24"}"#,
                "pool 192.0.2.0/24 overlaps the existing pool 192.0.2.0/30; pools must be disjoint",
            ),
            (
                r#"{"op":"natpt","natpt":"pool_add","prefix":"2001:db8::/120"}"#,
                "address pool `2001:db8::/120` is not an IPv4 prefix",
            ),
            (
                r#"{"op":"natpt","natpt":"pool_del","prefix":"192.0.2.0/30"}"#,
                "pool 192.0.2.0/30 has 1 allocation(s): 192.0.2.1 -> 2001:db8:1::7; release them or pass --force",
            ),
            (
                r#"{"op":"natpt","natpt":"prefix_clear","prefix":"2001:db8::/32"}"#,
                "the RFC 6052 prefix is 64:ff9b::/96, not 2001:db8::/32; nothing was changed",
            ),
            (
                r#"{"op":"natpt","natpt":"mtu","mtu":1279}"#,
                "invalid lowest IPv6 MTU `1279`: expected a number from 1280 (the IPv6 minimum link MTU, RFC 8200) to 65535",
            ),
            (
                r#"{"op":"natpt","natpt":"pool_release","addr":"192.0.2.2"}"#,
                "192.0.2.2 is not an allocated address of an address pool",
            ),
            (
                r#"{"op":"natpt","natpt":"segment_del","prefix4":"10.1.0.0/16"}"#,
                "no segment 10.1.0.0/16",
            ),
            (
                r#"{"op":"natpt","natpt":"pool_alloc","ipv6":"192.0.2.9"}"#,
                "pool alloc takes the IPv6 address of the host, not the IPv4 address 192.0.2.9",
            ),
        ];
        for (json, want) in cases {
            let e = s.plan(&[op(json)]).unwrap_err();
            assert_eq!(e.to_string(), want, "{json}");
        }
        // In a batch, the first failing change is named and nothing of it is applied.
        let before = s.clone();
        let e = s
            .plan(&[
                op(r#"{"op":"natpt","natpt":"pool_add","prefix":"203.0.113.0/30"}"#),
                op(r#"{"op":"natpt","natpt":"pool_alloc","ipv6":"2001:db8:1::8"}"#),
                op(r#"{"op":"natpt","natpt":"pool_alloc","ipv6":"2001:db8:1::9"}"#),
                op(r#"{"op":"natpt","natpt":"pool_alloc","ipv6":"2001:db8:1::a"}"#),
                op(r#"{"op":"natpt","natpt":"pool_alloc","ipv6":"2001:db8:1::b"}"#),
            ])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "change 5 of 5: pool exhausted: every address of every pool (192.0.2.0/30, \
             203.0.113.0/30) is allocated"
        );
        assert_eq!(s, before);
        // Bad text is refused with the parsers' messages.
        for (json, want) in [
            (
                r#"{"op":"natpt","natpt":"prefix_set","prefix":"2001:db8::/33"}"#,
                "RFC 6052 section 2.2",
            ),
            (
                r#"{"op":"natpt","natpt":"eam_add","prefix6":"2001:db8::/120","prefix4":"10.0.0.1/24"}"#,
                "did you mean 10.0.0.0/24",
            ),
            (
                r#"{"op":"natpt","natpt":"pool_add","prefix":"192.0.2.0/24","x":1}"#,
                "unknown field",
            ),
            (r#"{"op":"natpt","natpt":"explode"}"#, "unknown variant"),
        ] {
            let e = serde_json::from_str::<Op>(json).unwrap_err().to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn pool_del_force_releases_and_the_outcome_names_allocations() {
        let mut s = gateway();
        let before = s.natpt().clone();
        let d = planned(
            &mut s,
            &[op(
                r#"{"op":"natpt","natpt":"pool_del","prefix":"192.0.2.0/30","force":true}"#,
            )],
        )
        .unwrap();
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(
            allocation_outcome(&d, &before),
            serde_json::json!({"allocated": [], "released": [{"ipv4": "192.0.2.1", "ipv6": "2001:db8:1::7"}]})
        );
        assert!(s.natpt().pools().is_empty());
        assert_eq!(s.natpt().eamt().len(), 1);
        // Clearing everything leaves no translation keys.
        planned(
            &mut s,
            &[
                op(r#"{"op":"natpt","natpt":"prefix_clear"}"#),
                op(r#"{"op":"natpt","natpt":"rfc6791_clear"}"#),
                op(r#"{"op":"natpt","natpt":"mtu"}"#),
                op(r#"{"op":"natpt","natpt":"udp_zero_checksum","drop":false}"#),
                op(
                    r#"{"op":"natpt","natpt":"eam_del","prefix6":"2001:db8:6::/120","prefix4":"198.51.100.0/24"}"#,
                ),
                op(r#"{"op":"natpt","natpt":"segment_del","prefix4":"10.0.0.0/8"}"#),
            ],
        )
        .unwrap();
        assert!(s.natpt().is_empty(), "{:?}", s.natpt());
        assert_eq!(s.entries().count(), 1, "only the tunnel settings");
    }

    #[test]
    fn a_stored_configuration_that_breaks_the_rules_is_refused() {
        let mut bad = NatptDesired::default();
        bad.put(NatptEntry::Eam {
            ipv6: p("2001:db8::/120"),
            ipv4: p("10.0.0.0/24"),
        });
        bad.put(NatptEntry::Eam {
            ipv6: p("2001:db8::/120"),
            ipv4: p("10.0.1.0/24"),
        });
        let e = bad.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("translation configuration: 2001:db8::/120 already has"),
            "{e}"
        );
        let mut bad = NatptDesired::default();
        bad.put(NatptEntry::Eam {
            ipv6: p("2001:db8::/96"),
            ipv4: p("10.0.0.0/24"),
        });
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("suffix lengths differ")
        );
        let mut bad = NatptDesired::default();
        bad.put(NatptEntry::Pool {
            prefix: p("127.0.0.0/24"),
        });
        assert!(bad.validate().unwrap_err().to_string().contains("loopback"));
        let mut bad = NatptDesired::default();
        bad.put(NatptEntry::Settings(XlatSettings {
            lowest_ipv6_mtu: Some(1000),
            ..Default::default()
        }));
        assert!(bad.validate().is_err());
        // The import ops of a configuration rebuild it.
        let s = gateway();
        let mut rebuilt = DesiredState::default();
        let ops: Vec<Op> = s.natpt().ops().into_iter().map(Op::Natpt).collect();
        planned(&mut rebuilt, &ops).unwrap();
        assert_eq!(rebuilt.natpt(), s.natpt());
    }

    #[test]
    fn the_example_batch_is_valid() {
        let ops = crate::commands::agent::parse_batch(
            include_str!("../../../examples/transition-gateway.ops.json"),
            "transition-gateway.ops.json",
        )
        .unwrap();
        let mut s = DesiredState::default();
        planned(&mut s, &ops).unwrap();
        assert_eq!(s.natpt().settings().lowest_mtu(), 1400);
        assert_eq!(s.natpt().eamt().len(), 1);
        assert_eq!(s.natpt().pool_prefixes(), vec![p("192.0.2.0/25")]);
        assert_eq!(s.natpt().segments().len(), 1);
    }

    #[test]
    fn settings_and_the_map_value_convert_both_ways() {
        let s = gateway();
        let cfg = s.natpt().settings().to_config(7);
        assert_eq!(cfg.frag_ifindex, 7);
        assert_eq!(cfg.rfc6791_v4, [192, 0, 2, 254]);
        assert_eq!(cfg.flags, XLAT_UDP_ZERO_DROP);
        assert_eq!(XlatSettings::from_config(&cfg), *s.natpt().settings());
        assert_eq!(
            XlatSettings::from_config(&XlatConfig::default()),
            XlatSettings::default()
        );
    }
}
