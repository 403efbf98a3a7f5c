//! Load from the data plane: which AP host serves each client and how many bytes its vAP
//! has carried, read from the AP hosts' pinned vAP maps and per-vAP counters (`vdmm-ctl
//! alb collect`, and `alb rebalance --apply` before it decides). A client's traffic is
//! the rate between two readings ([`crate::alb::load::TrafficMeter`]); together with the
//! client count (each client's `client_base_mbps`) it is the AP's load against its
//! configured capacity.

use std::collections::BTreeMap;

use serde::Serialize;

use super::state::State;
use crate::{
    alb::model::{ApId, ClientId},
    cluster::Cluster,
    error::{Error, Result},
    maps::Dataplane,
    pin::PinDir,
};

/// One serving vAP as an AP host's data plane shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VapSample {
    pub ap: ApId,
    /// The client's MAC address, lower case (`02:00:00:00:00:01`).
    pub client: ClientId,
    /// Bytes from the client plus bytes delivered to it, since the vAP was created.
    pub bytes: u64,
}

/// What a sample changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SampleSummary {
    /// Serving vAPs read, per AP.
    pub vaps: BTreeMap<ApId, usize>,
    /// Clients whose serving AP changed (or that were new).
    pub relocated: usize,
    /// Clients served by two AP hosts at once (a move in progress): left as they were.
    pub ambiguous: Vec<ClientId>,
    /// AP hosts of the cluster that are not balanced (`alb ap add`): not read.
    pub unbalanced_hosts: Vec<String>,
}

/// Reads the serving vAPs of every AP host of `cluster` that is one of `aps`.
pub fn read_cluster(cluster: &Cluster, aps: &[ApId]) -> Result<(Vec<VapSample>, Vec<String>)> {
    let mut samples = Vec::new();
    let mut unbalanced = Vec::new();
    for node in &cluster.ap_hosts {
        if !aps.contains(&node.name) {
            unbalanced.push(node.name.clone());
            continue;
        }
        let ctx = |e: Error| Error::Alb(format!("AP host {}: {e}", node.name));
        let dp = Dataplane::open(&PinDir::new(&node.pin_dir)).map_err(ctx)?;
        for v in dp.vaps().map_err(ctx)? {
            if v.forward.is_some() {
                continue;
            }
            let c = dp.vap_counters(v.client).map_err(ctx)?;
            samples.push(VapSample {
                ap: node.name.clone(),
                client: v.client.to_string().to_lowercase(),
                bytes: c.from_client.bytes + c.delivered.bytes,
            });
        }
    }
    Ok((samples, unbalanced))
}

/// Takes the samples of time `now` into `state`: each client's serving AP (a new one
/// restarts its traffic meter) and a reading of its byte counter. Samples of APs the
/// state does not balance are ignored.
pub fn apply(state: &mut State, samples: &[VapSample], now: f64) -> SampleSummary {
    let mut out = SampleSummary::default();
    let mut by_client: BTreeMap<&str, Vec<&VapSample>> = BTreeMap::new();
    for s in samples.iter().filter(|s| state.aps.contains_key(&s.ap)) {
        by_client.entry(&s.client).or_default().push(s);
        *out.vaps.entry(s.ap.clone()).or_default() += 1;
    }
    for (client, seen) in by_client {
        let [s] = seen[..] else {
            out.ambiguous.push(client.to_string());
            continue;
        };
        let c = state.clients.entry(client.to_string()).or_default();
        if c.ap.as_deref() != Some(s.ap.as_str()) {
            c.traffic.rebase();
            c.ap = Some(s.ap.clone());
            out.relocated += 1;
        }
        c.traffic.update(now, s.bytes);
    }
    state.counters.vap_samples += out.vaps.values().sum::<usize>() as u64;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ap: &str, client: &str, bytes: u64) -> VapSample {
        VapSample {
            ap: ap.into(),
            client: client.into(),
            bytes,
        }
    }

    #[test]
    fn samples_place_clients_and_measure_traffic() {
        let mut s = State::default();
        s.add_ap("ap1", 10.0).unwrap();
        s.add_ap("ap2", 10.0).unwrap();
        let first = apply(
            &mut s,
            &[
                sample("ap1", "c1", 0),
                sample("ap1", "c2", 1000),
                sample("ap9", "c3", 0),
                sample("ap1", "c4", 0),
                sample("ap2", "c4", 0),
            ],
            100.0,
        );
        assert_eq!(first.relocated, 2);
        assert_eq!(first.ambiguous, vec!["c4".to_string()]);
        assert_eq!(first.vaps["ap1"], 3);
        assert!(!s.clients.contains_key("c3") && !s.clients.contains_key("c4"));
        assert_eq!(s.counters.vap_samples, 4);
        // 2 s later: c1 carried 2.5 MB (10 Mb/s); c2 is on ap2 now (a new counter).
        let second = apply(
            &mut s,
            &[sample("ap1", "c1", 2_500_000), sample("ap2", "c2", 50)],
            102.0,
        );
        assert_eq!(second.relocated, 1);
        assert!((s.clients["c1"].traffic.mbps - 10.0).abs() < 1e-9);
        assert_eq!(s.clients["c2"].ap.as_deref(), Some("ap2"));
        assert_eq!(s.clients["c2"].traffic.mbps, 0.0);
        apply(&mut s, &[sample("ap2", "c2", 250_050)], 103.0);
        assert!((s.clients["c2"].traffic.mbps - 2.0).abs() < 1e-9);
        // The snapshot sees the sampled placement and traffic.
        let snap = s.snapshot(103.0);
        assert_eq!(snap.clients["c1"].ap, "ap1");
        assert!((snap.clients["c2"].traffic_mbps - 2.0).abs() < 1e-9);
    }
}
