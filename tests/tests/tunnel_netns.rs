//! End-to-end tests of the tunnel data plane in network namespaces (needs root):
//!
//! ```text
//! correspondent ── gwA ══ underlay switch ══ gwB ── host
//!                               │
//!                             rogue
//! ```
//!
//! once with an IPv4 and once with an IPv6 underlay, each for IPv4 and IPv6 inner
//! traffic, so all four tunnel kinds are exercised. The gateways are programmed only
//! through the real `vdmm-ctl` binary (`$VDMM_CTL`, default: next to this test binary's
//! `target/<profile>/`). See `vdmm_tests::lab` for the topology and why each setting is
//! there.
//!
//! Per kind: pings go through, an exact UDP burst is counted exactly (encap on gwA, decap
//! on gwB), a 10 MiB TCP transfer completes with default 1500-byte MTUs everywhere (which
//! only works when the data plane's ICMP fragmentation-needed / packet-too-big reaches the
//! sender: PMTUD), and a capture on the underlay shows nothing but tunnel packets between
//! the gateways (plus ARP/ND). Per underlay: tunnel packets from a non-peer are dropped,
//! counted as not_peer and never reach the host, while the same packet from the peer does;
//! IPv4 without DF too big for the tunnel is fragmented and arrives. Per kind: with cold
//! neighbour tables the first packets go through the kernel (fib_no_neighbour) and none
//! is lost.

use std::{net::IpAddr, time::Duration};

use vdmm_tests::lab::{
    self, Family, Gw, Lab, LabOptions, corr_addr, expect, gwa_underlay, gwb_underlay, host_addr,
    kind_name, rogue_underlay,
};

const PINGS: u32 = 10;
const UDP_DATAGRAMS: u64 = 200;
const TCP_BYTES: u64 = 10 * 1024 * 1024;

fn build(underlay: Family) -> Lab {
    if let Err(e) = vdmm_tests::netns::require_root() {
        panic!("{e}");
    }
    Lab::build(LabOptions::tunnel(underlay))
        .unwrap_or_else(|e| panic!("building the {underlay}-underlay lab: {e:#}"))
}

/// The tunnel MTU the correspondent should learn: underlay MTU minus the outer header
/// (IPv6 never below 1280).
fn expected_pmtu(inner: Family, underlay: Family) -> u32 {
    let outer = if underlay.is_v6() { 40 } else { 20 };
    let m = 1500 - outer;
    if inner.is_v6() { m.max(1280) } else { m }
}

