//! Prometheus metrics: a [`Snapshot`] of the pinned maps (the data plane's counters,
//! summed over CPUs, and the sizes of the control-plane tables), encoded with the
//! prometheus-client crate and served in the Prometheus text format 0.0.4 (see
//! [`text_format`]). `vdmm-ctl metrics` serves it over HTTP (read afresh on every scrape)
//! or prints it once.
//!
//! Counters: `vdmm_packets_total` and `vdmm_bytes_total`, labelled `program`, `reason`,
//! `kind`, `action` and `family` (see [`family_of`]). Only non-zero counters are exported
//! (a counter series appears with its first packet): every program, reason, kind and
//! action would be over 1800 series per metric, nearly all zero forever.
//!
//! Gauges: `vdmm_bindings{family}` (by the locator's family, both families always
//! present), `vdmm_endpoints`, `vdmm_peers`, `vdmm_eamt_entries`,
//! `vdmm_pool_addresses{pool}` and `vdmm_pool_allocated{pool}` (per pool prefix),
//! `vdmm_interfaces_attached` (interfaces `vdmm-ctl load --iface` attached), and
//! `vdmm_build_info{version}` (always 1).
//!
//! vAPs: the gauge `vdmm_vaps` and, per vAP, the counters `vdmm_vap_packets_total` and
//! `vdmm_vap_bytes_total` labelled `client` (the client MAC) and `counter` (from_client,
//! uplink, spoofed, replies, delivered, forwarded; see `vdmm-ctl vap show`), all six
//! exported for every vAP.
//!
//! Handover counters and histograms (`vdmm_handovers_*_total`,
//! `vdmm_handover_*_seconds`) come from the state file `vdmm-ctl vap move` keeps (see
//! [`crate::handover::stats`]).

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use vdmm_common::{TunnelKind, vap::VapCounters};

use crate::{
    addr::Family as AddrFamily,
    device,
    error::{Error, Result},
    maps::{CounterRow, Dataplane},
    natpt::Translator,
    pin::PinDir,
};

/// The `Content-Type` of [`encode_snapshot`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `family` label of a counter: the family of the packet the data plane works on.
/// For the tunnel kinds the inner packet's (4in6: ipv4), for the translation kinds the
/// source packet's (xlat4to6: ipv4), `none` when the kind says nothing about it.
pub const fn family_of(kind: TunnelKind) -> &'static str {
    match kind {
        TunnelKind::Ip4in4 | TunnelKind::Ip4in6 | TunnelKind::Xlat4to6 => "ipv4",
        TunnelKind::Ip6in4 | TunnelKind::Ip6in6 | TunnelKind::Xlat6to4 => "ipv6",
        TunnelKind::None => "none",
    }
}

/// One address pool's size and usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolGauge {
    /// The pool prefix, e.g. `192.0.2.0/24`.
    pub prefix: String,
    /// Addresses the pool can hand out.
    pub addresses: u64,
    /// Addresses handed out (allocations).
    pub allocated: u64,
}

/// Everything the metrics report, read from the pinned maps at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Non-zero counters of both programs, summed over CPUs.
    pub counters: Vec<CounterRow>,
    /// Bindings whose locator is IPv4.
    pub bindings_v4: u64,
    /// Bindings whose locator is IPv6.
    pub bindings_v6: u64,
    pub endpoints: u64,
    pub peers: u64,
    pub eamt_entries: u64,
    pub pools: Vec<PoolGauge>,
    /// Interfaces with an XDP link pin (`load --iface`), the translator's own `vdmmx1`
    /// not counted.
    pub interfaces_attached: u64,
    /// Every vAP (client MAC) with its counters, summed over CPUs.
    pub vaps: Vec<(String, VapCounters)>,
}

