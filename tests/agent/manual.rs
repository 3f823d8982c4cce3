//! `popsel completions bash|zsh|fish`, `popsel man` and the help texts, as an operator (or a
//! package build) runs them: generated from the clap definitions, so they name every command
//! and option popsel has.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::{self, assert_contains, assert_exit, show};

/// Every top-level command.
const COMMANDS: [&str; 12] = [
    "tunnels",
    "connectors",
    "rank",
    "pops",
    "plan",
    "apply",
    "run",
    "check",
    "sim",
    "demo",
    "completions",
    "man",
];

async fn popsel(args: &[&str]) -> Output {
    let mut cmd = support::popsel();
    cmd.args(args)
        .env_remove("POPSEL_CONFIG")
        .stdin(Stdio::null());
    let out = support::run(cmd).await;
    assert_exit(&out, 0);
    out
}

/// Whether `program` runs here (`program --version`).
fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_completion_script_names_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = popsel(&["completions", shell]).await;
        let script = support::stdout(&out);
        assert!(script.len() > 1000, "{shell}: {} bytes", script.len());
        for command in COMMANDS {
            assert_contains(&script, command);
        }
        // fish writes `-l detailed-exitcode`, the others `--detailed-exitcode`.
        for option in ["detailed-exitcode", "nameserver", "api-url", "output"] {
            assert!(script.contains(option), "{shell}: {option}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bash_completion_parses_and_completes() {
    if !available("bash") {
        eprintln!("SKIPPED: no bash on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("popsel.bash");
    std::fs::write(&script, popsel(&["completions", "bash"]).await.stdout).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "bash -n: {}", show(&syntax));

    // What bash does on <Tab>: the completion function, given the words typed so far.
    let complete = |line: &str| -> Vec<String> {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "source {script}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; \
             COMP_POINT={point}; _popsel popsel '{current}' '{previous}'; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script = script.display(),
            words = words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            cword = words.len() - 1,
            point = line.len(),
            current = words[words.len() - 1],
            previous = words[words.len() - 2],
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(&program)
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {}", show(&out));
        support::stdout(&out).lines().map(str::to_owned).collect()
    };
    assert!(complete("popsel pl").contains(&"plan".to_owned()));
    assert!(complete("popsel plan --det").contains(&"--detailed-exitcode".to_owned()));
    assert!(complete("popsel completions ").contains(&"fish".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn man_prints_a_roff_page_naming_every_command_and_one_per_command() {
    let page = support::stdout(&popsel(&["man"]).await);
    assert!(page.contains("\n.TH popsel 1 "), "{page}");
    for command in COMMANDS {
        assert!(
            page.contains(&format!("popsel\\-{}(1)", command.replace('-', "\\-"))),
            "{command} not in:\n{page}"
        );
    }
    // The exit codes and examples of the help, in the page.
    assert_contains(&page, "Exit codes:");

    let plan = support::stdout(&popsel(&["man", "plan"]).await);
    assert!(plan.contains("\n.TH popsel-plan 1 "), "{plan}");
    assert_contains(&plan, "detailed\\-exitcode");
    let create = support::stdout(&popsel(&["man", "tunnels", "create"]).await);
    assert_contains(&create, "psk\\-env");

    let mut cmd = support::popsel();
    cmd.args(["man", "nonsuch"]);
    let out = support::run(cmd).await;
    assert_exit(&out, 1);
    assert_contains(&support::stderr(&out), "no command \"nonsuch\"");

    if available("groff") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("popsel.1");
        std::fs::write(&file, &plan).unwrap();
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", show(&out));
        assert_eq!(support::stderr(&out), "", "groff warnings");
    }
    assert!(Path::new(env!("CARGO_BIN_EXE_popsel")).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn each_help_lists_the_options_of_its_command_its_exit_codes_and_examples() {
    let plan = support::stdout(&popsel(&["plan", "--help"]).await);
    for text in [
        "--detailed-exitcode",
        "--api-url <URL>",
        "-o, --output",
        "--config <FILE>",
        "/etc/popsel/popsel.toml",
        "Exit codes:",
        "Examples:",
        "  popsel plan",
    ] {
        assert_contains(&plan, text);
    }
    let demo = support::stdout(&popsel(&["demo", "--help"]).await);
    for absent in ["--api-url", "--token-file", "--config"] {
        assert!(!demo.contains(absent), "{absent} in demo's help:\n{demo}");
    }
    assert_contains(&demo, "--log-format");
    let check = support::stdout(&popsel(&["check", "--help"]).await);
    assert!(!check.contains("--log-format"), "{check}");
    let list = support::stdout(&popsel(&["tunnels", "list", "--help"]).await);
    assert_contains(&list, "-o, --output");
    assert_contains(&list, "--api-url <URL>");
    let root = support::stdout(&popsel(&["--help"]).await);
    assert!(!root.contains("--api-url"), "{root}");
}
