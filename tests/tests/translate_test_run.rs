//! BPF_PROG_TEST_RUN tests of stateless translation (SIIT, RFC 7915 / 6052 / 7757 / 6791)
//! in `vdmm_xdp`. Needs root.
//!
//! The 42 siit-pktgen conformance vectors (`../shared/conformance/siit-pktgen`, read at
//! test time) go through the loaded program, configured as their README says, in a
//! gateway namespace whose FIB resolves both sides:
//!
//! ```text
//!  IPv4 host 198.51.100.2 ── xl4 198.51.100.1/24 [ vdmm_xdp ] xl6 2001:db8:1c0:2::1/64 ── IPv6 host 2001:db8:1c0:2:21::
//!                            route 192.0.2.0/24 dev xl6 (the IPv4 space of the IPv6 side: routed to the translator)
//! ```
//!
//! For each case: the sender packet is wrapped in Ethernet and run as if received on
//! the interface of its family; the verdict must be `redirect` (out of the other
//! interface), the Ethernet header the FIB's, and the IP packet equal to the receiver
//! packet except at the offsets cases.tsv lists; it is also compared with the host
//! reference translator (`vdmm_common::translate::reference`). One line per case, then
//! `N passed, M failed`; the test fails unless M is 0. Focused tests: no mapping ->
//! pass, TTL 1 -> ICMP time exceeded, counters.
//!
//! `cargo test -p vdmm-tests --test translate_test_run -- --nocapture --test-threads 1`

use std::{
    fs,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};
use vdmm_common::translate::reference::conformance::{Case, compare, load_cases, vectors_dir};

use aya::maps::{Array, LpmTrie, Map, MapData, lpm_trie::Key};
use vdmm_common::{
    Action, Reason, TunnelConfig, TunnelKind,
    counters::counter_labels,
    maps as names,
    translate::{
        EamEntry, Prefix6,
        config::TranslatorConfig,
        maps::XlatConfig,
        reference::{Outcome, translate_4to6, translate_6to4},
    },
};
use vdmm_tests::{
    netns::{EnteredNetns, Netns, require_root},
    packet::{ETH_P_IP, ETH_P_IPV6, Mac, ethernet},
    testrun::{DataPlane, action_name, counter_delta, counter_name, ifindex},
};

const XL4_MAC: Mac = [0x02, 0, 0, 0, 0x04, 0x01];
const HOST4_MAC: Mac = [0x02, 0, 0, 0, 0x04, 0x02];
const XL6_MAC: Mac = [0x02, 0, 0, 0, 0x06, 0x01];
const HOST6_MAC: Mac = [0x02, 0, 0, 0, 0x06, 0x02];

const GW4: &str = "198.51.100.1";
const GW6: &str = "2001:db8:1c0:2::1";

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn mac_str(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The translator configuration of the conformance README, as map values.
fn xlat_config() -> XlatConfig {
    XlatConfig {
        pool6: Prefix6::new(v6("2001:db8:100::").octets(), 40).expect("valid prefix"),
        flags: 0,
        lowest_ipv6_mtu: 1280,
        rfc6791_v4: v4("203.0.113.8").octets(),
        rfc6791_v6: [0; 16],
        frag_ifindex: 0,
    }
}

/// README EAMT: 2001:db8:3::/120 <-> 1.0.0.0/24, 2001:db8:2::/120 <-> 10.0.0.0/24.
fn eamt() -> Vec<EamEntry> {
    vec![
        EamEntry::new(v6("2001:db8:3::").octets(), 120, [1, 0, 0, 0], 24).unwrap(),
        EamEntry::new(v6("2001:db8:2::").octets(), 120, [10, 0, 0, 0], 24).unwrap(),
    ]
}

/// The gateway namespace with the data plane loaded and the translator configured,
/// entered by the calling thread. Field order is drop order.
struct Lab {
    _entered: EnteredNetns,
    dp: DataPlane,
    _ns: Netns,
    xl4: u32,
    xl6: u32,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        if let Err(e) = require_root() {
            panic!("{e}");
        }
        Self::build(tag).unwrap_or_else(|e| panic!("setting up the gateway namespace: {e:#}"))
    }

    fn build(tag: &str) -> anyhow::Result<Lab> {
        let ns = Netns::new(tag)?;
        let sh = |args: &str| -> anyhow::Result<()> {
            let v: Vec<&str> = args.split_whitespace().collect();
            ns.ip(&v)?;
            Ok(())
        };
        for (dev, mac) in [("xl4", XL4_MAC), ("xl6", XL6_MAC)] {
            sh(&format!("link add {dev} type veth peer name {dev}p"))?;
            sh(&format!("link set {dev} address {}", mac_str(mac)))?;
        }
        for dev in ["xl4", "xl4p", "xl6", "xl6p"] {
            sh(&format!("link set {dev} up"))?;
        }
        sh(&format!("addr add {GW4}/24 dev xl4"))?;
        sh(&format!("addr add {GW6}/64 dev xl6 nodad"))?;
        sh(&format!(
            "neigh add 198.51.100.2 lladdr {} dev xl4 nud permanent",
            mac_str(HOST4_MAC)
        ))?;
        sh(&format!(
            "neigh add 2001:db8:1c0:2:21:: lladdr {} dev xl6 nud permanent",
            mac_str(HOST6_MAC)
        ))?;
        // The IPv4 space of the IPv6 side (192.0.2.0/24 under pool6 is 2001:db8:1c0::/40
        // .. and the EAMT's 1.0.0.0/24, 10.0.0.0/24) is routed to the translator; the
        // IPv6 representations of the IPv4 side live on the IPv4 side.
        sh("route add 192.0.2.0/24 dev xl6")?;
        // Narrow next hops for the MTU tests: 198.51.100.50 (IPv4 side, MTU 1400) and
        // 192.0.2.153 = 2001:db8:1c0:2:99:: (IPv6 side, MTU 1300).
        sh("route add 198.51.100.50/32 dev xl4 mtu lock 1400")?;
        sh(&format!(
            "neigh add 198.51.100.50 lladdr {} dev xl4 nud permanent",
            mac_str(HOST4_MAC)
        ))?;
        sh("-6 route add 2001:db8:1c0:2:99::/128 dev xl6 mtu lock 1300")?;
        sh(&format!(
            "neigh add 2001:db8:1c0:2:99:: lladdr {} dev xl6 nud permanent",
            mac_str(HOST6_MAC)
        ))?;
        sh("route add 1.0.0.0/24 dev xl6")?;
        sh("route add 10.0.0.0/24 dev xl6")?;
        ns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"])?;

        let mut dp = DataPlane::load()?;
        dp.set_config(TunnelConfig {
            outer_hop_limit: 0,
            _reserved: [0; 3],
            icmp_source_v4: v4(GW4).octets(),
            icmp_source_v6: v6(GW6).octets(),
        })?;
        // (VDMM_BENCH_NO_EAMT: leave the EAMT empty, to see what its look-ups cost.)
        let eamt = if std::env::var_os("VDMM_BENCH_NO_EAMT").is_some() {
            vec![]
        } else {
            eamt()
        };
        configure_translator(dp.pin_dir(), &xlat_config(), &eamt)?;

        let entered = ns.enter()?;
        let xl4 = ifindex("xl4")?;
        let xl6 = ifindex("xl6")?;
        Ok(Lab {
            _entered: entered,
            dp,
            _ns: ns,
            xl4,
            xl6,
        })
    }
}

