//! Virtual access points (vAPs) of an AP host, as a library: create, delete, switch to
//! forwarding (a handover's grace period), read back with their counters, and drain the
//! data plane's reports of unknown clients. The maps' contract is in `vdmm_common::vap`;
//! like every [`Dataplane`] method, these check everything before they write, and a
//! refused request leaves the maps as they were.
//!
//! ```no_run
//! # fn main() -> vdmm_ctl::error::Result<()> {
//! use vdmm_ctl::{maps::Dataplane, pin::PinDir, vap::VapSpec};
//! let mut dp = Dataplane::open(&PinDir::new("/run/vdmm/ap1"))?;
//! let spec = VapSpec {
//!     client: "02:00:00:00:01:01".parse()?,
//!     ipv4: Some("10.1.0.5".parse().unwrap()),
//!     anchor: Some("192.0.2.1".parse().unwrap()),
//!     iface: Some("ap1c".into()),
//!     ..VapSpec::default()
//! };
//! let vap = dp.add_vap(&spec)?;
//! println!("client {} uses gateway MAC {}", vap.client, vap.vap_mac);
//! # Ok(()) }
//! ```

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use aya::maps::{MapData, PerCpuValues, RingBuf};
use vdmm_common::{
    Binding, IpAddrKey, maps as names,
    vap::{
        MacKey, VAP_BREAKOUT, VAP_EVENT_UNKNOWN_CLIENT, VAP_FORWARD, VAP_HAS_V4, VAP_HAS_V6, Vap,
        VapAddr, VapCounters, VapEvent, is_group, is_local_unicast, mac_bytes, mac_key,
        vap_mac_for,
    },
};

use crate::{
    addr::check_tunnel_addr,
    error::{Error, Result},
    loader::if_index,
    maps::{Dataplane, errno, resolve_source},
    pin::PinDir,
    vap_record::VapRecord,
};

const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;

/// A MAC address (`02:00:5e:10:00:01`; `-` separators are accepted too).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The data plane's form (`vdmm_common::vap::MacKey`).
    pub fn key(self) -> MacKey {
        mac_key(self.0)
    }

    pub fn from_key(k: MacKey) -> Self {
        Mac(mac_bytes(k))
    }

    /// True for multicast and broadcast MACs.
    pub fn is_group(self) -> bool {
        is_group(self.key())
    }
}

impl FromStr for Mac {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::BadMac(s.to_string());
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut m = [0u8; 6];
        for (b, p) in m.iter_mut().zip(&parts) {
            if p.is_empty() || p.len() > 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(Mac(m))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// What a new vAP is made from. `Default` gives an empty spec to fill in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VapSpec {
    /// The client's MAC (the vAP's key).
    pub client: Mac,
    /// The client's IPv4 and IPv6 addresses (at least one).
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// The client's home anchor (uplink tunnel locator); required unless `breakout`.
    pub anchor: Option<IpAddr>,
    /// Outer source toward the anchor: a local endpoint of its family (default: the
    /// lowest one).
    pub source: Option<IpAddr>,
    /// The vAP MAC; default: a locally administered MAC derived from the client MAC,
    /// unique on this AP host. A handover passes the source AP host's, so the client's
    /// gateway MAC does not change.
    pub vap_mac: Option<Mac>,
    /// The client-facing interface; default: the one interface `vdmm_vap` is attached to.
    pub iface: Option<String>,
    /// Local breakout: the client's traffic is routed by the AP host, not tunnelled.
    pub breakout: bool,
}

/// A vAP as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VapEntry {
    pub client: Mac,
    pub vap_mac: Mac,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// The anchor's locator and the local endpoint the uplink tunnel is sent from.
    pub anchor: Option<(IpAddr, IpAddr)>,
    pub breakout: bool,
    /// While forwarding: the locator packets for the client are tunnelled to, and the
    /// source.
    pub forward: Option<(IpAddr, IpAddr)>,
    /// The client-facing interface (index, and name when it exists).
    pub ifindex: u32,
    pub iface: Option<String>,
    /// MAC of that interface.
    pub host_mac: Mac,
    /// Index of the vAP's counters.
    pub slot: u32,
}

