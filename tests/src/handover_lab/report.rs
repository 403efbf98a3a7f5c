//! What the handover scenarios print and draw: one table row per handover, the targets
//! (vAP: no datagram lost, longest gap <= 5 ms, no TCP retransmission timeout; the
//! baseline's interruption at least 100x the vAP's), and the SVG chart of the client's
//! received packets/s across the handovers of both walks.

use std::path::Path;

use anyhow::Result;

use super::{
    Mobility,
    scenario::{WalkResult, lab_name},
};
use crate::plot::{Marker, PALETTE, Panel, Series, stacked_charts};

/// The vAP targets of issue #5.
pub const MAX_VAP_GAP_MS: f64 = 5.0;
pub const MIN_RATIO: f64 = 100.0;

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The table of every handover of `walks`.
pub fn table(walks: &[&WalkResult]) -> String {
    let mut rows = vec![vec![
        "mobility".to_string(),
        "handover".into(),
        "sent".into(),
        "lost".into(),
        "longest gap".into(),
        "TCP stall".into(),
        "TCP RTOs".into(),
        "TCP retrans".into(),
        "command->switch".into(),
    ]];
    for w in walks {
        for h in &w.handovers {
            let switch = match h.mover_switch_over_ms {
                Some(m) => format!("{:.1} ms (mover {m:.2} ms)", h.command_to_switch_ms()),
                None => format!("{:.1} ms", h.command_to_switch_ms()),
            };
            rows.push(vec![
                lab_name(h.mobility).into(),
                h.label.clone(),
                h.udp.sent.to_string(),
                h.udp.lost.to_string(),
                format!("{:.2} ms", ms(h.udp.longest_gap)),
                format!("{:.1} ms", ms(h.tcp_stall)),
                h.tcp.timeouts.to_string(),
                h.tcp.retrans_segs.to_string(),
                switch,
            ]);
        }
        rows.push(vec![
            lab_name(w.mobility).into(),
            "(no handover)".into(),
            w.steady.sent.to_string(),
            w.steady.lost.to_string(),
            format!("{:.2} ms", ms(w.steady.longest_gap)),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c < 2 {
                    format!("{v:<w$}", w = widths[c])
                } else {
                    format!("{v:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The targets, checked: one line each, and whether all held.
pub fn verdict(vap: Option<&WalkResult>, baseline: Option<&WalkResult>) -> (Vec<String>, bool) {
    let mut lines = vec![];
    let mut ok = true;
    let mut check = |good: bool, text: String| {
        ok &= good;
        lines.push(format!("{} {text}", if good { "PASS" } else { "FAIL" }));
    };
    let worst_vap = vap.map(|w| {
        w.handovers
            .iter()
            .map(|h| h.udp.longest_gap)
            .max()
            .unwrap_or(0)
    });
    if let Some(w) = vap {
        let lost: u64 = w.handovers.iter().map(|h| h.udp.lost).sum();
        check(
            lost == 0,
            format!("vAP handovers lost {lost} datagrams (target 0)"),
        );
        let gap = ms(worst_vap.unwrap_or(0));
        check(
            gap <= MAX_VAP_GAP_MS,
            format!("vAP longest gap {gap:.2} ms (target <= {MAX_VAP_GAP_MS} ms)"),
        );
        let rtos: u64 = w.handovers.iter().map(|h| h.tcp.timeouts).sum();
        check(
            rtos == 0,
            format!("vAP handovers caused {rtos} TCP retransmission timeouts (target 0)"),
        );
    }
    if let (Some(v), Some(b)) = (worst_vap, baseline) {
        let best_baseline = b
            .handovers
            .iter()
            .map(|h| h.udp.longest_gap)
            .min()
            .unwrap_or(0);
        let ratio = best_baseline as f64 / v.max(1) as f64;
        check(
            ratio >= MIN_RATIO,
            format!(
                "interruption: baseline {:.1} ms (shortest) / vAP {:.2} ms (longest) = {ratio:.0}x (target >= {MIN_RATIO:.0}x)",
                ms(best_baseline),
                ms(v)
            ),
        );
    }
    (lines, ok)
}

/// The chart: the client's received packets/s over time, one panel per walk (same
/// scales), a marker at every handover command.
pub fn plot(path: &Path, walks: &[&WalkResult]) -> Result<()> {
    let panels: Vec<Panel> = walks
        .iter()
        .map(|w| {
            let colour = match w.mobility {
                Mobility::Vap => PALETTE[0],
                Mobility::Baseline => PALETTE[1],
            };
            let name = lab_name(w.mobility);
            Panel {
                title: match w.mobility {
                    Mobility::Vap => format!("{name}: make-before-break (vdmm-ctl vap move)"),
                    Mobility::Baseline => {
                        format!("{name}: break-before-make (re-attach, DHCP, binding update)")
                    }
                },
                series: vec![Series {
                    label: format!("{name}: client's UDP stream, received/s (10 ms bins)"),
                    colour,
                    points: w.client_rate.clone(),
                }],
                markers: w
                    .handovers
                    .iter()
                    .filter(|h| h.label.starts_with("client"))
                    .map(|h| Marker {
                        x: h.command.saturating_sub(w.start) as f64 / 1e9,
                        label: h.label["client ".len()..].to_string(),
                        colour: PALETTE[5],
                    })
                    .collect(),
            }
        })
        .collect();
    stacked_charts(
        path,
        "seconds since the stream started",
        "packets/s",
        &panels,
    )
}
