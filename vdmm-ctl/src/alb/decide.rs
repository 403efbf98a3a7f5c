//! The decision: a pure function from a [`Snapshot`], the [`History`] and the [`Params`]
//! to a list of moves. Four kinds of move (and a fifth, off by default), in this order, each seeing the placement the
//! earlier ones left:
//!
//! 1. rescue: the client's AP is gone, or hears it below `min_rssi_dbm` (or not at all):
//!    to the strongest AP with room (or the strongest at all) that hears it well enough;
//! 2. revert: a recent balancing move whose target is overloaded now goes back, if the old
//!    AP has room;
//! 3. roam: another AP hears the client `roam_margin_db` better and does not become
//!    overloaded by taking it;
//! 4. balance: while an AP is overloaded, the move of one of its clients that most reduces
//!    the imbalance (sum of squared utilisations) per dB of signal lost, among targets
//!    that hear the client well enough, cost at most `max_signal_drop_db`, end up no more
//!    loaded than the source and stay out of overload with the hysteresis band to spare.
//!
//! 5. exchange (off unless `exchange_gain_db` > 0): a client kept off its strongest AP
//!    by that AP's load goes there while one of its clients, cheaper to move, makes room.
//!
//! Two alternatives to 3 and 4, off by default: priced balancing (`target_fairness`),
//! and target placement (`placement_fairness`): each round, the placement that loses the
//! least signal within load limits ([`super::placement`]), and moves toward it.
//!
//! With `trend_gain` > 0, every signal is first read ahead along the client's trend
//! (the snapshot's `lag_db`), so that the balancer follows walking clients without the
//! averages' delay.
//!
//! Reverts and balancing moves together are limited to `max_moves_per_round`. The
//! ping-pong guard holds back roaming and balancing, the dwell time balancing only (a
//! client that walks away from its new AP must be able to follow its signal); neither
//! holds back rescues or reverts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    history::History,
    load::{client_load, jain, mean, utilisation},
    model::{ApId, ClientId, Snapshot},
    params::Params,
    placement::{self, Choice, Limits},
    prices::{self, Options},
};

/// Slack in utilisation comparisons, so that sums of shares that are equal on paper
/// compare equal.
const EPS: f64 = 1e-9;

/// Why a client is moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MoveReason {
    /// Its AP is gone or hears it too weakly.
    Rescue,
    /// Undoing a balancing move whose target became overloaded.
    Revert,
    /// Another AP hears it much better.
    Roam,
    /// Taking load off an overloaded AP.
    Balance,
}

impl MoveReason {
    pub const ALL: [MoveReason; 4] = [Self::Rescue, Self::Revert, Self::Roam, Self::Balance];

    pub fn name(self) -> &'static str {
        match self {
            Self::Rescue => "rescue",
            Self::Revert => "revert",
            Self::Roam => "roam",
            Self::Balance => "balance",
        }
    }
}

/// One client to move.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Move {
    pub client: ClientId,
    pub from: ApId,
    pub to: ApId,
    pub reason: MoveReason,
    /// The smoothed signal of the old AP (none if it no longer hears the client or is
    /// gone), as the balancer read it (with `trend_gain`, moved along the trend).
    pub rssi_from: Option<f64>,
    /// The smoothed signal of the new AP, read likewise.
    pub rssi_to: f64,
}

/// The moves of one round and the loads they lead to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub moves: Vec<Move>,
    /// APs overloaded before the moves.
    pub overloaded: Vec<ApId>,
    /// Utilisation per AP before and after the moves.
    pub utilisation_before: BTreeMap<ApId, f64>,
    pub utilisation_after: BTreeMap<ApId, f64>,
    /// Jain's index of the utilisations before and after.
    pub fairness_before: f64,
    pub fairness_after: f64,
    /// Clients that need a rescue but no AP hears them well enough.
    pub stranded: Vec<ClientId>,
}

/// The placement being worked on during a round.
struct Work<'a> {
    s: &'a Snapshot,
    p: &'a Params,
    h: &'a History,
    util: BTreeMap<ApId, f64>,
    ap_of: BTreeMap<&'a str, &'a str>,
    moved: BTreeSet<&'a str>,
    moves: Vec<Move>,
}

impl<'a> Work<'a> {
    fn mean(&self) -> f64 {
        mean(self.util.values().copied())
    }

