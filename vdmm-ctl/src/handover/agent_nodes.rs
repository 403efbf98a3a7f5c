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

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    ClientMac, VapMode, VapRecord,
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
        }),
        None => Arc::new(maps),
    }
}

/// Sends `request` to the agent at `socket`; its refusal is an [`Error::Agent`] whose
/// text is the agent's.
fn call(socket: &Path, request: &Request) -> Result<serde_json::Value, Error> {
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
}

impl AgentApHost {
    fn node(&self) -> &Node {
        &self.maps.node
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
}

/// An anchor managed by its agent.
pub struct AgentAnchor {
    maps: NetnsAnchor,
    socket: PathBuf,
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

    #[test]
    fn steps_become_agent_requests_for_the_nodes_pin_dir() {
        let agent = FakeAgent::start(
            "steps",
            vec![
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
