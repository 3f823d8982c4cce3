//! The IPsec lab itself (`tests/support/ipsec/`): real charons in namespaces, PoP responders
//! that accept exactly the emulator's tunnels, and a service that says which PoP carried a
//! packet. These tests prove the lab before popsel's hand-off is tested on it: a tunnel the
//! emulator holds carries traffic to its PoP, a wrong PSK or a deleted tunnel carries nothing,
//! a dark PoP carries nothing until it comes back, and the lab leaves nothing behind.
//!
//! The lab needs root: these tests skip elsewhere and fail under CI=true
//! (`support::can_run_privileged`). The emulator's PSK route is checked without root.

use crate::support;
use crate::support::ipsec::{self, IpsecLab, responders};

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use popsel::atmos::{Tunnel, TunnelSpec};
use popsel::sim::Sim;
use secrecy::SecretString;
use serde_json::Value;

/// How long a tunnel may take to carry the first answer (it takes well under a second).
const UP_WITHIN: Duration = Duration::from_secs(10);
/// How long the tests keep asking to be sure nothing answers.
const SILENT_FOR: Duration = Duration::from_millis(1500);

/// A started lab, or `None` (after saying why) where the lab cannot run; under CI=true that
/// panics instead.
fn lab(pops: usize) -> Option<IpsecLab> {
    if !support::can_run_privileged(ipsec::available()) {
        return None;
    }
    Some(IpsecLab::start(pops).unwrap_or_else(|e| panic!("the IPsec lab did not start: {e}")))
}

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

fn timed(name: &str, start: Instant) {
    eprintln!("{name}: {:.2} s", start.elapsed().as_secs_f64());
}

#[tokio::test]
async fn a_tunnel_held_by_the_emulator_carries_the_branch_to_its_pop() {
    let start = Instant::now();
    let Some(lab) = lab(3) else { return };
    let sim = lab.start_sim().await;
    let psk = "chicago-lab-psk-1";
    let tunnel = create_tunnel(&sim, "Chicago IPSec1", "chicago@branch.example", psk).await;
    assert_eq!(lab.sync_responders(&sim).await, Ok(1));
    assert_eq!(lab.who_answers(), None, "nothing answers before a tunnel");

    let report = lab
        .branch_charon()
        .load(&branch_conf(
            &tunnel.authentication_id,
            psk,
            lab.pop(0).address(),
            "start",
        ))
        .expect("load the branch");
    assert!(report.contains("loaded connection 'lab'"), "{report}");
    let took = lab
        .wait_until_answered_by(0, UP_WITHIN)
        .unwrap_or_else(|e| panic!("{e}"));
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
    timed(
        "a_tunnel_held_by_the_emulator_carries_the_branch_to_its_pop",
        start,
    );
}

#[tokio::test]
async fn a_wrong_psk_never_brings_the_tunnel_up() {
    let start = Instant::now();
    let Some(lab) = lab(3) else { return };
    let sim = lab.start_sim().await;
    let psk = "toronto-lab-psk-1";
    let tunnel = create_tunnel(&sim, "Toronto IPSec1", "toronto@branch.example", psk).await;
    lab.sync_responders(&sim).await.expect("sync");
    let pop = lab.pop(0).address();

    for wrong in [
        "toronto-lab-psk-2",
        "toronto-lab-psk-1 ",
        "TORONTO-LAB-PSK-1",
    ] {
        lab.branch_charon()
            .load(&branch_conf(&tunnel.authentication_id, wrong, pop, "none"))
            .expect("load the branch");
        let (up, said) = initiate(&lab);
        assert!(!up, "came up with PSK {wrong:?}:\n{said}");
        assert!(!lab.branch_charon().is_up("lab"), "{}", lab.state_for(0));
        lab.no_answer_during(SILENT_FOR / 3)
            .unwrap_or_else(|e| panic!("with PSK {wrong:?}: {e}"));
    }
    // The same configuration with the stored PSK comes up: the PSK alone made the difference.
    lab.branch_charon()
        .load(&branch_conf(&tunnel.authentication_id, psk, pop, "none"))
        .expect("load the branch");
    let (up, said) = initiate(&lab);
    assert!(up, "the right PSK did not bring it up:\n{said}");
    lab.wait_until_answered_by(0, UP_WITHIN)
        .unwrap_or_else(|e| panic!("{e}"));
    timed("a_wrong_psk_never_brings_the_tunnel_up", start);
}

