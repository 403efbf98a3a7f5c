//! The vAPs of the agent's desired state: what a client asks for ([`VapCreate`], a
//! forwarding change), checked against the vAPs the state (and the batch so far) holds
//! with the rules of `vdmm-ctl vap create` ([`crate::vap::check_spec`]), and resolved into
//! [`VapRecord`]s: vAP MAC picked, outer source chosen, interface named. Pure: the
//! client-facing interface's default is filled in by the agent before planning
//! ([`crate::vap::client_iface`]), as it needs the pins.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::state::addr_text;
use crate::{
    error::{Error, Result},
    maps::resolve_source,
    vap::{Mac, VapSpec, check_spec, pick_vap_mac},
    vap_record::VapRecord,
};

/// `vap create`: a new vAP. Defaults as the command's: the vAP MAC derived from the client
/// MAC, the lowest local endpoint of the anchor's family as the source, the one
/// client-facing interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VapCreate {
    pub client: Mac,
    #[serde(default, with = "addr_text::option")]
    pub ipv4: Option<IpAddr>,
    #[serde(default, with = "addr_text::option")]
    pub ipv6: Option<IpAddr>,
    #[serde(default, with = "addr_text::option")]
    pub anchor: Option<IpAddr>,
    #[serde(default, with = "addr_text::option")]
    pub source: Option<IpAddr>,
    #[serde(default)]
    pub vap_mac: Option<Mac>,
    #[serde(default)]
    pub iface: Option<String>,
    #[serde(default)]
    pub breakout: bool,
}

fn v4(a: IpAddr) -> Result<Ipv4Addr> {
    match a {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(Error::Conflict(format!("ipv4 {a} is not an IPv4 address"))),
    }
}

fn v6(a: IpAddr) -> Result<Ipv6Addr> {
    match a {
        IpAddr::V6(a) => Ok(a),
        IpAddr::V4(_) => Err(Error::Conflict(format!("ipv6 {a} is not an IPv6 address"))),
    }
}

impl VapCreate {
    /// The spec of `vdmm-ctl vap create` (addresses checked for their family).
    pub fn spec(&self) -> Result<VapSpec> {
        if self.source.is_some() && self.anchor.is_none() {
            return Err(Error::Conflict(
                "a vAP's outer source (source) needs its anchor (anchor)".into(),
            ));
        }
        Ok(VapSpec {
            client: self.client,
            ipv4: self.ipv4.map(v4).transpose()?,
            ipv6: self.ipv6.map(v6).transpose()?,
            anchor: self.anchor,
            source: self.source,
            vap_mac: self.vap_mac,
            iface: self.iface.clone(),
            breakout: self.breakout,
        })
    }

    /// Checks the request against the vAPs that exist and resolves it with the local
    /// endpoints now. The interface must be named (the agent names the default one).
    pub fn resolve(&self, existing: &[VapRecord], endpoints: &[IpAddr]) -> Result<VapRecord> {
        let spec = self.spec()?;
        check_spec(&spec, existing)?;
        let iface = self
            .iface
            .as_deref()
            .ok_or_else(|| {
                Error::Conflict("a vAP needs its client-facing interface (iface)".into())
            })?
            .parse()?;
        let source = self
            .anchor
            .map(|a| resolve_source(endpoints, a, self.source))
            .transpose()?;
        Ok(VapRecord {
            client: spec.client,
            vap_mac: pick_vap_mac(&spec, existing),
            ipv4: spec.ipv4,
            ipv6: spec.ipv6,
            anchor: spec.anchor,
            source,
            breakout: spec.breakout,
            iface,
            forward: None,
            forward_source: None,
        })
    }
}

