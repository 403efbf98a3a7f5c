//! Shared harness for vdmm's integration tests: namespaces, packet building, loading the
//! data plane, real etcd clusters.

pub mod agent;
pub mod etcd;
pub mod handover_lab;
pub mod lab;
pub mod netns;
pub mod packet;
pub mod plot;
pub mod testrun;
pub mod transition_lab;
pub mod xlat_lab;
