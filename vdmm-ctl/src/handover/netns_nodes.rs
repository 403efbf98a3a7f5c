//! The real AP hosts and anchors of a move, for nodes whose data planes are reachable
//! from this machine: a pin directory (the maps) and, optionally, a network namespace
//! (what needs the node's interfaces or kernel routes runs on a thread that entered it).
//! Built from a [`crate::cluster::Cluster`].

use std::{net::IpAddr, sync::Arc};

use super::{
    ClientMac, VapMode, VapRecord, agent_nodes,
    nodes::{Anchor, ApHost, NodeError, NodeResult},
};
use crate::{
    addr::Prefix,
    cluster::{Cluster, Node},
    error::{Error, Result},
    maps::Dataplane,
    neigh,
    pin::PinDir,
    routes,
    vap::{Mac, VapEntry, VapSpec},
};

/// Runs `f` in `node`'s network namespace (on a scoped thread), or here without one.
fn in_node<T: Send>(node: &Node, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    match &node.netns {
        None => f(),
        Some(ns) => std::thread::scope(|s| {
            s.spawn(|| {
                crate::netns::enter(ns)?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(Error::Conflict("a node thread panicked".into())))
        }),
    }
}

fn node_err(node: &Node) -> impl Fn(Error) -> NodeError + '_ {
    move |e| NodeError::new(&node.name, e)
}

/// An AP host of the cluster.
pub struct NetnsApHost {
    pub node: Node,
}

impl NetnsApHost {
    fn open(&self) -> NodeResult<Dataplane> {
        Dataplane::open(&PinDir::new(&self.node.pin_dir)).map_err(node_err(&self.node))
    }
}

fn record_of(node: &Node, e: &VapEntry) -> NodeResult<(VapRecord, VapMode)> {
    let Some((anchor, _)) = e.anchor else {
        return Err(NodeError::new(
            &node.name,
            format!(
                "the vAP of {} breaks out locally: it has no anchor whose binding could move",
                e.client
            ),
        ));
    };
    let mode = match e.forward {
        Some((locator, _)) => VapMode::Forward(locator),
        None => VapMode::Serve,
    };
    Ok((
        VapRecord {
            client: ClientMac(e.client.0),
            vap_mac: e.vap_mac.0,
            ipv4: e.ipv4,
            ipv6: e.ipv6,
            anchor,
        },
        mode,
    ))
}

impl ApHost for NetnsApHost {
    fn name(&self) -> &str {
        &self.node.name
    }

    fn locator(&self) -> IpAddr {
        self.node.locator
    }

    fn vap(&self, client: ClientMac) -> NodeResult<Option<(VapRecord, VapMode)>> {
        match self.open()?.vap(Mac(client.0)) {
            Ok(e) => record_of(&self.node, &e).map(Some),
            Err(Error::NoSuchVap(_)) => Ok(None),
            Err(e) => Err(node_err(&self.node)(e)),
        }
    }

    fn install(&self, vap: &VapRecord) -> NodeResult<()> {
        let mut dp = self.open()?;
        let spec = VapSpec {
            client: Mac(vap.client.0),
            ipv4: vap.ipv4,
            ipv6: vap.ipv6,
            anchor: Some(vap.anchor),
            vap_mac: Some(Mac(vap.vap_mac)),
            ..VapSpec::default()
        };
        // The client-facing interface's index and MAC are looked up in the host's
        // namespace.
        in_node(&self.node, move || {
            if dp.vap(spec.client).is_ok() {
                dp.del_vap(spec.client)?;
            }
            dp.add_vap(&spec).map(drop)
        })
        .map_err(node_err(&self.node))
    }

    fn set_mode(&self, client: ClientMac, mode: VapMode) -> NodeResult<()> {
        let target = match mode {
            VapMode::Serve => None,
            VapMode::Forward(locator) => Some((locator, None)),
        };
        self.open()?
            .set_forward(Mac(client.0), target)
            .map(drop)
            .map_err(node_err(&self.node))
    }

    fn remove(&self, client: ClientMac) -> NodeResult<()> {
        match self.open()?.del_vap(Mac(client.0)) {
            Ok(_) | Err(Error::NoSuchVap(_)) => Ok(()),
            Err(e) => Err(node_err(&self.node)(e)),
        }
    }

    fn resolve_neighbour(&self, addr: IpAddr) -> NodeResult<()> {
        resolve_in(&self.node, addr)
    }
}

/// Resolves `node`'s neighbour entry toward `addr` in its namespace.
pub(crate) fn resolve_in(node: &Node, addr: IpAddr) -> NodeResult<()> {
    in_node(node, move || {
        neigh::resolve(addr, neigh::DEFAULT_TIMEOUT).map(drop)
    })
    .map_err(node_err(node))
}

/// An anchor of the cluster.
pub struct NetnsAnchor {
    pub node: Node,
}

impl Anchor for NetnsAnchor {
    fn name(&self) -> &str {
        &self.node.name
    }

    fn locator(&self) -> IpAddr {
        self.node.locator
    }

    fn binding(&self, home: Prefix) -> NodeResult<Option<IpAddr>> {
        let dp = Dataplane::open(&PinDir::new(&self.node.pin_dir)).map_err(node_err(&self.node))?;
        Ok(dp
            .binding(&home)
            .map_err(node_err(&self.node))?
            .map(|b| b.locator))
    }

    fn bind(&self, home: Prefix, locator: IpAddr) -> NodeResult<()> {
        let pins = PinDir::new(&self.node.pin_dir);
        // The binding's route into vdmm0 is a kernel route of the anchor's namespace.
        in_node(&self.node, move || {
            let mut dp = Dataplane::open(&pins)?;
            let source = dp
                .binding(&home)?
                .map(|b| b.source)
                .filter(|s| s.is_ipv4() == locator.is_ipv4());
            routes::bind(&mut dp, home, locator, source, true, true).map(drop)
        })
        .map_err(node_err(&self.node))
    }

    fn resolve_neighbour(&self, locator: IpAddr) -> NodeResult<()> {
        resolve_in(&self.node, locator)
    }
}

/// The AP hosts and anchors of a cluster, as [`super::mover::Mover::new`] takes them.
pub type ClusterNodes = (Vec<Arc<dyn ApHost>>, Vec<Arc<dyn Anchor>>);

/// The AP hosts and anchors of `cluster`: through their agents where the cluster file
/// names one ([`super::agent_nodes`]), on their pinned maps otherwise.
pub fn nodes(cluster: &Cluster) -> ClusterNodes {
    (
        cluster.ap_hosts.iter().map(agent_nodes::ap_host).collect(),
        cluster.anchors.iter().map(agent_nodes::anchor).collect(),
    )
}
