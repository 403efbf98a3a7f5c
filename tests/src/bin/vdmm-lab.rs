//! `vdmm-lab`: the tunnel lab in network namespaces, as a command (needs root).
//!
//! - `vdmm-lab demo`: builds the lab (correspondent ── gwA ══ underlay ══ gwB ── host,
//!   gateways programmed through `vdmm-ctl`), once with an IPv4 and once with an IPv6
//!   underlay; for each of the four tunnel kinds sends pings, an exact UDP burst and a TCP
//!   transfer from the correspondent to the host, and prints a table of what it saw:
//!   packets sent and received, encap/decap counters of both gateways, what a capture on
//!   the underlay contained, TCP throughput.
//! - `vdmm-lab bench-forward`: 64-byte UDP from the correspondent (trafgen), counted at
//!   the host, through the XDP tunnel gateways versus plain kernel IP forwarding (no XDP,
//!   no tunnel) on the same topology in the same run; median packets/s of several runs,
//!   the ratio, and PASS/FAIL against the target (>= 3x the kernel's).
//! - `vdmm-lab handover`: the handover scenarios ([`vdmm_tests::handover_lab`]): in the
//!   vAP lab and in the break-before-make baseline lab, a client walks ap1 -> ap2 -> ap3
//!   (and a VM migrates) under a UDP stream and a TCP transfer; prints a table per
//!   handover, checks the targets, writes an SVG chart. `demo` runs it after the tunnel
//!   kinds (unless `--no-handover`).
//! - `vdmm-lab alb`: the balancer scenario ([`vdmm_tests::handover_lab::alb`]): the vAP
//!   lab with extra stations on ap1 under traffic, one `vdmm-ctl alb rebalance --apply`;
//!   prints the moves, each AP host's load before and after from its per-vAP counters,
//!   and the targets. `demo` runs it last (unless `--no-alb`).
//! - `vdmm-lab cleanup`: removes namespaces and pin mounts a killed lab left behind.
//!
//! vdmm-ctl is taken from `$VDMM_CTL`, else from next to this executable.
//!
//! Exit codes: 0 success (demo: every check held; bench: PASS), 1 error (lab could not
//! be built, or a demo check failed), 2 usage, 3 bench ran but missed its target,
//! 130 interrupted (the lab is cleaned up first).

