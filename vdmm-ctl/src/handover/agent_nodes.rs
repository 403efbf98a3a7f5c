//! AP hosts and anchors whose data plane an agent manages (`agent_socket` in the cluster
//! file): a move changes them through the agent's control API, so every change is in the
//! agent's desired state and store, and its reconciles keep the move instead of undoing
//! it. What the mover only reads (a vAP and its mode, a binding) is read from the node's
//! pinned maps, which is where the agent answers such questions from too.
//!
//! | the mover's step | the agent's request |
//! | --- | --- |
//! | install the vAP on the target | `apply [vap_delete (when the maps hold one), vap_create]` |
//! | source forwards / serves again | `apply [vap_forward]` |
//! | remove a vAP | `apply [vap_delete]` (none there is fine) |
//! | bind a home address | `apply [binding_add, replace]` (the route follows) |
//! | resolve a neighbour | `neigh_resolve` |
//!
//! An agent that does not answer is the node's error: the mover never writes behind the
//! back of an agent the cluster file names (its next reconcile would undo that).
//!
//! An agent on etcd keeps a vAP as its shared location ([`super::follow`]): the install
//! on the target is the same request (it moves the location), and the anchor's switch,
//! the source's forwarding and its removal after its grace period are made by the
//! agents themselves, so those steps wait for them in the maps instead of asking.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use super::{
    ClientMac, VapMode, VapRecord,
    follow::{FOLLOW_TIMEOUT, Following, wait_until},
    netns_nodes::{NetnsAnchor, NetnsApHost},
    nodes::{Anchor, ApHost, NodeError, NodeResult},
};
use crate::{
    addr::Prefix,
    agent::{
        api::{Client, Request},
        state::Op,
        vap_state::VapCreate,
    },
    cluster::Node,
    error::Error,
    maps::Dataplane,
    neigh,
    pin::PinDir,
    vap::Mac,
};

/// The AP host `node`: through its agent when the cluster file names one.
pub fn ap_host(node: &Node) -> Arc<dyn ApHost> {
    let maps = NetnsApHost { node: node.clone() };
    match &node.agent_socket {
        Some(socket) => Arc::new(AgentApHost {
            maps,
            socket: socket.clone(),
            following: Following::default(),
        }),
        None => Arc::new(maps),
    }
}

/// The anchor `node`: through its agent when the cluster file names one.
pub fn anchor(node: &Node) -> Arc<dyn Anchor> {
    let maps = NetnsAnchor { node: node.clone() };
    match &node.agent_socket {
        Some(socket) => Arc::new(AgentAnchor {
            maps,
            socket: socket.clone(),
            following: Following::default(),
        }),
        None => Arc::new(maps),
    }
}

/// Sends `request` to the agent at `socket`; its refusal is an [`Error::Agent`] whose
/// text is the agent's.
pub(super) fn call(socket: &Path, request: &Request) -> Result<serde_json::Value, Error> {
    let mut client = Client::connect(socket)?.ok_or_else(|| {
        Error::Agent(format!(
            "no agent answers on {} (the cluster file names it as this node's agent)",
            socket.display()
        ))
    })?;
    client.call(request)?.into_result()
}

/// Applies `ops` as one batch through the agent. Map writes the agent could not make (it
/// stored the change and retries) fail the step, so the mover rolls back.
fn apply(node: &Node, socket: &Path, ops: Vec<Op>) -> Result<(), Error> {
    let request = Request::Apply {
        ops,
        pin_dir: Some(node.pin_dir.clone()),
    };
    let v = call(socket, &request)?;
    let errors: Vec<&str> = v["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Agent(format!(
            "the agent stored the change but could not write its maps: {}",
            errors.join("; ")
        )))
    }
}

fn node_err(node: &Node) -> impl Fn(Error) -> NodeError + '_ {
    move |e| NodeError::new(&node.name, e)
}

