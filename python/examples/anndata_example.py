#!/usr/bin/python3
"""Example: the notebook workflow with AnnData, end to end.

Loads a spatial-transcriptomics .h5ad (cells with expression X, coordinates
in obsm["spatial"], a sample column and a cell-type column), uploads it,
trains a niche model conditioned on the centre cell's type, samples niches
of every type back as an AnnData, and writes a PNG comparing the generated
niches with the real ones (expression of the niche cells on the first two
principal components of the real cells, one panel per cell type).

    pip install ./python     # once (README, "Python")
    python3 python/examples/anndata_example.py --server localhost:50051 \\
        --h5ad tissue.h5ad --out niches.png [--write-demo] [--steps 1500]

--write-demo first writes a small synthetic tissue to --h5ad (three cell
types in spatial domains, two sections). Exits 0 and prints
"anndata example: OK" when every step worked.
"""

import argparse
import sys

import anndata
import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from wfm_client import Client  # noqa: E402


def write_demo_tissue(path, seed=0, per_section=160, genes=6):
    """A synthetic tissue: cells on a jittered grid in two sections; the cell
    type follows a spatial domain (left: A, middle: B, right: C) with some
    mixing; expression = the type's profile + noise (non-negative)."""
    rng = np.random.default_rng(seed)
    profiles = {"A": np.linspace(2, 0, genes), "B": np.full(genes, 1.0), "C": np.linspace(0, 2, genes)}
    coords, types, sections = [], [], []
    side = int(np.ceil(np.sqrt(per_section)))
    for section in ("s1", "s2"):
        for i in range(per_section):
            x, y = i % side + rng.uniform(-0.3, 0.3), i // side + rng.uniform(-0.3, 0.3)
            domain = "ABC"[min(2, int(3 * x / side))]
            kind = domain if rng.uniform() < 0.8 else "ABC"[rng.integers(3)]
            coords.append((x, y))
            types.append(kind)
            sections.append(section)
    X = np.stack([profiles[t] for t in types]) + rng.normal(0, 0.25, (len(types), genes))
    adata = anndata.AnnData(
        X=np.clip(X, 0, None).astype(np.float32),
        obs=pd.DataFrame({"cell_type": pd.Categorical(types), "section": pd.Categorical(sections)},
                         index=[f"cell{i}" for i in range(len(types))]),
        var=pd.DataFrame(index=[f"gene{g}" for g in range(genes)]))
    adata.obsm["spatial"] = np.asarray(coords, dtype=np.float32)
    adata.write_h5ad(path)


def real_niches(adata, label_key, sample_key, k):
    """The real niches, as the server builds them: for every cell, the
    features of its k nearest other cells of the same sample. Returns
    {centre label: [cells, genes] array of all their niche cells}."""
    X = np.asarray(adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X, dtype=np.float64)
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    labels = adata.obs[label_key].astype(str).to_numpy()
    samples = adata.obs[sample_key].astype(str).to_numpy() if sample_key else np.zeros(len(X))
    out = {}
    for sample in np.unique(samples):
        idx = np.flatnonzero(samples == sample)
        d = ((xy[idx, None, :] - xy[None, idx, :]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        nearest = np.argsort(d, axis=1)[:, :min(k, len(idx) - 1)]
        for row, cell in enumerate(idx):
            out.setdefault(labels[cell], []).append(X[idx[nearest[row]]])
    return {label: np.concatenate(parts) for label, parts in out.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="localhost:50051")
    parser.add_argument("--token", default=None)
    parser.add_argument("--h5ad", required=True)
    parser.add_argument("--out", default="niches.png")
    parser.add_argument("--write-demo", action="store_true")
    parser.add_argument("--label-key", default="cell_type")
    parser.add_argument("--sample-key", default="section")
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--num", type=int, default=40, help="niches sampled per cell type")
    parser.add_argument("--progress", action="store_true", help="progress bars (tqdm)")
    args = parser.parse_args()

    if args.write_demo:
        write_demo_tissue(args.h5ad)
    adata = anndata.read_h5ad(args.h5ad)
    print(f"read {args.h5ad}: {adata.n_obs} cells x {adata.n_vars} genes")

    with Client(args.server, token=args.token) as wfm:
        stored = wfm.upload_anndata(adata, "example-tissue", features="X", spatial_key="spatial",
                                    sample_key=args.sample_key, label_key=args.label_key,
                                    overwrite=True, progress=args.progress)
        print(f"uploaded {stored.name}: {stored.items} cells in {stored.samples} samples, "
              f"types {list(stored.label_names)}")
        assert list(stored.feature_names) == list(adata.var_names), stored.feature_names

        job = wfm.train("example-tissue", "example-tissue-wfm", family="pointcloud", k=args.k,
                        steps=args.steps, batch=16, emb=32, layers=2, heads=4, mlp=64, seed=1,
                        overwrite=True, watch=True, progress=args.progress)
        print(f"trained: {job.step} steps, loss {job.loss:.4f}")

        real = real_niches(adata, args.label_key, args.sample_key, args.k)
        generated = {}
        for i, label in enumerate(stored.label_names):
            niches = wfm.sample_niches("example-tissue-wfm", args.num, condition=label,
                                       points=args.k, seed=7 + i, steps=20)
            assert niches.n_obs == args.num * args.k, niches.shape
            assert list(niches.var_names) == list(adata.var_names)
            assert set(niches.obs["condition"]) == {label}
            generated[label] = np.asarray(niches.X, dtype=np.float64)

    # The figure: real and generated niche cells on the real cells' first two
    # principal components, one panel per centre cell type.
    X = np.asarray(adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X, dtype=np.float64)
    mean = X.mean(axis=0)
    _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
    pcs = vt[:2].T
    labels = sorted(generated)
    fig, axes = plt.subplots(1, len(labels), figsize=(4 * len(labels), 4), squeeze=False)
    for ax, label in zip(axes[0], labels):
        r = (real[label] - mean) @ pcs
        g = (generated[label] - mean) @ pcs
        ax.scatter(r[:, 0], r[:, 1], s=6, alpha=0.35, label="real niches")
        ax.scatter(g[:, 0], g[:, 1], s=6, alpha=0.6, label="generated")
        ax.set_title(f"centre: {label}")
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
        gap = np.linalg.norm(generated[label].mean(0) - real[label].mean(0))
        print(f"{label}: mean expression of generated vs real niche cells differs by {gap:.3f}")
    axes[0][0].legend(loc="best")
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    print("anndata example: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
