//! `vdmm-ctl natpt ...`: the IPv4/IPv6 transition gateway (SIIT translator settings,
//! RFC 7757 EAMT, IPv4 address pool, IPv6 prefixes of IPv4 segments). Arguments are
//! parsed completely before anything else; with an agent running, a change becomes a
//! [`NatptOp`] that the agent checks and applies; without one, the maps are opened and
//! [`crate::natpt::Translator`] checks a request against the tables before it writes.
//! Either way bad input changes nothing.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
};

use serde_json::{Value, json};
use vdmm_common::translate::maps::{XLAT_RESET_TRAFFIC_CLASS, XLAT_UDP_ZERO_DROP, XlatConfig};

use super::agent;
use crate::{
    addr::{Family, Prefix, parse_addr},
    agent::{natpt_state::NatptOp, state::Op},
    cli::{
        EamCommand, MtuCommand, NatptCommand, PoolCommand, PrefixCommand, Rfc6791Command,
        RouteCommand, SegmentCommand, TrafficClassArg, UdpZeroArg,
    },
    error::{Error, Result},
    natpt::{
        Allocation, Eam, NatptState, Pool, Segment, Translator, XlatChange, lowest_mtu, parse_mtu,
        parse_prefix_of, parse_prefix6, pool6, prefix6_display, rfc6791,
    },
    pin::PinDir,
    table::{Align, render},
};

/// `vdmm-ctl natpt ...`: a changing command goes through the agent when one listens on
/// `socket` (as `binding add` does), else, and for reading commands and `route`, [`run`]
/// works on the maps.
pub fn run_or_ask_agent(socket: &Path, pins: &PinDir, cmd: NatptCommand) -> Result<String> {
    if let Some(op) = op_for(&cmd)?
        && let Some(result) = agent::apply_through_agent(socket, pins, vec![Op::Natpt(op)])?
    {
        return agent_output(&cmd, &result);
    }
    run(pins, cmd)
}

/// The agent op of a command that changes the translation configuration, its arguments
/// parsed as [`run`] parses them; None for the reading commands and `route` (routes are
/// not part of the desired state).
pub fn op_for(cmd: &NatptCommand) -> Result<Option<NatptOp>> {
    let v4 = |what: &str, text: &str| parse_prefix_of(Family::V4, what, text);
    Ok(Some(match cmd {
        NatptCommand::Prefix(PrefixCommand::Set { prefix }) => NatptOp::PrefixSet {
            prefix: parse_prefix6(prefix)?,
        },
        NatptCommand::Prefix(PrefixCommand::Clear { prefix }) => NatptOp::PrefixClear {
            prefix: prefix.as_deref().map(parse_prefix6).transpose()?,
        },
        NatptCommand::Rfc6791(Rfc6791Command::Set { addr }) => NatptOp::Rfc6791Set {
            addr: parse_addr(addr)?,
        },
        NatptCommand::Rfc6791(Rfc6791Command::Clear { addr }) => NatptOp::Rfc6791Clear {
            addr: addr.as_deref().map(parse_addr).transpose()?,
        },
        NatptCommand::Mtu(MtuCommand::Set { mtu }) => NatptOp::Mtu {
            mtu: Some(parse_mtu(mtu)? as u32),
        },
        NatptCommand::Mtu(MtuCommand::Clear) => NatptOp::Mtu { mtu: None },
        NatptCommand::UdpZeroChecksum { action } => NatptOp::UdpZeroChecksum {
            drop: *action == UdpZeroArg::Drop,
        },
        NatptCommand::TrafficClass { action } => NatptOp::TrafficClass {
            reset: *action == TrafficClassArg::Reset,
        },
        NatptCommand::Eam(EamCommand::Add { prefix6, prefix4 }) => {
            let e = parse_eam(prefix6, prefix4)?;
            NatptOp::EamAdd {
                prefix6: e.v6,
                prefix4: e.v4,
            }
        }
        NatptCommand::Eam(EamCommand::Del { prefix6, prefix4 }) => {
            let e = parse_eam(prefix6, prefix4)?;
            NatptOp::EamDel {
                prefix6: e.v6,
                prefix4: e.v4,
            }
        }
        NatptCommand::Pool(PoolCommand::Add { prefix }) => NatptOp::PoolAdd {
            prefix: v4("address pool", prefix)?,
        },
        NatptCommand::Pool(PoolCommand::Del { prefix, force }) => NatptOp::PoolDel {
            prefix: v4("address pool", prefix)?,
            force: *force,
        },
        NatptCommand::Pool(PoolCommand::Alloc { ipv6, from, .. }) => NatptOp::PoolAlloc {
            ipv6: IpAddr::V6(crate::natpt::alloc_ipv6(parse_addr(ipv6)?)?),
            from: from.as_deref().map(|f| v4("pool", f)).transpose()?,
        },
        NatptCommand::Pool(PoolCommand::Release { addr }) => NatptOp::PoolRelease {
            addr: parse_addr(addr)?,
        },
        NatptCommand::Segment(SegmentCommand::Add {
            prefix4,
            prefix6,
            replace,
        }) => NatptOp::SegmentAdd {
            prefix4: v4("segment", prefix4)?,
            prefix6: parse_prefix6(prefix6)?,
            replace: *replace,
        },
        NatptCommand::Segment(SegmentCommand::Del { prefix4 }) => NatptOp::SegmentDel {
            prefix4: v4("segment", prefix4)?,
        },
        _ => return Ok(None),
    }))
}

