//! The agent's own Prometheus metrics (control plane), served by the daemon after the
//! data plane's (see [`crate::metrics`]) on `metrics.listen`:
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `vdmm_agent_requests_total` | counter | `request`, `result` (ok, refused, denied, invalid) |
//! | `vdmm_agent_deltas_total` | counter | | state changes committed |
//! | `vdmm_agent_reconciles_total` | counter | `trigger` (start, interval, netlink, request, store) |
//! | `vdmm_agent_reconcile_changes_total` | counter | `action` (added, updated, removed, route_installed, route_removed) |
//! | `vdmm_agent_errors_total` | counter | `stage` (apply, reconcile, store, netlink, attach) |
//! | `vdmm_agent_netlink_events_total` | counter | `kind` (link, address) |
//! | `vdmm_agent_desired_bindings` | gauge | `family` (the home prefix's) |
//! | `vdmm_agent_desired_endpoints`, `vdmm_agent_desired_peers` | gauge | |
//! | `vdmm_agent_store_revision` | gauge | |
//! | `vdmm_agent_last_reconcile_timestamp_seconds` | gauge | |
//! | `vdmm_agent_info` | gauge (1) | `version`, `store` |
//!
//! plus the translation configuration's gauges ([`super::natpt_metrics`]).
//!
//! Every counter is created at zero for each label value, so a rate is defined from the
//! first scrape.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::{natpt_metrics::NatptMetrics, reconcile::Report};
use crate::{
    error::{Error, Result},
    metrics::text_format,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    request: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabel {
    trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabel {
    family: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: &'static str,
    store: String,
}

/// Why a reconcile ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Start,
    Interval,
    Netlink,
    Request,
    /// A cluster store handed over the whole state (at start of its watch, or after a
    /// lost watch).
    Store,
}

impl Trigger {
    pub const fn name(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Interval => "interval",
            Trigger::Netlink => "netlink",
            Trigger::Request => "request",
            Trigger::Store => "store",
        }
    }
}

/// Where an error happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Apply,
    Reconcile,
    Store,
    Netlink,
    Attach,
}

impl Stage {
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Apply => "apply",
            Stage::Reconcile => "reconcile",
            Stage::Store => "store",
            Stage::Netlink => "netlink",
            Stage::Attach => "attach",
        }
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Checked and refused (bad input, conflict): nothing changed.
    Refused,
    /// The peer may not make it.
    Denied,
    /// Not a request.
    Invalid,
}

impl Outcome {
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
        }
    }
}

const REQUESTS: [&str; 9] = [
    "apply",
    "state",
    "status",
    "reconcile",
    "vap_create",
    "vap_delete",
    "vap_list",
    "vap_show",
    "unknown",
];
const TRIGGERS: [Trigger; 5] = [
    Trigger::Start,
    Trigger::Interval,
    Trigger::Netlink,
    Trigger::Request,
    Trigger::Store,
];
const STAGES: [Stage; 5] = [
    Stage::Apply,
    Stage::Reconcile,
    Stage::Store,
    Stage::Netlink,
    Stage::Attach,
];
const OUTCOMES: [Outcome; 4] = [
    Outcome::Ok,
    Outcome::Refused,
    Outcome::Denied,
    Outcome::Invalid,
];
const ACTIONS: [&str; 5] = [
    "added",
    "updated",
    "removed",
    "route_installed",
    "route_removed",
];

/// The agent's metrics; cheap to clone (the values are shared), safe to update from any
/// thread.
#[derive(Clone)]
pub struct AgentMetrics {
    registry: std::sync::Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    deltas: Counter,
    reconciles: Family<TriggerLabel, Counter>,
    reconcile_changes: Family<ActionLabel, Counter>,
    errors: Family<StageLabel, Counter>,
    netlink_events: Family<KindLabel, Counter>,
    bindings: Family<FamilyLabel, Gauge>,
    endpoints: Gauge,
    peers: Gauge,
    vaps: Gauge,
    revision: Gauge,
    last_reconcile: Gauge,
    /// The translation configuration's gauges.
    pub natpt: NatptMetrics,
}

