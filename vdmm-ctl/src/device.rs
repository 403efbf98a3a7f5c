//! `vdmm0`, the slow path's device: the one place the kernel routes every bound home
//! prefix into (see [`crate::routes`]), with `vdmm_tc_egress` on its egress.
//!
//! What the XDP program cannot finish (IPv4 without DF that must be fragmented, next hops
//! without a neighbour entry) and what the gateway itself sends toward a home prefix is
//! routed by the kernel into `vdmm0`, fragmented to the route's MTU on the way; the TC
//! program adds the outer header as the packet leaves `vdmm0` and hands it to
//! `bpf_redirect_neigh` toward the locator's real egress interface, which resolves the
//! neighbour. A route *into a device* needs no next hop, so it works for every tunnel kind,
//! including IPv6 homes over an IPv4 locator (Linux refuses an IPv6 route via an IPv4 next
//! hop).
//!
//! The device:
//!
//! - kind `dummy` (or `ifb` where the kernel has no dummy driver; both are Ethernet-like,
//!   NOARP, and drop whatever reaches their transmit function, which only packets the TC
//!   program lets through do);
//! - NOARP (set explicitly; both kinds default to it): the kernel never resolves a
//!   neighbour on it, the TC program sees frames addressed to the device itself;
//! - MTU 65535: only the routes' MTUs limit what goes in;
//! - no IPv6 link-local address (`addrgenmode none`), so the kernel sends nothing of its
//!   own (router solicitations, MLD) through it;
//! - IPv4 and IPv6 forwarding enabled on it (`/proc/sys/net/ipv{4,6}/conf/vdmm0/forwarding`):
//!   the TC program's FIB lookup for the locator takes `vdmm0` as its input interface,
//!   and `bpf_fib_lookup` refuses input interfaces that do not forward.
//!
//! Ownership: the device carries the alias `vdmm slow path, pins DIR` (see
//! [`owner_alias`]). `load` creates it with that alias, adopts a `vdmm0` whose alias names
//! the same pin directory, and refuses any other `vdmm0` (another pin directory's, or an
//! interface vdmm did not create); `reset` deletes it only when its alias names the pin
//! directory being reset. The alias lives on the device, so it survives whatever happens
//! to the pin directory and `ip -d link show vdmm0` says whose it is.
//!
//! Everything runs in the network namespace of the calling thread (`--netns`, or
//! `ip netns exec`): netlink sockets and `/proc/sys/net` both belong to the namespace of
//! the thread that opens them.

use std::{fmt, fs, path::Path};

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{
        AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth, LinkAttribute,
        LinkFlags, LinkInfo, LinkMessage,
    },
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
};

use crate::{
    error::{Error, Result},
    pin::PinDir,
    routes::Netlink,
};

/// Name of the slow path's device.
pub const DEVICE: &str = "vdmm0";
/// Its MTU: the largest Linux allows, so only the routes' MTUs count.
pub const DEVICE_MTU: u32 = 65535;
/// Start of the alias that marks the device as vdmm's.
pub const ALIAS_PREFIX: &str = "vdmm slow path, pins ";

/// The device as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub index: u32,
    /// `dummy`, `ifb`, ... (None: a device without a kind, such as a physical NIC).
    pub kind: Option<String>,
    pub mtu: u32,
    pub up: bool,
    pub noarp: bool,
    pub alias: Option<String>,
}

impl DeviceInfo {
    /// True when its alias says it is the device of the pin directory `pins`.
    pub fn is_owned_by(&self, pins: &PinDir) -> bool {
        self.alias.as_deref() == Some(owner_alias(pins).as_str())
    }

    /// The pin directory named in its alias, when it is some vdmm's device.
    pub fn owner(&self) -> Option<&str> {
        self.alias.as_deref()?.strip_prefix(ALIAS_PREFIX)
    }
}

/// `/proc/sys/net/ipv4|ipv6/conf/vdmm0/forwarding` (None: unreadable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forwarding {
    pub v4: Option<bool>,
    pub v6: Option<bool>,
}

impl Forwarding {
    pub fn both(&self) -> bool {
        self.v4 == Some(true) && self.v6 == Some(true)
    }
}

impl fmt::Display for Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |v: Option<bool>| match v {
            Some(true) => "on",
            Some(false) => "off",
            None => "unknown",
        };
        write!(f, "forwarding IPv4 {}, IPv6 {}", s(self.v4), s(self.v6))
    }
}

/// What [`ensure`] found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ensured {
    pub info: DeviceInfo,
    /// True when this call created the device (so an undo deletes it).
    pub created: bool,
}

