//! The balancer's view of the network at one moment: access points with their capacity,
//! clients with the AP serving them, their traffic and the smoothed signal of every AP that
//! hears them. [`crate::alb::decide`] is a pure function of a [`Snapshot`]; the controller
//! builds one from its state, the simulator from its radio model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An access point's name (e.g. `ap1`).
pub type ApId = String;
/// A client's name (its MAC address in production, `c17` in the simulator).
pub type ClientId = String;

/// An access point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ap {
    /// The capacity the AP's utilisation is measured against, in Mb/s.
    pub capacity_mbps: f64,
}

/// A client and what the balancer knows about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Client {
    /// The AP serving it now (it may be missing from [`Snapshot::aps`] if that AP was just
    /// removed).
    pub ap: ApId,
    /// Its traffic (both directions) in Mb/s, from the counters.
    pub traffic_mbps: f64,
    /// Smoothed signal strength in dBm of every AP that hears it (recent reports only).
    pub rssi: BTreeMap<ApId, f64>,
    /// How far each AP's smoothed signal trails the reports, dB (positive: rising; see
    /// [`crate::alb::rssi::SmoothedRssi::lag_db`]). Missing: not known (taken as 0).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lag_db: BTreeMap<ApId, f64>,
}

impl Client {
    /// The smoothed signal of `ap` for this client, if that AP hears it.
    pub fn rssi_of(&self, ap: &str) -> Option<f64> {
        self.rssi.get(ap).copied()
    }
}

/// The network at one moment. Maps are ordered so decisions are deterministic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Time of the snapshot in seconds (any epoch; only differences matter).
    pub now: f64,
    pub aps: BTreeMap<ApId, Ap>,
    pub clients: BTreeMap<ClientId, Client>,
}
