//! vdmm control plane as a library: the `vdmm-ctl` binary is a thin command-line front end
//! over it, and the integration tests use it to load and program the data plane.

/// The compiled eBPF object (all vdmm programs and maps), built by `build.rs`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vdmm"));
