//! The simulator of `vdmm-ctl alb simulate`: a seeded scenario (APs on a floor, clients
//! walking by random waypoint, log-distance path loss with shadowing) is turned into one
//! trace of signal reports, and ALB and the three baselines ([`policy`]) are each run on
//! that same trace; [`Outcome`] holds their figures, the AP loads over time and whether
//! ALB met issue 6's targets on it.

pub mod bound;
pub mod budget;
pub mod metrics;
pub mod mobility;
pub mod policy;
pub mod radio;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;

use serde::Serialize;

use self::{
    bound::Bound,
    budget::{Budgeted, Rounds},
    metrics::Figures,
    policy::Policy,
    radio::Trace,
    run::{LoadSeries, run},
    scenario::Scenario,
};

/// The result of one simulation.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub scenario: String,
    pub seed: u64,
    pub clients: usize,
    pub aps: Vec<String>,
    /// One row per policy: alb, strongest, least-loaded, empower.
    pub figures: Vec<Figures>,
    pub targets: Vec<Target>,
    /// What any placement can reach at Jain's index 0.9 (only when asked for: slow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<Bound>,
    /// With the bound: what any placement can reach at Jain's index 0.9 at every round
    /// with at most as many handovers as each policy made ([`budget`]), in the order of
    /// `figures`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<Budgeted>,
    /// AP utilisation over time per policy (not in the JSON output: the plot shows it).
    #[serde(skip)]
    pub series: Vec<(String, LoadSeries)>,
}

/// One of issue 6's targets for ALB, checked on this run.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub name: String,
    pub met: bool,
    /// The numbers compared.
    pub detail: String,
}

/// The Jain's index of issue 6's target.
pub const TARGET_JAIN: f64 = 0.9;

/// Runs every policy on the scenario; with `with_bound`, also computes what any placement
/// can reach at Jain's index [`TARGET_JAIN`] ([`bound`]).
pub fn simulate(s: &Scenario, with_bound: bool) -> Outcome {
    let trace = Trace::generate(s);
    let (figures, series): (Vec<Figures>, Vec<_>) = Policy::all()
        .into_iter()
        .map(|p| {
            let name = p.name().to_string();
            let (f, ts) = run(s, &trace, p);
            (f, (name, ts))
        })
        .unzip();
    let targets = targets(&figures);
    let bound = with_bound
        .then(|| bound::bound(s, &trace, TARGET_JAIN))
        .flatten();
    let budgets = with_bound
        .then(|| Rounds::new(s, &trace, TARGET_JAIN))
        .flatten()
        .map(|r| {
            let curve = r.curve();
            figures
                .iter()
                .map(|f| r.budgeted(s, &trace, &curve, f.handovers))
                .collect()
        })
        .unwrap_or_default();
    Outcome {
        bound,
        budgets,
        scenario: s.name.clone(),
        seed: s.seed,
        clients: trace.clients,
        aps: s.aps.iter().map(|a| a.name.clone()).collect(),
        figures,
        targets,
        series,
    }
}

