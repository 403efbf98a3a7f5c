//! Cluster mode end to end: three agents (`vdmm-ctl daemon` with `store = "etcd"`), each
//! in a network namespace of its own with its own pinned data plane, on one real etcd
//! (Debian's etcd-server, in the root namespace, reached through a veth per namespace):
//!
//! - a binding added, replaced and deleted through one agent's API is in all three data
//!   planes (`vdmm-ctl binding list --json` on each namespace's pin directory), each with
//!   its own endpoint as the outer source, within [`BOUND`];
//! - with etcd killed, every agent keeps running and its data plane keeps forwarding
//!   (a packet to the bound home is encapsulated and sent back out, `BPF_PROG_TEST_RUN`
//!   on the pinned program), `vdmm-ctl status` and `agent status` report etcd
//!   unreachable, and a change is refused with the clear error and changes nothing;
//! - after etcd restarts, changes are accepted again and all three converge;
//! - vAPs follow their location keys: a vAP created through one agent and moved through
//!   another (`vap create` on the new AP host) is in the new AP host's maps, leaves the
//!   old one's after its grace period of forwarding, and the anchor's binding points at
//!   the new AP host's locator, within [`BOUND`];
//! - `vdmm-ctl vap move` on etcd (cluster file naming each node's agent): refused without
//!   a change for an unknown AP host or client and a move to where the client is; the
//!   move rewrites the location through the target's agent and returns when the target
//!   serves, the anchor switched and the source forwarded and removed the vAP; with etcd
//!   down it fails and nothing moved; after the restart it moves back;
//! - a run of vAP moves through the agents on a three-member etcd with one member
//!   killed, then all: the moves complete and reach every data plane; without etcd the
//!   data planes forward and moves are refused; after the restart all converge;
//! - liveness: the watchdog's moves after an agent's SIGKILL reach the neighbour's maps
//!   and the anchor; the restarted agent removes the vAPs that moved away.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use vdmm_ctl::pin::PinDir;
use vdmm_tests::{
    agent::AgentProcess,
    etcd::{EtcdCluster, require_etcd},
    lab::default_ctl_path,
    netns::{Netns, mount_pin_dir, require_root, run, unmount_pin_dir},
    packet::{ETH_P_IP, Ip, Ip4, L4, ethernet},
    pinned::expect_encap4_tx,
    testrun::ifindex,
};

/// How long a change may take to reach every data plane (asserted). Generous: the test
/// machine is shared with builds; the measured time is printed.
const BOUND: Duration = Duration::from_secs(3);
/// The locator the bindings point to, on every node's uplink (a permanent neighbour).
const LOCATOR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);
const LOCATOR2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 201);
const HOME: &str = "10.77.0.0/16";
/// The agents' key prefix in etcd.
const PREFIX: &str = "/etns";
const UL0_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0e, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0e, 0x02];
/// A socket nobody listens on: `vdmm-ctl` with it works on the maps directly.
const NO_AGENT: &str = "/run/vdmm/etns-no-agent.sock";
/// How long an AP host forwards a vAP that moved away (`vap_grace_ms` of the vAP tests).
const GRACE: Duration = Duration::from_millis(1000);

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The root namespace's end of node `i`'s veth to etcd.
fn etcd_side(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(100, 77, i as u8, 1)
}

/// Node `i`'s tunnel endpoint (on its uplink `ul0`).
fn endpoint(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 10 + i as u8)
}

/// Unmounts a pin directory when dropped.
struct PinMount(PathBuf);

impl Drop for PinMount {
    fn drop(&mut self) {
        unmount_pin_dir(&self.0);
    }
}

/// One node: its namespace (with a veth to the root namespace and an uplink), its pinned
/// data plane, its agent. Dropped in this order: agent, pins, namespace.
struct Node {
    agent: AgentProcess,
    pins: PinMount,
    ns: Netns,
}

/// Creates node `i`'s namespace: `et0` toward etcd (the root end `etv<pid><i>` holds
/// [`etcd_side`]), `ul0` with the node's endpoint and the locators as neighbours.
fn node_netns(i: usize) -> Result<Netns> {
    let ns = Netns::new(&format!("et{i}"))?;
    let root_if = format!("etv{}{i}", std::process::id() % 100_000);
    run(std::process::Command::new("ip").args([
        "link",
        "add",
        &root_if,
        "type",
        "veth",
        "peer",
        "name",
        "et0",
        "netns",
        ns.name(),
    ]))?;
    run(std::process::Command::new("ip").args([
        "addr",
        "add",
        &format!("{}/30", etcd_side(i)),
        "dev",
        &root_if,
    ]))?;
    run(std::process::Command::new("ip").args(["link", "set", &root_if, "up"]))?;
    let sh = |args: String| -> Result<()> {
        ns.ip(&args.split_whitespace().collect::<Vec<_>>())?;
        Ok(())
    };
    sh(format!(
        "addr add {}/30 dev et0",
        Ipv4Addr::new(100, 77, i as u8, 2)
    ))?;
    sh("link set et0 up".into())?;
    sh("link add ul0 type veth peer name ul0p".into())?;
    sh(format!("link set ul0 address {}", mac(UL0_MAC)))?;
    sh("link set ul0 up".into())?;
    sh("link set ul0p up".into())?;
    sh(format!("addr add {}/24 dev ul0", endpoint(i)))?;
    // The client-facing port of the node as an AP host (vdmm_vap is attached to it).
    sh("link add cf0 type veth peer name cf0p".into())?;
    sh("link set cf0 up".into())?;
    sh("link set cf0p up".into())?;
    for l in [LOCATOR, LOCATOR2] {
        sh(format!(
            "neigh add {l} lladdr {} dev ul0 nud permanent",
            mac(PEER_MAC)
        ))?;
    }
    ns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
    Ok(ns)
}

/// The bindings in node's pinned maps: home -> (locator, source).
fn bindings(n: &Node) -> Result<Vec<(String, String, String)>> {
    let out = n.agent.ctl(&["binding", "list", "--json"])?;
    let v: serde_json::Value = serde_json::from_str(&out).context("binding list --json")?;
    Ok(v.as_array()
        .context("a list")?
        .iter()
        .map(|b| {
            let s = |k: &str| b[k].as_str().unwrap_or_default().to_string();
            (s("home"), s("locator"), s("source"))
        })
        .collect())
}