/// Writes the translator maps through their pins (as `vdmm-ctl natpt` will).
fn configure_translator(pins: &Path, cfg: &XlatConfig, eamt: &[EamEntry]) -> anyhow::Result<()> {
    let open = |name: &str| -> anyhow::Result<Map> {
        let data = MapData::from_pin(pins.join(name))
            .map_err(|e| anyhow::anyhow!("open pinned map {name}: {e}"))?;
        Ok(Map::from_map_data(data)?)
    };
    let mut c: Array<MapData, XlatConfig> = Array::try_from(open(names::XLAT_CONFIG)?)?;
    c.set(0, *cfg, 0)?;
    let mut t4: LpmTrie<MapData, [u8; 4], EamEntry> = LpmTrie::try_from(open(names::EAMT_V4)?)?;
    let mut t6: LpmTrie<MapData, [u8; 16], EamEntry> = LpmTrie::try_from(open(names::EAMT_V6)?)?;
    for e in eamt {
        t4.insert(&Key::new(e.v4_len as u32, e.v4), *e, 0)?;
        t6.insert(&Key::new(e.v6_len as u32, e.v6), *e, 0)?;
    }
    // As `vdmm-ctl natpt` does after every change: the data plane caches EAMT answers.
    let pins = vdmm_ctl::pin::PinDir::new(pins);
    vdmm_ctl::cache_gen::invalidate(&vdmm_ctl::cache_gen::open(&pins, names::XLAT_GEN)?)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The conformance vectors

/// Runs one vector through `vdmm_xdp`; Err(reason) when it fails.
fn run_vector(lab: &Lab, dir: &Path, reference: &TranslatorConfig, v: &Case) -> Result<(), String> {
    let read = |sub: &str, name: &str| {
        let p = dir.join(sub).join(format!("{name}.pkt"));
        fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let sent = read("sender", &v.sender)?;
    let want = read("receiver", &v.receiver)?;
    let (ingress, in_mac, eth_in, out_ifindex_mac, out_dst_mac, eth_out, kind, reference_out) =
        match v.direction.as_str() {
            "4to6" => (
                lab.xl4,
                XL4_MAC,
                ETH_P_IP,
                XL6_MAC,
                HOST6_MAC,
                ETH_P_IPV6,
                TunnelKind::Xlat4to6,
                translate_4to6(&sent, reference),
            ),
            "6to4" => (
                lab.xl6,
                XL6_MAC,
                ETH_P_IPV6,
                XL4_MAC,
                HOST4_MAC,
                ETH_P_IP,
                TunnelKind::Xlat6to4,
                translate_6to4(&sent, reference),
            ),
            d => return Err(format!("unknown direction {d:?}")),
        };
    let frame = ethernet(in_mac, [0x02, 0, 0, 0, 0x99, 0x99], eth_in, &sent);
    let before = lab.dp.counters().map_err(|e| format!("counters: {e:#}"))?;
    let r = lab
        .dp
        .run(&frame, ingress)
        .map_err(|e| format!("test run failed: {e:#}"))?;
    let after = lab.dp.counters().map_err(|e| format!("counters: {e:#}"))?;
    let mut errs = Vec::new();
    if r.action != Action::Redirect as u32 {
        errs.push(format!(
            "action {} (expected redirect)",
            action_name(r.action)
        ));
    }
    let delta = counter_delta(&before, &after);
    let counted = delta.len() == 1
        && delta[0].1 == 1
        && delta[0].2 == frame.len() as u64
        && counter_labels(delta[0].0) == Some((Reason::Translated, kind, Action::Redirect));
    if !counted {
        let text: Vec<String> = delta
            .iter()
            .map(|(i, p, b)| format!("{} +{p}/+{b}B", counter_name(*i)))
            .collect();
        errs.push(format!(
            "counters: [{}] (expected translated/{}/redirect +1)",
            text.join(", "),
            kind.name()
        ));
    }
    if r.data.len() < 14 {
        errs.push(format!("output frame of {} bytes", r.data.len()));
    } else {
        let (eth, ip) = r.data.split_at(14);
        let mut want_eth = Vec::new();
        want_eth.extend_from_slice(&out_dst_mac);
        want_eth.extend_from_slice(&out_ifindex_mac);
        want_eth.extend_from_slice(&eth_out.to_be_bytes());
        if eth != want_eth.as_slice() {
            errs.push(format!(
                "ethernet header {eth:02x?}, expected {want_eth:02x?}"
            ));
        }
        if let Some(why) = compare(ip, &want, &v.ignore) {
            errs.push(format!("vs receiver: {why}"));
        }
        match &reference_out {
            Outcome::Translated { packets, .. } if packets.len() == 1 => {
                if let Some(why) = compare(ip, &packets[0], &v.ignore) {
                    errs.push(format!("vs reference: {why}"));
                }
            }
            other => errs.push(format!("reference translator: {other}")),
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

#[test]
fn siit_pktgen_vectors() {
    let dir = vectors_dir();
    assert!(
        dir.is_dir(),
        "siit-pktgen conformance vectors missing: expected the directory {} \
         (../shared/conformance/siit-pktgen beside the checkout)",
        dir.display()
    );
    let vectors = load_cases(&dir);
    let lab = Lab::new("xlat");
    let reference = TranslatorConfig::conformance();
    let (mut passed, mut failed) = (0, 0);
    for v in &vectors {
        match run_vector(&lab, &dir, &reference, v) {
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
        "{failed} conformance vector(s) failed (see the lines above)"
    );
}

// ---------------------------------------------------------------------------------------
// Focused tests

/// Internet checksum of `data` (0 when a message including its checksum is valid).
fn checksum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        s += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A UDP/IPv4 packet 198.51.100.2 -> `dst` with a valid checksum.
fn udp4(dst: [u8; 4], ttl: u8, df: bool) -> Vec<u8> {
    udp4_len(dst, ttl, df, 14)
}

/// The same with `n` bytes of UDP payload.
fn udp4_len(dst: [u8; 4], ttl: u8, df: bool, n: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
    let ulen = 8 + payload.len();
    let total = 20 + ulen;
    let src = [198, 51, 100, 2];
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0x12, 0x34];
    p.extend_from_slice(&(if df { 0x4000u16 } else { 0 }).to_be_bytes());
    p.extend_from_slice(&[ttl, 17, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let mut u = vec![0x30, 0x39, 0x00, 0x35, (ulen >> 8) as u8, ulen as u8, 0, 0];
    u.extend_from_slice(&payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 17, (ulen >> 8) as u8, ulen as u8]);
    pseudo.extend_from_slice(&u);
    let c = checksum(&pseudo);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&u);
    p
}

/// One run; returns (action, output, the single counter that changed).
fn run_one(lab: &Lab, frame: &[u8], ingress: u32) -> (u32, Vec<u8>, Vec<(u32, u64, u64)>) {
    let before = lab.dp.counters().unwrap();
    let r = lab.dp.run(frame, ingress).expect("test run");
    let after = lab.dp.counters().unwrap();
    (r.action, r.data, counter_delta(&before, &after))
}

fn only_counter(delta: &[(u32, u64, u64)], frame_len: usize) -> (Reason, TunnelKind, Action) {
    assert_eq!(delta.len(), 1, "exactly one counter must change: {delta:?}");
    assert_eq!(delta[0].1, 1, "one packet");
    assert_eq!(delta[0].2, frame_len as u64, "frame length in bytes");
    counter_labels(delta[0].0).expect("valid counter index")
}

#[test]
fn no_mapping_passes() {
    let lab = Lab::new("xlatnm");
    // IPv6 to a destination under neither the prefix nor the EAMT.
    let mut p6 = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
    p6.extend_from_slice(&v6("2001:db8:1c0:2:21::").octets());
    p6.extend_from_slice(&v6("2001:db8:4::1").octets());
    let f6 = ethernet(XL6_MAC, HOST6_MAC, ETH_P_IPV6, &p6);
    let (action, out, delta) = run_one(&lab, &f6, lab.xl6);
    assert_eq!(action, Action::Pass as u32);
    assert_eq!(out, f6, "unchanged");
    assert_eq!(
        only_counter(&delta, f6.len()),
        (Reason::NoMatch, TunnelKind::None, Action::Pass)
    );
    // IPv4 to the translator itself: local, not translated.
    let f4 = ethernet(
        XL4_MAC,
        HOST4_MAC,
        ETH_P_IP,
        &udp4(v4(GW4).octets(), 64, true),
    );
    let (action, out, delta) = run_one(&lab, &f4, lab.xl4);
    assert_eq!(action, Action::Pass as u32);
    assert_eq!(out, f4, "unchanged");
    assert_eq!(
        only_counter(&delta, f4.len()),
        (Reason::NoMatch, TunnelKind::None, Action::Pass)
    );
    // IPv4 to a special address (loopback) is never embedded.
    let f4 = ethernet(
        XL4_MAC,
        HOST4_MAC,
        ETH_P_IP,
        &udp4([127, 0, 0, 1], 64, true),
    );
    let (action, _, delta) = run_one(&lab, &f4, lab.xl4);
    assert_eq!(action, Action::Pass as u32);
    assert_eq!(
        only_counter(&delta, f4.len()),
        (Reason::NoMatch, TunnelKind::None, Action::Pass)
    );
}

#[test]
fn ttl_one_gets_time_exceeded() {
    let lab = Lab::new("xlatttl");
    let sent = udp4([192, 0, 2, 33], 1, true);
    let f4 = ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, &sent);
    let (action, out, delta) = run_one(&lab, &f4, lab.xl4);
    assert_eq!(action_name(action), "tx");
    assert_eq!(
        only_counter(&delta, f4.len()),
        (Reason::TtlExpired, TunnelKind::Xlat4to6, Action::Tx)
    );
    // ICMP time exceeded from the gateway to the sender, quoting the packet.
    assert_eq!(&out[0..6], &HOST4_MAC, "back to the sender's MAC");
    let ip = &out[14..];
    assert_eq!(ip[9], 1, "ICMP");
    assert_eq!(&ip[12..16], &v4(GW4).octets());
    assert_eq!(&ip[16..20], &[198, 51, 100, 2]);
    assert_eq!((ip[20], ip[21]), (11, 0), "time exceeded in transit");
    assert_eq!(&ip[28..], &sent[..], "the received packet quoted");
    assert_eq!(checksum(&ip[..20]), 0, "IPv4 header checksum");
    assert_eq!(checksum(&ip[20..]), 0, "ICMP checksum");

    // IPv6 side: hop limit 1 -> ICMPv6 time exceeded.
    let mut p6 = vec![0x60, 0, 0, 0, 0, 0, 59, 1];
    p6.extend_from_slice(&v6("2001:db8:1c0:2:21::").octets());
    p6.extend_from_slice(&v6("2001:db8:1c6:3364:2::").octets());
    let f6 = ethernet(XL6_MAC, HOST6_MAC, ETH_P_IPV6, &p6);
    let (action, out, delta) = run_one(&lab, &f6, lab.xl6);
    assert_eq!(action_name(action), "tx");
    assert_eq!(
        only_counter(&delta, f6.len()),
        (Reason::TtlExpired, TunnelKind::Xlat6to4, Action::Tx)
    );
    let ip = &out[14..];
    assert_eq!(ip[6], 58, "ICMPv6");
    assert_eq!((ip[40], ip[41]), (3, 0), "time exceeded");
    assert_eq!(&ip[48..], &p6[..]);
}

#[test]
fn counters_and_pass_paths() {
    let lab = Lab::new("xlatcnt");
    // Translated twice: the counter grows by two packets and their bytes.
    let f4 = ethernet(
        XL4_MAC,
        HOST4_MAC,
        ETH_P_IP,
        &udp4([192, 0, 2, 33], 64, true),
    );
    for _ in 0..2 {
        let (action, out, delta) = run_one(&lab, &f4, lab.xl4);
        assert_eq!(action, Action::Redirect as u32);
        assert_eq!(
            only_counter(&delta, f4.len()),
            (Reason::Translated, TunnelKind::Xlat4to6, Action::Redirect)
        );
        assert_eq!(out.len(), f4.len() + 20, "IPv6 header 20 bytes longer");
    }
    // No neighbour for the IPv6 destination: the translated packet goes to the kernel
    // with the received MACs and its hop limit as it arrived (the kernel decrements).
    let f4 = ethernet(
        XL4_MAC,
        HOST4_MAC,
        ETH_P_IP,
        &udp4([192, 0, 2, 44], 64, true),
    );
    let (action, out, delta) = run_one(&lab, &f4, lab.xl4);
    assert_eq!(action, Action::Pass as u32);
    assert_eq!(
        only_counter(&delta, f4.len()),
        (Reason::FibNoNeighbour, TunnelKind::Xlat4to6, Action::Pass)
    );
    assert_eq!(&out[0..12], &f4[0..12], "received MACs kept");
    assert_eq!(u16::from_be_bytes([out[12], out[13]]), ETH_P_IPV6);
    assert_eq!(out[14 + 7], 64, "hop limit left to the kernel");
    // An IPv4 source without a mapping (not an ICMP error): dropped and counted.
    let mut p = udp4([192, 0, 2, 33], 64, true);
    p[12..16].copy_from_slice(&[127, 0, 0, 9]);
    p[10] = 0;
    p[11] = 0;
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let f4 = ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, &p);
    let (action, _, delta) = run_one(&lab, &f4, lab.xl4);
    assert_eq!(action, Action::Drop as u32);
    assert_eq!(
        only_counter(&delta, f4.len()),
        (
            Reason::XlatSourceUntranslatable,
            TunnelKind::Xlat4to6,
            Action::Drop
        )
    );
}

/// UDP/IPv6 2001:db8:1c0:2:21:: -> `dst` with `n` payload bytes, optionally behind an
/// atomic fragment header (offset 0, M clear: "DF clear" for the IPv4 side).
fn udp6(dst: Ipv6Addr, n: usize, frag_header: bool) -> Vec<u8> {
    let src = v6("2001:db8:1c0:2:21::");
    let ulen = 8 + n;
    let mut u = vec![0x30, 0x39, 0x00, 0x35, (ulen >> 8) as u8, ulen as u8, 0, 0];
    u.extend((0..n).map(|i| i as u8));
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(ulen as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 17]);
    pseudo.extend_from_slice(&u);
    let c = checksum(&pseudo);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    let fh = if frag_header { 8 } else { 0 };
    let plen = ulen + fh;
    let nh = if frag_header { 44 } else { 17 };
    let mut p = vec![0x60, 0, 0, 0, (plen >> 8) as u8, plen as u8, nh, 64];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    if frag_header {
        p.extend_from_slice(&[17, 0, 0, 0, 0x87, 0x65, 0x43, 0x21]);
    }
    p.extend_from_slice(&u);
    p
}

#[test]
fn mtu_paths() {
    let lab = Lab::new("xlatmtu");
    let pool6 = xlat_config().pool6;
    let to50 =
        Ipv6Addr::from(vdmm_common::translate::rfc6052::embed(&pool6, [198, 51, 100, 50]).unwrap());

    // 6->4 with DF (IPv4 1460 > 1260) over the 1400-byte IPv4 next hop: ICMPv6 packet
    // too big back, MTU 1400 + 20 (RFC 7915 5.1.1).
    let p6 = udp6(to50, 1432, false);
    assert_eq!(p6.len(), 1480);
    let f6 = ethernet(XL6_MAC, HOST6_MAC, ETH_P_IPV6, &p6);
    let (action, out, delta) = run_one(&lab, &f6, lab.xl6);
    assert_eq!(action_name(action), "tx");
    assert_eq!(
        only_counter(&delta, f6.len()),
        (Reason::TooBig, TunnelKind::Xlat6to4, Action::Tx)
    );
    let ip = &out[14..];
    assert_eq!((ip[6], ip[40], ip[41]), (58, 2, 0), "ICMPv6 packet too big");
    assert_eq!(u32::from_be_bytes([ip[44], ip[45], ip[46], ip[47]]), 1420);

    // The same without DF (a fragment header on the IPv6 side): translated and passed
    // to the kernel, which fragments the IPv4 packet when it forwards it.
    let p6 = udp6(to50, 1432, true);
    let f6 = ethernet(XL6_MAC, HOST6_MAC, ETH_P_IPV6, &p6);
    let (action, out, delta) = run_one(&lab, &f6, lab.xl6);
    assert_eq!(action, Action::Pass as u32);
    assert_eq!(
        only_counter(&delta, f6.len()),
        (
            Reason::FragmentedByKernel,
            TunnelKind::Xlat6to4,
            Action::Pass
        )
    );
    assert_eq!(u16::from_be_bytes([out[12], out[13]]), ETH_P_IP);
    assert_eq!(
        out.len(),
        14 + 1460,
        "translated (40 + 8 -> 20 bytes of header)"
    );
    assert_eq!(
        &out[14 + 4..14 + 8],
        &[0x43, 0x21, 0, 0],
        "id from the fragment header, DF clear"
    );

    // 4->6 with DF over the 1300-byte IPv6 next hop: ICMPv4 fragmentation needed, MTU
    // 1300 - 20.
    let p4 = udp4_len([192, 0, 2, 153], 64, true, 1262);
    assert_eq!(p4.len(), 1290);
    let f4 = ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, &p4);
    let (action, out, delta) = run_one(&lab, &f4, lab.xl4);
    assert_eq!(action_name(action), "tx");
    assert_eq!(
        only_counter(&delta, f4.len()),
        (Reason::TooBig, TunnelKind::Xlat4to6, Action::Tx)
    );
    let ip = &out[14..];
    assert_eq!(
        (ip[9], ip[20], ip[21]),
        (1, 3, 4),
        "ICMP fragmentation needed"
    );
    assert_eq!(u16::from_be_bytes([ip[26], ip[27]]), 1280);

    // 4->6 without DF, larger than the lowest IPv6 MTU once translated: it would need
    // IPv6 fragments, which XDP cannot make. With no fragmentation slow path configured
    // (frag_ifindex 0): dropped and counted.
    let p4 = udp4_len([192, 0, 2, 33], 64, false, 1300);
    let f4 = ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, &p4);
    let (action, _, delta) = run_one(&lab, &f4, lab.xl4);
    assert_eq!(action, Action::Drop as u32);
    assert_eq!(
        only_counter(&delta, f4.len()),
        (
            Reason::XlatNeedsFragmentation,
            TunnelKind::Xlat4to6,
            Action::Drop
        )
    );
}

