//! Crash consistency: `popsel apply` and `popsel run` killed with SIGKILL at random moments,
//! against an emulator answering 25% of the requests with 500 (half of them after carrying the
//! request out) and 10% with 429, with PSKs rotated between the kills; then the next run
//! converges: every configured tunnel exists once, with its latest PSK (on the API and in the
//! router's swanctl secrets), none was deleted, no state file is damaged or set aside, nothing
//! is left half-written, and a re-apply writes nothing. Every kill is followed by a look at
//! the state dir: no file torn, none set aside.
//!
//! A proxy between popsel and the emulator holds each write's answer for a random while after
//! the emulator carried it out, so that kills land in that window too (the API changed, popsel
//! does not know yet), and tells where each kill landed. The emulator's `--delay` stretches
//! every request. When a kill leaves the API holding a PSK other than the one `tunnels.json`
//! records as pushed, the next rotation rolls the config back to the recorded one, as an
//! operator undoing a rotation would: the case a crash between a push and its record gets
//! wrong.
//!
//! The test's own choices (rotations, delays, kill moments) come from a seed it prints;
//! `POPSEL_CRASH_SEED=<seed>` replays them (the emulator's faults and popsel's jitter are not
//! seeded, so a replay is close, not exact). With `--no-capture`, each random test prints
//! where its kills landed and how long the next run took to converge.
//!
//! The two cases the random tests found are also tested on their own, deterministically: a
//! rollback after an unconfirmed PSK push, and the temporary files of killed writes.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use popsel::atmos::Tunnel;
use popsel::sim::{Faults, Sim};
use reqwest::Method;
use serde_json::json;

use crate::process::*;
use crate::support::chaos::{
    WriteProxy, WriteSeen, check_state_dir, recorded_psks, swanctl_secret, swanctl_secrets,
    temporaries,
};
use crate::support::state_faults::{PSKS, StateSite};
use crate::support::{self, assert_exit, show};

/// Kills of each process.
const KILLS: usize = 20;
/// Runs at most, kills and runs that ended before their kill together.
const MAX_RUNS: usize = 70;
/// The faults of the issue: 25% 500s (half after carrying the request out), 10% 429s. The
/// 429s ask for no wait, so that the test spends its time on kills, not on `Retry-After`.
const FAULTS: Faults = Faults {
    fail_rate: 0.25,
    throttle_rate: 0.10,
    delay_ms: 0,
    retry_after_secs: 0,
};
/// A kill that follows the answer to a write comes at most this long after it.
const MAX_AFTER_ANSWER_MS: u64 = 15;
/// The kill horizon never shrinks below this, so that kills still reach past the start.
const MIN_HORIZON: Duration = Duration::from_millis(300);
/// The router's swanctl files, next to the config: the hand-off must follow the rotations.
const SWANCTL_DIR: &str = "swanctl";
/// At most this much is added to every request by the emulator, and held after each write
/// by the proxy.
const MAX_DELAY_MS: u64 = 40;
const MAX_HOLD_MS: u64 = 250;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Apply,
    Agent,
}

impl Victim {
    fn command(self, site: &StateSite) -> Command {
        match self {
            Victim::Apply => site.command("apply", &["--yes"]),
            Victim::Agent => site.command("run", &[]),
        }
    }

    /// Kills land uniformly within a horizon from the start: for the agent, a few reconcile
    /// runs; for `apply`, it shrinks by a tenth when a run ends before its kill and grows by
    /// 5% when one is killed, so that about two runs in three are killed, at any moment of
    /// them, however fast this machine runs them.
    fn max_horizon(self) -> Duration {
        match self {
            Victim::Apply => Duration::from_secs(3),
            Victim::Agent => Duration::from_millis(3500),
        }
    }
}

/// When a run is killed (see [`Chaos::until_the_kill`]).
#[derive(Debug, Clone, Copy)]
enum Moment {
    Any,
    InAWrite,
    AfterAnAnswer,
}

