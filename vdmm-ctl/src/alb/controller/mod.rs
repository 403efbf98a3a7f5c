//! The ALB controller behind `vdmm-ctl alb ap|report|feed|status|rebalance|enable|disable|
//! params|metrics|collect|run`: its [`state::State`] (APs, clients' smoothed reports and
//! traffic, the balancer's history and parameters, counters) lives in a JSON
//! [`file::StateFile`] changed under a lock, and its [`metrics`] are Prometheus text.
//! [`sample`] reads who serves whom and the per-vAP byte counters from the AP hosts'
//! data planes; [`execute`] makes a round's moves as vAP handovers; [`live`] runs a round
//! on the data planes, and [`daemon`] runs one every interval while the balancer is
//! enabled (`alb run`).

pub mod daemon;
pub mod execute;
pub mod file;
pub mod live;
pub mod metrics;
pub mod sample;
pub mod state;
