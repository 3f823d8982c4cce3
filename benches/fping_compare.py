#!/usr/bin/env python3
"""popsel's prober against fping, in the latency lab. A benchmark, not a test: run by hand, as root.

    sudo benches/fping_compare.py                                   # 300 addresses, 5 runs each
    sudo benches/fping_compare.py --addresses 40 --runs 3           # small
    sudo benches/fping_compare.py --addresses 3000 --max-pps 1000 --runs 1   # scale

What it does:
1. refuses to run unless root; installs fping from Debian if missing (apt-get install -y fping,
   apt-get update first if that fails);
2. builds `popsel` and the lab example (release), and starts the lab (`examples/lab.rs`): a
   network namespace of its own where 198.18.0.0/15 answers ICMP echo after a delay derived from
   great-circle distance (2 ms + 0.015 ms/km), with a congested, a lossy and a silent PoP; two
   addresses per PoP, so --addresses 300 is 150 PoPs;
3. runs, alternately and inside the namespace, on the same target list (the catalogue's
   addresses, DNS off):
       popsel rank --site S --catalog C --no-dns --count N --interval I --timeout T --max-pps P --output json
       fping -C N -q -p I -i GAP -t T -f targets        (GAP = 1000 / P ms: the same packet rate)
4. prints the medians of wall time and their ratio, the floor ((count - 1) x interval + largest
   RTT), the per-address difference of median RTT between popsel and fping and against the
   emulated delay, and any loss that the lab did not cause (false loss);
5. stops the lab, which deletes the namespace, also on Ctrl-C or an error.

fping -C prints round trips to 3 significant digits (whole milliseconds from 100 ms up), so
the per-address comparison is also given allowing for that rounding; the lab's emulated delay
is the ground truth both tools are compared with too.

Goals (README): 300 addresses, 5 probes at 200 ms: popsel's wall time <= 1.1 x fping's and
<= 1.2 x the floor (+ the timeout, as an address is silent); per-address median RTT within
0.5 ms of fping's. Scale: 3,000 addresses at --max-pps 1000 measure every answering address
with no false loss. Every packet stays inside the lab's namespace.
"""

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def fail(msg, code=1):
    print(f"fping_compare: {msg}", file=sys.stderr)
    sys.exit(code)


def ensure_fping():
    if shutil.which("fping"):
        return
    print("fping is missing: installing it from Debian (apt-get install -y fping)", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "fping"], env=env, **quiet).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, **quiet)
        if subprocess.run(["apt-get", "install", "-y", "fping"], env=env, **quiet).returncode != 0:
            fail("could not install fping (apt-get install -y fping)")
    if not shutil.which("fping"):
        fail("fping is still not on PATH after installing it")


def build():
    print("building popsel and the lab (release)...", flush=True)
    subprocess.run(
        ["cargo", "build", "--release", "--bin", "popsel", "--example", "lab"],
        cwd=REPO,
        check=True,
    )
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    target = Path(json.loads(meta.stdout)["target_directory"]) / "release"
    return target / "popsel", target / "examples" / "lab"


