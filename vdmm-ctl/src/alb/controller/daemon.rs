//! `alb run`: the balancer on its own. Every `round_interval_s` (read from the state file
//! each time, so `alb params --set` takes effect at the next interval) it reads the data
//! planes and, while the balancer is enabled (`alb enable`), runs a live round
//! ([`super::live::round`]): decide with the dwell time, hysteresis and ping-pong guard,
//! make each move as a vAP handover, record the moves made. Disabled, it only reads the
//! data planes, so placement and traffic are current when it is enabled again. A round
//! that fails (an AP host's data plane unreadable) changes nothing; it is counted and
//! the loop goes on. Every interval is counted: `loop_rounds`, `loop_idle`,
//! `loop_errors`.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use crate::{cluster::Cluster, error::Result};

use super::{
    file::StateFile,
    live::{self, Round},
};

/// What one interval of the loop did.
#[derive(Debug)]
pub enum Interval {
    /// The balancer is disabled: the data planes were read, no round ran.
    Idle,
    /// A round ran (its moves may be none).
    Round(Round),
    /// The interval failed (nothing changed): why.
    Error(String),
}

/// The loop's totals when it stops.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub rounds: u64,
    pub rounds_with_moves: u64,
    pub moves_done: u64,
    pub moves_failed: u64,
    pub idle: u64,
    pub errors: u64,
}

/// How the loop runs.
pub struct Options {
    /// How long each source AP host forwards to the target before its vAP is removed.
    pub grace: Duration,
    /// Stop after this many intervals (none: until `stop`).
    pub intervals: Option<u64>,
}

/// One interval at time `t`: read the data planes and, when enabled, run a round.
fn interval(file: &StateFile, cluster: &Cluster, grace: Duration, now: fn() -> f64) -> Interval {
    let t = now();
    let r = file.update(|s| {
        if !s.enabled {
            live::collect(s, cluster, t)?;
            s.counters.loop_idle += 1;
            return Ok(None);
        }
        let r = live::round(s, cluster, grace, t, now)?;
        s.counters.loop_rounds += 1;
        Ok(Some(r))
    });
    match r {
        Ok(Some(r)) => Interval::Round(r),
        Ok(None) => Interval::Idle,
        Err(e) => {
            let _ = file.update(|s| {
                s.counters.loop_errors += 1;
                Ok(())
            });
            Interval::Error(e.to_string())
        }
    }
}

/// Runs the loop until `stop` is set (or `opts.intervals` have run), calling `report`
/// after every interval; `now` gives seconds since the epoch.
pub fn run(
    file: &StateFile,
    cluster: &Cluster,
    opts: &Options,
    stop: &AtomicBool,
    now: fn() -> f64,
    mut report: impl FnMut(&Interval),
) -> Result<Totals> {
    let mut totals = Totals::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let i = interval(file, cluster, opts.grace, now);
        match &i {
            Interval::Idle => totals.idle += 1,
            Interval::Error(_) => totals.errors += 1,
            Interval::Round(r) => {
                totals.rounds += 1;
                let (done, failed) = (r.executed.done.len(), r.executed.failed.len());
                if done + failed > 0 {
                    totals.rounds_with_moves += 1;
                }
                totals.moves_done += done as u64;
                totals.moves_failed += failed as u64;
            }
        }
        report(&i);
        n += 1;
        if opts.intervals.is_some_and(|max| n >= max) {
            break;
        }
        // The interval is read again each time: `alb params --set round_interval_s=...`.
        let every = file.read()?.params.round_interval_s;
        let next = start + Duration::from_secs_f64(every);
        while !stop.load(Ordering::Relaxed) && Instant::now() < next {
            thread::sleep((next - Instant::now()).min(Duration::from_millis(50)));
        }
    }
    Ok(totals)
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// A flag set by SIGTERM or SIGINT (the loop finishes its interval, then stops).
pub fn stop_on_signals() -> &'static AtomicBool {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
    &STOP
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Cluster;

    fn fixed() -> f64 {
        1000.0
    }

    #[test]
    fn disabled_reads_enabled_rounds_and_errors_are_counted() {
        let dir = std::env::temp_dir().join(format!("vdmm-alb-loop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = StateFile::new(dir.join("alb.json"));
        file.update(|s| {
            s.params.round_interval_s = 0.01;
            Ok(())
        })
        .unwrap();
        // No AP host in the cluster: reading finds nothing, rounds decide nothing.
        let cluster: Cluster = toml::from_str("").unwrap();
        let opts = Options {
            grace: Duration::from_millis(1),
            intervals: Some(3),
        };
        let stop = AtomicBool::new(false);
        let mut seen = vec![];
        let t = run(&file, &cluster, &opts, &stop, fixed, |i| {
            seen.push(matches!(i, Interval::Idle))
        })
        .unwrap();
        assert_eq!(seen, vec![true; 3]);
        assert_eq!((t.idle, t.rounds), (3, 0));
        file.update(|s| {
            s.enabled = true;
            s.add_ap("ap1", 10.0).map_err(crate::error::Error::Alb)
        })
        .unwrap();
        let t = run(&file, &cluster, &opts, &stop, fixed, |_| {}).unwrap();
        assert_eq!((t.rounds, t.rounds_with_moves, t.errors), (3, 0, 0));
        let s = file.read().unwrap();
        assert_eq!(
            (
                s.counters.loop_idle,
                s.counters.loop_rounds,
                s.counters.decisions
            ),
            (3, 3, 3)
        );
        // An AP host whose data plane cannot be read: counted, nothing else changes.
        let broken: Cluster = toml::from_str(
            "[[ap_host]]\nname = \"ap1\"\nlocator = \"192.0.2.11\"\npin_dir = \"/nonexistent/vdmm-alb-loop\"\n",
        )
        .unwrap();
        let mut errors = vec![];
        let t = run(&file, &broken, &opts, &stop, fixed, |i| {
            if let Interval::Error(e) = i {
                errors.push(e.clone());
            }
        })
        .unwrap();
        assert_eq!((t.errors, t.rounds), (3, 0));
        assert!(errors[0].starts_with("AP host ap1: "), "{errors:?}");
        let s2 = file.read().unwrap();
        assert_eq!((s2.counters.loop_errors, s2.counters.loop_rounds), (3, 3));
        // Stopped before the first interval: nothing runs.
        stop.store(true, Ordering::Relaxed);
        let t = run(&file, &cluster, &opts, &stop, fixed, |_| {}).unwrap();
        assert_eq!(t, Totals::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