/// What a command prints after the agent applied it: what [`run`] prints (`pool alloc`
/// its allocation, `pool release|del` what they released), then the agent's warnings.
fn agent_output(cmd: &NatptCommand, result: &Value) -> Result<String> {
    let allocations = |field: &str| -> Vec<Allocation> {
        result["natpt"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                Some(Allocation {
                    ipv4: a["ipv4"].as_str()?.parse().ok()?,
                    ipv6: a["ipv6"].as_str()?.parse().ok()?,
                })
            })
            .collect()
    };
    let mut out = match cmd {
        NatptCommand::Pool(PoolCommand::Alloc { json, .. }) => {
            let a = allocations("allocated").into_iter().next().ok_or_else(|| {
                Error::Agent("the agent's answer does not name the allocation".into())
            })?;
            format_allocation(&a, *json)
        }
        NatptCommand::Pool(PoolCommand::Del { .. } | PoolCommand::Release { .. }) => {
            allocations("released")
                .iter()
                .map(|a| format!("released {} (was {})\n", a.ipv4, a.ipv6))
                .collect()
        }
        _ => String::new(),
    };
    out.push_str(&agent::apply_output(result));
    Ok(out)
}

pub fn run(pins: &PinDir, cmd: NatptCommand) -> Result<String> {
    match cmd {
        NatptCommand::Prefix(c) => {
            let change = match c {
                PrefixCommand::Set { prefix } => XlatChange::SetPrefix(parse_prefix6(&prefix)?),
                PrefixCommand::Clear { prefix } => {
                    XlatChange::ClearPrefix(prefix.as_deref().map(parse_prefix6).transpose()?)
                }
            };
            change_config(pins, change)
        }
        NatptCommand::Rfc6791(c) => {
            let change = match c {
                Rfc6791Command::Set { addr } => XlatChange::SetRfc6791(parse_addr(&addr)?),
                Rfc6791Command::Clear { addr } => {
                    XlatChange::ClearRfc6791(addr.as_deref().map(parse_addr).transpose()?)
                }
            };
            change_config(pins, change)
        }
        NatptCommand::Mtu(c) => {
            let change = match c {
                MtuCommand::Set { mtu } => XlatChange::Mtu(Some(parse_mtu(&mtu)?)),
                MtuCommand::Clear => XlatChange::Mtu(None),
            };
            let cfg = Translator::open(pins)?.change(change)?;
            crate::routes::frag_routes_set_mtu(pins, crate::natpt::lowest_mtu(&cfg))?;
            Ok(String::new())
        }
        NatptCommand::UdpZeroChecksum { action } => {
            change_config(pins, XlatChange::UdpZeroDrop(action == UdpZeroArg::Drop))
        }
        NatptCommand::TrafficClass { action } => change_config(
            pins,
            XlatChange::ResetTrafficClass(action == TrafficClassArg::Reset),
        ),
        NatptCommand::Route(c) => route(pins, c),
        NatptCommand::Eam(c) => eam(pins, c),
        NatptCommand::Pool(c) => pool(pins, c),
        NatptCommand::Segment(c) => segment(pins, c),
        NatptCommand::List { json } => Ok(format_state(&Translator::open(pins)?.state()?, json)),
    }
}

