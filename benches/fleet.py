#!/usr/bin/env python3
"""Fleet economy: the load N agents put on the API, in steady state, in an outage and after it.

For each N of --agents, starts one `popsel sim` on loopback and N `popsel run --no-probe`
agents against it, all released at once (a fleet started together, as after a fleet-wide
upgrade: they are forked first, held before their exec, then let go with one close()). Each
agent has its own config, state dir, metrics port and log under --workdir, and one local
location with two tunnels (primary and secondary) whose names, authentication IDs and
location ID are its own. The agents run in one session of their own and the emulator in
another, so that the scheduler's autogroups keep 500 agents waking together from starving the
emulator. The script reads the emulator's request counter (GET /_sim/requests) once a second
for the whole run, then:

    warm-up   --warmup s (default 5 x the reconcile interval: five cycles of the reconcile
              and status stages; 5 x the catalogue interval would be 5 min more per N)
    steady    --steady s    mean load, busiest second, the first 5 agents' /metrics at both
                            ends, every agent's RSS at the end
    outage    --outage s    every API request answered 500 (PUT /_sim/faults fail_rate 1.0)
    recovery  --recovery s  faults off; the first 30 s are the recovery figures

then stops the agents (SIGTERM, then SIGKILL after 15 s), lists the emulator's tunnels
(duplicates by name must be 0) and stops the emulator. A fresh emulator per N.

    python3 benches/fleet.py [--agents 100,250,500] [--quick] [--json out.json]
        [--warmup S] [--steady S] [--outage S] [--recovery S]
        [--catalog-interval 60s] [--reconcile-interval 30s] [--status-interval 10s]
        [--probe-interval 30s] [--default-catalog-interval 1h]
        [--default-reconcile-interval 5m] [--default-status-interval 1m]
        [--popsel target/release/popsel] [--metrics-port 30000] [--workdir DIR] [--keep]

Figures (issue 15, "Fleet economy"), with the targets the issue sets:
  req/agent/min    steady-window requests / seconds x 60 / N; flat within 10% across N
  peak/mean        busiest 1-s bin of the steady window / its mean per second; <= 3
  outage/steady    requests per second in the outage (its first 5 s left out: requests
                   already under way and their first retries land there) / steady; <= 1
  recovery         the first 30 s after the outage: busiest second and mean, as multiples of
                   the steady mean per second; mean <= 2 (the peak is reported)
  duplicates       tunnel names held more than once by the emulator after the run; 0
  RSS              VmRSS of every agent at the end of the steady window, mean and max
It also estimates the API load of 10,000 sites at the default intervals (catalogue 1 h,
reconcile 5 min, status 1 min): each agent's API requests per stage run, from /metrics
(popsel_api_requests_total by endpoint over popsel_stage_runs_total), counted over the steady
window, fitted as a + b x (tunnels in the account) when several N were measured (listing
tunnels pages through all of the account's), then scaled.

Notes are printed where the figures are not the agents' alone: the emulator's CPU (from
/proc), seconds the poller could not sample (a bin longer than 1.5 s averages its peak
away), calls the agents saw fail in the steady window, the emulator reaching its connection
limit, agents that exited (with the path of a log; each N's directory is removed unless an
agent died or --keep is given). Loopback only, no root needed. Python 3.11, standard library
only. Exit status 0 when every target is met, 1 otherwise.
"""

import argparse
import http.client
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emulator import Sim  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "fleet-token-" + secrets.token_hex(12)
PSK_ENV = "FLEET_PSK"
TUNNELS_PER_AGENT = 2
EXTRAPOLATED_SITES = 10_000
# The recovery figures cover this much of the recovery window.
RECOVERY_SPAN = 30.0
# Left out at the start of the outage: requests under way and their first retries.
OUTAGE_SETTLE = 5.0
# Agents whose /metrics are read for the per-stage costs (the first ones started).
SCRAPED_AGENTS = 5
CLK_TCK = os.sysconf("SC_CLK_TCK")
STAGES = ["catalog", "reconcile", "status", "other"]


