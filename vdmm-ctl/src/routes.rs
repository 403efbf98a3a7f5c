//! Kernel routes for the slow path, over rtnetlink (synchronous; no `ip` is run).
//!
//! The XDP program hands the kernel the packets it cannot finish: IPv4 without DF that must
//! be fragmented, and packets whose next hop has no neighbour entry yet. The kernel routes
//! them along a route for the binding's home prefix into `vdmm0` (see [`crate::device`])
//! with the MTU reduced by the tunnel overhead, fragmenting them to that MTU (or answering
//! "fragmentation needed" / "packet too big"); `vdmm_tc_egress` on `vdmm0`'s egress adds
//! the outer header and sends the tunnel packet toward the locator with
//! `bpf_redirect_neigh`, which resolves the neighbour. Traffic the gateway originates
//! toward the home prefix takes the same route. So `binding add` installs, per binding,
//! what `ip route replace HOME dev vdmm0 mtu MTU proto 118` would:
//!
//! - MTU is the MTU of the interface the kernel routes the locator through
//!   (`RTM_GETROUTE`, as `ip route get LOCATOR`) less 20 (IPv4 locator) or 40 (IPv6
//!   locator), fixed when the binding is made;
//! - no next hop: a route into a NOARP device works for all four tunnel kinds, including
//!   an IPv6 home over an IPv4 locator (Linux refuses an IPv6 route via an IPv4 next hop);
//! - the route is in the main table with protocol [`RTPROT_VDMM`], which marks it as
//!   vdmm's: `binding del` and `reset` remove only routes with that protocol.
//!
//! The netlink socket is opened in the network namespace of the calling thread, so routes
//! land where `vdmm-ctl` runs (`--netns NAME` or `ip netns exec`).

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::{LinkAttribute, LinkMessage},
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
        RouteScope, RouteType, RouteVia,
    },
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::{
    addr::{Family, Prefix},
    device::DEVICE,
    error::{Error, Result},
    maps::{BindingEntry, Dataplane, resolve_source},
};

/// The routing protocol number (`rtm_protocol`) of vdmm's routes: 118 (0x76, ASCII `v`),
/// unassigned in iproute2's `rt_protos`. `ip route show proto 118` lists them; add
/// `118 vdmm` to `/etc/iproute2/rt_protos.d/vdmm.conf` to see the name instead.
pub const RTPROT_VDMM: u8 = 0x76;

/// Bytes an outer header of `outer` adds.
pub const fn overhead(outer: Family) -> u32 {
    match outer {
        Family::V4 => 20,
        Family::V6 => 40,
    }
}

/// MTU of the slow-path route: the egress link's MTU less the tunnel overhead.
pub fn route_mtu(link_mtu: u32, outer: Family) -> u32 {
    link_mtu.saturating_sub(overhead(outer))
}

/// The route `binding add` installs for one binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlowPathRoute {
    /// The binding's home prefix (the route's destination).
    pub home: Prefix,
    /// The route's device: `vdmm0`'s index.
    pub oif: u32,
    /// Its name, for messages.
    pub dev: String,
    /// Route MTU: the MTU of the locator's egress interface less the tunnel overhead.
    pub mtu: u32,
    /// The interface the kernel routes the locator through, and its MTU (for messages).
    pub egress: String,
    pub egress_mtu: u32,
}

impl fmt::Display for SlowPathRoute {
    /// The route as `ip route` writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} dev {} mtu {} proto {RTPROT_VDMM}",
            self.home, self.dev, self.mtu
        )
    }
}

/// The kernel's route to a locator, as far as the slow path needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathToLocator {
    pub oif: u32,
    /// Next hop, when the locator is not on-link.
    pub gateway: Option<IpAddr>,
}

