//! The layout of vdmm's keys in etcd: one directory per kind of record under a
//! configurable prefix (`/vdmm` by default), the record's identity as the rest of the key.
//! Pure code: building and parsing keys, no I/O. docs/cluster.md documents the layout.
//!
//! ```text
//! PREFIX/bindings/HOME_PREFIX          binding: home prefix -> locator
//! PREFIX/vaps/CLIENT_MAC               vAP location: client -> AP host, vAP MAC, addresses
//! PREFIX/pool/POOL_PREFIX/ADDRESS      pool allocation: IPv4 address -> its owner
//! PREFIX/macs/VAP_MAC                  vAP MAC allocation: MAC -> its owner
//! PREFIX/prefixes/IPV4_SEGMENT         IPv6 prefix of an IPv4 segment (RFC 6052)
//! PREFIX/hosts/NAME                    AP host or gateway: locator, state (up / down)
//! PREFIX/alive/NAME                    liveness: exists while the node's lease lives
//! PREFIX/nodes/NAME/PATH               a node's own state: endpoints/ADDR, peers/ADDR,
//!                                      tunnel, vaps/CLIENT_MAC (the agent's key paths)
//! ```

use std::fmt;

use super::error::{ClusterError, Result};

/// The kinds of records vdmm keeps in etcd, each in its own directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Home prefix -> locator (and outer source).
    Binding,
    /// Where a client's vAP lives: AP host, vAP MAC, addresses.
    VapLocation,
    /// An address of the IPv4 pool handed to a client.
    PoolAllocation,
    /// A locally administered vAP MAC handed to a client.
    MacAllocation,
    /// The IPv6 prefix of an IPv4 segment.
    SegmentPrefix,
    /// A registered node (AP host or gateway) and its state.
    Host,
    /// A node's liveness key, attached to its lease.
    Alive,
    /// What is a node's own: its endpoints, peers, tunnel settings (`NAME/PATH`).
    Node,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Binding,
        Kind::VapLocation,
        Kind::PoolAllocation,
        Kind::MacAllocation,
        Kind::SegmentPrefix,
        Kind::Host,
        Kind::Alive,
        Kind::Node,
    ];

    /// The directory name of the kind under the prefix.
    pub const fn dir(self) -> &'static str {
        match self {
            Kind::Binding => "bindings",
            Kind::VapLocation => "vaps",
            Kind::PoolAllocation => "pool",
            Kind::MacAllocation => "macs",
            Kind::SegmentPrefix => "prefixes",
            Kind::Host => "hosts",
            Kind::Alive => "alive",
            Kind::Node => "nodes",
        }
    }

    fn from_dir(dir: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.dir() == dir)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir())
    }
}

/// Builds and parses the keys under one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLayout {
    /// Without a trailing `/`, e.g. `/vdmm`.
    prefix: String,
}

/// The prefix used when the configuration names none.
pub const DEFAULT_PREFIX: &str = "/vdmm";

