//! The cluster description `vdmm-ctl vap move --cluster FILE` reads: the AP hosts and
//! anchors a move may touch and how to reach their data planes from this machine (a
//! network namespace, or none for the caller's, and a pin directory). A TOML file:
//!
//! ```toml
//! [[ap_host]]
//! name = "ap1"
//! locator = "192.0.2.11"     # its tunnel endpoint
//! pin_dir = "/run/vdmm/ap1"
//! netns = "ap1"              # optional
//!
//! [[anchor]]
//! name = "gw1"
//! locator = "192.0.2.1"
//! pin_dir = "/run/vdmm/gw1"
//! netns = "gw1"
//! agent_socket = "/run/vdmm/gw1.sock"  # optional: the node's agent
//! ```
//!
//! A node with `agent_socket` runs an agent (`vdmm-ctl daemon`): a move changes that
//! node through the agent's API, so the change is in the agent's desired state and its
//! reconciles keep it (see [`crate::handover::agent_nodes`]). Errors name the file and
//! the field (unknown fields are errors too).

use std::{
    collections::HashSet,
    net::IpAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::error::{Error, Result};

/// One node (AP host or anchor) of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    /// The node's tunnel endpoint.
    pub locator: IpAddr,
    /// Where the node's data plane is pinned.
    pub pin_dir: PathBuf,
    /// The node's network namespace (`ip netns` name or a path); none = the caller's.
    #[serde(default)]
    pub netns: Option<String>,
    /// The control socket of the node's agent, when one manages its data plane.
    #[serde(default)]
    pub agent_socket: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    #[serde(default, rename = "ap_host")]
    pub ap_hosts: Vec<Node>,
    #[serde(default, rename = "anchor")]
    pub anchors: Vec<Node>,
}

impl Cluster {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read cluster file {}", path.display()), e))?;
        Self::parse(&text).map_err(|reason| Error::BadCluster {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses and checks a cluster description; the error is one line naming the field.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let c: Cluster = toml::from_str(text).map_err(|e| one_line(&e))?;
        if c.ap_hosts.is_empty() {
            return Err("no [[ap_host]]: a move needs at least two AP hosts".into());
        }
        let mut names = HashSet::new();
        let mut locators = HashSet::new();
        for (kind, n) in c
            .ap_hosts
            .iter()
            .map(|n| ("ap_host", n))
            .chain(c.anchors.iter().map(|n| ("anchor", n)))
        {
            if n.name.is_empty() {
                return Err(format!("{kind}: name is empty"));
            }
            if !names.insert(n.name.as_str()) {
                return Err(format!("{kind} `{}`: the name is used twice", n.name));
            }
            if !locators.insert(n.locator) {
                return Err(format!(
                    "{kind} `{}`: locator {} is used twice",
                    n.name, n.locator
                ));
            }
            if n.pin_dir.as_os_str().is_empty() {
                return Err(format!("{kind} `{}`: pin_dir is empty", n.name));
            }
            if let Some(s) = &n.agent_socket
                && !s.is_absolute()
            {
                return Err(format!(
                    "{kind} `{}`: agent_socket {:?} is not an absolute path",
                    n.name,
                    s.display().to_string()
                ));
            }
        }
        Ok(c)
    }

    pub fn ap_host(&self, name: &str) -> Option<&Node> {
        self.ap_hosts.iter().find(|n| n.name == name)
    }
}

/// toml's error without its source excerpt: `line L, column C: message`.
fn one_line(e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(_) => {
            let first = e.to_string();
            // toml renders "TOML parse error at line L, column C\n...": keep the position.
            let pos = first
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("TOML parse error at "))
                .unwrap_or("");
            if pos.is_empty() {
                msg
            } else {
                format!("{pos}: {msg}")
            }
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[ap_host]]
name = "ap1"
locator = "192.0.2.11"
pin_dir = "/run/vdmm/ap1"
netns = "ap1"
[[ap_host]]
name = "ap2"
locator = "2001:db8::12"
pin_dir = "/run/vdmm/ap2"
[[anchor]]
name = "gw1"
locator = "192.0.2.1"
pin_dir = "/run/vdmm/gw1"
"#;

    #[test]
    fn parses_nodes() {
        let c = Cluster::parse(GOOD).unwrap();
        assert_eq!(c.ap_hosts.len(), 2);
        assert_eq!(c.ap_host("ap1").unwrap().netns.as_deref(), Some("ap1"));
        assert_eq!(c.ap_host("ap2").unwrap().netns, None);
        assert_eq!(c.anchors[0].locator, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(c.anchors[0].agent_socket, None);
        let c = Cluster::parse(&GOOD.replace(
            "pin_dir = \"/run/vdmm/gw1\"",
            "pin_dir = \"/run/vdmm/gw1\"\nagent_socket = \"/run/vdmm/gw1.sock\"",
        ))
        .unwrap();
        assert_eq!(
            c.anchors[0].agent_socket.as_deref(),
            Some(Path::new("/run/vdmm/gw1.sock"))
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            Cluster::parse(&GOOD.replace("locator = \"192.0.2.11\"", "locator = \"192.0.2.300\""))
                .unwrap_err();
        assert!(
            e.starts_with("line 4, column 11: invalid IP address syntax"),
            "{e}"
        );
        let e = Cluster::parse(&GOOD.replace("netns = \"ap1\"", "netnz = \"ap1\"")).unwrap_err();
        assert!(e.contains("unknown field `netnz`"), "{e}");
        let e = Cluster::parse(&GOOD.replace("name = \"ap2\"", "name = \"ap1\"")).unwrap_err();
        assert_eq!(e, "ap_host `ap1`: the name is used twice");
        let e = Cluster::parse(&GOOD.replace("2001:db8::12", "192.0.2.1")).unwrap_err();
        assert_eq!(e, "anchor `gw1`: locator 192.0.2.1 is used twice");
        let e = Cluster::parse(&GOOD.replace(
            "pin_dir = \"/run/vdmm/gw1\"",
            "pin_dir = \"/run/vdmm/gw1\"\nagent_socket = \"gw1.sock\"",
        ))
        .unwrap_err();
        assert_eq!(
            e,
            "anchor `gw1`: agent_socket \"gw1.sock\" is not an absolute path"
        );
        let e = Cluster::parse("").unwrap_err();
        assert!(e.starts_with("no [[ap_host]]"), "{e}");
        let e = Cluster::parse("[[ap_host]]\nname = \"x\"\n").unwrap_err();
        assert!(e.contains("missing field `locator`"), "{e}");
    }
}
