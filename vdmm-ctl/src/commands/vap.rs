//! `vdmm-ctl vap create|delete|list|show|forward|events`: the vAPs of an AP host.
//!
//! When an agent listens on the control socket, `create`, `delete`, `list`, `show` and
//! `forward` go through it (so it stores the vAPs and keeps them in the maps), as the
//! binding commands do ([`super::agent::call_agent`]); without one they work on the
//! pinned maps. The output is the same either way. `events` reads the data plane's ring
//! buffer directly either way (the agent does not consume it), and `move` changes each
//! node of the cluster file through its agent when the file names one.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vdmm_common::vap::VapCounters;

use super::agent::call_agent;
use crate::{
    addr::parse_addr,
    agent::{api::Request, state::Op, vap_state::VapCreate},
    cli::VapCommand,
    error::{Error, Result},
    maps::Dataplane,
    pin::PinDir,
    table::{Align, render},
    vap::{self, Mac, VapEntry, VapReport},
};

pub fn run(pins: &PinDir, socket: &Path, cmd: VapCommand) -> Result<String> {
    let pin_dir = || Some(pins.path().to_path_buf());
    match cmd {
        VapCommand::Move {
            client,
            to,
            cluster,
            grace_ms,
            json,
        } => super::vap_move::run(&client, &to, &cluster, grace_ms, json),
        VapCommand::Create {
            client,
            ipv4,
            ipv6,
            anchor,
            source,
            vap_mac,
            iface,
            breakout,
        } => {
            // Parse everything before opening the maps: bad input changes nothing.
            let create = VapCreate {
                client: client.parse()?,
                ipv4: ipv4.as_deref().map(parse_addr).transpose()?,
                ipv6: ipv6.as_deref().map(parse_addr).transpose()?,
                anchor: anchor.as_deref().map(parse_addr).transpose()?,
                source: source.as_deref().map(parse_addr).transpose()?,
                vap_mac: vap_mac.as_deref().map(str::parse).transpose()?,
                iface,
                breakout,
            };
            let spec = create.spec()?;
            let request = Request::VapCreate {
                vap: create,
                pin_dir: pin_dir(),
            };
            if let Some(v) = call_agent(socket, &request)? {
                let mut out = match &v["vap"] {
                    Value::Null => String::new(),
                    shown => {
                        let (entry, counters) = show_of_json(shown)?;
                        format_show(&entry, &counters, false)
                    }
                };
                out.push_str(&agent_warnings(&v));
                return Ok(out);
            }
            let mut dp = Dataplane::open(pins)?;
            let entry = dp.add_vap(&spec)?;
            Ok(format_show(&entry, &VapCounters::default(), false))
        }
        VapCommand::Delete { client } => {
            let client: Mac = client.parse()?;
            let request = Request::VapDelete {
                client,
                pin_dir: pin_dir(),
            };
            let (client, vap_mac, warnings) = match call_agent(socket, &request)? {
                Some(v) => (
                    client,
                    v["vap"]["vap_mac"].as_str().unwrap_or("?").to_string(),
                    agent_warnings(&v),
                ),
                None => {
                    let e = Dataplane::open(pins)?.del_vap(client)?;
                    (e.client, e.vap_mac.to_string(), String::new())
                }
            };
            Ok(format!(
                "deleted the vAP of {client} (vAP MAC {vap_mac})\n{warnings}"
            ))
        }
        VapCommand::List { json } => {
            if let Some(v) = call_agent(socket, &Request::VapList { pin_dir: pin_dir() })? {
                if json {
                    return Ok(format!("{v}\n"));
                }
                let entries = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(entry_of_json)
                    .collect::<Result<Vec<_>>>()?;
                return Ok(format_list(&entries, false));
            }
            Ok(format_list(&Dataplane::open(pins)?.vaps()?, json))
        }
        VapCommand::Show { client, json } => {
            let client: Mac = client.parse()?;
            let request = Request::VapShow {
                client,
                pin_dir: pin_dir(),
            };
            if let Some(v) = call_agent(socket, &request)? {
                if json {
                    return Ok(format!("{v}\n"));
                }
                let (entry, counters) = show_of_json(&v)?;
                return Ok(format_show(&entry, &counters, false));
            }
            let dp = Dataplane::open(pins)?;
            let entry = dp.vap(client)?;
            let counters = dp.vap_counters(client)?;
            Ok(format_show(&entry, &counters, json))
        }
        VapCommand::Forward {
            client,
            to,
            source,
            off,
        } => {
            let client: Mac = client.parse()?;
            let target = match (to, off) {
                (Some(to), false) => Some((
                    parse_addr(&to)?,
                    source.as_deref().map(parse_addr).transpose()?,
                )),
                _ => None,
            };
            let op = Op::VapForward {
                client,
                to: target.map(|(t, _)| t),
                source: target.and_then(|(_, s)| s),
            };
            let (entry, warnings) = match super::agent::through_agent(socket, pins, vec![op])? {
                Some(warnings) => {
                    let request = Request::VapShow {
                        client,
                        pin_dir: pin_dir(),
                    };
                    let v = call_agent(socket, &request)?.ok_or_else(|| {
                        Error::Agent("the agent went away after the change".into())
                    })?;
                    (show_of_json(&v)?.0, warnings)
                }
                None => (
                    Dataplane::open(pins)?.set_forward(client, target)?,
                    String::new(),
                ),
            };
            let said = match entry.forward {
                Some((to, from)) => format!(
                    "the vAP of {} forwards to {to} (from {from})\n",
                    entry.client
                ),
                None => format!("the vAP of {} delivers locally\n", entry.client),
            };
            Ok(said + &warnings)
        }
        VapCommand::Events { wait, json } => {
            let deadline = Instant::now() + Duration::from_secs(wait);
            let mut reports = vap::events(pins)?;
            while reports.is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
                reports = vap::events(pins)?;
            }
            Ok(format_events(&reports, json))
        }
    }
}

