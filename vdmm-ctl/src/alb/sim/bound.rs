//! What balancing must cost in signal, whatever the policy: for each tick of a trace, an
//! upper bound on the clients' mean signal over every placement whose Jain's index of AP
//! utilisation is at least a target, and a placement that reaches the target (found
//! greedily, knowing the true signal), whose mean signal is below the bound. The truth lies
//! between the two.
//!
//! The bound: with equal capacities, the sum of utilisations S is the same for every
//! placement, so Jain's index >= J is sum_a u_a^2 <= Q = S^2 / (n J). Relax each client's
//! choice to a split over APs; for any AP prices p, weak duality gives
//! `sum_i max_a (r_ia - p_a l_i / C) + sqrt(Q) |p|` as an upper bound on the sum of signal
//! (the minimum over p is the relaxation's optimum). The prices are minimised by
//! subgradient steps; any prices give a valid bound, better ones a tighter one.

use serde::Serialize;

use crate::alb::prices::{self, Options};

use super::{radio::Trace, scenario::Scenario};

/// Every how many ticks after the warm-up the bound is computed.
pub const EVERY_TICKS: usize = 10;

/// What placements can reach on one run, from the true signal (no report noise, no
/// smoothing, handovers free): means over clients and the sampled ticks, dBm.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bound {
    /// The Jain's index every placement must reach at every sampled tick.
    pub jain: f64,
    /// Every client on its strongest AP, whatever the load.
    pub strongest_dbm: f64,
    /// No placement with Jain's index >= `jain` reaches more than this.
    pub upper_dbm: f64,
    /// A placement with Jain's index >= `jain` (greedy) reaches this.
    pub greedy_dbm: f64,
    /// The same, with no AP above `high_util` either.
    pub greedy_capped_dbm: f64,
    pub high_util: f64,
    /// Ticks sampled.
    pub ticks: usize,
}

/// The bound of `s` on `trace` at Jain's index `jain` (capacities must be equal; None if
/// they are not, or no tick is sampled).
pub fn bound(s: &Scenario, trace: &Trace, jain: f64) -> Option<Bound> {
    let capacity = s.aps.first()?.capacity_mbps;
    if s.aps.iter().any(|a| a.capacity_mbps != capacity) {
        return None;
    }
    let high_util = s.alb.high_util;
    let mut sums = [0.0; 4];
    let mut ticks = 0;
    let first = (s.warmup_s / trace.dt).ceil() as usize;
    for tick in trace.ticks.iter().skip(first).step_by(EVERY_TICKS) {
        let load: Vec<f64> = tick
            .demand
            .iter()
            .map(|d| s.alb.client_base_mbps + d.max(0.0))
            .collect();
        let t = TickLoad {
            rssi: &tick.rssi,
            load: &load,
            capacity,
        };
        let n = tick.rssi.len() as f64;
        let values = [
            t.upper_bound(0.0),
            t.upper_bound(jain),
            t.greedy(jain).unwrap_or(f64::NAN),
            t.greedy_capped(jain, high_util).unwrap_or(f64::NAN),
        ];
        for (sum, v) in sums.iter_mut().zip(values) {
            *sum += v / n;
        }
        ticks += 1;
    }
    (ticks > 0).then(|| {
        let k = ticks as f64;
        Bound {
            jain,
            strongest_dbm: sums[0] / k,
            upper_dbm: sums[1] / k,
            greedy_dbm: sums[2] / k,
            greedy_capped_dbm: sums[3] / k,
            high_util,
            ticks,
        }
    })
}

/// One tick: the true signal [client][ap] (dBm), each client's load (Mb/s), the APs'
/// common capacity (Mb/s).
pub struct TickLoad<'a> {
    pub rssi: &'a [Vec<f64>],
    pub load: &'a [f64],
    pub capacity: f64,
}

