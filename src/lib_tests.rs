//! The crate's layout, checked from its source: no import cycle between the modules of `src/`,
//! pure cores that import no I/O module, and stages sequenced by the pipeline alone. Read as
//! text, so that a change that breaks the layering fails here instead of in review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The pure cores: no network, disk, clock or randomness of their own (those are passed in).
const PURE: &[&str] = &[
    "atmos::error",
    "atmos::resource",
    "atmos::retry",
    "atmos::rules",
    "atmos::types",
    "catalog",
    "catalog::wire",
    "catalog::wire::lenient",
    "edge::sa_plan",
    "edge::swanctl",
    "edge::vici::message",
    "edge::vici::model",
    "location",
    "probe",
    "probe::adaptive",
    "progress",
    "rank",
    "rank::contenders",
    "reconcile::managed",
    "reconcile::plan",
    "resolve",
    "schedule",
    "select",
    "select::decide",
    "survey",
    "timestamp",
];

/// What a pure core must not use: I/O, the async runtime that drives it, and the clock,
/// randomness and environment it is given instead.
const IO_CRATES: &[&str] = &[
    "SystemTime::now",
    "Instant::now",
    "fastrand::",
    "std::env",
    "tokio::",
    "reqwest::",
    "surge_ping::",
    "hickory_resolver::",
    "axum::",
    "std::fs",
    "std::process",
    "std::net::Tcp",
    "std::net::Udp",
];

/// Every non-test source file of the crate, by module path (`reconcile::plan`).
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut out = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap().with_extension("");
        let name = rel.to_string_lossy().replace('/', "::");
        if name.ends_with("_tests") || name.ends_with("fixtures") {
            continue;
        }
        if matches!(name.as_str(), "lib" | "main") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        out.insert(name, text);
    }
    out
}

/// The crate paths a file refers to (`crate::a::b::C`, `super::x`, and each path of a group
/// such as `crate::a::{b, c::D}`), as paths from the crate root.
fn references(module: &str, text: &str) -> BTreeSet<String> {
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let mut out = BTreeSet::new();
    for (prefix, base) in [("crate::", ""), ("super::", parent)] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            let tail = &rest[i + prefix.len()..];
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            let path = join(base, tail[..end].trim_end_matches(':'));
            rest = &tail[end..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let segments = &tail[..end];
            if (segments.is_empty() || segments.ends_with("::")) && rest.starts_with('{') {
                let group = braced(rest);
                expand(&path, group, &mut out);
                rest = &rest[group.len()..];
            } else if !path.is_empty() {
                out.insert(path);
            }
        }
    }
    out
}

fn join(base: &str, path: &str) -> String {
    match (base.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => base.to_owned(),
        (false, false) => format!("{base}::{path}"),
    }
}

/// `{…}` at the start of `text`, braces included.
fn braced(text: &str) -> &str {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..=i];
                }
            }
            _ => {}
        }
    }
    text
}

/// The paths of a use group `{a, b::C, d::{e}}` under `prefix`.
fn expand(prefix: &str, group: &str, out: &mut BTreeSet<String>) {
    let inner = group.trim_start_matches('{').trim_end_matches('}');
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        match item.split_once('{') {
            Some((head, _)) => {
                let nested = &item[head.len()..];
                expand(&join(prefix, head.trim_end_matches("::")), nested, out);
            }
            None => {
                let name = item.split(" as ").next().unwrap_or(item).trim();
                let name = if name == "self" { "" } else { name };
                out.insert(join(prefix, name));
            }
        }
    }
}

/// The module a path names: its longest prefix that is a module of the crate.
fn module_of<'a>(path: &str, modules: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let mut candidate = path;
    loop {
        if let Some((name, _)) = modules.get_key_value(candidate) {
            return Some(name);
        }
        candidate = candidate.rsplit_once("::")?.0;
    }
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn no_import_cycle_between_the_modules_of_src() {
    let modules = modules();
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, text) in &modules {
        for path in references(name, text) {
            if let Some(target) = module_of(&path, &modules) {
                if top(target) != top(name) {
                    graph.entry(top(name)).or_default().insert(top(target));
                }
            }
        }
    }
    assert!(graph.len() > 10, "the source was not read: {graph:?}");
    // Depth-first search; a module met again on the current path closes a cycle.
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(i) = path.iter().position(|n| *n == node) {
            panic!("import cycle: {}", path[i..].join(" → ") + " → " + node);
        }
        if !done.insert(node) {
            return;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn pure_cores_import_no_io_module() {
    let modules = modules();
    let mut wrong = Vec::new();
    for pure in PURE {
        let text = modules
            .get(*pure)
            .unwrap_or_else(|| panic!("{pure} is listed as pure but is not a module"));
        for path in references(pure, text) {
            match module_of(&path, &modules) {
                Some(target) if !PURE.contains(&target) => {
                    wrong.push(format!("{pure} uses {path} (module {target})"));
                }
                _ => {}
            }
        }
        for io in IO_CRATES {
            if text.contains(io) {
                wrong.push(format!("{pure} uses {io}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn stages_are_sequenced_by_the_pipeline_alone() {
    // Each stage's entry point, and the module that defines it.
    let entry_points = [
        ("measure::survey(", "pipeline"),
        ("lookup_all(", "resolve::dns"),
        ("rank_locations(", "rank"),
        ("select_all(", "select"),
        ("edge::hand_off(", "edge"),
        ("plan::plan(", "reconcile"),
        ("apply::apply(", "reconcile"),
        ("status::poll(", "status"),
    ];
    let modules = modules();
    let mut wrong = Vec::new();
    for (name, text) in &modules {
        for (call, home) in entry_points {
            let allowed = top(name) == "pipeline" || name.starts_with(home);
            if !allowed && text.contains(call) {
                wrong.push(format!("{name} calls {call}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn references_read_groups_renames_and_super() {
    let text =
        "use crate::{a::B, c::{d, e::F as G}, self};\nuse super::h::I;\nlet x = crate::j::k();";
    let got: Vec<String> = references("m::n", text).into_iter().collect();
    assert_eq!(got, ["", "a::B", "c::d", "c::e::F", "j::k", "m::h::I"]);
}