use std::{
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Command, ExitCode, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use vdmm_tests::lab::{
    self, CORR_IF, CORR_V4, Family, GWA_CORR_IF, Gw, HOST_IF, HOST_V4, Lab, LabOptions, Plane,
    gwa_underlay, gwb_underlay, host_addr, kind_name, rawxdp,
};

#[derive(Parser)]
#[command(
    name = "vdmm-lab",
    about = "vdmm tunnel lab in network namespaces (needs root)",
    after_help = "Exit codes: 0 success (demo: every check held; bench-forward: PASS), 1 error \
                  or a failed demo check, 2 usage, 3 bench-forward missed its target, 130 \
                  interrupted (the lab is removed first)."
)]
struct Cli {
    /// vdmm-ctl binary (default: $VDMM_CTL, else next to this executable).
    #[arg(long, global = true)]
    ctl: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Underlay {
    V4,
    V6,
    Both,
}

/// Where the benchmark's 64-byte frames come from.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Source {
    /// The kernel's XDP live-frame generator: frames reach gwA as XDP frames, as from a
    /// NIC driver (what xdp-trafficgen does; xdp-trafficgen itself fails to start here).
    Xdp,
    /// trafgen through an AF_PACKET socket: frames reach gwA as socket buffers, which veth
    /// copies for XDP.
    Trafgen,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send traffic through each tunnel kind and print what was seen.
    Demo {
        /// Underlay families to build labs for.
        #[arg(long, value_enum, default_value = "both")]
        underlay: Underlay,
        /// Pings per kind.
        #[arg(long, default_value_t = 5)]
        pings: u32,
        /// UDP datagrams per kind (one direction, counted exactly).
        #[arg(long, default_value_t = 100)]
        udp: u64,
        /// Bytes of the TCP transfer per kind.
        #[arg(long, default_value_t = 10 * 1024 * 1024)]
        tcp_bytes: u64,
        /// Print every gateway counter that moved, per kind.
        #[arg(long)]
        verbose: bool,
        /// Skip the tunnel kinds (only the handover scenarios).
        #[arg(long, conflicts_with = "no_handover")]
        no_tunnels: bool,
        /// Skip the handover scenarios (only the tunnel kinds).
        #[arg(long)]
        no_handover: bool,
        /// Skip the balancer scenario.
        #[arg(long)]
        no_alb: bool,
        #[command(flatten)]
        handover: HandoverArgs,
    },
    /// Handover scenarios: vAP make-before-break vs the break-before-make baseline.
    Handover {
        #[command(flatten)]
        args: HandoverArgs,
        /// Exit 3 when a target is missed (the benchmark).
        #[arg(long)]
        strict: bool,
    },
    /// The balancer scenario: stations piled on ap1, ALB moves them by vAP handovers.
    Alb {
        /// Extra stations on ap1 (besides the handover lab's client and VM).
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(2..=50))]
        stations: u16,
    },
    /// Forwarding rate: XDP tunnel gateways vs kernel IP forwarding (64-byte UDP).
    BenchForward {
        /// Measurements per plane (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Traffic source.
        #[arg(long, value_enum, default_value = "xdp")]
        source: Source,
        /// Threaded NAPI on the receiving veth ends (forwarding can use the other CPU).
        #[arg(long)]
        threaded: bool,
        /// Sender threads / trafgen processes.
        #[arg(long, default_value_t = 1)]
        senders: u32,
        /// XDP attach mode for vdmm-ctl load.
        #[arg(long, default_value = "native")]
        mode: String,
        /// Required ratio XDP / kernel for PASS.
        #[arg(long, default_value_t = 3.0)]
        target: f64,
    },
    /// Build the tunnel lab and keep it until Ctrl-C (for poking at it by hand).
    Up {
        /// Underlay family.
        #[arg(long, value_enum, default_value = "v4")]
        underlay: Underlay,
        /// Plain kernel forwarding instead of the XDP tunnel (the benchmark baseline).
        #[arg(long)]
        kernel: bool,
        /// Connect the gateways directly (no switch namespace, no rogue), as the benchmark.
        #[arg(long)]
        direct: bool,
    },
    /// Build the handover lab, attach the client and the VM to ap1, and keep it until
    /// Ctrl-C (for poking at it by hand).
    HandoverUp {
        /// Baseline (break-before-make) lab instead of the vAP lab.
        #[arg(long)]
        baseline: bool,
    },
    /// Remove namespaces and pin mounts left by a lab that was killed.
    Cleanup,
}

/// Options of the handover scenarios.
#[derive(clap::Args, Clone, Debug)]
struct HandoverArgs {
    /// Which walks to run.
    #[arg(long, value_enum, default_value = "both")]
    walks: Walks,
    /// Datagrams per second of the client's UDP stream.
    #[arg(long, default_value_t = 10_000)]
    rate: u32,
    /// Milliseconds between handovers.
    #[arg(long, default_value_t = 1500)]
    dwell_ms: u64,
    /// Grace period of `vap move` (ms).
    #[arg(long, default_value_t = 200)]
    grace_ms: u64,
    /// No VM migration.
    #[arg(long)]
    no_vm: bool,
    /// Delete the neighbour entries of the paths each vAP move opens just before it (as
    /// the kernel's garbage collector may have): the mover must resolve them.
    #[arg(long)]
    cold_paths: bool,
    /// Where to write the SVG chart (default: handover-demo.svg in the target directory).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Walks {
    Both,
    Vap,
    Baseline,
}

