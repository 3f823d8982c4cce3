//! Running `popsel` on a terminal: a pseudo-terminal made by `script` (util-linux, in Debian's
//! essential bsdutils package), so that the tests see what an operator's console gets.

use std::process::{Command, Output, Stdio};

/// `cmd` run with its stdout and stderr on a pseudo-terminal (both end up in the returned
/// stdout, as a console shows them), its environment and directory kept, `TERM=xterm`.
pub async fn on_terminal(cmd: &Command) -> Output {
    let mut line = quote(&cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&quote(&arg.to_string_lossy()));
    }
    let mut script = Command::new("script");
    // -q: no banner; -e: the command's exit code; -c: the command; /dev/null: no typescript.
    script
        .args(["-qec", &line, "/dev/null"])
        .env("TERM", "xterm");
    for (var, value) in cmd.get_envs() {
        match value {
            Some(value) => script.env(var, value),
            None => script.env_remove(var),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        script.current_dir(dir);
    }
    script.stdin(Stdio::null());
    tokio::task::spawn_blocking(move || {
        script
            .output()
            .expect("run `script` (util-linux; Debian's bsdutils) to get a pseudo-terminal")
    })
    .await
    .expect("join")
}

/// `s` as one word for `sh -c`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Whether `bytes` hold an SGR escape sequence (`ESC [ … m`): colour, bold, underline.
pub fn has_sgr(bytes: &[u8]) -> bool {
    bytes.windows(2).enumerate().any(|(i, w)| {
        w == b"\x1b["
            && bytes[i + 2..]
                .iter()
                .find(|b| !(b.is_ascii_digit() || **b == b';'))
                .is_some_and(|b| *b == b'm')
    })
}