def parse_duration(text):
    """Seconds in "1h", "5m", "30s", "200ms", "1m30s"."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|h|m|s)", text)
    if not parts or re.sub(r"\s|\d+(?:\.\d+)?\s*(ms|h|m|s)", "", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; write e.g. 30s, 5m, 1h")
    return sum(float(n) * units[u] for n, u in parts)


def stage_of(endpoint):
    """The agent stage that calls an API endpoint (the template /metrics labels it with)."""
    if endpoint.startswith("/api/v1/pops"):
        return "catalog"
    if endpoint.endswith("/status") or endpoint.startswith("/api/v1/connectors"):
        return "status"
    if endpoint.startswith("/api/v1/tunnels"):
        return "reconcile"
    return "other"


def stage_runs(runs, endpoint):
    """Runs of the stage that calls an endpoint; an endpoint of no known stage counts per
    reconcile run (and is shown as "other")."""
    stage = stage_of(endpoint)
    return runs.get("reconcile" if stage == "other" else stage, 0)


# ---- the emulator: benches/emulator.py ----


def process_cpu(pid):
    """User + system CPU seconds of a process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), None)
    except OSError:
        return None


class Poller(threading.Thread):
    """Reads the emulator's request counter, its CPU time and the machine's once a second, on
    whole-second deadlines from its start; each sample carries its monotonic time.

    It keeps one connection open: when a whole fleet calls at once, new connections can wait in
    the emulator's accept queue or lose their SYN (retried after 1, 2, 4 s), and a poller that
    connected anew each second lost up to 8 s of resolution right at the peaks."""

    def __init__(self, sim):
        super().__init__(daemon=True)
        self.sim = sim
        self.address = urllib.parse.urlsplit(sim.url)
        self.conn = None
        self.samples = []
        self.misses = []  # (monotonic time, what went wrong) of the failed reads
        self.halt = threading.Event()

    def requests_so_far(self, deadline):
        """API requests received since the start, all methods; None if nothing answered before
        the deadline. A connection that failed is replaced at once: beyond its 256 connections
        the emulator closes the oldest idle one for each new one, and in a burst of a fleet of
        500 that is often this one, just when the sample matters most."""
        while True:
            timeout = max(0.5, deadline - time.monotonic())
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(
                        self.address.hostname, self.address.port, timeout=timeout)
                self.conn.timeout = timeout
                if self.conn.sock is not None:
                    self.conn.sock.settimeout(timeout)
                self.conn.request("GET", "/_sim/requests",
                                  headers={"Authorization": f"Bearer {TOKEN}"})
                resp = self.conn.getresponse()
                counts = json.loads(resp.read())
                if resp.status == 200:
                    return sum(v for k, v in counts.items() if k != "writes")
                self.misses.append((time.monotonic(), f"HTTP {resp.status}"))
            except (OSError, ValueError, http.client.HTTPException) as e:
                self.misses.append((time.monotonic(), type(e).__name__))
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            if time.monotonic() >= deadline:
                return None  # the next sample covers this second too

    def run(self):
        start = time.monotonic()
        tick = 0
        while not self.halt.is_set():
            count = self.requests_so_far(start + tick + 1)
            now = time.monotonic()
            if count is not None:
                busy, total = machine_cpu()
                self.samples.append((now, count, process_cpu(self.sim.proc.pid), busy, total))
            tick = max(tick + 1, math.floor(now - start) + 1)
            self.halt.wait(max(0.0, start + tick - time.monotonic()))
        if self.conn is not None:
            self.conn.close()


def bins(samples, t0):
    """One bin per pair of consecutive samples: (start, end) relative to t0, requests in it,
    the emulator's CPU share of one core and the machine's busy share."""
    out = []
    for (ta, ca, sa, ba, wa), (tb, cb, sb, bb, wb) in zip(samples, samples[1:]):
        dt = tb - ta
        out.append({
            "start": round(ta - t0, 3), "end": round(tb - t0, 3), "requests": cb - ca,
            "sim_cpu": round((sb - sa) / dt, 3) if dt > 0 else 0.0,
            "machine_busy": round((bb - ba) / (wb - wa), 3) if wb > wa else 0.0,
        })
    return out


def window(series, start, end):
    """The bins whose middle lies in [start, end)."""
    return [b for b in series if start <= (b["start"] + b["end"]) / 2 < end]


def rate(bs):
    seconds = sum(b["end"] - b["start"] for b in bs)
    return sum(b["requests"] for b in bs) / seconds if seconds > 0 else 0.0


def longest(bs):
    """The longest bin: above a second, the poller missed samples and peaks are averaged out."""
    return max((b["end"] - b["start"] for b in bs), default=0.0)


def peak(bs):
    return max((b["requests"] / (b["end"] - b["start"]) for b in bs if b["end"] > b["start"]),
               default=0.0)