impl TickLoad<'_> {
    fn aps(&self) -> usize {
        self.rssi.first().map_or(0, Vec::len)
    }

    /// sum u^2 allowed at Jain's index `jain` (no limit at 0).
    fn q_max(&self, jain: f64) -> f64 {
        if jain <= 0.0 {
            return f64::INFINITY;
        }
        let s: f64 = self.load.iter().sum::<f64>() / self.capacity;
        s * s / (self.aps() as f64 * jain)
    }

    fn share(&self, i: usize) -> f64 {
        self.load[i] / self.capacity
    }

    /// An upper bound on the sum over clients of the serving signal, over every placement
    /// with Jain's index >= `jain` (the dual of [`crate::alb::prices`]).
    pub fn upper_bound(&self, jain: f64) -> f64 {
        let options: Vec<Options> = self
            .rssi
            .iter()
            .enumerate()
            .map(|(i, row)| {
                row.iter()
                    .enumerate()
                    .map(|(a, r)| (a, *r, self.share(i)))
                    .collect()
            })
            .collect();
        prices::solve(&options, self.aps(), self.q_max(jain), 3000, 40.0).bound
    }

    /// A placement with Jain's index >= `jain`, found greedily from every client on its
    /// strongest AP: repeatedly make the move that lowers sum u^2 most per dB lost. Returns
    /// the sum of the serving signal (None if no move helps any more before the target).
    pub fn greedy(&self, jain: f64) -> Option<f64> {
        self.greedy_capped(jain, f64::INFINITY)
    }

    /// As [`Self::greedy`], and until no AP is above `cap` either (moves into an AP that
    /// would end above `cap` are not made, unless the source is above it too).
    pub fn greedy_capped(&self, jain: f64, cap: f64) -> Option<f64> {
        let q = self.q_max(jain);
        let n = self.aps();
        let mut at: Vec<usize> = self
            .rssi
            .iter()
            .map(|row| {
                (0..n)
                    .max_by(|&x, &y| row[x].total_cmp(&row[y]))
                    .expect("at least one AP")
            })
            .collect();
        let mut u = vec![0.0; n];
        for (i, &a) in at.iter().enumerate() {
            u[a] += self.share(i);
        }
        while u.iter().map(|x| x * x).sum::<f64>() > q + 1e-12 || u.iter().any(|&x| x > cap) {
            let mut best: Option<(f64, usize, usize)> = None;
            for (i, row) in self.rssi.iter().enumerate() {
                let (a, sh) = (at[i], self.share(i));
                for b in 0..n {
                    let gain =
                        u[a] * u[a] + u[b] * u[b] - (u[a] - sh).powi(2) - (u[b] + sh).powi(2);
                    if b == a || gain <= 0.0 || (u[a] <= cap && u[b] + sh > cap) {
                        continue;
                    }
                    let score = gain / ((row[a] - row[b]).max(0.0) + 0.01);
                    if best.is_none_or(|x| score > x.0) {
                        best = Some((score, i, b));
                    }
                }
            }
            let (_, i, b) = best?;
            u[at[i]] -= self.share(i);
            u[b] += self.share(i);
            at[i] = b;
        }
        Some(at.iter().enumerate().map(|(i, &a)| self.rssi[i][a]).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force over every placement of a small case.
    fn exact(t: &TickLoad, jain: f64) -> f64 {
        let (m, n) = (t.rssi.len(), t.aps());
        let q = t.q_max(jain);
        let mut best = f64::NEG_INFINITY;
        for code in 0..n.pow(m as u32) {
            let (mut c, mut u, mut sum) = (code, vec![0.0; n], 0.0);
            for i in 0..m {
                let a = c % n;
                c /= n;
                u[a] += t.share(i);
                sum += t.rssi[i][a];
            }
            if u.iter().map(|x| x * x).sum::<f64>() <= q + 1e-12 {
                best = best.max(sum);
            }
        }
        best
    }

    #[test]
    fn the_bound_is_above_the_best_placement_and_the_greedy_one_below() {
        // Seven clients on three APs, all near AP 0, some at the edge towards 1 or 2.
        let rssi = vec![
            vec![-40.0, -60.0, -62.0],
            vec![-42.0, -48.0, -65.0],
            vec![-45.0, -70.0, -47.0],
            vec![-41.0, -55.0, -58.0],
            vec![-50.0, -52.0, -61.0],
            vec![-44.0, -66.0, -49.0],
            vec![-60.0, -45.0, -70.0],
        ];
        let load = [3.0, 2.0, 4.0, 1.0, 3.0, 2.5, 2.0];
        let t = TickLoad {
            rssi: &rssi,
            load: &load,
            capacity: 10.0,
        };
        for jain in [0.5, 0.8, 0.9, 0.95] {
            let opt = exact(&t, jain);
            let ub = t.upper_bound(jain);
            assert!(ub >= opt - 1e-9, "jain {jain}: bound {ub} < optimum {opt}");
            assert!(ub - opt < 8.0, "jain {jain}: bound {ub} far above {opt}");
            if let Some(g) = t.greedy(jain) {
                assert!(g <= opt + 1e-9, "jain {jain}: greedy {g} > optimum {opt}");
            }
        }
        // Loose enough that the strongest placement meets it: the bound is exact.
        let strongest: f64 = rssi
            .iter()
            .map(|r| r.iter().copied().fold(f64::MIN, f64::max))
            .sum();
        assert_eq!(t.upper_bound(0.3), strongest);
        assert_eq!(t.greedy(0.3), Some(strongest));
    }
}
