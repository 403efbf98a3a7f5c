//! The `vdmm-ctl alb` command line (clap derive): the simulator and the controller.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Where the controller keeps its state unless told otherwise.
pub const DEFAULT_STATE: &str = "/var/lib/vdmm/alb.json";

#[derive(Debug, Args)]
pub struct AlbArgs {
    /// The controller's state file (JSON, created on first use; FILE.lock beside it
    /// serialises commands). `simulate` does not use it.
    #[arg(long, global = true, env = "VDMM_ALB_STATE", default_value = DEFAULT_STATE, value_name = "FILE")]
    pub state: PathBuf,

    #[command(subcommand)]
    pub command: AlbCommand,
}

#[derive(Debug, Subcommand)]
pub enum AlbCommand {
    /// Compare ALB with three baselines on a seeded scenario.
    ///
    /// APs and clients are placed on a floor; clients walk by random waypoint; each AP
    /// reports each client's signal every second (log-distance path loss, shadowing
    /// correlated along the path, report noise). ALB, strongest-signal-first,
    /// least-loaded-first and an EmPOWER-style |RSSI| x utilisation policy each run on
    /// the same reports. Prints per policy: Jain's fairness index of AP utilisation, the
    /// most loaded AP's utilisation, the clients' mean and 5th-percentile signal,
    /// handovers and ping-pong handovers, then whether ALB met issue 6's targets.
    /// Scenarios: examples/alb/*.toml; see docs/alb.md.
    Simulate {
        /// The scenario file (TOML).
        #[arg(long, value_name = "FILE")]
        scenario: PathBuf,
        /// Run with this seed instead of the scenario's.
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
        /// Set a balancer parameter for this run, over the scenario's [alb] section
        /// (repeatable), e.g. --param max_signal_drop_db=6.
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Also write an SVG plot of every AP's utilisation over time, one panel per policy.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// Also compute what any placement could reach, from the true signal with
        /// handovers free: the clients' mean signal on their strongest AP, an upper bound
        /// on it at Jain's index >= 0.9, and greedy placements that reach 0.9 (without and
        /// with no AP above high_util). Every 10th tick after the warm-up. Also, with
        /// handovers limited to each policy's count and the future known: an upper bound at
        /// Jain's index >= 0.9 at every round, and placements reached. Takes seconds.
        #[arg(long)]
        bound: bool,
    },

    /// The APs the controller balances: name and capacity.
    #[command(subcommand)]
    Ap(ApCommand),

    /// Take one signal report: AP AP hears CLIENT at RSSI dBm.
    ///
    /// Real APs export station signal and byte counters through hostapd / nl80211; an AP
    /// host agent passes them on with this command or, better, as a stream to `alb feed`.
    /// The signal is averaged over linear power per client and AP (parameter rssi_alpha).
    Report {
        /// The reporting AP (added with `alb ap add`).
        #[arg(long, value_name = "AP")]
        ap: String,
        /// The client (its MAC address).
        #[arg(long, value_name = "CLIENT")]
        client: String,
        /// The client's signal at this AP, dBm (-120 to 0).
        #[arg(long, value_name = "DBM", allow_negative_numbers = true)]
        rssi: f64,
        /// This AP serves the client (its vAP is here).
        #[arg(long)]
        associated: bool,
        /// The client's cumulative bytes at this AP (both directions), for its traffic rate.
        #[arg(long, value_name = "N", requires = "associated")]
        bytes: Option<u64>,
        /// When it was measured, seconds since the epoch (default: now).
        #[arg(long, value_name = "SECONDS")]
        time: Option<f64>,
    },

    /// Take a stream of reports, one JSON object per line on standard input, and run a
    /// round whenever one is due.
    ///
    /// Each line: {"ap": "ap1", "client": "02:00:00:00:00:01", "rssi_dbm": -61.5,
    /// "associated": true, "bytes": 123456, "time": 1700000000.5} ("associated", "bytes"
    /// and "time" are optional; time defaults to the arrival). A bad line is reported on
    /// standard error with its number, counted (vdmm_alb_reports_rejected_total) and
    /// skipped. While the balancer is enabled, a round runs when round_interval_s has
    /// passed (in report time) since the last one; each round with moves prints one JSON
    /// line {"time", "moves": [...]} on standard output. Without --commit the moves are
    /// only printed.
    Feed {
        /// Record the moves as made: the caller executes them (a vAP handover each).
        #[arg(long)]
        commit: bool,
    },

