//! The bounded fuzz run of the test suite: every target replays the committed corpus
//! (`fuzz/seeds/`, `fuzz/corpus/`, `fuzz/crashes/`, all of it, each input once), then runs
//! hostile documents made by proptest from its seeds: numbers at and past the limits of their
//! types, empty, huge and odd strings, wrong types, nulls, in any field, and raw bytes. The
//! coverage-guided long run is `fuzz/` (see fuzz/README.md); both call the same functions.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::Value;

use super::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The target's function by name.
fn target(name: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
}

/// Every committed input of `name`, with its path.
fn corpus(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["seeds", "corpus", "crashes"] {
        let Ok(dir) = std::fs::read_dir(fuzz_dir().join(kind).join(name)) else {
            continue;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

/// Removes the scratch dir when the test ends, also when it fails.
struct Scratch;

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(super::scratch_dir());
    }
}

/// Replays every committed input of `name`; fails naming each one that panicked.
fn replay(name: &str) {
    let _scratch = Scratch;
    let f = target(name);
    let inputs = corpus(name);
    assert!(!inputs.is_empty(), "fuzz/seeds/{name}/ has no input");
    let panicked: Vec<String> = inputs
        .iter()
        .filter(|(_, bytes)| std::panic::catch_unwind(|| f(bytes)).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        panicked.is_empty(),
        "{name} panicked on {} of {} inputs: {}",
        panicked.len(),
        inputs.len(),
        panicked.join(", ")
    );
}

/// Where a seed's document starts: the bytes before it (a target's selectors), and the
/// document itself.
fn split_seed(name: &str, seed: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let at = match name {
        "api_response" => 1.min(seed.len()),
        "client_answer" => seed
            .iter()
            .skip(3)
            .position(|&b| b == b'\n')
            .map_or(seed.len(), |i| i + 4),
        "retry_after" => 8.min(seed.len()),
        _ => 0,
    };
    (seed[..at].to_vec(), seed[at..].to_vec())
}

/// Raw JSON tokens that serde_json's `Value` cannot hold, put in through markers.
const RAW: &[&str] = &[
    "1e400",
    "-1e400",
    "18446744073709551616",
    "-9223372036854775809",
    "1e20",
    "-0.0",
    "4294967296",
    "1.7976931348623157e308",
];

/// What a hostile document puts in a field: limits, wrong types, odd strings.
fn hostile_json(i: usize) -> Value {
    let values = [
        Value::from(u32::MAX),
        Value::from(u64::MAX),
        Value::from(i64::MIN),
        Value::from(-1),
        Value::from(0),
        Value::from(1e308),
        Value::from(-1e308),
        Value::from(5e-324),
        Value::from(""),
        Value::from(" \t\n"),
        Value::from("\u{0}"),
        Value::from("é€😀".repeat(100)),
        Value::from("x".repeat(5000)),
        Value::from("NaN"),
        Value::from("inf"),
        Value::from("-1"),
        Value::from("99999999999999999999"),
        Value::from(".."),
        Value::from("%2e"),
        Value::from("ipsec.example."),
        Value::from("::"),
        Value::from("300.1.1.1"),
        Value::from("9999-12-31T23:59:59Z"),
        Value::Null,
        Value::from(true),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!([null, 1, "a"]),
        serde_json::json!({"": null}),
    ];
    let n = values.len() + RAW.len();
    match i % n {
        i if i < values.len() => values[i].clone(),
        i => Value::from(format!("@@raw{}@@", i - values.len())),
    }
}

/// A number at a limit of its type, or past it.
fn hostile_number(i: usize) -> Value {
    let limits = [
        Value::from(u32::MAX),
        Value::from(u64::MAX),
        Value::from(i64::MIN),
        Value::from(i64::MAX),
        Value::from(-1),
        Value::from(1e308),
        Value::from(-1e308),
    ];
    match i % (limits.len() + RAW.len()) {
        n if n < limits.len() => limits[n].clone(),
        n => Value::from(format!("@@raw{}@@", n - limits.len())),
    }
}

/// Every node of `v` as a JSON pointer.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointers(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(item, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
}

