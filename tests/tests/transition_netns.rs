//! The two seed scenarios of issue #3 end to end in network namespaces (needs root):
//!
//! * A: an IPv4 host moves into an IPv6-only network;
//! * B: an IPv6 host moves into an IPv4-only network.
//!
//! Each: a TCP connection from the host to the correspondent of its own family is opened
//! at home and exchanges data (echoed, every byte checked); the host moves (its home link
//! is deleted, its link into the other-family network comes up, bindings are updated with
//! `vdmm-ctl`); the SAME socket exchanges more data; the host still has its home address
//! (the correspondent sees it as the peer); the correspondent of the other family reaches
//! the host through the transition gateway's translation (ping and a TCP echo); and the
//! counters of the anchor, the transition gateway and the host show encap / decap /
//! reencap / translated. Topology and the exact vdmm-ctl commands:
//! `vdmm_tests::transition_lab`.

use std::{net::SocketAddr, time::Duration};

use vdmm_tests::{
    lab::{self, Counters, Family, next_port},
    transition_lab::{
        HOST_VISIT_IF, OutCapture, Scenario, TcpSession, TransitionLab, any_addr, echo_server,
    },
};

const BEFORE: u64 = 256 * 1024;
const AFTER: u64 = 256 * 1024;
const XLAT_BYTES: u64 = 128 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

fn need(c: &Counters, what: &str, reason: &str, kind: &str, missing: &mut Vec<String>) {
    if c.reason_kind(reason, kind) == 0 {
        missing.push(format!("{what}: no {reason}/{kind}"));
    }
}

fn scenario(s: Scenario) {
    if let Err(e) = vdmm_tests::netns::require_root() {
        panic!("{e}");
    }
    let mut lab =
        TransitionLab::build(s).unwrap_or_else(|e| panic!("building the {s:?} lab: {e:#}"));
    let p = lab.plan.clone();
    let (f, g) = (s.home(), s.visited());
    let (ff, fg) = (Scenario::kind(f, f), Scenario::kind(f, g));

    // --- a TCP connection at home ---------------------------------------------------
    let port = next_port();
    let server = echo_server(&lab.cnh, any_addr(f, port), TIMEOUT * 3).unwrap();
    let (session, local) =
        TcpSession::open(&lab.host, SocketAddr::new(p.cnh, port), TIMEOUT).unwrap();
    assert_eq!(
        local.ip(),
        p.host_home,
        "the host connects from its home address"
    );
    session
        .exchange(BEFORE)
        .unwrap_or_else(|e| panic!("{s:?}: TCP at home: {e:#}"));

    // --- the move ---------------------------------------------------------------------
    let before = [
        lab.anchor_vdmm.stats().unwrap(),
        lab.tgw_vdmm.stats().unwrap(),
    ];
    assert!(
        before[0].tunnel_only().0.is_empty() && before[1].tunnel_only().0.is_empty(),
        "{s:?}: tunnel traffic before the move\n{}",
        lab.all_stats()
    );
    lab.move_host()
        .unwrap_or_else(|e| panic!("{s:?}: moving the host: {e:#}"));
    // Everything the host sends into the visited network from now on.
    let capture = OutCapture::start(&lab.host, HOST_VISIT_IF).unwrap();

    // The same socket, after the move.
    if let Err(e) = session.exchange(AFTER) {
        panic!(
            "{s:?}: TCP connection opened before the move does not survive it: {e:#}\ncounters:\n{}",
            lab.all_stats()
        );
    }
    let total = session.close().unwrap();
    assert_eq!(total, BEFORE + AFTER);
    let (got, peer) = lab::join(server).unwrap();
    assert_eq!(got, BEFORE + AFTER, "bytes the correspondent received");
    assert_eq!(
        peer.ip(),
        p.host_home,
        "the correspondent sees the host's home address"
    );

    // The correspondent of the host's family reaches the host by ping too.
    let r = lab::ping(&lab.cnh, p.host_home, 5, None).unwrap();
    assert_eq!(
        r.received,
        5,
        "{s:?}: ping cnh -> H after the move\n{}",
        lab.all_stats()
    );

    // --- the other-family correspondent, through translation -------------------------
    let to = lab.host_as_seen_by_cnx;
    let r = lab::ping(&lab.cnx, to, 5, None).unwrap();
    assert_eq!(
        r.received,
        5,
        "{s:?}: ping from the {g} correspondent to {to} (the host {} translated)\n{}",
        p.host_home,
        lab.all_stats()
    );
    let port = next_port();
    let server = echo_server(&lab.host, SocketAddr::new(p.host_home, port), TIMEOUT * 3).unwrap();
    let (xs, _) = TcpSession::open(&lab.cnx, SocketAddr::new(to, port), TIMEOUT)
        .unwrap_or_else(|e| panic!("{s:?}: TCP cnx -> {to}: {e:#}\n{}", lab.all_stats()));
    xs.exchange(XLAT_BYTES)
        .unwrap_or_else(|e| panic!("{s:?}: TCP through translation: {e:#}\n{}", lab.all_stats()));
    assert_eq!(xs.close().unwrap(), XLAT_BYTES);
    let (got, peer) = lab::join(server).unwrap();
    assert_eq!(got, XLAT_BYTES);
    assert_eq!(
        peer.ip(),
        lab.cnx_as_seen_by_host,
        "the host sees the {g} correspondent {} as {}",
        p.cnx,
        lab.cnx_as_seen_by_host
    );

    // --- the visited network carries only family-G packets from the host ---------------
    let sent = capture.stop().unwrap();
    let endpoints = [p.host_coa, p.tgw_visit];
    let stray = sent.not_tunnelled(&endpoints);
    assert!(
        stray.is_empty(),
        "{s:?}: the host sent {} frames into the {g}-only network that are not {fg} tunnel \
         packets to tgw (nor ARP/ND): first {:?}; all: {}",
        stray.len(),
        &stray[..stray.len().min(5)],
        sent.brief()
    );
    assert!(
        sent.tunnel_frames(fg) > 0,
        "{s:?}: no {fg} frames from the host: {}",
        sent.brief()
    );
    eprintln!(
        "{s:?}: the host sent into the visited network: {}",
        sent.brief()
    );

    // --- counters ------------------------------------------------------------------------
    let anchor = lab.anchor_vdmm.stats().unwrap().since(&before[0]);
    let tgw = lab.tgw_vdmm.stats().unwrap().since(&before[1]);
    let host = lab.host_vdmm.stats().unwrap();
    let (x_in, x_out) = match f {
        // cnx -> H is translated into the host's family, H -> cnx out of it.
        Family::V4 => ("xlat6to4", "xlat4to6"),
        Family::V6 => ("xlat4to6", "xlat6to4"),
    };
    let mut missing = vec![];
    need(&anchor, "anchor", "encap", ff, &mut missing);
    need(&anchor, "anchor", "decap", ff, &mut missing);
    need(&tgw, "tgw", "reencap", fg, &mut missing); // anchor's tunnel -> host's tunnel
    need(&tgw, "tgw", "reencap", ff, &mut missing); // host's tunnel -> anchor's tunnel
    need(&tgw, "tgw", "decap", fg, &mut missing); // host -> translated correspondent
    need(&tgw, "tgw", "translated", x_in, &mut missing);
    need(&tgw, "tgw", "translated", x_out, &mut missing);
    need(&host, "host", "encap", fg, &mut missing); // slow path (tc)
    need(&host, "host", "fib_not_forwarded", fg, &mut missing); // decap for itself
    assert!(
        missing.is_empty(),
        "{s:?}: counters missing: {missing:?}\nanchor since the move:\n{anchor}tgw since the move:\n{tgw}host:\n{host}"
    );
    for (name, c) in [("anchor", &anchor), ("tgw", &tgw), ("host", &host)] {
        let drops: Vec<_> = c
            .0
            .iter()
            .filter(|((r, _, a), v)| (a == "drop" || a == "aborted") && v.0 > 0 && r != "not_ip")
            .collect();
        assert!(
            drops.is_empty(),
            "{s:?}: {name} dropped packets: {drops:?}\n{c}"
        );
    }
    eprintln!(
        "{s:?} passed.\nanchor since the move:\n{anchor}tgw since the move:\n{tgw}host:\n{host}"
    );
}

