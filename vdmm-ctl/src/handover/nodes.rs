//! The two kinds of node a move changes, as the mover needs them: AP hosts (which hold
//! vAPs) and anchors (which hold the bindings of the clients' home addresses). The real
//! implementations are in [`super::netns_nodes`]; the tests use fakes.

use std::{net::IpAddr, time::Duration};

use super::{ClientMac, VapMode, VapRecord};
use crate::addr::Prefix;

/// A node's failure, as one line naming the node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{node}: {message}")]
pub struct NodeError {
    pub node: String,
    pub message: String,
}

impl NodeError {
    pub fn new(node: &str, message: impl std::fmt::Display) -> Self {
        Self {
            node: node.to_string(),
            message: message.to_string(),
        }
    }
}

pub type NodeResult<T> = Result<T, NodeError>;

/// An AP host: where clients attach and their vAPs live.
pub trait ApHost: Send + Sync {
    /// The host's name in the cluster (`ap1`).
    fn name(&self) -> &str;
    /// The host's tunnel endpoint, the locator anchors bind its clients to.
    fn locator(&self) -> IpAddr;
    /// The client's vAP on this host and its mode, if the host has one.
    fn vap(&self, client: ClientMac) -> NodeResult<Option<(VapRecord, VapMode)>>;
    /// Installs `vap` in [`VapMode::Serve`] (replacing what the host had for the client).
    fn install(&self, vap: &VapRecord) -> NodeResult<()>;
    /// Changes the mode of the client's vAP.
    fn set_mode(&self, client: ClientMac, mode: VapMode) -> NodeResult<()>;
    /// Removes the client's vAP; removing one that is not there is not an error.
    fn remove(&self, client: ClientMac) -> NodeResult<()>;
    /// Resolves the host's neighbour entry for the next hop toward `addr` (waiting until
    /// it is usable), so its first packets there take the data plane's fast path.
    fn resolve_neighbour(&self, addr: IpAddr) -> NodeResult<()>;
    /// `Some(grace)` when the host's vAPs follow a shared location record (its agent
    /// runs on etcd): [`ApHost::install`] moves the vAP's location here, and the anchor
    /// and the host the vAP left follow by themselves (the latter forwarding for
    /// `grace`, then removing it); [`ApHost::set_mode`] to forward, [`ApHost::remove`]
    /// and [`Anchor::bind`] then wait until they did instead of making the change.
    fn follows_location(&self) -> NodeResult<Option<Duration>> {
        Ok(None)
    }
}

/// A mobility anchor: owns home prefixes, binds home addresses to locators.
pub trait Anchor: Send + Sync {
    fn name(&self) -> &str;
    /// The anchor's tunnel endpoint (what vAPs name as their anchor).
    fn locator(&self) -> IpAddr;
    /// The locator `home` is bound to now, if any.
    fn binding(&self, home: Prefix) -> NodeResult<Option<IpAddr>>;
    /// Binds `home` to `locator`, replacing the binding it had.
    fn bind(&self, home: Prefix, locator: IpAddr) -> NodeResult<()>;
    /// Resolves the anchor's neighbour entry for the next hop toward `locator` (waiting
    /// until it is usable): a cold entry would hold the first packets after a switch in
    /// the kernel's slow path while ARP / neighbour discovery runs.
    fn resolve_neighbour(&self, locator: IpAddr) -> NodeResult<()>;
}