impl VapEntry {
    /// The client's addresses, IPv4 first.
    pub fn addrs(&self) -> Vec<IpAddr> {
        self.ipv4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.ipv6.map(IpAddr::V6))
            .collect()
    }

    /// "local" or "forward".
    pub fn mode(&self) -> &'static str {
        if self.forward.is_some() {
            "forward"
        } else {
            "local"
        }
    }
}

/// A report of the data plane (`vdmm_common::vap::VapEvent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VapReport {
    /// Monotonic clock (`CLOCK_MONOTONIC`) of the frame, nanoseconds.
    pub time_ns: u64,
    /// "unknown_client" (a frame from a MAC without a vAP).
    pub kind: &'static str,
    pub client: Mac,
    pub ifindex: u32,
    pub iface: Option<String>,
    pub ethertype: u16,
    /// The sender's address, when the frame had one.
    pub addr: Option<IpAddr>,
}

/// The name of interface `index` in the current network namespace.
pub fn if_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer has IF_NAMESIZE bytes, as the call requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// The MAC of `iface` in the current network namespace (`SIOCGIFHWADDR`; sysfs shows
/// the namespace it was mounted in, which `--netns` does not change).
pub fn if_mac(iface: &str) -> Result<Mac> {
    if iface.is_empty() || iface.len() >= libc::IF_NAMESIZE {
        return Err(Error::UnknownInterface(iface.to_string()));
    }
    // SAFETY: plain socket and ioctl calls on a zeroed ifreq holding a NUL-terminated
    // name; the descriptor is closed on every path.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(Error::io(
                "cannot open a socket",
                std::io::Error::last_os_error(),
            ));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(iface.bytes()) {
            *d = s as libc::c_char;
        }
        let rc = libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(match err.raw_os_error() {
                Some(libc::ENODEV) => Error::UnknownInterface(iface.to_string()),
                _ => Error::io(format!("cannot read the MAC of {iface}"), err),
            });
        }
        let data = req.ifr_ifru.ifru_hwaddr.sa_data;
        Ok(Mac([
            data[0] as u8,
            data[1] as u8,
            data[2] as u8,
            data[3] as u8,
            data[4] as u8,
            data[5] as u8,
        ]))
    }
}

/// The client-facing interface of a new vAP: the one named, or else the one interface
/// `vdmm_vap` is attached to under `pins`.
pub fn client_iface(pins: &PinDir, named: Option<&str>) -> Result<String> {
    if let Some(n) = named {
        if_index(n)?;
        return Ok(n.to_string());
    }
    let attached = pins.vap_linked_interfaces()?;
    match attached.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::Conflict(
            "no client-facing interface: attach one with `vdmm-ctl load --client-facing IFACE` \
             or pass --iface"
                .into(),
        )),
        many => Err(Error::Conflict(format!(
            "{} client-facing interfaces ({}); pass --iface",
            many.len(),
            many.join(", ")
        ))),
    }
}

/// What [`check_spec`] and [`pick_vap_mac`] need to know of a vAP that exists: a vAP
/// read from the maps ([`VapEntry`]) or one of the agent's desired state
/// ([`crate::vap_record::VapRecord`]).
pub trait VapIdentity {
    fn client(&self) -> Mac;
    fn vap_mac(&self) -> Mac;
    fn addrs(&self) -> Vec<IpAddr>;
}

impl VapIdentity for VapEntry {
    fn client(&self) -> Mac {
        self.client
    }

    fn vap_mac(&self) -> Mac {
        self.vap_mac
    }

    fn addrs(&self) -> Vec<IpAddr> {
        VapEntry::addrs(self)
    }
}

