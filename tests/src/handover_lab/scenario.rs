//! The walk: while a UDP stream and a TCP transfer run from the correspondent to the
//! client (and, in the vAP lab, to the VM), the client walks ap1 -> ap2 -> ap3 and the VM
//! migrates ap1 -> ap3. Each handover is measured in its own window: datagrams lost,
//! the longest gap between arrivals, the longest TCP stall, retransmission timeouts, and
//! the time from the command to the anchor's switch-over (seen by polling the anchor's
//! pinned binding from outside, independently of what the mover reports).
//!
//! A vAP handover in the lab: the client comes into the target's range (it hears both AP
//! hosts), `vdmm-ctl vap move` runs; as soon as the anchor points at the target the
//! client's radio associates with it (its frames go there), and when the move returned
//! (grace period over) the client leaves the source's range. The VM's migration is the
//! same with the VM's port on the target host plugged before the move and the source's
//! unplugged after it. The baseline's handover is [`super::baseline::attach`].

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use vdmm_ctl::{addr::Prefix, maps::Dataplane, pin::PinDir};

use super::{
    AIR_CLIENT, AIR_VM, AP_UL_IF, CLIENT_HOME, CLIENT_MAC, GW_UL_IF, HandoverLab, Mobility,
    VM_HOME, VM_MAC,
    air::{Air, Station},
    air_ap_port,
    analysis::{self, Sent, WindowStats},
    ap_locator, ap_name, baseline, mac_text,
    traffic::{TcpCounters, TcpFlow, UdpStream, now_ns, tcp_flow, udp_stream},
};
use crate::lab::next_port;

/// How the walk runs.
#[derive(Clone, Debug)]
pub struct WalkOptions {
    /// Datagrams per second of the client's UDP stream.
    pub rate: u32,
    /// Time between handovers (and before the first, after the last).
    pub dwell: Duration,
    /// `vap move --grace-ms`.
    pub grace_ms: u64,
    /// Also migrate the VM (vAP lab only).
    pub vm: bool,
    /// Before each vAP move, delete the neighbour entries of the paths the move opens
    /// (the anchor's and the source's for the target's locator, the target's for the
    /// anchor), as the kernel's garbage collector may have: the move must resolve them
    /// before it switches, or the first packets wait in the slow path.
    pub cold_paths: bool,
}

impl Default for WalkOptions {
    fn default() -> Self {
        Self {
            rate: 10_000,
            dwell: Duration::from_millis(1500),
            grace_ms: 200,
            vm: true,
            cold_paths: false,
        }
    }
}

/// One handover as measured.
#[derive(Clone, Debug)]
pub struct HandoverResult {
    /// `client ap1 -> ap2`, `vm ap1 -> ap3`.
    pub label: String,
    pub mobility: Mobility,
    /// Command issued (ns).
    pub command: u64,
    /// The anchor's binding seen pointing at the target (ns).
    pub switched: u64,
    /// The command finished (ns).
    pub done: u64,
    /// The UDP stream in this handover's window.
    pub udp: WindowStats,
    /// Longest pause of the TCP transfer in the window (ns).
    pub tcp_stall: u64,
    /// TCP retransmission timeouts and retransmitted segments from this handover's start
    /// to the next one's (all TCP flows of the lab, both ends).
    pub tcp: TcpCounters,
    /// What the mover reported (`vap move --json`), vAP lab only.
    pub mover_switch_over_ms: Option<f64>,
}

impl HandoverResult {
    pub fn command_to_switch_ms(&self) -> f64 {
        self.switched.saturating_sub(self.command) as f64 / 1e6
    }
}