fn traffic(underlay: Family, inner: Family) {
    let lab = build(underlay);
    let kind = kind_name(inner, underlay);
    let dst = host_addr(inner);
    let capture = lab.capture_underlay(Gw::A).expect("start underlay capture");

    // --- ping ------------------------------------------------------------------------
    let (a0, b0) = (lab.stats(Gw::A).unwrap(), lab.stats(Gw::B).unwrap());
    let p = lab::ping(&lab.corr, dst, PINGS, None).unwrap();
    let (da, db) = (
        lab.stats(Gw::A).unwrap().since(&a0).tunnel_only(),
        lab.stats(Gw::B).unwrap().since(&b0).tunnel_only(),
    );
    assert_eq!(
        (p.sent, p.received),
        (PINGS as u64, PINGS as u64),
        "{kind}: ping {dst} lost packets\ngwA:\n{da}gwB:\n{db}"
    );
    let n = PINGS as u64;
    // Requests: encap on gwA, decap on gwB; replies: encap on gwB, decap on gwA.
    let both = expect(&[
        ("encap", kind, "redirect", n),
        ("decap", kind, "redirect", n),
    ]);
    assert_eq!(da.packets(), both, "{kind}: gwA counters for {n} pings");
    assert_eq!(db.packets(), both, "{kind}: gwB counters for {n} pings");

    // --- exact UDP burst (one direction only) -----------------------------------------
    let (a0, b0) = (lab.stats(Gw::A).unwrap(), lab.stats(Gw::B).unwrap());
    let got = lab::udp_burst(
        &lab.corr,
        &lab.host,
        dst,
        UDP_DATAGRAMS,
        64,
        Duration::from_micros(500),
    )
    .unwrap();
    let (da, db) = (
        lab.stats(Gw::A).unwrap().since(&a0).tunnel_only(),
        lab.stats(Gw::B).unwrap().since(&b0).tunnel_only(),
    );
    assert_eq!(
        got, UDP_DATAGRAMS,
        "{kind}: UDP datagrams received\ngwA:\n{da}gwB:\n{db}"
    );
    assert_eq!(
        da.packets(),
        expect(&[("encap", kind, "redirect", UDP_DATAGRAMS)]),
        "{kind}: gwA counters for {UDP_DATAGRAMS} datagrams"
    );
    assert_eq!(
        db.packets(),
        expect(&[("decap", kind, "redirect", UDP_DATAGRAMS)]),
        "{kind}: gwB counters for {UDP_DATAGRAMS} datagrams"
    );

    // --- DSCP and ECN: EF without ECN, EF with ECT(0), CE (the capture checks the outer
    // header of each: DSCP and ECN copied, RFC 6040 normal mode; gwB's decapsulation
    // leaves the inner ECN as it was, so all arrive) -----------------------------------
    let (a0, b0) = (lab.stats(Gw::A).unwrap(), lab.stats(Gw::B).unwrap());
    for tos in [0xb8u8, 0xba, 0x03] {
        let got = lab::udp_burst_tos(
            &lab.corr,
            &lab.host,
            dst,
            10,
            64,
            Duration::from_micros(500),
            tos,
        )
        .unwrap();
        assert_eq!(got, 10, "{kind}: datagrams with TOS {tos:#04x} received");
    }
    let (da, db) = (
        lab.stats(Gw::A).unwrap().since(&a0).tunnel_only(),
        lab.stats(Gw::B).unwrap().since(&b0).tunnel_only(),
    );
    assert_eq!(
        da.packets(),
        expect(&[("encap", kind, "redirect", 30)]),
        "{kind}: gwA, TOS"
    );
    assert_eq!(
        db.packets(),
        expect(&[("decap", kind, "redirect", 30)]),
        "{kind}: gwB, TOS"
    );

    // --- inner TTL: a packet that would expire gets ICMP time exceeded from gwA ----------
    let a0 = lab.stats(Gw::A).unwrap();
    // ping exits 1 (no reply); its report is on stdout.
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.corr.name(),
            "ping",
            "-n",
            "-c",
            "1",
            "-W",
            "1",
            "-t",
            "1",
        ])
        .arg(dst.to_string())
        .output()
        .expect("run ping");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let da = lab.stats(Gw::A).unwrap().since(&a0);
    let expired: u64 =
        da.0.iter()
            .filter(|((r, _, a), _)| r == "ttl_expired" && a == "tx")
            .map(|(_, v)| v.0)
            .sum();
    assert_eq!(
        expired, 1,
        "{kind}: TTL 1 ping must cost one ttl_expired/tx on gwA\n{da}"
    );
    assert!(
        text.contains("exceeded"),
        "{kind}: ping -t 1 should report time exceeded from gwA, printed: {text}"
    );

    // --- TCP, 10 MiB, 1500-byte MTU everywhere: needs PMTUD through the data plane -----
    let (a0, b0) = (lab.stats(Gw::A).unwrap(), lab.stats(Gw::B).unwrap());
    let tcp = lab::tcp_transfer(
        &lab.corr,
        &lab.host,
        dst,
        TCP_BYTES,
        Duration::from_secs(20),
    );
    let (da, db) = (
        lab.stats(Gw::A).unwrap().since(&a0).tunnel_only(),
        lab.stats(Gw::B).unwrap().since(&b0).tunnel_only(),
    );
    let tcp = tcp.unwrap_or_else(|e| {
        panic!("{kind}: TCP transfer of {TCP_BYTES} bytes failed: {e:#}\ngwA:\n{da}gwB:\n{db}")
    });
    assert_eq!(tcp.bytes, TCP_BYTES, "{kind}: TCP bytes received");
    assert!(
        da.get("too_big", kind, "tx") >= 1,
        "{kind}: the first full-size segment must have been answered with \
         fragmentation-needed/packet-too-big (too_big/{kind}/tx on gwA)\n{da}"
    );
    let segments = TCP_BYTES / 1500;
    assert!(
        da.get("encap", kind, "redirect") >= segments
            && db.get("decap", kind, "redirect") >= segments,
        "{kind}: at least {segments} data segments encapsulated on gwA and decapsulated on gwB\n\
         gwA:\n{da}gwB:\n{db}"
    );
    for (gw, d) in [("gwA", &da), ("gwB", &db)] {
        let drops: Vec<_> =
            d.0.iter()
                .filter(|((_, _, a), v)| (a == "drop" || a == "aborted") && v.0 > 0)
                .collect();
        assert!(
            drops.is_empty(),
            "{kind}: {gw} dropped tunnel packets during TCP: {drops:?}"
        );
    }
    let route = lab
        .corr
        .ip(&["route", "get", &dst.to_string()])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let want = expected_pmtu(inner, underlay);
    assert!(
        route.contains(&format!("mtu {want}")),
        "{kind}: correspondent should have learnt path MTU {want} towards {dst}: {route}"
    );

    // --- the underlay carried nothing but tunnel packets --------------------------------
    let cap = capture.stop().expect("stop capture");
    let endpoints = [gwa_underlay(underlay), gwb_underlay(underlay)];
    let leaks = cap.not_tunnelled(&endpoints);
    assert!(
        leaks.is_empty(),
        "{kind}: non-tunnel IP packets on the underlay: {:?} (capture: {})",
        &leaks[..leaks.len().min(10)],
        cap.brief()
    );
    assert!(
        cap.tunnel_frames(kind) >= 2 * n + UDP_DATAGRAMS + 30,
        "{kind}: capture saw too few {kind} frames: {}",
        cap.brief()
    );
    // Every tunnel packet on the wire: outer header per the rules, inner TTL decremented
    // once (the correspondent and host send with 64).
    let bad = cap.bad_tunnel_headers(63, 5);
    assert!(
        bad.is_empty(),
        "{kind}: tunnel packets with wrong headers on the underlay: {bad:#?}"
    );
    let other_kinds: Vec<_> = cap
        .by_label()
        .into_iter()
        .filter(|(l, _)| ["4in4", "6in4", "4in6", "6in6"].contains(&l.as_str()) && l != kind)
        .collect();
    assert!(
        other_kinds.is_empty(),
        "{kind}: other tunnel kinds on the underlay: {other_kinds:?}"
    );
    eprintln!(
        "{kind}: {n}/{n} pings, {UDP_DATAGRAMS} datagrams, {TCP_BYTES} TCP bytes at {:.0} Mbit/s; \
         underlay capture: {} (kernel drops {})",
        tcp.mbit_per_s(),
        cap.brief(),
        cap.dropped_by_kernel
    );
}

