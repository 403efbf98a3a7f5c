//! Target placement: where every client should be so that the clients lose the least
//! signal while the APs' loads stay within limits (a sum of squared utilisations, i.e.
//! Jain's index, and a cap per AP). Clients of different loads into APs with limits is a
//! generalised assignment problem; it is solved greedily, as the simulator's bound does
//! ([`crate::alb::sim::bound`]): every client starts on its cheapest AP, then, while a
//! limit is exceeded, the move that lowers the sum of squared utilisations most per dB
//! of cost is made; last, single moves that lower the cost within the (stricter) entry
//! limits. [`crate::alb::decide`] turns the difference from the current placement into
//! moves, a few per round.

/// Slack in utilisation comparisons (as in [`crate::alb::decide`]).
const EPS: f64 = 1e-9;

/// Added to the cost of a move in the greedy's ranking, so that moves that cost nothing
/// are ranked by how much they help.
const COST_FLOOR_DB: f64 = 0.01;

/// One place a client may go.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    /// AP index.
    pub ap: usize,
    /// The cost of the client being there, dB (signal lost against its best AP, plus the
    /// cost of moving it).
    pub cost_db: f64,
    /// The utilisation the client adds to that AP.
    pub share: f64,
}

/// The load limits of a placement. A placement is corrected while it exceeds `sum_sq`
/// or `cap`; a move that lowers the cost may not take the load above `entry_sum_sq` or
/// `entry_cap` (stricter limits, so that the next round does not have to undo it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub sum_sq: f64,
    pub cap: f64,
    pub entry_sum_sq: f64,
    pub entry_cap: f64,
}

fn sum_sq(u: &[f64]) -> f64 {
    u.iter().map(|x| x * x).sum()
}

/// The target placement: for every client, the index of its choice. Every client needs
/// at least one choice; `aps` is the number of APs.
pub fn place(clients: &[Vec<Choice>], aps: usize, limits: &Limits) -> Vec<usize> {
    let cheapest = |c: &[Choice]| {
        (0..c.len())
            .min_by(|&x, &y| c[x].cost_db.total_cmp(&c[y].cost_db))
            .expect("every client has a choice")
    };
    let mut at: Vec<usize> = clients.iter().map(|c| cheapest(c)).collect();
    let mut u = vec![0.0; aps];
    for (c, &k) in clients.iter().zip(&at) {
        u[c[k].ap] += c[k].share;
    }
    correct(clients, &mut at, &mut u, limits);
    improve(clients, &mut at, &mut u, limits);
    at
}

/// While a limit is exceeded, the move that lowers the sum of squared utilisations most
/// per dB of added cost (never into an AP that would end above the cap unless the
/// client's AP is above it too). Stops when no move lowers the sum.
fn correct(clients: &[Vec<Choice>], at: &mut [usize], u: &mut [f64], l: &Limits) {
    while sum_sq(u) > l.sum_sq + EPS || u.iter().any(|&x| x > l.cap + EPS) {
        let mut best: Option<(f64, usize, usize)> = None;
        for (i, c) in clients.iter().enumerate() {
            let from = c[at[i]];
            for (k, to) in c.iter().enumerate() {
                if to.ap == from.ap {
                    continue;
                }
                let (ua, ub) = (u[from.ap], u[to.ap]);
                let ub2 = ub + to.share;
                let gain = ua * ua + ub * ub - (ua - from.share).powi(2) - ub2 * ub2;
                if gain <= EPS || (ub2 > l.cap + EPS && ua <= l.cap + EPS) {
                    continue;
                }
                let score = gain / ((to.cost_db - from.cost_db).max(0.0) + COST_FLOOR_DB);
                if best.is_none_or(|b| score > b.0) {
                    best = Some((score, i, k));
                }
            }
        }
        let Some((_, i, k)) = best else { return };
        shift(clients, at, u, i, k);
    }
}

/// Moves that lower the cost, the largest drop first, while the target AP stays within
/// the entry cap and the sum of squares within its entry limit (or does not grow).
fn improve(clients: &[Vec<Choice>], at: &mut [usize], u: &mut [f64], l: &Limits) {
    loop {
        let sq = sum_sq(u);
        let mut best: Option<(f64, usize, usize)> = None;
        for (i, c) in clients.iter().enumerate() {
            let from = c[at[i]];
            for (k, to) in c.iter().enumerate() {
                let drop = from.cost_db - to.cost_db;
                if to.ap == from.ap || drop <= EPS || best.is_some_and(|b| drop <= b.0) {
                    continue;
                }
                let (ua, ub) = (u[from.ap], u[to.ap]);
                let ub2 = ub + to.share;
                let sq2 = sq - ua * ua - ub * ub + (ua - from.share).powi(2) + ub2 * ub2;
                if ub2 > l.entry_cap + EPS || (sq2 > l.entry_sum_sq + EPS && sq2 > sq + EPS) {
                    continue;
                }
                best = Some((drop, i, k));
            }
        }
        let Some((_, i, k)) = best else { return };
        shift(clients, at, u, i, k);
    }
}

fn shift(clients: &[Vec<Choice>], at: &mut [usize], u: &mut [f64], i: usize, k: usize) {
    let (from, to) = (clients[i][at[i]], clients[i][k]);
    u[from.ap] -= from.share;
    u[to.ap] += to.share;
    at[i] = k;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(ap: usize, cost_db: f64, share: f64) -> Choice {
        Choice { ap, cost_db, share }
    }

    fn loose() -> Limits {
        Limits {
            sum_sq: f64::INFINITY,
            cap: f64::INFINITY,
            entry_sum_sq: f64::INFINITY,
            entry_cap: f64::INFINITY,
        }
    }

    #[test]
    fn without_limits_every_client_takes_its_cheapest_ap() {
        let c = vec![
            vec![ch(0, 0.0, 0.5), ch(1, 3.0, 0.5)],
            vec![ch(0, 2.0, 0.5), ch(1, 0.0, 0.5)],
        ];
        assert_eq!(place(&c, 2, &loose()), [0, 1]);
    }

    #[test]
    fn the_cap_moves_the_clients_that_lose_least() {
        // Four clients of 0.3 on AP 0 (1.2); the cap 0.7 takes two off. Clients 1 and 3
        // lose least on AP 1.
        let c: Vec<Vec<Choice>> = [6.0, 1.0, 5.0, 2.0]
            .iter()
            .map(|&loss| vec![ch(0, 0.0, 0.3), ch(1, loss, 0.3)])
            .collect();
        let l = Limits {
            cap: 0.7,
            entry_cap: 0.65,
            ..loose()
        };
        assert_eq!(place(&c, 2, &l), [0, 1, 0, 1]);
    }

    #[test]
    fn the_sum_of_squares_spreads_the_load() {
        // Three clients of 0.4 that all prefer AP 0: sum u^2 <= 0.5 (Jain 0.96 for 1.2
        // on 3 APs) needs them on three APs: client 2 leaves first (1 dB), then client 1
        // to AP 2 (7 dB) rather than client 0 (9 dB).
        let c = vec![
            vec![ch(0, 0.0, 0.4), ch(1, 9.0, 0.4), ch(2, 9.0, 0.4)],
            vec![ch(0, 0.0, 0.4), ch(1, 8.0, 0.4), ch(2, 7.0, 0.4)],
            vec![ch(0, 0.0, 0.4), ch(1, 1.0, 0.4), ch(2, 2.0, 0.4)],
        ];
        let l = Limits {
            sum_sq: 0.5,
            entry_sum_sq: 0.5,
            ..loose()
        };
        assert_eq!(place(&c, 3, &l), [0, 2, 1]);
    }
}
