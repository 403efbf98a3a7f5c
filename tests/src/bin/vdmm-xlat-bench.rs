//! vdmm-xlat-bench: translated packets per second between network namespaces, vdmm's XDP
//! translator against TAYGA (a userspace NAT64 on a tun device) on the same topology in
//! the same run (issue #3, target: at least 10x TAYGA).
//!
//! Topology (`vdmm_tests::xlat_lab`): IPv6 host h6 2001:db8:1c0:2:21:: -- translator
//! namespace (xl6 | xl4) -- IPv4 host h4 198.51.100.2. Both translators use the /96
//! prefix 2001:db8:64::/96 (not 64:ff9b::/96, under which TAYGA refuses the
//! documentation address 198.51.100.2 as non-global, RFC 6052 section 3.1) and map the IPv6 host explicitly to 192.0.2.33 (vdmm: an EAMT
//! entry /128 <-> /32 through `vdmm-ctl natpt`; TAYGA: `map`, plus the dynamic pool
//! 192.0.2.128/25 it requires).
//!
//! - vdmm: `vdmm_xdp` on xl6 and xl4 (vdmm-ctl load), translation in XDP, XDP_REDIRECT
//!   out of xl4.
//! - TAYGA: no XDP on the translator; the kernel routes 2001:db8:64::/96 into TAYGA's tun
//!   device `nat64` (`tayga --mktun`), TAYGA translates in userspace and writes the IPv4
//!   packet back, the kernel forwards it out of xl4.
//!
//! Source: 64-byte UDP frames 2001:db8:1c0:2:21:: -> 2001:db8:64::198.51.100.2 from the
//! kernel's XDP live-frame generator on h6 (frames reach the translator as XDP frames, as
//! from a NIC driver). Sink: an XDP program on h4 that drops IPv4; the rate is h4's
//! received packets per second. Each translator is measured `--runs` times for
//! `--seconds` after a warm-up; the median is reported. Exit status: 0 when vdmm reaches
//! the target ratio, 3 when it ran but missed it, 1 on errors.

use std::{
    fs,
    net::IpAddr,
    process::{Child, Command, ExitCode, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Parser;
use vdmm_tests::{
    lab::{self, Lab, rawxdp, udp_packet},
    netns::require_root,
    packet::{ETH_P_IPV6, ethernet},
    xlat_lab::*,
};

#[derive(Parser)]
#[command(
    name = "vdmm-xlat-bench",
    about = "translated packets/s between namespaces: vdmm XDP vs TAYGA (same /96 prefix, same topology)"
)]
struct Cli {
    /// Measurements per translator; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Target: vdmm's rate at least this many times TAYGA's.
    #[arg(long, default_value_t = 10.0)]
    target: f64,
    /// Generator threads on the IPv6 host (default: one per CPU). Measured here (2 CPUs):
    /// vdmm delivers about the same with one or two, TAYGA more with two (its tun queue
    /// stays full), so the default is the comparison most favourable to TAYGA.
    #[arg(long)]
    senders: Option<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

struct Sample {
    rx_pps: f64,
    offered_pps: f64,
}

/// The 64-byte test frame: UDP 2001:db8:1c0:2:21::.5000 -> 2001:db8:64::198.51.100.2.9, to
/// the translator's MAC.
fn frame() -> Vec<u8> {
    let src: IpAddr = HOST6.parse().unwrap();
    let dst: IpAddr = HOST4_AS_V6_96.parse().unwrap();
    // 14 + 40 + 8 + 2 = 64 bytes.
    let ip = udp_packet(src, dst, 5000, 9, &[0xab, 0xcd]);
    let f = ethernet(XL6_MAC, HOST6_MAC, ETH_P_IPV6, &ip);
    assert_eq!(f.len(), 64);
    f
}

/// Attaches the IPv4 drop sink to h4; detached when the returned fds are dropped.
fn attach_sink(lab: &XlatLab) -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    lab::join(lab::in_netns(&lab.host4, || {
        let prog = rawxdp::load_ipv4_sink_program("xlat_sink")?;
        let link = rawxdp::attach(&prog, rawxdp::ifindex(HOST4_IF)?)?;
        Ok((prog, link))
    }))
    .context("attaching the sink on the IPv4 host")
}

fn rx_packets(lab: &XlatLab) -> Result<u64> {
    Ok(Lab::link_stats(&lab.host4, HOST4_IF)?.rx_packets)
}