/// Tunnel packets to gwB from an address that is not its peer are dropped and counted;
/// the same inner packet tunnelled from the peer (gwA) arrives, proving the packet was
/// fine and only the sender made the difference.
fn non_peer(underlay: Family) {
    let lab = build(underlay);
    let rogue = lab.rogue.as_ref().expect("tunnel lab has a rogue");
    for inner in Family::BOTH {
        let kind = kind_name(inner, underlay);
        let port = lab::next_port();
        let packet = lab::udp_packet(corr_addr(inner), host_addr(inner), 40000, port, b"rogue");
        let capture = lab.capture_underlay(Gw::B).unwrap();

        let b0 = lab.stats(Gw::B).unwrap();
        let sink =
            lab::udp_sink(&lab.host, host_addr(inner), port, 1, Duration::from_secs(1)).unwrap();
        lab::send_raw_tunnel(rogue, gwb_underlay(underlay), packet.clone(), 5).unwrap();
        let (got, _) = lab::join(sink).unwrap();
        let db = lab.stats(Gw::B).unwrap().since(&b0).tunnel_only();
        assert_eq!(
            got, 0,
            "{kind}: a tunnel packet from a non-peer reached the host\n{db}"
        );
        assert_eq!(
            db.packets(),
            expect(&[("not_peer", kind, "drop", 5)]),
            "{kind}: gwB counters for 5 tunnel packets from non-peer {}",
            rogue_underlay(underlay)
        );

        let b0 = lab.stats(Gw::B).unwrap();
        let sink =
            lab::udp_sink(&lab.host, host_addr(inner), port, 1, Duration::from_secs(2)).unwrap();
        lab::send_raw_tunnel(&lab.gwa, gwb_underlay(underlay), packet, 1).unwrap();
        let (got, _) = lab::join(sink).unwrap();
        let db = lab.stats(Gw::B).unwrap().since(&b0).tunnel_only();
        assert_eq!(
            got, 1,
            "{kind}: the same packet from the peer gwA must arrive\n{db}"
        );
        assert_eq!(
            db.packets(),
            expect(&[("decap", kind, "redirect", 1)]),
            "{kind}: gwB"
        );

        let cap = capture.stop().unwrap();
        let from = |src: IpAddr| {
            cap.frames
                .iter()
                .filter(|f| matches!(f, lab::FrameClass::Tunnel { src: s, .. } if *s == src))
                .count()
        };
        assert_eq!(
            from(rogue_underlay(underlay)),
            5,
            "{kind}: rogue frames at gwB's port"
        );
        assert_eq!(
            from(gwa_underlay(underlay)),
            1,
            "{kind}: peer frames at gwB's port"
        );
    }
}

