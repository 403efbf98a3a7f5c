//! Resolving the neighbour entry of the next hop toward an address before traffic needs
//! it, over rtnetlink in the calling thread's network namespace.
//!
//! The XDP data plane forwards with `bpf_fib_lookup`, which does not resolve neighbours:
//! a packet whose next hop has no usable entry goes to the kernel's slow path and waits
//! there for ARP / neighbour discovery. A handover switches an anchor to a locator it may
//! not have sent to for a while (an entry that was never made, or one the kernel's
//! garbage collector removed), so the mover asks the anchor to resolve it first:
//! [`resolve`] finds the next hop (`RTM_GETROUTE`, as `ip route get`), asks the kernel to
//! use the entry (`RTM_NEWNEIGH` with `NTF_USE`, as `ip neigh replace ADDR dev DEV use`:
//! it starts a resolution, or a reachability confirmation of a stale entry) and reads the
//! entry (`RTM_GETNEIGH`) until it holds a link-layer address. A static entry (permanent,
//! noarp) is left alone: it needs no resolution, and on kernel 6.18 `NTF_USE` turns a
//! permanent entry into an incomplete one that is then never resolved.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState},
};

use crate::{
    error::{Error, Result},
    routes::Netlink,
};

/// What [`resolve`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The next hop whose entry was resolved (the address itself when it is on-link).
    pub next_hop: IpAddr,
    /// The interface toward it.
    pub dev: String,
    /// The entry's state before (`none` when there was no entry): what a packet sent
    /// then would have met.
    pub before: String,
    /// The entry's state when it became usable (`reachable`, `stale`, ...).
    pub state: String,
    /// How long it took.
    pub elapsed: Duration,
}

/// How long a handover waits for a resolution (ARP retries after a second).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the entry is read while a resolution runs.
const POLL: Duration = Duration::from_micros(500);

fn family(a: IpAddr) -> AddressFamily {
    match a {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn message(ifindex: u32, addr: IpAddr) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = family(addr);
    m.header.ifindex = ifindex;
    m.attributes
        .push(NeighbourAttribute::Destination(addr.into()));
    m
}

/// True for states in which the entry has a link-layer address the data plane can use
/// (the kernel's `NUD_VALID`).
fn usable(s: NeighbourState) -> bool {
    matches!(
        s,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    )
}

/// Resolves the neighbour entry of the next hop toward `addr`, waiting up to `timeout`
/// for it to become usable. An error says why not (no route, the resolution failed, the
/// time ran out).
pub fn resolve(addr: IpAddr, timeout: Duration) -> Result<Resolved> {
    let t0 = Instant::now();
    let mut nl = Netlink::open()?;
    let path = nl.path_to(addr)?;
    let next_hop = path.gateway.unwrap_or(addr);
    let (dev, _) = nl.link(path.oif)?;
    let failed = |what: String| Error::Conflict(format!("neighbour {next_hop} on {dev}: {what}"));
    let before = state_of(&mut nl, path.oif, next_hop)
        .map_err(|e| failed(format!("cannot read it: {e}")))?;
    if let Some(s) = before.filter(|s| is_static(*s)) {
        return Ok(Resolved {
            next_hop,
            dev,
            before: s.to_string(),
            state: s.to_string(),
            elapsed: t0.elapsed(),
        });
    }
    let mut use_it = message(path.oif, next_hop);
    use_it.header.flags = NeighbourFlags::Use;
    nl.request(
        RouteNetlinkMessage::NewNeighbour(use_it),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
    )?
    .map_err(|e| failed(format!("cannot start its resolution: {e}")))?;
    loop {
        // Not there (yet, or removed again): keep asking until the time runs out.
        let state = state_of(&mut nl, path.oif, next_hop)
            .map_err(|e| failed(format!("cannot read it: {e}")))?;
        match state {
            Some(s) if usable(s) => {
                return Ok(Resolved {
                    next_hop,
                    dev,
                    before: before
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "none".into()),
                    state: s.to_string(),
                    elapsed: t0.elapsed(),
                });
            }
            Some(NeighbourState::Failed) => return Err(failed("the resolution failed".into())),
            _ => {}
        }
        if t0.elapsed() >= timeout {
            let now = state
                .map(|s| s.to_string())
                .unwrap_or_else(|| "none".into());
            return Err(failed(format!(
                "not resolved within {} ms (state {now})",
                timeout.as_millis()
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// True for entries the kernel neither ages nor resolves (set by an administrator).
fn is_static(s: NeighbourState) -> bool {
    matches!(s, NeighbourState::Permanent | NeighbourState::Noarp)
}

/// The state of the entry for `addr` on interface `ifindex`; None when there is none.
fn state_of(nl: &mut Netlink, ifindex: u32, addr: IpAddr) -> Result<Option<NeighbourState>> {
    match nl.request(RouteNetlinkMessage::GetNeighbour(message(ifindex, addr)), 0)? {
        Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
            RouteNetlinkMessage::NewNeighbour(n) => Some(n.header.state),
            _ => None,
        })),
        Err(e) if e.errno == libc::ENOENT => Ok(None),
        Err(e) => Err(Error::Conflict(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_states_with_an_address_are_usable() {
        assert!(usable(NeighbourState::Reachable));
        assert!(usable(NeighbourState::Stale));
        assert!(usable(NeighbourState::Permanent));
        assert!(!usable(NeighbourState::Incomplete));
        assert!(!usable(NeighbourState::Failed));
        assert!(!usable(NeighbourState::None));
        // Static entries are usable as they are: never asked to resolve again.
        assert!(is_static(NeighbourState::Permanent) && is_static(NeighbourState::Noarp));
        assert!(!is_static(NeighbourState::Stale) && !is_static(NeighbourState::Reachable));
    }
}
