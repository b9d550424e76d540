#!/usr/bin/python3
"""Quality harness: held-out sample quality of wfm training configurations,
over seeds, against the reference port (../shared/anchors).

    /usr/bin/python3 bench/quality/quality.py run --data letters,cellstates \\
        --configs ref,default --seeds 1,2,3 [--steps 3000] [--anchor]
    /usr/bin/python3 bench/quality/quality.py table [--data ...] [--configs ...]
    /usr/bin/python3 bench/quality/quality.py baselines

`baselines` prints the tissue niches' composition distance of the cell
classifier on real held-out niches (the floor) and of a generator that
ignores the centre's type.

`run` starts a local wfm-server (build/server/wfm-server, one compute thread,
a temporary data folder), uploads each development data set (datasets.py:
letters, shapes3d, cellstates, tissue — niches as point clouds — and
tissue-gauss — the same niches as Gaussian cell states), trains every
configuration with every seed for the same number of steps, samples as many
items as the held-out part holds (100 midpoint steps, the run's seed) and
computes the held-out metrics (metrics.py): 1-NNA, MMD and COV under the
Chamfer and EMD distances (point clouds) or the squared Bures–Wasserstein
distance (Gaussians), and for tissue niches the per-centre-type composition
distance. The cost of a run is the server's process CPU time (user + system,
from /proc) over the training job. `--anchor` also trains the reference port
(refwfm, PyTorch, one thread) on the same data with the same seeds and the
reference's settings at the network size of `ref`; its cost is its own
process CPU time over training.

Configurations are named sets of training options (the `wfm train` flags
with '_' for '-'): `ref` sets the reference's settings explicitly, `default`
sets nothing (the server's defaults), and NAME=key=value,... on the command
line defines another one on top of `ref` (`--configs 'ref;ema=ema=0.999,warmup_steps=100'`: ';' separates
configurations, ',' options), or
on top of `default` when NAME starts with `default+`. Each finished run is
stored as JSON under --results (default build/quality) and reused by later
calls with the same data, configuration, steps and seed, so tables can grow
without repeating work. Run it under `nice`, next to other work: CPU time,
not wall time, is the cost measure, and steps (not seconds) bound the runs
that are compared.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import datasets  # noqa: E402
import metrics  # noqa: E402

DATASETS = ["letters", "shapes3d", "cellstates", "tissue", "tissue-gauss"]
FAMILY = {"letters": "pointcloud", "shapes3d": "pointcloud", "cellstates": "gaussian",
          "tissue": "pointcloud", "tissue-gauss": "gaussian"}
DATA_SEED = 1       # the data sets are fixed; seeds vary training and sampling
NICHE_SIZE = 8
EVAL_ITEMS = 240    # held-out items compared (and samples generated)
SAMPLE_STEPS = 100  # midpoint / Euler steps of every sampler

# The reference's settings at the server's original network size (width 128,
# 3 blocks, MLP 256): what wfm did before this harness existed.
REF_COMMON = dict(emb=128, layers=3, mlp=256, batch=16, lr=2e-4, decay_steps=1000,
                  decay_rate=0.998, grad_clip=0.0)
REF = {
    "pointcloud": dict(REF_COMMON, heads=4, dropout=0.1, noise="chol_normal", df_scale=2.0),
    "gaussian": dict(REF_COMMON, noise="wishart", df_scale=5.0, mean_scale=1.0, cov_scale=1.0),
}
# Options added later that `ref` must pin to the reference's behaviour once
# they exist (ignored by servers that do not know them).
REF_NEW = {"ema": 0.0, "t_dist": "uniform", "warmup_steps": 0, "lr_schedule": "exponential",
           "weight_decay": 0.0, "feature_transform": "none"}


def parse_configs(text):
    """{name: (base, {option: value})} from 'ref,default;NAME=k=v,k=v;...':
    configurations are separated by ';' (plain names also by ',')."""
    out = {}
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            for name in item.split(","):
                out[name.strip()] = ("default" if name.strip() == "default" else "ref", {})
            continue
        name, rest = item.split("=", 1)
        options = {}
        for kv in rest.split(","):
            k, v = kv.split("=", 1)
            options[k.strip().replace("-", "_")] = _value(v.strip())
        out[name.strip()] = ("default" if name.startswith("default") else "ref", options)
    return out


def _value(text):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"on": True, "off": False}.get(text, text)


# ------------------------------------------------------------------- data

class Data:
    """One development data set: what is uploaded and what is held out."""

    def __init__(self, name):
        self.name = name
        self.family = FAMILY[name]
        self.cache = {}  # the held-out set's own distances
        rng = np.random.default_rng(99)
        if name == "letters":
            self.train, self.labels = datasets.letters(DATA_SEED, 720)
            held, _ = datasets.letters(DATA_SEED + 1000, EVAL_ITEMS)
            self.held = held
        elif name == "shapes3d":
            self.train, self.labels = datasets.shapes3d(DATA_SEED, 720), None
            self.held = datasets.shapes3d(DATA_SEED + 1000, EVAL_ITEMS)
        elif name == "cellstates":
            self.means, self.covs = datasets.cellstates(DATA_SEED, 800)
            self.held_means, self.held_covs = datasets.cellstates(DATA_SEED + 1000, EVAL_ITEMS)
            self.labels = None
        else:  # tissue, tissue-gauss
            self.cells, held_cells = datasets.tissue(DATA_SEED)
            nb = datasets.niches(held_cells["coords"], held_cells["samples"], NICHE_SIZE)
            self.held_types_all = held_cells["types"]
            self.held_neighbour_types = held_cells["types"][nb]  # [n, k]
            pick = np.sort(rng.choice(len(nb), EVAL_ITEMS, replace=False))
            self.held_centres = pick
            self.held_niche_counts = held_cells["counts"][nb[pick]]  # [E, k, G]
            self.held = [c for c in self.held_niche_counts]
            self.held_centre_types = held_cells["types"][pick]
            self.typer = metrics.CellTyper(self.cells["counts"], self.cells["types"])
            if name == "tissue-gauss":
                ridge = 1e-3 * self.cells["counts"].var(0).mean()
                self.held_means, self.held_covs = _niche_gaussians(self.held_niche_counts, ridge)

    # What the reference port trains on.
    def anchor_items(self):
        if self.name in ("letters", "shapes3d"):
            return self.train, self.labels
        if self.name == "cellstates":
            return (self.means, self.covs), None
        nb = datasets.niches(self.cells["coords"], self.cells["samples"], NICHE_SIZE)
        counts = self.cells["counts"][nb]
        labels = np.array(datasets.TISSUE_TYPES)[self.cells["types"]]
        if self.name == "tissue":
            return list(counts), labels
        ridge = 1e-3 * self.cells["counts"].var(0).mean()
        return _niche_gaussians(counts, ridge), None

    def upload(self, client, name):
        if self.name in ("letters", "shapes3d"):
            client.upload_point_clouds(name, self.train, labels=self.labels, overwrite=True)
        elif self.name == "cellstates":
            client.upload_gaussians(name, self.means, self.covs, overwrite=True)
        else:
            client.upload_cells(name, self.cells["counts"], self.cells["coords"],
                                sample_ids=list(self.cells["samples"]),
                                labels=list(np.array(datasets.TISSUE_TYPES)[self.cells["types"]]),
                                overwrite=True)

    def sample_plan(self):
        """(label, count) pairs to generate: tissue follows the held-out
        centre types; other data sets one unlabelled request."""
        if self.name != "tissue":
            return [("", EVAL_ITEMS)]
        counts = np.bincount(self.held_centre_types, minlength=len(datasets.TISSUE_TYPES))
        return [(datasets.TISSUE_TYPES[t], int(n)) for t, n in enumerate(counts) if n > 0]

    def evaluate(self, generated):
        """Metrics of generated items: clouds [(label, cloud)] or (means, covs)."""
        if self.family == "gaussian":
            means, covs = generated
            return metrics.gaussian_metrics(means, covs, self.held_means, self.held_covs)
        clouds = [c for _, c in generated]
        res = metrics.pointcloud_metrics(clouds, self.held, cache=self.cache)
        if self.name == "tissue":
            by_type = {}
            for label, cloud in generated:
                t = datasets.TISSUE_TYPES.index(label)
                by_type.setdefault(t, []).append(self.typer(cloud))
            real = {t: self.held_neighbour_types[self.held_types_all == t]
                    for t in range(len(datasets.TISSUE_TYPES))}
            res["composition_tv"] = metrics.composition_distance(
                {t: np.stack(v) for t, v in by_type.items()}, real, len(datasets.TISSUE_TYPES))
        return res

    def baselines(self):
        """Composition distance of the classifier on real held-out niches
        (the floor) and of a model that ignores the centre's type."""
        n = len(datasets.TISSUE_TYPES)
        real = {t: self.held_neighbour_types[self.held_types_all == t] for t in range(n)}
        typed = {t: self.typer(self.held_niche_counts[self.held_centre_types == t].reshape(
            -1, self.held_niche_counts.shape[-1])) for t in range(n)}
        pooled = self.held_neighbour_types
        return {"classifier_floor": metrics.composition_distance(typed, real, n),
                "ignores_condition": metrics.composition_distance(
                    {t: pooled for t in range(n)}, real, n)}


