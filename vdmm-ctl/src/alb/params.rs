//! Every parameter of the balancer, with its default. docs/alb.md explains each one (a
//! unit test checks that it names them all); scenario files and the controller's state
//! file may override any of them by name.

use serde::{Deserialize, Serialize};

/// The balancer's parameters. Utilisations are fractions of an AP's capacity (1.0 = full).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// An AP whose utilisation is above this is overloaded.
    pub high_util: f64,
    /// An AP whose utilisation is above the mean of all APs by more than this is
    /// overloaded too (so that a hotspot is spread before it saturates).
    pub imbalance_gap: f64,
    /// A move may not leave its target within this of being overloaded: the band that
    /// keeps the balancer from undoing its own moves in the next round.
    pub hysteresis: f64,
    /// An AP is a candidate for a client only if it hears the client at least this well
    /// (dBm, smoothed).
    pub min_rssi_dbm: f64,
    /// A balancing move may cost the client at most this much signal (dB).
    pub max_signal_drop_db: f64,
    /// Moves are ranked by imbalance reduction / (signal lost in dB + this floor): the
    /// floor keeps moves that lose no signal from winning on cost alone.
    pub signal_cost_floor_db: f64,
    /// A balancing move must reduce the imbalance (the sum of squared utilisations) by at
    /// least this.
    pub min_gain: f64,
    /// At most this many balancing moves and reverts per round.
    pub max_moves_per_round: usize,
    /// A client moved (for any reason) is not moved for balance again within this many
    /// seconds; roaming, reverts and rescues may still move it.
    pub min_dwell_s: f64,
    /// A client is not moved back to the AP it left within this many seconds (except by a
    /// revert): the ping-pong guard.
    pub ping_pong_window_s: f64,
    /// A balancing move whose target became overloaded within this many seconds is undone
    /// if the client's old AP has room again.
    pub revert_window_s: f64,
    /// A client is moved to an AP that hears it this much better (dB) than its own, if
    /// that AP has room (roaming with the client as it moves).
    pub roam_margin_db: f64,
    /// Exchanges: a client kept off its strongest AP by that AP's load goes there while
    /// one of that AP's clients makes room elsewhere, when the first gains at least this
    /// much more signal (dB) than the second loses. 0 turns exchanges off.
    pub exchange_gain_db: f64,
    /// Priced balancing (0 turns it off, the default): instead of roaming and balancing
    /// against `imbalance_gap`, price each AP's load (dB per unit of utilisation) so that
    /// clients on their best priced AP reach this Jain's index, and move clients to a
    /// better priced AP (see docs/alb.md).
    pub target_fairness: f64,
    /// Priced balancing: a move must gain at least this much priced signal (dB).
    pub price_margin_db: f64,
    /// Target placement (0 turns it off): instead of roaming and balancing against
    /// `imbalance_gap`, compute each round the placement that loses the least signal with
    /// Jain's index at least this and no AP above `high_util`, and move clients toward it
    /// (see docs/alb.md).
    pub placement_fairness: f64,
    /// Target placement: what a move costs in the placement's objective (dB), so that
    /// the target changes only for a gain larger than that.
    pub switch_cost_db: f64,
    /// Load an associated client puts on its AP besides its traffic (Mb/s): management
    /// frames, contention, a quiet client's share of airtime.
    pub client_base_mbps: f64,
    /// Weight of a new signal report in the moving average (0 < alpha <= 1).
    pub rssi_alpha: f64,
    /// How far ahead the balancer reads each AP's signal along the client's trend: it
    /// decides on the smoothed signal plus this times the trend's lag
    /// ([`crate::alb::model::Client::lag_db`]). 0: the smoothed signal alone; 1: about
    /// the signal now (what the average has not caught up with yet); above 1: further
    /// ahead, in units of the average's lag.
    pub trend_gain: f64,
    /// Signal reports older than this (seconds) are ignored: the AP no longer hears the
    /// client.
    pub rssi_max_age_s: f64,
    /// Seconds between rounds (the simulator and `alb feed` decide this often).
    pub round_interval_s: f64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            high_util: 0.8,
            imbalance_gap: 0.15,
            hysteresis: 0.05,
            min_rssi_dbm: -75.0,
            max_signal_drop_db: 10.0,
            signal_cost_floor_db: 3.0,
            min_gain: 0.001,
            max_moves_per_round: 4,
            min_dwell_s: 30.0,
            ping_pong_window_s: 60.0,
            revert_window_s: 60.0,
            roam_margin_db: 4.0,
            exchange_gain_db: 0.0,
            target_fairness: 0.0,
            price_margin_db: 2.0,
            placement_fairness: 0.0,
            switch_cost_db: 8.0,
            client_base_mbps: 0.5,
            rssi_alpha: 0.1,
            trend_gain: 0.0,
            rssi_max_age_s: 30.0,
            round_interval_s: 5.0,
        }
    }
}