/// The fragmentation slow path: an IPv4 packet without DF too big once translated goes
/// to the kernel unchanged (which fragments it into `vdmmx0`; `xlat_fragmented_by_kernel`),
/// except when it arrives on the slow path's own `vdmmx1` (here `xl6` stands in for it):
/// then it stays a counted drop, so nothing loops.
#[test]
fn too_big_without_df_goes_to_the_kernel() {
    let lab = Lab::new("xlatfk");
    let mut cfg = xlat_config();
    cfg.frag_ifindex = lab.xl6;
    configure_translator(lab.dp.pin_dir(), &cfg, &[]).unwrap();
    for (dst, len) in [([192, 0, 2, 33], 1300), ([10, 0, 0, 7], 2000)] {
        let p4 = udp4_len(dst, 64, false, len);
        let f4 = ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, &p4);
        let (action, out, delta) = run_one(&lab, &f4, lab.xl4);
        assert_eq!(action_name(action), "pass");
        assert_eq!(out, f4, "the original packet, unchanged (TTL included)");
        assert_eq!(
            only_counter(&delta, f4.len()),
            (
                Reason::XlatFragmentedByKernel,
                TunnelKind::Xlat4to6,
                Action::Pass
            )
        );
        // The same on vdmmx1: dropped.
        let (action, _, delta) = run_one(&lab, &f4, lab.xl6);
        assert_eq!(action, Action::Drop as u32);
        assert_eq!(
            only_counter(&delta, f4.len()),
            (
                Reason::XlatNeedsFragmentation,
                TunnelKind::Xlat4to6,
                Action::Drop
            )
        );
    }
    // With DF, too big for the 1300-byte IPv6 next hop: still answered with ICMP
    // fragmentation needed (XDP_TX); a fragment-sized packet without DF is translated.
    let p4 = udp4_len([192, 0, 2, 153], 64, true, 1400);
    let f4 = ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, &p4);
    let (action, _, _) = run_one(&lab, &f4, lab.xl4);
    assert_eq!(action_name(action), "tx");
    let p4 = udp4_len([192, 0, 2, 33], 64, false, 1252 - 28);
    let f4 = ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, &p4);
    let (action, _, delta) = run_one(&lab, &f4, lab.xl4);
    assert_eq!(action_name(action), "redirect");
    assert_eq!(
        only_counter(&delta, f4.len()),
        (Reason::Translated, TunnelKind::Xlat4to6, Action::Redirect)
    );
}

