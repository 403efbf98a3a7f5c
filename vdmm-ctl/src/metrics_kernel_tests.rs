//! `vdmm-ctl metrics` against the real kernel (root only; skipped otherwise): load the
//! data plane into a throw-away network namespace with a pin directory of its own, fill
//! its tables, move its counters (per-CPU values written into the counter array, and
//! pings through the XDP interface), and check what `metrics dump` and a scrape of
//! `metrics serve` report; `promtool check metrics` (Debian package `prometheus`) must
//! accept the output, and a real Prometheus server scraping the exporter must return the
//! counters through its HTTP API.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aya::maps::{MapData, PerCpuArray, PerCpuValues};
use clap::Parser;
use vdmm_common::{Action, CounterValue, Reason, TunnelKind, counters::counter_index};

use crate::{
    cli::Cli,
    commands::{self, metrics::serve},
    kernel_tests::ip,
    loader,
    maps::{Dataplane, open_map},
    natpt::Translator,
    netns,
    pin::PinDir,
};

/// The gateway's namespace (`mk0`, the XDP interface) and a neighbour's (`mk1`, the
/// other end of the veth), and a pin directory; removed on drop (also after a panic).
struct Scratch {
    ns: String,
    peer_ns: String,
    pins: PathBuf,
    prometheus: Option<(Child, PathBuf)>,
}

impl Scratch {
    fn new() -> Self {
        let ns = format!("vdmmctl-metrics-{}", std::process::id());
        let peer_ns = format!("{ns}-peer");
        for n in [&ns, &peer_ns] {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
            ip(&["netns", "add", n]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n", &ns, "link", "add", "mk0", "type", "veth", "peer", "name", "mk1", "netns",
            &peer_ns,
        ]);
        ip(&["-n", &ns, "addr", "add", "192.0.2.1/24", "dev", "mk0"]);
        ip(&["-n", &ns, "link", "set", "mk0", "up"]);
        ip(&["-n", &peer_ns, "addr", "add", "192.0.2.2/24", "dev", "mk1"]);
        ip(&["-n", &peer_ns, "link", "set", "mk1", "up"]);
        let pins = PathBuf::from(format!("/run/vdmm/{ns}"));
        Self {
            ns,
            peer_ns,
            pins,
            prometheus: None,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some((mut child, dir)) = self.prometheus.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
        let c = std::ffi::CString::new(self.pins.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid path; lazy unmount of a bpffs this test mounted (drops its pins).
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&self.pins);
        for n in [&self.ns, &self.peer_ns] {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// Runs `vdmm-ctl --pin-dir PINS ARGS...` in this thread (its network namespace).
fn ctl(pins: &PinDir, args: &str) -> String {
    let dir = pins.path().display().to_string();
    let argv = ["vdmm-ctl", "--pin-dir", dir.as_str()]
        .into_iter()
        .map(String::from)
        .chain(args.split_whitespace().map(String::from));
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args}: {e}"));
    commands::run(cli).unwrap_or_else(|e| panic!("vdmm-ctl {args}: {e}"))
}

/// Runs `promtool check metrics` on `text`; fails the test when promtool is missing or
/// finds a problem.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install the Debian package `prometheus` \
                 (cargo xtask setup does)"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the sample `series` (the whole part before the value) in `text`.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A plain HTTP/1.0 GET; returns (status line, body).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Ok((
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    ))
}