/// One measurement: flood from h6 for warm-up + `seconds`, count what h4 received.
fn measure(lab: &XlatLab, seconds: f64, senders: u32) -> Result<Sample> {
    const CHUNK: u32 = 1 << 14;
    let frame = frame();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut threads = vec![];
    for _ in 0..senders {
        let (stop, sent, frame) = (stop.clone(), sent.clone(), frame.clone());
        threads.push(lab::in_netns(&lab.host6, move || {
            let prog = rawxdp::load_frame_tx_program(&frame, "xlat_gen")?;
            let idx = rawxdp::ifindex(HOST6_IF)?;
            while !stop.load(Ordering::Relaxed) {
                if rawxdp::generate(&prog, idx, &frame, CHUNK)? {
                    sent.fetch_add(CHUNK as u64, Ordering::Relaxed);
                }
            }
            Ok(())
        }));
    }
    let result = (|| {
        thread::sleep(Duration::from_millis(700));
        let r0 = rx_packets(lab)?;
        let s0 = sent.load(Ordering::Relaxed);
        let t0 = Instant::now();
        thread::sleep(Duration::from_secs_f64(seconds));
        let r1 = rx_packets(lab)?;
        let s1 = sent.load(Ordering::Relaxed);
        let dt = t0.elapsed().as_secs_f64();
        Ok(Sample {
            rx_pps: (r1 - r0) as f64 / dt,
            offered_pps: (s1 - s0) as f64 / dt,
        })
    })();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        lab::join(t).context("XDP traffic generator")?;
    }
    result
}

