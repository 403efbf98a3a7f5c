//! What a handover did to the traffic, computed from what was sent and received: packets
//! lost, the longest gap between arrivals, the TCP stall, and the received rate over
//! time for the plot. Pure functions over timestamps (nanoseconds on one clock), tested
//! here.

/// One received UDP datagram of the sequenced stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    pub seq: u64,
    /// Kernel receive time (ns).
    pub at: u64,
}

/// The stream as the sender saw it: the send time of every sequence number.
#[derive(Clone, Debug, Default)]
pub struct Sent {
    pub at: Vec<u64>,
}

/// What happened to the stream in a time window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Datagrams sent in the window.
    pub sent: u64,
    /// Of those, never received.
    pub lost: u64,
    /// Of those, received more than once.
    pub duplicated: u64,
    /// Longest time between two consecutive arrivals in the window (ns), net of the
    /// sender's own pauses (see [`window`]).
    pub longest_gap: u64,
    /// Arrival time at the start of the longest gap (ns).
    pub gap_start: u64,
}

/// Loss and gaps of the datagrams sent in `[from, to)`. Arrivals must be sorted by time.
///
/// The gap between two arrivals counts in full when datagrams sent between them were
/// lost; when the second is the next one the sender sent, the time the sender itself
/// paused beyond its `period` (a busy machine deschedules it) is taken off, so the gap
/// measures the path, not the sender.
pub fn window(sent: &Sent, arrivals: &[Arrival], from: u64, to: u64, period: u64) -> WindowStats {
    let mut seen = vec![0u8; sent.at.len()];
    for a in arrivals {
        if let Some(s) = seen.get_mut(a.seq as usize) {
            *s = s.saturating_add(1);
        }
    }
    let mut w = WindowStats::default();
    for (seq, t) in sent.at.iter().enumerate() {
        if (from..to).contains(t) {
            w.sent += 1;
            match seen[seq] {
                0 => w.lost += 1,
                1 => {}
                _ => w.duplicated += 1,
            }
        }
    }
    let send_time = |seq: u64| sent.at.get(seq as usize).copied().unwrap_or(0);
    let mut prev: Option<Arrival> = None;
    for a in arrivals {
        if a.at < from || a.at >= to {
            // A gap that straddles the window's start still counts from the last arrival
            // before it.
            if a.at < from {
                prev = Some(*a);
            }
            continue;
        }
        if let Some(p) = prev {
            let mut g = a.at.saturating_sub(p.at);
            if a.seq == p.seq + 1 {
                let sender_pause = send_time(a.seq)
                    .saturating_sub(send_time(p.seq))
                    .saturating_sub(period);
                g = g.saturating_sub(sender_pause);
            }
            if g > w.longest_gap {
                w.longest_gap = g;
                w.gap_start = p.at;
            }
        }
        prev = Some(*a);
    }
    w
}

/// The longest time between two progress events (e.g. TCP reads) in `[from, to)`.
pub fn longest_pause(events: &[u64], from: u64, to: u64) -> u64 {
    let mut prev: Option<u64> = None;
    let mut longest = 0;
    for &t in events {
        if t >= to {
            break;
        }
        if t >= from
            && let Some(p) = prev
        {
            longest = longest.max(t - p);
        }
        prev = Some(t);
    }
    longest
}

/// Arrivals per second in consecutive `bin` wide bins from `start` to `end`: (bin start
/// in seconds after `start`, packets/s).
pub fn rate_series(arrivals: &[Arrival], start: u64, end: u64, bin: u64) -> Vec<(f64, f64)> {
    let bins = end.saturating_sub(start).div_ceil(bin) as usize;
    let mut counts = vec![0u64; bins];
    for a in arrivals {
        if a.at >= start && a.at < end {
            counts[((a.at - start) / bin) as usize] += 1;
        }
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| ((i as u64 * bin) as f64 / 1e9, *c as f64 * 1e9 / bin as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// 100 datagrams 1 ms apart, each arriving 0.1 ms after it was sent, except `lost`.
    fn stream(lost: &[u64]) -> (Sent, Vec<Arrival>) {
        let sent = Sent {
            at: (0..100).map(|i| i * MS).collect(),
        };
        let arrivals = (0..100)
            .filter(|i| !lost.contains(i))
            .map(|i| Arrival {
                seq: i,
                at: i * MS + MS / 10,
            })
            .collect();
        (sent, arrivals)
    }

    #[test]
    fn clean_stream_has_no_loss_and_period_gaps() {
        let (s, a) = stream(&[]);
        let w = window(&s, &a, 0, 100 * MS, MS);
        assert_eq!(
            (w.sent, w.lost, w.duplicated, w.longest_gap),
            (100, 0, 0, MS)
        );
    }

    #[test]
    fn a_sender_pause_without_loss_is_not_a_gap() {
        let (mut s, mut a) = stream(&[]);
        // The sender sleeps 20 ms before datagram 50 and sends 50.. 20 ms late.
        for (t, arrival) in s.at.iter_mut().zip(a.iter_mut()).skip(50) {
            *t += 20 * MS;
            arrival.at += 20 * MS;
        }
        assert_eq!(window(&s, &a, 0, 200 * MS, MS).longest_gap, MS);
        // Without the correction it would be 21 ms; with loss it counts in full.
        a.remove(50);
        assert_eq!(window(&s, &a, 0, 200 * MS, MS).longest_gap, 22 * MS);
    }

    #[test]
    fn a_hole_is_loss_and_a_gap_in_its_window_only() {
        let (s, a) = stream(&[40, 41, 42]);
        let w = window(&s, &a, 30 * MS, 60 * MS, MS);
        assert_eq!((w.sent, w.lost), (30, 3));
        assert_eq!(w.longest_gap, 4 * MS);
        assert_eq!(w.gap_start, 39 * MS + MS / 10);
        let w = window(&s, &a, 60 * MS, 100 * MS, MS);
        assert_eq!((w.lost, w.longest_gap), (0, MS));
        // A window starting inside the hole measures from the last arrival before it.
        let w = window(&s, &a, 41 * MS, 50 * MS, MS);
        assert_eq!(w.longest_gap, 4 * MS);
    }

    #[test]
    fn duplicates_are_counted() {
        let (s, mut a) = stream(&[]);
        a.push(Arrival {
            seq: 5,
            at: 99 * MS + MS / 2,
        });
        a.sort_by_key(|x| x.at);
        assert_eq!(window(&s, &a, 0, 100 * MS, MS).duplicated, 1);
    }

    #[test]
    fn pauses_and_rates() {
        assert_eq!(longest_pause(&[0, 10, 15, 40, 41], 12, 100), 25);
        assert_eq!(longest_pause(&[0, 10, 15, 40, 41], 0, 20), 10);
        let (_, a) = stream(&[]);
        let r = rate_series(&a, 0, 100 * MS, 10 * MS);
        assert_eq!(r.len(), 10);
        assert_eq!(r[0], (0.0, 1000.0));
        assert_eq!(r[9].0, 0.09);
    }
}
