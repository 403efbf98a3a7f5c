//! What the balancer scenario prints: the moves of the loop's first round with moves, a table of each AP host's load
//! (clients and Mb/s from its data plane's per-vAP counters) before and after, the
//! stations' flows, and the targets: moves were made and none failed, Jain's index of
//! the AP hosts' measured load reached [`MIN_JAIN_AFTER`], no datagram lost or
//! duplicated, every TCP transfer complete without a retransmission timeout.

use vdmm_ctl::table::{Align, render};

use super::alb::AlbResult;

/// Jain's index of the AP hosts' load after the round. Six equal stations on three AP
/// hosts end 2/2/2 at best (index 1.0); 0.9 still allows one AP host a third more than
/// the others (e.g. 3/2/2 gives 0.96, 4/1/2 gives 0.86).
pub const MIN_JAIN_AFTER: f64 = 0.9;

/// The per-move lines, the load table and the flows.
pub fn table(r: &AlbResult) -> String {
    let mut out = String::new();
    for m in &r.moves {
        match (&m.switch_over_ms, &m.error) {
            (_, Some(e)) => out.push_str(&format!(
                "   {} {} -> {}: FAILED: {e}\n",
                m.client, m.from, m.to
            )),
            (Some(ms), None) => out.push_str(&format!(
                "   {} {} -> {}: done, anchor switched {ms:.1} ms into the handover\n",
                m.client, m.from, m.to
            )),
            (None, None) => out.push_str(&format!(
                "   {} {} -> {}: done (already there)\n",
                m.client, m.from, m.to
            )),
        }
    }
    let rows: Vec<Vec<String>> = r
        .before
        .iter()
        .zip(&r.after)
        .map(|(b, a)| {
            vec![
                b.ap.clone(),
                b.clients.to_string(),
                format!("{:.1}", b.mbps),
                a.clients.to_string(),
                format!("{:.1}", a.mbps),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&render(
        &[
            ("AP host", Align::Left),
            ("clients before", Align::Right),
            ("Mb/s before", Align::Right),
            ("clients after", Align::Right),
            ("Mb/s after", Align::Right),
        ],
        &rows,
    ));
    out.push_str(&format!(
        "\nJain's index of the AP hosts' Mb/s (data-plane counters): {:.3} -> {:.3}; the controller's (utilisation): {:.3} -> {:.3}\n",
        r.jain_before, r.jain_after, r.controller_fairness.0, r.controller_fairness.1
    ));
    let sent: u64 = r.stations.iter().map(|s| s.udp.sent).sum();
    let lost: u64 = r.stations.iter().map(|s| s.udp.lost).sum();
    let dup: u64 = r.stations.iter().map(|s| s.udp.duplicated).sum();
    let gap = r
        .stations
        .iter()
        .map(|s| s.udp.longest_gap)
        .max()
        .unwrap_or(0) as f64
        / 1e6;
    let tcp: u64 = r.stations.iter().map(|s| s.tcp_read).sum();
    out.push_str(&format!(
        "flows of the {} stations: UDP {sent} datagrams sent, {lost} lost, {dup} duplicated, longest gap {gap:.1} ms; TCP {} kB read, {} retransmission timeouts, {} segments retransmitted\n",
        r.stations.len(),
        tcp / 1000,
        r.tcp.timeouts,
        r.tcp.retrans_segs
    ));
    out.push_str(&format!(
        "controller metrics: {}; the loop ran {} rounds while enabled, those after the first with moves moved {}\n",
        r.metrics.join(", "),
        r.rounds,
        r.second_round
    ));
    out
}

/// The targets, one line each, and whether all held.
pub fn verdict(r: &AlbResult) -> (Vec<String>, bool) {
    let done = r.moves.iter().filter(|m| m.error.is_none()).count();
    let failed = r.moves.len() - done;
    let lost: u64 = r
        .stations
        .iter()
        .map(|s| s.udp.lost + s.udp.duplicated)
        .sum();
    let incomplete = r
        .stations
        .iter()
        .filter(|s| s.tcp_read != s.tcp_written || s.tcp_read == 0)
        .count();
    let checks = [
        (
            done > 0 && failed == 0,
            format!("clients moved by vAP handovers: {done} done, {failed} failed"),
        ),
        (
            r.jain_after >= MIN_JAIN_AFTER && r.jain_after > r.jain_before,
            format!(
                "load spread: Jain's index {:.3} -> {:.3} (target >= {MIN_JAIN_AFTER})",
                r.jain_before, r.jain_after
            ),
        ),
        (lost == 0, format!("no datagram lost or duplicated: {lost}")),
        (
            incomplete == 0 && r.tcp.timeouts == 0,
            format!(
                "every TCP transfer complete ({incomplete} not) without a retransmission timeout ({})",
                r.tcp.timeouts
            ),
        ),
    ];
    let ok = checks.iter().all(|(ok, _)| *ok);
    (
        checks
            .into_iter()
            .map(|(ok, l)| format!("  {}  {l}", if ok { "met   " } else { "MISSED" }))
            .collect(),
        ok,
    )
}
