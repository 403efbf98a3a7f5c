//! End-to-end SIIT translation between network namespaces (issue #3): an IPv6-only host,
//! the translator (vdmm_xdp on both interfaces, loaded and configured with the real
//! vdmm-ctl binary) and an IPv4-only host; topology in `vdmm_tests::xlat_lab`. Needs root.
//!
//! - `siit_pktgen_vectors_end_to_end`: the 42 siit-pktgen conformance vectors
//!   (`../shared/conformance/siit-pktgen`), each sender packet injected as a raw Ethernet
//!   frame on the sending host's interface (AF_PACKET, addressed to the translator's
//!   MAC) and captured on the receiving host's interface (AF_PACKET), compared with the
//!   receiver packet except at the offsets cases.tsv lists, plus the Ethernet header and
//!   the translator's counter (`translated`, kind xlat4to6 / xlat6to4). One line per case,
//!   then `N passed, M failed`; fails unless M is 0.
//! - `ping_and_tcp_through_the_translator`: ping and a 2 MB TCP transfer from the IPv6
//!   host to 198.51.100.2 as 2001:db8:1c6:3364:2::, and from the IPv4 host to 192.0.2.33
//!   (the IPv6 host 2001:db8:1c0:2:21::), with the translator's counters checked.
//! - `udp_without_df_is_fragmented_by_the_kernel`: UDP datagrams of 3000 bytes without DF
//!   from the IPv4 host to the IPv6 host: too big for the lowest IPv6 MTU, they take the
//!   fragmentation slow path (the kernel fragments them into `vdmmx0`, `vdmm_xdp` on
//!   `vdmmx1` translates each fragment) and arrive whole (the IPv6 host reassembles).
//!
//! `cargo test -p vdmm-tests --test translate_netns -- --nocapture --test-threads 1`

