//! Handover counters: moves started, completed, failed (by the phase that failed),
//! refused (by reason, before anything changed), and histograms of the time from the
//! command to the anchor's switch-over and to the end of the move. They live in memory
//! in the [`super::mover::Mover`] and, for `vdmm-ctl vap move` (one process per move),
//! in a small JSON state file that every move updates under a file lock and that
//! `vdmm-ctl metrics` exports ([`encode_prometheus`]).

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::Phase;
use crate::error::{Error, Result};

/// Where `vdmm-ctl vap move` keeps the counters and `vdmm-ctl metrics` reads them,
/// unless [`STATE_FILE_ENV`] names another file.
pub const DEFAULT_STATE_FILE: &str = "/run/vdmm/handover-stats.json";

/// The environment variable that overrides [`DEFAULT_STATE_FILE`].
pub const STATE_FILE_ENV: &str = "VDMM_HANDOVER_STATS";

/// The state file in use: `$VDMM_HANDOVER_STATS`, else [`DEFAULT_STATE_FILE`].
pub fn state_file() -> StatsFile {
    StatsFile::new(
        std::env::var_os(STATE_FILE_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_FILE)),
    )
}

/// The counters of [`state_file`] for the exporter (zeros while no move ran); a state
/// file that cannot be read gives a comment line instead, not a failed scrape.
pub fn render_for_metrics() -> String {
    let file = state_file();
    match file.read() {
        Ok(s) => encode_prometheus(&s),
        Err(e) => format!("# handover counters not exported: {e}\n"),
    }
}

/// Upper bounds (seconds) of the histograms' buckets.
pub const BUCKETS: [f64; 13] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Why a move was refused before it changed anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    UnknownAp,
    UnknownClient,
    AlreadyThere,
    InProgress,
    NoAnchor,
    NodeUnreadable,
    MixedStores,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::UnknownAp,
        Refusal::UnknownClient,
        Refusal::AlreadyThere,
        Refusal::InProgress,
        Refusal::NoAnchor,
        Refusal::NodeUnreadable,
        Refusal::MixedStores,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Refusal::UnknownAp => "unknown_ap",
            Refusal::UnknownClient => "unknown_client",
            Refusal::AlreadyThere => "already_there",
            Refusal::InProgress => "in_progress",
            Refusal::NoAnchor => "no_anchor",
            Refusal::NodeUnreadable => "node_unreadable",
            Refusal::MixedStores => "mixed_stores",
        }
    }
}

/// One event the counters record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    Refused(Refusal),
    Started,
    Completed {
        switch_over: Duration,
        total: Duration,
    },
    Failed(Phase),
}

/// A histogram of durations with the fixed [`BUCKETS`] (per-bucket, not cumulative).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Observations per bucket of [`BUCKETS`], then one for larger values.
    pub counts: Vec<u64>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        if self.counts.len() != BUCKETS.len() + 1 {
            self.counts.resize(BUCKETS.len() + 1, 0);
        }
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum_seconds += s;
        self.count += 1;
    }

    fn encode(&self, name: &str, help: &str, out: &mut String) {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        let mut cumulative = 0;
        for (i, le) in BUCKETS.iter().enumerate() {
            cumulative += self.counts.get(i).copied().unwrap_or(0);
            out.push_str(&format!("{name}_bucket{{le=\"{le}\"}} {cumulative}\n"));
        }
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {}\n", self.count));
        out.push_str(&format!("{name}_sum {}\n", self.sum_seconds));
        out.push_str(&format!("{name}_count {}\n", self.count));
    }
}

/// The counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HandoverStats {
    pub started: u64,
    pub completed: u64,
    /// Failed moves by [`Phase::name`]; all but `remove_source` were rolled back.
    pub failed: BTreeMap<String, u64>,
    /// Refused moves by [`Refusal::name`].
    pub refused: BTreeMap<String, u64>,
    /// Command to the anchor's switch-over, completed moves.
    pub switch_over: Histogram,
    /// Command to the source's state removed, completed moves.
    pub duration: Histogram,
}

impl HandoverStats {
    pub fn record(&mut self, e: Event) {
        match e {
            Event::Refused(r) => *self.refused.entry(r.name().into()).or_default() += 1,
            Event::Started => self.started += 1,
            Event::Completed { switch_over, total } => {
                self.completed += 1;
                self.switch_over.observe(switch_over);
                self.duration.observe(total);
            }
            Event::Failed(p) => *self.failed.entry(p.name().into()).or_default() += 1,
        }
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// The counters in the Prometheus text format 0.0.4 (every phase and reason present).
pub fn encode_prometheus(s: &HandoverStats) -> String {
    let mut out = String::new();
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        ));
    };
    counter(
        &mut out,
        "vdmm_handovers_started_total",
        "vAP moves started (after the checks that refuse a move)",
        s.started,
    );
    counter(
        &mut out,
        "vdmm_handovers_completed_total",
        "vAP moves completed (the source's state removed)",
        s.completed,
    );
    let labelled =
        |out: &mut String, name: &str, help: &str, label: &str, rows: Vec<(&str, u64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (l, v) in rows {
                out.push_str(&format!("{name}{{{label}=\"{l}\"}} {v}\n"));
            }
        };
    labelled(
        &mut out,
        "vdmm_handovers_failed_total",
        "vAP moves that failed, by the phase that failed (rolled back, except remove_source)",
        "phase",
        Phase::ALL
            .iter()
            .map(|p| (p.name(), s.failed.get(p.name()).copied().unwrap_or(0)))
            .collect(),
    );
    labelled(
        &mut out,
        "vdmm_handovers_refused_total",
        "vAP moves refused before anything changed, by reason",
        "reason",
        Refusal::ALL
            .iter()
            .map(|r| (r.name(), s.refused.get(r.name()).copied().unwrap_or(0)))
            .collect(),
    );
    s.switch_over.encode(
        "vdmm_handover_switchover_seconds",
        "Time from the move command to the anchor's switch to the target, completed moves",
        &mut out,
    );
    s.duration.encode(
        "vdmm_handover_duration_seconds",
        "Time from the move command to the source's state removed (grace period included), completed moves",
        &mut out,
    );
    out
}

