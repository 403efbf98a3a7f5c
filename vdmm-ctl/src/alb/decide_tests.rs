//! Small hand-made cases for [`super::decide::decide`].

use std::collections::BTreeMap;

use super::{
    decide::{Decision, MoveReason, decide},
    history::History,
    model::{Ap, Client, Snapshot},
    params::Params,
};

/// APs of capacity 10 Mb/s at time 100 s.
fn net(aps: &[&str]) -> Snapshot {
    Snapshot {
        now: 100.0,
        aps: aps
            .iter()
            .map(|a| {
                (
                    a.to_string(),
                    Ap {
                        capacity_mbps: 10.0,
                    },
                )
            })
            .collect(),
        clients: BTreeMap::new(),
    }
}

/// Adds a client on `ap` whose load is `load` Mb/s (base 0.5 included).
fn client(s: &mut Snapshot, id: &str, ap: &str, load: f64, rssi: &[(&str, f64)]) {
    s.clients.insert(
        id.into(),
        Client {
            ap: ap.into(),
            traffic_mbps: load - Params::default().client_base_mbps,
            rssi: rssi.iter().map(|(a, r)| (a.to_string(), *r)).collect(),
            lag_db: BTreeMap::new(),
        },
    );
}

/// The defaults, and target placement at Jain's index 0.9: the cases both must pass.
fn modes() -> [Params; 2] {
    [Params::default(), targeted()]
}

fn run(s: &Snapshot, h: &History) -> Decision {
    decide(s, h, &Params::default())
}

/// The snapshot 5 s after `s`, with the moves of `d` made and remembered in `h`.
fn next_round(s: &Snapshot, d: &Decision, h: &mut History) -> Snapshot {
    h.record(&d.moves, s.now);
    let mut next = s.clone();
    for m in &d.moves {
        next.clients.get_mut(&m.client).unwrap().ap = m.to.clone();
    }
    next.now += 5.0;
    next
}

fn moves(d: &Decision) -> Vec<(String, String, String, MoveReason)> {
    d.moves
        .iter()
        .map(|m| (m.client.clone(), m.from.clone(), m.to.clone(), m.reason))
        .collect()
}

fn mv(c: &str, from: &str, to: &str, r: MoveReason) -> (String, String, String, MoveReason) {
    (c.into(), from.into(), to.into(), r)
}

/// ap1 carries ten 2 Mb/s clients (utilisation 2.0), ap2 and ap3 one each (0.2).
fn hotspot() -> Snapshot {
    let mut s = net(&["ap1", "ap2", "ap3"]);
    for i in 1..=10 {
        // c1 hears ap2 nearly as well as ap1; the others lose 8 dB on ap2 or ap3.
        let ap2 = if i == 1 { -51.0 } else { -58.0 };
        client(
            &mut s,
            &format!("c{i}"),
            "ap1",
            2.0,
            &[("ap1", -50.0), ("ap2", ap2), ("ap3", -58.0)],
        );
    }
    client(&mut s, "d2", "ap2", 2.0, &[("ap2", -45.0), ("ap1", -70.0)]);
    client(&mut s, "d3", "ap3", 2.0, &[("ap3", -45.0), ("ap1", -70.0)]);
    s
}

#[test]
fn hotspot_is_spread_cheapest_signal_first_within_the_limit() {
    let s = hotspot();
    let d = run(&s, &History::default());
    assert_eq!(d.overloaded, ["ap1"]);
    assert_eq!(d.moves.len(), Params::default().max_moves_per_round);
    assert_eq!(
        d.moves[0].client, "c1",
        "the move that costs 1 dB goes first"
    );
    assert_eq!(d.moves[0].to, "ap2");
    for m in &d.moves {
        assert_eq!((m.from.as_str(), m.reason), ("ap1", MoveReason::Balance));
        assert!(m.rssi_to >= Params::default().min_rssi_dbm);
    }
    assert!((d.utilisation_after["ap1"] - 1.2).abs() < 1e-9, "{d:?}");
    assert!(d.fairness_after > d.fairness_before + 0.15, "{d:?}");

    // Next round, with the moves applied and remembered: the moved clients dwell, the
    // others continue until ap1 is within the imbalance gap of the mean.
    let mut h = History::default();
    let s2 = next_round(&s, &d, &mut h);
    let d2 = run(&s2, &h);
    assert!(!d2.moves.is_empty(), "{d:?}\n{d2:?}");
    for m in &d2.moves {
        assert!(!h.last.contains_key(&m.client), "{} moved twice", m.client);
    }
    let mean = d2.utilisation_after.values().sum::<f64>() / 3.0;
    assert!(d2.utilisation_after["ap1"] <= mean + Params::default().imbalance_gap);
    assert!(d2.fairness_after > 0.95, "{d2:?}");
}

