//! What the agent asks of and hears from the kernel over rtnetlink, beyond the one-off
//! requests of [`crate::routes`]:
//!
//! - the addresses of interfaces (`endpoints.from_interfaces`): global unicast addresses
//!   that are not tentative or failed duplicate address detection;
//! - many slow-path routes at once: requests are written back to back and their ACKs read
//!   afterwards, so a batch of bindings costs one system call per few hundred routes
//!   instead of a round trip each;
//! - [`Events`]: a socket subscribed to link and address changes, which the daemon reads
//!   in a thread and answers with a reconcile.
//!
//! All sockets are opened in the network namespace of the calling thread.

use std::{collections::BTreeSet, net::IpAddr};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::{
    addr::{Family, Prefix, check_tunnel_addr},
    error::{Error, Result},
    loader::if_index,
    routes::{Netlink, NetlinkError, SlowPathRoute, ext_ack_message, open_socket, route_message},
};

fn io_err(context: &str, e: std::io::Error) -> Error {
    Error::io(format!("netlink: {context}"), e)
}

/// The global unicast addresses of `ifaces` of the given families (interfaces that do not
/// exist contribute nothing). Tentative and duplicate addresses are left out.
pub fn interface_addresses(ifaces: &[String], families: &[Family]) -> Result<BTreeSet<IpAddr>> {
    let indexes: Vec<u32> = ifaces.iter().filter_map(|i| if_index(i).ok()).collect();
    let mut out = BTreeSet::new();
    if indexes.is_empty() {
        return Ok(out);
    }
    let mut nl = Netlink::open()?;
    let replies = nl
        .request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?
        .map_err(|e| Error::Conflict(format!("cannot list the addresses: {e}")))?;
    for r in replies {
        let RouteNetlinkMessage::NewAddress(a) = r else {
            continue;
        };
        if let Some(addr) = usable_address(&a)
            && indexes.contains(&a.header.index)
            && families.contains(&Family::of(&addr))
        {
            out.insert(addr);
        }
    }
    Ok(out)
}

/// The address of an address message when it can be a tunnel endpoint: scope global, not
/// tentative or failed DAD, unicast.
fn usable_address(a: &AddressMessage) -> Option<IpAddr> {
    if a.header.scope != AddressScope::Universe {
        return None;
    }
    let bad = AddressFlags::Tentative | AddressFlags::Dadfailed;
    let mut flags = AddressFlags::from_bits_retain(a.header.flags.bits() as u32);
    let mut addr = None;
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Flags(f) => flags = *f,
            // IFA_LOCAL is the address itself on point-to-point links; IFA_ADDRESS otherwise.
            AddressAttribute::Local(ip) => addr = Some(*ip),
            AddressAttribute::Address(ip) if addr.is_none() => addr = Some(*ip),
            _ => {}
        }
    }
    if flags.intersects(bad) {
        return None;
    }
    addr.filter(|ip| check_tunnel_addr("endpoint", *ip).is_ok())
}

/// A netlink socket for batches of route requests.
pub struct RouteBatch {
    socket: Socket,
    seq: u32,
}

/// How many requests are written before their ACKs are read (the socket's receive buffer
/// must hold that many error/ACK messages).
const WINDOW: usize = 256;

impl RouteBatch {
    pub fn open() -> Result<Self> {
        Ok(Self {
            socket: open_socket()?,
            seq: 0,
        })
    }

