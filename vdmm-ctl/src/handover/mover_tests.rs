//! The state machine on fakes: the happy path's order of changes, the refusals, the
//! concurrent move, and failures half-way with their rollbacks.

use std::{
    sync::{Arc, mpsc},
    thread,
    time::Duration,
};

use super::{
    ClientMac, Phase, VapMode, VapRecord,
    fakes::{FakeAnchor, FakeClock, FakeHost, Journal, Op},
    mover::{MoveError, Mover},
    nodes::ApHost,
    stats::HandoverStats,
};

const C: ClientMac = ClientMac([0x02, 0, 0, 0, 0, 0x10]);
const GRACE: Duration = Duration::from_millis(200);

struct World {
    ap: [Arc<FakeHost>; 3],
    anchor: Arc<FakeAnchor>,
    clock: Arc<FakeClock>,
    journal: Journal,
}

fn vap() -> VapRecord {
    VapRecord {
        client: C,
        vap_mac: [0x02, 0x76, 0, 0, 0, 0x10],
        ipv4: Some("10.20.0.10".parse().unwrap()),
        ipv6: Some("fd20::10".parse().unwrap()),
        anchor: "192.0.2.1".parse().unwrap(),
    }
}

/// Three AP hosts, the client served by ap1, its homes bound to ap1 on anchor gw1.
fn world(customize: impl FnOnce(&mut [FakeHost; 3])) -> World {
    let journal = Journal::default();
    let mut hosts = [
        FakeHost::new("ap1", "192.0.2.11", &journal),
        FakeHost::new("ap2", "192.0.2.12", &journal),
        FakeHost::new("ap3", "192.0.2.13", &journal),
    ];
    customize(&mut hosts);
    hosts[0]
        .vaps
        .lock()
        .unwrap()
        .insert(C, (vap(), VapMode::Serve));
    let anchor = FakeAnchor::new("gw1", "192.0.2.1", &journal);
    for h in vap().homes() {
        anchor
            .bindings
            .lock()
            .unwrap()
            .insert(h, "192.0.2.11".parse().unwrap());
    }
    let [a, b, c] = hosts;
    World {
        ap: [Arc::new(a), Arc::new(b), Arc::new(c)],
        anchor: Arc::new(anchor),
        clock: Arc::new(FakeClock::default()),
        journal,
    }
}

impl World {
    fn mover(&self) -> Mover {
        Mover::new(
            self.ap.iter().map(|h| Arc::clone(h) as _).collect(),
            vec![Arc::clone(&self.anchor) as _],
            Arc::clone(&self.clock) as _,
        )
    }

    fn journal(&self) -> Vec<String> {
        self.journal.lock().unwrap().clone()
    }

    /// The client is served by ap1 alone and both homes point at ap1.
    fn assert_on_ap1(&self) {
        assert_eq!(self.ap[0].mode(C), Some(VapMode::Serve));
        assert_eq!(self.ap[1].mode(C), None);
        assert_eq!(self.ap[2].mode(C), None);
        for h in ["10.20.0.10/32", "fd20::10/128"] {
            assert_eq!(
                self.anchor.locator_of(h),
                Some("192.0.2.11".parse().unwrap()),
                "{h}"
            );
        }
    }
}

#[test]
fn move_prepares_target_switches_anchor_forwards_then_removes_source() {
    let w = world(|_| {});
    let m = w.mover();
    let r = m.move_client(C, "ap2", GRACE).expect("move");
    assert_eq!(
        w.journal(),
        [
            "ap2 install 02:00:00:00:00:10",
            "gw1 resolve 192.0.2.12",
            "ap1 resolve 192.0.2.12",
            "ap2 resolve 192.0.2.1",
            "gw1 bind 10.20.0.10/32 -> 192.0.2.12",
            "gw1 bind fd20::10/128 -> 192.0.2.12",
            "ap1 mode 02:00:00:00:00:10 Forward(192.0.2.12)",
            "ap1 remove 02:00:00:00:00:10",
        ]
    );
    assert_eq!(w.ap[1].vap(C).unwrap(), Some((vap(), VapMode::Serve)));
    assert_eq!(w.ap[0].mode(C), None);
    assert_eq!(
        w.anchor.locator_of("fd20::10/128"),
        Some("192.0.2.12".parse().unwrap())
    );
    assert_eq!((r.from.as_str(), r.to.as_str()), ("ap1", "ap2"));
    assert_eq!(r.anchor, "gw1");
    // On the fake clock only the grace period takes time, and it is spent between the
    // switch-over and the removal.
    assert_eq!(r.switch_over, Duration::ZERO);
    assert_eq!(r.total, GRACE);
    assert_eq!(r.phases.iter().map(|p| p.0).collect::<Vec<_>>(), Phase::ALL);
    assert_eq!(r.phases[3].1, GRACE);
    let s = m.stats();
    assert_eq!((s.started, s.completed, s.failed_total()), (1, 1, 0));
    assert_eq!(s.duration.count, 1);
    assert!((s.duration.sum_seconds - 0.2).abs() < 1e-9);

    // And on: ap2 -> ap3 finds the client on ap2 now.
    let r = m.move_client(C, "ap3", GRACE).expect("second move");
    assert_eq!(r.from, "ap2");
    assert_eq!(w.ap[2].mode(C), Some(VapMode::Serve));
    assert_eq!(w.ap[1].mode(C), None);
}

