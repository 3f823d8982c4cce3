#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = popsel::cli::Cli::parse_args();
    popsel::cli::init_logs(cli.log_format());
    log_panics();
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

/// A panic is reported through the log like everything else (one event, JSON with
/// `--log-format json`), with where it happened. The agent catches a panic in a stage run and
/// goes on; this is the line that says where to look.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = info
            .location()
            .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
        tracing::error!(%location, "panic: {message}");
    }));
}
