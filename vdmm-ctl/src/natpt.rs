//! The IPv4/IPv6 transition gateway's tables: the stateless translator (SIIT, RFC 7915)
//! settings and its explicit address mappings, the IPv4 address pool, and the IPv6
//! prefixes of IPv4 segments. `vdmm-ctl natpt ...` goes through here.
//!
//! Maps (names in `vdmm_common::maps`, contract in `vdmm_common::translate::maps`):
//!
//! - `VDMM_XLAT_CFG`: one [`XlatConfig`]: the RFC 6052 prefix, the RFC 6791 addresses, the
//!   lowest IPv6 MTU, flags. Changed as a whole with [`apply_xlat_change`].
//! - `VDMM_EAMT4` / `VDMM_EAMT6`: the RFC 7757 EAMT, every entry in both tries (keyed by
//!   its IPv4 and its IPv6 prefix) with the same [`EamEntry`] value.
//! - `VDMM_POOL4`: the IPv4 address pool prefixes. An allocation is an EAMT entry
//!   `ADDR4/32 <-> ADDR6/128` whose IPv4 address is in a pool: the EAMT is the only
//!   record of allocations, so a pool's usage is derived from it ([`pool_usage`]).
//! - `VDMM_SEGMENTS`: IPv4 segment prefix -> the RFC 6052 prefix of the IPv6 care-of
//!   addresses of hosts in that segment ([`segment_coa`]).
//!
//! The pure rules (parsing RFC 6052 prefixes, RFC 7757 entries, overlap checks, picking a
//! free pool address, the care-of address) are functions over slices, unit tested here;
//! [`Translator`] reads the maps, runs the rules, and only then writes, so a refused
//! request changes nothing.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use aya::maps::{
    Array, MapData,
    lpm_trie::{Key, LpmTrie},
};
use vdmm_common::{
    maps as names,
    translate::{
        EamEntry, Prefix6,
        maps::{DEFAULT_LOWEST_IPV6_MTU, XLAT_RESET_TRAFFIC_CLASS, XLAT_UDP_ZERO_DROP, XlatConfig},
        rfc6052,
    },
};

use crate::{
    addr::{Family, Prefix, check_tunnel_addr},
    error::{Error, Result},
    maps::{errno, open_map},
    pin::PinDir,
};

const BPF_NOEXIST: u64 = 1;

/// The smallest "lowest IPv6 MTU": the IPv6 minimum link MTU (RFC 8200 section 5).
pub const MIN_IPV6_MTU: u32 = 1280;

// ----- parsing -----

/// Parses `ADDR[/LEN]` of the given family; `what` names it in errors.
pub fn parse_prefix_of(family: Family, what: &str, text: &str) -> Result<Prefix> {
    let p: Prefix = text.parse()?;
    if p.family() != family {
        return Err(Error::Conflict(format!(
            "{what} `{}` is not an {} prefix",
            text.trim(),
            family.name()
        )));
    }
    Ok(p)
}

/// Parses an RFC 6052 prefix (`PREFIX6/LEN`): IPv6, length 32, 40, 48, 56, 64 or 96,
/// bits 64..71 (the "u" octet) zero, no bits set after the length.
pub fn parse_prefix6(text: &str) -> Result<Prefix6> {
    let t = text.trim();
    let bad = |reason: String| Error::BadPrefix {
        text: t.to_string(),
        reason,
    };
    let (addr_text, len_text) = t
        .split_once('/')
        .ok_or_else(|| bad("an RFC 6052 prefix needs its length: PREFIX6/LEN".into()))?;
    let addr: Ipv6Addr = match addr_text.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) => a,
        Ok(IpAddr::V4(_)) => {
            return Err(bad(
                "an RFC 6052 prefix is an IPv6 prefix, not an IPv4 one".into()
            ));
        }
        Err(_) => return Err(bad(format!("`{addr_text}` is not an IPv6 address"))),
    };
    let len: u8 = match len_text.parse::<u8>() {
        Ok(l) if rfc6052::valid_prefix_len(l) => l,
        _ => {
            return Err(bad(format!(
                "length /{len_text} is not allowed (RFC 6052 section 2.2: /32, /40, /48, \
                 /56, /64 or /96)"
            )));
        }
    };
    let octets = addr.octets();
    if octets[8] != 0 {
        let mut reason =
            "bits 64..71 (the \"u\" octet) must be zero (RFC 6052 section 2.2)".to_string();
        if len < 96 {
            let clean = Prefix6::new(octets, len).expect("valid length");
            reason.push_str(&format!(
                ", and they lie after the prefix length anyway; did you mean {}?",
                prefix6_display(&clean)
            ));
        }
        return Err(bad(reason));
    }
    // Host bits after the length: the generic error names the canonical prefix.
    Prefix::new(IpAddr::V6(addr), len as u32)?;
    Prefix6::new(octets, len).ok_or_else(|| bad("not an RFC 6052 prefix".into()))
}

/// A [`Prefix6`] as an ordinary prefix (for printing and comparing).
pub fn prefix6_display(p: &Prefix6) -> Prefix {
    Prefix::new(IpAddr::V6(Ipv6Addr::from(p.addr)), p.len as u32).expect("Prefix6 has no host bits")
}

/// Parses the lowest IPv6 MTU: 1280..=65535.
pub fn parse_mtu(text: &str) -> Result<u16> {
    match text.trim().parse::<u32>() {
        Ok(m) if (MIN_IPV6_MTU..=65535).contains(&m) => Ok(m as u16),
        _ => Err(Error::Conflict(format!(
            "invalid lowest IPv6 MTU `{}`: expected a number from {MIN_IPV6_MTU} (the IPv6 \
             minimum link MTU, RFC 8200) to 65535",
            text.trim()
        ))),
    }
}

// ----- translator settings -----

/// One change to `VDMM_XLAT_CFG`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XlatChange {
    /// Set (or replace) the RFC 6052 prefix.
    SetPrefix(Prefix6),
    /// Clear the RFC 6052 prefix; with `Some`, only if it is this one.
    ClearPrefix(Option<Prefix6>),
    /// Set the RFC 6791 address of the address's family.
    SetRfc6791(IpAddr),
    /// Clear the RFC 6791 address(es): with `Some`, the one of that family if it is this
    /// address; with `None`, both.
    ClearRfc6791(Option<IpAddr>),
    /// Set the lowest IPv6 MTU (`None`: back to the default, 1280).
    Mtu(Option<u16>),
    /// IPv4 UDP datagrams with checksum zero: drop (`true`) or compute (`false`).
    UdpZeroDrop(bool),
    /// Traffic class / TOS: reset to zero (`true`) or copy (`false`).
    ResetTrafficClass(bool),
}

/// The RFC 6052 prefix of `cfg`, if set.
pub fn pool6(cfg: &XlatConfig) -> Option<Prefix6> {
    (cfg.pool6.len != 0).then_some(cfg.pool6)
}

