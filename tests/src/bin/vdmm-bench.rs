//! vdmm-bench: nanoseconds per packet of the XDP data plane through BPF_PROG_TEST_RUN,
//! beside the empty XDP program (`vdmm_empty`) measured the same way in the same run.
//!
//! Needs root. Builds a gateway network namespace (routes and static neighbours so every
//! path ends in a successful `bpf_fib_lookup` and XDP_REDIRECT), loads the data plane once
//! into private maps, and measures for 64- and 1400-byte packets: the empty program, encap
//! 4in4 / 6in4 / 4in6 / 6in6 and decap of the same four kinds; and (with the 1400-byte
//! rows, the vectors being 1302-1370 bytes) SIIT translation 4->6 and 6->4 of UDP, TCP and an ICMP error (the
//! `*-csumok-df-nofrag` siit-pktgen sender vectors, read from
//! ../shared/conformance/siit-pktgen or $VDMM_SIIT_VECTORS; translator configured as the
//! conformance README says), target `--xlat-target` (3x). Each measurement is taken
//! `--samples` times, each sample right after a sample of the empty program (same size,
//! same method), and the medians are reported, with their ratio and PASS / FAIL against
//! the target (`--target`, 2.5x): interleaved, both see the same machine load. Missing the
//! target is reported, not an error: the exit status is non-zero only when something
//! could not be measured. `--only TEXT` measures just the rows whose name contains TEXT
//! (and the empty program).
//!
//! How the time is taken. With `repeat = N` the kernel runs the program N times on ONE
//! buffer without restoring it, so from the second repetition on a tunnel path sees its
//! own output (encap sees an already encapsulated packet and passes it as no_match; decap
//! sees the bare inner packet). The bench probes this for every path (repeat = 2 must
//! count the intended exit twice). Paths that pass the probe are timed with one
//! BPF_PROG_TEST_RUN of `repeat = --runs`; paths that do not are timed as `--runs`
//! separate runs of repeat = 1, averaging the kernel's own per-run duration (the data
//! copies of each call are outside the kernel's timer, its clock reads are inside). The
//! empty program is always timed both ways, and each path is compared with the empty
//! program timed by the same method. After every measurement the counters must show
//! exactly `--runs` packets more on the intended exit and nothing else, so every timed
//! run took the path its row names.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use vdmm_common::{
    Action, Binding, IpAddrKey, Reason, TunnelConfig, TunnelKind,
    counters::{counter_index, counter_labels},
    maps,
    vap::{VAP_HAS_V4, Vap, mac_key},
};
use vdmm_tests::{
    netns::{Netns, require_root},
    packet::{ETH_P_IP, ETH_P_IPV6, Ip, Ip4, Ip6, L4, Mac, Outer4, Outer6, arp_request, ethernet},
    testrun::{DataPlane, action_name, counter_delta, counter_name, ifindex},
    xlat_lab::{HOST4_MAC, HOST6_MAC, XL4_MAC, XL6_MAC, XlatPrefix, write_translator_maps},
};

#[derive(Parser)]
#[command(
    name = "vdmm-bench",
    about = "ns/packet of the vdmm XDP data plane via BPF_PROG_TEST_RUN"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Subcommand)]
enum Command {
    /// Nanoseconds per packet for every encap and decap kind beside the empty program
    /// (the default).
    NsPerPacket(Opts),
}

#[derive(clap::Args, Clone)]
struct Opts {
    /// Runs per measurement (the kernel's repeat count, or the number of single runs for
    /// paths that cannot use it).
    #[arg(long, default_value_t = 1_000_000)]
    runs: u32,
    /// Measurements per row; the median is reported.
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Target: every tunnel path within this factor of the empty program.
    #[arg(long, default_value_t = 2.5)]
    target: f64,
    /// Target: every translation path (4->6, 6->4) within this factor of the empty program.
    #[arg(long, default_value_t = 3.0)]
    xlat_target: f64,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Exit with status 3 when a path misses the target (default: report it, exit 0).
    #[arg(long)]
    strict: bool,
    /// Measure only the rows whose name contains TEXT (e.g. "xlat", "6to4 udp", "encap");
    /// the empty program is always measured as the baseline.
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
}

