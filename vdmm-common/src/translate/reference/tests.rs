//! Unit tests of the reference translator beyond the conformance vectors.