/// Runs the handover scenarios; `Ok(true)` when every target held.
fn handover(ctl: Option<PathBuf>, a: &HandoverArgs) -> Result<bool> {
    use vdmm_tests::handover_lab::{demo, scenario::WalkOptions};
    let plot = match &a.plot {
        Some(p) => p.clone(),
        None => {
            // target/<profile>/vdmm-lab -> target/
            let exe = std::env::current_exe()?;
            let dir = exe
                .parent()
                .and_then(|d| d.parent())
                .map(std::path::Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            dir.join("handover-demo.svg")
        }
    };
    let which = match a.walks {
        Walks::Both => demo::Which::Both,
        Walks::Vap => demo::Which::VapOnly,
        Walks::Baseline => demo::Which::BaselineOnly,
    };
    let opts = WalkOptions {
        rate: a.rate,
        dwell: Duration::from_millis(a.dwell_ms),
        grace_ms: a.grace_ms,
        vm: !a.no_vm,
        cold_paths: a.cold_paths,
    };
    demo::run(ctl, which, &opts, &plot)
}

/// Runs the balancer scenario; `Ok(true)` when every target held.
fn alb(ctl: Option<PathBuf>, stations: usize) -> Result<bool> {
    vdmm_tests::handover_lab::demo::run_alb(ctl, stations)
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    install_signal_handlers();
    let res = match cli.cmd {
        Cmd::Demo {
            underlay,
            pings,
            udp,
            tcp_bytes,
            verbose,
            no_tunnels,
            no_handover,
            no_alb,
            handover: h,
        } => {
            let tunnels = if no_tunnels {
                Ok(Outcome::Ok)
            } else {
                demo(cli.ctl.clone(), underlay, pings, udp, tcp_bytes, verbose)
            };
            let handovers = match tunnels {
                Ok(t) if !no_handover => match handover(cli.ctl.clone(), &h) {
                    Ok(true) => Ok(t),
                    Ok(false) => Ok(Outcome::ChecksFailed),
                    Err(e) => Err(e),
                },
                other => other,
            };
            match handovers {
                Ok(t) if !no_alb => {
                    alb(cli.ctl, 6).map(|ok| if ok { t } else { Outcome::ChecksFailed })
                }
                other => other,
            }
        }
        Cmd::Alb { stations } => alb(cli.ctl, stations as usize).map(|ok| {
            if ok {
                Outcome::Ok
            } else {
                Outcome::ChecksFailed
            }
        }),
        Cmd::Handover { args, strict } => handover(cli.ctl, &args).map(|ok| match (ok, strict) {
            (true, _) => Outcome::Ok,
            (false, true) => Outcome::TargetMissed,
            (false, false) => Outcome::ChecksFailed,
        }),
        Cmd::BenchForward {
            runs,
            seconds,
            source,
            threaded,
            senders,
            mode,
            target,
        } => bench_forward(
            cli.ctl, runs, seconds, source, threaded, senders, mode, target,
        ),
        Cmd::Up {
            underlay,
            kernel,
            direct,
        } => up(cli.ctl, underlay, kernel, direct),
        Cmd::HandoverUp { baseline } => handover_up(cli.ctl, baseline),
        Cmd::Cleanup => lab::cleanup_leftovers().map(|removed| {
            for r in &removed {
                println!("removed {r}");
            }
            if removed.is_empty() {
                println!("nothing to clean up");
            }
            Outcome::Ok
        }),
    };
    match res {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::ChecksFailed) => ExitCode::from(1),
        Ok(Outcome::TargetMissed) => ExitCode::from(3),
        Err(e) => {
            if INTERRUPTED.load(Ordering::SeqCst) {
                eprintln!("vdmm-lab: interrupted; lab removed");
                ExitCode::from(130)
            } else {
                eprintln!("vdmm-lab: error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

fn handover_up(ctl: Option<PathBuf>, baseline: bool) -> Result<Outcome> {
    use vdmm_tests::handover_lab::{HandoverLab, Mobility, scenario};
    let mobility = if baseline {
        Mobility::Baseline
    } else {
        Mobility::Vap
    };
    let lab = HandoverLab::build(mobility, ctl)?;
    let _air = scenario::attach_at_ap1(&lab)?;
    println!(
        "handover lab is up: correspondent {}, anchors {} {}, AP hosts {}, air {}, client {}, vm {}",
        lab.corr.name(),
        lab.gw1.name(),
        lab.gw2.name(),
        lab.aps
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(" "),
        lab.air.name(),
        lab.client.name(),
        lab.vm.name()
    );
    for a in &lab.agents {
        println!(
            "  agent of {}: vdmm-ctl --netns {} --pin-dir {} --agent-socket {} ...",
            a.netns,
            a.netns,
            a.pin_dir.display(),
            a.socket.display()
        );
    }
    println!(
        "cluster file {}; vdmm-ctl --netns NS --pin-dir /run/vdmm/NS ...; Ctrl-C removes it",
        lab.cluster_file().display()
    );
    while !INTERRUPTED.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(200));
    }
    Ok(Outcome::Ok)
}

enum Outcome {
    Ok,
    ChecksFailed,
    TargetMissed,
}

fn up(ctl: Option<PathBuf>, underlay: Underlay, kernel: bool, direct: bool) -> Result<Outcome> {
    let ul = match underlay {
        Underlay::V6 => Family::V6,
        _ => Family::V4,
    };
    let mut opts = LabOptions::tunnel(ul);
    opts.ctl = ctl;
    opts.switch = !direct;
    if kernel {
        opts.plane = Plane::KernelRouting;
    }
    let lab = Lab::build(opts)?;
    println!("lab is up ({ul} underlay); Ctrl-C removes it");
    for (role, ns) in [
        ("correspondent", &lab.corr),
        ("gwA", &lab.gwa),
        ("gwB", &lab.gwb),
        ("host", &lab.host),
    ] {
        println!("  {role:<14} ip netns exec {}", ns.name());
    }
    if let Some(sw) = &lab.switch {
        println!("  {:<14} ip netns exec {}", "underlay", sw.name());
    }
    if let Some(r) = &lab.rogue {
        println!("  {:<14} ip netns exec {}", "rogue", r.name());
    }
    for g in [Gw::A, Gw::B] {
        if lab.opts.plane != Plane::Tunnel {
            break;
        }
        println!(
            "  {} vdmm-ctl: {} --pin-dir {} --netns {} stats",
            g.name(),
            lab.ctl.display(),
            lab.pin_dir(g).display(),
            lab.gw(g).name()
        );
    }
    while !INTERRUPTED.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(200));
    }
    drop(lab);
    println!("lab removed");
    Ok(Outcome::Ok)
}

// ---------------------------------------------------------------------------------------
// demo
// ---------------------------------------------------------------------------------------

struct Row {
    kind: &'static str,
    ping: (u64, u64),
    udp: (u64, u64),
    /// (gwA encap, gwB decap) for corr -> host, (gwB encap, gwA decap) for host -> corr
    forward: (u64, u64),
    back: (u64, u64),
    too_big: u64,
    underlay: String,
    leaks: usize,
    tcp: Result<lab::TcpResult, String>,
    problems: Vec<String>,
}

fn demo(
    ctl: Option<PathBuf>,
    underlay: Underlay,
    pings: u32,
    udp: u64,
    tcp_bytes: u64,
    verbose: bool,
) -> Result<Outcome> {
    let families: &[Family] = match underlay {
        Underlay::V4 => &[Family::V4],
        Underlay::V6 => &[Family::V6],
        Underlay::Both => &Family::BOTH,
    };
    println!("vdmm tunnel lab: correspondent -- gwA == underlay == gwB -- host");
    println!(
        "  corr {} {}   host {} {}   underlay {}/{} (v4) {}/{} (v6)",
        lab::CORR_V4,
        lab::CORR_V6,
        lab::HOST_V4,
        lab::HOST_V6,
        lab::GWA_UL_V4,
        lab::GWB_UL_V4,
        lab::GWA_UL_V6,
        lab::GWB_UL_V6
    );
    let mut rows = vec![];
    let mut nonpeer: Vec<(String, bool)> = vec![];
    for &ul in families {
        check_interrupt()?;
        println!("\n== building the lab with an {ul} underlay ==");
        let mut opts = LabOptions::tunnel(ul);
        opts.ctl = ctl.clone();
        let t = Instant::now();
        let lab = Lab::build(opts)?;
        println!(
            "   built in {:.1}s: namespaces {}, {}, {}, {}; vdmm XDP on {}/{} and {}/{}",
            t.elapsed().as_secs_f64(),
            lab.corr.name(),
            lab.gwa.name(),
            lab.gwb.name(),
            lab.host.name(),
            lab::GWA_CORR_IF,
            lab::GWA_UL_IF,
            lab::GWB_HOST_IF,
            lab::GWB_UL_IF
        );
        for (g, _) in [(Gw::A, 0), (Gw::B, 1)] {
            if let Ok(b) = lab.ctl(g, &["binding", "list"]) {
                println!("   {} bindings:", g.name());
                for l in b.lines() {
                    println!("     {l}");
                }
            }
        }
        nonpeer.push(demo_non_peer(&lab, ul)?);
        for inner in Family::BOTH {
            check_interrupt()?;
            let kind = kind_name(inner, ul);
            println!(
                "-- {kind}: {inner} from {} to {} over the {ul} underlay",
                lab::corr_addr(inner),
                host_addr(inner)
            );
            let row = demo_kind(&lab, ul, inner, pings, udp, tcp_bytes, verbose)?;
            rows.push(row);
        }
        println!("   removing the {ul}-underlay lab");
    }
    print_demo_table(&rows);
    println!();
    for (line, _) in &nonpeer {
        println!("{line}");
    }
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.problems.is_empty()).collect();
    let nonpeer_ok = nonpeer.iter().all(|(_, ok)| *ok);
    if failed.is_empty() && nonpeer_ok {
        println!(
            "\nall {} tunnel kinds carried ping, UDP and TCP; the underlay carried only tunnel \
             packets; tunnel packets from a non-peer were dropped.",
            rows.len()
        );
        Ok(Outcome::Ok)
    } else {
        println!("\nPROBLEMS:");
        for (line, ok) in &nonpeer {
            if !ok {
                println!("  {line}");
            }
        }
        for r in failed {
            for p in &r.problems {
                println!("  {}: {p}", r.kind);
            }
        }
        Ok(Outcome::ChecksFailed)
    }
}

