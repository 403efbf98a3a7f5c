//! The controller's state: the APs, what the APs report about each client (smoothed
//! signal per AP, the serving AP, a traffic meter), the balancer's history and parameters,
//! whether it is enabled, and the counters behind its metrics. Everything changes through
//! the methods here, which check their input first so that a refused change leaves the
//! state as it was.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alb::{
    decide::{Decision, Move, MoveReason, decide},
    history::History,
    load::TrafficMeter,
    model::{Ap, ApId, Client, ClientId, Snapshot},
    params::Params,
    rssi::SmoothedRssi,
};

/// One report from an AP host about one client (a line of `alb feed`, or `alb report`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The reporting AP.
    pub ap: ApId,
    /// The client (its MAC address in production).
    pub client: ClientId,
    /// The client's signal at this AP, dBm.
    pub rssi_dbm: f64,
    /// Whether this AP serves the client (the client's vAP is here).
    #[serde(default)]
    pub associated: bool,
    /// The client's cumulative bytes (both directions) at this AP, when it serves it.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// When it was measured (seconds since the epoch); default: when it arrives.
    #[serde(default)]
    pub time: Option<f64>,
}

/// What the controller knows about one client.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientState {
    /// The AP serving it, once one reported it associated (or a move was made).
    pub ap: Option<ApId>,
    pub rssi: BTreeMap<ApId, SmoothedRssi>,
    pub traffic: TrafficMeter,
}

/// The controller's counters (since the state file was created).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub reports: u64,
    pub reports_rejected: u64,
    /// Rounds run (`rebalance`, and `feed` when a round was due).
    pub decisions: u64,
    /// Moves made (committed), by reason.
    pub moves: BTreeMap<MoveReason, u64>,
    /// Moves decided but not made (the handover failed).
    pub moves_failed: u64,
    /// Serving vAPs read from the AP hosts' data planes (`collect`, `rebalance --apply`).
    pub vap_samples: u64,
    /// `alb run`: rounds run (enabled), intervals that only read the data planes
    /// (disabled), intervals that failed (nothing changed).
    pub loop_rounds: u64,
    pub loop_idle: u64,
    pub loop_errors: u64,
}

/// The whole state (the JSON of the state file).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub enabled: bool,
    pub params: Params,
    pub aps: BTreeMap<ApId, Ap>,
    pub clients: BTreeMap<ClientId, ClientState>,
    pub history: History,
    pub counters: Counters,
    /// When the last round ran (seconds since the epoch).
    pub last_round: Option<f64>,
}

/// Lowest and highest plausible signal reports, dBm.
const RSSI_RANGE: (f64, f64) = (-120.0, 0.0);

impl State {
    /// Adds an AP with its capacity.
    pub fn add_ap(&mut self, name: &str, capacity_mbps: f64) -> Result<(), String> {
        check_name("AP", name)?;
        if !(capacity_mbps.is_finite() && capacity_mbps > 0.0) {
            return Err(format!(
                "capacity of AP {name} must be a positive number of Mb/s"
            ));
        }
        if let Some(a) = self.aps.get(name) {
            return Err(format!(
                "AP {name} already exists (capacity {} Mb/s); delete it first",
                a.capacity_mbps
            ));
        }
        self.aps.insert(name.to_string(), Ap { capacity_mbps });
        Ok(())
    }

    /// Removes an AP: its reports are forgotten; its clients are rescued by the next round.
    pub fn del_ap(&mut self, name: &str) -> Result<(), String> {
        if self.aps.remove(name).is_none() {
            return Err(format!("no AP {name}"));
        }
        for c in self.clients.values_mut() {
            c.rssi.remove(name);
        }
        Ok(())
    }