use std::{
    fs,
    net::{IpAddr, SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    path::Path,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use vdmm_common::translate::reference::conformance::{Case, compare, load_cases, vectors_dir};
use vdmm_tests::{
    lab::{Counters, in_netns, join, next_port, ping, tcp_transfer_via},
    netns::{Netns, require_root},
    packet::{ETH_P_IP, ETH_P_IPV6, Mac, ethernet},
    xlat_lab::*,
};

fn lab(prefix: XlatPrefix) -> XlatLab {
    if let Err(e) = require_root() {
        panic!("{e}");
    }
    XlatLab::build(Translator::Vdmm(prefix))
        .unwrap_or_else(|e| panic!("setting up the translation lab: {e:#}"))
}

/// The addresses of an IP packet (src+dst bytes), to recognise the translated packet
/// among whatever else the receiving host sees.
fn addrs(ip: &[u8]) -> Option<&[u8]> {
    match ip.first()? >> 4 {
        4 if ip.len() >= 20 => Some(&ip[12..20]),
        6 if ip.len() >= 40 => Some(&ip[8..40]),
        _ => None,
    }
}

struct Ends<'a> {
    tx: &'a RawSocket,
    rx: &'a RawSocket,
    /// (dst, src, ethertype) of the injected frame.
    eth_in: (Mac, Mac, u16),
    /// (dst, src, ethertype) the translated frame must arrive with.
    eth_out: (Mac, Mac, u16),
    kind: &'static str,
}

fn run_vector(lab: &XlatLab, ends: &Ends, dir: &Path, v: &Case) -> Result<(), String> {
    let read = |sub: &str, name: &str| {
        let p = dir.join(sub).join(format!("{name}.pkt"));
        fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let sent = read("sender", &v.sender)?;
    let want = read("receiver", &v.receiver)?;
    let want_addrs = addrs(&want).ok_or("receiver packet is not IP")?.to_vec();
    let (d, s, t) = ends.eth_in;
    let frame = ethernet(d, s, t, &sent);
    ends.rx.drain().map_err(|e| format!("{e:#}"))?;
    let before = lab.stats().map_err(|e| format!("stats: {e:#}"))?;
    ends.tx.send(&frame).map_err(|e| format!("inject: {e:#}"))?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut got = None;
    let mut others = 0;
    while got.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match ends.rx.recv(left).map_err(|e| format!("capture: {e:#}"))? {
            None => break,
            Some(f) if f.len() >= 14 && addrs(&f[14..]) == Some(&want_addrs[..]) => got = Some(f),
            Some(_) => others += 1,
        }
    }
    let mut errs = vec![];
    match &got {
        None => errs.push(format!(
            "nothing arrived on the receiving host within 2 s ({others} other frame(s))"
        )),
        Some(f) => {
            let (eth, ip) = f.split_at(14);
            let (d, s, t) = ends.eth_out;
            let mut want_eth = d.to_vec();
            want_eth.extend_from_slice(&s);
            want_eth.extend_from_slice(&t.to_be_bytes());
            if eth != want_eth.as_slice() {
                errs.push(format!(
                    "ethernet header {eth:02x?}, expected {want_eth:02x?}"
                ));
            }
            if let Some(why) = compare(ip, &want, &v.ignore) {
                errs.push(format!("vs receiver: {why}"));
            }
        }
    }
    let delta = lab
        .stats()
        .map_err(|e| format!("stats: {e:#}"))?
        .since(&before);
    // Exactly one packet translated and redirected, nothing else translated or dropped
    // (the hosts are silenced; kind none is link housekeeping such as IPv6 router
    // solicitations, passed to the translator's kernel).
    let translated = delta.get("translated", ends.kind, "redirect");
    let xlat_kinds: u64 = delta
        .0
        .iter()
        .filter(|((_, k, _), _)| k != "none")
        .map(|(_, v)| v.0)
        .sum();
    if translated != 1 || xlat_kinds != 1 {
        errs.push(format!(
            "counters {:?} (expected translated/{}/redirect +1 and nothing else)",
            delta.packets(),
            ends.kind
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

#[test]
fn siit_pktgen_vectors_end_to_end() {
    let dir = vectors_dir();
    assert!(
        dir.is_dir(),
        "siit-pktgen conformance vectors missing: expected the directory {} \
         (../shared/conformance/siit-pktgen beside the checkout)",
        dir.display()
    );
    let vectors = load_cases(&dir);
    let mut lab = lab(XlatPrefix::Conformance);
    println!("translator configured with {}", lab.configured_with);
    lab.silence_hosts()
        .unwrap_or_else(|e| panic!("tcx drop programs on the hosts: {e:#}"));
    let open = |ns: &Netns, dev: &str| {
        RawSocket::open(ns, dev).unwrap_or_else(|e| panic!("AF_PACKET socket on {dev}: {e:#}"))
    };
    let s6 = open(&lab.host6, HOST6_IF);
    let s4 = open(&lab.host4, HOST4_IF);
    let e64 = Ends {
        tx: &s6,
        rx: &s4,
        eth_in: (XL6_MAC, HOST6_MAC, ETH_P_IPV6),
        eth_out: (HOST4_MAC, XL4_MAC, ETH_P_IP),
        kind: "xlat6to4",
    };
    let e46 = Ends {
        tx: &s4,
        rx: &s6,
        eth_in: (XL4_MAC, HOST4_MAC, ETH_P_IP),
        eth_out: (HOST6_MAC, XL6_MAC, ETH_P_IPV6),
        kind: "xlat4to6",
    };
    let (mut passed, mut failed) = (0, 0);
    for v in &vectors {
        let r = match v.direction.as_str() {
            "6to4" => run_vector(&lab, &e64, &dir, v),
            "4to6" => run_vector(&lab, &e46, &dir, v),
            d => Err(format!("unknown direction {d:?}")),
        };
        match r {
            Ok(()) => {
                passed += 1;
                println!("ok   {} {} -> {}", v.direction, v.sender, v.receiver);
            }
            Err(why) => {
                failed += 1;
                println!("FAIL {} {} -> {}: {why}", v.direction, v.sender, v.receiver);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    assert_eq!(vectors.len(), 42, "cases.tsv should list 42 vectors");
    assert_eq!(
        failed, 0,
        "{failed} conformance vector(s) failed end to end (see the lines above)"
    );
}

/// A transfer that stops moving for this long fails instead of hanging.
const STALL: Duration = Duration::from_secs(10);

fn check_counters(what: &str, delta: &Counters, min4to6: u64, min6to4: u64) {
    let t46 = delta.reason_kind("translated", "xlat4to6");
    let t64 = delta.reason_kind("translated", "xlat6to4");
    println!("{what}: translator counters moved by\n{delta}");
    assert!(
        t46 >= min4to6 && t64 >= min6to4,
        "{what}: translated xlat4to6 +{t46} (want >= {min4to6}), xlat6to4 +{t64} (want >= {min6to4})"
    );
}

#[test]
fn ping_and_tcp_through_the_translator() {
    let lab = lab(XlatPrefix::Conformance);
    println!("translator configured with {}", lab.configured_with);
    let host4_as_v6: IpAddr = HOST4_AS_V6.parse().unwrap();
    let host6_as_v4: IpAddr = HOST6_AS_V4.parse().unwrap();
    let host4: IpAddr = HOST4.parse().unwrap();
    let host6: IpAddr = HOST6.parse().unwrap();
    const COUNT: u32 = 5;
    const BYTES: u64 = 2 * 1024 * 1024;

    // IPv6 host -> IPv4 host.
    let s0 = lab.stats().expect("stats");
    let p = ping(&lab.host6, host4_as_v6, COUNT, None).expect("ping");
    println!(
        "ping {HOST4_AS_V6} from the IPv6 host: {}/{} answered",
        p.received, p.sent
    );
    assert_eq!(
        p.received, COUNT as u64,
        "ping from the IPv6 host through the translator"
    );
    let s1 = lab.stats().expect("stats");
    check_counters("ping 6->4", &s1.since(&s0), COUNT as u64, COUNT as u64);
    let got = tcp_transfer_via(&lab.host6, &lab.host4, host4, host4_as_v6, BYTES, STALL)
        .unwrap_or_else(|e| panic!("TCP from the IPv6 host to {HOST4_AS_V6}: {e:#}"))
        .bytes;
    println!("TCP {HOST6} -> {HOST4_AS_V6}: {got} bytes arrived");
    assert_eq!(got, BYTES);
    let s2 = lab.stats().expect("stats");
    // >= 1 MB of 1440-byte segments one way, their ACKs the other.
    check_counters("TCP 6->4", &s2.since(&s1), 10, BYTES / 1500);

    // IPv4 host -> IPv6 host.
    let p = ping(&lab.host4, host6_as_v4, COUNT, None).expect("ping");
    println!(
        "ping {HOST6_AS_V4} from the IPv4 host: {}/{} answered",
        p.received, p.sent
    );
    assert_eq!(
        p.received, COUNT as u64,
        "ping from the IPv4 host through the translator"
    );
    let s3 = lab.stats().expect("stats");
    check_counters("ping 4->6", &s3.since(&s2), COUNT as u64, COUNT as u64);
    let got = tcp_transfer_via(&lab.host4, &lab.host6, host6, host6_as_v4, BYTES, STALL)
        .unwrap_or_else(|e| panic!("TCP from the IPv4 host to {HOST6_AS_V4}: {e:#}"))
        .bytes;
    println!("TCP {HOST4} -> {HOST6_AS_V4}: {got} bytes arrived");
    assert_eq!(got, BYTES);
    let s4 = lab.stats().expect("stats");
    check_counters("TCP 4->6", &s4.since(&s3), BYTES / 1500, 10);
}

#[test]
fn udp_without_df_is_fragmented_by_the_kernel() {
    let lab = lab(XlatPrefix::Conformance);
    println!("translator configured with {}", lab.configured_with);
    let routes = lab
        .xlat
        .exec("ip", &["route", "show", "proto", "118"])
        .expect("ip route");
    println!(
        "fragmentation routes:\n{}",
        String::from_utf8_lossy(&routes.stdout)
    );
    const COUNT: usize = 5;
    const SIZE: usize = 3000;
    let port = next_port();
    let host6: IpAddr = HOST6.parse().unwrap();
    let host6_as_v4: IpAddr = HOST6_AS_V4.parse().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = in_netns(&lab.host6, move || {
        let s = UdpSocket::bind(SocketAddr::new(host6, port))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let _ = ready_tx.send(());
        let mut buf = vec![0u8; 65536];
        let mut whole = 0usize;
        while whole < COUNT {
            let n = match s.recv(&mut buf) {
                Ok(n) => n,
                Err(_) => break,
            };
            if n == SIZE
                && buf[..n]
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == (i % 251) as u8)
            {
                whole += 1;
            } else {
                bail!("a datagram of {n} bytes arrived (or its bytes differ)");
            }
        }
        Ok(whole)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("UDP receiver did not start");
    let s0 = lab.stats().expect("stats");
    let sender = in_netns(&lab.host4, move || {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        // No DF: the sending host fragments to its link MTU (1500) and the translator
        // must fragment further for the lowest IPv6 MTU (1280).
        let v: libc::c_int = libc::IP_PMTUDISC_DONT;
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                &v as *const _ as *const libc::c_void,
                std::mem::size_of_val(&v) as libc::socklen_t,
            )
        };
        if rc != 0 {
            bail!("IP_MTU_DISCOVER: {}", std::io::Error::last_os_error());
        }
        let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
        for _ in 0..COUNT {
            s.send_to(&data, SocketAddr::new(host6_as_v4, port))?;
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    });
    join(sender).expect("UDP sender");
    let whole = join(receiver).expect("UDP receiver");
    let delta = lab.stats().expect("stats").since(&s0);
    println!(
        "{whole}/{COUNT} datagrams of {SIZE} bytes arrived; translator counters moved by\n{delta}"
    );
    assert_eq!(
        whole, COUNT,
        "every datagram arrives whole at the IPv6 host"
    );
    // The sending host made 3 fragments of each (1480 + 1480 + 48 bytes of payload): the
    // two large ones go to the kernel, which splits each in two for vdmmx0 (MTU 1252);
    // the small one fits and is translated directly. 5 IPv6 fragments per datagram.
    let by_kernel = delta.reason_kind("xlat_fragmented_by_kernel", "xlat4to6");
    let translated = delta.reason_kind("translated", "xlat4to6");
    assert!(
        by_kernel >= 2 * COUNT as u64,
        "xlat_fragmented_by_kernel xlat4to6 +{by_kernel} (want >= {})",
        2 * COUNT
    );
    assert!(
        translated >= 5 * COUNT as u64,
        "translated xlat4to6 +{translated} (want >= {})",
        5 * COUNT
    );
    assert_eq!(
        delta.reason_kind("xlat_needs_fragmentation", "xlat4to6"),
        0,
        "nothing dropped for want of fragmentation"
    );
}