#[tokio::test]
async fn a_tunnel_deleted_from_the_emulator_is_refused_after_sync() {
    let start = Instant::now();
    let Some(lab) = lab(3) else { return };
    let sim = lab.start_sim().await;
    let (psk1, psk2) = ("atlanta-lab-psk-1", "atlanta-lab-psk-2");
    let gone = create_tunnel(&sim, "Atlanta IPSec1", "atlanta1@branch.example", psk1).await;
    let kept = create_tunnel(&sim, "Atlanta IPSec2", "atlanta2@branch.example", psk2).await;
    assert_eq!(lab.sync_responders(&sim).await, Ok(2));
    let pop = lab.pop(1).address();
    lab.branch_charon()
        .load(&branch_conf(&gone.authentication_id, psk1, pop, "start"))
        .expect("load the branch");
    lab.wait_until_answered_by(1, UP_WITHIN)
        .unwrap_or_else(|e| panic!("{e}"));

    support::client_for(&sim)
        .delete::<Tunnel>(&gone.id)
        .await
        .expect("delete the tunnel");
    // Until the PoPs are told, nothing changes for them.
    assert_eq!(lab.who_answers(), Some(1));
    assert_eq!(lab.sync_responders(&sim).await, Ok(1));
    // Its SA is gone at once, and a new one is refused.
    lab.no_answer_during(SILENT_FOR)
        .unwrap_or_else(|e| panic!("after the delete: {e}"));
    let (up, said) = initiate(&lab);
    assert!(!up, "a deleted tunnel came up again:\n{said}");
    lab.no_answer_during(SILENT_FOR / 3)
        .unwrap_or_else(|e| panic!("after a new attempt: {e}"));
    assert!(!lab.pop(1).charon().list_sas().contains("atlanta1"));

    // The tunnel that is still there is still accepted.
    lab.branch_charon()
        .load(&branch_conf(&kept.authentication_id, psk2, pop, "none"))
        .expect("load the branch");
    let (up, said) = initiate(&lab);
    assert!(up, "the remaining tunnel was refused:\n{said}");
    lab.wait_until_answered_by(1, UP_WITHIN)
        .unwrap_or_else(|e| panic!("{e}"));
    timed(
        "a_tunnel_deleted_from_the_emulator_is_refused_after_sync",
        start,
    );
}

#[tokio::test]
async fn a_dark_pop_carries_nothing_until_it_comes_back() {
    let start = Instant::now();
    let Some(lab) = lab(3) else { return };
    let sim = lab.start_sim().await;
    let psk = "newyork-lab-psk-1";
    let tunnel = create_tunnel(&sim, "New York IPSec1", "nyc@branch.example", psk).await;
    lab.sync_responders(&sim).await.expect("sync");
    lab.branch_charon()
        .load(&branch_conf(
            &tunnel.authentication_id,
            psk,
            lab.pop(0).address(),
            "start",
        ))
        .expect("load the branch");
    lab.wait_until_answered_by(0, UP_WITHIN)
        .unwrap_or_else(|e| panic!("{e}"));

    lab.go_dark(0).expect("go dark");
    lab.no_answer_during(SILENT_FOR)
        .unwrap_or_else(|e| panic!("PoP 0 is dark: {e}"));

    lab.come_back(0).expect("come back");
    lab.wait_until_answered_by(0, UP_WITHIN)
        .unwrap_or_else(|e| panic!("PoP 0 came back: {e}"));
    timed("a_dark_pop_carries_nothing_until_it_comes_back", start);
}

