//! BPF_PROG_TEST_RUN tests of the vAP data plane (issue #5, "vAP"): the client side
//! (`vdmm_vap` on the client-facing interface) and the delivery to clients in `vdmm_xdp`.
//! Needs root.
//!
//! One namespace (the AP host), entered by the test thread (FIB look-ups use it), the data
//! plane loaded into private maps, two vAPs written straight into the maps. Every case
//! checks the XDP verdict, that exactly one counter `(reason, kind, action)` grew by one
//! packet of the frame's length, and the output frame byte for byte against frames built
//! here with etherparse (and our own ARP / neighbour advertisement encoders). The last two
//! tests check that the per-CPU vAP caches follow every change of the vAP tables.
//!
//! ```text
//!   client 00:16:3e:00:00:05 10.1.0.5 fd00:5::5 (tunnel to the anchor)
//!   client 00:16:3e:00:00:06 10.1.0.6           (local breakout)
//!        │
//!   cl0 (client-facing, vdmm_vap)
//!                 [ AP host ]
//!   ul0 192.0.2.11/24 (endpoint)  ── anchor 192.0.2.1, AP host 2 192.0.2.12
//!   dn0 10.2.0.1/24               ── correspondent 10.2.0.2 (breakout)
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vdmm_common::{
    Action, Binding, IpAddrKey, Reason, TunnelConfig, TunnelKind,
    counters::counter_index,
    vap::{
        VAP_BREAKOUT, VAP_EVENT_UNKNOWN_CLIENT, VAP_FORWARD, VAP_HAS_V4, VAP_HAS_V6, Vap,
        addr_slot, mac_key, mac_slot,
    },
};
use vdmm_tests::{
    netns::{EnteredNetns, Netns, require_root},
    packet::*,
    testrun::{DataPlane, action_name, counter_delta, counter_name, ifindex, stay_on_this_cpu},
};

const HOST_MAC: Mac = [0x02, 0, 0, 0, 0x0c, 0x01];
const UL0_MAC: Mac = [0x02, 0, 0, 0, 0x02, 0x11];
const DN0_MAC: Mac = [0x02, 0, 0, 0, 0x03, 0x01];
const ANCHOR_MAC: Mac = [0x02, 0, 0, 0, 0x02, 0x01];
const AP2_MAC: Mac = [0x02, 0, 0, 0, 0x02, 0x12];
const CORR_MAC: Mac = [0x02, 0, 0, 0, 0x03, 0x02];
const CLIENT: Mac = [0x00, 0x16, 0x3e, 0, 0, 0x05];
const CLIENT_VAP: Mac = [0x02, 0xaa, 0, 0, 0, 0x05];
const BREAKOUT: Mac = [0x00, 0x16, 0x3e, 0, 0, 0x06];
const BREAKOUT_VAP: Mac = [0x02, 0xaa, 0, 0, 0, 0x06];
const STRANGER: Mac = [0x00, 0x16, 0x3e, 0, 0, 0x99];