/// Checks a spec against the vAPs that exist (pure, so unit tested): at least one
/// address, unicast addresses, an anchor unless breakout, a unicast vAP MAC that differs
/// from the client's, nothing another vAP already has.
pub fn check_spec(spec: &VapSpec, existing: &[impl VapIdentity]) -> Result<()> {
    if spec.client.is_group() || spec.client.0 == [0; 6] {
        return Err(Error::Conflict(format!(
            "client MAC {} is not a unicast MAC",
            spec.client
        )));
    }
    if let Some(e) = existing.iter().find(|e| e.client() == spec.client) {
        return Err(Error::VapExists(spec.client, e.vap_mac()));
    }
    if spec.ipv4.is_none() && spec.ipv6.is_none() {
        return Err(Error::Conflict(
            "a vAP needs the client's IPv4 or IPv6 address (--ipv4, --ipv6)".into(),
        ));
    }
    if let Some(a) = spec.ipv4 {
        check_tunnel_addr("client address", IpAddr::V4(a))?;
    }
    if let Some(a) = spec.ipv6 {
        check_tunnel_addr("client address", IpAddr::V6(a))?;
        if a.segments()[0] & 0xffc0 == 0xfe80 {
            return Err(Error::NotUnicast {
                what: "client address (link-local)",
                addr: IpAddr::V6(a),
            });
        }
    }
    match (spec.anchor, spec.breakout) {
        (Some(a), _) => check_tunnel_addr("anchor", a)?,
        (None, false) => {
            return Err(Error::Conflict(
                "a vAP needs the client's anchor (--anchor LOCATOR) unless it breaks out locally (--breakout)".into(),
            ));
        }
        (None, true) => {}
    }
    if let Some(m) = spec.vap_mac {
        if m.is_group() || m.0 == [0; 6] || m == spec.client {
            return Err(Error::Conflict(format!(
                "vAP MAC {m} must be a unicast MAC other than the client's"
            )));
        }
        if let Some(e) = existing
            .iter()
            .find(|e| e.vap_mac() == m || e.client() == m)
        {
            return Err(Error::VapTaken {
                what: "vAP MAC",
                value: m.to_string(),
                owner: e.client(),
            });
        }
    }
    for a in spec
        .ipv4
        .map(IpAddr::V4)
        .into_iter()
        .chain(spec.ipv6.map(IpAddr::V6))
    {
        if let Some(e) = existing.iter().find(|e| e.addrs().contains(&a)) {
            return Err(Error::VapTaken {
                what: "address",
                value: a.to_string(),
                owner: e.client(),
            });
        }
    }
    Ok(())
}

/// The vAP MAC for a new vAP: the one asked for, or the first derived one no vAP has.
pub fn pick_vap_mac(spec: &VapSpec, existing: &[impl VapIdentity]) -> Mac {
    if let Some(m) = spec.vap_mac {
        return m;
    }
    let taken = |m: MacKey| {
        existing
            .iter()
            .any(|e| e.vap_mac().key() == m || e.client().key() == m)
    };
    let mut salt = 0;
    loop {
        let m = vap_mac_for(spec.client.key(), salt);
        debug_assert!(is_local_unicast(m));
        if !taken(m) && m != spec.client.key() {
            return Mac::from_key(m);
        }
        salt += 1;
    }
}

/// The lowest counter slot no vAP uses, if any is free.
pub fn free_slot(existing: &[VapEntry]) -> Option<u32> {
    let mut used: Vec<u32> = existing.iter().map(|e| e.slot).collect();
    used.sort_unstable();
    let mut next = 0;
    for s in used {
        if s == next {
            next += 1;
        } else if s > next {
            break;
        }
    }
    (next < names::MAX_VAPS).then_some(next)
}

