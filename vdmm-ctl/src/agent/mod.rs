//! The agent: `vdmm-ctl daemon --config FILE` keeps a node's data plane in step with its
//! desired state.
//!
//! - [`state`]: the desired state (endpoints, peers, bindings, tunnel settings), the
//!   operations clients ask for and the deltas a store records;
//! - [`store`]: the [`store::Store`] trait and the embedded [`store::FileStore`].

pub mod state;
pub mod store;
