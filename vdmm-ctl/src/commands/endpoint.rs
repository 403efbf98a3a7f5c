//! `vdmm-ctl endpoint add|del|list`: the local tunnel endpoints.

use crate::{addr::parse_addr, cli::AddrCommand, error::Result, maps::Dataplane, pin::PinDir};

pub fn run(pins: &PinDir, cmd: AddrCommand) -> Result<String> {
    match cmd {
        AddrCommand::Add { addr } => {
            let addr = parse_addr(&addr)?;
            Dataplane::open(pins)?.add_endpoint(addr)?;
            Ok(String::new())
        }
        AddrCommand::Del { addr } => {
            let addr = parse_addr(&addr)?;
            Dataplane::open(pins)?.del_endpoint(addr)?;
            Ok(String::new())
        }
        AddrCommand::List { json } => {
            Ok(super::addr_list(&Dataplane::open(pins)?.endpoints()?, json))
        }
    }
}
