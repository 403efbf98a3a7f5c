//! A client behind a vAP, live in network namespaces (needs root): issue #5's data plane
//! end to end, programmed only through the real `vdmm-ctl` binary.
//!
//! ```text
//!   correspondent ── anchor (gw) ══ 4in4 / 6in4 ══ AP host ── client
//!   10.1.0.2          10.1.0.1       192.0.2.1 ─ 192.0.2.11   (vAP, no address)
//!   fd00:1::2         fd00:1::1                               10.20.0.10/24
//!                                                             fd00:20::10/64
//! ```
//!
//! The anchor binds the client's home addresses (10.20.0.10/32, fd00:20::10/128) to the AP
//! host's locator; the AP host runs `vdmm_vap` on its client-facing port and has a vAP for
//! the client (`vdmm-ctl vap create`) anchored at the gateway. The client knows nothing of
//! vdmm: its gateways are 10.20.0.1 and fd00:20::1, addresses nobody has, which resolve to
//! the vAP MAC because the vAP answers ARP and neighbour solicitations.
//!
//! Checked: IPv4 and IPv6 pings and TCP transfers between the client and the
//! correspondent, with the uplink and delivery counted on the AP host; the client's
//! neighbour entries for both gateways hold the vAP MAC (and an ARP request sent by hand
//! gets a reply from it); frames from spoofed sources are dropped and counted exactly
//! (`vap_spoofed` and the vAP's own `spoofed` counter) and never reach the
//! correspondent.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use vdmm_tests::{
    lab::{self, Counters, attach_pass_program, default_ctl_path, ping_once, tcp_transfer},
    netns::{Netns, addr, ethtool, mount_pin_dir, require_root, sysctl, unmount_pin_dir, veth},
    packet::{ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, Ip, Ip4, Ip6, L4, Mac, arp_request, ethernet},
    xlat_lab::RawSocket,
};

const CLIENT_MAC: Mac = [0x02, 0x00, 0x00, 0x00, 0x20, 0x10];
const CORR4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const GW4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const CORR6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2);
const GW6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);
const ANCHOR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const AP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 10);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x20, 0, 0, 0, 0, 0, 0x10);
const GATEWAY4: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x20, 0, 0, 0, 0, 0, 1);

const PINGS: u32 = 10;
const TCP_BYTES: u64 = 4 * 1024 * 1024;
const SPOOFED: u64 = 7;

/// The four namespaces, the data planes of the anchor and the AP host, and the pass-only
/// programs that make veth deliver XDP_TX / redirected frames (see `lab::attach_pass_program`).
struct VapLab {
    ctl: PathBuf,
    pins: Vec<PathBuf>,
    keepers: Vec<aya::Ebpf>,
    keeper_pins: Vec<PathBuf>,
    // Namespaces last: dropped after the pins are unmounted.
    corr: Netns,
    gw: Netns,
    ap: Netns,
    client: Netns,
}

impl VapLab {
    fn new() -> VapLab {
        if let Err(e) = require_root() {
            panic!("{e}");
        }
        Self::build().unwrap_or_else(|e| panic!("building the vAP lab: {e:#}"))
    }

    fn build() -> Result<VapLab> {
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
            corr: Netns::new("vacorr")?,
            gw: Netns::new("vagw")?,
            ap: Netns::new("vaap")?,
            client: Netns::new("vacl")?,
        };
        lab.wire().context("wiring")?;
        lab.program().context("programming with vdmm-ctl")?;
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

    fn pin_dir(ns: &Netns) -> PathBuf {
        PathBuf::from("/run/vdmm").join(ns.name())
    }

    /// Runs `vdmm-ctl --netns NS --pin-dir PIN args...`; returns stdout.
    fn ctl(&self, ns: &Netns, args: &[&str]) -> Result<String> {
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

    fn program(&mut self) -> Result<()> {
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
        )?;
        // The underlay resolves both ways before anything is measured.
        ping_once(&self.gw, AP.into(), 3)?;
        ping_once(&self.ap, ANCHOR.into(), 3)
    }

