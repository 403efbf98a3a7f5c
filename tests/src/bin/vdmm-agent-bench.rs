//! vdmm-agent-bench: how fast the agent programs bindings, and what a million bindings
//! cost the data plane.
//!
//! Needs root. In a network namespace of its own (an uplink `ul0` with the locator
//! 100.64.0.2 as a permanent neighbour) it starts `vdmm-ctl daemon` ($VDMM_CTL or the
//! vdmm-ctl beside this binary) on a fresh store and pin directory, and over one
//! connection to its socket:
//!
//! 1. adds bindings one request at a time (`--one-by-one`, IPv4 /32 homes from 10.0.0.0,
//!    no slow-path route), timing them; after the first 1,000 it measures ns/packet;
//! 2. adds the rest up to `--total` in batches of `--batch` (one request each), timing
//!    them: bindings per second, target `--target-rate` (100,000);
//! 3. measures ns/packet again with all of them installed: the agent's pinned `vdmm_xdp`
//!    run through BPF_PROG_TEST_RUN (`--runs` single runs, kernel-timed, median of
//!    `--samples`) on a UDP packet to a bound home address, which it encapsulates (4in4)
//!    and sends back out (XDP_TX); every run is checked on the counters. Target: within
//!    `--target-ratio` (1.2x) of the 1,000-binding figure;
//! 4. adds `--routed` more bindings in one batch with their slow-path kernel routes, to
//!    show what the routes cost.
//!
//! It prints the binding table's memory (the kernel's `memlock` of VDMM_HOSTS, where host
//! bindings live, in /proc/self/fdinfo) at 1,000 and at all bindings, the agent's resident memory and the
//! state file's size. Exit status 3 when a target is missed.

use std::{
    io::{BufRead, BufReader, Write},
    net::Ipv4Addr,
    os::{
        fd::{AsFd, AsRawFd},
        unix::net::UnixStream,
    },
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use aya::{TestRun, TestRunOptions, maps::MapData};
use clap::Parser;
use vdmm_common::{Action, maps as names};
use vdmm_ctl::{maps::Dataplane, pin::PinDir};
use vdmm_tests::{
    agent::AgentProcess,
    lab::default_ctl_path,
    netns::{Netns, mount_pin_dir, require_root, unmount_pin_dir},
    packet::{ETH_P_IP, Ip, Ip4, L4, ethernet},
    pinned,
    testrun::ifindex,
};

#[derive(Parser)]
#[command(
    name = "vdmm-agent-bench",
    about = "bindings/s through the vdmm agent, ns/packet at 1k vs 1M bindings"
)]
struct Opts {
    /// Bindings added one request at a time.
    #[arg(long, default_value_t = 5_000)]
    one_by_one: u32,
    /// Bindings installed in all (the rest in batches).
    #[arg(long, default_value_t = 1_000_000)]
    total: u32,
    /// Bindings per batch request.
    #[arg(long, default_value_t = 100_000)]
    batch: u32,
    /// Bindings added with slow-path routes, in one batch, at the end.
    #[arg(long, default_value_t = 10_000)]
    routed: u32,
    /// BPF_PROG_TEST_RUN single runs per ns/packet measurement.
    #[arg(long, default_value_t = 200_000)]
    runs: u32,
    /// Measurements per figure; the median is reported.
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Target: batched bindings per second.
    #[arg(long, default_value_t = 100_000.0)]
    target_rate: f64,
    /// Target: ns/packet with all bindings within this factor of 1,000 bindings.
    #[arg(long, default_value_t = 1.2)]
    target_ratio: f64,
}

const LOCATOR: &str = "100.64.0.2";
const ENDPOINT: &str = "100.64.0.1";
const UL0_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x02];
/// The binding whose home address the measured packets go to (present in both phases).
const PROBE: u32 = 500;

fn home(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000u32 + i)
}

fn binding_op(i: u32, route: bool) -> String {
    format!(
        "{{\"op\":\"binding_add\",\"home\":\"{}/32\",\"locator\":\"{LOCATOR}\",\"route\":{route}}}",
        home(i)
    )
}