/// A route vdmm installed, read back from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledRoute {
    pub home: Prefix,
    /// Next hop (routes made by an older vdmm-ctl; vdmm's routes now have none).
    pub via: Option<IpAddr>,
    pub oif: Option<u32>,
    /// The name of interface `oif` (filled in by [`Netlink::vdmm_routes`]).
    pub dev: Option<String>,
    pub mtu: Option<u32>,
}

/// An error the kernel answered a netlink request with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetlinkError {
    /// Positive errno.
    pub errno: i32,
    /// The kernel's extended-ack message, if it gave one.
    pub message: Option<String>,
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let os = std::io::Error::from_raw_os_error(self.errno);
        match &self.message {
            Some(m) => write!(f, "{m} ({os})"),
            None => write!(f, "{os}"),
        }
    }
}

impl std::error::Error for NetlinkError {}

/// A synchronous rtnetlink socket in the calling thread's network namespace.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

fn io_err(context: &str, e: std::io::Error) -> Error {
    Error::io(format!("netlink: {context}"), e)
}

/// A request socket talking to the kernel (bound, connected, extended ACKs asked for):
/// shared by [`Netlink`] and the agent's route batches.
pub(crate) fn open_socket() -> Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| io_err("cannot open a socket", e))?;
    socket
        .bind_auto()
        .map_err(|e| io_err("cannot bind the socket", e))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| io_err("cannot connect the socket", e))?;
    // Best effort: error strings from the kernel, and short error replies.
    let _ = socket.set_ext_ack(true);
    let _ = socket.set_cap_ack(true);
    Ok(socket)
}

impl Netlink {
    pub fn open() -> Result<Self> {
        Ok(Self {
            socket: open_socket()?,
            seq: 0,
        })
    }