impl Params {
    /// The parameters' names (sorted).
    pub fn names() -> Vec<String> {
        match serde_json::to_value(Self::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// A copy with one parameter set from text (`NAME=VALUE`), checked.
    pub fn with(&self, assignment: &str) -> Result<Self, String> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("`{assignment}`: expected NAME=VALUE"))?;
        let (name, value) = (name.trim(), value.trim());
        let mut v = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let slot = v.get_mut(name).ok_or_else(|| {
            format!(
                "unknown parameter `{name}` (known: {})",
                Self::names().join(", ")
            )
        })?;
        let number: f64 = value
            .parse()
            .map_err(|_| format!("parameter {name}: `{value}` is not a number"))?;
        *slot = if slot.is_u64() {
            if number < 0.0 || number.fract() != 0.0 {
                return Err(format!(
                    "parameter {name}: `{value}` is not a whole number >= 0"
                ));
            }
            serde_json::Value::from(number as u64)
        } else {
            serde_json::Value::from(number)
        };
        let p: Self = serde_json::from_value(v).map_err(|e| e.to_string())?;
        p.validate()?;
        Ok(p)
    }

    /// Checks the ranges; the error names the first parameter out of range.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(&str, bool, &str); 18] = [
            (
                "target_fairness",
                (0.0..1.0).contains(&self.target_fairness),
                "in [0, 1)",
            ),
            ("price_margin_db", self.price_margin_db >= 0.0, ">= 0"),
            (
                "placement_fairness",
                (0.0..=1.0).contains(&self.placement_fairness),
                "in [0, 1]",
            ),
            ("switch_cost_db", self.switch_cost_db >= 0.0, ">= 0"),
            ("high_util", self.high_util > 0.0, "> 0"),
            ("imbalance_gap", self.imbalance_gap >= 0.0, ">= 0"),
            (
                "hysteresis",
                self.hysteresis >= 0.0 && self.hysteresis < self.high_util,
                ">= 0 and < high_util",
            ),
            ("max_signal_drop_db", self.max_signal_drop_db >= 0.0, ">= 0"),
            (
                "signal_cost_floor_db",
                self.signal_cost_floor_db > 0.0,
                "> 0",
            ),
            ("min_gain", self.min_gain >= 0.0, ">= 0"),
            ("min_dwell_s", self.min_dwell_s >= 0.0, ">= 0"),
            ("ping_pong_window_s", self.ping_pong_window_s >= 0.0, ">= 0"),
            ("revert_window_s", self.revert_window_s >= 0.0, ">= 0"),
            ("client_base_mbps", self.client_base_mbps >= 0.0, ">= 0"),
            ("exchange_gain_db", self.exchange_gain_db >= 0.0, ">= 0"),
            (
                "rssi_alpha",
                self.rssi_alpha > 0.0 && self.rssi_alpha <= 1.0,
                "in (0, 1]",
            ),
            ("round_interval_s", self.round_interval_s > 0.0, "> 0"),
            (
                "trend_gain",
                (0.0..=10.0).contains(&self.trend_gain),
                "in [0, 10]",
            ),
        ];
        for (name, ok, range) in checks {
            if !ok {
                return Err(format!("parameter {name} must be {range}"));
            }
        }
        if self.rssi_max_age_s <= 0.0 {
            return Err("parameter rssi_max_age_s must be > 0".into());
        }
        if !self.min_rssi_dbm.is_finite() || !self.roam_margin_db.is_finite() {
            return Err("parameters min_rssi_dbm and roam_margin_db must be numbers".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented() {
        Params::default().validate().unwrap();
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/alb.md"))
            .unwrap();
        let names = Params::names();
        assert_eq!(names.len(), 22);
        for name in names {
            assert!(
                doc.contains(&format!("`{name}`")),
                "docs/alb.md does not explain `{name}`"
            );
        }
    }

    #[test]
    fn set_by_name() {
        let p = Params::default().with("roam_margin_db = 6").unwrap();
        assert_eq!(p.roam_margin_db, 6.0);
        let p = p.with("max_moves_per_round=2").unwrap();
        assert_eq!((p.max_moves_per_round, p.roam_margin_db), (2, 6.0));
        assert_eq!(
            p.with("max_moves_per_round=2.5").unwrap_err(),
            "parameter max_moves_per_round: `2.5` is not a whole number >= 0"
        );
        assert!(
            p.with("nope=1")
                .unwrap_err()
                .starts_with("unknown parameter `nope` (known: ")
        );
        assert_eq!(
            p.with("high_util").unwrap_err(),
            "`high_util`: expected NAME=VALUE"
        );
        assert_eq!(
            p.with("high_util=x").unwrap_err(),
            "parameter high_util: `x` is not a number"
        );
        assert_eq!(
            p.with("high_util=-1").unwrap_err(),
            "parameter high_util must be > 0"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let p = Params {
            rssi_alpha: 0.0,
            ..Params::default()
        };
        assert_eq!(
            p.validate().unwrap_err(),
            "parameter rssi_alpha must be in (0, 1]"
        );
        let p = Params {
            hysteresis: 0.9,
            ..Params::default()
        };
        assert!(p.validate().unwrap_err().contains("hysteresis"));
    }
}