const DN0_MAC: Mac = [0x02, 0, 0, 0, 0x01, 0x01];
const CORR_MAC: Mac = [0x02, 0, 0, 0, 0x01, 0x02];
const UL0_MAC: Mac = [0x02, 0, 0, 0, 0x02, 0x01];
const PEER_MAC: Mac = [0x02, 0, 0, 0, 0x02, 0x02];
/// The vAP rows: the AP host's client-facing interface, a client and its vAP.
const CL0_MAC: Mac = [0x02, 0, 0, 0, 0x0c, 0x01];
const CLIENT_MAC: Mac = [0x00, 0x16, 0x3e, 0, 0, 0x05];
const CLIENT_VAP_MAC: Mac = [0x02, 0xaa, 0, 0, 0, 0x05];
const CLIENT4: &str = "10.50.0.5";

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// The gateway namespace, entered by this thread, with the data plane programmed.
struct Gateway {
    _entered: vdmm_tests::netns::EnteredNetns,
    dp: DataPlane,
    _ns: Netns,
    dn0: u32,
    ul0: u32,
    xl4: u32,
    xl6: u32,
    cl0: u32,
}

fn gateway() -> Result<Gateway> {
    let ns = Netns::new("bench")?;
    let sh = |args: &str| -> Result<()> {
        let v: Vec<&str> = args.split_whitespace().collect();
        ns.ip(&v)?;
        Ok(())
    };
    for (dev, mac) in [("dn0", DN0_MAC), ("ul0", UL0_MAC), ("cl0", CL0_MAC)] {
        sh(&format!("link add {dev} type veth peer name {dev}p"))?;
        sh(&format!("link set {dev} address {}", mac_str(mac)))?;
        sh(&format!("link set {dev} up"))?;
        sh(&format!("link set {dev}p up"))?;
    }
    sh("addr add 10.1.0.1/24 dev dn0")?;
    sh("addr add fd00:1::1/64 dev dn0 nodad")?;
    sh("addr add 100.64.0.1/24 dev ul0")?;
    sh("addr add 2001:db8:1::1/64 dev ul0 nodad")?;
    for (addr, mac, dev) in [
        ("10.1.0.2", CORR_MAC, "dn0"),
        ("fd00:1::2", CORR_MAC, "dn0"),
        ("100.64.0.2", PEER_MAC, "ul0"),
        ("2001:db8:1::2", PEER_MAC, "ul0"),
    ] {
        sh(&format!(
            "neigh add {addr} lladdr {} dev {dev} nud permanent",
            mac_str(mac)
        ))?;
    }
    ns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
    ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"])?;

    let mut dp = DataPlane::load()?;
    for a in ["100.64.0.1", "2001:db8:1::1"] {
        dp.add_endpoint(a.parse()?)?;
    }
    for a in ["100.64.0.2", "2001:db8:1::2"] {
        dp.add_peer(a.parse()?)?;
    }
    for (home, len, loc, src) in [
        ("10.9.0.0", 16, "100.64.0.2", "100.64.0.1"),
        ("10.10.0.0", 16, "2001:db8:1::2", "2001:db8:1::1"),
        ("fd00:9::", 32, "100.64.0.2", "100.64.0.1"),
        ("fd00:10::", 32, "2001:db8:1::2", "2001:db8:1::1"),
        // Locators without a neighbour entry: everything up to and including
        // bpf_fib_lookup, then the frame is passed unchanged (a reference row).
        ("10.30.0.0", 16, "100.64.0.99", "100.64.0.1"),
        ("fd00:31::", 32, "2001:db8:1::99", "2001:db8:1::1"),
    ] {
        dp.add_binding(home.parse()?, len, loc.parse()?, src.parse()?)?;
    }
    dp.set_config(TunnelConfig {
        outer_hop_limit: 0,
        _reserved: [0; 3],
        icmp_source_v4: v4("10.1.0.1").octets(),
        icmp_source_v6: v6("fd00:1::1").octets(),
    })?;
    // The translator (SIIT) side, as in the conformance README and tests/translate_*:
    // xl4 198.51.100.1/24 toward the IPv4 host 198.51.100.2, xl6 2001:db8:1c0:2::1/64
    // toward the IPv6 host 2001:db8:1c0:2:21:: (= 192.0.2.33 under 2001:db8:100::/40),
    // the IPv4 space of the IPv6 side routed to xl6.
    for (dev, mac) in [("xl4", XL4_MAC), ("xl6", XL6_MAC)] {
        sh(&format!("link add {dev} type veth peer name {dev}p"))?;
        sh(&format!("link set {dev} address {}", mac_str(mac)))?;
        sh(&format!("link set {dev} up"))?;
        sh(&format!("link set {dev}p up"))?;
    }
    sh("addr add 198.51.100.1/24 dev xl4")?;
    sh("addr add 2001:db8:1c0:2::1/64 dev xl6 nodad")?;
    for (addr, mac, dev) in [
        ("198.51.100.2", HOST4_MAC, "xl4"),
        ("2001:db8:1c0:2:21::", HOST6_MAC, "xl6"),
    ] {
        sh(&format!(
            "neigh add {addr} lladdr {} dev {dev} nud permanent",
            mac_str(mac)
        ))?;
    }
    for p in ["192.0.2.0/24", "1.0.0.0/24", "10.0.0.0/24"] {
        sh(&format!("route add {p} dev xl6"))?;
    }
    write_translator_maps(dp.pin_dir(), XlatPrefix::Conformance)
        .context("configuring the translator maps")?;

    let entered = ns.enter()?;
    let dn0 = ifindex("dn0")?;
    let ul0 = ifindex("ul0")?;
    let xl4 = ifindex("xl4")?;
    let xl6 = ifindex("xl6")?;
    let cl0 = ifindex("cl0")?;
    // A vAP tunnelled to the peer as its anchor.
    dp.add_vap(Vap {
        client_mac: mac_key(CLIENT_MAC),
        vap_mac: mac_key(CLIENT_VAP_MAC),
        host_mac: mac_key(CL0_MAC),
        ifindex: cl0,
        flags: VAP_HAS_V4,
        ipv4: v4(CLIENT4).octets(),
        slot: 0,
        ipv6: [0; 16],
        anchor: Binding::new(
            IpAddrKey::from_v4(v4("100.64.0.2").octets()),
            IpAddrKey::from_v4(v4("100.64.0.1").octets()),
        ),
        forward: Binding::default(),
    })?;
    Ok(Gateway {
        _entered: entered,
        dp,
        _ns: ns,
        dn0,
        ul0,
        xl4,
        xl6,
        cl0,
    })
}