/// The RFC 6791 address of `family` in `cfg`, if set.
pub fn rfc6791(cfg: &XlatConfig, family: Family) -> Option<IpAddr> {
    match family {
        Family::V4 => (cfg.rfc6791_v4 != [0; 4]).then(|| IpAddr::from(cfg.rfc6791_v4)),
        Family::V6 => (cfg.rfc6791_v6 != [0; 16]).then(|| IpAddr::from(cfg.rfc6791_v6)),
    }
}

/// The lowest IPv6 MTU in effect.
pub fn lowest_mtu(cfg: &XlatConfig) -> u32 {
    cfg.lowest_mtu()
}

/// Applies one change after checking it (pure).
pub fn apply_xlat_change(cfg: &XlatConfig, change: XlatChange) -> Result<XlatConfig> {
    let mut new = *cfg;
    match change {
        XlatChange::SetPrefix(p) => new.pool6 = p,
        XlatChange::ClearPrefix(expected) => {
            let current = pool6(cfg)
                .ok_or_else(|| Error::Conflict("no RFC 6052 prefix is set".to_string()))?;
            if let Some(e) = expected
                && e != current
            {
                return Err(Error::Conflict(format!(
                    "the RFC 6052 prefix is {}, not {}; nothing was changed",
                    prefix6_display(&current),
                    prefix6_display(&e)
                )));
            }
            new.pool6 = Prefix6::default();
        }
        XlatChange::SetRfc6791(a) => {
            check_tunnel_addr("RFC 6791 address", a)?;
            match a {
                IpAddr::V4(a) => new.rfc6791_v4 = a.octets(),
                IpAddr::V6(a) => new.rfc6791_v6 = a.octets(),
            }
        }
        XlatChange::ClearRfc6791(None) => {
            if rfc6791(cfg, Family::V4).is_none() && rfc6791(cfg, Family::V6).is_none() {
                return Err(Error::Conflict("no RFC 6791 address is set".to_string()));
            }
            new.rfc6791_v4 = [0; 4];
            new.rfc6791_v6 = [0; 16];
        }
        XlatChange::ClearRfc6791(Some(a)) => {
            let family = Family::of(&a);
            match rfc6791(cfg, family) {
                Some(c) if c == a => {}
                Some(c) => {
                    return Err(Error::Conflict(format!(
                        "the {} RFC 6791 address is {c}, not {a}; nothing was changed",
                        family.name()
                    )));
                }
                None => {
                    return Err(Error::Conflict(format!(
                        "no {} RFC 6791 address is set",
                        family.name()
                    )));
                }
            }
            match family {
                Family::V4 => new.rfc6791_v4 = [0; 4],
                Family::V6 => new.rfc6791_v6 = [0; 16],
            }
        }
        XlatChange::Mtu(m) => {
            if let Some(m) = m
                && (m as u32) < MIN_IPV6_MTU
            {
                return Err(Error::Conflict(format!(
                    "lowest IPv6 MTU {m} is below the IPv6 minimum link MTU {MIN_IPV6_MTU}"
                )));
            }
            new.lowest_ipv6_mtu = m.unwrap_or(0);
        }
        XlatChange::UdpZeroDrop(on) => set_flag(&mut new, XLAT_UDP_ZERO_DROP, on),
        XlatChange::ResetTrafficClass(on) => set_flag(&mut new, XLAT_RESET_TRAFFIC_CLASS, on),
    }
    Ok(new)
}

fn set_flag(cfg: &mut XlatConfig, flag: u8, on: bool) {
    if on {
        cfg.flags |= flag;
    } else {
        cfg.flags &= !flag;
    }
}

/// Default of the lowest IPv6 MTU, for messages.
pub const DEFAULT_MTU: u16 = DEFAULT_LOWEST_IPV6_MTU;

// ----- EAMT (RFC 7757) -----

/// An EAMT entry as prefixes: `v6 <-> v4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Eam {
    pub v4: Prefix,
    pub v6: Prefix,
}

impl Eam {
    /// The entry for two prefixes, checked against RFC 7757 section 3.2.
    pub fn new(v6: Prefix, v4: Prefix) -> Result<Self> {
        if v6.family() != Family::V6 || v4.family() != Family::V4 {
            return Err(Error::Conflict(format!(
                "an EAMT entry maps an IPv6 prefix to an IPv4 prefix, not {v6} to {v4}"
            )));
        }
        let (s6, s4) = (128 - v6.prefix_len(), 32 - v4.prefix_len());
        if s6 != s4 {
            return Err(Error::Conflict(format!(
                "EAMT entry {v6} <-> {v4}: the suffix lengths differ (128-{} = {s6} bits, \
                 32-{} = {s4} bits); RFC 7757 section 3.2 requires them equal, e.g. {} <-> {v4}",
                v6.prefix_len(),
                v4.prefix_len(),
                Prefix::new(v6.addr(), 96 + v4.prefix_len() as u32)
                    .map(|p| p.to_string())
                    .unwrap_or_else(|_| format!("{}/{}", v6.addr(), 96 + v4.prefix_len()))
            )));
        }
        Ok(Self { v4, v6 })
    }

    /// The map value.
    pub fn entry(&self) -> EamEntry {
        let (IpAddr::V6(a6), IpAddr::V4(a4)) = (self.v6.addr(), self.v4.addr()) else {
            unreachable!("families checked in Eam::new")
        };
        EamEntry::new(
            a6.octets(),
            self.v6.prefix_len(),
            a4.octets(),
            self.v4.prefix_len(),
        )
        .expect("lengths checked in Eam::new")
    }

    /// The entry a map value describes (`None` when it is malformed).
    pub fn from_entry(e: &EamEntry) -> Option<Self> {
        if !e.is_valid() {
            return None;
        }
        let v6 = Prefix::new(IpAddr::V6(Ipv6Addr::from(e.v6)), e.v6_len as u32).ok()?;
        let v4 = Prefix::new(IpAddr::V4(Ipv4Addr::from(e.v4)), e.v4_len as u32).ok()?;
        Some(Self { v4, v6 })
    }
}

impl fmt::Display for Eam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <-> {}", self.v6, self.v4)
    }
}

/// `eam add`: refused when either prefix already has an entry (RFC 7757 section 3.1: a
/// prefix maps to one prefix). Longer or shorter overlapping prefixes are fine: the
/// longest match wins.
pub fn check_eam_add(existing: &[Eam], new: &Eam) -> Result<()> {
    for e in existing {
        if e.v4 == new.v4 || e.v6 == new.v6 {
            let same = if e.v4 == new.v4 { e.v4 } else { e.v6 };
            return Err(Error::Conflict(if e == new {
                format!("the EAMT entry {e} already exists")
            } else {
                format!(
                    "{same} already has an EAMT entry ({e}); delete it first (`vdmm-ctl \
                     natpt eam del {} {}`)",
                    e.v6, e.v4
                )
            }));
        }
    }
    Ok(())
}

