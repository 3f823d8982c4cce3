//! The IPsec lab itself (`tests/support/ipsec/`): real charons in namespaces, PoP responders
//! that accept exactly the emulator's tunnels, and a service that says which PoP carried a
//! packet. These tests prove the lab before popsel's hand-off is tested on it: a tunnel the
//! emulator holds carries traffic to its PoP, a wrong PSK or a deleted tunnel carries nothing,
//! a dark PoP carries nothing until it comes back, and the lab leaves nothing behind.
//!
//! The lab needs root: these tests skip elsewhere and fail under CI=true
//! (`support::can_run_privileged`). The emulator's PSK route is checked without root.

use crate::support;
use crate::support::ipsec::{self, IpsecLab, LabSpec, responders};

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use popsel::atmos::{Tunnel, TunnelSpec};
use popsel::sim::Sim;
use secrecy::SecretString;
use serde_json::Value;

/// How long a tunnel may take to carry the first answer (it takes well under a second).
const UP_WITHIN: Duration = Duration::from_secs(10);
/// How long the tests keep asking to be sure nothing answers.
const SILENT_FOR: Duration = Duration::from_millis(1500);

/// Creates a tunnel through the emulator's HTTP API, as popsel would.
async fn create_tunnel(sim: &Sim, name: &str, authentication_id: &str, psk: &str) -> Tunnel {
    support::client_for(sim)
        .create_tunnel(&TunnelSpec {
            name: name.into(),
            authentication_id: authentication_id.into(),
            psk: SecretString::from(psk.to_owned()),
            location_id: "lab-location".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("create tunnel {name}: {e}"))
}

/// A hand-written branch configuration: connection `lab` to `pop` as `authentication_id` with
/// `psk`, a full tunnel (remote_ts 0.0.0.0/0, the local side left to charon: the branch's
/// address).
fn branch_conf(authentication_id: &str, psk: &str, pop: Ipv4Addr, start_action: &str) -> String {
    format!(
        "connections {{
  lab {{
    version = 2
    remote_addrs = {pop}
    local {{
      auth = psk
      id = {id}
    }}
    remote {{
      auth = psk
    }}
    children {{
      lab {{
        remote_ts = 0.0.0.0/0
        start_action = {start_action}
      }}
    }}
  }}
}}
secrets {{
  ike-lab {{
    id = {id}
    secret = {secret}
  }}
}}
",
        id = responders::quoted(authentication_id),
        secret = responders::hex_secret(psk),
    )
}

