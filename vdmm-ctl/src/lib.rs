//! vdmm control plane as a library: the `vdmm-ctl` binary is a thin command-line front end
//! over it, and the integration tests (and the future daemon) use it to load and program
//! the data plane.
//!
//! - [`agent`]: the agent daemon: desired state, store, reconciler, control API;
//! - [`pin`]: the pin directory on a bpffs and its layout;
//! - [`loader`]: load, attach to / detach from interfaces, reset;
//! - [`device`]: `vdmm0`, the slow path's device (TC egress program, bindings' routes);
//! - [`maps`]: typed access to the pinned maps with validation ([`maps::Dataplane`]);
//! - [`natpt`]: the transition gateway's tables (SIIT translator settings, RFC 7757 EAMT,
//!   IPv4 address pool, IPv6 prefixes of IPv4 segments) with their rules;
//! - [`vap`]: virtual access points of an AP host (create, delete, forward, counters,
//!   reports of unknown clients); [`vap_record`]: a vAP as the agent keeps it;
//!   [`vap_sync`]: records written into the vAP maps as they are (the agent's reconciler);
//! - [`cache_gen`]: invalidation of the data plane's first-level caches of the vAP, tunnel
//!   address, binding and translator tables after a change;
//! - [`metrics`]: Prometheus metrics of the pinned maps;
//! - [`routes`]: the kernel routes of the slow path (rtnetlink); [`neigh`]: neighbour
//!   entries resolved ahead of traffic (a handover's anchor);
//! - [`addr`]: address and prefix parsing;
//! - [`etcd`]: cluster mode, the state shared through etcd;
//! - [`cli`] and [`commands`]: the command line;
//! - [`cluster`]: the cluster description (AP hosts, anchors) a move reads;
//! - [`handover`]: make-before-break moves of vAPs between AP hosts;
//! - [`alb`]: adaptive load balancing (the algorithm, its simulator);
//! - [`plot`]: SVG line charts;
//! - [`error`]: the library's one-line errors.

pub mod addr;
pub mod agent;
pub mod alb;
pub mod binding_table;
pub mod cache_gen;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod device;
pub mod error;
pub mod etcd;
pub mod handover;
pub mod loader;
pub mod maps;
pub mod metrics;
pub mod natpt;
pub mod neigh;
pub mod netns;
pub mod pin;
pub mod plot;
pub mod routes;
pub mod table;
pub mod vap;
pub mod vap_record;
pub mod vap_sync;
pub mod verifier;

#[cfg(test)]
mod kernel_tests;
#[cfg(test)]
mod metrics_kernel_tests;
#[cfg(test)]
mod natpt_kernel_tests;
#[cfg(test)]
mod vap_kernel_tests;

pub use error::{Error, Result};

/// The compiled eBPF object (all vdmm programs and maps), built by `build.rs`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vdmm"));
