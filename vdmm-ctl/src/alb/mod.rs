//! Adaptive load balancing (ALB): signal- and load-aware placement of clients on access
//! points. The algorithm is a pure function ([`decide::decide`]) of a [`model::Snapshot`]
//! (APs with capacity, clients with their traffic and the smoothed signal of every AP that
//! hears them), the [`history::History`] of recent moves and the [`params::Params`]; the
//! simulator ([`sim`]) compares it with three baselines on a radio and mobility model, and
//! the controller ([`controller`]) keeps its state between `vdmm-ctl alb` commands.
//! See docs/alb.md.

pub mod cli;
pub mod controller;
pub mod decide;
pub mod history;
pub mod load;
pub mod model;
pub mod params;
pub mod placement;
pub mod prices;
pub mod rssi;
pub mod sim;

#[cfg(test)]
mod decide_tests;