fn mac_str(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A UDP packet whose Ethernet frame is `frame_len` bytes.
fn udp_packet(src: IpAddr, dst: IpAddr, frame_len: usize) -> Ip {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ip::V4(Ip4::new(
            s,
            d,
            L4::Udp {
                sport: 40000,
                dport: 5001,
                len: frame_len - 14 - 28,
            },
        )),
        (IpAddr::V6(s), IpAddr::V6(d)) => Ip::V6(Ip6::new(
            s,
            d,
            L4::Udp {
                sport: 40000,
                dport: 5001,
                len: frame_len - 14 - 48,
            },
        )),
        _ => unreachable!(),
    }
}

/// One row of the table: a program, a frame, and the exit it must take.
struct Path {
    name: String,
    /// A tunnel path (compared with the target) rather than a reference row.
    tunnel: bool,
    /// A translation path (compared with the translation target).
    xlat: bool,
    program: &'static str,
    frame: Vec<u8>,
    ingress: u32,
    /// The counter every run must hit (none for the empty program).
    exit: Option<(Reason, TunnelKind, Action)>,
}

fn paths(gw: &Gateway, size: usize) -> Vec<Path> {
    let mut out = vec![Path {
        name: "empty".into(),
        tunnel: false,
        xlat: false,
        program: maps::EMPTY_PROGRAM,
        frame: ethernet(
            DN0_MAC,
            CORR_MAC,
            ETH_P_IP,
            &udp_packet(
                "10.1.0.2".parse().unwrap(),
                "10.9.1.5".parse().unwrap(),
                size,
            )
            .bytes(),
        ),
        ingress: gw.dn0,
        exit: None,
    }];
    // Reference paths that leave the packet as it is, so both timing methods apply: how
    // much of a single run's time is the per-call cost rather than the program.
    let no_binding = udp_packet(
        "10.1.0.2".parse().unwrap(),
        "10.99.0.1".parse().unwrap(),
        size,
    );
    out.push(Path {
        name: "pass no_match".into(),
        tunnel: false,
        xlat: false,
        program: maps::XDP_PROGRAM,
        frame: ethernet(DN0_MAC, CORR_MAC, ETH_P_IP, &no_binding.bytes()),
        ingress: gw.dn0,
        exit: Some((Reason::NoMatch, TunnelKind::None, Action::Pass)),
    });
    let rogue = udp_packet(
        "10.9.1.5".parse().unwrap(),
        "10.1.0.2".parse().unwrap(),
        size,
    );
    out.push(Path {
        name: "drop not_peer".into(),
        tunnel: false,
        xlat: false,
        program: maps::XDP_PROGRAM,
        frame: ethernet(
            UL0_MAC,
            PEER_MAC,
            ETH_P_IP,
            &Outer4::new(v4("100.64.0.77"), v4("100.64.0.1"), 4).wrap(&rogue.bytes()),
        ),
        ingress: gw.ul0,
        exit: Some((Reason::NotPeer, TunnelKind::Ip4in4, Action::Drop)),
    });
    for (src, dst, kind) in [
        ("10.1.0.2", "10.30.1.1", TunnelKind::Ip4in4),
        ("fd00:1::2", "fd00:31::1", TunnelKind::Ip6in6),
    ] {
        let p = udp_packet(src.parse().unwrap(), dst.parse().unwrap(), size);
        out.push(Path {
            name: format!("encap {} no-neigh", kind.name()),
            tunnel: false,
            xlat: false,
            program: maps::XDP_PROGRAM,
            frame: ethernet(DN0_MAC, CORR_MAC, p.ethertype(), &p.bytes()),
            ingress: gw.dn0,
            exit: Some((Reason::FibNoNeighbour, kind, Action::Pass)),
        });
    }
    for (inner_v6, outer_v6) in [(false, false), (true, false), (false, true), (true, true)] {
        let kind = TunnelKind::of(inner_v6, outer_v6);
        let (csrc, home) = match (inner_v6, outer_v6) {
            (false, false) => ("10.1.0.2", "10.9.1.5"),
            (true, false) => ("fd00:1::2", "fd00:9::5"),
            (false, true) => ("10.1.0.2", "10.10.1.5"),
            (true, true) => ("fd00:1::2", "fd00:10::5"),
        };
        let inner = udp_packet(csrc.parse().unwrap(), home.parse().unwrap(), size);
        out.push(Path {
            name: format!("encap {}", kind.name()),
            tunnel: true,
            xlat: false,
            program: maps::XDP_PROGRAM,
            frame: ethernet(DN0_MAC, CORR_MAC, inner.ethertype(), &inner.bytes()),
            ingress: gw.dn0,
            exit: Some((Reason::Encap, kind, Action::Redirect)),
        });
    }
    for (inner_v6, outer_v6) in [(false, false), (true, false), (false, true), (true, true)] {
        let kind = TunnelKind::of(inner_v6, outer_v6);
        let (home, corr) = if inner_v6 {
            ("fd00:9::5", "fd00:1::2")
        } else {
            ("10.9.1.5", "10.1.0.2")
        };
        let inner = udp_packet(home.parse().unwrap(), corr.parse().unwrap(), size);
        let proto = inner.tunnel_proto();
        let frame = if outer_v6 {
            let o = Outer6::new(v6("2001:db8:1::2"), v6("2001:db8:1::1"), proto);
            ethernet(UL0_MAC, PEER_MAC, ETH_P_IPV6, &o.wrap(&inner.bytes()))
        } else {
            let o = Outer4::new(v4("100.64.0.2"), v4("100.64.0.1"), proto);
            ethernet(UL0_MAC, PEER_MAC, ETH_P_IP, &o.wrap(&inner.bytes()))
        };
        out.push(Path {
            name: format!("decap {}", kind.name()),
            tunnel: true,
            xlat: false,
            program: maps::XDP_PROGRAM,
            frame,
            ingress: gw.ul0,
            exit: Some((Reason::Decap, kind, Action::Redirect)),
        });
    }
    out.extend(vap_paths(gw, size));
    if size == 1400 {
        out.extend(xlat_paths(gw).unwrap_or_else(|e| panic!("{e:#}")));
    }
    out
}