/// The map value of `r` on interface `ifindex` (MAC `host_mac`) with counter slot `slot`.
pub(crate) fn vap_value(r: &VapRecord, ifindex: u32, host_mac: Mac, slot: u32) -> Vap {
    let binding = |b: Option<(IpAddr, IpAddr)>| {
        b.map_or_else(Binding::default, |(l, s)| {
            Binding::new(IpAddrKey::from(l), IpAddrKey::from(s))
        })
    };
    let mut flags = 0;
    if r.ipv4.is_some() {
        flags |= VAP_HAS_V4;
    }
    if r.ipv6.is_some() {
        flags |= VAP_HAS_V6;
    }
    if r.breakout {
        flags |= VAP_BREAKOUT;
    }
    if r.forwarding().is_some() {
        flags |= VAP_FORWARD;
    }
    Vap {
        client_mac: r.client.key(),
        vap_mac: r.vap_mac.key(),
        host_mac: host_mac.key(),
        ifindex,
        flags,
        ipv4: r.ipv4.map(|a| a.octets()).unwrap_or_default(),
        slot,
        ipv6: r.ipv6.map(|a| a.octets()).unwrap_or_default(),
        anchor: binding(r.uplink()),
        forward: binding(r.forwarding()),
    }
}

pub(crate) fn entry_of(v: &Vap) -> VapEntry {
    let binding = |b: &Binding| {
        (!b.locator.is_unset()).then(|| (IpAddr::from(b.locator), IpAddr::from(b.source)))
    };
    VapEntry {
        client: Mac::from_key(v.client_mac),
        vap_mac: Mac::from_key(v.vap_mac),
        ipv4: v.has(VAP_HAS_V4).then(|| Ipv4Addr::from(v.ipv4)),
        ipv6: v.has(VAP_HAS_V6).then(|| Ipv6Addr::from(v.ipv6)),
        anchor: binding(&v.anchor),
        breakout: v.has(VAP_BREAKOUT),
        forward: if v.has(VAP_FORWARD) {
            binding(&v.forward)
        } else {
            None
        },
        ifindex: v.ifindex,
        iface: if_name(v.ifindex),
        host_mac: Mac::from_key(v.host_mac),
        slot: v.slot,
    }
}

pub(crate) fn update_err(what: &'static str) -> impl Fn(aya::maps::MapError) -> Error {
    move |e| Error::ebpf(format!("cannot update {what}"), e)
}

impl Dataplane {
    /// Every vAP, sorted by client MAC.
    pub fn vaps(&self) -> Result<Vec<VapEntry>> {
        let mut v = Vec::new();
        for item in self.vaps.iter() {
            let (_, vap) = item.map_err(|e| Error::ebpf("cannot read the vAPs", e))?;
            v.push(entry_of(&vap));
        }
        v.sort_by_key(|e| e.client);
        Ok(v)
    }

    /// The vAP of `client`.
    pub fn vap(&self, client: Mac) -> Result<VapEntry> {
        match self.vaps.get(&client.key(), 0) {
            Ok(v) => Ok(entry_of(&v)),
            Err(e)
                if matches!(&e, aya::maps::MapError::KeyNotFound)
                    || errno(&e) == Some(libc::ENOENT) =>
            {
                Err(Error::NoSuchVap(client))
            }
            Err(e) => Err(Error::ebpf("cannot read the vAPs", e)),
        }
    }

    /// Creates the vAP of `spec.client` (see [`check_spec`] for what is refused) with
    /// zeroed counters, and returns it as stored. Its addresses are delivered to it from
    /// the moment this returns.
    pub fn add_vap(&mut self, spec: &VapSpec) -> Result<VapEntry> {
        let r = self.insert_vap(spec);
        self.vaps_changed(r)
    }

    /// Invalidates the data plane's vAP caches after a change to the vAP tables, whether
    /// it succeeded or not (a failed change may have been undone half-way).
    pub(crate) fn vaps_changed<T>(&mut self, r: Result<T>) -> Result<T> {
        crate::cache_gen::invalidate(&self.vap_gen)?;
        r
    }