fn resolve(node: &Node, socket: &Path, addr: IpAddr) -> NodeResult<()> {
    let request = Request::NeighResolve {
        addr,
        timeout_ms: Some(neigh::DEFAULT_TIMEOUT.as_millis() as u64),
    };
    call(socket, &request).map(drop).map_err(node_err(node))
}

/// An AP host managed by its agent.
pub struct AgentApHost {
    maps: NetnsApHost,
    socket: PathBuf,
    following: Following,
}

impl AgentApHost {
    fn node(&self) -> &Node {
        &self.maps.node
    }

    /// Waits until the host's maps hold the client's vAP forwarding to `locator`.
    fn wait_forwarding(&self, client: ClientMac, locator: IpAddr) -> NodeResult<()> {
        let what = format!("forwarding the vAP of {client} to {locator}");
        wait_until(self.node(), &what, FOLLOW_TIMEOUT, || {
            Ok(match self.maps.vap(client)? {
                Some((_, VapMode::Forward(l))) if l == locator => None,
                Some((_, mode)) => Some(format!("{mode:?}")),
                None => Some("no vAP".into()),
            })
        })
    }

    /// Waits until the host's maps hold no vAP of the client (after `grace`).
    fn wait_removed(&self, client: ClientMac, grace: Duration) -> NodeResult<()> {
        let what = format!("removing the vAP of {client} after its grace period");
        wait_until(self.node(), &what, grace + FOLLOW_TIMEOUT, || {
            Ok(self.maps.vap(client)?.map(|(_, mode)| format!("{mode:?}")))
        })
    }

    /// True when the host's maps hold a vAP for `client`.
    fn has_vap(&self, client: ClientMac) -> NodeResult<bool> {
        let dp =
            Dataplane::open(&PinDir::new(&self.node().pin_dir)).map_err(node_err(self.node()))?;
        match dp.vap(Mac(client.0)) {
            Ok(_) => Ok(true),
            Err(Error::NoSuchVap(_)) => Ok(false),
            Err(e) => Err(node_err(self.node())(e)),
        }
    }
}

impl ApHost for AgentApHost {
    fn name(&self) -> &str {
        self.maps.name()
    }

    fn locator(&self) -> IpAddr {
        self.maps.locator()
    }

    fn vap(&self, client: ClientMac) -> NodeResult<Option<(VapRecord, VapMode)>> {
        self.maps.vap(client)
    }

    fn install(&self, vap: &VapRecord) -> NodeResult<()> {
        let client = Mac(vap.client.0);
        let mut ops = Vec::new();
        if self.has_vap(vap.client)? {
            ops.push(Op::VapDelete { client });
        }
        ops.push(Op::VapCreate(VapCreate {
            client,
            ipv4: vap.ipv4.map(IpAddr::V4),
            ipv6: vap.ipv6.map(IpAddr::V6),
            anchor: Some(vap.anchor),
            vap_mac: Some(Mac(vap.vap_mac)),
            ..VapCreate::default()
        }));
        apply(self.node(), &self.socket, ops).map_err(node_err(self.node()))
    }

    fn set_mode(&self, client: ClientMac, mode: VapMode) -> NodeResult<()> {
        if self.follows_location()?.is_some() {
            return match mode {
                VapMode::Forward(locator) => self.wait_forwarding(client, locator),
                // Serving again is the location back here.
                VapMode::Serve => match self.maps.vap(client)? {
                    Some((vap, _)) => self.install(&vap),
                    None => Err(NodeError::new(
                        self.name(),
                        format!("no vAP of {client} here to serve again"),
                    )),
                },
            };
        }
        let op = Op::VapForward {
            client: Mac(client.0),
            to: match mode {
                VapMode::Serve => None,
                VapMode::Forward(locator) => Some(locator),
            },
            source: None,
        };
        apply(self.node(), &self.socket, vec![op]).map_err(node_err(self.node()))
    }

