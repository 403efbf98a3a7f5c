//! `vdmm-ctl stats`: the data plane's per-CPU counters, summed.

use crate::{
    error::Result,
    maps::{CounterRow, Dataplane},
    pin::PinDir,
    table::{Align, render},
};

pub fn run(pins: &PinDir, json: bool) -> Result<String> {
    Ok(format(&Dataplane::open(pins)?.counters()?, json))
}

/// A table REASON KIND ACTION PACKETS BYTES with a total line, or a JSON array of
/// `{reason, kind, action, packets, bytes}`.
pub fn format(rows: &[CounterRow], json: bool) -> String {
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
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
    let mut cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.reason.name().to_string(),
                r.kind.name().to_string(),
                r.action.name().to_string(),
                r.packets.to_string(),
                r.bytes.to_string(),
            ]
        })
        .collect();
    let packets: u64 = rows.iter().map(|r| r.packets).sum();
    let bytes: u64 = rows.iter().map(|r| r.bytes).sum();
    cells.push(vec![
        "total".into(),
        String::new(),
        String::new(),
        packets.to_string(),
        bytes.to_string(),
    ]);
    render(
        &[
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
    fn table_has_totals_and_json_has_rows() {
        let rows = [
            CounterRow {
                reason: Reason::Encap,
                kind: TunnelKind::Ip4in6,
                action: Action::Redirect,
                packets: 10,
                bytes: 1000,
            },
            CounterRow {
                reason: Reason::NotPeer,
                kind: TunnelKind::Ip6in4,
                action: Action::Drop,
                packets: 2,
                bytes: 180,
            },
        ];
        assert_eq!(
            format(&rows, false),
            "REASON    KIND  ACTION    PACKETS  BYTES\n\
             encap     4in6  redirect       10   1000\n\
             not_peer  6in4  drop            2    180\n\
             total                          12   1180\n"
        );
        assert_eq!(
            format(&rows[1..], true),
            "[{\"action\":\"drop\",\"bytes\":180,\"kind\":\"6in4\",\"packets\":2,\"reason\":\"not_peer\"}]\n"
        );
        assert_eq!(format(&[], true), "[]\n");
    }
}