class LabProcess:
    """The lab example, running until stopped (SIGINT), which deletes its namespace."""

    def __init__(self, lab_bin, popsel_bin, workdir, world_args):
        """Starts `lab_bin` with `world_args` (which world, seen from where), writing its
        catalogue, world and stats into `workdir`, and waits until it is ready."""
        self.workdir = workdir
        self.world_path = workdir / "world.json"
        self.stats_path = workdir / "lab-stats.json"
        self.out_path = workdir / "lab.out"
        cmd = [
            str(lab_bin),
            *world_args,
            "--popsel", str(popsel_bin),
            "--write-catalog", str(workdir / "catalog.json"),
            "--write-world", str(self.world_path),
            "--write-stats", str(self.stats_path),
        ]
        self.out = open(self.out_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            text = self.out_path.read_text()
            if "popsel lab ready:" in text:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                fail(f"the lab did not start:\n{text}")
            time.sleep(0.05)
        self.world = json.loads(self.world_path.read_text())
        self.netns = self.world["netns"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        if getattr(self, "netns", None) and self.netns in left:
            subprocess.run(["ip", "netns", "del", self.netns])

    def stats(self):
        if self.stats_path.exists():
            return json.loads(self.stats_path.read_text())
        return None


def binaries(no_build):
    """The release popsel and lab example: built now, or as they are with `no_build`."""
    if no_build:
        target = REPO / "target" / "release"
        return target / "popsel", target / "examples" / "lab"
    return build()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def in_workdir(prefix, keep, body):
    """Runs `body(workdir, labs)` in a fresh work directory, SIGTERM taken as Ctrl-C. Every lab
    `body` appends to `labs` is stopped (its namespace deleted) and the directory removed
    (unless `keep`), however it ends. Returns `body`'s exit code, 130 when interrupted."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    labs = []
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return body(workdir, labs)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        for lab in labs:
            lab.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work directory kept: {workdir}")


def popsel_rank(lab, popsel_bin, args, options):
    """Runs `popsel rank` on the lab's catalogue, inside its namespace, with no DNS, `args`'
    site, interval and timeout, and `options`: its wall time and its JSON document."""
    cmd = [
        "ip", "netns", "exec", lab.netns, str(popsel_bin), "rank",
        "--site", args.site,
        "--catalog", lab.world["catalog"],
        "--no-dns",
        "--interval", f"{args.interval}ms",
        "--timeout", f"{args.timeout}ms",
        "--output", "json",
        *options,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("POPSEL_")}
    start = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - start
    if out.returncode != 0:
        fail(f"popsel rank failed ({out.returncode}): {out.stderr}")
    return wall, json.loads(out.stdout)


def run_popsel(lab, popsel_bin, args):
    options = ["--count", str(args.count), "--max-pps", str(args.max_pps)]
    if args.concurrency:
        options += ["--concurrency", str(args.concurrency)]
    wall, doc = popsel_rank(lab, popsel_bin, args, options)
    per = {}
    for pop in doc["pops"]:
        for e in pop["endpoints"]:
            rtt = e["rtt_ms"]
            loss = e["loss"] if e["loss"] is not None else 1.0
            per[e["ip"]] = {
                "median": rtt["median"] if rtt else None,
                "received": round(args.count * (1.0 - loss)),
            }
    return wall, per


def run_fping(lab, targets_file, args):
    gap = 1000.0 / args.max_pps
    cmd = [
        "ip", "netns", "exec", lab.netns, "fping",
        "-C", str(args.count), "-q",
        "-p", str(args.interval),
        "-i", f"{gap:g}",
        "-t", str(args.timeout),
        "-f", str(targets_file),
    ]
    wall, per = fping_counts(cmd)
    per = {
        ip: {"median": statistics.median(rtts) if rtts else None, "received": len(rtts)}
        for ip, rtts in ((ip, [v for v in values if v is not None]) for ip, values in per.items())
    }
    return wall, per, cmd


def fping_counts(cmd):
    """Runs an `fping -C N -q` command line: its wall time and, per address, the round trip
    of each request in ms (None: no reply)."""
    start = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - start
    per = {}
    for line in out.stderr.splitlines():
        if " : " not in line:
            continue
        ip, _, values = line.partition(" : ")
        per[ip.strip()] = [None if v == "-" else float(v) for v in values.split()]
    if not per:
        fail(f"fping printed no results ({out.returncode}): {out.stderr[:2000]}")
    return wall, per


def expected_received(targets, count, sequence):
    """Replies each address should give per run, run by run, given the lab's even loss: each
    address keeps a credit that starts at 0.5, gains `loss` per request and drops the request
    when it reaches 1."""
    credit = {t["ip"]: 0.5 for t in targets}
    out = []
    for _ in sequence:
        run = {}
        for t in targets:
            ip = t["ip"]
            if t["silent"]:
                run[ip] = 0
                continue
            got = 0
            for _ in range(count):
                credit[ip] += t["loss"]
                if credit[ip] >= 1.0:
                    credit[ip] -= 1.0
                else:
                    got += 1
            run[ip] = got
        out.append(run)
    return out


def pct(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(math.ceil(q * len(s))) - 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--addresses", type=int, default=300, help="target addresses (2 per PoP)")
    ap.add_argument("--runs", type=int, default=5, help="runs of each tool, alternating")
    ap.add_argument("--count", type=int, default=5, help="echo requests per address")
    ap.add_argument("--interval", type=int, default=200, help="ms between requests to one address")
    ap.add_argument("--timeout", type=int, default=1000, help="ms to wait for a reply")
    ap.add_argument("--max-pps", type=int, default=2000, help="packets per second, all addresses")
    ap.add_argument("--concurrency", type=int, default=0, help="popsel --concurrency (0: its default)")
    ap.add_argument("--site", default="41.88,-87.63", help="LAT,LON the world is seen from")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-anomalies", action="store_true", help="no congested/lossy/silent PoP")
    ap.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    if os.geteuid() != 0:
        fail("needs root (network namespace, TUN device, raw ICMP): run it with sudo", 2)
    if args.addresses < 12 and not args.no_anomalies:
        fail("--addresses must be at least 12 with anomalies (6 PoPs)", 2)
    ensure_fping()
    popsel_bin, lab_bin = binaries(args.no_build)

    def body(workdir, labs):
        world_args = ["--site", args.site, "--pops", str(math.ceil(args.addresses / 2)),
                      "--fqdns-per-pop", "2", "--seed", str(args.seed)]
        if args.no_anomalies:
            world_args.append("--no-anomalies")
        lab = LabProcess(lab_bin, popsel_bin, workdir, world_args)
        labs.append(lab)
        targets = lab.world["targets"]
        targets_file = workdir / "targets.txt"
        targets_file.write_text("".join(t["ip"] + "\n" for t in targets))
        silent = [t for t in targets if t["silent"]]
        lossy = [t for t in targets if not t["silent"] and t["loss"] > 0]
        largest = lab.world["largest_rtt_ms"]
        gap = 1000.0 / args.max_pps
        print(
            f"\nlab {lab.netns}: {len(targets)} addresses ({len(silent)} silent, {len(lossy)} lossy), "
            f"site {args.site}, delays up to {largest:.1f} ms"
        )
        print(
            f"count {args.count}, interval {args.interval} ms, timeout {args.timeout} ms, "
            f"max {args.max_pps} pps (fping -i {gap:g} ms)\n"
        )

        walls = {"popsel": [], "fping": []}
        results = {"popsel": [], "fping": []}
        order = []
        fping_cmd = None
        print(f"{'run':>4}  {'tool':<7} {'wall s':>8}  {'answered':>9}")
        for r in range(args.runs):
            tools = ["popsel", "fping"] if r % 2 == 0 else ["fping", "popsel"]
            for tool in tools:
                if tool == "popsel":
                    wall, per = run_popsel(lab, popsel_bin, args)
                else:
                    wall, per, fping_cmd = run_fping(lab, targets_file, args)
                walls[tool].append(wall)
                results[tool].append(per)
                order.append(tool)
                answered = sum(1 for v in per.values() if v["received"] > 0)
                print(f"{r + 1:>4}  {tool:<7} {wall:>8.3f}  {answered:>9}", flush=True)
        print(f"\nfping command: {' '.join(fping_cmd[4:])}")

        lab.stop()
        stats = lab.stats()

        # Loss the lab did not cause.
        want = expected_received(targets, args.count, order)
        false_loss = {"popsel": 0, "fping": 0}
        false_examples = {"popsel": [], "fping": []}
        k = {"popsel": 0, "fping": 0}
        for i, tool in enumerate(order):
            per = results[tool][k[tool]]
            k[tool] += 1
            for t in targets:
                got = per.get(t["ip"], {"received": 0})["received"]
                if got < want[i][t["ip"]]:
                    false_loss[tool] += want[i][t["ip"]] - got
                    if len(false_examples[tool]) < 5:
                        false_examples[tool].append(f"{t['ip']} {got}/{want[i][t['ip']]}")
        total_received = sum(v["received"] for tool in results for per in results[tool] for v in per.values())

        # Per-address median over runs, for each tool.
        def per_address(tool):
            out = {}
            for t in targets:
                meds = [per[t["ip"]]["median"] for per in results[tool] if per.get(t["ip"], {}).get("median") is not None]
                if meds:
                    out[t["ip"]] = statistics.median(meds)
            return out

        pm, fm = per_address("popsel"), per_address("fping")
        emulated = {t["ip"]: t["delay_ms"] for t in targets if not t["silent"]}
        # Jittered addresses (the congested PoP) answer each request with a random delay, so
        # the two tools see different samples: they are compared apart.
        no_jitter = [t["ip"] for t in targets if not t["silent"] and t["jitter_ms"] == 0]
        jittery = [t["ip"] for t in targets if not t["silent"] and t["jitter_ms"] > 0]
        common = [ip for ip in no_jitter if ip in pm and ip in fm]
        diff = [pm[ip] - fm[ip] for ip in common]
        absdiff = [abs(d) for d in diff]
        signed_p = [pm[ip] - emulated[ip] for ip in no_jitter if ip in pm]
        signed_f = [fm[ip] - emulated[ip] for ip in no_jitter if ip in fm]
        err_p = [abs(e) for e in signed_p]
        err_f = [abs(e) for e in signed_f]

        wp, wf = statistics.median(walls["popsel"]), statistics.median(walls["fping"])
        floor = (args.count - 1) * args.interval / 1000 + largest / 1000
        bound = 1.2 * floor + (args.timeout / 1000 if silent else 0)
        tight = (args.count - 1) * args.interval / 1000 + max(largest, args.timeout if silent else 0) / 1000
        within = sum(1 for d in absdiff if d <= 0.5)

        # fping -C prints 3 significant digits: whole ms from 100 ms up, 0.1 ms from 10 ms.
        def fping_step(v):
            return 1.0 if v >= 100 else 0.1 if v >= 10 else 0.01

        within_res = sum(1 for ip in common if abs(pm[ip] - fm[ip]) <= 0.5 + fping_step(fm[ip]) / 2)
        under_100 = [abs(pm[ip] - fm[ip]) for ip in common if fm[ip] < 100]

        def verdict(ok):
            return "ok" if ok else "MISSED"

        print("\n== wall time (median of runs)")
        print(f"  popsel {wp:.3f} s   fping {wf:.3f} s   popsel/fping {wp / wf:.3f}   (goal <= 1.1: {verdict(wp <= 1.1 * wf)})")
        print(f"  floor = (count - 1) x interval + largest RTT = {floor:.3f} s   popsel/floor {wp / floor:.3f}   fping/floor {wf / floor:.3f}")
        pacing = len(targets) * args.count / args.max_pps + largest / 1000
        # The floor goal is for runs the packet-rate cap does not dominate (300 addresses).
        floor_verdict = verdict(wp <= bound) if pacing <= tight else "n/a, the packet-rate cap dominates"
        if silent:
            print(
                f"  goal 1.2 x floor + timeout (a silent address) = {bound:.3f} s: {floor_verdict}; "
                f"floor with the silent address's timeout = {tight:.3f} s, popsel/that {wp / tight:.3f}, fping/that {wf / tight:.3f}"
            )
        else:
            print(f"  goal 1.2 x floor = {bound:.3f} s: {floor_verdict}")
        if pacing > tight:
            print(
                f"  the packet-rate cap dominates: addresses x count / max-pps + largest RTT = {pacing:.3f} s, "
                f"popsel/that {wp / pacing:.3f}, fping/that {wf / pacing:.3f}"
            )
        print(f"  runs: popsel {' '.join(f'{w:.3f}' for w in walls['popsel'])}; fping {' '.join(f'{w:.3f}' for w in walls['fping'])}")

        print("\n== per-address median RTT, popsel - fping (medians over runs)")
        if diff:
            print(
                f"  {len(common)} addresses without jitter: median {statistics.median(diff):+.3f} ms, mean {statistics.mean(diff):+.3f} ms, "
                f"|diff| p95 {pct(absdiff, 0.95):.3f} ms, max {max(absdiff):.3f} ms; "
                f"within 0.5 ms: {within}/{len(common)} (goal all: {verdict(within == len(common))})"
            )
            print(
                f"  fping prints whole ms from 100 ms up (0.1 ms from 10 ms): within 0.5 ms plus half its step: "
                f"{within_res}/{len(common)}; below 100 ms: |diff| max {max(under_100, default=0):.3f} ms "
                f"over {len(under_100)} addresses"
            )
        jd = [abs(pm[ip] - fm[ip]) for ip in jittery if ip in pm and ip in fm]
        if jd:
            print(f"  {len(jd)} jittered addresses (random samples, not a goal): |diff| max {max(jd):.3f} ms")
        print("  against the emulated delay (addresses without jitter):")
        if err_p:
            print(
                f"    popsel |error| median {statistics.median(err_p):.3f} ms, p95 {pct(err_p, 0.95):.3f}, "
                f"max {max(err_p):.3f}; signed {min(signed_p):+.3f} to {max(signed_p):+.3f}"
            )
        if err_f:
            print(
                f"    fping  |error| median {statistics.median(err_f):.3f} ms, p95 {pct(err_f, 0.95):.3f}, "
                f"max {max(err_f):.3f}; signed {min(signed_f):+.3f} to {max(signed_f):+.3f}"
            )

        print("\n== loss the lab did not cause (false loss), all runs")
        for tool in ("popsel", "fping"):
            ex = ", ".join(false_examples[tool])
            print(f"  {tool}: {false_loss[tool]} replies{(' e.g. ' + ex) if ex else ''}")
        answering = len(targets) - len(silent)
        measured = sum(1 for t in targets if not t["silent"] and all(
            per.get(t["ip"], {}).get("received", 0) > 0 for per in results["popsel"]))
        print(f"  popsel measured {measured}/{answering} answering addresses in every run")
        if stats:
            sent = stats["replies_sent"]
            print(
                f"  the lab sent {sent} replies (scheduled {sum(a['replies'] for a in stats['addresses'])}), "
                f"the probers counted {total_received}; replies left {stats['late_us_mean']} us late on average, "
                f"{stats['late_us_max']} us at most"
            )
        return 0

    return in_workdir("popsel-fping-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