/// A rogue on the underlay (not a peer) sends 5 IPv4-in-tunnel packets to gwB's endpoint;
/// returns the line to print and whether gwB dropped all 5 as not_peer and none arrived.
fn demo_non_peer(lab: &Lab, ul: Family) -> Result<(String, bool)> {
    let Some(rogue) = lab.rogue.as_ref() else {
        return Ok(("non-peer check skipped (no underlay switch)".into(), true));
    };
    let kind = kind_name(Family::V4, ul);
    let port = lab::next_port();
    let b0 = lab.stats(Gw::B)?;
    let sink = lab::udp_sink(&lab.host, HOST_V4.into(), port, 1, Duration::from_secs(1))?;
    let packet = lab::udp_packet(CORR_V4.into(), HOST_V4.into(), 40000, port, b"rogue");
    lab::send_raw_tunnel(rogue, gwb_underlay(ul), packet, 5)?;
    let (got, _) = lab::join(sink)?;
    let db = lab.stats(Gw::B)?.since(&b0);
    let dropped = db.get("not_peer", kind, "drop");
    let ok = dropped == 5 && got == 0;
    Ok((
        format!(
            "non-peer ({ul} underlay): rogue {} sent 5 {kind} packets to gwB {}: {dropped} dropped \
             as not_peer, {got} reached the host{}",
            lab::rogue_underlay(ul),
            gwb_underlay(ul),
            if ok { "" } else { "  <- WRONG" }
        ),
        ok,
    ))
}