/// The alias that marks `vdmm0` as the device of `pins`: the pin directory as an absolute
/// path (canonical when it exists).
pub fn owner_alias(pins: &PinDir) -> String {
    format!("{ALIAS_PREFIX}{}", absolute(pins.path()).display())
}

fn absolute(p: &Path) -> std::path::PathBuf {
    fs::canonicalize(p).unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.into()))
}

fn sysctl_path(v6: bool) -> String {
    let family = if v6 { "ipv6" } else { "ipv4" };
    format!("/proc/sys/net/{family}/conf/{DEVICE}/forwarding")
}

/// Reads the device's forwarding settings.
pub fn forwarding() -> Forwarding {
    let read = |v6| {
        fs::read_to_string(sysctl_path(v6))
            .ok()
            .map(|s| s.trim() != "0")
    };
    Forwarding {
        v4: read(false),
        v6: read(true),
    }
}

fn enable_forwarding() -> Result<()> {
    for v6 in [false, true] {
        let path = sysctl_path(v6);
        fs::write(&path, "1").map_err(|e| {
            Error::io(
                format!("cannot enable forwarding on {DEVICE} (write 1 to {path})"),
                e,
            )
        })?;
    }
    Ok(())
}

impl Netlink {
    /// The interface called `name` (None when there is none).
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<DeviceInfo>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let replies = match self.request(RouteNetlinkMessage::GetLink(msg), 0)? {
            Ok(r) => r,
            Err(e) if e.errno == libc::ENODEV => return Ok(None),
            Err(e) => {
                return Err(Error::Conflict(format!(
                    "cannot read interface {name}: {e}"
                )));
            }
        };
        let Some(RouteNetlinkMessage::NewLink(l)) = replies.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(device_info(&l)))
    }

    fn change_link(&mut self, what: &str, msg: LinkMessage, flags: u16) -> Result<()> {
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_ACK | flags)?
            .map(drop)
            .map_err(|e| Error::Device(format!("{what}: {e}")))
    }

    /// Deletes interface `index`; false when there is no such interface.
    pub fn delete_link(&mut self, index: u32) -> Result<bool> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(msg), NLM_F_ACK)? {
            Ok(_) => Ok(true),
            Err(e) if e.errno == libc::ENODEV => Ok(false),
            Err(e) => Err(Error::Device(format!("cannot delete {DEVICE}: {e}"))),
        }
    }
}

fn device_info(l: &LinkMessage) -> DeviceInfo {
    let mut info = DeviceInfo {
        index: l.header.index,
        kind: None,
        mtu: 0,
        up: l.header.flags.contains(LinkFlags::Up),
        noarp: l.header.flags.contains(LinkFlags::Noarp),
        alias: None,
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::Mtu(m) => info.mtu = *m,
            LinkAttribute::IfAlias(s) => info.alias = Some(s.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        info.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    info
}

/// The `RTM_NEWLINK` that creates the device (down; [`configure`] brings it up). The
/// kernel ignores an alias given here, so [`configure`] sets it.
pub fn create_message(kind: InfoKind) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes = vec![
        LinkAttribute::IfName(DEVICE.to_string()),
        LinkAttribute::Mtu(DEVICE_MTU),
        LinkAttribute::LinkInfo(vec![LinkInfo::Kind(kind)]),
    ];
    msg
}

/// The `RTM_SETLINK` that marks a device just created as `alias`'s and keeps IPv6
/// from giving it addresses (the kernel applies that to a device that is down).
pub fn mark_message(index: u32, alias: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes = vec![
        LinkAttribute::IfAlias(alias.to_string()),
        LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
            In6AddrGenMode::None,
        )])]),
    ];
    msg
}

/// Settings of the device: when just created, its alias and no IPv6 addresses of its own;
/// always MTU, NOARP and up.
fn configure(nl: &mut Netlink, index: u32, created: Option<&str>) -> Result<()> {
    if let Some(alias) = created {
        nl.change_link(
            &format!("cannot set the alias of {DEVICE} and turn off its IPv6 addresses"),
            mark_message(index, alias),
            0,
        )?;
    }
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.header.flags = LinkFlags::Up | LinkFlags::Noarp;
    msg.header.change_mask = LinkFlags::Up | LinkFlags::Noarp;
    msg.attributes.push(LinkAttribute::Mtu(DEVICE_MTU));
    nl.change_link(
        &format!("cannot bring {DEVICE} up (NOARP, mtu {DEVICE_MTU})"),
        msg,
        0,
    )
}