/// An IPv4 packet on the fragmentation slow path's `vdmmx1` (here `xl6` stands in for it)
/// that the translator does not take is dropped (`xlat_frag_path_untranslated`): passed,
/// the kernel would route it into `vdmmx0` again and it would circle until its TTL ran
/// out. The same packet on any other interface is passed (`no_match`).
#[test]
fn untranslated_ipv4_on_the_frag_path_is_dropped() {
    let lab = Lab::new("xlatfpu");
    let mut cfg = xlat_config();
    cfg.frag_ifindex = lab.xl6;
    configure_translator(lab.dp.pin_dir(), &cfg, &[]).unwrap();
    // The translator's own address (local: not translated) and loopback (never embedded).
    for dst in [v4(GW4).octets(), [127, 0, 0, 1]] {
        let f4 = ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, &udp4(dst, 64, true));
        let (action, out, delta) = run_one(&lab, &f4, lab.xl4);
        assert_eq!(action_name(action), "pass");
        assert_eq!(out, f4, "unchanged");
        assert_eq!(
            only_counter(&delta, f4.len()),
            (Reason::NoMatch, TunnelKind::None, Action::Pass)
        );
        let (action, _, delta) = run_one(&lab, &f4, lab.xl6);
        assert_eq!(action_name(action), "drop");
        assert_eq!(
            only_counter(&delta, f4.len()),
            (
                Reason::XlatFragPathUntranslated,
                TunnelKind::Xlat4to6,
                Action::Drop
            )
        );
    }
    // A packet that maps is still translated there (and sent back out of `xl6`, which
    // is also the IPv6 side here: tx).
    let f4 = ethernet(
        XL4_MAC,
        HOST4_MAC,
        ETH_P_IP,
        &udp4([192, 0, 2, 33], 64, true),
    );
    let (action, _, delta) = run_one(&lab, &f4, lab.xl6);
    assert_eq!(action_name(action), "tx");
    assert_eq!(
        only_counter(&delta, f4.len()),
        (Reason::Translated, TunnelKind::Xlat4to6, Action::Tx)
    );
}

/// Runs `sent` through the data plane and the reference; both must translate it into
/// one packet, equal except at `ignore` (offsets from the IP header).
fn same_as_reference(lab: &Lab, sent: &[u8], v6_in: bool, ignore: &[usize]) -> Vec<u8> {
    let reference = TranslatorConfig::conformance();
    let (frame, ingress, want) = if v6_in {
        (
            ethernet(XL6_MAC, HOST6_MAC, ETH_P_IPV6, sent),
            lab.xl6,
            translate_6to4(sent, &reference),
        )
    } else {
        (
            ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, sent),
            lab.xl4,
            translate_4to6(sent, &reference),
        )
    };
    let (action, out, delta) = run_one(lab, &frame, ingress);
    assert_eq!(action_name(action), "redirect");
    let kind = if v6_in {
        TunnelKind::Xlat6to4
    } else {
        TunnelKind::Xlat4to6
    };
    assert_eq!(
        only_counter(&delta, frame.len()),
        (Reason::Translated, kind, Action::Redirect)
    );
    let want = match want {
        Outcome::Translated { packets, .. } if packets.len() == 1 => packets[0].clone(),
        other => panic!("reference translator: {other}"),
    };
    if let Some(why) = compare(&out[14..], &want, ignore) {
        panic!("data plane vs reference: {why}");
    }
    out[14..].to_vec()
}