fn change_config(pins: &PinDir, change: XlatChange) -> Result<String> {
    Translator::open(pins)?.change(change)?;
    Ok(String::new())
}

/// The two prefixes of an EAMT entry, accepted in either order.
fn parse_eam(a: &str, b: &str) -> Result<Eam> {
    let pa: Prefix = a.parse()?;
    let pb: Prefix = b.parse()?;
    match (pa.family(), pb.family()) {
        (Family::V6, Family::V4) => Eam::new(pa, pb),
        (Family::V4, Family::V6) => Eam::new(pb, pa),
        _ => Err(Error::Conflict(format!(
            "an EAMT entry needs one IPv6 and one IPv4 prefix, not {pa} and {pb}"
        ))),
    }
}

/// `natpt route add|del`: see [`crate::routes::frag_route_add`].
fn route(pins: &PinDir, cmd: RouteCommand) -> Result<String> {
    match cmd {
        RouteCommand::Add { prefix } => {
            let p = parse_prefix_of(Family::V4, "fragmentation route", &prefix)?;
            let lowest = crate::natpt::lowest_mtu(&Translator::open(pins)?.config()?);
            match crate::routes::frag_route_add(pins, p, lowest)? {
                Some(r) => Ok(format!("{r}\n")),
                None => Err(Error::Conflict(format!(
                    "{} does not exist: `vdmm-ctl load --iface IFACE` creates it",
                    crate::device::FRAG_TX
                ))),
            }
        }
        RouteCommand::Del { prefix } => {
            let p = parse_prefix_of(Family::V4, "fragmentation route", &prefix)?;
            if crate::routes::frag_route_del(pins, p)? {
                Ok(String::new())
            } else {
                Err(Error::Conflict(format!(
                    "no fragmentation route for {p} into {}",
                    crate::device::FRAG_TX
                )))
            }
        }
    }
}

/// After an EAMT entry (or pool allocation) appeared: its IPv4 prefix is routed into the
/// fragmentation slow path (when the pair exists). If the kernel refuses, the entry is
/// removed again.
fn eam_route(pins: &PinDir, t: &mut Translator, e: Eam) -> Result<()> {
    let lowest = crate::natpt::lowest_mtu(&t.config()?);
    if let Err(err) = crate::routes::frag_route_add(pins, e.v4, lowest) {
        let _ = t.del_eam(e);
        return Err(err);
    }
    Ok(())
}

fn eam(pins: &PinDir, cmd: EamCommand) -> Result<String> {
    match cmd {
        EamCommand::Add { prefix6, prefix4 } => {
            let e = parse_eam(&prefix6, &prefix4)?;
            let mut t = Translator::open(pins)?;
            t.add_eam(e)?;
            eam_route(pins, &mut t, e)?;
            Ok(String::new())
        }
        EamCommand::Del { prefix6, prefix4 } => {
            let e = parse_eam(&prefix6, &prefix4)?;
            Translator::open(pins)?.del_eam(e)?;
            crate::routes::frag_route_del(pins, e.v4)?;
            Ok(String::new())
        }
        EamCommand::List { json } => {
            let t = Translator::open(pins)?;
            let eamt = t.eamt()?;
            let pools = t.pools()?;
            Ok(format_eamt(&eamt, &pools, json))
        }
    }
}

