//! The radio model: log-distance path loss, log-normal shadowing that is correlated along
//! the client's path (an AR(1) process in the distance walked, after Gudmundson), and noise
//! on every report. [`Trace`] records, for one seeded run of the mobility model, what each
//! AP reports about each client at every tick and the signal without report noise (for
//! the metrics); every policy is then run on the same trace.

use super::{
    mobility::{Mobility, dist},
    rng::Rng,
    scenario::{Radio, Scenario},
};

/// Mean received power at distance `d` metres (no shadowing), dBm.
pub fn path_loss_rssi(radio: &Radio, d: f64) -> f64 {
    radio.tx_power_dbm - radio.ref_loss_db - 10.0 * radio.exponent * d.max(1.0).log10()
}

/// The signal of one tick.
pub struct Tick {
    /// Signal without report noise, [client][ap], dBm.
    pub rssi: Vec<Vec<f64>>,
    /// What the APs report, [client][ap]: none below the sensitivity.
    pub reports: Vec<Vec<Option<f64>>>,
    /// Each client's traffic, Mb/s.
    pub demand: Vec<f64>,
}

/// The signal of a whole run.
pub struct Trace {
    /// Seconds between ticks.
    pub dt: f64,
    pub ticks: Vec<Tick>,
    pub clients: usize,
}

impl Trace {
    /// Walks the scenario's clients for its whole duration (one tick per second).
    pub fn generate(s: &Scenario) -> Self {
        let dt = 1.0;
        let mut traffic = Traffic::new(s, Rng::fork(s.seed, 1));
        let mut mobility = Mobility::new(s, Rng::fork(s.seed, 2));
        let mut fading = Rng::fork(s.seed, 3);
        let mut noise = Rng::fork(s.seed, 4);
        let r = &s.radio;
        let n = mobility.walkers.len();
        let mut shadow: Vec<Vec<f64>> = (0..n)
            .map(|_| {
                s.aps
                    .iter()
                    .map(|_| r.shadowing_sigma_db * fading.normal())
                    .collect()
            })
            .collect();
        let steps = (s.duration_s / dt).round() as usize;
        let mut ticks = Vec::with_capacity(steps);
        for k in 0..steps {
            let t = k as f64 * dt;
            let moved = if k == 0 {
                vec![0.0; n]
            } else {
                mobility.step(t, dt)
            };
            let mut rssi = Vec::with_capacity(n);
            let mut reports = Vec::with_capacity(n);
            for (c, w) in mobility.walkers.iter().enumerate() {
                let rho = (-moved[c] / r.shadowing_decorrelation_m).exp();
                let mut row = Vec::with_capacity(s.aps.len());
                let mut rep = Vec::with_capacity(s.aps.len());
                for (a, ap) in s.aps.iter().enumerate() {
                    let sh = &mut shadow[c][a];
                    if moved[c] > 0.0 {
                        *sh = rho * *sh
                            + (1.0 - rho * rho).sqrt() * r.shadowing_sigma_db * fading.normal();
                    }
                    let v = path_loss_rssi(r, dist(w.pos, [ap.x, ap.y])) + *sh;
                    let reported = v + r.report_noise_db * noise.normal();
                    row.push(v);
                    rep.push((reported >= r.sensitivity_dbm).then_some(reported));
                }
                rssi.push(row);
                reports.push(rep);
            }
            let demand = traffic.step(dt);
            ticks.push(Tick {
                rssi,
                reports,
                demand,
            });
        }
        Self {
            dt,
            ticks,
            clients: n,
        }
    }
}

/// Each client's traffic: a level drawn from its group's range, held for a while.
struct Traffic {
    rng: Rng,
    clients: Vec<Level>,
}

/// One client's traffic: (range, hold range, level, time left at this level).
type Level = ([f64; 2], Option<[f64; 2]>, f64, f64);

impl Traffic {
    fn new(s: &Scenario, mut rng: Rng) -> Self {
        let clients = s
            .groups
            .iter()
            .flat_map(|g| std::iter::repeat_n((g.demand_mbps, g.demand_hold_s), g.count))
            .map(|(range, hold)| {
                let level = rng.range(range[0], range[1]);
                // The first hold is cut at a random point, so levels do not all change
                // together.
                let left = hold.map_or(f64::INFINITY, |[_, hi]| rng.range(0.0, hi));
                (range, hold, level, left)
            })
            .collect();
        Self { rng, clients }
    }

    /// The levels for the next `dt` seconds.
    fn step(&mut self, dt: f64) -> Vec<f64> {
        let rng = &mut self.rng;
        self.clients
            .iter_mut()
            .map(|(range, hold, level, left)| {
                if let Some([lo, hi]) = *hold {
                    *left -= dt;
                    if *left <= 0.0 {
                        *level = rng.range(range[0], range[1]);
                        *left = rng.range(lo, hi);
                    }
                }
                *level
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_distance() {
        let r = Radio::default();
        assert_eq!(path_loss_rssi(&r, 1.0), -20.0);
        assert!((path_loss_rssi(&r, 10.0) + 50.0).abs() < 1e-9);
        assert_eq!(path_loss_rssi(&r, 0.1), -20.0, "no gain closer than 1 m");
    }
}
