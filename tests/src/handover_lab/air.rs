//! The radio between mobile nodes and AP hosts, emulated in one namespace ("air") with
//! tc: every station (client, VM) and every AP host has one veth port there. What a
//! station sends goes to the one AP host it is associated with (a u32 match-all filter
//! on the station's port, redirected with mirred; replaced in one step at a handover);
//! what an AP host sends reaches the stations in its range (a filter per station on the
//! AP's port matching the station's MAC, plus one that copies broadcast and multicast to
//! every station in range). A station may be in range of several AP hosts at once (a
//! make-before-break handover happens in the overlap), or of none. Frames no filter takes
//! end in the air namespace's own stack, which has no addresses: they are lost, as
//! frames out of range are. (Bridge VLAN filtering, the obvious alternative, is not in
//! this kernel.)

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use crate::netns::Netns;

/// Filter priorities on an AP host's port: per station `UNICAST_PREF + index`, then the
/// broadcast copy.
const UNICAST_PREF: u32 = 10;
const GROUP_PREF: u32 = 100;
/// The uplink filter on a station's port.
const UPLINK_PREF: u32 = 10;

/// A station of the air: its port and its MAC.
#[derive(Clone, Debug)]
pub struct Station {
    pub port: String,
    pub mac: [u8; 6],
}

/// The air's state: which AP port each station is associated with, which ones it hears.
pub struct Air<'a> {
    ns: &'a Netns,
    stations: Vec<Station>,
    associated: BTreeMap<usize, String>,
    in_range: BTreeMap<String, BTreeSet<usize>>,
}

impl<'a> Air<'a> {
    /// The air in `ns`, whose ports (already up) are the stations' and `ap_ports`.
    pub fn new(ns: &'a Netns, stations: Vec<Station>, ap_ports: &[&str]) -> Result<Self> {
        for p in stations
            .iter()
            .map(|s| s.port.as_str())
            .chain(ap_ports.iter().copied())
        {
            tc(ns, &["qdisc", "add", "dev", p, "clsact"])?;
        }
        Ok(Self {
            ns,
            stations,
            associated: BTreeMap::new(),
            in_range: ap_ports
                .iter()
                .map(|p| (p.to_string(), BTreeSet::new()))
                .collect(),
        })
    }

    fn index(&self, port: &str) -> usize {
        self.stations
            .iter()
            .position(|s| s.port == port)
            .unwrap_or_else(|| panic!("no station port {port}"))
    }

    /// The station hears `ap_port` from now on (downlink).
    pub fn enter_range(&mut self, station: &str, ap_port: &str) -> Result<()> {
        let i = self.index(station);
        let mac = self.stations[i].mac;
        let pref = (UNICAST_PREF + i as u32).to_string();
        let mut args = vec![
            "filter", "replace", "dev", ap_port, "ingress", "pref", &pref, "protocol", "all", "u32",
        ];
        let hi = format!("0x{:02x}{:02x}", mac[0], mac[1]);
        let lo = format!("0x{:02x}{:02x}{:02x}{:02x}", mac[2], mac[3], mac[4], mac[5]);
        args.extend(["match", "u16", &hi, "0xffff", "at", "-14"]);
        args.extend(["match", "u32", &lo, "0xffffffff", "at", "-12"]);
        let port = self.stations[i].port.clone();
        args.extend(["action", "mirred", "egress", "redirect", "dev", &port]);
        tc(self.ns, &args)?;
        self.in_range
            .get_mut(ap_port)
            .expect("known AP port")
            .insert(i);
        self.group_filter(ap_port)
    }

    /// The station no longer hears `ap_port`.
    pub fn leave_range(&mut self, station: &str, ap_port: &str) -> Result<()> {
        let i = self.index(station);
        let pref = (UNICAST_PREF + i as u32).to_string();
        tc(
            self.ns,
            &["filter", "del", "dev", ap_port, "ingress", "pref", &pref],
        )?;
        self.in_range
            .get_mut(ap_port)
            .expect("known AP port")
            .remove(&i);
        self.group_filter(ap_port)
    }

    /// Broadcast and multicast from `ap_port` to every station in its range.
    fn group_filter(&self, ap_port: &str) -> Result<()> {
        let pref = GROUP_PREF.to_string();
        let ports: Vec<String> = self.in_range[ap_port]
            .iter()
            .map(|i| self.stations[*i].port.clone())
            .collect();
        // Delete and re-add (a u32 filter's actions cannot be replaced as a set); a
        // broadcast lost in between costs a retry, never a measured packet.
        let _ = tc(
            self.ns,
            &["filter", "del", "dev", ap_port, "ingress", "pref", &pref],
        );
        if ports.is_empty() {
            return Ok(());
        }
        let mut args: Vec<&str> = vec![
            "filter", "add", "dev", ap_port, "ingress", "pref", &pref, "protocol", "all", "u32",
            "match", "u16", "0x0100", "0x0100", "at", "-14",
        ];
        for (k, p) in ports.iter().enumerate() {
            let how = if k + 1 == ports.len() {
                "redirect"
            } else {
                "mirror"
            };
            args.extend(["action", "mirred", "egress", how, "dev", p]);
        }
        tc(self.ns, &args)
    }

    /// The station's frames go to `ap_port` from now on (one filter replaced).
    pub fn associate(&mut self, station: &str, ap_port: &str) -> Result<()> {
        let i = self.index(station);
        let pref = UPLINK_PREF.to_string();
        tc(
            self.ns,
            &[
                "filter", "replace", "dev", station, "ingress", "pref", &pref, "handle", "800::1",
                "protocol", "all", "u32", "match", "u32", "0", "0", "action", "mirred", "egress",
                "redirect", "dev", ap_port,
            ],
        )?;
        self.associated.insert(i, ap_port.to_string());
        Ok(())
    }

    /// The station's frames reach no AP host.
    pub fn disassociate(&mut self, station: &str) -> Result<()> {
        let i = self.index(station);
        if self.associated.remove(&i).is_some() {
            let pref = UPLINK_PREF.to_string();
            tc(
                self.ns,
                &["filter", "del", "dev", station, "ingress", "pref", &pref],
            )?;
        }
        Ok(())
    }

    /// Associated with `ap_port` and in its range, nothing else.
    pub fn attach_only(&mut self, station: &str, ap_port: &str) -> Result<()> {
        let ports: Vec<String> = self.in_range.keys().cloned().collect();
        for p in ports {
            let i = self.index(station);
            if p != ap_port && self.in_range[&p].contains(&i) {
                self.leave_range(station, &p)?;
            }
        }
        self.enter_range(station, ap_port)?;
        self.associate(station, ap_port)
    }

    /// Out of everyone's range, associated with no one.
    pub fn detach(&mut self, station: &str) -> Result<()> {
        self.disassociate(station)?;
        let ports: Vec<String> = self.in_range.keys().cloned().collect();
        for p in ports {
            let i = self.index(station);
            if self.in_range[&p].contains(&i) {
                self.leave_range(station, &p)?;
            }
        }
        Ok(())
    }
}

fn tc(ns: &Netns, args: &[&str]) -> Result<()> {
    crate::netns::run(
        std::process::Command::new("tc")
            .args(["-n", ns.name()])
            .args(args),
    )?;
    Ok(())
}