fn pool(pins: &PinDir, cmd: PoolCommand) -> Result<String> {
    match cmd {
        PoolCommand::Add { prefix } => {
            let p = parse_prefix_of(Family::V4, "address pool", &prefix)?;
            Translator::open(pins)?.add_pool(p)?;
            Ok(String::new())
        }
        PoolCommand::Del { prefix, force } => {
            let p = parse_prefix_of(Family::V4, "address pool", &prefix)?;
            let released = Translator::open(pins)?.del_pool(p, force)?;
            for a in &released {
                crate::routes::frag_route_del(pins, crate::natpt::allocation_eam(a).v4)?;
            }
            Ok(released
                .iter()
                .map(|a| format!("released {} (was {})\n", a.ipv4, a.ipv6))
                .collect())
        }
        PoolCommand::List { json } => Ok(format_pools(&Translator::open(pins)?.pools()?, json)),
        PoolCommand::Alloc { ipv6, from, json } => {
            let v6 = crate::natpt::alloc_ipv6(parse_addr(&ipv6)?)?;
            let from = from
                .as_deref()
                .map(|f| parse_prefix_of(Family::V4, "pool", f))
                .transpose()?;
            let mut t = Translator::open(pins)?;
            let a = t.alloc(v6, from)?;
            eam_route(pins, &mut t, crate::natpt::allocation_eam(&a))?;
            Ok(format_allocation(&a, json))
        }
        PoolCommand::Release { addr } => {
            let addr = parse_addr(&addr)?;
            let a = Translator::open(pins)?.release(addr)?;
            crate::routes::frag_route_del(pins, crate::natpt::allocation_eam(&a).v4)?;
            Ok(format!("released {} (was {})\n", a.ipv4, a.ipv6))
        }
    }
}

fn segment(pins: &PinDir, cmd: SegmentCommand) -> Result<String> {
    match cmd {
        SegmentCommand::Add {
            prefix4,
            prefix6,
            replace,
        } => {
            let s = Segment {
                v4: parse_prefix_of(Family::V4, "segment", &prefix4)?,
                prefix6: parse_prefix6(&prefix6)?,
            };
            Translator::open(pins)?.add_segment(s, replace)?;
            Ok(String::new())
        }
        SegmentCommand::Del { prefix4 } => {
            let v4 = parse_prefix_of(Family::V4, "segment", &prefix4)?;
            Translator::open(pins)?.del_segment(v4)?;
            Ok(String::new())
        }
        SegmentCommand::List { json } => {
            Ok(format_segments(&Translator::open(pins)?.segments()?, json))
        }
        SegmentCommand::Coa { addr, json } => {
            let a: Ipv4Addr = match parse_addr(&addr)? {
                IpAddr::V4(a) => a,
                IpAddr::V6(a) => {
                    return Err(Error::Conflict(format!(
                        "segment coa takes an IPv4 care-of address, not {a}"
                    )));
                }
            };
            let segs = Translator::open(pins)?.segments()?;
            let (s, coa) = crate::natpt::segment_coa(&segs, a)?;
            Ok(if json {
                format!(
                    "{}\n",
                    json!({
                        "ipv4": a.to_string(),
                        "segment": s.v4.to_string(),
                        "prefix6": prefix6_display(&s.prefix6).to_string(),
                        "ipv6": coa.to_string(),
                    })
                )
            } else {
                format!("{coa}\n")
            })
        }
    }
}

// ----- output -----

/// `pool alloc`: the IPv4 address, or `{"ipv4", "ipv6"}`.
pub fn format_allocation(a: &Allocation, json: bool) -> String {
    if json {
        format!(
            "{}\n",
            json!({"ipv4": a.ipv4.to_string(), "ipv6": a.ipv6.to_string()})
        )
    } else {
        format!("{}\n", a.ipv4)
    }
}