#[test]
fn rfc6791_source_for_untranslatable_icmp_errors() {
    let lab = Lab::new("xlat6791");
    // ICMPv6 port unreachable from a router outside the prefix and the EAMT
    // (2001:db8:ffff::1), about a UDP packet the IPv4 host sent to the IPv6 host.
    let router = v6("2001:db8:ffff::1");
    let host4_as6 = v6("2001:db8:1c6:3364:2::");
    let host6 = v6("2001:db8:1c0:2:21::");
    let mut inner = vec![0x60, 0, 0, 0, 0, 12, 17, 63];
    inner.extend_from_slice(&host4_as6.octets());
    inner.extend_from_slice(&host6.octets());
    inner.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 12, 0x12, 0x34, 1, 2, 3, 4]);
    let mut icmp = vec![1, 4, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&inner);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&router.octets());
    pseudo.extend_from_slice(&host4_as6.octets());
    pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(&icmp);
    let c = checksum(&pseudo);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut p6 = vec![0x60, 0, 0, 0, 0, icmp.len() as u8, 58, 64];
    p6.extend_from_slice(&router.octets());
    p6.extend_from_slice(&host4_as6.octets());
    p6.extend_from_slice(&icmp);
    let out = same_as_reference(&lab, &p6, true, &[4, 5, 10, 11]);
    assert_eq!(&out[12..16], &[203, 0, 113, 8], "RFC 6791 source");
    assert_eq!((out[20], out[21]), (3, 3), "port unreachable");
    assert_eq!(checksum(&out[20..]), 0, "ICMPv4 checksum");
}

#[test]
fn udp_checksum_zero() {
    let lab = Lab::new("xlatudp0");
    // RFC 7915 4.5: an IPv4 UDP datagram without a checksum gets one computed.
    let mut p4 = udp4([192, 0, 2, 33], 64, true);
    p4[26] = 0;
    p4[27] = 0;
    let out = same_as_reference(&lab, &p4, false, &[]);
    assert_ne!(&out[46..48], &[0, 0], "checksum filled in");
    // The same as a fragment: it cannot be summed; not translated, answered with 3/13.
    let mut frag = p4.clone();
    frag[6] = 0x20; // MF, DF clear
    frag[10] = 0;
    frag[11] = 0;
    let c = checksum(&frag[..20]);
    frag[10..12].copy_from_slice(&c.to_be_bytes());
    answered(&lab, &frag, false, Reason::XlatUdpZeroChecksum, 3, 13);
    // Configured to drop (XLAT_UDP_ZERO_DROP): not translated either; both answered with
    // ICMP 3/13 (RFC 7915 4.4).
    let mut cfg = xlat_config();
    cfg.flags = vdmm_common::translate::maps::XLAT_UDP_ZERO_DROP;
    configure_translator(lab.dp.pin_dir(), &cfg, &[]).unwrap();
    let f4 = ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, &p4);
    let (action, out, delta) = run_one(&lab, &f4, lab.xl4);
    assert_eq!(action_name(action), "tx");
    assert_eq!(
        only_counter(&delta, f4.len()),
        (
            Reason::XlatUdpZeroChecksum,
            TunnelKind::Xlat4to6,
            Action::Tx
        )
    );
    assert_eq!((out[14 + 20], out[14 + 21]), (3, 13), "ICMP 3/13");
    assert_eq!(&out[14 + 28..], &p4[..], "quoting the datagram");
}

// ---------------------------------------------------------------------------------------
// ICMP errors for packets the translator refuses (RFC 7915 4.1, 4.4, 5.1, 5.1.1, 5.4)

/// The reference configuration with the gateway's ICMP sources (the tunnel config's).
fn reference_with_sources() -> TranslatorConfig {
    let mut c = TranslatorConfig::conformance();
    c.icmp_source_v4 = Some(v4(GW4).octets());
    c.icmp_source_v6 = Some(v6(GW6).octets());
    c
}

/// The frame for `sent` (IPv6 when `v6_in`) from its host, its ingress and the
/// reference's outcome.
fn sent_frame(lab: &Lab, sent: &[u8], v6_in: bool) -> (Vec<u8>, u32, Outcome) {
    let cfg = reference_with_sources();
    if v6_in {
        (
            ethernet(XL6_MAC, HOST6_MAC, ETH_P_IPV6, sent),
            lab.xl6,
            translate_6to4(sent, &cfg),
        )
    } else {
        (
            ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, sent),
            lab.xl4,
            translate_4to6(sent, &cfg),
        )
    }
}

fn xlat_kind(v6_in: bool) -> TunnelKind {
    if v6_in {
        TunnelKind::Xlat6to4
    } else {
        TunnelKind::Xlat4to6
    }
}

/// `sent` must be answered with ICMP (type, code) from the gateway (tx, counted under
/// `reason`), the same packet the reference translator builds, Ethernet addresses
/// swapped. Returns the IP packet sent.
fn answered(lab: &Lab, sent: &[u8], v6_in: bool, reason: Reason, ty: u8, code: u8) -> Vec<u8> {
    let (frame, ingress, want) = sent_frame(lab, sent, v6_in);
    let (action, out, delta) = run_one(lab, &frame, ingress);
    assert_eq!(action_name(action), "tx", "answered with an ICMP error");
    assert_eq!(
        only_counter(&delta, frame.len()),
        (reason, xlat_kind(v6_in), Action::Tx)
    );
    assert_eq!(&out[0..6], &frame[6..12], "back to the sender's MAC");
    assert_eq!(&out[6..12], &frame[0..6], "from the receiving interface");
    let ip = &out[14..];
    let icmp_at = if v6_in { 40 } else { 20 };
    assert_eq!((ip[icmp_at], ip[icmp_at + 1]), (ty, code), "ICMP type/code");
    match want {
        Outcome::Drop {
            icmp: Some(reply), ..
        } => {
            assert_eq!((reply.ty, reply.code), (ty, code), "reference type/code");
            let p = reply.packet.expect("reference builds the error");
            if let Some(why) = compare(ip, &p, &[]) {
                panic!("data plane vs reference ICMP error: {why}");
            }
        }
        other => panic!("reference translator: {other} (expected a drop with ICMP)"),
    }
    ip.to_vec()
}

/// `sent` must be dropped without an answer, counted under `reason`; the reference must
/// not answer either.
fn not_answered(lab: &Lab, sent: &[u8], v6_in: bool, reason: Reason) {
    let (frame, ingress, want) = sent_frame(lab, sent, v6_in);
    let (action, _, delta) = run_one(lab, &frame, ingress);
    assert_eq!(action_name(action), "drop", "dropped without an answer");
    assert_eq!(
        only_counter(&delta, frame.len()),
        (reason, xlat_kind(v6_in), Action::Drop)
    );
    match want {
        Outcome::Drop { icmp: None, .. } => {}
        other => panic!("reference translator: {other} (expected a silent drop)"),
    }
}

/// An IPv4 packet `src` -> `dst` with `options` (a multiple of 4 bytes) and a UDP
/// payload of `n` bytes, checksums valid.
fn udp4_opts(src: [u8; 4], dst: [u8; 4], ttl: u8, options: &[u8], n: usize) -> Vec<u8> {
    let mut p = udp4_len(dst, ttl, true, n);
    p[12..16].copy_from_slice(&src);
    let ihl = 20 + options.len();
    let total = p.len() + options.len();
    let mut q = p[..20].to_vec();
    q[0] = 0x40 | (ihl / 4) as u8;
    q[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    q.extend_from_slice(options);
    q[10] = 0;
    q[11] = 0;
    let c = checksum(&q);
    q[10..12].copy_from_slice(&c.to_be_bytes());
    let mut u = p[20..].to_vec();
    u[6] = 0;
    u[7] = 0;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 17, 0, u.len() as u8]);
    pseudo.extend_from_slice(&u);
    let c = checksum(&pseudo);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    q.extend_from_slice(&u);
    q
}