impl KeyLayout {
    /// A layout under `prefix`: it starts with `/`, names a directory (not `/` itself,
    /// no trailing `/`) and has no empty segments.
    pub fn new(prefix: &str) -> Result<Self> {
        let bad = |reason: &str| ClusterError::BadKeyPrefix {
            prefix: prefix.to_string(),
            reason: reason.to_string(),
        };
        if !prefix.starts_with('/') {
            return Err(bad("must start with `/`"));
        }
        if prefix.len() < 2 || prefix.ends_with('/') {
            return Err(bad(
                "must name a directory such as /vdmm, without a trailing `/`",
            ));
        }
        if prefix.contains("//") {
            return Err(bad("must not contain an empty segment (`//`)"));
        }
        if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain whitespace or control characters"));
        }
        Ok(Self {
            prefix: prefix.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of one record: `PREFIX/DIR/ID`. `id` must be non-empty.
    pub fn key(&self, kind: Kind, id: &str) -> String {
        debug_assert!(!id.is_empty());
        format!("{}/{}/{}", self.prefix, kind.dir(), id)
    }

    /// The directory of a kind, with its trailing `/`: a watch or range over it covers
    /// every record of the kind and nothing else.
    pub fn dir(&self, kind: Kind) -> String {
        format!("{}/{}/", self.prefix, kind.dir())
    }

    /// Everything of the cluster: `PREFIX/`.
    pub fn root(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// Splits a key of this layout into its kind and id; `None` for keys of other
    /// layouts or of unknown kinds (a newer vdmm may add kinds; older agents ignore them).
    pub fn parse<'k>(&self, key: &'k str) -> Option<(Kind, &'k str)> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let (dir, id) = rest.split_once('/')?;
        if id.is_empty() {
            return None;
        }
        Some((Kind::from_dir(dir)?, id))
    }

    /// The key of one pool allocation: `PREFIX/pool/POOL/ADDRESS`, the pool written as
    /// `ADDR-LEN` so the address is the last segment.
    pub fn pool_key(&self, pool: &str, addr: &str) -> String {
        self.key(
            Kind::PoolAllocation,
            &format!("{}/{addr}", pool.replace('/', "-")),
        )
    }

    /// The directory of one pool's allocations.
    pub fn pool_dir(&self, pool: &str) -> String {
        format!(
            "{}{}/",
            self.dir(Kind::PoolAllocation),
            pool.replace('/', "-")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_for_every_kind() {
        let l = KeyLayout::new("/lab/vdmm").unwrap();
        for kind in Kind::ALL {
            let key = l.key(kind, "10.1.0.0/16");
            assert!(key.starts_with(&l.dir(kind)), "{key}");
            assert_eq!(l.parse(&key), Some((kind, "10.1.0.0/16")));
        }
        assert_eq!(
            l.key(Kind::Binding, "10.1.0.0/16"),
            "/lab/vdmm/bindings/10.1.0.0/16"
        );
    }

    #[test]
    fn foreign_and_unknown_keys_are_not_parsed() {
        let l = KeyLayout::new("/vdmm").unwrap();
        assert_eq!(l.parse("/vdmmx/bindings/a"), None);
        assert_eq!(l.parse("/other/bindings/a"), None);
        assert_eq!(l.parse("/vdmm/unknown/a"), None);
        assert_eq!(l.parse("/vdmm/bindings/"), None);
        assert_eq!(l.parse("/vdmm/bindings"), None);
    }

    #[test]
    fn kind_directories_do_not_contain_each_other() {
        // A range over one kind's directory must not reach into another's.
        let l = KeyLayout::new("/vdmm").unwrap();
        for a in Kind::ALL {
            for b in Kind::ALL {
                if a != b {
                    assert!(!l.dir(a).starts_with(&l.dir(b)), "{a} inside {b}");
                }
            }
        }
    }

    #[test]
    fn pool_keys_keep_the_address_last() {
        let l = KeyLayout::new("/vdmm").unwrap();
        let k = l.pool_key("192.0.2.0/24", "192.0.2.7");
        assert_eq!(k, "/vdmm/pool/192.0.2.0-24/192.0.2.7");
        assert!(k.starts_with(&l.pool_dir("192.0.2.0/24")));
        assert_eq!(
            l.parse(&k),
            Some((Kind::PoolAllocation, "192.0.2.0-24/192.0.2.7"))
        );
    }

    #[test]
    fn bad_prefixes_are_refused_with_the_reason() {
        for (p, why) in [
            ("vdmm", "start with"),
            ("/", "directory"),
            ("/vdmm/", "trailing"),
            ("/a//b", "empty segment"),
            ("/a b", "whitespace"),
        ] {
            let e = KeyLayout::new(p).unwrap_err().to_string();
            assert!(e.contains(why), "{p}: {e}");
            assert!(e.contains(p), "{p}: {e}");
        }
    }
}
