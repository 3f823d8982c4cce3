#!/usr/bin/env python3
"""Adaptive probing against fixed probing and fping, in the latency lab (issue 14). A benchmark,
not a test: run by hand, as root.

    sudo benches/rank_adaptive.py                     # 100 runs
    sudo benches/rank_adaptive.py --runs 10 --json /tmp/rank-adaptive.json

The world (`examples/lab.rs --world lossy-neighbour`, src/lab/world.rs
`World::lossy_neighbour`): from one site, 45 PoPs of the sample catalogue's cities, two
addresses each; the best PoP; a PoP under 1 ms behind it whose two addresses lose 40% of echo
requests at random (each request dropped independently, from a seed printed at the lab's start);
two PoPs within 1 ms of each other just behind (+2 ms, +2.8 ms); the rest at least 10 ms behind
and 2 ms apart; one silent PoP; jitter 0.1 to 0.3 ms on every address. The truth: the top 3 by
expected score (median + 500 x loss + 0.2 x jitter): the best, then the close pair; the lossy
PoP is 200 ms out.

Each run, in an order rotated from run to run, inside the lab's namespace:
    popsel rank --no-dns --catalog C --site S --interval 200ms --timeout 1s --output json
        (adaptive probing, the default)
    the same with --probes fixed --count 5
    fping -C 5 -q -p 200 -t 1000 -i GAP -f targets
        (GAP = 1000 / popsel's --max-pps 2000 = 0.5 ms, popsel's packet rate, as
        benches/fping_compare.py does; fping's own default, 10 ms, paces 90 addresses x 5
        requests over 4.5 s: --fping-interval 10 runs it so)
fping's top 3 is computed here with popsel's score (median + 500 x loss + 0.2 x min(jitter,
50), jitter the mean absolute difference of consecutive round trips, ties by distance) from
its per-address results.

Targets (issue 14): the lossy PoP never in adaptive's top 3 (fixed 5 is shown failing often);
adaptive's top 3 equals the truth in >= 99% of runs; adaptive's echo requests <= 0.5 x 5 per
address; adaptive's median wall time <= fping's. The top 3 is compared in order.

One lab serves every run (random loss keeps drawing). Other people build on this machine: the
load average is printed, and the ratios are taken within the run.
"""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

# Importing fping_compare must leave no __pycache__ in the repository.
sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import fping_compare as fc  # noqa: E402  (lab start/stop, work directory, fping install, build, percentiles)

METHODS = ("adaptive", "fixed5", "fping")
LABELS = {
    "adaptive": "popsel adaptive",
    "fixed5": "popsel fixed 5",
    "fping": "fping -C 5 (popsel's score)",
}
LOSS_PENALTY_MS = 500.0
JITTER_WEIGHT = 0.2
JITTER_CAP_MS = 50.0


def fail(msg, code=1):
    print(f"rank_adaptive: {msg}", file=sys.stderr)
    sys.exit(code)


def pop_key(p):
    return (p["city"], p["provider"])


def run_popsel(lab, popsel_bin, args, fixed):
    options = ["--probes", "fixed", "--count", "5"] if fixed else []
    wall, doc = fc.popsel_rank(lab, popsel_bin, args, options)
    pops = sorted(doc["pops"], key=lambda p: p["rank"])
    endpoints = [e for p in pops for e in p["endpoints"]]
    sent = sum(e["sent"] or 0 for e in endpoints)
    return {
        "wall_s": wall,
        "top3": [pop_key(p) for p in pops[:3]],
        "requests": sent,
        "addresses": len(endpoints),
        # Requests to the lossy PoP's addresses, and the replies: how it was found out.
        "endpoints": {e["ip"]: {"sent": e["sent"], "received": e["received"]} for e in endpoints},
    }


def fping_rank(per_address, targets, expected):
    """The top 3 of fping's results, scored as popsel scores: per address median RTT +
    500 ms x loss + 0.2 x min(jitter, 50 ms), jitter the mean absolute difference of
    consecutive round trips; a PoP as good as its best address; ties by distance, country,
    city, provider; PoPs without a reply left out."""
    distance = {pop_key(e): (e["distance_km"], e["country"]) for e in expected}
    best = {}
    for t in targets:
        rtts = per_address.get(t["ip"])
        if not rtts or not [r for r in rtts if r is not None]:
            continue
        got = [r for r in rtts if r is not None]
        loss = 1.0 - len(got) / len(rtts)
        jitter = statistics.mean(abs(a - b) for a, b in zip(got, got[1:])) if len(got) > 1 else 0.0
        score = statistics.median(got) + LOSS_PENALTY_MS * loss + JITTER_WEIGHT * min(jitter, JITTER_CAP_MS)
        key = pop_key(t["pop"])
        best[key] = min(score, best.get(key, float("inf")))
    order = sorted(best, key=lambda k: (best[k], distance[k][0], distance[k][1], k[0], k[1]))
    return order[:3]


