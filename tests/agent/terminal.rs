//! popsel on a console (a pseudo-terminal): colour only where NO_COLOR (https://no-color.org)
//! is unset or empty, in the agent's log and in clap's help and usage errors alike.

use std::process::{Command, Output};

use crate::emulator::*;
use crate::site::*;
use crate::support;
use crate::support::terminal::{has_sgr, on_terminal};

/// `cmd` on a terminal with NO_COLOR unset, set to `value`.
async fn with_no_color(mut cmd: Command, value: Option<&str>) -> Output {
    match value {
        Some(value) => cmd.env("NO_COLOR", value),
        None => cmd.env_remove("NO_COLOR"),
    };
    on_terminal(&cmd).await
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_log_on_a_terminal_honours_no_color() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let run = || site.run_command(&["--once"]);
    // The control: on a terminal, without NO_COLOR, the log is coloured (so the test can fail).
    for unset in [None, Some("")] {
        let out = with_no_color(run(), unset).await;
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("metrics on http://"), "{}", text(&out));
        assert!(
            has_sgr(&out.stdout),
            "NO_COLOR={unset:?}: no colour\n{}",
            text(&out)
        );
    }
    for set in ["1", "0", "false"] {
        let out = with_no_color(run(), Some(set)).await;
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("metrics on http://"), "{}", text(&out));
        assert!(
            !out.stdout.contains(&0x1b),
            "NO_COLOR={set}: escape codes in\n{:?}",
            text(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_log_on_a_terminal_is_never_coloured() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let out = with_no_color(site.run_command(&["--once", "--log-format", "json"]), None).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("\"metrics on http://"),
        "{}",
        text(&out)
    );
    assert!(
        !out.stdout.contains(&0x1b),
        "escape codes in JSON: {:?}",
        text(&out)
    );
}

#[tokio::test]
async fn help_and_usage_errors_on_a_terminal_honour_no_color() {
    let commands: [&[&str]; 4] = [
        &["--help"],
        &["rank", "--help"],
        &["run", "--help"],
        &["rank", "--no-such-flag"],
    ];
    for args in commands {
        let popsel = || {
            let mut cmd = support::popsel();
            cmd.args(args);
            cmd
        };
        let coloured = with_no_color(popsel(), None).await;
        assert!(has_sgr(&coloured.stdout), "{args:?}: {}", text(&coloured));
        let plain = with_no_color(popsel(), Some("1")).await;
        assert!(!has_sgr(&plain.stdout), "{args:?}: {:?}", text(&plain));
        assert!(text(&plain).contains("rank") || text(&plain).contains("Usage"));
    }
}