/// vAP rows (issue #5 target: within 2.5x of the empty program, like the tunnel rows):
/// the client's uplink to its vAP tunnelled to the anchor (`vdmm_vap`), a packet for the
/// client from the anchor's tunnel unwrapped and delivered to it (`vdmm_xdp`), a spoofed
/// packet dropped, an ARP request answered.
fn vap_paths(gw: &Gateway, size: usize) -> Vec<Path> {
    let up = udp_packet(CLIENT4.parse().unwrap(), "10.1.0.2".parse().unwrap(), size);
    let down = udp_packet("10.1.0.2".parse().unwrap(), CLIENT4.parse().unwrap(), size);
    let spoofed = udp_packet(
        "10.50.0.99".parse().unwrap(),
        "10.1.0.2".parse().unwrap(),
        size,
    );
    let mut out = vec![
        Path {
            name: "vap uplink 4in4".into(),
            tunnel: true,
            xlat: false,
            program: maps::VAP_PROGRAM,
            frame: ethernet(CLIENT_VAP_MAC, CLIENT_MAC, ETH_P_IP, &up.bytes()),
            ingress: gw.cl0,
            exit: Some((Reason::VapUplink, TunnelKind::Ip4in4, Action::Redirect)),
        },
        Path {
            name: "vap decap+deliver 4in4".into(),
            tunnel: true,
            xlat: false,
            program: maps::XDP_PROGRAM,
            frame: ethernet(
                UL0_MAC,
                PEER_MAC,
                ETH_P_IP,
                &Outer4::new(v4("100.64.0.2"), v4("100.64.0.1"), 4).wrap(&down.bytes()),
            ),
            ingress: gw.ul0,
            exit: Some((Reason::VapDeliver, TunnelKind::Ip4in4, Action::Redirect)),
        },
        Path {
            name: "vap drop spoofed".into(),
            tunnel: true,
            xlat: false,
            program: maps::VAP_PROGRAM,
            frame: ethernet(CLIENT_VAP_MAC, CLIENT_MAC, ETH_P_IP, &spoofed.bytes()),
            ingress: gw.cl0,
            exit: Some((Reason::VapSpoofed, TunnelKind::None, Action::Drop)),
        },
    ];
    if size == 64 {
        out.push(Path {
            name: "vap arp reply".into(),
            tunnel: true,
            xlat: false,
            program: maps::VAP_PROGRAM,
            frame: arp_request(CLIENT_MAC, v4(CLIENT4), v4("10.50.0.1")),
            ingress: gw.cl0,
            exit: Some((Reason::VapArpReply, TunnelKind::None, Action::Tx)),
        });
    }
    out
}