impl Snapshot {
    /// Reads the maps pinned under `pins` (errors when the data plane is not loaded).
    pub fn read(pins: &PinDir) -> Result<Self> {
        let dp = Dataplane::open(pins)?;
        let bindings = dp.bindings()?;
        let count = |f: AddrFamily| bindings.iter().filter(|b| b.outer() == f).count() as u64;
        let nat = Translator::open(pins)?;
        let state = nat.state()?;
        let mut vaps = Vec::new();
        for v in dp.vaps()? {
            vaps.push((v.client.to_string(), dp.vap_counters(v.client)?));
        }
        Ok(Self {
            counters: dp.counters()?,
            bindings_v4: count(AddrFamily::V4),
            bindings_v6: count(AddrFamily::V6),
            endpoints: dp.endpoints()?.len() as u64,
            peers: dp.peers()?.len() as u64,
            eamt_entries: state.eamt.len() as u64,
            pools: state
                .pools
                .iter()
                .map(|p| PoolGauge {
                    prefix: p.prefix.to_string(),
                    addresses: p.size(),
                    allocated: p.allocations.len() as u64,
                })
                .collect(),
            interfaces_attached: pins
                .linked_interfaces()?
                .iter()
                .filter(|i| *i != device::FRAG_RX)
                .count() as u64,
            vaps,
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CounterLabels {
    program: &'static str,
    reason: &'static str,
    kind: &'static str,
    action: &'static str,
    family: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabel {
    family: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VapLabels {
    client: String,
    counter: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g = Gauge::<i64>::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

/// The Prometheus text format 0.0.4 of prometheus-client's OpenMetrics text: a counter
/// family's `# HELP` and `# TYPE` lines name its samples (`vdmm_packets_total`, where
/// OpenMetrics says `vdmm_packets`), and there is no `# EOF`. Every Prometheus server
/// scrapes this format, and `promtool check metrics` (which reads only this one) accepts
/// it. The samples of each family are sorted (prometheus-client emits them in hash
/// order), so equal snapshots give equal text.
pub fn text_format(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64);
    let mut samples: Vec<&str> = Vec::new();
    let flush = |samples: &mut Vec<&str>, out: &mut String| {
        samples.sort_unstable();
        for s in samples.drain(..) {
            out.push_str(s);
            out.push('\n');
        }
    };
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                flush(&mut samples, &mut out);
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(&name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}\n"));
            }
            None => samples.push(line),
        }
    }
    flush(&mut samples, &mut out);
    out
}

/// The snapshot in the Prometheus text format 0.0.4.
pub fn encode_snapshot(s: &Snapshot) -> Result<String> {
    let mut registry = Registry::default();

    let packets = Family::<CounterLabels, Counter>::default();
    let bytes = Family::<CounterLabels, Counter>::default();
    for r in &s.counters {
        let labels = CounterLabels {
            program: r.program.name(),
            reason: r.reason.name(),
            kind: r.kind.name(),
            action: r.action.name(),
            family: family_of(r.kind),
        };
        packets.get_or_create(&labels).inc_by(r.packets);
        bytes.get_or_create(&labels).inc_by(r.bytes);
    }
    // The `_total` suffix is added by the encoder.
    registry.register(
        "vdmm_packets",
        "Packets the data plane handled, by program (xdp: received, tc: slow path), reason, tunnel or translation kind, action and family, summed over CPUs",
        packets,
    );
    registry.register(
        "vdmm_bytes",
        "Bytes (frame lengths on entry) the data plane handled, with the labels of vdmm_packets_total",
        bytes,
    );

    let bindings = Family::<FamilyLabel, Gauge>::default();
    bindings
        .get_or_create(&FamilyLabel { family: "ipv4" })
        .set(s.bindings_v4 as i64);
    bindings
        .get_or_create(&FamilyLabel { family: "ipv6" })
        .set(s.bindings_v6 as i64);
    registry.register(
        "vdmm_bindings",
        "Bindings (home prefix to locator), by the locator's (outer) family",
        bindings,
    );
    gauge(
        &mut registry,
        "vdmm_endpoints",
        "Local tunnel endpoints",
        s.endpoints,
    );
    gauge(
        &mut registry,
        "vdmm_peers",
        "Tunnel peers allowed to send tunnel packets",
        s.peers,
    );
    gauge(
        &mut registry,
        "vdmm_eamt_entries",
        "Explicit address mappings (RFC 7757 EAMT entries, pool allocations included)",
        s.eamt_entries,
    );

    let addresses = Family::<PoolLabel, Gauge>::default();
    let allocated = Family::<PoolLabel, Gauge>::default();
    for p in &s.pools {
        let label = PoolLabel {
            pool: p.prefix.clone(),
        };
        addresses
            .get_or_create(&label)
            .set(i64::try_from(p.addresses).unwrap_or(i64::MAX));
        allocated
            .get_or_create(&label)
            .set(i64::try_from(p.allocated).unwrap_or(i64::MAX));
    }
    registry.register(
        "vdmm_pool_addresses",
        "Addresses an IPv4 address pool can hand out, by pool prefix",
        addresses,
    );
    registry.register(
        "vdmm_pool_allocated",
        "Addresses of an IPv4 address pool handed out, by pool prefix",
        allocated,
    );
    gauge(
        &mut registry,
        "vdmm_interfaces_attached",
        "Interfaces the XDP program is attached to (load --iface)",
        s.interfaces_attached,
    );

    gauge(
        &mut registry,
        "vdmm_vaps",
        "Virtual access points (vAPs) on this AP host",
        s.vaps.len() as u64,
    );
    let vap_packets = Family::<VapLabels, Counter>::default();
    let vap_bytes = Family::<VapLabels, Counter>::default();
    for (client, c) in &s.vaps {
        for (counter, v) in [
            ("from_client", c.from_client),
            ("uplink", c.uplink),
            ("spoofed", c.spoofed),
            ("replies", c.replies),
            ("delivered", c.delivered),
            ("forwarded", c.forwarded),
        ] {
            let labels = VapLabels {
                client: client.clone(),
                counter,
            };
            vap_packets.get_or_create(&labels).inc_by(v.packets);
            vap_bytes.get_or_create(&labels).inc_by(v.bytes);
        }
    }
    registry.register(
        "vdmm_vap_packets",
        "Packets of one vAP, by client MAC and counter (as in vdmm-ctl vap show), summed over CPUs",
        vap_packets,
    );
    registry.register(
        "vdmm_vap_bytes",
        "Bytes (frame lengths on entry) of one vAP, with the labels of vdmm_vap_packets_total",
        vap_bytes,
    );

    let build = Family::<VersionLabel, Gauge>::default();
    build
        .get_or_create(&VersionLabel {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
    registry.register(
        "vdmm_build_info",
        "Always 1; the version label is the vdmm-ctl version",
        build,
    );

    let mut out = String::new();
    encode(&mut out, &registry).map_err(|_| Error::Conflict("cannot encode the metrics".into()))?;
    Ok(text_format(&out))
}

/// Reads the maps pinned under `pins` and encodes them.
pub fn render(pins: &PinDir) -> Result<String> {
    let mut text = encode_snapshot(&Snapshot::read(pins)?)?;
    text.push_str(&crate::handover::stats::render_for_metrics());
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::Program;
    use vdmm_common::{Action, Reason};

    #[test]
    fn family_is_the_inner_or_source_family() {
        let want = [
            (TunnelKind::None, "none"),
            (TunnelKind::Ip4in4, "ipv4"),
            (TunnelKind::Ip6in4, "ipv6"),
            (TunnelKind::Ip4in6, "ipv4"),
            (TunnelKind::Ip6in6, "ipv6"),
            (TunnelKind::Xlat4to6, "ipv4"),
            (TunnelKind::Xlat6to4, "ipv6"),
        ];
        assert_eq!(want.len(), TunnelKind::ALL.len());
        for (k, f) in want {
            assert_eq!(family_of(k), f, "{}", k.name());
        }
    }

    #[test]
    fn encodes_counters_gauges_and_build_info() {
        let s = Snapshot {
            counters: vec![
                CounterRow {
                    program: Program::Xdp,
                    reason: Reason::Encap,
                    kind: TunnelKind::Ip6in4,
                    action: Action::Tx,
                    packets: 5,
                    bytes: 490,
                },
                CounterRow {
                    program: Program::Tc,
                    reason: Reason::Translated,
                    kind: TunnelKind::Xlat4to6,
                    action: Action::Redirect,
                    packets: 2,
                    bytes: 200,
                },
            ],
            bindings_v4: 3,
            bindings_v6: 1,
            endpoints: 2,
            peers: 4,
            eamt_entries: 6,
            pools: vec![PoolGauge {
                prefix: "192.0.2.0/24".into(),
                addresses: 254,
                allocated: 1,
            }],
            interfaces_attached: 1,
            vaps: vec![("00:16:3e:00:00:05".into(), {
                let mut c = VapCounters::default();
                c.spoofed.packets = 3;
                c.spoofed.bytes = 180;
                c
            })],
        };
        let out = encode_snapshot(&s).unwrap();
        for line in [
            "# TYPE vdmm_packets_total counter",
            "# TYPE vdmm_bytes_total counter",
            "vdmm_packets_total{program=\"xdp\",reason=\"encap\",kind=\"6in4\",action=\"tx\",family=\"ipv6\"} 5",
            "vdmm_packets_total{program=\"tc\",reason=\"translated\",kind=\"xlat4to6\",action=\"redirect\",family=\"ipv4\"} 2",
            "vdmm_bytes_total{program=\"xdp\",reason=\"encap\",kind=\"6in4\",action=\"tx\",family=\"ipv6\"} 490",
            "# TYPE vdmm_bindings gauge",
            "vdmm_bindings{family=\"ipv4\"} 3",
            "vdmm_bindings{family=\"ipv6\"} 1",
            "vdmm_endpoints 2",
            "vdmm_peers 4",
            "vdmm_eamt_entries 6",
            "vdmm_pool_addresses{pool=\"192.0.2.0/24\"} 254",
            "vdmm_pool_allocated{pool=\"192.0.2.0/24\"} 1",
            "vdmm_interfaces_attached 1",
            "vdmm_vaps 1",
            "vdmm_vap_packets_total{client=\"00:16:3e:00:00:05\",counter=\"spoofed\"} 3",
            "vdmm_vap_bytes_total{client=\"00:16:3e:00:00:05\",counter=\"spoofed\"} 180",
            "vdmm_vap_packets_total{client=\"00:16:3e:00:00:05\",counter=\"uplink\"} 0",
            &format!(
                "vdmm_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(out.lines().any(|l| l == line), "no line {line:?} in\n{out}");
        }
        assert!(!out.contains("# EOF"), "{out}");
        for l in out.lines().filter(|l| l.starts_with("# HELP ")) {
            assert!(l.split_whitespace().count() > 3, "help text missing: {l}");
        }
    }

    #[test]
    fn openmetrics_counters_become_text_format_counters() {
        let om = "# HELP a_b Things.\n# TYPE a_b counter\na_b_total{x=\"2\"} 1\n\
                  a_b_total{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            text_format(om),
            "# HELP a_b_total Things.\n# TYPE a_b_total counter\na_b_total{x=\"1\"} 3\n\
             a_b_total{x=\"2\"} 1\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
    }

    #[test]
    fn an_empty_snapshot_has_every_gauge_and_no_counter_series() {
        let out = encode_snapshot(&Snapshot::default()).unwrap();
        assert!(!out.contains("vdmm_packets_total{"), "{out}");
        assert!(out.contains("vdmm_bindings{family=\"ipv4\"} 0"), "{out}");
        assert!(out.contains("vdmm_bindings{family=\"ipv6\"} 0"), "{out}");
        assert!(out.contains("vdmm_peers 0"), "{out}");
        assert!(!out.contains("vdmm_pool_addresses{"), "{out}");
    }
}