const EP: &str = "192.0.2.11";
const ANCHOR: &str = "192.0.2.1";
const AP2: &str = "192.0.2.12";
const CLIENT4: &str = "10.1.0.5";
const CLIENT6: &str = "fd00:5::5";
const BREAKOUT4: &str = "10.1.0.6";
const CORR: &str = "10.2.0.2";
const REMOTE4: &str = "198.51.100.7";
const REMOTE6: &str = "2001:db8:77::7";

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn mac_str(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn binding(locator: &str) -> Binding {
    Binding::new(IpAddrKey::from(ip(locator)), IpAddrKey::from(ip(EP)))
}

/// The vAP of the tunnelled client (slot 0) on interface `cl0`.
fn client_vap(cl0: u32) -> Vap {
    Vap {
        client_mac: mac_key(CLIENT),
        vap_mac: mac_key(CLIENT_VAP),
        host_mac: mac_key(HOST_MAC),
        ifindex: cl0,
        flags: VAP_HAS_V4 | VAP_HAS_V6,
        ipv4: v4(CLIENT4).octets(),
        slot: 0,
        ipv6: v6(CLIENT6).octets(),
        anchor: binding(ANCHOR),
        forward: Binding::default(),
    }
}

/// The AP host's namespace with the data plane loaded, entered by the calling thread.
struct Lab {
    _entered: EnteredNetns,
    dp: DataPlane,
    _ns: Netns,
    cl0: u32,
    ul0: u32,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        if let Err(e) = require_root() {
            panic!("{e}");
        }
        Self::build(tag).unwrap_or_else(|e| panic!("setting up the AP host namespace: {e:#}"))
    }

    fn build(tag: &str) -> anyhow::Result<Lab> {
        let ns = Netns::new(tag)?;
        let sh = |args: &str| -> anyhow::Result<()> {
            let v: Vec<&str> = args.split_whitespace().collect();
            ns.ip(&v)?;
            Ok(())
        };
        for (dev, mac) in [("cl0", HOST_MAC), ("ul0", UL0_MAC), ("dn0", DN0_MAC)] {
            sh(&format!("link add {dev} type veth peer name {dev}p"))?;
            sh(&format!("link set {dev} address {}", mac_str(mac)))?;
            sh(&format!("link set {dev} up"))?;
            sh(&format!("link set {dev}p up"))?;
        }
        sh("addr add 192.0.2.11/24 dev ul0")?;
        sh("addr add 10.2.0.1/24 dev dn0")?;
        for (addr, mac, dev) in [
            (ANCHOR, ANCHOR_MAC, "ul0"),
            (AP2, AP2_MAC, "ul0"),
            (CORR, CORR_MAC, "dn0"),
        ] {
            sh(&format!(
                "neigh add {addr} lladdr {} dev {dev} nud permanent",
                mac_str(mac)
            ))?;
        }
        ns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"])?;

        let mut dp = DataPlane::load()?;
        dp.add_endpoint(ip(EP))?;
        dp.add_peer(ip(ANCHOR))?;
        dp.set_config(TunnelConfig {
            outer_hop_limit: 0,
            _reserved: [0; 3],
            icmp_source_v4: v4(EP).octets(),
            icmp_source_v6: [0; 16],
        })?;
        let entered = ns.enter()?;
        let (cl0, ul0) = (ifindex("cl0")?, ifindex("ul0")?);
        dp.add_vap(client_vap(cl0))?;
        dp.add_vap(Vap {
            client_mac: mac_key(BREAKOUT),
            vap_mac: mac_key(BREAKOUT_VAP),
            host_mac: mac_key(HOST_MAC),
            ifindex: cl0,
            flags: VAP_HAS_V4 | VAP_BREAKOUT,
            ipv4: v4(BREAKOUT4).octets(),
            slot: 1,
            ipv6: [0; 16],
            anchor: Binding::default(),
            forward: Binding::default(),
        })?;
        Ok(Lab {
            _entered: entered,
            dp,
            _ns: ns,
            cl0,
            ul0,
        })
    }

    /// Runs `program` on `frame` from `ingress`; checks the verdict, the one counter that
    /// must grow, and the output (`None`: the frame must come out unchanged).
    fn check(
        &self,
        name: &str,
        program: &str,
        ingress: u32,
        frame: &[u8],
        want: (Action, Reason, TunnelKind),
        out: Option<&[u8]>,
    ) {
        let before = self.dp.counters().unwrap();
        let r = self.dp.run_program(program, frame, ingress, 1).unwrap();
        let after = self.dp.counters().unwrap();
        let (action, reason, kind) = want;
        assert_eq!(
            r.action,
            action as u32,
            "{name}: verdict {} instead of {}",
            action_name(r.action),
            action.name()
        );
        let delta = counter_delta(&before, &after);
        let expected = vec![(counter_index(reason, kind, action), 1, frame.len() as u64)];
        assert_eq!(
            delta,
            expected,
            "{name}: counters changed: {:?}, expected {}",
            delta
                .iter()
                .map(|(i, p, b)| format!("{} +{p}/{b}", counter_name(*i)))
                .collect::<Vec<_>>(),
            counter_name(expected[0].0)
        );
        if let Err(e) = compare_frames(&r.data, out.unwrap_or(frame), &[]) {
            panic!("{name}: {e}");
        }
    }

    fn client_sends(
        &self,
        name: &str,
        frame: &[u8],
        want: (Action, Reason, TunnelKind),
        out: Option<&[u8]>,
    ) {
        self.check(
            name,
            vdmm_common::maps::VAP_PROGRAM,
            self.cl0,
            frame,
            want,
            out,
        )
    }
}

fn none(action: Action, reason: Reason) -> (Action, Reason, TunnelKind) {
    (action, reason, TunnelKind::None)
}

/// An ARP reply `sender is at sender_mac` to `target`.
fn arp_reply(sender_mac: Mac, sender: &str, target_mac: Mac, target: &str) -> Vec<u8> {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 2];
    arp.extend_from_slice(&sender_mac);
    arp.extend_from_slice(&v4(sender).octets());
    arp.extend_from_slice(&target_mac);
    arp.extend_from_slice(&v4(target).octets());
    ethernet(target_mac, sender_mac, ETH_P_ARP, &arp)
}