/// `eam del`: the entry must exist exactly.
pub fn check_eam_del(existing: &[Eam], del: &Eam) -> Result<()> {
    if existing.contains(del) {
        return Ok(());
    }
    let near = existing.iter().find(|e| e.v4 == del.v4 || e.v6 == del.v6);
    Err(Error::Conflict(match near {
        Some(e) => format!("no EAMT entry {del} (there is {e}); nothing was changed"),
        None => format!("no EAMT entry {del}"),
    }))
}

// ----- the IPv4 address pool -----

/// One allocation: an IPv4 address of a pool mapped to one IPv6 address (an EAMT entry
/// `ipv4/32 <-> ipv6/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Allocation {
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
}

/// A pool prefix with its usage (derived from the EAMT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub prefix: Prefix,
    /// Allocations (EAMT `/32 <-> /128` entries) in the pool, by IPv4 address.
    pub allocations: Vec<Allocation>,
    /// Usable addresses of the pool that other EAMT entries (shorter prefixes, or /32s not
    /// mapped to a /128) cover: not handed out.
    pub mapped_otherwise: u64,
}

/// The first and last address a pool hands out: all of a /31 or /32, else without the
/// network and broadcast addresses.
pub fn usable_range(pool: &Prefix) -> (u32, u32) {
    let IpAddr::V4(a) = pool.addr() else {
        return (1, 0);
    };
    let first = u32::from(a);
    let size = 1u64 << (32 - pool.prefix_len() as u32);
    let last = (first as u64 + size - 1) as u32;
    if pool.prefix_len() >= 31 {
        (first, last)
    } else {
        (first + 1, last - 1)
    }
}

impl Pool {
    /// Addresses the pool can hand out.
    pub fn size(&self) -> u64 {
        let (lo, hi) = usable_range(&self.prefix);
        (hi as u64 + 1).saturating_sub(lo as u64)
    }

    /// Addresses still free.
    pub fn free(&self) -> u64 {
        self.size() - self.allocations.len() as u64 - self.mapped_otherwise
    }
}

/// The IPv4 range `[first, last]` of a prefix.
fn range_v4(p: &Prefix) -> (u32, u32) {
    let IpAddr::V4(a) = p.addr() else {
        return (1, 0);
    };
    let first = u32::from(a);
    let size = 1u64 << (32 - p.prefix_len() as u32);
    (first, (first as u64 + size - 1) as u32)
}

fn is_allocation(e: &Eam) -> bool {
    e.v4.is_host() && e.v6.is_host()
}