fn demo_kind(
    lab: &Lab,
    ul: Family,
    inner: Family,
    pings: u32,
    udp: u64,
    tcp_bytes: u64,
    verbose: bool,
) -> Result<Row> {
    let kind = kind_name(inner, ul);
    let dst = host_addr(inner);
    let mut problems = vec![];
    let capture = lab.capture_underlay(Gw::A)?;
    let (a0, b0) = (lab.stats(Gw::A)?, lab.stats(Gw::B)?);

    let p = lab::ping(&lab.corr, dst, pings, None)?;
    if p.received != p.sent {
        problems.push(format!("ping: {} of {} answered", p.received, p.sent));
    }
    check_interrupt()?;
    let got = lab::udp_burst(
        &lab.corr,
        &lab.host,
        dst,
        udp,
        64,
        Duration::from_micros(500),
    )?;
    if got != udp {
        problems.push(format!("UDP: {got} of {udp} datagrams arrived"));
    }
    check_interrupt()?;
    let tcp = lab::tcp_transfer(
        &lab.corr,
        &lab.host,
        dst,
        tcp_bytes,
        Duration::from_secs(15),
    )
    .map_err(|e| format!("{e:#}"));
    match &tcp {
        Ok(t) if t.bytes != tcp_bytes => {
            problems.push(format!("TCP: {} of {tcp_bytes} bytes", t.bytes))
        }
        Ok(_) => {}
        Err(e) => problems.push(format!("TCP: {e}")),
    }
    check_interrupt()?;
    let da = lab.stats(Gw::A)?.since(&a0).tunnel_only();
    let db = lab.stats(Gw::B)?.since(&b0).tunnel_only();
    let cap = capture.stop()?;
    let leaks = cap
        .not_tunnelled(&[gwa_underlay(ul), gwb_underlay(ul)])
        .len();
    if leaks > 0 {
        problems.push(format!(
            "{leaks} non-tunnel packets on the underlay ({})",
            cap.brief()
        ));
    }
    let n = pings as u64;
    let forward = (da.reason_kind("encap", kind), db.reason_kind("decap", kind));
    let back = (db.reason_kind("encap", kind), da.reason_kind("decap", kind));
    if forward.0 < n + udp || forward.1 < n + udp {
        problems.push(format!(
            "counters: corr->host encap {} / decap {}, expected at least {}",
            forward.0,
            forward.1,
            n + udp
        ));
    }
    let too_big = da.reason_kind("too_big", kind);
    let drops: u64 =
        da.0.iter()
            .chain(db.0.iter())
            .filter(|((_, _, a), _)| a == "drop" || a == "aborted")
            .map(|(_, v)| v.0)
            .sum();
    if drops > 0 {
        problems.push(format!("{drops} tunnel packets dropped by the gateways"));
    }
    if verbose || !problems.is_empty() {
        println!("   gwA counters that moved:\n{da}   gwB counters that moved:\n{db}");
    }
    Ok(Row {
        kind,
        ping: (p.sent, p.received),
        udp: (udp, got),
        forward,
        back,
        too_big,
        underlay: cap.brief(),
        leaks,
        tcp,
        problems,
    })
}

