//! `popsel plan` and `popsel apply` against `popsel sim`: the binary as an operator runs it,
//! with a config written to a temporary directory. `--no-probe --no-dns` throughout: PoPs are
//! ranked by distance from the catalogue's addresses, none of which is ever pinged.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use popsel::atmos::{Tunnel, TunnelSpec, TunnelUpdate};
use popsel::sim::{Faults, Sim};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::emulator::tunnel_names;
use crate::support::site::{
    self, CHICAGO, CHICAGO_1 as NAME_1, CHICAGO_2 as NAME_2, CHICAGO_AUTH_1 as AUTH_1,
    CHICAGO_AUTH_2 as AUTH_2, CHICAGO_LOCATION_ID as LOCATION_ID, SiteDir, SiteToml,
};
use crate::support::{self, assert_contains, assert_exit, contains_bytes, show, toml_str};

const OTHER_LOCATION_ID: &str = "5a1c0e4b-8d2f-4f3e-9b7a-0c6d1e2f3a4b";
/// The primary's PSK comes from this environment variable (set on the command only)…
const PSK_ENV: &str = "POPSEL_PSK_CHICAGO_1";
const PSK_1: &str = "Chicago-one-Psk-7f3a9c";
/// …the secondary's from this file (mode 600) next to the config.
const PSK_FILE: &str = "chicago-2.psk";
const PSK_2: &str = "Chicago-two-Psk-b41e02";

// ---- helpers ----

/// A site's config in a temporary directory: the demo site's "chicago" alone, its primary
/// tunnel's PSK from `PSK_ENV` and, unless dropped, its secondary's from `PSK_FILE`.
struct Site {
    files: SiteDir,
    config: SiteToml,
}

