//! Tests against the real kernel (root only; skipped otherwise): load the data plane into a
//! throw-away network namespace with a pin directory of its own (XDP and TC egress links),
//! program it through [`Dataplane`] and [`routes`] (bindings with their kernel routes),
//! check that refused requests change nothing, then unload and reset.

use std::{net::IpAddr, path::PathBuf, process::Command, sync::atomic::Ordering};

use aya::programs::{SchedClassifier, TcAttachType};
use vdmm_common::maps as names;

use crate::{
    addr::Prefix,
    error::Error,
    loader::{self, Mode, ProgramState},
    maps::Dataplane,
    netns,
    pin::PinDir,
    routes::{self, InstalledRoute, Netlink, RouteOutcome, RoutePlan, SlowPathRoute},
};

/// Names of the tcx programs on `iface`'s egress.
fn tc_egress_programs(iface: &str) -> Vec<String> {
    let (_, progs) = SchedClassifier::query_tcx(iface, TcAttachType::Egress).unwrap();
    progs
        .iter()
        .map(|p| p.name_as_str().unwrap_or("?").to_string())
        .collect()
}

/// vdmm's routes in the kernel (read back over netlink), as (home, via, mtu).
fn vdmm_routes() -> Vec<(Prefix, Option<IpAddr>, Option<u32>)> {
    Netlink::open()
        .unwrap()
        .vdmm_routes()
        .unwrap()
        .into_iter()
        .map(|InstalledRoute { home, via, mtu, .. }| (home, via, mtu))
        .collect()
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

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn ip(args: &[&str]) {
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
        let pins = PathBuf::from(format!("/run/vdmm/{ns}"));
        Self { ns, pins }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.pins.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid path; lazy unmount of the bpffs this test mounted (drops all pins).
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&self.pins);
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn load_program_unload_reset_in_a_namespace() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let scratch = Scratch::new();
    let ns = scratch.ns.clone();
    let dir = scratch.pins.clone();
    // Only this thread moves into the namespace.
    std::thread::spawn(move || {
        netns::enter(&ns).unwrap();
        let pins = PinDir::new(&dir);

        assert!(matches!(Dataplane::open(&pins), Err(Error::NotLoaded(_))));
        assert!(matches!(
            loader::load(&pins, "nosuch", Mode::Native),
            Err(Error::UnknownInterface(_))
        ));
        assert!(
            !dir.exists(),
            "an unknown interface must not create anything"
        );

        // A failed TC attach undoes the XDP attach of the same load.
        loader::FAIL_TC_ATTACH.store(true, Ordering::SeqCst);
        let e = loader::load(&pins, "kt0", Mode::Native).unwrap_err();
        loader::FAIL_TC_ATTACH.store(false, Ordering::SeqCst);
        assert!(e.to_string().contains("TC attach"), "{e}");
        assert!(!pins.link("kt0").exists());
        assert!(!pins.tc_link("kt0").exists());
        assert!(xdp_detached("kt0"));
        loader::reset(&pins).unwrap();

        let r = loader::load(&pins, "kt0", Mode::Native).unwrap();
        // The failed load above mounted the bpffs already.
        assert!(!r.mounted_bpffs);
        assert_eq!(r.program, ProgramState::Loaded);
        assert_eq!(r.tc_program, ProgramState::Loaded);
        assert_eq!(r.tc_link, Some(pins.tc_link("kt0")));
        assert!(pins.tc_program().exists());
        assert!(pins.tc_link("kt0").exists());
        assert_eq!(tc_egress_programs("kt0"), [names::TC_EGRESS_PROGRAM]);
        assert!(matches!(
            loader::load(&pins, "kt0", Mode::Native),
            Err(Error::AlreadyLoaded { .. })
        ));
        let r = loader::load(&pins, "kt1", Mode::Generic).unwrap();
        assert_eq!(r.program, ProgramState::Reused);
        assert_eq!(r.tc_program, ProgramState::Reused);
        assert_eq!(pins.linked_interfaces().unwrap(), ["kt0", "kt1"]);
        assert_eq!(pins.tc_linked_interfaces().unwrap(), ["kt0", "kt1"]);
        assert_eq!(tc_egress_programs("kt1"), [names::TC_EGRESS_PROGRAM]);

        let mut dp = Dataplane::open(&pins).unwrap();
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

        // Refused requests leave every table as it was.
        let snapshot = |dp: &Dataplane| {
            (
                dp.endpoints().unwrap(),
                dp.peers().unwrap(),
                dp.bindings().unwrap(),
                dp.config().unwrap(),
            )
        };
        let before = snapshot(&dp);
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
        assert_eq!(snapshot(&dp), before);

        // A handover replaces the locator; deleting the endpoint's last users frees it.
        dp.add_binding("10.1.0.0/16".parse().unwrap(), a("192.0.2.3"), None, true)
            .unwrap();
        assert_eq!(dp.bindings().unwrap()[0].locator, a("192.0.2.3"));
        dp.del_binding("10.1.0.0/16".parse().unwrap()).unwrap();
        dp.del_binding("2001:db8:5::/48".parse().unwrap()).unwrap();

        // Bindings with their slow-path routes, all four kinds (kt0 has MTU 1500).
        let bind = |dp: &mut Dataplane, home: &str, loc: &str| {
            routes::bind(dp, p(home), a(loc), None, false, true)
        };
        for (home, loc) in [
            ("10.7.0.0/24", "192.0.2.2"),
            ("10.8.0.0/24", "2001:db8::2"),
            ("2001:db8:7::/64", "2001:db8::2"),
        ] {
            let out = bind(&mut dp, home, loc).unwrap();
            assert!(
                matches!(out.route, RouteOutcome::Installed(_)),
                "{home}: {out:?}"
            );
        }
        let out = bind(&mut dp, "2001:db8:8::/64", "192.0.2.2").unwrap();
        assert!(matches!(out.route, RouteOutcome::Unsupported(_)), "{out:?}");
        let want = vec![
            (p("10.7.0.0/24"), Some(a("192.0.2.2")), Some(1480)),
            (p("10.8.0.0/24"), Some(a("2001:db8::2")), Some(1460)),
            (p("2001:db8:7::/64"), Some(a("2001:db8::2")), Some(1460)),
        ];
        assert_eq!(vdmm_routes(), want);

        // A route the kernel refuses leaves the binding map as it was, for a new binding
        // and for a handover.
        let before = snapshot(&dp);
        let mut nl = Netlink::open().unwrap();
        let bogus = |home: &str| {
            Some(RoutePlan::Install(SlowPathRoute {
                home: p(home),
                via: a("192.0.2.9"),
                oif: 999_999,
                dev: "nosuch".into(),
                mtu: 1400,
            }))
        };
        for (home, replace) in [("10.9.0.0/24", false), ("10.7.0.0/24", true)] {
            let e = routes::bind_with_plan(
                &mut dp,
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
        assert_eq!(snapshot(&dp), before);
        assert_eq!(vdmm_routes(), want);
        // No route to the locator: refused before anything changes.
        assert!(matches!(
            bind(&mut dp, "10.10.0.0/24", "203.0.113.1"),
            Err(Error::NoRouteToLocator { .. })
        ));
        assert!(matches!(
            bind(&mut dp, "10.7.0.0/24", "192.0.2.3"),
            Err(Error::BindingExists { .. })
        ));
        assert_eq!(snapshot(&dp), before);

        // A handover moves the route; --no-route on a handover drops it; del removes it.
        routes::bind(
            &mut dp,
            p("10.7.0.0/24"),
            a("2001:db8::3"),
            None,
            true,
            true,
        )
        .unwrap();
        assert_eq!(
            vdmm_routes()[0],
            (p("10.7.0.0/24"), Some(a("2001:db8::3")), Some(1460))
        );
        routes::bind(&mut dp, p("10.8.0.0/24"), a("192.0.2.3"), None, true, false).unwrap();
        assert!(routes::unbind(&mut dp, p("10.7.0.0/24")).unwrap());
        assert!(!routes::unbind(&mut dp, p("10.8.0.0/24")).unwrap());
        assert!(matches!(
            routes::unbind(&mut dp, p("10.8.0.0/24")),
            Err(Error::NoSuchBinding(_))
        ));
        assert_eq!(
            vdmm_routes(),
            [(p("2001:db8:7::/64"), Some(a("2001:db8::2")), Some(1460))]
        );
        assert_eq!(routes::remove_all(&dp).unwrap(), [p("2001:db8:7::/64")]);
        assert!(vdmm_routes().is_empty());
        routes::unbind(&mut dp, p("2001:db8:7::/64")).unwrap();
        routes::unbind(&mut dp, p("2001:db8:8::/64")).unwrap();

        dp.del_endpoint(a("192.0.2.1")).unwrap();
        assert_eq!(dp.config().unwrap().icmp_source_v4, [0; 4]);
        drop(dp);

        loader::unload(&pins, "kt0").unwrap();
        assert!(!pins.tc_link("kt0").exists());
        assert!(tc_egress_detached("kt0"));
        assert!(matches!(
            loader::unload(&pins, "kt0"),
            Err(Error::NotLoadedOnInterface { .. })
        ));
        loader::unload(&pins, "kt1").unwrap();
        // Configuration survives the last unload.
        assert_eq!(
            Dataplane::open(&pins).unwrap().peers().unwrap(),
            [a("192.0.2.2")]
        );
        let removed = loader::reset(&pins).unwrap();
        assert!(removed.contains(&"prog_vdmm_xdp".to_string()));
        assert!(removed.contains(&"prog_vdmm_tc_egress".to_string()));
        assert!(tc_egress_detached("kt1"));
        assert!(matches!(Dataplane::open(&pins), Err(Error::NotLoaded(_))));
    })
    .join()
    .unwrap();
    drop(scratch);
}
