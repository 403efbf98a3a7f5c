//! `vdmm-ctl natpt ...` against the real kernel (root only; skipped otherwise): load the
//! data plane's maps into a throw-away network namespace with a pin directory of its own,
//! run every natpt command through the command line parser, and prove that each refused
//! command changes nothing by comparing the contents of every translator map (settings,
//! both EAMT tries, pools, segments) before and after it.

use std::{path::PathBuf, process::Command};

use aya::maps::{MapData, lpm_trie::LpmTrie};
use clap::Parser;
use serde_json::Value;
use vdmm_common::{maps as names, translate::EamEntry};

use crate::{
    cli::Cli,
    commands::{self, lifecycle},
    kernel_tests::ip,
    loader,
    natpt::{NatptState, Translator},
    netns,
    pin::PinDir,
};

/// A network namespace and a pin directory, removed on drop (also after a panic).
struct Scratch {
    ns: String,
    pins: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let ns = format!("vdmmctl-natpt-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        ip(&["netns", "add", &ns]);
        let pins = PathBuf::from(format!("/run/vdmm/{ns}"));
        Self { ns, pins }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.pins.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid path; lazy unmount of a bpffs this test mounted (drops its pins).
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&self.pins);
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// Runs `vdmm-ctl --pin-dir PINS ARGS...` in this thread (its network namespace).
fn ctl(pins: &PinDir, args: &str) -> crate::Result<String> {
    let dir = pins.path().display().to_string();
    let argv = ["vdmm-ctl", "--pin-dir", dir.as_str()]
        .into_iter()
        .map(String::from)
        .chain(args.split_whitespace().map(String::from));
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args}: {e}"));
    commands::run(cli)
}

fn ok(pins: &PinDir, args: &str) -> String {
    ctl(pins, args).unwrap_or_else(|e| panic!("vdmm-ctl {args}: {e}"))
}

/// The raw contents of both EAMT tries: (prefix length, key, value), sorted.
type RawTries = (
    Vec<(u32, [u8; 4], EamEntry)>,
    Vec<(u32, [u8; 16], EamEntry)>,
);

fn raw_eamt(pins: &PinDir) -> RawTries {
    let open =
        |name| aya::maps::Map::from_map_data(MapData::from_pin(pins.map(name)).unwrap()).unwrap();
    let t4: LpmTrie<MapData, [u8; 4], EamEntry> = LpmTrie::try_from(open(names::EAMT_V4)).unwrap();
    let t6: LpmTrie<MapData, [u8; 16], EamEntry> = LpmTrie::try_from(open(names::EAMT_V6)).unwrap();
    let mut a: Vec<_> = t4
        .iter()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.prefix_len(), k.data(), v)
        })
        .collect();
    let mut b: Vec<_> = t6
        .iter()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.prefix_len(), k.data(), v)
        })
        .collect();
    a.sort_by_key(|x| (x.0, x.1));
    b.sort_by_key(|x| (x.0, x.1));
    (a, b)
}

/// Everything the natpt commands can change.
fn snapshot(pins: &PinDir) -> (NatptState, RawTries) {
    (
        Translator::open(pins).unwrap().state().unwrap(),
        raw_eamt(pins),
    )
}

/// Each command must fail with an error containing the text, and change nothing.
fn refused(pins: &PinDir, cases: &[(&str, &str)]) {
    let before = snapshot(pins);
    for (args, want) in cases {
        let e = ctl(pins, args)
            .map(|out| panic!("vdmm-ctl {args} succeeded: {out}"))
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n'), "{args}: not one line: {e}");
        assert!(e.contains(want), "vdmm-ctl {args}: {e}\n(wanted: {want})");
        assert_eq!(snapshot(pins), before, "vdmm-ctl {args} changed something");
    }
}