/// An ICMPv6 neighbour discovery message (type 135 or 136) in an IPv6 header with hop
/// limit 255, with a link-layer address option (`opt_type` 1 source, 2 target).
fn nd_frame(
    (dst_mac, src_mac): (Mac, Mac),
    (src, dst): (&str, &str),
    icmp_type: u8,
    flags: u32,
    target: &str,
    (opt_type, lladdr): (u8, Mac),
) -> Vec<u8> {
    let mut icmp = vec![icmp_type, 0, 0, 0];
    icmp.extend_from_slice(&flags.to_be_bytes());
    icmp.extend_from_slice(&v6(target).octets());
    icmp.extend_from_slice(&[opt_type, 1]);
    icmp.extend_from_slice(&lladdr);
    let (s, d) = (v6(src).octets(), v6(dst).octets());
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&s);
    pseudo.extend_from_slice(&d);
    pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_ICMPV6]);
    pseudo.extend_from_slice(&icmp);
    let sum = internet_checksum(&pseudo);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut ip6 = vec![0x60, 0, 0, 0];
    ip6.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    ip6.extend_from_slice(&[IPPROTO_ICMPV6, 255]);
    ip6.extend_from_slice(&s);
    ip6.extend_from_slice(&d);
    ip6.extend_from_slice(&icmp);
    ethernet(dst_mac, src_mac, ETH_P_IPV6, &ip6)
}

fn udp4(src: &str, dst: &str) -> Ip {
    Ip::V4(Ip4::new(
        v4(src),
        v4(dst),
        L4::Udp {
            sport: 40000,
            dport: 5001,
            len: 64,
        },
    ))
}

fn udp6(src: &str, dst: &str) -> Ip {
    Ip::V6(Ip6::new(
        v6(src),
        v6(dst),
        L4::Udp {
            sport: 40000,
            dport: 5001,
            len: 64,
        },
    ))
}

fn frame(dst: Mac, src: Mac, p: &Ip) -> Vec<u8> {
    ethernet(dst, src, p.ethertype(), &p.bytes())
}

/// `inner` with its TTL decremented, in an IPv4 outer header EP -> `locator` (DF, TTL 64,
/// identification 0, DSCP/ECN 0 as the inner's), from ul0 to `next_hop`.
fn tunnelled(inner: &Ip, locator: &str, next_hop: Mac) -> Vec<u8> {
    let mut o = Outer4::new(v4(EP), v4(locator), inner.tunnel_proto());
    o.df = true;
    o.id = 0;
    o.ttl = 64;
    let wrapped = o.wrap(&inner.with_ttl(inner.ttl() - 1).bytes());
    ethernet(next_hop, UL0_MAC, ETH_P_IP, &wrapped)
}