/// `doc` with the nodes `edits` picks replaced by hostile values; `None` when it is not JSON.
fn mutate_json(doc: &[u8], edits: &[(usize, usize)]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(doc).ok()?;
    for &(node, hostile) in edits {
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        // Half the edits put a number at its limits where a number was; the others put
        // anything anywhere.
        let numbers: Vec<&String> = all
            .iter()
            .filter(|p| value.pointer(p).is_some_and(Value::is_number))
            .collect();
        let (at, new) = if hostile % 2 == 0 && !numbers.is_empty() {
            (
                numbers[node % numbers.len()].clone(),
                hostile_number(hostile / 2),
            )
        } else {
            (all[node % all.len()].clone(), hostile_json(hostile / 2))
        };
        if let Some(slot) = value.pointer_mut(&at) {
            *slot = new;
        }
    }
    let mut text = serde_json::to_string(&value).ok()?;
    for (i, raw) in RAW.iter().enumerate() {
        text = text.replace(&format!("\"@@raw{i}@@\""), raw);
    }
    Some(text.into_bytes())
}

/// What a hostile config puts in a key.
fn hostile_toml(i: usize) -> toml::Value {
    use toml::Value as T;
    let values = [
        T::Integer(i64::MAX),
        T::Integer(i64::MIN),
        T::Integer(-1),
        T::Integer(0),
        T::Integer(u32::MAX as i64 + 1),
        T::Float(f64::INFINITY),
        T::Float(f64::NEG_INFINITY),
        T::Float(f64::NAN),
        T::Float(1e308),
        T::Float(-0.0),
        T::String(String::new()),
        T::String("0s".into()),
        T::String("18446744073709551615s".into()),
        T::String("99999999999999999999h".into()),
        T::String("1ns".into()),
        T::String("x".repeat(5000)),
        T::String("é€😀".repeat(100)),
        T::String("\u{0}".into()),
        T::String("..".into()),
        T::String("/".into()),
        T::String("psk".into()),
        T::String("psk-open".into()),
        T::String("DEMO_PSK".into()),
        T::String("a@b".into()),
        T::String("::1".into()),
        T::Boolean(true),
        T::Array(vec![]),
        T::Array(vec![T::String(String::new())]),
        T::Table(toml::Table::new()),
    ];
    values[i % values.len()].clone()
}

fn toml_paths(v: &toml::Value, at: &[String], out: &mut Vec<Vec<String>>) {
    out.push(at.to_vec());
    let mut child = |k: String, item: &toml::Value| {
        let mut path = at.to_vec();
        path.push(k);
        toml_paths(item, &path, out);
    };
    match v {
        toml::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                child(i.to_string(), item);
            }
        }
        toml::Value::Table(t) => {
            for (k, item) in t {
                child(k.clone(), item);
            }
        }
        _ => {}
    }
}

fn toml_slot<'a>(v: &'a mut toml::Value, path: &[String]) -> Option<&'a mut toml::Value> {
    path.iter().try_fold(v, |v, k| match v {
        toml::Value::Array(items) => items.get_mut(k.parse::<usize>().ok()?),
        toml::Value::Table(t) => t.get_mut(k),
        _ => None,
    })
}

/// The config part of a `config` seed with hostile values put in; `None` when not TOML.
fn mutate_toml(doc: &[u8], edits: &[(usize, usize)]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(doc).ok()?;
    let mut value = toml::Value::Table(toml::from_str(text).ok()?);
    for &(node, hostile) in edits {
        let mut all = Vec::new();
        toml_paths(&value, &[], &mut all);
        let path = all[node % all.len()].clone();
        if path.is_empty() {
            continue;
        }
        if let Some(slot) = toml_slot(&mut value, &path) {
            *slot = hostile_toml(hostile);
        }
    }
    toml::to_string(&value).ok().map(String::into_bytes)
}

