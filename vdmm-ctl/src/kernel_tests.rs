//! Tests against the real kernel (root only; skipped otherwise): load the data plane into a
//! throw-away network namespace with a pin directory of its own (XDP links, and the slow
//! path: `vdmm0` with its TC egress link), program it through [`Dataplane`] and [`routes`]
//! (bindings with their kernel routes into `vdmm0`), check that refused requests change
//! nothing, then unload and reset.

use std::{net::IpAddr, path::PathBuf, process::Command, sync::atomic::Ordering};

use aya::programs::{SchedClassifier, TcAttachType};
use vdmm_common::maps as names;

use crate::{
    addr::Prefix,
    commands::lifecycle,
    device::{self, DEVICE},
    error::Error,
    loader::{self, Mode, ProgramState},
    maps::Dataplane,
    netns,
    pin::PinDir,
    routes::{self, InstalledRoute, Netlink, RouteOutcome, SlowPathRoute},
};

/// Names of the tcx programs on `iface`'s egress (none when there is no such interface).
fn tc_egress_programs(iface: &str) -> Vec<String> {
    if loader::if_index(iface).is_err() {
        return Vec::new();
    }
    let (_, progs) = SchedClassifier::query_tcx(iface, TcAttachType::Egress).unwrap();
    progs
        .iter()
        .map(|p| p.name_as_str().unwrap_or("?").to_string())
        .collect()
}

/// vdmm's routes in the kernel (read back over netlink), as (home, device, mtu); none
/// may have a next hop.
fn vdmm_routes() -> Vec<(Prefix, String, Option<u32>)> {
    Netlink::open()
        .unwrap()
        .vdmm_routes()
        .unwrap()
        .into_iter()
        .map(
            |InstalledRoute {
                 home,
                 via,
                 dev,
                 mtu,
                 ..
             }| {
                assert_eq!(via, None, "{home}");
                (home, dev.unwrap_or_default(), mtu)
            },
        )
        .collect()
}

