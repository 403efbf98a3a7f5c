//! Load prices: how many dB of signal a unit of utilisation on each AP is worth, such that
//! clients choosing the AP with the best *priced* signal (signal minus price times their
//! share of that AP) spread the load to a target sum of squared utilisations (Jain's
//! index) at the least loss of signal.
//!
//! This is the Lagrangian dual of "maximise the sum of the clients' signal subject to
//! sum_a u_a^2 <= Q", with each client's choice relaxed to a split over APs:
//! `D(p) = sum_i max_a (r_ia - p_a s_ia) + sqrt(Q) |p|` is an upper bound on that
//! maximum for any prices p (weak duality), and its minimum equals it (the relaxation is
//! convex). D is convex and piecewise linear plus a norm; it is minimised by normalised
//! subgradient steps, keeping the best prices seen. The balancer uses the prices to rank
//! moves ([`crate::alb::decide`]); the simulator uses D as a bound on what any policy can
//! reach ([`crate::alb::sim::bound`]).

/// One client's options: (AP index, signal in dBm, the utilisation it adds to that AP).
pub type Options = Vec<(usize, f64, f64)>;

/// The dual's value at prices `p`, and the APs' utilisations when every client takes its
/// best priced option.
fn dual(clients: &[Options], p: &[f64], q_sqrt: f64) -> (f64, Vec<f64>) {
    let mut u = vec![0.0; p.len()];
    let mut total = 0.0;
    // A plain loop: the bounds call this thousands of times per round, and iterator
    // adapters make debug builds (the unit tests) several times slower.
    for opts in clients {
        // The best priced option (the last of equals, as `max_by` picks).
        let mut best: Option<(usize, f64, f64)> = None;
        for &(a, r, s) in opts {
            let v = r - p[a] * s;
            if best.is_none_or(|b| v.total_cmp(&b.1).is_ge()) {
                best = Some((a, v, s));
            }
        }
        if let Some((a, v, s)) = best {
            u[a] += s;
            total += v;
        }
    }
    let norm = p.iter().map(|x| x * x).sum::<f64>().sqrt();
    (total + if norm > 0.0 { q_sqrt * norm } else { 0.0 }, u)
}

/// The result of [`solve`].
#[derive(Clone, Debug, PartialEq)]
pub struct Prices {
    /// dB per unit of utilisation, per AP index.
    pub per_ap: Vec<f64>,
    /// The dual's value there: an upper bound on the sum of the clients' signal over every
    /// placement with sum u^2 <= Q.
    pub bound: f64,
}

/// Prices for `aps` APs that bring sum u^2 down to `q`, after `iterations` subgradient
/// steps of `step_db` / sqrt(k) (in dB per unit of utilisation).
pub fn solve(clients: &[Options], aps: usize, q: f64, iterations: usize, step_db: f64) -> Prices {
    let q_sqrt = q.max(0.0).sqrt();
    let mut p = vec![0.0; aps];
    let mut best = Prices {
        per_ap: p.clone(),
        bound: f64::INFINITY,
    };
    for k in 0..iterations {
        let (v, u) = dual(clients, &p, q_sqrt);
        if v < best.bound {
            best = Prices {
                per_ap: p.clone(),
                bound: v,
            };
        }
        let norm = p.iter().map(|x| x * x).sum::<f64>().sqrt();
        let unorm = u.iter().map(|x| x * x).sum::<f64>().sqrt();
        // A subgradient: sqrt(Q) p/|p| - u; at p = 0, sqrt(Q) u/|u| - u, or none when the
        // unpriced choice already fits (then prices 0 are optimal).
        let g: Vec<f64> = if norm > 0.0 {
            (0..aps).map(|a| q_sqrt * p[a] / norm - u[a]).collect()
        } else if unorm > q_sqrt {
            (0..aps).map(|a| q_sqrt * u[a] / unorm - u[a]).collect()
        } else {
            return best;
        };
        let gnorm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        if gnorm < 1e-12 {
            return best;
        }
        let step = step_db / ((k + 1) as f64).sqrt();
        for a in 0..aps {
            p[a] -= step * g[a] / gnorm;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_prices_when_the_best_signal_placement_fits() {
        let c = vec![
            vec![(0, -40.0, 0.3), (1, -50.0, 0.3)],
            vec![(1, -45.0, 0.3)],
        ];
        let p = solve(&c, 2, 1.0, 100, 10.0);
        assert_eq!(p.per_ap, vec![0.0, 0.0]);
        assert_eq!(p.bound, -85.0);
    }

    #[test]
    fn the_cheapest_client_is_priced_off_the_hotspot() {
        // Both clients prefer AP 0; together they exceed the budget. Client 1 hears AP 1
        // nearly as well, so AP 0's price exceeds AP 1's by enough to move client 1 only.
        let c = vec![
            vec![(0, -40.0, 0.5), (1, -60.0, 0.5)],
            vec![(0, -42.0, 0.5), (1, -44.0, 0.5)],
        ];
        // Q = 0.5: u = (0.5, 0.5) fits, (1.0, 0) does not.
        let p = solve(&c, 2, 0.5, 3000, 20.0);
        let d = |i: usize, a: usize| {
            let (_, r, s) = c[i].iter().find(|o| o.0 == a).copied().unwrap();
            r - p.per_ap[a] * s
        };
        assert!(d(1, 1) > d(1, 0), "{p:?}");
        assert!(d(0, 0) > d(0, 1), "{p:?}");
        // The best fitting placement has -84 dBm in total; the bound is at or above it.
        assert!(p.bound >= -84.0 - 1e-9 && p.bound < -83.0, "{p:?}");
    }
}
