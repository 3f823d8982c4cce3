//! A full disk: every atomic write that fails (here, out of space half-way) leaves no
//! temporary file behind, neither in the state dir nor in the swanctl dir, where a leftover
//! would hold part of a hex-encoded PSK. Root only: the disk is a tiny tmpfs mounted in a
//! mount namespace of the test's own, gone with it.

use std::process::Command;

use crate::support::state_faults::{StateSite, run_bounded};
use crate::support::{self, assert_contains, show, toml_str};

/// `popsel` as `cmd` would run it, inside a new mount namespace where `dirs` are each a
/// tmpfs of one page; then `ls -A` of each, so that the test sees them before they go.
fn on_a_full_disk(cmd: &Command, dirs: &[&std::path::Path]) -> Command {
    let mut script = String::from("set -e\n");
    for dir in dirs {
        script.push_str(&format!(
            "mkdir -p '{0}' && mount -t tmpfs -o size=4k,mode=700 tmpfs '{0}'\n",
            dir.display()
        ));
    }
    script.push_str("set +e\n\"$@\"\necho \"popsel exit $?\"\n");
    for dir in dirs {
        script.push_str(&format!("echo '== {0}'; ls -A '{0}'\n", dir.display()));
    }
    let mut outer = Command::new("unshare");
    outer
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => outer.env(key, value),
            None => outer.env_remove(key),
        };
    }
    outer
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_that_run_out_of_space_leave_no_temporary_file() {
    if !support::can_run_privileged(support::is_root()) {
        return;
    }
    let sim = support::start_sim(support::no_faults()).await;
    let mut site = StateSite::new(&sim.url());
    let swanctl = site.files.path("swanctl");
    site.edit_config(|c| {
        c.with(&format!(
            "[edge]\nswanctl_dir = {}\n",
            toml_str(&swanctl.display().to_string())
        ))
    });
    let state = site.state_dir();
    let run = on_a_full_disk(&site.command("run", &["--once"]), &[&state, &swanctl]);
    let out = run_bounded(run).await;
    let stdout = support::stdout(&out);
    assert_contains(&stdout, "popsel exit ");
    assert!(
        support::stderr(&out).contains("No space left on device"),
        "nothing ran out of space: the test proves nothing\n{}",
        show(&out)
    );
    let leftovers: Vec<&str> = stdout.lines().filter(|l| l.ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}\n{}", show(&out));
    assert!(!stdout.contains("popsel exit 101"), "{}", show(&out));
}