/// The pool an EAMT entry is an allocation of.
fn pool_of<'a>(e: &Eam, pools: &'a [Pool]) -> Option<&'a Pool> {
    pools.iter().find(|p| {
        p.allocations
            .iter()
            .any(|a| IpAddr::V4(a.ipv4) == e.v4.addr() && IpAddr::V6(a.ipv6) == e.v6.addr())
    })
}

fn eamt_json(eamt: &[Eam], pools: &[Pool]) -> Value {
    Value::from(
        eamt.iter()
            .map(|e| {
                json!({
                    "ipv6": e.v6.to_string(),
                    "ipv4": e.v4.to_string(),
                    "pool": pool_of(e, pools).map(|p| p.prefix.to_string()),
                })
            })
            .collect::<Vec<_>>(),
    )
}

/// A table IPV6 IPV4 POOL, or a JSON array of `{ipv6, ipv4, pool}`.
pub fn format_eamt(eamt: &[Eam], pools: &[Pool], json: bool) -> String {
    if json {
        return format!("{}\n", eamt_json(eamt, pools));
    }
    let rows: Vec<Vec<String>> = eamt
        .iter()
        .map(|e| {
            vec![
                e.v6.to_string(),
                e.v4.to_string(),
                pool_of(e, pools).map_or_else(|| "-".into(), |p| p.prefix.to_string()),
            ]
        })
        .collect();
    render(
        &[
            ("IPV6", Align::Left),
            ("IPV4", Align::Left),
            ("POOL", Align::Left),
        ],
        &rows,
    )
}