impl Site {
    fn new(sim: &Sim) -> Site {
        let mut files = SiteDir::new();
        files.set_env(PSK_ENV, PSK_1);
        files.write_psk_file(PSK_FILE, PSK_2);
        let config = site::config(&sim.url())
            .only(CHICAGO)
            .psk_env(NAME_1, PSK_ENV)
            .psk_file(NAME_2, PSK_FILE);
        files.write_config(&config);
        Site { files, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.files.path(name)
    }

    fn state_dir(&self) -> PathBuf {
        self.files.state_dir()
    }

    fn edit_config(&mut self, edit: impl FnOnce(SiteToml) -> SiteToml) {
        self.config = edit(self.config.clone());
        self.files.write_config(&self.config);
    }

    fn set_env_psk(&mut self, psk: &str) {
        self.files.set_env(PSK_ENV, psk);
    }

    fn set_file_psk(&self, psk: &str) {
        self.files.write_psk_file(PSK_FILE, psk);
    }

    fn drop_secondary(&mut self) {
        self.edit_config(|c| c.without_tunnel(NAME_2));
    }

    /// Adds sections to the config (an `[edge]`).
    fn add_sections(&mut self, toml: &str) {
        self.edit_config(|c| c.with(toml));
    }

    /// `popsel <command> --config … --no-probe --no-dns <args>`, token and PSK in its
    /// environment, stdin not a terminal.
    fn command(&self, command: &str, args: &[&str]) -> Command {
        self.files
            .command(command, &[&["--no-probe", "--no-dns"], args].concat())
    }

    /// `plan --detailed-exitcode`: exit 2 says changes are pending, 0 that there are none.
    async fn plan(&self, args: &[&str]) -> Output {
        let mut all = vec!["--detailed-exitcode"];
        all.extend_from_slice(args);
        support::run(self.command("plan", &all)).await
    }

    /// `apply --yes`.
    async fn apply(&self, args: &[&str]) -> Output {
        let mut all = vec!["--yes"];
        all.extend_from_slice(args);
        support::run(self.command("apply", &all)).await
    }

    /// `tunnels.json` of the state dir.
    fn managed(&self) -> Value {
        let text =
            std::fs::read_to_string(self.state_dir().join("tunnels.json")).expect("tunnels.json");
        serde_json::from_str(&text).expect("tunnels.json is JSON")
    }

    fn manages(&self, id: &str) -> bool {
        self.managed()["tunnels"].get(id).is_some()
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

/// The emulator's tunnels, straight from its store.
fn tunnels(sim: &Sim) -> Vec<Tunnel> {
    sim.with_store(|s| s.list::<Tunnel>())
}

fn by_name(sim: &Sim, name: &str) -> Tunnel {
    let found: Vec<Tunnel> = tunnels(sim)
        .into_iter()
        .filter(|t| t.name == name)
        .collect();
    assert_eq!(found.len(), 1, "one tunnel named {name:?}: {found:?}");
    found.into_iter().next().unwrap()
}

/// API requests the emulator received with this method (or `writes`); 0 when none.
fn count(sim: &Sim, key: &str) -> u64 {
    sim.request_counts()[key].as_u64().unwrap_or(0)
}

/// An apply that succeeds with exactly one PUT and no other write.
async fn apply_is_one_put(site: &Site, sim: &Sim) {
    let (puts, writes) = (count(sim, "PUT"), count(sim, "writes"));
    assert_exit(&site.apply(&[]).await, 0);
    assert_eq!(count(sim, "PUT"), puts + 1, "{:?}", sim.request_counts());
    assert_eq!(
        count(sim, "writes"),
        writes + 1,
        "{:?}",
        sim.request_counts()
    );
}

/// Whether the emulator holds `psk` for tunnel `id` (what `POST /_sim/tunnels/{id}/psk-check`
/// answers).
fn psk_is(sim: &Sim, id: &str, psk: &str) -> bool {
    sim.with_store(|s| s.tunnel_psk_is(id, psk))
        .expect("tunnel exists")
}

/// A tunnel created by someone else, through the API.
async fn create_foreign(sim: &Sim, name: &str, auth: &str, psk: &str, location: &str) -> Tunnel {
    support::client_for(sim)
        .create_tunnel(&TunnelSpec {
            name: name.into(),
            authentication_id: auth.into(),
            psk: SecretString::from(psk.to_owned()),
            location_id: location.into(),
        })
        .await
        .expect("create tunnel")
}

/// The configured tunnels, as configured, with the configured PSKs.
#[track_caller]
fn assert_configured(sim: &Sim, psk_1: &str, psk_2: &str) {
    assert_eq!(tunnel_names(sim), [NAME_1, NAME_2]);
    for (name, auth, psk) in [(NAME_1, AUTH_1, psk_1), (NAME_2, AUTH_2, psk_2)] {
        let t = by_name(sim, name);
        assert_eq!(t.authentication_id, auth);
        assert_eq!(t.location_id, LOCATION_ID);
        assert!(psk_is(sim, &t.id, psk), "{name} has the configured PSK");
    }
}

// ---- plan and apply on an empty account, then again ----

#[tokio::test(flavor = "multi_thread")]
async fn plan_on_an_empty_account_shows_creates_and_exits_0_or_2_with_detailed_exitcode() {
    let sim = support::start_sim(Faults::default()).await;
    let site = Site::new(&sim);
    // As terraform plan: success whether or not changes are pending…
    let plain = support::run(site.command("plan", &[])).await;
    assert_exit(&plain, 0);
    // …and 2 for "changes pending" only when asked for.
    let out = site.plan(&[]).await;
    assert_exit(&out, 2);
    assert_contains(
        &support::stdout(&plain),
        "Plan: 2 to create, 0 to update, 0 to delete",
    );
    let text = support::stdout(&out);
    assert_contains(
        &text,
        &format!("  + create    \"{NAME_1}\" (location {CHICAGO})"),
    );
    assert_contains(
        &text,
        &format!("  + create    \"{NAME_2}\" (location {CHICAGO})"),
    );
    assert_contains(&text, "Plan: 2 to create, 0 to update, 0 to delete");
    // The selection names a PoP by the one label (country/city/provider), as the metrics do.
    assert_contains(&text, "US/Chicago, Illinois/GCP");
    assert_eq!(count(&sim, "writes"), 0, "plan never writes");
    assert!(tunnels(&sim).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_creates_exactly_the_configured_tunnels_and_a_second_apply_writes_nothing() {
    let sim = support::start_sim(Faults::default()).await;
    let site = Site::new(&sim);

    let out = site.apply(&[]).await;
    assert_exit(&out, 0);
    assert!(
        support::stdout(&out).contains("→ created"),
        "{}",
        show(&out)
    );
    assert_configured(&sim, PSK_1, PSK_2);
    assert_eq!(count(&sim, "POST"), 2, "{:?}", sim.request_counts());
    assert_eq!(count(&sim, "writes"), 2, "{:?}", sim.request_counts());
    for name in [NAME_1, NAME_2] {
        let id = by_name(&sim, name).id;
        assert_eq!(site.managed()["tunnels"][&id]["name"], name);
        assert_eq!(site.managed()["tunnels"][&id]["location"], CHICAGO);
    }

    let writes = count(&sim, "writes");
    let out = site.apply(&[]).await;
    assert_exit(&out, 0);
    assert!(
        support::stdout(&out).contains("Nothing to change."),
        "{}",
        show(&out)
    );
    assert_eq!(count(&sim, "writes"), writes, "the second apply wrote");

    let out = site.plan(&[]).await;
    assert_exit(&out, 0);
    let text = support::stdout(&out);
    assert_contains(&text, &format!("  = unchanged \"{NAME_1}\""));
    assert_contains(&text, &format!("  = unchanged \"{NAME_2}\""));
    assert_eq!(count(&sim, "writes"), writes);
    assert_configured(&sim, PSK_1, PSK_2);
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_json_lists_the_actions() {
    let sim = support::start_sim(Faults::default()).await;
    let site = Site::new(&sim);
    let actions = |out: &Output| -> Vec<String> {
        let v: Value = serde_json::from_str(&support::stdout(out))
            .unwrap_or_else(|e| panic!("plan --output json is not JSON ({e}): {}", show(out)));
        v["plan"]["actions"]
            .as_array()
            .unwrap_or_else(|| panic!("no plan.actions: {v}"))
            .iter()
            .map(|a| a["action"].as_str().expect("action is a string").to_owned())
            .collect()
    };

    let out = site.plan(&["--output", "json"]).await;
    assert_exit(&out, 2);
    assert_eq!(actions(&out), ["create", "create"]);
    let v: Value = serde_json::from_str(&support::stdout(&out)).unwrap();
    assert_eq!(v["plan"]["writes"], 2);
    assert_eq!(v["plan"]["conflicts"], 0);
    assert_eq!(v["plan"]["actions"][0]["tunnel"], NAME_1);
    assert!(v["selection"]["locations"][CHICAGO].is_object(), "{v}");

    assert_exit(&site.apply(&[]).await, 0);
    let out = site.plan(&["--output", "json"]).await;
    assert_exit(&out, 0);
    assert_eq!(actions(&out), ["unchanged", "unchanged"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_without_yes_and_no_terminal_refuses_and_writes_nothing() {
    let sim = support::start_sim(Faults::default()).await;
    let site = Site::new(&sim);
    let out = support::run(site.command("apply", &[])).await;
    assert_ne!(code(&out), 0, "{}", show(&out));
    assert!(support::stderr(&out).contains("--yes"), "{}", show(&out));
    assert_eq!(count(&sim, "writes"), 0, "{:?}", sim.request_counts());
    assert!(tunnels(&sim).is_empty());
}

// ---- changes after the first apply ----

#[tokio::test(flavor = "multi_thread")]
async fn a_psk_change_is_exactly_one_put_and_the_emulator_then_holds_the_new_psk() {
    let sim = support::start_sim(Faults::default()).await;
    let mut site = Site::new(&sim);
    assert_exit(&site.apply(&[]).await, 0);
    let (id_1, id_2) = (by_name(&sim, NAME_1).id, by_name(&sim, NAME_2).id);

    // From the environment variable.
    let new_1 = "Chicago-one-Psk-ROTATED-11";
    site.set_env_psk(new_1);
    let out = site.plan(&[]).await;
    assert_exit(&out, 2);
    let text = support::stdout(&out);
    assert_contains(&text, &format!("  ~ update    \"{NAME_1}\" ({id_1})"));
    assert_contains(&text, "psk: (sensitive) (changed in the config)");
    apply_is_one_put(&site, &sim).await;
    assert!(psk_is(&sim, &id_1, new_1));
    assert!(!psk_is(&sim, &id_1, PSK_1));
    assert!(psk_is(&sim, &id_2, PSK_2), "the other tunnel is left alone");

    // From the file.
    let new_2 = "Chicago-two-Psk-ROTATED-22";
    site.set_file_psk(new_2);
    apply_is_one_put(&site, &sim).await;
    assert!(psk_is(&sim, &id_2, new_2));
    assert!(psk_is(&sim, &id_1, new_1));

    // And then nothing more.
    assert_exit(&site.plan(&[]).await, 0);
    let writes = count(&sim, "writes");
    assert_exit(&site.apply(&[]).await, 0);
    assert_eq!(count(&sim, "writes"), writes);
    assert_eq!(
        tunnel_names(&sim),
        [NAME_1, NAME_2],
        "same tunnels, no new ones"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tunnel_edited_on_the_server_is_put_back() {
    let sim = support::start_sim(Faults::default()).await;
    let site = Site::new(&sim);
    assert_exit(&site.apply(&[]).await, 0);
    let (id_1, id_2) = (by_name(&sim, NAME_1).id, by_name(&sim, NAME_2).id);

    let client = support::client_for(&sim);
    client
        .update_tunnel(
            &id_1,
            &TunnelUpdate {
                authentication_id: Some("edited-by-hand@branch.example".into()),
                ..TunnelUpdate::default()
            },
        )
        .await
        .unwrap();
    client
        .update_tunnel(
            &id_2,
            &TunnelUpdate {
                name: Some("Renamed by hand".into()),
                location_id: Some(OTHER_LOCATION_ID.into()),
                ..TunnelUpdate::default()
            },
        )
        .await
        .unwrap();

    let out = site.plan(&[]).await;
    assert_exit(&out, 2);
    let text = support::stdout(&out);
    assert_contains(
        &text,
        &format!("authentication_id: \"edited-by-hand@branch.example\" → \"{AUTH_1}\""),
    );
    assert_contains(&text, &format!("name: \"Renamed by hand\" → \"{NAME_2}\""));
    assert_contains(
        &text,
        &format!("location_id: \"{OTHER_LOCATION_ID}\" → \"{LOCATION_ID}\""),
    );
    assert!(!text.contains("+ create"), "{text}");

    let (puts, posts) = (count(&sim, "PUT"), count(&sim, "POST"));
    assert_exit(&site.apply(&[]).await, 0);
    assert_eq!(count(&sim, "PUT"), puts + 2, "{:?}", sim.request_counts());
    assert_eq!(count(&sim, "POST"), posts, "nothing created");
    assert_configured(&sim, PSK_1, PSK_2);
    assert_eq!(by_name(&sim, NAME_1).id, id_1);
    assert_eq!(by_name(&sim, NAME_2).id, id_2);
    assert_exit(&site.plan(&[]).await, 0);
}

// ---- conflicts ----

/// The PSK of someone else's tunnel.
const FOREIGN_PSK: &str = "their-own-psk-1234";

/// With `foreign` (someone else's tunnel, made with [`FOREIGN_PSK`]) in the way of the
/// configured primary, plan and apply report the conflict (the plan's line names `detail`),
/// exit 1, and leave `foreign` alone. Returns the apply's output.
async fn assert_conflict_left_alone(
    site: &Site,
    sim: &Sim,
    foreign: &Tunnel,
    detail: &str,
) -> Output {
    let out = site.plan(&[]).await;
    assert_exit(&out, 1);
    let text = support::stdout(&out);
    assert_contains(&text, &format!("  ! conflict  \"{NAME_1}\": "));
    assert_contains(&text, detail);

    let (puts, deletes) = (count(sim, "PUT"), count(sim, "DELETE"));
    let out = site.apply(&[]).await;
    assert_exit(&out, 1);
    assert_eq!(count(sim, "PUT"), puts, "{:?}", sim.request_counts());
    assert_eq!(count(sim, "DELETE"), deletes);
    assert_eq!(&by_name(sim, &foreign.name), foreign, "untouched");
    assert!(psk_is(sim, &foreign.id, FOREIGN_PSK));
    assert!(!site.manages(&foreign.id));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tunnel_of_someone_else_with_the_configured_name_is_a_conflict_left_alone() {
    let sim = support::start_sim(Faults::default()).await;
    let site = Site::new(&sim);
    let foreign = create_foreign(
        &sim,
        NAME_1,
        "someone-else@other.example",
        FOREIGN_PSK,
        OTHER_LOCATION_ID,
    )
    .await;

    let out = assert_conflict_left_alone(&site, &sim, &foreign, "someone-else@other.example").await;
    assert!(
        support::stdout(&out).contains("! conflict"),
        "{}",
        show(&out)
    );
    // The rest of the plan was carried out.
    assert_eq!(by_name(&sim, NAME_2).authentication_id, AUTH_2);
    assert_eq!(tunnels(&sim).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_authentication_id_held_by_an_unmanaged_tunnel_of_another_name_is_a_conflict() {
    let sim = support::start_sim(Faults::default()).await;
    let site = Site::new(&sim);
    let foreign = create_foreign(
        &sim,
        "Somebody's tunnel",
        AUTH_1,
        FOREIGN_PSK,
        OTHER_LOCATION_ID,
    )
    .await;

    assert_conflict_left_alone(&site, &sim, &foreign, "Somebody's tunnel").await;
    assert!(
        !tunnels(&sim).iter().any(|t| t.name == NAME_1),
        "no tunnel made for the conflicting entry"
    );
}

// ---- adoption ----

#[tokio::test(flavor = "multi_thread")]
async fn a_tunnel_that_exists_with_the_configured_name_and_authentication_id_is_adopted() {
    let sim = support::start_sim(Faults::default()).await;
    let site = Site::new(&sim);
    let existing = create_foreign(
        &sim,
        NAME_1,
        AUTH_1,
        "an-old-psk-nobody-knows",
        OTHER_LOCATION_ID,
    )
    .await;

    let out = site.plan(&[]).await;
    assert_exit(&out, 2);
    let text = support::stdout(&out);
    assert_contains(
        &text,
        &format!("  ~ update    \"{NAME_1}\" ({})", existing.id),
    );
    assert_contains(
        &text,
        "psk: (sensitive) (popsel has not pushed it to this tunnel yet)",
    );

    let out = site.apply(&[]).await;
    assert_exit(&out, 0);
    assert_configured(&sim, PSK_1, PSK_2);
    assert_eq!(
        by_name(&sim, NAME_1).id,
        existing.id,
        "the same tunnel, no duplicate"
    );
    assert!(site.manages(&existing.id));
    assert_exit(&site.plan(&[]).await, 0);
}

/// The tunnel appears between popsel's listing and its create (another popsel, a human): the
/// create meets a 409, and the tunnel there, having the configured name and authentication ID,
/// is taken over.
#[tokio::test(flavor = "multi_thread")]
async fn a_409_on_create_adopts_the_tunnel_that_appeared_meanwhile() {
    // Every API request waits 500 ms before it is handled: the create arrives (and is counted)
    // 500 ms before the emulator looks for duplicates, time enough to slip the tunnel in.
    let sim = support::start_sim(Faults {
        delay_ms: 500,
        ..Faults::default()
    })
    .await;
    let site = Site::new(&sim);
    let racer = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while count(&sim, "POST") == 0 {
            assert!(Instant::now() < deadline, "popsel never sent a create");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sim.with_store(|s| {
            s.create_tunnel(&json!({
                "name": NAME_1,
                "authenticationID": AUTH_1,
                "authenticationPSK": "an-old-psk-nobody-knows",
                "locationID": OTHER_LOCATION_ID,
            }))
        })
        .expect("slip the tunnel in")
    };
    let (out, existing) = tokio::join!(site.apply(&[]), racer);
    assert_exit(&out, 0);
    assert!(
        support::stdout(&out).contains(&format!("→ adopted {}", existing.id)),
        "{}",
        show(&out)
    );
    assert_configured(&sim, PSK_1, PSK_2);
    assert_eq!(by_name(&sim, NAME_1).id, existing.id, "no duplicate");
    assert!(site.manages(&existing.id));
    let audit = std::fs::read_to_string(site.state_dir().join("audit.log")).unwrap();
    assert_contains(&audit, "\"action\":\"adopt\"");

    sim.set_faults(Faults::default()).unwrap();
    assert_exit(&site.plan(&[]).await, 0);
}

// ---- prune ----

#[tokio::test(flavor = "multi_thread")]
async fn prune_deletes_only_managed_tunnels_removed_from_the_config() {
    let sim = support::start_sim(Faults::default()).await;
    let mut site = Site::new(&sim);
    let manual = create_foreign(
        &sim,
        "Branch office (manual)",
        "manual@branch.example",
        "manual-psk-123456",
        LOCATION_ID,
    )
    .await;
    assert_exit(&site.apply(&[]).await, 0);
    let id_2 = by_name(&sim, NAME_2).id;

    site.drop_secondary();
    let out = site.plan(&[]).await;
    assert_exit(&out, 0);
    let text = support::stdout(&out);
    assert_contains(&text, &format!("  ? orphan    \"{NAME_2}\" ({id_2})"));
    assert!(!text.contains("Branch office (manual)"), "{text}");

    let out = site.apply(&[]).await;
    assert_exit(&out, 0);
    assert_eq!(count(&sim, "DELETE"), 0);
    assert_eq!(by_name(&sim, NAME_2).id, id_2, "kept without --prune");
    assert!(site.manages(&id_2));

    let out = site.plan(&["--prune"]).await;
    assert_exit(&out, 2);
    let text = support::stdout(&out);
    assert_contains(&text, &format!("  - delete    \"{NAME_2}\" ({id_2})"));
    assert!(!text.contains("Branch office (manual)"), "{text}");

    let out = site.apply(&["--prune"]).await;
    assert_exit(&out, 0);
    assert_eq!(count(&sim, "DELETE"), 1, "{:?}", sim.request_counts());
    assert_eq!(tunnel_names(&sim), ["Branch office (manual)", NAME_1]);
    assert!(!site.manages(&id_2));
    assert_eq!(by_name(&sim, "Branch office (manual)"), manual);

    // Again: nothing more to delete, the manual tunnel stays.
    let out = site.apply(&["--prune"]).await;
    assert_exit(&out, 0);
    assert_eq!(count(&sim, "DELETE"), 1);
    assert_eq!(by_name(&sim, "Branch office (manual)"), manual);
}

// ---- a flaky API ----

#[tokio::test(flavor = "multi_thread")]
async fn apply_converges_on_a_flaky_api_without_duplicates_or_deletes() {
    let sim = support::start_sim(Faults {
        fail_rate: 0.3,
        throttle_rate: 0.1,
        retry_after_secs: 0,
        ..Faults::default()
    })
    .await;
    let mut site = Site::new(&sim);
    // Until it succeeds, at most 10 times; returns how many it took.
    async fn converge(site: &Site) -> usize {
        let mut runs = Vec::new();
        loop {
            let out = site.apply(&[]).await;
            let done = out.status.success();
            runs.push(show(&out));
            if done {
                return runs.len();
            }
            assert!(
                runs.len() < 10,
                "no convergence in 10 applies:\n{}",
                runs.join("\n")
            );
        }
    }
    let n = converge(&site).await;
    assert_eq!(
        tunnel_names(&sim),
        [NAME_1, NAME_2],
        "each configured tunnel exactly once after {n} apply(s)"
    );
    assert_eq!(count(&sim, "DELETE"), 0, "{:?}", sim.request_counts());

    // A rotation on the flaky API too (updates).
    let new_1 = "Chicago-one-Psk-ROTATED-11";
    site.set_env_psk(new_1);
    let n = converge(&site).await;
    assert_eq!(
        tunnel_names(&sim),
        [NAME_1, NAME_2],
        "after {n} more apply(s)"
    );
    assert_eq!(count(&sim, "DELETE"), 0, "{:?}", sim.request_counts());

    sim.set_faults(Faults::default()).unwrap();
    assert_configured(&sim, new_1, PSK_2);
    for name in [NAME_1, NAME_2] {
        assert!(site.manages(&by_name(&sim, name).id));
    }
    assert_exit(&site.plan(&[]).await, 0);
}

// ---- secrets ----

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_psk_shows_nowhere_but_hex_encoded_in_the_secrets_file() {
    let sim = support::start_sim(Faults::default()).await;
    let mut site = Site::new(&sim);
    site.add_sections("[edge]\nswanctl_dir = \"swanctl\"\n");

    let mut outputs: Vec<Output> = Vec::new();
    let debug = |mut cmd: Command| {
        cmd.env("POPSEL_LOG", "debug");
        cmd
    };
    outputs.push(support::run(debug(site.command("plan", &[]))).await);
    outputs.push(support::run(debug(site.command("plan", &["--output", "json"]))).await);
    outputs.push(support::run(debug(site.command("apply", &[]))).await); // refused
    outputs.push(support::run(debug(site.command("apply", &["--yes"]))).await);
    assert_exit(outputs.last().unwrap(), 0);
    // A rotation (update with the PSK) and a JSON apply.
    let new_1 = "Chicago-one-Psk-ROTATED-11";
    site.set_env_psk(new_1);
    outputs.push(support::run(debug(site.command("plan", &[]))).await);
    outputs.push(support::run(debug(site.command("apply", &["--yes", "--output", "json"]))).await);
    assert_exit(outputs.last().unwrap(), 0);
    let all_psks = [PSK_1, PSK_2, new_1];
    for out in &outputs {
        for psk in all_psks {
            assert!(
                !contains_bytes(&out.stdout, psk.as_bytes())
                    && !contains_bytes(&out.stderr, psk.as_bytes()),
                "PSK in the output of popsel:\n{}",
                show(out)
            );
        }
    }

    let mut files = support::files_under(&site.state_dir());
    let names: Vec<String> = files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"audit.log".to_owned()), "{names:?}");
    assert!(names.contains(&"tunnels.json".to_owned()), "{names:?}");
    let audit = std::fs::read_to_string(site.state_dir().join("audit.log")).unwrap();
    assert!(
        audit.contains("\"psk\""),
        "the audit log names the field: {audit}"
    );
    let (conf, secrets) = (
        site.path(&format!("swanctl/popsel-{CHICAGO}.conf")),
        site.path(&format!("swanctl/popsel-{CHICAGO}-secrets.conf")),
    );
    files.push((conf.clone(), std::fs::read(&conf).unwrap()));
    for (file, bytes) in &files {
        for psk in all_psks {
            assert!(
                !contains_bytes(bytes, psk.as_bytes()),
                "PSK in {}",
                file.display()
            );
            assert!(
                !contains_bytes(bytes, hex(psk).as_bytes()),
                "hex PSK in {}",
                file.display()
            );
        }
    }
    let conf_text = std::fs::read_to_string(&conf).unwrap();
    assert_contains(&conf_text, AUTH_1);

    let secret_bytes = std::fs::read(&secrets).unwrap();
    for psk in all_psks {
        assert!(
            !contains_bytes(&secret_bytes, psk.as_bytes()),
            "clear PSK in the secrets file"
        );
    }
    for psk in [new_1, PSK_2] {
        assert!(
            contains_bytes(&secret_bytes, format!("0x{}", hex(psk)).as_bytes()),
            "the current PSK, hex-encoded, in the secrets file:\n{}",
            String::from_utf8_lossy(&secret_bytes)
        );
    }
    let mode = std::fs::metadata(&secrets).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

// ---- on_change ----

/// A hook that appends its `POPSEL_*` environment, then `---`, to the file given as argument.
const RECORDING_HOOK: &str = "#!/bin/sh\n{ env | grep '^POPSEL_' | sort; echo '---'; } >> \"$1\"\n";

/// Configures `script` (mode 700) as `on_change`, with a log file as its argument; returns the
/// log file.
fn write_hook(site: &mut Site, script: &str) -> PathBuf {
    let hook = site.path("hook.sh");
    std::fs::write(&hook, script).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o700)).unwrap();
    let log = site.path("hook.log");
    site.add_sections(&format!(
        "[edge]\non_change = [{}, {}]\n",
        toml_str(&hook.to_string_lossy()),
        toml_str(&log.to_string_lossy())
    ));
    log
}

/// Each run of the hook: its `POPSEL_*` variables.
fn hook_runs(log: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split("---\n")
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            r.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn on_change_runs_once_per_role_on_the_first_apply_and_not_again() {
    let sim = support::start_sim(Faults::default()).await;
    let mut site = Site::new(&sim);
    let log = write_hook(&mut site, RECORDING_HOOK);

    let out = site.apply(&[]).await;
    assert_exit(&out, 0);
    let runs = hook_runs(&log);
    assert_eq!(runs.len(), 2, "one run per role: {runs:#?}");
    let mut roles: Vec<&str> = runs.iter().map(|r| r["POPSEL_ROLE"].as_str()).collect();
    roles.sort();
    assert_eq!(roles, ["primary", "secondary"]);
    let selection: Value = serde_json::from_str(
        &std::fs::read_to_string(site.state_dir().join("selection.json")).unwrap(),
    )
    .unwrap();
    for run in &runs {
        assert_eq!(run["POPSEL_LOCATION"], CHICAGO);
        let fqdn = &run["POPSEL_NEW_FQDN"];
        assert!(fqdn.ends_with(".pops.popsel.test"), "{run:?}");
        let role = &run["POPSEL_ROLE"];
        assert_eq!(
            selection["locations"][CHICAGO][role]["choice"]["fqdn"], **fqdn,
            "the hook is told what was selected: {selection}"
        );
        assert_eq!(run.get("POPSEL_OLD_FQDN").map(String::as_str), Some(""));
    }

    let out = site.apply(&[]).await;
    assert_exit(&out, 0);
    assert_eq!(
        hook_runs(&log).len(),
        2,
        "selection unchanged: not run again"
    );
}

#[tokio::test(flavor = "multi_thread")]

async fn on_change_is_given_neither_the_api_token_nor_a_psk() {
    let sim = support::start_sim(Faults::default()).await;
    let mut site = Site::new(&sim);
    let log = write_hook(&mut site, RECORDING_HOOK);
    assert_exit(&site.apply(&[]).await, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.is_empty());
    assert!(
        !text.contains(support::TOKEN),
        "the API token reached the hook:\n{text}"
    );
    assert!(!text.contains(PSK_1), "a PSK reached the hook:\n{text}");
}

#[tokio::test(flavor = "multi_thread")]

async fn a_failed_on_change_is_run_again_by_the_next_apply() {
    let sim = support::start_sim(Faults::default()).await;
    let mut site = Site::new(&sim);
    // Records the run, then fails unless `<log>.ok` exists (the router's IPsec stack was down).
    let log = write_hook(
        &mut site,
        "#!/bin/sh\n{ env | grep '^POPSEL_' | sort; echo '---'; } >> \"$1\"\n[ -e \"$1.ok\" ] || exit 3\n",
    );
    let out = site.apply(&[]).await;
    assert_exit(&out, 1);
    assert!(
        support::stderr(&out).contains("on_change"),
        "{}",
        show(&out)
    );
    assert_eq!(hook_runs(&log).len(), 2);

    std::fs::write(format!("{}.ok", log.display()), "").unwrap();
    let out = site.apply(&[]).await;
    assert_eq!(
        hook_runs(&log).len(),
        4,
        "the router was never told of the selection:\n{}",
        show(&out)
    );
    assert_exit(&out, 0);
}
