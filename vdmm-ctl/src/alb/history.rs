//! What the balancer remembers between rounds: each client's last move (for the minimum
//! dwell time and the ping-pong guard) and the recent balancing moves (to revert one whose
//! target became overloaded). Moves older than every window are forgotten.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    decide::{Move, MoveReason},
    model::{ApId, ClientId},
    params::Params,
};

/// One move the balancer made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoveRecord {
    pub from: ApId,
    pub to: ApId,
    /// When it was made (seconds).
    pub at: f64,
    pub reason: MoveReason,
}

/// The balancer's memory: the last move of every client moved recently.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub last: BTreeMap<ClientId, MoveRecord>,
}

impl History {
    /// Remembers moves made at `now`.
    pub fn record(&mut self, moves: &[Move], now: f64) {
        for m in moves {
            self.last.insert(
                m.client.clone(),
                MoveRecord {
                    from: m.from.clone(),
                    to: m.to.clone(),
                    at: now,
                    reason: m.reason,
                },
            );
        }
    }

    /// Whether `client` was moved less than the minimum dwell time ago.
    pub fn in_dwell(&self, client: &str, now: f64, params: &Params) -> bool {
        self.last
            .get(client)
            .is_some_and(|r| now - r.at < params.min_dwell_s)
    }

    /// Whether moving `client` to `target` now would send it back to the AP it left
    /// within the ping-pong window.
    pub fn is_ping_pong(&self, client: &str, target: &str, now: f64, params: &Params) -> bool {
        self.last
            .get(client)
            .is_some_and(|r| r.from == target && now - r.at < params.ping_pong_window_s)
    }

    /// The balancing moves still within the revert window whose client is still on the
    /// move's target: (client, record).
    pub fn revertible<'a>(
        &'a self,
        now: f64,
        params: &'a Params,
        current_ap: impl Fn(&str) -> Option<&'a str> + 'a,
    ) -> impl Iterator<Item = (&'a ClientId, &'a MoveRecord)> + 'a {
        self.last.iter().filter(move |(c, r)| {
            r.reason == MoveReason::Balance
                && now - r.at < params.revert_window_s
                && current_ap(c) == Some(r.to.as_str())
        })
    }

    /// Forgets moves older than the dwell time and both windows.
    pub fn prune(&mut self, now: f64, params: &Params) {
        let keep = params
            .min_dwell_s
            .max(params.ping_pong_window_s)
            .max(params.revert_window_s);
        self.last.retain(|_, r| now - r.at < keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(client: &str, from: &str, to: &str, reason: MoveReason) -> Move {
        Move {
            client: client.into(),
            from: from.into(),
            to: to.into(),
            reason,
            rssi_from: None,
            rssi_to: -60.0,
        }
    }

    #[test]
    fn dwell_ping_pong_revert_window_prune() {
        let p = Params::default();
        let mut h = History::default();
        h.record(&[mv("c1", "ap1", "ap2", MoveReason::Balance)], 100.0);
        h.record(&[mv("c2", "ap1", "ap3", MoveReason::Roam)], 110.0);
        assert!(h.in_dwell("c1", 100.0 + p.min_dwell_s - 1.0, &p));
        assert!(!h.in_dwell("c1", 100.0 + p.min_dwell_s, &p));
        assert!(!h.in_dwell("c9", 100.0, &p));
        assert!(h.is_ping_pong("c1", "ap1", 150.0, &p));
        assert!(!h.is_ping_pong("c1", "ap3", 150.0, &p));
        assert!(!h.is_ping_pong("c1", "ap1", 100.0 + p.ping_pong_window_s, &p));
        let on = |c: &str| match c {
            "c1" => Some("ap2"),
            "c2" => Some("ap3"),
            _ => None,
        };
        let r: Vec<_> = h
            .revertible(120.0, &p, on)
            .map(|(c, _)| c.as_str())
            .collect();
        assert_eq!(r, ["c1"], "only balancing moves are reverted");
        assert_eq!(h.revertible(120.0, &p, |_| Some("ap1")).count(), 0);
        h.prune(165.0, &p);
        assert_eq!(h.last.keys().collect::<Vec<_>>(), ["c2"]);
    }
}
