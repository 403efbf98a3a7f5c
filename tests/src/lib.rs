//! Shared harness for vdmm's integration tests: namespaces, packet building, loading the
//! data plane, real etcd clusters.

pub mod agent;
pub mod etcd;
pub mod lab;
pub mod netns;
pub mod packet;
pub mod testrun;
pub mod transition_lab;
pub mod xlat_lab;
