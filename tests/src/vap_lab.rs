//! The vAP lab: a correspondent, an anchor gateway, an AP host and a client in network
//! namespaces, the data planes programmed only through the real `vdmm-ctl` binary
//! (`tests/tests/vap_netns.rs` draws it; the agent's vAP test uses it too).
//!
//! The anchor binds the client's home addresses to the AP host's locator; the AP host
//! runs `vdmm_vap` on its client-facing port `ap-r` and, unless the lab is built without
//! one, has a vAP for the client (`vdmm-ctl vap create`) anchored at the gateway. The
//! namespaces' names start with a prefix of the caller's, so tests run side by side.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{
    lab::{Counters, attach_pass_program, default_ctl_path, ping_once},
    netns::{Netns, addr, ethtool, mount_pin_dir, require_root, sysctl, unmount_pin_dir, veth},
    packet::Mac,
};

pub const CLIENT_MAC: Mac = [0x02, 0x00, 0x00, 0x00, 0x20, 0x10];
pub const CORR4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
pub const GW4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
pub const CORR6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2);
pub const GW6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);
pub const ANCHOR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const AP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 10);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x20, 0, 0, 0, 0, 0, 0x10);
pub const GATEWAY4: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x20, 0, 0, 0, 0, 0, 1);

/// The four namespaces, the data planes of the anchor and the AP host, and the pass-only
/// programs that make veth deliver XDP_TX / redirected frames (see `lab::attach_pass_program`).
pub struct VapLab {
    pub ctl: PathBuf,
    pins: Vec<PathBuf>,
    keepers: Vec<aya::Ebpf>,
    keeper_pins: Vec<PathBuf>,
    // Namespaces last: dropped after the pins are unmounted.
    pub corr: Netns,
    pub gw: Netns,
    pub ap: Netns,
    pub client: Netns,
}

impl VapLab {
    /// The lab with namespaces `PREFIXcorr`, `PREFIXgw`, `PREFIXap`, `PREFIXcl`, and the
    /// client's vAP when `with_vap`. Panics (never skips) without root.
    pub fn new(prefix: &str, with_vap: bool) -> VapLab {
        if let Err(e) = require_root() {
            panic!("{e}");
        }
        Self::build(prefix, with_vap).unwrap_or_else(|e| panic!("building the vAP lab: {e:#}"))
    }

    fn build(prefix: &str, with_vap: bool) -> Result<VapLab> {
        let ctl = default_ctl_path()?;
        if !ctl.is_file() {
            bail!(
                "vdmm-ctl not found at {} (build it with `cargo build -p vdmm-ctl`, or set VDMM_CTL)",
                ctl.display()
            );
        }
        let mut lab = VapLab {
            ctl,
            pins: vec![],
            keepers: vec![],
            keeper_pins: vec![],
            corr: Netns::new(&format!("{prefix}corr"))?,
            gw: Netns::new(&format!("{prefix}gw"))?,
            ap: Netns::new(&format!("{prefix}ap"))?,
            client: Netns::new(&format!("{prefix}cl"))?,
        };
        lab.wire().context("wiring")?;
        lab.program(with_vap).context("programming with vdmm-ctl")?;
        Ok(lab)
    }

