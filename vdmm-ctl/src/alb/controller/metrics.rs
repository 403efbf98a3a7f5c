//! The controller's Prometheus metrics (text format 0.0.4, like `vdmm-ctl metrics`):
//! counters of reports, decisions and moves by reason (reverts are the moves undone),
//! and gauges of each AP's utilisation and clients, the fairness index, and whether the
//! balancer is enabled.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    alb::{
        decide::MoveReason,
        load::{jain, utilisation},
    },
    metrics::text_format,
};

use super::state::State;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApLabel {
    ap: String,
}

fn counter(r: &mut Registry, name: &str, help: &str, v: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(v);
    r.register(name, help, c);
}

fn gauge(r: &mut Registry, name: &str, help: &str, v: f64) {
    let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    g.set(v);
    r.register(name, help, g);
}

/// The metrics of `state` at `now`.
pub fn render(state: &State, now: f64) -> String {
    let mut r = Registry::default();
    let c = &state.counters;
    counter(
        &mut r,
        "vdmm_alb_reports",
        "Signal reports taken in",
        c.reports,
    );
    counter(
        &mut r,
        "vdmm_alb_reports_rejected",
        "Signal reports refused (unknown AP, bad values) by alb feed",
        c.reports_rejected,
    );
    counter(
        &mut r,
        "vdmm_alb_vap_samples",
        "Serving vAPs read from the AP hosts' data planes (placement and byte counters)",
        c.vap_samples,
    );
    counter(
        &mut r,
        "vdmm_alb_decisions",
        "Balancing rounds run",
        c.decisions,
    );
    let moves = Family::<ReasonLabel, Counter>::default();
    for reason in MoveReason::ALL {
        moves
            .get_or_create(&ReasonLabel {
                reason: reason.name(),
            })
            .inc_by(c.moves.get(&reason).copied().unwrap_or(0));
    }
    r.register(
        "vdmm_alb_moves",
        "Clients moved, by reason (rescue, revert, roam, balance)",
        moves,
    );
    counter(
        &mut r,
        "vdmm_alb_reverted_moves",
        "Balancing moves undone because their target became overloaded",
        c.moves.get(&MoveReason::Revert).copied().unwrap_or(0),
    );
    counter(
        &mut r,
        "vdmm_alb_moves_failed",
        "Moves decided but not made: the handover failed",
        c.moves_failed,
    );

    counter(
        &mut r,
        "vdmm_alb_loop_rounds",
        "Rounds alb run ran while the balancer was enabled",
        c.loop_rounds,
    );
    counter(
        &mut r,
        "vdmm_alb_loop_idle",
        "Intervals of alb run that only read the data planes (balancer disabled)",
        c.loop_idle,
    );
    counter(
        &mut r,
        "vdmm_alb_loop_errors",
        "Intervals of alb run that failed (a data plane unreadable); nothing changed",
        c.loop_errors,
    );

    let snapshot = state.snapshot(now);
    let util = utilisation(&snapshot, &state.params);
    let ap_util = Family::<ApLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let ap_clients = Family::<ApLabel, Gauge>::default();
    for (ap, u) in &util {
        let label = ApLabel { ap: ap.clone() };
        ap_util.get_or_create(&label).set(*u);
        let n = snapshot.clients.values().filter(|c| &c.ap == ap).count();
        ap_clients.get_or_create(&label).set(n as i64);
    }
    r.register(
        "vdmm_alb_ap_utilisation",
        "Load of each AP (clients' base share plus traffic) over its capacity",
        ap_util,
    );
    r.register("vdmm_alb_ap_clients", "Clients each AP serves", ap_clients);
    gauge(
        &mut r,
        "vdmm_alb_fairness",
        "Jain's fairness index of the APs' utilisation (1 = all equal)",
        jain(util.values().copied()),
    );
    gauge(
        &mut r,
        "vdmm_alb_enabled",
        "1 when the balancer may move clients",
        if state.enabled { 1.0 } else { 0.0 },
    );
    let mut text = String::new();
    encode(&mut text, &r).expect("encoding into a String does not fail");
    text_format(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alb::controller::state::Report;

    #[test]
    fn prometheus_text() {
        let mut s = State::default();
        s.add_ap("ap1", 10.0).unwrap();
        s.add_ap("ap2", 10.0).unwrap();
        let r = Report {
            ap: "ap1".into(),
            client: "c1".into(),
            rssi_dbm: -50.0,
            associated: true,
            bytes: None,
            time: Some(0.0),
        };
        s.report(&r, 0.0).unwrap();
        s.counters.moves.insert(MoveReason::Revert, 2);
        s.counters.decisions = 3;
        let text = render(&s, 1.0);
        for line in [
            "vdmm_alb_reports_total 1\n",
            "vdmm_alb_decisions_total 3\n",
            "vdmm_alb_vap_samples_total 0\n",
            "vdmm_alb_loop_rounds_total 0\n",
            "vdmm_alb_loop_idle_total 0\n",
            "vdmm_alb_loop_errors_total 0\n",
            "vdmm_alb_moves_total{reason=\"revert\"} 2\n",
            "vdmm_alb_moves_total{reason=\"balance\"} 0\n",
            "vdmm_alb_reverted_moves_total 2\n",
            "vdmm_alb_ap_utilisation{ap=\"ap1\"} 0.05\n",
            "vdmm_alb_ap_utilisation{ap=\"ap2\"} 0.0\n",
            "vdmm_alb_ap_clients{ap=\"ap1\"} 1\n",
            "vdmm_alb_fairness 0.5\n",
            "vdmm_alb_enabled 0.0\n",
            "# TYPE vdmm_alb_moves_total counter\n",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        assert!(!text.contains("# EOF"));
    }
}