/// Scenario A: an IPv4 host moves into an IPv6-only network.
#[test]
fn ipv4_host_moves_into_ipv6_network() {
    scenario(Scenario::V4HostIntoV6);
}

/// Scenario B: an IPv6 host moves into an IPv4-only network.
#[test]
fn ipv6_host_moves_into_ipv4_network() {
    scenario(Scenario::V6HostIntoV4);
}

/// Translation straight into a tunnel on the transition gateway: tgw translates a packet
/// from the other-family correspondent for H and must then encapsulate it toward the
/// host itself (its binding for H, with the slow-path route `H dev vdmm0`), without the
/// lab's detour through the anchor. See `TransitionLab::translate_straight_into_tunnel`.
fn straight(s: Scenario) {
    if let Err(e) = vdmm_tests::netns::require_root() {
        panic!("{e}");
    }
    let mut lab =
        TransitionLab::build(s).unwrap_or_else(|e| panic!("building the {s:?} lab: {e:#}"));
    lab.translate_straight_into_tunnel().unwrap();
    lab.move_host()
        .unwrap_or_else(|e| panic!("{s:?}: moving the host: {e:#}"));
    let before = lab.tgw_vdmm.stats().unwrap();
    let to = lab.host_as_seen_by_cnx;
    let r = lab::ping(&lab.cnx, to, 10, None).unwrap();
    let tgw = lab.tgw_vdmm.stats().unwrap().since(&before);
    let h = lab.plan.host_home.to_string();
    let show = |args: &[&str]| {
        lab.tgw
            .ip(args)
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|e| format!("{e:#}"))
    };
    let (route, neigh) = (
        show(&["route", "get", &h]),
        show(&["neigh", "show", "dev", "vdmm0", "nud", "all"]),
    );
    assert_eq!(
        r.received,
        10,
        "{s:?}: {} of 10 pings from the {} correspondent to {to} (H = {}) answered when tgw \
         must translate and then encapsulate them itself; tgw counters during the pings:\n{tgw}\
         tgw `ip route get {h}`: {route}\ntgw `ip neigh show dev vdmm0 nud all`: {neigh}\n\
         (every translated packet for H must be handed to the kernel, which routes it \
         into vdmm0 where the slow path encapsulates it: the NOARP neighbour entry the \
         kernel makes on vdmm0 must not make the translator XDP_REDIRECT into vdmm0, a \
         device without XDP transmit, where the packets would vanish while counted as \
         translated/redirect)",
        r.received,
        s.visited(),
        lab.plan.host_home,
    );
}

#[test]
fn ipv4_host_in_ipv6_network_translated_straight_into_tunnel() {
    straight(Scenario::V4HostIntoV6);
}

#[test]
fn ipv6_host_in_ipv4_network_translated_straight_into_tunnel() {
    straight(Scenario::V6HostIntoV4);
}
