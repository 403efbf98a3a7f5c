//! One function per `vdmm-ctl` command: parse the arguments' text, call the library, and
//! return what to print (so the output is testable). Errors are the library's one-line
//! [`crate::error::Error`]s.

pub mod agent;
pub mod alb;
pub mod binding;
pub mod config;
pub mod endpoint;
pub mod lifecycle;
pub mod metrics;
pub mod natpt;
pub mod peer;
pub mod stats;
pub mod vap;
pub mod vap_move;
pub mod watchdog;

use crate::{
    cli::{Cli, Command},
    error::Result,
    netns,
    pin::PinDir,
};

/// Runs a parsed command line and returns its output.
pub fn run(cli: Cli) -> Result<String> {
    if let Some(ns) = &cli.netns {
        netns::enter(ns)?;
    }
    let pins = PinDir::new(cli.pin_dir);
    if let Some(ops) = agent::ops_for(&cli.command)?
        && let Some(out) = agent::through_agent(&cli.agent_socket, &pins, ops)?
    {
        return Ok(out);
    }
    match cli.command {
        Command::Load {
            iface,
            client_facing,
            mode,
        } => lifecycle::load(&pins, iface.as_deref(), client_facing.as_deref(), mode),
        Command::Unload { iface } => lifecycle::unload(&pins, &iface),
        Command::Status { json } => {
            let out = lifecycle::status(&pins, json)?;
            let Some(agent) = agent::store_status(&cli.agent_socket, &pins) else {
                return Ok(out);
            };
            if json {
                let mut v: serde_json::Value =
                    serde_json::from_str(&out).expect("status prints JSON");
                v["agent"] = agent;
                Ok(format!("{v}\n"))
            } else {
                Ok(out + &agent::store_status_text(&agent))
            }
        }
        Command::Reset => lifecycle::reset(&pins),
        Command::Endpoint(c) => endpoint::run(&pins, c),
        Command::Peer(c) => peer::run(&pins, c),
        Command::Binding(c) => binding::run(&pins, c),
        Command::Config(c) => config::run(&pins, c),
        Command::Natpt(c) => natpt::run_or_ask_agent(&cli.agent_socket, &pins, c),
        Command::Stats { json } => stats::run(&pins, json),
        Command::Metrics(c) => metrics::run(&pins, c),
        Command::Vap(c) => vap::run(&pins, &cli.agent_socket, c),
        Command::Daemon { config } => crate::agent::daemon::run(&config),
        Command::Watchdog { config } => watchdog::run(&config),
        Command::Apply { file } => agent::apply(&cli.agent_socket, &pins, &file),
        Command::Agent(c) => agent::ask(&cli.agent_socket, c),
        Command::Alb(c) => alb::run(c),
    }
}

/// Formats a list of addresses: one per line, or a JSON array of strings.
pub(crate) fn addr_list(addrs: &[std::net::IpAddr], json: bool) -> String {
    if json {
        let v: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        format!("{}\n", serde_json::Value::from(v))
    } else {
        addrs.iter().map(|a| format!("{a}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addr_lists() {
        let a = ["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        assert_eq!(super::addr_list(&a, false), "192.0.2.1\n2001:db8::1\n");
        assert_eq!(
            super::addr_list(&a, true),
            "[\"192.0.2.1\",\"2001:db8::1\"]\n"
        );
        assert_eq!(super::addr_list(&[], true), "[]\n");
    }
}