/// A hostile input made from a seed of `name`: its document with hostile values put in, its
/// selector bytes (and a `config`'s environment and PSK file) kept or replaced.
fn hostile_input(
    name: &str,
    seed: &[u8],
    edits: &[(usize, usize)],
    head: Option<&[u8]>,
) -> Vec<u8> {
    let (prefix, doc) = split_seed(name, seed);
    let (doc, tail) = match name {
        "config" => match doc.iter().position(|&b| b == 0) {
            Some(i) => (doc[..i].to_vec(), doc[i..].to_vec()),
            None => (doc, Vec::new()),
        },
        _ => (doc, Vec::new()),
    };
    let mutated = match name {
        "config" => mutate_toml(&doc, edits),
        "audit_log" => {
            let lines: Vec<Vec<u8>> = doc
                .split(|&b| b == b'\n')
                .map(|l| mutate_json(l, edits).unwrap_or_else(|| l.to_vec()))
                .collect();
            Some(lines.join(&b'\n'))
        }
        "vici_frame" => Some(mutate_bytes(&doc, edits)),
        _ => mutate_json(&doc, edits),
    };
    let mut out = head.map_or(prefix, <[u8]>::to_vec);
    out.extend(mutated.unwrap_or(doc));
    out.extend(tail);
    out
}

/// A binary document with bytes overwritten: each edit puts its second number's low byte (a
/// length byte, a type byte, a section end) at its first number's place; lengths and types at
/// their limits are what a binary codec must survive.
fn mutate_bytes(doc: &[u8], edits: &[(usize, usize)]) -> Vec<u8> {
    let mut out = doc.to_vec();
    let len = out.len();
    for &(at, value) in edits {
        if len > 0 {
            out[at % len] = [0x00, 0xff, 0x7f, 0x80, 1, 2, 3, 4, 5, 6, 7, value as u8][value % 12];
        }
    }
    out
}

/// Selector bytes for targets whose input starts with some: a `client_answer`'s call,
/// status and `Retry-After`, a `retry_after`'s clock and value.
fn hostile_head(name: &str) -> BoxedStrategy<Option<Vec<u8>>> {
    match name {
        "client_answer" => (
            any::<u8>(),
            prop_oneof![
                Just(0u16),
                Just(204 - 200),
                Just(229),
                Just(300),
                any::<u16>()
            ],
            retry_after_value(),
        )
            .prop_map(|(call, status, ra)| {
                let mut head = vec![call];
                head.extend(status.to_be_bytes());
                head.extend(ra.bytes().filter(|&b| b != b'\n'));
                head.push(b'\n');
                Some(head)
            })
            .boxed(),
        _ => Just(None).boxed(),
    }
}

/// `Retry-After` values at the edges: seconds past `u64`, fractions, exponents, dates at the
/// ends of the calendar, junk.
fn retry_after_value() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        any::<u64>().prop_map(|n| n.to_string()),
        (any::<u32>(), -30i32..330).prop_map(|(m, e)| format!("{m}e{e}")),
        (0u64..u64::MAX, 0u32..1000).prop_map(|(s, f)| format!("{s}.{f}")),
        prop::sample::select(vec![
            "18446744073709551616",
            "1e20",
            "1.8446744073709552e19",
            "inf",
            "NaN",
            "-0",
            "-1",
            "+5",
            " 7 ",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Mon, 01 Jan 0001 00:00:00 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,40}",
    ]
    .boxed()
}

