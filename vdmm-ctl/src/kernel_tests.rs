//! Tests against the real kernel (root only; skipped otherwise): load the data plane into a
//! throw-away network namespace with a pin directory of its own, program it through
//! [`Dataplane`], check that refused requests change nothing, then unload and reset.

use std::{net::IpAddr, path::PathBuf, process::Command};

use crate::{
    error::Error,
    loader::{self, Mode, ProgramState},
    maps::Dataplane,
    netns,
    pin::PinDir,
};

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

        let r = loader::load(&pins, "kt0", Mode::Native).unwrap();
        assert!(r.mounted_bpffs);
        assert_eq!(r.program, ProgramState::Loaded);
        assert!(matches!(
            loader::load(&pins, "kt0", Mode::Native),
            Err(Error::AlreadyLoaded { .. })
        ));
        let r = loader::load(&pins, "kt1", Mode::Generic).unwrap();
        assert_eq!(r.program, ProgramState::Reused);
        assert_eq!(pins.linked_interfaces().unwrap(), ["kt0", "kt1"]);

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
        dp.del_endpoint(a("192.0.2.1")).unwrap();
        assert_eq!(dp.config().unwrap().icmp_source_v4, [0; 4]);
        drop(dp);

        loader::unload(&pins, "kt0").unwrap();
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
        assert!(matches!(Dataplane::open(&pins), Err(Error::NotLoaded(_))));
    })
    .join()
    .unwrap();
    drop(scratch);
}
