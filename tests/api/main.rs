//! The Atmos API end to end, in one test binary: the typed client against `popsel sim` (and,
//! for answers the emulator never gives, a raw HTTP server on loopback), a flaky API, and the
//! `popsel` commands that talk to it.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod connectors;
mod faults;
mod hostile;
mod progress;
mod rank_output;
mod resources;
mod tunnels;