    /// Sends one request and collects the replies: until the ACK (`NLM_F_ACK`), until
    /// `NLMSG_DONE` (`NLM_F_DUMP`), or the first reply otherwise.
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<std::result::Result<Vec<RouteNetlinkMessage>, NetlinkError>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|e| io_err("cannot send", e))?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self
                .socket
                .recv_from_full()
                .map_err(|e| io_err("cannot receive", e))?;
            let mut off = 0;
            while off + 16 <= data.len() {
                let len = u32::from_ne_bytes(data[off..off + 4].try_into().unwrap()) as usize;
                if len < 16 || off + len > data.len() {
                    break;
                }
                let chunk = &data[off..off + len];
                off += (len + 3) & !3;
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(chunk)
                    .map_err(|e| Error::Conflict(format!("netlink: cannot parse a reply: {e}")))?;
                if reply.header.sequence_number != seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if flags & (NLM_F_ACK | NLM_F_DUMP) == 0 {
                            return Ok(Ok(out));
                        }
                    }
                    NetlinkPayload::Error(e) => {
                        return Ok(match e.code {
                            None => Ok(out),
                            Some(code) => Err(NetlinkError {
                                errno: -code.get(),
                                message: ext_ack_message(&e.header),
                            }),
                        });
                    }
                    NetlinkPayload::Done(_) => return Ok(Ok(out)),
                    _ => {}
                }
            }
        }
    }

    /// The kernel's route to `locator` (what `ip route get LOCATOR` shows).
    pub fn path_to(&mut self, locator: IpAddr) -> Result<PathToLocator> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(Family::of(&locator));
        msg.header.destination_prefix_length = Family::of(&locator).bits();
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(locator)));
        let no_route = |detail: String| Error::NoRouteToLocator { locator, detail };
        let replies = self
            .request(RouteNetlinkMessage::GetRoute(msg), 0)?
            .map_err(|e| no_route(e.to_string()))?;
        let Some(RouteNetlinkMessage::NewRoute(r)) = replies.into_iter().next() else {
            return Err(no_route("the kernel sent no route".into()));
        };
        match r.header.kind {
            RouteType::Unicast => {}
            RouteType::Local => {
                return Err(no_route("it is an address of this host".into()));
            }
            other => return Err(no_route(format!("the route to it is of type {other:?}"))),
        }
        let mut oif = None;
        let mut gateway = None;
        for a in &r.attributes {
            match a {
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some((*g).into()),
                RouteAttribute::Gateway(RouteAddress::Inet6(g)) => gateway = Some((*g).into()),
                RouteAttribute::Via(RouteVia::Inet(g)) => gateway = Some((*g).into()),
                RouteAttribute::Via(RouteVia::Inet6(g)) => gateway = Some((*g).into()),
                _ => {}
            }
        }
        let oif = oif.ok_or_else(|| no_route("the route to it names no interface".into()))?;
        Ok(PathToLocator { oif, gateway })
    }

    /// Name and MTU of interface `index`.
    pub fn link(&mut self, index: u32) -> Result<(String, u32)> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let replies = self
            .request(RouteNetlinkMessage::GetLink(msg), 0)?
            .map_err(|e| Error::Conflict(format!("cannot read interface {index}: {e}")))?;
        let Some(RouteNetlinkMessage::NewLink(l)) = replies.into_iter().next() else {
            return Err(Error::Conflict(format!(
                "cannot read interface {index}: no answer"
            )));
        };
        let mut name = format!("if{index}");
        let mut mtu = None;
        for a in l.attributes {
            match a {
                LinkAttribute::IfName(n) => name = n,
                LinkAttribute::Mtu(m) => mtu = Some(m),
                _ => {}
            }
        }
        let mtu = mtu.ok_or_else(|| Error::Conflict(format!("interface {name} has no MTU")))?;
        Ok((name, mtu))
    }

    /// The route for a binding of `home` to `locator`: into `vdmm0`, with the MTU of the
    /// interface the kernel routes the locator through less the tunnel overhead.
    pub fn plan(&mut self, home: Prefix, locator: IpAddr) -> Result<SlowPathRoute> {
        let slow = self
            .link_by_name(DEVICE)?
            .ok_or(Error::NoSlowPathDevice(DEVICE))?;
        let path = self.path_to(locator)?;
        if path.oif == slow.index {
            return Err(Error::NoRouteToLocator {
                locator,
                detail: format!(
                    "the kernel routes it into {DEVICE}, the slow path itself (is it inside \
                     a bound home prefix?)"
                ),
            });
        }
        let (egress, egress_mtu) = self.link(path.oif)?;
        Ok(SlowPathRoute {
            home,
            oif: slow.index,
            dev: DEVICE.to_string(),
            mtu: route_mtu(egress_mtu, Family::of(&locator)),
            egress,
            egress_mtu,
        })
    }

    /// Installs (or replaces) `route`.
    pub fn install(&mut self, route: &SlowPathRoute) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(route_message(route)),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )?
        .map(drop)
        .map_err(|e| Error::RouteInstall {
            route: route.to_string(),
            detail: e.to_string(),
        })
    }

    /// Removes vdmm's route for exactly `home` (main table, protocol [`RTPROT_VDMM`]).
    /// Returns false when there was none.
    pub fn remove(&mut self, home: Prefix) -> Result<bool> {
        let mut msg = RouteMessage::default();
        msg.header = vdmm_header(home);
        msg.header.scope = RouteScope::NoWhere;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(home.addr())));
        match self.request(RouteNetlinkMessage::DelRoute(msg), NLM_F_ACK)? {
            Ok(_) => Ok(true),
            Err(e) if e.errno == libc::ESRCH || e.errno == libc::ENOENT => Ok(false),
            Err(e) => Err(Error::RouteRemove {
                home,
                detail: e.to_string(),
            }),
        }
    }

    /// Every route with protocol [`RTPROT_VDMM`] in the main table, IPv4 first, with the
    /// names of their interfaces.
    pub fn vdmm_routes(&mut self) -> Result<Vec<InstalledRoute>> {
        let mut out = Vec::new();
        for f in [Family::V4, Family::V6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family(f);
            let replies = self
                .request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?
                .map_err(|e| Error::Conflict(format!("cannot list the routes: {e}")))?;
            for r in replies {
                if let RouteNetlinkMessage::NewRoute(r) = r
                    && let Some(route) = installed(&r)
                {
                    out.push(route);
                }
            }
        }
        let mut names: Vec<(u32, Option<String>)> = Vec::new();
        for r in &mut out {
            let Some(oif) = r.oif else { continue };
            let name = match names.iter().find(|(i, _)| *i == oif) {
                Some((_, n)) => n.clone(),
                None => {
                    let n = self.link(oif).ok().map(|(n, _)| n);
                    names.push((oif, n.clone()));
                    n
                }
            };
            r.dev = name;
        }
        Ok(out)
    }
}