def _niche_gaussians(niche_counts, ridge):
    x = np.asarray(niche_counts, np.float64)
    means = x.mean(1)
    c = x - means[:, None, :]
    covs = np.einsum("nki,nkj->nij", c, c) / (x.shape[1] - 1) + ridge * np.eye(x.shape[2])
    return means, covs


# ----------------------------------------------------------------- server

class Server:
    def __init__(self, binary, threads):
        self.dir = tempfile.mkdtemp(prefix="wfm-quality-")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--metrics-listen", "", "--data-dir",
             os.path.join(self.dir, "data"), "--threads", str(threads)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in self.proc.stdout:
            m = re.search(r"wfm-server ready: grpc (\S+),", line)
            if m:
                self.address = m.group(1)
                break
        else:
            raise SystemExit(f"wfm-server exited: {self.proc.wait()}")
        # Keep draining the log so the server never blocks on a full pipe.
        import threading
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        shutil.rmtree(self.dir, ignore_errors=True)


def client_for(address):
    sys.path.insert(0, os.path.join(ROOT, "python"))
    sys.path.insert(0, os.path.join(ROOT, "build", "python"))
    from wfm_client import Client
    # Sampling 240 items at 100 steps can take minutes on a busy machine.
    return Client(address, timeout=3600)


def wfm_run(client, server, data, dataset_name, config, steps, seed, known):
    base, options = config
    family = data.family
    opts = {}
    if base == "ref":
        opts.update(REF[family])
        opts.update({k: v for k, v in REF_NEW.items() if k in known})
        if family == "gaussian":
            opts.pop("feature_transform", None)
    unknown = sorted(set(options) - known)
    if unknown:
        raise SystemExit(f"quality.py: the server has no training option {', '.join(unknown)} "
                         "(wfm train --help lists them; '_' for '-')")
    opts.update(options)
    opts = {k: v for k, v in opts.items() if _applies(client, k, family)}
    opts["steps"] = steps
    opts["seed"] = seed
    model = f"q-{dataset_name}-{seed}"
    cpu0, wall0 = server.cpu_seconds(), time.time()
    job = client.train(dataset_name, model, family=family, watch=True, overwrite=True, **opts)
    cpu = server.cpu_seconds() - cpu0
    wall = time.time() - wall0
    generated = []
    if family == "gaussian":
        s = client.sample_gaussians(model, EVAL_ITEMS, steps=SAMPLE_STEPS, seed=seed)
        generated = (s.means, s.covs)
    else:
        for i, (label, n) in enumerate(data.sample_plan()):
            s = client.sample(model, n, label=label, steps=SAMPLE_STEPS, seed=seed * 100 + i)
            generated += [(label, c) for c in s.clouds]
    info = client.model(model)
    return {"cpu_seconds": cpu, "wall_seconds": wall, "steps_done": job.step,
            "options": opts, "config_json": info.config_json, "metrics": data.evaluate(generated)}


