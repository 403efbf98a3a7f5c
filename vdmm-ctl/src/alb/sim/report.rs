//! The simulator's output: a table for people, JSON for scripts, and the SVG plot of AP
//! utilisation over time (one panel per policy).

use std::path::Path;

use crate::{
    error::Result,
    plot::{PALETTE, Panel, Series, stacked_charts},
};

use super::{Outcome, metrics::Figures};

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
    if let Some(b) = &o.bound {
        out.push_str(&format!(
            "\nWhat any placement can reach (true signal, handovers free; every {}th tick after \
             the warm-up, {} ticks):\n  every client on its strongest AP: {:.1} dBm\n  \
             jain >= {} at every tick: at most {:.1} dBm (upper bound); {:.1} dBm reached \
             (greedy)\n  the same and no AP above high_util {}: {:.1} dBm reached (greedy)\n",
            super::bound::EVERY_TICKS,
            b.ticks,
            b.strongest_dbm,
            b.jain,
            b.upper_dbm,
            b.greedy_dbm,
            b.high_util,
            b.greedy_capped_dbm
        ));
    }
    if !o.budgets.is_empty() {
        out.push_str(&format!(
            "\nWith handovers limited (true signal, future known; jain >= {} at every round \
             after the warm-up):\n",
            super::TARGET_JAIN
        ));
    }
    for (f, b) in o.figures.iter().zip(&o.budgets) {
        let reached = |r: &Option<Figures>| match r {
            Some(r) => format!(
                "{:.1} dBm with {} handovers ({} ping-pong), jain {:.3}",
                r.rssi_mean_dbm, r.handovers, r.ping_pong, r.jain
            ),
            None => "none found".to_string(),
        };
        out.push_str(&format!(
            "  at most {} handovers ({}'s): at most {:.1} dBm (upper bound)\n    reached: \
             {}\n    reached with ping-pong < 1%: {}\n",
            b.handovers,
            f.policy,
            b.upper_dbm,
            reached(&b.reached),
            reached(&b.reached_without_ping_pong)
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
            title: format!("{policy}: scenario {} (seed {})", o.scenario, o.seed),
            series: o
                .aps
                .iter()
                .enumerate()
                .map(|(i, ap)| Series {
                    label: ap.clone(),
                    colour: PALETTE[i % PALETTE.len()],
                    points: series.iter().map(|(t, u)| (*t, u[i])).collect(),
                })
                .collect(),
            markers: Vec::new(),
        })
        .collect();
    stacked_charts(path, "time (s)", "AP utilisation", &panels)
}