/// Where the siit-pktgen conformance vectors are: $VDMM_SIIT_VECTORS, else
/// ../shared/conformance/siit-pktgen beside the checkout.
fn vectors_dir() -> std::path::PathBuf {
    match std::env::var_os("VDMM_SIIT_VECTORS") {
        Some(d) => d.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/conformance/siit-pktgen"),
    }
}

/// Translation rows: the *-csumok-df-nofrag sender vectors (UDP, TCP, ICMP error) of
/// each direction, received on the interface of their family and redirected out of the
/// other.
fn xlat_paths(gw: &Gateway) -> Result<Vec<Path>> {
    let dir = vectors_dir();
    let read = |name: &str| {
        let p = dir.join("sender").join(format!("{name}.pkt"));
        std::fs::read(&p).with_context(|| {
            format!(
                "translation rows need the siit-pktgen vectors: cannot read {} (set VDMM_SIIT_VECTORS)",
                p.display()
            )
        })
    };
    let mut out = vec![];
    for (label, v4name, v6name) in [
        ("udp", "4-udp-csumok-df-nofrag", "6-udp-csumok-df-nofrag"),
        ("tcp", "4-tcp-csumok-df-nofrag", "6-tcp-csumok-df-nofrag"),
        (
            "icmp err",
            "4-icmp4err-csumok-df-nofrag",
            "6-icmp6err-csumok-df-nofrag",
        ),
    ] {
        out.push(Path {
            name: format!("xlat 4to6 {label}"),
            tunnel: true,
            xlat: true,
            program: maps::XDP_PROGRAM,
            frame: ethernet(XL4_MAC, HOST4_MAC, ETH_P_IP, &read(v4name)?),
            ingress: gw.xl4,
            exit: Some((Reason::Translated, TunnelKind::Xlat4to6, Action::Redirect)),
        });
        out.push(Path {
            name: format!("xlat 6to4 {label}"),
            tunnel: true,
            xlat: true,
            program: maps::XDP_PROGRAM,
            frame: ethernet(XL6_MAC, HOST6_MAC, ETH_P_IPV6, &read(v6name)?),
            ingress: gw.xl6,
            exit: Some((Reason::Translated, TunnelKind::Xlat6to4, Action::Redirect)),
        });
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Method {
    /// One BPF_PROG_TEST_RUN with repeat = runs.
    KernelRepeat,
    /// `runs` BPF_PROG_TEST_RUNs with repeat = 1, kernel durations averaged.
    SingleRuns,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::KernelRepeat => "repeat",
            Method::SingleRuns => "single",
        }
    }
}

