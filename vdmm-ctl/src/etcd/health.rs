//! Whether this node reaches etcd, since when, and counters of what the cluster layer did
//! (requests, lost watches, resyncs, reconnects, refused changes). Every request reports
//! its outcome here; `vdmm-ctl status` and the metrics read [`Health::report`]. While etcd
//! is unreachable, changes are refused at once ([`Health::check_writable`]) instead of
//! waiting for a timeout each, and the data plane keeps its last state.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;

use super::error::{ClusterError, Result};

/// Shared by every task of one node's cluster layer.
#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<State>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct State {
    /// `Some` while unreachable: since when, the last error.
    down: Option<(Instant, u64, String)>,
    /// etcd revision of the newest state this node has applied.
    applied_revision: i64,
}

/// Monotonic counters, one per outcome.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests_ok: AtomicU64,
    pub requests_failed: AtomicU64,
    pub watch_lost: AtomicU64,
    pub resyncs: AtomicU64,
    pub reconnects: AtomicU64,
    pub refused_changes: AtomicU64,
    pub events_applied: AtomicU64,
}

/// What `vdmm-ctl status` prints about the cluster store.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HealthReport {
    pub reachable: bool,
    /// Seconds since the Unix epoch when etcd became unreachable.
    pub unreachable_since_unix: Option<u64>,
    pub unreachable_for_ms: Option<u64>,
    pub last_error: Option<String>,
    pub applied_revision: i64,
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub watch_lost: u64,
    pub resyncs: u64,
    pub reconnects: u64,
    pub refused_changes: u64,
    pub events_applied: u64,
}

impl Health {
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A request succeeded: etcd is reachable (again).
    pub fn ok(&self) {
        self.counters.requests_ok.fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock().unwrap();
        if let Some((since, _, _)) = s.down.take() {
            self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                down_for_ms = since.elapsed().as_millis() as u64,
                "etcd reachable again"
            );
        }
    }

    /// A request failed for want of etcd: unreachable from now (or still).
    pub fn failed(&self, e: &ClusterError) {
        self.counters
            .requests_failed
            .fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock().unwrap();
        match &mut s.down {
            Some((_, _, last)) => *last = e.to_string(),
            None => {
                tracing::warn!(error = %e, "etcd unreachable: forwarding continues with the last state, changes are refused");
                s.down = Some((Instant::now(), unix_now(), e.to_string()));
            }
        }
    }

    /// Records the outcome of a request and passes it on.
    pub fn track<T>(&self, r: Result<T>) -> Result<T> {
        match &r {
            Ok(_) => self.ok(),
            Err(e) if e.is_unavailable() => self.failed(e),
            Err(_) => {}
        }
        r
    }

    pub fn is_reachable(&self) -> bool {
        self.state.lock().unwrap().down.is_none()
    }

    /// `Err(Unreachable)` (counted as a refused change) while etcd is unreachable.
    pub fn check_writable(&self) -> Result<()> {
        let s = self.state.lock().unwrap();
        match &s.down {
            None => Ok(()),
            Some((since, _, last)) => {
                self.counters
                    .refused_changes
                    .fetch_add(1, Ordering::Relaxed);
                Err(ClusterError::Unreachable {
                    detail: format!("for {} ms; last error: {last}", since.elapsed().as_millis()),
                })
            }
        }
    }

    pub fn set_applied_revision(&self, revision: i64) {
        self.state.lock().unwrap().applied_revision = revision;
    }

    pub fn report(&self) -> HealthReport {
        let s = self.state.lock().unwrap();
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HealthReport {
            reachable: s.down.is_none(),
            unreachable_since_unix: s.down.as_ref().map(|d| d.1),
            unreachable_for_ms: s.down.as_ref().map(|d| d.0.elapsed().as_millis() as u64),
            last_error: s.down.as_ref().map(|d| d.2.clone()),
            applied_revision: s.applied_revision,
            requests_ok: get(&c.requests_ok),
            requests_failed: get(&c.requests_failed),
            watch_lost: get(&c.watch_lost),
            resyncs: get(&c.resyncs),
            reconnects: get(&c.reconnects),
            refused_changes: get(&c.refused_changes),
            events_applied: get(&c.events_applied),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> ClusterError {
        ClusterError::Etcd {
            what: "get".into(),
            detail: "connection refused".into(),
        }
    }

    #[test]
    fn unreachable_refuses_changes_until_a_request_succeeds() {
        let h = Health::default();
        h.check_writable().unwrap();
        h.failed(&down());
        let e = h.check_writable().unwrap_err().to_string();
        assert!(
            e.contains("changes are refused") && e.contains("connection refused"),
            "{e}"
        );
        let r = h.report();
        assert!(!r.reachable);
        assert_eq!(
            (r.requests_failed, r.refused_changes, r.reconnects),
            (1, 1, 0)
        );
        h.ok();
        h.check_writable().unwrap();
        let r = h.report();
        assert!(r.reachable && r.last_error.is_none());
        assert_eq!(r.reconnects, 1);
    }

    #[test]
    fn bad_requests_do_not_mark_etcd_down() {
        let h = Health::default();
        let r: Result<()> = Err(ClusterError::PoolExhausted {
            pool: "192.0.2.0/30".into(),
            used: 2,
            size: 2,
        });
        assert!(h.track(r).is_err());
        assert!(h.is_reachable());
        assert_eq!(h.report().requests_failed, 0);
    }
}