/// Creates the device: kind dummy, or ifb when the kernel has no dummy driver.
fn create(nl: &mut Netlink) -> Result<()> {
    let flags = NLM_F_CREATE | NLM_F_EXCL;
    let dummy = create_message(InfoKind::Dummy);
    match nl.request(RouteNetlinkMessage::NewLink(dummy), NLM_F_ACK | flags)? {
        Ok(_) => Ok(()),
        Err(e) if e.errno == libc::EOPNOTSUPP => {
            let ifb = create_message(InfoKind::Ifb);
            nl.change_link(
                &format!(
                    "cannot create {DEVICE}: the kernel has no dummy driver ({e}), and an ifb \
                     device failed too"
                ),
                ifb,
                flags,
            )
        }
        Err(e) => Err(Error::Device(format!(
            "cannot create {DEVICE} (dummy): {e}"
        ))),
    }
}

/// Makes sure `vdmm0` exists as the device of `pins`, configured as the module
/// documentation says. A device created here is deleted again if configuring it fails.
pub fn ensure(pins: &PinDir) -> Result<Ensured> {
    let mut nl = Netlink::open()?;
    let alias = owner_alias(pins);
    if let Some(info) = nl.link_by_name(DEVICE)? {
        check_ours(&info, pins)?;
        configure(&mut nl, info.index, None)?;
        enable_forwarding()?;
        let info = reread(&mut nl)?;
        return Ok(Ensured {
            info,
            created: false,
        });
    }
    create(&mut nl)?;
    let done = (|| {
        let info = reread(&mut nl)?;
        configure(&mut nl, info.index, Some(&alias))?;
        enable_forwarding()?;
        reread(&mut nl)
    })();
    match done {
        Ok(info) => Ok(Ensured {
            info,
            created: true,
        }),
        Err(e) => {
            if let Ok(Some(info)) = nl.link_by_name(DEVICE) {
                let _ = nl.delete_link(info.index);
            }
            Err(e)
        }
    }
}

fn reread(nl: &mut Netlink) -> Result<DeviceInfo> {
    nl.link_by_name(DEVICE)?
        .ok_or_else(|| Error::Device(format!("{DEVICE} vanished while being set up")))
}

/// Refuses a `vdmm0` that is not the device of `pins`.
fn check_ours(info: &DeviceInfo, pins: &PinDir) -> Result<()> {
    if info.is_owned_by(pins) {
        return Ok(());
    }
    Err(Error::Device(match info.owner() {
        Some(other) => format!(
            "{DEVICE} belongs to the vdmm pin directory {other} (one vdmm per network \
             namespace); `vdmm-ctl --pin-dir {other} reset` removes it, or `ip link del \
             {DEVICE}` if that directory is gone"
        ),
        None => format!(
            "an interface named {DEVICE} exists that vdmm-ctl did not create ({}); vdmm needs \
             that name for its slow-path device: delete or rename it",
            info.kind.as_deref().unwrap_or("no kind")
        ),
    }))
}

/// The device, when it exists (in the calling thread's network namespace).
pub fn find() -> Result<Option<DeviceInfo>> {
    Netlink::open()?.link_by_name(DEVICE)
}

/// Deletes `vdmm0` when its alias is `alias` (that of the pin directory being reset, see
/// [`owner_alias`]). Returns true when it did.
pub fn remove_owned_by(alias: &str) -> Result<bool> {
    let mut nl = Netlink::open()?;
    match nl.link_by_name(DEVICE)? {
        Some(info) if info.alias.as_deref() == Some(alias) => nl.delete_link(info.index),
        _ => Ok(false),
    }
}

/// Deletes `vdmm0` by index, ignoring a device that is already gone (the undo of an
/// [`ensure`] that created it).
pub fn delete(index: u32) -> Result<()> {
    Netlink::open()?.delete_link(index).map(drop)
}

