//! The handover lab: eleven network namespaces wired as
//!
//! ```text
//!                 ┌─ gw1 (anchor of the client, 10.20.0.0/24) ─┐
//!  correspondent ─┤                                            ├─ underlay ─┬─ ap1 ─┐
//!                 └─ gw2 (anchor of the VM, 10.21.0.0/24) ─────┘  (bridge)  ├─ ap2 ─┼─ air ─┬─ client
//!                                                                           └─ ap3 ─┘       └─ vm
//! ```
//!
//! The anchors and the AP hosts run vdmm, programmed only through the real `vdmm-ctl`
//! binary; each anchor binds its mobile node's home address to the locator of the AP
//! host the node is on, and every AP host accepts tunnels from both anchors and from the
//! other AP hosts (a handover's forwarding). The radio is the [`air`] namespace.
//!
//! In the vAP lab every anchor and AP host runs its agent (`vdmm-ctl daemon`, embedded
//! store; [`crate::agent::AgentProcess`]), started right after the data plane is loaded:
//! everything after that (endpoints, peers, bindings, vAPs) goes through the agents, and
//! the cluster file names each node's agent socket, so `vap move` changes the nodes
//! through their agents too. The baseline lab runs none: its binding updates are the
//! signalling the lab plays, written to the maps directly.
//!
//! Two kinds of mobility, one lab each ([`Mobility`]):
//!
//! - [`Mobility::Vap`]: the AP hosts run `vdmm_vap` on their radio ports; the client
//!   (10.20.0.10, gateway 10.20.0.1) and the VM (10.21.0.10, gateway 10.21.0.1) each have
//!   a vAP, first on ap1; `vdmm-ctl vap move --cluster FILE` moves them (the lab writes
//!   the cluster file).
//! - [`Mobility::Baseline`]: classic break-before-make ([`baseline`]): the AP hosts are
//!   plain vdmm tunnel endpoints with a subnet each on their radio port (10.3N.0.1/24)
//!   served by dnsmasq; the client keeps its home address 10.20.0.10/32 and gets a
//!   care-of address by DHCP at every attachment, after which the anchor's binding and
//!   the AP host's route are updated.
//!
//! The balancer scenario ([`alb`]) builds the vAP lab with extra stations
//! ([`HandoverLab::build_with`]): more clients of gw1 (10.20.0.21...), each in its own
//! namespace with a port on the air and a vAP on ap1. The other scenarios build none.
//!
//! Kernel settings as in the tunnel lab ([`crate::lab`]): no DAD, no rp_filter,
//! forwarding on the gateways and AP hosts, tx checksum offload off on the end hosts,
//! GRO on after link-up on every veth end that receives redirected frames, pass-only
//! XDP programs on the ends that receive `XDP_TX` frames (the underlay switch, the air).
//! Dropping the lab stops dnsmasq, unmounts the pins and deletes every namespace.

pub mod air;
pub mod alb;
pub mod alb_report;
pub mod analysis;
pub mod baseline;
pub mod demo;
pub mod report;
pub mod scenario;
pub mod traffic;

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{
    agent::AgentProcess,
    lab::{attach_pass_program, default_ctl_path, ping_once},
    netns::{Netns, addr, ethtool, mount_pin_dir, require_root, sysctl, unmount_pin_dir, veth},
};

/// How the lab's mobile nodes move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mobility {
    /// vAPs moved make-before-break by `vdmm-ctl vap move`.
    Vap,
    /// Break-before-make: re-attach, DHCP, binding update.
    Baseline,
}

pub const CORR: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
pub const CORR2: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 2);
pub const GW1_INNER: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
pub const GW2_INNER: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 1);
pub const GW1_UL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const GW2_UL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The client's home address (anchor gw1) and the VM's (anchor gw2).
pub const CLIENT_HOME: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 10);
pub const CLIENT_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
pub const VM_HOME: Ipv4Addr = Ipv4Addr::new(10, 21, 0, 10);
pub const VM_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 21, 0, 1);
pub const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x20, 0x10];
pub const VM_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x21, 0x10];