/// `swanctl --initiate --child lab` on the branch: whether it came up (blocking, at most 5 s).
fn initiate(lab: &IpsecLab) -> (bool, String) {
    let out = lab
        .branch_charon()
        .swanctl(&["--initiate", "--child", "lab", "--timeout", "5"])
        .expect("run swanctl --initiate");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A lab of 3 PoPs and its emulator holding one tunnel (`name`, `authentication_id`, `psk`),
/// which the PoPs accept; `None` where the lab cannot run (see [`lab`]).
async fn lab_holding(
    name: &str,
    authentication_id: &str,
    psk: &str,
) -> Option<(IpsecLab, Sim, Tunnel)> {
    let lab = ipsec::start_or_skip(LabSpec::new(3))?;
    let sim = lab.start_sim().await;
    let tunnel = create_tunnel(&sim, name, authentication_id, psk).await;
    assert_eq!(lab.sync_responders(&sim).await, Ok(1));
    Some((lab, sim, tunnel))
}

/// Loads [`branch_conf`] into the branch's charon; what swanctl said.
fn load_branch(
    lab: &IpsecLab,
    authentication_id: &str,
    psk: &str,
    endpoint: Ipv4Addr,
    start_action: &str,
) -> String {
    lab.branch_charon()
        .load(&branch_conf(authentication_id, psk, endpoint, start_action))
        .expect("load the branch")
}

/// Loads [`branch_conf`] to `endpoint` of PoP `pop` (`target`), initiates it, and asserts that
/// it comes up and carries the branch to that PoP; `what` names the attempt in messages.
#[track_caller]
fn comes_up(
    lab: &IpsecLab,
    authentication_id: &str,
    psk: &str,
    target: (Ipv4Addr, usize),
    what: &str,
) {
    let (endpoint, pop) = target;
    load_branch(lab, authentication_id, psk, endpoint, "none");
    let (up, said) = initiate(lab);
    assert!(up, "{what} did not come up:\n{said}");
    answered_by(lab, pop, what);
}

/// Waits until PoP `pop` answers through a tunnel (at most [`UP_WITHIN`]); how long it took.
#[track_caller]
fn answered_by(lab: &IpsecLab, pop: usize, when: &str) -> Duration {
    lab.wait_until_answered_by(pop, UP_WITHIN)
        .unwrap_or_else(|e| panic!("{when}: {e}"))
}

/// Asserts that no PoP answers for `during`.
#[track_caller]
fn silent(lab: &IpsecLab, during: Duration, when: &str) {
    lab.no_answer_during(during)
        .unwrap_or_else(|e| panic!("{when}: {e}"));
}

#[tokio::test]
async fn a_tunnel_held_by_the_emulator_carries_the_branch_to_its_pop() {
    let _timed = ipsec::Timed::start("a_tunnel_held_by_the_emulator_carries_the_branch_to_its_pop");
    let psk = "chicago-lab-psk-1";
    let Some((lab, _sim, tunnel)) =
        lab_holding("Chicago IPSec1", "chicago@branch.example", psk).await
    else {
        return;
    };
    assert_eq!(lab.who_answers(), None, "nothing answers before a tunnel");

    let pop = lab.pop(0).address();
    let report = load_branch(&lab, &tunnel.authentication_id, psk, pop, "start");
    assert!(report.contains("loaded connection 'lab'"), "{report}");
    let took = answered_by(&lab, 0, "the first answer");
    eprintln!("first answer through PoP 0 after {took:?}");

    assert!(lab.branch_charon().is_up("lab"), "{}", lab.state_for(0));
    let branch_sas = lab.branch_charon().list_sas();
    // A full tunnel: everything to the PoP, the branch side narrowed to the branch's address.
    assert!(branch_sas.contains("remote 0.0.0.0/0"), "{branch_sas}");
    assert!(
        branch_sas.contains(&format!("local  {}/32", lab.branch().address())),
        "{branch_sas}"
    );
    let pop_sas = lab.pop(0).charon().list_sas();
    let connection = format!("atmos-{}", tunnel.id);
    assert!(pop_sas.contains(&connection), "{pop_sas}");
    assert!(pop_sas.contains("chicago@branch.example"), "{pop_sas}");
    for other in 1..3 {
        let sas = lab.pop(other).charon().list_sas();
        assert!(
            !sas.contains("ESTABLISHED"),
            "PoP {other} has an SA:\n{sas}"
        );
    }
}

#[tokio::test]
async fn a_wrong_psk_never_brings_the_tunnel_up() {
    let _timed = ipsec::Timed::start("a_wrong_psk_never_brings_the_tunnel_up");
    let psk = "toronto-lab-psk-1";
    let Some((lab, _sim, tunnel)) =
        lab_holding("Toronto IPSec1", "toronto@branch.example", psk).await
    else {
        return;
    };
    let pop = lab.pop(0).address();

    for wrong in [
        "toronto-lab-psk-2",
        "toronto-lab-psk-1 ",
        "TORONTO-LAB-PSK-1",
    ] {
        load_branch(&lab, &tunnel.authentication_id, wrong, pop, "none");
        let (up, said) = initiate(&lab);
        assert!(!up, "came up with PSK {wrong:?}:\n{said}");
        assert!(!lab.branch_charon().is_up("lab"), "{}", lab.state_for(0));
        silent(&lab, SILENT_FOR / 3, &format!("with PSK {wrong:?}"));
    }
    // The same configuration with the stored PSK comes up: the PSK alone made the difference.
    comes_up(
        &lab,
        &tunnel.authentication_id,
        psk,
        (pop, 0),
        "the right PSK",
    );
}

#[tokio::test]
async fn a_tunnel_deleted_from_the_emulator_is_refused_after_sync() {
    let _timed = ipsec::Timed::start("a_tunnel_deleted_from_the_emulator_is_refused_after_sync");
    let Some(lab) = ipsec::start_or_skip(LabSpec::new(3)) else {
        return;
    };
    let sim = lab.start_sim().await;
    let (psk1, psk2) = ("atlanta-lab-psk-1", "atlanta-lab-psk-2");
    let gone = create_tunnel(&sim, "Atlanta IPSec1", "atlanta1@branch.example", psk1).await;
    let kept = create_tunnel(&sim, "Atlanta IPSec2", "atlanta2@branch.example", psk2).await;
    assert_eq!(lab.sync_responders(&sim).await, Ok(2));
    let pop = lab.pop(1).address();
    load_branch(&lab, &gone.authentication_id, psk1, pop, "start");
    answered_by(&lab, 1, "before the delete");

    support::client_for(&sim)
        .delete::<Tunnel>(&gone.id)
        .await
        .expect("delete the tunnel");
    // Until the PoPs are told, nothing changes for them.
    assert_eq!(lab.who_answers(), Some(1));
    assert_eq!(lab.sync_responders(&sim).await, Ok(1));
    // Its SA is gone at once, and a new one is refused.
    silent(&lab, SILENT_FOR, "after the delete");
    let (up, said) = initiate(&lab);
    assert!(!up, "a deleted tunnel came up again:\n{said}");
    silent(&lab, SILENT_FOR / 3, "after a new attempt");
    assert!(!lab.pop(1).charon().list_sas().contains("atlanta1"));

    // The tunnel that is still there is still accepted.
    comes_up(
        &lab,
        &kept.authentication_id,
        psk2,
        (pop, 1),
        "the remaining tunnel",
    );
}

#[tokio::test]
async fn a_dark_pop_carries_nothing_until_it_comes_back() {
    let _timed = ipsec::Timed::start("a_dark_pop_carries_nothing_until_it_comes_back");
    let psk = "newyork-lab-psk-1";
    let Some((lab, _sim, tunnel)) = lab_holding("New York IPSec1", "nyc@branch.example", psk).await
    else {
        return;
    };
    let pop = lab.pop(0).address();
    load_branch(&lab, &tunnel.authentication_id, psk, pop, "start");
    answered_by(&lab, 0, "PoP 0 before it goes dark");

    lab.go_dark(0).expect("go dark");
    silent(&lab, SILENT_FOR, "PoP 0 is dark");

    lab.come_back(0).expect("come back");
    answered_by(&lab, 0, "PoP 0 came back");
}

#[tokio::test]
async fn a_silenced_endpoint_carries_nothing_until_restored() {
    let _timed = ipsec::Timed::start("a_silenced_endpoint_carries_nothing_until_restored");
    let psk = "dallas-lab-psk-1";
    let Some((lab, _sim, tunnel)) =
        lab_holding("Dallas IPSec1", "dallas@branch.example", psk).await
    else {
        return;
    };
    // The PoP's second endpoint, so that its first stays as it was.
    let endpoint = lab.pop(2).addresses()[1];
    load_branch(&lab, &tunnel.authentication_id, psk, endpoint, "start");
    answered_by(&lab, 2, &format!("endpoint {endpoint} before the silence"));

    lab.silence_endpoint(2, 1).expect("silence");
    silent(&lab, SILENT_FOR, &format!("endpoint {endpoint} is silent"));
    lab.restore_endpoint(2, 1).expect("restore");
    answered_by(&lab, 2, &format!("endpoint {endpoint} is back"));
    // The SA stayed on that endpoint all along: the PoP's charon saw nothing to roam from.
    let sas = lab.branch_charon().list_sas();
    assert!(sas.contains(&format!("@ {endpoint}[4500]")), "{sas}");
}

/// `popsel ARGS` in the branch namespace with `env` (and no `POPSEL_API_URL`), to its end
/// off the runtime's threads (at most 30 s).
async fn popsel_in_branch(lab: &IpsecLab, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = lab.branch().command(env!("CARGO_BIN_EXE_popsel"));
    cmd.args(args)
        .envs(env.iter().copied())
        .env_remove("POPSEL_API_URL");
    let what = format!("popsel {args:?}");
    tokio::task::spawn_blocking(move || ipsec::run_within(cmd, Duration::from_secs(30)))
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// popsel, in the branch namespace, creates a tunnel through the relay to the in-process
/// emulator; the PoPs, following the emulator, accept it without being told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_popsel_creates_from_the_branch_is_accepted_by_pops_that_follow() {
    let _timed = ipsec::Timed::start(
        "a_tunnel_popsel_creates_from_the_branch_is_accepted_by_pops_that_follow",
    );
    let Some(lab) = ipsec::start_or_skip(LabSpec::new(3)) else {
        return;
    };
    let sim = lab.start_sim().await;
    let _follower = lab.follow(&sim);
    let relay = lab.sim_in_branch(&sim).expect("relay to the emulator");
    let psk = "montreal-lab-psk-1";
    let url = relay.url();
    let out = popsel_in_branch(
        &lab,
        &[
            "--api-url",
            &url,
            "tunnels",
            "create",
            "--name",
            "Montreal IPSec1",
            "--authentication-id",
            "mtl@branch.example",
            "--location-id",
            "lab-location",
            "--psk-env",
            "LAB_PSK",
            "--output",
            "json",
        ],
        &[("LAB_PSK", psk), ("POPSEL_API_TOKEN", support::TOKEN)],
    )
    .await;
    assert!(out.status.success(), "{}", support::show(&out));

    load_branch(
        &lab,
        "mtl@branch.example",
        psk,
        lab.pop(1).address(),
        "none",
    );
    // The follower syncs every 200 ms: the first attempts may come before it.
    let deadline = Instant::now() + UP_WITHIN;
    loop {
        let (up, said) = initiate(&lab);
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "never accepted:\n{said}");
        std::thread::sleep(Duration::from_millis(200));
    }
    answered_by(&lab, 1, "the tunnel popsel created");
}