    fn insert_vap(&mut self, spec: &VapSpec) -> Result<VapEntry> {
        let existing = self.vaps()?;
        check_spec(spec, &existing)?;
        let iface = client_iface(&self.pins, spec.iface.as_deref())?;
        let ifindex = if_index(&iface)?;
        let host_mac = if_mac(&iface)?;
        let source = match spec.anchor {
            Some(locator) => Some(resolve_source(&self.endpoints()?, locator, spec.source)?),
            None => None,
        };
        let slot = free_slot(&existing).ok_or(Error::Full {
            what: "the vAP table",
            max: names::MAX_VAPS,
        })?;
        let vap_mac = pick_vap_mac(spec, &existing);
        let record = VapRecord {
            client: spec.client,
            vap_mac,
            ipv4: spec.ipv4,
            ipv6: spec.ipv6,
            anchor: spec.anchor,
            source,
            breakout: spec.breakout,
            iface: iface.parse()?,
            forward: None,
            forward_source: None,
        };
        let value = vap_value(&record, ifindex, host_mac, slot);
        self.zero_vap_counters(slot)?;
        self.vaps
            .insert(spec.client.key(), value, BPF_NOEXIST)
            .map_err(|e| match errno(&e) {
                Some(libc::EEXIST) => Error::VapExists(spec.client, vap_mac),
                Some(libc::E2BIG) | Some(libc::ENOSPC) => Error::Full {
                    what: "the vAP table",
                    max: names::MAX_VAPS,
                },
                _ => update_err("the vAPs")(e),
            })?;
        let addrs = record.addrs();
        let owner = VapAddr {
            client_mac: spec.client.key(),
        };
        for (i, a) in addrs.iter().enumerate() {
            if let Err(e) = self
                .vap_addrs
                .insert(IpAddrKey::from(*a), owner, BPF_NOEXIST)
            {
                // Undo: nothing of this vAP stays.
                for done in &addrs[..i] {
                    let _ = self.vap_addrs.remove(&IpAddrKey::from(*done));
                }
                let _ = self.vaps.remove(&spec.client.key());
                return Err(match errno(&e) {
                    Some(libc::EEXIST) => {
                        Error::Conflict(format!("address {a} was taken by another vAP meanwhile"))
                    }
                    _ => update_err("the vAP addresses")(e),
                });
            }
        }
        Ok(entry_of(&value))
    }

    /// Zeroes the counters in `slot` (for a new vAP).
    pub(crate) fn zero_vap_counters(&mut self, slot: u32) -> Result<()> {
        let ncpu = aya::util::nr_cpus().map_err(|(_, e)| Error::io("cannot count the CPUs", e))?;
        let zero = PerCpuValues::try_from(vec![VapCounters::default(); ncpu])
            .map_err(|e| Error::io("cannot build the vAP counters", e))?;
        self.vap_stats
            .set(slot, zero, 0)
            .map_err(update_err("the vAP counters"))
    }

    /// Deletes the vAP of `client` (its addresses first, so nothing is delivered to a
    /// vAP that is going away).
    pub fn del_vap(&mut self, client: Mac) -> Result<VapEntry> {
        let entry = self.vap(client)?;
        let r = self.remove_vap(client, entry);
        self.vaps_changed(r)
    }

    fn remove_vap(&mut self, client: Mac, entry: VapEntry) -> Result<VapEntry> {
        for a in entry.addrs() {
            // An address another vAP took over (an agent's batch) stays with it.
            match self.vap_addrs.get(&IpAddrKey::from(a), 0) {
                Ok(owner) if owner.client_mac != client.key() => continue,
                _ => {}
            }
            match self.vap_addrs.remove(&IpAddrKey::from(a)) {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(libc::ENOENT) => {}
                Err(e) => return Err(update_err("the vAP addresses")(e)),
            }
        }
        self.vaps
            .remove(&client.key())
            .map_err(|e| match errno(&e) {
                Some(libc::ENOENT) => Error::NoSuchVap(client),
                _ => update_err("the vAPs")(e),
            })?;
        Ok(entry)
    }