fn senders(cli: &Cli) -> u32 {
    cli.senders.unwrap_or_else(|| {
        thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    })
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

struct Result_ {
    name: &'static str,
    rx: Vec<f64>,
    offered: Vec<f64>,
    note: String,
}

fn runs(lab: &XlatLab, cli: &Cli, name: &'static str, note: String) -> Result<Result_> {
    let mut r = Result_ {
        name,
        rx: vec![],
        offered: vec![],
        note,
    };
    for i in 0..cli.runs {
        let s = measure(lab, cli.seconds, senders(cli))?;
        if !cli.json {
            eprintln!(
                "{name} run {}: {:.0} pps received, {:.0} pps offered",
                i + 1,
                s.rx_pps,
                s.offered_pps
            );
        }
        r.rx.push(s.rx_pps);
        r.offered.push(s.offered_pps);
    }
    Ok(r)
}

fn bench_vdmm(cli: &Cli) -> Result<Result_> {
    let lab = XlatLab::build(Translator::Vdmm(XlatPrefix::Wkp96))
        .context("building the lab with vdmm")?;
    let _sink = attach_sink(&lab)?;
    let before = lab.stats()?;
    let r = runs(
        &lab,
        cli,
        "vdmm XDP",
        format!("configured with {}", lab.configured_with),
    )?;
    let d = lab.stats()?.since(&before);
    let translated = d.reason_kind("translated", "xlat6to4");
    if translated == 0 {
        bail!("vdmm's counters show no translated xlat6to4 packets:\n{d}");
    }
    let mut r = r;
    r.note.push_str(&format!(
        "; translated/xlat6to4 +{translated} over the runs"
    ));
    Ok(r)
}

/// TAYGA running in the translator namespace; killed when dropped.
struct Tayga {
    child: Option<Child>,
    dir: std::path::PathBuf,
}

impl Drop for Tayga {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn start_tayga(lab: &XlatLab) -> Result<Tayga> {
    let dir = std::env::temp_dir().join(format!("vdmm-tayga-{}", lab.xlat.name()));
    // The guard first: the directory goes also when a later step fails.
    let mut t = Tayga {
        child: None,
        dir: dir.clone(),
    };
    fs::create_dir_all(dir.join("data"))?;
    let conf = dir.join("tayga.conf");
    fs::write(
        &conf,
        format!(
            "tun-device nat64\n\
             ipv4-addr 192.0.2.1\n\
             ipv6-addr 2001:db8:1c0:3::1\n\
             prefix {PREFIX96}/96\n\
             dynamic-pool 192.0.2.128/25\n\
             map {HOST6_AS_V4} {HOST6}\n\
             data-dir {}\n",
            dir.join("data").display()
        ),
    )?;
    let conf_s = conf.to_string_lossy().into_owned();
    lab.xlat
        .exec("tayga", &["--mktun", "-c", &conf_s])
        .context("tayga --mktun (is the Debian package tayga installed? `cargo xtask setup`)")?;
    for a in [
        "link set nat64 up",
        "route add 192.0.2.0/24 dev nat64",
        "-6 route add 2001:db8:64::/96 dev nat64",
    ] {
        let v: Vec<&str> = a.split_whitespace().collect();
        lab.xlat.ip(&v)?;
    }
    // `ip netns exec` execs tayga, so the child's pid is tayga's.
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.xlat.name(),
            "tayga",
            "-c",
            &conf_s,
            "--nodetach",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(fs::File::create(dir.join("tayga.log"))?))
        .stderr(Stdio::from(fs::File::create(dir.join("tayga.err"))?))
        .spawn()
        .context("spawn tayga")?;
    t.child = Some(child);
    thread::sleep(Duration::from_millis(500));
    if let Some(st) = t.child.as_mut().unwrap().try_wait()? {
        bail!("tayga exited at start ({st})");
    }
    Ok(t)
}

fn bench_tayga(cli: &Cli) -> Result<Result_> {
    let lab = XlatLab::build(Translator::None).context("building the lab for TAYGA")?;
    let tayga = start_tayga(&lab)?;
    // Does it translate at all? One ping through it.
    let p = lab::ping(&lab.host6, HOST4_AS_V6_96.parse().unwrap(), 3, None)?;
    if p.received == 0 {
        let log = fs::read_to_string(tayga.dir.join("tayga.err")).unwrap_or_default()
            + &fs::read_to_string(tayga.dir.join("tayga.log")).unwrap_or_default();
        bail!(
            "no ping answer through TAYGA ({HOST6} -> {HOST4_AS_V6_96}); tayga said: {}",
            log.trim()
        );
    }
    let _sink = attach_sink(&lab)?;
    let r = runs(
        &lab,
        cli,
        "TAYGA",
        format!(
            "userspace, tun nat64; ping through it {}/{}",
            p.received, p.sent
        ),
    )?;
    drop(tayga);
    Ok(r)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = require_root() {
        eprintln!("vdmm-xlat-bench: {e:#}");
        return ExitCode::FAILURE;
    }
    if cli.runs == 0 || cli.seconds <= 0.0 {
        eprintln!("vdmm-xlat-bench: --runs and --seconds must be positive");
        return ExitCode::FAILURE;
    }
    let results =
        (|| -> Result<Vec<Result_>> { Ok(vec![bench_vdmm(&cli)?, bench_tayga(&cli)?]) })();
    let mut results = match results {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vdmm-xlat-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let meds: Vec<(f64, f64, f64, f64)> = results
        .iter_mut()
        .map(|r| {
            let min = r.rx.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = r.rx.iter().cloned().fold(0.0, f64::max);
            (median(&mut r.rx), min, max, median(&mut r.offered))
        })
        .collect();
    for (r, m) in results.iter_mut().zip(&meds) {
        if m.0 >= 0.95 * m.3 {
            r.note
                .push_str("; source-limited (received ~ offered: capacity is higher)");
        }
    }
    let ratio = if meds[1].0 > 0.0 {
        meds[0].0 / meds[1].0
    } else {
        f64::INFINITY
    };
    let pass = ratio >= cli.target;
    if cli.json {
        let v = serde_json::json!({
            "runs": cli.runs,
            "seconds": cli.seconds,
            "frame_bytes": 64,
            "senders": senders(&cli),
            "prefix": "2001:db8:64::/96",
            "rows": results.iter().zip(&meds).map(|(r, m)| serde_json::json!({
                "translator": r.name,
                "rx_pps_median": m.0.round(),
                "rx_pps_min": m.1.round(),
                "rx_pps_max": m.2.round(),
                "offered_pps_median": m.3.round(),
                "note": r.note,
            })).collect::<Vec<_>>(),
            "ratio": (ratio * 100.0).round() / 100.0,
            "target_ratio": cli.target,
            "pass": pass,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
    } else {
        println!(
            "translated packets/s, 64-byte UDP IPv6 -> IPv4 (2001:db8:1c0:2:21:: -> 2001:db8:64::198.51.100.2), \
             received on the IPv4 host; median of {} runs x {:.1} s; {} generator thread(s) (XDP live frames)",
            cli.runs,
            cli.seconds,
            senders(&cli)
        );
        println!();
        println!(
            "{:<10} {:>12} {:>25} {:>12}  note",
            "translator", "rx pps", "(min..max)", "offered pps"
        );
        for (r, m) in results.iter().zip(&meds) {
            println!(
                "{:<10} {:>12.0} {:>25} {:>12.0}  {}",
                r.name,
                m.0,
                format!("({:.0}..{:.0})", m.1, m.2),
                m.3,
                r.note
            );
        }
        println!();
        println!(
            "vdmm / TAYGA = {ratio:.1}x   target >= {:.0}x   {}",
            cli.target,
            if pass { "PASS" } else { "FAIL" }
        );
    }
    if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}