/// One connection to the agent.
struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Conn {
    fn open(path: &Path) -> Result<Self> {
        let s = UnixStream::connect(path).with_context(|| format!("connect {}", path.display()))?;
        Ok(Self {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    /// Sends a request line; fails unless the answer is ok.
    fn call(&mut self, line: &str) -> Result<serde_json::Value> {
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\n")?;
        let mut answer = String::new();
        self.reader.read_line(&mut answer)?;
        let v: serde_json::Value = serde_json::from_str(&answer)?;
        if v["ok"] != true {
            bail!("the agent refused a request: {}", v["error"]);
        }
        Ok(v["result"].clone())
    }

    fn apply(&mut self, ops: &[String]) -> Result<()> {
        let r = self.call(&format!(
            "{{\"request\":\"apply\",\"ops\":[{}]}}",
            ops.join(",")
        ))?;
        if r["errors"].as_array().is_some_and(|e| !e.is_empty()) {
            bail!("the agent could not write everything: {}", r["errors"]);
        }
        Ok(())
    }
}

/// The kernel's `memlock` of a pinned map (its memory), in bytes.
fn map_memory(pins: &PinDir, name: &str) -> Result<u64> {
    let map = MapData::from_pin(pins.map(name)).with_context(|| format!("open {name}"))?;
    let fd = map.fd().as_fd().as_raw_fd();
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("memlock:")?.trim().parse().ok())
        .context("no memlock in fdinfo")
}

/// Resident memory of a process, in kB.
fn rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .context("no VmRSS")
}

/// Median ns per packet of the pinned `vdmm_xdp` on `frame`, checking every run took
/// the 4in4 encapsulation and went back out (XDP_TX).
fn ns_per_packet(pins: &PinDir, frame: &[u8], ingress: u32, o: &Opts) -> Result<f64> {
    let prog = pinned::program(pins)?;
    let ctx = pinned::xdp_md(frame, ingress);
    let dp = Dataplane::open(pins)?;
    let mut samples = Vec::new();
    let mut out = vec![0u8; 4096];
    for _ in 0..o.samples {
        let before = pinned::encaps4(&dp)?;
        let mut total = Duration::ZERO;
        for _ in 0..o.runs {
            let r = prog.test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                repeat: 1,
                ..TestRunOptions::default()
            })?;
            if r.return_value != Action::Tx as u32 {
                bail!("a run returned {} instead of XDP_TX", r.return_value);
            }
            total += r.duration;
        }
        let counted = pinned::encaps4(&dp)? - before;
        if counted != o.runs as u64 {
            bail!("{} runs counted {counted} 4in4 encapsulations", o.runs);
        }
        samples.push(total.as_nanos() as f64 / o.runs as f64);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(samples[samples.len() / 2])
}

struct PinMount(PathBuf);

impl Drop for PinMount {
    fn drop(&mut self) {
        unmount_pin_dir(&self.0);
    }
}

