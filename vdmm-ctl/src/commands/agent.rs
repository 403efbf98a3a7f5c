//! The commands' side of the agent: the changing commands (`endpoint|peer add|del`,
//! `binding add|del`, `config set`) become [`Op`]s sent to the agent when one listens on
//! the socket (the `vap` commands send their own requests, [`call_agent`]); `apply` sends a whole batch (or, without an agent, checks and applies it on
//! the maps directly); `agent status|state|reconcile` ask the agent.

use std::{io::Read, path::Path};

use crate::{
    addr::{Prefix, parse_addr},
    agent::{
        api::{Client, Request},
        reconcile::{self, Reconciler},
        state::{DesiredState, FamilyName, Op},
    },
    cli::{AddrCommand, AgentCommand, BindingCommand, Command, ConfigCommand},
    error::{Error, Result},
    pin::PinDir,
};

/// The ops of a command that changes what the agent manages; None for other commands.
/// Arguments are parsed here exactly as the direct commands parse them.
pub fn ops_for(command: &Command) -> Result<Option<Vec<Op>>> {
    let addr_op = |c: &AddrCommand, peer: bool| -> Result<Option<Vec<Op>>> {
        Ok(match c {
            AddrCommand::Add { addr } => {
                let addr = parse_addr(addr)?;
                Some(vec![if peer {
                    Op::PeerAdd { addr }
                } else {
                    Op::EndpointAdd { addr }
                }])
            }
            AddrCommand::Del { addr } => {
                let addr = parse_addr(addr)?;
                Some(vec![if peer {
                    Op::PeerDel { addr }
                } else {
                    Op::EndpointDel { addr }
                }])
            }
            AddrCommand::List { .. } => None,
        })
    };
    match command {
        Command::Endpoint(c) => addr_op(c, false),
        Command::Peer(c) => addr_op(c, true),
        Command::Binding(BindingCommand::Add {
            home,
            locator,
            source,
            replace,
            no_route,
        }) => Ok(Some(vec![Op::BindingAdd {
            home: home.parse()?,
            locator: parse_addr(locator)?,
            source: source.as_deref().map(parse_addr).transpose()?,
            replace: *replace,
            route: !no_route,
        }])),
        Command::Binding(BindingCommand::Del { home }) => Ok(Some(vec![Op::BindingDel {
            home: home.parse::<Prefix>()?,
        }])),
        Command::Config(ConfigCommand::Set(args)) => {
            let c = super::config::parse_change(args)?;
            Ok(Some(vec![Op::ConfigSet {
                outer_hop_limit: c.outer_hop_limit,
                icmp_sources: c.icmp_sources,
                clear_icmp_sources: c
                    .clear_icmp_sources
                    .iter()
                    .map(|f| match f {
                        crate::addr::Family::V4 => FamilyName::Ipv4,
                        crate::addr::Family::V6 => FamilyName::Ipv6,
                    })
                    .collect(),
            }]))
        }
        _ => Ok(None),
    }
}

/// Sends `request` to the agent at `socket` and returns its result; None when no agent
/// listens there (the command then works on the pinned maps). This is where every
/// command decides between the agent and the maps.
pub fn call_agent(socket: &Path, request: &Request) -> Result<Option<serde_json::Value>> {
    let Some(mut client) = Client::connect(socket)? else {
        return Ok(None);
    };
    client.call(request)?.into_result().map(Some)
}

/// Sends `ops` to the agent at `socket`; None when no agent listens there.
pub fn through_agent(socket: &Path, pins: &PinDir, ops: Vec<Op>) -> Result<Option<String>> {
    Ok(apply_through_agent(socket, pins, ops)?.map(|r| apply_output(&r)))
}

/// Sends `ops` to the agent at `socket` as one `apply` request and returns its result
/// (`revision`, `changes`, `messages`, `errors`, ...); None when no agent listens there.
pub fn apply_through_agent(
    socket: &Path,
    pins: &PinDir,
    ops: Vec<Op>,
) -> Result<Option<serde_json::Value>> {
    let request = Request::Apply {
        ops,
        pin_dir: Some(pins.path().to_path_buf()),
    };
    call_agent(socket, &request)
}

