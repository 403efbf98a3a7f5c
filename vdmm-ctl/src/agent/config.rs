//! The agent's configuration file (TOML): where things live, which store keeps the desired
//! state (the embedded file, or etcd in cluster mode), which interfaces the data plane is
//! attached to, where endpoints come from, the control socket, metrics, logging.
//! Every field has a default, so an empty file is a valid configuration; docs/agent.md
//! documents each one (a test checks that none is missing there).
//!
//! [`Config::from_toml`] refuses unknown fields and invalid values with one line that
//! names the field and the value. The desired state itself (bindings, peers, ...) is not
//! configuration: it lives in the store and changes through the control API; only a
//! transition gateway's translation configuration may also be declared here (`[natpt]`,
//! [`super::natpt_config`]).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use super::natpt_config::NatptSection;
use crate::{
    error::{Error, Result},
    etcd::{ClusterError, EtcdSettings},
    pin::DEFAULT_PIN_DIR,
};

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vdmm";
/// The default control socket.
pub const DEFAULT_SOCKET: &str = "/run/vdmm/agent.sock";
/// The default metrics address: loopback only.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9478";

/// Every field of the configuration as `section.field`, for the documentation test.
pub const FIELDS: &[&str] = &[
    "pin_dir",
    "state_dir",
    "log_level",
    "reconcile_interval_secs",
    "store",
    "node_name",
    "interfaces.attach",
    "interfaces.xdp_mode",
    "interfaces.detach_unlisted",
    "endpoints.from_interfaces",
    "endpoints.families",
    "api.socket",
    "api.socket_mode",
    "api.socket_group",
    "metrics.enabled",
    "metrics.listen",
    "adopt.import_on_first_start",
    "natpt.prefix",
    "natpt.rfc6791",
    "natpt.lowest_ipv6_mtu",
    "natpt.udp_zero_checksum",
    "natpt.traffic_class",
    "natpt.eam",
    "natpt.pools",
    "natpt.segments",
    "etcd.endpoints",
    "etcd.prefix",
    "etcd.ca_file",
    "etcd.cert_file",
    "etcd.key_file",
    "etcd.server_name",
    "etcd.username",
    "etcd.password_file",
    "etcd.lease_ttl_s",
    "etcd.request_timeout_ms",
];

/// Where the desired state is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// The embedded store: one file in `state_dir` (one node).
    #[default]
    File,
    /// etcd, shared by the nodes of a cluster (`[etcd]`).
    Etcd,
}

/// XDP attach mode of the configured interfaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum XdpMode {
    #[default]
    Native,
    Generic,
}

/// Address families endpoints are taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointFamily {
    Ipv4,
    Ipv6,
}

/// The `[interfaces]` section.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Interfaces {
    /// Interfaces the XDP program is attached to (`vdmm-ctl load --iface`).
    pub attach: Vec<String>,
    pub xdp_mode: XdpMode,
    /// Detach the data plane from pinned interfaces not listed in `attach`.
    pub detach_unlisted: bool,
}

impl Default for Interfaces {
    fn default() -> Self {
        Self {
            attach: Vec::new(),
            xdp_mode: XdpMode::Native,
            detach_unlisted: true,
        }
    }
}

/// The `[endpoints]` section.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Endpoints {
    /// Interfaces whose global unicast addresses are local tunnel endpoints, kept in step
    /// with the addresses as they come and go.
    pub from_interfaces: Vec<String>,
    /// Which families' addresses count.
    pub families: Vec<EndpointFamily>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            from_interfaces: Vec::new(),
            families: vec![EndpointFamily::Ipv4, EndpointFamily::Ipv6],
        }
    }
}

/// The `[api]` section.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Api {
    pub socket: PathBuf,
    /// Permission bits of the socket, as an octal string.
    pub socket_mode: String,
    /// Group owning the socket (name), so its members may connect with mode 0660.
    pub socket_group: Option<String>,
}

impl Default for Api {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            socket_mode: "0600".into(),
            socket_group: None,
        }
    }
}

/// The `[metrics]` section.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    pub enabled: bool,
    pub listen: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: DEFAULT_METRICS_LISTEN.into(),
        }
    }
}

/// The `[adopt]` section.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Adopt {
    /// On the first start (an empty store), take what the pinned maps hold (endpoints,
    /// peers, bindings, tunnel settings) as the desired state instead of clearing them.
    pub import_on_first_start: bool,
}