impl AgentMetrics {
    /// The metrics of an agent whose store is described as `store`.
    pub fn new(store: &str) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        for request in REQUESTS {
            for result in OUTCOMES {
                let _ = requests.get_or_create(&RequestLabels {
                    request,
                    result: result.name(),
                });
            }
        }
        registry.register(
            "vdmm_agent_requests",
            "Control API requests, by request and result (ok, refused: checked and nothing changed, denied: the peer may not change state, invalid: not a request)",
            requests.clone(),
        );
        let deltas = Counter::default();
        registry.register(
            "vdmm_agent_deltas",
            "Changes to the desired state committed to the store",
            deltas.clone(),
        );
        let reconciles = Family::<TriggerLabel, Counter>::default();
        for t in TRIGGERS {
            let _ = reconciles.get_or_create(&TriggerLabel { trigger: t.name() });
        }
        registry.register(
            "vdmm_agent_reconciles",
            "Full comparisons of the maps and routes with the desired state, by what triggered them",
            reconciles.clone(),
        );
        let reconcile_changes = Family::<ActionLabel, Counter>::default();
        for a in ACTIONS {
            let _ = reconcile_changes.get_or_create(&ActionLabel { action: a });
        }
        registry.register(
            "vdmm_agent_reconcile_changes",
            "Map entries and kernel routes the agent changed (batches and reconciles), by action",
            reconcile_changes.clone(),
        );
        let errors = Family::<StageLabel, Counter>::default();
        for s in STAGES {
            let _ = errors.get_or_create(&StageLabel { stage: s.name() });
        }
        registry.register(
            "vdmm_agent_errors",
            "Errors the agent met (and retries on the next reconcile), by stage",
            errors.clone(),
        );
        let netlink_events = Family::<KindLabel, Counter>::default();
        for k in ["link", "address"] {
            let _ = netlink_events.get_or_create(&KindLabel { kind: k });
        }
        registry.register(
            "vdmm_agent_netlink_events",
            "Link and address change notifications the agent reacted to",
            netlink_events.clone(),
        );
        let bindings = Family::<FamilyLabel, Gauge>::default();
        for f in ["ipv4", "ipv6"] {
            let _ = bindings.get_or_create(&FamilyLabel { family: f });
        }
        registry.register(
            "vdmm_agent_desired_bindings",
            "Bindings in the desired state, by the home prefix's family",
            bindings.clone(),
        );
        let endpoints = Gauge::default();
        registry.register(
            "vdmm_agent_desired_endpoints",
            "Local tunnel endpoints in the desired state (stored and found on interfaces)",
            endpoints.clone(),
        );
        let peers = Gauge::default();
        registry.register(
            "vdmm_agent_desired_peers",
            "Tunnel peers in the desired state",
            peers.clone(),
        );
        let vaps = Gauge::default();
        registry.register(
            "vdmm_agent_desired_vaps",
            "vAPs in the desired state (`vdmm_vaps` counts those in the maps)",
            vaps.clone(),
        );
        let revision = Gauge::default();
        registry.register(
            "vdmm_agent_store_revision",
            "Revision of the desired state in the store",
            revision.clone(),
        );
        let last_reconcile = Gauge::default();
        registry.register(
            "vdmm_agent_last_reconcile_timestamp_seconds",
            "Unix time of the last full reconcile",
            last_reconcile.clone(),
        );
        let natpt = NatptMetrics::register(&mut registry);
        let info = Family::<InfoLabels, Gauge>::default();
        info.get_or_create(&InfoLabels {
            version: env!("CARGO_PKG_VERSION"),
            store: store.to_string(),
        })
        .set(1);
        registry.register(
            "vdmm_agent_info",
            "Always 1; labels: the agent's version and its store",
            info,
        );
        Self {
            registry: std::sync::Arc::new(registry),
            requests,
            deltas,
            reconciles,
            reconcile_changes,
            errors,
            netlink_events,
            bindings,
            endpoints,
            peers,
            vaps,
            revision,
            last_reconcile,
            natpt,
        }
    }

    pub fn request(&self, request: &'static str, outcome: Outcome) {
        self.requests
            .get_or_create(&RequestLabels {
                request,
                result: outcome.name(),
            })
            .inc();
    }

    pub fn deltas(&self, n: usize) {
        self.deltas.inc_by(n as u64);
    }

    pub fn error(&self, stage: Stage, n: usize) {
        if n > 0 {
            self.errors
                .get_or_create(&StageLabel {
                    stage: stage.name(),
                })
                .inc_by(n as u64);
        }
    }

    pub fn netlink_event(&self, kind: &'static str) {
        self.netlink_events.get_or_create(&KindLabel { kind }).inc();
    }

    /// Counts what a batch or a reconcile changed (and its errors, at `stage`).
    pub fn changes(&self, r: &Report, stage: Stage) {
        for (action, n) in [
            ("added", r.added),
            ("updated", r.updated),
            ("removed", r.removed),
            ("route_installed", r.routes_installed),
            ("route_removed", r.routes_removed),
        ] {
            if n > 0 {
                self.reconcile_changes
                    .get_or_create(&ActionLabel { action })
                    .inc_by(n);
            }
        }
        self.error(stage, r.errors.len());
    }

    pub fn reconciled(&self, trigger: Trigger, r: &Report) {
        self.reconciles
            .get_or_create(&TriggerLabel {
                trigger: trigger.name(),
            })
            .inc();
        self.changes(r, Stage::Reconcile);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_reconcile.set(now as i64);
    }

    /// Sets the gauges of the desired state.
    pub fn desired(
        &self,
        bindings_v4: usize,
        bindings_v6: usize,
        endpoints: usize,
        peers: usize,
        vaps: usize,
        revision: u64,
    ) {
        self.bindings
            .get_or_create(&FamilyLabel { family: "ipv4" })
            .set(bindings_v4 as i64);
        self.bindings
            .get_or_create(&FamilyLabel { family: "ipv6" })
            .set(bindings_v6 as i64);
        self.endpoints.set(endpoints as i64);
        self.peers.set(peers as i64);
        self.vaps.set(vaps as i64);
        self.revision.set(revision as i64);
    }

    /// The metrics in the Prometheus text format 0.0.4.
    pub fn encode(&self) -> Result<String> {
        let mut out = String::new();
        encode(&mut out, &self.registry)
            .map_err(|_| Error::Conflict("cannot encode the agent's metrics".into()))?;
        Ok(text_format(&out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_start_at_zero_and_move() {
        let m = AgentMetrics::new("file /x/state.jsonl");
        let t = m.encode().unwrap();
        assert!(
            t.contains("vdmm_agent_requests_total{request=\"apply\",result=\"ok\"} 0"),
            "{t}"
        );
        assert!(
            t.contains("# TYPE vdmm_agent_requests_total counter"),
            "{t}"
        );
        m.request("apply", Outcome::Ok);
        m.deltas(3);
        m.reconciled(
            Trigger::Start,
            &Report {
                added: 2,
                errors: vec!["x".into()],
                ..Default::default()
            },
        );
        m.desired(5, 1, 2, 3, 4, 7);
        let t = m.encode().unwrap();
        for line in [
            "vdmm_agent_requests_total{request=\"apply\",result=\"ok\"} 1",
            "vdmm_agent_deltas_total 3",
            "vdmm_agent_reconciles_total{trigger=\"start\"} 1",
            "vdmm_agent_reconcile_changes_total{action=\"added\"} 2",
            "vdmm_agent_errors_total{stage=\"reconcile\"} 1",
            "vdmm_agent_desired_bindings{family=\"ipv4\"} 5",
            "vdmm_agent_store_revision 7",
            "vdmm_agent_desired_vaps 4",
            &format!(
                "vdmm_agent_info{{version=\"{}\",store=\"file /x/state.jsonl\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(t.lines().any(|l| l == line), "no {line:?} in\n{t}");
        }
    }
}
