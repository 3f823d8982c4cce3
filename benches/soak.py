#!/usr/bin/env python3
"""Soak: `popsel run` for a long time against `popsel sim`, faults on and off in turns.

Starts `popsel sim` on loopback and `popsel run --no-probe` on the demo site
(config/demo-site.toml: two locations, three tunnels) with every stage on a 1-second interval,
then alternates phases: faults on (--fail-rate 500s, half of them after the request was carried
out, and --throttle-rate 429s with Retry-After 1 s), then none. At each phase change a PSK is
rotated (its file rewritten) and the agent reloaded with SIGHUP, so that reloads, PSK pushes
and the retry paths all run over and over. Every --sample seconds it reads the agent's RSS,
open file descriptors and threads from /proc and scrapes /metrics (stage runs and failures).

    python3 benches/soak.py [--duration 1800] [--phase 300] [--fail-rate 0.3]
        [--throttle-rate 0.1] [--sample 5] [--binary target/release/popsel] [--csv FILE]

Targets (issue: hardening): RSS after warm-up grows <= 5%, open descriptors stay flat, no panic.
Warm-up is the first on/off cycle; the baseline is the median RSS of the next cycle, compared
with the median of the last cycle. At the end (after a fault-free phase) the emulator must hold
each configured tunnel once, with its latest PSK, and no DELETE must have been sent.
Exit status 0 when every target is met, 1 otherwise. Loopback only, no root needed.
Python 3.11, standard library only.
"""

import argparse
import csv
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emulator import Sim  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_SITE = os.path.join(ROOT, "config", "demo-site.toml")
TOKEN = "soak-token-" + secrets.token_hex(8)
STAGES = ["catalog", "probe", "select", "reconcile", "status"]
# The tunnel whose PSK is rotated at each phase change comes from this file.
ROTATED_PSK_FILE = "rotated.psk"


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "popsel"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "popsel")


# ---- the emulator: benches/emulator.py ----


# ---- the site ----

def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def toml_table(header, table):
    lines = [header]
    lines += [f"{k} = {toml_value(v)}" for k, v in table.items() if isinstance(v, (str, bool, int, float))]
    return "\n".join(lines) + "\n"


def write_config(workdir, sim_url):
    """The demo site, every stage each second. Each tunnel gets a PSK of its own: from the
    environment, but the first one's from a file, so that a reload can rotate it. Returns the
    config's path, the environment for the agent and {tunnel name: PSK}."""
    with open(DEMO_SITE, "rb") as f:
        site = tomllib.load(f)
    env, psks = {}, {}
    path = os.path.join(workdir, "popsel.toml")
    with open(path, "w") as f:
        f.write(f"""
[api]
base_url = "{sim_url}"
timeout = "5s"
[dns]
nameservers = ["127.0.0.1:9"]
timeout = "300ms"
[state]
dir = "{workdir}/state"
[edge]
swanctl_dir = "{workdir}/swanctl"
[agent]
catalog_interval = "1s"
probe_interval = "1s"
reconcile_interval = "1s"
status_interval = "1s"
[metrics]
listen = "127.0.0.1:0"

""")
        for loc in site["locations"]:
            f.write(toml_table("[[locations]]", loc))
            for tunnel in loc["tunnels"]:
                tunnel = {k: v for k, v in tunnel.items() if k not in ("psk_env", "psk_file")}
                psk = "soak-" + secrets.token_hex(12)
                if not psks:
                    tunnel["psk_file"] = ROTATED_PSK_FILE
                    write_psk(workdir, psk)
                else:
                    var = f"POPSEL_SOAK_PSK_{len(psks)}"
                    tunnel["psk_env"] = var
                    env[var] = psk
                psks[tunnel["name"]] = psk
                f.write(toml_table("[[locations.tunnels]]", tunnel))
    os.makedirs(os.path.join(workdir, "swanctl"), mode=0o700, exist_ok=True)
    return path, env, psks


def write_psk(workdir, psk):
    path = os.path.join(workdir, ROTATED_PSK_FILE)
    fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(psk + "\n")
    os.replace(path + ".new", path)


# ---- the agent ----

def proc_sample(pid):
    """RSS and anonymous RSS (KiB), open descriptors, threads."""
    fields = {}
    fds = os.listdir(f"/proc/{pid}/fd")
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return {
        "rss_kib": int(fields["VmRSS"][0]),
        "anon_kib": int(fields["RssAnon"][0]),
        "hwm_kib": int(fields["VmHWM"][0]),
        "fds": len(fds),
        "sockets": sum(1 for fd in fds if fd_target(pid, fd).startswith("socket:")),
        "threads": int(fields["Threads"][0]),
    }


def fd_target(pid, fd):
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return ""