# ---- the agents ----

def free_ports(first, count):
    """`count` ports from `first` on that nothing listens on at 127.0.0.1 now."""
    ports, port = [], first
    while len(ports) < count:
        if port > 65535:
            sys.exit(f"not enough free ports from {first} on for {count} metrics servers")
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                ports.append(port)
            except OSError:
                pass
        port += 1
    return ports


def write_agent(agent_dir, index, sim_url, port, args):
    """One site: a local location with a primary and a secondary tunnel, all names, IDs and the
    location ID its own; the PSK from the environment. Returns the config's path."""
    os.makedirs(os.path.join(agent_dir, "state"))
    site = f"site-{index:04d}"
    path = os.path.join(agent_dir, "popsel.toml")
    with open(path, "w") as f:
        f.write(f"""[api]
base_url = "{sim_url}"
[state]
dir = "{agent_dir}/state"
[agent]
catalog_interval = "{args.catalog_interval_text}"
probe_interval = "{args.probe_interval_text}"
reconcile_interval = "{args.reconcile_interval_text}"
status_interval = "{args.status_interval_text}"
[metrics]
listen = "127.0.0.1:{port}"
[connectors]
watch = []

[[locations]]
name = "{site}"
location_id = "{uuid.uuid4()}"
latitude = 41.88
longitude = -87.63
local = true

[[locations.tunnels]]
name = "{site} IPSec1"
role = "primary"
authentication_id = "{site}-primary@fleet.example"
psk_env = "{PSK_ENV}"

[[locations.tunnels]]
name = "{site} IPSec2"
role = "secondary"
authentication_id = "{site}-secondary@fleet.example"
psk_env = "{PSK_ENV}"
""")
    return path


# Runs in a session of its own (so the whole fleet is one autogroup of the kernel's scheduler,
# beside the emulator's: on a 2-core machine, 500 agents waking at once otherwise starve the
# emulator, which answers everything late, and the figures measure the scheduler). It forks
# every agent held before its exec (a shell that waits for the end of one pipe, then execs
# popsel): forking 500 processes takes seconds on a busy machine, the release is one close().
# Reads the agents from one JSON line on stdin, prints their pids as one JSON line, waits for
# a line on stdin, releases them, prints "released", then one JSON line [pid, exit code] per
# agent that exits, until none is left.
LAUNCHER = r"""
import json, os, subprocess, sys
agents = json.loads(sys.stdin.readline())
gate, release = os.pipe()
hold = f'read _ <&{gate}; exec "$0" "$@" {gate}<&-'
pids = []
for agent in agents:
    with open(agent["log"], "w") as log:
        pids.append(subprocess.Popen(["/bin/sh", "-c", hold, *agent["argv"]], env=agent["env"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, pass_fds=(gate,)).pid)
os.close(gate)
print(json.dumps(pids), flush=True)
sys.stdin.readline()
os.close(release)
print("released", flush=True)
left = set(pids)
while left:
    pid, status = os.wait()
    if pid in left:
        left.discard(pid)
        print(json.dumps([pid, os.waitstatus_to_exitcode(status)]), flush=True)
"""