    fn remove(&self, client: ClientMac) -> NodeResult<()> {
        if let Some(grace) = self.follows_location()? {
            return self.wait_removed(client, grace);
        }
        let client = Mac(client.0);
        match apply(self.node(), &self.socket, vec![Op::VapDelete { client }]) {
            Ok(()) => Ok(()),
            // Not in the agent's state: nothing to remove.
            Err(Error::Agent(m)) if m == Error::NoSuchVap(client).to_string() => Ok(()),
            Err(e) => Err(node_err(self.node())(e)),
        }
    }

    fn resolve_neighbour(&self, addr: IpAddr) -> NodeResult<()> {
        resolve(self.node(), &self.socket, addr)
    }

    fn follows_location(&self) -> NodeResult<Option<Duration>> {
        self.following.get(self.node(), &self.socket)
    }
}

/// An anchor managed by its agent.
pub struct AgentAnchor {
    maps: NetnsAnchor,
    socket: PathBuf,
    following: Following,
}

impl Anchor for AgentAnchor {
    fn name(&self) -> &str {
        self.maps.name()
    }

    fn locator(&self) -> IpAddr {
        self.maps.locator()
    }

    fn binding(&self, home: Prefix) -> NodeResult<Option<IpAddr>> {
        self.maps.binding(home)
    }

    fn bind(&self, home: Prefix, locator: IpAddr) -> NodeResult<()> {
        let node = &self.maps.node;
        if self.following.get(node, &self.socket)?.is_some() {
            // The binding follows the client's location.
            let what = format!("binding {home} to {locator}");
            return wait_until(node, &what, FOLLOW_TIMEOUT, || {
                Ok(match self.maps.binding(home)? {
                    Some(l) if l == locator => None,
                    Some(l) => Some(format!("bound to {l}")),
                    None => Some("unbound".into()),
                })
            });
        }
        // Keep the binding's outer source when the locator's family allows it.
        let source = Dataplane::open(&PinDir::new(&node.pin_dir))
            .and_then(|dp| dp.binding(&home))
            .map_err(node_err(node))?
            .map(|b| b.source)
            .filter(|s| s.is_ipv4() == locator.is_ipv4());
        let op = Op::BindingAdd {
            home,
            locator,
            source,
            replace: true,
            route: true,
        };
        apply(node, &self.socket, vec![op]).map_err(node_err(node))
    }

