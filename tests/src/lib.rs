//! Shared harness for vdmm's integration tests: namespaces, packet building, loading the
//! data plane, real etcd clusters.

pub mod agent;
pub mod etcd;
pub mod etcd_tls;
pub mod handover_lab;
pub mod lab;
pub mod netns;
pub mod packet;
pub mod pinned;
/// SVG charts: vdmm-ctl's plot module, shared with `vdmm-ctl alb simulate --plot`.
pub use vdmm_ctl::plot;
pub mod testrun;
pub mod transition_lab;
pub mod vap_lab;
pub mod xlat_lab;
