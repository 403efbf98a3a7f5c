//! The cluster layer's health as the agent reports it: [`Health`] is the agent's
//! [`StoreHealth`] (the `store_health` object of `vdmm-ctl agent status`, and these
//! Prometheus metrics after the agent's own):
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `vdmm_cluster_etcd_reachable` | gauge (1 or 0) | |
//! | `vdmm_cluster_etcd_unreachable_seconds` | gauge | | how long etcd has been away (0 when reachable) |
//! | `vdmm_cluster_etcd_requests_total` | counter | `result` (`ok`, `failed`) |
//! | `vdmm_cluster_watch_lost_total`, `vdmm_cluster_resyncs_total`, `vdmm_cluster_reconnects_total` | counter | |
//! | `vdmm_cluster_refused_changes_total` | counter | | changes refused while etcd was unreachable |
//! | `vdmm_cluster_applied_revision` | gauge | | etcd revision of the newest state applied |

use std::fmt::Write;

use super::health::{Health, HealthReport};
use crate::agent::store::StoreHealth;

impl StoreHealth for Health {
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.report()).expect("a health report serializes")
    }

    fn metrics(&self) -> String {
        render(&self.report())
    }
}

/// The report in the Prometheus text format 0.0.4.
pub fn render(r: &HealthReport) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    metric(
        "vdmm_cluster_etcd_reachable",
        "gauge",
        "1 while etcd answers, 0 while it is unreachable (forwarding continues, changes are refused)",
        &[("", u64::from(r.reachable))],
    );
    metric(
        "vdmm_cluster_etcd_unreachable_seconds",
        "gauge",
        "Seconds since etcd became unreachable (0 while it is reachable)",
        &[("", r.unreachable_for_ms.unwrap_or(0) / 1000)],
    );
    metric(
        "vdmm_cluster_etcd_requests_total",
        "counter",
        "Requests to etcd, by result (failed: etcd did not answer)",
        &[
            ("{result=\"ok\"}", r.requests_ok),
            ("{result=\"failed\"}", r.requests_failed),
        ],
    );
    for (name, help, v) in [
        (
            "vdmm_cluster_watch_lost_total",
            "Watches of the shared state that were lost (each followed by a full read)",
            r.watch_lost,
        ),
        (
            "vdmm_cluster_resyncs_total",
            "Full reads of the shared state (at start and after a lost watch)",
            r.resyncs,
        ),
        (
            "vdmm_cluster_reconnects_total",
            "Times etcd became reachable again after being unreachable",
            r.reconnects,
        ),
        (
            "vdmm_cluster_refused_changes_total",
            "Changes refused because etcd was unreachable",
            r.refused_changes,
        ),
    ] {
        metric(name, "counter", help, &[("", v)]);
    }
    metric(
        "vdmm_cluster_applied_revision",
        "gauge",
        "etcd revision of the newest shared state this node applied",
        &[("", r.applied_revision.max(0) as u64)],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::ClusterError;

    #[test]
    fn the_metrics_follow_the_health() {
        let h = Health::default();
        h.ok();
        let t = h.metrics();
        assert!(t.contains("\nvdmm_cluster_etcd_reachable 1\n"), "{t}");
        assert!(
            t.contains("vdmm_cluster_etcd_requests_total{result=\"ok\"} 1\n"),
            "{t}"
        );
        h.failed(&ClusterError::Etcd {
            what: "read".into(),
            detail: "connection refused".into(),
        });
        let _ = h.check_writable();
        let t = h.metrics();
        for line in [
            "vdmm_cluster_etcd_reachable 0",
            "vdmm_cluster_etcd_requests_total{result=\"failed\"} 1",
            "vdmm_cluster_refused_changes_total 1",
        ] {
            assert!(t.lines().any(|l| l == line), "no {line:?} in\n{t}");
        }
        let s = h.status();
        assert_eq!(s["reachable"], false);
        assert_eq!(
            s["last_error"],
            "etcd request failed (read): connection refused"
        );
    }
}