#[test]
fn ap_just_below_the_threshold_is_left_alone() {
    for p in &modes() {
        let mut s = net(&["ap1", "ap2"]);
        let both = [("ap1", -50.0), ("ap2", -52.0)];
        // ap1 at 0.78, ap2 at 0.70: below 0.8 and within 0.15 of the mean.
        client(&mut s, "c1", "ap1", 7.8, &both);
        client(&mut s, "c2", "ap2", 7.0, &both);
        let d = decide(&s, &History::default(), p);
        assert!(d.overloaded.is_empty() && d.moves.is_empty(), "{d:?}");

        // Just above the threshold, with room on ap2 for a small client: that one moves.
        let mut s = net(&["ap1", "ap2"]);
        client(&mut s, "c1", "ap1", 7.2, &both);
        client(&mut s, "c2", "ap1", 1.0, &both);
        client(&mut s, "c3", "ap2", 5.0, &both);
        let d = decide(&s, &History::default(), p);
        assert_eq!(d.overloaded, ["ap1"]);
        assert_eq!(moves(&d), [mv("c2", "ap1", "ap2", MoveReason::Balance)]);
    }
}

#[test]
fn a_client_heard_by_one_ap_stays() {
    for p in &modes() {
        let mut s = net(&["ap1", "ap2"]);
        client(&mut s, "lonely", "ap1", 6.0, &[("ap1", -50.0)]);
        // Heard by ap2 but below min_rssi_dbm (-75): not a candidate either.
        client(
            &mut s,
            "faint",
            "ap1",
            3.0,
            &[("ap1", -50.0), ("ap2", -80.0)],
        );
        client(
            &mut s,
            "both",
            "ap1",
            3.0,
            &[("ap1", -50.0), ("ap2", -55.0)],
        );
        let d = decide(&s, &History::default(), p);
        assert_eq!(moves(&d), [mv("both", "ap1", "ap2", MoveReason::Balance)]);
        assert!(d.stranded.is_empty());
    }
}

#[test]
fn equal_loads_move_nobody() {
    for p in &modes() {
        let mut s = net(&["ap1", "ap2", "ap3"]);
        for (i, ap) in ["ap1", "ap2", "ap3", "ap1", "ap2", "ap3"]
            .iter()
            .enumerate()
        {
            let rssi = [("ap1", -50.0), ("ap2", -50.0), ("ap3", -50.0)];
            client(&mut s, &format!("c{i}"), ap, 4.5, &rssi);
        }
        let d = decide(&s, &History::default(), p);
        assert!(d.moves.is_empty(), "{d:?}");
        assert_eq!(d.fairness_before, 1.0);
        assert!(
            d.utilisation_before
                .values()
                .all(|u| (u - 0.9).abs() < 1e-9)
        );
    }
}

#[test]
fn clients_of_an_ap_that_disappears_are_rescued() {
    for p in &modes() {
        let mut s = net(&["ap1", "ap2"]);
        // ap9 is gone: its clients go where they are heard best with room; its own signal
        // reports (still fresh) are ignored.
        client(
            &mut s,
            "c1",
            "ap9",
            2.0,
            &[("ap9", -40.0), ("ap1", -60.0), ("ap2", -55.0)],
        );
        client(&mut s, "c2", "ap9", 2.0, &[("ap9", -40.0), ("ap1", -60.0)]);
        client(&mut s, "c3", "ap9", 2.0, &[("ap9", -40.0), ("ap2", -90.0)]);
        let d = decide(&s, &History::default(), p);
        assert_eq!(
            moves(&d),
            [
                mv("c1", "ap9", "ap2", MoveReason::Rescue),
                mv("c2", "ap9", "ap1", MoveReason::Rescue),
            ]
        );
        assert_eq!(d.moves[0].rssi_from, None);
        assert_eq!(d.stranded, ["c3"], "nobody hears c3 well enough");
        assert!(!d.utilisation_after.contains_key("ap9"));
    }
}