fn print_demo_table(rows: &[Row]) {
    println!();
    println!(
        "{:<5} | {:>9} | {:>9} | {:>17} | {:>17} | {:>7} | {:>16} | underlay capture at gwA's port (frames)",
        "kind", "ping", "udp", "c->h encap/decap", "h->c encap/decap", "too_big", "TCP",
    );
    println!("{}", "-".repeat(140));
    for r in rows {
        let tcp = match &r.tcp {
            Ok(t) => format!(
                "{:.0} MiB {:.0} Mb/s",
                t.bytes as f64 / (1024.0 * 1024.0),
                t.mbit_per_s()
            ),
            Err(_) => "FAILED".to_string(),
        };
        println!(
            "{:<5} | {:>9} | {:>9} | {:>17} | {:>17} | {:>7} | {:>16} | {}{}",
            r.kind,
            format!("{}/{}", r.ping.1, r.ping.0),
            format!("{}/{}", r.udp.1, r.udp.0),
            format!("{}/{}", r.forward.0, r.forward.1),
            format!("{}/{}", r.back.0, r.back.1),
            r.too_big,
            tcp,
            r.underlay,
            if r.leaks > 0 { "  <- LEAKS" } else { "" }
        );
    }
    println!(
        "\nping/udp: received/sent. c->h: gwA encap / gwB decap (correspondent to host); \
         h->c: gwB encap / gwA decap.\n\
         too_big: gwA answered a too-large packet with ICMP fragmentation-needed/packet-too-big \
         (path MTU discovery of the TCP sender)."
    );
}

// ---------------------------------------------------------------------------------------
// bench-forward
// ---------------------------------------------------------------------------------------

fn mac_of(ns: &vdmm_tests::netns::Netns, dev: &str) -> Result<String> {
    let out = ns.exec("cat", &[&format!("/sys/class/net/{dev}/address")])?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One measurement: the source floods for `seconds`; packets/s at the host (and offered).
struct Sample {
    host_pps: f64,
    offered_pps: f64,
    decap_pps: Option<f64>,
}

/// The traffic source of a measurement.
enum Flood<'a> {
    /// trafgen with this configuration file.
    Trafgen(&'a std::path::Path),
    /// The kernel's XDP live-frame generator with this frame.
    Xdp(&'a [u8]),
}

/// Samples the host's received packets (and gwB's decap counter) over `seconds` while a
/// flood runs; `offered` reads the source's packet count.
fn sample(lab: &Lab, warm: f64, seconds: f64, offered: &dyn Fn() -> Result<u64>) -> Result<Sample> {
    // Let the flood reach a steady state before sampling.
    thread::sleep(Duration::from_secs_f64(warm));
    let tunnel = lab.opts.plane == Plane::Tunnel;
    let d0 = if tunnel {
        Some(lab.stats(Gw::B)?)
    } else {
        None
    };
    let h0 = Lab::link_stats(&lab.host, HOST_IF)?;
    let s0 = offered()?;
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs_f64(seconds));
    let h1 = Lab::link_stats(&lab.host, HOST_IF)?;
    let s1 = offered()?;
    let dt = t0.elapsed().as_secs_f64();
    let decap_pps = match d0 {
        Some(d0) => {
            let d = lab.stats(Gw::B)?.since(&d0);
            Some(d.reason_kind("decap", "4in4") as f64 / t0.elapsed().as_secs_f64())
        }
        None => None,
    };
    Ok(Sample {
        host_pps: (h1.rx_packets - h0.rx_packets) as f64 / dt,
        offered_pps: (s1 - s0) as f64 / dt,
        decap_pps,
    })
}

fn measure(lab: &Lab, flood: &Flood, seconds: f64, senders: u32) -> Result<Sample> {
    match flood {
        Flood::Trafgen(cfg) => measure_trafgen(lab, cfg, seconds, senders),
        Flood::Xdp(frame) => measure_xdp(lab, frame, seconds, senders),
    }
}

/// Floods with the XDP generator, unpaced (`rate` None: as fast as it goes) or paced to
/// `rate` packets/s in total.
fn measure_xdp(lab: &Lab, frame: &[u8], seconds: f64, senders: u32) -> Result<Sample> {
    use std::sync::{Arc, atomic::AtomicU64};
    const CHUNK: u32 = 1 << 15;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut threads = vec![];
    for _ in 0..senders {
        let (stop, sent, frame) = (stop.clone(), sent.clone(), frame.to_vec());
        threads.push(lab::in_netns(&lab.corr, move || {
            let prog = rawxdp::load_frame_tx_program(&frame, "lab_trafficgen")?;
            let idx = rawxdp::ifindex(CORR_IF)?;
            while !stop.load(Ordering::Relaxed) {
                // A signal (any, e.g. from a child exiting) cuts a run short with EINTR;
                // only whole runs are counted as offered.
                if rawxdp::generate(&prog, idx, &frame, CHUNK)? {
                    sent.fetch_add(CHUNK as u64, Ordering::Relaxed);
                }
            }
            Ok(())
        }));
    }
    let result = sample(lab, 0.7, seconds, &|| Ok(sent.load(Ordering::Relaxed)));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        lab::join(t).context("XDP traffic generator")?;
    }
    result
}