/// An IPv6 packet `src` -> `dst` (hop limit 64) whose payload is `ext` (extension
/// headers, the first of type `first`) followed by `upper` of protocol `proto` (UDP and
/// ICMPv6 get a valid checksum).
fn ipv6_with(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    first: u8,
    ext: &[u8],
    proto: u8,
    upper: &[u8],
) -> Vec<u8> {
    let mut u = upper.to_vec();
    let sum_at = match proto {
        17 => Some(6),
        58 => Some(2),
        _ => None,
    };
    if let Some(at) = sum_at {
        u[at] = 0;
        u[at + 1] = 0;
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src.octets());
        pseudo.extend_from_slice(&dst.octets());
        pseudo.extend_from_slice(&(u.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, proto]);
        pseudo.extend_from_slice(&u);
        let c = checksum(&pseudo);
        u[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let plen = ext.len() + u.len();
    let nh = if ext.is_empty() { proto } else { first };
    let mut p = vec![0x60, 0, 0, 0, (plen >> 8) as u8, plen as u8, nh, 64];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(ext);
    p.extend_from_slice(&u);
    p
}

/// A UDP header and 12 bytes of payload (checksum filled in by `ipv6_with`).
fn udp_body() -> Vec<u8> {
    let mut u = vec![0x30, 0x39, 0x00, 0x35, 0, 20, 0, 0];
    u.extend(1..=12u8);
    u
}

/// The IPv4 host's address under the prefix (an IPv6 destination that maps).
fn host4_as6() -> Ipv6Addr {
    v6("2001:db8:1c6:3364:2::")
}

#[test]
fn untranslatable_sources_are_answered() {
    let lab = Lab::new("xlatsrc");
    // 4->6: a link-local IPv4 source is never embedded: administratively prohibited.
    let p = udp4_opts([169, 254, 7, 7], [192, 0, 2, 33], 64, &[], 14);
    let ip = answered(&lab, &p, false, Reason::XlatSourceUntranslatable, 3, 13);
    assert_eq!(&ip[16..20], &[169, 254, 7, 7], "to the sender");
    assert_eq!(&ip[28..], &p[..], "quoting the packet");
    // ... but not when the source is loopback (not one host's address).
    let p = udp4_opts([127, 0, 0, 9], [192, 0, 2, 33], 64, &[], 14);
    not_answered(&lab, &p, false, Reason::XlatSourceUntranslatable);
    // 6->4: a source under neither the prefix nor the EAMT: ICMPv6 1/1.
    let stranger = v6("2001:db8:ffff::1");
    let p = ipv6_with(stranger, host4_as6(), 0, &[], 17, &udp_body());
    let ip = answered(&lab, &p, true, Reason::XlatSourceUntranslatable, 1, 1);
    assert_eq!(&ip[24..40], &stranger.octets(), "to the sender");
    assert_eq!(&ip[48..], &p[..], "quoting the packet");
    // An echo request is answered too (it is not an error).
    let echo = [128, 0, 0, 0, 0x12, 0x34, 0, 1, 9, 9, 9, 9];
    let p = ipv6_with(stranger, host4_as6(), 0, &[], 58, &echo);
    answered(&lab, &p, true, Reason::XlatSourceUntranslatable, 1, 1);
    // A multicast source is never answered.
    let p = ipv6_with(v6("ff0e::1"), host4_as6(), 0, &[], 17, &udp_body());
    not_answered(&lab, &p, true, Reason::XlatSourceUntranslatable);
}

#[test]
fn ipv4_source_route_option() {
    let lab = Lab::new("xlatsrr");
    let host4 = [198, 51, 100, 2];
    // NOP, LSRR (length 11, pointer 4: two addresses still to visit): 3/5.
    let lsrr = [1, 131, 11, 4, 10, 0, 0, 1, 10, 0, 0, 2];
    let p = udp4_opts(host4, [192, 0, 2, 33], 64, &lsrr, 14);
    let ip = answered(&lab, &p, false, Reason::XlatSourceRoute, 3, 5);
    assert_eq!(&ip[28..], &p[..], "quoting the packet with its options");
    // SSRR after a record route option: 3/5 too.
    let mut ssrr = vec![7, 7, 4, 0, 0, 0, 0];
    ssrr.extend_from_slice(&[137, 7, 4, 10, 0, 0, 1, 0, 0]);
    ssrr.resize(16, 0);
    let p = udp4_opts(host4, [192, 0, 2, 33], 64, &ssrr, 14);
    answered(&lab, &p, false, Reason::XlatSourceRoute, 3, 5);
    // Expired (pointer 12 > length 11): translated, the options left behind.
    let expired = [1, 131, 11, 12, 10, 0, 0, 1, 10, 0, 0, 2];
    let p = udp4_opts(host4, [192, 0, 2, 33], 64, &expired, 14);
    let out = same_as_reference(&lab, &p, false, &[]);
    assert_eq!(out.len(), p.len() - 12 + 20, "IPv6 header, no options");
    // Record route only: translated.
    let rr = [7, 7, 4, 0, 0, 0, 0, 0];
    let p = udp4_opts(host4, [192, 0, 2, 33], 64, &rr, 14);
    same_as_reference(&lab, &p, false, &[]);
    // An ICMP error with an unexpired source route: dropped, never answered.
    let inner = udp4_opts([192, 0, 2, 33], host4, 60, &[], 4);
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&inner);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut p = udp4_opts(host4, [192, 0, 2, 33], 64, &lsrr, 0);
    p.truncate(32);
    p[9] = 1;
    p.extend_from_slice(&icmp);
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[10] = 0;
    p[11] = 0;
    let c = checksum(&p[..32]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    not_answered(&lab, &p, false, Reason::XlatSourceRoute);
}

#[test]
fn ipv6_routing_header_and_chain_errors() {
    let lab = Lab::new("xlatrh");
    let host6 = v6("2001:db8:1c0:2:21::");
    // A routing header (type 4) with one segment left: parameter problem 4/0 pointing at
    // Segments Left (40 + 3).
    let mut rh = vec![17, 2, 4, 1, 0, 0, 0, 0];
    rh.extend_from_slice(&v6("2001:db8:1c0:2:22::").octets());
    let p = ipv6_with(host6, host4_as6(), 43, &rh, 17, &udp_body());
    let ip = answered(&lab, &p, true, Reason::XlatSegmentsLeft, 4, 0);
    assert_eq!(
        &ip[44..48],
        &43u32.to_be_bytes(),
        "pointer at Segments Left"
    );
    // Behind a hop-by-hop options header: pointer 48 + 3.
    let mut ext = vec![43, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&rh);
    let p = ipv6_with(host6, host4_as6(), 0, &ext, 17, &udp_body());
    let ip = answered(&lab, &p, true, Reason::XlatSegmentsLeft, 4, 0);
    assert_eq!(
        &ip[44..48],
        &51u32.to_be_bytes(),
        "pointer at Segments Left"
    );
    // No segments left: translated (the routing header is skipped).
    let mut rh0 = rh.clone();
    rh0[3] = 0;
    let p = ipv6_with(host6, host4_as6(), 43, &rh0, 17, &udp_body());
    same_as_reference(&lab, &p, true, &[4, 5, 10, 11]);
    // An ICMPv6 error behind such a routing header: never answered.
    let mut err = vec![1, 4, 0, 0, 0, 0, 0, 0];
    err.extend_from_slice(&ipv6_with(host4_as6(), host6, 0, &[], 17, &udp_body()));
    let p = ipv6_with(
        host6,
        host4_as6(),
        43,
        &{
            let mut r = rh.clone();
            r[0] = 58;
            r
        },
        58,
        &err,
    );
    not_answered(&lab, &p, true, Reason::XlatSegmentsLeft);
    // A destination options header after the fragment header (RFC 7915 5.1.1): 1/1.
    let chain = [60, 0, 0, 0, 0, 0, 0x12, 0x34, 17, 0, 1, 4, 0, 0, 0, 0];
    let p = ipv6_with(host6, host4_as6(), 44, &chain, 17, &udp_body());
    answered(&lab, &p, true, Reason::XlatUnsupportedHeader, 1, 1);
    // Hop limit 1 on an ICMPv6 error behind a destination options header: not answered.
    let p = {
        let mut q = ipv6_with(host6, host4_as6(), 60, &[58, 0, 1, 4, 0, 0, 0, 0], 58, &err);
        q[7] = 1;
        q
    };
    not_answered(&lab, &p, true, Reason::TtlExpired);
}

// ---------------------------------------------------------------------------------------
// RFC 4884 extensions in translated ICMP errors (RFC 7915 4.2 / 5.2)

/// An ICMPv4 error `src` -> `dst` (type, code, the 4 bytes after the checksum) carrying
/// `body`, checksums valid.
fn icmp4_error_with(
    src: [u8; 4],
    dst: [u8; 4],
    ty: u8,
    code: u8,
    rest: [u8; 4],
    body: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![ty, code, 0, 0];
    icmp.extend_from_slice(&rest);
    icmp.extend_from_slice(body);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = 20 + icmp.len();
    let mut p = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0,
        0,
        64,
        1,
        0,
        0,
    ];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&icmp);
    p
}