    /// Takes one report in (at `now` unless it carries its time).
    pub fn report(&mut self, r: &Report, now: f64) -> Result<(), String> {
        check_name("client", &r.client)?;
        if !self.aps.contains_key(&r.ap) {
            return Err(format!(
                "report from unknown AP {}; add it with `vdmm-ctl alb ap add {} --capacity MBPS`",
                r.ap, r.ap
            ));
        }
        if !(RSSI_RANGE.0..=RSSI_RANGE.1).contains(&r.rssi_dbm) {
            return Err(format!(
                "rssi_dbm {} of client {} is out of range ({} to {} dBm)",
                r.rssi_dbm, r.client, RSSI_RANGE.0, RSSI_RANGE.1
            ));
        }
        let t = r.time.unwrap_or(now);
        if !t.is_finite() {
            return Err("time must be a number of seconds".into());
        }
        let alpha = self.params.rssi_alpha;
        let c = self.clients.entry(r.client.clone()).or_default();
        match c.rssi.get_mut(&r.ap) {
            Some(s) => s.update(r.rssi_dbm, alpha, t),
            None => {
                c.rssi
                    .insert(r.ap.clone(), SmoothedRssi::new(r.rssi_dbm, t));
            }
        }
        if r.associated {
            if c.ap.as_deref() != Some(r.ap.as_str()) {
                // A new serving AP: its byte counter is not the old one's.
                c.traffic.rebase();
            }
            c.ap = Some(r.ap.clone());
            if let Some(b) = r.bytes {
                c.traffic.update(t, b);
            }
        }
        self.counters.reports += 1;
        Ok(())
    }

    /// The balancer's view at `now`: clients with a serving AP, recent reports only.
    pub fn snapshot(&self, now: f64) -> Snapshot {
        let p = &self.params;
        Snapshot {
            now,
            aps: self.aps.clone(),
            clients: self
                .clients
                .iter()
                .filter_map(|(id, c)| {
                    let fresh = || {
                        c.rssi
                            .iter()
                            .filter(|(_, s)| !s.is_stale(now, p.rssi_max_age_s))
                    };
                    let client = Client {
                        ap: c.ap.clone()?,
                        traffic_mbps: c.traffic.mbps,
                        rssi: fresh().map(|(a, s)| (a.clone(), s.dbm())).collect(),
                        lag_db: fresh().map(|(a, s)| (a.clone(), s.lag_db())).collect(),
                    };
                    Some((id.clone(), client))
                })
                .collect(),
        }
    }

    /// Runs a round at `now` (counted; nothing is moved yet, and the time of the last
    /// round is the caller's to set).
    pub fn decide(&mut self, now: f64) -> Decision {
        self.counters.decisions += 1;
        decide(&self.snapshot(now), &self.history, &self.params)
    }

    /// Whether a round is due at `now`: `round_interval_s` after `last_round`.
    pub fn round_due(&self, now: f64) -> bool {
        self.last_round
            .is_none_or(|t| now - t >= self.params.round_interval_s)
    }

    /// Records moves as made at `now`: the clients' AP, the history, the counters.
    pub fn commit(&mut self, moves: &[Move], now: f64) {
        for m in moves {
            if let Some(c) = self.clients.get_mut(&m.client) {
                c.ap = Some(m.to.clone());
                c.traffic.rebase();
            }
            *self.counters.moves.entry(m.reason).or_default() += 1;
        }
        self.history.record(moves, now);
        self.history.prune(now, &self.params);
    }
}