class Fleet:
    def __init__(self, popsel, workdir, sim_url, n, args):
        self.popsel = popsel
        self.dirs = [os.path.join(workdir, f"agent-{i:04d}") for i in range(n)]
        self.ports = free_ports(args.metrics_port, n)
        self.configs = [write_agent(d, i, sim_url, p, args)
                        for i, (d, p) in enumerate(zip(self.dirs, self.ports))]
        self.launcher = None
        self.pids = []
        self.exits = {}  # pid: exit code, as the launcher reports them
        self.deaths = {}  # agent index: (phase, exit code)

    def spawn(self):
        """Every agent forked and held before its exec (see LAUNCHER)."""
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("POPSEL_")}
        base_env["POPSEL_API_TOKEN"] = TOKEN
        agents = [{"argv": [self.popsel, "run", "--no-probe", "--config", config],
                   "env": dict(base_env, **{PSK_ENV: secrets.token_urlsafe(12)[:16]}),
                   "log": os.path.join(agent_dir, "agent.log")}
                  for agent_dir, config in zip(self.dirs, self.configs)]
        self.launcher = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, start_new_session=True)
        self.launcher.stdin.write(json.dumps(agents) + "\n")
        self.launcher.stdin.flush()
        line = self.launcher.stdout.readline()
        if not line:
            sys.exit("the launcher did not start the agents")
        self.pids = json.loads(line)

    def release(self):
        """Lets every agent exec at once. Returns the seconds until the last one had."""
        began = time.monotonic()
        self.launcher.stdin.write("go\n")
        self.launcher.stdin.flush()
        self.launcher.stdin.close()
        if self.launcher.stdout.readline().strip() != "released":
            sys.exit("the launcher did not release the agents")
        threading.Thread(target=self.read_exits, daemon=True).start()
        binary = os.path.realpath(self.popsel)
        waiting = set(self.pids)
        while waiting and time.monotonic() - began < 60:
            for pid in list(waiting):
                try:
                    if pid in self.exits or os.readlink(f"/proc/{pid}/exe") == binary:
                        waiting.discard(pid)
                except OSError:
                    waiting.discard(pid)
            time.sleep(0.02)
        return time.monotonic() - began

    def read_exits(self):
        for line in self.launcher.stdout:
            pid, code = json.loads(line)
            self.exits[pid] = code

    def running(self):
        return [pid for pid in self.pids if pid not in self.exits]

    def check(self, phase):
        """Records agents that exited since the last check, with the phase they died in."""
        for i, pid in enumerate(self.pids):
            if i not in self.deaths and pid in self.exits:
                self.deaths[i] = (phase, self.exits[pid])

    def rss(self):
        return [v / 1024 for v in (rss_kib(pid) for pid in self.running()) if v]

    def cpu_seconds(self):
        return sum(process_cpu(pid) for pid in self.running())

    def scrape(self, count):
        return [scrape(port) for port in self.ports[:count]]

    def signal_running(self, signum):
        for pid in self.running():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def stop(self):
        """SIGTERM, 15 s, then SIGKILL for the rest."""
        if self.launcher is None:
            return
        self.signal_running(signal.SIGTERM)
        if not self.launcher.stdin.closed:  # never released: the held shells are gone now
            self.launcher.stdin.close()
        try:
            self.launcher.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.signal_running(signal.SIGKILL)
            self.launcher.wait(timeout=15)


# Label values may hold braces (the endpoint template /api/v1/tunnels/{id}).
METRIC_LINE = re.compile(r'^(popsel_api_requests_total|popsel_stage_runs_total|'
                         r'popsel_stage_failures_total)\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\}\s+(\S+)')


