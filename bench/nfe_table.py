#!/usr/bin/python3
"""Markdown tables from `wfm_bench nfe` JSON lines (README's sampling table).

    build/bench/wfm_bench nfe > nfe.json
    /usr/bin/python3 bench/nfe_table.py nfe.json [--settings "euler 1,midpoint 1,..."]

One table per family: a row per data set and setting (solver and steps, or
adaptive and rtol): NFE, each metric's mean ± sd over seeds, samples/s, and
whether the setting is within seed noise of midpoint 100 (wfm_bench nfe's
rules, unpaired and paired); then the choice records.
"""

import argparse
import json


def name(r):
    return f"{r['solver']} rtol {r['rtol']:g}" if r["rtol"] is not None else \
        f"{r['solver']} {r['steps']}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("json")
    p.add_argument("--settings", help="comma-separated setting names to keep (default: all)")
    p.add_argument("--family", help="pointcloud or gaussian (default: both)")
    args = p.parse_args()
    keep = set(args.settings.split(",")) if args.settings else None
    rows, choices = [], []
    with open(args.json) as f:
        for line in f:
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r.get("cmd") != "nfe":
                continue
            (rows if r["record"] == "row" else choices).append(r)
    for family in [args.family] if args.family else ["pointcloud", "gaussian"]:
        fam = [r for r in rows if r["family"] == family and (keep is None or name(r) in keep)]
        if not fam:
            continue
        order = ["cd_1nna", "cd_mmd", "cd_cov", "emd_1nna", "emd_mmd", "emd_cov", "bw_1nna",
                 "bw_mmd", "bw_cov"]
        metrics = [m for m in order if m in fam[0]["metrics"]]
        paired = all("within_noise_paired" in r for r in fam)  # older records: unpaired only
        print("\n| data set | setting | NFE | " + " | ".join(metrics) +
              " | samples/s | within noise" + (" (unpaired, paired) |" if paired else " |"))
        print("|---" * (len(metrics) + 5) + "|")
        for r in fam:
            cells = [f"{r['metrics'][m]['mean']:.3f} ± {r['metrics'][m]['sd']:.3f}"
                     for m in metrics]
            print(f"| {r['dataset']} | {name(r)} | {r['nfe']:g} | " + " | ".join(cells) +
                  f" | {r['samples_per_sec']:.0f} | {'yes' if r['within_noise'] else 'no'}" +
                  (f", {'yes' if r['within_noise_paired'] else 'no'}" if paired else "") + " |")
    for c in choices:
        if args.family and c["family"] != args.family:
            continue
        setting = f"{c['solver']} rtol {c['rtol']:g}" if c["rtol"] is not None else \
            f"{c['solver']} {c['steps']}"
        print(f"\nchoice {c['family']}: {setting} (NFE {c['nfe']:g}; {', '.join(c['datasets'])}; "
              f"{c['seeds']} seeds; threads {c['threads']}; rule {c['rule']})")


if __name__ == "__main__":
    main()