/// Checks that one run takes the path's exit; returns whether `repeat = 2` takes it twice
/// (so the kernel's repeat loop can time it).
fn probe(gw: &Gateway, p: &Path, verbose: bool) -> Result<bool> {
    let Some(exit) = p.exit else {
        let r = gw.dp.run_program(p.program, &p.frame, p.ingress, 2)?;
        if r.action != Action::Pass as u32 {
            bail!("{}: returned {}", p.name, action_name(r.action));
        }
        return Ok(true);
    };
    let want = counter_index(exit.0, exit.1, exit.2);
    let before = gw.dp.counters()?;
    let r = gw.dp.run_program(p.program, &p.frame, p.ingress, 1)?;
    let delta = counter_delta(&before, &gw.dp.counters()?);
    if r.action != exit.2 as u32 || delta.len() != 1 || delta[0].0 != want || delta[0].1 != 1 {
        bail!(
            "{} ({} bytes): one run returned {} and counted [{}], expected {}",
            p.name,
            p.frame.len(),
            action_name(r.action),
            delta
                .iter()
                .map(|d| counter_name(d.0))
                .collect::<Vec<_>>()
                .join(", "),
            counter_name(want)
        );
    }
    let before = gw.dp.counters()?;
    gw.dp.run_program(p.program, &p.frame, p.ingress, 2)?;
    let delta = counter_delta(&before, &gw.dp.counters()?);
    let ok = delta.len() == 1 && delta[0].0 == want && delta[0].1 == 2;
    if !ok && verbose {
        eprintln!(
            "{} {} B: repeat = 2 counted [{}], not {} x2: timed as single runs",
            p.name,
            p.frame.len(),
            delta
                .iter()
                .map(|d| format!("{} +{}", counter_name(d.0), d.1))
                .collect::<Vec<_>>()
                .join(", "),
            counter_name(want)
        );
    }
    Ok(ok)
}

