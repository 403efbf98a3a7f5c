//! The agent's gauges of the translation configuration (registered by
//! [`super::metrics::AgentMetrics`]):
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `vdmm_agent_desired_natpt_entries` | gauge | `table` (eamt, pools, segments) |
//! | `vdmm_agent_pool_addresses` | gauge | `pool`, `state` (allocated, free, mapped_otherwise) |

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};

use super::natpt_state::NatptDesired;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
    state: &'static str,
}

const TABLES: [&str; 3] = ["eamt", "pools", "segments"];

/// The gauges; cheap to clone (the values are shared).
#[derive(Clone)]
pub struct NatptMetrics {
    entries: Family<TableLabel, Gauge>,
    pool_addresses: Family<PoolLabels, Gauge>,
}

impl NatptMetrics {
    /// Creates the gauges (tables at zero) in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let entries = Family::<TableLabel, Gauge>::default();
        for table in TABLES {
            let _ = entries.get_or_create(&TableLabel { table });
        }
        registry.register(
            "vdmm_agent_desired_natpt_entries",
            "Entries of the translation configuration in the desired state, by table (the EAMT counts pool allocations)",
            entries.clone(),
        );
        let pool_addresses = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "vdmm_agent_pool_addresses",
            "Usable addresses of each IPv4 address pool, by state (allocated, free, mapped_otherwise: covered by another EAMT entry)",
            pool_addresses.clone(),
        );
        Self {
            entries,
            pool_addresses,
        }
    }

    /// Sets the gauges from the desired configuration (pools that went are dropped).
    pub fn set(&self, n: &NatptDesired) {
        let pools = n.pools();
        for (table, count) in
            TABLES
                .into_iter()
                .zip([n.eamt().len(), pools.len(), n.segments().len()])
        {
            self.entries
                .get_or_create(&TableLabel { table })
                .set(count as i64);
        }
        self.pool_addresses.clear();
        for p in &pools {
            for (state, count) in [
                ("allocated", p.allocations.len() as u64),
                ("free", p.free()),
                ("mapped_otherwise", p.mapped_otherwise),
            ] {
                self.pool_addresses
                    .get_or_create(&PoolLabels {
                        pool: p.prefix.to_string(),
                        state,
                    })
                    .set(count as i64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::agent::{
        metrics::AgentMetrics,
        state::{DesiredState, Op},
    };

    #[test]
    fn pool_usage_follows_the_desired_state() {
        let m = AgentMetrics::new("file /x");
        let mut s = DesiredState::default();
        let ops: Vec<Op> = serde_json::from_str(
            r#"[{"op":"natpt","natpt":"pool_add","prefix":"192.0.2.0/29"},
                {"op":"natpt","natpt":"pool_alloc","ipv6":"2001:db8::7"},
                {"op":"natpt","natpt":"eam_add","prefix6":"2001:db8:5::/126","prefix4":"192.0.2.4/30"}]"#,
        )
        .unwrap();
        let d = s.plan(&ops).unwrap();
        s.apply(&d);
        m.natpt.set(s.natpt());
        let t = m.encode().unwrap();
        for line in [
            "vdmm_agent_desired_natpt_entries{table=\"eamt\"} 2",
            "vdmm_agent_desired_natpt_entries{table=\"pools\"} 1",
            "vdmm_agent_desired_natpt_entries{table=\"segments\"} 0",
            "vdmm_agent_pool_addresses{pool=\"192.0.2.0/29\",state=\"allocated\"} 1",
            "vdmm_agent_pool_addresses{pool=\"192.0.2.0/29\",state=\"mapped_otherwise\"} 3",
            "vdmm_agent_pool_addresses{pool=\"192.0.2.0/29\",state=\"free\"} 2",
        ] {
            assert!(t.lines().any(|l| l == line), "no {line:?} in\n{t}");
        }
        // A pool that went is no longer reported.
        let d = s
            .plan(&[serde_json::from_str(
                r#"{"op":"natpt","natpt":"pool_del","prefix":"192.0.2.0/29","force":true}"#,
            )
            .unwrap()])
            .unwrap();
        s.apply(&d);
        m.natpt.set(s.natpt());
        let t = m.encode().unwrap();
        assert!(!t.contains("vdmm_agent_pool_addresses{"), "{t}");
        assert!(
            t.lines()
                .any(|l| l == "vdmm_agent_desired_natpt_entries{table=\"eamt\"} 1"),
            "{t}"
        );
    }
}