def run_fping(lab, targets_file, args):
    cmd = [
        "ip", "netns", "exec", lab.netns, "fping",
        "-C", "5", "-q",
        "-p", str(args.interval),
        "-t", str(args.timeout),
    ]
    if args.fping_interval > 0:
        cmd += ["-i", f"{args.fping_interval:g}"]
    cmd += ["-f", str(targets_file)]
    wall, per = fc.fping_counts(cmd)
    return {"wall_s": wall, "per_address": per, "requests": sum(len(v) for v in per.values()),
            "addresses": len(per)}, cmd


def loadavg():
    try:
        return Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return ["?", "?", "?"]


def summarize(results, truth, lossy):
    rows = {}
    for m in METHODS:
        runs = results[m]
        walls = [r["wall_s"] for r in runs]
        rows[m] = {
            "runs": len(runs),
            "top3_truth": sum(r["top3"] == truth for r in runs),
            "top3_set": sum(set(r["top3"]) == set(truth) for r in runs),
            "lossy_in_top3": sum(lossy in r["top3"] for r in runs),
            "requests_per_address": sum(r["requests"] for r in runs) / max(1, sum(r["addresses"] for r in runs)),
            "wall_median": statistics.median(walls),
            "wall_p90": fc.pct(walls, 0.90),
        }
    return rows


def print_table(rows):
    head = f"{'method':<28} {'runs':>5} {'top3=truth':>11} {'(as a set)':>10} {'lossy in top3':>14} {'req/addr':>9} {'wall med s':>11} {'wall p90 s':>11}"
    print(head)
    print("-" * len(head))
    for m in METHODS:
        r = rows[m]
        n = max(1, r["runs"])
        print(
            f"{LABELS[m]:<28} {r['runs']:>5} {100.0 * r['top3_truth'] / n:>10.1f}% {100.0 * r['top3_set'] / n:>9.1f}% "
            f"{r['lossy_in_top3']:>14} {r['requests_per_address']:>9.2f} {r['wall_median']:>11.3f} {r['wall_p90']:>11.3f}"
        )


def verdicts(rows):
    a, f = rows["adaptive"], rows["fping"]
    n = max(1, a["runs"])
    return [
        ("lossy PoP never in adaptive's top 3", a["lossy_in_top3"] == 0, f"{a['lossy_in_top3']} of {a['runs']} runs"),
        ("adaptive's top 3 = truth in >= 99% of runs", a["top3_truth"] >= 0.99 * a["runs"],
         f"{100.0 * a['top3_truth'] / n:.1f}%"),
        ("adaptive's requests per address <= 0.5 x 5", a["requests_per_address"] <= 2.5,
         f"{a['requests_per_address']:.2f}"),
        ("adaptive's median wall <= fping's", a["wall_median"] <= f["wall_median"],
         f"{a['wall_median']:.3f} s vs {f['wall_median']:.3f} s ({a['wall_median'] / f['wall_median']:.3f}x)"),
    ]


def lossy_shown(results, lossy_ips):
    """How often fixed 5 saw each of the lossy PoP's addresses lose nothing (0.6^5 = 7.8%
    expected with Bernoulli loss)."""
    runs = results["fixed5"]
    clean = sum(1 for r in runs for ip in lossy_ips
                if r["endpoints"].get(ip, {}).get("received") == r["endpoints"].get(ip, {}).get("sent"))
    return clean, len(runs) * len(lossy_ips)


def adaptive_breakdown(results, lossy_ips):
    """Adaptive's wall time by how many of the lossy PoP's addresses it followed up (sent more
    than 3 requests): each such address stays a contender until its first losses time out, and
    only then does the bar move on to the next PoP."""
    by = {}
    for r in results["adaptive"]:
        followed = sum(1 for ip in lossy_ips if (r["endpoints"].get(ip, {}).get("sent") or 0) > 3)
        by.setdefault(followed, []).append(r["wall_s"])
    return {k: (len(v), statistics.median(v)) for k, v in sorted(by.items())}