/// What became of a binding's kernel route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteOutcome {
    /// Installed (or replaced) this route.
    Installed(SlowPathRoute),
    /// `--no-route`: none installed (a route of a replaced binding was removed).
    Skipped,
}

/// A binding made by [`bind`], with its route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindOutcome {
    pub binding: BindingEntry,
    pub route: RouteOutcome,
}

/// Binds `home` to `locator` (see [`Dataplane::add_binding`]) and installs its slow-path
/// route unless `with_route` is false. Everything that can be checked is checked before
/// anything changes; if the kernel then refuses the route, the binding map is put back as
/// it was.
pub fn bind(
    dp: &mut Dataplane,
    home: Prefix,
    locator: IpAddr,
    source: Option<IpAddr>,
    replace: bool,
    with_route: bool,
) -> Result<BindOutcome> {
    resolve_source(&dp.endpoints()?, locator, source)?;
    if !replace && let Some(b) = dp.binding(&home)? {
        return Err(Error::BindingExists {
            prefix: home,
            locator: b.locator,
        });
    }
    let mut nl = Netlink::open()?;
    let plan = if with_route {
        Some(nl.plan(home, locator)?)
    } else {
        None
    };
    bind_with_plan(dp, &mut nl, home, locator, source, replace, plan)
}

/// [`bind`] with the route decided by the caller (`None`: no route), so a test can hand
/// it a route the kernel refuses.
pub fn bind_with_plan(
    dp: &mut Dataplane,
    nl: &mut Netlink,
    home: Prefix,
    locator: IpAddr,
    source: Option<IpAddr>,
    replace: bool,
    plan: Option<SlowPathRoute>,
) -> Result<BindOutcome> {
    let previous = dp.binding(&home)?;
    let binding = dp.add_binding(home, locator, source, replace)?;
    let route = match plan {
        Some(route) => {
            if let Err(e) = nl.install(&route) {
                let undo = match previous {
                    Some(p) => dp
                        .add_binding(home, p.locator, Some(p.source), true)
                        .map(drop),
                    None => dp.del_binding(home),
                };
                return Err(match (e, undo) {
                    (e, Ok(())) => e,
                    (Error::RouteInstall { route, detail }, Err(u)) => Error::RouteInstall {
                        route,
                        detail: format!("{detail}; putting the binding back failed too: {u}"),
                    },
                    (e, Err(_)) => e,
                });
            }
            RouteOutcome::Installed(route)
        }
        None => {
            // A replaced binding's route was made for the old locator: take it away.
            if previous.is_some() {
                nl.remove(home)?;
            }
            RouteOutcome::Skipped
        }
    };
    Ok(BindOutcome { binding, route })
}

/// Removes the binding for exactly `home` and vdmm's route for it (if any; a binding made
/// with `--no-route` has none). The route goes first, so a refusal changes nothing.
/// Returns whether a route was removed.
pub fn unbind(dp: &mut Dataplane, home: Prefix) -> Result<bool> {
    if dp.binding(&home)?.is_none() {
        return Err(Error::NoSuchBinding(home));
    }
    let removed = Netlink::open()?.remove(home)?;
    dp.del_binding(home)?;
    Ok(removed)
}