/// Issue 6's targets: Jain's index >= 0.9 where least-loaded-first reaches it; mean
/// signal within 3 dB of strongest-signal-first; ping-pong below 1% of handovers; fewer
/// handovers than least-loaded-first.
fn targets(f: &[Figures]) -> Vec<Target> {
    let by = |name: &str| {
        f.iter()
            .find(|x| x.policy == name)
            .expect("every policy ran")
    };
    let (alb, ssf, llf) = (by("alb"), by("strongest"), by("least-loaded"));
    let mut t = Vec::new();
    if llf.jain >= TARGET_JAIN {
        t.push(Target {
            name: "jain >= 0.9 (least-loaded reaches it)".into(),
            met: alb.jain >= TARGET_JAIN,
            detail: format!("alb {:.3}, least-loaded {:.3}", alb.jain, llf.jain),
        });
    } else {
        t.push(Target {
            name: "jain >= 0.9: not applicable (least-loaded does not reach it)".into(),
            met: true,
            detail: format!("alb {:.3}, least-loaded {:.3}", alb.jain, llf.jain),
        });
    }
    t.push(Target {
        name: "mean rssi within 3 dB of strongest".into(),
        met: alb.rssi_mean_dbm >= ssf.rssi_mean_dbm - 3.0,
        detail: format!(
            "alb {:.1} dBm, strongest {:.1} dBm ({:+.1} dB)",
            alb.rssi_mean_dbm,
            ssf.rssi_mean_dbm,
            alb.rssi_mean_dbm - ssf.rssi_mean_dbm
        ),
    });
    t.push(Target {
        name: "ping-pong < 1% of handovers".into(),
        met: alb.ping_pong_pct() < 1.0,
        detail: format!(
            "alb {} of {} ({:.1}%)",
            alb.ping_pong,
            alb.handovers,
            alb.ping_pong_pct()
        ),
    });
    t.push(Target {
        name: "fewer handovers than least-loaded".into(),
        met: alb.handovers < llf.handovers,
        detail: format!("alb {}, least-loaded {}", alb.handovers, llf.handovers),
    });
    t
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn hotspot() -> Scenario {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/alb/hotspot.toml");
        Scenario::load(Path::new(path)).unwrap()
    }

    #[test]
    fn a_seed_gives_the_same_run_and_another_seed_another() {
        let s = hotspot();
        let a = simulate(&s, false);
        let b = simulate(&s, false);
        assert_eq!(a.figures, b.figures);
        let mut other = s.clone();
        other.seed += 1;
        assert_ne!(simulate(&other, false).figures, a.figures);
    }

    #[test]
    fn alb_spreads_the_hotspot_that_strongest_signal_leaves() {
        let o = simulate(&hotspot(), false);
        let by = |n: &str| o.figures.iter().find(|f| f.policy == n).unwrap();
        let (alb, ssf) = (by("alb"), by("strongest"));
        assert!(
            ssf.max_load > 1.0,
            "the scenario must overload ap1: {ssf:?}"
        );
        assert!(
            alb.max_load < ssf.max_load && alb.jain > ssf.jain,
            "{alb:?}"
        );
        assert!(
            alb.rssi_mean_dbm < ssf.rssi_mean_dbm,
            "spreading costs signal"
        );
        assert_eq!(o.series.len(), 4);
        assert!(
            o.series
                .iter()
                .all(|(_, s)| s.len() == 600 && s[0].1.len() == 6)
        );
        assert_eq!(o.targets.len(), 4);
    }

    /// ALB's figures against strongest- and least-loaded-first on seeds 1-10: (jain,
    /// dRSSI, ping-pong %, handovers < least-loaded's).
    fn seeds(params: &[&str]) -> Vec<(f64, f64, f64, bool)> {
        (1..=10)
            .map(|seed| {
                let mut s = hotspot();
                s.seed = seed;
                for a in params {
                    s.alb = s.alb.with(a).unwrap();
                }
                let o = simulate(&s, false);
                let by = |n: &str| o.figures.iter().find(|f| f.policy == n).unwrap();
                let (alb, ssf, llf) = (by("alb"), by("strongest"), by("least-loaded"));
                assert!(llf.jain >= TARGET_JAIN, "seed {seed}: {llf:?}");
                (
                    alb.jain,
                    alb.rssi_mean_dbm - ssf.rssi_mean_dbm,
                    alb.ping_pong_pct(),
                    alb.handovers < llf.handovers,
                )
            })
            .collect()
    }

    /// Jain's index and ping-pong targets met on every seed, and ALB's signal at most
    /// `floor_db` below strongest-signal-first's.
    fn every_seed_fair_without_ping_pong(r: &[(f64, f64, f64, bool)], floor_db: f64) {
        for (i, (jain, drssi, pp, _)) in r.iter().enumerate() {
            assert!(*jain >= TARGET_JAIN, "seed {}: jain {jain}", i + 1);
            assert!(*pp < 1.0, "seed {}: ping-pong {pp}%", i + 1);
            assert!(*drssi >= floor_db, "seed {}: {drssi:+.2} dB", i + 1);
        }
    }

    /// Issue 6's targets on the shipped hotspot, seeds 1-10, as far as ALB meets them
    /// (docs/alb.md): Jain's index and ping-pong on every seed, fewer handovers than
    /// least-loaded-first on 7 of 10. The signal target (within 3 dB of
    /// strongest-signal-first) is missed: this holds ALB to what it reaches today, so
    /// that it cannot get worse unnoticed.
    #[test]
    fn hotspot_targets_over_ten_seeds() {
        let r = seeds(&[]);
        every_seed_fair_without_ping_pong(&r, -6.0);
        assert!(r.iter().filter(|x| x.3).count() >= 7, "{r:?}");
        let mean = r.iter().map(|x| x.1).sum::<f64>() / 10.0;
        assert!(mean >= -5.4, "mean dRSSI {mean:+.2} dB");
    }

    /// Priced balancing on the same seeds: the targets on fairness and ping-pong, and
    /// 1 dB or more of signal over the default (still short of the 3 dB target).
    #[test]
    fn priced_balancing_on_the_hotspot_over_ten_seeds() {
        let r = seeds(&["target_fairness=0.9", "price_margin_db=4"]);
        every_seed_fair_without_ping_pong(&r, -4.8);
        let mean = r.iter().map(|x| x.1).sum::<f64>() / 10.0;
        assert!(mean >= -4.3, "mean dRSSI {mean:+.2} dB");
    }

    /// Target placement (`placement_fairness=0.9`, with APs allowed to full capacity) on
    /// the same seeds: fairness and ping-pong on every seed, 1.4 dB more signal than the
    /// default on average, and fewer handovers than least-loaded-first on 6 of 10
    /// (docs/alb.md). The signal target is still missed (-3.5 to -4.2 dB).
    #[test]
    fn target_placement_on_the_hotspot_over_ten_seeds() {
        let r = seeds(&["placement_fairness=0.9", "high_util=1"]);
        every_seed_fair_without_ping_pong(&r, -4.3);
        assert!(r.iter().filter(|x| x.3).count() >= 6, "{r:?}");
        let mean = r.iter().map(|x| x.1).sum::<f64>() / 10.0;
        assert!(mean >= -3.95, "mean dRSSI {mean:+.2} dB");
    }

    /// Target placement reading the signal ahead along its trend (`trend_gain=2`, with
    /// `switch_cost_db=15` to hold the handovers at about least-loaded-first's): fairness
    /// and ping-pong on every seed, 0.8 dB more signal than without the trend on average
    /// (-3.03 against -3.84 dB), within 3 dB of strongest-signal-first on 3 seeds of 10,
    /// fewer handovers than least-loaded-first on 6 of 10 (docs/alb.md).
    #[test]
    fn target_placement_with_the_trend_on_the_hotspot_over_ten_seeds() {
        let r = seeds(&[
            "placement_fairness=0.9",
            "high_util=1",
            "trend_gain=2",
            "switch_cost_db=15",
        ]);
        every_seed_fair_without_ping_pong(&r, -3.5);
        assert!(r.iter().filter(|x| x.3).count() >= 6, "{r:?}");
        assert!(r.iter().filter(|x| x.1 >= -3.0).count() >= 3, "{r:?}");
        let mean = r.iter().map(|x| x.1).sum::<f64>() / 10.0;
        assert!(mean >= -3.1, "mean dRSSI {mean:+.2} dB");
    }

    /// The signal target is not out of reach by geometry: on seed 7, a placement with
    /// Jain's index >= 0.9 at every tick (and none above high_util) exists within 3 dB of
    /// what strongest-signal-first gets, and the bound is above it; nor by the handover
    /// target: one with Jain's index >= 0.9 at every round and no more handovers than
    /// least-loaded-first's is within 3 dB too ([`budget`]).
    #[test]
    fn a_placement_within_the_signal_target_exists() {
        let s = hotspot();
        let o = simulate(&s, true);
        let b = o.bound.clone().unwrap();
        let ssf = o.figures.iter().find(|f| f.policy == "strongest").unwrap();
        assert!(
            b.upper_dbm >= b.greedy_dbm && b.greedy_dbm >= b.greedy_capped_dbm,
            "{b:?}"
        );
        assert!(b.strongest_dbm >= b.upper_dbm, "{b:?}");
        assert!(
            b.greedy_capped_dbm >= ssf.rssi_mean_dbm - 3.0,
            "{b:?} {ssf:?}"
        );
        assert!(
            b.upper_dbm - b.greedy_dbm < 0.5,
            "the bound is loose: {b:?}"
        );
        // With no more handovers than least-loaded-first made, a placement that knows the
        // future still gets within 3 dB at Jain's index 0.9, below the bound.
        let llf = &o.budgets[2];
        let r = llf.reached.clone().unwrap();
        assert_eq!(o.figures[2].handovers, llf.handovers);
        assert!(r.handovers <= llf.handovers && r.jain >= 0.9, "{r:?}");
        assert!(llf.upper_dbm >= r.rssi_mean_dbm, "{llf:?}");
        assert!(r.rssi_mean_dbm >= ssf.rssi_mean_dbm - 3.0, "{r:?} {ssf:?}");
        assert!(llf.upper_dbm <= b.upper_dbm + 0.1, "{llf:?} {b:?}");
    }
}