/// An extra station of the balancer scenario: a client of gw1 with a vAP.
pub struct ExtraClient {
    pub ns: Netns,
    pub mac: [u8; 6],
    pub home: Ipv4Addr,
    /// Its port on the air.
    pub port: String,
}

/// The MAC, home address and air port of extra station `i` (0-based).
pub fn extra_client(i: usize) -> ([u8; 6], Ipv4Addr, String) {
    (
        [0x02, 0x00, 0x00, 0x00, 0x22, 0x01 + i as u8],
        Ipv4Addr::new(10, 20, 0, 21 + i as u8),
        format!("air-a{}", i + 1),
    )
}

/// The locator (underlay address) of AP host `i` (0-based).
pub fn ap_locator(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 11 + i as u8)
}

/// The baseline's subnet gateway on AP host `i`'s radio port: 10.3N.0.1.
pub fn ap_subnet_gateway(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 31 + i as u8, 0, 1)
}

/// The AP host's name in the cluster file (`ap1`...).
pub fn ap_name(i: usize) -> String {
    format!("ap{}", i + 1)
}

pub const AP_UL_IF: &str = "ap-u";
pub const AP_RADIO_IF: &str = "ap-r";
pub const GW_CORR_IF: &str = "gw-c";
pub const GW_UL_IF: &str = "gw-u";
pub const CLIENT_IF: &str = "cl0";
pub const VM_IF: &str = "vm0";
/// The air's ports: one per AP host, one per station.
pub fn air_ap_port(i: usize) -> String {
    format!("air-ap{}", i + 1)
}
pub const AIR_CLIENT: &str = "air-cl";
pub const AIR_VM: &str = "air-vm";

pub fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A built lab; dropping it tears everything down.
pub struct HandoverLab {
    pub mobility: Mobility,
    pub ctl: PathBuf,
    /// Scratch directory: cluster file, handover counters, dnsmasq leases and logs.
    pub dir: PathBuf,
    /// The agents of the anchors and AP hosts (vAP lab only), stopped first on drop.
    pub agents: Vec<AgentProcess>,
    pins: Vec<PathBuf>,
    keepers: Vec<aya::Ebpf>,
    keeper_pins: Vec<PathBuf>,
    dhcp_servers: Vec<std::process::Child>,
    // Namespaces last: dropped after the pins are unmounted.
    pub corr: Netns,
    pub gw1: Netns,
    pub gw2: Netns,
    pub underlay: Netns,
    pub aps: Vec<Netns>,
    pub air: Netns,
    pub client: Netns,
    pub vm: Netns,
    /// Extra stations (the balancer scenario); none otherwise.
    pub extra: Vec<ExtraClient>,
}

impl HandoverLab {
    /// Builds the lab for `mobility`; on an error everything built so far is removed.
    pub fn build(mobility: Mobility, ctl: Option<PathBuf>) -> Result<Self> {
        Self::build_with(mobility, ctl, 0)
    }

