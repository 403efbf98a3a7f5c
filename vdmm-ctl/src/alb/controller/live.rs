//! A live round: read who serves whom and the per-vAP byte counters from the cluster's AP
//! hosts ([`collect`]), decide, make each move as a vAP handover and record the moves
//! made ([`round`]). `alb rebalance --apply` runs one; `alb run` runs one every
//! `round_interval_s` while the balancer is enabled. Both run under the state file's lock.

use std::{sync::Arc, time::Duration};

use serde::Serialize;

use crate::{
    alb::{
        decide::Decision,
        load::{jain, utilisation},
    },
    cluster::Cluster,
    commands::vap_move::lock_client,
    error::Result,
    handover::{clock::SystemClock, mover::Mover, netns_nodes, stats},
};

use super::{
    execute::{self, Executed},
    sample::{self, SampleSummary},
    state::State,
};

/// Reads the serving vAPs and their byte counters of `cluster`'s AP hosts into `s` as of
/// time `t`.
pub fn collect(s: &mut State, cluster: &Cluster, t: f64) -> Result<SampleSummary> {
    let aps: Vec<String> = s.aps.keys().cloned().collect();
    let (samples, unbalanced) = sample::read_cluster(cluster, &aps)?;
    let mut summary = sample::apply(s, &samples, t);
    summary.unbalanced_hosts = unbalanced;
    Ok(summary)
}

/// What a live round did.
#[derive(Debug, Serialize)]
pub struct Round {
    /// When the round was decided (seconds since the epoch).
    pub time: f64,
    pub decision: Decision,
    pub executed: Executed,
    /// Jain's index of the utilisations after the moves made.
    pub fairness_now: f64,
}

/// One live round on `s` (the caller checks that the balancer is enabled): read the data
/// planes, decide at `t`, make each move as a vAP handover with `grace`, and commit the
/// moves made at `done()` (dwell and ping-pong windows start after the handovers); the
/// failed ones are counted.
pub fn round(
    s: &mut State,
    cluster: &Cluster,
    grace: Duration,
    t: f64,
    done: impl Fn() -> f64,
) -> Result<Round> {
    collect(s, cluster, t)?;
    let decision = s.decide(t);
    let (hosts, anchors) = netns_nodes::nodes(cluster);
    let stats_file = stats::state_file();
    let locks = stats_file.path().to_path_buf();
    let mover =
        Mover::new(hosts, anchors, Arc::new(SystemClock::default())).with_stats_file(stats_file);
    let executed = execute::execute(
        decision.moves.clone(),
        &mover,
        grace,
        |mac| match lock_client(&locks, mac) {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(format!("a move of client {mac} is already running")),
            Err(e) => Err(e.to_string()),
        },
    );
    let t_done = done();
    s.commit(&executed.made(), t_done);
    s.counters.moves_failed += executed.failed.len() as u64;
    s.last_round = Some(t_done);
    let fairness_now = jain(utilisation(&s.snapshot(t_done), &s.params).into_values());
    Ok(Round {
        time: t,
        decision,
        executed,
        fairness_now,
    })
}
