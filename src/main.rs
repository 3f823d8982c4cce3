use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = popsel::cli::Cli::parse();
    let filter = EnvFilter::try_from_env("POPSEL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        popsel::cli::LogFormat::Json => logs.json().init(),
        popsel::cli::LogFormat::Human => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = cli.worker_threads() {
        runtime.worker_threads(workers);
    }
    let runtime = match runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("popsel: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(popsel::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("popsel: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