    /// Sends every request and returns the ones the kernel refused, with its error.
    /// `ignore` errnos count as success (e.g. ESRCH when deleting).
    fn run(
        &mut self,
        msgs: Vec<RouteNetlinkMessage>,
        flags: u16,
        ignore: &[i32],
    ) -> Result<Vec<(usize, NetlinkError)>> {
        let mut failed = Vec::new();
        let mut buf = Vec::new();
        for (chunk_no, chunk) in msgs.chunks(WINDOW).enumerate() {
            buf.clear();
            let first_seq = self.seq.wrapping_add(1);
            for m in chunk {
                self.seq = self.seq.wrapping_add(1);
                let mut header = NetlinkHeader::default();
                header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
                header.sequence_number = self.seq;
                let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(m.clone()));
                nl.finalize();
                let start = buf.len();
                buf.resize(start + nl.buffer_len(), 0);
                nl.serialize(&mut buf[start..]);
            }
            self.socket
                .send(&buf, 0)
                .map_err(|e| io_err("cannot send", e))?;
            let mut acked = 0;
            while acked < chunk.len() {
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
                    let part = &data[off..off + len];
                    off += (len + 3) & !3;
                    let reply =
                        NetlinkMessage::<RouteNetlinkMessage>::deserialize(part).map_err(|e| {
                            Error::Conflict(format!("netlink: cannot parse a reply: {e}"))
                        })?;
                    let seq = reply.header.sequence_number;
                    let index = seq.wrapping_sub(first_seq) as usize;
                    if index >= chunk.len() {
                        continue;
                    }
                    if let NetlinkPayload::Error(e) = reply.payload {
                        acked += 1;
                        if let Some(code) = e.code {
                            let errno = -code.get();
                            if !ignore.contains(&errno) {
                                failed.push((
                                    chunk_no * WINDOW + index,
                                    NetlinkError {
                                        errno,
                                        message: ext_ack_message(&e.header),
                                    },
                                ));
                            }
                        }
                    }
                }
            }
        }
        Ok(failed)
    }

    /// Installs (or replaces) every route; the error names the first one refused (the
    /// others were still tried).
    pub fn install(&mut self, routes: &[SlowPathRoute]) -> Result<usize> {
        let msgs = routes
            .iter()
            .map(|r| RouteNetlinkMessage::NewRoute(route_message(r)))
            .collect();
        let failed = self.run(msgs, NLM_F_CREATE | NLM_F_REPLACE, &[])?;
        match failed.first() {
            None => Ok(routes.len()),
            Some((i, e)) => Err(Error::RouteInstall {
                route: routes[*i].to_string(),
                detail: format!("{e} ({} of {} refused)", failed.len(), routes.len()),
            }),
        }
    }

    /// Removes vdmm's routes for these home prefixes through `oif` (missing ones are
    /// fine). Returns how many the kernel refused to remove.
    pub fn remove(&mut self, homes: &[Prefix], oif: u32) -> Result<usize> {
        let msgs = homes
            .iter()
            .map(|h| {
                let mut msg = RouteMessage::default();
                msg.header.address_family = match h.family() {
                    Family::V4 => AddressFamily::Inet,
                    Family::V6 => AddressFamily::Inet6,
                };
                msg.header.destination_prefix_length = h.prefix_len();
                msg.header.table = netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN;
                msg.header.protocol =
                    netlink_packet_route::route::RouteProtocol::Other(crate::routes::RTPROT_VDMM);
                msg.header.scope = RouteScope::NoWhere;
                msg.attributes
                    .push(RouteAttribute::Destination(RouteAddress::from(h.addr())));
                msg.attributes.push(RouteAttribute::Oif(oif));
                RouteNetlinkMessage::DelRoute(msg)
            })
            .collect();
        Ok(self.run(msgs, 0, &[libc::ESRCH, libc::ENOENT])?.len())
    }
}

/// A socket subscribed to link and address changes.
pub struct Events {
    socket: Socket,
}

/// What a netlink notification was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Link,
    Address,
}

impl Events {
    pub fn open() -> Result<Self> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| io_err("cannot open a socket", e))?;
        let groups =
            (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR) as u32;
        socket
            .bind(&SocketAddr::new(0, groups))
            .map_err(|e| io_err("cannot subscribe to link and address changes", e))?;
        Ok(Self { socket })
    }

    /// Blocks until notifications arrive; returns what they were about (an overrun of the
    /// socket's buffer counts as both).
    pub fn wait(&mut self) -> Result<Vec<Event>> {
        let (data, _) = match self.socket.recv_from_full() {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                return Ok(vec![Event::Link, Event::Address]);
            }
            Err(e) => return Err(io_err("cannot receive", e)),
        };
        let mut out = Vec::new();
        let mut off = 0;
        while off + 16 <= data.len() {
            let len = u32::from_ne_bytes(data[off..off + 4].try_into().unwrap()) as usize;
            if len < 16 || off + len > data.len() {
                break;
            }
            let kind = u16::from_ne_bytes([data[off + 4], data[off + 5]]);
            off += (len + 3) & !3;
            let e = match kind {
                libc::RTM_NEWLINK | libc::RTM_DELLINK => Event::Link,
                libc::RTM_NEWADDR | libc::RTM_DELADDR => Event::Address,
                _ => continue,
            };
            if !out.contains(&e) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// [`Events::wait`] without waiting: an error when nothing is queued.
    pub fn try_wait(&mut self) -> Result<Vec<Event>> {
        self.socket
            .set_non_blocking(true)
            .map_err(|e| io_err("cannot set the socket non-blocking", e))?;
        let r = self.wait();
        let _ = self.socket.set_non_blocking(false);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(addr: &str, scope: AddressScope, flags: AddressFlags) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.scope = scope;
        m.attributes
            .push(AddressAttribute::Address(addr.parse().unwrap()));
        m.attributes.push(AddressAttribute::Flags(flags));
        m
    }

    #[test]
    fn only_settled_global_unicast_addresses_are_endpoints() {
        let ok = AddressFlags::Permanent;
        assert_eq!(
            usable_address(&msg("192.0.2.1", AddressScope::Universe, ok)),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            usable_address(&msg("fe80::1", AddressScope::Link, ok)),
            None
        );
        assert_eq!(
            usable_address(&msg("127.0.0.1", AddressScope::Host, ok)),
            None
        );
        assert_eq!(
            usable_address(&msg(
                "2001:db8::1",
                AddressScope::Universe,
                AddressFlags::Tentative
            )),
            None
        );
        assert_eq!(
            usable_address(&msg(
                "2001:db8::1",
                AddressScope::Universe,
                AddressFlags::Dadfailed
            )),
            None
        );
    }
}
