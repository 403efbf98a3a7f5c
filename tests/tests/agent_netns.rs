//! The agent (`vdmm-ctl daemon`) end to end, in network namespaces:
//!
//! - it adopts a gateway programmed by hand (imports the maps on its first start, changes
//!   nothing), and being killed with SIGKILL and restarted under continuous UDP traffic
//!   loses no datagram (the receiver counts them all) and changes nothing either;
//! - bad input through the agent (CLI and raw socket) is refused and changes nothing: the
//!   desired state, the maps, the routes and the state file are compared before and after;
//! - a truncated or corrupted state file stops the agent at start with a clear message,
//!   and the file is left byte for byte as it was;
//! - a non-root user cannot change state through the socket (the peer-credential check
//!   behind a world-writable socket; plain permissions with the default mode);
//! - a real Prometheus server scrapes the agent, and queries through its HTTP API return
//!   the data-plane counters that traffic just moved and the agent's own counters;
//!   `promtool check metrics` accepts the text.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use vdmm_tests::{
    agent::AgentProcess,
    lab::{
        self, Family, GWA_CORR_IF, GWA_UL_IF, GWA_UL_V4, GWB_UL_V4, Gw, HOST_PREFIX_V4,
        HOST_PREFIX_V6, Lab, LabOptions, host_addr, in_netns, join,
    },
    netns::{Netns, mount_pin_dir, require_root, unmount_pin_dir},
};

fn build_lab() -> Lab {
    if let Err(e) = require_root() {
        panic!("{e}");
    }
    Lab::build(LabOptions::tunnel(Family::V4)).unwrap_or_else(|e| panic!("building the lab: {e:#}"))
}

/// An agent on gwA, which the lab programmed with vdmm-ctl (so it adopts that).
fn agent_on_gwa(lab: &Lab, extra: &str) -> AgentProcess {
    let extra = format!("[interfaces]\nattach = [\"{GWA_CORR_IF}\", \"{GWA_UL_IF}\"]\n{extra}");
    let mut a = AgentProcess::configure(&lab.ctl, lab.gwa.name(), lab.pin_dir(Gw::A), &extra)
        .expect("configure the agent");
    a.start().expect("start the agent");
    a
}