def run_all(lab, popsel_bin, targets_file, args):
    results = {m: [] for m in METHODS}
    fping_cmd = None
    print(f"{'run':>4}  {'method':<9} {'wall s':>7}  {'top 3'}", flush=True)
    for r in range(args.runs):
        k = r % len(METHODS)
        for m in METHODS[k:] + METHODS[:k]:
            if m == "fping":
                res, fping_cmd = run_fping(lab, targets_file, args)
                res["top3"] = fping_rank(res["per_address"], lab.world["targets"], lab.world["expected"])
            else:
                res = run_popsel(lab, popsel_bin, args, fixed=(m == "fixed5"))
            res["run"], res["load"] = r + 1, loadavg()[0]
            results[m].append(res)
            if args.verbose or (r + 1) % 10 == 0 or r == 0:
                top = ", ".join(f"{c.split(',')[0]}/{p}" for c, p in res["top3"])
                print(f"{r + 1:>4}  {m:<9} {res['wall_s']:>7.3f}  {top}", flush=True)
    return results, fping_cmd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100, help="runs of each method, in rotated order")
    ap.add_argument("--pops", type=int, default=45, help="PoPs of the world (two addresses each)")
    ap.add_argument("--interval", type=int, default=200, help="ms between requests to one address")
    ap.add_argument("--timeout", type=int, default=1000, help="ms to wait for a reply")
    ap.add_argument("--fping-interval", type=float, default=0.5,
                    help="fping -i, ms between any two requests (0.5: popsel's default 2000 pps; 0: fping's default, 10)")
    ap.add_argument("--site", default="41.88,-87.63", help="LAT,LON the world is seen from")
    ap.add_argument("--seed", type=int, default=1, help="seed of the world")
    ap.add_argument("--loss-seed", type=int, help="seed of the random losses (default: the lab picks one, printed)")
    ap.add_argument("--json", type=Path, help="write the raw results here")
    ap.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--verbose", action="store_true", help="print every run")
    args = ap.parse_args()

    if os.geteuid() != 0:
        fail("needs root (network namespace, TUN device, raw ICMP): run it with sudo", 2)
    if args.runs < 1 or args.pops < 6:
        fail("--runs must be at least 1 and --pops at least 6", 2)
    fc.ensure_fping()
    popsel_bin, lab_bin = fc.binaries(args.no_build)

    def body(workdir, labs):
        load_before = loadavg()
        world_args = ["--world", "lossy-neighbour", "--site", args.site, "--pops", str(args.pops),
                      "--seed", str(args.seed)]
        if args.loss_seed is not None:
            world_args += ["--loss-seed", str(args.loss_seed)]
        lab = fc.LabProcess(lab_bin, popsel_bin, workdir, world_args)
        labs.append(lab)
        world = lab.world
        roles = world["lossy_neighbour"]
        truth = [pop_key(e) for e in world["expected"][:3]]
        lossy = pop_key(roles["lossy"])
        lossy_ips = [t["ip"] for t in world["targets"] if t.get("pop") and pop_key(t["pop"]) == lossy]
        targets_file = workdir / "targets.txt"
        targets_file.write_text("".join(t["ip"] + "\n" for t in world["targets"]))
        scores = {pop_key(e): e["score"] for e in world["expected"]}
        print(f"\nlab {lab.netns}: {world['pops']} PoPs, {len(world['targets'])} addresses, site {args.site}, "
              f"world seed {args.seed}, {world['loss_mode']} loss, loss seed {world['loss_seed']}")
        for name, key in [("best", pop_key(roles["best"])), ("lossy (40% each address)", lossy),
                          ("close pair", pop_key(roles["close"][0])), ("close pair", pop_key(roles["close"][1])),
                          ("silent", pop_key(roles["silent"]))]:
            s = scores[key]
            print(f"  {name:<25} {key[0]} / {key[1]}: expected score {'-' if s is None else f'{s:.3f} ms'}")
        print(f"  truth (top 3 by expected score): {' > '.join(c for c, _ in truth)}\n")

        results, fping_cmd = run_all(lab, popsel_bin, targets_file, args)
        load_after = loadavg()
        lab.stop()
        stats = lab.stats()

        rows = summarize(results, truth, lossy)
        print(f"\n== {args.runs} runs; fping: {' '.join(fping_cmd[4:])}")
        print("   fping's top 3 is computed here with popsel's score (median + 500 x loss + 0.2 x min(jitter, 50)) "
              "from its per-address round trips\n")
        print_table(rows)
        print()
        ok_all = True
        for what, ok, value in verdicts(rows):
            ok_all &= ok
            print(f"  {'PASS' if ok else 'FAIL'}  {what}: {value}")
        clean, of = lossy_shown(results, lossy_ips)
        print(f"\n  fixed 5 saw a lossy address lose nothing {clean} times of {of} ({100.0 * clean / max(1, of):.1f}%; "
              f"0.6^5 = 7.8% expected)")
        parts = [f"{k} of 2: {n} runs, wall median {w:.3f} s" for k, (n, w) in adaptive_breakdown(results, lossy_ips).items()]
        print(f"  adaptive, by the lossy PoP's addresses it followed up: {'; '.join(parts)}")
        if stats:
            lost = {a["ip"]: a for a in stats["addresses"] if a["ip"] in lossy_ips}
            req = sum(a["requests"] for a in lost.values())
            rep = sum(a["replies"] for a in lost.values())
            print(f"  the lab dropped {req - rep} of {req} requests to the lossy PoP ({100.0 * (req - rep) / max(1, req):.1f}%); "
                  f"replies left {stats['late_us_mean']} us late on average, {stats['late_us_max']} us at most")
        print(f"  load average (1, 5, 15 min): before {' '.join(load_before)}, after {' '.join(load_after)}; "
              f"{os.cpu_count()} CPUs")
        if args.json:
            doc = {
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "loss_seed": world["loss_seed"], "truth": truth, "lossy": lossy,
                "fping_command": fping_cmd[4:], "load_before": load_before, "load_after": load_after,
                "summary": rows, "targets": [[w, ok, v] for w, ok, v in verdicts(rows)],
                "runs": results,
            }
            args.json.write_text(json.dumps(doc, indent=1))
            print(f"  raw results: {args.json}")
        return 0 if ok_all else 1

    return fc.in_workdir("popsel-rank-adaptive-", args.keep, body)


if __name__ == "__main__":
    sys.exit(main())
