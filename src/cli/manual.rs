//! `popsel completions` and `popsel man`: shell completion scripts and manual pages, generated
//! from the same clap definitions that parse the command line, so that neither can name an
//! option popsel does not have or miss one it has.

use std::io::Write;

use anyhow::Context;
use clap::{CommandFactory, ValueEnum};

use super::Cli;

/// The shells popsel completes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The completion script of `shell`, for the binary named `popsel`.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    // Into memory, which cannot fail: the generator panics on a write error, and stdout may be
    // a closed pipe.
    clap_complete::generate(shell.generator(), &mut command, "popsel", &mut script);
    script
}

pub fn completions(shell: Shell) -> anyhow::Result<()> {
    print(&completion_script(shell))
}

/// The manual page (roff) of `popsel`, or of the command `path` names (`["tunnels",
/// "create"]`).
pub fn man_page(path: &[String]) -> anyhow::Result<Vec<u8>> {
    // No `help` subcommand in the pages (it has none worth reading), and built before looking
    // a command up, so that each knows its full name (`popsel-tunnels-create`).
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut command = &root;
    for (i, name) in path.iter().enumerate() {
        command = command
            .get_subcommands()
            .find(|c| !c.is_hide_set() && c.get_name() == name)
            .with_context(|| {
                let parent = ["popsel"]
                    .into_iter()
                    .chain(path[..i].iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" ");
                let known: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
                format!(
                    "`{parent}` has no command {name:?}; it has: {}",
                    known.join(", ")
                )
            })?;
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .source(concat!("popsel ", env!("CARGO_PKG_VERSION")))
        .render(&mut page)?;
    Ok(page)
}

pub fn man(path: &[String]) -> anyhow::Result<()> {
    print(&man_page(path)?)
}

/// To stdout; a reader that stopped reading (`popsel man | head`) is no error.
fn print(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.context("writing to stdout"),
    }
}