fn v4_of(p: &Prefix) -> Ipv4Addr {
    match p.addr() {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

fn v6_of(p: &Prefix) -> Ipv6Addr {
    match p.addr() {
        IpAddr::V6(a) => a,
        IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
    }
}

/// The usable addresses of `pool` that EAMT entries cover, as sorted disjoint ranges.
fn used_ranges(pool: &Prefix, eamt: &[Eam]) -> Vec<(u32, u32)> {
    let (lo, hi) = usable_range(pool);
    let mut v: Vec<(u32, u32)> = eamt
        .iter()
        .filter_map(|e| {
            let (a, b) = range_v4(&e.v4);
            (b >= lo && a <= hi).then(|| (a.max(lo), b.min(hi)))
        })
        .collect();
    v.sort();
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (a, b) in v {
        match merged.last_mut() {
            Some(last) if a as u64 <= last.1 as u64 + 1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// Each pool with its allocations and the addresses other EAMT entries take.
pub fn pool_usage(pools: &[Prefix], eamt: &[Eam]) -> Vec<Pool> {
    let mut out: Vec<Pool> = pools
        .iter()
        .map(|p| {
            let (lo, hi) = usable_range(p);
            let mut allocations: Vec<Allocation> = eamt
                .iter()
                .filter(|e| is_allocation(e))
                .filter(|e| (lo..=hi).contains(&u32::from(v4_of(&e.v4))))
                .map(|e| Allocation {
                    ipv4: v4_of(&e.v4),
                    ipv6: v6_of(&e.v6),
                })
                .collect();
            allocations.sort();
            let used: u64 = used_ranges(p, eamt)
                .iter()
                .map(|(a, b)| *b as u64 - *a as u64 + 1)
                .sum();
            // An allocation inside a shorter entry's range is counted once, as taken.
            let mapped_otherwise = used - allocations.len() as u64;
            Pool {
                prefix: *p,
                allocations,
                mapped_otherwise,
            }
        })
        .collect();
    out.sort_by_key(|p| p.prefix);
    out
}

/// IPv4 ranges a pool must not overlap (RFC 6890: not forwardable or not global unicast).
const RESERVED_V4: [(&str, &str); 5] = [
    ("0.0.0.0/8", "\"this network\""),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
];

/// `pool add`: an IPv4 prefix that overlaps no other pool and no reserved range.
pub fn check_pool_add(pools: &[Prefix], new: &Prefix) -> Result<()> {
    if new.family() != Family::V4 {
        return Err(Error::Conflict(format!(
            "an address pool is an IPv4 prefix, not {new}"
        )));
    }
    let (a, b) = range_v4(new);
    for (text, what) in RESERVED_V4 {
        let r: Prefix = text.parse().expect("valid");
        let (ra, rb) = range_v4(&r);
        if a <= rb && ra <= b {
            return Err(Error::Conflict(format!(
                "pool {new} overlaps the {what} range {r} (RFC 6890); its addresses cannot be \
                 handed out"
            )));
        }
    }
    for p in pools {
        let (pa, pb) = range_v4(p);
        if a <= pb && pa <= b {
            return Err(Error::Conflict(if p == new {
                format!("the address pool {new} already exists")
            } else {
                format!("pool {new} overlaps the existing pool {p}; pools must be disjoint")
            }));
        }
    }
    Ok(())
}

/// `pool alloc`: the lowest free address of the first pool (by prefix) with one, or of
/// `from` only. `v6` must not have an allocation (or another /128 mapping) yet.
pub fn plan_alloc(
    pools: &[Pool],
    eamt: &[Eam],
    v6: Ipv6Addr,
    from: Option<&Prefix>,
) -> Result<Allocation> {
    check_tunnel_addr("IPv6 address", IpAddr::V6(v6))?;
    let v6p = Prefix::new(IpAddr::V6(v6), 128)?;
    if let Some(e) = eamt.iter().find(|e| e.v6 == v6p) {
        let v4 = v4_of(&e.v4);
        let pooled = e.v4.is_host() && pools.iter().any(|p| p.prefix.contains(IpAddr::V4(v4)));
        return Err(Error::Conflict(if pooled {
            format!(
                "{v6} already has the pool address {v4}; release it first (`vdmm-ctl natpt \
                 pool release {v6}`)"
            )
        } else {
            format!("{v6} already has an explicit address mapping ({e})")
        }));
    }
    if pools.is_empty() {
        return Err(Error::Conflict(
            "no IPv4 address pool; add one with `vdmm-ctl natpt pool add PREFIX4/LEN`".into(),
        ));
    }
    let candidates: Vec<&Pool> = match from {
        Some(f) => {
            let p = pools
                .iter()
                .find(|p| p.prefix == *f)
                .ok_or_else(|| Error::Conflict(format!("no address pool {f}")))?;
            vec![p]
        }
        None => pools.iter().collect(),
    };
    for pool in &candidates {
        let (lo, hi) = usable_range(&pool.prefix);
        let mut next = lo as u64;
        for (a, b) in used_ranges(&pool.prefix, eamt) {
            if (a as u64) > next {
                break;
            }
            next = next.max(b as u64 + 1);
        }
        if next <= hi as u64 {
            return Ok(Allocation {
                ipv4: Ipv4Addr::from(next as u32),
                ipv6: v6,
            });
        }
    }
    let names: Vec<String> = candidates.iter().map(|p| p.prefix.to_string()).collect();
    Err(Error::Conflict(if names.len() == 1 {
        format!("pool exhausted: every address of {} is allocated", names[0])
    } else {
        format!(
            "pool exhausted: every address of every pool ({}) is allocated",
            names.join(", ")
        )
    }))
}

/// `pool alloc`'s host address: an IPv6 address.
pub fn alloc_ipv6(a: IpAddr) -> Result<Ipv6Addr> {
    match a {
        IpAddr::V6(a) => Ok(a),
        IpAddr::V4(a) => Err(Error::Conflict(format!(
            "pool alloc takes the IPv6 address of the host, not the IPv4 address {a}"
        ))),
    }
}

/// `pool release ADDR`: the allocation of a pool address (IPv4) or of an IPv6 address.
pub fn find_allocation(pools: &[Pool], addr: IpAddr) -> Result<Allocation> {
    let found = pools
        .iter()
        .flat_map(|p| &p.allocations)
        .find(|a| match addr {
            IpAddr::V4(v4) => a.ipv4 == v4,
            IpAddr::V6(v6) => a.ipv6 == v6,
        });
    found.copied().ok_or_else(|| {
        Error::Conflict(match addr {
            IpAddr::V4(_) => format!("{addr} is not an allocated address of an address pool"),
            IpAddr::V6(_) => format!("{addr} has no address allocated from a pool"),
        })
    })
}

/// `pool del` without --force: refused while the pool has allocations (names them).
pub fn check_pool_del(pool: &Pool) -> Result<()> {
    if pool.allocations.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = pool
        .allocations
        .iter()
        .take(4)
        .map(|a| format!("{} -> {}", a.ipv4, a.ipv6))
        .collect();
    let more = pool.allocations.len().saturating_sub(4);
    Err(Error::Conflict(format!(
        "pool {} has {} allocation(s): {}{}; release them or pass --force",
        pool.prefix,
        pool.allocations.len(),
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )))
}

/// `pool del [--force]`: the pool being removed (its allocations are released with it);
/// refused when there is no such pool, or, without `force`, while it has allocations.
pub fn plan_pool_del<'a>(pools: &'a [Pool], p: &Prefix, force: bool) -> Result<&'a Pool> {
    let pool = pools
        .iter()
        .find(|x| x.prefix == *p)
        .ok_or_else(|| Error::Conflict(format!("no address pool {p}")))?;
    if !force {
        check_pool_del(pool)?;
    }
    Ok(pool)
}

// ----- IPv4 segments and their IPv6 prefixes -----

/// An IPv4 segment and the RFC 6052 prefix of its hosts' IPv6 care-of addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub v4: Prefix,
    pub prefix6: Prefix6,
}

/// `segment add`: refused when the IPv4 prefix has a segment (unless `replace`), or when
/// another segment uses the same IPv6 prefix (one IPv6 prefix per segment, so a care-of
/// address names its segment).
pub fn check_segment_add(segments: &[Segment], new: &Segment, replace: bool) -> Result<()> {
    if new.v4.family() != Family::V4 {
        return Err(Error::Conflict(format!(
            "a segment is an IPv4 prefix, not {}",
            new.v4
        )));
    }
    for s in segments {
        if s.v4 == new.v4 && !replace {
            return Err(Error::Conflict(format!(
                "the segment {} already exists (IPv6 prefix {}); delete it first or pass \
                 --replace",
                s.v4,
                prefix6_display(&s.prefix6)
            )));
        }
        if s.v4 != new.v4 && s.prefix6 == new.prefix6 {
            return Err(Error::Conflict(format!(
                "the IPv6 prefix {} already belongs to the segment {}; each segment needs \
                 its own",
                prefix6_display(&s.prefix6),
                s.v4
            )));
        }
    }
    Ok(())
}

/// `segment del`: the segment of exactly `v4`.
pub fn find_segment(segments: &[Segment], v4: &Prefix) -> Result<Segment> {
    segments
        .iter()
        .find(|s| s.v4 == *v4)
        .copied()
        .ok_or_else(|| Error::Conflict(format!("no segment {v4}")))
}

/// The IPv6 care-of address of a host with IPv4 care-of address `a`: RFC 6052 embedding
/// of `a` under the longest matching segment's prefix.
pub fn segment_coa(segments: &[Segment], a: Ipv4Addr) -> Result<(Segment, Ipv6Addr)> {
    let seg = segments
        .iter()
        .filter(|s| s.v4.contains(IpAddr::V4(a)))
        .max_by_key(|s| s.v4.prefix_len())
        .ok_or_else(|| {
            Error::Conflict(format!(
                "no IPv4 segment covers {a}; add one with `vdmm-ctl natpt segment add \
                 PREFIX4/LEN --prefix6 PREFIX6/LEN`"
            ))
        })?;
    let coa = rfc6052::embed(&seg.prefix6, a.octets()).expect("segment prefixes are valid");
    Ok((*seg, Ipv6Addr::from(coa)))
}

// ----- the maps -----

/// Everything of the translator and the transition gateway that `VDMM_*` maps hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatptState {
    pub config: XlatConfig,
    pub eamt: Vec<Eam>,
    /// EAMT entries present in only one of the two tries (should be empty).
    pub eamt_inconsistent: Vec<String>,
    pub pools: Vec<Pool>,
    pub segments: Vec<Segment>,
}

/// The translator's pinned maps, opened from the pin directory. Every write is followed by
/// an increment of `VDMM_XLAT_GEN` (see `crate::cache_gen`): the data plane's first level
/// (`mapping_cache`) caches EAMT answers, and every setting applies from the next packet.
pub struct Translator {
    config: Array<MapData, XlatConfig>,
    eamt4: LpmTrie<MapData, [u8; 4], EamEntry>,
    eamt6: LpmTrie<MapData, [u8; 16], EamEntry>,
    pools: LpmTrie<MapData, [u8; 4], u32>,
    segments: LpmTrie<MapData, [u8; 4], Prefix6>,
    xlat_gen: MapData,
}

fn key4(p: &Prefix) -> Key<[u8; 4]> {
    Key::new(p.prefix_len() as u32, v4_of(p).octets())
}

fn key6(p: &Prefix) -> Key<[u8; 16]> {
    Key::new(p.prefix_len() as u32, v6_of(p).octets())
}

fn update_err(what: &str, e: aya::maps::MapError) -> Error {
    match errno(&e) {
        Some(libc::E2BIG) | Some(libc::ENOSPC) => Error::Conflict(format!("{what} is full")),
        _ => Error::ebpf(format!("cannot update {what}"), e),
    }
}

fn read_err(what: &str) -> impl Fn(aya::maps::MapError) -> Error + '_ {
    move |e| Error::ebpf(format!("cannot read {what}"), e)
}

