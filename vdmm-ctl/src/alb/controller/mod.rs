//! The ALB controller behind `vdmm-ctl alb ap|report|feed|status|rebalance|enable|disable|
//! params|metrics`: its [`state::State`] (APs, clients' smoothed reports and traffic, the
//! balancer's history and parameters, counters) lives in a JSON [`file::StateFile`]
//! changed under a lock, and its [`metrics`] are Prometheus text.

pub mod execute;
pub mod file;
pub mod metrics;
pub mod state;