    fn resolve_neighbour(&self, locator: IpAddr) -> NodeResult<()> {
        resolve(&self.maps.node, &self.socket, locator)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead, BufReader, Write},
        os::unix::net::UnixListener,
        sync::{Arc, Mutex},
    };

    use super::*;

    /// An agent that records each request line and answers from `answers` in turn.
    struct FakeAgent {
        socket: PathBuf,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl FakeAgent {
        fn start(name: &str, answers: Vec<&'static str>) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("vdmm-agent-nodes-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let socket = dir.join("agent.sock");
            let listener = UnixListener::bind(&socket).unwrap();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut answers = answers.into_iter();
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { return };
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 {
                        log.lock().unwrap().push(line.trim().to_string());
                        let Some(a) = answers.next() else { return };
                        (&conn).write_all(format!("{a}\n").as_bytes()).unwrap();
                        line.clear();
                    }
                }
            });
            Self { socket, seen }
        }

        fn seen(&self) -> Vec<serde_json::Value> {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    impl Drop for FakeAgent {
        fn drop(&mut self) {
            if let Some(dir) = self.socket.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    fn node(socket: &Path) -> Node {
        Node {
            name: "ap2".into(),
            locator: "192.0.2.12".parse().unwrap(),
            pin_dir: "/run/vdmm/ap2".into(),
            netns: None,
            agent_socket: Some(socket.to_path_buf()),
        }
    }

    const C: ClientMac = ClientMac([2, 0, 0, 0, 0x20, 0x10]);
    const APPLIED: &str = r#"{"ok":true,"result":{"revision":2,"changes":1,"errors":[]}}"#;
    /// `status` of an agent on the embedded store (the first request to a node's agent).
    const EMBEDDED: &str =
        r#"{"ok":true,"result":{"store":"file /var/lib/vdmm/state.jsonl","vap_grace_ms":null}}"#;

    #[test]
    fn steps_become_agent_requests_for_the_nodes_pin_dir() {
        let agent = FakeAgent::start(
            "steps",
            vec![
                EMBEDDED,
                APPLIED,
                APPLIED,
                r#"{"ok":true,"result":{"next_hop":"192.0.2.1","dev":"ap-u","before":"none","state":"reachable","elapsed_ms":0.3}}"#,
            ],
        );
        let host = ap_host(&node(&agent.socket));
        host.set_mode(C, VapMode::Forward("192.0.2.13".parse().unwrap()))
            .unwrap();
        host.set_mode(C, VapMode::Serve).unwrap();
        host.resolve_neighbour("192.0.2.1".parse().unwrap())
            .unwrap();
        let seen = agent.seen();
        // Asked once whether vAPs follow a shared location.
        assert_eq!(seen[0], serde_json::json!({"request":"status"}));
        let seen = &seen[1..];
        assert_eq!(seen[0]["request"], "apply");
        assert_eq!(seen[0]["pin_dir"], "/run/vdmm/ap2");
        assert_eq!(
            seen[0]["ops"],
            serde_json::json!([{"op":"vap_forward","client":"02:00:00:00:20:10","to":"192.0.2.13","source":null}])
        );
        assert_eq!(seen[1]["ops"][0]["to"], serde_json::Value::Null);
        assert_eq!(
            seen[2],
            serde_json::json!({"request":"neigh_resolve","addr":"192.0.2.1","timeout_ms":2000})
        );
    }

    #[test]
    fn refusals_and_unwritten_maps_are_the_nodes_errors_but_a_missing_vap_is_removed() {
        let agent = FakeAgent::start(
            "errors",
            vec![
                EMBEDDED,
                r#"{"ok":false,"error":"no vAP for client 02:00:00:00:20:10"}"#,
                r#"{"ok":false,"error":"the vAP table is full (at most 4096)"}"#,
                r#"{"ok":true,"result":{"revision":3,"errors":["vap 02:00:00:00:20:10: cannot write"]}}"#,
            ],
        );
        let host = ap_host(&node(&agent.socket));
        host.remove(C).expect("not there: nothing to remove");
        let e = host.set_mode(C, VapMode::Serve).unwrap_err();
        assert_eq!(e.to_string(), "ap2: the vAP table is full (at most 4096)");
        let e = host.set_mode(C, VapMode::Serve).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ap2: the agent stored the change but could not write its maps: \
             vap 02:00:00:00:20:10: cannot write"
        );
    }

    #[test]
    fn an_agent_on_etcd_is_asked_once_and_its_grace_period_kept() {
        let agent = FakeAgent::start(
            "follows",
            vec![
                r#"{"ok":true,"result":{"store":"etcd http://127.0.0.1:2379 prefix /vdmm node ap2","vap_grace_ms":1000}}"#,
            ],
        );
        let host = ap_host(&node(&agent.socket));
        for _ in 0..2 {
            assert_eq!(
                host.follows_location().unwrap(),
                Some(std::time::Duration::from_secs(1))
            );
        }
        assert_eq!(agent.seen().len(), 1);
    }

    #[test]
    fn a_node_whose_agent_does_not_answer_is_an_error_not_a_direct_write() {
        let dead = std::env::temp_dir().join(format!("vdmm-no-agent-{}.sock", std::process::id()));
        let host = ap_host(&node(&dead));
        let e = host.set_mode(C, VapMode::Serve).unwrap_err();
        assert!(
            e.to_string().starts_with("ap2: no agent answers on "),
            "{e}"
        );
        let e = anchor(&node(&dead))
            .resolve_neighbour("192.0.2.12".parse().unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("no agent answers"), "{e}");
    }
}
