//! Damaged state never stops popsel: a state file that does not parse is moved aside
//! (`<name>.corrupt-<unix time>`), one warning names it, and popsel rebuilds what it can:
//! managed tunnels re-learned from the API by name and authentication ID (their PSKs pushed
//! once more, said in the audit log), a new fingerprint key, a fresh anti-flap memory.

use std::process::Output;
use std::time::Duration;

use popsel::sim::Sim;
use serde_json::{Value, json};

use crate::process::*;
use crate::support::state_faults::{Damage, PSKS, StateSite};
use crate::support::{self, assert_contains, assert_exit, show};

fn count(sim: &Sim, key: &str) -> u64 {
    sim.request_counts()[key].as_u64().unwrap_or(0)
}

/// The warning lines of a command's stderr that name `file` as damaged.
fn damage_warnings(out: &Output, file: &str) -> Vec<String> {
    support::stderr(out)
        .lines()
        .filter(|l| l.contains(&format!("{file} is damaged")))
        .map(str::to_owned)
        .collect()
}

/// `name.corrupt-<unix time>`, with `-<n>` when two were set aside in the same second.
fn is_set_aside_name(file: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(&format!("{file}.corrupt-")) else {
        return false;
    };
    let mut parts = rest.split('-');
    let time_ok = parts
        .next()
        .is_some_and(|t| t.len() >= 10 && t.bytes().all(|b| b.is_ascii_digit()));
    time_ok && parts.all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// After a run that met `damage` in `file`: it went on (exit 0), said so once, naming the file
/// and where it went, and the damaged file is there under its new name.
#[track_caller]
fn assert_set_aside(site: &StateSite, out: &Output, file: &str, damage: Damage, before: usize) {
    assert_exit(out, 0);
    let warnings = damage_warnings(out, file);
    assert_eq!(warnings.len(), 1, "{damage:?}: one warning\n{}", show(out));
    assert_contains(&warnings[0], "moved aside to");
    let aside = site.state_files(&format!("{file}.corrupt-"));
    assert_eq!(aside.len(), before + 1, "{damage:?}: {aside:?}");
    assert!(
        aside.iter().all(|n| is_set_aside_name(file, n)),
        "{damage:?}: {aside:?}"
    );
    let last = aside.iter().max_by_key(|n| {
        std::fs::symlink_metadata(site.state_file(n))
            .and_then(|m| m.modified())
            .ok()
    });
    assert!(
        last.is_some_and(|n| warnings[0].contains(n.as_str())),
        "{warnings:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_runs_on_a_damaged_selection_and_starts_the_anti_flap_memory_afresh() {
    let sim = support::start_sim(support::no_faults()).await;
    let site = StateSite::new(&sim.url());
    assert_exit(&site.run_once().await, 0);
    for (i, damage) in Damage::ALL.into_iter().enumerate() {
        damage.apply(&site.state_file("selection.json"));
        let out = site.run_once().await;
        assert_set_aside(&site, &out, "selection.json", damage, i);
        assert_contains(&support::stderr(&out), "anti-flap memory starts afresh");
        let text = std::fs::read_to_string(site.state_file("selection.json")).unwrap();
        let selection: Value = serde_json::from_str(&text).expect("a new selection.json");
        assert_eq!(
            selection["locations"]["chicago"]["primary"]["choice"]["pop"]["city"],
            "Chicago, Illinois",
            "{damage:?}"
        );
    }
}

/// The tunnels' ids on the API, by name.
fn ids(sim: &Sim) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = sim
        .with_store(|s| s.list::<popsel::atmos::Tunnel>())
        .into_iter()
        .map(|t| (t.name, t.id))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_managed_tunnels_are_re_learned_and_each_psk_pushed_once_with_the_reason() {
    let sim = support::start_sim(support::no_faults()).await;
    let site = StateSite::new(&sim.url());
    assert_exit(&site.apply().await, 0);
    let created = ids(&sim);
    assert_eq!(created.len(), PSKS.len());
    for (i, damage) in Damage::ALL.into_iter().enumerate() {
        damage.apply(&site.state_file("tunnels.json"));
        let (puts, posts, audited) = (count(&sim, "PUT"), count(&sim, "POST"), site.audit().len());
        let out = site.apply().await;
        assert_set_aside(&site, &out, "tunnels.json", damage, i);
        assert_contains(&support::stderr(&out), "re-learned");
        assert_eq!(count(&sim, "POST"), posts, "{damage:?}: nothing created");
        assert_eq!(
            count(&sim, "PUT"),
            puts + PSKS.len() as u64,
            "{damage:?}: one PSK push per tunnel\n{}",
            show(&out)
        );
        assert_eq!(ids(&sim), created, "{damage:?}: the same tunnels");
        let managed = site.managed();
        for (name, id) in &created {
            let m = &managed["tunnels"][id];
            assert_eq!(m["name"], name.as_str(), "{damage:?}: {managed}");
            assert_eq!(m["psk_fingerprint"].as_str().map(str::len), Some(64));
        }
        let audit = site.audit();
        let new = &audit[audited..];
        assert_eq!(new.len(), PSKS.len(), "{damage:?}: {new:?}");
        for entry in new {
            assert_eq!(entry["action"], "update");
            assert!(entry["fields"].as_array().unwrap().contains(&json!("psk")));
            let why = entry["why"].as_str().unwrap_or_default();
            assert!(why.contains("tunnels.json"), "{damage:?}: {entry}");
        }
        // Once: the next apply writes nothing.
        let writes = count(&sim, "writes");
        let out = site.apply().await;
        assert_exit(&out, 0);
        assert_eq!(count(&sim, "writes"), writes, "{damage:?}: {}", show(&out));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_runs_on_damaged_managed_tunnels() {
    let sim = support::start_sim(support::no_faults()).await;
    let site = StateSite::new(&sim.url());
    assert_exit(&site.run_once().await, 0);
    let puts = count(&sim, "PUT");
    Damage::Garbage.apply(&site.state_file("tunnels.json"));
    let out = site.run_once().await;
    assert_set_aside(&site, &out, "tunnels.json", Damage::Garbage, 0);
    assert_eq!(count(&sim, "PUT"), puts + PSKS.len() as u64);
    let writes = count(&sim, "writes");
    assert_exit(&site.run_once().await, 0);
    assert_eq!(count(&sim, "writes"), writes, "the PSKs were pushed once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_fingerprint_key_is_replaced_and_every_psk_pushed_once_with_the_reason() {
    let sim = support::start_sim(support::no_faults()).await;
    let site = StateSite::new(&sim.url());
    assert_exit(&site.apply().await, 0);
    let key = site.state_file("fingerprint.key");
    for (i, damage) in Damage::ALL.into_iter().enumerate() {
        damage.apply(&key);
        let (puts, audited) = (count(&sim, "PUT"), site.audit().len());
        let out = site.apply().await;
        assert_set_aside(&site, &out, "fingerprint.key", damage, i);
        assert_contains(&support::stderr(&out), "new key");
        let made = std::fs::metadata(&key).expect("a new key");
        assert!(made.is_file() && made.len() == 32, "{damage:?}: {made:?}");
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&made.permissions()) & 0o777,
            0o600
        );
        assert_eq!(
            count(&sim, "PUT"),
            puts + PSKS.len() as u64,
            "{damage:?}\n{}",
            show(&out)
        );
        for entry in &site.audit()[audited..] {
            let why = entry["why"].as_str().unwrap_or_default();
            assert!(why.contains("fingerprint.key"), "{damage:?}: {entry}");
        }
        let writes = count(&sim, "writes");
        assert_exit(&site.apply().await, 0);
        assert_eq!(count(&sim, "writes"), writes, "{damage:?}");
    }
}

/// `popsel plan` changes nothing, damaged files included: it says what it found and what
/// apply will do, and leaves the files for the agent or apply to move aside.
#[tokio::test(flavor = "multi_thread")]
async fn plan_reads_damaged_state_without_touching_it() {
    let sim = support::start_sim(support::no_faults()).await;
    let site = StateSite::new(&sim.url());
    assert_exit(&site.apply().await, 0);
    Damage::Garbage.apply(&site.state_file("tunnels.json"));
    Damage::Truncated.apply(&site.state_file("fingerprint.key"));
    Damage::Empty.apply(&site.state_file("selection.json"));
    let before: Vec<_> = ["tunnels.json", "fingerprint.key", "selection.json"]
        .map(|f| std::fs::read(site.state_file(f)).unwrap())
        .into();
    let out = site.plan().await;
    assert_exit(&out, 2);
    for file in ["tunnels.json", "fingerprint.key", "selection.json"] {
        let warnings = damage_warnings(&out, file);
        assert_eq!(warnings.len(), 1, "{file}\n{}", show(&out));
        assert_contains(&warnings[0], "left in place");
    }
    let after: Vec<_> = ["tunnels.json", "fingerprint.key", "selection.json"]
        .map(|f| std::fs::read(site.state_file(f)).unwrap())
        .into();
    assert_eq!(before, after, "plan changed the state");
    assert!(site.state_files("").iter().all(|n| !n.contains("corrupt")));
    let text = support::stdout(&out);
    assert_eq!(text.matches("  ~ update").count(), PSKS.len(), "{text}");
    assert_eq!(
        text.matches("psk: (sensitive)").count(),
        PSKS.len(),
        "{text}"
    );
    assert_eq!(count(&sim, "writes"), PSKS.len() as u64, "plan wrote");

    let out = site.apply().await;
    assert_exit(&out, 0);
    assert_exit(&site.plan().await, 0);
}

/// An anti-flap counter at its maximum must not overflow when its challenger wins again.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_numbers_in_the_selection_do_not_crash_popsel() {
    let sim = support::start_sim(support::no_faults()).await;
    let site = StateSite::new(&sim.url());
    assert_exit(&site.run_once().await, 0);
    let path = site.state_file("selection.json");
    let mut selection: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let primary = &mut selection["locations"]["chicago"]["primary"];
    let chicago = primary["choice"]["pop"].clone();
    primary["choice"]["pop"] =
        json!({"country": "CA", "city": "Toronto, Ontario", "provider": "AWS"});
    primary["choice"]["since_unix"] = json!(u64::MAX);
    primary["evidence"] = json!({
        "challenger": chicago,
        "wins": u32::MAX,
        "improvement_ms": f64::MAX,
        "note": "",
    });
    std::fs::write(&path, serde_json::to_vec(&selection).unwrap()).unwrap();
    let out = site.plan().await;
    assert!(matches!(out.status.code(), Some(0 | 2)), "{}", show(&out));
    assert!(
        !support::stderr(&out).contains("panicked"),
        "{}",
        show(&out)
    );
    assert_exit(&site.run_once().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_catalogue_cache_is_set_aside_while_the_api_is_down() {
    let sim = support::start_sim(support::no_faults()).await;
    let site = StateSite::new(&sim.url());
    assert_exit(&site.run_once().await, 0);
    Damage::Garbage.apply(&site.state_file("catalog.json"));
    sim.stop().await;
    let mut agent = AgentProc::spawn(site.command("run", &[]));
    let line = agent
        .wait_line(Stream::Stderr, "catalog.json", Duration::from_secs(30))
        .await;
    assert_contains(&line, "damaged");
    assert_contains(&line, "moved aside");
    assert!(agent.running(), "{}", agent.stderr_tail());
    assert_eq!(site.state_files("catalog.json.corrupt-").len(), 1);
}