    fn overloaded(&self, u: f64, mean: f64) -> bool {
        u > self.p.high_util + EPS || u > mean + self.p.imbalance_gap + EPS
    }

    /// Whether an AP at utilisation `u` (after taking a client) is clear of overload by
    /// the hysteresis band; above the absolute threshold only while not above the mean
    /// (when every AP is saturated, spreading still helps).
    fn fits(&self, u: f64, mean: f64) -> bool {
        let p = self.p;
        u <= mean + p.imbalance_gap - p.hysteresis + EPS
            && (u <= p.high_util - p.hysteresis + EPS || u <= mean + EPS)
    }

    /// The utilisation `client` would add to `ap`.
    fn share(&self, client: &str, ap: &str) -> f64 {
        client_load(&self.s.clients[client], self.p) / self.s.aps[ap].capacity_mbps
    }

    fn apply(&mut self, client: &'a str, to: &'a str, reason: MoveReason) {
        let from = self.ap_of[client];
        let c = &self.s.clients[client];
        if self.s.aps.contains_key(from) {
            let d = self.share(client, from);
            *self.util.get_mut(from).expect("AP of the snapshot") -= d;
        }
        let d = self.share(client, to);
        *self.util.get_mut(to).expect("AP of the snapshot") += d;
        self.ap_of.insert(client, to);
        self.moved.insert(client);
        self.moves.push(Move {
            client: client.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            reason,
            rssi_from: c.rssi_of(from).filter(|_| self.s.aps.contains_key(from)),
            rssi_to: c.rssi_of(to).unwrap_or(f64::NEG_INFINITY),
        });
    }

    /// APs of the snapshot that hear `client` at `min_rssi_dbm` or better, strongest first.
    fn audible(&self, client: &'a str) -> Vec<(&'a str, f64)> {
        let mut v: Vec<(&str, f64)> = self.s.clients[client]
            .rssi
            .iter()
            .filter(|(ap, r)| self.s.aps.contains_key(*ap) && **r >= self.p.min_rssi_dbm)
            .map(|(ap, r)| (ap.as_str(), *r))
            .collect();
        v.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(y.0)));
        v
    }

    fn rescues(&mut self, stranded: &mut Vec<ClientId>) {
        for (id, c) in &self.s.clients {
            let here = self.s.aps.contains_key(&c.ap);
            let rssi = c.rssi_of(&c.ap).filter(|_| here);
            if rssi.is_some_and(|r| r >= self.p.min_rssi_dbm) {
                continue;
            }
            let mean = self.mean();
            let options = self.audible(id);
            let with_room = options.iter().find(|(ap, _)| {
                *ap != c.ap && self.fits(self.util[*ap] + self.share(id, ap), mean)
            });
            let choice = with_room.or(options.iter().find(|(ap, _)| *ap != c.ap));
            match choice {
                Some((ap, r)) if rssi.is_none_or(|cur| *r > cur) => {
                    self.apply(id, ap, MoveReason::Rescue)
                }
                _ => stranded.push(id.clone()),
            }
        }
    }

    fn reverts(&mut self) {
        let s = self.s;
        let candidates: Vec<(&'a str, &'a str)> = self
            .h
            .revertible(s.now, self.p, |c| s.clients.get(c).map(|c| c.ap.as_str()))
            .filter(|(c, _)| !self.moved.contains(c.as_str()))
            .map(|(c, r)| (c.as_str(), r.from.as_str()))
            .collect();
        for (client, back) in candidates {
            if self.limited() >= self.p.max_moves_per_round {
                return;
            }
            let to = self.ap_of[client];
            let mean = self.mean();
            if !s.aps.contains_key(back) || !self.overloaded(self.util[to], mean) {
                continue;
            }
            let heard = s.clients[client]
                .rssi_of(back)
                .is_some_and(|r| r >= self.p.min_rssi_dbm);
            let u_back = self.util[back] + self.share(client, back);
            let u_to = self.util[to] - self.share(client, to);
            if heard && self.fits(u_back, mean) && u_back <= u_to + EPS {
                self.apply(client, back, MoveReason::Revert);
            }
        }
    }

    /// Moves so far that count against `max_moves_per_round` (reverts and balancing).
    fn limited(&self) -> usize {
        self.moves
            .iter()
            .filter(|m| m.reason == MoveReason::Revert || m.reason == MoveReason::Balance)
            .count()
    }

    fn roams(&mut self) {
        let s = self.s;
        for id in s.clients.keys() {
            let cur = self.ap_of[id.as_str()];
            if self.moved.contains(id.as_str()) {
                continue;
            }
            let Some(r_cur) = s.clients[id].rssi_of(cur) else {
                continue;
            };
            let mean = self.mean();
            let target = self.audible(id).into_iter().find(|(ap, r)| {
                *ap != cur
                    && *r >= r_cur + self.p.roam_margin_db
                    && !self.h.is_ping_pong(id, ap, s.now, self.p)
                    && !self.overloaded(self.util[*ap] + self.share(id, ap), mean)
            });
            if let Some((ap, _)) = target {
                self.apply(id, ap, MoveReason::Roam);
            }
        }
    }

    fn balance(&mut self) {
        let (s, p) = (self.s, self.p);
        while self.limited() < p.max_moves_per_round {
            let mean = self.mean();
            let mut best: Option<(f64, &'a str, &'a str)> = None;
            for (src, &u_s) in &self.util {
                if !self.overloaded(u_s, mean) {
                    continue;
                }
                for (id, c) in &s.clients {
                    if self.ap_of[id.as_str()] != src
                        || self.moved.contains(id.as_str())
                        || self.h.in_dwell(id, s.now, p)
                    {
                        continue;
                    }
                    let Some(r_cur) = c.rssi_of(src) else {
                        continue;
                    };
                    let u_s2 = u_s - self.share(id, src);
                    for (to, r) in self.audible(id) {
                        let cost = (r_cur - r).max(0.0);
                        if to == src
                            || cost > p.max_signal_drop_db
                            || self.h.is_ping_pong(id, to, s.now, p)
                        {
                            continue;
                        }
                        let u_t = self.util[to];
                        let u_t2 = u_t + self.share(id, to);
                        if !self.fits(u_t2, mean) || u_t2 > u_s2 + EPS {
                            continue;
                        }
                        let gain = u_s * u_s + u_t * u_t - u_s2 * u_s2 - u_t2 * u_t2;
                        if gain < p.min_gain {
                            continue;
                        }
                        let score = gain / (cost + p.signal_cost_floor_db);
                        if best.is_none_or(|(b, _, _)| score > b) {
                            best = Some((score, id.as_str(), to));
                        }
                    }
                }
            }
            match best {
                Some((_, client, to)) => self.apply(client, to, MoveReason::Balance),
                None => return,
            }
        }
    }
}