/// The agent's warnings about map writes it retries (`errors` of its answer).
fn agent_warnings(v: &Value) -> String {
    v["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "warning: {} (the agent retries it)\n",
                e.as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn iface_text(e: &VapEntry) -> String {
    e.iface
        .clone()
        .unwrap_or_else(|| format!("if{}", e.ifindex))
}

/// Where the client's traffic goes: `tunnel 192.0.2.1` or `breakout`.
fn uplink_text(e: &VapEntry) -> String {
    match (e.breakout, e.anchor) {
        (true, _) => "breakout".into(),
        (false, Some((a, _))) => format!("tunnel {a}"),
        (false, None) => "-".into(),
    }
}

/// `local` or `forward 192.0.2.12`.
fn mode_text(e: &VapEntry) -> String {
    match e.forward {
        Some((to, _)) => format!("forward {to}"),
        None => "local".into(),
    }
}

/// A vAP as `list --json` prints it (and the agent's vAP requests answer): every field of
/// [`VapEntry`], the anchor and forwarding target split in locator and source, and the
/// mode (`local` or `forward`).
#[derive(Serialize, Deserialize)]
struct VapView {
    client: Mac,
    vap_mac: Mac,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    anchor: Option<IpAddr>,
    source: Option<IpAddr>,
    breakout: bool,
    mode: String,
    forward_to: Option<IpAddr>,
    forward_source: Option<IpAddr>,
    iface: Option<String>,
    ifindex: u32,
    host_mac: Mac,
    slot: u32,
}

pub fn entry_json(e: &VapEntry) -> Value {
    serde_json::to_value(VapView {
        client: e.client,
        vap_mac: e.vap_mac,
        ipv4: e.ipv4,
        ipv6: e.ipv6,
        anchor: e.anchor.map(|(a, _)| a),
        source: e.anchor.map(|(_, s)| s),
        breakout: e.breakout,
        mode: e.mode().to_string(),
        forward_to: e.forward.map(|(a, _)| a),
        forward_source: e.forward.map(|(_, s)| s),
        iface: e.iface.clone(),
        ifindex: e.ifindex,
        host_mac: e.host_mac,
        slot: e.slot,
    })
    .expect("a vAP serializes")
}

/// The [`VapEntry`] of [`entry_json`]'s value (an agent's answer).
fn entry_of_json(v: &Value) -> Result<VapEntry> {
    let v = VapView::deserialize(v)
        .map_err(|e| Error::Agent(format!("cannot read the agent's vAP: {e}")))?;
    Ok(VapEntry {
        client: v.client,
        vap_mac: v.vap_mac,
        ipv4: v.ipv4,
        ipv6: v.ipv6,
        anchor: v.anchor.zip(v.source),
        breakout: v.breakout,
        forward: v.forward_to.zip(v.forward_source),
        ifindex: v.ifindex,
        iface: v.iface,
        host_mac: v.host_mac,
        slot: v.slot,
    })
}

/// The vAP and counters of [`show_json`]'s value.
fn show_of_json(v: &Value) -> Result<(VapEntry, VapCounters)> {
    let entry = entry_of_json(v)?;
    let mut c = VapCounters::default();
    for (name, field) in [
        ("from_client", &mut c.from_client),
        ("uplink", &mut c.uplink),
        ("spoofed", &mut c.spoofed),
        ("replies", &mut c.replies),
        ("delivered", &mut c.delivered),
        ("forwarded", &mut c.forwarded),
    ] {
        let n = &v["counters"][name];
        field.packets = n["packets"].as_u64().unwrap_or_default();
        field.bytes = n["bytes"].as_u64().unwrap_or_default();
    }
    Ok((entry, c))
}

/// A table CLIENT VAP_MAC IPV4 IPV6 UPLINK MODE IFACE, or a JSON array.
pub fn format_list(entries: &[VapEntry], json: bool) -> String {
    if json {
        let v: Vec<Value> = entries.iter().map(entry_json).collect();
        return format!("{}\n", Value::from(v));
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.client.to_string(),
                e.vap_mac.to_string(),
                opt(e.ipv4),
                opt(e.ipv6),
                uplink_text(e),
                mode_text(e),
                iface_text(e),
            ]
        })
        .collect();
    render(
        &[
            ("CLIENT", Align::Left),
            ("VAP_MAC", Align::Left),
            ("IPV4", Align::Left),
            ("IPV6", Align::Left),
            ("UPLINK", Align::Left),
            ("MODE", Align::Left),
            ("IFACE", Align::Left),
        ],
        &rows,
    )
}