/// IPv4 without DF that does not fit once encapsulated: the issue asks for it to be
/// fragmented where IPv4 allows it. The data plane hands the packet to gwA's kernel
/// (fragmented_by_kernel), which fragments it along the slow-path route vdmm-ctl
/// installed for the binding; the TC egress program encapsulates the fragments. The
/// datagrams must reach the host.
fn non_df_fragmentation(underlay: Family) {
    let lab = build(underlay);
    let kind = kind_name(Family::V4, underlay);
    let capture = lab.capture_underlay(Gw::A).unwrap();
    let (a0, b0) = (lab.stats(Gw::A).unwrap(), lab.stats(Gw::B).unwrap());
    let port = lab::next_port();
    let sink = lab::udp_sink(
        &lab.host,
        lab::HOST_V4.into(),
        port,
        3,
        Duration::from_secs(2),
    )
    .unwrap();
    let sender = lab::in_netns(&lab.corr, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        let off: libc::c_int = libc::IP_PMTUDISC_DONT;
        use std::os::fd::AsRawFd;
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                (&off as *const libc::c_int).cast(),
                std::mem::size_of_val(&off) as _,
            )
        };
        anyhow::ensure!(
            rc == 0,
            "IP_MTU_DISCOVER: {}",
            std::io::Error::last_os_error()
        );
        // 1472 bytes of payload: a full 1500-byte inner packet, 1520 once encapsulated.
        for _ in 0..3 {
            s.send_to(&[0x42u8; 1472], (lab::HOST_V4, port))?;
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    });
    lab::join(sender).unwrap();
    let (got, bytes) = lab::join(sink).unwrap();
    let (da, db) = (
        lab.stats(Gw::A).unwrap().since(&a0).tunnel_only(),
        lab.stats(Gw::B).unwrap().since(&b0).tunnel_only(),
    );
    assert_eq!(
        (got, bytes),
        (3, 3 * 1472),
        "{kind}: 3 non-DF 1500-byte datagrams must arrive (fragmented on the way)\n\
         gwA:\n{da}gwB:\n{db}"
    );
    // XDP hands each datagram to gwA's kernel (fragmented_by_kernel), which fragments the
    // inner packet along vdmm's slow-path route (MTU 1480) into 2 fragments; each is
    // encapsulated on the way out, so gwB decapsulates 6 whole (unfragmented) tunnel
    // packets and the host reassembles.
    assert_eq!(
        da.get("fragmented_by_kernel", kind, "pass"),
        3,
        "{kind}: gwA\n{da}"
    );
    assert_eq!(
        da.reason_kind("encap", kind),
        6,
        "{kind}: gwA slow-path encaps\n{da}"
    );
    assert_eq!(
        db.packets(),
        expect(&[("decap", kind, "redirect", 6)]),
        "{kind}: gwB\n{db}"
    );
    // The slow path's outer headers follow the same rules (outer DF clear like the inner).
    let cap = capture.stop().unwrap();
    assert_eq!(
        cap.tunnel_frames(kind),
        6,
        "{kind}: capture {}",
        cap.brief()
    );
    let bad = cap.bad_tunnel_headers(63, 5);
    assert!(
        bad.is_empty(),
        "{kind}: slow-path tunnel packets with wrong headers: {bad:#?}"
    );
}