impl Translator {
    /// Opens the maps. A pin directory made by a vdmm-ctl without the pool and segment
    /// maps gets an error that says to load again (which adds them).
    pub fn open(pins: &PinDir) -> Result<Self> {
        if !pins.map(names::XLAT_CONFIG).exists() {
            return Err(Error::NotLoaded(pins.path().to_path_buf()));
        }
        for name in [
            names::EAMT_V4,
            names::EAMT_V6,
            names::POOL_V4,
            names::SEGMENTS,
            names::XLAT_GEN,
        ] {
            if !pins.map(name).exists() {
                return Err(Error::Conflict(format!(
                    "map {name} is not pinned in {} (the data plane was loaded by an older \
                     vdmm-ctl); run `vdmm-ctl load` once more: it adds the missing maps and \
                     keeps the configuration",
                    pins.path().display()
                )));
            }
        }
        Ok(Self {
            config: open_map(pins, names::XLAT_CONFIG)?,
            eamt4: open_map(pins, names::EAMT_V4)?,
            eamt6: open_map(pins, names::EAMT_V6)?,
            pools: open_map(pins, names::POOL_V4)?,
            segments: open_map(pins, names::SEGMENTS)?,
            xlat_gen: crate::cache_gen::open(pins, names::XLAT_GEN)?,
        })
    }

    /// After a write, whether it succeeded or not (a failed one may have changed part).
    fn changed<T>(&self, r: Result<T>) -> Result<T> {
        crate::cache_gen::invalidate(&self.xlat_gen)?;
        r
    }

    // ----- settings -----

    /// Entry 0 of `VDMM_XLAT_CFG`.
    pub fn config(&self) -> Result<XlatConfig> {
        self.config
            .get(&0, 0)
            .map_err(read_err("the translator settings"))
    }

    /// Applies one change (checked before anything is written); returns the new value.
    pub fn change(&mut self, change: XlatChange) -> Result<XlatConfig> {
        let new = apply_xlat_change(&self.config()?, change)?;
        let r = self
            .config
            .set(0, new, 0)
            .map_err(|e| update_err("the translator settings", e));
        self.changed(r)?;
        Ok(new)
    }

    /// Records `vdmmx1`'s interface index (`XlatConfig::frag_ifindex`, the fragmentation
    /// slow path; written by `load`).
    pub fn set_frag_ifindex(&mut self, index: u32) -> Result<()> {
        let mut cfg = self.config()?;
        if cfg.frag_ifindex == index {
            return Ok(());
        }
        cfg.frag_ifindex = index;
        let r = self
            .config
            .set(0, cfg, 0)
            .map_err(|e| update_err("the translator settings", e));
        self.changed(r)
    }

    // ----- EAMT -----

    /// The well-formed entries of each trie (unsorted), and a description of malformed
    /// ones.
    pub fn eamt_tries(&self) -> Result<(Vec<Eam>, Vec<Eam>, Vec<String>)> {
        let mut by4 = Vec::new();
        let mut odd = Vec::new();
        for item in self.eamt4.iter() {
            let (k, v) = item.map_err(read_err("the EAMT (IPv4)"))?;
            match Eam::from_entry(&v) {
                Some(e) if e.v4.prefix_len() as u32 == k.prefix_len() => by4.push(e),
                _ => odd.push(format!(
                    "VDMM_EAMT4 key {}/{} has a malformed value",
                    Ipv4Addr::from(k.data()),
                    k.prefix_len()
                )),
            }
        }
        let mut by6 = Vec::new();
        for item in self.eamt6.iter() {
            let (k, v) = item.map_err(read_err("the EAMT (IPv6)"))?;
            match Eam::from_entry(&v) {
                Some(e) if e.v6.prefix_len() as u32 == k.prefix_len() => by6.push(e),
                _ => odd.push(format!(
                    "VDMM_EAMT6 key {}/{} has a malformed value",
                    Ipv6Addr::from(k.data()),
                    k.prefix_len()
                )),
            }
        }
        Ok((by4, by6, odd))
    }

    /// The EAMT entries (from the IPv4 trie, sorted) and a description of entries found
    /// in only one trie.
    pub fn eamt_checked(&self) -> Result<(Vec<Eam>, Vec<String>)> {
        let (mut by4, mut by6, mut odd) = self.eamt_tries()?;
        by4.sort();
        by6.sort();
        for e in &by4 {
            if !by6.contains(e) {
                odd.push(format!("{e} is in VDMM_EAMT4 only"));
            }
        }
        for e in &by6 {
            if !by4.contains(e) {
                odd.push(format!("{e} is in VDMM_EAMT6 only"));
            }
        }
        // Entries of either trie count (a half-written one still blocks its prefixes).
        let mut all = by4;
        for e in by6 {
            if !all.contains(&e) {
                all.push(e);
            }
        }
        all.sort();
        Ok((all, odd))
    }

    /// The EAMT entries, sorted by IPv4 prefix.
    pub fn eamt(&self) -> Result<Vec<Eam>> {
        Ok(self.eamt_checked()?.0)
    }

    /// Adds an entry to both tries (RFC 7757); refused when either prefix has one.
    pub fn add_eam(&mut self, e: Eam) -> Result<()> {
        check_eam_add(&self.eamt()?, &e)?;
        self.insert_eam(e)
    }

    /// Writes `e` into both tries (neither may hold its key yet).
    pub fn insert_eam(&mut self, e: Eam) -> Result<()> {
        let r = self.insert_eam_unannounced(e);
        self.changed(r)
    }

    fn insert_eam_unannounced(&mut self, e: Eam) -> Result<()> {
        let value = e.entry();
        self.eamt4
            .insert(&key4(&e.v4), value, BPF_NOEXIST)
            .map_err(|err| update_err("the EAMT (IPv4)", err))?;
        if let Err(err) = self.eamt6.insert(&key6(&e.v6), value, BPF_NOEXIST) {
            let _ = self.eamt4.remove(&key4(&e.v4));
            return Err(update_err("the EAMT (IPv6)", err));
        }
        Ok(())
    }