#[test]
fn arp_and_neighbour_solicitations_are_answered_with_the_vap_mac() {
    let lab = Lab::new("vapnd");
    let req = arp_request(CLIENT, v4(CLIENT4), v4("10.1.0.1"));
    lab.client_sends(
        "ARP request for the gateway",
        &req,
        none(Action::Tx, Reason::VapArpReply),
        Some(&arp_reply(CLIENT_VAP, "10.1.0.1", CLIENT, CLIENT4)),
    );
    lab.client_sends(
        "ARP request for any other address",
        &arp_request(CLIENT, v4(CLIENT4), v4("10.9.9.9")),
        none(Action::Tx, Reason::VapArpReply),
        Some(&arp_reply(CLIENT_VAP, "10.9.9.9", CLIENT, CLIENT4)),
    );
    lab.client_sends(
        "ARP probe for its own address (RFC 5227)",
        &arp_request(CLIENT, v4("0.0.0.0"), v4(CLIENT4)),
        none(Action::Pass, Reason::VapPassed),
        None,
    );
    lab.client_sends(
        "ARP request with a foreign sender address",
        &arp_request(CLIENT, v4("10.1.0.66"), v4("10.1.0.1")),
        none(Action::Drop, Reason::VapSpoofed),
        None,
    );
    let ns = nd_frame(
        ([0x33, 0x33, 0xff, 0, 0, 1], CLIENT),
        ("fe80::5", "ff02::1:ff00:1"),
        135,
        0,
        "fe80::1",
        (1, CLIENT),
    );
    let na = nd_frame(
        (CLIENT, CLIENT_VAP),
        ("fe80::1", "fe80::5"),
        136,
        0xe000_0000,
        "fe80::1",
        (2, CLIENT_VAP),
    );
    lab.client_sends(
        "neighbour solicitation for the gateway from a link-local address",
        &ns,
        none(Action::Tx, Reason::VapNdReply),
        Some(&na),
    );
    let ns_global = nd_frame(
        (CLIENT_VAP, CLIENT),
        (CLIENT6, "fd00:5::1"),
        135,
        0,
        "fd00:5::1",
        (1, CLIENT),
    );
    let na_global = nd_frame(
        (CLIENT, CLIENT_VAP),
        ("fd00:5::1", CLIENT6),
        136,
        0xe000_0000,
        "fd00:5::1",
        (2, CLIENT_VAP),
    );
    lab.client_sends(
        "neighbour solicitation (unicast) from the client's own address",
        &ns_global,
        none(Action::Tx, Reason::VapNdReply),
        Some(&na_global),
    );
    let spoofed = nd_frame(
        (CLIENT_VAP, CLIENT),
        ("fd00:9::9", "fd00:5::1"),
        135,
        0,
        "fd00:5::1",
        (1, CLIENT),
    );
    lab.client_sends(
        "neighbour solicitation from a foreign address",
        &spoofed,
        none(Action::Drop, Reason::VapSpoofed),
        None,
    );
    let dad = nd_frame(
        ([0x33, 0x33, 0xff, 0, 0, 5], CLIENT),
        ("::", "ff02::1:ff00:5"),
        135,
        0,
        CLIENT6,
        (1, CLIENT),
    );
    lab.client_sends(
        "duplicate address detection",
        &dad,
        none(Action::Pass, Reason::VapPassed),
        None,
    );
    let c = lab.dp.vap_counters(0).unwrap();
    assert_eq!(c.from_client.packets, 8);
    assert_eq!(c.replies.packets, 4);
    assert_eq!(c.spoofed.packets, 2);
    assert_eq!(c.uplink.packets, 0);
}

#[test]
fn uplink_is_tunnelled_to_the_anchor_or_broken_out_and_spoofing_is_dropped() {
    let lab = Lab::new("vapup");
    let p4 = udp4(CLIENT4, REMOTE4);
    lab.client_sends(
        "IPv4 to the vAP: 4in4 toward the anchor",
        &frame(CLIENT_VAP, CLIENT, &p4),
        (Action::Redirect, Reason::VapUplink, TunnelKind::Ip4in4),
        Some(&tunnelled(&p4, ANCHOR, ANCHOR_MAC)),
    );
    let p6 = udp6(CLIENT6, REMOTE6);
    lab.client_sends(
        "IPv6 to the vAP: 6in4 toward the anchor",
        &frame(CLIENT_VAP, CLIENT, &p6),
        (Action::Redirect, Reason::VapUplink, TunnelKind::Ip6in4),
        Some(&tunnelled(&p6, ANCHOR, ANCHOR_MAC)),
    );
    lab.client_sends(
        "IPv4 from a foreign source",
        &frame(CLIENT_VAP, CLIENT, &udp4("10.1.0.99", REMOTE4)),
        none(Action::Drop, Reason::VapSpoofed),
        None,
    );
    lab.client_sends(
        "IPv4 from another client's address",
        &frame(CLIENT_VAP, CLIENT, &udp4(BREAKOUT4, REMOTE4)),
        none(Action::Drop, Reason::VapSpoofed),
        None,
    );
    lab.client_sends(
        "IPv6 from a foreign source",
        &frame(CLIENT_VAP, CLIENT, &udp6("fd00:5::6", REMOTE6)),
        none(Action::Drop, Reason::VapSpoofed),
        None,
    );
    lab.client_sends(
        "IPv6 to the vAP from a link-local source",
        &frame(CLIENT_VAP, CLIENT, &udp6("fe80::5", REMOTE6)),
        none(Action::Drop, Reason::VapLinkLocal),
        None,
    );
    lab.client_sends(
        "multicast from the client's own address",
        &frame(
            [0x01, 0, 0x5e, 0, 0, 0xfb],
            CLIENT,
            &udp4(CLIENT4, "224.0.0.251"),
        ),
        none(Action::Pass, Reason::VapMulticast),
        None,
    );
    lab.client_sends(
        "DHCP-like broadcast from 0.0.0.0",
        &frame([0xff; 6], CLIENT, &udp4("0.0.0.0", "255.255.255.255")),
        none(Action::Pass, Reason::VapMulticast),
        None,
    );
    lab.client_sends(
        "unicast to the AP host's own MAC",
        &frame(HOST_MAC, CLIENT, &udp4(CLIENT4, "10.1.0.1")),
        none(Action::Pass, Reason::VapPassed),
        None,
    );
    lab.client_sends(
        "neither IP nor ARP",
        &ethernet([0x01, 0x80, 0xc2, 0, 0, 0x0e], CLIENT, ETH_P_LLDP, &[0; 46]),
        none(Action::Pass, Reason::VapNotIp),
        None,
    );
    let c = lab.dp.vap_counters(0).unwrap();
    assert_eq!(c.from_client.packets, 10);
    assert_eq!(c.uplink.packets, 2);
    assert_eq!(c.spoofed.packets, 3);

    let pb = udp4(BREAKOUT4, CORR);
    let out = frame(CORR_MAC, DN0_MAC, &pb.with_ttl(pb.ttl() - 1));
    lab.client_sends(
        "breakout vAP: routed by the AP host",
        &frame(BREAKOUT_VAP, BREAKOUT, &pb),
        none(Action::Redirect, Reason::VapBreakout),
        Some(&out),
    );
    let c = lab.dp.vap_counters(1).unwrap();
    assert_eq!((c.from_client.packets, c.uplink.packets), (1, 1));
}