/// Where the kills landed.
#[derive(Debug, Default)]
struct Tally {
    runs: usize,
    kills: usize,
    /// The run ended (or failed) before its kill was due.
    ended_first: usize,
    /// Killed before its first API write.
    before_writes: usize,
    /// Killed while an API write was in flight...
    in_api_write: usize,
    /// ...of which the emulator had carried out, its answer not yet back.
    write_done_unanswered: usize,
    /// Killed after its writes, none in flight.
    after_writes: usize,
    /// Killed 0 to [`MAX_AFTER_ANSWER_MS`] after the answer to a write came back, as popsel
    /// records it.
    right_after_an_answer: usize,
    /// Killed inside an atomic write of the state dir or the swanctl dir (its temporary file
    /// left behind).
    in_state_write: usize,
    /// After the kill, the API held a PSK other than the one `tunnels.json` records as
    /// pushed (and not as a push under way).
    api_ahead_of_state: usize,
    rotations: usize,
    rollbacks: usize,
}

struct Chaos {
    victim: Victim,
    seed: u64,
    rng: fastrand::Rng,
    sim: Sim,
    proxy: WriteProxy,
    site: StateSite,
    /// Each tunnel's PSKs in the order the config had them; the last is the config's.
    psks: BTreeMap<String, Vec<String>>,
    /// A tunnel whose API PSK is ahead of its record, and the recorded PSK.
    rollback: Option<(String, String)>,
    /// Tunnels rolled back, never rotated again.
    frozen: Vec<String>,
    /// Kills land uniformly within this much of the start (see [`Victim::max_horizon`]).
    horizon: Duration,
    tally: Tally,
}