def scrape(port):
    """{("api", endpoint, method): n, ("code", code): n, ("runs", stage): n,
    ("failures", stage): n} of one agent; the API counter by endpoint is summed over codes."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
        if m.group(1) == "popsel_api_requests_total":
            code = labels.get("code", "?")
            out[("code", code)] = out.get(("code", code), 0) + float(m.group(3))
            key = ("api", labels.get("endpoint", "?"), labels.get("method", "?"))
        elif m.group(1) == "popsel_stage_runs_total":
            key = ("runs", labels.get("stage", "?"))
        else:
            key = ("failures", labels.get("stage", "?"))
        out[key] = out.get(key, 0) + float(m.group(3))
    return out


def steady_costs(before, after):
    """API requests per stage run over the steady window, summed over the scraped agents:
    {"runs": {stage: n}, "failures": {stage: n}, "codes": {code: n},
    "endpoints": {(endpoint, method): n}}."""
    sums = {"runs": {}, "failures": {}, "code": {}, "api": {}}
    for b, a in zip(before, after):
        if b is None or a is None:
            continue
        for key, value in a.items():
            table, name = key[0], key[1:] if key[0] == "api" else key[1]
            sums[table][name] = sums[table].get(name, 0) + value - b.get(key, 0)
    return {"runs": sums["runs"], "failures": sums["failures"], "codes": sums["code"],
            "endpoints": sums["api"]}


# ---- one N ----

def wait_until(t0, at, fleet, phase):
    while True:
        left = t0 + at - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 5))
        fleet.check(phase)


def run_fleet(popsel, n, args, workdir):
    """One emulator, n agents, the four phases. Returns the figures and the raw series."""
    os.makedirs(workdir)
    sim = Sim(popsel, workdir, TOKEN, own_session=True)  # see LAUNCHER
    try:
        result = measure(sim, popsel, n, args, workdir)
    finally:
        sim.stop()
    with open(os.path.join(workdir, "sim.log")) as f:
        result["sim_connection_limit_warnings"] = sum("connections open, its limit" in l for l in f)
    return result


def measure(sim, popsel, n, args, workdir):
    fleet = Fleet(popsel, workdir, sim.url, n, args)
    poller = Poller(sim)
    poller.start()
    try:
        forked = time.monotonic()
        fleet.spawn()
        forked = time.monotonic() - forked
        time.sleep(1.5)  # a sample or two before the agents start
        t0 = time.monotonic()
        spread = fleet.release()
        print(f"  N={n}: {n} agents forked in {forked:.1f} s, held, then released: all "
              f"running popsel {spread:.1f} s later; warm-up {args.warmup:.0f} s", flush=True)
        steady_at = args.warmup
        outage_at = steady_at + args.steady
        recovery_at = outage_at + args.outage
        end_at = recovery_at + args.recovery
        wait_until(t0, steady_at, fleet, "warm-up")
        scraped_before = fleet.scrape(SCRAPED_AGENTS)
        agents_cpu = fleet.cpu_seconds()
        wait_until(t0, outage_at, fleet, "steady")
        scraped_after = fleet.scrape(SCRAPED_AGENTS)
        agents_cpu = (fleet.cpu_seconds() - agents_cpu) / args.steady
        rss = fleet.rss()
        sim.set_faults(1.0)
        outage_began = time.monotonic() - t0
        print(f"  N={n}: outage", flush=True)
        wait_until(t0, recovery_at, fleet, "outage")
        sim.set_faults(0.0)
        recovery_began = time.monotonic() - t0
        print(f"  N={n}: recovery", flush=True)
        wait_until(t0, end_at, fleet, "recovery")
        fleet.check("recovery")
    finally:
        poller.halt.set()
        poller.join()
        fleet.stop()
    tunnels = sim.tunnels()
    series = bins(poller.samples, t0)
    phases = {"steady": [steady_at, outage_at], "outage": [outage_began, recovery_began],
              "recovery": [recovery_began, end_at]}
    result = figures(n, series, phases, rss, tunnels, fleet,
                     steady_costs(scraped_before, scraped_after), spread)
    result["agents_cpu_steady"] = agents_cpu
    result["poller_misses"] = [[round(t - t0, 3), what] for t, what in poller.misses]
    return result


def figures(n, series, phases, rss, tunnels, fleet, costs, spread):
    steady = window(series, *phases["steady"])
    outage_start, outage_end = phases["outage"]
    outage = window(series, outage_start + OUTAGE_SETTLE, outage_end)
    recovery_start = phases["recovery"][0]
    first = window(series, recovery_start, min(recovery_start + RECOVERY_SPAN, phases["recovery"][1]))
    mean = rate(steady)
    names = {}
    for t in tunnels:
        names[t.get("name")] = names.get(t.get("name"), 0) + 1
    ratio = lambda x: x / mean if mean > 0 else float("nan")
    return {
        "agents": n,
        "start_spread_s": round(spread, 2),
        "phases": phases,
        "steady_req_per_s": mean,
        "req_per_agent_per_min": mean * 60 / n,
        "steady_peak_over_mean": ratio(peak(steady)),
        "outage_over_steady": ratio(rate(outage)),
        "recovery_peak_over_steady": ratio(peak(first)),
        "recovery_mean_over_steady": ratio(rate(first)),
        "recovery_window_mean_over_steady": ratio(rate(window(series, *phases["recovery"]))),
        "longest_bin_s": {"steady": longest(steady), "outage": longest(outage),
                          "recovery_30s": longest(first)},
        "tunnels": len(tunnels),
        "tunnels_expected": TUNNELS_PER_AGENT * n,
        "duplicates": sum(c - 1 for c in names.values() if c > 1),
        "rss_mib_mean": statistics.mean(rss) if rss else float("nan"),
        "rss_mib_max": max(rss) if rss else float("nan"),
        "sim_cpu_steady_mean": statistics.mean(b["sim_cpu"] for b in steady) if steady else 0.0,
        "sim_cpu_max": max((b["sim_cpu"] for b in series), default=0.0),
        "machine_busy_steady_mean": statistics.mean(b["machine_busy"] for b in steady) if steady else 0.0,
        "deaths": [{"agent": i, "phase": p, "exit": rc, "log": os.path.join(fleet.dirs[i], "agent.log")}
                   for i, (p, rc) in sorted(fleet.deaths.items())],
        "costs": {
            "runs": costs["runs"], "failures": costs["failures"], "codes": costs["codes"],
            "endpoints": [{"endpoint": e, "method": m, "requests": v}
                          for (e, m), v in sorted(costs["endpoints"].items())],
        },
        "series": series,
    }


# ---- the report ----

def fmt(x, digits=2):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def print_table(results):
    base = results[0]["req_per_agent_per_min"]
    print("| N | req/agent/min | vs N={} | steady req/s | peak s / mean | outage / steady "
          "| recovery peak / steady (30 s) | recovery mean / steady (30 s) | duplicates "
          "| tunnels | RSS mean / max MiB | agents' CPU steady (cores) | sim CPU steady / max (cores) "
          "| died |".format(results[0]["agents"]))
    print("|" + "---|" * 14)
    for r in results:
        print(f"| {r['agents']} | {fmt(r['req_per_agent_per_min'])} "
              f"| {fmt(r['req_per_agent_per_min'] / base if base else float('nan'))} "
              f"| {fmt(r['steady_req_per_s'], 1)} | {fmt(r['steady_peak_over_mean'])} "
              f"| {fmt(r['outage_over_steady'])} | {fmt(r['recovery_peak_over_steady'])} "
              f"| {fmt(r['recovery_mean_over_steady'])} | {r['duplicates']} "
              f"| {r['tunnels']}/{r['tunnels_expected']} "
              f"| {fmt(r['rss_mib_mean'], 1)} / {fmt(r['rss_mib_max'], 1)} "
              f"| {fmt(r.get('agents_cpu_steady'))} "
              f"| {fmt(r['sim_cpu_steady_mean'])} / {fmt(r['sim_cpu_max'])} | {len(r['deaths'])} |")


def targets(results):
    """[(target, pass, what was measured)]"""
    per_agent = [r["req_per_agent_per_min"] for r in results]
    spread = max(abs(x / per_agent[0] - 1) for x in per_agent) if per_agent[0] else float("inf")
    worst = lambda key: max(r[key] for r in results)
    checks = [
        ("req/agent/min flat within 10% across N", spread <= 0.10,
         f"largest deviation from N={results[0]['agents']}: {spread * 100:.1f}%"
         + ("" if len(results) > 1 else " (one N only)")),
        ("peak second <= 3x steady mean", worst("steady_peak_over_mean") <= 3,
         f"worst {fmt(worst('steady_peak_over_mean'))}x"),
        ("outage load <= steady load", worst("outage_over_steady") <= 1,
         f"worst {fmt(worst('outage_over_steady'))}x"),
        ("recovery: mean of the first 30 s <= 2x steady mean", worst("recovery_mean_over_steady") <= 2,
         f"worst {fmt(worst('recovery_mean_over_steady'))}x (peak second up to "
         f"{fmt(worst('recovery_peak_over_steady'))}x)"),
        ("no duplicate tunnels", all(r["duplicates"] == 0 for r in results),
         f"{sum(r['duplicates'] for r in results)} duplicates"),
    ]
    return checks


def per_run(results):
    """{(endpoint, method): [(tunnels in the account, requests per run of its stage)]}"""
    out = {}
    for r in results:
        runs = r["costs"]["runs"]
        for e in r["costs"]["endpoints"]:
            count = stage_runs(runs, e["endpoint"])
            if count > 0:
                out.setdefault((e["endpoint"], e["method"]), []).append(
                    (r["tunnels_expected"], e["requests"] / count))
        # An endpoint a run did not call at all counts as 0 for that N.
    for key, points in out.items():
        seen = {t for t, _ in points}
        points += [(r["tunnels_expected"], 0.0) for r in results
                   if r["tunnels_expected"] not in seen and r["costs"]["runs"]]
    return out


def fit(points):
    """a + b x tunnels, least squares; b = 0 with a single N."""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    if len(set(xs)) < 2:
        return statistics.mean(ys), 0.0
    mx, my = statistics.mean(xs), statistics.mean(ys)
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def extrapolate(results, args):
    """Prints the per-stage breakdown and the fleet's API load at the default intervals."""
    defaults = {"catalog": args.default_catalog_interval, "reconcile": args.default_reconcile_interval,
                "status": args.default_status_interval, "other": args.default_reconcile_interval}
    tunnels = TUNNELS_PER_AGENT * EXTRAPOLATED_SITES
    rows, per_hour = [], {s: 0.0 for s in STAGES}
    for (endpoint, method), points in sorted(per_run(results).items(), key=lambda kv: stage_of(kv[0][0])):
        if not any(y for _, y in points):
            continue  # e.g. the creations' POST, not repeated in steady state
        a, b = fit(points)
        at_fleet = max(0.0, a + b * tunnels)
        stage = stage_of(endpoint)
        hourly = at_fleet * 3600 / defaults[stage]
        per_hour[stage] += hourly
        measured = ", ".join(f"{y:.2f}" for _, y in sorted(points))
        rows.append((stage, method, endpoint, measured, b, at_fleet, hourly))
    ns = ", ".join(f"N={r['agents']}" for r in results)
    print(f"\nAPI requests per stage run (steady window, first {SCRAPED_AGENTS} agents' /metrics; "
          f"{ns}), fitted as a + b x tunnels in the account, evaluated at {EXTRAPOLATED_SITES:,} "
          f"sites ({tunnels:,} tunnels):")
    print("| stage | method | endpoint | per run at each N | b (per tunnel) | per run, 10k sites | per agent per hour, default intervals |")
    print("|---|---|---|---|---|---|---|")
    for stage, method, endpoint, measured, b, at_fleet, hourly in rows:
        print(f"| {stage} | {method} | `{endpoint}` | {measured} | {b:.5f} | {at_fleet:.2f} | {hourly:.1f} |")
    bench = {"catalog": args.catalog_interval, "reconcile": args.reconcile_interval,
             "status": args.status_interval, "other": args.reconcile_interval}
    for r in results:
        runs = r["costs"]["runs"]
        model = sum(e["requests"] / stage_runs(runs, e["endpoint"]) * 60 / bench[stage_of(e["endpoint"])]
                    for e in r["costs"]["endpoints"] if stage_runs(runs, e["endpoint"]))
        print(f"  check, N={r['agents']}: these per-run costs at the bench's intervals give "
              f"{model:.1f} req/agent/min; the emulator counted {r['req_per_agent_per_min']:.1f}")
    if len(results) < 2:
        print("  (one N only: per-run costs taken as measured; listing the account's tunnels grows "
              "with the fleet, so measure several N to see it)")
    total = sum(per_hour.values())
    print(f"\nAt the default intervals (catalogue {args.default_catalog_interval_text}, reconcile "
          f"{args.default_reconcile_interval_text}, status {args.default_status_interval_text}):")
    for stage in STAGES:
        if per_hour[stage]:
            share = 100 * per_hour[stage] / total if total else 0
            print(f"  {stage:<10} {per_hour[stage]:8.1f} req/h per agent ({share:.0f}%)")
    print(f"  total      {total:8.1f} req/h per agent = {total / 60:.2f} req/min; "
          f"{EXTRAPOLATED_SITES:,} sites: {total * EXTRAPOLATED_SITES / 3600:,.0f} req/s")
    writes = sum(e["requests"] for r in results for e in r["costs"]["endpoints"]
                 if e["method"] in ("POST", "PUT", "PATCH", "DELETE"))
    print(f"  (writes in the steady windows: {writes:.0f}: the steady state after creation "
          f"{'reads only' if writes == 0 else 'still writes'})")
    return {"per_hour_per_agent": per_hour, "fleet_req_per_s": total * EXTRAPOLATED_SITES / 3600}