#[test]
fn a_move_whose_target_became_overloaded_is_reverted() {
    for p in &modes() {
        let mut s = net(&["ap1", "ap2"]);
        let both = [("ap1", -50.0), ("ap2", -55.0)];
        // 20 s ago the balancer moved c1 from ap1 to ap2; since then others roamed into ap2.
        client(&mut s, "c1", "ap2", 2.0, &both);
        client(&mut s, "c2", "ap2", 7.0, &[("ap2", -50.0)]);
        client(&mut s, "c3", "ap1", 2.0, &both);
        let mut h = History::default();
        h.last.insert(
            "c1".into(),
            super::history::MoveRecord {
                from: "ap1".into(),
                to: "ap2".into(),
                at: 80.0,
                reason: MoveReason::Balance,
            },
        );
        let d = decide(&s, &h, p);
        assert_eq!(moves(&d), [mv("c1", "ap2", "ap1", MoveReason::Revert)]);

        // Out of the revert window it is an ordinary client: balancing may still move it
        // (the dwell time is over), but nothing is reverted.
        let mut late = s.clone();
        late.now = 80.0 + Params::default().revert_window_s;
        let d = decide(&late, &h, p);
        assert!(
            d.moves.iter().all(|m| m.reason != MoveReason::Revert),
            "{d:?}"
        );

        // No room on ap1 any more: no revert.
        let mut full = s.clone();
        client(&mut full, "c4", "ap1", 7.0, &[("ap1", -50.0)]);
        let d = decide(&full, &h, p);
        assert!(d.moves.is_empty(), "{d:?}");
    }
}

#[test]
fn dwell_and_ping_pong_hold_clients_back() {
    for p in &modes() {
        let mut s = net(&["ap1", "ap2"]);
        let both = [("ap1", -50.0), ("ap2", -52.0)];
        client(&mut s, "c1", "ap1", 3.0, &both);
        client(&mut s, "c2", "ap1", 6.0, &both);
        client(&mut s, "c3", "ap2", 1.0, &both);
        let mut h = History::default();
        let rec = |from: &str, to: &str| super::history::MoveRecord {
            from: from.into(),
            to: to.into(),
            at: 90.0,
            reason: MoveReason::Roam,
        };
        // c1 moved 10 s ago (dwell), c2 came from ap2 10 s ago (dwell and ping-pong).
        h.last.insert("c1".into(), rec("ap2", "ap1"));
        h.last.insert("c2".into(), rec("ap2", "ap1"));
        assert!(decide(&s, &h, p).moves.is_empty());
        // After the dwell time but within the ping-pong window, only c1 may go (to an AP it
        // did not come from) -- it came from ap2 too, so nobody goes.
        s.now = 90.0 + Params::default().min_dwell_s + 1.0;
        assert!(decide(&s, &h, p).moves.is_empty());
        h.last.insert("c1".into(), rec("ap3", "ap1"));
        assert_eq!(
            moves(&decide(&s, &h, p)),
            [mv("c1", "ap1", "ap2", MoveReason::Balance)]
        );
    }
}

#[test]
fn roaming_follows_the_signal_where_there_is_room() {
    for p in &modes() {
        let mut s = net(&["ap1", "ap2", "ap3"]);
        client(
            &mut s,
            "walker",
            "ap1",
            1.0,
            &[("ap1", -72.0), ("ap2", -55.0), ("ap3", -60.0)],
        );
        let d = decide(&s, &History::default(), p);
        assert_eq!(moves(&d), [mv("walker", "ap1", "ap2", MoveReason::Roam)]);
        // ap2 full: the next-best AP that is roam_margin_db better (ap3) instead.
        client(&mut s, "big", "ap2", 9.0, &[("ap2", -50.0)]);
        let d = decide(&s, &History::default(), p);
        assert_eq!(moves(&d), [mv("walker", "ap1", "ap3", MoveReason::Roam)]);
    }
}

