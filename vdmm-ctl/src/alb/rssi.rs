//! Signal smoothing: an exponentially weighted moving average over linear power (mW), not
//! over dBm, so that one deep fade does not drag the average down by as much as it would in
//! the log domain, and the average means what a power meter would show.

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
}

impl SmoothedRssi {
    /// Starts the average at the first report.
    pub fn new(dbm: f64, now: f64) -> Self {
        Self {
            mw: dbm_to_mw(dbm),
            updated: now,
        }
    }

    /// Folds one report in with weight `alpha` (0 < alpha <= 1; 1 keeps only the newest).
    pub fn update(&mut self, dbm: f64, alpha: f64, now: f64) {
        self.mw = alpha * dbm_to_mw(dbm) + (1.0 - alpha) * self.mw;
        self.updated = now;
    }

    /// The average in dBm.
    pub fn dbm(&self) -> f64 {
        mw_to_dbm(self.mw)
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
}
