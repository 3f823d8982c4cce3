//! Every log event of the crate gives its facts as plain values: no field is logged with `?`
//! (a Rust `Debug` rendering: `Some("eth0")`, `Create { location: .. }`), which a collector of
//! the JSON log cannot index. Read from the source, so that a new event cannot bring one back.

use std::path::{Path, PathBuf};

const LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !path.to_string_lossy().ends_with("_tests.rs")
        {
            out.push(path);
        }
    }
}

/// The arguments of the macro call whose `(` starts `text`, string literals blanked out.
fn arguments(text: &str) -> String {
    let mut out = String::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for c in text.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Whether the arguments of an event log a field with `?` (`?x`, `name = ?x`); the `?`
/// operator (`f()?`) follows a value and is not one.
fn has_debug_field(arguments: &str) -> bool {
    let chars: Vec<char> = arguments.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| {
        let before = chars[..i].iter().rev().find(|c| !c.is_whitespace());
        let after = chars.get(i + 1);
        c == '?'
            && matches!(before, Some('(' | ',' | '='))
            && after.is_some_and(|a| a.is_alphanumeric() || *a == '_' || *a == '&')
    })
}

#[test]
fn the_check_finds_a_debug_field() {
    assert!(has_debug_field("(?action, \"tunnel reconciled\""));
    assert!(has_debug_field("(was = ?interface, \"changed\""));
    assert!(has_debug_field("(id = %id, ?done)"));
    assert!(!has_debug_field("(tunnel = %t, id = f()?, \"x\""));
    assert!(!has_debug_field(&arguments("(\"{e:?}\", x = 1)")));
}

#[test]
fn no_log_event_renders_a_field_with_debug() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for level in LEVELS {
            let call = format!("tracing::{level}!");
            for (at, _) in text.match_indices(&call) {
                let args = arguments(&text[at + call.len()..]);
                if has_debug_field(&args) {
                    found.push(format!("{}: {call}{args})", file.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "fields logged with `?`:\n{}",
        found.join("\n")
    );
}
