//! The `[etcd]` settings of a node in cluster mode: endpoints, key prefix, TLS and
//! authentication, timeouts and the liveness lease. Validated as a whole, each error
//! naming the field and its value; the files it names are read when connecting.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

use super::{
    error::{ClusterError, Result},
    keys::{DEFAULT_PREFIX, KeyLayout},
};

/// The `[etcd]` table of the configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EtcdSettings {
    /// Client URLs of the etcd members, e.g. `http://127.0.0.1:2379` (`https://` with TLS).
    pub endpoints: Vec<String>,
    /// Directory of vdmm's keys (default `/vdmm`); clusters sharing one etcd use
    /// different prefixes.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// PEM file of the CA that signed the members' certificates (TLS).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Name to check the members' certificates against, when it differs from the
    /// endpoints' host names.
    #[serde(default)]
    pub server_name: Option<String>,
    /// etcd user (authentication enabled on the cluster), with `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the user's password (first line), kept out of the configuration.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Time-to-live of the node's liveness lease, seconds (default 5, at least 2): a node
    /// silent for this long is marked down.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_s: u64,
    /// Deadline of one request, milliseconds (default 2000); past it etcd counts as
    /// unreachable for that request.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// How long an AP host forwards a vAP that moved away (its location now names another
    /// node) to its new AP host before removing it, milliseconds (default 1000; 0 removes
    /// it at once).
    #[serde(default = "default_vap_grace")]
    pub vap_grace_ms: u64,
}

fn default_prefix() -> String {
    DEFAULT_PREFIX.to_string()
}
const fn default_lease_ttl() -> u64 {
    5
}
const fn default_request_timeout() -> u64 {
    2000
}
const fn default_vap_grace() -> u64 {
    1000
}

impl EtcdSettings {
    /// Settings for plain-text etcd at `endpoints` under `prefix`, defaults elsewhere.
    pub fn new(endpoints: Vec<String>, prefix: &str) -> Self {
        Self {
            endpoints,
            prefix: prefix.to_string(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            server_name: None,
            username: None,
            password_file: None,
            lease_ttl_s: default_lease_ttl(),
            request_timeout_ms: default_request_timeout(),
            vap_grace_ms: default_vap_grace(),
        }
    }

    /// Checks every field (not the files' contents, read when connecting).
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, value: String, reason: &str| ClusterError::BadSetting {
            field,
            value,
            reason: reason.to_string(),
        };
        let missing = |field: &'static str, reason: &str| ClusterError::MissingSetting {
            field,
            reason: reason.to_string(),
        };
        KeyLayout::new(&self.prefix)?;
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => {
                return Err(missing("key_file", "cert_file needs its key_file"));
            }
            (None, Some(k)) => {
                return Err(missing(
                    "cert_file",
                    &format!("key_file {} needs its cert_file", k.display()),
                ));
            }
            _ => {}
        }
        match (&self.username, &self.password_file) {
            (Some(u), None) => {
                return Err(missing(
                    "password_file",
                    &format!("user `{u}` needs a password_file"),
                ));
            }
            (None, Some(_)) => {
                return Err(missing("username", "password_file needs a username"));
            }
            (Some(u), Some(_)) if u.is_empty() => {
                return Err(missing("username", "it is empty"));
            }
            _ => {}
        }
        if self.endpoints.is_empty() {
            return Err(bad(
                "endpoints",
                "[]".into(),
                "name at least one etcd client URL",
            ));
        }
        for e in &self.endpoints {
            self.check_endpoint(e)?;
        }
        if self.lease_ttl_s < 2 {
            return Err(bad(
                "lease_ttl_s",
                self.lease_ttl_s.to_string(),
                "must be at least 2 seconds (keep-alives go out every third of it)",
            ));
        }
        if !(100..=60_000).contains(&self.request_timeout_ms) {
            return Err(bad(
                "request_timeout_ms",
                self.request_timeout_ms.to_string(),
                "must be between 100 and 60000",
            ));
        }
        if self.vap_grace_ms > 60_000 {
            return Err(bad(
                "vap_grace_ms",
                self.vap_grace_ms.to_string(),
                "must be at most 60000",
            ));
        }
        Ok(())
    }

    fn check_endpoint(&self, e: &str) -> Result<()> {
        let bad = |reason: &str| ClusterError::BadSetting {
            field: "endpoints",
            value: e.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = e
            .split_once("://")
            .ok_or_else(|| bad("expected http://HOST:PORT or https://HOST:PORT"))?;
        match scheme {
            "http" if self.uses_tls() => {
                return Err(bad("TLS is configured (ca_file/cert_file): use https://"));
            }
            "http" | "https" => {}
            _ => return Err(bad("the scheme must be http or https")),
        }
        let authority = rest.trim_end_matches('/');
        let port = authority
            .rsplit_once(':')
            .map(|(_, p)| p)
            .ok_or_else(|| bad("missing :PORT"))?;
        if authority.contains('/') || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("expected http://HOST:PORT or https://HOST:PORT"));
        }
        Ok(())
    }

    /// True when a CA or a client certificate is configured.
    pub fn uses_tls(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some()
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_s)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn vap_grace(&self) -> Duration {
        Duration::from_millis(self.vap_grace_ms)
    }

    /// The key layout of the prefix (validated by [`Self::validate`]).
    pub fn layout(&self) -> Result<KeyLayout> {
        KeyLayout::new(&self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> EtcdSettings {
        EtcdSettings::new(vec!["http://127.0.0.1:2379".into()], "/vdmm")
    }

    #[test]
    fn defaults_validate() {
        ok().validate().unwrap();
        let s: EtcdSettings =
            serde_json::from_str(r#"{"endpoints":["https://etcd1:2379"],"ca_file":"/ca.pem"}"#)
                .unwrap();
        assert_eq!(s.prefix, "/vdmm");
        assert_eq!(s.lease_ttl_s, 5);
        s.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_str::<EtcdSettings>(r#"{"endpoints":[],"endpoint":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("endpoint"), "{e}");
    }

    #[test]
    fn each_bad_field_is_named() {
        type Edit = Box<dyn Fn(&mut EtcdSettings)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("endpoints", Box::new(|s| s.endpoints.clear())),
            (
                "endpoints",
                Box::new(|s| s.endpoints = vec!["127.0.0.1:2379".into()]),
            ),
            (
                "endpoints",
                Box::new(|s| s.endpoints = vec!["ftp://h:1".into()]),
            ),
            (
                "endpoints",
                Box::new(|s| s.endpoints = vec!["http://h".into()]),
            ),
            (
                "endpoints",
                Box::new(|s| s.endpoints = vec!["http://h:0".into()]),
            ),
            ("endpoints", Box::new(|s| s.ca_file = Some("/ca".into()))),
            ("prefix", Box::new(|s| s.prefix = "vdmm".into())),
            ("key_file", Box::new(|s| s.cert_file = Some("/c".into()))),
            ("cert_file", Box::new(|s| s.key_file = Some("/k".into()))),
            ("password_file", Box::new(|s| s.username = Some("u".into()))),
            (
                "username",
                Box::new(|s| s.password_file = Some("/p".into())),
            ),
            ("lease_ttl_s", Box::new(|s| s.lease_ttl_s = 1)),
            ("request_timeout_ms", Box::new(|s| s.request_timeout_ms = 5)),
            ("vap_grace_ms", Box::new(|s| s.vap_grace_ms = 60_001)),
        ];
        for (field, change) in cases {
            let mut s = ok();
            change(&mut s);
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
    }
}
