//! The values of the liveness and placement records (JSON): a node's registration
//! (`PREFIX/hosts/NAME`) and a client's vAP location (`PREFIX/vaps/CLIENT_MAC`). Pure
//! data; [`super::liveness`] writes the first, [`super::watchdog`] reads both and
//! rewrites them when a node's lease expires.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// Whether a node is taking part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Registered and holding its lease.
    Up,
    /// Its lease expired: the watchdog marked it down and moved its clients away.
    Down,
}

/// `PREFIX/hosts/NAME`: a node (AP host or gateway) and its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub state: HostState,
    /// The node's tunnel endpoints when it registered (where anchors reach it).
    #[serde(default)]
    pub locators: Vec<IpAddr>,
    /// Nodes that take its clients when it goes down, in order of preference (any node
    /// that is up when empty or when none of them is).
    #[serde(default)]
    pub neighbours: Vec<String>,
    /// Unix time of the last change of `state`.
    #[serde(default)]
    pub since_unix: u64,
}

/// `PREFIX/vaps/CLIENT_MAC`: where a client's vAP lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VapLocation {
    /// The node (AP host) serving the vAP.
    pub ap_host: String,
    /// The vAP's own MAC (`02:..`), the client's gateway MAC.
    pub vap_mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// Locator of the client's home anchor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<IpAddr>,
    /// Local breakout instead of the tunnel to the anchor.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub breakout: bool,
    /// How many times the watchdog moved it off a node that went down.
    #[serde(default)]
    pub rehomed: u32,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_tolerate_missing_optional_fields() {
        let h = HostRecord {
            state: HostState::Up,
            locators: vec!["192.0.2.1".parse().unwrap()],
            neighbours: vec!["ap2".into()],
            since_unix: 7,
        };
        let text = serde_json::to_string(&h).unwrap();
        assert_eq!(
            text,
            r#"{"state":"up","locators":["192.0.2.1"],"neighbours":["ap2"],"since_unix":7}"#
        );
        assert_eq!(serde_json::from_str::<HostRecord>(&text).unwrap(), h);
        let bare: HostRecord = serde_json::from_str(r#"{"state":"down"}"#).unwrap();
        assert_eq!(bare.state, HostState::Down);
        let v: VapLocation =
            serde_json::from_str(r#"{"ap_host":"ap1","vap_mac":"02:56:44:00:00:01"}"#).unwrap();
        assert_eq!((v.ap_host.as_str(), v.ipv4, v.rehomed), ("ap1", None, 0));
    }
}