// ---------------------------------------------------------------------------------------
// The translator's fragmentation slow path: the veth pair `vdmmx0` <-> `vdmmx1`.
//
// RFC 7915 section 4: an IPv4 packet without DF whose IPv6 translation exceeds the lowest
// IPv6 MTU (or the next hop's MTU) must be fragmented, and XDP cannot make two packets out
// of one. So `vdmm_xdp` passes the original IPv4 packet to the kernel
// (`xlat_fragmented_by_kernel`); the kernel routes its destination into `vdmmx0` with the
// route MTU = lowest IPv6 MTU - 28 (IPv6 header 40 + fragment header 8 - IPv4 header 20;
// the routes are vdmm-ctl natpt's, see `crate::routes::FragRoute`), fragmenting it on the
// way; every fragment comes out of `vdmmx1`, where `vdmm_xdp` (attached like on any
// interface, pinned link `link_xdp_vdmmx1`) translates it into an IPv6 fragment that fits,
// and redirects it toward the IPv6 side. `XlatConfig::frag_ifindex` tells the data plane
// which interface `vdmmx1` is: a packet there that still does not fit is dropped instead
// of passed, so nothing loops.
//
// - A veth pair, not a dummy device: the kernel must transmit the fragments and something
//   must receive them with XDP.
// - Routes go via [`FRAG_GATEWAY`] (onlink), a permanent neighbour on `vdmmx0` whose MAC
//   is `vdmmx1`'s: the kernel never sends ARP for the translated IPv4 space (nobody would
//   answer it), and `bpf_fib_lookup` sees a real Ethernet next hop, so the translator's
//   "would the kernel forward this?" check (RFC 6052 prefix) holds for these destinations
//   (a NOARP device would look like `vdmm0`, whose next hops XDP leaves to the kernel).
// - No GRO switch: XDP on `vdmmx1` already puts it in NAPI mode, which is what delivers
//   the frames `vdmmx0` transmits to the program.
// - IPv4 and IPv6 forwarding on both ends (`bpf_fib_lookup` refuses input interfaces that
//   do not forward), no IPv6 addresses of their own, up; the alias of `vdmm0` marks them.
// ---------------------------------------------------------------------------------------

/// The end of the fragmentation veth pair the kernel routes into.
pub const FRAG_TX: &str = "vdmmx0";
/// The end `vdmm_xdp` runs on (the fragments arrive here).
pub const FRAG_RX: &str = "vdmmx1";
/// Next hop of the fragmentation routes: a permanent neighbour on `vdmmx0` with
/// `vdmmx1`'s MAC address (IPv4 link-local, never on the wire beyond the pair).
pub const FRAG_GATEWAY: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 118, 1);
/// What the route MTU into `vdmmx0` is below the lowest IPv6 MTU: IPv6 header (40) plus
/// fragment header (8) less the IPv4 header (20).
pub const FRAG_OVERHEAD: u32 = 28;

/// The fragmentation pair as [`ensure_frag_pair`] left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragPair {
    pub tx_index: u32,
    pub rx_index: u32,
    pub created: bool,
}

/// Makes sure the veth pair `vdmmx0` <-> `vdmmx1` exists for `pins` (see above): created
/// with `vdmm0`'s owner alias, up, forwarding, with the permanent neighbour
/// [`FRAG_GATEWAY`]. A pair created here is deleted again if configuring it fails.
pub fn ensure_frag_pair(pins: &PinDir) -> Result<FragPair> {
    let mut nl = Netlink::open()?;
    let alias = owner_alias(pins);
    let mut created = false;
    if let Some(info) = nl.link_by_name(FRAG_TX)? {
        if info.alias.as_deref() != Some(alias.as_str()) {
            return Err(Error::Device(format!(
                "an interface named {FRAG_TX} exists that is not this pin directory's \
                 fragmentation veth ({}); delete or rename it",
                info.alias.as_deref().unwrap_or("no alias")
            )));
        }
    } else {
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(FRAG_RX.to_string()));
        let mut msg = LinkMessage::default();
        msg.attributes = vec![
            LinkAttribute::IfName(FRAG_TX.to_string()),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]),
        ];
        nl.change_link(
            &format!("cannot create the veth pair {FRAG_TX} <-> {FRAG_RX}"),
            msg,
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        created = true;
    }
    let done = (|| {
        let tx = reread_name(&mut nl, FRAG_TX)?;
        let rx = reread_name(&mut nl, FRAG_RX)?;
        for (name, index) in [(FRAG_TX, tx.index), (FRAG_RX, rx.index)] {
            if created {
                nl.change_link(
                    &format!("cannot set the alias of {name}"),
                    mark_message(index, &alias),
                    0,
                )?;
            }
            let mut msg = LinkMessage::default();
            msg.header.index = index;
            msg.header.flags = LinkFlags::Up;
            msg.header.change_mask = LinkFlags::Up;
            nl.change_link(&format!("cannot bring {name} up"), msg, 0)?;
            for v6 in [false, true] {
                let path = format!(
                    "/proc/sys/net/ipv{}/conf/{name}/forwarding",
                    if v6 { 6 } else { 4 }
                );
                fs::write(&path, "1").map_err(|e| {
                    Error::io(
                        format!("cannot enable forwarding on {name} (write 1 to {path})"),
                        e,
                    )
                })?;
            }
        }
        let mac = nl.link_mac(rx.index)?;
        nl.set_permanent_neighbour(tx.index, FRAG_GATEWAY, &mac)?;
        Ok(FragPair {
            tx_index: tx.index,
            rx_index: rx.index,
            created,
        })
    })();
    if done.is_err()
        && created
        && let Ok(Some(info)) = nl.link_by_name(FRAG_TX)
    {
        let _ = nl.delete_link(info.index);
    }
    done
}

