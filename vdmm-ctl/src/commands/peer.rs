//! `vdmm-ctl peer add|del|list`: the remote gateways allowed to send tunnel packets here.

use crate::{addr::parse_addr, cli::AddrCommand, error::Result, maps::Dataplane, pin::PinDir};

pub fn run(pins: &PinDir, cmd: AddrCommand) -> Result<String> {
    match cmd {
        AddrCommand::Add { addr } => {
            let addr = parse_addr(&addr)?;
            Dataplane::open(pins)?.add_peer(addr)?;
            Ok(String::new())
        }
        AddrCommand::Del { addr } => {
            let addr = parse_addr(&addr)?;
            Dataplane::open(pins)?.del_peer(addr)?;
            Ok(String::new())
        }
        AddrCommand::List { json } => Ok(super::addr_list(&Dataplane::open(pins)?.peers()?, json)),
    }
}