#[test]
fn move_to_the_ap_the_client_is_on_is_refused_and_changes_nothing() {
    let w = world(|_| {});
    let m = w.mover();
    let e = m.move_client(C, "ap1", GRACE).unwrap_err();
    assert!(matches!(e, MoveError::AlreadyThere { .. }), "{e}");
    assert_eq!(e.to_string(), "client 02:00:00:00:00:10 is already on ap1");
    assert!(w.journal().is_empty());
    w.assert_on_ap1();
    let s = m.stats();
    assert_eq!(s.started, 0);
    assert_eq!(s.refused.get("already_there"), Some(&1));
}

#[test]
fn move_to_an_unknown_ap_is_refused_and_names_the_known_ones() {
    let w = world(|_| {});
    let m = w.mover();
    let e = m.move_client(C, "ap9", GRACE).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no AP host `ap9` in the cluster (known: ap1, ap2, ap3)"
    );
    assert!(w.journal().is_empty());
    w.assert_on_ap1();
    assert_eq!(m.stats().refused.get("unknown_ap"), Some(&1));
}

#[test]
fn move_of_an_unknown_client_or_without_its_anchor_is_refused() {
    let w = world(|_| {});
    let m = w.mover();
    let other = ClientMac([2, 0, 0, 0, 0, 0x99]);
    let e = m.move_client(other, "ap2", GRACE).unwrap_err();
    assert_eq!(e.to_string(), "no AP host serves client 02:00:00:00:00:99");

    let w = world(|_| {});
    let mut v = vap();
    v.anchor = "192.0.2.99".parse().unwrap();
    w.ap[0].vaps.lock().unwrap().insert(C, (v, VapMode::Serve));
    let m = w.mover();
    let e = m.move_client(C, "ap2", GRACE).unwrap_err();
    assert!(matches!(e, MoveError::NoAnchor { .. }), "{e}");
    assert!(w.journal().is_empty());
    let s = m.stats();
    assert_eq!(s.refused.get("no_anchor"), Some(&1));
}

#[test]
fn move_while_another_move_of_the_client_runs_is_refused() {
    let (release, gate) = mpsc::channel();
    let (waiting_tx, waiting) = mpsc::channel();
    let w = world(|h| {
        *h[1].gate.lock().unwrap() = Some(gate);
        *h[1].waiting.lock().unwrap() = Some(waiting_tx);
    });
    let m = Arc::new(w.mover());
    let first = {
        let m = Arc::clone(&m);
        thread::spawn(move || m.move_client(C, "ap2", GRACE))
    };
    // The first move is inside ap2's install now.
    waiting.recv().unwrap();
    let e = m.move_client(C, "ap3", GRACE).unwrap_err();
    assert_eq!(
        e.to_string(),
        "a move of client 02:00:00:00:00:10 is already running"
    );
    release.send(()).unwrap();
    let r = first.join().unwrap().expect("the first move completes");
    assert_eq!(r.to, "ap2");
    assert_eq!(w.ap[2].mode(C), None, "the refused move changed nothing");
    let s = m.stats();
    assert_eq!((s.started, s.completed), (1, 1));
    assert_eq!(s.refused.get("in_progress"), Some(&1));
    // Once the first is done, the client moves again.
    m.move_client(C, "ap3", GRACE).expect("a later move");
}

