//! Shared harness for vdmm's integration tests.
