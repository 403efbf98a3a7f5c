//! Make-before-break handover of a client's vAP from one AP host to another.
//!
//! [`mover::Mover`] is the state machine: prepare the target (the same vAP, same vAP MAC
//! and addresses, installed on the target AP host), switch the anchor's bindings of the
//! client's home addresses to the target's locator, put the source's vAP in forward mode
//! (anything still arriving there is tunnelled to the target) for a grace period, then
//! remove the source's state. A failure before the source is removed rolls every step
//! back, so the client stays reachable on the source.
//!
//! The machine talks to AP hosts and anchors only through the traits of [`nodes`] and
//! reads time through [`clock::Clock`], so it is tested with fakes; [`netns_nodes`] holds
//! the real implementations over the pinned maps of nodes that share this machine (one
//! network namespace and pin directory each, as described by [`crate::cluster`]), and
//! [`agent_nodes`] those of nodes whose agent manages their maps (changes go through its
//! API, so its reconciles keep a move); [`follow`] the waits for nodes whose agent keeps
//! vAPs as shared locations in etcd (a move is one write there, the nodes follow it).
//! [`inflight`] refuses a second move of a client whose move runs; [`stats`] counts the
//! outcomes and persists them for the Prometheus exporter.

pub mod agent_nodes;
pub mod clock;
pub mod follow;
pub mod inflight;
pub mod mover;
pub mod netns_nodes;
pub mod nodes;
pub mod stats;

#[cfg(test)]
pub(crate) mod fakes;
#[cfg(test)]
mod mover_tests;

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use crate::addr::Prefix;

/// A client's MAC address: the key of its vAP on every AP host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientMac(pub [u8; 6]);

impl fmt::Display for ClientMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// What a vAP is, independent of the AP host it is on: what the target must install so
/// the client notices nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VapRecord {
    pub client: ClientMac,
    /// The vAP's own MAC, the client's gateway MAC.
    pub vap_mac: [u8; 6],
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// Locator of the client's home anchor (where its traffic is tunnelled).
    pub anchor: IpAddr,
}

impl VapRecord {
    /// The client's home addresses as host prefixes: the anchor's bindings to switch.
    pub fn homes(&self) -> Vec<Prefix> {
        let mut v = Vec::new();
        if let Some(a) = self.ipv4 {
            v.push(Prefix::new(a.into(), 32).expect("a /32 is valid"));
        }
        if let Some(a) = self.ipv6 {
            v.push(Prefix::new(a.into(), 128).expect("a /128 is valid"));
        }
        v
    }
}

/// What an AP host does with a vAP's traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VapMode {
    /// Deliver to the client on this host, send its traffic toward the anchor.
    Serve,
    /// Tunnel what arrives for the client to another AP host's locator (after a move).
    Forward(IpAddr),
}

/// The phases of a move, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Install the vAP on the target AP host.
    Prepare,
    /// Point the anchor's bindings at the target's locator.
    SwitchAnchor,
    /// Put the source's vAP in forward mode toward the target.
    ForwardSource,
    /// After the grace period, remove the vAP from the source.
    RemoveSource,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Prepare,
        Phase::SwitchAnchor,
        Phase::ForwardSource,
        Phase::RemoveSource,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare_target",
            Phase::SwitchAnchor => "switch_anchor",
            Phase::ForwardSource => "forward_source",
            Phase::RemoveSource => "remove_source",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
