//! Errors of the cluster layer, one line each, in the words an operator reads in a log or
//! after `error: `. Kept apart from the library's [`crate::error::Error`] so the cluster
//! code can grow without touching every other module's variants.

/// Result alias of the cluster layer.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The configured key prefix cannot hold vdmm's directories.
    #[error("invalid etcd key prefix `{prefix}`: {reason}")]
    BadKeyPrefix { prefix: String, reason: String },

    /// A field of the `[etcd]` configuration is invalid.
    #[error("invalid etcd setting `{field}` = `{value}`: {reason}")]
    BadSetting {
        field: &'static str,
        value: String,
        reason: String,
    },

    /// A field that another field needs is missing.
    #[error("etcd setting `{field}` is missing: {reason}")]
    MissingSetting { field: &'static str, reason: String },

    /// A TLS or password file named by the configuration could not be read or used.
    #[error("etcd setting `{field}`: {path}: {detail}")]
    SettingFile {
        field: &'static str,
        path: String,
        detail: String,
    },

    /// etcd did not answer (or answered with an error): the request did not take effect
    /// as far as this node knows.
    #[error("etcd request failed ({what}): {detail}")]
    Etcd { what: String, detail: String },

    /// A change was asked for while etcd is unreachable: refused so no node diverges.
    #[error(
        "etcd is unreachable ({detail}): changes are refused until it is back; \
         forwarding continues with the last state"
    )]
    Unreachable { detail: String },

    /// Every address of a pool is allocated.
    #[error("pool {pool} has no free address ({used} of {size} allocated)")]
    PoolExhausted { pool: String, used: u64, size: u64 },

    /// An address outside the pool was asked for.
    #[error("{addr} is not a usable address of pool {pool}")]
    NotInPool { pool: String, addr: String },

    /// Every vAP MAC of the configured range is allocated.
    #[error("no free vAP MAC left in {range} ({used} allocated)")]
    MacsExhausted { range: String, used: u64 },

    /// A record to release belongs to someone else (or to nobody).
    #[error("{key} is held by `{holder}`, not by `{owner}`; not released")]
    NotHolder {
        key: String,
        holder: String,
        owner: String,
    },

    /// A value read from etcd is not what this vdmm writes.
    #[error("unreadable record at {key}: {detail}")]
    BadRecord { key: String, detail: String },
}

impl ClusterError {
    /// An etcd client error, with what was being done.
    pub fn etcd(what: impl Into<String>, e: etcd_client::Error) -> Self {
        ClusterError::Etcd {
            what: what.into(),
            detail: one_line(&e.to_string()),
        }
    }

    /// True for errors that mean "etcd did not answer" rather than "the request is bad".
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ClusterError::Etcd { .. } | ClusterError::Unreachable { .. }
        )
    }
}

/// gRPC errors carry multi-line details; the cluster's errors stay on one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