/// A whole walk.
#[derive(Clone, Debug)]
pub struct WalkResult {
    pub mobility: Mobility,
    pub handovers: Vec<HandoverResult>,
    /// Client stream start (ns).
    pub start: u64,
    /// Received datagrams/s of the client's stream in 10 ms bins (seconds after start).
    pub client_rate: Vec<(f64, f64)>,
    /// The client's stream in the quiet time before the first handover (noise floor).
    pub steady: WindowStats,
    pub sent: u64,
    pub lost: u64,
    pub tcp_bytes: u64,
}

struct Flows {
    udp: UdpStream,
    tcp: TcpFlow,
}

fn start_flows(
    lab: &HandoverLab,
    to: &crate::netns::Netns,
    home: std::net::Ipv4Addr,
    rate: u32,
    duration: Duration,
) -> Result<Flows> {
    let tcp = tcp_flow(
        &lab.corr,
        to,
        SocketAddr::new(IpAddr::V4(home), next_port()),
    )?;
    let udp = udp_stream(
        &lab.corr,
        to,
        SocketAddr::new(IpAddr::V4(home), next_port()),
        rate,
        duration,
    )?;
    Ok(Flows { udp, tcp })
}

/// The air with the client and the VM attached to ap1 (the baseline's client by DHCP).
pub fn attach_at_ap1(lab: &HandoverLab) -> Result<Air<'_>> {
    let mut air = Air::new(
        &lab.air,
        vec![
            Station {
                port: AIR_CLIENT.into(),
                mac: CLIENT_MAC,
            },
            Station {
                port: AIR_VM.into(),
                mac: VM_MAC,
            },
        ],
        &(0..3)
            .map(air_ap_port)
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )?;
    match lab.mobility {
        Mobility::Vap => {
            air.attach_only(AIR_CLIENT, &air_ap_port(0))?;
            air.attach_only(AIR_VM, &air_ap_port(0))?;
        }
        Mobility::Baseline => {
            baseline::attach(lab, &mut air, None, 0).context("first attachment")?;
        }
    }
    Ok(air)
}