/// Removes vdmm's routes for every binding in `dp` (as `reset` does before it drops the
/// maps). Returns the home prefixes whose route was removed.
pub fn remove_all(dp: &Dataplane) -> Result<Vec<Prefix>> {
    let bindings = dp.bindings()?;
    if bindings.is_empty() {
        return Ok(Vec::new());
    }
    let mut nl = Netlink::open()?;
    let mut out = Vec::new();
    for b in bindings {
        if nl.remove(b.home)? {
            out.push(b.home);
        }
    }
    Ok(out)
}

fn family(f: Family) -> AddressFamily {
    match f {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    }
}

fn vdmm_header(home: Prefix) -> RouteHeader {
    RouteHeader {
        address_family: family(home.family()),
        destination_prefix_length: home.prefix_len(),
        table: RouteHeader::RT_TABLE_MAIN,
        protocol: RouteProtocol::Other(RTPROT_VDMM),
        ..Default::default()
    }
}

/// The `RTM_NEWROUTE` body for `route` (pure, so unit tested): a device route (scope
/// link, no next hop), as `ip route` makes one.
pub fn route_message(route: &SlowPathRoute) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header = vdmm_header(route.home);
    msg.header.scope = RouteScope::Link;
    msg.header.kind = RouteType::Unicast;
    msg.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(
            route.home.addr(),
        )));
    msg.attributes.push(RouteAttribute::Oif(route.oif));
    msg.attributes
        .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(route.mtu)]));
    msg
}

// ----- the translator's fragmentation routes (see `crate::device`, `vdmmx0`) -----

/// MTU of a fragmentation route for a lowest IPv6 MTU: IPv4 fragments of this size
/// become IPv6 fragments of exactly the lowest IPv6 MTU.
pub fn frag_route_mtu(lowest_ipv6_mtu: u32) -> u32 {
    lowest_ipv6_mtu.saturating_sub(crate::device::FRAG_OVERHEAD)
}

/// The `RTM_NEWROUTE` body of a fragmentation route (pure, so unit tested): what
/// `ip route replace PREFIX4 via 169.254.118.1 dev vdmmx0 onlink mtu MTU proto 118`
/// makes.
pub fn frag_route_message(prefix: Prefix, oif: u32, mtu: u32) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header = vdmm_header(prefix);
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    msg.header.flags = netlink_packet_route::route::RouteFlags::Onlink;
    msg.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(
            prefix.addr(),
        )));
    msg.attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(
            crate::device::FRAG_GATEWAY,
        )));
    msg.attributes.push(RouteAttribute::Oif(oif));
    msg.attributes
        .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu)]));
    msg
}

/// The fragmentation route for `prefix` as `ip route` prints it.
pub fn frag_route_display(prefix: Prefix, mtu: u32) -> String {
    format!(
        "{prefix} via {} dev {} onlink mtu {mtu} proto {RTPROT_VDMM}",
        crate::device::FRAG_GATEWAY,
        crate::device::FRAG_TX
    )
}

impl Netlink {
    /// Installs (or replaces) the fragmentation route for the IPv4 `prefix` into `oif`
    /// (`vdmmx0`).
    pub fn install_frag_route(&mut self, prefix: Prefix, oif: u32, mtu: u32) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(frag_route_message(prefix, oif, mtu)),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )?
        .map(drop)
        .map_err(|e| Error::RouteInstall {
            route: frag_route_display(prefix, mtu),
            detail: e.to_string(),
        })
    }

    /// Removes vdmm's route for exactly `prefix` through `oif`; false when there was none.
    pub fn remove_frag_route(&mut self, prefix: Prefix, oif: u32) -> Result<bool> {
        let mut msg = RouteMessage::default();
        msg.header = vdmm_header(prefix);
        msg.header.scope = RouteScope::NoWhere;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(
                prefix.addr(),
            )));
        msg.attributes.push(RouteAttribute::Oif(oif));
        match self.request(RouteNetlinkMessage::DelRoute(msg), NLM_F_ACK)? {
            Ok(_) => Ok(true),
            Err(e) if e.errno == libc::ESRCH || e.errno == libc::ENOENT => Ok(false),
            Err(e) => Err(Error::RouteRemove {
                home: prefix,
                detail: e.to_string(),
            }),
        }
    }
}

