//! What balancing must cost in signal when handovers are limited, whatever the policy:
//! an upper bound on the clients' mean signal over every placement of a trace that makes
//! at most `H` handovers and keeps Jain's index of AP utilisation at or above a target at
//! every round, knowing the true signal and the future.
//!
//! The placements are those a policy of the simulator can make: every client starts on
//! the AP of the first association ([`super::run::initial_placement`]) and may change AP
//! at each round (every `round_interval_s`); the signal counts at every tick after the
//! warm-up, as in the figures. For AP prices `p_r` at every round `r` after the warm-up
//! and a handover price `lambda >= 0`, weak duality gives
//!
//! `sum_i max_path [sum_r (R_ir(a_r) - p_r[a_r] s_ir) - lambda switches] + sum_r sqrt(Q_r) |p_r| + lambda H`
//!
//! as an upper bound on the sum of signal (Cauchy-Schwarz: `p.u <= |p| |u| <= |p|
//! sqrt(Q)` when `sum u^2 <= Q`, and `lambda switches <= lambda H`). Each client's best
//! path is a Viterbi pass over the rounds. Any prices give a valid bound; they are
//! started from each round's own prices ([`crate::alb::prices`]) and improved by
//! subgradient steps for every `lambda` of a grid, and the bound for a budget `H` is the
//! least over the grid. The other side: the best paths at each `lambda`, repaired
//! greedily where a round exceeds its limit, are placements that meet every limit; the
//! best of them within the budget is what is *reached*. The truth lies between the two.

use serde::Serialize;

use crate::alb::prices::{self, Options};

use super::{
    metrics::{Figures, Recorder},
    radio::Trace,
    run::initial_placement,
    scenario::Scenario,
};

/// Handover prices tried, dB x ticks per handover (a handover that gains 5 dB for a
/// minute is worth 300).
const LAMBDAS: [f64; 12] = [
    0.0, 5.0, 10.0, 20.0, 40.0, 70.0, 100.0, 150.0, 220.0, 320.0, 480.0, 800.0,
];

/// Subgradient steps on the AP prices per handover price.
const STEPS: usize = 150;

/// The bound at one handover budget.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Budgeted {
    /// At most this many handovers over the run.
    pub handovers: u64,
    /// No placement with Jain's index >= the target at every round after the warm-up and
    /// at most `handovers` handovers gets a mean signal above this, dBm.
    pub upper_dbm: f64,
    /// A placement within the limits and the budget (found from the bound's paths,
    /// repaired greedily), measured as the policies are (policy name `oracle`).
    pub reached: Option<Figures>,
    /// The same with ping-pong under 1% of its handovers.
    pub reached_without_ping_pong: Option<Figures>,
}

/// One run's rounds and signal, as the bound sees them.
pub struct Rounds {
    /// Per client, per segment (the ticks from one round to the next; segment 0 from the
    /// start), per AP: the sum of the true signal over the segment's ticks after the
    /// warm-up, dBm x ticks.
    signal: Vec<Vec<Vec<f64>>>,
    /// Per segment: None when not constrained (before the warm-up), else the clients'
    /// utilisation shares at the round's tick and the sum u^2 allowed there.
    limits: Vec<Option<(Vec<f64>, f64)>>,
    /// Each client's AP in segment 0.
    start: Vec<usize>,
    aps: usize,
    /// Client x ticks the signal is summed over.
    samples: f64,
    /// Per tick, its segment.
    segment: Vec<usize>,
}