def _applies(client, key, family):
    fam = 1 if family == "pointcloud" else 2
    for o in client.training_options():
        if o.name.replace("-", "_") == key:
            return any(f.family == fam for f in o.fields)
    return False


# ----------------------------------------------------------------- anchor

def anchor_run(data, steps, seed):
    """Trains the reference port in this process; returns the run record."""
    sys.path.insert(0, os.path.join(ROOT, "..", "shared", "anchors"))
    import torch
    torch.set_num_threads(1)
    from refwfm import bures, pointcloud
    items, labels = data.anchor_items()
    opts = REF[data.family]
    t0 = resource.getrusage(resource.RUSAGE_SELF)
    if data.family == "pointcloud":
        net = dict(embedding_dim=opts["emb"], num_layers=opts["layers"], num_heads=opts["heads"],
                   mlp_hidden_dim=opts["mlp"])
        if data.name == "tissue":
            # The reference's spatial default. Its noise statistics factor
            # every niche's covariance, singular for 8 cells in 16 genes:
            # JAX's Cholesky returns NaNs there (unused by `normal`), torch's
            # raises, so take torch's non-raising variant in this process.
            net["noise_type"] = "normal"
            torch.linalg.cholesky = lambda a: torch.linalg.cholesky_ex(a)[0]
        wfm = pointcloud.WassersteinFlowMatching([np.asarray(c, np.float64) for c in items],
                                                 labels=labels, seed=seed, **net)
        wfm.train(training_steps=steps, batch_size=opts["batch"], verbose=0,
                  learning_rate=opts["lr"], decay_steps=opts["decay_steps"])
    else:
        means, covs = items
        wfm = bures.BuresWassersteinFlowMatching(
            means=means, covariances=covs, seed=seed, embedding_dim=opts["emb"],
            num_layers=opts["layers"], mlp_hidden_dim=opts["mlp"])
        wfm.train(training_steps=steps, batch_size=opts["batch"], verbose=0,
                  learning_rate=opts["lr"], decay_steps=opts["decay_steps"])
    t1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (t1.ru_utime + t1.ru_stime) - (t0.ru_utime + t0.ru_stime)
    torch.manual_seed(seed + 7)
    wfm.gen.manual_seed(seed + 7)
    generated = []
    if data.family == "gaussian":
        mu, sig = wfm.generate_samples(num_samples=EVAL_ITEMS, timesteps=SAMPLE_STEPS,
                                       return_trajectory=False)
        generated = (mu.double().numpy(), sig.double().numpy())
    else:
        for label, n in data.sample_plan():
            kw = {"generate_labels": label} if label else {}
            if data.name == "tissue":
                kw["size"] = NICHE_SIZE
            out = wfm.generate_samples(num_samples=n, timesteps=SAMPLE_STEPS,
                                       return_trajectory=False, **kw)
            x, w = out[0], out[1]
            for k in range(len(x)):
                keep = w[k] > 0
                generated.append((label, x[k][keep].numpy()))
    return {"cpu_seconds": cpu, "steps_done": steps, "options": dict(opts),
            "metrics": data.evaluate(generated)}


