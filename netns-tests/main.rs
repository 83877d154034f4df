//! End-to-end tests: the real binary on machines (network namespaces), checked
//! with real clients (ping, wg, curl). Each test has its own lab, removed even
//! when it fails, so tests run in parallel.

mod bad_input;
mod cluster;
mod container;
mod dns;
mod docker_cli;
mod docker_containers;
mod docker_services;
mod hardening_crash;
mod hardening_join;
mod hardening_store;
mod harness;
mod health;
mod mesh;
mod mesh_lifecycle;
mod mesh_update;
mod network;
mod overlay;
mod overlay_restart;
mod restart;
mod services;
mod stacks;
mod whoami;
