//! A vAP as the agent keeps it ([`VapRecord`]): every default resolved (vAP MAC, outer
//! source, client-facing interface), without what only one data plane knows (the counter
//! slot, the interface's index and MAC). The agent's desired state stores records;
//! [`crate::vap`] writes them into the maps and [`VapRecord::of_entry`] reads them back,
//! so the reconciler compares like with like.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    error::{Error, Result},
    maps::resolve_source,
    vap::{Mac, VapEntry, VapIdentity, VapSpec, check_spec},
};

/// Serde of a [`Mac`] as its text (`02:00:5e:10:00:01`).
impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Longest interface name the kernel takes (`IFNAMSIZ` less the NUL).
const IFNAME_MAX: usize = libc::IF_NAMESIZE - 1;

/// An interface name, held inline (so a [`VapRecord`] is `Copy`, like the other entries
/// of the desired state).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfName {
    len: u8,
    bytes: [u8; IFNAME_MAX],
}

impl IfName {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("checked when parsed")
    }
}

impl FromStr for IfName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.is_empty()
            || s.len() > IFNAME_MAX
            || s.contains('/')
            || s.contains(':')
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::Conflict(format!(
                "invalid interface name `{s}` (1 to {IFNAME_MAX} bytes, no `/`, `:` or spaces)"
            )));
        }
        let mut bytes = [0; IFNAME_MAX];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Ok(IfName {
            len: s.len() as u8,
            bytes,
        })
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Serialize for IfName {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IfName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One vAP with every default resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VapRecord {
    /// The client's MAC: the vAP's key.
    pub client: Mac,
    /// The MAC the client uses as its gateway's.
    pub vap_mac: Mac,
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// The client's anchor (uplink tunnel locator) and the local endpoint the tunnel is
    /// sent from: both or neither.
    #[serde(default)]
    pub anchor: Option<IpAddr>,
    #[serde(default)]
    pub source: Option<IpAddr>,
    /// Local breakout instead of the tunnel.
    #[serde(default)]
    pub breakout: bool,
    /// The client-facing interface.
    pub iface: IfName,
    /// While a handover's grace period lasts: where packets for the client are tunnelled
    /// (the AP host it moved to) and from which local endpoint; both or neither.
    #[serde(default)]
    pub forward: Option<IpAddr>,
    #[serde(default)]
    pub forward_source: Option<IpAddr>,
}

impl VapRecord {
    /// The client's addresses, IPv4 first.
    pub fn addrs(&self) -> Vec<IpAddr> {
        self.ipv4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.ipv6.map(IpAddr::V6))
            .collect()
    }

    /// The anchor's locator and the outer source.
    pub fn uplink(&self) -> Option<(IpAddr, IpAddr)> {
        self.anchor.zip(self.source)
    }

    /// The forwarding target and its outer source.
    pub fn forwarding(&self) -> Option<(IpAddr, IpAddr)> {
        self.forward.zip(self.forward_source)
    }

    /// The record of a vAP read from the maps; None when its interface has no name any
    /// more (it is gone).
    pub fn of_entry(e: &VapEntry) -> Option<VapRecord> {
        Some(VapRecord {
            client: e.client,
            vap_mac: e.vap_mac,
            ipv4: e.ipv4,
            ipv6: e.ipv6,
            anchor: e.anchor.map(|(a, _)| a),
            source: e.anchor.map(|(_, s)| s),
            breakout: e.breakout,
            iface: e.iface.as_deref()?.parse().ok()?,
            forward: e.forward.map(|(a, _)| a),
            forward_source: e.forward.map(|(_, s)| s),
        })
    }

    /// The spec the record is made from, for [`check_spec`].
    pub fn spec(&self) -> VapSpec {
        VapSpec {
            client: self.client,
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            anchor: self.anchor,
            source: self.source,
            vap_mac: Some(self.vap_mac),
            iface: Some(self.iface.to_string()),
            breakout: self.breakout,
        }
    }

    /// Checks the record against the vAPs of `others` (which must not hold it): the rules
    /// of [`check_spec`], and an outer source of the anchor's and the forwarding target's
    /// family for each of them.
    pub fn check(&self, others: &[impl VapIdentity]) -> Result<()> {
        check_spec(&self.spec(), others)?;
        pair("anchor", self.anchor, self.source)?;
        pair("forwarding target", self.forward, self.forward_source)
    }
}