def report(results, args):
    print()
    print_table(results)
    print("\nTargets (issue 15):")
    checks = targets(results)
    for name, ok, measured in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {measured}")
    for r in results:
        if r["sim_cpu_steady_mean"] >= 0.8 or r["sim_cpu_max"] >= 0.95 * os.cpu_count():
            print(f"  NOTE  N={r['agents']}: the emulator used {fmt(r['sim_cpu_steady_mean'])} cores "
                  f"on average in the steady window, {fmt(r['sim_cpu_max'])} at most: near "
                  f"saturation, these figures measure the emulator as much as the agents")
        if r.get("sim_connection_limit_warnings"):
            print(f"  NOTE  N={r['agents']}: the emulator reached its connection limit and closed "
                  f"agents' idle connections to admit new ones (sim.log): bursts then reconnect")
        gaps = {k: v for k, v in r["longest_bin_s"].items() if v > 1.5}
        if gaps:
            print(f"  NOTE  N={r['agents']}: samples missed (longest bin, s: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in gaps.items())
                  + "): peaks there are averaged over the gap")
        if r["deaths"]:
            d = r["deaths"][0]
            print(f"  NOTE  N={r['agents']}: {len(r['deaths'])} agents exited (first: agent "
                  f"{d['agent']} in the {d['phase']}, status {d['exit']}); see {d['log']}")
        if r["tunnels"] != r["tunnels_expected"]:
            print(f"  NOTE  N={r['agents']}: the emulator holds {r['tunnels']} tunnels, "
                  f"{r['tunnels_expected']} expected")
        odd = {c: v for c, v in r["costs"]["codes"].items() if v and not c.startswith("2")}
        if odd:
            print(f"  NOTE  N={r['agents']}: API calls not answered 2xx in the steady window "
                  f"(scraped agents, by code): {odd}")
        failures = {s: v for s, v in r["costs"]["failures"].items() if v}
        if failures:
            print(f"  NOTE  N={r['agents']}: stage failures in the steady window (scraped agents): {failures}")
    fleet = extrapolate(results, args)
    return all(ok for _, ok, _ in checks), checks, fleet