fn measure_trafgen(lab: &Lab, cfg: &std::path::Path, seconds: f64, senders: u32) -> Result<Sample> {
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.corr.name(),
            "trafgen",
            "-o",
            CORR_IF,
            "-c",
        ])
        .arg(cfg)
        .args(["-P", &senders.to_string(), "--no-sock-mem", "-Q", "-C"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group: trafgen forks workers, and all of them must stop.
        .process_group(0)
        .spawn()
        .context("spawn trafgen")?;
    let result = (|| {
        thread::sleep(Duration::from_millis(100));
        if let Some(st) = child.try_wait()? {
            bail!("trafgen exited early ({st})");
        }
        sample(lab, 0.6, seconds, &|| {
            Ok(Lab::link_stats(&lab.corr, CORR_IF)?.tx_packets)
        })
    })();
    let pgid = child.id() as i32;
    unsafe { libc::kill(-pgid, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    if result.is_err() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        return result.with_context(|| format!("trafgen: {}", err.trim()));
    }
    result
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("MAC address {s:?}"))?;
    v.try_into()
        .map_err(|_| anyhow::anyhow!("MAC address {s:?}"))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[allow(clippy::too_many_arguments)]
fn bench_forward(
    ctl: Option<PathBuf>,
    runs: u32,
    seconds: f64,
    source: Source,
    threaded: bool,
    senders: u32,
    mode: String,
    target: f64,
) -> Result<Outcome> {
    if runs == 0 || seconds <= 0.0 {
        bail!("--runs and --seconds must be positive");
    }
    let (src_text, sink_text) = match source {
        Source::Xdp => (
            "the kernel's XDP frame generator (BPF_PROG_TEST_RUN live frames, XDP_TX out of the \
             correspondent's veth, as xdp-trafficgen does)",
            "counted by the host's veth, which drops them at XDP",
        ),
        Source::Trafgen => (
            "trafgen (AF_PACKET, socket buffers)",
            "counted by the host's veth and passed to its stack",
        ),
    };
    println!(
        "forwarding rate: 64-byte UDP frames (60 bytes + 4 FCS) from the correspondent, {senders} \
         sender(s): {src_text};\n{sink_text}.\n\
         tunnel = vdmm XDP ({mode}) on both interfaces of both gateways: 4in4 encap on gwA, decap \
         on gwB, over a direct gateway-to-gateway veth;\n\
         kernel = the same topology without XDP: plain IPv4 forwarding with routes, no tunnel.\n\
         {runs} runs of {seconds}s each, alternating; medians compared."
    );
    println!(
        "rate: packets/s arriving at the host while the source sends as fast as it can (the \
         source shares the CPU with the forwarding path, whose receive processing runs after \
         each batch it sends, so it offers about what gets forwarded; loss = offered - arrived)."
    );
    let mk = |plane| -> Result<Lab> {
        Lab::build(LabOptions {
            underlay: Family::V4,
            plane,
            switch: false,
            xdp_mode: Some(mode.clone()),
            ctl: ctl.clone(),
            sink_drop: source == Source::Xdp,
            threaded_napi: threaded,
        })
    };
    let kernel_lab = mk(Plane::KernelRouting).context("building the kernel-forwarding lab")?;
    let tunnel_lab = mk(Plane::Tunnel).context("building the XDP tunnel lab")?;
    // Prove both paths deliver before timing them (counted at the host's interface, as
    // the measurement is: with the XDP sink no socket sees them).
    for (name, l) in [("kernel", &kernel_lab), ("tunnel", &tunnel_lab)] {
        let before = Lab::link_stats(&l.host, HOST_IF)?.rx_packets;
        let sender = lab::in_netns(&l.corr, || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
            for _ in 0..20 {
                s.send_to(&[0u8; 18], (HOST_V4, 9))?;
                thread::sleep(Duration::from_millis(2));
            }
            Ok(())
        });
        lab::join(sender)?;
        thread::sleep(Duration::from_millis(200));
        let got = Lab::link_stats(&l.host, HOST_IF)?.rx_packets - before;
        if got < 20 {
            bail!("{name} lab delivered {got} of 20 test datagrams; not benchmarking");
        }
    }
    let dir = std::env::temp_dir().join(format!("vdmm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cfg_for = |l: &Lab, name: &str| -> Result<PathBuf> {
        let da = mac_of(&l.gwa, GWA_CORR_IF)?;
        let sa = mac_of(&l.corr, CORR_IF)?;
        // 14 Ethernet + 20 IPv4 + 8 UDP + 18 payload = 60 bytes (+ 4 FCS on a wire = 64).
        let text = format!(
            "{{ eth(da={da}, sa={sa}), ipv4(saddr={CORR_V4}, daddr={HOST_V4}, ttl=64, df), \
             udp(sp=4000, dp=9), fill(0x00, 18) }}\n"
        );
        let p = dir.join(format!("{name}.cfg"));
        std::fs::write(&p, text)?;
        Ok(p)
    };
    let frame_for = |l: &Lab| -> Result<Vec<u8>> {
        let da = parse_mac(&mac_of(&l.gwa, GWA_CORR_IF)?)?;
        let sa = parse_mac(&mac_of(&l.corr, CORR_IF)?)?;
        let mut f = vec![];
        etherparse::PacketBuilder::ethernet2(sa, da)
            .ipv4(CORR_V4.octets(), HOST_V4.octets(), 64)
            .udp(4000, 9)
            .write(&mut f, &[0u8; 18])?;
        Ok(f)
    };
    let (kcfg, tcfg) = (
        cfg_for(&kernel_lab, "kernel")?,
        cfg_for(&tunnel_lab, "tunnel")?,
    );
    let (kframe, tframe) = (frame_for(&kernel_lab)?, frame_for(&tunnel_lab)?);
    let (kflood, tflood) = match source {
        Source::Trafgen => (Flood::Trafgen(&kcfg), Flood::Trafgen(&tcfg)),
        Source::Xdp => (Flood::Xdp(&kframe), Flood::Xdp(&tframe)),
    };

    let (mut k, mut x) = (vec![], vec![]);
    println!(
        "\n{:>3}  {:>14} {:>14}   {:>14} {:>14} {:>14}",
        "run", "kernel pps", "(offered)", "tunnel pps", "(offered)", "(gwB decap/s)"
    );
    for r in 1..=runs {
        check_interrupt()?;
        let ks = measure(&kernel_lab, &kflood, seconds, senders)?;
        check_interrupt()?;
        let xs = measure(&tunnel_lab, &tflood, seconds, senders)?;
        println!(
            "{r:>3}  {:>14.0} {:>14.0}   {:>14.0} {:>14.0} {:>14.0}",
            ks.host_pps,
            ks.offered_pps,
            xs.host_pps,
            xs.offered_pps,
            xs.decap_pps.unwrap_or(0.0)
        );
        k.push(ks.host_pps);
        x.push(xs.host_pps);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (km, xm) = (median(&mut k), median(&mut x));
    let ratio = if km > 0.0 { xm / km } else { f64::INFINITY };
    let pass = ratio >= target;
    println!("\n| path                              | median pps | ratio |");
    println!("|-----------------------------------|-----------:|------:|");
    println!("| kernel IPv4 forwarding (no XDP)   | {km:>10.0} |  1.00 |");
    println!("| vdmm XDP tunnel (4in4 encap+decap)| {xm:>10.0} | {ratio:>5.2} |");
    println!(
        "\nresult: {} (target: tunnel >= {target:.1}x kernel; measured {ratio:.2}x)",
        if pass { "PASS" } else { "FAIL" }
    );
    Ok(if pass {
        Outcome::Ok
    } else {
        Outcome::TargetMissed
    })
}