/// What the last full reconcile changed, from `status`.
fn last_reconcile_changes(a: &AgentProcess) -> u64 {
    let s = a.ok(r#"{"request":"status"}"#).unwrap();
    let r = &s["last_reconcile"]["report"];
    [
        "added",
        "updated",
        "removed",
        "routes_installed",
        "routes_removed",
    ]
    .iter()
    .map(|k| r[k].as_u64().unwrap_or(0))
    .sum()
}

#[test]
fn adopts_a_programmed_gateway_and_a_sigkill_under_traffic_loses_nothing() {
    let lab = build_lab();
    let bindings_before = lab.ctl(Gw::A, &["binding", "list", "--json"]).unwrap();
    let mut agent = agent_on_gwa(&lab, "");

    // First start: the agent took over what vdmm-ctl programmed, and changed nothing.
    let state = agent.ok(r#"{"request":"state"}"#).unwrap();
    let homes: Vec<&str> = state["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["home"].as_str().unwrap())
        .collect();
    assert_eq!(homes, [HOST_PREFIX_V4, HOST_PREFIX_V6], "{state}");
    assert_eq!(state["peers"][0]["addr"], GWB_UL_V4.to_string(), "{state}");
    assert_eq!(
        last_reconcile_changes(&agent),
        0,
        "the import changed the maps"
    );
    let revision = agent.ok(r#"{"request":"status"}"#).unwrap()["revision"].clone();

    // Continuous traffic correspondent -> host (gwA encapsulates, gwB decapsulates) while
    // the agent is killed and started again.
    let count = 5000;
    let dst = host_addr(Family::V4);
    let (received, restarted_after) = std::thread::scope(|sc| {
        let traffic = sc.spawn(|| {
            lab::udp_burst(
                &lab.corr,
                &lab.host,
                dst,
                count,
                100,
                Duration::from_millis(1),
            )
        });
        std::thread::sleep(Duration::from_millis(700));
        agent.kill9().unwrap();
        let killed_at = Instant::now();
        agent.start().unwrap();
        let restarted_after = killed_at.elapsed();
        (traffic.join().unwrap().unwrap(), restarted_after)
    });
    assert_eq!(
        received, count,
        "datagrams lost while the agent was killed and restarted ({restarted_after:?})"
    );
    // The restarted agent found everything as desired: nothing detached, reloaded or rewritten.
    assert_eq!(last_reconcile_changes(&agent), 0);
    let status = agent.ok(r#"{"request":"status"}"#).unwrap();
    assert_eq!(status["revision"], revision);
    assert_eq!(
        status["interfaces"],
        serde_json::json!([GWA_CORR_IF, GWA_UL_IF, "vdmmx1"])
    );
    assert_eq!(
        lab.ctl(Gw::A, &["binding", "list", "--json"]).unwrap(),
        bindings_before
    );
    eprintln!(
        "{received}/{count} datagrams arrived; the agent was back {restarted_after:?} after SIGKILL"
    );
}

/// Everything "changes nothing" compares: the desired state, the store's revision and
/// file, the maps (as vdmm-ctl lists them) and vdmm's kernel routes.
fn snapshot(lab: &Lab, a: &AgentProcess) -> Vec<String> {
    let mut v = vec![
        a.ok(r#"{"request":"state"}"#).unwrap().to_string(),
        a.ok(r#"{"request":"status"}"#).unwrap()["revision"].to_string(),
        std::fs::read_to_string(a.state_file()).unwrap(),
    ];
    for args in [
        &["binding", "list", "--json"][..],
        &["endpoint", "list", "--json"],
        &["peer", "list", "--json"],
        &["config", "show", "--json"],
    ] {
        v.push(lab.ctl(Gw::A, args).unwrap());
    }
    for f in ["-4", "-6"] {
        let out = lab.gwa.ip(&[f, "route", "show", "proto", "118"]).unwrap();
        v.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    v
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let lab = build_lab();
    let agent = agent_on_gwa(&lab, "");
    let before = snapshot(&lab, &agent);
    let gwb = GWB_UL_V4.to_string();
    let gwa = GWA_UL_V4.to_string();
    let many_endpoints: Vec<String> = (1..=65)
        .map(|i| format!("{{\"op\":\"endpoint_add\",\"addr\":\"198.18.0.{i}\"}}"))
        .collect();
    let batch_dir = agent.dir.join("batches");
    std::fs::create_dir_all(&batch_dir).unwrap();
    let batch = |name: &str, text: String| {
        let p = batch_dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let too_many = batch("too-many.json", format!("[{}]", many_endpoints.join(",")));
    let half_bad = batch(
        "half-bad.json",
        format!(
            "[{{\"op\":\"peer_add\",\"addr\":\"192.0.2.77\"}},\
             {{\"op\":\"binding_add\",\"home\":\"{HOST_PREFIX_V4}\",\"locator\":\"{gwb}\"}}]"
        ),
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["binding", "add", "10.9.0.0/33", "--locator", &gwb],
            "out of range",
        ),
        (
            vec!["binding", "add", "10.9.1.2/16", "--locator", &gwb],
            "did you mean 10.9.0.0/16",
        ),
        (
            vec!["binding", "add", HOST_PREFIX_V4, "--locator", &gwb],
            "already exists",
        ),
        (
            vec![
                "binding",
                "add",
                "10.9.0.0/16",
                "--locator",
                &gwb,
                "--source",
                "2001:db8:ff::1",
            ],
            "different address families",
        ),
        (
            vec![
                "binding",
                "add",
                "10.9.0.0/16",
                "--locator",
                "2001:db8:77::1",
            ],
            "no local IPv6",
        ),
        (
            vec!["binding", "add", "10.9.0.0/16", "--locator", "224.0.0.5"],
            "not a usable unicast",
        ),
        (
            vec!["binding", "del", "10.99.0.0/16"],
            "no binding for 10.99.0.0/16",
        ),
        (vec!["peer", "add", &gwb], "already a tunnel peer"),
        (vec!["peer", "add", "300.1.2.3"], "invalid address"),
        (
            vec!["endpoint", "del", &gwa],
            "is the source of the binding",
        ),
        (
            vec!["config", "set", "--outer-hop-limit", "300"],
            "out of range",
        ),
        (vec!["apply", &too_many], "table full"),
        (vec!["apply", &half_bad], "change 2 of 2: a binding for"),
    ];
    for (args, want) in &cases {
        let out = agent.ctl_raw(args).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "vdmm-ctl {} succeeded",
            args.join(" ")
        );
        assert!(err.contains(want), "vdmm-ctl {}: {err}", args.join(" "));
        assert_eq!(err.lines().count(), 1, "not one line: {err}");
    }
    // Straight to the socket: not JSON, an unknown request, an op the rules refuse, another
    // agent's pin directory.
    for (line, want) in [
        ("{not json", "invalid request"),
        (r#"{"request":"explode"}"#, "invalid request"),
        (
            r#"{"request":"apply","ops":[{"op":"endpoint_add","addr":"127.0.0.1"}]}"#,
            "not a usable unicast",
        ),
        (
            r#"{"request":"apply","ops":[{"op":"peer_add","addr":"192.0.2.78"}],"pin_dir":"/run/vdmm/other"}"#,
            "not /run/vdmm/other",
        ),
    ] {
        let v = agent.request(line).unwrap();
        assert_eq!(v["ok"], false, "{line}: {v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{line}: {v}");
    }
    assert_eq!(
        snapshot(&lab, &agent),
        before,
        "a refused change changed something"
    );
    // A good change still works afterwards (the checks above were not vacuous).
    agent.ctl(&["peer", "add", "192.0.2.77"]).unwrap();
    assert_ne!(snapshot(&lab, &agent), before);
}

/// A namespace with a pin directory and an agent that attaches to nothing.
struct Standalone {
    agent: AgentProcess,
    _pins: PinMount,
    _ns: Netns,
}

struct PinMount(PathBuf);

impl Drop for PinMount {
    fn drop(&mut self) {
        unmount_pin_dir(&self.0);
    }
}

fn standalone(tag: &str, extra: &str) -> Standalone {
    if let Err(e) = require_root() {
        panic!("{e}");
    }
    let ns = Netns::new(tag).unwrap();
    let pins = PinMount(PathBuf::from("/run/vdmm").join(ns.name()));
    mount_pin_dir(&pins.0).unwrap();
    let ctl = lab::default_ctl_path().unwrap();
    let mut agent = AgentProcess::configure(&ctl, ns.name(), &pins.0, extra).unwrap();
    agent.start().unwrap();
    Standalone {
        agent,
        _pins: pins,
        _ns: ns,
    }
}

#[test]
fn a_damaged_state_file_stops_the_start_and_is_left_untouched() {
    let mut s = standalone("agst", "");
    let a = &mut s.agent;
    a.ctl(&["endpoint", "add", "192.0.2.1"]).unwrap();
    a.ctl(&["peer", "add", "192.0.2.2"]).unwrap();
    a.ctl(&[
        "binding",
        "add",
        "10.1.0.0/16",
        "--locator",
        "192.0.2.2",
        "--no-route",
    ])
    .unwrap();
    let state = a.ok(r#"{"request":"state"}"#).unwrap();
    a.stop().unwrap();
    let path = a.state_file();
    let good = std::fs::read(&path).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&good).lines().count(),
        4,
        "snapshot + 3 batches"
    );
    let mut flipped = good.clone();
    let at = good.len() / 2;
    flipped[at] = if flipped[at] == b'1' { b'2' } else { b'1' };
    for (what, bytes, want) in [
        ("truncated", good[..good.len() - 9].to_vec(), "cut short"),
        ("corrupted", flipped, "checksum mismatch"),
        ("emptied", Vec::new(), "the file is empty"),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let (status, log) = a.start_expecting_failure().unwrap();
        assert!(!status.success(), "{what}: the agent started");
        assert!(
            log.contains("is damaged") && log.contains(want) && log.contains("left untouched"),
            "{what}: {log}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{what}: the file was changed"
        );
        // The data plane kept what it had.
        assert_eq!(a.ctl(&["peer", "list"]).unwrap(), "192.0.2.2\n");
    }
    std::fs::write(&path, &good).unwrap();
    a.start().unwrap();
    assert_eq!(a.ok(r#"{"request":"state"}"#).unwrap(), state);
}

/// Runs vdmm-ctl as user nobody (65534).
fn as_nobody(a: &AgentProcess, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&a.ctl)
        .arg("--pin-dir")
        .arg(&a.pin_dir)
        .arg("--agent-socket")
        .arg(&a.socket)
        .args(args)
        .output()
        .expect("run setpriv (util-linux)")
}

#[test]
fn a_non_root_user_cannot_change_state() {
    // A socket anyone may connect to: the peer-credential check must refuse the change.
    let s = standalone("agnr", "");
    let a = &s.agent;
    std::fs::set_permissions(
        &a.socket,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    a.ctl(&["peer", "add", "192.0.2.2"]).unwrap();
    let before = a.ok(r#"{"request":"state"}"#).unwrap();
    let out = as_nobody(a, &["peer", "add", "192.0.2.66"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nobody changed state");
    assert!(
        err.contains("permission denied: user 65534 may not change the agent's state"),
        "{err}"
    );
    let out = as_nobody(a, &["agent", "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The default mode, 0600: nobody cannot even connect, and is not let past the agent.
    std::fs::set_permissions(
        &a.socket,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = as_nobody(a, &["peer", "add", "192.0.2.66"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot connect to the agent") && err.contains("ermission denied"),
        "{err}"
    );
    assert_eq!(a.ok(r#"{"request":"state"}"#).unwrap(), before);
    assert_eq!(a.ctl(&["peer", "list"]).unwrap(), "192.0.2.2\n");
    let m = a.ok(r#"{"request":"status"}"#).unwrap();
    assert_eq!(m["peers"], 1);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET from inside `ns`; returns the body of a 200 answer.
fn http_get(ns: &Netns, addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let path = path.to_string();
    join(in_netns(ns, move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        anyhow::ensure!(
            head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
            "{head}"
        );
        Ok(body.to_string())
    }))
}

/// The value of a Prometheus instant query (summed over its series), if it has one.
fn query(ns: &Netns, prometheus: SocketAddr, q: &str) -> Option<f64> {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = http_get(ns, prometheus, &format!("/api/v1/query?query={enc}")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let r = v["data"]["result"].as_array()?;
    if r.is_empty() {
        return None;
    }
    Some(
        r.iter()
            .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .sum(),
    )
}

/// Waits (up to 30 s) until `q` is at least `min`; returns the value.
fn wait_for(ns: &Netns, prometheus: SocketAddr, q: &str, min: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        last = query(ns, prometheus, q);
        if last.is_some_and(|v| v >= min) {
            return last.unwrap();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("Prometheus never answered {q} with >= {min} (last: {last:?})");
}

struct Prometheus(Child, PathBuf);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[test]
fn prometheus_scrapes_the_agent_and_sees_traffic() {
    let lab = build_lab();
    let port = free_port();
    let exporter: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let agent = agent_on_gwa(&lab, &format!("[metrics]\nlisten = \"{exporter}\"\n"));
    let text = http_get(&lab.gwa, exporter, "/metrics").unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (Debian package prometheus; cargo xtask setup installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for family in [
        "vdmm_packets_total",
        "vdmm_bindings",
        "vdmm_agent_requests_total",
        "vdmm_agent_reconciles_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }

    let dir = std::env::temp_dir().join(format!("{}-prometheus", lab.gwa.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
             - job_name: vdmm-agent\n    static_configs:\n      - targets: ['{exporter}']\n"
        ),
    )
    .unwrap();
    let prom_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", lab.gwa.name(), "prometheus"])
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run prometheus (Debian package prometheus)");
    let _prometheus = Prometheus(child, dir);

    let encap = r#"sum(vdmm_packets_total{program="xdp",reason="encap",kind="4in4"})"#;
    // Prometheus is up and has scraped the agent once.
    wait_for(&lab.gwa, prom_addr, "vdmm_agent_store_revision", 0.0);
    let encap_before = query(&lab.gwa, prom_addr, encap).unwrap_or(0.0);
    let sent = 200;
    let got = lab::udp_burst(
        &lab.corr,
        &lab.host,
        host_addr(Family::V4),
        sent,
        100,
        Duration::from_micros(200),
    )
    .unwrap();
    assert_eq!(got, sent);
    let encap_after = wait_for(&lab.gwa, prom_addr, encap, encap_before + sent as f64);
    // A change through the agent moves its own counters.
    agent.ctl(&["peer", "add", "192.0.2.77"]).unwrap();
    let applied = wait_for(
        &lab.gwa,
        prom_addr,
        r#"vdmm_agent_requests_total{request="apply",result="ok"}"#,
        1.0,
    );
    wait_for(&lab.gwa, prom_addr, "vdmm_agent_desired_peers", 2.0);
    eprintln!(
        "Prometheus: 4in4 encapsulations {encap_before} -> {encap_after} after {sent} datagrams; \
         applied requests {applied}"
    );
}