impl Default for Adopt {
    fn default() -> Self {
        Self {
            import_on_first_start: true,
        }
    }
}

/// The configuration file as written.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub pin_dir: PathBuf,
    pub state_dir: PathBuf,
    /// A tracing filter (`info`, `debug`, `vdmm_ctl=debug`); RUST_LOG overrides it.
    pub log_level: String,
    /// Seconds between full reconciles of the maps with the desired state (0: only at
    /// start and on netlink events).
    pub reconcile_interval_secs: u64,
    pub store: StoreKind,
    /// This node's name in the cluster (etcd store); unset: the host name.
    pub node_name: Option<String>,
    pub interfaces: Interfaces,
    pub endpoints: Endpoints,
    pub api: Api,
    pub metrics: Metrics,
    pub adopt: Adopt,
    /// A transition gateway's declared translation configuration.
    pub natpt: NatptSection,
    /// The `[etcd]` section (with `store = "etcd"`).
    pub etcd: Option<EtcdSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            log_level: "info".into(),
            reconcile_interval_secs: 60,
            store: StoreKind::File,
            node_name: None,
            interfaces: Interfaces::default(),
            endpoints: Endpoints::default(),
            api: Api::default(),
            metrics: Metrics::default(),
            adopt: Adopt::default(),
            natpt: NatptSection::default(),
            etcd: None,
        }
    }
}

