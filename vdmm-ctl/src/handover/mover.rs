//! The handover state machine (make-before-break):
//!
//! 1. **prepare_target**: install the client's vAP (same vAP MAC, same addresses, same
//!    anchor) on the target AP host, serving; resolve the neighbour entries of the new
//!    paths (anchor and source toward the target's locator, target toward the anchor);
//! 2. **switch_anchor**: bind each of the client's home addresses to the target's locator
//!    on the client's anchor (the previous locators are remembered);
//! 3. **forward_source**: the source's vAP forwards what still arrives for the client to
//!    the target's locator, for the grace period;
//! 4. **remove_source**: remove the source's vAP.
//!
//! A failure in 1-3 rolls back what was done (bindings restored, target's vAP removed,
//! source serving again): the client stays reachable on the source. A failure in 4 leaves
//! the client on the target and the source's state behind, and says so. Moves that cannot
//! start (unknown AP host or client, already there, another move of the client running,
//! no anchor, source and target on different kinds of store) are refused before anything
//! changes. Every outcome is counted.
//!
//! When the AP hosts' vAPs follow a shared location record (agents on etcd,
//! [`ApHost::follows_location`]), the install on the target is the one write of the move
//! (it rewrites the location) and steps 2-4 are the nodes following it: the mover waits
//! for each, so the phases and the report are the same. The paths are resolved before
//! that write, since the anchor switches as soon as it sees it; the source's grace period
//! is its agent's. A rollback moves the location back to the source (its agent writes
//! it), and the anchor and the target follow.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    ClientMac, Phase, VapMode, VapRecord,
    clock::Clock,
    inflight::InFlight,
    nodes::{Anchor, ApHost, NodeError},
    stats::{Event, HandoverStats, Refusal, StatsFile},
};
use crate::addr::Prefix;

/// Why a move did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("no AP host `{name}` in the cluster (known: {known})")]
    UnknownAp { name: String, known: String },
    #[error("no AP host serves client {0}")]
    UnknownClient(ClientMac),
    #[error("client {client} is already on {ap}")]
    AlreadyThere { client: ClientMac, ap: String },
    #[error("a move of client {0} is already running")]
    InProgress(ClientMac),
    #[error("client {client}'s anchor {anchor} is not in the cluster")]
    NoAnchor { client: ClientMac, anchor: IpAddr },
    #[error("cannot read the cluster's state: {0}")]
    NodeUnreadable(NodeError),
    #[error(
        "{source_host} and {target} keep their vAPs differently (one follows a shared location \
         record, as agents on etcd do, the other not): a move between them is not possible"
    )]
    MixedStores { source_host: String, target: String },
    #[error("move of {client} to {to} failed in {phase} ({error}); {rollback}")]
    Failed {
        client: ClientMac,
        to: String,
        phase: Phase,
        error: NodeError,
        /// What the rollback did, in words.
        rollback: String,
    },
}

impl MoveError {
    /// The refusal this error is, if the move was refused before it started.
    pub fn refusal(&self) -> Option<Refusal> {
        Some(match self {
            MoveError::UnknownAp { .. } => Refusal::UnknownAp,
            MoveError::UnknownClient(_) => Refusal::UnknownClient,
            MoveError::AlreadyThere { .. } => Refusal::AlreadyThere,
            MoveError::InProgress(_) => Refusal::InProgress,
            MoveError::NoAnchor { .. } => Refusal::NoAnchor,
            MoveError::NodeUnreadable(_) => Refusal::NodeUnreadable,
            MoveError::MixedStores { .. } => Refusal::MixedStores,
            MoveError::Failed { .. } => return None,
        })
    }
}

/// What a completed move did and how long each phase took.
#[derive(Clone, Debug, PartialEq)]
pub struct MoveReport {
    pub client: ClientMac,
    pub from: String,
    pub to: String,
    pub anchor: String,
    /// Home addresses rebound to the target's locator.
    pub homes: Vec<Prefix>,
    pub target_locator: IpAddr,
    /// Each phase with its duration (remove_source's includes the grace period).
    pub phases: Vec<(Phase, Duration)>,
    /// From the command to the anchor's last binding switched.
    pub switch_over: Duration,
    /// From the command to the source's state removed.
    pub total: Duration,
    pub grace: Duration,
}

/// The AP host that serves a client, and the client's vAP there.
pub type Located = (Arc<dyn ApHost>, VapRecord);

/// Moves clients' vAPs between the AP hosts of one cluster.
pub struct Mover {
    hosts: Vec<Arc<dyn ApHost>>,
    anchors: Vec<Arc<dyn Anchor>>,
    clock: Arc<dyn Clock>,
    inflight: InFlight,
    stats: Mutex<HandoverStats>,
    stats_file: Option<StatsFile>,
}