/// Installs the fragmentation route for the IPv4 `prefix` (MTU from the lowest IPv6 MTU
/// `lowest`) when the pair of `pins` exists; returns the route as `ip route` prints it,
/// None without a pair (data plane never loaded on an interface).
pub fn frag_route_add(
    pins: &crate::pin::PinDir,
    prefix: Prefix,
    lowest: u32,
) -> Result<Option<String>> {
    if prefix.family() != Family::V4 {
        return Err(Error::Conflict(format!(
            "{prefix} is not an IPv4 prefix (the fragmentation slow path routes IPv4)"
        )));
    }
    let Some(tx) = crate::device::find_frag_tx(pins)? else {
        return Ok(None);
    };
    let mtu = frag_route_mtu(lowest);
    Netlink::open()?.install_frag_route(prefix, tx.index, mtu)?;
    Ok(Some(frag_route_display(prefix, mtu)))
}

/// Removes the fragmentation route for `prefix`; false when there was none.
pub fn frag_route_del(pins: &crate::pin::PinDir, prefix: Prefix) -> Result<bool> {
    let Some(tx) = crate::device::find_frag_tx(pins)? else {
        return Ok(false);
    };
    Netlink::open()?.remove_frag_route(prefix, tx.index)
}

/// Re-installs every fragmentation route with the MTU for the lowest IPv6 MTU `lowest`
/// (after `natpt mtu set|clear`).
pub fn frag_routes_set_mtu(pins: &crate::pin::PinDir, lowest: u32) -> Result<()> {
    let Some(tx) = crate::device::find_frag_tx(pins)? else {
        return Ok(());
    };
    let mut nl = Netlink::open()?;
    for r in nl.vdmm_routes()? {
        if r.oif == Some(tx.index) {
            nl.install_frag_route(r.home, tx.index, frag_route_mtu(lowest))?;
        }
    }
    Ok(())
}

/// A vdmm route from a dumped route message (None for other routes).
fn installed(r: &RouteMessage) -> Option<InstalledRoute> {
    if r.header.protocol != RouteProtocol::Other(RTPROT_VDMM) {
        return None;
    }
    let mut dst: Option<IpAddr> = None;
    let mut via = None;
    let mut oif = None;
    let mut mtu = None;
    let mut table = r.header.table as u32;
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = Some((*d).into()),
            RouteAttribute::Destination(RouteAddress::Inet6(d)) => dst = Some((*d).into()),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => via = Some((*g).into()),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => via = Some((*g).into()),
            RouteAttribute::Via(RouteVia::Inet(g)) => via = Some((*g).into()),
            RouteAttribute::Via(RouteVia::Inet6(g)) => via = Some((*g).into()),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Metrics(ms) => {
                for m in ms {
                    if let RouteMetric::Mtu(v) = m {
                        mtu = Some(*v);
                    }
                }
            }
            _ => {}
        }
    }
    if table != RouteHeader::RT_TABLE_MAIN as u32 {
        return None;
    }
    let dst = dst.unwrap_or(match r.header.address_family {
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    });
    let home = Prefix::new(dst, r.header.destination_prefix_length as u32).ok()?;
    Some(InstalledRoute {
        home,
        via,
        oif,
        dev: None,
        mtu,
    })
}