fn run(o: &Opts) -> Result<bool> {
    require_root()?;
    if o.total < o.one_by_one || o.one_by_one < 1000 || o.batch == 0 {
        bail!("need --total >= --one-by-one >= 1000 and --batch > 0");
    }
    let ns = Netns::new("agbench")?;
    let sh = |args: &str| -> Result<()> {
        ns.ip(&args.split_whitespace().collect::<Vec<_>>())?;
        Ok(())
    };
    sh("link add ul0 type veth peer name ul0p")?;
    sh(&format!("link set ul0 address {}", mac(UL0_MAC)))?;
    sh("link set ul0 up")?;
    sh("link set ul0p up")?;
    sh(&format!("addr add {ENDPOINT}/24 dev ul0"))?;
    sh(&format!(
        "neigh add {LOCATOR} lladdr {} dev ul0 nud permanent",
        mac(PEER_MAC)
    ))?;
    ns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
    let pin_mount = PinMount(PathBuf::from("/run/vdmm").join(ns.name()));
    mount_pin_dir(&pin_mount.0)?;
    let pins = PinDir::new(&pin_mount.0);
    let mut agent = AgentProcess::configure(&default_ctl_path()?, ns.name(), &pin_mount.0, "")?;
    agent.start()?;
    let mut conn = Conn::open(&agent.socket)?;
    conn.apply(&[format!(
        "{{\"op\":\"endpoint_add\",\"addr\":\"{ENDPOINT}\"}}"
    )])?;

    let frame = ethernet(
        UL0_MAC,
        PEER_MAC,
        ETH_P_IP,
        &Ip::V4(Ip4::new(
            "192.0.2.7".parse()?,
            home(PROBE),
            L4::Udp {
                sport: 40000,
                dport: 5001,
                len: 64 - 14 - 28,
            },
        ))
        .bytes(),
    );
    let entered = ns.enter()?;
    let ul0 = ifindex("ul0")?;

    // 1. One by one.
    let t0 = Instant::now();
    for i in 0..1000 {
        conn.apply(&[binding_op(i, false)])?;
    }
    let mut one_time = t0.elapsed();
    let ns_1k = ns_per_packet(&pins, &frame, ul0, o)?;
    let mem_1k = map_memory(&pins, names::HOST_BINDINGS)?;
    let t0 = Instant::now();
    for i in 1000..o.one_by_one {
        conn.apply(&[binding_op(i, false)])?;
    }
    one_time += t0.elapsed();
    let one_rate = o.one_by_one as f64 / one_time.as_secs_f64();

    // 2. Batches.
    let t0 = Instant::now();
    let mut i = o.one_by_one;
    while i < o.total {
        let end = (i + o.batch).min(o.total);
        let ops: Vec<String> = (i..end).map(|k| binding_op(k, false)).collect();
        conn.apply(&ops)?;
        i = end;
    }
    let batched = o.total - o.one_by_one;
    let batch_time = t0.elapsed();
    let batch_rate = batched as f64 / batch_time.as_secs_f64();

    // 3. ns/packet with everything installed.
    let status = conn.call("{\"request\":\"status\"}")?;
    let installed = status["bindings"]["ipv4"].as_u64().unwrap_or(0);
    if installed != o.total as u64 {
        bail!("the agent reports {installed} bindings, not {}", o.total);
    }
    let in_map = Dataplane::open(&pins)?.bindings()?.len();
    if in_map != o.total as usize {
        bail!("the binding map holds {in_map} bindings, not {}", o.total);
    }
    let ns_all = ns_per_packet(&pins, &frame, ul0, o)?;
    let mem_all = map_memory(&pins, names::HOST_BINDINGS)?;
    drop(entered);

    // 4. A batch with slow-path routes.
    let t0 = Instant::now();
    let ops: Vec<String> = (0..o.routed)
        .map(|k| binding_op(o.total + k, true))
        .collect();
    conn.apply(&ops)?;
    let routed_rate = o.routed as f64 / t0.elapsed().as_secs_f64();
    let routes = ns.ip(&["-4", "route", "show", "proto", "118"])?;
    let route_count = String::from_utf8_lossy(&routes.stdout).lines().count();
    if route_count != o.routed as usize {
        bail!("{route_count} kernel routes, not {}", o.routed);
    }

    let rss = agent.pid().map(rss_kb).transpose()?.unwrap_or(0);
    let state_bytes = std::fs::metadata(agent.state_file())?.len();
    let ratio = ns_all / ns_1k;
    let rate_ok = batch_rate >= o.target_rate;
    let ratio_ok = ratio <= o.target_ratio;
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!(
        "bindings through the agent (one connection, IPv4 /32 homes, store fsynced per request)"
    );
    println!(
        "  one by one      {:>9} bindings in {:>7.2} s: {:>9.0} bindings/s",
        o.one_by_one,
        one_time.as_secs_f64(),
        one_rate
    );
    println!(
        "  batches of {:<6} {:>7} bindings in {:>7.2} s: {:>9.0} bindings/s  (target >= {:.0}) {}",
        o.batch,
        batched,
        batch_time.as_secs_f64(),
        batch_rate,
        o.target_rate,
        verdict(rate_ok)
    );
    println!(
        "  one batch with slow-path routes: {} bindings and kernel routes: {:.0} bindings/s",
        o.routed, routed_rate
    );
    println!(
        "data plane, 64-byte UDP to a bound home address, encap 4in4 + XDP_TX (BPF_PROG_TEST_RUN, {} runs, median of {})",
        o.runs, o.samples
    );
    println!("  {:>9} bindings: {ns_1k:>7.1} ns/packet", 1000);
    println!(
        "  {:>9} bindings: {ns_all:>7.1} ns/packet  ratio {ratio:.2}x (target <= {:.1}x) {}",
        o.total,
        o.target_ratio,
        verdict(ratio_ok)
    );
    println!("memory");
    println!(
        "  VDMM_HOSTS (memlock):      {:>12} bytes at 1000 bindings, {:>12} bytes at {} ({:.0} bytes/binding)",
        mem_1k,
        mem_all,
        o.total,
        mem_all as f64 / o.total as f64
    );
    println!(
        "  agent resident memory:     {:>12} kB with {} bindings",
        rss,
        o.total + o.routed
    );
    println!("  state file:                {:>12} bytes", state_bytes);
    agent.stop()?;
    Ok(rate_ok && ratio_ok)
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn main() -> ExitCode {
    let o = Opts::parse();
    match run(&o) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("vdmm-agent-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