impl<'a> Work<'a> {
    /// Load prices for the placement so far (see [`super::prices`]), per AP name.
    fn prices(&self) -> BTreeMap<&'a str, f64> {
        let s = self.s;
        let names: Vec<&'a str> = s.aps.keys().map(String::as_str).collect();
        let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, a)| (*a, i)).collect();
        let options: Vec<Options> = s
            .clients
            .keys()
            .map(|c| {
                let mut o: Options = self
                    .audible(c)
                    .into_iter()
                    .map(|(a, r)| (index[a], r, self.share(c, a)))
                    .collect();
                let cur = self.ap_of[c.as_str()];
                if let (Some(&i), Some(r)) = (index.get(cur), s.clients[c].rssi_of(cur))
                    && !o.iter().any(|x| x.0 == i)
                {
                    o.push((i, r, self.share(c, cur)));
                }
                o
            })
            .collect();
        let total: f64 = self.util.values().sum();
        let q = total * total / (names.len() as f64 * self.p.target_fairness);
        let p = prices::solve(&options, names.len(), q, 600, 40.0);
        names.into_iter().zip(p.per_ap).collect()
    }

    /// Priced balancing: moves that gain at least `price_margin_db` of priced signal,
    /// best first, while they keep the target clear of `high_util` and either lower the
    /// imbalance or keep Jain's index at or above `target_fairness`.
    fn priced(&mut self) {
        let (s, p) = (self.s, self.p);
        let price = self.prices();
        // Moves that count against the limit: the reverts so far, and every priced move
        // that does not follow the client.
        let mut made = self.limited();
        loop {
            let limited = made >= p.max_moves_per_round;
            let mean = self.mean();
            let sq: f64 = self.util.values().map(|u| u * u).sum();
            let n = self.util.len() as f64;
            let total: f64 = self.util.values().sum();
            let mut best: Option<(f64, &'a str, &'a str, bool)> = None;
            for (id, c) in &s.clients {
                let src = self.ap_of[id.as_str()];
                if self.moved.contains(id.as_str()) || !s.aps.contains_key(src) {
                    continue;
                }
                let Some(r_cur) = c.rssi_of(src) else {
                    continue;
                };
                let dwell = self.h.in_dwell(id, s.now, p);
                let v_cur = r_cur - price[src] * self.share(id, src);
                let (u_s, s_s) = (self.util[src], self.share(id, src));
                for (to, r) in self.audible(id) {
                    if to == src
                        || r_cur - r > p.max_signal_drop_db
                        || self.h.is_ping_pong(id, to, s.now, p)
                    {
                        continue;
                    }
                    // A move to an AP `roam_margin_db` stronger follows the client: it is
                    // held back by neither the dwell time nor the limit per round.
                    let follows = r >= r_cur + p.roam_margin_db;
                    let gain = r - price[to] * self.share(id, to) - v_cur;
                    if gain < p.price_margin_db
                        || best.is_some_and(|b| gain <= b.0)
                        || (!follows && (dwell || limited))
                    {
                        continue;
                    }
                    let (u_t, s_t) = (self.util[to], self.share(id, to));
                    let u_t2 = u_t + s_t;
                    if u_t2 > p.high_util - p.hysteresis + EPS && u_t2 > mean + EPS {
                        continue;
                    }
                    let sq2 = sq - u_s * u_s - u_t * u_t + (u_s - s_s).powi(2) + u_t2 * u_t2;
                    let total2 = total - s_s + s_t;
                    let jain2 = if sq2 > 0.0 {
                        total2 * total2 / (n * sq2)
                    } else {
                        1.0
                    };
                    if sq2 > sq + EPS && jain2 < p.target_fairness {
                        continue;
                    }
                    best = Some((gain, id.as_str(), to, follows));
                }
            }
            match best {
                Some((_, client, to, follows)) => {
                    made += usize::from(!follows);
                    let c = &s.clients[client];
                    let from = self.ap_of[client];
                    let better = c.rssi_of(to) >= c.rssi_of(from);
                    self.apply(
                        client,
                        to,
                        if better {
                            MoveReason::Roam
                        } else {
                            MoveReason::Balance
                        },
                    );
                }
                None => return,
            }
        }
    }

    /// Exchanges (only when `exchange_gain_db` > 0): a client whose strongest AP hears it
    /// `roam_margin_db` better than its own, but which that AP cannot take without
    /// overload (so it did not roam), goes there if one of that AP's clients can make
    /// room by moving elsewhere at a smaller signal cost: the net signal gain must be at
    /// least `exchange_gain_db`, the strongest AP may not end overloaded, and the
    /// room-maker's target must fit with the hysteresis band.
    /// Balancing leaves the clients that were cheapest to move *at that moment* on far
    /// APs; as clients walk, this trades them back. The room-maker's move counts as a
    /// balancing move (against `max_moves_per_round`), the returning client's as a roam.
    fn exchanges(&mut self) {
        let (s, p) = (self.s, self.p);
        while self.limited() < p.max_moves_per_round {
            // (net gain, returning client, its AP, room-maker, its target)
            let mut best: Option<(f64, &'a str, &'a str, &'a str, &'a str)> = None;
            for (c, cl) in &s.clients {
                let a = self.ap_of[c.as_str()];
                if self.moved.contains(c.as_str()) {
                    continue;
                }
                let Some(r_a) = cl.rssi_of(a) else { continue };
                let Some(&(b, r_b)) = self.audible(c).first() else {
                    continue;
                };
                let gain_c = r_b - r_a;
                if b == a || gain_c < p.roam_margin_db || self.h.is_ping_pong(c, b, s.now, p) {
                    continue;
                }
                for (d, dl) in &s.clients {
                    if self.ap_of[d.as_str()] != b
                        || self.moved.contains(d.as_str())
                        || self.h.in_dwell(d, s.now, p)
                    {
                        continue;
                    }
                    let Some(r_db) = dl.rssi_of(b) else { continue };
                    for (t, r_dt) in self.audible(d) {
                        let cost_d = (r_db - r_dt).max(0.0);
                        let net = gain_c - cost_d;
                        if t == b
                            || cost_d > p.max_signal_drop_db
                            || net < p.exchange_gain_db
                            || best.is_some_and(|x| net <= x.0)
                            || self.h.is_ping_pong(d, t, s.now, p)
                        {
                            continue;
                        }
                        let mut util = self.util.clone();
                        *util.get_mut(a).expect("AP") -= self.share(c, a);
                        *util.get_mut(b).expect("AP") += self.share(c, b) - self.share(d, b);
                        *util.get_mut(t).expect("AP") += self.share(d, t);
                        let m2 = mean(util.values().copied());
                        if self.overloaded(util[b], m2) || !self.fits(util[t], m2) {
                            continue;
                        }
                        best = Some((net, c.as_str(), b, d.as_str(), t));
                    }
                }
            }
            match best {
                Some((_, c, b, d, t)) => {
                    self.apply(d, t, MoveReason::Balance);
                    self.apply(c, b, MoveReason::Roam);
                }
                None => return,
            }
        }
    }
}