/// Runs the walk in `lab`.
pub fn walk(lab: &HandoverLab, opts: &WalkOptions) -> Result<WalkResult> {
    let mut air = attach_at_ap1(lab)?;
    let vm = opts.vm && lab.mobility == Mobility::Vap;
    lab.reach(&lab.client, super::CORR)
        .context("the client cannot reach the correspondent")?;
    lab.reach(&lab.corr, CLIENT_HOME)
        .context("the correspondent cannot reach the client")?;
    if vm {
        lab.reach(&lab.vm, super::CORR2)
            .context("the VM cannot reach the correspondent")?;
    }

    // Handovers at dwell, 2 dwell (client) and 1.5 dwell (VM); the stream runs a dwell
    // past the last.
    let duration = opts.dwell * 3;
    let client = start_flows(lab, &lab.client, CLIENT_HOME, opts.rate, duration)?;
    let vm_flows = if vm {
        Some(start_flows(lab, &lab.vm, VM_HOME, opts.rate / 2, duration)?)
    } else {
        None
    };
    let start = client.udp.start;
    let mut events: Vec<(u64, Pending)> = vec![];
    let at = |k: f64| start + (opts.dwell.as_nanos() as f64 * k) as u64;
    let mut plan = vec![(at(1.0), Hop::Client(0, 1)), (at(2.0), Hop::Client(1, 2))];
    if vm {
        plan.push((at(1.5), Hop::Vm(0, 2)));
        plan.sort_by_key(|p| p.0);
    }
    let mut result = Ok(());
    for (when, hop) in plan {
        let now = now_ns();
        if when > now {
            thread::sleep(Duration::from_nanos(when - now));
        }
        let before = tcp_counters(lab)?;
        let r = match (lab.mobility, hop) {
            (Mobility::Vap, Hop::Client(f, t)) => vap_move(
                lab,
                &mut air,
                AIR_CLIENT,
                CLIENT_MAC,
                &lab.gw1,
                CLIENT_HOME,
                f,
                t,
                opts,
            ),
            (Mobility::Vap, Hop::Vm(f, t)) => {
                vap_move(lab, &mut air, AIR_VM, VM_MAC, &lab.gw2, VM_HOME, f, t, opts)
            }
            (Mobility::Baseline, Hop::Client(f, t)) => baseline::attach(lab, &mut air, Some(f), t)
                .map(|b| Timing {
                    command: b.detached,
                    switched: b.bound,
                    done: b.bound,
                    mover_ms: None,
                }),
            (Mobility::Baseline, Hop::Vm(..)) => unreachable!("no VM in the baseline"),
        };
        match r {
            Ok(t) => events.push((
                when,
                Pending {
                    hop,
                    timing: t,
                    before,
                },
            )),
            Err(e) => {
                result = Err(e.context(format!("{} {}", lab_name(lab.mobility), hop.label())));
                break;
            }
        }
    }
    let last = tcp_counters(lab)?;
    let (sent, arrivals) = client.udp.finish(Duration::from_millis(300))?;
    let tcp = client.tcp.finish().context("the client's TCP transfer")?;
    let vm_out = match vm_flows {
        Some(f) => {
            let (s, a) = f.udp.finish(Duration::from_millis(100))?;
            let t = f.tcp.finish().context("the VM's TCP transfer")?;
            Some((s, a, t))
        }
        None => None,
    };
    result?;
    let end = start + duration.as_nanos() as u64;
    let mut handovers = vec![];
    // A handover's TCP counters run until the next handover starts.
    let nexts: Vec<TcpCounters> = events
        .iter()
        .skip(1)
        .map(|(_, p)| p.before)
        .chain(std::iter::once(last))
        .collect();
    for ((_, p), after) in events.into_iter().zip(nexts) {
        let from = p.timing.command.saturating_sub(100_000_000);
        let to = p.timing.command + opts.dwell.as_nanos() as u64 / 2;
        let (udp, stall) = match p.hop {
            Hop::Client(..) => (
                analysis::window(&sent, &arrivals, from, to, period(opts.rate)),
                analysis::longest_pause(&tcp.progress, from, to),
            ),
            Hop::Vm(..) => {
                let (s, a, t) = vm_out.as_ref().expect("VM flows");
                (
                    analysis::window(s, a, from, to, period(opts.rate / 2)),
                    analysis::longest_pause(&t.progress, from, to),
                )
            }
        };
        handovers.push(HandoverResult {
            label: p.hop.label(),
            mobility: lab.mobility,
            command: p.timing.command,
            switched: p.timing.switched,
            done: p.timing.done,
            udp,
            tcp_stall: stall,
            tcp: after.since(&p.before),
            mover_switch_over_ms: p.timing.mover_ms,
        });
    }
    let steady_to = start + opts.dwell.as_nanos() as u64 - 100_000_000;
    let all = analysis::window(&sent, &arrivals, 0, u64::MAX, period(opts.rate));
    Ok(WalkResult {
        mobility: lab.mobility,
        handovers,
        start,
        client_rate: analysis::rate_series(&arrivals, start, end, 10_000_000),
        steady: analysis::window(&sent, &arrivals, start, steady_to, period(opts.rate)),
        sent: sent_count(&sent),
        lost: all.lost,
        tcp_bytes: tcp.read,
    })
}

/// The sender's interval between datagrams at `rate` per second (ns).
fn period(rate: u32) -> u64 {
    1_000_000_000 / rate.max(1) as u64
}

fn sent_count(s: &Sent) -> u64 {
    s.at.len() as u64
}

/// TCP counters are per namespace: the correspondent's (the data sender of both
/// transfers) plus the client's and the VM's, so a handover's counts cover every flow
/// from its start to the next handover's.
fn tcp_counters(lab: &HandoverLab) -> Result<TcpCounters> {
    let mut sum = TcpCounters::default();
    for ns in [&lab.corr, &lab.client, &lab.vm] {
        let c = TcpCounters::read(ns)?;
        sum.timeouts += c.timeouts;
        sum.retrans_segs += c.retrans_segs;
    }
    Ok(sum)
}

