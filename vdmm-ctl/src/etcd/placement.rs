//! The vAP locations (`PREFIX/vaps/CLIENT_MAC`) as one node's data plane needs them. In
//! cluster mode the location is the one source of truth of a vAP (which AP host serves
//! it, its vAP MAC, addresses, anchor, breakout); every node derives its part:
//!
//! - an AP host serves the vAPs located on it, resolved with its own endpoints (the outer
//!   source toward the anchor) and its client-facing interface ([`Placement::served`]);
//! - the node that is a client's anchor (one of its endpoints is the location's `anchor`)
//!   binds each of the client's addresses (`/32`, `/128`) to a locator of the AP host the
//!   location names, from `PREFIX/hosts/NAME` ([`Placement::anchored`]); these bindings
//!   take the place of a shared binding of the same home on that node;
//! - a vAP that left this node is forwarded to its new AP host for a grace period
//!   ([`Placement::forward_target`]; the timing is [`super::store`]'s).
//!
//! Pure: [`super::store`] feeds it the mirror's records and turns what it derives into
//! the agent's deltas. Records that do not resolve on this node are left out with the
//! reason (logged and counted by the caller).

use std::{collections::BTreeMap, net::IpAddr};

use super::records::{HostRecord, VapLocation};
use crate::{
    addr::{Family, Prefix},
    agent::state::BindingSpec,
    maps::resolve_source,
    vap::Mac,
    vap_record::{IfName, VapRecord},
};

/// The locations and host records of the cluster, as last read.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    locations: BTreeMap<Mac, VapLocation>,
    hosts: BTreeMap<String, HostRecord>,
}

/// A location put: the vAP's record as `node` writes it (`vap create` through its agent).
pub fn location_of(record: &VapRecord, node: &str) -> VapLocation {
    VapLocation {
        ap_host: node.to_string(),
        vap_mac: record.vap_mac.to_string(),
        ipv4: record.ipv4,
        ipv6: record.ipv6,
        anchor: record.anchor,
        breakout: record.breakout,
        rehomed: 0,
    }
}