impl<'a> Work<'a> {
    /// The load limits of the target placement: the sum of squared utilisations of Jain's index `placement_fairness`, and `high_util`
    /// (or the mean, when every AP is above it); moves that lower the cost may not take
    /// the load past the stricter entry limits (the cap less `hysteresis`, Jain's index
    /// halfway from the target to 1).
    fn limits(&self) -> Limits {
        let p = self.p;
        let n = self.util.len() as f64;
        let total: f64 = self.util.values().sum();
        let sum_sq = |jain: f64| total * total / (n * jain);
        let cap = p.high_util.max(total / n);
        Limits {
            sum_sq: sum_sq(p.placement_fairness),
            cap,
            entry_sum_sq: sum_sq((1.0 + p.placement_fairness) / 2.0),
            entry_cap: cap - p.hysteresis,
        }
    }

    /// Target placement: the placement that loses the least signal within the load
    /// limits ([`placement`]), from each client's options: its AP, and the APs that hear
    /// it at `min_rssi_dbm` or better, cost it at most `max_signal_drop_db`, are not the
    /// AP it left within the ping-pong window and, while it dwells, hear it
    /// `roam_margin_db` better. A client's cost on an AP is the signal it loses there
    /// against its strongest AP, plus `switch_cost_db` on any AP but its own. Then the
    /// moves toward it: while a limit is exceeded, the one that lowers the imbalance most
    /// per dB lost, else the largest signal gain; each only if its AP stays within the
    /// cap (or less loaded than the client's) and the imbalance within its limit (or
    /// lower). A move to an AP `roam_margin_db` stronger follows the client and is not
    /// counted against `max_moves_per_round`; the others are.
    fn targeted(&mut self) {
        let (s, p) = (self.s, self.p);
        if s.aps.is_empty() {
            return;
        }
        let names: Vec<&'a str> = s.aps.keys().map(String::as_str).collect();
        let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, a)| (*a, i)).collect();
        let mut ids: Vec<&'a str> = Vec::new();
        let mut problem: Vec<Vec<Choice>> = Vec::new();
        for (id, c) in &s.clients {
            let cur = self.ap_of[id.as_str()];
            let Some(&at) = index.get(cur) else {
                continue; // its AP is gone and nobody could take it: it counts nowhere
            };
            let share = self.share(id, cur);
            let Some(r_cur) = c.rssi_of(cur) else {
                problem.push(vec![Choice {
                    ap: at,
                    cost_db: 0.0,
                    share,
                }]);
                ids.push(id);
                continue;
            };
            let audible = self.audible(id);
            let best = audible.first().map_or(r_cur, |x| x.1).max(r_cur);
            let mut choices = vec![Choice {
                ap: at,
                cost_db: best - r_cur,
                share,
            }];
            let dwell = self.h.in_dwell(id, s.now, p);
            if !self.moved.contains(id.as_str()) {
                for (to, r) in audible {
                    if to == cur
                        || r_cur - r > p.max_signal_drop_db
                        || self.h.is_ping_pong(id, to, s.now, p)
                        || (dwell && r < r_cur + p.roam_margin_db)
                    {
                        continue;
                    }
                    choices.push(Choice {
                        ap: index[to],
                        cost_db: best - r + p.switch_cost_db,
                        share: self.share(id, to),
                    });
                }
            }
            ids.push(id);
            problem.push(choices);
        }
        let limits = self.limits();
        let target = placement::place(&problem, names.len(), &limits);
        let mut pending: Vec<(&'a str, &'a str)> = ids
            .iter()
            .zip(&problem)
            .zip(target)
            .map(|((id, c), k)| (*id, names[c[k].ap]))
            .filter(|(id, to)| self.ap_of[id] != *to)
            .collect();
        let mut made = self.limited();
        loop {
            let sq: f64 = self.util.values().map(|u| u * u).sum();
            let over =
                sq > limits.sum_sq + EPS || self.util.values().any(|&u| u > limits.cap + EPS);
            let mut best: Option<(f64, usize, bool)> = None;
            for (k, &(id, to)) in pending.iter().enumerate() {
                let from = self.ap_of[id];
                let c = &s.clients[id];
                let (Some(r_from), Some(r_to)) = (c.rssi_of(from), c.rssi_of(to)) else {
                    continue;
                };
                let follows = r_to >= r_from + p.roam_margin_db;
                if !follows && made >= p.max_moves_per_round {
                    continue;
                }
                let (ua, sa) = (self.util[from], self.share(id, from));
                let (ub, sb) = (self.util[to], self.share(id, to));
                let ub2 = ub + sb;
                let sq2 = sq - ua * ua - ub * ub + (ua - sa).powi(2) + ub2 * ub2;
                if (ub2 > limits.cap + EPS && ub2 > ua + EPS)
                    || (sq2 > limits.sum_sq + EPS && sq2 > sq + EPS)
                {
                    continue;
                }
                let priority = if over {
                    (sq - sq2) / ((r_from - r_to).max(0.0) + 0.01)
                } else {
                    r_to - r_from
                };
                if best.is_none_or(|b| priority > b.0) {
                    best = Some((priority, k, follows));
                }
            }
            let Some((_, k, follows)) = best else { return };
            let (id, to) = pending.swap_remove(k);
            made += usize::from(!follows);
            let from = self.ap_of[id];
            let c = &s.clients[id];
            let better = c.rssi_of(to) > c.rssi_of(from);
            self.apply(
                id,
                to,
                if better {
                    MoveReason::Roam
                } else {
                    MoveReason::Balance
                },
            );
        }
    }
}