impl Mover {
    pub fn new(
        hosts: Vec<Arc<dyn ApHost>>,
        anchors: Vec<Arc<dyn Anchor>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            hosts,
            anchors,
            clock,
            inflight: InFlight::default(),
            stats: Mutex::new(HandoverStats::default()),
            stats_file: None,
        }
    }

    /// Also records every outcome in `file` (for the Prometheus exporter).
    pub fn with_stats_file(mut self, file: StatsFile) -> Self {
        self.stats_file = Some(file);
        self
    }

    /// The counters of this mover's moves.
    pub fn stats(&self) -> HandoverStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, e: Event) {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(e);
        if let Some(Err(err)) = self.stats_file.as_ref().map(|f| f.record(e)) {
            tracing::warn!("handover counters not persisted: {err}");
        }
    }

    /// The AP host that serves `client` now, with its vAP.
    pub fn locate(&self, client: ClientMac) -> Result<Option<Located>, NodeError> {
        for h in &self.hosts {
            if let Some((vap, VapMode::Serve)) = h.vap(client)? {
                return Ok(Some((Arc::clone(h), vap)));
            }
        }
        Ok(None)
    }

    /// Moves `client`'s vAP to the AP host named `to`, forwarding from the source for
    /// `grace` before the source's state is removed.
    pub fn move_client(
        &self,
        client: ClientMac,
        to: &str,
        grace: Duration,
    ) -> Result<MoveReport, MoveError> {
        let result = self.try_move(client, to, grace);
        if let Err(e) = &result {
            match e.refusal() {
                Some(r) => self.record(Event::Refused(r)),
                None => {
                    if let MoveError::Failed { phase, .. } = e {
                        self.record(Event::Failed(*phase));
                    }
                }
            }
        }
        result
    }

    fn try_move(
        &self,
        client: ClientMac,
        to: &str,
        grace: Duration,
    ) -> Result<MoveReport, MoveError> {
        let t0 = self.clock.now();
        let Some(_guard) = self.inflight.try_acquire(client) else {
            return Err(MoveError::InProgress(client));
        };
        let target = self
            .hosts
            .iter()
            .find(|h| h.name() == to)
            .cloned()
            .ok_or_else(|| MoveError::UnknownAp {
                name: to.to_string(),
                known: self
                    .hosts
                    .iter()
                    .map(|h| h.name().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let (source, vap) = self
            .locate(client)
            .map_err(MoveError::NodeUnreadable)?
            .ok_or(MoveError::UnknownClient(client))?;
        if source.name() == target.name() {
            return Err(MoveError::AlreadyThere {
                client,
                ap: to.to_string(),
            });
        }
        let anchor = self
            .anchors
            .iter()
            .find(|a| a.locator() == vap.anchor)
            .cloned()
            .ok_or(MoveError::NoAnchor {
                client,
                anchor: vap.anchor,
            })?;
        let homes = vap.homes();
        let mut previous = Vec::new();
        for h in &homes {
            let loc = anchor.binding(*h).map_err(MoveError::NodeUnreadable)?;
            previous.push((*h, loc));
        }
        let follows = target
            .follows_location()
            .map_err(MoveError::NodeUnreadable)?;
        let source_follows = source
            .follows_location()
            .map_err(MoveError::NodeUnreadable)?;
        if follows.is_some() != source_follows.is_some() {
            return Err(MoveError::MixedStores {
                source_host: source.name().to_string(),
                target: to.to_string(),
            });
        }
        // On a shared store the source forwards for its own agent's grace period.
        let grace = source_follows.unwrap_or(grace);

        self.record(Event::Started);
        let mut run = Run {
            client,
            to,
            vap: &vap,
            source: source.as_ref(),
            target: target.as_ref(),
            anchor: anchor.as_ref(),
            switched: Vec::new(),
            previous,
            follows: follows.is_some(),
            moved: false,
        };
        let mut phases = Vec::new();
        let mut mark = t0;
        let mut lap = |phase: Phase, clock: &dyn Clock| {
            let now = clock.now();
            phases.push((phase, now - mark));
            mark = now;
            now
        };

        // 1. prepare the target, and the paths to it: the anchor's and the source's
        //    neighbour entries toward the target's locator, the target's toward the
        //    anchor (the client's uplink), so no first packet waits for a resolution.
        //    Following a shared location, the install is the write the other nodes
        //    follow at once: the paths first.
        let tloc = target.locator();
        let paths = || {
            anchor
                .resolve_neighbour(tloc)
                .and_then(|()| source.resolve_neighbour(tloc))
                .and_then(|()| target.resolve_neighbour(vap.anchor))
        };
        let prepared = if run.follows {
            paths().and_then(|()| {
                target.install(&vap)?;
                run.moved = true;
                Ok(())
            })
        } else {
            target.install(&vap).and_then(|()| paths())
        };
        if let Err(e) = prepared {
            return Err(run.fail(Phase::Prepare, e));
        }
        lap(Phase::Prepare, self.clock.as_ref());
        // 2. switch the anchor.
        for h in &homes {
            if let Err(e) = anchor.bind(*h, tloc) {
                return Err(run.fail(Phase::SwitchAnchor, e));
            }
            run.switched.push(*h);
        }
        let switch_over = lap(Phase::SwitchAnchor, self.clock.as_ref()) - t0;
        // 3. forward from the source for the grace period.
        if let Err(e) = source.set_mode(client, VapMode::Forward(tloc)) {
            return Err(run.fail(Phase::ForwardSource, e));
        }
        lap(Phase::ForwardSource, self.clock.as_ref());
        if !run.follows {
            self.clock.sleep(grace);
        }
        // 4. remove the source's state: no rollback past this point.
        if let Err(e) = source.remove(client) {
            return Err(MoveError::Failed {
                client,
                to: to.to_string(),
                phase: Phase::RemoveSource,
                error: e,
                rollback: format!(
                    "the client is served by {to}; {}'s vAP is still there in forward mode: remove it with `vdmm-ctl vap delete`",
                    source.name()
                ),
            });
        }
        let total = lap(Phase::RemoveSource, self.clock.as_ref()) - t0;
        self.record(Event::Completed { switch_over, total });
        Ok(MoveReport {
            client,
            from: source.name().to_string(),
            to: to.to_string(),
            anchor: anchor.name().to_string(),
            homes,
            target_locator: tloc,
            phases,
            switch_over,
            total,
            grace,
        })
    }
}

/// The state of one move, for its rollback.
struct Run<'a> {
    client: ClientMac,
    to: &'a str,
    vap: &'a VapRecord,
    source: &'a dyn ApHost,
    target: &'a dyn ApHost,
    anchor: &'a dyn Anchor,
    /// Homes already bound to the target.
    switched: Vec<Prefix>,
    /// Each home's locator before the move.
    previous: Vec<(Prefix, Option<IpAddr>)>,
    /// The nodes follow a shared location record.
    follows: bool,
    /// Following: the target's install (the location's move) went through.
    moved: bool,
}

impl Run<'_> {
    /// Undoes phases 1-3 after `phase` failed with `error`: the source serves again, the
    /// anchor's bindings point where they did, the target's vAP is removed.
    fn fail(&self, phase: Phase, error: NodeError) -> MoveError {
        if self.follows {
            return self.fail_following(phase, error);
        }
        let mut problems = Vec::new();
        if phase == Phase::ForwardSource
            && let Err(e) = self.source.set_mode(self.client, VapMode::Serve)
        {
            problems.push(e.to_string());
        }
        for h in &self.switched {
            let before = self
                .previous
                .iter()
                .find(|(p, _)| p == h)
                .and_then(|(_, l)| *l);
            let restored = match before {
                Some(loc) => self.anchor.bind(*h, loc),
                // Unbound before the move: bind it back to the source, where the client is.
                None => self.anchor.bind(*h, self.source.locator()),
            };
            if let Err(e) = restored {
                problems.push(e.to_string());
            }
        }
        if let Err(e) = self.target.remove(self.client) {
            problems.push(e.to_string());
        }
        self.failed(phase, error, problems)
    }

    fn failed(&self, phase: Phase, error: NodeError, problems: Vec<String>) -> MoveError {
        let rollback = if problems.is_empty() {
            format!("rolled back: the client stays on {}", self.source.name())
        } else {
            format!("rollback incomplete: {}", problems.join("; "))
        };
        MoveError::Failed {
            client: self.client,
            to: self.to.to_string(),
            phase,
            error,
            rollback,
        }
    }

    /// The rollback when the nodes follow the vAP's location: when it moved (the install
    /// went through, or the source forwards, so a failed install's write landed after
    /// all), the source's agent writes it back to the source, and the mover waits for
    /// the anchor's bindings to point there again; the target follows by itself
    /// (forwarding to the source for its grace period, then removing the vAP).
    fn fail_following(&self, phase: Phase, error: NodeError) -> MoveError {
        let forwarding = matches!(
            self.source.vap(self.client),
            Ok(Some((_, VapMode::Forward(_))))
        );
        if !self.moved && !forwarding {
            return MoveError::Failed {
                client: self.client,
                to: self.to.to_string(),
                phase,
                error,
                rollback: format!(
                    "the location did not move: the client stays on {}",
                    self.source.name()
                ),
            };
        }
        let mut problems = Vec::new();
        match self.source.install(self.vap) {
            Ok(()) => {
                for (h, before) in &self.previous {
                    let back = before.unwrap_or_else(|| self.source.locator());
                    if let Err(e) = self.anchor.bind(*h, back) {
                        problems.push(e.to_string());
                    }
                }
            }
            Err(e) => problems.push(format!(
                "the location still names {}: {e}",
                self.target.name()
            )),
        }
        self.failed(phase, error, problems)
    }
}