#[tokio::test]
async fn a_lab_leaves_no_namespace_process_or_mount_behind() {
    let Some(lab) = ipsec::start_or_skip(LabSpec::new(3)) else {
        return;
    };
    let namespaces = lab.namespaces();
    let mut pids = vec![lab.branch_charon().pid().expect("branch charon pid")];
    pids.extend(lab.pops().iter().map(|p| p.charon().pid().expect("pid")));
    let dir = lab.dir().to_owned();
    for pid in &pids {
        assert!(support::netns::alive(*pid), "charon {pid} is not running");
    }
    let existing = ipsec::netns::existing();
    for ns in &namespaces {
        assert!(existing.contains(ns), "{ns} missing from {existing:?}");
    }
    // Each charon has its own /run: its pid file is not on the host's.
    assert!(
        !std::path::Path::new("/run/charon.pid").exists()
            || !pids.iter().any(|p| {
                std::fs::read_to_string("/run/charon.pid").is_ok_and(|s| s.trim() == p.to_string())
            }),
        "a lab charon wrote the host's /run/charon.pid"
    );

    drop(lab);
    for pid in &pids {
        assert!(!support::netns::alive(*pid), "charon {pid} still runs");
    }
    let existing = ipsec::netns::existing();
    for ns in &namespaces {
        assert!(!existing.contains(ns), "{ns} is left");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    for ns in &namespaces {
        assert!(
            !mounts.contains(ns.as_str()),
            "a mount of {ns} is left:\n{mounts}"
        );
    }
    assert!(
        !mounts.contains("popsel-ipsec-run"),
        "a charon's /run is mounted on the host:\n{mounts}"
    );
    assert!(!dir.exists(), "{} is left", dir.display());
}

#[tokio::test]
async fn popsel_ranks_the_lab_pops_from_the_branch() {
    let Some(lab) = ipsec::start_or_skip(LabSpec::new(3)) else {
        return;
    };
    let doc = lab.catalog_json();
    let catalog = popsel::catalog::Catalog::from_json(&doc.to_string()).expect("catalogue");
    assert!(catalog.skipped.is_empty(), "{:?}", catalog.skipped);
    assert_eq!(catalog.pops.len(), 3);
    for lab_pop in lab.pops() {
        let pop = catalog
            .pops
            .iter()
            .find(|p| *p.city == *lab_pop.city() && *p.provider == *lab_pop.provider())
            .unwrap_or_else(|| panic!("{} is not in the catalogue", lab_pop.name()));
        let listed: Vec<String> = pop
            .fqdns
            .iter()
            .flat_map(|f| f.ips.iter().map(ToString::to_string))
            .collect();
        let want: Vec<String> = lab_pop
            .addresses()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(listed, want, "{}", lab_pop.name());
    }

    let file = lab.dir().join("catalog.json");
    std::fs::write(&file, doc.to_string()).expect("write the catalogue");
    let file = file.to_str().expect("a UTF-8 temporary path");
    let out = popsel_in_branch(
        &lab,
        &[
            "rank",
            "--site",
            ipsec::SITE_ARG,
            "--no-dns",
            "--catalog",
            file,
            "--count",
            "3",
            "--interval",
            "50ms",
            "--timeout",
            "1s",
            "--output",
            "json",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", support::show(&out));
    let ranking: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let pops = ranking["pops"].as_array().expect("pops");
    assert_eq!(pops.len(), 3, "{ranking}");
    for p in pops {
        assert!(p["score"].is_number(), "unreachable from the branch: {p}");
    }
}

// ---- without root ----

#[test]
fn the_lab_has_one_to_eight_pops() {
    for n in [0, ipsec::MAX_POPS + 1] {
        let e = IpsecLab::start(n).err().expect("refused");
        assert!(e.contains("1 to 8 PoPs"), "{e}");
    }
}

#[test]
fn responders_accept_each_tunnel_by_its_identity_and_hex_psk() {
    let tunnel = |id: &str, auth: &str, psk: &str| responders::AcceptedTunnel {
        id: id.into(),
        name: format!("{id} \"name\"\nwith a newline"),
        authentication_id: auth.into(),
        psk: SecretString::from(psk.to_owned()),
    };
    let tunnels = [
        tunnel("t-1", "a@branch.example", "psk with \"quotes\" and }"),
        tunnel("t/2", "203.0.113.7", "second-psk"),
    ];
    let conf = responders::render(&tunnels, &["dynamic".into()]);
    assert!(conf.contains("atmos-t-1 {"), "{conf}");
    assert!(conf.contains("atmos-t_2 {"), "{conf}");
    assert!(conf.contains("id = \"a@branch.example\""), "{conf}");
    assert!(conf.contains("id = \"203.0.113.7\""), "{conf}");
    assert!(conf.contains("local_ts = 0.0.0.0/0"), "{conf}");
    assert!(conf.contains("remote_ts = dynamic"), "{conf}");
    assert!(!conf.contains("psk with"), "a PSK in clear:\n{conf}");
    assert!(conf.contains(&responders::hex_secret("psk with \"quotes\" and }")));
    assert!(
        !conf
            .lines()
            .any(|l| l.trim_start().starts_with("with a newline")),
        "a name broke a line:\n{conf}"
    );
    assert!(format!("{:?}", tunnels[0]).contains("t-1"));
    assert!(
        !format!("{:?}", tunnels[0]).contains("quotes"),
        "Debug shows the PSK"
    );

    let old: std::collections::BTreeMap<_, _> =
        tunnels.iter().map(|t| (t.id.clone(), t.clone())).collect();
    let mut new = old.clone();
    new.remove("t-1");
    new.insert("t/2".into(), tunnel("t/2", "203.0.113.7", "rotated-psk"));
    assert_eq!(
        responders::to_terminate(&old, &new),
        ["atmos-t-1", "atmos-t_2"]
    );
    assert!(responders::to_terminate(&old, &old).is_empty());
}

/// `popsel sim` as a process (`extra` flags), and its URL.
fn sim_process(extra: &[&str]) -> (Child, String) {
    let mut child = support::popsel()
        .args(["sim", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("POPSEL_API_TOKEN", support::TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start popsel sim");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    let url = line
        .trim()
        .strip_prefix("popsel sim listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

#[tokio::test]
async fn popsel_sim_keeps_psks_unless_started_for_the_lab() {
    let psk = "process-lab-psk-1";
    for (flags, expect) in [(&[][..], 404), (&["--expose-psks-for-lab"][..], 200)] {
        let (mut child, url) = sim_process(flags);
        let http = support::http();
        let created: Value = http
            .post(format!("{url}/api/v1/tunnels"))
            .bearer_auth(support::TOKEN)
            .json(&serde_json::json!({
                "name": "P", "authenticationID": "p@branch.example",
                "authenticationPSK": psk, "locationID": "l",
            }))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("JSON");
        let id = created["id"].as_str().expect("id");
        let resp = http
            .get(format!("{url}/_sim/tunnels/{id}/psk"))
            .bearer_auth(support::TOKEN)
            .send()
            .await
            .expect("GET psk");
        let status = resp.status().as_u16();
        let body = resp.text().await.expect("body");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(status, expect, "popsel sim {flags:?}: {body}");
        assert_eq!(
            body.contains(psk),
            expect == 200,
            "popsel sim {flags:?}: {body}"
        );
    }
    let help = support::popsel()
        .args(["sim", "--help"])
        .output()
        .expect("popsel sim --help");
    let help = support::stdout(&help);
    assert!(help.contains("--expose-psks-for-lab"), "{help}");
    assert!(help.contains("IPsec lab"), "{help}");
}