/// What node `i` must hold: `home -> locator`, each with node `i`'s endpoint as source.
fn want(i: usize, homes: &[(&str, Ipv4Addr)]) -> Vec<(String, String, String)> {
    homes
        .iter()
        .map(|(h, l)| (h.to_string(), l.to_string(), endpoint(i).to_string()))
        .collect()
}

/// The bindings of node's maps that are not a client's host binding (`/32`, `/128`: an
/// anchor derives those from the vAP locations; checked on their own).
fn shared_bindings(n: &Node) -> Result<Vec<(String, String, String)>> {
    Ok(bindings(n)?
        .into_iter()
        .filter(|(h, _, _)| !h.ends_with("/32") && !h.ends_with("/128"))
        .collect())
}

/// Waits until every node's maps hold exactly `homes` (besides clients' host bindings);
/// returns how long it took.
fn converge(nodes: &[Node], homes: &[(&str, Ipv4Addr)], within: Duration) -> Result<Duration> {
    let t0 = Instant::now();
    let mut pending: Vec<usize> = (0..nodes.len()).collect();
    loop {
        let mut still = Vec::new();
        for &i in &pending {
            if shared_bindings(&nodes[i])? != want(i, homes) {
                still.push(i);
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > within {
            let got: Vec<String> = pending
                .iter()
                .map(|&i| format!("node {i}: {:?}", shared_bindings(&nodes[i])))
                .collect();
            bail!(
                "not converged on {homes:?} within {within:?}: {}",
                got.join("; ")
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A 64-byte UDP packet from a correspondent to `dst`, arriving on `ul0`.
fn frame_to(dst: Ipv4Addr) -> Vec<u8> {
    ethernet(
        UL0_MAC,
        PEER_MAC,
        ETH_P_IP,
        &Ip::V4(Ip4::new(
            Ipv4Addr::new(198, 51, 100, 7),
            dst,
            L4::Udp {
                sport: 40000,
                dport: 5001,
                len: 64 - 14 - 28,
            },
        ))
        .bytes(),
    )
}

/// Node's data plane forwards a packet to the bound home (4in4, XDP_TX).
fn forwards(n: &Node) -> Result<()> {
    let _in = n.ns.enter()?;
    let pins = PinDir::new(&n.pins.0);
    expect_encap4_tx(
        &pins,
        &frame_to(Ipv4Addr::new(10, 77, 3, 4)),
        ifindex("ul0")?,
    )
    .map(|_| ())
    .with_context(|| format!("forwarding in {}", n.ns.name()))
}

fn store_health(n: &Node) -> Result<serde_json::Value> {
    Ok(n.agent.ok(r#"{"request":"status"}"#)?["store_health"].clone())
}

/// Waits until `cond` holds for every node's `store_health`.
fn wait_health(
    nodes: &[Node],
    what: &str,
    within: Duration,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> Result<Duration> {
    let t0 = Instant::now();
    loop {
        let mut all = true;
        for n in nodes {
            if !cond(&store_health(n)?) {
                all = false;
            }
        }
        if all {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > within {
            bail!(
                "the agents did not report {what} within {within:?}: {:?}",
                nodes.iter().map(store_health).collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `vdmm-ctl` on a node's pinned maps directly, not through its agent; returns
/// stdout.
fn on_maps_of(ctl: &Path, ns: &Netns, pins: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(ctl)
        .args([
            "--agent-socket",
            NO_AGENT,
            "--netns",
            ns.name(),
            "--pin-dir",
        ])
        .arg(pins)
        .args(args)
        .output()
        .with_context(|| format!("spawn {}", ctl.display()))?;
    ensure!(
        out.status.success(),
        "{}: vdmm-ctl {} failed: {}",
        ns.name(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A vAP as a node's maps hold it: vAP MAC, mode (`local` or `forward`), forwarding
/// target (empty when local), source toward the anchor.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MapVap {
    vap_mac: String,
    mode: String,
    forward_to: String,
    source: String,
}

/// The vAPs in node's pinned maps (read without its agent, which may be dead), by client.
fn vaps(n: &Node) -> Result<BTreeMap<String, MapVap>> {
    let out = on_maps_of(&n.agent.ctl, &n.ns, &n.pins.0, &["vap", "list", "--json"])?;
    let v: serde_json::Value = serde_json::from_str(&out).context("vap list --json")?;
    Ok(v.as_array()
        .context("a list")?
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (
                s("client"),
                MapVap {
                    vap_mac: s("vap_mac"),
                    mode: s("mode"),
                    forward_to: s("forward_to"),
                    source: s("source"),
                },
            )
        })
        .collect())
}

/// The binding of `home` in node's maps: (locator, source).
fn binding_of(n: &Node, home: &str) -> Result<Option<(String, String)>> {
    Ok(bindings(n)?
        .into_iter()
        .find(|(h, _, _)| h == home)
        .map(|(_, l, s)| (l, s)))
}

/// Polls `check` until it returns Ok(true); how long it took, or what it last saw.
fn wait_for(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Result<Option<String>>,
) -> Result<Duration> {
    let t0 = Instant::now();
    loop {
        match check()? {
            None => return Ok(t0.elapsed()),
            Some(seen) if t0.elapsed() > within => {
                bail!("{what}: not within {within:?}; last seen: {seen}")
            }
            Some(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Three namespaces with an agent each (`store = "etcd"`, node names `et0..2`, the
/// endpoint of each added through its agent) on a one-member etcd; `etcd_extra` goes into
/// every agent's `[etcd]` section.
fn start_cluster(etcd_extra: &str) -> Result<(EtcdCluster, Vec<Node>)> {
    start_cluster_on(1, etcd_extra)
}

/// [`start_cluster`] on an etcd of `members` members (every agent lists them all).
fn start_cluster_on(members: usize, etcd_extra: &str) -> Result<(EtcdCluster, Vec<Node>)> {
    require_root()?;
    require_etcd()?;
    let ctl = default_ctl_path()?;
    let mut namespaces = Vec::new();
    for i in 0..3 {
        namespaces.push(node_netns(i)?);
    }
    let extra: Vec<IpAddr> = (0..3).map(|i| IpAddr::V4(etcd_side(i))).collect();
    let etcd = EtcdCluster::start_listening("etns", members, &extra)?;
    let mut nodes = Vec::new();
    for (i, ns) in namespaces.into_iter().enumerate() {
        let pins = PinMount(PathBuf::from("/run/vdmm").join(ns.name()));
        mount_pin_dir(&pins.0)?;
        on_maps_of(&ctl, &ns, &pins.0, &["load", "--client-facing", "cf0"])?;
        let endpoints = etcd
            .endpoints_at(extra[i])
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", ");
        // 1 s unless the test says otherwise.
        let timeout = if etcd_extra.contains("request_timeout_ms") {
            ""
        } else {
            "request_timeout_ms = 1000\n"
        };
        let mut agent = AgentProcess::configure_with(
            &ctl,
            ns.name(),
            &pins.0,
            &format!("store = \"etcd\"\nnode_name = \"et{i}\""),
            &format!(
                "[etcd]\nendpoints = [{endpoints}]\nprefix = \"{PREFIX}\"\n{timeout}{etcd_extra}"
            ),
        )?;
        agent.start()?;
        agent.ctl(&["endpoint", "add", &endpoint(i).to_string()])?;
        nodes.push(Node { agent, pins, ns });
    }
    Ok((etcd, nodes))
}

#[test]
fn three_agents_share_bindings_through_etcd_and_ride_out_its_loss() -> Result<()> {
    let (mut etcd, nodes) = start_cluster("")?;
    // A binding added through node 0 reaches all three data planes.
    let t0 = Instant::now();
    let t = bind_home(&nodes)?;
    println!(
        "binding added on node 0: in all three data planes {:?} after the command returned ({:?} after it started)",
        t,
        t0.elapsed()
    );
    for n in &nodes {
        forwards(n)?;
    }
    // Replaced through node 1, then a second one added through node 2.
    nodes[1].agent.ctl(&[
        "binding",
        "add",
        HOME,
        "--locator",
        &LOCATOR2.to_string(),
        "--no-route",
        "--replace",
    ])?;
    let t = converge(&nodes, &[(HOME, LOCATOR2)], BOUND)?;
    println!("binding replaced on node 1: in all three data planes in {t:?}");
    nodes[2].agent.ctl(&[
        "binding",
        "add",
        "10.78.0.0/16",
        "--locator",
        &LOCATOR.to_string(),
        "--no-route",
    ])?;
    let t = converge(
        &nodes,
        &[(HOME, LOCATOR2), ("10.78.0.0/16", LOCATOR)],
        BOUND,
    )?;
    println!("binding added on node 2: in all three data planes in {t:?}");
    nodes[0].agent.ctl(&["binding", "del", "10.78.0.0/16"])?;
    let t = converge(&nodes, &[(HOME, LOCATOR2)], BOUND)?;
    println!("binding deleted on node 0: gone from all three data planes in {t:?}");
    for n in &nodes {
        let h = store_health(n)?;
        ensure!(h["reachable"] == true, "{h}");
    }

    // etcd goes away: forwarding continues, the loss is reported, changes are refused.
    etcd.kill(0)?;
    let t = wait_health(&nodes, "etcd unreachable", Duration::from_secs(15), |h| {
        h["reachable"] == false
    })?;
    println!("etcd killed: all three agents report it unreachable after {t:?}");
    for (i, n) in nodes.iter().enumerate() {
        forwards(n)?;
        ensure!(
            bindings(n)? == want(i, &[(HOME, LOCATOR2)]),
            "node {i} lost state"
        );
        let status = n.agent.ctl(&["status"])?;
        ensure!(
            status.contains("etcd UNREACHABLE") && status.contains("changes are refused"),
            "vdmm-ctl status says:\n{status}"
        );
    }
    let state_before = nodes[1].agent.ok(r#"{"request":"state"}"#)?;
    let out = nodes[1].agent.ctl_raw(&[
        "binding",
        "add",
        "10.79.0.0/16",
        "--locator",
        &LOCATOR.to_string(),
        "--no-route",
    ])?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "a change went through without etcd");
    ensure!(
        err.contains("etcd is unreachable")
            && err.contains("changes are refused until it is back")
            && err.lines().count() == 1,
        "refusal: {err}"
    );
    println!("a change without etcd: {}", err.trim());
    ensure!(nodes[1].agent.ok(r#"{"request":"state"}"#)? == state_before);
    ensure!(bindings(&nodes[1])? == want(1, &[(HOME, LOCATOR2)]));
    let h = store_health(&nodes[1])?;
    ensure!(h["refused_changes"].as_u64() >= Some(1), "{h}");
    for n in &nodes {
        ensure!(
            n.agent.pid().is_some() && n.agent.request(r#"{"request":"status"}"#).is_ok(),
            "an agent died without etcd: {}",
            n.agent.log_tail()
        );
    }

    // etcd is back: changes are accepted again and every node catches up.
    etcd.restart(0)?;
    etcd.wait_healthy(0, Duration::from_secs(20))?;
    let t0 = Instant::now();
    loop {
        let out = nodes[2].agent.ctl_raw(&[
            "binding",
            "add",
            "10.79.0.0/16",
            "--locator",
            &LOCATOR.to_string(),
            "--no-route",
        ])?;
        if out.status.success() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(15) {
            bail!(
                "changes still refused 15 s after etcd came back: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "etcd restarted: a change accepted {:?} after it was healthy",
        t0.elapsed()
    );
    let t = converge(
        &nodes,
        &[(HOME, LOCATOR2), ("10.79.0.0/16", LOCATOR)],
        Duration::from_secs(10),
    )?;
    println!("after the restart: all three converged in {t:?}");
    wait_health(&nodes, "etcd reachable", Duration::from_secs(10), |h| {
        h["reachable"] == true && h["reconnects"].as_u64() >= Some(1)
    })?;
    for n in &nodes {
        forwards(n)?;
        n.agent.ctl(&["status"])?;
    }
    Ok(())
}

/// The value of `PREFIX/KIND/ID` in etcd, as JSON (Null when absent).
fn record(etcd: &EtcdCluster, kind: &str, id: &str) -> Result<serde_json::Value> {
    let out = etcd.etcdctl(&[
        "get",
        &format!("{PREFIX}/{kind}/{id}"),
        "--print-value-only",
    ])?;
    Ok(serde_json::from_str(out.trim()).unwrap_or(serde_json::Value::Null))
}

/// Waits until every node's host record lists its endpoint as a locator (written when
/// the endpoint was added through its agent).
fn wait_locators(etcd: &EtcdCluster, n: usize) -> Result<Duration> {
    wait_for("every node registered with its locator", BOUND, || {
        for i in 0..n {
            let h = record(etcd, "hosts", &format!("et{i}"))?;
            if !h["locators"]
                .as_array()
                .is_some_and(|l| l.iter().any(|a| a == &endpoint(i).to_string()))
            {
                return Ok(Some(format!("et{i}: {h}")));
            }
        }
        Ok(None)
    })
}

/// vAPs follow their location keys (`PREFIX/vaps/CLIENT_MAC`) into every data plane: a
/// vAP created through et1's agent is in et1's maps and bound on its anchor et0 to et1's
/// locator; created again through et2's agent with the same vAP MAC and address (the
/// move: one transaction rewrites its location), it is in et2's maps, et0's binding
/// points at et2's locator, and et1 forwards to et2 for the grace period, then removes it.
#[test]
fn a_vap_moved_through_one_agent_reaches_all_three_data_planes() -> Result<()> {
    let (etcd, nodes) = start_cluster(&format!("vap_grace_ms = {}\n", GRACE.as_millis()))?;
    wait_locators(&etcd, 3)?;
    let client = "a2:00:00:00:01:01";
    let home = "10.77.9.5/32";
    let anchor = endpoint(0).to_string();
    let create = |n: &Node, vap_mac: Option<&str>| -> Result<String> {
        let mut args = vec![
            "vap",
            "create",
            client,
            "--ipv4",
            "10.77.9.5",
            "--anchor",
            &anchor,
        ];
        if let Some(m) = vap_mac {
            args.extend(["--vap-mac", m]);
        }
        n.agent.ctl(&args)
    };
    let bound_to = |i: usize| Some((endpoint(i).to_string(), anchor.clone()));

    // Created through et1: in et1's maps when the command returns, on the anchor soon after.
    create(&nodes[1], None)?;
    let on1 = vaps(&nodes[1])?
        .remove(client)
        .context("not in et1's maps after vap create through its agent")?;
    ensure!(
        on1.mode == "local" && on1.source == endpoint(1).to_string(),
        "{on1:?}"
    );
    let vap_mac = on1.vap_mac.clone();
    let t = wait_for("the anchor binds the client to et1", BOUND, || {
        let b = binding_of(&nodes[0], home)?;
        Ok((b != bound_to(1)).then(|| format!("{b:?}")))
    })?;
    println!("vAP created through et1: anchor et0 binds {home} to et1's locator {t:?} later");
    let loc = record(&etcd, "vaps", client)?;
    ensure!(
        loc["ap_host"] == "et1" && loc["vap_mac"] == vap_mac.as_str(),
        "location: {loc}"
    );
    for i in [0, 2] {
        ensure!(vaps(&nodes[i])?.is_empty(), "a vAP in et{i}'s maps");
    }

    // Moved: created through et2 with the same vAP MAC and address.
    let t0 = Instant::now();
    create(&nodes[2], Some(&vap_mac))?;
    let t_cmd = t0.elapsed();
    let on2 = vaps(&nodes[2])?
        .remove(client)
        .context("not in et2's maps after vap create through its agent")?;
    ensure!(
        on2.vap_mac == vap_mac && on2.mode == "local" && on2.source == endpoint(2).to_string(),
        "{on2:?}"
    );
    let t_anchor = wait_for("the anchor's binding follows to et2", BOUND, || {
        let b = binding_of(&nodes[0], home)?;
        Ok((b != bound_to(2)).then(|| format!("{b:?}")))
    })
    .map(|_| t0.elapsed())?;
    let t_fwd = wait_for("et1 forwards to et2", BOUND, || {
        let v = vaps(&nodes[1])?.remove(client);
        let ok = v.as_ref().is_some_and(|v| {
            v.mode == "forward" && v.forward_to == endpoint(2).to_string() && v.vap_mac == vap_mac
        });
        Ok((!ok).then(|| format!("{v:?}")))
    })
    .map(|_| t0.elapsed())?;
    let t_gone = wait_for(
        "et1 removes it after the grace period",
        BOUND + GRACE,
        || {
            let v = vaps(&nodes[1])?.remove(client);
            Ok(v.map(|v| format!("{v:?}")))
        },
    )
    .map(|_| t0.elapsed())?;
    println!(
        "vAP moved through et2's agent: in et2's maps when the command returned ({:?}), \
         anchor et0 bound to et2 after {t_anchor:?}, et1 forwarding to et2 after {t_fwd:?}, \
         removed from et1 after {t_gone:?} (grace {GRACE:?})",
        t_cmd
    );
    ensure!(
        t_gone >= GRACE - Duration::from_millis(50),
        "removed from et1 {t_gone:?} after the move, before the grace period of {GRACE:?} ended"
    );
    ensure!(vaps(&nodes[0])?.is_empty(), "a vAP in et0's maps");
    ensure!(record(&etcd, "vaps", client)?["ap_host"] == "et2");

    // The anchor's binding follows the location: pointing it elsewhere is refused.
    let out = nodes[0].agent.ctl_raw(&[
        "binding",
        "add",
        home,
        "--locator",
        &endpoint(1).to_string(),
        "--replace",
    ])?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("follows the vAP location"),
        "binding add on a client's home: {err}"
    );
    ensure!(binding_of(&nodes[0], home)? == bound_to(2));

    // Deleted through et2: gone from its maps and from the anchor.
    nodes[2].agent.ctl(&["vap", "delete", client])?;
    ensure!(vaps(&nodes[2])?.is_empty());
    let t = wait_for("the anchor drops the client's binding", BOUND, || {
        let b = binding_of(&nodes[0], home)?;
        Ok(b.map(|b| format!("{b:?}")))
    })?;
    println!("vAP deleted through et2: anchor's binding gone {t:?} later");
    ensure!(record(&etcd, "vaps", client)?.is_null());
    Ok(())
}

/// `vdmm-ctl vap move` in cluster mode: the cluster file names each node's agent (et1 and
/// et2 AP hosts, et0 the anchor); the agents on etcd say so (`status`: `vap_grace_ms`),
/// so the move is the location's write through et2's agent and the mover waits for the
/// anchor and the source to follow. Refusals change nothing; with etcd down the move
/// fails and the client stays where it was; after the restart it moves back.
#[test]
fn vap_move_on_etcd_rewrites_the_location_and_waits_for_every_node() -> Result<()> {
    let (mut etcd, nodes) = start_cluster(&format!("vap_grace_ms = {}\n", GRACE.as_millis()))?;
    wait_locators(&etcd, 3)?;
    // Every node reaches the others' endpoints on its uplink: the mover resolves the
    // new paths' neighbour entries (anchor and source toward the target, the target
    // toward the anchor) before it moves the location.
    for (i, n) in nodes.iter().enumerate() {
        for j in (0..3).filter(|j| *j != i) {
            n.ns.ip(&[
                "neigh",
                "replace",
                &endpoint(j).to_string(),
                "lladdr",
                &mac(PEER_MAC),
                "dev",
                "ul0",
                "nud",
                "permanent",
            ])?;
        }
    }
    let dir = std::env::temp_dir().join(format!("vdmm-etcd-move-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = DirCleanup(dir.clone());
    let cluster = dir.join("cluster.toml");
    let entry = |kind: &str, i: usize| {
        format!(
            "[[{kind}]]\nname = \"et{i}\"\nlocator = \"{}\"\npin_dir = \"{}\"\nnetns = \"{}\"\nagent_socket = \"{}\"\n\n",
            endpoint(i),
            nodes[i].pins.0.display(),
            nodes[i].ns.name(),
            nodes[i].agent.socket.display()
        )
    };
    std::fs::write(
        &cluster,
        format!(
            "{}{}{}",
            entry("ap_host", 1),
            entry("ap_host", 2),
            entry("anchor", 0)
        ),
    )?;
    let stats = dir.join("handover-stats.json");
    let vap_move = |client: &str, to: &str| -> Result<std::process::Output> {
        std::process::Command::new(&nodes[0].agent.ctl)
            .env("VDMM_HANDOVER_STATS", &stats)
            .args(["vap", "move", client, "--to", to, "--json", "--cluster"])
            .arg(&cluster)
            .output()
            .context("spawn vdmm-ctl vap move")
    };
    let client = "a2:00:00:00:02:01";
    let home = "10.77.9.6/32";
    let anchor = endpoint(0).to_string();
    let bound_to = |i: usize| Some((endpoint(i).to_string(), anchor.clone()));
    // The client is served by et`on` (same vAP MAC), not by et`off`, and bound to et`on`.
    let served_by = |on: usize, off: usize| -> Result<()> {
        let v = vaps(&nodes[on])?.remove(client);
        ensure!(
            v.as_ref().is_some_and(|v| v.mode == "local"),
            "et{on} does not serve it: {v:?}"
        );
        ensure!(vaps(&nodes[off])?.is_empty(), "a vAP left on et{off}");
        let b = binding_of(&nodes[0], home)?;
        ensure!(b == bound_to(on), "the anchor binds it to {b:?}");
        Ok(())
    };
    nodes[1].agent.ctl(&[
        "vap",
        "create",
        client,
        "--ipv4",
        "10.77.9.6",
        "--anchor",
        &anchor,
    ])?;
    let vap_mac = vaps(&nodes[1])?
        .remove(client)
        .context("not in et1's maps after vap create")?
        .vap_mac;
    wait_for("the anchor binds the client to et1", BOUND, || {
        let b = binding_of(&nodes[0], home)?;
        Ok((b != bound_to(1)).then(|| format!("{b:?}")))
    })?;

    // Refused, and nothing changes: an unknown AP host, an unknown client, the AP host
    // the client is on.
    let location = record(&etcd, "vaps", client)?;
    for (who, to, says) in [
        (
            client,
            "et7",
            "no AP host `et7` in the cluster (known: et1, et2)",
        ),
        (
            "a2:00:00:00:02:99",
            "et2",
            "no AP host serves client a2:00:00:00:02:99",
        ),
        (client, "et1", "client a2:00:00:00:02:01 is already on et1"),
    ] {
        let out = vap_move(who, to)?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && err.contains(says) && err.trim().lines().count() == 1,
            "vap move {who} --to {to}: {err}"
        );
        ensure!(
            record(&etcd, "vaps", client)? == location,
            "the location changed"
        );
        ensure!(binding_of(&nodes[0], home)? == bound_to(1));
        ensure!(vaps(&nodes[2])?.is_empty(), "a vAP on et2");
    }

    // The move: when the command returns, et2 serves with the same vAP MAC, the anchor
    // points at et2, et1 forwarded for its grace period and removed the vAP.
    let t0 = Instant::now();
    let out = vap_move(client, "et2")?;
    let took = t0.elapsed();
    ensure!(
        out.status.success(),
        "vap move: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).context("--json")?;
    println!("vap move on etcd ({took:?}): {report}");
    served_by(2, 1).context("when vap move returned")?;
    let on2 = vaps(&nodes[2])?.remove(client).context("not on et2")?;
    ensure!(on2.vap_mac == vap_mac, "{on2:?}");
    ensure!(record(&etcd, "vaps", client)?["ap_host"] == "et2");
    ensure!(
        report["from"] == "et1"
            && report["to"] == "et2"
            && report["anchor"] == "et0"
            && report["homes"][0] == home
            && report["grace_ms"].as_f64() == Some(GRACE.as_millis() as f64),
        "{report}"
    );
    let phase = |p: &str| report["phases"][p].as_f64().unwrap_or(-1.0);
    for p in [
        "prepare_target",
        "switch_anchor",
        "forward_source",
        "remove_source",
    ] {
        ensure!(phase(p) >= 0.0, "phase {p} missing: {report}");
    }
    let switch = report["switch_over_ms"].as_f64().unwrap_or(f64::MAX);
    ensure!(
        switch < BOUND.as_millis() as f64,
        "switch-over after {switch} ms"
    );
    ensure!(
        report["total_ms"].as_f64() >= Some(GRACE.as_millis() as f64 - 50.0),
        "done before the grace period: {report}"
    );

    // etcd down: the move fails at its one write and nothing moved.
    etcd.kill(0)?;
    wait_health(&nodes, "etcd unreachable", Duration::from_secs(15), |h| {
        h["reachable"] == false
    })?;
    let out = vap_move(client, "et1")?;
    let err = String::from_utf8_lossy(&out.stderr);
    println!("vap move without etcd: {}", err.trim());
    ensure!(
        !out.status.success()
            && err.contains("etcd is unreachable")
            && err.contains("the location did not move: the client stays on et2"),
        "vap move without etcd: {err}"
    );
    served_by(2, 1).context("after a move without etcd")?;

    // etcd back: the move back goes through (once the agents take changes again).
    etcd.restart(0)?;
    etcd.wait_healthy(0, Duration::from_secs(20))?;
    wait_health(&nodes, "etcd reachable", Duration::from_secs(15), |h| {
        h["reachable"] == true
    })?;
    let t0 = Instant::now();
    let report: serde_json::Value = loop {
        let out = vap_move(client, "et1")?;
        if out.status.success() {
            break serde_json::from_slice(&out.stdout).context("--json")?;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            t0.elapsed() < Duration::from_secs(15) && err.contains("the location did not move"),
            "vap move back after the restart: {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "vap move back after the restart (done {:?} after the agents saw etcd again): {report}",
        t0.elapsed()
    );
    served_by(1, 2).context("after the move back")?;

    // Every outcome counted.
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats)?)?;
    ensure!(
        s["completed"] == 2
            && s["refused"]["unknown_ap"] == 1
            && s["refused"]["unknown_client"] == 1
            && s["refused"]["already_there"] == 1
            && s["failed"]["prepare_target"].as_u64() >= Some(1),
        "handover counters: {s}"
    );
    Ok(())
}

/// Removes a directory when dropped.
struct DirCleanup(PathBuf);

impl Drop for DirCleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Binds [`HOME`] to [`LOCATOR`] through node 0 and waits until every node has it;
/// returns how long that took after the command returned.
fn bind_home(nodes: &[Node]) -> Result<Duration> {
    nodes[0].agent.ctl(&[
        "binding",
        "add",
        HOME,
        "--locator",
        &LOCATOR.to_string(),
        "--no-route",
    ])?;
    converge(nodes, &[(HOME, LOCATOR)], BOUND)
}

/// `vap create` of `client` (address `addr`, anchored at et0, `vap_mac`) through node's
/// agent, as it ends.
fn create_raw(n: &Node, client: &str, addr: &str, vap_mac: &str) -> Result<std::process::Output> {
    let anchor = endpoint(0).to_string();
    n.agent.ctl_raw(&[
        "vap",
        "create",
        client,
        "--ipv4",
        addr,
        "--anchor",
        &anchor,
        "--vap-mac",
        vap_mac,
    ])
}

/// What [`move_vap`] had to do again.
#[derive(Default)]
struct Retries {
    /// Planned again: the agent's view was behind (`plan the change again`).
    replanned: usize,
    /// Sent again after the agent's commit failed without an answer from etcd (e.g.
    /// `Timeout expired` right after a member was killed): the caller cannot know whether
    /// it was applied, as a handover mover would not.
    unanswered: usize,
}

/// Sends `vap create` of `client` (address `addr`, anchored at et0, `vap_mac`) through
/// node's agent, as a mover would: planning it again while the agent says its store
/// moved on, and after a commit etcd did not answer, first looking whether it was
/// applied after all (the vAP in the node's maps) and else sending it again.
fn move_vap(
    n: &Node,
    client: &str,
    addr: &str,
    vap_mac: &str,
    retries: &mut Retries,
) -> Result<()> {
    for _ in 0..6 {
        let out = create_raw(n, client, addr, vap_mac)?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("plan the change again") {
            retries.replanned += 1;
            std::thread::sleep(Duration::from_millis(20));
        } else if err.contains("etcd request failed (commit)") {
            retries.unanswered += 1;
            println!(
                "vap create through {}: {} (trying again)",
                n.ns.name(),
                err.trim()
            );
            std::thread::sleep(Duration::from_millis(200));
            if vaps(n)?
                .get(client)
                .is_some_and(|v| v.mode == "local" && v.vap_mac == vap_mac)
            {
                return Ok(());
            }
        } else {
            bail!("vap create through {}: {}", n.ns.name(), err.trim());
        }
    }
    bail!(
        "vap create through {}: not through after 6 attempts",
        n.ns.name()
    )
}

/// Waits until `client` is served by node `to` only (the other AP host removed it after
/// its grace period) and the anchor et0 binds `home` to `to`'s locator; returns when the
/// anchor's binding was seen switched and when everything was.
fn moved(
    nodes: &[Node],
    client: &str,
    home: &str,
    to: usize,
    within: Duration,
) -> Result<(Duration, Duration)> {
    let t0 = Instant::now();
    let want = Some((endpoint(to).to_string(), endpoint(0).to_string()));
    let anchor = wait_for("the anchor's binding follows the move", within, || {
        let b = binding_of(&nodes[0], home)?;
        Ok((b != want).then(|| format!("{b:?}")))
    })?;
    wait_for("the vAP on its new AP host only", within + GRACE, || {
        for (i, n) in nodes.iter().enumerate() {
            let v = vaps(n)?.remove(client);
            let ok = if i == to {
                v.as_ref().is_some_and(|v| v.mode == "local")
            } else {
                v.is_none()
            };
            if !ok {
                return Ok(Some(format!("et{i}: {v:?}")));
            }
        }
        Ok(None)
    })?;
    Ok((anchor, t0.elapsed()))
}

/// A three-member etcd under a run of vAP moves through the agents (`vap create` on the
/// other AP host, et1 and et2 in turn, anchored at et0), one member killed during the
/// run: every move completes and reaches the three data planes within [`BOUND`]. With
/// all members down the data planes keep forwarding and a move is refused; after the
/// members restart a move is accepted again and every data plane converges.
#[test]
fn vap_moves_ride_out_a_killed_member_and_the_loss_of_all() -> Result<()> {
    // The default request deadline (2 s): a commit may wait for a new leader.
    let (mut etcd, nodes) = start_cluster_on(
        3,
        &format!(
            "vap_grace_ms = {}\nrequest_timeout_ms = 2000\n",
            GRACE.as_millis()
        ),
    )?;
    wait_locators(&etcd, 3)?;
    bind_home(&nodes)?;
    let (client, addr, home) = ("a2:00:00:00:02:01", "10.77.7.5", "10.77.7.5/32");
    let vap_mac = "02:56:44:00:02:01";
    let mut retries = Retries::default();
    move_vap(&nodes[1], client, addr, vap_mac, &mut retries)?;
    moved(&nodes, client, home, 1, BOUND)?;

    const MOVES: usize = 12;
    const KILL_AFTER: usize = 4;
    let mut switch = Vec::new();
    for k in 0..MOVES {
        if k == KILL_AFTER {
            etcd.kill(0)?;
            println!("etcd member 0 killed after {k} moves");
        }
        let to = if k.is_multiple_of(2) { 2 } else { 1 };
        let t0 = Instant::now();
        move_vap(&nodes[to], client, addr, vap_mac, &mut retries)?;
        let cmd = t0.elapsed();
        let (anchor, all) = moved(&nodes, client, home, to, BOUND)
            .with_context(|| format!("move {} to et{to}", k + 1))?;
        switch.push(cmd + anchor);
        println!(
            "move {:2} to et{to}: command {cmd:?}, anchor switched {anchor:?} later, old AP \
             host's vAP removed {all:?} later",
            k + 1
        );
    }
    switch.sort();
    println!(
        "{MOVES} moves ({} with a member killed), {} planned again, {} sent again after a \
         commit etcd did not answer: command to anchor switch p50 {:?}, max {:?}",
        MOVES - KILL_AFTER,
        retries.replanned,
        retries.unanswered,
        switch[switch.len() / 2],
        switch[switch.len() - 1]
    );

    // All members down: forwarding continues, moves are refused, nothing changes.
    for i in 0..3 {
        etcd.kill(i)?;
    }
    wait_health(&nodes, "etcd unreachable", Duration::from_secs(15), |h| {
        h["reachable"] == false
    })?;
    let before: Vec<_> = nodes.iter().map(vaps).collect::<Result<_>>()?;
    let anchor_before = binding_of(&nodes[0], home)?;
    for n in &nodes {
        forwards(n)?;
    }
    let last = if MOVES.is_multiple_of(2) { 1 } else { 2 };
    let target = 3 - last;
    let out = create_raw(&nodes[target], client, addr, vap_mac)?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && err.contains("etcd is unreachable")
            && err.contains("changes are refused"),
        "a move without etcd: {err}"
    );
    println!("a move with all members down: {}", err.trim());
    let after: Vec<_> = nodes.iter().map(vaps).collect::<Result<_>>()?;
    ensure!(after == before, "the maps changed without etcd");
    ensure!(binding_of(&nodes[0], home)? == anchor_before);

    // The members restart: a move is accepted again and all three converge.
    for i in 0..3 {
        etcd.restart(i)?;
    }
    for i in 0..3 {
        etcd.wait_healthy(i, Duration::from_secs(20))?;
    }
    let t0 = Instant::now();
    loop {
        match move_vap(&nodes[target], client, addr, vap_mac, &mut retries) {
            Ok(_) => break,
            Err(e) if t0.elapsed() > Duration::from_secs(15) => {
                return Err(e.context("moves still refused 15 s after etcd came back"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    let accepted = t0.elapsed();
    let (anchor, all) = moved(&nodes, client, home, target, BOUND)?;
    converge(&nodes, &[(HOME, LOCATOR)], BOUND)?;
    println!(
        "members restarted: a move accepted {accepted:?} after they were healthy; anchor \
         switched {anchor:?} later, all three data planes converged {all:?} later"
    );
    Ok(())
}

/// Kills the watchdog process when dropped (also when the test fails).
struct WatchdogProcess(Option<std::process::Child>);

impl WatchdogProcess {
    /// SIGTERM, and what it printed.
    fn stop(&mut self) -> Result<String> {
        let c = self.0.take().context("not running")?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let out = c.wait_with_output()?;
        ensure!(
            out.status.success(),
            "the watchdog exited with {}",
            out.status
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for WatchdogProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Hosts' states, alive keys, and the AP host of each vAP, as etcd holds them.
type Placement = (
    std::collections::BTreeMap<String, String>,
    std::collections::BTreeSet<String>,
    std::collections::BTreeMap<String, String>,
);

fn placement(etcd: &EtcdCluster) -> Result<Placement> {
    let out = etcd.etcdctl(&["get", "--prefix", &format!("{PREFIX}/"), "-w", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let mut p = Placement::default();
    let b64 = |s: &serde_json::Value| -> Result<String> {
        let bytes = base64_decode(s.as_str().unwrap_or_default())?;
        Ok(String::from_utf8(bytes)?)
    };
    for kv in v["kvs"].as_array().into_iter().flatten() {
        let key = b64(&kv["key"])?;
        let rest = key.strip_prefix(&format!("{PREFIX}/")).unwrap_or_default();
        let (dir, id) = rest.split_once('/').unwrap_or_default();
        let value: serde_json::Value =
            serde_json::from_str(&b64(&kv["value"])?).unwrap_or_default();
        match dir {
            "hosts" => {
                p.0.insert(
                    id.into(),
                    value["state"].as_str().unwrap_or_default().into(),
                );
            }
            "alive" => {
                p.1.insert(id.into());
            }
            "vaps" => {
                p.2.insert(
                    id.into(),
                    value["ap_host"].as_str().unwrap_or_default().into(),
                );
            }
            _ => {}
        }
    }
    Ok(p)
}

/// Standard base64 (what `etcdctl -w json` writes keys and values in).
fn base64_decode(s: &str) -> Result<Vec<u8>> {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ABC.iter().position(|a| *a == c).context("not base64")? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

fn wait_placement(
    etcd: &EtcdCluster,
    what: &str,
    cond: impl Fn(&Placement) -> bool,
) -> Result<Duration> {
    let t0 = Instant::now();
    loop {
        let p = placement(etcd)?;
        if cond(&p) {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > Duration::from_secs(15) {
            bail!("{what}: not within 15 s: {p:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The watchdog test's client `i` and its home.
fn dog_client(i: usize) -> String {
    format!("a2:00:00:00:00:{i:02x}")
}

fn dog_home(i: usize) -> String {
    format!("10.77.8.{i}/32")
}

/// None when each of the watchdog test's 8 clients is served by node `on(i)` and bound
/// to its locator on the anchor et0; else what differs.
fn placed(nodes: &[Node], on: &dyn Fn(usize) -> usize) -> Result<Option<String>> {
    for i in 0..8 {
        let n = on(i);
        let v = vaps(&nodes[n])?.remove(&dog_client(i));
        if v.as_ref().is_none_or(|v| v.mode != "local") {
            return Ok(Some(format!("{} on et{n}: {v:?}", dog_client(i))));
        }
        let b = binding_of(&nodes[0], &dog_home(i))?;
        if b != Some((endpoint(n).to_string(), endpoint(0).to_string())) {
            return Ok(Some(format!("et0's binding of {}: {b:?}", dog_home(i))));
        }
    }
    Ok(None)
}

/// Liveness with real agents: each holds a lease (TTL 2 s); `vdmm-ctl watchdog` marks
/// the node whose agent was killed (SIGKILL) down once its lease expired and moves the
/// vAP locations on it to the other two; the killed node's data plane keeps forwarding;
/// restarted, the agent registers again.
#[test]
fn a_killed_agent_is_marked_down_and_its_clients_go_to_the_others() -> Result<()> {
    let (etcd, mut nodes) = start_cluster("lease_ttl_s = 2\n")?;
    wait_placement(&etcd, "three nodes up", |(h, a, _)| {
        a.len() == 3 && h.values().filter(|s| *s == "up").count() == 3
    })?;
    wait_locators(&etcd, 3)?;
    // The operator names et1 et2's neighbour (the registration keeps it).
    let mut h2 = record(&etcd, "hosts", "et2")?;
    h2["neighbours"] = serde_json::json!(["et1"]);
    etcd.etcdctl(&["put", &format!("{PREFIX}/hosts/et2"), &h2.to_string()])?;
    // Six clients on et2, two on et1, all anchored at et0.
    for i in 0..8 {
        let host = if i < 6 { "et2" } else { "et1" };
        etcd.etcdctl(&[
            "put",
            &format!("{PREFIX}/vaps/{}", dog_client(i)),
            &format!(
                r#"{{"ap_host":"{host}","vap_mac":"02:56:44:00:00:{i:02x}","ipv4":"10.77.8.{i}","anchor":"{}"}}"#,
                endpoint(0)
            ),
        ])?;
    }
    // Served by their AP hosts, bound on the anchor.
    let t = wait_for("the vAPs in their AP hosts' maps", BOUND, || {
        placed(&nodes, &|i| if i < 6 { 2 } else { 1 })
    })?;
    println!(
        "8 vAP locations written into etcd: in their AP hosts' maps and bound on the anchor {t:?} later"
    );
    bind_home(&nodes)?;
    let mut dog = WatchdogProcess(Some(
        std::process::Command::new(&nodes[0].agent.ctl)
            .args(["watchdog", "--config"])
            .arg(&nodes[0].agent.config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("spawn vdmm-ctl watchdog")?,
    ));
    std::thread::sleep(Duration::from_secs(1));
    ensure!(
        placement(&etcd)?.2.values().filter(|h| *h == "et2").count() == 6,
        "the watchdog moved clients while every node lived"
    );

    let t0 = Instant::now();
    nodes[2].agent.kill9()?;
    wait_placement(&etcd, "et2 marked down, its clients moved", |(h, _, v)| {
        h["et2"] == "down" && v.values().all(|host| host != "et2")
    })?;
    let t = t0.elapsed();
    println!("agent et2 killed: marked down and its 6 clients moved {t:?} later (lease TTL 2 s)");
    ensure!(
        t > Duration::from_millis(1200) && t < Duration::from_secs(6),
        "marked down {t:?} after the kill"
    );
    let (_, _, v) = placement(&etcd)?;
    ensure!(
        v.values().all(|h| h == "et1"),
        "all to et2's neighbour et1: {v:?}"
    );
    // The watchdog's moves reach the neighbour's maps and the anchor.
    let t1 = Instant::now();
    let t_maps = wait_for("the moved vAPs in et1's maps", BOUND, || {
        placed(&nodes, &|_| 1)
    })?;
    println!(
        "the watchdog's moves: all 8 vAPs in et1's maps and bound to et1 on the anchor          {t_maps:?} after the locations changed ({:?} after the kill)",
        t0.elapsed()
    );
    ensure!(t1.elapsed() <= BOUND + Duration::from_millis(500));
    // Its pinned data plane forwards without its agent.
    forwards(&nodes[2])?;

    ensure!(
        vaps(&nodes[2])?.len() == 6,
        "et2's maps kept their vAPs without the agent"
    );
    nodes[2].agent.start()?;
    wait_placement(&etcd, "et2 registered again", |(h, a, _)| {
        h["et2"] == "up" && a.contains("et2")
    })?;
    // Restarted, its agent removes the vAPs that live on et1 now from its maps.
    let t = wait_for("et2's stale vAPs removed", BOUND, || {
        let v = vaps(&nodes[2])?;
        Ok((!v.is_empty()).then(|| format!("{v:?}")))
    })?;
    println!(
        "et2 restarted: the vAPs now on et1 removed from its maps within {t:?} of registering"
    );
    converge(&nodes, &[(HOME, LOCATOR)], BOUND)?;
    let out = dog.stop()?;
    println!("{}", out.trim());
    ensure!(
        out.contains("1 nodes marked down, 6 vAPs moved") && out.contains(" 0 errors"),
        "{out}"
    );
    Ok(())
}