fn natpt_commands(pins: &PinDir) {
    // Nothing loaded: a clear error.
    let e = ctl(pins, "natpt list").unwrap_err();
    assert!(e.to_string().contains("not loaded"), "{e}");
    loader::prepare(pins).unwrap();

    // The defaults after loading.
    let v: Value = serde_json::from_str(&ok(pins, "natpt list --json")).unwrap();
    assert_eq!(v["prefix"], Value::Null);
    assert_eq!(v["lowest_ipv6_mtu"], 1280);
    assert_eq!(v["eamt"], Value::Array(vec![]));

    for c in [
        "natpt prefix set 64:ff9b::/96",
        "natpt rfc6791 set 192.0.2.254",
        "natpt rfc6791 set 2001:db8::fe",
        "natpt mtu set 1400",
        "natpt udp-zero-checksum drop",
        "natpt eam add 2001:db8:6::/120 198.51.100.0/24",
        "natpt eam add 203.0.113.5 2001:db8:9::5",
        "natpt pool add 192.0.2.0/30",
        "natpt segment add 10.0.0.0/8 --prefix6 2001:db8:a::/96",
        "natpt segment add 10.1.0.0/16 --prefix6 2001:db8:100::/40",
    ] {
        assert_eq!(ok(pins, c), "", "{c}");
    }
    assert_eq!(
        ok(pins, "natpt pool alloc 2001:db8:1::7 --json"),
        "{\"ipv4\":\"192.0.2.1\",\"ipv6\":\"2001:db8:1::7\"}\n"
    );
    assert_eq!(ok(pins, "natpt pool alloc 2001:db8:1::8"), "192.0.2.2\n");
    assert_eq!(
        ok(pins, "natpt segment coa 10.1.2.3"),
        "2001:db8:10a:102:3::\n"
    );
    assert_eq!(
        ok(pins, "natpt segment coa 10.9.0.1"),
        "2001:db8:a::a09:1\n"
    );

    // Both tries hold every entry, with the same value.
    let (t4, t6) = raw_eamt(pins);
    assert_eq!(t4.len(), 4);
    let mut v4: Vec<EamEntry> = t4.iter().map(|x| x.2).collect();
    let mut v6: Vec<EamEntry> = t6.iter().map(|x| x.2).collect();
    v4.sort_by_key(|e| (e.v4, e.v4_len));
    v6.sort_by_key(|e| (e.v4, e.v4_len));
    assert_eq!(v4, v6);
    for (len, key, e) in &t4 {
        assert_eq!((*len, *key), (e.v4_len as u32, e.v4));
    }
    for (len, key, e) in &t6 {
        assert_eq!((*len, *key), (e.v6_len as u32, e.v6));
    }

    refused(
        pins,
        &[
            ("natpt prefix set 2001:db8::/33", "RFC 6052 section 2.2"),
            (
                "natpt prefix set 64:ff9b::1/96",
                "did you mean 64:ff9b::/96",
            ),
            ("natpt prefix set 64:ff9b:0:0:100::/96", "bits 64..71"),
            ("natpt prefix set 2001:db8:0:0:ff00::/32", "bits 64..71"),
            ("natpt prefix set 10.0.0.0/8", "IPv6 prefix"),
            ("natpt prefix set 64:ff9b::", "needs its length"),
            ("natpt prefix clear 2001:db8::/32", "is 64:ff9b::/96, not"),
            (
                "natpt eam add 2001:db8:7::/120 198.51.100.0/24",
                "198.51.100.0/24 already has an EAMT entry",
            ),
            (
                "natpt eam add 2001:db8:6::/120 203.0.112.0/24",
                "2001:db8:6::/120 already has an EAMT entry",
            ),
            (
                "natpt eam add 2001:db8:6::/120 198.51.100.0/24",
                "already exists",
            ),
            (
                "natpt eam add 2001:db8:7::/112 203.0.112.0/24",
                "suffix lengths differ",
            ),
            ("natpt eam add 2001:db8:7::/120 203.0.112.1/24", "host bits"),
            (
                "natpt eam add 10.0.0.0/8 10.1.0.0/16",
                "one IPv6 and one IPv4",
            ),
            (
                "natpt eam del 2001:db8:6::/120 203.0.112.0/24",
                "no EAMT entry",
            ),
            ("natpt rfc6791 set 224.0.0.1", "not a usable unicast"),
            ("natpt rfc6791 set 192.0.2.300", "invalid address"),
            ("natpt rfc6791 clear 192.0.2.253", "is 192.0.2.254, not"),
            ("natpt mtu set 1279", "1280"),
            ("natpt mtu set 65536", "65535"),
            ("natpt mtu set many", "invalid lowest IPv6 MTU"),
            ("natpt pool add 192.0.2.0/30", "already exists"),
            ("natpt pool add 192.0.2.0/24", "overlaps the existing pool"),
            ("natpt pool add 127.0.0.0/24", "loopback"),
            ("natpt pool add 2001:db8::/120", "not an IPv4 prefix"),
            ("natpt pool add 192.0.2.5/30", "did you mean 192.0.2.4/30"),
            (
                "natpt pool alloc 2001:db8:1::9",
                "pool exhausted: every address of 192.0.2.0/30 is allocated",
            ),
            (
                "natpt pool alloc 2001:db8:1::7",
                "already has the pool address 192.0.2.1",
            ),
            (
                "natpt pool alloc 2001:db8:9::5",
                "already has an explicit address mapping",
            ),
            ("natpt pool alloc 192.0.2.9", "IPv6 address of the host"),
            ("natpt pool alloc ff02::1", "not a usable unicast"),
            (
                "natpt pool alloc 2001:db8:1::9 --from 198.51.100.0/24",
                "no address pool 198.51.100.0/24",
            ),
            ("natpt pool release 192.0.2.3", "not an allocated address"),
            ("natpt pool release 203.0.113.5", "not an allocated address"),
            ("natpt pool release 2001:db8:1::99", "no address allocated"),
            (
                "natpt pool del 192.0.2.0/30",
                "192.0.2.1 -> 2001:db8:1::7, 192.0.2.2 -> 2001:db8:1::8; release them or pass --force",
            ),
            ("natpt pool del 198.51.100.0/24", "no address pool"),
            (
                "natpt segment add 10.0.0.0/8 --prefix6 2001:db8:b::/96",
                "already exists",
            ),
            (
                "natpt segment add 10.2.0.0/16 --prefix6 2001:db8:a::/96",
                "already belongs to the segment 10.0.0.0/8",
            ),
            (
                "natpt segment add 10.2.0.0/16 --prefix6 2001:db8::/33",
                "RFC 6052",
            ),
            (
                "natpt segment add 2001:db8::/64 --prefix6 2001:db8::/96",
                "not an IPv4 prefix",
            ),
            ("natpt segment del 11.0.0.0/8", "no segment 11.0.0.0/8"),
            (
                "natpt segment coa 192.0.2.1",
                "no IPv4 segment covers 192.0.2.1",
            ),
        ],
    );

    // Released addresses are free again, lowest first.
    assert_eq!(
        ok(pins, "natpt pool release 2001:db8:1::7"),
        "released 192.0.2.1 (was 2001:db8:1::7)\n"
    );
    assert_eq!(ok(pins, "natpt pool alloc 2001:db8:1::9"), "192.0.2.1\n");
    let pools: Value = serde_json::from_str(&ok(pins, "natpt pool list --json")).unwrap();
    assert_eq!(pools[0]["allocated"], 2);
    assert_eq!(pools[0]["free"], 0);
    assert_eq!(pools[0]["allocations"][0]["ipv6"], "2001:db8:1::9");

    // The whole picture.
    let list = ok(pins, "natpt list");
    for want in [
        "RFC 6052 prefix:   64:ff9b::/96\n",
        "RFC 6791 IPv4:     192.0.2.254\n",
        "RFC 6791 IPv6:     2001:db8::fe\n",
        "lowest IPv6 MTU:   1400\n",
        "UDP checksum zero: drop\n",
        "2001:db8:6::/120   198.51.100.0/24  -\n",
        "192.0.2.0/30     2          2       0     0\n",
        "10.1.0.0/16  2001:db8:100::/40\n",
    ] {
        assert!(list.contains(want), "{want:?} not in\n{list}");
    }
    let v: Value = serde_json::from_str(&ok(pins, "natpt list --json")).unwrap();
    assert_eq!(v["prefix"], "64:ff9b::/96");
    assert_eq!(v["lowest_ipv6_mtu"], 1400);
    assert_eq!(v["eamt"].as_array().unwrap().len(), 4);
    assert_eq!(v["segments"].as_array().unwrap().len(), 2);
    assert!(v.get("eamt_inconsistent").is_none());

    // A pin directory loaded before the pool and segment maps existed: the commands say
    // to load again, and a load adds the maps and keeps everything else.
    std::fs::remove_file(pins.map(names::POOL_V4)).unwrap();
    let e = ctl(pins, "natpt list").unwrap_err().to_string();
    assert!(
        e.contains("VDMM_POOL4 is not pinned") && e.contains("vdmm-ctl load"),
        "{e}"
    );
    loader::prepare(pins).unwrap();
    let v: Value = serde_json::from_str(&ok(pins, "natpt list --json")).unwrap();
    assert_eq!(v["pools"], Value::Array(vec![]));
    assert_eq!(v["eamt"].as_array().unwrap().len(), 4);
    ok(pins, "natpt pool add 192.0.2.0/30");

    // --force releases the allocations with the pool.
    assert_eq!(
        ok(pins, "natpt pool del 192.0.2.0/30 --force"),
        "released 192.0.2.1 (was 2001:db8:1::9)\nreleased 192.0.2.2 (was 2001:db8:1::8)\n"
    );
    for c in [
        "natpt prefix clear 64:ff9b::/96",
        "natpt rfc6791 clear 2001:db8::fe",
        "natpt rfc6791 clear",
        "natpt mtu clear",
        "natpt udp-zero-checksum compute",
        "natpt eam del 198.51.100.0/24 2001:db8:6::/120",
        "natpt eam del 2001:db8:9::5 203.0.113.5",
        "natpt segment del 10.0.0.0/8",
        "natpt segment del 10.1.0.0/16",
    ] {
        ok(pins, c);
    }
    let (state, (t4, t6)) = snapshot(pins);
    assert_eq!(state.config, Default::default());
    assert!(state.eamt.is_empty() && state.pools.is_empty() && state.segments.is_empty());
    assert!(t4.is_empty() && t6.is_empty());
    refused(
        pins,
        &[
            ("natpt prefix clear", "no RFC 6052 prefix is set"),
            ("natpt rfc6791 clear", "no RFC 6791 address is set"),
            ("natpt pool alloc 2001:db8:1::1", "no IPv4 address pool"),
        ],
    );

    lifecycle::reset(pins).unwrap();
    assert!(pins.entries().unwrap().iter().all(|n| !PinDir::is_ours(n)));
}