# ---- main ----

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", default="100,250,500", help="comma-separated fleet sizes")
    p.add_argument("--quick", action="store_true", help="warm-up 60 s, then 60 s per phase")
    for phase in ("warmup", "steady", "outage", "recovery"):
        p.add_argument(f"--{phase}", type=float, help="seconds")
    for stage, default in (("catalog", "60s"), ("probe", "30s"), ("reconcile", "30s"), ("status", "10s")):
        p.add_argument(f"--{stage}-interval", default=default, help=f"the agents' [agent] {stage}_interval")
    for stage, default in (("catalog", "1h"), ("reconcile", "5m"), ("status", "1m")):
        p.add_argument(f"--default-{stage}-interval", default=default,
                       help=f"{stage} interval of the 10,000-site estimate")
    p.add_argument("--metrics-port", type=int, default=30000, help="first agent's metrics port")
    p.add_argument("--popsel", help="popsel binary (default: build target/release/popsel)")
    p.add_argument("--workdir", default=os.path.join("/tmp", "popsel-fleet"),
                   help="emptied at start; one subdirectory per N")
    p.add_argument("--keep", action="store_true", help="keep every N's directory (configs, state, logs)")
    p.add_argument("--json", help="write the figures and the per-second series here")
    args = p.parse_args()
    args.agent_counts = sorted({int(x) for x in args.agents.split(",") if x.strip()})
    if not args.agent_counts or min(args.agent_counts) < 1:
        p.error("--agents needs one or more positive counts")
    for name in ("catalog", "probe", "reconcile", "status", "default_catalog", "default_reconcile",
                 "default_status"):
        text = getattr(args, f"{name}_interval")
        setattr(args, f"{name}_interval_text", text)
        setattr(args, f"{name}_interval", parse_duration(text))
    quick = 60.0 if args.quick else None
    args.warmup = args.warmup if args.warmup is not None else (quick or 5 * args.reconcile_interval)
    for phase in ("steady", "outage", "recovery"):
        if getattr(args, phase) is None:
            setattr(args, phase, quick or 120.0)
    return args