/// The host address (`/32`, `/128`) of one client address.
fn host_prefix(a: IpAddr) -> Prefix {
    let len = match a {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    Prefix::new(a, len).expect("a host prefix has no host bits")
}

impl Placement {
    /// Records a location (`PREFIX/vaps/ID`); an error names what is wrong with it.
    pub fn put_location(&mut self, id: &str, value: &[u8]) -> Result<Mac, String> {
        let client: Mac = id.parse().map_err(|e| format!("{e}"))?;
        let l: VapLocation = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        self.locations.insert(client, l);
        Ok(client)
    }

    pub fn delete_location(&mut self, id: &str) {
        if let Ok(client) = id.parse::<Mac>() {
            self.locations.remove(&client);
        }
    }

    /// Records a host (`PREFIX/hosts/NAME`).
    pub fn put_host(&mut self, name: &str, value: &[u8]) -> Result<(), String> {
        let h: HostRecord = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        self.hosts.insert(name.to_string(), h);
        Ok(())
    }

    pub fn delete_host(&mut self, name: &str) {
        self.hosts.remove(name);
    }

    pub fn location(&self, client: &Mac) -> Option<&VapLocation> {
        self.locations.get(client)
    }

    /// True when `client`'s location names `node`.
    pub fn is_on(&self, client: &Mac, node: &str) -> bool {
        self.location(client).is_some_and(|l| l.ap_host == node)
    }

    /// The record `node` serves for one location: the outer source toward the anchor
    /// resolved with `endpoints`, the client-facing interface `iface`.
    pub fn record(
        client: Mac,
        l: &VapLocation,
        endpoints: &[IpAddr],
        iface: Option<IfName>,
    ) -> Result<VapRecord, String> {
        let vap_mac: Mac = l
            .vap_mac
            .parse()
            .map_err(|e| format!("vap_mac `{}`: {e}", l.vap_mac))?;
        let iface = iface.ok_or("this node has no client-facing interface")?;
        let source = l
            .anchor
            .map(|a| resolve_source(endpoints, a, None))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(VapRecord {
            client,
            vap_mac,
            ipv4: l.ipv4,
            ipv6: l.ipv6,
            anchor: l.anchor,
            source,
            breakout: l.breakout,
            iface,
            forward: None,
            forward_source: None,
        })
    }

    /// The vAPs located on `node`, and the reasons of those left out (a location that
    /// does not resolve here or clashes with one taken before it).
    pub fn served(
        &self,
        node: &str,
        endpoints: &[IpAddr],
        iface: Option<IfName>,
    ) -> (BTreeMap<Mac, VapRecord>, Vec<String>) {
        let mut out = BTreeMap::new();
        let mut taken: Vec<VapRecord> = Vec::new();
        let mut left_out = Vec::new();
        for (client, l) in self.locations.iter().filter(|(_, l)| l.ap_host == node) {
            match Self::record(*client, l, endpoints, iface)
                .and_then(|r| r.check(&taken).map(|()| r).map_err(|e| e.to_string()))
            {
                Ok(r) => {
                    taken.push(r);
                    out.insert(*client, r);
                }
                Err(e) => left_out.push(format!("the vAP of {client} located here: {e}")),
            }
        }
        (out, left_out)
    }

    /// A locator of `host` this node can send to from one of `endpoints` (one of
    /// `prefer`'s family first), with that source.
    fn locator_of(
        &self,
        host: &str,
        prefer: Option<Family>,
        endpoints: &[IpAddr],
    ) -> Option<(IpAddr, IpAddr)> {
        let h = self.hosts.get(host)?;
        let ordered = h
            .locators
            .iter()
            .filter(|l| Some(Family::of(l)) == prefer)
            .chain(h.locators.iter().filter(|l| Some(Family::of(l)) != prefer));
        ordered
            .filter_map(|l| resolve_source(endpoints, *l, None).ok().map(|s| (*l, s)))
            .next()
    }

    /// The bindings of the clients anchored at one of `endpoints`: each address of the
    /// client to a locator of its AP host (the anchor's family first), with the slow-path
    /// route as the handover's anchor switch makes it; and the reasons of those left out.
    pub fn anchored(&self, endpoints: &[IpAddr]) -> (BTreeMap<Prefix, BindingSpec>, Vec<String>) {
        let mut out = BTreeMap::new();
        let mut left_out = Vec::new();
        for (client, l) in &self.locations {
            let Some(anchor) = l.anchor.filter(|a| endpoints.contains(a)) else {
                continue;
            };
            let Some((locator, source)) =
                self.locator_of(&l.ap_host, Some(Family::of(&anchor)), endpoints)
            else {
                left_out.push(format!(
                    "client {client} anchored here: its AP host `{}` has no locator this \
                     node can reach (PREFIX/hosts/{})",
                    l.ap_host, l.ap_host
                ));
                continue;
            };
            let addrs = l
                .ipv4
                .map(IpAddr::V4)
                .into_iter()
                .chain(l.ipv6.map(IpAddr::V6));
            for a in addrs {
                let home = host_prefix(a);
                out.insert(
                    home,
                    BindingSpec {
                        home,
                        locator,
                        source,
                        route: true,
                    },
                );
            }
        }
        (out, left_out)
    }

    /// Where the vAP of `client`, located elsewhere now, is forwarded from this node: a
    /// locator of its new AP host and the local source (None when the client has no
    /// location or its AP host no reachable locator).
    pub fn forward_target(&self, client: &Mac, endpoints: &[IpAddr]) -> Option<(IpAddr, IpAddr)> {
        let l = self.locations.get(client)?;
        let prefer = l.anchor.map(|a| Family::of(&a));
        self.locator_of(&l.ap_host, prefer, endpoints)
    }

    /// The clients located on `host`.
    pub fn clients_on<'a>(&'a self, host: &'a str) -> impl Iterator<Item = Mac> + 'a {
        self.locations
            .iter()
            .filter(move |(_, l)| l.ap_host == host)
            .map(|(c, _)| *c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::records::HostState;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn placement() -> Placement {
        let mut p = Placement::default();
        for (name, loc) in [("ap1", "192.0.2.11"), ("ap2", "192.0.2.12")] {
            p.put_host(
                name,
                &serde_json::to_vec(&HostRecord {
                    state: HostState::Up,
                    locators: vec![ip("2001:db8::99"), ip(loc)],
                    neighbours: vec![],
                    since_unix: 0,
                })
                .unwrap(),
            )
            .unwrap();
        }
        p.put_location(
            "00:16:3e:00:00:01",
            br#"{"ap_host":"ap1","vap_mac":"02:56:44:00:00:01","ipv4":"10.1.0.5","ipv6":"2001:db8:1::5","anchor":"192.0.2.1"}"#,
        )
        .unwrap();
        p
    }

    #[test]
    fn the_ap_host_serves_its_vaps_with_its_own_source_and_interface() {
        let p = placement();
        let iface = Some("wlan0".parse().unwrap());
        let (served, left) = p.served("ap1", &[ip("192.0.2.11")], iface);
        assert!(left.is_empty(), "{left:?}");
        let r = served[&"00:16:3e:00:00:01".parse().unwrap()];
        assert_eq!(r.source, Some(ip("192.0.2.11")));
        assert_eq!(r.iface.as_str(), "wlan0");
        assert_eq!(r.vap_mac.to_string(), "02:56:44:00:00:01");
        assert!(p.served("ap2", &[ip("192.0.2.12")], iface).0.is_empty());
        // Without a client-facing interface the vAP is left out, with the reason.
        let (served, left) = p.served("ap1", &[ip("192.0.2.11")], None);
        assert!(served.is_empty());
        assert!(left[0].contains("no client-facing interface"), "{left:?}");
    }

    #[test]
    fn the_anchor_binds_the_clients_addresses_to_the_ap_hosts_locator() {
        let mut p = placement();
        let eps = [ip("192.0.2.1"), ip("2001:db8::1")];
        let (b, left) = p.anchored(&eps);
        assert!(left.is_empty(), "{left:?}");
        let v4 = b[&"10.1.0.5/32".parse().unwrap()];
        // The anchor's family first: the IPv4 locator although IPv6 is listed first.
        assert_eq!((v4.locator, v4.source), (ip("192.0.2.11"), ip("192.0.2.1")));
        assert!(v4.route);
        assert_eq!(
            b[&"2001:db8:1::5/128".parse().unwrap()].locator,
            ip("192.0.2.11")
        );
        // Not anchored here: nothing.
        assert!(p.anchored(&[ip("192.0.2.2")]).0.is_empty());
        // The location moves: the bindings follow.
        p.put_location(
            "00:16:3e:00:00:01",
            br#"{"ap_host":"ap2","vap_mac":"02:56:44:00:00:01","ipv4":"10.1.0.5","anchor":"192.0.2.1"}"#,
        )
        .unwrap();
        let (b, _) = p.anchored(&eps);
        assert_eq!(b.len(), 1);
        assert_eq!(b[&"10.1.0.5/32".parse().unwrap()].locator, ip("192.0.2.12"));
        assert_eq!(
            p.forward_target(&"00:16:3e:00:00:01".parse().unwrap(), &[ip("192.0.2.11")]),
            Some((ip("192.0.2.12"), ip("192.0.2.11")))
        );
        // An AP host without a record: left out with the reason.
        p.delete_host("ap2");
        let (b, left) = p.anchored(&eps);
        assert!(b.is_empty() && left[0].contains("ap2"), "{left:?}");
    }

    #[test]
    fn a_location_round_trips_through_the_record() {
        let p = placement();
        let c: Mac = "00:16:3e:00:00:01".parse().unwrap();
        let r = Placement::record(
            c,
            p.location(&c).unwrap(),
            &[ip("192.0.2.11")],
            Some("w0".parse().unwrap()),
        )
        .unwrap();
        let l = location_of(&r, "ap1");
        assert_eq!(&l, p.location(&c).unwrap());
        assert!(p.is_on(&c, "ap1") && !p.is_on(&c, "ap2"));
        assert_eq!(p.clients_on("ap1").collect::<Vec<_>>(), vec![c]);
    }
}