    /// Switches the vAP of `client` to forwarding: packets for the client are tunnelled
    /// to `locator` (the AP host it moved to; from `source`, by default the lowest local
    /// endpoint of the locator's family) instead of delivered here. `None` switches back
    /// to local delivery. One atomic map update.
    pub fn set_forward(
        &mut self,
        client: Mac,
        target: Option<(IpAddr, Option<IpAddr>)>,
    ) -> Result<VapEntry> {
        let r = self.write_forward(client, target);
        self.vaps_changed(r)
    }

    fn write_forward(
        &mut self,
        client: Mac,
        target: Option<(IpAddr, Option<IpAddr>)>,
    ) -> Result<VapEntry> {
        let mut v = self
            .vaps
            .get(&client.key(), 0)
            .map_err(|_| Error::NoSuchVap(client))?;
        match target {
            Some((locator, source)) => {
                let source = resolve_source(&self.endpoints()?, locator, source)?;
                v.forward = Binding::new(IpAddrKey::from(locator), IpAddrKey::from(source));
                v.flags |= VAP_FORWARD;
            }
            None => {
                v.forward = Binding::default();
                v.flags &= !VAP_FORWARD;
            }
        }
        self.vaps
            .insert(client.key(), v, BPF_EXIST)
            .map_err(|e| match errno(&e) {
                Some(libc::ENOENT) => Error::NoSuchVap(client),
                _ => update_err("the vAPs")(e),
            })?;
        Ok(entry_of(&v))
    }

    /// The counters of the vAP of `client`, summed over CPUs.
    pub fn vap_counters(&self, client: Mac) -> Result<VapCounters> {
        let entry = self.vap(client)?;
        let per_cpu = self
            .vap_stats
            .get(&entry.slot, 0)
            .map_err(|e| Error::ebpf("cannot read the vAP counters", e))?;
        let mut sum = VapCounters::default();
        for c in per_cpu.iter() {
            sum.add(c);
        }
        Ok(sum)
    }
}

impl Dataplane {
    /// Drains the data plane's reports (`VDMM_VAP_EVENTS`): every report not read
    /// before, oldest first. Reading consumes them.
    pub fn vap_events(&self) -> Result<Vec<VapReport>> {
        events(&self.pins)
    }
}

/// [`Dataplane::vap_events`] from the pins alone.
pub fn events(pins: &PinDir) -> Result<Vec<VapReport>> {
    let mut ring: RingBuf<MapData> = crate::maps::open_map(pins, names::VAP_EVENTS)?;
    let mut out = Vec::new();
    while let Some(item) = ring.next() {
        if item.len() < std::mem::size_of::<VapEvent>() {
            continue;
        }
        // SAFETY: the data plane writes whole VapEvents; read unaligned from the bytes.
        let e: VapEvent = unsafe { std::ptr::read_unaligned(item.as_ptr() as *const VapEvent) };
        out.push(report_of(&e));
    }
    Ok(out)
}

