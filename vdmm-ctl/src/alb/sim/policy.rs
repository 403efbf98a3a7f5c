//! The placement policies the simulator compares, each deciding from the same snapshot
//! (smoothed signal, traffic, current placement) every round:
//!
//! - `alb`: [`crate::alb::decide::decide`] with its history;
//! - `strongest`: strongest-signal-first, a client moves when another AP is stronger by a
//!   margin (what clients do by themselves);
//! - `least-loaded`: least-loaded-first among the APs that hear the client above a minimum,
//!   moving whenever that lowers the load the client sees;
//! - `empower`: the AP with the lowest |RSSI| x utilisation among those above a minimum
//!   signal, moving when the score improves by a margin (after the EmPOWER Wi-Fi load
//!   balancing application).

use std::collections::BTreeMap;

use crate::alb::{
    decide::{MoveReason, decide},
    history::History,
    load::{client_load, utilisation},
    model::{ApId, ClientId, Snapshot},
    params::Params,
};

use super::scenario::Baselines;

/// One policy and its memory.
pub enum Policy {
    /// The balancer, its history and how many moves it made for each reason.
    Alb {
        history: History,
        moves: BTreeMap<MoveReason, u64>,
    },
    Strongest,
    LeastLoaded,
    Empower,
}

impl Policy {
    /// Every policy, in the order of the table.
    pub fn all() -> Vec<Policy> {
        vec![
            Policy::Alb {
                history: History::default(),
                moves: BTreeMap::new(),
            },
            Policy::Strongest,
            Policy::LeastLoaded,
            Policy::Empower,
        ]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Policy::Alb { .. } => "alb",
            Policy::Strongest => "strongest",
            Policy::LeastLoaded => "least-loaded",
            Policy::Empower => "empower",
        }
    }

    /// The balancer's moves so far by reason (empty for the baselines).
    pub fn moves_by_reason(&self) -> BTreeMap<MoveReason, u64> {
        match self {
            Policy::Alb { moves, .. } => moves.clone(),
            _ => BTreeMap::new(),
        }
    }

    /// The moves of one round: (client, new AP).
    pub fn decide(&mut self, s: &Snapshot, p: &Params, b: &Baselines) -> Vec<(ClientId, ApId)> {
        match self {
            Policy::Alb { history, moves } => {
                let d = decide(s, history, p);
                history.record(&d.moves, s.now);
                for m in &d.moves {
                    *moves.entry(m.reason).or_default() += 1;
                }
                history.prune(s.now, p);
                d.moves.into_iter().map(|m| (m.client, m.to)).collect()
            }
            Policy::Strongest => strongest(s, b.ssf_margin_db),
            Policy::LeastLoaded => greedy(s, p, b.llf_min_rssi_dbm, |_, u| u, 0.0),
            Policy::Empower => greedy(
                s,
                p,
                b.empower_min_rssi_dbm,
                |rssi, u| rssi.abs() * u,
                b.empower_margin,
            ),
        }
    }
}

/// The strongest AP that hears the client: (AP, dBm).
fn best_signal(rssi: &BTreeMap<ApId, f64>, s: &Snapshot) -> Option<(ApId, f64)> {
    rssi.iter()
        .filter(|(a, _)| s.aps.contains_key(*a))
        .max_by(|x, y| x.1.total_cmp(y.1).then(y.0.cmp(x.0)))
        .map(|(a, r)| (a.clone(), *r))
}

fn strongest(s: &Snapshot, margin: f64) -> Vec<(ClientId, ApId)> {
    s.clients
        .iter()
        .filter_map(|(id, c)| {
            let (best, r) = best_signal(&c.rssi, s)?;
            let cur = c.rssi_of(&c.ap).filter(|_| s.aps.contains_key(&c.ap));
            (best != c.ap && cur.is_none_or(|cur| r > cur + margin)).then(|| (id.clone(), best))
        })
        .collect()
}

/// Clients one by one (loads updated after each move) go to the AP with the lowest
/// `score(rssi, utilisation with the client)` among those at `min_rssi` or better, when
/// that beats the current AP's score by the fraction `margin`. A client whose AP is gone
/// or below `min_rssi` takes the best-scoring AP (or the strongest if none qualifies).
fn greedy(
    s: &Snapshot,
    p: &Params,
    min_rssi: f64,
    score: impl Fn(f64, f64) -> f64,
    margin: f64,
) -> Vec<(ClientId, ApId)> {
    let mut util = utilisation(s, p);
    let mut moves = Vec::new();
    for (id, c) in &s.clients {
        let load = client_load(c, p);
        let share = |a: &str| load / s.aps[a].capacity_mbps;
        let here = s.aps.contains_key(&c.ap);
        let cur = c.rssi_of(&c.ap).filter(|r| here && *r >= min_rssi);
        let best = c
            .rssi
            .iter()
            .filter(|(a, r)| **a != c.ap && s.aps.contains_key(*a) && **r >= min_rssi)
            .map(|(a, r)| (score(*r, util[a] + share(a)), a))
            .min_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(y.1)));
        let target = match (cur, best) {
            (Some(r), Some((sc, a))) if sc < score(r, util[&c.ap]) * (1.0 - margin) => {
                Some(a.clone())
            }
            (Some(_), _) => None,
            (None, Some((_, a))) => Some(a.clone()),
            (None, None) => best_signal(&c.rssi, s)
                .map(|(a, _)| a)
                .filter(|a| *a != c.ap),
        };
        if let Some(t) = target {
            if here {
                *util.get_mut(&c.ap).expect("AP of the snapshot") -= share(&c.ap);
            }
            *util.get_mut(&t).expect("AP of the snapshot") += share(&t);
            moves.push((id.clone(), t));
        }
    }
    moves
}
