//! `vdmm-ctl stats`: the data plane's per-CPU counters (XDP and TC egress), summed.

use crate::{
    error::Result,
    maps::{CounterRow, Dataplane, Program},
    pin::PinDir,
    table::{Align, render},
};

pub fn run(pins: &PinDir, json: bool) -> Result<String> {
    Ok(format(&Dataplane::open(pins)?.counters()?, json))
}

/// A table PROGRAM REASON KIND ACTION PACKETS BYTES with a total line per program, or a
/// JSON array of `{program, reason, kind, action, packets, bytes}`.
pub fn format(rows: &[CounterRow], json: bool) -> String {
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "program": r.program.name(),
                    "reason": r.reason.name(),
                    "kind": r.kind.name(),
                    "action": r.action.name(),
                    "packets": r.packets,
                    "bytes": r.bytes,
                })
            })
            .collect();
        return format!("{}\n", serde_json::Value::from(v));
    }
    let mut cells: Vec<Vec<String>> = Vec::new();
    for program in [Program::Xdp, Program::Tc] {
        let mine: Vec<&CounterRow> = rows.iter().filter(|r| r.program == program).collect();
        for r in &mine {
            cells.push(vec![
                program.name().to_string(),
                r.reason.name().to_string(),
                r.kind.name().to_string(),
                r.action.name().to_string(),
                r.packets.to_string(),
                r.bytes.to_string(),
            ]);
        }
        let packets: u64 = mine.iter().map(|r| r.packets).sum();
        let bytes: u64 = mine.iter().map(|r| r.bytes).sum();
        cells.push(vec![
            program.name().to_string(),
            "total".into(),
            String::new(),
            String::new(),
            packets.to_string(),
            bytes.to_string(),
        ]);
    }
    render(
        &[
            ("PROGRAM", Align::Left),
            ("REASON", Align::Left),
            ("KIND", Align::Left),
            ("ACTION", Align::Left),
            ("PACKETS", Align::Right),
            ("BYTES", Align::Right),
        ],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vdmm_common::{Action, Reason, TunnelKind};

    #[test]
    fn table_has_totals_per_program_and_json_has_rows() {
        let rows = [
            CounterRow {
                program: Program::Xdp,
                reason: Reason::Encap,
                kind: TunnelKind::Ip4in6,
                action: Action::Redirect,
                packets: 10,
                bytes: 1000,
            },
            CounterRow {
                program: Program::Xdp,
                reason: Reason::NotPeer,
                kind: TunnelKind::Ip6in4,
                action: Action::Drop,
                packets: 2,
                bytes: 180,
            },
            CounterRow {
                program: Program::Tc,
                reason: Reason::Encap,
                kind: TunnelKind::Ip4in4,
                action: Action::Pass,
                packets: 3,
                bytes: 4000,
            },
        ];
        assert_eq!(
            format(&rows, false),
            "PROGRAM  REASON    KIND  ACTION    PACKETS  BYTES\n\
             xdp      encap     4in6  redirect       10   1000\n\
             xdp      not_peer  6in4  drop            2    180\n\
             xdp      total                          12   1180\n\
             tc       encap     4in4  pass            3   4000\n\
             tc       total                           3   4000\n"
        );
        assert_eq!(
            format(&rows[1..], true),
            "[{\"action\":\"drop\",\"bytes\":180,\"kind\":\"6in4\",\"packets\":2,\"program\":\"xdp\",\"reason\":\"not_peer\"},\
             {\"action\":\"pass\",\"bytes\":4000,\"kind\":\"4in4\",\"packets\":3,\"program\":\"tc\",\"reason\":\"encap\"}]\n"
        );
        assert_eq!(format(&[], true), "[]\n");
        assert_eq!(
            format(&[], false),
            "PROGRAM  REASON  KIND  ACTION  PACKETS  BYTES\n\
             xdp      total                       0      0\n\
             tc       total                       0      0\n"
        );
    }
}