fn invalid(field: &str, value: impl std::fmt::Display, why: impl std::fmt::Display) -> Error {
    Error::Conflict(format!("invalid configuration: {field} = {value}: {why}"))
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        Self::from_toml(&text).map_err(|e| match e {
            Error::Conflict(m) => Error::Conflict(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Parses and checks configuration text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().to_string();
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].lines().count().max(1);
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            Error::Conflict(format!("invalid configuration{at}: {msg}"))
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<()> {
        for (field, p) in [("pin_dir", &self.pin_dir), ("state_dir", &self.state_dir)] {
            if !p.is_absolute() {
                return Err(invalid(
                    field,
                    format!("{:?}", p.display().to_string()),
                    "must be an absolute path",
                ));
            }
        }
        if !self.api.socket.is_absolute() {
            return Err(invalid(
                "api.socket",
                format!("{:?}", self.api.socket.display().to_string()),
                "must be an absolute path",
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| invalid("log_level", format!("{:?}", self.log_level), e))?;
        self.socket_mode()?;
        if self.metrics.enabled {
            self.metrics_listen()?;
        }
        for (field, names) in [
            ("interfaces.attach", &self.interfaces.attach),
            ("endpoints.from_interfaces", &self.endpoints.from_interfaces),
        ] {
            for (i, n) in names.iter().enumerate() {
                if n.is_empty()
                    || n.len() > 15
                    || n.contains('/')
                    || n.contains(char::is_whitespace)
                {
                    return Err(invalid(field, format!("{n:?}"), "not an interface name"));
                }
                if names[..i].contains(n) {
                    return Err(invalid(field, format!("{n:?}"), "listed twice"));
                }
                if n == crate::device::DEVICE && field == "interfaces.attach" {
                    return Err(invalid(
                        field,
                        format!("{n:?}"),
                        "vdmm0 is the slow-path device, which the agent sets up itself",
                    ));
                }
            }
        }
        if self.endpoints.families.is_empty() {
            return Err(invalid(
                "endpoints.families",
                "[]",
                "name at least one of \"ipv4\", \"ipv6\"",
            ));
        }
        self.natpt.ops()?;
        if self.reconcile_interval_secs > 86_400 {
            return Err(invalid(
                "reconcile_interval_secs",
                self.reconcile_interval_secs,
                "at most 86400 (a day)",
            ));
        }
        self.check_store()
    }

    /// `store`, `node_name` and `[etcd]`.
    fn check_store(&self) -> Result<()> {
        if let Some(n) = &self.node_name
            && (n.is_empty() || n.contains('/') || n.contains(char::is_whitespace))
        {
            return Err(invalid(
                "node_name",
                format!("{n:?}"),
                "a node name is one non-empty word without `/`",
            ));
        }
        match (self.store, &self.etcd) {
            (StoreKind::File, None) => Ok(()),
            (StoreKind::File, Some(_)) => Err(invalid(
                "store",
                "\"file\"",
                "an [etcd] section is only used with store = \"etcd\"",
            )),
            (StoreKind::Etcd, None) => Err(invalid(
                "store",
                "\"etcd\"",
                "needs an [etcd] section with the members' endpoints",
            )),
            (StoreKind::Etcd, Some(s)) => s.validate().map_err(|e| match e {
                ClusterError::BadSetting {
                    field,
                    value,
                    reason,
                } => invalid(&format!("etcd.{field}"), format!("{value:?}"), reason),
                ClusterError::MissingSetting { field, reason } => {
                    invalid(&format!("etcd.{field}"), "(unset)", reason)
                }
                e => Error::Conflict(format!("invalid configuration: [etcd]: {e}")),
            }),
        }
    }

    /// This node's name in the cluster: `node_name`, else the host name.
    pub fn node_name(&self) -> String {
        if let Some(n) = &self.node_name {
            return n.clone();
        }
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
        let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        match std::str::from_utf8(&buf[..end]) {
            Ok(h) if ok && !h.is_empty() => h.to_string(),
            _ => "localhost".to_string(),
        }
    }

    /// `api.socket_mode` as permission bits.
    pub fn socket_mode(&self) -> Result<u32> {
        let t = self.api.socket_mode.trim();
        let digits = t.strip_prefix("0o").unwrap_or(t);
        u32::from_str_radix(digits, 8)
            .ok()
            .filter(|m| *m <= 0o777 && !digits.is_empty())
            .ok_or_else(|| {
                invalid(
                    "api.socket_mode",
                    format!("{:?}", self.api.socket_mode),
                    "expected octal permission bits such as \"0600\"",
                )
            })
    }

    /// `metrics.listen` as a socket address.
    pub fn metrics_listen(&self) -> Result<SocketAddr> {
        self.metrics.listen.parse().map_err(|_| {
            invalid(
                "metrics.listen",
                format!("{:?}", self.metrics.listen),
                "expected ADDR:PORT, e.g. \"127.0.0.1:9478\"",
            )
        })
    }

    pub fn reconcile_interval(&self) -> Option<Duration> {
        (self.reconcile_interval_secs > 0)
            .then(|| Duration::from_secs(self.reconcile_interval_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.socket_mode().unwrap(), 0o600);
        assert_eq!(
            c.metrics_listen().unwrap(),
            "127.0.0.1:9478".parse().unwrap()
        );
        assert_eq!(c.reconcile_interval(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn a_full_file_parses() {
        let c = Config::from_toml(
            r#"
            pin_dir = "/run/vdmm/gw"
            state_dir = "/var/lib/vdmm/gw"
            log_level = "debug"
            reconcile_interval_secs = 0
            [interfaces]
            attach = ["eth0", "eth1"]
            xdp_mode = "generic"
            detach_unlisted = false
            [endpoints]
            from_interfaces = ["eth0"]
            families = ["ipv6"]
            [api]
            socket = "/run/vdmm/gw.sock"
            socket_mode = "0660"
            socket_group = "vdmm"
            [metrics]
            enabled = true
            listen = "[::1]:9100"
            [adopt]
            import_on_first_start = false
            "#,
        )
        .unwrap();
        assert_eq!(c.interfaces.xdp_mode, XdpMode::Generic);
        assert_eq!(c.endpoints.families, [EndpointFamily::Ipv6]);
        assert_eq!(c.socket_mode().unwrap(), 0o660);
        assert_eq!(c.reconcile_interval(), None);
    }

    #[test]
    fn invalid_values_name_the_field_and_the_value() {
        for (text, want) in [
            (
                "state_dir = \"var/lib\"",
                "state_dir = \"var/lib\": must be an absolute path",
            ),
            (
                "[api]\nsocket_mode = \"0999\"",
                "api.socket_mode = \"0999\"",
            ),
            (
                "[metrics]\nlisten = \"localhost\"",
                "metrics.listen = \"localhost\"",
            ),
            (
                "[interfaces]\nattach = [\"eth0\", \"eth0\"]",
                "interfaces.attach = \"eth0\": listed twice",
            ),
            (
                "[interfaces]\nattach = [\"vdmm0\"]",
                "interfaces.attach = \"vdmm0\"",
            ),
            (
                "[interfaces]\nxdp_mode = \"fast\"",
                "unknown variant `fast`",
            ),
            ("reconcile_interval_secs = -1", "line 1"),
            ("log_level = \"[\"", "log_level = \"[\""),
            ("[endpoints]\nfamilies = []", "endpoints.families"),
            ("[api]\nsokcet = \"/x\"", "unknown field `sokcet`"),
            (
                "store = \"etcd\"",
                "store = \"etcd\": needs an [etcd] section",
            ),
            ("store = \"zk\"", "unknown variant `zk`"),
            (
                "[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]",
                "store = \"file\": an [etcd] section is only used with store = \"etcd\"",
            ),
            (
                "store = \"etcd\"\n[etcd]\nendpoints = [\"127.0.0.1:2379\"]",
                "etcd.endpoints = \"127.0.0.1:2379\": expected http://HOST:PORT",
            ),
            (
                "store = \"etcd\"\n[etcd]\nendpoints = [\"http://e:2379\"]\nlease_ttl_s = 1",
                "etcd.lease_ttl_s = \"1\"",
            ),
            (
                "store = \"etcd\"\n[etcd]\nendpoints = [\"http://e:2379\"]\nusername = \"u\"",
                "etcd.password_file = (unset): user `u` needs a password_file",
            ),
            (
                "store = \"etcd\"\n[etcd]\nendpoints = [\"http://e:2379\"]\nprefx = \"/v\"",
                "unknown field `prefx`",
            ),
            ("node_name = \"a/b\"", "node_name = \"a/b\""),
        ] {
            let e = Config::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.starts_with("invalid configuration"), "{e}");
        }
    }

    /// The rows of docs/agent.md's table for `section` ("top level" or "[name]").
    fn documented(doc: &str, section: &str) -> Vec<String> {
        let heading = format!("### {section}\n");
        let Some(start) = doc.find(&heading) else {
            return Vec::new();
        };
        let body = &doc[start + heading.len()..];
        let end = body.find("\n#").unwrap_or(body.len());
        body[..end]
            .lines()
            .filter_map(|l| {
                l.strip_prefix("| `")?
                    .split_once('`')
                    .map(|(f, _)| f.to_string())
            })
            .collect()
    }

    #[test]
    fn every_field_is_documented_in_its_section() {
        let doc = include_str!("../../../docs/agent.md");
        for f in FIELDS {
            let (section, name) = match f.split_once('.') {
                Some((s, n)) => (format!("[{s}]"), n),
                None => ("top level".to_string(), *f),
            };
            assert!(
                documented(doc, &section).iter().any(|d| d == name),
                "docs/agent.md does not document {f} under `### {section}`"
            );
        }
        // And FIELDS lists every field: each key of the anchor gateway example (which
        // shows them all) is in it, and no documented row is missing from FIELDS.
        // The cluster example shows the store's fields and every one of [etcd].
        let mut keys = Vec::new();
        for text in [
            include_str!("../../../examples/anchor-gateway.toml"),
            include_str!("../../../examples/cluster-ap-host.toml"),
            include_str!("../../../examples/transition-gateway.toml"),
        ] {
            let full: toml::Table = toml::from_str(text).unwrap();
            for (k, v) in &full {
                match v {
                    toml::Value::Table(t) => keys.extend(t.keys().map(|k2| format!("{k}.{k2}"))),
                    _ => keys.push(k.clone()),
                }
            }
        }
        keys.push("api.socket_group".into()); // commented out there: unset by default
        keys.sort();
        keys.dedup();
        for k in &keys {
            assert!(FIELDS.contains(&k.as_str()), "{k} is not in FIELDS");
        }
        assert_eq!(keys.len(), FIELDS.len(), "{keys:?}");
    }

    #[test]
    fn the_examples_are_valid() {
        for (name, text) in [
            (
                "anchor-gateway",
                include_str!("../../../examples/anchor-gateway.toml"),
            ),
            ("ap-host", include_str!("../../../examples/ap-host.toml")),
            (
                "cluster-ap-host",
                include_str!("../../../examples/cluster-ap-host.toml"),
            ),
            (
                "transition-gateway",
                include_str!("../../../examples/transition-gateway.toml"),
            ),
        ] {
            Config::from_toml(text).unwrap_or_else(|e| panic!("examples/{name}.toml: {e}"));
        }
        let c = Config::from_toml(include_str!("../../../examples/anchor-gateway.toml")).unwrap();
        // The example shows the defaults except where it says otherwise.
        let mut d = Config::default();
        d.interfaces.attach = vec!["eth0".into()];
        d.endpoints.from_interfaces = vec!["eth0".into()];
        assert_eq!(c, d);
    }
}