/// Names are non-empty, without spaces or control characters (they become metric labels).
fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "invalid {what} name `{name}`: 1 to 64 characters, no spaces"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ap: &str, client: &str, rssi: f64, associated: bool, t: f64) -> Report {
        Report {
            ap: ap.into(),
            client: client.into(),
            rssi_dbm: rssi,
            associated,
            bytes: None,
            time: Some(t),
        }
    }

    #[test]
    fn reports_build_the_snapshot() {
        let mut s = State::default();
        s.add_ap("ap1", 10.0).unwrap();
        s.add_ap("ap2", 10.0).unwrap();
        assert!(
            s.add_ap("ap1", 5.0)
                .unwrap_err()
                .starts_with("AP ap1 already exists")
        );
        assert!(
            s.add_ap("ap 3", 5.0)
                .unwrap_err()
                .starts_with("invalid AP name")
        );
        assert!(s.add_ap("ap3", 0.0).unwrap_err().contains("positive"));

        let mut r = report("ap1", "c1", -50.0, true, 100.0);
        r.bytes = Some(0);
        s.report(&r, 0.0).unwrap();
        r.bytes = Some(1_250_000);
        r.time = Some(102.0);
        s.report(&r, 0.0).unwrap();
        s.report(&report("ap2", "c1", -60.0, false, 102.0), 0.0)
            .unwrap();
        // Unknown AP, absurd signal: refused, nothing changed.
        let before = s.clone();
        assert!(
            s.report(&report("ap9", "c1", -50.0, true, 103.0), 0.0)
                .unwrap_err()
                .contains("unknown AP ap9")
        );
        assert!(
            s.report(&report("ap1", "c1", 20.0, true, 103.0), 0.0)
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(s, before);
        // Heard but never associated: not in the snapshot.
        s.report(&report("ap2", "c2", -70.0, false, 102.0), 0.0)
            .unwrap();

        let snap = s.snapshot(103.0);
        assert_eq!(snap.clients.len(), 1);
        let c = &snap.clients["c1"];
        assert_eq!(c.ap, "ap1");
        assert!((c.traffic_mbps - 5.0).abs() < 1e-9, "{c:?}");
        assert_eq!(c.rssi.len(), 2);
        // 40 s later the reports are stale.
        assert!(s.snapshot(103.0 + 40.0).clients["c1"].rssi.is_empty());
        assert_eq!(s.counters.reports, 4);
    }

    #[test]
    fn the_snapshot_carries_each_signals_trend() {
        // c1 walks from ap1 toward ap2, 1 dB a second each way: the snapshot's lag is
        // negative at ap1 and positive at ap2; it goes stale with the reports. The state
        // file keeps the trend.
        let mut s = State::default();
        s.add_ap("ap1", 10.0).unwrap();
        s.add_ap("ap2", 10.0).unwrap();
        for k in 0..30 {
            let t = 100.0 + k as f64;
            s.report(&report("ap1", "c1", -50.0 - k as f64, true, t), 0.0)
                .unwrap();
            s.report(&report("ap2", "c1", -80.0 + k as f64, false, t), 0.0)
                .unwrap();
        }
        let c = &s.snapshot(130.0).clients["c1"];
        assert!(c.lag_db["ap1"] < -3.0 && c.lag_db["ap2"] > 3.0, "{c:?}");
        let back: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.snapshot(130.0), s.snapshot(130.0));
        assert!(s.snapshot(130.0 + 40.0).clients["c1"].lag_db.is_empty());
    }

    #[test]
    fn rounds_commit_and_deleted_aps_are_rescued() {
        let mut s = State::default();
        s.add_ap("ap1", 10.0).unwrap();
        s.add_ap("ap2", 10.0).unwrap();
        s.report(&report("ap1", "c1", -50.0, true, 0.0), 0.0)
            .unwrap();
        s.report(&report("ap2", "c1", -55.0, false, 0.0), 0.0)
            .unwrap();
        assert!(s.round_due(0.0));
        let d = s.decide(1.0);
        s.last_round = Some(1.0);
        assert!(d.moves.is_empty() && !s.round_due(2.0) && s.round_due(6.0));
        s.del_ap("ap1").unwrap();
        assert_eq!(s.del_ap("ap1").unwrap_err(), "no AP ap1");
        let d = s.decide(6.0);
        assert_eq!(d.moves.len(), 1);
        assert_eq!(
            (d.moves[0].to.as_str(), d.moves[0].reason),
            ("ap2", MoveReason::Rescue)
        );
        s.commit(&d.moves, 6.0);
        assert_eq!(s.clients["c1"].ap.as_deref(), Some("ap2"));
        assert_eq!(s.counters.moves[&MoveReason::Rescue], 1);
        assert_eq!(s.counters.decisions, 2);
        assert!(s.history.last.contains_key("c1"));
    }
}
