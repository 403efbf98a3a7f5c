//! The balancer scenario: the vAP lab with extra stations ([`HandoverLab::build_with`]),
//! all of them on ap1, each receiving a sequenced UDP stream and a paced TCP transfer
//! from the correspondent. The ALB controller (the real `vdmm-ctl alb` binary, its
//! state file in the lab's scratch directory) knows ap1-ap3 with a capacity each, takes
//! the signal of every station from a fixed table ([`rssi_table`]: stations stand
//! between ap1 and ap2 or between ap1 and ap3), reads placement and traffic from the AP
//! hosts' per-vAP counters, and the balancer's loop (`alb run`, every second) moves
//! clients off ap1 by vAP handovers once `alb enable` lets it. The air follows each move (a station's frames go to the AP
//! host its anchor's binding points at); every station hears all three AP hosts.
//!
//! Measured: each AP host's load from its data plane's per-vAP byte counters in a
//! window before and after the round (Mb/s and clients), Jain's index of those loads,
//! each station's UDP stream (loss, duplicates, longest gap) and TCP transfer (all
//! bytes read, retransmission timeouts).

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use vdmm_ctl::{maps::Dataplane, pin::PinDir};

use super::{
    AIR_CLIENT, AIR_VM, CLIENT_MAC, CORR, HandoverLab, VM_MAC,
    air::{Air, Station},
    air_ap_port,
    analysis::{self, WindowStats},
    ap_locator, ap_name, mac_text,
    traffic::{TcpCounters, now_ns, tcp_flow_paced, udp_stream},
};
use crate::lab::next_port;

/// How the scenario runs.
#[derive(Clone, Debug)]
pub struct AlbOptions {
    /// Datagrams/s of each station's UDP stream.
    pub udp_rate: u32,
    /// Time between two segments of each station's TCP transfer.
    pub tcp_period: Duration,
    /// Capacity of each AP in the controller, Mb/s.
    pub capacity_mbps: f64,
    /// `run --grace-ms`.
    pub grace_ms: u64,
    /// The loop's interval (`round_interval_s`).
    pub round_interval: Duration,
    /// Length of the load measurements before and after the round.
    pub window: Duration,
}

impl Default for AlbOptions {
    fn default() -> Self {
        Self {
            udp_rate: 500,
            tcp_period: Duration::from_millis(5),
            capacity_mbps: 10.0,
            grace_ms: 200,
            round_interval: Duration::from_secs(1),
            window: Duration::from_secs(1),
        }
    }
}

/// Number of AP hosts of the lab.
const APS: usize = 3;

/// One AP host's load as its data plane counted it in a window.
#[derive(Clone, Debug, PartialEq)]
pub struct ApLoad {
    pub ap: String,
    /// vAPs serving a client there.
    pub clients: usize,
    /// Bytes from and delivered to its clients, Mb/s.
    pub mbps: f64,
}

/// One move of the loop's rounds, as `run --json` reported it.
#[derive(Clone, Debug)]
pub struct MoveOutcome {
    pub client: String,
    pub from: String,
    pub to: String,
    /// The anchor's switch-over after the start of the handover; `None` for a failed move.
    pub switch_over_ms: Option<f64>,
    pub error: Option<String>,
}

/// One station's flows over the whole run.
#[derive(Clone, Debug)]
pub struct StationFlows {
    pub client: String,
    pub udp: WindowStats,
    pub tcp_written: u64,
    pub tcp_read: u64,
}

