//! Random-waypoint mobility: each client walks at its own speed to a waypoint drawn in its
//! group's area (the whole floor, or a disc around a centre that may itself walk along a
//! path: a moving crowd), pauses, and draws the next one.

use super::{
    rng::Rng,
    scenario::{Group, Scenario},
};

/// Where a group's waypoints are drawn at time `t`: a disc (centre, radius) or the floor.
fn centre_at(g: &Group, t: f64) -> Option<[f64; 2]> {
    let first = *g.path.first()?;
    if g.path.len() == 1 {
        return Some(first);
    }
    // Walk the path there and back again, at path_speed_mps.
    let legs: Vec<([f64; 2], [f64; 2], f64)> = g
        .path
        .windows(2)
        .map(|w| (w[0], w[1], dist(w[0], w[1])))
        .collect();
    let length: f64 = legs.iter().map(|l| l.2).sum();
    if length == 0.0 {
        return Some(first);
    }
    let mut s = (t * g.path_speed_mps) % (2.0 * length);
    if s > length {
        s = 2.0 * length - s;
    }
    for (a, b, l) in legs {
        if s <= l {
            let f = if l > 0.0 { s / l } else { 0.0 };
            return Some([a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])]);
        }
        s -= l;
    }
    g.path.last().copied()
}

pub fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// One walking client.
#[derive(Clone, Debug)]
pub struct Walker {
    pub pos: [f64; 2],
    group: usize,
    target: [f64; 2],
    speed: f64,
    pause_left: f64,
}

/// Every client of a scenario, moved one tick at a time.
pub struct Mobility<'a> {
    scenario: &'a Scenario,
    rng: Rng,
    pub walkers: Vec<Walker>,
}

impl<'a> Mobility<'a> {
    /// Places every client at a random point of its group's area at time 0.
    pub fn new(scenario: &'a Scenario, rng: Rng) -> Self {
        let mut m = Self {
            scenario,
            rng,
            walkers: Vec::new(),
        };
        for (gi, g) in scenario.groups.iter().enumerate() {
            for _ in 0..g.count {
                let pos = m.waypoint(gi, 0.0);
                let mut w = Walker {
                    pos,
                    group: gi,
                    target: pos,
                    speed: 0.0,
                    pause_left: 0.0,
                };
                m.next_leg(&mut w, 0.0);
                m.walkers.push(w);
            }
        }
        m
    }

    /// A point of group `gi`'s area at time `t`, inside the floor.
    fn waypoint(&mut self, gi: usize, t: f64) -> [f64; 2] {
        let g = &self.scenario.groups[gi];
        let [w, h] = self.scenario.area;
        let p = match (centre_at(g, t), g.radius_m) {
            (Some(c), Some(r)) => {
                // Uniform in the disc.
                let rr = r * self.rng.unit().sqrt();
                let a = self.rng.range(0.0, 2.0 * std::f64::consts::PI);
                [c[0] + rr * a.cos(), c[1] + rr * a.sin()]
            }
            (Some(c), None) => c,
            (None, _) => [self.rng.range(0.0, w), self.rng.range(0.0, h)],
        };
        [p[0].clamp(0.0, w), p[1].clamp(0.0, h)]
    }

    fn next_leg(&mut self, w: &mut Walker, t: f64) {
        let g = &self.scenario.groups[w.group];
        let (speed, pause) = (g.speed_mps, g.pause_s);
        w.target = self.waypoint(w.group, t);
        w.speed = self.rng.range(speed[0], speed[1]);
        w.pause_left = self.rng.range(pause[0], pause[1]);
    }

    /// Advances every client by `dt` seconds ending at time `t`; returns how far each moved.
    pub fn step(&mut self, t: f64, dt: f64) -> Vec<f64> {
        let mut walkers = std::mem::take(&mut self.walkers);
        let moved = walkers
            .iter_mut()
            .map(|w| {
                let start = w.pos;
                let mut left = dt;
                while left > 1e-9 {
                    if w.pause_left > 0.0 {
                        let p = w.pause_left.min(left);
                        w.pause_left -= p;
                        left -= p;
                        continue;
                    }
                    let d = dist(w.pos, w.target);
                    if w.speed <= 0.0 || d <= w.speed * left {
                        // Arrive (or stand still), then draw the next leg.
                        if w.speed > 0.0 {
                            left -= d / w.speed;
                        }
                        w.pos = w.target;
                        self.next_leg(w, t);
                        if w.speed <= 0.0 && w.pause_left <= 0.0 {
                            break;
                        }
                    } else {
                        let f = w.speed * left / d;
                        w.pos = [
                            w.pos[0] + f * (w.target[0] - w.pos[0]),
                            w.pos[1] + f * (w.target[1] - w.pos[1]),
                        ];
                        left = 0.0;
                    }
                }
                dist(start, w.pos)
            })
            .collect();
        self.walkers = walkers;
        moved
    }
}