    /// Show the APs with their load, the clients, the fairness index and the counters.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Run one round now and print its moves.
    ///
    /// Without --commit or --apply this is a dry run: only the decision counter changes.
    /// --apply first reads who serves whom and the per-vAP byte counters from the AP
    /// hosts of the cluster file (as `collect` does), decides, then makes each move as a
    /// vAP handover (`vap move`), one after the other, and prints per move whether it was
    /// done (with the anchor's switch-over time) or failed (and why); only the moves made
    /// are recorded, the others are counted (vdmm_alb_moves_failed_total). The state file
    /// stays locked for the whole round. Refused while the balancer is disabled, except
    /// as a dry run.
    Rebalance {
        /// Record the moves as made: the caller executes them (a vAP handover each).
        #[arg(long, conflicts_with = "apply")]
        commit: bool,
        /// Make the moves as vAP handovers between the AP hosts of --cluster.
        #[arg(long, requires = "cluster")]
        apply: bool,
        /// The cluster file (as for `vap move`); AP hosts are matched to APs by name.
        #[arg(long, value_name = "FILE", requires = "apply")]
        cluster: Option<PathBuf>,
        /// With --apply: how long each source AP host forwards to the target before its
        /// vAP is removed (as `vap move --grace-ms`).
        #[arg(long, value_name = "MS", default_value_t = 200)]
        grace_ms: u64,
        /// Decide as of this time, seconds since the epoch (default: now; for replays).
        #[arg(long, value_name = "SECONDS")]
        time: Option<f64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Read who serves whom and the per-vAP byte counters from the AP hosts' data planes.
    ///
    /// For every AP host of the cluster file that is a balanced AP (same name), every vAP
    /// serving a client there: that AP is the client's serving AP, and its bytes (from the client plus delivered to it) are a reading of its traffic
    /// meter: the rate between two readings is the client's traffic, and its load is
    /// that plus client_base_mbps. Run it every few seconds (rebalance --apply also
    /// reads them first). A client served by two AP hosts at once (a move running) is
    /// left as it was.
    Collect {
        /// The cluster file (as for `vap move`).
        #[arg(long, value_name = "FILE")]
        cluster: PathBuf,
        /// Take the reading as of this time, seconds since the epoch (default: now).
        #[arg(long, value_name = "SECONDS")]
        time: Option<f64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Run the balancer on its own until SIGTERM or SIGINT.
    ///
    /// Every round_interval_s (re-read from the state each time) it reads who serves whom
    /// and the per-vAP byte counters from the AP hosts of the cluster file (as `collect`)
    /// and, while the balancer is enabled, runs a round and makes its moves as vAP
    /// handovers (as `rebalance --apply`): the dwell time, hysteresis and ping-pong guard
    /// of the parameters apply across rounds. Disabled, it only reads the data planes.
    /// Prints each round with moves (--json: every round, one JSON line each); an
    /// interval that fails (a data plane unreadable) is reported on standard error,
    /// changes nothing and is counted, and the loop goes on. Counters:
    /// vdmm_alb_loop_rounds_total, vdmm_alb_loop_idle_total, vdmm_alb_loop_errors_total,
    /// besides the decisions and moves of every round.
    Run {
        /// The cluster file (as for `vap move`); AP hosts are matched to APs by name.
        #[arg(long, value_name = "FILE")]
        cluster: PathBuf,
        /// How long each source AP host forwards to the target before its vAP is removed
        /// (as `vap move --grace-ms`).
        #[arg(long, value_name = "MS", default_value_t = 200)]
        grace_ms: u64,
        /// Stop after this many intervals (default: run until SIGTERM or SIGINT).
        #[arg(long, value_name = "N")]
        intervals: Option<u64>,
        /// Print one JSON line per round instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Let the balancer move clients (rounds of `run`, `feed`, `rebalance --commit`).
    Enable,

    /// Stop moving clients; reports are still taken in.
    Disable,

    /// Show the balancer's parameters, or set some (see docs/alb.md for each).
    Params {
        /// Set a parameter (repeatable), e.g. --set high_util=0.75.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },

    /// Print the controller's Prometheus metrics: vdmm_alb_reports_total,
    /// vdmm_alb_reports_rejected_total, vdmm_alb_vap_samples_total, vdmm_alb_decisions_total,
    /// vdmm_alb_moves_total{reason}, vdmm_alb_reverted_moves_total,
    /// vdmm_alb_moves_failed_total, vdmm_alb_loop_rounds_total, vdmm_alb_loop_idle_total,
    /// vdmm_alb_loop_errors_total, vdmm_alb_ap_utilisation{ap},
    /// vdmm_alb_ap_clients{ap}, vdmm_alb_fairness, vdmm_alb_enabled.
    Metrics,
}

#[derive(Debug, Subcommand)]
pub enum ApCommand {
    /// Add an AP.
    Add {
        #[arg(value_name = "NAME")]
        name: String,
        /// What its utilisation is measured against, Mb/s.
        #[arg(long, value_name = "MBPS")]
        capacity: f64,
    },
    /// Remove an AP; its reports are forgotten and the next round moves its clients.
    Del {
        #[arg(value_name = "NAME")]
        name: String,
    },
}