/// The snapshot as the balancer reads it: with `trend_gain` > 0, every AP's signal moved
/// along the client's trend by `trend_gain` times its lag, so that a client walking away
/// from its AP is seen there weaker, and one walking toward another AP stronger, before
/// the averages catch up.
fn ahead(snapshot: &Snapshot, params: &Params) -> Option<Snapshot> {
    if params.trend_gain == 0.0 {
        return None;
    }
    let mut s = snapshot.clone();
    for c in s.clients.values_mut() {
        for (ap, r) in c.rssi.iter_mut() {
            *r += params.trend_gain * c.lag_db.get(ap).copied().unwrap_or(0.0);
        }
    }
    Some(s)
}

/// The moves of one round.
pub fn decide(snapshot: &Snapshot, history: &History, params: &Params) -> Decision {
    let read = ahead(snapshot, params);
    let snapshot = read.as_ref().unwrap_or(snapshot);
    let util = utilisation(snapshot, params);
    let m = mean(util.values().copied());
    let mut w = Work {
        s: snapshot,
        p: params,
        h: history,
        util: util.clone(),
        ap_of: snapshot
            .clients
            .iter()
            .map(|(id, c)| (id.as_str(), c.ap.as_str()))
            .collect(),
        moved: BTreeSet::new(),
        moves: Vec::new(),
    };
    let overloaded = util
        .iter()
        .filter(|(_, u)| w.overloaded(**u, m))
        .map(|(a, _)| a.clone())
        .collect();
    let mut stranded = Vec::new();
    w.rescues(&mut stranded);
    w.reverts();
    if params.target_fairness > 0.0 {
        w.priced();
    } else if params.placement_fairness > 0.0 {
        w.targeted();
    } else {
        w.roams();
        w.balance();
    }
    if params.exchange_gain_db > 0.0 {
        w.exchanges();
    }
    Decision {
        fairness_before: jain(util.values().copied()),
        fairness_after: jain(w.util.values().copied()),
        utilisation_after: w.util,
        utilisation_before: util,
        overloaded,
        moves: w.moves,
        stranded,
    }
}