    fn ap_stats(&self) -> Counters {
        let out = self.ctl(&self.ap, &["stats", "--json"]).unwrap();
        Counters::parse_json(&out).unwrap()
    }

    /// `vdmm-ctl vap show CLIENT --json` on the AP host.
    fn vap(&self) -> serde_json::Value {
        let out = self
            .ctl(&self.ap, &["vap", "show", &mac_text(CLIENT_MAC), "--json"])
            .unwrap();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("vap show --json: {e}: {out}"))
    }

    fn vap_counter(&self, name: &str) -> u64 {
        self.vap()["counters"][name]["packets"]
            .as_u64()
            .unwrap_or_else(|| panic!("vap show --json has no counters.{name}.packets"))
    }

    fn vap_mac(&self) -> String {
        self.vap()["vap_mac"]
            .as_str()
            .expect("vap show --json has vap_mac")
            .to_string()
    }

    /// The client's neighbour entry for `gateway`: its MAC, if it has one.
    fn client_neighbour(&self, gateway: IpAddr) -> Option<String> {
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

fn mac_text(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "4in4" } else { "6in4" }
}

/// Pings and a TCP transfer in both directions' worth of traffic for one family: every
/// ping through, counted as uplink and delivery on the AP host; TCP completes.
fn ping_and_tcp(lab: &VapLab, client: IpAddr, corr: IpAddr, gateway: IpAddr) {
    let kind = family(client);
    let before = lab.ap_stats();
    let (up0, down0) = (lab.vap_counter("uplink"), lab.vap_counter("delivered"));
    let p = lab::ping(&lab.client, corr, PINGS, None).unwrap();
    let d = lab.ap_stats().since(&before);
    assert_eq!(
        (p.sent, p.received),
        (PINGS as u64, PINGS as u64),
        "{kind}: ping {corr} from the client lost packets; AP host counters:\n{d}"
    );
    let n = PINGS as u64;
    assert_eq!(
        (
            d.get("vap_uplink", kind, "redirect"),
            d.get("vap_deliver", kind, "redirect")
        ),
        (n, n),
        "{kind}: AP host counters for {n} pings:\n{d}"
    );
    assert_eq!(
        (
            lab.vap_counter("uplink") - up0,
            lab.vap_counter("delivered") - down0
        ),
        (n, n),
        "{kind}: the vAP's own counters for {n} pings"
    );
    let vap_mac = lab.vap_mac();
    assert_eq!(
        lab.client_neighbour(gateway).as_deref(),
        Some(vap_mac.as_str()),
        "{kind}: the client's gateway {gateway} must resolve to the vAP MAC"
    );

    let t = tcp_transfer(
        &lab.client,
        &lab.corr,
        corr,
        TCP_BYTES,
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{kind}: TCP from the client to {corr}: {e:#}"));
    assert_eq!(t.bytes, TCP_BYTES, "{kind}: TCP transfer incomplete");
}

#[test]
fn a_client_behind_its_vap_reaches_the_correspondent_over_ipv4_and_ipv6() {
    let lab = VapLab::new();
    ping_and_tcp(&lab, CLIENT4.into(), CORR4.into(), GATEWAY4.into());
    ping_and_tcp(&lab, CLIENT6.into(), CORR6.into(), GATEWAY6.into());
}

#[test]
fn arp_is_answered_with_the_vap_mac_and_spoofed_sources_are_dropped_and_counted() {
    let lab = VapLab::new();
    let raw = RawSocket::open(&lab.client, "cl0").unwrap();
    let vap_mac = lab.vap_mac();

    // An ARP request for an address nobody has: the vAP answers it.
    let before = lab.ap_stats();
    let target = Ipv4Addr::new(10, 20, 0, 77);
    raw.send(&arp_request(CLIENT_MAC, CLIENT4, target)).unwrap();
    let reply = recv_matching(&raw, |f| {
        f.len() >= 42 && u16::from_be_bytes([f[12], f[13]]) == ETH_P_ARP && f[20..22] == [0, 2]
    })
    .expect("no ARP reply from the vAP");
    assert_eq!(
        mac_text(reply[6..12].try_into().unwrap()),
        vap_mac,
        "reply's source MAC"
    );
    assert_eq!(&reply[0..6], &CLIENT_MAC, "reply's destination MAC");
    assert_eq!(
        mac_text(reply[22..28].try_into().unwrap()),
        vap_mac,
        "ARP sender hardware address"
    );
    assert_eq!(
        &reply[28..32],
        &target.octets(),
        "ARP sender protocol address"
    );
    assert_eq!(
        lab.ap_stats()
            .since(&before)
            .get("vap_arp_reply", "none", "tx"),
        1,
        "one ARP reply counted"
    );

    // Frames to the vAP MAC from addresses that are not the client's: dropped and counted,
    // none reaches the correspondent.
    let vap: Mac = parse_mac(&vap_mac);
    let before = lab.ap_stats();
    let spoofed0 = lab.vap_counter("spoofed");
    let corr_rx0 = vdmm_tests::lab::Lab::link_stats(&lab.corr, "c0")
        .unwrap()
        .rx_packets;
    let frames = [
        ethernet(
            vap,
            CLIENT_MAC,
            ETH_P_IP,
            &Ip::V4(Ip4::new(
                Ipv4Addr::new(10, 20, 0, 99),
                CORR4,
                L4::Udp {
                    sport: 40000,
                    dport: 9,
                    len: 32,
                },
            ))
            .bytes(),
        ),
        ethernet(
            vap,
            CLIENT_MAC,
            ETH_P_IP,
            &Ip::V4(Ip4::new(
                Ipv4Addr::new(198, 51, 100, 1),
                CORR4,
                L4::Udp {
                    sport: 40000,
                    dport: 9,
                    len: 32,
                },
            ))
            .bytes(),
        ),
        ethernet(
            vap,
            CLIENT_MAC,
            ETH_P_IPV6,
            &Ip::V6(Ip6::new(
                Ipv6Addr::new(0xfd00, 0x20, 0, 0, 0, 0, 0, 0x99),
                CORR6,
                L4::Udp {
                    sport: 40000,
                    dport: 9,
                    len: 32,
                },
            ))
            .bytes(),
        ),
    ];
    let mut sent = 0;
    for i in 0..SPOOFED {
        raw.send(&frames[i as usize % frames.len()]).unwrap();
        sent += 1;
    }
    // The counters are read after the frames passed the AP host (a ping behind them).
    ping_once(&lab.client, CORR4.into(), 3).unwrap();
    let d = lab.ap_stats().since(&before);
    assert_eq!(
        d.get("vap_spoofed", "none", "drop"),
        sent,
        "AP host: vap_spoofed/none/drop must grow by exactly {sent}:\n{d}"
    );
    assert_eq!(
        lab.vap_counter("spoofed") - spoofed0,
        sent,
        "the vAP's spoofed counter"
    );
    // The ping's request and reply are the only packets the correspondent received.
    let corr_rx = vdmm_tests::lab::Lab::link_stats(&lab.corr, "c0")
        .unwrap()
        .rx_packets;
    assert!(
        corr_rx - corr_rx0 <= 2,
        "the correspondent received {} packets: spoofed frames got through",
        corr_rx - corr_rx0
    );
}

/// The first frame `raw` receives that `want` accepts, within two seconds.
fn recv_matching(raw: &RawSocket, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match raw.recv(left).unwrap() {
            Some(f) if want(&f) => return Some(f),
            Some(_) => continue,
            None => return None,
        }
    }
    None
}

fn parse_mac(s: &str) -> Mac {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}