/// The counters by name, in display order.
fn counter_fields(c: &VapCounters) -> [(&'static str, u64, u64); 6] {
    [
        ("from_client", c.from_client.packets, c.from_client.bytes),
        ("uplink", c.uplink.packets, c.uplink.bytes),
        ("spoofed", c.spoofed.packets, c.spoofed.bytes),
        ("replies", c.replies.packets, c.replies.bytes),
        ("delivered", c.delivered.packets, c.delivered.bytes),
        ("forwarded", c.forwarded.packets, c.forwarded.bytes),
    ]
}

/// The JSON of `show --json`: [`entry_json`] and `counters: {name: {packets, bytes}}`.
pub fn show_json(e: &VapEntry, c: &VapCounters) -> Value {
    let mut v = entry_json(e);
    let counters: serde_json::Map<String, Value> = counter_fields(c)
        .iter()
        .map(|(n, p, b)| (n.to_string(), json!({"packets": p, "bytes": b})))
        .collect();
    v["counters"] = Value::Object(counters);
    v
}

/// One vAP with its counters: `key: value` lines, or a JSON object (the list's fields
/// and `counters: {name: {packets, bytes}}`).
pub fn format_show(e: &VapEntry, c: &VapCounters, json: bool) -> String {
    if json {
        return format!("{}\n", show_json(e, c));
    }
    let mut out = format!(
        "client:    {}\nvap mac:   {}\nipv4:      {}\nipv6:      {}\nuplink:    {}\nmode:      {}\niface:     {} (mac {})\n",
        e.client,
        e.vap_mac,
        opt(e.ipv4),
        opt(e.ipv6),
        match (e.breakout, e.anchor) {
            (true, Some((a, _))) => format!("breakout (anchor {a})"),
            (false, Some((a, s))) => format!("tunnel to anchor {a} from {s}"),
            _ => uplink_text(e),
        },
        match e.forward {
            Some((to, from)) => format!("forward to {to} from {from}"),
            None => "local".into(),
        },
        iface_text(e),
        e.host_mac,
    );
    let rows: Vec<Vec<String>> = counter_fields(c)
        .iter()
        .map(|(n, p, b)| vec![n.to_string(), p.to_string(), b.to_string()])
        .collect();
    out.push_str(&render(
        &[
            ("COUNTER", Align::Left),
            ("PACKETS", Align::Right),
            ("BYTES", Align::Right),
        ],
        &rows,
    ));
    out
}

/// One line per report (`TIME_NS KIND MAC on IFACE ethertype 0x0800 from ADDR`), or a
/// JSON array.
pub fn format_events(reports: &[VapReport], json: bool) -> String {
    if json {
        let v: Vec<Value> = reports
            .iter()
            .map(|r| {
                json!({
                    "time_ns": r.time_ns,
                    "kind": r.kind,
                    "client": r.client.to_string(),
                    "iface": r.iface,
                    "ifindex": r.ifindex,
                    "ethertype": r.ethertype,
                    "addr": r.addr.map(|a| a.to_string()),
                })
            })
            .collect();
        return format!("{}\n", Value::from(v));
    }
    reports
        .iter()
        .map(|r| {
            let iface = r
                .iface
                .clone()
                .unwrap_or_else(|| format!("if{}", r.ifindex));
            let from = r.addr.map(|a| format!(" from {a}")).unwrap_or_default();
            format!(
                "{} {} {} on {iface} ethertype {:#06x}{from}\n",
                r.time_ns, r.kind, r.client, r.ethertype
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> VapEntry {
        VapEntry {
            client: "00:16:3e:00:00:01".parse().unwrap(),
            vap_mac: "02:aa:bb:cc:dd:ee".parse().unwrap(),
            ipv4: Some("10.1.0.5".parse().unwrap()),
            ipv6: None,
            anchor: Some(("192.0.2.1".parse().unwrap(), "192.0.2.11".parse().unwrap())),
            breakout: false,
            forward: None,
            ifindex: 7,
            iface: Some("wlan0".into()),
            host_mac: "02:00:00:00:00:07".parse().unwrap(),
            slot: 0,
        }
    }

    #[test]
    fn list_table_and_json() {
        let mut fwd = entry();
        fwd.client = "00:16:3e:00:00:02".parse().unwrap();
        fwd.forward = Some(("192.0.2.12".parse().unwrap(), "192.0.2.11".parse().unwrap()));
        fwd.ipv6 = Some("2001:db8:1::5".parse().unwrap());
        assert_eq!(
            format_list(&[entry(), fwd], false),
            "CLIENT             VAP_MAC            IPV4      IPV6           UPLINK            MODE                IFACE\n\
             00:16:3e:00:00:01  02:aa:bb:cc:dd:ee  10.1.0.5  -              tunnel 192.0.2.1  local               wlan0\n\
             00:16:3e:00:00:02  02:aa:bb:cc:dd:ee  10.1.0.5  2001:db8:1::5  tunnel 192.0.2.1  forward 192.0.2.12  wlan0\n"
        );
        let j: Value = serde_json::from_str(&format_list(&[entry()], true)).unwrap();
        assert_eq!(j[0]["client"], "00:16:3e:00:00:01");
        assert_eq!(j[0]["mode"], "local");
        assert_eq!(j[0]["anchor"], "192.0.2.1");
        assert_eq!(j[0]["ipv6"], Value::Null);
    }

    #[test]
    fn show_has_every_counter() {
        let mut c = VapCounters::default();
        c.spoofed.packets = 3;
        c.spoofed.bytes = 180;
        let text = format_show(&entry(), &c, false);
        assert!(
            text.contains("uplink:    tunnel to anchor 192.0.2.1 from 192.0.2.11\n"),
            "{text}"
        );
        assert!(text.contains("spoofed            3    180\n"), "{text}");
        let j: Value = serde_json::from_str(&format_show(&entry(), &c, true)).unwrap();
        assert_eq!(j["counters"]["spoofed"]["packets"], 3);
        assert_eq!(j["counters"]["delivered"]["bytes"], 0);
        // What an agent answers reads back to the same vAP and counters.
        let mut fwd = entry();
        fwd.forward = Some(("192.0.2.12".parse().unwrap(), "192.0.2.11".parse().unwrap()));
        let (e, back) = show_of_json(&show_json(&fwd, &c)).unwrap();
        assert_eq!((e, back), (fwd, c));
        assert!(entry_of_json(&json!({"client": "x"})).is_err());
    }
}
