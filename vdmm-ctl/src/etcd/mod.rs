//! Cluster mode: the state that many gateways and AP hosts share, kept in etcd.
//!
//! - [`keys`]: the layout of the keys by kind under a configurable prefix;
//! - [`config`]: the `[etcd]` settings (endpoints, prefix, TLS, authentication);
//! - [`client`]: the connection, deadlines, and refusing writes while etcd is away;
//! - [`health`]: reachability and counters for logs, metrics and `vdmm-ctl status`;
//! - [`metrics`]: that health as the agent's status and Prometheus metrics;
//! - [`mirror`]: a node's copy of the records it needs, read at a revision and watched;
//! - [`alloc`]: pool addresses and vAP MACs allocated with transactions;
//! - [`store`]: the agent's store on etcd;
//! - [`records`]: the values of host registrations and vAP locations;
//! - [`placement`]: the vAP locations as one node's vAPs and its anchored clients' bindings;
//! - [`liveness`]: a node's lease and registration;
//! - [`watchdog`]: the controller marking nodes down and handing their clients on.
//!
//! What must not live here: the data plane (the agent applies the mirror's changes to its
//! maps) and the meaning of the records' values beyond what allocation needs.

pub mod alloc;
pub mod client;
pub mod config;
pub mod error;
pub mod health;
pub mod keys;
pub mod liveness;
pub mod metrics;
pub mod mirror;
pub mod placement;
pub mod records;
pub mod store;
pub mod watchdog;

pub use client::Etcd;
pub use config::EtcdSettings;
pub use error::ClusterError;
pub use keys::{KeyLayout, Kind};
