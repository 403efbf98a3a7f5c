//! Scenario files of `vdmm-ctl alb simulate` (TOML): the floor, the APs, groups of clients
//! with their demand and mobility, the radio model, the baselines' settings and any
//! balancer parameter to override. examples/alb/*.toml are the shipped ones.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::alb::params::Params;

/// A whole scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Seed of every random draw (placement, mobility, shadowing, report noise).
    pub seed: u64,
    /// Simulated time, seconds.
    pub duration_s: f64,
    /// Metrics ignore the first seconds, while the policies settle from the initial
    /// strongest-signal association.
    #[serde(default = "default_warmup")]
    pub warmup_s: f64,
    /// The floor: width and height in metres.
    pub area: [f64; 2],
    #[serde(default)]
    pub radio: Radio,
    #[serde(rename = "ap")]
    pub aps: Vec<ApSpec>,
    #[serde(rename = "group")]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub baselines: Baselines,
    /// Overrides of the balancer's parameters (the rest keep their defaults).
    #[serde(default)]
    pub alb: Params,
    /// A handover back to the AP a client left less than this long ago is a ping-pong.
    #[serde(default = "default_ping_pong")]
    pub ping_pong_window_s: f64,
}

/// Whether `x` is a number above 0 (NaN is not).
fn positive(x: f64) -> bool {
    x > 0.0
}

fn default_warmup() -> f64 {
    60.0
}

fn default_ping_pong() -> f64 {
    60.0
}

/// Log-distance path loss with log-normal shadowing (correlated along the client's path)
/// and per-report noise (fast fading and measurement).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Radio {
    pub tx_power_dbm: f64,
    /// Path loss at 1 m, dB.
    pub ref_loss_db: f64,
    /// Path loss exponent (2 free space, 3-4 indoors).
    pub exponent: f64,
    /// Standard deviation of the shadowing, dB.
    pub shadowing_sigma_db: f64,
    /// Distance over which the shadowing decorrelates to 1/e (Gudmundson), metres.
    pub shadowing_decorrelation_m: f64,
    /// Standard deviation of the noise on each report, dB.
    pub report_noise_db: f64,
    /// An AP does not hear (report) a client below this, dBm.
    pub sensitivity_dbm: f64,
}