impl Rounds {
    /// The rounds of `s` on `trace` with Jain's index >= `jain` at every round after the
    /// warm-up (None if the capacities differ: then the sum of utilisations depends on the
    /// placement).
    pub fn new(s: &Scenario, trace: &Trace, jain: f64) -> Option<Self> {
        let capacity = s.aps.first()?.capacity_mbps;
        if s.aps.iter().any(|a| a.capacity_mbps != capacity) || trace.ticks.is_empty() {
            return None;
        }
        let (n, aps) = (trace.clients, s.aps.len());
        let mut signal: Vec<Vec<Vec<f64>>> = vec![vec![vec![0.0; aps]]; n];
        let mut limits = vec![None];
        let mut samples = 0.0;
        let mut segment = Vec::with_capacity(trace.ticks.len());
        let mut next_round = s.alb.round_interval_s;
        for (k, tick) in trace.ticks.iter().enumerate() {
            let t = k as f64 * trace.dt;
            if t + 1e-9 >= next_round {
                next_round += s.alb.round_interval_s;
                for row in &mut signal {
                    row.push(vec![0.0; aps]);
                }
                limits.push((t >= s.warmup_s).then(|| {
                    let share: Vec<f64> = tick
                        .demand
                        .iter()
                        .map(|d| (s.alb.client_base_mbps + d.max(0.0)) / capacity)
                        .collect();
                    let total: f64 = share.iter().sum();
                    (share, total * total / (aps as f64 * jain))
                }));
            }
            segment.push(limits.len() - 1);
            if t >= s.warmup_s {
                samples += n as f64;
                for (row, rssi) in signal.iter_mut().zip(&tick.rssi) {
                    let seg = row.last_mut().expect("segment 0");
                    for (acc, r) in seg.iter_mut().zip(rssi) {
                        *acc += r;
                    }
                }
            }
        }
        Some(Self {
            signal,
            limits,
            start: initial_placement(trace),
            aps,
            samples,
            segment,
        })
    }

    /// Replays a placement (`at[client][segment]`) on the trace and measures it as the
    /// simulator measures a policy.
    pub fn replay(&self, s: &Scenario, trace: &Trace, at: &[Vec<usize>]) -> Figures {
        let mut rec = Recorder::new(trace.clients, s.ping_pong_window_s);
        for (k, tick) in trace.ticks.iter().enumerate() {
            let t = k as f64 * trace.dt;
            let r = self.segment[k];
            if r > 0 && self.segment[k - 1] != r {
                for (i, path) in at.iter().enumerate() {
                    if path[r] != path[r - 1] {
                        rec.handover(i, path[r - 1], path[r], t);
                    }
                }
            }
            if t >= s.warmup_s {
                let mut util = vec![0.0; self.aps];
                for (i, path) in at.iter().enumerate() {
                    util[path[r]] += (s.alb.client_base_mbps + tick.demand[i].max(0.0))
                        / s.aps[path[r]].capacity_mbps;
                }
                rec.tick(
                    &util,
                    at.iter().enumerate().map(|(i, path)| tick.rssi[i][path[r]]),
                );
            }
        }
        rec.finish("oracle")
    }

    /// Each client's best path at prices `p` (per segment, per AP; ignored where the
    /// segment is unconstrained) and handover price `lambda`: the sum of the paths'
    /// values and every client's AP per segment.
    fn paths(&self, p: &[Vec<f64>], lambda: f64) -> (f64, Vec<Vec<usize>>) {
        // Plain loops and two buffers: this is the bound's inner loop (every client, round
        // and AP, for every price step), and iterator adapters make debug builds (the unit
        // tests) several times slower.
        let (segs, aps) = (self.limits.len(), self.aps);
        let mut total = 0.0;
        let mut at = Vec::with_capacity(self.signal.len());
        let mut back = vec![vec![0usize; aps]; segs];
        let mut v = vec![0.0; aps];
        let mut next = vec![0.0; aps];
        for (i, sig) in self.signal.iter().enumerate() {
            v.fill(f64::NEG_INFINITY);
            v[self.start[i]] = sig[0][self.start[i]];
            for r in 1..segs {
                // The best AP so far (the last of equals, as `max_by` picks).
                let mut from_best = 0;
                for b in 1..aps {
                    if v[b] >= v[from_best] {
                        from_best = b;
                    }
                }
                let stay_best = v[from_best];
                let share = self.limits[r].as_ref().map(|(share, _)| share[i]);
                let (sig_r, p_r, back_r) = (&sig[r], &p[r], &mut back[r]);
                for a in 0..aps {
                    let (val, from) = if v[a] >= stay_best - lambda {
                        (v[a], a)
                    } else {
                        (stay_best - lambda, from_best)
                    };
                    let priced = match share {
                        Some(sh) => p_r[a] * sh,
                        None => 0.0,
                    };
                    next[a] = val + sig_r[a] - priced;
                    back_r[a] = from;
                }
                std::mem::swap(&mut v, &mut next);
            }
            let mut a = 0;
            for b in 1..aps {
                if v[b] >= v[a] {
                    a = b;
                }
            }
            total += v[a];
            let mut path = vec![0; segs];
            for r in (0..segs).rev() {
                path[r] = a;
                a = back[r][a];
            }
            path[0] = self.start[i];
            at.push(path);
        }
        (total, at)
    }

