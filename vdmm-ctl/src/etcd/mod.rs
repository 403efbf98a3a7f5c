//! Cluster mode: the state that many gateways and AP hosts share, kept in etcd.
//!
//! - [`keys`]: the layout of the keys by kind under a configurable prefix;
//! - [`config`]: the `[etcd]` settings (endpoints, prefix, TLS, authentication);
//! - [`client`]: the connection, deadlines, and refusing writes while etcd is away;
//! - [`health`]: reachability and counters for logs, metrics and `vdmm-ctl status`;
//! - [`mirror`]: a node's copy of the records it needs, read at a revision and watched;
//! - [`alloc`]: pool addresses and vAP MACs allocated with transactions.
//!
//! What must not live here: the data plane (the agent applies the mirror's changes to its
//! maps) and the meaning of the records' values beyond what allocation needs.

pub mod alloc;
pub mod client;
pub mod config;
pub mod error;
pub mod health;
pub mod keys;
pub mod mirror;
pub mod store;

pub use client::Etcd;
pub use config::EtcdSettings;
pub use error::ClusterError;
pub use keys::{KeyLayout, Kind};
