#!/usr/bin/python3
"""Runs wfm_bench and the PyTorch anchor back to back, alternating, and
prints one table of medians and ratios.

    /usr/bin/python3 bench/compare_with_anchor.py [--rounds R] [--threads 1,2]
        [--busy] [--only sample,train,...] [--bench build/bench/wfm_bench]
        [--anchor ../shared/anchors/bench_anchor.py] [--json FILE]

Every case runs R rounds of (wfm_bench, anchor) with the same flags and
thread count (the *-default cases: wfm_bench at its default solver and steps,
the anchor at 100 steps); the table gives each side's median throughput over the rounds,
their ratio, and the 1-minute load average seen before each run (others'
work on the machine makes wall-clock figures noisy; alternating keeps both
sides under the same conditions). --busy runs a busy loop
(`sh -c 'while :; do :; done'`) beside every run. Thread counts are the
benchmarks' --threads values; wfm_bench also runs --threads 0 (its default
policy) when 0 is listed (the anchor then gets the count the policy chose).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name -> (subcommand and flags, throughput key, unit[, the anchor's flags when
# they differ]). The *-default cases run wfm_bench with its default solver and
# steps (the family's sampling defaults) against the anchor's 100 steps.
CASES = {
    "sinkhorn": (["sinkhorn", "--repeats", "15"], "seconds_per_batch", "batches/s"),
    "train": (["train", "--steps", "10"], "steps_per_sec", "steps/s"),
    "sample": (["sample", "--repeats", "3", "--steps", "100"], "samples_per_sec", "samples/s"),
    "sample-ref": (["sample", "--emb", "512", "--layers", "6", "--mlp", "512", "--heads", "4",
                    "--points", "64", "--steps", "20", "--repeats", "2"],
                   "samples_per_sec", "samples/s"),
    "sample-default": (["sample", "--repeats", "3"], "samples_per_sec", "samples/s",
                       ["sample", "--repeats", "3", "--steps", "100"]),
    "train-gaussian": (["train", "--gaussian", "--steps", "20"], "steps_per_sec", "steps/s"),
    "sample-gaussian": (["sample", "--gaussian", "--repeats", "3", "--steps", "100"],
                        "samples_per_sec", "samples/s"),
    "sample-gaussian-default": (["sample", "--gaussian", "--repeats", "3"], "samples_per_sec",
                                "samples/s",
                                ["sample", "--gaussian", "--repeats", "3", "--steps", "100"]),
}

def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])


def throughput(record, key):
    if key == "seconds_per_batch":  # the anchor calls it torch_sec_per_batch
        return 1.0 / record.get(key, record.get("torch_sec_per_batch"))
    return record[key]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", default="1,0", help="comma-separated; 0 = wfm's default")
    p.add_argument("--only", default=",".join(CASES), help="cases: " + ",".join(CASES))
    p.add_argument("--busy", action="store_true", help="a busy loop beside every run")
    p.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "wfm_bench"))
    p.add_argument("--anchor", default=os.path.join(ROOT, "..", "shared", "anchors",
                                                    "bench_anchor.py"))
    p.add_argument("--json", help="also write every run's records to this file")
    args = p.parse_args()

    busy = subprocess.Popen(["sh", "-c", "while :; do :; done"]) if args.busy else None
    rows, records = [], []
    try:
        for case in args.only.split(","):
            flags, key, unit = CASES[case][:3]
            anchor_flags = CASES[case][3] if len(CASES[case]) > 3 else flags
            for threads in [int(t) for t in args.threads.split(",")]:
                ours, anchor, loads, used = [], [], [], threads
                for _ in range(args.rounds):
                    rec = run_json([args.bench] + flags + ["--threads", str(threads)])
                    used = rec["threads"]
                    loads.append(rec["loadavg_1min"])
                    ours.append(throughput(rec, key))
                    ref = run_json(["/usr/bin/python3", args.anchor] + anchor_flags + ["--no-pot"] *
                                   (case == "sinkhorn") + ["--threads", str(used)])
                    loads.append(ref["loadavg_1min_at_start"])
                    anchor.append(throughput(ref, key))
                    records.append({"case": case, "threads": threads, "wfm": rec,
                                    "anchor": ref})
                mo, ma = statistics.median(ours), statistics.median(anchor)
                rows.append((case, "default" if threads == 0 else str(threads), used, unit, mo,
                             ma, mo / ma, min(loads), max(loads)))
    finally:
        if busy is not None:
            busy.kill()
    print(f"{'case':16} {'--threads':9} {'used':>4} {'wfm':>10} {'anchor':>10} {'ratio':>6}"
          f"  unit        load (min-max){'  busy loop' if args.busy else ''}")
    for case, label, used, unit, mo, ma, ratio, lo, hi in rows:
        print(f"{case:16} {label:9} {used:>4} {mo:10.3f} {ma:10.3f} {ratio:6.2f}  {unit:11} "
              f"{lo:.1f}-{hi:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f)


if __name__ == "__main__":
    main()