/// ap1 carries c1, c2 and e1, ap2 x and y, 2 Mb/s each (0.6 and 0.4). x hears ap1 9 dB
/// better than its ap2; e1 would lose 1 dB on ap2; c1 and c2 20 dB.
fn displaced() -> Snapshot {
    let mut s = net(&["ap1", "ap2"]);
    for i in 1..=2 {
        client(
            &mut s,
            &format!("c{i}"),
            "ap1",
            2.0,
            &[("ap1", -50.0), ("ap2", -70.0)],
        );
    }
    client(&mut s, "e1", "ap1", 2.0, &[("ap1", -50.0), ("ap2", -51.0)]);
    client(&mut s, "x", "ap2", 2.0, &[("ap1", -50.0), ("ap2", -59.0)]);
    client(&mut s, "y", "ap2", 2.0, &[("ap2", -45.0)]);
    s
}

#[test]
fn exchange_trades_a_displaced_client_back_when_another_makes_room() {
    // ap1 (0.6) is not overloaded but cannot take x without becoming so (0.8 > mean 0.5
    // + gap 0.15), so x, which hears ap1 9 dB better than its ap2, does not roam; e1 on
    // ap1 could be on ap2 at a cost of 1 dB.
    let s = displaced();
    let d = run(&s, &History::default());
    assert!(d.moves.is_empty(), "{:?}", moves(&d));
    let p = Params::default().with("exchange_gain_db=4").unwrap();
    let d = decide(&s, &History::default(), &p);
    assert_eq!(
        moves(&d),
        [
            mv("e1", "ap1", "ap2", MoveReason::Balance),
            mv("x", "ap2", "ap1", MoveReason::Roam)
        ]
    );
    // A net gain below the parameter: no exchange.
    let p = Params::default().with("exchange_gain_db=9").unwrap();
    assert!(decide(&s, &History::default(), &p).moves.is_empty());
}

#[test]
fn priced_balancing_moves_the_cheapest_clients_first() {
    // Ten 2 Mb/s clients on ap1 (2.0); client ci loses i dB on ap2. With prices for
    // Jain's index 0.9, the clients that lose least go first, within the limit.
    let mut s = net(&["ap1", "ap2", "ap3"]);
    for i in 1..=10 {
        client(
            &mut s,
            &format!("c{i:02}"),
            "ap1",
            2.0,
            &[("ap1", -50.0), ("ap2", -50.0 - i as f64), ("ap3", -70.0)],
        );
    }
    client(&mut s, "d2", "ap2", 2.0, &[("ap2", -45.0), ("ap1", -70.0)]);
    client(&mut s, "d3", "ap3", 2.0, &[("ap3", -45.0), ("ap1", -70.0)]);
    let p = Params::default().with("target_fairness=0.9").unwrap();
    let d = decide(&s, &History::default(), &p);
    assert!(!d.moves.is_empty() && d.moves.len() <= p.max_moves_per_round);
    for (k, m) in d.moves.iter().enumerate() {
        assert_eq!(
            (m.client.as_str(), m.from.as_str(), m.to.as_str(), m.reason),
            (
                format!("c{:02}", k + 1).as_str(),
                "ap1",
                "ap2",
                MoveReason::Balance
            ),
            "{:?}",
            moves(&d)
        );
    }
    assert!(d.fairness_after > d.fairness_before, "{d:?}");
}

#[test]
fn priced_balancing_leaves_clients_indifferent_at_the_prices_alone() {
    // A known limit: when every client the target needs costs the same (8 dB on ap2 or
    // ap3), the prices for Jain's index 0.9 make them indifferent, their priced gain
    // (about 0) is under price_margin_db, and only the cheap c1 moves.
    let s = hotspot();
    let p = Params::default().with("target_fairness=0.9").unwrap();
    let d = decide(&s, &History::default(), &p);
    assert_eq!(moves(&d), [mv("c1", "ap1", "ap2", MoveReason::Balance)]);
}