    /// Builds the lab with `extra_clients` more stations on ap1 (vAP lab only).
    pub fn build_with(
        mobility: Mobility,
        ctl: Option<PathBuf>,
        extra_clients: usize,
    ) -> Result<Self> {
        require_root()?;
        if extra_clients > 0 && mobility != Mobility::Vap {
            bail!("extra stations exist only in the vAP lab");
        }
        if extra_clients > 200 {
            bail!("at most 200 extra stations");
        }
        let ctl = match ctl {
            Some(c) => c,
            None => default_ctl_path()?,
        };
        if !ctl.is_file() {
            bail!(
                "vdmm-ctl not found at {} (build it with `cargo build -p vdmm-ctl`, or set VDMM_CTL)",
                ctl.display()
            );
        }
        for tool in ["tc", "ethtool"]
            .into_iter()
            .chain(if mobility == Mobility::Baseline {
                vec!["dnsmasq", "udhcpc"]
            } else {
                vec![]
            })
        {
            if crate::netns::run(Command::new("sh").args(["-c", &format!("command -v {tool}")]))
                .is_err()
            {
                bail!("{tool} is not installed (run `cargo xtask setup`)");
            }
        }
        let aps = vec![
            Netns::new("hoap1")?,
            Netns::new("hoap2")?,
            Netns::new("hoap3")?,
        ];
        let mut lab = HandoverLab {
            mobility,
            ctl,
            dir: PathBuf::new(),
            agents: vec![],
            pins: vec![],
            keepers: vec![],
            keeper_pins: vec![],
            dhcp_servers: vec![],
            corr: Netns::new("hocorr")?,
            gw1: Netns::new("hogw1")?,
            gw2: Netns::new("hogw2")?,
            underlay: Netns::new("houl")?,
            aps,
            air: Netns::new("hoair")?,
            client: Netns::new("hocl")?,
            vm: Netns::new("hovm")?,
            extra: vec![],
        };
        for i in 0..extra_clients {
            let (mac, home, port) = extra_client(i);
            lab.extra.push(ExtraClient {
                ns: Netns::new(&format!("alc{}", i + 1))?,
                mac,
                home,
                port,
            });
        }
        lab.dir = PathBuf::from("/run/vdmm").join(format!("{}-scratch", lab.corr.name()));
        std::fs::create_dir_all(&lab.dir)
            .with_context(|| format!("mkdir {}", lab.dir.display()))?;
        lab.wire().context("wiring the handover lab")?;
        lab.pass_programs()
            .context("attaching pass-only XDP programs")?;
        lab.program_anchors()
            .context("programming the anchors with vdmm-ctl")?;
        match mobility {
            Mobility::Vap => lab.program_vap_hosts(),
            Mobility::Baseline => lab.program_baseline_hosts(),
        }
        .context("programming the AP hosts with vdmm-ctl")?;
        lab.write_cluster_file()?;
        lab.warm_up()
            .context("warming up the underlay's neighbours")?;
        Ok(lab)
    }

    /// Every node of the underlay resolves every other one it tunnels to (the data
    /// plane hands a packet whose next hop has no neighbour entry to the kernel, which
    /// has no route for a vAP client's uplink: measured traffic must not meet that).
    fn warm_up(&self) -> Result<()> {
        let mut nodes: Vec<(&Netns, Ipv4Addr)> = vec![(&self.gw1, GW1_UL), (&self.gw2, GW2_UL)];
        nodes.extend(self.aps.iter().enumerate().map(|(i, a)| (a, ap_locator(i))));
        for (ns, me) in &nodes {
            for (_, other) in &nodes {
                if other != me {
                    ping_once(ns, (*other).into(), 3)?;
                }
            }
        }
        ping_once(&self.gw1, CORR.into(), 3)?;
        ping_once(&self.gw2, CORR2.into(), 3)
    }

    fn all_ns(&self) -> Vec<&Netns> {
        let mut v = vec![&self.corr, &self.gw1, &self.gw2, &self.underlay];
        v.extend(self.aps.iter());
        v.extend([&self.air, &self.client, &self.vm]);
        v.extend(self.extra.iter().map(|e| &e.ns));
        v
    }