/// A port on loopback that is free now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Loads, programs, moves counters; checks dump, promtool and a scrape of the server.
/// Returns the exporter's address (still serving, from a thread of this namespace).
fn dump_and_serve(scratch: &Scratch, pins: &PinDir) -> SocketAddr {
    loader::load(pins, "mk0", loader::Mode::Native).unwrap();
    let mut dp = Dataplane::open(pins).unwrap();
    dp.add_endpoint("192.0.2.1".parse().unwrap()).unwrap();
    dp.add_endpoint("2001:db8::1".parse().unwrap()).unwrap();
    dp.add_peer("198.51.100.1".parse().unwrap()).unwrap();
    for (home, locator) in [
        ("10.1.0.0/16", "198.51.100.1"),
        ("2001:db8:100::/48", "198.51.100.1"),
        ("10.2.0.0/16", "2001:db8:1::1"),
    ] {
        dp.add_binding(home.parse().unwrap(), locator.parse().unwrap(), None, false)
            .unwrap();
    }
    let mut nat = Translator::open(pins).unwrap();
    nat.add_pool("198.18.0.0/24".parse().unwrap()).unwrap();
    nat.add_pool("198.18.1.0/30".parse().unwrap()).unwrap();
    nat.alloc("2001:db8::7".parse().unwrap(), None).unwrap();
    nat.alloc("2001:db8::8".parse().unwrap(), None).unwrap();

    // Per-CPU values: CPU i holds i + 1 packets of 100 bytes.
    let ncpu = aya::util::nr_cpus().unwrap() as u64;
    let mut counters: PerCpuArray<MapData, CounterValue> =
        open_map(pins, vdmm_common::maps::COUNTERS).unwrap();
    let values: Vec<CounterValue> = (1..=ncpu)
        .map(|i| CounterValue {
            packets: i,
            bytes: 100 * i,
        })
        .collect();
    let index = counter_index(Reason::Reencap, TunnelKind::Ip6in4, Action::Redirect);
    counters
        .set(index, PerCpuValues::try_from(values).unwrap(), 0)
        .unwrap();
    let sum = ncpu * (ncpu + 1) / 2;

    // Traffic: pings from the neighbour to the gateway cross XDP on mk0 (no_match, pass).
    let out = Command::new("ip")
        .args(["netns", "exec", &scratch.peer_ns])
        .args(["ping", "-c", "3", "-i", "0.2", "-W", "2", "192.0.2.1"])
        .output()
        .expect("run ping");
    assert!(
        out.status.success(),
        "ping: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let text = ctl(pins, "metrics dump");
    let reencap =
        "{program=\"xdp\",reason=\"reencap\",kind=\"6in4\",action=\"redirect\",family=\"ipv6\"}";
    assert_eq!(
        sample(&text, &format!("vdmm_packets_total{reencap}")),
        Some(sum),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("vdmm_bytes_total{reencap}")),
        Some(100 * sum),
        "{text}"
    );
    let pings = sample(
        &text,
        "vdmm_packets_total{program=\"xdp\",reason=\"no_match\",kind=\"none\",action=\"pass\",family=\"none\"}",
    );
    assert!(pings.is_some_and(|n| n >= 3), "{text}");
    // vdmm_xdp also runs on the translator's vdmmx1, which is not counted.
    let attached = pins.linked_interfaces().unwrap();
    assert_eq!(attached, ["mk0", crate::device::FRAG_RX]);
    for (series, want) in [
        ("vdmm_bindings{family=\"ipv4\"}", 2),
        ("vdmm_bindings{family=\"ipv6\"}", 1),
        ("vdmm_endpoints", 2),
        ("vdmm_peers", 1),
        ("vdmm_eamt_entries", 2),
        ("vdmm_pool_addresses{pool=\"198.18.0.0/24\"}", 254),
        ("vdmm_pool_allocated{pool=\"198.18.0.0/24\"}", 2),
        ("vdmm_pool_addresses{pool=\"198.18.1.0/30\"}", 2),
        ("vdmm_pool_allocated{pool=\"198.18.1.0/30\"}", 0),
        ("vdmm_interfaces_attached", 1),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series} in\n{text}");
    }
    assert!(
        text.contains("vdmm_build_info{version=\"0.1.0\"} 1\n"),
        "{text}"
    );
    promtool_check(&text);

    // The server reads the maps on every scrape.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let serve_pins = pins.clone();
    std::thread::spawn(move || serve(&listener, &serve_pins));
    let (status, body) = http_get(addr, "/metrics").unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(sample(&body, "vdmm_peers"), Some(1), "{body}");
    dp.add_peer("198.51.100.2".parse().unwrap()).unwrap();
    let (_, body) = http_get(addr, "/metrics").unwrap();
    assert_eq!(sample(&body, "vdmm_peers"), Some(2), "{body}");
    promtool_check(&body);
    addr
}

/// Starts Prometheus in the gateway's namespace, scraping the exporter at `exporter`
/// every second; returns its address.
fn start_prometheus(scratch: &mut Scratch, exporter: SocketAddr) -> SocketAddr {
    let dir = std::env::temp_dir().join(format!("{}-prometheus", scratch.ns));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
             - job_name: vdmm\n    static_configs:\n      - targets: ['{exporter}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new("ip")
        .args(["netns", "exec", &scratch.ns, "prometheus"])
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run prometheus ({e}): install the Debian package `prometheus`")
        });
    scratch.prometheus = Some((child, dir));
    listen.parse().unwrap()
}

/// Queries Prometheus until `query` has a sample of at least `min`, for up to 30 s;
/// returns the last answer.
fn wait_for_query(prometheus: SocketAddr, query: &str, min: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let path = format!("/api/v1/query?query={query}");
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok((status, body)) = http_get(prometheus, &path) {
            last = format!("{status}\n{body}");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                let found = v["data"]["result"].as_array().is_some_and(|r| {
                    r.iter().any(|s| {
                        s["value"][1]
                            .as_str()
                            .and_then(|x| x.parse::<f64>().ok())
                            .is_some_and(|x| x >= min as f64)
                    })
                });
                if found {
                    return body;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("Prometheus never answered {query} with a value >= {min}; last answer:\n{last}");
}

#[test]
fn metrics_dump_serve_and_prometheus_in_a_namespace() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let _serial = crate::kernel_tests::SERIAL
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut scratch = Scratch::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            netns::enter(&scratch.ns).unwrap();
            let pins = PinDir::new(&scratch.pins);
            let exporter = dump_and_serve(&scratch, &pins);
            let prometheus = start_prometheus(&mut scratch, exporter);
            // The pings moved vdmm_packets_total{reason="no_match"}; Prometheus scraped it.
            let body = wait_for_query(
                prometheus,
                "vdmm_packets_total%7Breason%3D%22no_match%22%2Cprogram%3D%22xdp%22%7D",
                3,
            );
            assert!(body.contains("\"family\":\"none\""), "{body}");
            // More traffic: the next scrapes see it.
            let before = sample(
                &ctl(&pins, "metrics dump"),
                "vdmm_packets_total{program=\"xdp\",reason=\"no_match\",kind=\"none\",action=\"pass\",family=\"none\"}",
            )
            .unwrap();
            let out = Command::new("ip")
                .args(["netns", "exec", &scratch.peer_ns])
                .args(["ping", "-c", "5", "-i", "0.2", "-W", "2", "192.0.2.1"])
                .output()
                .expect("run ping");
            assert!(out.status.success());
            wait_for_query(
                prometheus,
                "sum%28vdmm_packets_total%7Breason%3D%22no_match%22%7D%29",
                before + 5,
            );
            wait_for_query(prometheus, "vdmm_peers", 2);
            ctl(&pins, "reset");
        });
    });
    drop(scratch);
}