/// The `NLMSGERR_ATTR_MSG` string of an extended ACK: `payload` is what follows the
/// error code (the request's 16-byte header, as `NETLINK_CAP_ACK` trims it, then TLVs).
pub fn ext_ack_message(payload: &[u8]) -> Option<String> {
    const NLMSGERR_ATTR_MSG: u16 = 1;
    let mut off = 16;
    while off + 4 <= payload.len() {
        let len = u16::from_ne_bytes([payload[off], payload[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([payload[off + 2], payload[off + 3]]) & 0x3fff;
        if len < 4 || off + len > payload.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let v = &payload[off + 4..off + len];
            let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
            let s = String::from_utf8_lossy(&v[..end]).trim().to_string();
            return (!s.is_empty()).then_some(s);
        }
        off += (len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(home: &str, mtu: u32) -> SlowPathRoute {
        SlowPathRoute {
            home: home.parse().unwrap(),
            oif: 7,
            dev: "vdmm0".into(),
            mtu,
            egress: "ul".into(),
            egress_mtu: 1500,
        }
    }

    #[test]
    fn mtu_is_the_link_mtu_less_the_outer_header() {
        assert_eq!(route_mtu(1500, Family::V4), 1480);
        assert_eq!(route_mtu(1500, Family::V6), 1460);
        assert_eq!(route_mtu(9000, Family::V6), 8960);
        assert_eq!(route_mtu(10, Family::V6), 0);
    }

    #[test]
    fn routes_print_like_ip_route() {
        assert_eq!(
            route("10.2.0.0/24", 1480).to_string(),
            "10.2.0.0/24 dev vdmm0 mtu 1480 proto 118"
        );
        assert_eq!(
            route("2001:db8:2::/64", 1480).to_string(),
            "2001:db8:2::/64 dev vdmm0 mtu 1480 proto 118"
        );
    }

    #[test]
    fn routes_are_device_routes_without_a_next_hop() {
        for (home, family, len) in [
            ("10.2.0.0/24", AddressFamily::Inet, 24),
            ("2001:db8:2::/64", AddressFamily::Inet6, 64),
        ] {
            let m = route_message(&route(home, 1460));
            assert_eq!(m.header.address_family, family);
            assert_eq!(m.header.destination_prefix_length, len);
            assert_eq!(m.header.protocol, RouteProtocol::Other(RTPROT_VDMM));
            assert_eq!(m.header.table, RouteHeader::RT_TABLE_MAIN);
            assert_eq!(m.header.scope, RouteScope::Link);
            assert!(m.attributes.contains(&RouteAttribute::Oif(7)));
            assert!(
                m.attributes
                    .contains(&RouteAttribute::Metrics(vec![RouteMetric::Mtu(1460)]))
            );
            assert!(
                !m.attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Via(_)))
            );
            // Read back as vdmm's own route.
            let r = installed(&m).unwrap();
            assert_eq!(r.home, home.parse().unwrap());
            assert_eq!((r.oif, r.mtu, r.via), (Some(7), Some(1460), None));
            let mut other = m.clone();
            other.header.protocol = RouteProtocol::Static;
            assert_eq!(installed(&other), None);
        }
    }

    #[test]
    fn extended_ack_message_is_found() {
        let mut p = vec![0u8; 16];
        let msg = b"Nexthop has invalid gateway\0";
        let len = (4 + msg.len()) as u16;
        p.extend_from_slice(&len.to_ne_bytes());
        p.extend_from_slice(&1u16.to_ne_bytes());
        p.extend_from_slice(msg);
        assert_eq!(
            ext_ack_message(&p).as_deref(),
            Some("Nexthop has invalid gateway")
        );
        assert_eq!(ext_ack_message(&[0; 16]), None);
        assert_eq!(ext_ack_message(&[]), None);
        let e = NetlinkError {
            errno: libc::ENETUNREACH,
            message: None,
        };
        assert!(e.to_string().contains("unreachable"), "{e}");
    }
}