/// Routes are cached per CPU (`VDMM_ROUTES` and its first level): a vAP whose anchor
/// changes must never send toward the old locator's cached route, nor mix up its uplink
/// (to the anchor) with its forwarding (to the next AP host) while both run.
#[test]
fn cached_routes_follow_the_vaps_anchor_and_forward_target() {
    let mut lab = Lab::new("vaprc");
    let p4 = udp4(CLIENT4, REMOTE4);
    let sent = frame(CLIENT_VAP, CLIENT, &p4);
    for _ in 0..2 {
        lab.client_sends(
            "IPv4 to the vAP: toward the anchor (route resolved, then cached)",
            &sent,
            (Action::Redirect, Reason::VapUplink, TunnelKind::Ip4in4),
            Some(&tunnelled(&p4, ANCHOR, ANCHOR_MAC)),
        );
    }
    let mut moved = client_vap(lab.cl0);
    moved.anchor = binding(AP2);
    lab.dp.add_vap(moved).unwrap();
    lab.client_sends(
        "IPv4 to the vAP after its anchor changed: toward the new anchor",
        &sent,
        (Action::Redirect, Reason::VapUplink, TunnelKind::Ip4in4),
        Some(&tunnelled(&p4, AP2, AP2_MAC)),
    );
    // The vAP forwards toward AP host 2 while its uplink goes to the anchor.
    let mut both = client_vap(lab.cl0);
    both.flags |= VAP_FORWARD;
    both.forward = binding(AP2);
    lab.dp.add_vap(both).unwrap();
    let down = udp4(REMOTE4, CLIENT4);
    let outer = Outer4::new(v4(ANCHOR), v4(EP), IPPROTO_IPIP).wrap(&down.bytes());
    for _ in 0..2 {
        lab.check(
            "4in4 for the client while forwarding: toward AP host 2",
            vdmm_common::maps::XDP_PROGRAM,
            lab.ul0,
            &ethernet(UL0_MAC, ANCHOR_MAC, ETH_P_IP, &outer),
            (Action::Tx, Reason::VapForward, TunnelKind::Ip4in4),
            Some(&tunnelled(&down, AP2, AP2_MAC)),
        );
        lab.client_sends(
            "IPv4 to the vAP while forwarding: still toward its anchor",
            &sent,
            (Action::Redirect, Reason::VapUplink, TunnelKind::Ip4in4),
            Some(&tunnelled(&p4, ANCHOR, ANCHOR_MAC)),
        );
    }
    let c = lab.dp.vap_counters(0).unwrap();
    assert_eq!((c.uplink.packets, c.forwarded.packets), (2, 2));
}

