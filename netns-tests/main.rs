//! End-to-end tests on machines.