    fn wire(&self) -> Result<()> {
        for ns in self.all_ns() {
            sysctl(
                ns,
                &[
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                ],
            )?;
        }
        for ns in [&self.gw1, &self.gw2].into_iter().chain(self.aps.iter()) {
            sysctl(
                ns,
                &["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"],
            )?;
        }
        // Correspondent - anchors.
        veth(&self.corr, "c-gw1", &self.gw1, GW_CORR_IF)?;
        veth(&self.corr, "c-gw2", &self.gw2, GW_CORR_IF)?;
        link(&self.corr, "c-gw1", &[(CORR.into(), 24)], true)?;
        link(&self.corr, "c-gw2", &[(CORR2.into(), 24)], true)?;
        link(&self.gw1, GW_CORR_IF, &[(GW1_INNER.into(), 24)], false)?;
        link(&self.gw2, GW_CORR_IF, &[(GW2_INNER.into(), 24)], false)?;
        self.corr.ip(&[
            "route",
            "add",
            "10.20.0.0/24",
            "via",
            &GW1_INNER.to_string(),
        ])?;
        self.corr.ip(&[
            "route",
            "add",
            "10.21.0.0/24",
            "via",
            &GW2_INNER.to_string(),
        ])?;
        // The underlay switch.
        let ul = &self.underlay;
        ul.ip(&["link", "add", "br0", "type", "bridge", "stp_state", "0"])?;
        let mut ports = vec![(&self.gw1, "u-gw1", GW1_UL), (&self.gw2, "u-gw2", GW2_UL)];
        let ap_ports: Vec<String> = (0..3).map(|i| format!("u-ap{}", i + 1)).collect();
        for (i, ap) in self.aps.iter().enumerate() {
            ports.push((ap, ap_ports[i].as_str(), ap_locator(i)));
        }
        for (ns, port, a) in ports {
            let dev = if std::ptr::eq(ns, &self.gw1) || std::ptr::eq(ns, &self.gw2) {
                GW_UL_IF
            } else {
                AP_UL_IF
            };
            veth(ns, dev, ul, port)?;
            ul.ip(&["link", "set", port, "master", "br0"])?;
            ul.ip(&["link", "set", port, "up"])?;
            ethtool(ul, port, &["gro", "off", "tx", "off"])?;
            link(ns, dev, &[(a.into(), 24)], false)?;
        }
        ul.ip(&["link", "set", "br0", "up"])?;
        // The air.
        for (i, ap) in self.aps.iter().enumerate() {
            let port = air_ap_port(i);
            veth(ap, AP_RADIO_IF, &self.air, &port)?;
            up_gro(&self.air, &port)?;
            let addrs: Vec<(IpAddr, u8)> = match self.mobility {
                Mobility::Vap => vec![],
                Mobility::Baseline => vec![(ap_subnet_gateway(i).into(), 24)],
            };
            link(ap, AP_RADIO_IF, &addrs, false)?;
        }
        for (ns, dev, port, mac) in [
            (&self.client, CLIENT_IF, AIR_CLIENT, CLIENT_MAC),
            (&self.vm, VM_IF, AIR_VM, VM_MAC),
        ] {
            veth(ns, dev, &self.air, port)?;
            ns.ip(&["link", "set", dev, "address", &mac_text(mac)])?;
            up_gro(&self.air, port)?;
        }
        match self.mobility {
            Mobility::Vap => {
                link(&self.client, CLIENT_IF, &[(CLIENT_HOME.into(), 24)], true)?;
                self.client.ip(&[
                    "route",
                    "add",
                    "default",
                    "via",
                    &CLIENT_GATEWAY.to_string(),
                ])?;
            }
            Mobility::Baseline => {
                // The home address stays; care-of addresses come and go by DHCP.
                link(&self.client, CLIENT_IF, &[(CLIENT_HOME.into(), 32)], true)?;
            }
        }
        link(&self.vm, VM_IF, &[(VM_HOME.into(), 24)], true)?;
        self.vm
            .ip(&["route", "add", "default", "via", &VM_GATEWAY.to_string()])?;
        for e in &self.extra {
            veth(&e.ns, CLIENT_IF, &self.air, &e.port)?;
            e.ns.ip(&["link", "set", CLIENT_IF, "address", &mac_text(e.mac)])?;
            up_gro(&self.air, &e.port)?;
            link(&e.ns, CLIENT_IF, &[(e.home.into(), 24)], true)?;
            e.ns.ip(&[
                "route",
                "add",
                "default",
                "via",
                &CLIENT_GATEWAY.to_string(),
            ])?;
        }
        Ok(())
    }