#[test]
fn packets_for_clients_are_delivered_or_forwarded() {
    let mut lab = Lab::new("vapdn");
    let xdp = vdmm_common::maps::XDP_PROGRAM;
    let p4 = udp4(REMOTE4, CLIENT4);
    let delivered = frame(CLIENT, CLIENT_VAP, &p4.with_ttl(p4.ttl() - 1));
    lab.check(
        "IPv4 for the client, routed to the AP host",
        xdp,
        lab.ul0,
        &frame(UL0_MAC, ANCHOR_MAC, &p4),
        (Action::Redirect, Reason::VapDeliver, TunnelKind::None),
        Some(&delivered),
    );
    let outer = Outer4::new(v4(ANCHOR), v4(EP), IPPROTO_IPIP).wrap(&p4.bytes());
    lab.check(
        "4in4 from the anchor for the client: decapsulated and delivered",
        xdp,
        lab.ul0,
        &ethernet(UL0_MAC, ANCHOR_MAC, ETH_P_IP, &outer),
        (Action::Redirect, Reason::VapDeliver, TunnelKind::Ip4in4),
        Some(&delivered),
    );
    let p6 = udp6(REMOTE6, CLIENT6);
    let outer6 = Outer4::new(v4(ANCHOR), v4(EP), IPPROTO_IPV6).wrap(&p6.bytes());
    lab.check(
        "6in4 from the anchor for the client: decapsulated and delivered",
        xdp,
        lab.ul0,
        &ethernet(UL0_MAC, ANCHOR_MAC, ETH_P_IP, &outer6),
        (Action::Redirect, Reason::VapDeliver, TunnelKind::Ip6in4),
        Some(&frame(CLIENT, CLIENT_VAP, &p6.with_ttl(p6.ttl() - 1))),
    );
    let c = lab.dp.vap_counters(0).unwrap();
    assert_eq!(c.delivered.packets, 3);

    // Forward mode (a handover's grace period): tunnelled on to AP host 2.
    let mut fwd = client_vap(lab.cl0);
    fwd.flags |= VAP_FORWARD;
    fwd.forward = binding(AP2);
    lab.dp.add_vap(fwd).unwrap();
    lab.check(
        "4in4 from the anchor while forwarding: re-encapsulated toward AP host 2",
        xdp,
        lab.ul0,
        &ethernet(UL0_MAC, ANCHOR_MAC, ETH_P_IP, &outer),
        (Action::Tx, Reason::VapForward, TunnelKind::Ip4in4),
        Some(&tunnelled(&p4, AP2, AP2_MAC)),
    );
    let c = lab.dp.vap_counters(0).unwrap();
    assert_eq!((c.delivered.packets, c.forwarded.packets), (0, 1));
}

#[test]
fn unknown_clients_are_reported_once_a_second_and_passed() {
    let mut lab = Lab::new("vapev");
    let p = udp4("10.1.0.77", REMOTE4);
    let f = frame(HOST_MAC, STRANGER, &p);
    lab.client_sends(
        "IPv4 from an unknown MAC",
        &f,
        none(Action::Pass, Reason::VapUnknownClient),
        None,
    );
    lab.client_sends(
        "again within a second",
        &f,
        none(Action::Pass, Reason::VapUnknownClient),
        None,
    );
    let events = lab.dp.vap_events().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = events[0];
    assert_eq!(e.kind, VAP_EVENT_UNKNOWN_CLIENT);
    assert_eq!(e.client_mac, mac_key(STRANGER));
    assert_eq!(e.ifindex, lab.cl0);
    assert_eq!(e.ethertype, ETH_P_IP as u32);
    assert_eq!(IpAddr::from(e.addr), ip("10.1.0.77"));
    let other = arp_request(
        [0x00, 0x16, 0x3e, 0, 0, 0x98],
        v4("10.1.0.78"),
        v4("10.1.0.1"),
    );
    lab.client_sends(
        "ARP from another unknown MAC",
        &other,
        none(Action::Pass, Reason::VapUnknownClient),
        None,
    );
    let events = lab.dp.vap_events().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(IpAddr::from(events[0].addr), ip("10.1.0.78"));
    assert_eq!(events[0].ethertype, ETH_P_ARP as u32);
}

/// The four native-order words of an address's map key (what the vAP address cache hashes).
fn key_words(a: &str) -> [u32; 4] {
    let k = IpAddrKey::from(ip(a));
    std::array::from_fn(|i| u32::from_ne_bytes(k.addr[i * 4..i * 4 + 4].try_into().unwrap()))
}