/// Runs `cases` hostile inputs of `name` (at most `budget` long); fails with the smallest
/// input proptest finds that panics.
fn hostile(name: &str, cases: u32, budget: Duration) {
    let _scratch = Scratch;
    let f = target(name);
    let seeds: Vec<Vec<u8>> = corpus(name)
        .into_iter()
        .filter(|(p, _)| p.components().any(|c| c.as_os_str() == "seeds"))
        .map(|(_, b)| b)
        .collect();
    assert!(!seeds.is_empty(), "fuzz/seeds/{name}/ has no input");
    let edits = prop::collection::vec((any::<usize>(), any::<usize>()), 1..4);
    let owned = name.to_owned();
    let from_seed = (prop::sample::select(seeds), edits, hostile_head(name))
        .prop_map(move |(seed, edits, head)| hostile_input(&owned, &seed, &edits, head.as_deref()));
    let clock = (
        prop::sample::select(vec![0u64, 1_445_412_480, 253_402_300_799, u64::MAX]),
        retry_after_value(),
    )
        .prop_map(|(c, v)| [c.to_le_bytes().to_vec(), v.into_bytes()].concat());
    let strategy = if name == "retry_after" {
        prop_oneof![3 => clock, 1 => from_seed].boxed()
    } else {
        prop_oneof![4 => from_seed, 1 => prop::collection::vec(any::<u8>(), 0..512)].boxed()
    };
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_time: 20_000,
        ..ProptestConfig::default()
    });
    let start = Instant::now();
    let result = runner.run(&strategy, |input| {
        if start.elapsed() < budget {
            f(&input);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// One test per target and harness, so that a failure names what broke.
macro_rules! fuzz_tests {
    ($($name:ident: $cases:expr;)*) => {
        mod corpus {
            $(#[test]
            fn $name() {
                super::replay(stringify!($name));
            })*
        }
        mod hostile {
            $(#[test]
            fn $name() {
                super::hostile(stringify!($name), $cases, std::time::Duration::from_secs(20));
            })*
        }
    };
}

fuzz_tests! {
    catalog: 1500;
    config: 1500;
    selection_file: 3000;
    managed_file: 1500;
    catalog_cache_file: 1500;
    audit_log: 2000;
    api_response: 2000;
    client_answer: 1000;
    retry_after: 3000;
    vici_frame: 3000;
}

#[test]
fn every_target_has_a_harness_and_seeds() {
    for (name, _) in TARGETS {
        let harness = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&harness).unwrap_or_default();
        assert!(
            text.contains(&format!("popsel::fuzz::{name}(")),
            "{} does not call popsel::fuzz::{name}",
            harness.display()
        );
        assert!(!corpus(name).is_empty(), "fuzz/seeds/{name}/ is empty");
    }
}

#[test]
fn a_mutated_seed_holds_the_hostile_values() {
    let seed = br#"{"a":{"b":[1,2]},"c":"x"}"#;
    let all: Vec<Vec<u8>> = (0..6)
        .flat_map(|node| (0..80).map(move |h| mutate_json(seed, &[(node, h)]).unwrap()))
        .collect();
    let text: Vec<String> = all
        .iter()
        .map(|b| String::from_utf8_lossy(b).into())
        .collect();
    assert!(text.iter().any(|t| t.contains("1e400")));
    assert!(text.iter().any(|t| t.contains("4294967295")));
    assert!(text.iter().any(|t| t.contains(r#""b":[null,2]"#)));
}

/// The `vici_frame` seed is a `list-sas` stream the client understands, so that mutations of it
/// reach the IKE_SA parsing rather than stopping at the framing.
#[test]
fn the_vici_seed_is_a_list_sas_stream_of_two_ike_sas() {
    use crate::edge::vici::IkeSa;
    use crate::edge::vici::message::{FrameDecoder, Packet};
    let bytes = std::fs::read(fuzz_dir().join("seeds/vici_frame/list-sas-stream")).unwrap();
    let mut decoder = FrameDecoder::default();
    decoder.push(&bytes);
    let mut sas = Vec::new();
    while let Some((packet, _)) = decoder.next_packet().unwrap() {
        if let Packet::Event { message, .. } = packet {
            for (name, sa) in message.sections() {
                sas.push(IkeSa::from_vici(name, sa).unwrap());
            }
        }
    }
    assert_eq!(sas.len(), 2, "{sas:?}");
    assert!(sas.iter().all(IkeSa::is_established));
    let child = sas[0].installed_child("popsel-chicago-primary").unwrap();
    assert_eq!((child.uniqueid, child.bytes_in), (3, Some(1200)));
    assert!(sas[1].children.is_empty(), "the standby is childless");
}