    fn pass_programs(&mut self) -> Result<()> {
        let ul_ports = ["u-gw1", "u-gw2", "u-ap1", "u-ap2", "u-ap3"];
        let air_ports: Vec<String> = (0..3).map(air_ap_port).collect();
        let air_ports: Vec<&str> = air_ports.iter().map(String::as_str).collect();
        let sets: Vec<(&Netns, Vec<&str>)> = vec![
            (&self.underlay, ul_ports.to_vec()),
            (&self.air, air_ports),
            (&self.corr, vec!["c-gw1", "c-gw2"]),
        ];
        for (ns, devs) in sets {
            let pin = PathBuf::from("/run/vdmm").join(ns.name());
            self.keeper_pins.push(pin.clone());
            self.keepers.push(attach_pass_program(ns, &devs, &pin)?);
        }
        Ok(())
    }

    /// Pin directory of a node's data plane.
    pub fn pin_dir(ns: &Netns) -> PathBuf {
        PathBuf::from("/run/vdmm").join(ns.name())
    }

    /// The locator of anchor `ns` (gw1 or gw2).
    pub fn anchor_locator(&self, ns: &Netns) -> Ipv4Addr {
        if ns.name() == self.gw2.name() {
            GW2_UL
        } else {
            GW1_UL
        }
    }

    /// The anchors and AP hosts with their names in the cluster file.
    pub fn nodes(&self) -> Vec<(String, &Netns)> {
        let mut v = vec![
            ("gw1".to_string(), &self.gw1),
            ("gw2".to_string(), &self.gw2),
        ];
        v.extend(self.aps.iter().enumerate().map(|(i, a)| (ap_name(i), a)));
        v
    }

    /// `vdmm-ctl agent reconcile` on every node with an agent: `(name, entries the
    /// reconcile repaired (added, updated, removed), the agent's store revision)`.
    pub fn reconcile_agents(&self) -> Result<Vec<(String, u64, u64)>> {
        let mut out = Vec::new();
        for (name, ns) in self.nodes() {
            if self.agent(ns).is_none() {
                continue;
            }
            let r: serde_json::Value =
                serde_json::from_str(&self.ctl(ns, &["agent", "reconcile"])?)?;
            if let Some(e) = r["errors"].as_array().filter(|e| !e.is_empty()) {
                bail!("{name}: the reconcile failed: {e:?}");
            }
            let repaired = ["added", "updated", "removed"]
                .iter()
                .map(|f| r[f].as_u64().unwrap_or(0))
                .sum();
            let status: serde_json::Value =
                serde_json::from_str(&self.ctl(ns, &["agent", "status"])?)?;
            out.push((name, repaired, status["revision"].as_u64().unwrap_or(0)));
        }
        Ok(out)
    }

    /// The agent of the node in `ns`, if it runs one.
    pub fn agent(&self, ns: &Netns) -> Option<&AgentProcess> {
        self.agents.iter().find(|a| a.netns == ns.name())
    }

    /// The control socket `vdmm-ctl` uses for the node in `ns`: its agent's, or one
    /// nobody listens on (the command then works on the maps).
    pub fn agent_socket(&self, ns: &Netns) -> PathBuf {
        match self.agent(ns) {
            Some(a) => a.socket.clone(),
            None => self.dir.join("no-agent.sock"),
        }
    }