# ------------------------------------------------------------------ store

def result_path(results, dataset, config, steps, seed):
    return os.path.join(results, dataset, f"{config}-s{steps}", f"seed{seed}.json")


def save(path, record):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1, default=float)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def headline(record, dataset):
    m = record["metrics"]
    if FAMILY[dataset] == "gaussian":
        return f"1-NNA(BW) {m['bures']['1nna']:.3f}"
    text = f"1-NNA CD {m['chamfer']['1nna']:.3f} EMD {m['emd']['1nna']:.3f}"
    if "1nna_generated" in m["emd"]:
        text += (f" (EMD generated side {m['emd']['1nna_generated']:.3f}, real side "
                 f"{m['emd']['1nna_real']:.3f}) MMD EMD {m['emd']['mmd']:.4g}")
    if "composition_tv" in m:
        text += f" TV {m['composition_tv']:.3f}"
    return text


def cmd_run(args):
    configs = parse_configs(args.configs)
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.data.split(",")
    server, client, known = None, None, set()
    try:
        for name in names:
            data = Data(name)
            uploaded = False
            todo = [(c, s) for c in configs for s in seeds
                    if args.force or not os.path.exists(
                        result_path(args.results, name, c, args.steps, s))]
            if args.anchor:
                for s in seeds:
                    path = result_path(args.results, name, "anchor", args.steps, s)
                    if os.path.exists(path) and not args.force:
                        continue
                    rec = subprocess.run(
                        [sys.executable, __file__, "anchor-run", "--data", name, "--steps",
                         str(args.steps), "--seed", str(s), "--out", path], check=False)
                    if rec.returncode != 0:
                        print(f"{name} anchor seed {s}: failed", flush=True)
                        continue
                    with open(path) as f:
                        r = json.load(f)
                    print(f"{name} anchor seed {s}: {headline(r, name)} "
                          f"cpu {r['cpu_seconds']:.0f} s", flush=True)
            if not todo:
                continue
            if server is None:
                server = Server(args.server_bin, args.threads)
                client = client_for(server.address)
                known = {o.name.replace("-", "_") for o in client.training_options()}
            for config, seed in todo:
                if not uploaded:
                    data.upload(client, name)
                    uploaded = True
                r = wfm_run(client, server, data, name, configs[config], args.steps, seed, known)
                r.update(dataset=name, config=config, seed=seed, steps=args.steps)
                save(result_path(args.results, name, config, args.steps, seed), r)
                print(f"{name} {config} seed {seed}: {headline(r, name)} "
                      f"cpu {r['cpu_seconds']:.0f} s ({r['steps_done']} steps)", flush=True)
    finally:
        if server is not None:
            server.stop()