/// The first-level vAP caches (per CPU, `VDMM_VAP_L1` / `VDMM_VAP_ADDR_L1`) must never
/// serve a vAP that was changed, renumbered, deleted or handed to another client: each
/// case sends once so the cache holds the old vAP (checked in the map), changes the vAP
/// through the tables and the generation as the control plane does, and sends again.
#[test]
fn vap_caches_never_serve_a_changed_or_deleted_vap() {
    let mut lab = Lab::new("vapch");
    stay_on_this_cpu().unwrap();
    let xdp = vdmm_common::maps::XDP_PROGRAM;
    let client = mac_key(CLIENT);
    let cached_client = |lab: &Lab| {
        lab.dp
            .cached_vaps()
            .unwrap()
            .into_iter()
            .find(|(_, s)| s.client == client)
            .map(|(_, s)| s.vap)
    };
    let cached_addr = |lab: &Lab, a: &str| {
        lab.dp
            .cached_vap_addrs()
            .unwrap()
            .into_iter()
            .find(|(_, s)| s.addr == key_words(a))
            // A slot that says "no vAP" keeps whatever vAP bytes it held before.
            .map(|(_, s)| (s.found, if s.found != 0 { s.vap.client_mac } else { 0 }))
    };

    // Uplink: the anchor changes.
    let p4 = udp4(CLIENT4, REMOTE4);
    let sent = frame(CLIENT_VAP, CLIENT, &p4);
    lab.client_sends(
        "uplink toward the anchor",
        &sent,
        (Action::Redirect, Reason::VapUplink, TunnelKind::Ip4in4),
        Some(&tunnelled(&p4, ANCHOR, ANCHOR_MAC)),
    );
    assert_eq!(cached_client(&lab).map(|v| v.anchor), Some(binding(ANCHOR)));
    let mut moved = client_vap(lab.cl0);
    moved.anchor = binding(AP2);
    lab.dp.add_vap(moved).unwrap();
    assert_eq!(
        cached_client(&lab),
        None,
        "a change must invalidate the cache"
    );
    lab.client_sends(
        "uplink after the anchor changed",
        &sent,
        (Action::Redirect, Reason::VapUplink, TunnelKind::Ip4in4),
        Some(&tunnelled(&p4, AP2, AP2_MAC)),
    );
    assert_eq!(cached_client(&lab).map(|v| v.anchor), Some(binding(AP2)));

    // Delivery: the vAP starts forwarding (a handover), then is deleted.
    let down = udp4(REMOTE4, CLIENT4);
    let down_frame = frame(UL0_MAC, ANCHOR_MAC, &down);
    let delivered = frame(CLIENT, CLIENT_VAP, &down.with_ttl(down.ttl() - 1));
    lab.check(
        "for the client: delivered",
        xdp,
        lab.ul0,
        &down_frame,
        (Action::Redirect, Reason::VapDeliver, TunnelKind::None),
        Some(&delivered),
    );
    assert_eq!(cached_addr(&lab, CLIENT4), Some((1, client)));
    let mut fwd = client_vap(lab.cl0);
    fwd.flags |= VAP_FORWARD;
    fwd.forward = binding(AP2);
    lab.dp.add_vap(fwd).unwrap();
    lab.check(
        "for the client after the move: forwarded to AP host 2",
        xdp,
        lab.ul0,
        &down_frame,
        (Action::Tx, Reason::VapForward, TunnelKind::Ip4in4),
        Some(&tunnelled(&down, AP2, AP2_MAC)),
    );
    lab.dp.del_vap(client).unwrap();
    lab.check(
        "for the client after its vAP was deleted: not delivered",
        xdp,
        lab.ul0,
        &down_frame,
        none(Action::Pass, Reason::NoMatch),
        None,
    );
    assert_eq!(cached_addr(&lab, CLIENT4), Some((0, 0)), "cached as no vAP");
    lab.client_sends(
        "from the client after its vAP was deleted: unknown",
        &sent,
        none(Action::Pass, Reason::VapUnknownClient),
        None,
    );

    // The address, remembered as without a vAP, goes to another client.
    let other: Mac = [0x00, 0x16, 0x3e, 0, 0, 0x07];
    let other_vap: Mac = [0x02, 0xaa, 0, 0, 0, 0x07];
    lab.dp
        .add_vap(Vap {
            client_mac: mac_key(other),
            vap_mac: mac_key(other_vap),
            flags: VAP_HAS_V4,
            slot: 2,
            ipv6: [0; 16],
            ..client_vap(lab.cl0)
        })
        .unwrap();
    lab.check(
        "for the address now another client's: delivered to that client",
        xdp,
        lab.ul0,
        &down_frame,
        (Action::Redirect, Reason::VapDeliver, TunnelKind::None),
        Some(&frame(other, other_vap, &down.with_ttl(down.ttl() - 1))),
    );

    // The first client comes back with another address: its old one is spoofed now.
    let renumbered = "10.1.0.50";
    lab.dp
        .add_vap(Vap {
            ipv4: v4(renumbered).octets(),
            ..client_vap(lab.cl0)
        })
        .unwrap();
    lab.client_sends(
        "from the old address after renumbering: spoofed",
        &sent,
        none(Action::Drop, Reason::VapSpoofed),
        None,
    );
    let p = udp4(renumbered, REMOTE4);
    lab.client_sends(
        "from the new address: uplink",
        &frame(CLIENT_VAP, CLIENT, &p),
        (Action::Redirect, Reason::VapUplink, TunnelKind::Ip4in4),
        Some(&tunnelled(&p, ANCHOR, ANCHOR_MAC)),
    );
}