    /// Runs `vdmm-ctl --netns NS --pin-dir PIN --agent-socket SOCK args...` (the node's
    /// agent, if it runs one); returns stdout.
    pub fn ctl(&self, ns: &Netns, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.ctl)
            .arg("--netns")
            .arg(ns.name())
            .arg("--pin-dir")
            .arg(Self::pin_dir(ns))
            .arg("--agent-socket")
            .arg(self.agent_socket(ns))
            .args(args)
            .env(vdmm_ctl::handover::stats::STATE_FILE_ENV, self.stats_file())
            .output()
            .with_context(|| format!("spawn {}", self.ctl.display()))?;
        if !out.status.success() {
            bail!(
                "{}: vdmm-ctl {} failed: {}",
                ns.name(),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn load(&mut self, ns_index: NodeRef, args: &[&str]) -> Result<()> {
        let ns = self.node(ns_index);
        let pin = Self::pin_dir(ns);
        mount_pin_dir(&pin)?;
        if !self.pins.contains(&pin) {
            self.pins.push(pin);
        }
        let mut a = vec!["load"];
        a.extend_from_slice(args);
        self.ctl(self.node(ns_index), &a)?;
        Ok(())
    }

    /// Starts the agent of node `r` (vAP lab only) on what is loaded: its data plane
    /// attached to `attach`, an empty embedded store.
    fn start_agent(&mut self, r: NodeRef, attach: &[&str]) -> Result<()> {
        if self.mobility != Mobility::Vap {
            return Ok(());
        }
        let ns = self.node(r);
        let list: Vec<String> = attach.iter().map(|i| format!("\"{i}\"")).collect();
        let mut agent = AgentProcess::configure(
            &self.ctl,
            ns.name(),
            &Self::pin_dir(ns),
            &format!("[interfaces]\nattach = [{}]\n", list.join(", ")),
        )?;
        agent
            .start()
            .with_context(|| format!("starting the agent of {}", ns.name()))?;
        self.agents.push(agent);
        Ok(())
    }

    fn node(&self, r: NodeRef) -> &Netns {
        match r {
            NodeRef::Gw1 => &self.gw1,
            NodeRef::Gw2 => &self.gw2,
            NodeRef::Ap(i) => &self.aps[i],
        }
    }

    fn program_anchors(&mut self) -> Result<()> {
        for (g, me, home, _) in [
            (NodeRef::Gw1, GW1_UL, CLIENT_HOME, ()),
            (NodeRef::Gw2, GW2_UL, VM_HOME, ()),
        ] {
            self.load(g, &["--iface", GW_CORR_IF])?;
            self.load(g, &["--iface", GW_UL_IF])?;
            self.start_agent(g, &[GW_CORR_IF, GW_UL_IF])?;
            let ns = self.node(g);
            self.ctl(ns, &["endpoint", "add", &me.to_string()])?;
            for i in 0..3 {
                self.ctl(ns, &["peer", "add", &ap_locator(i).to_string()])?;
            }
            // Every mobile node starts on ap1.
            let mut homes = vec![home];
            if matches!(g, NodeRef::Gw1) {
                homes.extend(self.extra.iter().map(|e| e.home));
            }
            for h in homes {
                self.ctl(
                    self.node(g),
                    &[
                        "binding",
                        "add",
                        &format!("{h}/32"),
                        "--locator",
                        &ap_locator(0).to_string(),
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Loads AP host `i`'s data plane on its uplink and `radio` (`--iface` for the
    /// baseline, `--client-facing` for vAPs), starts its agent (vAP lab), and makes it a
    /// tunnel endpoint that accepts the anchors and the other AP hosts.
    fn program_ap_common(&mut self, i: usize, radio: &str) -> Result<()> {
        self.load(NodeRef::Ap(i), &["--iface", AP_UL_IF])?;
        self.load(NodeRef::Ap(i), &[radio, AP_RADIO_IF])?;
        let attach: &[&str] = match radio {
            "--iface" => &[AP_UL_IF, AP_RADIO_IF],
            _ => &[AP_UL_IF],
        };
        self.start_agent(NodeRef::Ap(i), attach)?;
        let ns = &self.aps[i];
        self.ctl(ns, &["endpoint", "add", &ap_locator(i).to_string()])?;
        let mut peers = vec![GW1_UL, GW2_UL];
        peers.extend((0..3).filter(|j| *j != i).map(ap_locator));
        for p in peers {
            self.ctl(ns, &["peer", "add", &p.to_string()])?;
        }
        Ok(())
    }

    fn program_vap_hosts(&mut self) -> Result<()> {
        for i in 0..3 {
            self.program_ap_common(i, "--client-facing")?;
        }
        let mut stations = vec![(CLIENT_MAC, CLIENT_HOME, GW1_UL), (VM_MAC, VM_HOME, GW2_UL)];
        stations.extend(self.extra.iter().map(|e| (e.mac, e.home, GW1_UL)));
        for (mac, home, anchor) in stations {
            self.ctl(
                &self.aps[0],
                &[
                    "vap",
                    "create",
                    &mac_text(mac),
                    "--ipv4",
                    &home.to_string(),
                    "--anchor",
                    &anchor.to_string(),
                ],
            )?;
        }
        Ok(())
    }

    fn program_baseline_hosts(&mut self) -> Result<()> {
        for i in 0..3 {
            self.program_ap_common(i, "--iface")?;
            // The client's traffic to the correspondent goes back through its anchor
            // (reverse tunnelling), as Mobile IP and DMM do.
            self.ctl(
                &self.aps[i],
                &[
                    "binding",
                    "add",
                    "10.1.0.0/24",
                    "--locator",
                    &GW1_UL.to_string(),
                ],
            )?;
            let child = baseline::start_dhcp_server(self, i)?;
            self.dhcp_servers.push(child);
        }
        Ok(())
    }

    /// Where `vdmm-ctl vap move` keeps the handover counters in this lab.
    pub fn stats_file(&self) -> PathBuf {
        self.dir.join("handover-stats.json")
    }

    /// The cluster description `vdmm-ctl vap move --cluster` reads.
    pub fn cluster_file(&self) -> PathBuf {
        self.dir.join("cluster.toml")
    }

    fn write_cluster_file(&self) -> Result<()> {
        let mut s = String::from("# The handover lab's nodes (written by the lab).\n");
        let node = |s: &mut String, kind: &str, name: &str, loc: Ipv4Addr, ns: &Netns| {
            let _ = write!(
                s,
                "\n[[{kind}]]\nname = \"{name}\"\nlocator = \"{loc}\"\npin_dir = \"{}\"\nnetns = \"{}\"\n",
                Self::pin_dir(ns).display(),
                ns.name()
            );
            if let Some(a) = self.agent(ns) {
                let _ = writeln!(s, "agent_socket = \"{}\"", a.socket.display());
            }
        };
        for (i, ap) in self.aps.iter().enumerate() {
            node(&mut s, "ap_host", &ap_name(i), ap_locator(i), ap);
        }
        node(&mut s, "anchor", "gw1", GW1_UL, &self.gw1);
        node(&mut s, "anchor", "gw2", GW2_UL, &self.gw2);
        std::fs::write(self.cluster_file(), s)
            .with_context(|| format!("write {}", self.cluster_file().display()))
    }

    /// Pings from `from` to `to` until one answer (warms up neighbours and vAP ARP).
    pub fn reach(&self, from: &Netns, to: Ipv4Addr) -> Result<()> {
        ping_once(from, to.into(), 5)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[derive(Clone, Copy)]
enum NodeRef {
    Gw1,
    Gw2,
    Ap(usize),
}

impl Drop for HandoverLab {
    fn drop(&mut self) {
        // The agents first: they hold the pins open and would react to the teardown.
        self.agents.clear();
        for c in &mut self.dhcp_servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        for dir in &self.pins {
            unmount_pin_dir(dir);
        }
        self.keepers.clear();
        for dir in &self.keeper_pins {
            unmount_pin_dir(dir);
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Addresses, up, then GRO (after up; see the tunnel lab) and, for end hosts, no tx
/// checksum offload.
fn link(ns: &Netns, dev: &str, addrs: &[(IpAddr, u8)], end_host: bool) -> Result<()> {
    for (a, len) in addrs {
        addr(ns, dev, *a, *len)?;
    }
    ns.ip(&["link", "set", dev, "up"])?;
    if end_host {
        ethtool(ns, dev, &["gro", "on", "tx", "off"])
    } else {
        ethtool(ns, dev, &["gro", "on"])
    }
}

fn up_gro(ns: &Netns, dev: &str) -> Result<()> {
    ns.ip(&["link", "set", dev, "up"])?;
    ethtool(ns, dev, &["gro", "on", "tx", "off"])
}