    /// Removes an entry (which must exist exactly) from both tries.
    pub fn del_eam(&mut self, e: Eam) -> Result<()> {
        check_eam_del(&self.eamt()?, &e)?;
        self.remove_eam(e)
    }

    /// Removes the keys of `e` from both tries (absent keys are fine).
    pub fn remove_eam(&mut self, e: Eam) -> Result<()> {
        let r = self.remove_eam_unannounced(e);
        self.changed(r)
    }

    fn remove_eam_unannounced(&mut self, e: Eam) -> Result<()> {
        let gone = |r: std::result::Result<(), aya::maps::MapError>, what| match r {
            Ok(()) => Ok(()),
            Err(err) if errno(&err) == Some(libc::ENOENT) => Ok(()),
            Err(err) => Err(update_err(what, err)),
        };
        gone(self.eamt4.remove(&key4(&e.v4)), "the EAMT (IPv4)")?;
        gone(self.eamt6.remove(&key6(&e.v6)), "the EAMT (IPv6)")
    }

    // ----- pools -----

    /// The pool prefixes, sorted.
    pub fn pool_prefixes(&self) -> Result<Vec<Prefix>> {
        let mut v = Vec::new();
        for k in self.pools.keys() {
            let k = k.map_err(read_err("the address pools"))?;
            v.push(Prefix::new(
                IpAddr::V4(Ipv4Addr::from(k.data())),
                k.prefix_len(),
            )?);
        }
        v.sort();
        Ok(v)
    }

    /// The pools with their usage.
    pub fn pools(&self) -> Result<Vec<Pool>> {
        Ok(pool_usage(&self.pool_prefixes()?, &self.eamt()?))
    }

    /// Adds an IPv4 prefix to the pool.
    pub fn add_pool(&mut self, p: Prefix) -> Result<()> {
        check_pool_add(&self.pool_prefixes()?, &p)?;
        let r = self
            .pools
            .insert(&key4(&p), 0, BPF_NOEXIST)
            .map_err(|e| update_err("the address pool", e));
        self.changed(r)
    }

    /// Removes a pool prefix. With allocations in it: refused, or with `force` they are
    /// released first (returned).
    pub fn del_pool(&mut self, p: Prefix, force: bool) -> Result<Vec<Allocation>> {
        let pools = self.pools()?;
        let pool = plan_pool_del(&pools, &p, force)?;
        let r = (|| {
            for a in &pool.allocations {
                self.remove_eam_unannounced(allocation_eam(a))?;
            }
            self.pools
                .remove(&key4(&p))
                .map_err(|e| update_err("the address pool", e))
        })();
        self.changed(r)?;
        Ok(pool.allocations.clone())
    }

    /// Hands out the lowest free pool address to `v6` (an EAMT entry `/32 <-> /128`).
    pub fn alloc(&mut self, v6: Ipv6Addr, from: Option<Prefix>) -> Result<Allocation> {
        let eamt = self.eamt()?;
        let pools = pool_usage(&self.pool_prefixes()?, &eamt);
        let a = plan_alloc(&pools, &eamt, v6, from.as_ref())?;
        self.insert_eam(allocation_eam(&a))?;
        Ok(a)
    }

    /// Releases the allocation of a pool address or of an IPv6 address.
    pub fn release(&mut self, addr: IpAddr) -> Result<Allocation> {
        let a = find_allocation(&self.pools()?, addr)?;
        self.remove_eam(allocation_eam(&a))?;
        Ok(a)
    }

    // ----- unchecked writes (the agent's reconciler, which checked its whole state) -----

    /// Writes the settings as they are.
    pub fn put_config(&mut self, cfg: XlatConfig) -> Result<()> {
        let r = self
            .config
            .set(0, cfg, 0)
            .map_err(|e| update_err("the translator settings", e));
        self.changed(r)
    }

    /// Adds (or keeps) the pool prefix `p`.
    pub fn put_pool(&mut self, p: &Prefix) -> Result<()> {
        let r = self
            .pools
            .insert(&key4(p), 0, 0)
            .map_err(|e| update_err("the address pool", e));
        self.changed(r)
    }

    /// Removes the pool prefix `p` (absent is fine).
    pub fn remove_pool(&mut self, p: &Prefix) -> Result<()> {
        let r = match self.pools.remove(&key4(p)) {
            Err(e) if errno(&e) != Some(libc::ENOENT) => Err(update_err("the address pool", e)),
            _ => Ok(()),
        };
        self.changed(r)
    }

    /// Writes (or overwrites) the segment `s`.
    pub fn put_segment(&mut self, s: &Segment) -> Result<()> {
        let r = self
            .segments
            .insert(&key4(&s.v4), s.prefix6, 0)
            .map_err(|e| update_err("the segments", e));
        self.changed(r)
    }

    /// Removes the segment of exactly `v4` (absent is fine).
    pub fn remove_segment(&mut self, v4: &Prefix) -> Result<()> {
        let r = match self.segments.remove(&key4(v4)) {
            Err(e) if errno(&e) != Some(libc::ENOENT) => Err(update_err("the segments", e)),
            _ => Ok(()),
        };
        self.changed(r)
    }

    // ----- segments -----

    /// The segments, sorted by IPv4 prefix.
    pub fn segments(&self) -> Result<Vec<Segment>> {
        let mut v = Vec::new();
        for item in self.segments.iter() {
            let (k, p6) = item.map_err(read_err("the segments"))?;
            v.push(Segment {
                v4: Prefix::new(IpAddr::V4(Ipv4Addr::from(k.data())), k.prefix_len())?,
                prefix6: p6,
            });
        }
        v.sort_by_key(|s| s.v4);
        Ok(v)
    }

    /// Gives the IPv4 segment `v4` the IPv6 prefix `prefix6`.
    pub fn add_segment(&mut self, s: Segment, replace: bool) -> Result<()> {
        check_segment_add(&self.segments()?, &s, replace)?;
        let flags = if replace { 0 } else { BPF_NOEXIST };
        let r = self
            .segments
            .insert(&key4(&s.v4), s.prefix6, flags)
            .map_err(|e| update_err("the segments", e));
        self.changed(r)
    }

    /// Removes the segment for exactly `v4`.
    pub fn del_segment(&mut self, v4: Prefix) -> Result<Segment> {
        let s = find_segment(&self.segments()?, &v4)?;
        let r = self
            .segments
            .remove(&key4(&v4))
            .map_err(|e| update_err("the segments", e));
        self.changed(r)?;
        Ok(s)
    }