#[test]
fn target_failing_half_way_through_install_rolls_back_to_the_source() {
    let w = world(|h| {
        h[1].half_apply = true;
    });
    *w.ap[1].fail.lock().unwrap() = Some(Op::Install);
    let m = w.mover();
    let e = m.move_client(C, "ap2", GRACE).unwrap_err();
    assert_eq!(
        e.to_string(),
        "move of 02:00:00:00:00:10 to ap2 failed in prepare_target (ap2: Install refused); \
         rolled back: the client stays on ap1"
    );
    // The half-installed vAP is gone, ap1 serves, the anchor never changed.
    w.assert_on_ap1();
    assert!(!w.journal().iter().any(|l| l.contains("bind")));
    let s = m.stats();
    assert_eq!((s.started, s.completed), (1, 0));
    assert_eq!(s.failed.get("prepare_target"), Some(&1));
}

#[test]
fn anchor_unable_to_resolve_the_target_rolls_back_before_any_switch() {
    let w = world(|_| {});
    *w.anchor.fail_resolve.lock().unwrap() = true;
    let m = w.mover();
    let e = m.move_client(C, "ap2", GRACE).unwrap_err();
    assert_eq!(
        e.to_string(),
        "move of 02:00:00:00:00:10 to ap2 failed in prepare_target (gw1: neighbour \
         192.0.2.12: the resolution failed); rolled back: the client stays on ap1"
    );
    assert_eq!(
        w.journal(),
        [
            "ap2 install 02:00:00:00:00:10",
            "gw1 resolve 192.0.2.12 FAILED",
            "ap2 remove 02:00:00:00:00:10",
        ]
    );
    w.assert_on_ap1();
    assert_eq!(m.stats().failed.get("prepare_target"), Some(&1));
}

#[test]
fn source_unable_to_resolve_the_target_rolls_back() {
    let w = world(|_| {});
    *w.ap[0].fail.lock().unwrap() = Some(Op::Resolve);
    let m = w.mover();
    let e = m.move_client(C, "ap2", GRACE).unwrap_err();
    assert!(
        e.to_string()
            .contains("failed in prepare_target (ap1: Resolve refused)"),
        "{e}"
    );
    assert!(!w.journal().iter().any(|l| l.contains("bind")));
    w.assert_on_ap1();
}

#[test]
fn anchor_failing_after_one_home_restores_that_binding() {
    let w = world(|_| {});
    *w.anchor.fail_home.lock().unwrap() = Some("fd20::10/128".parse().unwrap());
    let m = w.mover();
    let e = m.move_client(C, "ap2", GRACE).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "move of 02:00:00:00:00:10 to ap2 failed in switch_anchor (gw1: binding map full)"
        ),
        "{e}"
    );
    assert_eq!(
        w.journal(),
        [
            "ap2 install 02:00:00:00:00:10",
            "gw1 resolve 192.0.2.12",
            "ap1 resolve 192.0.2.12",
            "ap2 resolve 192.0.2.1",
            "gw1 bind 10.20.0.10/32 -> 192.0.2.12",
            "gw1 bind fd20::10/128 FAILED",
            "gw1 bind 10.20.0.10/32 -> 192.0.2.11",
            "ap2 remove 02:00:00:00:00:10",
        ]
    );
    w.assert_on_ap1();
    assert_eq!(m.stats().failed.get("switch_anchor"), Some(&1));
}

#[test]
fn source_refusing_forward_mode_rolls_back_anchor_and_target() {
    let w = world(|_| {});
    *w.ap[0].fail.lock().unwrap() = Some(Op::Forward);
    let m = w.mover();
    let e = m.move_client(C, "ap2", GRACE).unwrap_err();
    assert!(e.to_string().contains("failed in forward_source"), "{e}");
    assert!(
        e.to_string()
            .ends_with("rolled back: the client stays on ap1"),
        "{e}"
    );
    w.assert_on_ap1();
}

#[test]
fn incomplete_rollback_is_reported() {
    let w = world(|_| {});
    *w.anchor.fail_home.lock().unwrap() = Some("fd20::10/128".parse().unwrap());
    *w.ap[1].fail.lock().unwrap() = Some(Op::Remove);
    let m = w.mover();
    let e = m.move_client(C, "ap2", GRACE).unwrap_err().to_string();
    assert!(
        e.ends_with("rollback incomplete: ap2: Remove refused"),
        "{e}"
    );
}

