//! The agent: `vdmm-ctl daemon --config FILE` keeps a node's data plane in step with its
//! desired state.
//!
//! - [`config`]: the TOML configuration file;
//! - [`state`]: the desired state (endpoints, peers, bindings, tunnel settings, vAPs),
//!   the operations clients ask for and the deltas a store records;
//! - [`vap_state`]: the vAP operations' rules, resolved into vAP records;
//! - [`store`]: the [`store::Store`] trait and the embedded [`store::FileStore`];
//! - [`natpt_state`]: the transition gateway's translation configuration in the desired
//!   state (its ops, keys and rules);
//! - [`reconcile`]: the maps and kernel routes brought in step with the desired state
//!   ([`natpt_reconcile`]: the translator's maps);
//! - [`netlink`]: interface addresses, batches of routes, link and address events;
//! - [`api`]: the control socket's requests and the client `vdmm-ctl` uses;
//! - [`metrics`]: the agent's Prometheus metrics (served with the data plane's);
//! - [`daemon`]: the process: start-up, the state thread, the socket, signals.

pub mod api;
pub mod config;
pub mod daemon;
pub mod metrics;
pub mod natpt_config;
pub mod natpt_metrics;
pub mod natpt_reconcile;
pub mod natpt_state;
pub mod netlink;
pub mod reconcile;
pub mod state;
pub mod store;
pub mod vap_state;