fn reread_name(nl: &mut Netlink, name: &str) -> Result<DeviceInfo> {
    nl.link_by_name(name)?
        .ok_or_else(|| Error::Device(format!("{name} vanished while being set up")))
}

/// The fragmentation pair's `vdmmx0`, when it exists and belongs to `pins`.
pub fn find_frag_tx(pins: &PinDir) -> Result<Option<DeviceInfo>> {
    let alias = owner_alias(pins);
    Ok(Netlink::open()?
        .link_by_name(FRAG_TX)?
        .filter(|i| i.alias.as_deref() == Some(alias.as_str())))
}

/// Deletes the pair (deleting `vdmmx0` takes `vdmmx1` and the routes into it along) when
/// its alias is `alias`. Returns true when it did.
pub fn remove_frag_pair_owned_by(alias: &str) -> Result<bool> {
    let mut nl = Netlink::open()?;
    match nl.link_by_name(FRAG_TX)? {
        Some(info) if info.alias.as_deref() == Some(alias) => nl.delete_link(info.index),
        _ => Ok(false),
    }
}

impl Netlink {
    /// The hardware address of interface `index`.
    pub fn link_mac(&mut self, index: u32) -> Result<Vec<u8>> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let replies = self
            .request(RouteNetlinkMessage::GetLink(msg), 0)?
            .map_err(|e| Error::Device(format!("cannot read interface {index}: {e}")))?;
        for r in replies {
            if let RouteNetlinkMessage::NewLink(l) = r {
                for a in l.attributes {
                    if let LinkAttribute::Address(mac) = a {
                        return Ok(mac);
                    }
                }
            }
        }
        Err(Error::Device(format!(
            "interface {index} has no hardware address"
        )))
    }

    /// `ip neigh replace ADDR lladdr MAC dev INDEX nud permanent`.
    pub fn set_permanent_neighbour(
        &mut self,
        index: u32,
        addr: std::net::Ipv4Addr,
        mac: &[u8],
    ) -> Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = netlink_packet_route::AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.header.state = NeighbourState::Permanent;
        msg.header.kind = netlink_packet_route::route::RouteType::Unicast;
        msg.attributes = vec![
            NeighbourAttribute::Destination(NeighbourAddress::Inet(addr)),
            NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
        ];
        self.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_ACK | NLM_F_CREATE | netlink_packet_core::NLM_F_REPLACE,
        )?
        .map(drop)
        .map_err(|e| Error::Device(format!("cannot add the neighbour {addr} on {FRAG_TX}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_names_the_pin_directory() {
        let pins = PinDir::new("/nonexistent/vdmm/gw-a");
        let alias = owner_alias(&pins);
        assert_eq!(alias, "vdmm slow path, pins /nonexistent/vdmm/gw-a");
        let mut info = DeviceInfo {
            index: 9,
            kind: Some("dummy".into()),
            mtu: DEVICE_MTU,
            up: true,
            noarp: true,
            alias: Some(alias),
        };
        assert!(info.is_owned_by(&pins));
        assert_eq!(info.owner(), Some("/nonexistent/vdmm/gw-a"));
        assert!(!info.is_owned_by(&PinDir::new("/nonexistent/vdmm/gw-b")));
        assert!(check_ours(&info, &PinDir::new("/nonexistent/vdmm/gw-b")).is_err());
        info.alias = None;
        assert_eq!(info.owner(), None);
        let e = check_ours(&info, &pins).unwrap_err().to_string();
        assert!(e.contains("did not create"), "{e}");
    }

    #[test]
    fn messages_name_kind_mtu_and_alias() {
        let m = create_message(InfoKind::Dummy);
        assert!(
            m.attributes
                .contains(&LinkAttribute::IfName("vdmm0".into()))
        );
        assert!(m.attributes.contains(&LinkAttribute::Mtu(65535)));
        assert!(
            m.attributes
                .contains(&LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                    InfoKind::Dummy
                )]))
        );
        let m = mark_message(4, "vdmm slow path, pins /x");
        assert_eq!(m.header.index, 4);
        assert_eq!(
            device_info(&m).alias.as_deref(),
            Some("vdmm slow path, pins /x")
        );
    }

    #[test]
    fn forwarding_prints_both_families() {
        let f = Forwarding {
            v4: Some(true),
            v6: None,
        };
        assert_eq!(f.to_string(), "forwarding IPv4 on, IPv6 unknown");
        assert!(!f.both());
    }
}
