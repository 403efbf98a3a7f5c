//! The handover scenarios as the demo and the benchmark run them: build the vAP lab and
//! walk, build the baseline lab and walk, print the table and the targets, draw the
//! chart. Each lab is removed before the next is built.

use std::{path::Path, time::Instant};

use anyhow::{Context, Result};

use super::{
    HandoverLab, Mobility, report,
    scenario::{WalkOptions, WalkResult, lab_name, walk},
};

/// Which walks to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Both,
    VapOnly,
    BaselineOnly,
}

/// Builds one lab, walks, removes it.
pub fn run_walk(
    mobility: Mobility,
    ctl: Option<std::path::PathBuf>,
    opts: &WalkOptions,
) -> Result<WalkResult> {
    let t = Instant::now();
    let lab = HandoverLab::build(mobility, ctl)
        .with_context(|| format!("building the {} lab", lab_name(mobility)))?;
    println!(
        "   {} lab built in {:.1}s (correspondent, anchors gw1 gw2, AP hosts ap1-3{}, air, client, vm)",
        lab_name(mobility),
        t.elapsed().as_secs_f64(),
        if lab.agents.is_empty() {
            ""
        } else {
            ", each running its agent with the embedded store"
        }
    );
    let w = walk(&lab, opts).with_context(|| format!("the {} walk", lab_name(mobility)))?;
    if !lab.agents.is_empty() {
        // The moves went through the agents: their reconciles find nothing to undo.
        let r = lab.reconcile_agents().context("reconciling the agents")?;
        let text: Vec<String> = r
            .iter()
            .map(|(n, repaired, rev)| format!("{n} {repaired} (store revision {rev})"))
            .collect();
        println!(
            "   after the walk, `vdmm-ctl agent reconcile` repaired: {}",
            text.join(", ")
        );
    }
    if mobility == Mobility::Vap
        && let Ok(m) = lab.ctl(&lab.gw1, &["metrics", "dump"])
    {
        let lines: Vec<&str> = m
            .lines()
            .filter(|l| {
                l.starts_with("vdmm_handovers_started_total")
                    || l.starts_with("vdmm_handovers_completed_total")
                    || l.starts_with("vdmm_handover_switchover_seconds_sum")
                    || l.starts_with("vdmm_handover_switchover_seconds_count")
            })
            .collect();
        println!(
            "   handover metrics (vdmm-ctl metrics dump): {}",
            lines.join(", ")
        );
    }
    Ok(w)
}

/// Runs the scenarios, prints the results, writes the chart to `plot`; true when every
/// target held.
pub fn run(
    ctl: Option<std::path::PathBuf>,
    which: Which,
    opts: &WalkOptions,
    plot: &Path,
) -> Result<bool> {
    println!(
        "\n== handover: the client walks ap1 -> ap2 -> ap3 under a {} datagrams/s UDP stream and a TCP transfer{} ==",
        opts.rate,
        if opts.vm {
            "; the VM migrates ap1 -> ap3"
        } else {
            ""
        }
    );
    let vap = match which {
        Which::BaselineOnly => None,
        _ => Some(run_walk(Mobility::Vap, ctl.clone(), opts)?),
    };
    let baseline = match which {
        Which::VapOnly => None,
        _ => Some(run_walk(Mobility::Baseline, ctl, opts)?),
    };
    let walks: Vec<&WalkResult> = vap.iter().chain(baseline.iter()).collect();
    println!();
    print!("{}", report::table(&walks));
    let (lines, ok) = report::verdict(vap.as_ref(), baseline.as_ref());
    println!();
    for l in lines {
        println!("{l}");
    }
    report::plot(plot, &walks)?;
    println!(
        "\nplot of the client's packets/s over time: {}",
        plot.display()
    );
    Ok(ok)
}

/// The balancer scenario ([`super::alb`]): builds the vAP lab with `stations` extra
/// stations on ap1, runs one `alb rebalance --apply`, prints the moves, the per-AP load
/// table and the targets, removes the lab; true when every target held.
pub fn run_alb(ctl: Option<std::path::PathBuf>, stations: usize) -> Result<bool> {
    let opts = super::alb::AlbOptions::default();
    println!(
        "\n== balancer: {stations} stations on ap1, each under a {} datagrams/s UDP stream and a TCP transfer; ALB moves clients by vAP handovers ==",
        opts.udp_rate
    );
    let t = Instant::now();
    let lab = HandoverLab::build_with(Mobility::Vap, ctl, stations)
        .context("building the vAP lab with extra stations")?;
    println!(
        "   vAP lab with {stations} extra stations built in {:.1}s; alb rebalance --apply:",
        t.elapsed().as_secs_f64()
    );
    let r = super::alb::run(&lab, &opts).context("the balancer scenario")?;
    print!("{}", super::alb_report::table(&r));
    let (lines, ok) = super::alb_report::verdict(&r);
    println!();
    for l in lines {
        println!("{l}");
    }
    Ok(ok)
}