/// What a command prints after the agent applied it: the agent's messages, and its
/// errors as warnings.
pub fn apply_output(result: &serde_json::Value) -> String {
    let mut out = String::new();
    for m in result["messages"].as_array().into_iter().flatten() {
        out.push_str(m.as_str().unwrap_or_default());
    }
    for e in result["errors"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "warning: {} (the agent retries it)\n",
            e.as_str().unwrap_or_default()
        ));
    }
    out
}

/// What `vdmm-ctl status` adds when an agent manages this pin directory: its store and,
/// for a cluster store, whether etcd is reachable. None without such an agent (or when it
/// does not answer: `status` reads the maps and must work without one).
pub fn store_status(socket: &Path, pins: &PinDir) -> Option<serde_json::Value> {
    let mut client = Client::connect(socket).ok()??;
    let status = client.call(&Request::Status).ok()?.into_result().ok()?;
    if status["pin_dir"].as_str() != Some(&pins.path().display().to_string()) {
        return None;
    }
    Some(serde_json::json!({
        "socket": socket.display().to_string(),
        "store": status["store"],
        "revision": status["revision"],
        "store_health": status["store_health"],
    }))
}

/// The text line of [`store_status`].
pub fn store_status_text(s: &serde_json::Value) -> String {
    let mut out = format!(
        "agent: {}, store {} at revision {}",
        s["socket"].as_str().unwrap_or_default(),
        s["store"].as_str().unwrap_or_default(),
        s["revision"]
    );
    let h = &s["store_health"];
    if h.is_object() {
        if h["reachable"] == true {
            out.push_str("; etcd reachable");
        } else {
            out.push_str(&format!(
                "; etcd UNREACHABLE for {} ms (last error: {}): forwarding continues with the \
                 last state, changes are refused",
                h["unreachable_for_ms"],
                h["last_error"].as_str().unwrap_or_default()
            ));
        }
    }
    out.push('\n');
    out
}

/// The ops in a batch file's text: a JSON array of ops, or `{"ops": [...]}`.
pub fn parse_batch(text: &str, name: &str) -> Result<Vec<Op>> {
    // Parse as a value first, so the error of a bad op names it (untagged enums do not).
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::Conflict(format!("{name}: not JSON: {e}")))?;
    let list = match &value {
        serde_json::Value::Array(_) => value,
        serde_json::Value::Object(o) if o.contains_key("ops") && o.len() == 1 => o["ops"].clone(),
        _ => {
            return Err(Error::Conflict(format!(
                "{name}: expected a JSON array of changes or {{\"ops\": [...]}}"
            )));
        }
    };
    let items = list.as_array().cloned().unwrap_or_default();
    let mut ops = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        ops.push(
            serde_json::from_value::<Op>(item)
                .map_err(|e| Error::Conflict(format!("{name}: change {}: {e}", i + 1)))?,
        );
    }
    Ok(ops)
}

/// `vdmm-ctl apply FILE|-`.
pub fn apply(socket: &Path, pins: &PinDir, file: &str) -> Result<String> {
    let (text, name) = if file == "-" {
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .map_err(|e| Error::io("cannot read standard input", e))?;
        (t, "standard input".to_string())
    } else {
        (
            std::fs::read_to_string(file)
                .map_err(|e| Error::io(format!("cannot read {file}"), e))?,
            file.to_string(),
        )
    };
    let ops = parse_batch(&text, &name)?;
    let n = ops.len();
    if let Some(out) = through_agent(socket, pins, ops.clone())? {
        return Ok(format!("applied {n} changes through the agent\n{out}"));
    }
    apply_directly(pins, ops)
}

