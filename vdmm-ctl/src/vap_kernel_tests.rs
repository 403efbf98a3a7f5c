//! Kernel tests of the vAP commands: the vAP program attached to a client-facing
//! interface, `vap create/show/forward/delete`, and bad input refused with a one-line
//! error that leaves the maps exactly as they were (compared as dumps before and after).
//! Root only, in a namespace of their own.

use std::{path::PathBuf, process::Command};

use vdmm_common::{IpAddrKey, vap::VapAddr};

use crate::{
    cli::VapCommand,
    commands::{lifecycle, vap},
    error::Error,
    kernel_tests::{SERIAL, ip},
    loader::{self, Mode},
    maps::Dataplane,
    netns,
    pin::PinDir,
    vap::VapEntry,
};

/// `vdmm-ctl vap ...` with no agent listening: straight on the maps.
fn run(pins: &PinDir, cmd: VapCommand) -> crate::error::Result<String> {
    vap::run(
        pins,
        std::path::Path::new("/nonexistent/vdmm-no-agent.sock"),
        cmd,
    )
}

/// A namespace with a veth pair (`vk0` uplink 192.0.2.11, `vk1` client-facing) and a
/// pin directory, removed on drop.
struct Scratch {
    ns: String,
    pins: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let ns = format!("vdmmctl-vap-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        ip(&["netns", "add", &ns]);
        ip(&[
            "-n", &ns, "link", "add", "vk0", "type", "veth", "peer", "name", "vk1",
        ]);
        ip(&["-n", &ns, "link", "set", "vk0", "up"]);
        ip(&["-n", &ns, "link", "set", "vk1", "up"]);
        ip(&[
            "-n",
            &ns,
            "link",
            "set",
            "vk1",
            "address",
            "02:00:00:00:0c:01",
        ]);
        ip(&["-n", &ns, "addr", "add", "192.0.2.11/24", "dev", "vk0"]);
        let pins = PathBuf::from(format!("/run/vdmm/{ns}"));
        Self { ns, pins }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.pins.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid path; lazy unmount of a bpffs this test mounted.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&self.pins);
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// Everything the vAP maps hold: the vAPs and the address owners.
fn dump(dp: &Dataplane) -> (Vec<VapEntry>, Vec<(IpAddrKey, VapAddr)>) {
    let mut addrs: Vec<(IpAddrKey, VapAddr)> = dp.vap_addrs.iter().map(|r| r.unwrap()).collect();
    addrs.sort_by_key(|(k, _)| k.addr);
    (dp.vaps().unwrap(), addrs)
}

fn create(
    client: &str,
    ipv4: Option<&str>,
    ipv6: Option<&str>,
    anchor: Option<&str>,
) -> VapCommand {
    VapCommand::Create {
        client: client.into(),
        ipv4: ipv4.map(Into::into),
        ipv6: ipv6.map(Into::into),
        anchor: anchor.map(Into::into),
        source: None,
        vap_mac: None,
        iface: None,
        breakout: false,
    }
}

/// `c` (a `Create`) with an interface and / or a vAP MAC.
fn with(c: VapCommand, on: Option<&str>, mac: Option<String>) -> VapCommand {
    match c {
        VapCommand::Create {
            client,
            ipv4,
            ipv6,
            anchor,
            source,
            vap_mac,
            iface,
            breakout,
        } => VapCommand::Create {
            client,
            ipv4,
            ipv6,
            anchor,
            source,
            vap_mac: mac.or(vap_mac),
            iface: on.map(Into::into).or(iface),
            breakout,
        },
        other => other,
    }
}

const CLIENT: &str = "00:16:3e:00:00:05";

fn commands(pins: &PinDir) {
    loader::load(pins, "vk0", Mode::Native).unwrap();
    loader::load_client_facing(pins, "vk1", Mode::Native).unwrap();
    assert!(pins.vap_link("vk1").exists());
    for again in [
        loader::load_client_facing(pins, "vk1", Mode::Native),
        loader::load(pins, "vk1", Mode::Native),
        loader::load_client_facing(pins, "vk0", Mode::Native),
    ] {
        assert!(
            matches!(again, Err(Error::AlreadyLoaded { .. })),
            "{again:?}"
        );
    }
    let status = lifecycle::status(pins, false).unwrap();
    assert!(
        status.contains("client-facing interfaces (vAP program): vk1\n"),
        "{status}"
    );

    let mut dp = Dataplane::open(pins).unwrap();
    dp.add_endpoint("192.0.2.11".parse().unwrap()).unwrap();
    let out = run(
        pins,
        create(
            CLIENT,
            Some("10.1.0.5"),
            Some("fd00:5::5"),
            Some("192.0.2.1"),
        ),
    )
    .unwrap();
    assert!(
        out.contains("uplink:    tunnel to anchor 192.0.2.1 from 192.0.2.11\n"),
        "{out}"
    );
    assert!(
        out.contains("iface:     vk1 (mac 02:00:00:00:0c:01)\n"),
        "{out}"
    );
    let before = dump(&dp);
    assert_eq!(before.0.len(), 1);
    assert_eq!(before.1.len(), 2);

    let refused: Vec<(VapCommand, &str)> = vec![
        (
            create("zz:00", Some("10.1.0.6"), None, Some("192.0.2.1")),
            "invalid MAC address `zz:00`",
        ),
        (
            create(CLIENT, Some("10.1.0.6"), None, Some("192.0.2.1")),
            "already has a vAP",
        ),
        (
            create(
                "00:16:3e:00:00:06",
                Some("10.1.0.5"),
                None,
                Some("192.0.2.1"),
            ),
            "address 10.1.0.5 already belongs to the vAP of client 00:16:3e:00:00:05",
        ),
        (
            create(
                "00:16:3e:00:00:06",
                None,
                Some("fd00:5::5"),
                Some("192.0.2.1"),
            ),
            "address fd00:5::5 already belongs",
        ),
        (
            create("00:16:3e:00:00:06", Some("10.1.0.6"), None, None),
            "needs the client's anchor",
        ),
        (
            create("00:16:3e:00:00:06", None, None, Some("192.0.2.1")),
            "needs the client's IPv4 or IPv6",
        ),
        (
            create(
                "00:16:3e:00:00:06",
                Some("10.1.0.6"),
                None,
                Some("2001:db8::1"),
            ),
            "no local IPv6 tunnel endpoint",
        ),
        (
            create(
                "00:16:3e:00:00:06",
                Some("fd00::6"),
                None,
                Some("192.0.2.1"),
            ),
            "is not an IPv4 address",
        ),
        (
            create(
                "00:16:3e:00:00:06",
                None,
                Some("fe80::6"),
                Some("192.0.2.1"),
            ),
            "link-local",
        ),
        (
            create(
                "ff:ff:ff:ff:ff:ff",
                Some("10.1.0.6"),
                None,
                Some("192.0.2.1"),
            ),
            "not a unicast MAC",
        ),
        (
            with(
                create(
                    "00:16:3e:00:00:06",
                    Some("10.1.0.6"),
                    None,
                    Some("192.0.2.1"),
                ),
                Some("nope0"),
                None,
            ),
            "unknown interface `nope0`",
        ),
        (
            with(
                create(
                    "00:16:3e:00:00:06",
                    Some("10.1.0.6"),
                    None,
                    Some("192.0.2.1"),
                ),
                None,
                Some(before.0[0].vap_mac.to_string()),
            ),
            "vAP MAC",
        ),
        (
            VapCommand::Delete {
                client: "00:16:3e:00:00:06".into(),
            },
            "no vAP for client 00:16:3e:00:00:06",
        ),
        (
            VapCommand::Show {
                client: "00:16:3e:00:00:06".into(),
                json: false,
            },
            "no vAP for client",
        ),
        (
            VapCommand::Forward {
                client: "00:16:3e:00:00:06".into(),
                to: Some("192.0.2.12".into()),
                source: None,
                off: false,
            },
            "no vAP for client",
        ),
        (
            VapCommand::Forward {
                client: CLIENT.into(),
                to: Some("2001:db8::12".into()),
                source: None,
                off: false,
            },
            "no local IPv6 tunnel endpoint",
        ),
    ];
    for (cmd, msg) in refused {
        let what = format!("{cmd:?}");
        let e = run(pins, cmd).unwrap_err().to_string();
        assert!(e.contains(msg), "{what}: {e}");
        assert!(!e.contains('\n'), "{what}: more than one line: {e}");
        assert_eq!(dump(&dp), before, "{what} changed the maps");
    }

    // Forwarding on and off, then delete.
    let out = run(
        pins,
        VapCommand::Forward {
            client: CLIENT.into(),
            to: Some("192.0.2.12".into()),
            source: None,
            off: false,
        },
    )
    .unwrap();
    assert_eq!(
        out,
        format!("the vAP of {CLIENT} forwards to 192.0.2.12 (from 192.0.2.11)\n")
    );
    assert_eq!(dp.vap(CLIENT.parse().unwrap()).unwrap().mode(), "forward");
    let list = run(pins, VapCommand::List { json: true }).unwrap();
    assert!(list.contains("\"forward_to\":\"192.0.2.12\""), "{list}");
    let off = VapCommand::Forward {
        client: CLIENT.into(),
        to: None,
        source: None,
        off: true,
    };
    assert_eq!(
        run(pins, off).unwrap(),
        format!("the vAP of {CLIENT} delivers locally\n")
    );
    assert_eq!(dump(&dp), before);
    let out = run(
        pins,
        VapCommand::Delete {
            client: CLIENT.into(),
        },
    )
    .unwrap();
    assert!(
        out.starts_with(&format!("deleted the vAP of {CLIENT}")),
        "{out}"
    );
    assert_eq!(dump(&dp), (vec![], vec![]));
    drop(dp);

    loader::unload(pins, "vk1").unwrap();
    assert!(!pins.vap_link("vk1").exists());
    lifecycle::reset(pins).unwrap();
}

#[test]
fn vap_commands_refuse_bad_input_without_changing_the_maps() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("needs root (network namespaces, bpffs, XDP)");
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            netns::enter(&scratch.ns).unwrap();
            commands(&PinDir::new(&scratch.pins));
        });
    });
    drop(scratch);
}
