//! Adaptive load balancing live, in network namespaces (needs root): the handover lab with
//! six extra stations, all on ap1, each under a UDP stream and a TCP transfer; the ALB
//! controller (the real `vdmm-ctl alb` binary) runs its loop (`alb run`, a round every
//! second), which reads placement and traffic from the AP hosts' per-vAP counters and,
//! once `alb enable` lets it, moves clients by vAP handovers
//! (`vdmm_tests::handover_lab::alb`).
//!
//! Asserted: moves were made and none failed, each to an AP host that now serves the
//! client; the load the AP hosts' data planes counted spread (Jain's index of their Mb/s
//! from about 1/3 to at least 0.9); no station lost or got a duplicate datagram; every
//! TCP transfer delivered all its bytes with no retransmission timeout; the controller's
//! counters agree, and the rounds after the first with moves (at least two) move nothing.

use vdmm_tests::handover_lab::{
    HandoverLab, Mobility,
    alb::{AlbOptions, run},
    alb_report::{MIN_JAIN_AFTER, table, verdict},
};

fn sample(lines: &[String], series: &str) -> Option<f64> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn alb_spreads_ap1_by_vap_handovers_without_breaking_flows() {
    if let Err(e) = vdmm_tests::netns::require_root() {
        panic!("{e}");
    }
    let lab = HandoverLab::build_with(Mobility::Vap, None, 6).unwrap_or_else(|e| panic!("{e:#}"));
    let r = run(&lab, &AlbOptions::default()).unwrap_or_else(|e| panic!("{e:#}"));
    let t = table(&r);
    eprintln!("{t}");
    let (lines, ok) = verdict(&r);
    let lines = lines.join("\n");
    eprintln!("{lines}");

    // Before: everything on ap1.
    assert_eq!(r.before[0].clients, 8, "{t}");
    assert_eq!(r.before[1].clients + r.before[2].clients, 0, "{t}");
    assert!(r.jain_before < 0.4, "{t}");
    // Moves were made, all of them, and the AP hosts serve the moved clients.
    let done: Vec<_> = r.moves.iter().filter(|m| m.error.is_none()).collect();
    assert!(done.len() >= 3, "too few moves\n{t}");
    assert_eq!(done.len(), r.moves.len(), "failed moves\n{t}");
    assert!(done.iter().all(|m| m.from == "ap1" && m.to != "ap1"), "{t}");
    assert!(
        r.reassociations >= done.len(),
        "the air did not follow\n{t}"
    );
    assert_eq!(
        r.after.iter().map(|a| a.clients).sum::<usize>(),
        8,
        "a vAP went missing\n{t}"
    );
    assert!(r.after[1].clients > 0 && r.after[2].clients > 0, "{t}");
    // The load spread.
    assert!(
        r.jain_after >= MIN_JAIN_AFTER,
        "Jain {:.3} after\n{t}",
        r.jain_after
    );
    assert!(r.controller_fairness.1 > r.controller_fairness.0, "{t}");
    // No flow broke.
    for s in &r.stations {
        assert!(s.udp.sent > 1000, "{}: {} sent\n{t}", s.client, s.udp.sent);
        assert_eq!(s.udp.lost, 0, "{}: datagrams lost\n{t}", s.client);
        assert_eq!(s.udp.duplicated, 0, "{}: duplicates\n{t}", s.client);
        assert!(
            s.tcp_read > 0 && s.tcp_read == s.tcp_written,
            "{}\n{t}",
            s.client
        );
    }
    assert_eq!(r.tcp.timeouts, 0, "TCP retransmission timeouts\n{t}");
    // The controller counted the round.
    assert_eq!(
        sample(&r.metrics, "vdmm_alb_moves_total{reason=\"balance\"}"),
        Some(done.len() as f64),
        "{t}"
    );
    assert_eq!(sample(&r.metrics, "vdmm_alb_moves_failed_total"), Some(0.0));
    assert!(sample(&r.metrics, "vdmm_alb_vap_samples_total").unwrap_or(0.0) >= 16.0);
    assert!(r.rounds >= 3, "the loop ran {} rounds\n{t}", r.rounds);
    assert_eq!(r.second_round, 0, "later rounds still move clients\n{t}");
    assert!(sample(&r.metrics, "vdmm_alb_loop_rounds_total").unwrap_or(0.0) >= 3.0);
    assert!(sample(&r.metrics, "vdmm_alb_loop_idle_total").unwrap_or(0.0) >= 1.0);
    assert_eq!(sample(&r.metrics, "vdmm_alb_loop_errors_total"), Some(0.0));
    assert!(ok, "{lines}\n{t}");
}