def prepare(args):
    if args.popsel:
        popsel = os.path.abspath(args.popsel)
    else:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "popsel"], cwd=ROOT, check=True)
        popsel = os.path.join(ROOT, "target", "release", "popsel")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * max(args.agent_counts) + 1024
    if soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    return popsel


def main():
    # The emulator and the agents run in sessions of their own (see LAUNCHER), out of reach of
    # the terminal's signals: SIGTERM and SIGINT unwind through the code that stops them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args()
    popsel = prepare(args)
    print(f"fleet: {popsel}; N = {args.agent_counts}; intervals catalog {args.catalog_interval_text}, "
          f"reconcile {args.reconcile_interval_text}, status {args.status_interval_text}, "
          f"probe {args.probe_interval_text} (--no-probe); warm-up {args.warmup:.0f} s "
          f"(5 x reconcile unless given), steady {args.steady:.0f} s, outage {args.outage:.0f} s, "
          f"recovery {args.recovery:.0f} s; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
          flush=True)
    results = []
    for n in args.agent_counts:
        workdir = os.path.join(args.workdir, f"n{n}")
        result = run_fleet(popsel, n, args, workdir)
        results.append(result)
        if not args.keep and not result["deaths"]:
            shutil.rmtree(workdir, ignore_errors=True)
    ok, checks, fleet = report(results, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
                       "targets": [{"target": n, "pass": p, "measured": m} for n, p, m in checks],
                       "extrapolation": fleet, "runs": results}, f, indent=1)
        print(f"\nper-second series: {args.json}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
