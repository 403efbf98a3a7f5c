//! The `vdmm-ctl alb` command line (clap derive): the simulator and the controller.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct AlbArgs {
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
    },
}
