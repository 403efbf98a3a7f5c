//! The set of clients whose move runs: a second move of the same client is refused while
//! the first holds its [`InFlightGuard`] (moves of different clients run side by side).
//! This guards the moves of one process (the API, the balancer); `vdmm-ctl vap move`
//! also takes a file lock per client so that two commands refuse each other too.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use super::ClientMac;

#[derive(Clone, Default)]
pub struct InFlight {
    clients: Arc<Mutex<HashSet<ClientMac>>>,
}

impl InFlight {
    /// Marks `client` as moving; `None` when it already is.
    pub fn try_acquire(&self, client: ClientMac) -> Option<InFlightGuard> {
        let mut set = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(client).then(|| InFlightGuard {
            clients: Arc::clone(&self.clients),
            client,
        })
    }

    pub fn is_moving(&self, client: ClientMac) -> bool {
        let set = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        set.contains(&client)
    }
}

/// Held for the whole move; dropping it (also on a panic) frees the client.
pub struct InFlightGuard {
    clients: Arc<Mutex<HashSet<ClientMac>>>,
    client: ClientMac,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut set = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_is_refused_until_the_first_guard_drops() {
        let f = InFlight::default();
        let a = ClientMac([2, 0, 0, 0, 0, 1]);
        let b = ClientMac([2, 0, 0, 0, 0, 2]);
        let g = f.try_acquire(a).expect("first");
        assert!(f.try_acquire(a).is_none());
        assert!(f.try_acquire(b).is_some(), "another client moves freely");
        assert!(f.is_moving(a));
        drop(g);
        assert!(!f.is_moving(a));
        assert!(f.try_acquire(a).is_some());
    }
}