#[test]
fn source_failing_to_remove_leaves_the_client_on_the_target_and_says_so() {
    let w = world(|_| {});
    *w.ap[0].fail.lock().unwrap() = Some(Op::Remove);
    let m = w.mover();
    let e = m.move_client(C, "ap2", GRACE).unwrap_err();
    assert!(e.to_string().contains("failed in remove_source"), "{e}");
    assert!(e.to_string().contains("the client is served by ap2"), "{e}");
    assert_eq!(w.ap[1].mode(C), Some(VapMode::Serve));
    assert_eq!(
        w.ap[0].mode(C),
        Some(VapMode::Forward("192.0.2.12".parse().unwrap()))
    );
    let s: HandoverStats = m.stats();
    assert_eq!((s.started, s.completed), (1, 0));
    assert_eq!(s.failed.get("remove_source"), Some(&1));
}

/// AP hosts whose agents follow the vAP's location (etcd), with a grace period of 1 s.
fn following_world() -> World {
    world(|h| {
        for h in h.iter_mut() {
            h.follows = Some(Duration::from_secs(1));
        }
    })
}

#[test]
fn following_a_location_resolves_the_paths_before_the_one_write_and_waits_for_the_rest() {
    let w = following_world();
    let m = w.mover();
    let r = m.move_client(C, "ap2", GRACE).expect("move");
    // The install (the location's write) comes after the paths are resolved: the anchor
    // switches as soon as it sees it. The rest are the nodes following it (waits).
    assert_eq!(
        w.journal(),
        [
            "gw1 resolve 192.0.2.12",
            "ap1 resolve 192.0.2.12",
            "ap2 resolve 192.0.2.1",
            "ap2 install 02:00:00:00:00:10",
            "gw1 bind 10.20.0.10/32 -> 192.0.2.12",
            "gw1 bind fd20::10/128 -> 192.0.2.12",
            "ap1 mode 02:00:00:00:00:10 Forward(192.0.2.12)",
            "ap1 remove 02:00:00:00:00:10",
        ]
    );
    // The mover does not sleep: the source's agent keeps its own grace period, which the
    // report names instead of --grace-ms.
    assert_eq!(r.total, Duration::ZERO);
    assert_eq!(r.grace, Duration::from_secs(1));
    assert_eq!(r.phases.iter().map(|p| p.0).collect::<Vec<_>>(), Phase::ALL);
    assert_eq!(m.stats().completed, 1);
}

#[test]
fn following_a_failed_install_moved_nothing_and_rolls_nothing_back() {
    let w = following_world();
    *w.ap[1].fail.lock().unwrap() = Some(Op::Install);
    let e = w.mover().move_client(C, "ap2", GRACE).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("the location did not move: the client stays on ap1"),
        "{e}"
    );
    assert!(
        !w.journal()
            .iter()
            .any(|l| l.contains("bind") || l.contains("mode")),
        "{:?}",
        w.journal()
    );
    w.assert_on_ap1();
}

#[test]
fn following_an_anchor_that_does_not_follow_moves_the_location_back_to_the_source() {
    let w = following_world();
    *w.anchor.fail_home.lock().unwrap() = Some("fd20::10/128".parse().unwrap());
    let e = w.mover().move_client(C, "ap2", GRACE).unwrap_err();
    let MoveError::Failed {
        phase, rollback, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(*phase, Phase::SwitchAnchor);
    // The rollback is the source's install (the location back there); the target is
    // left to follow (it forwards for its grace period, then removes the vAP).
    let j = w.journal();
    let at = j
        .iter()
        .position(|l| l == "gw1 bind fd20::10/128 FAILED")
        .unwrap();
    assert_eq!(
        j[at + 1..],
        [
            "ap1 install 02:00:00:00:00:10",
            "gw1 bind 10.20.0.10/32 -> 192.0.2.11",
            "gw1 bind fd20::10/128 FAILED",
        ],
        "{j:?}"
    );
    // The IPv6 home cannot be awaited either (the fake anchor refuses it): said so.
    assert!(
        rollback.starts_with("rollback incomplete: gw1: "),
        "{rollback}"
    );
    assert!(!j.iter().any(|l| l.starts_with("ap2 remove")), "{j:?}");
}

#[test]
fn a_move_between_a_following_host_and_one_that_is_not_is_refused() {
    let w = world(|h| h[1].follows = Some(Duration::from_secs(1)));
    let m = w.mover();
    let e = m.move_client(C, "ap2", GRACE).unwrap_err();
    assert!(matches!(e, MoveError::MixedStores { .. }), "{e}");
    assert!(w.journal().is_empty(), "{:?}", w.journal());
    let s = m.stats();
    assert_eq!((s.started, s.refused.get("mixed_stores")), (0, Some(&1)));
}
