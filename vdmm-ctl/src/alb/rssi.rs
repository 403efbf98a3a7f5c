//! Signal smoothing: an exponentially weighted moving average over linear power (mW), not
//! over dBm, so that one deep fade does not drag the average down by as much as it would in
//! the log domain, and the average means what a power meter would show.
//!
//! Beside it, the trend: an average over dBm with the same weight and an average of that
//! average. On a client walking at a steady pace (a ramp in dB), an average with weight
//! alpha trails the reports by (1 - alpha) / alpha reports' worth of the slope, and the
//! average of the average trails it by as much again, so their difference ([`lag_db`])
//! tells how far, and which way, the signal has moved since the average caught up
//! (Brown's double exponential smoothing). Near zero: the client stands still.
//!
//! [`lag_db`]: SmoothedRssi::lag_db

use serde::{Deserialize, Serialize};

/// dBm to mW.
pub fn dbm_to_mw(dbm: f64) -> f64 {
    10f64.powf(dbm / 10.0)
}

/// mW to dBm.
pub fn mw_to_dbm(mw: f64) -> f64 {
    10.0 * mw.log10()
}

/// The smoothed signal of one AP for one client.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmoothedRssi {
    /// The average power in mW.
    mw: f64,
    /// When the last report arrived (seconds).
    pub updated: f64,
    /// The trend's two averages over dBm (none in a state file from before they were
    /// kept: they start at the next report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trend: Option<Trend>,
}

/// The average over dBm and the average of that average.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Trend {
    dbm: f64,
    slow_dbm: f64,
}

impl SmoothedRssi {
    /// Starts the average at the first report.
    pub fn new(dbm: f64, now: f64) -> Self {
        Self {
            mw: dbm_to_mw(dbm),
            updated: now,
            trend: Some(Trend { dbm, slow_dbm: dbm }),
        }
    }

    /// Folds one report in with weight `alpha` (0 < alpha <= 1; 1 keeps only the newest).
    pub fn update(&mut self, dbm: f64, alpha: f64, now: f64) {
        self.mw = alpha * dbm_to_mw(dbm) + (1.0 - alpha) * self.mw;
        self.updated = now;
        self.trend = Some(match self.trend {
            None => Trend { dbm, slow_dbm: dbm },
            Some(t) => {
                let fast = alpha * dbm + (1.0 - alpha) * t.dbm;
                Trend {
                    dbm: fast,
                    slow_dbm: alpha * fast + (1.0 - alpha) * t.slow_dbm,
                }
            }
        });
    }

    /// The average in dBm.
    pub fn dbm(&self) -> f64 {
        mw_to_dbm(self.mw)
    }

    /// How far the signal has moved that the averages have not caught up with, dB
    /// (positive: rising): the average over dBm minus the average of that average. On a
    /// steady ramp of `b` dB per report it settles at `b (1 - alpha) / alpha`, how far
    /// an average trails the reports; 0 when the client stands still (apart from noise).
    pub fn lag_db(&self) -> f64 {
        self.trend.map_or(0.0, |t| t.dbm - t.slow_dbm)
    }

    /// Whether the last report is older than `max_age` seconds at `now`.
    pub fn is_stale(&self, now: f64, max_age: f64) -> bool {
        now - self.updated > max_age
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_linear_power() {
        let mut s = SmoothedRssi::new(-50.0, 0.0);
        assert!((s.dbm() + 50.0).abs() < 1e-9);
        // Half -50 dBm (10 nW) and half -60 dBm (1 nW): 5.5 nW = -52.6 dBm, not -55.
        s.update(-60.0, 0.5, 1.0);
        assert!((s.dbm() + 52.596).abs() < 1e-3, "{}", s.dbm());
        assert_eq!(s.updated, 1.0);
        assert!(!s.is_stale(10.0, 30.0));
        assert!(s.is_stale(31.5, 30.0));
        // alpha 1: only the newest report counts.
        s.update(-70.0, 1.0, 2.0);
        assert!((s.dbm() + 70.0).abs() < 1e-9);
    }

    #[test]
    fn the_lag_follows_a_walk_and_vanishes_when_it_stops() {
        let alpha = 0.1;
        let mut s = SmoothedRssi::new(-70.0, 0.0);
        for k in 1..=10 {
            s.update(-70.0, alpha, k as f64);
        }
        assert!(s.lag_db().abs() < 1e-9, "standing still: {}", s.lag_db());
        // Walking toward the AP, 0.5 dB per report: the lag settles at 0.5 * 0.9 / 0.1.
        let mut r = -70.0;
        for k in 11..=200 {
            r += 0.5;
            s.update(r, alpha, k as f64);
        }
        assert!((s.lag_db() - 4.5).abs() < 0.01, "{}", s.lag_db());
        // Walking away: negative.
        for k in 201..=400 {
            r -= 0.5;
            s.update(r, alpha, k as f64);
        }
        assert!((s.lag_db() + 4.5).abs() < 0.01, "{}", s.lag_db());
        // Standing again: the lag dies out.
        for k in 401..=600 {
            s.update(r, alpha, k as f64);
        }
        assert!(s.lag_db().abs() < 0.01, "{}", s.lag_db());
        // A state from before the trend was kept: no lag until reports come.
        let old: SmoothedRssi = serde_json::from_str(r#"{"mw":1e-7,"updated":3.0}"#).unwrap();
        assert_eq!(old.lag_db(), 0.0);
    }
}
