//! popsel as an operator runs it: `popsel run` (the agent), `popsel demo`, `popsel plan` and
//! `popsel apply` (`provision`), each the binary as a child process against an emulator in the
//! test's runtime, over loopback, with a config in a temporary directory; and the deployment kit
//! the operator installs it with (`deploy`). One test binary, so that the crate is linked once
//! for all of them.
//!
//! No test here ever pings: the sample catalogue's addresses only answer inside the latency lab
//! and must never be probed from a test machine, so every agent runs with `--no-probe` (plan and
//! apply with `--no-probe --no-dns`). The agent's `[dns]` points at a closed loopback port so
//! that the catalogue's `.test` names never reach a real resolver and the probe stage stays
//! short.

#[path = "../support/mod.rs"]
mod support;

mod emulator;
mod exposition;
mod http;
mod process;
mod site;

mod check;
mod commands;
mod config_discovery;
mod crash;
mod credentials;
mod damaged_state;
mod deploy;
mod economy;
mod first_cycle;
mod flood;
mod forgetting;
mod full_disk;
mod health;
mod manual;
mod monitoring;
mod outage;
mod package;
mod panics;
mod promtool;
mod provision;
mod secrets;
mod signals;
mod state_lock;
mod systemd;
mod terminal;