    /// The utilisation per constrained segment of a placement (`at[client][segment]`).
    fn loads(&self, at: &[Vec<usize>]) -> Vec<Vec<f64>> {
        let mut u = vec![vec![0.0; self.aps]; self.limits.len()];
        for (i, path) in at.iter().enumerate() {
            for (r, limit) in self.limits.iter().enumerate() {
                if let Some((share, _)) = limit {
                    u[r][path[r]] += share[i];
                }
            }
        }
        u
    }

    /// A placement's handovers and sum of signal.
    fn score(&self, at: &[Vec<usize>]) -> (u64, f64) {
        let mut switches = 0;
        let mut sum = 0.0;
        for (path, sig) in at.iter().zip(&self.signal) {
            switches += path.windows(2).filter(|w| w[0] != w[1]).count() as u64;
            sum += path.iter().zip(sig).map(|(&a, s)| s[a]).sum::<f64>();
        }
        (switches, sum)
    }

    /// Makes a placement meet every segment's limit: segment by segment, while sum u^2 is
    /// above it, the move that lowers it most per dB x tick lost, made for the run of
    /// segments from there on where the client stays on that AP (so a move adds at most
    /// one handover). Returns false if a segment cannot be brought within its limit.
    fn repair(&self, at: &mut [Vec<usize>]) -> bool {
        for r in 0..self.limits.len() {
            let Some((share, q)) = &self.limits[r] else {
                continue;
            };
            let mut u = vec![0.0; self.aps];
            for (i, path) in at.iter().enumerate() {
                u[path[r]] += share[i];
            }
            while u.iter().map(|x| x * x).sum::<f64>() > q + 1e-12 {
                let mut best: Option<(f64, usize, usize)> = None;
                for (i, path) in at.iter().enumerate() {
                    let (a, sh) = (path[r], share[i]);
                    let run = path[r..].iter().take_while(|&&x| x == a).count();
                    for b in 0..self.aps {
                        let gain =
                            u[a] * u[a] + u[b] * u[b] - (u[a] - sh).powi(2) - (u[b] + sh).powi(2);
                        if b == a || gain <= 1e-12 {
                            continue;
                        }
                        let lost: f64 = (r..r + run)
                            .map(|k| self.signal[i][k][a] - self.signal[i][k][b])
                            .sum();
                        let score = gain / (lost.max(0.0) + 0.01);
                        if best.is_none_or(|x| score > x.0) {
                            best = Some((score, i, b));
                        }
                    }
                }
                let Some((_, i, b)) = best else { return false };
                let a = at[i][r];
                u[a] -= share[i];
                u[b] += share[i];
                for k in r..at[i].len() {
                    if at[i][k] != a {
                        break;
                    }
                    at[i][k] = b;
                }
            }
        }
        true
    }

    /// The dual's value without the budget term at prices `p` and `lambda`, a subgradient
    /// in `p` (per segment) and the best paths.
    fn dual(&self, p: &[Vec<f64>], lambda: f64) -> (f64, Vec<Vec<f64>>, Vec<Vec<usize>>) {
        let (mut value, at) = self.paths(p, lambda);
        let u = self.loads(&at);
        let mut g = vec![vec![0.0; self.aps]; p.len()];
        for (r, limit) in self.limits.iter().enumerate() {
            let Some((_, q)) = limit else { continue };
            let q_sqrt = q.sqrt();
            let norm = p[r].iter().map(|x| x * x).sum::<f64>().sqrt();
            let unorm = u[r].iter().map(|x| x * x).sum::<f64>().sqrt();
            value += q_sqrt * norm;
            g[r] = if norm > 0.0 {
                (0..self.aps)
                    .map(|a| q_sqrt * p[r][a] / norm - u[r][a])
                    .collect()
            } else if unorm > q_sqrt {
                (0..self.aps)
                    .map(|a| q_sqrt * u[r][a] / unorm - u[r][a])
                    .collect()
            } else {
                vec![0.0; self.aps]
            };
        }
        (value, g, at)
    }