/// Output of `ip -n NS ARGS...` (or of `ip netns exec NS ARGS...` when `args[0]` is not
/// an `ip` object), which runs outside the test thread: what another process sees.
fn in_ns(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .expect("run ip netns exec");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True once `iface` has no tcx egress program. Unlinking a link pin drops the last
/// reference from a kernel work item, so the detach may lag the unlink a little.
fn tc_egress_detached(iface: &str) -> bool {
    for _ in 0..100 {
        if tc_egress_programs(iface).is_empty() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// True once `iface` has no XDP program (see [`tc_egress_detached`] for the wait).
fn xdp_detached(iface: &str) -> bool {
    for _ in 0..100 {
        let out = Command::new("ip")
            .args(["-d", "link", "show", "dev", iface])
            .output()
            .expect("run ip");
        if !String::from_utf8_lossy(&out.stdout).contains("prog/xdp") {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// Held by every kernel test: they share process-wide state (such as
/// [`loader::FAIL_TC_ATTACH`]), so they run one after the other.
pub(crate) static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

/// Runs `ip args...`; panics with its stderr when it fails (the kernel tests' set-up).
pub(crate) fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with a veth pair (`kt0`, `kt1`) and a pin directory, removed on
/// drop (also when the test panics).
struct Scratch {
    ns: String,
    pins: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let ns = format!("vdmmctl-kt-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        ip(&["netns", "add", &ns]);
        ip(&[
            "-n", &ns, "link", "add", "kt0", "type", "veth", "peer", "name", "kt1",
        ]);
        ip(&["-n", &ns, "link", "set", "kt0", "up"]);
        ip(&["-n", &ns, "link", "set", "kt1", "up"]);
        ip(&["-n", &ns, "addr", "add", "192.0.2.1/24", "dev", "kt0"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            "2001:db8::1/64",
            "dev",
            "kt0",
            "nodad",
        ]);
        // A second link with jumbo frames: a route's MTU follows the locator's interface.
        ip(&[
            "-n", &ns, "link", "add", "kt2", "mtu", "9000", "type", "veth", "peer", "name", "kt3",
            "mtu", "9000",
        ]);
        ip(&["-n", &ns, "link", "set", "kt2", "up"]);
        ip(&["-n", &ns, "link", "set", "kt3", "up"]);
        ip(&["-n", &ns, "addr", "add", "198.51.100.1/24", "dev", "kt2"]);
        let pins = PathBuf::from(format!("/run/vdmm/{ns}"));
        Self { ns, pins }
    }

    /// A second pin directory (another vdmm in the same namespace).
    fn other_pins(&self) -> PathBuf {
        PathBuf::from(format!("{}-other", self.pins.display()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for dir in [self.pins.clone(), self.other_pins()] {
            let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: valid path; lazy unmount of a bpffs this test mounted (drops its pins).
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            let _ = std::fs::remove_dir(&dir);
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Nothing of vdmm's left: no pins, no `vdmm0`.
fn assert_clean(pins: &PinDir) {
    let ours: Vec<String> = pins
        .entries()
        .unwrap()
        .into_iter()
        .filter(|n| PinDir::is_ours(n))
        .collect();
    assert!(ours.is_empty(), "left pinned: {ours:?}");
    assert_eq!(device::find().unwrap(), None, "{DEVICE} left behind");
    let frag = crate::routes::Netlink::open()
        .unwrap()
        .link_by_name(device::FRAG_TX)
        .unwrap();
    assert_eq!(frag, None, "{} left behind", device::FRAG_TX);
}

/// Loading, and what a failed load leaves (nothing), the slow path's device and its
/// repair, the legacy per-interface TC links.
fn load_and_slow_path(scratch: &Scratch, pins: &PinDir) {
    let ns = scratch.ns.as_str();
    assert!(matches!(Dataplane::open(pins), Err(Error::NotLoaded(_))));
    assert!(matches!(
        loader::load(pins, "nosuch", Mode::Native),
        Err(Error::UnknownInterface(_))
    ));
    assert!(
        !pins.path().exists(),
        "an unknown interface must not create anything"
    );

    // A failed TC attach (on vdmm0) leaves nothing: no device, no links, no pins.
    loader::FAIL_TC_ATTACH.store(true, Ordering::SeqCst);
    let e = loader::load(pins, "kt0", Mode::Native).unwrap_err();
    loader::FAIL_TC_ATTACH.store(false, Ordering::SeqCst);
    assert!(e.to_string().contains("TC attach"), "{e}");
    assert!(xdp_detached("kt0"));
    assert_clean(pins);
    // A failed XDP attach (lo has no native XDP) undoes the slow path made for it.
    let e = loader::load(pins, "lo", Mode::Native).unwrap_err();
    assert!(e.to_string().contains("native XDP"), "{e}");
    assert_clean(pins);

    let r = loader::load(pins, "kt0", Mode::Native).unwrap();
    // The failed loads above mounted the bpffs already.
    assert!(!r.mounted_bpffs);
    assert_eq!(r.program, ProgramState::Loaded);
    assert_eq!(r.tc_program, ProgramState::Loaded);
    assert!(r.device.created);
    assert_eq!(r.tc_link, Some(pins.tc_link(DEVICE)));
    assert!(pins.tc_program().exists());
    assert_eq!(tc_egress_programs(DEVICE), [names::TC_EGRESS_PROGRAM]);
    assert!(
        tc_egress_programs("kt0").is_empty(),
        "no TC on kt0 any more"
    );
    let dev = device::find().unwrap().expect("vdmm0 exists");
    assert!(
        matches!(dev.kind.as_deref(), Some("dummy" | "ifb")),
        "{dev:?}"
    );
    assert_eq!((dev.mtu, dev.up, dev.noarp), (65535, true, true));
    assert!(dev.is_owned_by(pins), "{dev:?}");
    // The forwarding settings were written in the namespace (the test thread's), as
    // another process there sees them; vdmm0 has no address of its own.
    assert!(device::forwarding().both());
    for family in ["ipv4", "ipv6"] {
        let path = format!("/proc/sys/net/{family}/conf/{DEVICE}/forwarding");
        assert_eq!(in_ns(ns, &["cat", &path]).trim(), "1", "{path}");
    }
    assert_eq!(in_ns(ns, &["ip", "-o", "addr", "show", "dev", DEVICE]), "");
    let st = lifecycle::status(pins, false).unwrap();
    assert!(st.contains("XDP attached to: kt0\n"), "{st}");
    assert!(
        st.contains("slow path: vdmm0 (") && st.contains("; TC egress vdmm_tc_egress attached"),
        "{st}"
    );

    assert!(matches!(
        loader::load(pins, "kt0", Mode::Native),
        Err(Error::AlreadyLoaded { .. })
    ));
    assert!(matches!(
        loader::load(pins, DEVICE, Mode::Generic),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        loader::unload(pins, DEVICE),
        Err(Error::Conflict(_))
    ));
    let r = loader::load(pins, "kt1", Mode::Generic).unwrap();
    assert_eq!(r.program, ProgramState::Reused);
    assert_eq!(r.tc_program, ProgramState::Reused);
    assert!(!r.device.created);
    assert_eq!(r.tc_link, None);
    // kt0, kt1 and the translator's fragmentation slow path (`load` attached it).
    assert_eq!(
        pins.linked_interfaces().unwrap(),
        ["kt0", "kt1", device::FRAG_RX]
    );
    assert_eq!(pins.tc_linked_interfaces().unwrap(), [DEVICE]);
    assert_eq!(tc_egress_programs(DEVICE), [names::TC_EGRESS_PROGRAM]);
    let fx = device::find_frag_tx(pins).unwrap().expect("vdmmx0 exists");
    assert!(fx.up, "{fx:?}");
    let neigh = in_ns(ns, &["ip", "neigh", "show", "dev", device::FRAG_TX]);
    assert!(
        neigh.contains("169.254.118.1") && neigh.contains("PERMANENT"),
        "{neigh}"
    );
    let st = lifecycle::status(pins, false).unwrap();
    assert!(st.contains("XDP attached to: kt0, kt1\n"), "{st}");
    assert!(
        st.contains("fragmentation slow path: vdmmx0 <-> vdmmx1"),
        "{st}"
    );

    // Another pin directory in the same namespace cannot take vdmm0 (and leaves nothing).
    let other = PinDir::new(scratch.other_pins());
    let e = loader::prepare(&other).unwrap_err();
    assert!(
        e.to_string().contains("belongs to the vdmm pin directory"),
        "{e}"
    );
    assert!(other.entries().unwrap().iter().all(|n| !PinDir::is_ours(n)));
    assert!(device::find().unwrap().unwrap().is_owned_by(pins));

    // vdmm0 deleted behind vdmm's back: binding add says so and changes nothing; a load
    // without --iface creates it again and replaces the stale TC link.
    ip(&["link", "del", DEVICE]);
    let mut dp = Dataplane::open(pins).unwrap();
    dp.add_endpoint(a("192.0.2.1")).unwrap();
    assert!(matches!(
        routes::bind(&mut dp, p("10.6.0.0/24"), a("192.0.2.2"), None, false, true),
        Err(Error::NoSlowPathDevice(_))
    ));
    assert!(dp.bindings().unwrap().is_empty());
    dp.del_endpoint(a("192.0.2.1")).unwrap();
    assert!(
        lifecycle::status(pins, false)
            .unwrap()
            .contains("vdmm0 missing")
    );
    let r = loader::prepare(pins).unwrap();
    assert!(r.device.created);
    assert_eq!(r.tc_link, Some(pins.tc_link(DEVICE)));
    assert_eq!(tc_egress_programs(DEVICE), [names::TC_EGRESS_PROGRAM]);
    assert!(device::forwarding().both());

    // A TC link an older vdmm-ctl left on a loaded interface is removed by the next load.
    loader::attach_tc(pins, "kt0", &pins.tc_link("kt0")).unwrap();
    assert_eq!(tc_egress_programs("kt0"), [names::TC_EGRESS_PROGRAM]);
    assert!(
        lifecycle::status(pins, false)
            .unwrap()
            .contains("TC egress also on kt0")
    );
    let r = loader::prepare(pins).unwrap();
    assert_eq!(r.legacy_tc_removed, ["kt0"]);
    assert!(!r.device.created);
    assert_eq!(r.tc_link, None);
    assert!(tc_egress_detached("kt0"));
    assert_eq!(pins.tc_linked_interfaces().unwrap(), [DEVICE]);
}

/// The tables, with refused requests changing nothing.
fn tables(dp: &mut Dataplane) {
    dp.add_endpoint(a("192.0.2.1")).unwrap();
    dp.add_endpoint(a("2001:db8::1")).unwrap();
    dp.add_peer(a("192.0.2.2")).unwrap();
    let b = dp
        .add_binding("10.1.0.0/16".parse().unwrap(), a("192.0.2.2"), None, false)
        .unwrap();
    assert_eq!(b.source, a("192.0.2.1"));
    dp.add_binding(
        "2001:db8:5::/48".parse().unwrap(),
        a("192.0.2.2"),
        None,
        false,
    )
    .unwrap();
    let cfg = dp.config().unwrap();
    assert_eq!(cfg.icmp_source_v4, [192, 0, 2, 1]);

    let before = snapshot(dp);
    assert!(matches!(
        dp.add_binding("10.1.0.0/16".parse().unwrap(), a("192.0.2.9"), None, false),
        Err(Error::BindingExists { .. })
    ));
    assert!(matches!(
        dp.add_binding(
            "10.2.0.0/16".parse().unwrap(),
            a("192.0.2.9"),
            Some(a("2001:db8::1")),
            false
        ),
        Err(Error::FamilyMismatch { .. })
    ));
    assert!(matches!(
        dp.del_endpoint(a("192.0.2.1")),
        Err(Error::EndpointInUse { .. })
    ));
    assert!(matches!(
        dp.del_binding("10.1.0.0/24".parse().unwrap()),
        Err(Error::NoSuchBinding(_))
    ));
    assert!(matches!(
        dp.del_peer(a("192.0.2.3")),
        Err(Error::NoSuchPeer(_))
    ));
    assert!(matches!(
        dp.add_peer(a("192.0.2.2")),
        Err(Error::PeerExists(_))
    ));
    assert_eq!(snapshot(dp), before);

    // A handover replaces the locator; deleting the endpoint's last users frees it.
    dp.add_binding("10.1.0.0/16".parse().unwrap(), a("192.0.2.3"), None, true)
        .unwrap();
    assert_eq!(dp.bindings().unwrap()[0].locator, a("192.0.2.3"));
    dp.del_binding("10.1.0.0/16".parse().unwrap()).unwrap();
    dp.del_binding("2001:db8:5::/48".parse().unwrap()).unwrap();
}

/// Many bindings written at once: host bindings through `BPF_MAP_UPDATE_BATCH` (more
/// than one batch), prefixes one by one, every one readable afterwards; then removed.
fn binding_batches(pins: &PinDir) {
    let mut table = crate::binding_table::BindingTable::open(pins).unwrap();
    let loc = |i: u32| vdmm_common::IpAddrKey::from(a(&format!("192.0.2.{}", 1 + i % 200)));
    let src = vdmm_common::IpAddrKey::from(a("192.0.2.1"));
    let mut items: Vec<(Prefix, vdmm_common::Binding)> = (0..10_000u32)
        .map(|i| {
            let home = IpAddr::from(std::net::Ipv4Addr::from(0x0a10_0000 + i));
            (
                Prefix::new(home, 32).unwrap(),
                vdmm_common::Binding::new(loc(i), src),
            )
        })
        .collect();
    items.push((p("10.200.0.0/16"), vdmm_common::Binding::new(loc(7), src)));
    items.push((
        p("2001:db8:77::/48"),
        vdmm_common::Binding::new(loc(8), src),
    ));
    items.push((p("2001:db8:78::1"), vdmm_common::Binding::new(loc(9), src)));
    let results = table.insert_many(&items);
    assert_eq!(results.len(), items.len());
    assert!(results.iter().all(|r| r.is_ok()));
    let stored: std::collections::HashMap<Prefix, vdmm_common::Binding> =
        table.entries().unwrap().into_iter().collect();
    assert_eq!(stored.len(), items.len());
    for (home, b) in &items {
        assert_eq!(stored.get(home), Some(b), "{home}");
    }
    // Written again with other locators: replaced in place.
    for (i, (_, b)) in items.iter_mut().enumerate() {
        b.locator = loc(i as u32 + 1);
    }
    assert!(table.insert_many(&items).iter().all(|r| r.is_ok()));
    let stored: std::collections::HashMap<Prefix, vdmm_common::Binding> =
        table.entries().unwrap().into_iter().collect();
    assert_eq!(stored.len(), items.len());
    for (home, b) in &items {
        assert_eq!(stored.get(home), Some(b), "{home}");
        table.remove(home).unwrap();
    }
    assert!(table.entries().unwrap().is_empty());
}

type Snapshot = (
    Vec<IpAddr>,
    Vec<IpAddr>,
    Vec<crate::maps::BindingEntry>,
    vdmm_common::TunnelConfig,
);

fn snapshot(dp: &Dataplane) -> Snapshot {
    (
        dp.endpoints().unwrap(),
        dp.peers().unwrap(),
        dp.bindings().unwrap(),
        dp.config().unwrap(),
    )
}

/// Bindings with their slow-path routes into vdmm0, all four kinds.
fn bindings_with_routes(dp: &mut Dataplane) {
    let bind = |dp: &mut Dataplane, home: &str, loc: &str| {
        routes::bind(dp, p(home), a(loc), None, false, true)
    };
    dp.add_endpoint(a("198.51.100.1")).unwrap();
    // kt0 has MTU 1500, kt2 9000.
    for (home, loc) in [
        ("10.7.0.0/24", "192.0.2.2"),
        ("10.8.0.0/24", "2001:db8::2"),
        ("10.9.0.0/24", "198.51.100.2"),
        ("2001:db8:7::/64", "2001:db8::2"),
        ("2001:db8:8::/64", "192.0.2.2"),
    ] {
        let out = bind(dp, home, loc).unwrap();
        let RouteOutcome::Installed(r) = &out.route else {
            panic!("{home}: {out:?}");
        };
        assert_eq!(r.dev, DEVICE);
    }
    let v = |home: &str, mtu: u32| (p(home), DEVICE.to_string(), Some(mtu));
    let want = vec![
        v("10.7.0.0/24", 1480),
        v("10.8.0.0/24", 1460),
        v("10.9.0.0/24", 8980),
        v("2001:db8:7::/64", 1460),
        v("2001:db8:8::/64", 1480),
    ];
    assert_eq!(vdmm_routes(), want);
    // The kernel routes a 6in4 home into vdmm0 (what the old `via` routes could not).
    // (A child process starts in the namespace of the thread that spawns it.)
    let got = Command::new("ip")
        .args(["-6", "route", "get", "2001:db8:8::1"])
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&got.stdout);
    assert!(
        got.contains("dev vdmm0") && got.contains("mtu 1480"),
        "{got}"
    );

    // A route the kernel refuses leaves the binding map as it was, for a new binding
    // and for a handover.
    let before = snapshot(dp);
    let mut nl = Netlink::open().unwrap();
    let bogus = |home: &str| {
        Some(SlowPathRoute {
            home: p(home),
            oif: 999_999,
            dev: "nosuch".into(),
            mtu: 1400,
            egress: "kt0".into(),
            egress_mtu: 1500,
        })
    };
    for (home, replace) in [("10.10.0.0/24", false), ("10.7.0.0/24", true)] {
        let e = routes::bind_with_plan(
            dp,
            &mut nl,
            p(home),
            a("192.0.2.9"),
            None,
            replace,
            bogus(home),
        )
        .unwrap_err();
        assert!(matches!(e, Error::RouteInstall { .. }), "{e}");
    }
    assert_eq!(snapshot(dp), before);
    assert_eq!(vdmm_routes(), want);
    // No route to the locator, or one into vdmm0 itself: refused before anything changes.
    assert!(matches!(
        bind(dp, "10.10.0.0/24", "203.0.113.1"),
        Err(Error::NoRouteToLocator { .. })
    ));
    let e = bind(dp, "10.10.0.0/24", "10.7.0.9").unwrap_err();
    assert!(e.to_string().contains("into vdmm0"), "{e}");
    assert!(matches!(
        bind(dp, "10.7.0.0/24", "192.0.2.3"),
        Err(Error::BindingExists { .. })
    ));
    assert_eq!(snapshot(dp), before);

    // A handover follows the new locator's MTU; --no-route on a handover drops the
    // route; del removes it.
    routes::bind(dp, p("10.7.0.0/24"), a("2001:db8::3"), None, true, true).unwrap();
    assert_eq!(vdmm_routes()[0], v("10.7.0.0/24", 1460));
    routes::bind(dp, p("10.8.0.0/24"), a("192.0.2.3"), None, true, false).unwrap();
    assert!(routes::unbind(dp, p("10.7.0.0/24")).unwrap());
    assert!(!routes::unbind(dp, p("10.8.0.0/24")).unwrap());
    assert!(matches!(
        routes::unbind(dp, p("10.8.0.0/24")),
        Err(Error::NoSuchBinding(_))
    ));
    assert_eq!(
        vdmm_routes(),
        [
            v("10.9.0.0/24", 8980),
            v("2001:db8:7::/64", 1460),
            v("2001:db8:8::/64", 1480)
        ]
    );
    assert!(routes::unbind(dp, p("10.9.0.0/24")).unwrap());
    dp.del_endpoint(a("198.51.100.1")).unwrap();
    let list = crate::commands::binding::format_list(
        &dp.bindings().unwrap(),
        &Netlink::open().unwrap().vdmm_routes().unwrap(),
        false,
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("2001:db8:8::/64 ") && l.ends_with(" 6in4  vdmm0 mtu 1480")),
        "{list}"
    );
}

#[test]
fn load_program_unload_reset_in_a_namespace() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new();
    std::thread::scope(|s| {
        // Only this thread moves into the namespace.
        s.spawn(|| {
            netns::enter(&scratch.ns).unwrap();
            let pins = PinDir::new(&scratch.pins);
            load_and_slow_path(&scratch, &pins);
            let mut dp = Dataplane::open(&pins).unwrap();
            tables(&mut dp);
            binding_batches(&pins);
            bindings_with_routes(&mut dp);

            // Unloading every interface keeps the slow path (the routes lead into it).
            loader::unload(&pins, "kt0").unwrap();
            assert!(xdp_detached("kt0"));
            assert!(matches!(
                loader::unload(&pins, "kt0"),
                Err(Error::NotLoadedOnInterface { .. })
            ));
            loader::unload(&pins, "kt1").unwrap();
            assert!(xdp_detached("kt1"));
            assert_eq!(tc_egress_programs(DEVICE), [names::TC_EGRESS_PROGRAM]);
            assert_eq!(vdmm_routes().len(), 2);
            // Configuration survives the last unload.
            assert_eq!(dp.peers().unwrap(), [a("192.0.2.2")]);
            drop(dp);

            // reset: routes, pins (links), then vdmm0.
            let out = lifecycle::reset(&pins).unwrap();
            assert!(
                out.contains("removed the kernel routes for 2001:db8:7::/64, 2001:db8:8::/64"),
                "{out}"
            );
            assert!(
                out.contains("prog_vdmm_xdp") && out.contains("link_tc_vdmm0"),
                "{out}"
            );
            assert!(out.ends_with("deleted vdmm0\n"), "{out}");
            assert!(vdmm_routes().is_empty());
            assert_clean(&pins);
            assert!(matches!(Dataplane::open(&pins), Err(Error::NotLoaded(_))));
            // A second reset finds nothing, and leaves a vdmm0 that is not vdmm's alone.
            ip(&["link", "add", DEVICE, "type", "ifb"]);
            let out = lifecycle::reset(&pins).unwrap();
            assert!(!out.contains("deleted"), "{out}");
            assert!(device::find().unwrap().is_some());
            let e = loader::prepare(&pins).unwrap_err();
            assert!(e.to_string().contains("did not create"), "{e}");
            assert!(pins.entries().unwrap().iter().all(|n| !PinDir::is_ours(n)));
            ip(&["link", "del", DEVICE]);
        });
    });
    drop(scratch);
}