/// `vap forward`: `record` switched to forwarding to `to` (from `source`, by default the
/// lowest local endpoint of its family), or back to local delivery with `None`.
pub fn forwarding(
    record: &VapRecord,
    to: Option<IpAddr>,
    source: Option<IpAddr>,
    endpoints: &[IpAddr],
) -> Result<VapRecord> {
    let mut r = *record;
    match to {
        Some(to) => {
            r.forward_source = Some(resolve_source(endpoints, to, source)?);
            r.forward = Some(to);
        }
        None if source.is_some() => {
            return Err(Error::Conflict(
                "an outer source (source) without a forwarding target (to)".into(),
            ));
        }
        None => {
            r.forward = None;
            r.forward_source = None;
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn create(client: &str, v4: &str) -> VapCreate {
        VapCreate {
            client: client.parse().unwrap(),
            ipv4: Some(ip(v4)),
            anchor: Some(ip("192.0.2.1")),
            iface: Some("ap1c".into()),
            ..VapCreate::default()
        }
    }

    const EPS: [&str; 2] = ["192.0.2.11", "2001:db8::11"];

    fn eps() -> Vec<IpAddr> {
        EPS.iter().map(|e| ip(e)).collect()
    }

    #[test]
    fn a_create_resolves_every_default() {
        let r = create("00:16:3e:00:00:01", "10.1.0.5")
            .resolve(&[], &eps())
            .unwrap();
        assert_eq!(r.source, Some(ip("192.0.2.11")));
        assert_eq!(r.iface.as_str(), "ap1c");
        assert_ne!(r.vap_mac, r.client);
        assert_eq!(r.vap_mac.0[0] & 0x03, 0x02, "locally administered unicast");
        // The next client cannot take the first's address or vAP MAC.
        let mut c = create("00:16:3e:00:00:02", "10.1.0.5");
        assert_eq!(
            c.resolve(&[r], &eps()).unwrap_err().to_string(),
            "address 10.1.0.5 already belongs to the vAP of client 00:16:3e:00:00:01"
        );
        c.ipv4 = Some(ip("10.1.0.6"));
        c.vap_mac = Some(r.vap_mac);
        assert!(matches!(
            c.resolve(&[r], &eps()),
            Err(Error::VapTaken {
                what: "vAP MAC",
                ..
            })
        ));
        let e = create("00:16:3e:00:00:01", "10.1.0.9")
            .resolve(&[r], &eps())
            .unwrap_err();
        assert!(matches!(e, Error::VapExists(..)), "{e}");
    }

    #[test]
    fn bad_requests_get_one_line_errors() {
        let mut c = create("00:16:3e:00:00:01", "10.1.0.5");
        c.ipv4 = Some(ip("2001:db8:1::5"));
        assert_eq!(
            c.resolve(&[], &eps()).unwrap_err().to_string(),
            "ipv4 2001:db8:1::5 is not an IPv4 address"
        );
        let mut c = create("00:16:3e:00:00:01", "10.1.0.5");
        c.ipv6 = Some(ip("10.1.0.6"));
        assert!(c.resolve(&[], &eps()).is_err());
        let mut c = create("00:16:3e:00:00:01", "10.1.0.5");
        c.iface = None;
        assert!(
            c.resolve(&[], &eps())
                .unwrap_err()
                .to_string()
                .contains("client-facing interface")
        );
        let mut c = create("00:16:3e:00:00:01", "10.1.0.5");
        c.iface = Some("much-too-long-name".into());
        assert!(c.resolve(&[], &eps()).is_err());
        let mut c = create("00:16:3e:00:00:01", "10.1.0.5");
        c.anchor = Some(ip("2001:db8::1"));
        c.source = Some(ip("192.0.2.11"));
        assert!(matches!(
            c.resolve(&[], &eps()),
            Err(Error::FamilyMismatch { .. })
        ));
        let mut c = create("00:16:3e:00:00:01", "10.1.0.5");
        c.anchor = None;
        c.breakout = true;
        c.source = Some(ip("192.0.2.11"));
        assert!(c.resolve(&[], &eps()).is_err());
        let c = create("00:16:3e:00:00:01", "10.1.0.5");
        assert!(matches!(
            c.resolve(&[], &[]),
            Err(Error::NoEndpointOfFamily { .. })
        ));
        let e = serde_json::from_str::<VapCreate>(r#"{"client":"00:16:3e:00:00"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid MAC address"), "{e}");
        assert!(
            serde_json::from_str::<VapCreate>(r#"{"client":"00:16:3e:00:00:01","x":1}"#).is_err()
        );
    }

    #[test]
    fn forwarding_switches_on_and_off() {
        let r = create("00:16:3e:00:00:01", "10.1.0.5")
            .resolve(&[], &eps())
            .unwrap();
        let f = forwarding(&r, Some(ip("192.0.2.12")), None, &eps()).unwrap();
        assert_eq!(f.forwarding(), Some((ip("192.0.2.12"), ip("192.0.2.11"))));
        assert_eq!(forwarding(&f, None, None, &eps()).unwrap(), r);
        assert!(forwarding(&r, Some(ip("2001:db8::12")), Some(ip("192.0.2.11")), &eps()).is_err());
        assert!(forwarding(&r, None, Some(ip("192.0.2.11")), &eps()).is_err());
    }
}
