//! In-memory AP hosts, anchors and clock for the state machine's tests: they record every
//! change in a shared journal and fail on demand.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use super::{
    ClientMac, VapMode, VapRecord,
    clock::Clock,
    nodes::{Anchor, ApHost, NodeError, NodeResult},
};
use crate::addr::Prefix;

pub type Journal = Arc<Mutex<Vec<String>>>;

/// A clock that only moves when slept on.
#[derive(Default)]
pub struct FakeClock {
    pub now: Mutex<Duration>,
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        *self.now.lock().unwrap()
    }
    fn sleep(&self, d: Duration) {
        *self.now.lock().unwrap() += d;
    }
}

/// Which call of a fake fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Install,
    Forward,
    Serve,
    Remove,
    Resolve,
}

pub struct FakeHost {
    pub name: String,
    pub locator: IpAddr,
    pub vaps: Mutex<HashMap<ClientMac, (VapRecord, VapMode)>>,
    pub fail: Mutex<Option<Op>>,
    /// `install` keeps what it wrote before failing (a half-applied install).
    pub half_apply: bool,
    /// `install` waits for a message on this channel first (to hold a move open).
    pub gate: Mutex<Option<mpsc::Receiver<()>>>,
    /// `install` sends here when it starts waiting.
    pub waiting: Mutex<Option<mpsc::Sender<()>>>,
    /// What [`ApHost::follows_location`] answers (an agent on etcd: `Some(grace)`).
    pub follows: Option<Duration>,
    pub journal: Journal,
}

impl FakeHost {
    pub fn new(name: &str, locator: &str, journal: &Journal) -> Self {
        Self {
            name: name.into(),
            locator: locator.parse().unwrap(),
            vaps: Mutex::default(),
            fail: Mutex::default(),
            half_apply: false,
            gate: Mutex::default(),
            waiting: Mutex::default(),
            follows: None,
            journal: Arc::clone(journal),
        }
    }

    pub fn mode(&self, c: ClientMac) -> Option<VapMode> {
        self.vaps.lock().unwrap().get(&c).map(|(_, m)| *m)
    }

    fn failing(&self, op: Op) -> NodeResult<()> {
        if *self.fail.lock().unwrap() == Some(op) {
            self.journal
                .lock()
                .unwrap()
                .push(format!("{} {op:?} FAILED", self.name));
            return Err(NodeError::new(&self.name, format!("{op:?} refused")));
        }
        Ok(())
    }

    fn log(&self, s: String) {
        self.journal
            .lock()
            .unwrap()
            .push(format!("{} {s}", self.name));
    }
}

impl ApHost for FakeHost {
    fn name(&self) -> &str {
        &self.name
    }
    fn locator(&self) -> IpAddr {
        self.locator
    }
    fn vap(&self, client: ClientMac) -> NodeResult<Option<(VapRecord, VapMode)>> {
        Ok(self.vaps.lock().unwrap().get(&client).cloned())
    }
    fn install(&self, vap: &VapRecord) -> NodeResult<()> {
        if let Some(rx) = self.gate.lock().unwrap().take() {
            if let Some(tx) = self.waiting.lock().unwrap().take() {
                tx.send(()).unwrap();
            }
            rx.recv().unwrap();
        }
        if self.half_apply {
            self.vaps
                .lock()
                .unwrap()
                .insert(vap.client, (vap.clone(), VapMode::Serve));
        }
        self.failing(Op::Install)?;
        self.vaps
            .lock()
            .unwrap()
            .insert(vap.client, (vap.clone(), VapMode::Serve));
        self.log(format!("install {}", vap.client));
        Ok(())
    }
    fn set_mode(&self, client: ClientMac, mode: VapMode) -> NodeResult<()> {
        self.failing(match mode {
            VapMode::Serve => Op::Serve,
            VapMode::Forward(_) => Op::Forward,
        })?;
        let mut v = self.vaps.lock().unwrap();
        let e = v
            .get_mut(&client)
            .ok_or_else(|| NodeError::new(&self.name, "no such vAP"))?;
        e.1 = mode;
        drop(v);
        self.log(format!("mode {client} {mode:?}"));
        Ok(())
    }
    fn remove(&self, client: ClientMac) -> NodeResult<()> {
        self.failing(Op::Remove)?;
        self.vaps.lock().unwrap().remove(&client);
        self.log(format!("remove {client}"));
        Ok(())
    }
    fn resolve_neighbour(&self, addr: IpAddr) -> NodeResult<()> {
        self.failing(Op::Resolve)?;
        self.log(format!("resolve {addr}"));
        Ok(())
    }
    fn follows_location(&self) -> NodeResult<Option<Duration>> {
        Ok(self.follows)
    }
}

pub struct FakeAnchor {
    pub name: String,
    pub locator: IpAddr,
    pub bindings: Mutex<HashMap<Prefix, IpAddr>>,
    /// `bind` fails for this home (after the ones before it succeeded).
    pub fail_home: Mutex<Option<Prefix>>,
    /// `resolve_neighbour` fails (the target's locator is unreachable from the anchor).
    pub fail_resolve: Mutex<bool>,
    pub journal: Journal,
}

impl FakeAnchor {
    pub fn new(name: &str, locator: &str, journal: &Journal) -> Self {
        Self {
            name: name.into(),
            locator: locator.parse().unwrap(),
            bindings: Mutex::default(),
            fail_home: Mutex::default(),
            fail_resolve: Mutex::default(),
            journal: Arc::clone(journal),
        }
    }

    pub fn locator_of(&self, home: &str) -> Option<IpAddr> {
        self.bindings
            .lock()
            .unwrap()
            .get(&home.parse::<Prefix>().unwrap())
            .copied()
    }
}

impl Anchor for FakeAnchor {
    fn name(&self) -> &str {
        &self.name
    }
    fn locator(&self) -> IpAddr {
        self.locator
    }
    fn binding(&self, home: Prefix) -> NodeResult<Option<IpAddr>> {
        Ok(self.bindings.lock().unwrap().get(&home).copied())
    }
    fn bind(&self, home: Prefix, locator: IpAddr) -> NodeResult<()> {
        if *self.fail_home.lock().unwrap() == Some(home) {
            self.journal
                .lock()
                .unwrap()
                .push(format!("{} bind {home} FAILED", self.name));
            return Err(NodeError::new(&self.name, "binding map full"));
        }
        self.bindings.lock().unwrap().insert(home, locator);
        self.journal
            .lock()
            .unwrap()
            .push(format!("{} bind {home} -> {locator}", self.name));
        Ok(())
    }
    fn resolve_neighbour(&self, locator: IpAddr) -> NodeResult<()> {
        let line = if *self.fail_resolve.lock().unwrap() {
            format!("{} resolve {locator} FAILED", self.name)
        } else {
            format!("{} resolve {locator}", self.name)
        };
        self.journal.lock().unwrap().push(line.clone());
        if line.ends_with("FAILED") {
            return Err(NodeError::new(
                &self.name,
                format!("neighbour {locator}: the resolution failed"),
            ));
        }
        Ok(())
    }
}