/// `inner` zero-padded to `padded` bytes, then an extension of `ext` bytes (a version 2
/// header and a pattern).
fn body_with_extension(inner: &[u8], padded: usize, ext: usize) -> Vec<u8> {
    let mut b = inner.to_vec();
    b.resize(padded, 0);
    b.extend_from_slice(&[0x20, 0, 0x12, 0x34]);
    b.extend((4..ext).map(|i| (i * 7) as u8));
    b
}

#[test]
fn icmp_extensions_4to6() {
    let lab = Lab::new("xlatext4");
    let router = [203, 0, 113, 1];
    let h6_as_v4 = [192, 0, 2, 33];
    // The packet in error: UDP 192.0.2.33 -> 198.51.100.2, as the IPv6 host sent it.
    let inner = {
        let mut q = udp4_opts(h6_as_v4, [198, 51, 100, 2], 63, &[], 72);
        q.truncate(100);
        q
    };
    // (type, code, length in 32-bit words, padded field, extension bytes, length kept)
    for (ty, code, words, padded, ext, kept) in [
        // 128 bytes grow to 148, cut to 144 (18 words), then the extension.
        (11u8, 0u8, 32u8, 128usize, 20usize, Some(18u8)),
        (3, 3, 32, 128, 20, Some(18)),
        // Below 128 bytes (80): accepted, padded to 128 (16 words).
        (3, 1, 20, 128, 12, Some(16)),
        // Parameter problem / fragmentation needed: ICMPv6 has no length there: removed.
        (12, 0, 32, 128, 20, None),
        // Too big for 1280 beside 128 bytes of datagram (1105 > 1104): removed.
        (11, 0, 32, 128, 1105, None),
        // The largest that fits.
        (11, 0, 32, 128, 1104, Some(16)),
    ] {
        let rest = if ty == 12 {
            [8, words, 0, 0]
        } else {
            [0, words, 0, 0]
        };
        let p = icmp4_error_with(
            router,
            h6_as_v4,
            ty,
            code,
            rest,
            &body_with_extension(&inner, padded, ext),
        );
        let out = same_as_reference(&lab, &p, false, &[]);
        match kept {
            Some(words6) => {
                assert_eq!(out[44], words6, "type {ty}/{code}: ICMPv6 length attribute");
                // The extension: everything after the field the length attribute gave.
                let ext_out = padded + ext - words as usize * 4;
                assert_eq!(
                    out.len(),
                    48 + words6 as usize * 8 + ext_out,
                    "type {ty}/{code}"
                );
                assert_eq!(
                    &out[out.len() - ext_out..],
                    &p[p.len() - ext_out..],
                    "extension carried unchanged"
                );
            }
            None => {
                assert!(
                    out[40] != 1 && out[40] != 3 || out[44] == 0,
                    "length zeroed"
                );
                assert!(out.len() <= 1280);
                assert!(
                    out.len() <= 48 + 20 + padded,
                    "type {ty}/{code}: extension removed"
                );
            }
        }
    }
}