/// What the scenario measured.
#[derive(Clone, Debug)]
pub struct AlbResult {
    pub before: Vec<ApLoad>,
    pub after: Vec<ApLoad>,
    pub jain_before: f64,
    pub jain_after: f64,
    /// The controller's own fairness figures (its utilisations) before and after.
    pub controller_fairness: (f64, f64),
    pub moves: Vec<MoveOutcome>,
    pub stations: Vec<StationFlows>,
    /// Retransmission timeouts of every TCP flow of the lab during the run.
    pub tcp: TcpCounters,
    /// The controller's counter lines (`alb metrics`) at the end.
    pub metrics: Vec<String>,
    /// Times a station's radio followed a move.
    pub reassociations: usize,
    /// Rounds the loop ran while enabled.
    pub rounds: usize,
    /// Moves made by the rounds after the first round with moves (the loop kept running
    /// until the load was measured).
    pub second_round: usize,
}

/// The smoothed signal the APs report for each station, dBm for ap1, ap2, ap3: the lab's
/// client and VM stand next to ap1 (the others barely hear them); extra station `i`
/// stands 4-6 m from ap1 and, for even `i`, between ap1 and ap2, else between ap1 and
/// ap3 (5-8 dB weaker there than at ap1).
pub fn rssi_table(extra: usize) -> Vec<([u8; 6], [f64; APS])> {
    let mut t = vec![
        (CLIENT_MAC, [-45.0, -85.0, -85.0]),
        (VM_MAC, [-45.0, -85.0, -85.0]),
    ];
    for i in 0..extra {
        let (mac, _, _) = super::extra_client(i);
        let near = -55.0 - (i / 2 % 4) as f64;
        t.push((
            mac,
            if i % 2 == 0 {
                [-50.0, near, -72.0]
            } else {
                [-50.0, -72.0, near]
            },
        ));
    }
    t
}