/// Mean ns per run of one measurement, checking afterwards that every run counted on the
/// path's exit.
fn measure(gw: &Gateway, p: &Path, method: Method, runs: u32) -> Result<f64> {
    let before = match p.exit {
        Some(_) => Some(gw.dp.counters()?),
        None => None,
    };
    let ns = match method {
        Method::KernelRepeat => {
            let r = gw.dp.run_program(p.program, &p.frame, p.ingress, runs)?;
            r.duration.as_nanos() as f64
        }
        Method::SingleRuns => {
            let mut total = Duration::ZERO;
            for _ in 0..runs {
                total += gw
                    .dp
                    .run_program(p.program, &p.frame, p.ingress, 1)?
                    .duration;
            }
            total.as_nanos() as f64 / runs as f64
        }
    };
    if let (Some(before), Some(exit)) = (before, p.exit) {
        let want = counter_index(exit.0, exit.1, exit.2);
        let delta = counter_delta(&before, &gw.dp.counters()?);
        let ok = delta.len() == 1 && delta[0].0 == want && delta[0].1 == runs as u64;
        if !ok {
            bail!(
                "{} ({} bytes): {} runs counted [{}], expected {} x{runs}",
                p.name,
                p.frame.len(),
                runs,
                delta
                    .iter()
                    .map(|d| format!(
                        "{} +{}",
                        counter_labels(d.0)
                            .map(|(r, k, a)| format!("{}/{}/{}", r.name(), k.name(), a.name()))
                            .unwrap_or_default(),
                        d.1
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                counter_name(want)
            );
        }
    }
    Ok(ns)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Row {
    path: String,
    tunnel: bool,
    xlat: bool,
    size: usize,
    frame_len: usize,
    method: Method,
    ns: f64,
    min: f64,
    max: f64,
    empty_ns: f64,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.ns / self.empty_ns
    }
    fn target(&self, o: &Opts) -> f64 {
        if self.xlat { o.xlat_target } else { o.target }
    }
    fn pass(&self, o: &Opts) -> bool {
        self.ratio() <= self.target(o)
    }
}

fn ns_per_packet(o: &Opts) -> Result<bool> {
    if o.samples == 0 || o.runs == 0 {
        bail!("--samples and --runs must be at least 1");
    }
    require_root()?;
    let gw = gateway().context("setting up the benchmark namespace")?;
    let mut rows = Vec::new();
    for size in [64usize, 1400] {
        let mut ps = paths(&gw, size);
        // `--only`: the empty program (the first row, the baseline) and the rows named.
        if let Some(only) = &o.only {
            let mut i = 0;
            ps.retain(|p| {
                i += 1;
                i == 1 || p.name.contains(only.as_str())
            });
            if ps.len() == 1 {
                continue;
            }
        }
        let empty = &ps[0];
        let mut empty_ns = std::collections::HashMap::new();
        for m in [Method::KernelRepeat, Method::SingleRuns] {
            let s: Vec<f64> = (0..o.samples)
                .map(|_| measure(&gw, empty, m, o.runs))
                .collect::<Result<_>>()?;
            empty_ns.insert(m, s);
        }
        for p in &ps {
            let methods = match (probe(&gw, p, !o.json)?, p.tunnel) {
                (true, true) => vec![Method::KernelRepeat],
                (true, false) => vec![Method::KernelRepeat, Method::SingleRuns],
                (false, _) => vec![Method::SingleRuns],
            };
            for m in methods {
                // The empty program is timed again between this row's samples, and the
                // row is compared with those interleaved samples: a machine whose load
                // changes while the bench runs shifts both alike.
                let (samples, baseline) = if p.exit.is_none() {
                    (empty_ns[&m].clone(), empty_ns[&m].clone())
                } else {
                    let mut samples = Vec::with_capacity(o.samples);
                    let mut baseline = Vec::with_capacity(o.samples);
                    for _ in 0..o.samples {
                        baseline.push(measure(&gw, empty, m, o.runs)?);
                        samples.push(measure(&gw, p, m, o.runs)?);
                    }
                    (samples, baseline)
                };
                if !o.json {
                    eprintln!("measured {} {size} B ({})", p.name, m.name());
                }
                rows.push(Row {
                    path: p.name.clone(),
                    tunnel: p.tunnel,
                    xlat: p.xlat,
                    size,
                    frame_len: p.frame.len(),
                    method: m,
                    min: samples.iter().cloned().fold(f64::INFINITY, f64::min),
                    max: samples.iter().cloned().fold(0.0, f64::max),
                    ns: median(samples),
                    empty_ns: median(baseline),
                });
            }
        }
    }

    let tunnel_rows = || rows.iter().filter(|r| r.tunnel);
    let all_pass = tunnel_rows().all(|r| r.pass(o));
    if o.json {
        let v = serde_json::json!({
            "runs": o.runs,
            "samples": o.samples,
            "target_ratio": o.target,
            "xlat_target_ratio": o.xlat_target,
            "methods": {
                "repeat": "one BPF_PROG_TEST_RUN with repeat = runs; kernel's mean ns per run",
                "single": "runs x BPF_PROG_TEST_RUN with repeat = 1; mean of the kernel's per-run ns (includes its clock reads)",
            },
            "all_pass": all_pass,
            "rows": rows.iter().map(|r| {
                let is_path = r.tunnel;
                serde_json::json!({
                    "path": r.path,
                    "size": r.size,
                    "frame_len": r.frame_len,
                    "method": r.method.name(),
                    "ns_per_packet": (r.ns * 10.0).round() / 10.0,
                    "min_ns": (r.min * 10.0).round() / 10.0,
                    "max_ns": (r.max * 10.0).round() / 10.0,
                    "empty_ns": (r.empty_ns * 10.0).round() / 10.0,
                    "ratio": (r.ratio() * 100.0).round() / 100.0,
                    "target_ratio": if is_path { Some(r.target(o)) } else { None },
                    "pass": if is_path { Some(r.pass(o)) } else { None },
                })
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "ns/packet via BPF_PROG_TEST_RUN: median of {} samples x {} runs; target: tunnel paths <= {:.1}x, translation paths <= {:.1}x the empty program (same size, same method)",
            o.samples, o.runs, o.target, o.xlat_target
        );
        println!();
        println!(
            "{:<22} {:>5} {:>6} {:<7} {:>9} {:>17} {:>7} {:>7}  target",
            "path", "size", "frame", "method", "ns/pkt", "(min..max)", "empty", "x empty"
        );
        for r in &rows {
            let verdict = if !r.tunnel {
                "-".to_string()
            } else if r.pass(o) {
                "PASS".to_string()
            } else {
                "FAIL".to_string()
            };
            println!(
                "{:<22} {:>5} {:>6} {:<7} {:>9.1} {:>17} {:>7.1} {:>7.2}  {}",
                r.path,
                r.size,
                r.frame_len,
                r.method.name(),
                r.ns,
                format!("({:.1}..{:.1})", r.min, r.max),
                r.empty_ns,
                r.ratio(),
                verdict
            );
        }
        println!();
        println!(
            "size = the un-tunnelled frame (encap input, decap output); frame = bytes the program gets;\n\
             empty = median of the empty program's samples taken between this row's samples.\n\
             method repeat: one test run with the kernel's repeat loop; single: repeat = 1 per call,\n\
             mean of the kernel's per-run times (its clock reads and a cold start included). The\n\
             kernel reuses one buffer across repetitions, so paths that rewrite the packet (every\n\
             encap and decap row) can only be timed `single`; rows without a target leave the packet\n\
             as it is and are timed both ways, to show what `single` adds.\n\
             xlat rows: siit-pktgen *-csumok-df-nofrag sender vectors (their own sizes, shown as frame),\n\
             compared with the 1400-byte empty program. The translator is configured (pool6\n\
             2001:db8:100::/40), so `pass no_match` includes its look-ups (an IPv4 destination is\n\
             checked against the FIB before it is passed)."
        );
        println!(
            "{}",
            if all_pass {
                "all tunnel and translation paths within target"
            } else {
                "some tunnel or translation paths missed the target"
            }
        );
    }
    Ok(all_pass)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = match cli.command {
        Some(Command::NsPerPacket(o)) => o,
        None => cli.opts,
    };
    match ns_per_packet(&opts) {
        Ok(false) if opts.strict => ExitCode::from(3),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vdmm-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