/// The counters' state file (JSON), read and updated under an exclusive `flock`.
pub struct StatsFile {
    path: PathBuf,
}

impl StatsFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The counters; all zero when the file does not exist yet.
    pub fn read(&self) -> Result<HandoverStats> {
        match File::open(&self.path) {
            Ok(mut f) => {
                lock(&f, libc::LOCK_SH, &self.path)?;
                read_stats(&mut f, &self.path)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HandoverStats::default()),
            Err(e) => Err(Error::io(format!("cannot read {}", self.path.display()), e)),
        }
    }

    /// Records `e` in the file (created with its directory when missing).
    pub fn record(&self, e: Event) -> Result<()> {
        let io = |what: &str, err| Error::io(format!("{what} {}", self.path.display()), err);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|err| io("cannot create the directory of", err))?;
        }
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(|err| io("cannot open", err))?;
        lock(&f, libc::LOCK_EX, &self.path)?;
        let mut stats = read_stats(&mut f, &self.path)?;
        stats.record(e);
        let text = serde_json::to_string_pretty(&stats).expect("stats serialize");
        f.set_len(0).map_err(|err| io("cannot truncate", err))?;
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(text.as_bytes()))
            .and_then(|_| f.write_all(b"\n"))
            .map_err(|err| io("cannot write", err))
    }
}

fn lock(f: &File, how: libc::c_int, path: &Path) -> Result<()> {
    // SAFETY: flock on an open file descriptor; released when `f` is closed.
    if unsafe { libc::flock(f.as_raw_fd(), how) } != 0 {
        return Err(Error::io(
            format!("cannot lock {}", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn read_stats(f: &mut File, path: &Path) -> Result<HandoverStats> {
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    if text.trim().is_empty() {
        return Ok(HandoverStats::default());
    }
    serde_json::from_str(&text).map_err(|e| {
        Error::io(
            format!("{} is not a handover state file", path.display()),
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_prometheus_text() {
        let mut s = HandoverStats::default();
        s.record(Event::Started);
        s.record(Event::Completed {
            switch_over: Duration::from_micros(700),
            total: Duration::from_millis(120),
        });
        s.record(Event::Started);
        s.record(Event::Failed(Phase::SwitchAnchor));
        s.record(Event::Refused(Refusal::InProgress));
        let text = encode_prometheus(&s);
        assert!(text.contains("vdmm_handovers_started_total 2\n"), "{text}");
        assert!(text.contains("vdmm_handovers_completed_total 1\n"));
        assert!(text.contains("vdmm_handovers_failed_total{phase=\"switch_anchor\"} 1\n"));
        assert!(text.contains("vdmm_handovers_failed_total{phase=\"prepare_target\"} 0\n"));
        assert!(text.contains("vdmm_handovers_refused_total{reason=\"in_progress\"} 1\n"));
        assert!(text.contains("vdmm_handover_switchover_seconds_bucket{le=\"0.0005\"} 0\n"));
        assert!(text.contains("vdmm_handover_switchover_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("vdmm_handover_duration_seconds_bucket{le=\"0.1\"} 0\n"));
        assert!(text.contains("vdmm_handover_duration_seconds_bucket{le=\"0.25\"} 1\n"));
        assert!(text.contains("vdmm_handover_duration_seconds_count 1\n"));
        assert_eq!(s.failed_total(), 1);
    }

    #[test]
    fn state_file_accumulates_across_writers() {
        let dir = std::env::temp_dir().join(format!("vdmm-ho-stats-{}", std::process::id()));
        let file = StatsFile::new(dir.join("sub/stats.json"));
        assert_eq!(file.read().unwrap(), HandoverStats::default());
        file.record(Event::Started).unwrap();
        file.record(Event::Started).unwrap();
        file.record(Event::Failed(Phase::Prepare)).unwrap();
        let s = file.read().unwrap();
        assert_eq!((s.started, s.failed_total()), (2, 1));
        std::fs::write(file.path(), "not json").unwrap();
        let e = file.read().unwrap_err().to_string();
        assert!(e.contains("is not a handover state file"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
