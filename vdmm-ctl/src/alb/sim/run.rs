//! One policy over one trace: the clients start on the AP they hear best, the APs' reports
//! feed the moving averages every tick, the policy decides every `round_interval_s`, and
//! its moves take effect at once (a vAP handover is fast next to a round).

use std::collections::BTreeMap;

use crate::alb::{
    model::{Ap, Client, Snapshot},
    rssi::SmoothedRssi,
};

use super::{
    metrics::{Figures, Recorder},
    policy::Policy,
    radio::Trace,
    scenario::Scenario,
};

/// The utilisation of every AP over time: (time, utilisation per AP in scenario order).
pub type LoadSeries = Vec<(f64, Vec<f64>)>;

fn client_name(i: usize) -> String {
    format!("c{i}")
}

/// Each client's AP at time 0: the one that reports it strongest (or, if none hears it,
/// the strongest signal).
pub fn initial_placement(trace: &Trace) -> Vec<usize> {
    let first = &trace.ticks[0];
    let strongest = |row: &[f64]| {
        (0..row.len())
            .max_by(|&x, &y| row[x].total_cmp(&row[y]))
            .unwrap_or(0)
    };
    (0..trace.clients)
        .map(|c| {
            let rep: Vec<f64> = first.reports[c]
                .iter()
                .map(|r| r.unwrap_or(f64::NEG_INFINITY))
                .collect();
            if rep.iter().any(|r| r.is_finite()) {
                strongest(&rep)
            } else {
                strongest(&first.rssi[c])
            }
        })
        .collect()
}

/// Runs `policy` on `trace`; returns its figures and the AP loads over time.
pub fn run(s: &Scenario, trace: &Trace, mut policy: Policy) -> (Figures, LoadSeries) {
    let p = &s.alb;
    let index: BTreeMap<&str, usize> = s
        .aps
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    let n = trace.clients;
    let mut placement = initial_placement(trace);
    let mut smoothed: Vec<Vec<Option<SmoothedRssi>>> = vec![vec![None; s.aps.len()]; n];
    let mut rec = Recorder::new(n, s.ping_pong_window_s);
    let mut series = Vec::with_capacity(trace.ticks.len());
    let aps: BTreeMap<String, Ap> = s
        .aps
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                Ap {
                    capacity_mbps: a.capacity_mbps,
                },
            )
        })
        .collect();
    let mut next_round = p.round_interval_s;
    for (k, tick) in trace.ticks.iter().enumerate() {
        let t = k as f64 * trace.dt;
        for (c, row) in tick.reports.iter().enumerate() {
            for (a, r) in row.iter().enumerate() {
                if let Some(r) = *r {
                    match &mut smoothed[c][a] {
                        Some(sm) => sm.update(r, p.rssi_alpha, t),
                        slot => *slot = Some(SmoothedRssi::new(r, t)),
                    }
                }
            }
        }
        if t + 1e-9 >= next_round {
            next_round += p.round_interval_s;
            let snapshot = Snapshot {
                now: t,
                aps: aps.clone(),
                clients: (0..n)
                    .map(|c| {
                        let fresh = || {
                            s.aps.iter().zip(&smoothed[c]).filter_map(|(ap, sm)| {
                                let sm = (*sm)?;
                                (!sm.is_stale(t, p.rssi_max_age_s)).then(|| (ap.name.clone(), sm))
                            })
                        };
                        let client = Client {
                            ap: s.aps[placement[c]].name.clone(),
                            traffic_mbps: tick.demand[c],
                            rssi: fresh().map(|(a, sm)| (a, sm.dbm())).collect(),
                            lag_db: fresh().map(|(a, sm)| (a, sm.lag_db())).collect(),
                        };
                        (client_name(c), client)
                    })
                    .collect(),
            };
            let moves = policy.decide(&snapshot, p, &s.baselines);
            apply(&mut placement, &mut rec, &index, moves, t);
        }
        let mut load = vec![0.0; s.aps.len()];
        for (c, &a) in placement.iter().enumerate() {
            load[a] += p.client_base_mbps + tick.demand[c].max(0.0);
        }
        let util: Vec<f64> = load
            .iter()
            .zip(&s.aps)
            .map(|(l, a)| l / a.capacity_mbps)
            .collect();
        if t >= s.warmup_s {
            rec.tick(&util, (0..n).map(|c| tick.rssi[c][placement[c]]));
        }
        series.push((t, util));
    }
    rec.alb_moves = policy.moves_by_reason();
    (rec.finish(policy.name()), series)
}

fn apply(
    placement: &mut [usize],
    rec: &mut Recorder,
    index: &BTreeMap<&str, usize>,
    moves: Vec<(String, String)>,
    t: f64,
) {
    for (client, to) in moves {
        let c: usize = client[1..].parse().expect("simulator client name");
        let to = index[to.as_str()];
        if placement[c] != to {
            rec.handover(c, placement[c], to, t);
            placement[c] = to;
        }
    }
}