def scrape(base):
    """{(family, stage): value} of the stage counters, or None when /metrics does not answer."""
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    out = {}
    for line in text.splitlines():
        m = re.match(r'(popsel_stage_(?:runs|failures)_total)\{stage="(\w+)"\} (\S+)', line)
        if m:
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def metrics_base(log_path, agent, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            sys.exit(f"the agent exited with {agent.returncode}; see {log_path}")
        with open(log_path, errors="replace") as f:
            m = re.search(r"metrics on (http://[0-9.:]+)/metrics", f.read())
        if m:
            return m.group(1)
        time.sleep(0.2)
    sys.exit(f"the agent did not say where its metrics are; see {log_path}")


def total(counters, family):
    return sum(v for (fam, _), v in counters.items() if fam == family)


# ---- the run ----

def soak(args, popsel, workdir):
    sim = Sim(popsel, workdir, TOKEN)
    agent = None
    try:
        status, _ = sim.request("POST", "/api/v1/connectors", {"name": "soak-connector"})
        if status not in (200, 201):
            sys.exit(f"creating a connector answered {status}")
        config, env, psks = write_config(workdir, sim.url)
        log_path = os.path.join(workdir, "agent.log")
        agent_env = dict(os.environ, POPSEL_API_TOKEN=TOKEN, POPSEL_LOG="info", **env)
        agent = subprocess.Popen(
            [popsel, "run", "--config", config, "--no-probe"],
            env=agent_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(log_path, "w"),
        )
        base = metrics_base(log_path, agent)
        rows = run_phases(args, sim, agent, base, workdir, psks)
        end = check_account(sim, psks)
        agent.send_signal(signal.SIGTERM)
        exit_code = agent.wait(timeout=15)
        agent = None
        with open(log_path, errors="replace") as f:
            log = f.read()
        return rows, end, exit_code, log
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        sim.stop()


def run_phases(args, sim, agent, base, workdir, psks):
    rows = []
    start = time.monotonic()
    # An even number: the last phase is fault-free, so that the account has converged at the end.
    phases = round(args.duration / args.phase)
    phases += phases % 2
    rotated = next(iter(psks))
    next_print = 0.0
    print(f"{'min':>5} {'phase':>7} {'RSS MiB':>8} {'anon MiB':>9} {'fds':>4} {'thr':>4} "
          f"{'runs':>6} {'fails':>6}", flush=True)
    for phase in range(phases):
        faulty = phase % 2 == 0
        sim.set_faults(args.fail_rate if faulty else 0.0, args.throttle_rate if faulty else 0.0)
        if phase > 0 and not args.no_reload:
            psks[rotated] = "soak-" + secrets.token_hex(12)
            write_psk(workdir, psks[rotated])
            agent.send_signal(signal.SIGHUP)
        phase_end = start + (phase + 1) * args.phase
        while time.monotonic() < phase_end:
            time.sleep(min(args.sample, max(0.0, phase_end - time.monotonic())))
            if agent.poll() is not None:
                sys.exit(f"the agent exited with {agent.returncode} at {time.monotonic() - start:.0f} s; "
                         f"see {workdir}/agent.log")
            counters = scrape(base) or {}
            row = {"t_s": round(time.monotonic() - start, 1), "phase": phase,
                   "faults": "on" if faulty else "off", **proc_sample(agent.pid),
                   "stage_runs": int(total(counters, "popsel_stage_runs_total")),
                   "stage_failures": int(total(counters, "popsel_stage_failures_total"))}
            rows.append(row)
            if row["t_s"] >= next_print:
                next_print += 60
                print(f"{row['t_s'] / 60:5.1f} {phase:>3} {row['faults']:>3} "
                      f"{row['rss_kib'] / 1024:8.1f} {row['anon_kib'] / 1024:9.1f} {row['fds']:>4} "
                      f"{row['threads']:>4} {row['stage_runs']:>6} {row['stage_failures']:>6}", flush=True)
    return rows


def check_account(sim, psks):
    """After a fault-free phase: each configured tunnel once, with its latest PSK; no DELETE."""
    sim.set_faults(0.0, 0.0)
    tunnels = sim.tunnels()
    names = sorted(t["name"] for t in tunnels)
    problems = []
    if names != sorted(psks):
        problems.append(f"tunnels in the emulator {names}, configured {sorted(psks)}")
    for t in tunnels:
        psk = psks.get(t["name"])
        if psk is not None and not sim.psk_matches(t["id"], psk):
            problems.append(f"{t['name']} does not hold its latest PSK")
    _, counts = sim.request("GET", "/_sim/requests")
    deletes = (counts or {}).get("DELETE", 0)
    if deletes:
        problems.append(f"{deletes} DELETE requests")
    return {"problems": problems, "requests": counts}


# ---- the verdict ----

def window(rows, lo, hi):
    return [r for r in rows if lo <= r["t_s"] < hi]


def slope_kib_per_hour(rows):
    if len(rows) < 2:
        return 0.0
    xs = [r["t_s"] / 3600 for r in rows]
    ys = [r["rss_kib"] for r in rows]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def verdict(args, rows, end, exit_code, log):
    cycle = 2 * args.phase
    last_t = rows[-1]["t_s"]
    warm = window(rows, 0, cycle)
    after = window(rows, cycle, float("inf"))
    if not after:
        sys.exit("too short: nothing after the warm-up cycle (run at least 3 phases)")
    baseline = window(rows, cycle, 2 * cycle) or after
    final = window(rows, max(cycle, last_t - cycle), float("inf"))
    base_rss = statistics.median(r["rss_kib"] for r in baseline)
    final_rss = statistics.median(r["rss_kib"] for r in final)
    max_rss = max(r["rss_kib"] for r in after)
    growth = 100.0 * (final_rss - base_rss) / base_rss
    # The probe stage resolves every FQDN, 64 lookups at a time, each with a UDP socket of its
    # own: a burst of sockets that closes with the stage. Flat: neither the usual level (the
    # median) nor the bursts (the max) grow from the baseline cycle to the last.
    fds_after = [r["fds"] for r in after]
    fds_base = (statistics.median(r["fds"] for r in baseline), max(r["fds"] for r in baseline))
    fds_final = (statistics.median(r["fds"] for r in final), max(r["fds"] for r in final))
    fds_flat = fds_final[0] <= fds_base[0] + 2 and fds_final[1] <= max(r["fds"] for r in warm + baseline) + 2
    panics = [l for l in log.splitlines() if "panicked" in l or "RUST_BACKTRACE" in l]
    by_faults = {}
    prev = None
    for r in rows:
        if prev is not None:
            d = by_faults.setdefault(r["faults"], [0, 0])
            d[0] += r["stage_runs"] - prev["stage_runs"]
            d[1] += r["stage_failures"] - prev["stage_failures"]
        prev = r
    print()
    print(f"soak: {last_t / 60:.1f} min, {len(rows)} samples every {args.sample:g} s, phases of "
          f"{args.phase / 60:.1f} min (faults: {args.fail_rate:.0%} 500s + {args.throttle_rate:.0%} 429s, then none), "
          f"{'a PSK rotated and SIGHUP at each phase change' if not args.no_reload else 'no reloads'}")
    print(f"  RSS   warm-up (first {cycle / 60:.1f} min) {min(r['rss_kib'] for r in warm) / 1024:.1f}"
          f"-{max(r['rss_kib'] for r in warm) / 1024:.1f} MiB; after warm-up: median {base_rss / 1024:.2f} MiB "
          f"(min {baseline_min(baseline) / 1024:.2f}), last cycle median {final_rss / 1024:.2f} MiB, "
          f"max {max_rss / 1024:.2f} MiB")
    print(f"        growth {growth:+.1f}% (target <= 5%); trend after warm-up {slope_kib_per_hour(after):+.0f} KiB/h; "
          f"anonymous at the end {rows[-1]['anon_kib'] / 1024:.2f} MiB; peak (VmHWM) {rows[-1]['hwm_kib'] / 1024:.2f} MiB")
    print(f"  fds   after warm-up min {min(fds_after)}, median {statistics.median(fds_after):g}, max {max(fds_after)} "
          f"(sockets at most {max(r['sockets'] for r in after)}); median/max baseline cycle "
          f"{fds_base[0]:g}/{fds_base[1]}, last cycle {fds_final[0]:g}/{fds_final[1]}: {'flat' if fds_flat else 'NOT flat'}")
    print(f"  threads {min(r['threads'] for r in rows)}-{max(r['threads'] for r in rows)}")
    for faults, (runs, fails) in sorted(by_faults.items(), reverse=True):
        print(f"  stages, faults {faults:>3}: {runs} runs, {fails} failed ({100.0 * fails / max(runs, 1):.1f}%)")
    print(f"  API requests received: {json.dumps(end['requests'])}")
    print(f"  agent exit on SIGTERM: {exit_code}; panics in the log: {len(panics)}")
    for p in end["problems"]:
        print(f"  account: {p}")
    checks = {
        "RSS growth <= 5%": growth <= 5.0,
        "descriptors flat": fds_flat,
        "no panic": not panics,
        "exit 0 on SIGTERM": exit_code == 0,
        "account converged": not end["problems"],
    }
    print("verdict: " + ", ".join(f"{k}: {'ok' if v else 'FAILED'}" for k, v in checks.items()))
    return all(checks.values())


def baseline_min(rows):
    return min(r["rss_kib"] for r in rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=1800, help="seconds (default 1800)")
    p.add_argument("--phase", type=float, default=300, help="seconds per phase (default 300)")
    p.add_argument("--fail-rate", type=float, default=0.3)
    p.add_argument("--throttle-rate", type=float, default=0.1)
    p.add_argument("--sample", type=float, default=5, help="seconds between samples")
    p.add_argument("--binary", help="a popsel binary (default: build target/release/popsel)")
    p.add_argument("--csv", help="write every sample to this CSV file")
    p.add_argument("--no-reload", action="store_true", help="no PSK rotation and SIGHUP at phase changes")
    args = p.parse_args()
    if round(args.duration / args.phase) < 3:
        sys.exit("--duration must be at least 3 phases: warm-up, baseline, last cycle")
    popsel = os.path.abspath(args.binary) if args.binary else build()
    with tempfile.TemporaryDirectory(prefix="popsel-soak-") as workdir:
        rows, end, exit_code, log = soak(args, popsel, workdir)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    sys.exit(0 if verdict(args, rows, end, exit_code, log) else 1)


if __name__ == "__main__":
    main()