/// Checks `ops` as one batch against what the maps hold and applies them: the same rules
/// as the agent, without a store.
pub fn apply_directly(pins: &PinDir, ops: Vec<Op>) -> Result<String> {
    let mut rec = Reconciler::open(pins)?;
    let mut state = DesiredState::default();
    let import = state.plan(&rec.import_ops()?).map_err(|e| {
        Error::Conflict(format!(
            "the maps hold something the rules do not allow ({e}); fix that first"
        ))
    })?;
    state.apply(&import);
    let ops = rec.name_vap_ifaces(&ops)?;
    let deltas = state.plan(&ops)?;
    let routes = rec.plan_routes(&deltas)?;
    let unrouted = reconcile::unrouted(&deltas, &state.undo(&deltas));
    state.apply(&deltas);
    let report = rec.apply(&deltas, &state, &routes, &unrouted);
    let mut out = format!("applied {} changes to the maps\n", ops.len());
    for e in &report.errors {
        out.push_str(&format!("warning: {e}\n"));
    }
    if report.errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::Conflict(format!(
            "{} of the changes could not be written: {}",
            report.errors.len(),
            report.errors.join("; ")
        )))
    }
}

/// `vdmm-ctl agent status|state|reconcile`.
pub fn ask(socket: &Path, c: AgentCommand) -> Result<String> {
    let mut client = Client::connect(socket)?
        .ok_or_else(|| Error::Agent(format!("no agent listens on {}", socket.display())))?;
    let request = match c {
        AgentCommand::Status => Request::Status,
        AgentCommand::State => Request::State,
        AgentCommand::Reconcile => Request::Reconcile,
    };
    let v = client.call(&request)?.into_result()?;
    Ok(format!(
        "{}\n",
        serde_json::to_string_pretty(&v).expect("JSON serializes")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_files_are_lists_or_objects_and_errors_name_the_change() {
        let ops = parse_batch(
            r#"[{"op":"peer_add","addr":"192.0.2.1"},{"op":"binding_del","home":"10.0.0.0/8"}]"#,
            "f",
        )
        .unwrap();
        assert_eq!(ops.len(), 2);
        let ops = parse_batch(r#"{"ops":[{"op":"peer_del","addr":"192.0.2.1"}]}"#, "f").unwrap();
        assert_eq!(ops.len(), 1);
        let e = parse_batch(
            r#"[{"op":"peer_add","addr":"192.0.2.1"},{"op":"peer_add","addr":"192.0.2.300"}]"#,
            "f",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("f: change 2: invalid address `192.0.2.300`"),
            "{e}"
        );
        assert!(
            parse_batch("{", "f")
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
        assert!(parse_batch(r#"{"x":1}"#, "f").is_err());
    }

    #[test]
    fn the_example_batch_is_valid() {
        let ops = parse_batch(
            include_str!("../../../examples/anchor-gateway.ops.json"),
            "anchor-gateway.ops.json",
        )
        .unwrap();
        let mut s = DesiredState::default();
        let mut all = vec![
            Op::EndpointAdd {
                addr: "192.0.2.1".parse().unwrap(),
            },
            Op::EndpointAdd {
                addr: "2001:db8::1".parse().unwrap(),
            },
        ];
        all.extend(ops);
        let d = s.plan(&all).unwrap();
        s.apply(&d);
        assert_eq!(s.binding_count(), 3);
    }

    #[test]
    fn changing_commands_become_ops_and_reading_ones_do_not() {
        use clap::Parser;
        let ops = |args: &[&str]| {
            let c = crate::cli::Cli::try_parse_from(
                std::iter::once("vdmm-ctl").chain(args.iter().copied()),
            )
            .unwrap();
            ops_for(&c.command)
        };
        assert_eq!(
            ops(&[
                "binding",
                "add",
                "10.1.0.0/16",
                "--locator",
                "192.0.2.2",
                "--no-route"
            ])
            .unwrap()
            .unwrap(),
            vec![Op::BindingAdd {
                home: "10.1.0.0/16".parse().unwrap(),
                locator: "192.0.2.2".parse().unwrap(),
                source: None,
                replace: false,
                route: false,
            }]
        );
        assert!(ops(&["binding", "list"]).unwrap().is_none());
        assert!(ops(&["stats"]).unwrap().is_none());
        assert!(ops(&["peer", "add", "300.1.2.3"]).is_err());
        assert_eq!(
            ops(&["config", "set", "--outer-hop-limit", "9"])
                .unwrap()
                .unwrap()
                .len(),
            1
        );
    }
}