/// Target placement at Jain's index 0.9 (the other parameters at their defaults).
fn targeted() -> Params {
    Params::default().with("placement_fairness=0.9").unwrap()
}

fn run_targeted(s: &Snapshot, h: &History) -> Decision {
    decide(s, h, &targeted())
}

#[test]
fn target_placement_spreads_the_hotspot_cheapest_signal_first() {
    // ap1 at 2.0, ap2 and ap3 at 0.2: the target takes ap1 down to high_util (0.8), six
    // clients off, three to each of ap2 and ap3; c1 (1 dB) goes first, four per round.
    let s = hotspot();
    let d = run_targeted(&s, &History::default());
    assert_eq!(d.moves.len(), Params::default().max_moves_per_round);
    assert_eq!(
        (d.moves[0].client.as_str(), d.moves[0].to.as_str()),
        ("c1", "ap2")
    );
    for m in &d.moves {
        assert_eq!((m.from.as_str(), m.reason), ("ap1", MoveReason::Balance));
    }
    assert!((d.utilisation_after["ap1"] - 1.2).abs() < 1e-9, "{d:?}");
    let mut h = History::default();
    let s2 = next_round(&s, &d, &mut h);
    let d2 = run_targeted(&s2, &h);
    assert_eq!(d2.moves.len(), 2, "{:?}", moves(&d2));
    for m in &d2.moves {
        assert!(!h.last.contains_key(&m.client), "{} moved twice", m.client);
    }
    for u in d2.utilisation_after.values() {
        assert!((u - 0.8).abs() < 1e-9, "{d2:?}");
    }
    // Placed: the next round moves nobody.
    let s3 = next_round(&s2, &d2, &mut h);
    assert!(run_targeted(&s3, &h).moves.is_empty());
}

#[test]
fn target_placement_trades_a_displaced_client_back_when_it_gains_more_than_the_switch_cost() {
    // x hears ap1 9 dB better than its ap2; e1 on ap1 would lose 1 dB on ap2. Jain's
    // index 0.9 does not allow x on ap1 unless e1 leaves. The trade gains 9 - 1 = 8 dB
    // for two moves: made at a switch cost of 2 dB (8 > 2 x 2), not at 8 dB.
    let s = displaced();
    assert!(run_targeted(&s, &History::default()).moves.is_empty());
    let p = targeted().with("switch_cost_db=2").unwrap();
    let d = decide(&s, &History::default(), &p);
    assert_eq!(
        moves(&d),
        [
            mv("e1", "ap1", "ap2", MoveReason::Balance),
            mv("x", "ap2", "ap1", MoveReason::Roam)
        ]
    );
    assert!(d.fairness_after >= 0.9, "{d:?}");
}

#[test]
fn the_trend_reads_a_walking_client_ahead() {
    // A client walking from ap1 toward ap2: the averages say ap1 -60, ap2 -58 (2 dB,
    // under the 4 dB roam margin), but ap1's average trails a falling signal by 4 dB and
    // ap2's a rising one by 4 dB. Read ahead by the lag (trend_gain 1), ap2 is 10 dB
    // better (more than the roam margin, and than target placement's switch cost): the
    // client roams now, in both modes. Without the trend, or standing still (no lag), it
    // stays.
    for p in &modes() {
        let mut s = net(&["ap1", "ap2"]);
        client(&mut s, "w", "ap1", 1.0, &[("ap1", -60.0), ("ap2", -58.0)]);
        let ahead = p.with("trend_gain=1").unwrap();
        assert!(decide(&s, &History::default(), &ahead).moves.is_empty());
        let c = s.clients.get_mut("w").unwrap();
        c.lag_db = [("ap1".to_string(), -4.0), ("ap2".to_string(), 4.0)].into();
        assert!(decide(&s, &History::default(), p).moves.is_empty());
        let d = decide(&s, &History::default(), &ahead);
        assert_eq!(moves(&d), [mv("w", "ap1", "ap2", MoveReason::Roam)]);
        assert_eq!(
            (d.moves[0].rssi_from, d.moves[0].rssi_to),
            (Some(-64.0), -54.0)
        );
    }
}