pub fn lab_name(m: Mobility) -> &'static str {
    match m {
        Mobility::Vap => "vAP",
        Mobility::Baseline => "baseline",
    }
}

#[derive(Clone, Copy, Debug)]
enum Hop {
    Client(usize, usize),
    Vm(usize, usize),
}

impl Hop {
    fn label(self) -> String {
        match self {
            Hop::Client(f, t) => format!("client {} -> {}", ap_name(f), ap_name(t)),
            Hop::Vm(f, t) => format!("vm {} -> {}", ap_name(f), ap_name(t)),
        }
    }
}

struct Timing {
    command: u64,
    switched: u64,
    done: u64,
    mover_ms: Option<f64>,
}

struct Pending {
    hop: Hop,
    timing: Timing,
    before: TcpCounters,
}

/// One vAP move through the real `vdmm-ctl vap move`, with the air following it.
#[allow(clippy::too_many_arguments)]
fn vap_move(
    lab: &HandoverLab,
    air: &mut Air,
    station: &str,
    mac: [u8; 6],
    anchor: &crate::netns::Netns,
    home: std::net::Ipv4Addr,
    from: usize,
    to: usize,
    opts: &WalkOptions,
) -> Result<Timing> {
    let grace_ms = opts.grace_ms;
    air.enter_range(station, &air_ap_port(to))?;
    if opts.cold_paths {
        let target = ap_locator(to).to_string();
        let anchor_locator = lab.anchor_locator(anchor).to_string();
        for (ns, addr, dev) in [
            (anchor, &target, GW_UL_IF),
            (&lab.aps[from], &target, AP_UL_IF),
            (&lab.aps[to], &anchor_locator, AP_UL_IF),
        ] {
            // Gone already is fine.
            let _ = ns.ip(&["neigh", "del", addr, "dev", dev]);
        }
    }
    let anchor_pins = PinDir::new(HandoverLab::pin_dir(anchor));
    let home: Prefix = format!("{home}/32").parse()?;
    let target: IpAddr = ap_locator(to).into();
    let command = now_ns();
    let child = Command::new(&lab.ctl)
        .args([
            "vap",
            "move",
            &mac_text(mac),
            "--to",
            &ap_name(to),
            "--cluster",
        ])
        .arg(lab.cluster_file())
        .args(["--grace-ms", &grace_ms.to_string(), "--json"])
        .env(vdmm_ctl::handover::stats::STATE_FILE_ENV, lab.stats_file())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {}", lab.ctl.display()))?;
    // Watch the anchor's binding from outside until it points at the target.
    let dp = Dataplane::open(&anchor_pins)?;
    let deadline = command + 5_000_000_000;
    let switched = loop {
        let now = now_ns();
        if dp.binding(&home)?.is_some_and(|b| b.locator == target) {
            break now;
        }
        if now > deadline {
            break 0;
        }
        thread::sleep(Duration::from_micros(100));
    };
    if switched != 0 {
        // The target serves the client now: its radio associates there.
        air.associate(station, &air_ap_port(to))?;
    }
    let out = child.wait_with_output()?;
    let done = now_ns();
    if !out.status.success() {
        bail!(
            "vdmm-ctl vap move failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if switched == 0 {
        bail!("the anchor's binding never pointed at {target}");
    }
    air.leave_range(station, &air_ap_port(from))?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("vap move --json: {}", String::from_utf8_lossy(&out.stdout)))?;
    Ok(Timing {
        command,
        switched,
        done,
        mover_ms: report["switch_over_ms"].as_f64(),
    })
}

/// Where the walk's plot goes.
pub fn default_plot_path(target_dir: &Path) -> std::path::PathBuf {
    target_dir.join("handover-demo.svg")
}
