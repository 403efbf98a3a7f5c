//! Shared harness for vdmm's integration tests: namespaces, packet building, loading the
//! data plane.

pub mod agent;
pub mod handover_lab;
pub mod lab;
pub mod netns;
pub mod packet;
pub mod plot;
pub mod testrun;
pub mod transition_lab;
pub mod xlat_lab;