/// Runs the scenario in `lab` (built with extra stations).
pub fn run(lab: &HandoverLab, opts: &AlbOptions) -> Result<AlbResult> {
    if lab.extra.len() < 2 {
        bail!("the balancer scenario needs a lab with extra stations (build_with)");
    }
    let mut air = attach_all_at_ap1(lab)?;
    for e in &lab.extra {
        lab.reach(&e.ns, CORR)
            .with_context(|| format!("{} cannot reach the correspondent", e.home))?;
        lab.reach(&lab.corr, e.home)
            .with_context(|| format!("the correspondent cannot reach {}", e.home))?;
    }
    let ctl = AlbCtl::new(lab);
    for i in 0..APS {
        ctl.run(
            &[
                "ap",
                "add",
                &ap_name(i),
                "--capacity",
                &opts.capacity_mbps.to_string(),
            ],
            None,
        )?;
    }
    let t0 = now_s();
    let mut feed = String::new();
    for (mac, rssi) in rssi_table(lab.extra.len()) {
        for (i, r) in rssi.iter().enumerate() {
            feed.push_str(&format!(
                "{{\"ap\":\"{}\",\"client\":\"{}\",\"rssi_dbm\":{r},\"time\":{t0}}}\n",
                ap_name(i),
                mac_text(mac)
            ));
        }
    }
    ctl.run(&["feed"], Some(&feed))?;
    ctl.run(
        &[
            "params",
            "--set",
            &format!("round_interval_s={}", opts.round_interval.as_secs_f64()),
        ],
        None,
    )?;
    let cluster = lab.cluster_file().display().to_string();
    // The loop starts disabled: it reads placement and traffic every interval.
    let mut daemon = ctl.spawn_loop(&cluster, opts.grace_ms)?;

    let warm = Duration::from_millis(1000) + opts.round_interval;
    let duration = warm + opts.window * 2 + opts.round_interval * 4 + Duration::from_secs(5);
    let mut udp = vec![];
    let mut tcp = vec![];
    for e in &lab.extra {
        tcp.push(tcp_flow_paced(
            &lab.corr,
            &e.ns,
            SocketAddr::new(IpAddr::V4(e.home), next_port()),
            opts.tcp_period,
        )?);
        udp.push(udp_stream(
            &lab.corr,
            &e.ns,
            SocketAddr::new(IpAddr::V4(e.home), next_port()),
            opts.udp_rate,
            duration,
        )?);
    }
    let stream_end = udp[0].start + duration.as_nanos() as u64;
    let tcp_before = tcp_counters(lab)?;

    let stop = AtomicBool::new(false);
    let (measured, reassociations) = thread::scope(|s| {
        let follower = s.spawn(|| follow(lab, &mut air, &stop));
        let measured = (|| -> Result<_> {
            thread::sleep(warm);
            let before = ap_loads(lab, opts.window)?;
            ctl.run(&["enable"], None)?;
            // The first round with moves, then two more rounds that must move nothing.
            let deadline = std::time::Instant::now() + opts.round_interval * 6;
            let first = loop {
                let rounds = daemon.rounds();
                if let Some(i) = rounds.iter().position(|r| moves_of(r) > 0) {
                    break i;
                }
                if std::time::Instant::now() > deadline {
                    bail!(
                        "the loop made no move within {:?} of `alb enable`",
                        opts.round_interval * 6
                    );
                }
                thread::sleep(Duration::from_millis(50));
            };
            while daemon.rounds().len() < first + 3 {
                if std::time::Instant::now() > deadline + opts.round_interval * 3 {
                    bail!("the loop stopped running rounds");
                }
                thread::sleep(Duration::from_millis(50));
            }
            let after = ap_loads(lab, opts.window)?;
            if now_ns() > stream_end {
                bail!("the rounds took too long: the streams ended before the load was measured");
            }
            ctl.run(&["disable"], None)?;
            Ok((before, first, after))
        })();
        stop.store(true, Ordering::Relaxed);
        let followed = follower
            .join()
            .map_err(|_| anyhow::anyhow!("the air's follower panicked"))?;
        Ok::<_, anyhow::Error>((measured, followed))
    })?;
    let rounds = daemon.stop()?;
    let reassociations = reassociations?;
    let mut stations = vec![];
    let mut tcp_out = vec![];
    for (e, u) in lab.extra.iter().zip(udp) {
        let (sent, arrivals) = u.finish(Duration::from_millis(200))?;
        let period = 1_000_000_000 / opts.udp_rate.max(1) as u64;
        stations.push((
            mac_text(e.mac),
            analysis::window(&sent, &arrivals, 0, u64::MAX, period),
        ));
    }
    for (e, t) in lab.extra.iter().zip(tcp) {
        tcp_out.push(
            t.finish()
                .with_context(|| format!("the TCP transfer to {}", e.home))?,
        );
    }
    let tcp = tcp_counters(lab)?.since(&tcp_before);
    let (before, first, after) = measured?;

    let mut moves = vec![];
    for round in &rounds[first..=first] {
        for (key, done) in [("done", true), ("failed", false)] {
            for m in round[key].as_array().into_iter().flatten() {
                moves.push(MoveOutcome {
                    client: m["client"].as_str().unwrap_or_default().to_string(),
                    from: m["from"].as_str().unwrap_or_default().to_string(),
                    to: m["to"].as_str().unwrap_or_default().to_string(),
                    switch_over_ms: if done {
                        m["switch_over_ms"].as_f64()
                    } else {
                        None
                    },
                    error: m["error"].as_str().map(str::to_string),
                });
            }
        }
    }
    let second_round = rounds[first + 1..].iter().map(moves_of).sum();
    let last = rounds.last().expect("at least the first round with moves");
    let metrics = ctl
        .run(&["metrics"], None)?
        .lines()
        .filter(|l| {
            [
                "vdmm_alb_decisions_total",
                "vdmm_alb_moves_total",
                "vdmm_alb_reverted",
                "vdmm_alb_moves_failed",
                "vdmm_alb_fairness",
                "vdmm_alb_vap_samples",
                "vdmm_alb_loop_",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(str::to_string)
        .collect();
    let jain = |l: &[ApLoad]| vdmm_ctl::alb::load::jain(l.iter().map(|a| a.mbps));
    Ok(AlbResult {
        jain_before: jain(&before),
        jain_after: jain(&after),
        before,
        after,
        controller_fairness: (
            rounds[first]["fairness_before"]
                .as_f64()
                .unwrap_or(f64::NAN),
            last["fairness_now"].as_f64().unwrap_or(f64::NAN),
        ),
        moves,
        stations: stations
            .into_iter()
            .zip(tcp_out)
            .map(|((client, udp), t)| StationFlows {
                client,
                udp,
                tcp_written: t.written,
                tcp_read: t.read,
            })
            .collect(),
        tcp,
        metrics,
        reassociations,
        rounds: rounds.len(),
        second_round,
    })
}

/// The air with every station associated with ap1; the extra stations hear all three
/// AP hosts (they stand in the overlap), the client and the VM only ap1.
fn attach_all_at_ap1(lab: &HandoverLab) -> Result<Air<'_>> {
    let mut stations = vec![
        Station {
            port: AIR_CLIENT.into(),
            mac: CLIENT_MAC,
        },
        Station {
            port: AIR_VM.into(),
            mac: VM_MAC,
        },
    ];
    stations.extend(lab.extra.iter().map(|e| Station {
        port: e.port.clone(),
        mac: e.mac,
    }));
    let ports: Vec<String> = (0..APS).map(air_ap_port).collect();
    let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
    let mut air = Air::new(&lab.air, stations, &ports)?;
    air.attach_only(AIR_CLIENT, ports[0])?;
    air.attach_only(AIR_VM, ports[0])?;
    for e in &lab.extra {
        for p in &ports {
            air.enter_range(&e.port, p)?;
        }
        air.associate(&e.port, ports[0])?;
    }
    Ok(air)
}

/// Until `stop`: every extra station's frames go to the AP host its anchor's binding
/// points at (polled every millisecond). Returns how many times a station followed.
fn follow(lab: &HandoverLab, air: &mut Air, stop: &AtomicBool) -> Result<usize> {
    let gw1 = Dataplane::open(&PinDir::new(HandoverLab::pin_dir(&lab.gw1)))?;
    let mut at: BTreeMap<IpAddr, usize> = lab.extra.iter().map(|e| (e.home.into(), 0)).collect();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        for b in gw1.bindings()? {
            let home = b.home.addr();
            let Some(now) = (0..APS).find(|i| IpAddr::from(ap_locator(*i)) == b.locator) else {
                continue;
            };
            if let Some(was) = at.get_mut(&home)
                && *was != now
            {
                let e = lab
                    .extra
                    .iter()
                    .find(|e| IpAddr::from(e.home) == home)
                    .expect("a known home");
                air.associate(&e.port, &air_ap_port(now))?;
                *was = now;
                n += 1;
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    Ok(n)
}

/// Each AP host's serving vAPs and the bytes they carried in `window` (Mb/s).
fn ap_loads(lab: &HandoverLab, window: Duration) -> Result<Vec<ApLoad>> {
    let read = || -> Result<Vec<BTreeMap<String, u64>>> {
        lab.aps
            .iter()
            .map(|ap| {
                let dp = Dataplane::open(&PinDir::new(HandoverLab::pin_dir(ap)))?;
                let mut m = BTreeMap::new();
                for v in dp.vaps()? {
                    if v.forward.is_none() {
                        let c = dp.vap_counters(v.client)?;
                        m.insert(
                            v.client.to_string(),
                            c.from_client.bytes + c.delivered.bytes,
                        );
                    }
                }
                Ok(m)
            })
            .collect()
    };
    let t0 = now_ns();
    let first = read()?;
    thread::sleep(window);
    let second = read()?;
    let secs = (now_ns() - t0) as f64 / 1e9;
    Ok(first
        .iter()
        .zip(&second)
        .enumerate()
        .map(|(i, (a, b))| {
            // Only vAPs present at both readings (none moves within a window).
            let bytes: u64 = b
                .iter()
                .filter_map(|(c, n)| a.get(c).map(|m| n.saturating_sub(*m)))
                .sum();
            ApLoad {
                ap: ap_name(i),
                clients: b.len(),
                mbps: bytes as f64 * 8.0 / 1e6 / secs,
            }
        })
        .collect())
}

/// TCP counters of the correspondent and every extra station.
fn tcp_counters(lab: &HandoverLab) -> Result<TcpCounters> {
    let mut sum = TcpCounters::default();
    for ns in std::iter::once(&lab.corr).chain(lab.extra.iter().map(|e| &e.ns)) {
        let c = TcpCounters::read(ns)?;
        sum.timeouts += c.timeouts;
        sum.retrans_segs += c.retrans_segs;
    }
    Ok(sum)
}

/// Moves (done or failed) of one round of `run --json`.
fn moves_of(round: &serde_json::Value) -> usize {
    ["done", "failed"]
        .iter()
        .map(|k| round[*k].as_array().map_or(0, Vec::len))
        .sum()
}

fn now_s() -> f64 {
    now_ns() as f64 / 1e9
}

/// Runs `vdmm-ctl alb --state LAB/alb.json ...` (handover counters in the lab's file).
struct AlbCtl {
    ctl: PathBuf,
    state: PathBuf,
    stats: PathBuf,
}

impl AlbCtl {
    fn new(lab: &HandoverLab) -> Self {
        Self {
            ctl: lab.ctl.clone(),
            state: lab.dir.join("alb.json"),
            stats: lab.stats_file(),
        }
    }

    /// Starts `alb run --cluster CLUSTER --json` (the balancer's loop) in the background.
    fn spawn_loop(&self, cluster: &str, grace_ms: u64) -> Result<AlbLoop> {
        let mut child = Command::new(&self.ctl)
            .arg("alb")
            .arg("--state")
            .arg(&self.state)
            .args(["run", "--cluster", cluster, "--json", "--grace-ms"])
            .arg(grace_ms.to_string())
            .env(vdmm_ctl::handover::stats::STATE_FILE_ENV, &self.stats)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {} alb run", self.ctl.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                sink.lock().expect("not poisoned").push(line);
            }
        });
        Ok(AlbLoop {
            child: Some(child),
            lines,
            reader: Some(reader),
        })
    }

    fn run(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        let mut child = Command::new(&self.ctl)
            .arg("alb")
            .arg("--state")
            .arg(&self.state)
            .args(args)
            .env(vdmm_ctl::handover::stats::STATE_FILE_ENV, &self.stats)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {}", self.ctl.display()))?;
        if let Some(text) = input {
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "vdmm-ctl alb {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The balancer's loop running in the background: its JSON lines as they come. Stopped
/// by [`AlbLoop::stop`] (SIGTERM, then its exit is checked) or, on an error path, killed
/// when dropped.
struct AlbLoop {
    child: Option<std::process::Child>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl AlbLoop {
    /// The rounds printed so far (one JSON object per line; other lines are skipped).
    fn rounds(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .expect("not poisoned")
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("fairness_now").is_some())
            .collect()
    }

    /// SIGTERM; the loop finishes its interval and exits 0. Returns every round.
    fn stop(&mut self) -> Result<Vec<serde_json::Value>> {
        let mut child = self.child.take().context("the loop was stopped already")?;
        // SAFETY: signalling our own child process by its pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait()?;
        if let Some(r) = self.reader.take() {
            r.join()
                .map_err(|_| anyhow::anyhow!("the loop's reader panicked"))?;
        }
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut stderr)?;
        }
        if !status.success() {
            bail!("vdmm-ctl alb run exited with {status}: {}", stderr.trim());
        }
        if !stderr.trim().is_empty() {
            bail!("vdmm-ctl alb run reported: {}", stderr.trim());
        }
        Ok(self.rounds())
    }
}

impl Drop for AlbLoop {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
