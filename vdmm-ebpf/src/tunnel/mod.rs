//! IP-in-IP tunnels of all four kinds (RFC 2003 IPv4-in-IPv4, RFC 4213 IPv6-in-IPv4,
//! RFC 2473 IPv4-in-IPv6 and IPv6-in-IPv6): `decap` strips the outer header of packets
//! from peers, `encap` adds one toward a binding's locator, `ecn` holds RFC 6040's rules,
//! `addresses` says which addresses are local endpoints and peers.

pub mod addresses;
pub mod decap;
pub mod ecn;
pub mod encap;

use crate::headers::{Ipv4, Ipv6};

/// The packet that is (or will be) carried inside a tunnel.
#[derive(Clone, Copy)]
pub enum Inner {
    V4(Ipv4),
    V6(Ipv6),
}

impl Inner {
    #[inline(always)]
    pub fn is_v6(&self) -> bool {
        matches!(self, Inner::V6(_))
    }

    /// TTL or hop limit.
    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        match self {
            Inner::V4(ip) => ip.ttl(),
            Inner::V6(ip) => ip.hop_limit(),
        }
    }

    /// Decrements TTL / hop limit (IPv4 checksum patched).
    #[inline(always)]
    pub fn decrement_hop_limit(&self) {
        match self {
            Inner::V4(ip) => ip.decrement_ttl(),
            Inner::V6(ip) => ip.decrement_hop_limit(),
        }
    }

    /// IPv4 TOS or IPv6 traffic class (DSCP << 2 | ECN).
    #[inline(always)]
    pub fn traffic_class(&self) -> u8 {
        match self {
            Inner::V4(ip) => ip.tos(),
            Inner::V6(ip) => ip.traffic_class(),
        }
    }

    /// Replaces the traffic class (IPv4 checksum patched).
    #[inline(always)]
    pub fn set_traffic_class(&self, tc: u8) {
        match self {
            Inner::V4(ip) => {
                let old = ((ip.version_ihl() as u16) << 8) | ip.tos() as u16;
                ip.set_tos(tc);
                let new = ((ip.version_ihl() as u16) << 8) | tc as u16;
                crate::checksum::replace16(ip.checksum_ptr(), old, new);
            }
            Inner::V6(ip) => ip.set_traffic_class(tc),
        }
    }
}