    fn wire(&mut self) -> Result<()> {
        for ns in [&self.corr, &self.gw, &self.ap, &self.client] {
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
        for ns in [&self.gw, &self.ap] {
            sysctl(
                ns,
                &["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"],
            )?;
        }
        veth(&self.corr, "c0", &self.gw, "gw-c")?;
        veth(&self.gw, "gw-u", &self.ap, "ap-u")?;
        veth(&self.ap, "ap-r", &self.client, "cl0")?;
        self.client
            .ip(&["link", "set", "cl0", "address", &mac_text(CLIENT_MAC)])?;
        for (ns, dev, addrs, end_host) in [
            (
                &self.corr,
                "c0",
                vec![(IpAddr::from(CORR4), 24), (CORR6.into(), 64)],
                true,
            ),
            (
                &self.gw,
                "gw-c",
                vec![(GW4.into(), 24), (GW6.into(), 64)],
                false,
            ),
            (&self.gw, "gw-u", vec![(ANCHOR.into(), 24)], false),
            (&self.ap, "ap-u", vec![(AP.into(), 24)], false),
            (&self.ap, "ap-r", vec![], false),
            (
                &self.client,
                "cl0",
                vec![(CLIENT4.into(), 24), (CLIENT6.into(), 64)],
                true,
            ),
        ] {
            for (a, len) in addrs {
                addr(ns, dev, a, len)?;
            }
            ns.ip(&["link", "set", dev, "up"])?;
            // GRO after link-up (veth delivers redirected frames only to a NAPI peer);
            // end hosts without tx checksum offload (their frames are tunnelled as is).
            if end_host {
                ethtool(ns, dev, &["gro", "on", "tx", "off"])?;
            } else {
                ethtool(ns, dev, &["gro", "on"])?;
            }
        }
        self.corr
            .ip(&["route", "add", "10.20.0.0/24", "via", &GW4.to_string()])?;
        self.corr.ip(&[
            "-6",
            "route",
            "add",
            "fd00:20::/64",
            "via",
            &GW6.to_string(),
        ])?;
        self.client
            .ip(&["route", "add", "default", "via", &GATEWAY4.to_string()])?;
        self.client.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &GATEWAY6.to_string(),
        ])?;
        // XDP_TX answers (ARP, neighbour advertisements) reach the client only with an
        // XDP program on its port; the correspondent gets redirected frames.
        for (ns, dev) in [(&self.client, "cl0"), (&self.corr, "c0")] {
            let pin = PathBuf::from("/run/vdmm").join(format!("{}-keeper", ns.name()));
            self.keeper_pins.push(pin.clone());
            self.keepers.push(attach_pass_program(ns, &[dev], &pin)?);
        }
        Ok(())
    }

    pub fn pin_dir(ns: &Netns) -> PathBuf {
        PathBuf::from("/run/vdmm").join(ns.name())
    }

    /// Runs `vdmm-ctl --netns NS --pin-dir PIN args...`; returns stdout.
    pub fn ctl(&self, ns: &Netns, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.ctl)
            .arg("--netns")
            .arg(ns.name())
            .arg("--pin-dir")
            .arg(Self::pin_dir(ns))
            .args(args)
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

    fn load(&mut self, which: Node, args: &[&str]) -> Result<()> {
        let pin = Self::pin_dir(self.node(which));
        mount_pin_dir(&pin)?;
        if !self.pins.contains(&pin) {
            self.pins.push(pin);
        }
        let mut a = vec!["load"];
        a.extend_from_slice(args);
        self.ctl(self.node(which), &a).map(drop)
    }

    fn node(&self, n: Node) -> &Netns {
        match n {
            Node::Gw => &self.gw,
            Node::Ap => &self.ap,
        }
    }

    fn program(&mut self, with_vap: bool) -> Result<()> {
        self.load(Node::Gw, &["--iface", "gw-c"])?;
        self.load(Node::Gw, &["--iface", "gw-u"])?;
        let (anchor, ap) = (ANCHOR.to_string(), AP.to_string());
        self.ctl(&self.gw, &["endpoint", "add", &anchor])?;
        self.ctl(&self.gw, &["peer", "add", &ap])?;
        // ICMPv6 errors (packet too big: the 6in4 tunnel's MTU is 1480) come from the
        // correspondent's gateway address; IPv4 ones from the endpoint (set by `endpoint
        // add`).
        self.ctl(
            &self.gw,
            &["config", "set", "--icmp-source-v6", &GW6.to_string()],
        )?;
        for home in [format!("{CLIENT4}/32"), format!("{CLIENT6}/128")] {
            self.ctl(&self.gw, &["binding", "add", &home, "--locator", &ap])?;
        }
        self.load(Node::Ap, &["--iface", "ap-u"])?;
        self.load(Node::Ap, &["--client-facing", "ap-r"])?;
        self.ctl(&self.ap, &["endpoint", "add", &ap])?;
        self.ctl(&self.ap, &["peer", "add", &anchor])?;
        // The client's IPv6 gateway address as the source of the vAP's ICMPv6 errors.
        self.ctl(
            &self.ap,
            &["config", "set", "--icmp-source-v6", &GATEWAY6.to_string()],
        )?;
        if with_vap {
            self.create_vap()?;
        }
        // The underlay resolves both ways before anything is measured.
        ping_once(&self.gw, AP.into(), 3)?;
        ping_once(&self.ap, ANCHOR.into(), 3)
    }

    /// `vdmm-ctl vap create` of the client's vAP on the AP host (both addresses, anchored
    /// at the gateway); returns what it printed.
    pub fn create_vap(&self) -> Result<String> {
        let anchor = ANCHOR.to_string();
        self.ctl(
            &self.ap,
            &[
                "vap",
                "create",
                &mac_text(CLIENT_MAC),
                "--ipv4",
                &CLIENT4.to_string(),
                "--ipv6",
                &CLIENT6.to_string(),
                "--anchor",
                &anchor,
            ],
        )
    }

    pub fn ap_stats(&self) -> Counters {
        let out = self.ctl(&self.ap, &["stats", "--json"]).unwrap();
        Counters::parse_json(&out).unwrap()
    }

    /// `vdmm-ctl vap show CLIENT --json` on the AP host.
    pub fn vap(&self) -> serde_json::Value {
        let out = self
            .ctl(&self.ap, &["vap", "show", &mac_text(CLIENT_MAC), "--json"])
            .unwrap();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("vap show --json: {e}: {out}"))
    }

    pub fn vap_counter(&self, name: &str) -> u64 {
        self.vap()["counters"][name]["packets"]
            .as_u64()
            .unwrap_or_else(|| panic!("vap show --json has no counters.{name}.packets"))
    }

    pub fn vap_mac(&self) -> String {
        self.vap()["vap_mac"]
            .as_str()
            .expect("vap show --json has vap_mac")
            .to_string()
    }

    /// The client's neighbour entry for `gateway`: its MAC, if it has one.
    pub fn client_neighbour(&self, gateway: IpAddr) -> Option<String> {
        let out = self
            .client
            .ip(&[
                "-j",
                "neigh",
                "show",
                "to",
                &gateway.to_string(),
                "dev",
                "cl0",
            ])
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()?
            .first()?
            .get("lladdr")?
            .as_str()
            .map(str::to_owned)
    }
}

#[derive(Clone, Copy)]
enum Node {
    Gw,
    Ap,
}

impl Drop for VapLab {
    fn drop(&mut self) {
        for dir in &self.pins {
            unmount_pin_dir(dir);
        }
        self.keepers.clear();
        for dir in &self.keeper_pins {
            unmount_pin_dir(dir);
        }
    }
}

pub fn mac_text(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(s: &str) -> Mac {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}