/// Two vAPs whose client MACs share a `VDMM_VAP_L1` slot, and whose addresses share a
/// `VDMM_VAP_ADDR_L1` slot, take turns in the slot: each packet gets its own vAP.
#[test]
fn vaps_sharing_a_cache_slot_each_get_their_own() {
    let mut lab = Lab::new("vapco");
    stay_on_this_cpu().unwrap();
    let xdp = vdmm_common::maps::XDP_PROGRAM;
    let client = mac_key(CLIENT);
    let rival_mac: Mac = (0..=0xffffu32)
        .map(|i| [0x00, 0x16, 0x3e, 0x01, (i >> 8) as u8, i as u8])
        .find(|m| mac_slot(mac_key(*m)) == mac_slot(client))
        .expect("a MAC in the client's slot");
    let rival4 = (0..=0xffffu32)
        .map(|i| format!("10.1.{}.{}", 1 + (i >> 8), i & 0xff))
        .find(|a| addr_slot(key_words(a)) == addr_slot(key_words(CLIENT4)))
        .expect("an address in the client's slot");
    let rival_vap: Mac = [0x02, 0xaa, 0, 0, 0, 0x08];
    lab.dp
        .add_vap(Vap {
            client_mac: mac_key(rival_mac),
            vap_mac: mac_key(rival_vap),
            flags: VAP_HAS_V4,
            ipv4: v4(&rival4).octets(),
            slot: 2,
            ipv6: [0; 16],
            anchor: binding(AP2),
            ..client_vap(lab.cl0)
        })
        .unwrap();
    let up = udp4(CLIENT4, REMOTE4);
    let rival_up = udp4(&rival4, REMOTE4);
    let down = udp4(REMOTE4, CLIENT4);
    let rival_down = udp4(REMOTE4, &rival4);
    for round in 0..3 {
        lab.client_sends(
            &format!("round {round}: client uplink to its anchor"),
            &frame(CLIENT_VAP, CLIENT, &up),
            (Action::Redirect, Reason::VapUplink, TunnelKind::Ip4in4),
            Some(&tunnelled(&up, ANCHOR, ANCHOR_MAC)),
        );
        lab.client_sends(
            &format!("round {round}: rival uplink to its anchor"),
            &frame(rival_vap, rival_mac, &rival_up),
            (Action::Redirect, Reason::VapUplink, TunnelKind::Ip4in4),
            Some(&tunnelled(&rival_up, AP2, AP2_MAC)),
        );
        lab.client_sends(
            &format!("round {round}: the client's source from the rival: spoofed"),
            &frame(rival_vap, rival_mac, &up),
            none(Action::Drop, Reason::VapSpoofed),
            None,
        );
        let slots: Vec<u64> = lab
            .dp
            .cached_vaps()
            .unwrap()
            .into_iter()
            .filter(|(i, _)| *i == mac_slot(client))
            .map(|(_, s)| s.client)
            .collect();
        assert_eq!(
            slots,
            [mac_key(rival_mac)],
            "the rival holds the shared slot"
        );
        lab.check(
            &format!("round {round}: for the client"),
            xdp,
            lab.ul0,
            &frame(UL0_MAC, ANCHOR_MAC, &down),
            (Action::Redirect, Reason::VapDeliver, TunnelKind::None),
            Some(&frame(CLIENT, CLIENT_VAP, &down.with_ttl(down.ttl() - 1))),
        );
        lab.check(
            &format!("round {round}: for the rival"),
            xdp,
            lab.ul0,
            &frame(UL0_MAC, ANCHOR_MAC, &rival_down),
            (Action::Redirect, Reason::VapDeliver, TunnelKind::None),
            Some(&frame(
                rival_mac,
                rival_vap,
                &rival_down.with_ttl(rival_down.ttl() - 1),
            )),
        );
        let addrs: Vec<u64> = lab
            .dp
            .cached_vap_addrs()
            .unwrap()
            .into_iter()
            .filter(|(i, _)| *i == addr_slot(key_words(CLIENT4)))
            .map(|(_, s)| s.vap.client_mac)
            .collect();
        assert_eq!(
            addrs,
            [mac_key(rival_mac)],
            "the rival holds the shared slot"
        );
    }
}