impl Default for Radio {
    fn default() -> Self {
        Self {
            tx_power_dbm: 20.0,
            ref_loss_db: 40.0,
            exponent: 3.0,
            shadowing_sigma_db: 4.0,
            shadowing_decorrelation_m: 10.0,
            report_noise_db: 2.0,
            sensitivity_dbm: -90.0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApSpec {
    pub name: String,
    pub x: f64,
    pub y: f64,
    pub capacity_mbps: f64,
}

/// Clients that share a demand range and an area they wander in (random waypoint).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub count: usize,
    /// Each client's traffic is drawn uniformly from this range, Mb/s.
    pub demand_mbps: [f64; 2],
    /// A client's traffic holds for a time drawn from this range (seconds), then is drawn
    /// again (sessions start and end); none: it never changes.
    #[serde(default)]
    pub demand_hold_s: Option<[f64; 2]>,
    /// Walking speed range, m/s.
    pub speed_mps: [f64; 2],
    /// Pause at each waypoint, range in seconds.
    pub pause_s: [f64; 2],
    /// Waypoints are drawn within this radius of the centre; none: anywhere on the floor.
    #[serde(default)]
    pub radius_m: Option<f64>,
    /// The centre, or the centre's path: the centre walks from point to point at
    /// `path_speed_mps` and back (a moving crowd). One point: a fixed centre.
    #[serde(default)]
    pub path: Vec<[f64; 2]>,
    #[serde(default)]
    pub path_speed_mps: f64,
}

/// Settings of the three baselines.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Baselines {
    /// Strongest-signal-first moves a client when another AP is this much stronger, dB.
    pub ssf_margin_db: f64,
    /// Least-loaded-first only considers APs that hear the client at least this well.
    pub llf_min_rssi_dbm: f64,
    /// The EmPOWER-style score |RSSI| x utilisation must improve by this fraction.
    pub empower_margin: f64,
    /// The EmPOWER-style policy only considers APs that hear the client this well.
    pub empower_min_rssi_dbm: f64,
}

impl Default for Baselines {
    fn default() -> Self {
        Self {
            ssf_margin_db: 3.0,
            llf_min_rssi_dbm: -75.0,
            empower_margin: 0.1,
            empower_min_rssi_dbm: -75.0,
        }
    }
}

impl Scenario {
    /// Reads and checks a scenario file; errors are one line naming the file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read scenario {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("scenario {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let s: Self = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            match e.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count() + 1;
                    format!("line {line}: {msg}")
                }
                None => msg,
            }
        })?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), String> {
        self.alb.validate()?;
        let [w, h] = self.area;
        if !(w > 0.0 && h > 0.0) {
            return Err("area must be two positive lengths".into());
        }
        if !positive(self.duration_s)
            || self.warmup_s.is_nan()
            || self.warmup_s < 0.0
            || self.warmup_s >= self.duration_s
        {
            return Err("duration_s must be positive and larger than warmup_s".into());
        }
        if self.aps.is_empty() {
            return Err("no [[ap]]".into());
        }
        for (i, a) in self.aps.iter().enumerate() {
            if self.aps[..i].iter().any(|b| b.name == a.name) {
                return Err(format!("AP {} is listed twice", a.name));
            }
            if !positive(a.capacity_mbps) {
                return Err(format!("AP {}: capacity_mbps must be positive", a.name));
            }
        }
        if self.groups.iter().map(|g| g.count).sum::<usize>() == 0 {
            return Err("no clients: every [[group]] has count 0".into());
        }
        for (i, g) in self.groups.iter().enumerate() {
            let ranges = [
                ("demand_mbps", g.demand_mbps),
                ("speed_mps", g.speed_mps),
                ("pause_s", g.pause_s),
            ];
            for (name, [lo, hi]) in ranges {
                if !(lo >= 0.0 && hi >= lo) {
                    return Err(format!(
                        "group {}: {name} must be [low, high] with 0 <= low <= high",
                        i + 1
                    ));
                }
            }
            if g.demand_hold_s
                .is_some_and(|[lo, hi]| !(lo > 0.0 && hi >= lo))
            {
                return Err(format!(
                    "group {}: demand_hold_s must be [low, high] with 0 < low <= high",
                    i + 1
                ));
            }
            if g.radius_m.is_some() && g.path.is_empty() {
                return Err(format!(
                    "group {}: radius_m needs a path (its centre)",
                    i + 1
                ));
            }
            if g.path.len() > 1 && !positive(g.path_speed_mps) {
                return Err(format!(
                    "group {}: a path of several points needs path_speed_mps > 0",
                    i + 1
                ));
            }
            if g.speed_mps[1] <= 0.0 && g.pause_s[1] <= 0.0 {
                return Err(format!(
                    "group {}: speed_mps or pause_s must allow some time to pass",
                    i + 1
                ));
            }
        }
        if !positive(self.radio.shadowing_decorrelation_m) {
            return Err("radio.shadowing_decorrelation_m must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenarios_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/alb");
        for name in ["hotspot", "uniform", "moving-crowd"] {
            let path = Path::new(dir).join(format!("{name}.toml"));
            let s = Scenario::load(&path).unwrap();
            assert_eq!(s.name, name);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let base = r#"
name = "x"
seed = 1
duration_s = 100
area = [10, 10]
[[ap]]
name = "ap1"
x = 0
y = 0
capacity_mbps = 10
[[group]]
count = 1
demand_mbps = [1, 2]
speed_mps = [1, 1]
pause_s = [0, 0]
"#;
        Scenario::parse(base).unwrap();
        let e = Scenario::parse(&format!("{base}\n[alb]\nrssi_alpha = 2\n")).unwrap_err();
        assert_eq!(e, "parameter rssi_alpha must be in (0, 1]");
        let e = Scenario::parse(&format!("{base}\n[alb]\nbogus = 2\n")).unwrap_err();
        assert!(
            e.contains("unknown field `bogus`") && e.starts_with("line 18"),
            "{e}"
        );
        let e =
            Scenario::parse(&base.replace("capacity_mbps = 10", "capacity_mbps = 0")).unwrap_err();
        assert_eq!(e, "AP ap1: capacity_mbps must be positive");
    }
}