fn report_of(e: &VapEvent) -> VapReport {
    let addr = IpAddr::from(e.addr);
    let addr = (!addr.is_unspecified() && !e.addr.is_unset()).then_some(addr);
    VapReport {
        time_ns: e.time_ns,
        kind: if e.kind == VAP_EVENT_UNKNOWN_CLIENT {
            "unknown_client"
        } else {
            "unknown"
        },
        client: Mac::from_key(e.client_mac),
        ifindex: e.ifindex,
        iface: if_name(e.ifindex),
        ethertype: e.ethertype as u16,
        addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> Mac {
        s.parse().unwrap()
    }

    fn entry(client: &str, vap: &str, v4: &str, slot: u32) -> VapEntry {
        VapEntry {
            client: mac(client),
            vap_mac: mac(vap),
            ipv4: Some(v4.parse().unwrap()),
            ipv6: None,
            anchor: None,
            breakout: true,
            forward: None,
            ifindex: 1,
            iface: None,
            host_mac: Mac::default(),
            slot,
        }
    }

    fn spec(client: &str) -> VapSpec {
        VapSpec {
            client: mac(client),
            ipv4: Some("10.1.0.9".parse().unwrap()),
            anchor: Some("192.0.2.1".parse().unwrap()),
            ..VapSpec::default()
        }
    }

    #[test]
    fn macs_parse_and_print() {
        assert_eq!(mac("02:00:5E:10:00:01").to_string(), "02:00:5e:10:00:01");
        assert_eq!(mac("2-0-5e-10-0-1"), mac("02:00:5e:10:00:01"));
        for bad in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:01:02",
            "0g:00:00:00:00:00",
            "020:0:0:0:0:0",
        ] {
            let e = bad.parse::<Mac>().unwrap_err();
            assert!(matches!(e, Error::BadMac(_)), "{bad}");
        }
        assert_eq!(
            Mac::from_key(mac("02:00:5e:10:00:01").key()),
            mac("02:00:5e:10:00:01")
        );
        assert!(mac("ff:ff:ff:ff:ff:ff").is_group());
    }

    #[test]
    fn specs_are_checked_against_existing_vaps() {
        let existing = [entry(
            "00:00:00:00:00:01",
            "02:aa:00:00:00:01",
            "10.1.0.1",
            0,
        )];
        assert!(check_spec(&spec("00:00:00:00:00:02"), &existing).is_ok());
        let e = check_spec(&spec("00:00:00:00:00:01"), &existing).unwrap_err();
        assert_eq!(
            e.to_string(),
            "client 00:00:00:00:00:01 already has a vAP (vAP MAC 02:aa:00:00:00:01); delete it first"
        );
        let mut s = spec("00:00:00:00:00:02");
        s.ipv4 = Some("10.1.0.1".parse().unwrap());
        assert_eq!(
            check_spec(&s, &existing).unwrap_err().to_string(),
            "address 10.1.0.1 already belongs to the vAP of client 00:00:00:00:00:01"
        );
        let mut s = spec("00:00:00:00:00:02");
        s.vap_mac = Some(mac("02:aa:00:00:00:01"));
        assert!(matches!(
            check_spec(&s, &existing),
            Err(Error::VapTaken { .. })
        ));
        s.vap_mac = Some(mac("01:00:5e:00:00:01"));
        assert!(matches!(check_spec(&s, &existing), Err(Error::Conflict(_))));
        let mut s = spec("00:00:00:00:00:02");
        s.ipv4 = None;
        assert!(matches!(check_spec(&s, &existing), Err(Error::Conflict(_))));
        let mut s = spec("00:00:00:00:00:02");
        s.anchor = None;
        assert!(matches!(check_spec(&s, &existing), Err(Error::Conflict(_))));
        s.breakout = true;
        assert!(check_spec(&s, &existing).is_ok());
        let mut s = spec("ff:ff:ff:ff:ff:ff");
        s.breakout = true;
        assert!(check_spec(&s, &existing).is_err());
        let mut s = spec("00:00:00:00:00:02");
        s.ipv6 = Some("fe80::1".parse().unwrap());
        assert!(matches!(
            check_spec(&s, &existing),
            Err(Error::NotUnicast { .. })
        ));
    }

    #[test]
    fn vap_macs_and_slots_are_unique() {
        let s = spec("00:00:00:00:00:02");
        let first = pick_vap_mac(&s, &[] as &[VapEntry]);
        assert!(is_local_unicast(first.key()));
        let existing = [entry(
            "00:00:00:00:00:01",
            &first.to_string(),
            "10.1.0.1",
            0,
        )];
        let second = pick_vap_mac(&s, &existing);
        assert_ne!(first, second);
        assert!(is_local_unicast(second.key()));
        assert_eq!(free_slot(&[]), Some(0));
        let e = |slot| entry("00:00:00:00:00:01", "02:00:00:00:00:01", "10.1.0.1", slot);
        assert_eq!(free_slot(&[e(0), e(1), e(3)]), Some(2));
        assert_eq!(free_slot(&[e(1)]), Some(0));
        assert_eq!(free_slot(&[e(0), e(1)]), Some(2));
    }
}