def cmd_anchor_run(args):
    data = Data(args.data)
    r = anchor_run(data, args.steps, args.seed)
    r.update(dataset=args.data, config="anchor", seed=args.seed, steps=args.steps)
    save(args.out, r)


# ------------------------------------------------------------------ table

COLUMNS = {
    "pointcloud": [("1-NNA CD", ("chamfer", "1nna")), ("1-NNA EMD", ("emd", "1nna")),
                   ("MMD EMD", ("emd", "mmd")), ("COV EMD", ("emd", "cov"))],
    "gaussian": [("1-NNA BW", ("bures", "1nna")), ("MMD BW", ("bures", "mmd")),
                 ("COV BW", ("bures", "cov"))],
}


def _get(m, path):
    for k in path:
        m = m[k]
    return m


def cmd_table(args):
    names = args.data.split(",")
    for name in names:
        base = os.path.join(args.results, name)
        if not os.path.isdir(base):
            continue
        cols = list(COLUMNS[FAMILY[name]])
        if name == "tissue":
            cols.append(("composition TV", ("composition_tv",)))
        runs = {}
        for folder in sorted(os.listdir(base)):
            config, steps = folder.rsplit("-s", 1)
            if args.configs and config not in args.configs.split(","):
                continue
            recs = []
            for f in sorted(os.listdir(os.path.join(base, folder))):
                if f.endswith(".json"):
                    with open(os.path.join(base, folder, f)) as fh:
                        recs.append(json.load(fh))
            if recs:
                runs[(config, int(steps))] = recs
        print(f"\n{name} ({FAMILY[name]})\n")
        print("| configuration | steps | seeds | " + " | ".join(c for c, _ in cols) +
              " | CPU s |")
        print("|---|---|---|" + "---|" * len(cols) + "---|")
        order = sorted(runs, key=lambda k: (k[0] != "anchor", k[0] != "ref", k[1], k[0]))
        for key in order:
            recs = runs[key]
            cells = []
            for _, path in cols + [("cpu", ("cpu_seconds",))]:
                vals = [(_get(r["metrics"], path) if path[0] != "cpu_seconds" else r["cpu_seconds"])
                        for r in recs]
                mean = statistics.fmean(vals)
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{mean:.0f}" if path[0] == "cpu_seconds" else f"{mean:.3f} ± {sd:.3f}")
            print(f"| {key[0]} | {key[1]} | {len(recs)} | " + " | ".join(cells) + " |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", default=",".join(DATASETS))
    r.add_argument("--configs", default="ref,default")
    r.add_argument("--seeds", default="1,2,3")
    r.add_argument("--steps", type=int, default=3000)
    r.add_argument("--anchor", action="store_true", help="also train the reference port")
    r.add_argument("--force", action="store_true", help="rerun runs already stored")
    r.add_argument("--threads", type=int, default=1, help="the server's --threads")
    r.add_argument("--server-bin", default=os.path.join(ROOT, "build", "server", "wfm-server"))
    r.add_argument("--results", default=os.path.join(ROOT, "build", "quality"))
    a = sub.add_parser("anchor-run")
    a.add_argument("--data", required=True)
    a.add_argument("--steps", type=int, required=True)
    a.add_argument("--seed", type=int, required=True)
    a.add_argument("--out", required=True)
    t = sub.add_parser("table")
    t.add_argument("--data", default=",".join(DATASETS))
    t.add_argument("--configs", default="")
    t.add_argument("--results", default=os.path.join(ROOT, "build", "quality"))
    sub.add_parser("baselines")
    args = p.parse_args()
    if args.cmd == "run":
        cmd_run(args)
    elif args.cmd == "anchor-run":
        cmd_anchor_run(args)
    elif args.cmd == "table":
        cmd_table(args)
    else:
        d = Data("tissue")
        print(json.dumps(d.baselines()))


if __name__ == "__main__":
    main()