#[test]
fn natpt_commands_in_a_namespace() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let _serial = crate::kernel_tests::SERIAL
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            netns::enter(&scratch.ns).unwrap();
            natpt_commands(&PinDir::new(&scratch.pins));
        });
    });
    drop(scratch);
}

/// Namespaces removed on drop: an IPv4-only host, the gateway, an IPv6-only host.
struct Lab {
    names: [String; 3],
    pins: PathBuf,
}

impl Lab {
    fn new() -> Self {
        let id = std::process::id();
        let names = ["h4", "gw", "h6"].map(|n| format!("vdmmctl-nat{n}-{id}"));
        for n in &names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
            ip(&["netns", "add", n]);
        }
        let pins = PathBuf::from(format!("/run/vdmm/{}", names[1]));
        Self { names, pins }
    }

    fn exec(&self, ns: usize, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.names[ns]])
            .args(args)
            .output()
            .expect("run ip netns exec")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.pins.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid path; lazy unmount of a bpffs this test mounted.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&self.pins);
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// A pool allocation is a mapping the data plane uses at once: an IPv4 host pings the
/// pool address of an IPv6-only host through the XDP translator (and the IPv6 host pings
/// the IPv4 host under the RFC 6052 prefix); after `pool release` it does not translate.
#[test]
fn pool_allocation_translates_end_to_end() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let _serial = crate::kernel_tests::SERIAL
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new();
    let [h4, gw, h6] = &lab.names;
    ip(&[
        "link", "add", "nat4h", "netns", h4, "type", "veth", "peer", "name", "nat4g", "netns", gw,
    ]);
    ip(&[
        "link", "add", "nat6h", "netns", h6, "type", "veth", "peer", "name", "nat6g", "netns", gw,
    ]);
    for (ns, dev) in [(h4, "nat4h"), (gw, "nat4g"), (gw, "nat6g"), (h6, "nat6h")] {
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }
    ip(&["-n", h4, "addr", "add", "203.0.113.2/24", "dev", "nat4h"]);
    ip(&["-n", h4, "route", "add", "default", "via", "203.0.113.1"]);
    ip(&["-n", gw, "addr", "add", "203.0.113.1/24", "dev", "nat4g"]);
    ip(&[
        "-n",
        gw,
        "addr",
        "add",
        "2001:db8:1::1/64",
        "dev",
        "nat6g",
        "nodad",
    ]);
    ip(&[
        "-n",
        h6,
        "addr",
        "add",
        "2001:db8:1::7/64",
        "dev",
        "nat6h",
        "nodad",
    ]);
    ip(&["-n", h6, "route", "add", "default", "via", "2001:db8:1::1"]);
    // The gateway forwards (bpf_fib_lookup answers "not forwarded" otherwise).
    let out = lab.exec(
        1,
        &[
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ],
    );
    assert!(out.status.success(), "sysctl");
    // Redirected frames reach a veth peer only in NAPI mode (GRO on); no checksum offload.
    for (i, dev) in [(0, "nat4h"), (2, "nat6h")] {
        let out = lab.exec(i, &["ethtool", "-K", dev, "gro", "on", "tx", "off"]);
        assert!(out.status.success(), "ethtool {dev}");
    }
    let ping = |from: usize, to: &str| {
        lab.exec(from, &["ping", "-c", "2", "-W", "2", to])
            .status
            .success()
    };

    std::thread::scope(|s| {
        s.spawn(|| {
            netns::enter(gw).unwrap();
            let pins = PinDir::new(&lab.pins);
            loader::load(&pins, "nat4g", loader::Mode::Native).unwrap();
            loader::load(&pins, "nat6g", loader::Mode::Native).unwrap();
            // Neighbour entries on the gateway for both hosts (translated packets are
            // redirected to a resolved neighbour).
            assert!(ping(1, "203.0.113.2") && ping(1, "2001:db8:1::7"));
            // Without a translation there is no path to the pool address.
            assert!(!ping(0, "192.0.2.1"));
            ok(&pins, "natpt prefix set 64:ff9b::/96");
            ok(&pins, "natpt pool add 192.0.2.0/30");
            assert_eq!(ok(&pins, "natpt pool alloc 2001:db8:1::7"), "192.0.2.1\n");
            assert!(ping(0, "192.0.2.1"), "IPv4 host -> pool address");
            assert!(ping(2, "64:ff9b::203.0.113.2"), "IPv6 host -> IPv4 host");
            let stats = ok(&pins, "stats --json");
            assert!(
                stats.contains("xlat4to6") && stats.contains("xlat6to4"),
                "{stats}"
            );
            ok(&pins, "natpt pool release 192.0.2.1");
            assert!(!ping(0, "192.0.2.1"), "released: no translation");
            lifecycle::reset(&pins).unwrap();
        });
    });
    drop(lab);
}
