//! What the simulator measures per policy: Jain's fairness index of the APs' utilisation
//! and the most loaded AP's utilisation (both averaged over the ticks after the warm-up),
//! the signal clients get from their AP (mean and 5th percentile over clients and ticks
//! after the warm-up), handovers (the whole run) and ping-pong handovers (back to the AP
//! the client left less than the window ago).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::alb::{decide::MoveReason, load::jain};

/// The figures of one policy on one scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figures {
    pub policy: String,
    /// Jain's index of AP utilisation, mean over ticks.
    pub jain: f64,
    /// The most loaded AP's utilisation, mean over ticks.
    pub max_load: f64,
    /// The most loaded AP's utilisation at the worst tick.
    pub peak_load: f64,
    /// Signal of the serving AP (without report noise), dBm.
    pub rssi_mean_dbm: f64,
    pub rssi_p5_dbm: f64,
    pub handovers: u64,
    pub ping_pong: u64,
    /// ALB's moves by reason (rescue, revert, roam, balance); empty for the baselines.
    pub alb_moves: BTreeMap<MoveReason, u64>,
}

impl Figures {
    /// Ping-pong handovers as a percentage of all handovers.
    pub fn ping_pong_pct(&self) -> f64 {
        if self.handovers == 0 {
            0.0
        } else {
            100.0 * self.ping_pong as f64 / self.handovers as f64
        }
    }
}

/// Collects the figures tick by tick.
pub struct Recorder {
    ping_pong_window: f64,
    jain_sum: f64,
    max_sum: f64,
    peak: f64,
    ticks: u64,
    rssi: Vec<f64>,
    /// Per client: the last handover (from, time).
    last: Vec<Option<(usize, f64)>>,
    handovers: u64,
    ping_pong: u64,
    pub alb_moves: BTreeMap<MoveReason, u64>,
}

impl Recorder {
    pub fn new(clients: usize, ping_pong_window: f64) -> Self {
        Self {
            ping_pong_window,
            jain_sum: 0.0,
            max_sum: 0.0,
            peak: 0.0,
            ticks: 0,
            rssi: Vec::new(),
            last: vec![None; clients],
            handovers: 0,
            ping_pong: 0,
            alb_moves: BTreeMap::new(),
        }
    }

    /// A handover of `client` from AP `from` to AP `to` at time `t`.
    pub fn handover(&mut self, client: usize, from: usize, to: usize, t: f64) {
        self.handovers += 1;
        if let Some((prev_from, at)) = self.last[client]
            && prev_from == to
            && t - at < self.ping_pong_window
        {
            self.ping_pong += 1;
        }
        self.last[client] = Some((from, t));
    }

    /// One tick after the warm-up: the APs' utilisation and each client's signal.
    pub fn tick(&mut self, util: &[f64], serving_rssi: impl IntoIterator<Item = f64>) {
        let max = util.iter().copied().fold(0.0, f64::max);
        self.jain_sum += jain(util.iter().copied());
        self.max_sum += max;
        self.peak = self.peak.max(max);
        self.ticks += 1;
        self.rssi.extend(serving_rssi);
    }

    pub fn finish(mut self, policy: &str) -> Figures {
        self.rssi.sort_by(f64::total_cmp);
        let n = self.rssi.len();
        let ticks = self.ticks.max(1) as f64;
        Figures {
            policy: policy.to_string(),
            jain: self.jain_sum / ticks,
            max_load: self.max_sum / ticks,
            peak_load: self.peak,
            rssi_mean_dbm: if n == 0 {
                f64::NAN
            } else {
                self.rssi.iter().sum::<f64>() / n as f64
            },
            rssi_p5_dbm: if n == 0 {
                f64::NAN
            } else {
                self.rssi[(n - 1) * 5 / 100]
            },
            handovers: self.handovers,
            ping_pong: self.ping_pong,
            alb_moves: self.alb_moves,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_pong_is_a_return_within_the_window() {
        let mut r = Recorder::new(2, 60.0);
        r.handover(0, 0, 1, 10.0);
        r.handover(0, 1, 0, 50.0); // back to AP 0 within 60 s
        r.handover(0, 0, 2, 200.0);
        r.handover(0, 2, 0, 300.0); // back, but after 100 s
        r.handover(1, 0, 1, 10.0);
        r.handover(1, 1, 2, 20.0); // onward, not back
        r.tick(&[1.0, 1.0], [-50.0, -60.0]);
        r.tick(&[2.0, 0.0], [-70.0]);
        let f = r.finish("x");
        assert_eq!((f.handovers, f.ping_pong), (6, 1));
        assert!((f.ping_pong_pct() - 100.0 / 6.0).abs() < 1e-9);
        assert!((f.jain - 0.75).abs() < 1e-12 && f.max_load == 1.5 && f.peak_load == 2.0);
        assert_eq!((f.rssi_mean_dbm, f.rssi_p5_dbm), (-60.0, -70.0));
    }
}