#[test]
fn icmp_extensions_6to4() {
    let lab = Lab::new("xlatext6");
    let router = v6("2001:db8:1c0:2::9");
    // The packet in error: UDP from the IPv4 host (as IPv6) to the IPv6 host.
    let inner = ipv6_with(host4_as6(), v6("2001:db8:1c0:2:21::"), 0, &[], 17, &{
        let mut u = vec![0x30, 0x39, 0x00, 0x35, 0, 60, 0, 0];
        u.extend(0..52u8);
        u
    });
    // (type, code, length in 64-bit words, padded field, extension bytes, length kept)
    for (ty, code, words, padded, ext, kept) in [
        // 128 bytes shrink to 108, padded back to 128 (32 words).
        (1u8, 4u8, 16u8, 128usize, 20usize, Some(32u8)),
        (3, 0, 16, 128, 20, Some(32)),
        // 420 bytes fit a 576-byte ICMPv4 error beside 128, 421 do not.
        (1, 4, 16, 128, 420, Some(32)),
        (1, 4, 16, 128, 421, None),
        // A long datagram field is cut to make room: 576 - 28 - 40 = 508 bytes (127 words).
        (3, 0, 80, 640, 40, Some(127)),
    ] {
        let body = body_with_extension(&inner, padded, ext);
        let mut icmp = vec![ty, code, 0, 0, words, 0, 0, 0];
        icmp.extend_from_slice(&body);
        let p = ipv6_with(router, host4_as6(), 0, &[], 58, &icmp);
        let out = same_as_reference(&lab, &p, true, &[4, 5, 10, 11]);
        assert_eq!(checksum(&out[20..]), 0, "ICMPv4 checksum");
        match kept {
            Some(words4) => {
                assert_eq!(out[25], words4, "type {ty}/{code}: ICMPv4 length attribute");
                assert_eq!(out.len(), 28 + words4 as usize * 4 + ext);
                assert_eq!(
                    &out[out.len() - ext..out.len() - ext + 4],
                    &[0x20, 0, 0x12, 0x34]
                );
            }
            None => {
                assert_eq!(out[25], 0, "length zeroed");
                assert_eq!(out.len(), 28 + padded - 20, "extension removed, no padding");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// RFC 7915 details checked against Jool's graybox suite

/// Sets the IPv4 fragment fields of `p` (identification, DF, MF, offset) and its header
/// checksum.
fn set_frag4(p: &mut [u8], id: u16, df: bool, mf: bool) {
    p[4..6].copy_from_slice(&id.to_be_bytes());
    let fw = ((df as u16) << 14) | ((mf as u16) << 13);
    p[6..8].copy_from_slice(&fw.to_be_bytes());
    p[10] = 0;
    p[11] = 0;
    let ihl = (p[0] & 0xf) as usize * 4;
    let c = checksum(&p[..ihl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn df_fragments_and_the_lowest_ipv6_mtu() {
    let lab = Lab::new("xlatdff");
    // Graybox "ca": a fragment with DF, too big for the 1300-byte IPv6 next hop of
    // 192.0.2.153 (1290 + 20 > 1300): fragmentation needed, MTU 1300 - 20.
    let mut p = udp4_len([192, 0, 2, 153], 64, true, 1262);
    set_frag4(&mut p, 1234, true, true);
    let f4 = ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, &p);
    let (action, out, delta) = run_one(&lab, &f4, lab.xl4);
    assert_eq!(action_name(action), "tx");
    assert_eq!(
        only_counter(&delta, f4.len()),
        (Reason::TooBig, TunnelKind::Xlat4to6, Action::Tx)
    );
    assert_eq!((out[14 + 20], out[14 + 21]), (3, 4), "fragmentation needed");
    assert_eq!(u16::from_be_bytes([out[14 + 26], out[14 + 27]]), 1280);
    // Graybox "jbb": with DF the lowest IPv6 MTU (1280) does not apply: a 1300-byte DF
    // fragment toward a 1500-byte next hop is translated whole (1328 bytes), where
    // without DF it would need IPv6 fragments (no slow path here: dropped).
    let mut p = udp4_len([192, 0, 2, 33], 64, true, 1272);
    set_frag4(&mut p, 1234, true, true);
    let f4 = ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, &p);
    let (action, out, delta) = run_one(&lab, &f4, lab.xl4);
    assert_eq!(action_name(action), "redirect");
    assert_eq!(
        only_counter(&delta, f4.len()),
        (Reason::Translated, TunnelKind::Xlat4to6, Action::Redirect)
    );
    assert_eq!(out.len(), 14 + 1300 + 28, "one IPv6 fragment");
    set_frag4(&mut p, 1234, false, true);
    let f4 = ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, &p);
    let (action, _, delta) = run_one(&lab, &f4, lab.xl4);
    assert_eq!(action_name(action), "drop");
    assert_eq!(
        only_counter(&delta, f4.len()),
        (
            Reason::XlatNeedsFragmentation,
            TunnelKind::Xlat4to6,
            Action::Drop
        )
    );
}

#[test]
fn illegal_source_of_an_icmp4_error_is_embedded() {
    let lab = Lab::new("xlatill");
    // RFC 7915 4.1 / graybox "ha": an ICMPv4 port unreachable from 127.0.0.1 or
    // 0.0.0.0 about a packet the IPv6 host sent keeps its source, under the prefix.
    let inner = udp4_opts([192, 0, 2, 33], [198, 51, 100, 2], 63, &[], 4);
    for (src, want) in [
        ([127, 0, 0, 1], v6("2001:db8:17f:0:1::")),
        ([0, 0, 0, 0], v6("2001:db8:100::")),
    ] {
        let p = icmp4_error_with(src, [192, 0, 2, 33], 3, 3, [0; 4], &inner);
        let out = same_as_reference(&lab, &p, false, &[]);
        assert_eq!(&out[8..24], &want.octets(), "source {src:?}");
        assert_eq!((out[40], out[41]), (1, 4), "port unreachable");
    }
}

/// The translator's first-level cache of addresses (`mapping_cache`: binding presence and
/// EAMT answers, per CPU) never answers from tables that changed: every change made with
/// the control plane's own code (`vdmm_ctl::natpt::Translator`,
/// `vdmm_ctl::binding_table::BindingTable`) applies from the next packet, on the same
/// CPU whose cache the packets before filled.
#[test]
fn translation_follows_config_changes() {
    let lab = Lab::new("xlatchg");
    vdmm_tests::testrun::stay_on_this_cpu().unwrap();
    let pins = vdmm_ctl::pin::PinDir::new(lab.dp.pin_dir());
    let mut nat = vdmm_ctl::natpt::Translator::open(&pins).unwrap();
    let mut bindings = vdmm_ctl::binding_table::BindingTable::open(&pins).unwrap();
    let prefix = |s: &str| s.parse::<vdmm_ctl::addr::Prefix>().unwrap();
    let eam = |p6: &str, p4: &str| vdmm_ctl::natpt::Eam::new(prefix(p6), prefix(p4)).unwrap();

    // 6->4: 2001:db8:1c0:2:21:: (192.0.2.33 under the prefix) -> 198.51.100.2 under it.
    let f6 = ethernet(
        XL6_MAC,
        HOST6_MAC,
        ETH_P_IPV6,
        &udp6(v6("2001:db8:1c6:3364:2::"), 16, false),
    );
    // (reason, IPv4 source, IPv4 destination) of one run.
    let run6 = |lab: &Lab| {
        let (_, out, delta) = run_one(lab, &f6, lab.xl6);
        let (reason, kind, _) = only_counter(&delta, f6.len());
        let addrs = if reason == Reason::Translated {
            assert_eq!(kind, TunnelKind::Xlat6to4);
            (
                Ipv4Addr::from(<[u8; 4]>::try_from(&out[26..30]).unwrap()),
                Ipv4Addr::from(<[u8; 4]>::try_from(&out[30..34]).unwrap()),
            )
        } else {
            (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED)
        };
        (reason, addrs.0, addrs.1)
    };
    let through_prefix = (Reason::Translated, v4("192.0.2.33"), v4("198.51.100.2"));
    assert_eq!(run6(&lab), through_prefix, "6->4 through the prefix");
    assert_eq!(run6(&lab), through_prefix, "6->4 again, from the cache");
    // An EAMT entry for the source wins over the prefix.
    nat.add_eam(eam("2001:db8:1c0:2:21::/128", "10.0.0.77/32"))
        .unwrap();
    assert_eq!(
        run6(&lab),
        (Reason::Translated, v4("10.0.0.77"), v4("198.51.100.2")),
        "6->4 after eam add"
    );
    nat.del_eam(eam("2001:db8:1c0:2:21::/128", "10.0.0.77/32"))
        .unwrap();
    assert_eq!(run6(&lab), through_prefix, "6->4 after eam del");
    // A binding for the destination takes the packet away from the translator.
    let home = prefix("2001:db8:1c6:3364:2::/128");
    let binding = vdmm_common::Binding::new(
        vdmm_common::IpAddrKey::from(std::net::IpAddr::V6(v6("2001:db8:9::2"))),
        vdmm_common::IpAddrKey::from(std::net::IpAddr::V6(v6(GW6))),
    );
    bindings.insert(&home, binding, 0).unwrap();
    let (reason, _, _) = run6(&lab);
    assert_ne!(
        reason,
        Reason::Translated,
        "6->4 with a binding for the destination"
    );
    bindings.remove(&home).unwrap();
    assert_eq!(
        run6(&lab),
        through_prefix,
        "6->4 after the binding is removed"
    );
    // Without the prefix, nothing maps.
    let pool6 = vdmm_ctl::natpt::parse_prefix6("2001:db8:100::/40").unwrap();
    nat.change(vdmm_ctl::natpt::XlatChange::ClearPrefix(None))
        .unwrap();
    assert_eq!(
        run6(&lab).0,
        Reason::NoMatch,
        "6->4 after the prefix is cleared"
    );
    nat.change(vdmm_ctl::natpt::XlatChange::SetPrefix(pool6))
        .unwrap();
    assert_eq!(
        run6(&lab),
        through_prefix,
        "6->4 after the prefix is set again"
    );

    // 4->6: 198.51.100.2 -> 192.0.2.33 (2001:db8:1c0:2:21:: under the prefix).
    let f4 = ethernet(
        XL4_MAC,
        HOST4_MAC,
        ETH_P_IP,
        &udp4([192, 0, 2, 33], 64, true),
    );
    let run4 = |lab: &Lab| {
        let (_, out, delta) = run_one(lab, &f4, lab.xl4);
        let (reason, kind, _) = only_counter(&delta, f4.len());
        let dst = if reason == Reason::Translated {
            assert_eq!(kind, TunnelKind::Xlat4to6);
            Ipv6Addr::from(<[u8; 16]>::try_from(&out[38..54]).unwrap())
        } else {
            Ipv6Addr::UNSPECIFIED
        };
        (reason, dst)
    };
    let embedded = (Reason::Translated, v6("2001:db8:1c0:2:21::"));
    assert_eq!(run4(&lab), embedded, "4->6 through the prefix");
    assert_eq!(run4(&lab), embedded, "4->6 again, from the cache");
    nat.add_eam(eam("2001:db8:1c0:2:99::/128", "192.0.2.33/32"))
        .unwrap();
    assert_eq!(
        run4(&lab),
        (Reason::Translated, v6("2001:db8:1c0:2:99::")),
        "4->6 after eam add"
    );
    nat.del_eam(eam("2001:db8:1c0:2:99::/128", "192.0.2.33/32"))
        .unwrap();
    assert_eq!(run4(&lab), embedded, "4->6 after eam del");
    let home = prefix("192.0.2.0/24");
    let binding = vdmm_common::Binding::new(
        vdmm_common::IpAddrKey::from(std::net::IpAddr::V4(v4("198.51.100.9"))),
        vdmm_common::IpAddrKey::from(std::net::IpAddr::V4(v4(GW4))),
    );
    bindings.insert(&home, binding, 0).unwrap();
    assert_ne!(
        run4(&lab).0,
        Reason::Translated,
        "4->6 with a binding for the destination's prefix"
    );
    bindings.remove(&home).unwrap();
    assert_eq!(run4(&lab), embedded, "4->6 after the binding is removed");
}
