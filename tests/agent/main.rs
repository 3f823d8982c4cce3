//! `popsel run` (the agent) and `popsel demo` as an operator runs them: the binary as a child
//! process against an emulator in the test's runtime, over loopback, with a config in a
//! temporary directory.
//!
//! Every agent here runs with `--no-probe`: the sample catalogue's addresses only answer inside
//! the latency lab and must never be pinged from a test machine. The config's `[dns]` points at
//! a closed loopback port so that the catalogue's `.test` names never reach a real resolver and
//! the probe stage stays short.

#[path = "../support/mod.rs"]
mod support;

mod emulator;
mod exposition;
mod http;
mod process;
mod site;

mod commands;
mod first_cycle;
mod outage;
mod promtool;
mod secrets;
mod signals;
