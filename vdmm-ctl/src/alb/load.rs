//! AP load: what each client puts on its AP (a base share for being associated plus its
//! traffic), the utilisation of each AP against its capacity, Jain's fairness index, and
//! the traffic rate of a client from two readings of its byte counters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    model::{ApId, Client, Snapshot},
    params::Params,
};

/// The load a client puts on whichever AP serves it, in Mb/s.
pub fn client_load(client: &Client, params: &Params) -> f64 {
    params.client_base_mbps + client.traffic_mbps.max(0.0)
}

/// Utilisation (load / capacity) of every AP of the snapshot; clients of APs that are not
/// in the snapshot count nowhere.
pub fn utilisation(snapshot: &Snapshot, params: &Params) -> BTreeMap<ApId, f64> {
    let mut load: BTreeMap<ApId, f64> = snapshot.aps.keys().map(|a| (a.clone(), 0.0)).collect();
    for c in snapshot.clients.values() {
        if let Some(l) = load.get_mut(&c.ap) {
            *l += client_load(c, params);
        }
    }
    load.into_iter()
        .map(|(a, l)| {
            let cap = snapshot.aps[&a].capacity_mbps;
            (a, if cap > 0.0 { l / cap } else { f64::INFINITY })
        })
        .collect()
}

/// The mean of the values (0 for none).
pub fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Jain's fairness index (sum x)^2 / (n * sum x^2): 1 when all are equal, 1/n when one
/// carries everything; 1 for an empty or all-zero set (nothing is unfair).
pub fn jain(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, sq, n) = values
        .into_iter()
        .fold((0.0, 0.0, 0usize), |(s, q, n), v| (s + v, q + v * v, n + 1));
    if n == 0 || sq == 0.0 {
        1.0
    } else {
        sum * sum / (n as f64 * sq)
    }
}

/// Turns a client's cumulative byte counters into a rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficMeter {
    /// The last reading: time (seconds) and bytes.
    last: Option<(f64, u64)>,
    /// The rate between the last two readings, Mb/s.
    pub mbps: f64,
}

impl TrafficMeter {
    /// Forgets the last reading but keeps the rate: the next counter is another AP's
    /// (the client moved), so the next reading starts a new interval.
    pub fn rebase(&mut self) {
        self.last = None;
    }

    /// Takes a reading of the cumulative byte count. A counter that went backwards (the
    /// client re-associated, the AP restarted) starts over without a rate spike.
    pub fn update(&mut self, now: f64, bytes: u64) {
        if let Some((t, b)) = self.last
            && now > t
            && bytes >= b
        {
            self.mbps = (bytes - b) as f64 * 8.0 / 1e6 / (now - t);
        }
        if self.last.is_none_or(|(t, b)| now > t || bytes < b) {
            self.last = Some((now, bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alb::model::Ap;

    #[test]
    fn utilisation_counts_base_and_traffic() {
        let mut s = Snapshot::default();
        s.aps.insert(
            "ap1".into(),
            Ap {
                capacity_mbps: 10.0,
            },
        );
        s.aps.insert(
            "ap2".into(),
            Ap {
                capacity_mbps: 20.0,
            },
        );
        for (id, ap, t) in [("c1", "ap1", 4.5), ("c2", "ap1", 0.0), ("c3", "gone", 9.0)] {
            s.clients.insert(
                id.into(),
                Client {
                    ap: ap.into(),
                    traffic_mbps: t,
                    rssi: BTreeMap::new(),
                    lag_db: BTreeMap::new(),
                },
            );
        }
        let u = utilisation(&s, &Params::default());
        assert!((u["ap1"] - 0.55).abs() < 1e-9, "{u:?}");
        assert_eq!(u["ap2"], 0.0);
        assert_eq!(u.len(), 2);
    }

    #[test]
    fn jain_index() {
        assert_eq!(jain([1.0, 1.0, 1.0]), 1.0);
        assert!((jain([1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
        assert_eq!(jain([]), 1.0);
        assert_eq!(jain([0.0, 0.0]), 1.0);
        assert!((jain([2.0, 1.0]) - 0.9).abs() < 1e-12);
    }

    #[test]
    fn traffic_rate_from_counters() {
        let mut m = TrafficMeter::default();
        m.update(0.0, 1_000_000);
        assert_eq!(m.mbps, 0.0);
        m.update(2.0, 3_500_000);
        assert!((m.mbps - 10.0).abs() < 1e-9);
        // A reset counter: no spike, the next reading measures again.
        m.update(3.0, 100);
        assert!((m.mbps - 10.0).abs() < 1e-9);
        m.update(4.0, 125_100);
        assert!((m.mbps - 1.0).abs() < 1e-9);
        // Another AP's counter: the rate stays until two readings of it give a new one.
        m.rebase();
        m.update(5.0, 10);
        assert!((m.mbps - 1.0).abs() < 1e-9);
        m.update(6.0, 250_010);
        assert!((m.mbps - 2.0).abs() < 1e-9);
    }
}
