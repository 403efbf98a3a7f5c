//! The simulator's output: a table for people, JSON for scripts, and the SVG plot of AP
//! utilisation over time (one panel per policy).

use std::path::Path;

use crate::{
    error::Result,
    plot::{Panel, Series, write_svg},
};

use super::Outcome;

/// The table of figures and the target checks.
pub fn table(o: &Outcome) -> String {
    let mut out = format!(
        "scenario {} (seed {}): {} clients, {} APs\n\n",
        o.scenario,
        o.seed,
        o.clients,
        o.aps.len()
    );
    out.push_str(&format!(
        "{:<13} {:>6} {:>9} {:>6} {:>10} {:>8} {:>10} {:>12}  {}\n",
        "policy",
        "jain",
        "max_load",
        "peak",
        "rssi_mean",
        "rssi_p5",
        "handovers",
        "ping_pong",
        "alb moves"
    ));
    for f in &o.figures {
        out.push_str(&format!(
            "{:<13} {:>6.3} {:>9.2} {:>6.2} {:>10.1} {:>8.1} {:>10} {:>12}  {}\n",
            f.policy,
            f.jain,
            f.max_load,
            f.peak_load,
            f.rssi_mean_dbm,
            f.rssi_p5_dbm,
            f.handovers,
            format!("{} ({:.1}%)", f.ping_pong, f.ping_pong_pct()),
            f.alb_moves
                .iter()
                .map(|(r, n)| format!("{} {n}", r.name()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push_str(
        "\njain: Jain's index of AP utilisation; max_load: most loaded AP's utilisation \
         (both means over ticks after the warm-up); peak: its worst tick;\nrssi_mean/p5: \
         signal of the serving AP in dBm over clients and ticks after the warm-up; \
         handovers and ping_pong over the whole run.\n\nALB targets (issue 6):\n",
    );
    for t in &o.targets {
        out.push_str(&format!(
            "  {} {}: {}\n",
            if t.met { "met    " } else { "MISSED " },
            t.name,
            t.detail
        ));
    }
    out
}

/// The outcome as JSON (without the time series).
pub fn json(o: &Outcome) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(o).expect("the outcome serialises")
    )
}

/// Writes the plot of AP utilisation over time, one panel per policy.
pub fn plot(o: &Outcome, path: &Path) -> Result<()> {
    let panels: Vec<Panel> = o
        .series
        .iter()
        .map(|(policy, series)| Panel {
            title: policy.clone(),
            series: o
                .aps
                .iter()
                .enumerate()
                .map(|(i, ap)| Series {
                    name: ap.clone(),
                    points: series.iter().map(|(t, u)| (*t, u[i])).collect(),
                })
                .collect(),
        })
        .collect();
    write_svg(
        path,
        &format!(
            "AP utilisation over time: scenario {} (seed {})",
            o.scenario, o.seed
        ),
        "time (s)",
        "utilisation",
        &panels,
    )
}
