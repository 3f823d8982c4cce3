//! The progress line of `popsel pops` and `popsel rank`: on a terminal, a spinner that says
//! what is being waited for (the API's retries included); off a terminal, not a byte of it.

use std::process::{Command, Output};
use std::time::Duration;

use popsel::sim::{Faults, Sim};

use crate::support;
use crate::support::terminal::{has_sgr, on_terminal};
use crate::support::{assert_exit, show};

/// A sim failing every request until `healed` later.
async fn failing_sim() -> Sim {
    support::start_sim(Faults {
        fail_rate: 1.0,
        ..Faults::default()
    })
    .await
}

async fn heal_after(sim: &Sim, after: Duration) {
    tokio::time::sleep(after).await;
    sim.set_faults(Faults::default()).expect("no faults");
}

fn pops(sim: &Sim) -> Command {
    let mut cmd = support::popsel();
    cmd.args(["pops", "--api-url", &sim.url()])
        .env("POPSEL_API_TOKEN", support::TOKEN);
    cmd
}

/// The bytes a progress line is drawn with: a carriage return, or an escape sequence.
fn has_progress_bytes(bytes: &[u8]) -> bool {
    bytes.contains(&b'\r') || bytes.contains(&0x1b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pops_retrying_off_a_terminal_writes_no_progress() {
    let sim = failing_sim().await;
    let (out, ()) = tokio::join!(
        support::run(pops(&sim)),
        heal_after(&sim, Duration::from_millis(1500))
    );
    assert_exit(&out, 0);
    assert!(out.stderr.is_empty(), "{}", show(&out));
    assert!(!has_progress_bytes(&out.stdout), "{}", show(&out));
    assert!(
        support::stdout(&out).contains("Frankfurt"),
        "{}",
        show(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pops_retrying_on_a_terminal_says_so_then_clears_the_line() {
    let sim = failing_sim().await;
    let cmd = pops(&sim);
    let (out, ()) = tokio::join!(
        on_terminal(&cmd),
        heal_after(&sim, Duration::from_millis(1500))
    );
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{console:?}");
    assert!(
        console.contains("PoP catalogue: retrying in "),
        "{console:?}"
    );
    assert!(console.contains(": HTTP 500"), "{console:?}");
    assert!(!has_sgr(&out.stdout), "no colour: {console:?}");
    // The line is cleared before the table: the table's header starts a line of its own.
    let table = console.rfind("COUNTRY  CITY").expect("the table");
    let before = &console[..table];
    assert!(
        before.ends_with('\n') || before.ends_with("\x1b[2K"),
        "{:?}",
        &before[before.len().saturating_sub(80)..]
    );
}

#[tokio::test]
async fn rank_on_a_terminal_prints_its_table_whole() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/config/catalog.sample.json");
    let mut cmd = support::popsel();
    cmd.args([
        "rank",
        "--site",
        "41.88,-87.63",
        "--catalog",
        sample,
        "--no-dns",
        "--no-probe",
    ]);
    let out: Output = on_terminal(&cmd).await;
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{console:?}");
    // Whatever the line drew, the table comes after it, every row on its own line.
    let table = &console[console.find("RANK  CITY").expect("the table")..];
    assert!(
        !has_progress_bytes(table.replace("\r\n", "\n").as_bytes()),
        "{table:?}"
    );
    let rows = table
        .lines()
        .filter(|l| l.starts_with(char::is_numeric) && !l.contains("PoPs"));
    assert_eq!(rows.count(), 52, "{table:?}");
    assert!(table.contains("Chicago, Illinois"), "{table:?}");
}