    /// Each segment's own prices: those of the round alone, handovers free.
    fn round_prices(&self) -> Vec<Vec<f64>> {
        self.limits
            .iter()
            .enumerate()
            .map(|(r, limit)| match limit {
                None => vec![0.0; self.aps],
                Some((share, q)) => {
                    let options: Vec<Options> = self
                        .signal
                        .iter()
                        .zip(share)
                        .map(|(sig, s)| (0..self.aps).map(|a| (a, sig[r][a], *s)).collect())
                        .collect();
                    prices::solve(&options, self.aps, *q, 2000, 200.0).per_ap
                }
            })
            .collect()
    }

    /// For every handover price of the grid: the least dual value (without the budget
    /// term) found, and a placement within every limit made from the best paths there.
    pub fn curve(&self) -> Vec<Point> {
        let mut p = self.round_prices();
        LAMBDAS
            .iter()
            .map(|&lambda| {
                let mut best = (f64::INFINITY, Vec::new());
                for k in 0..STEPS {
                    let (v, g, at) = self.dual(&p, lambda);
                    if v < best.0 {
                        best = (v, at);
                    }
                    let step = 100.0 / ((k + 1) as f64).sqrt();
                    for (pr, gr) in p.iter_mut().zip(&g) {
                        let gnorm = gr.iter().map(|x| x * x).sum::<f64>().sqrt();
                        if gnorm > 1e-12 {
                            for (x, y) in pr.iter_mut().zip(gr) {
                                *x -= step * y / gnorm;
                            }
                        }
                    }
                }
                let (value, mut at) = best;
                let reached = self.repair(&mut at).then(|| {
                    let (h, sum) = self.score(&at);
                    (h, sum, at)
                });
                Point {
                    lambda,
                    value,
                    reached,
                }
            })
            .collect()
    }

    /// The bound at `handovers` from a [`Self::curve`]: the least over the grid of the
    /// value plus lambda x budget (as a mean over clients and ticks), and the best
    /// placement of the curve within the budget.
    pub fn at<'c>(&self, curve: &'c [Point], handovers: u64) -> (f64, Option<&'c [Vec<usize>]>) {
        let n = self.samples.max(1.0);
        let sum = curve
            .iter()
            .map(|c| c.value + c.lambda * handovers as f64)
            .fold(f64::INFINITY, f64::min);
        let reached = curve
            .iter()
            .filter_map(|c| c.reached.as_ref())
            .filter(|(h, _, _)| *h <= handovers)
            .max_by(|x, y| x.1.total_cmp(&y.1));
        (sum / n, reached.map(|r| r.2.as_slice()))
    }

    /// The bound of [`Self::at`], and the best placements of the curve, measured
    /// ([`Self::replay`]), that make at most `handovers` handovers (and of those, the
    /// best with ping-pong under 1% of them, issue 6's target).
    pub fn budgeted(
        &self,
        s: &Scenario,
        trace: &Trace,
        curve: &[Point],
        handovers: u64,
    ) -> Budgeted {
        let (upper_dbm, _) = self.at(curve, handovers);
        let within: Vec<Figures> = curve
            .iter()
            .filter_map(|c| c.reached.as_ref())
            .map(|(_, _, at)| self.replay(s, trace, at))
            .filter(|f| f.handovers <= handovers)
            .collect();
        let best = |f: &dyn Fn(&Figures) -> bool| {
            within
                .iter()
                .filter(|x| f(x))
                .max_by(|x, y| x.rssi_mean_dbm.total_cmp(&y.rssi_mean_dbm))
                .cloned()
        };
        Budgeted {
            handovers,
            upper_dbm,
            reached: best(&|_| true),
            reached_without_ping_pong: best(&|f| f.ping_pong_pct() < 1.0),
        }
    }
}