#[test]
fn ipv4_underlay_ipv4_inner() {
    traffic(Family::V4, Family::V4);
}

#[test]
fn ipv4_underlay_ipv6_inner() {
    traffic(Family::V4, Family::V6);
}

#[test]
fn ipv6_underlay_ipv4_inner() {
    traffic(Family::V6, Family::V4);
}

#[test]
fn ipv6_underlay_ipv6_inner() {
    traffic(Family::V6, Family::V6);
}

#[test]
fn ipv4_underlay_non_peer_dropped() {
    non_peer(Family::V4);
}

#[test]
fn ipv6_underlay_non_peer_dropped() {
    non_peer(Family::V6);
}

#[test]
fn ipv4_underlay_non_df_fragmentation() {
    non_df_fragmentation(Family::V4);
}

#[test]
fn ipv6_underlay_non_df_fragmentation() {
    non_df_fragmentation(Family::V6);
}

/// With the gateways' neighbour tables flushed, the data plane cannot finish the first
/// packets itself (`bpf_fib_lookup` answers NO_NEIGH on gwA for the locator and on gwB for
/// the host): it passes them to the kernel, which resolves the neighbour and forwards
/// them (gwA: along vdmm's slow-path route, encapsulated by TC), counted as
/// fib_no_neighbour. Nothing may be lost.
fn neighbour_resolution(underlay: Family, inner: Family) {
    let lab = build(underlay);
    let kind = kind_name(inner, underlay);
    for gw in [&lab.gwa, &lab.gwb] {
        gw.ip(&["neigh", "flush", "all"]).unwrap();
        gw.ip(&["-6", "neigh", "flush", "all"]).unwrap();
    }
    let (a0, b0) = (lab.stats(Gw::A).unwrap(), lab.stats(Gw::B).unwrap());
    let got = lab::udp_burst(
        &lab.corr,
        &lab.host,
        host_addr(inner),
        20,
        64,
        Duration::from_millis(20),
    )
    .unwrap();
    let (da, db) = (
        lab.stats(Gw::A).unwrap().since(&a0).tunnel_only(),
        lab.stats(Gw::B).unwrap().since(&b0).tunnel_only(),
    );
    let routes = lab
        .gwa
        .ip(&["-6", "route", "show", lab::HOST_PREFIX_V6])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert_eq!(
        got, 20,
        "{kind}: datagrams received with cold neighbour tables (gwA's kernel route for the \
         IPv6 home prefix: {routes:?})\ngwA:\n{da}gwB:\n{db}"
    );
    assert!(
        da.reason_kind("fib_no_neighbour", kind) >= 1
            && db.reason_kind("fib_no_neighbour", kind) >= 1,
        "{kind}: both gateways must have counted fib_no_neighbour\ngwA:\n{da}gwB:\n{db}"
    );
}

#[test]
fn ipv4_underlay_ipv4_inner_neighbour_resolution() {
    neighbour_resolution(Family::V4, Family::V4);
}

#[test]
fn ipv4_underlay_ipv6_inner_neighbour_resolution() {
    neighbour_resolution(Family::V4, Family::V6);
}

#[test]
fn ipv6_underlay_ipv4_inner_neighbour_resolution() {
    neighbour_resolution(Family::V6, Family::V4);
}

#[test]
fn ipv6_underlay_ipv6_inner_neighbour_resolution() {
    neighbour_resolution(Family::V6, Family::V6);
}
