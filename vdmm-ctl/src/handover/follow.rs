//! Nodes whose agent keeps vAPs as a shared location record (`store = "etcd"`): a move
//! is one write, the location's (the target's agent writes it when it installs the vAP),
//! and the other nodes follow it by themselves: the anchor rebinds the client's
//! addresses, the AP host the vAP left forwards it for its agent's `vap_grace_ms`, then
//! removes it. For such nodes the mover's later steps are waits, read from the node's
//! pinned maps: [`Following`] asks the agent once whether it is one, [`wait_until`]
//! polls until a step is seen or [`FOLLOW_TIMEOUT`] has passed.

use std::{
    path::Path,
    sync::OnceLock,
    time::{Duration, Instant},
};

use super::nodes::{NodeError, NodeResult};
use crate::{agent::api::Request, cluster::Node, error::Error};

/// How long a node may take to follow a moved location (beyond a grace period): the
/// anchor's switch and the source's forwarding take tens of milliseconds.
pub const FOLLOW_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the maps are read while waiting.
const POLL: Duration = Duration::from_millis(2);

/// Whether a node's agent keeps vAPs as shared locations, asked once (`status`:
/// `vap_grace_ms` is set by an agent on etcd).
#[derive(Default)]
pub struct Following(OnceLock<Option<Duration>>);

impl Following {
    /// `Some(grace)` when `node`'s agent at `socket` follows vAP locations.
    pub fn get(&self, node: &Node, socket: &Path) -> NodeResult<Option<Duration>> {
        if let Some(f) = self.0.get() {
            return Ok(*f);
        }
        let f = ask(socket).map_err(|e| NodeError::new(&node.name, e))?;
        Ok(*self.0.get_or_init(|| f))
    }
}

fn ask(socket: &Path) -> Result<Option<Duration>, Error> {
    let status = super::agent_nodes::call(socket, &Request::Status)?;
    Ok(status["vap_grace_ms"].as_u64().map(Duration::from_millis))
}

/// Polls `check` (None: done; Some(what it saw)) until it is done or `within` has
/// passed; the error names `what` was awaited and what was last seen.
pub fn wait_until(
    node: &Node,
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> NodeResult<Option<String>>,
) -> NodeResult<()> {
    let t0 = Instant::now();
    loop {
        match check()? {
            None => return Ok(()),
            Some(seen) if t0.elapsed() >= within => {
                return Err(NodeError::new(
                    &node.name,
                    format!(
                        "{what}: not within {} ms (its agent follows the vAP's location in \
                         etcd; is it connected?); last seen: {seen}",
                        within.as_millis()
                    ),
                ));
            }
            Some(_) => std::thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        Node {
            name: "ap2".into(),
            locator: "192.0.2.12".parse().unwrap(),
            pin_dir: "/run/vdmm/ap2".into(),
            netns: None,
            agent_socket: None,
        }
    }

    #[test]
    fn a_wait_ends_when_seen_or_names_what_it_last_saw() {
        let mut n = 0;
        wait_until(&node(), "forwarding", Duration::from_secs(1), || {
            n += 1;
            Ok((n < 3).then(|| "serving".to_string()))
        })
        .unwrap();
        assert_eq!(n, 3);
        let e = wait_until(&node(), "forwarding", Duration::from_millis(10), || {
            Ok(Some("serving".into()))
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ap2: forwarding: not within 10 ms"),
            "{e}"
        );
        assert!(e.to_string().ends_with("last seen: serving"), "{e}");
    }
}