/// One handover price of [`Rounds::curve`].
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// dB x ticks per handover.
    pub lambda: f64,
    /// The least dual value found, without the budget term.
    pub value: f64,
    /// A placement within every limit: its handovers, sum of signal and the placement
    /// (`[client][segment]`).
    pub reached: Option<(u64, f64, Vec<Vec<usize>>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made run: `signal[i][r][a]`, the shares, the limit per segment.
    fn rounds(signal: Vec<Vec<Vec<f64>>>, share: Vec<f64>, q: f64, start: Vec<usize>) -> Rounds {
        let segs = signal[0].len();
        let aps = signal[0][0].len();
        let mut limits = vec![None];
        limits.extend((1..segs).map(|_| Some((share.clone(), q))));
        Rounds {
            samples: (signal.len() * segs) as f64,
            segment: (0..segs).collect(),
            signal,
            limits,
            start,
            aps,
        }
    }

    /// Brute force: the best sum of signal over every placement path with at most `h`
    /// handovers and sum u^2 <= q in every constrained segment.
    fn exact(r: &Rounds, h: u64) -> f64 {
        let (n, segs, aps) = (r.signal.len(), r.limits.len(), r.aps);
        let free = segs - 1;
        let mut best = f64::NEG_INFINITY;
        let paths = aps.pow(free as u32);
        for code in 0..paths.pow(n as u32) {
            let mut c = code;
            let mut at = vec![r.start.clone()];
            for _ in 1..segs {
                at.push((0..n).map(|_| 0).collect());
            }
            for i in 0..n {
                let mut pc = c % paths;
                c /= paths;
                for seg in at.iter_mut().skip(1) {
                    seg[i] = pc % aps;
                    pc /= aps;
                }
            }
            let mut switches = 0;
            let mut sum = 0.0;
            let mut ok = true;
            for s in 0..segs {
                let mut u = vec![0.0; aps];
                for i in 0..n {
                    sum += r.signal[i][s][at[s][i]];
                    if s > 0 {
                        switches += u64::from(at[s][i] != at[s - 1][i]);
                    }
                    if let Some((share, _)) = &r.limits[s] {
                        u[at[s][i]] += share[i];
                    }
                }
                if let Some((_, q)) = &r.limits[s] {
                    ok &= u.iter().map(|x| x * x).sum::<f64>() <= q + 1e-12;
                }
            }
            if ok && switches <= h {
                best = best.max(sum);
            }
        }
        best
    }

    #[test]
    fn the_bound_is_above_every_placement_within_the_budget() {
        // Three clients, two APs, three segments: all prefer AP 0 at first; two of them
        // may be on AP 0 at once (shares 0.5: 1.0^2 + 0.5^2 = 1.25 fits, 1.5^2 does not).
        // Client 2 walks to AP 1 in the last segment.
        let signal = vec![
            vec![vec![-40.0, -60.0], vec![-40.0, -60.0], vec![-40.0, -60.0]],
            vec![vec![-42.0, -48.0], vec![-42.0, -46.0], vec![-44.0, -45.0]],
            vec![vec![-41.0, -55.0], vec![-45.0, -50.0], vec![-60.0, -42.0]],
        ];
        let r = rounds(signal, vec![0.5; 3], 1.25, vec![0, 0, 0]);
        let curve = r.curve();
        for h in 0..=4 {
            let opt = exact(&r, h);
            let (upper, at) = r.at(&curve, h);
            let ub = upper * r.samples;
            if let Some(at) = at {
                let (switches, got) = r.score(at);
                assert!(got <= opt + 1e-6, "h {h}: reached {got} above {opt}");
                assert!(switches <= h, "h {h}: {switches} handovers");
            }
            assert!(ub >= opt - 1e-6, "h {h}: bound {ub} < optimum {opt}");
            // h 0 leaves all three on AP 0: no placement fits.
            assert!(
                h == 0 || ub - opt < 2.0,
                "h {h}: bound {ub} far above {opt}"
            );
        }
    }
}
