//! Types shared by the vdmm data plane (`vdmm-ebpf`) and control plane (`vdmm-ctl`).
//!
//! Owns the layout of every map key and value (`#[repr(C)]`, fixed size), the counter
//! reasons the data plane reports, map names and sizes, and small pure functions that both
//! sides must compute identically (the tunnel flow hash). Nothing here allocates or does
//! I/O: the crate is `no_std` so it builds for the BPF target; the `user` feature adds
//! `aya::Pod` impls for the host side.
#![no_std]

pub mod addr;
pub mod counters;
pub mod flow_hash;
pub mod maps;
pub mod translate;
pub mod tunnel;
pub mod vap;

pub use addr::IpAddrKey;
pub use counters::{Action, CounterValue, Reason, TunnelKind};
pub use tunnel::{Binding, TunnelConfig};