fn seed() -> u64 {
    std::env::var("POPSEL_CRASH_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

impl Chaos {
    async fn new(victim: Victim) -> Chaos {
        let seed = seed();
        eprintln!(
            "crash test ({victim:?}): seed {seed}; POPSEL_CRASH_SEED={seed} replays its choices"
        );
        let sim = support::start_sim(FAULTS).await;
        let proxy = WriteProxy::start(&sim.url()).await;
        let mut site = StateSite::new(&proxy.url);
        site.edit_config(|c| c.with(&format!("[edge]\nswanctl_dir = {SWANCTL_DIR:?}\n")));
        let psks = PSKS
            .iter()
            .map(|(name, _, psk)| ((*name).to_owned(), vec![(*psk).to_owned()]))
            .collect();
        Chaos {
            victim,
            seed,
            rng: fastrand::Rng::with_seed(seed),
            sim,
            proxy,
            site,
            psks,
            rollback: None,
            frozen: Vec::new(),
            horizon: victim.max_horizon() / 2,
            tally: Tally::default(),
        }
    }

    /// What a failure message starts with: how to replay, and where the kills landed.
    fn context(&self) -> String {
        format!(
            "{:?}, POPSEL_CRASH_SEED={}\n{:#?}",
            self.victim, self.seed, self.tally
        )
    }

    fn latest(&self, tunnel: &str) -> &str {
        self.psks[tunnel].last().expect("a PSK")
    }

    fn set_psk(&mut self, tunnel: &str, psk: String) {
        let var = PSKS
            .iter()
            .find(|(n, _, _)| *n == tunnel)
            .expect("tunnel")
            .1;
        self.site.files.set_env(var, &psk);
        self.psks.get_mut(tunnel).expect("tunnel").push(psk);
    }

    /// Between two runs: the rollback a kill made interesting, else, two times in three, one
    /// tunnel's PSK changed to a new one. A tunnel rolled back is not rotated again, so that a
    /// later push cannot hide a rollback that never reached the API.
    fn rotate(&mut self) {
        if let Some((tunnel, recorded)) = self.rollback.take() {
            self.tally.rollbacks += 1;
            self.set_psk(&tunnel, recorded);
            self.frozen.push(tunnel);
            return;
        }
        let names: Vec<String> = self
            .psks
            .keys()
            .filter(|name| !self.frozen.contains(name))
            .cloned()
            .collect();
        if names.is_empty() || self.rng.u8(0..3) == 0 {
            return;
        }
        let tunnel = &names[self.rng.usize(0..names.len())];
        let psk = format!("crash-psk-{:03}-{:08x}", self.tally.runs, self.rng.u32(..));
        self.tally.rotations += 1;
        self.set_psk(tunnel, psk);
    }

    /// One run of the victim, killed after a random while unless it ended first.
    async fn run_and_kill(&mut self) {
        self.tally.runs += 1;
        self.rotate();
        let delay_ms = self.rng.u64(0..=MAX_DELAY_MS);
        self.sim
            .set_faults(Faults { delay_ms, ..FAULTS })
            .expect("faults");
        self.proxy
            .hold(Duration::from_millis(self.rng.u64(0..=MAX_HOLD_MS)));
        let horizon = u64::try_from(self.horizon.as_millis()).expect("ms");
        let kill_after = Duration::from_millis(self.rng.u64(0..=horizon));
        let moment = [Moment::Any, Moment::InAWrite, Moment::AfterAnAnswer][self.rng.usize(0..3)];
        let temporary_before = self.temporaries().len();
        let started = Instant::now();
        let mut proc = AgentProc::spawn(self.victim.command(&self.site));
        self.until_the_kill(started, kill_after, moment).await;
        if !proc.running() {
            self.tally.ended_first += 1;
            self.horizon = self.horizon.mul_f64(0.9).max(MIN_HORIZON);
            self.after_a_whole_run(&mut proc).await;
            return;
        }
        self.horizon = self.horizon.mul_f64(1.05).min(self.victim.max_horizon());
        let killed_at = Instant::now();
        proc.child.kill().expect("SIGKILL");
        proc.child.wait().expect("reap the killed process");
        self.tally.kills += 1;
        // Requests the proxy had already passed on reach the emulator and end.
        tokio::time::sleep(Duration::from_millis(MAX_DELAY_MS + 150)).await;
        let writes: Vec<WriteSeen> = self
            .proxy
            .writes()
            .into_iter()
            .filter(|w| w.started >= started)
            .collect();
        self.count_where(&writes, killed_at, temporary_before);
        self.look_after_kill(&proc).await;
    }

    /// A third of the kills are due `kill_after` the start; a third come within the time a
    /// write can take ([`MAX_DELAY_MS`] + [`MAX_HOLD_MS`]) after the run's first write
    /// started: in the request, in its held answer, or just after; a third come 0 to
    /// [`MAX_AFTER_ANSWER_MS`] after the answer to the run's first write went back, when
    /// popsel records it (audit log, `tunnels.json`): where a kill can tear a state file. A
    /// run that writes nothing before `kill_after` is killed then.
    async fn until_the_kill(&mut self, started: Instant, kill_after: Duration, moment: Moment) {
        let due = started + kill_after;
        let (answered, within) = match moment {
            Moment::Any => (false, None),
            Moment::InAWrite => (false, Some(MAX_DELAY_MS + MAX_HOLD_MS)),
            Moment::AfterAnAnswer => (true, Some(MAX_AFTER_ANSWER_MS)),
        };
        if let Some(within) = within {
            if let Some(at) = self.proxy.first_write(started, answered, due).await {
                let ms = self.rng.u64(0..=within);
                if answered {
                    self.tally.right_after_an_answer += 1;
                }
                tokio::time::sleep_until((at + Duration::from_millis(ms)).into()).await;
                return;
            }
        }
        tokio::time::sleep_until(due.into()).await;
    }

    fn count_where(&mut self, writes: &[WriteSeen], killed_at: Instant, temporary_before: usize) {
        let tally = &mut self.tally;
        if writes.iter().all(|w| w.started > killed_at) {
            tally.before_writes += 1;
        } else if writes.iter().any(|w| w.in_flight_at(killed_at)) {
            tally.in_api_write += 1;
            if writes.iter().any(|w| w.done_unanswered_at(killed_at)) {
                tally.write_done_unanswered += 1;
            }
        } else {
            tally.after_writes += 1;
        }
        if self.temporaries().len() > temporary_before {
            self.tally.in_state_write += 1;
        }
    }

    /// The temporary files of unfinished atomic writes, in the state dir and the swanctl dir.
    fn temporaries(&self) -> Vec<String> {
        let mut all = temporaries(&self.site.state_dir());
        all.extend(temporaries(&self.site.files.path(SWANCTL_DIR)));
        all
    }

    /// A run that was not killed and succeeded left the API as configured.
    async fn after_a_whole_run(&mut self, proc: &mut AgentProc) {
        let status = proc.wait_exit(Duration::from_secs(5)).await;
        if !status.is_some_and(|s| s.success()) {
            return;
        }
        if let Some(why) = self.not_converged().await {
            panic!(
                "{:?} ran to its end and succeeded, but {why}\n{}\nits stdout:\n{}",
                self.victim,
                self.context(),
                proc.stdout()
            );
        }
    }

    /// After a kill: no state file is damaged or set aside; and whether the API is ahead of
    /// what `tunnels.json` records, which the next rotation then rolls back to.
    async fn look_after_kill(&mut self, proc: &AgentProc) {
        let check = check_state_dir(&self.site.state_dir());
        assert!(
            check.unparsable.is_empty() && check.set_aside.is_empty(),
            "a kill left damaged state: {check:#?}\n{}\nstderr of the killed run:\n{}",
            self.context(),
            proc.stderr_tail()
        );
        let recorded = recorded_psks(&self.site.state_dir(), &self.psks);
        let mut ahead = None;
        for (tunnel, recorded) in recorded {
            let Some(recorded) = recorded else { continue };
            let Some(id) = self.tunnel_id(&tunnel) else {
                continue;
            };
            if !self.psk_is(&id, &recorded).await {
                ahead.get_or_insert((tunnel, recorded));
            }
        }
        if ahead.is_some() {
            self.tally.api_ahead_of_state += 1;
        }
        self.rollback = ahead.filter(|(tunnel, recorded)| recorded != self.latest(tunnel));
    }

    fn tunnel_id(&self, name: &str) -> Option<String> {
        self.sim
            .with_store(|s| s.list::<Tunnel>())
            .into_iter()
            .find(|t| t.name == name)
            .map(|t| t.id)
    }

    /// The emulator's answer, over its control API, to whether `psk` is the tunnel's.
    async fn psk_is(&self, id: &str, psk: &str) -> bool {
        let path = format!("/_sim/tunnels/{id}/psk-check");
        let (code, body) =
            support::sim_request(&self.sim, Method::POST, &path, json!({ "psk": psk })).await;
        assert_eq!(code, 200, "psk-check: {body}");
        body["matches"] == json!(true)
    }

    /// Why the emulator does not hold exactly the configured tunnels, each once and with its
    /// latest PSK; `None` when it does.
    async fn not_converged(&self) -> Option<String> {
        let tunnels = self.sim.with_store(|s| s.list::<Tunnel>());
        let mut names: Vec<&str> = tunnels.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        let configured: Vec<&str> = self.psks.keys().map(String::as_str).collect();
        if names != configured {
            return Some(format!("tunnels {names:?}, configured {configured:?}"));
        }
        for t in &tunnels {
            if !self.psk_is(&t.id, self.latest(&t.name)).await {
                return Some(format!("{:?} does not hold its latest PSK", t.name));
            }
        }
        let secrets = swanctl_secrets(&self.site.files.path(SWANCTL_DIR));
        for tunnel in self.psks.keys() {
            if !secrets.contains(&swanctl_secret(self.latest(tunnel))) {
                return Some(format!("the swanctl secrets lack {tunnel:?}'s latest PSK"));
            }
        }
        None
    }

    /// The next run, without faults, until it converged: `popsel apply` once, the agent until
    /// the emulator holds what the config says (then stopped with SIGTERM). How long it took.
    async fn converge(&mut self) -> Duration {
        self.sim.set_faults(Faults::default()).expect("faults off");
        self.proxy.hold(Duration::ZERO);
        let started = Instant::now();
        if self.victim == Victim::Apply {
            let out = self.site.apply().await;
            assert_exit(&out, 0);
            return started.elapsed();
        }
        let mut agent = AgentProc::spawn(self.victim.command(&self.site));
        let base = agent.metrics_base().await;
        let deadline = started + Duration::from_secs(30);
        // Converged when the emulator holds what the config says and the agent knows it (a
        // reconcile run of its own succeeded): a kill may have left the API right but the
        // push unconfirmed, which that run settles.
        loop {
            let reconciled = crate::http::scrape(&base).await.is_some_and(|s| {
                s.value(
                    "popsel_stage_last_success_timestamp_seconds",
                    &[("stage", "reconcile")],
                )
                .is_some_and(|t| t > 0.0)
            });
            let why = match self.not_converged().await {
                Some(why) => why,
                None if reconciled => break,
                None => "no reconcile run has succeeded yet".to_owned(),
            };
            assert!(
                Instant::now() < deadline,
                "the agent did not converge within 30 s: {why}\n{}\n{}",
                self.context(),
                agent.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = started.elapsed();
        agent.signal("TERM");
        let status = agent.wait_exit(Duration::from_secs(10)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "{status:?}\n{}",
            agent.stderr_tail()
        );
        took
    }

    async fn requests(&self, method: &str) -> u64 {
        let (code, counts) =
            support::sim_request(&self.sim, Method::GET, "/_sim/requests", json!(null)).await;
        assert_eq!(code, 200, "{counts}");
        counts[method].as_u64().unwrap_or(0)
    }

    /// Converged: each tunnel once with its latest PSK, none deleted, every state file whole
    /// and none set aside, nothing left half-written; and a re-apply writes nothing.
    async fn assert_converged(&self, took: Duration) {
        if let Some(why) = self.not_converged().await {
            panic!("not converged: {why}\n{}", self.context());
        }
        assert_eq!(self.requests("DELETE").await, 0, "{}", self.context());
        let check = check_state_dir(&self.site.state_dir());
        assert!(
            check.unparsable.is_empty() && check.set_aside.is_empty(),
            "{check:#?}\n{}",
            self.context()
        );
        let writes = self.requests("writes").await;
        let out = self.site.apply().await;
        assert_exit(&out, 0);
        assert_eq!(
            self.requests("writes").await,
            writes,
            "a re-apply wrote\n{}\n{}",
            show(&out),
            self.context()
        );
        let left = self.temporaries();
        println!(
            "crash consistency, {:?}, seed {}: converged in {:.2} s; {} audit lines; \
             temporary files left: {left:?}\n{:#?}",
            self.victim,
            self.seed,
            took.as_secs_f64(),
            check.audit_lines,
            self.tally
        );
        assert!(
            left.is_empty(),
            "kills inside atomic writes left their temporary files behind, which nothing \
             removes: {left:?}\n{}",
            self.context()
        );
    }
}

async fn kill_until_converged(victim: Victim) {
    let mut chaos = Chaos::new(victim).await;
    while chaos.tally.kills < KILLS {
        assert!(
            chaos.tally.runs < MAX_RUNS,
            "only {} kills in {MAX_RUNS} runs\n{}",
            chaos.tally.kills,
            chaos.context()
        );
        chaos.run_and_kill().await;
    }
    let took = chaos.converge().await;
    chaos.assert_converged(took).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_killed_at_random_moments_converges_on_the_next_run() {
    kill_until_converged(Victim::Apply).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_killed_at_random_moments_converges_on_the_next_run() {
    kill_until_converged(Victim::Agent).await;
}

/// Waits until the proxy has seen the emulator carry out a write (2xx) of this run.
async fn until_a_write_carried_out(proxy: &WriteProxy, since: Instant) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !proxy.writes().iter().any(|w| {
        w.started >= since
            && w.carried
                .is_some_and(|(_, status)| (200..300).contains(&status))
    }) {
        assert!(Instant::now() < deadline, "no write within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A PSK push the API carried out but popsel never saw confirmed, then the config rolled back
/// to the PSK popsel last recorded: the next run must push it, not take the API for up to
/// date. Both ways a push goes unconfirmed: popsel killed before the answer came, and a 500
/// answered after the write was carried out until the agent's retries ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psk_rollback_after_an_unconfirmed_push_reaches_the_api() {
    let mut chaos = Chaos::new(Victim::Apply).await;
    chaos.sim.set_faults(Faults::default()).expect("no faults");
    assert_exit(&chaos.site.apply().await, 0);
    let (tunnel, _, first) = PSKS[0];

    // Killed while the emulator's answer to the PUT is held.
    chaos.set_psk(tunnel, "rotated-psk-killed-mid-push".into());
    chaos.proxy.hold(Duration::from_secs(60));
    let since = Instant::now();
    let mut proc = AgentProc::spawn(chaos.site.command("apply", &["--yes"]));
    until_a_write_carried_out(&chaos.proxy, since).await;
    proc.child.kill().expect("SIGKILL");
    proc.child.wait().expect("reap");
    chaos.proxy.hold(Duration::ZERO);
    let id = chaos.tunnel_id(tunnel).expect("the tunnel");
    assert!(chaos.psk_is(&id, "rotated-psk-killed-mid-push").await);
    chaos.set_psk(tunnel, first.to_owned());
    let out = chaos.site.apply().await;
    assert_exit(&out, 0);
    assert!(
        chaos.psk_is(&id, first).await,
        "killed mid-push, then rolled back: the API kept the PSK of the push\n{}",
        show(&out)
    );

    // Each PUT carried out and answered 500 until the agent gives up.
    let (tunnel, _, first) = PSKS[1];
    chaos.set_psk(tunnel, "rotated-psk-answered-500".into());
    chaos.proxy.answer_writes_with(Some(500));
    assert_exit(&chaos.site.run_once().await, 1);
    chaos.proxy.answer_writes_with(None);
    let id = chaos.tunnel_id(tunnel).expect("the tunnel");
    assert!(chaos.psk_is(&id, "rotated-psk-answered-500").await);
    chaos.set_psk(tunnel, first.to_owned());
    let out = chaos.site.run_once().await;
    assert_exit(&out, 0);
    assert!(
        chaos.psk_is(&id, first).await,
        "the push answered 500, then rolled back: the API kept the PSK of the push\n{}",
        show(&out)
    );
}

/// The PID of a process that ran and is gone.
fn a_dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("run true");
    let pid = child.id();
    child.wait().expect("wait for true");
    pid
}

/// What a write killed half-way leaves: the first bytes of `content` under the temporary
/// name popsel gives it.
fn leave_temporary(dir: &std::path::Path, target: &str, pid: u32, content: &str) -> String {
    let name = format!(".{target}.{pid}.{:016x}.tmp", fastrand::u64(..));
    std::fs::write(dir.join(&name), &content[..content.len() / 2]).expect("write");
    name
}

/// A kill inside an atomic write leaves its temporary file (the random test above shows it
/// happens): the next run removes those of dead processes, in the state dir and in the
/// swanctl dir, where one holds PSKs; one of a live process (a `popsel plan` making the key)
/// is left alone, and so are files popsel does not name that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_removes_what_writes_killed_half_way_left_behind() {
    let chaos = Chaos::new(Victim::Apply).await;
    chaos.sim.set_faults(Faults::default()).expect("no faults");
    assert_exit(&chaos.site.apply().await, 0);
    let (state, swanctl) = (chaos.site.state_dir(), chaos.site.files.path(SWANCTL_DIR));
    let dead = a_dead_pid();
    let secret = swanctl_secret(chaos.latest(PSKS[0].0));
    let stale = [
        (
            state.clone(),
            leave_temporary(&state, "tunnels.json", dead, "{\"version\": 1}"),
        ),
        (
            state.clone(),
            leave_temporary(&state, "catalog.json", dead, "{\"fetched\": 1}"),
        ),
        (
            swanctl.clone(),
            leave_temporary(&swanctl, "popsel-chicago-secrets.conf", dead, &secret),
        ),
    ];
    let live = leave_temporary(&state, "fingerprint.key", std::process::id(), "0123456789");
    let other = leave_temporary(&swanctl, "site-vpn.conf", dead, "not popsel's");
    let out = chaos.site.apply().await;
    assert_exit(&out, 0);
    for (dir, name) in &stale {
        assert!(
            !dir.join(name).exists(),
            "{name} is still in {}\n{}",
            dir.display(),
            show(&out)
        );
    }
    assert!(
        state.join(&live).exists(),
        "a live process's {live} was removed"
    );
    assert!(swanctl.join(&other).exists(), "{other} is not popsel's");
}