    /// Everything, for `natpt list`.
    pub fn state(&self) -> Result<NatptState> {
        let (eamt, eamt_inconsistent) = self.eamt_checked()?;
        Ok(NatptState {
            config: self.config()?,
            pools: pool_usage(&self.pool_prefixes()?, &eamt),
            eamt,
            eamt_inconsistent,
            segments: self.segments()?,
        })
    }
}

/// The EAMT entry of an allocation.
pub fn allocation_eam(a: &Allocation) -> Eam {
    Eam {
        v4: Prefix::new(IpAddr::V4(a.ipv4), 32).expect("host prefix"),
        v6: Prefix::new(IpAddr::V6(a.ipv6), 128).expect("host prefix"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn eam(v6: &str, v4: &str) -> Eam {
        Eam::new(p(v6), p(v4)).unwrap()
    }

    #[test]
    fn rfc6052_prefixes() {
        for (text, len) in [
            ("64:ff9b::/96", 96),
            ("2001:db8::/32", 32),
            ("2001:db8:100::/40", 40),
            ("2001:db8:122::/48", 48),
            ("2001:db8:122:300::/56", 56),
            ("2001:db8:122:344::/64", 64),
        ] {
            let x = parse_prefix6(text).unwrap();
            assert_eq!(x.len, len);
            assert_eq!(prefix6_display(&x).to_string(), text);
        }
        let err = |t: &str| parse_prefix6(t).unwrap_err().to_string();
        assert!(err("2001:db8::/33").contains("RFC 6052 section 2.2"));
        assert!(err("2001:db8::/128").contains("/32, /40"));
        assert!(err("2001:db8::").contains("needs its length"));
        assert!(err("192.0.2.0/24").contains("not an IPv4 one"));
        assert!(err("x::y/96").contains("not an IPv6 address"));
        // The u octet: inside a /96 it is the rule; after a shorter one also host bits.
        let e = err("64:ff9b:0:0:100::/96");
        assert!(e.contains("bits 64..71"), "{e}");
        let e = err("2001:db8:0:0:ff00::/32");
        assert!(
            e.contains("bits 64..71") && e.contains("did you mean 2001:db8::/32"),
            "{e}"
        );
        // Other host bits: the canonical prefix.
        let e = err("2001:db8::1/96");
        assert!(e.contains("did you mean 2001:db8::/96"), "{e}");
        let e = parse_prefix6("2001:db8:1::/32").unwrap_err();
        assert!(matches!(e, Error::HostBitsSet { .. }), "{e}");
    }

    #[test]
    fn mtu_range() {
        assert_eq!(parse_mtu("1280").unwrap(), 1280);
        assert_eq!(parse_mtu(" 65535").unwrap(), 65535);
        for t in ["1279", "65536", "0", "-1", "x", ""] {
            assert!(parse_mtu(t).is_err(), "{t}");
        }
    }

    #[test]
    fn xlat_changes() {
        let c = XlatConfig::default();
        let wkp = parse_prefix6("64:ff9b::/96").unwrap();
        let n = apply_xlat_change(&c, XlatChange::SetPrefix(wkp)).unwrap();
        assert_eq!(pool6(&n), Some(wkp));
        let other = parse_prefix6("2001:db8::/32").unwrap();
        let e = apply_xlat_change(&n, XlatChange::ClearPrefix(Some(other))).unwrap_err();
        assert!(
            e.to_string().contains("is 64:ff9b::/96, not 2001:db8::/32"),
            "{e}"
        );
        let cleared = apply_xlat_change(&n, XlatChange::ClearPrefix(Some(wkp))).unwrap();
        assert_eq!(pool6(&cleared), None);
        assert!(apply_xlat_change(&cleared, XlatChange::ClearPrefix(None)).is_err());

        let a4: IpAddr = "192.0.2.1".parse().unwrap();
        let a6: IpAddr = "2001:db8::1".parse().unwrap();
        let n = apply_xlat_change(&c, XlatChange::SetRfc6791(a4)).unwrap();
        let n = apply_xlat_change(&n, XlatChange::SetRfc6791(a6)).unwrap();
        assert_eq!(rfc6791(&n, Family::V4), Some(a4));
        assert_eq!(rfc6791(&n, Family::V6), Some(a6));
        assert!(
            apply_xlat_change(&c, XlatChange::SetRfc6791("224.0.0.1".parse().unwrap())).is_err()
        );
        let wrong = apply_xlat_change(
            &n,
            XlatChange::ClearRfc6791(Some("192.0.2.2".parse().unwrap())),
        );
        assert!(wrong.is_err());
        let one = apply_xlat_change(&n, XlatChange::ClearRfc6791(Some(a4))).unwrap();
        assert_eq!(
            (rfc6791(&one, Family::V4), rfc6791(&one, Family::V6)),
            (None, Some(a6))
        );
        let none = apply_xlat_change(&n, XlatChange::ClearRfc6791(None)).unwrap();
        assert_eq!(none, c);

        let m = apply_xlat_change(&c, XlatChange::Mtu(Some(1500))).unwrap();
        assert_eq!(lowest_mtu(&m), 1500);
        assert_eq!(lowest_mtu(&c), 1280);
        assert!(apply_xlat_change(&c, XlatChange::Mtu(Some(1279))).is_err());
        let f = apply_xlat_change(&c, XlatChange::UdpZeroDrop(true)).unwrap();
        let f = apply_xlat_change(&f, XlatChange::ResetTrafficClass(true)).unwrap();
        assert_eq!(f.flags, XLAT_UDP_ZERO_DROP | XLAT_RESET_TRAFFIC_CLASS);
        let f = apply_xlat_change(&f, XlatChange::UdpZeroDrop(false)).unwrap();
        assert_eq!(f.flags, XLAT_RESET_TRAFFIC_CLASS);
    }

    #[test]
    fn eam_rules() {
        let e = Eam::new(p("2001:db8::/120"), p("10.0.0.0/16")).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("suffix lengths differ") && s.contains("2001:db8::/112"),
            "{s}"
        );
        assert!(Eam::new(p("10.0.0.0/24"), p("2001:db8::/120")).is_err());
        let a = eam("2001:db8::/120", "10.0.0.0/24");
        assert_eq!(
            a.entry(),
            EamEntry::new(
                "2001:db8::".parse::<Ipv6Addr>().unwrap().octets(),
                120,
                [10, 0, 0, 0],
                24
            )
            .unwrap()
        );
        assert_eq!(Eam::from_entry(&a.entry()), Some(a));
        let t = [a];
        assert!(
            check_eam_add(&t, &a)
                .unwrap_err()
                .to_string()
                .contains("already exists")
        );
        let same4 = eam("2001:db8:1::/120", "10.0.0.0/24");
        let s = check_eam_add(&t, &same4).unwrap_err().to_string();
        assert!(s.contains("10.0.0.0/24 already has an EAMT entry"), "{s}");
        let same6 = eam("2001:db8::/120", "10.0.1.0/24");
        assert!(check_eam_add(&t, &same6).is_err());
        // Nested prefixes are fine: the longest match wins.
        assert!(check_eam_add(&t, &eam("2001:db8:9::1", "10.0.0.1")).is_ok());
        assert!(check_eam_del(&t, &a).is_ok());
        let s = check_eam_del(&t, &same4).unwrap_err().to_string();
        assert!(s.contains("there is 2001:db8::/120 <-> 10.0.0.0/24"), "{s}");
        assert!(check_eam_del(&[], &a).is_err());
    }

    #[test]
    fn pools_hand_out_the_lowest_free_address() {
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let pools = [p("192.0.2.0/30")];
        let mut eamt = Vec::new();
        let usage = pool_usage(&pools, &eamt);
        assert_eq!((usage[0].size(), usage[0].free()), (2, 2));
        let a = plan_alloc(&usage, &eamt, v6("2001:db8::a"), None).unwrap();
        assert_eq!(a.ipv4, Ipv4Addr::new(192, 0, 2, 1));
        eamt.push(allocation_eam(&a));
        let usage = pool_usage(&pools, &eamt);
        let e = plan_alloc(&usage, &eamt, v6("2001:db8::a"), None).unwrap_err();
        assert!(
            e.to_string()
                .contains("already has the pool address 192.0.2.1"),
            "{e}"
        );
        let b = plan_alloc(&usage, &eamt, v6("2001:db8::b"), None).unwrap();
        assert_eq!(b.ipv4, Ipv4Addr::new(192, 0, 2, 2));
        eamt.push(allocation_eam(&b));
        let usage = pool_usage(&pools, &eamt);
        assert_eq!(usage[0].free(), 0);
        let e = plan_alloc(&usage, &eamt, v6("2001:db8::c"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "pool exhausted: every address of 192.0.2.0/30 is allocated"
        );
        // Released addresses are reused, lowest first.
        assert_eq!(
            find_allocation(&usage, "2001:db8::a".parse().unwrap()).unwrap(),
            a
        );
        assert_eq!(
            find_allocation(&usage, "192.0.2.2".parse().unwrap()).unwrap(),
            b
        );
        assert!(find_allocation(&usage, "192.0.2.3".parse().unwrap()).is_err());
        eamt.remove(0);
        let usage = pool_usage(&pools, &eamt);
        let c = plan_alloc(&usage, &eamt, v6("2001:db8::c"), None).unwrap();
        assert_eq!(c.ipv4, Ipv4Addr::new(192, 0, 2, 1));
        let s = check_pool_del(&usage[0]).unwrap_err().to_string();
        assert!(s.contains("192.0.2.2 -> 2001:db8::b"), "{s}");
    }

    #[test]
    fn pool_edges() {
        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        // /31 and /32 hand out every address.
        let u = pool_usage(&[p("198.51.100.0/31"), p("198.51.100.7/32")], &[]);
        assert_eq!((u[0].size(), u[1].size()), (2, 1));
        let a = plan_alloc(&u, &[], v6, None).unwrap();
        assert_eq!(a.ipv4, Ipv4Addr::new(198, 51, 100, 0));
        let a = plan_alloc(&u, &[], v6, Some(&p("198.51.100.7/32"))).unwrap();
        assert_eq!(a.ipv4, Ipv4Addr::new(198, 51, 100, 7));
        assert!(plan_alloc(&u, &[], v6, Some(&p("10.0.0.0/8"))).is_err());
        assert!(plan_alloc(&[], &[], v6, None).is_err());
        assert!(plan_alloc(&u, &[], "ff02::1".parse().unwrap(), None).is_err());
        // Addresses an explicit mapping covers are skipped and counted.
        let eamt = [eam("2001:db8:5::/126", "192.0.2.0/30")];
        let u = pool_usage(&[p("192.0.2.0/29")], &eamt);
        assert_eq!((u[0].size(), u[0].mapped_otherwise, u[0].free()), (6, 3, 3));
        let a = plan_alloc(&u, &eamt, v6, None).unwrap();
        assert_eq!(a.ipv4, Ipv4Addr::new(192, 0, 2, 4));
        // A /128 with a non-pool mapping is refused as such.
        let eamt = [eam("2001:db8::1", "203.0.113.1")];
        let e = plan_alloc(&u, &eamt, v6, None).unwrap_err();
        assert!(e.to_string().contains("explicit address mapping"), "{e}");
        // Overlaps and reserved ranges.
        let pools = [p("192.0.2.0/24")];
        assert!(check_pool_add(&pools, &p("192.0.2.0/24")).is_err());
        assert!(check_pool_add(&pools, &p("192.0.2.128/25")).is_err());
        assert!(check_pool_add(&pools, &p("192.0.0.0/16")).is_err());
        assert!(check_pool_add(&pools, &p("198.51.100.0/24")).is_ok());
        let e = check_pool_add(&[], &p("127.0.0.0/24")).unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        assert!(check_pool_add(&[], &p("0.0.0.0/0")).is_err());
        assert!(check_pool_add(&[], &p("2001:db8::/120")).is_err());
    }

    #[test]
    fn segments_and_care_of_addresses() {
        let seg = |v4: &str, p6: &str| Segment {
            v4: p(v4),
            prefix6: parse_prefix6(p6).unwrap(),
        };
        let segs = [
            seg("10.0.0.0/8", "2001:db8:a::/96"),
            seg("10.1.0.0/16", "2001:db8:100::/40"),
        ];
        let (s, coa) = segment_coa(&segs, Ipv4Addr::new(10, 1, 2, 3)).unwrap();
        assert_eq!(s, segs[1]);
        assert_eq!(coa, "2001:db8:10a:102:3::".parse::<Ipv6Addr>().unwrap());
        let (_, coa) = segment_coa(&segs, Ipv4Addr::new(10, 2, 0, 1)).unwrap();
        assert_eq!(coa, "2001:db8:a::a02:1".parse::<Ipv6Addr>().unwrap());
        let e = segment_coa(&segs, Ipv4Addr::new(192, 0, 2, 1)).unwrap_err();
        assert!(
            e.to_string().contains("no IPv4 segment covers 192.0.2.1"),
            "{e}"
        );
        assert!(check_segment_add(&segs, &seg("10.0.0.0/8", "2001:db8:b::/96"), false).is_err());
        assert!(check_segment_add(&segs, &seg("10.0.0.0/8", "2001:db8:b::/96"), true).is_ok());
        let e =
            check_segment_add(&segs, &seg("10.2.0.0/16", "2001:db8:a::/96"), false).unwrap_err();
        assert!(
            e.to_string()
                .contains("already belongs to the segment 10.0.0.0/8"),
            "{e}"
        );
        assert!(check_segment_add(&segs, &seg("10.2.0.0/16", "2001:db8:c::/96"), false).is_ok());
    }
}
