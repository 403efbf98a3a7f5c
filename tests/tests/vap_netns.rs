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
    time::Duration,
};

use vdmm_tests::{
    lab::{self, ping_once, tcp_transfer},
    packet::{ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, Ip, Ip4, Ip6, L4, Mac, arp_request, ethernet},
    vap_lab::{
        CLIENT_MAC, CLIENT4, CLIENT6, CORR4, CORR6, GATEWAY4, GATEWAY6, VapLab, mac_text, parse_mac,
    },
    xlat_lab::RawSocket,
};

const PINGS: u32 = 10;
const TCP_BYTES: u64 = 4 * 1024 * 1024;
const SPOOFED: u64 = 7;

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
    let lab = VapLab::new("va", true);
    ping_and_tcp(&lab, CLIENT4.into(), CORR4.into(), GATEWAY4.into());
    ping_and_tcp(&lab, CLIENT6.into(), CORR6.into(), GATEWAY6.into());
}

#[test]
fn arp_is_answered_with_the_vap_mac_and_spoofed_sources_are_dropped_and_counted() {
    let lab = VapLab::new("va", true);
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