/// A locator and its outer source: both or neither, of one family.
fn pair(what: &str, locator: Option<IpAddr>, source: Option<IpAddr>) -> Result<()> {
    match (locator, source) {
        (Some(l), Some(s)) => resolve_source(&[s], l, Some(s)).map(drop),
        (None, None) => Ok(()),
        _ => Err(Error::Conflict(format!(
            "a vAP's {what} and its outer source go together"
        ))),
    }
}

impl VapIdentity for VapRecord {
    fn client(&self) -> Mac {
        self.client
    }

    fn vap_mac(&self) -> Mac {
        self.vap_mac
    }

    fn addrs(&self) -> Vec<IpAddr> {
        VapRecord::addrs(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> VapRecord {
        VapRecord {
            client: "00:16:3e:00:00:01".parse().unwrap(),
            vap_mac: "02:aa:00:00:00:01".parse().unwrap(),
            ipv4: Some("10.1.0.5".parse().unwrap()),
            ipv6: Some("2001:db8:1::5".parse().unwrap()),
            anchor: Some("192.0.2.1".parse().unwrap()),
            source: Some("192.0.2.11".parse().unwrap()),
            breakout: false,
            iface: "ap1c".parse().unwrap(),
            forward: None,
            forward_source: None,
        }
    }

    #[test]
    fn interface_names_are_checked() {
        assert_eq!("wlan0".parse::<IfName>().unwrap().as_str(), "wlan0");
        assert_eq!(
            "a23456789012345".parse::<IfName>().unwrap().to_string(),
            "a23456789012345"
        );
        for bad in ["", "a234567890123456", "a/b", "a b", "eth0:1"] {
            let e = bad.parse::<IfName>().unwrap_err();
            assert!(
                e.to_string().starts_with("invalid interface name"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn records_round_trip_through_json_and_entries() {
        let r = record();
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<VapRecord>(&text).unwrap(), r);
        assert!(text.contains(r#""client":"00:16:3e:00:00:01""#), "{text}");
        let e =
            serde_json::from_str::<VapRecord>(&text.replace("00:16:3e", "00:16:3g")).unwrap_err();
        assert!(e.to_string().contains("invalid MAC"), "{e}");
        let entry = VapEntry {
            client: r.client,
            vap_mac: r.vap_mac,
            ipv4: r.ipv4,
            ipv6: r.ipv6,
            anchor: r.uplink(),
            breakout: false,
            forward: None,
            ifindex: 3,
            iface: Some("ap1c".into()),
            host_mac: Mac::default(),
            slot: 9,
        };
        assert_eq!(VapRecord::of_entry(&entry), Some(r));
        let gone = VapEntry {
            iface: None,
            ..entry
        };
        assert_eq!(VapRecord::of_entry(&gone), None);
    }

    #[test]
    fn records_are_checked_as_a_whole() {
        let r = record();
        assert!(r.check(&[] as &[VapRecord]).is_ok());
        let mut other = r;
        other.client = "00:16:3e:00:00:02".parse().unwrap();
        other.vap_mac = "02:aa:00:00:00:02".parse().unwrap();
        assert_eq!(
            other.check(&[r]).unwrap_err().to_string(),
            "address 10.1.0.5 already belongs to the vAP of client 00:16:3e:00:00:01"
        );
        let mut half = r;
        half.source = None;
        assert!(
            half.check(&[] as &[VapRecord])
                .unwrap_err()
                .to_string()
                .contains("go together")
        );
        let mut mixed = r;
        mixed.forward = Some("2001:db8::12".parse().unwrap());
        mixed.forward_source = Some("192.0.2.11".parse().unwrap());
        assert!(matches!(
            mixed.check(&[] as &[VapRecord]),
            Err(Error::FamilyMismatch { .. })
        ));
    }
}
