#!/usr/bin/env python3
"""The agent's resident memory and CPU over a long run, probing real (emulated) latency.

Starts the latency lab (examples/lab.rs) with a world of N addresses that all answer, and
`popsel sim` inside its namespace, then runs `popsel run` there with a 30 s probe interval
and samples the agent's RSS and CPU time from /proc until the duration is over.

    sudo python3 benches/agent_resources.py [--addresses 300] [--duration 600] [--interval 30s]

Goal (issue: the agent daemon): RSS <= 20 MB, CPU <= 1% of a core at a 30 s probe interval,
300 probe targets, over 10 minutes. Not a test: run it by hand, as root (namespaces, TUN).
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_SITE = os.path.join(ROOT, "config", "demo-site.toml")


def build():
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--bin", "popsel", "--example", "lab"],
        cwd=ROOT,
        check=True,
    )
    target = os.path.join(ROOT, "target", "release")
    return os.path.join(target, "popsel"), os.path.join(target, "examples", "lab")


def start_lab(lab, popsel, addresses, workdir):
    world_path = os.path.join(workdir, "world.json")
    catalog = os.path.join(workdir, "catalog.json")
    proc = subprocess.Popen(
        [lab, "--pops", str(addresses // 2), "--fqdns-per-pop", "2", "--no-anomalies",
         "--sim", "--popsel", popsel, "--write-catalog", catalog, "--write-world", world_path],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    for line in proc.stdout:
        if line.startswith("popsel lab ready"):
            break
        if proc.poll() is not None:
            sys.exit(f"the lab did not start: {line}")
    with open(world_path) as f:
        return proc, json.load(f)


def toml_table(header, table):
    """One TOML table of plain values (strings, numbers, booleans)."""
    lines = [header]
    for key, value in table.items():
        if isinstance(value, (str, bool, int, float)):
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def write_config(workdir, world, interval):
    """The bench's sections, then the demo site's Chicago (config/demo-site.toml, which the demo
    and the tests use too) with its primary tunnel only: one local location and one tunnel, the
    workload the README's figures were measured on. Returns the config's path and the
    environment variables its PSKs come from."""
    with open(DEMO_SITE, "rb") as f:
        site = tomllib.load(f)
    chicago = next(loc for loc in site["locations"] if loc.get("local", True))
    primary = next(t for t in chicago["tunnels"] if t["role"] == "primary")
    path = os.path.join(workdir, "popsel.toml")
    with open(path, "w") as f:
        f.write(f"""
[api]
base_url = "{world['sim_url']}"
[dns]
nameservers = ["{world['nameserver']}"]
[state]
dir = "{workdir}/state"
[agent]
probe_interval = "{interval}"
catalog_interval = "1h"
reconcile_interval = "5m"
status_interval = "1m"
[metrics]
listen = "127.0.0.1:19469"

""")
        f.write(toml_table("[[locations]]", chicago))
        f.write(toml_table("[[locations.tunnels]]", primary))
    return path, [primary["psk_env"]]


def sample(pid):
    """(RSS in bytes, CPU seconds) of a process."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def rss_parts(pid):
    """Anonymous and file-backed resident memory (the binary's own pages count in the latter)."""
    parts = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:")):
                key, value = line.split(":")
                parts[key] = int(value.split()[0]) * 1024
    return parts.get("RssAnon", 0), parts.get("RssFile", 0)


def probe_rounds(netns):
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "python3", "-c",
         "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:19469/metrics').read().decode())"],
        capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith('popsel_stage_runs_total{stage="probe"}'):
            return int(float(line.split()[-1]))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--addresses", type=int, default=300)
    p.add_argument("--duration", type=int, default=600, help="seconds")
    p.add_argument("--interval", default="30s", help="the agent's probe interval")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the lab needs a network namespace and a TUN device")
    popsel, lab = build()
    with tempfile.TemporaryDirectory(prefix="popsel-res-") as workdir:
        lab_proc, world = start_lab(lab, popsel, args.addresses, workdir)
        agent = None
        try:
            config, psk_vars = write_config(workdir, world, args.interval)
            env = dict(os.environ, POPSEL_API_TOKEN="lab-token-0123456789", POPSEL_LOG="warn")
            env.update({var: "bench-psk-0123" for var in psk_vars})
            agent = subprocess.Popen(
                ["ip", "netns", "exec", world["netns"], popsel, "run", "--config", config],
                env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "agent.log"), "w"),
            )
            time.sleep(1)
            # `ip netns exec` execs popsel, so the pid is the agent's.
            pid = agent.pid
            start = time.monotonic()
            _, cpu0 = sample(pid)
            rss = []
            while time.monotonic() - start < args.duration:
                time.sleep(5)
                if agent.poll() is not None:
                    sys.exit(f"the agent exited with {agent.returncode}; see {workdir}/agent.log")
                r, _ = sample(pid)
                rss.append(r)
            _, cpu1 = sample(pid)
            anon, file = rss_parts(pid)
            elapsed = time.monotonic() - start
            rounds = probe_rounds(world["netns"])
            cpu_pct = 100.0 * (cpu1 - cpu0) / elapsed
            print(f"agent resources: {args.addresses} addresses, probe interval {args.interval}, "
                  f"{elapsed:.0f} s, {rounds} probe rounds")
            print(f"  RSS   max {max(rss) / 2**20:.1f} MiB, median {statistics.median(rss) / 2**20:.1f} MiB"
                  f"   (goal <= 20 MB)")
            print(f"        at the end: {anon / 2**20:.1f} MiB anonymous, {file / 2**20:.1f} MiB file-backed (the binary)")
            print(f"  CPU   {cpu_pct:.2f}% of one core   (goal <= 1%)")
        finally:
            if agent and agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
                agent.wait(timeout=10)
            lab_proc.send_signal(signal.SIGTERM)
            lab_proc.wait(timeout=20)


if __name__ == "__main__":
    main()