fn pools_json(pools: &[Pool]) -> Value {
    Value::from(
        pools
            .iter()
            .map(|p| {
                json!({
                    "prefix": p.prefix.to_string(),
                    "size": p.size(),
                    "allocated": p.allocations.len(),
                    "mapped_otherwise": p.mapped_otherwise,
                    "free": p.free(),
                    "allocations": p.allocations.iter().map(|a| json!({
                        "ipv4": a.ipv4.to_string(),
                        "ipv6": a.ipv6.to_string(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect::<Vec<_>>(),
    )
}

/// A table PREFIX SIZE ALLOCATED MAPPED FREE followed by the allocations, or a JSON
/// array of `{prefix, size, allocated, mapped_otherwise, free, allocations}`.
pub fn format_pools(pools: &[Pool], json: bool) -> String {
    if json {
        return format!("{}\n", pools_json(pools));
    }
    let rows: Vec<Vec<String>> = pools
        .iter()
        .map(|p| {
            vec![
                p.prefix.to_string(),
                p.size().to_string(),
                p.allocations.len().to_string(),
                p.mapped_otherwise.to_string(),
                p.free().to_string(),
            ]
        })
        .collect();
    let mut out = render(
        &[
            ("PREFIX", Align::Left),
            ("SIZE", Align::Right),
            ("ALLOCATED", Align::Right),
            ("MAPPED", Align::Right),
            ("FREE", Align::Right),
        ],
        &rows,
    );
    let allocs: Vec<Vec<String>> = pools
        .iter()
        .flat_map(|p| {
            p.allocations
                .iter()
                .map(|a| vec![a.ipv4.to_string(), a.ipv6.to_string(), p.prefix.to_string()])
        })
        .collect();
    if !allocs.is_empty() {
        out.push('\n');
        out.push_str(&render(
            &[
                ("ALLOCATED", Align::Left),
                ("TO", Align::Left),
                ("POOL", Align::Left),
            ],
            &allocs,
        ));
    }
    out
}

fn segments_json(segments: &[Segment]) -> Value {
    Value::from(
        segments
            .iter()
            .map(|s| {
                json!({
                    "ipv4": s.v4.to_string(),
                    "prefix6": prefix6_display(&s.prefix6).to_string(),
                })
            })
            .collect::<Vec<_>>(),
    )
}

/// A table SEGMENT PREFIX6, or a JSON array of `{ipv4, prefix6}`.
pub fn format_segments(segments: &[Segment], json: bool) -> String {
    if json {
        return format!("{}\n", segments_json(segments));
    }
    let rows: Vec<Vec<String>> = segments
        .iter()
        .map(|s| vec![s.v4.to_string(), prefix6_display(&s.prefix6).to_string()])
        .collect();
    render(&[("SEGMENT", Align::Left), ("PREFIX6", Align::Left)], &rows)
}

fn udp_zero(cfg: &XlatConfig) -> &'static str {
    if cfg.flags & XLAT_UDP_ZERO_DROP != 0 {
        "drop"
    } else {
        "compute"
    }
}

fn traffic_class(cfg: &XlatConfig) -> &'static str {
    if cfg.flags & XLAT_RESET_TRAFFIC_CLASS != 0 {
        "reset"
    } else {
        "copy"
    }
}

/// `natpt list`: the settings, then the EAMT, the pools and the segments.
pub fn format_state(s: &NatptState, json: bool) -> String {
    let cfg = &s.config;
    let prefix = pool6(cfg).map(|p| prefix6_display(&p).to_string());
    let r4 = rfc6791(cfg, Family::V4);
    let r6 = rfc6791(cfg, Family::V6);
    if json {
        let mut v = json!({
            "prefix": prefix,
            "rfc6791_v4": r4.map(|a| a.to_string()),
            "rfc6791_v6": r6.map(|a| a.to_string()),
            "lowest_ipv6_mtu": lowest_mtu(cfg),
            "udp_zero_checksum": udp_zero(cfg),
            "traffic_class": traffic_class(cfg),
            "flags": cfg.flags,
            "eamt": eamt_json(&s.eamt, &s.pools),
            "pools": pools_json(&s.pools),
            "segments": segments_json(&s.segments),
        });
        if !s.eamt_inconsistent.is_empty() {
            v["eamt_inconsistent"] = Value::from(s.eamt_inconsistent.clone());
        }
        return format!("{v}\n");
    }
    let unset_src = |f: &str| format!("unset (the tunnel config's ICMP source {f} is used)");
    let mut out = format!(
        "RFC 6052 prefix:   {}\n\
         RFC 6791 IPv4:     {}\n\
         RFC 6791 IPv6:     {}\n\
         lowest IPv6 MTU:   {}{}\n\
         UDP checksum zero: {}\n\
         traffic class:     {}\n",
        prefix.unwrap_or_else(|| "unset (EAMT only)".into()),
        r4.map_or_else(|| unset_src("IPv4"), |a| a.to_string()),
        r6.map_or_else(|| unset_src("IPv6"), |a| a.to_string()),
        lowest_mtu(cfg),
        if cfg.lowest_ipv6_mtu == 0 {
            " (default)"
        } else {
            ""
        },
        udp_zero(cfg),
        traffic_class(cfg),
    );
    out.push_str(&format!("\nEAMT (RFC 7757), {} entries:\n", s.eamt.len()));
    out.push_str(&format_eamt(&s.eamt, &s.pools, false));
    for w in &s.eamt_inconsistent {
        out.push_str(&format!("warning: {w}\n"));
    }
    out.push_str(&format!("\naddress pools, {}:\n", s.pools.len()));
    out.push_str(&format_pools(&s.pools, false));
    out.push_str(&format!("\nsegments, {}:\n", s.segments.len()));
    out.push_str(&format_segments(&s.segments, false));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::natpt::{allocation_eam, pool_usage};

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn state() -> NatptState {
        let alloc = Allocation {
            ipv4: "192.0.2.1".parse().unwrap(),
            ipv6: "2001:db8:1::7".parse().unwrap(),
        };
        let eamt = vec![
            allocation_eam(&alloc),
            Eam::new(p("2001:db8:6::/120"), p("198.51.100.0/24")).unwrap(),
        ];
        let pools = pool_usage(&[p("192.0.2.0/30")], &eamt);
        NatptState {
            config: XlatConfig {
                pool6: parse_prefix6("64:ff9b::/96").unwrap(),
                rfc6791_v4: [192, 0, 2, 254],
                flags: XLAT_UDP_ZERO_DROP,
                ..Default::default()
            },
            eamt,
            eamt_inconsistent: vec![],
            pools,
            segments: vec![Segment {
                v4: p("10.0.0.0/8"),
                prefix6: parse_prefix6("2001:db8:a::/96").unwrap(),
            }],
        }
    }

    #[test]
    fn list_text() {
        assert_eq!(
            format_state(&state(), false),
            "RFC 6052 prefix:   64:ff9b::/96\n\
             RFC 6791 IPv4:     192.0.2.254\n\
             RFC 6791 IPv6:     unset (the tunnel config's ICMP source IPv6 is used)\n\
             lowest IPv6 MTU:   1280 (default)\n\
             UDP checksum zero: drop\n\
             traffic class:     copy\n\
             \n\
             EAMT (RFC 7757), 2 entries:\n\
             IPV6               IPV4             POOL\n\
             2001:db8:1::7/128  192.0.2.1/32     192.0.2.0/30\n\
             2001:db8:6::/120   198.51.100.0/24  -\n\
             \n\
             address pools, 1:\n\
             PREFIX        SIZE  ALLOCATED  MAPPED  FREE\n\
             192.0.2.0/30     2          1       0     1\n\
             \n\
             ALLOCATED  TO             POOL\n\
             192.0.2.1  2001:db8:1::7  192.0.2.0/30\n\
             \n\
             segments, 1:\n\
             SEGMENT     PREFIX6\n\
             10.0.0.0/8  2001:db8:a::/96\n"
        );
    }

    #[test]
    fn list_json() {
        let v: Value = serde_json::from_str(&format_state(&state(), true)).unwrap();
        assert_eq!(v["prefix"], "64:ff9b::/96");
        assert_eq!(v["rfc6791_v4"], "192.0.2.254");
        assert_eq!(v["rfc6791_v6"], Value::Null);
        assert_eq!(v["lowest_ipv6_mtu"], 1280);
        assert_eq!(v["udp_zero_checksum"], "drop");
        assert_eq!(v["flags"], 1);
        assert_eq!(
            v["eamt"][0],
            json!({"ipv6": "2001:db8:1::7/128", "ipv4": "192.0.2.1/32", "pool": "192.0.2.0/30"})
        );
        assert_eq!(v["eamt"][1]["pool"], Value::Null);
        assert_eq!(
            v["pools"][0],
            json!({"prefix": "192.0.2.0/30", "size": 2, "allocated": 1, "mapped_otherwise": 0,
                   "free": 1, "allocations": [{"ipv4": "192.0.2.1", "ipv6": "2001:db8:1::7"}]})
        );
        assert_eq!(
            v["segments"],
            json!([{"ipv4": "10.0.0.0/8", "prefix6": "2001:db8:a::/96"}])
        );
    }

    #[test]
    fn eam_prefixes_in_either_order() {
        let a = parse_eam("2001:db8::/120", "10.0.0.0/24").unwrap();
        assert_eq!(parse_eam("10.0.0.0/24", "2001:db8::/120").unwrap(), a);
        assert!(parse_eam("10.0.0.0/24", "10.1.0.0/24").is_err());
        assert!(parse_eam("2001:db8::/120", "10.0.0.1/24").is_err());
        let a = Allocation {
            ipv4: "192.0.2.1".parse().unwrap(),
            ipv6: "2001:db8::1".parse().unwrap(),
        };
        assert_eq!(format_allocation(&a, false), "192.0.2.1\n");
        assert_eq!(
            format_allocation(&a, true),
            "{\"ipv4\":\"192.0.2.1\",\"ipv6\":\"2001:db8::1\"}\n"
        );
    }
}