#[tokio::test]
async fn a_silenced_endpoint_carries_nothing_until_restored() {
    let start = Instant::now();
    let Some(lab) = lab(3) else { return };
    let sim = lab.start_sim().await;
    let psk = "dallas-lab-psk-1";
    let tunnel = create_tunnel(&sim, "Dallas IPSec1", "dallas@branch.example", psk).await;
    lab.sync_responders(&sim).await.expect("sync");
    // The PoP's second endpoint, so that its first stays as it was.
    let endpoint = lab.pop(2).addresses()[1];
    lab.branch_charon()
        .load(&branch_conf(
            &tunnel.authentication_id,
            psk,
            endpoint,
            "start",
        ))
        .expect("load the branch");
    lab.wait_until_answered_by(2, UP_WITHIN)
        .unwrap_or_else(|e| panic!("{e}"));

    lab.silence_endpoint(2, 1).expect("silence");
    lab.no_answer_during(SILENT_FOR)
        .unwrap_or_else(|e| panic!("endpoint {endpoint} is silent: {e}"));
    lab.restore_endpoint(2, 1).expect("restore");
    lab.wait_until_answered_by(2, UP_WITHIN)
        .unwrap_or_else(|e| panic!("endpoint {endpoint} is back: {e}"));
    // The SA stayed on that endpoint all along: the PoP's charon saw nothing to roam from.
    let sas = lab.branch_charon().list_sas();
    assert!(sas.contains(&format!("@ {endpoint}[4500]")), "{sas}");
    timed("a_silenced_endpoint_carries_nothing_until_restored", start);
}

/// popsel, in the branch namespace, creates a tunnel through the relay to the in-process
/// emulator; the PoPs, following the emulator, accept it without being told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_popsel_creates_from_the_branch_is_accepted_by_pops_that_follow() {
    let start = Instant::now();
    let Some(lab) = lab(3) else { return };
    let sim = lab.start_sim().await;
    let _follower = lab.follow(&sim);
    let relay = lab.sim_in_branch(&sim).expect("relay to the emulator");
    let psk = "montreal-lab-psk-1";
    let mut cmd = lab.branch().command(env!("CARGO_BIN_EXE_popsel"));
    cmd.args([
        "--api-url",
        &relay.url(),
        "tunnels",
        "create",
        "--name",
        "Montreal IPSec1",
    ])
    .args([
        "--authentication-id",
        "mtl@branch.example",
        "--location-id",
        "lab-location",
    ])
    .args(["--psk-env", "LAB_PSK", "--output", "json"])
    .env("LAB_PSK", psk)
    .env("POPSEL_API_TOKEN", support::TOKEN)
    .env_remove("POPSEL_API_URL")
    .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || ipsec::run_within(cmd, Duration::from_secs(30)))
        .await
        .expect("join")
        .expect("popsel tunnels create");
    assert!(out.status.success(), "{}", support::show(&out));

    lab.branch_charon()
        .load(&branch_conf(
            "mtl@branch.example",
            psk,
            lab.pop(1).address(),
            "none",
        ))
        .expect("load the branch");
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
    lab.wait_until_answered_by(1, UP_WITHIN)
        .unwrap_or_else(|e| panic!("{e}"));
    timed(
        "a_tunnel_popsel_creates_from_the_branch_is_accepted_by_pops_that_follow",
        start,
    );
}

#[tokio::test]
async fn a_lab_leaves_no_namespace_process_or_mount_behind() {
    let Some(lab) = lab(3) else { return };
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
    let Some(lab) = lab(3) else { return };
    let doc = lab.catalog_json();
    let catalog = popsel::catalog::Catalog::from_json(&doc.to_string()).expect("catalogue");
    assert!(catalog.skipped.is_empty(), "{:?}", catalog.skipped);
    assert_eq!(catalog.pops.len(), 3);
    for lab_pop in lab.pops() {
        let pop = catalog
            .pops
            .iter()
            .find(|p| p.city == lab_pop.city() && p.provider == lab_pop.provider())
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
    let mut cmd = lab.branch().command(env!("CARGO_BIN_EXE_popsel"));
    cmd.args(["rank", "--site", ipsec::SITE_ARG, "--no-dns", "--catalog"])
        .arg(&file)
        .args([
            "--count",
            "3",
            "--interval",
            "50ms",
            "--timeout",
            "1s",
            "--output",
            "json",
        ])
        .env_remove("POPSEL_API_URL")
        .stdin(Stdio::null());
    let out = ipsec::run_within(cmd, Duration::from_secs(30)).expect("popsel rank");
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
