#!/usr/bin/python3
"""Checks that the anndata library reads an .h5ad written by wfm as expected.

usage: check_h5ad.py FILE.h5ad EXPECTED.json

EXPECTED.json: {"n_obs", "n_vars", "X" (flat float32 values), "obs_names",
"var_names", "obs": {column: {"kind": "integer"|"float"|"bool"|"string",
"values": [...]} or {"kind": "categorical", "categories": [...], "codes":
[...]}}, "obsm": {key: {"shape": [...], "values": [...]}}}. Also checks, with
h5py, that every group and dataset carries encoding-type and
encoding-version attributes as anndata >= 0.8 writes them. Prints every
mismatch; exits 1 on any.
"""

import warnings

warnings.simplefilter("ignore")

import anndata  # noqa: E402
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import checker  # noqa: E402


def main():
    path, want = checker.file_and_expected()
    errors = []
    adata = anndata.read_h5ad(path)
    if adata.shape != (want["n_obs"], want["n_vars"]):
        errors.append(f"shape {adata.shape} != {(want['n_obs'], want['n_vars'])}")
    x = np.asarray(adata.X)
    if x.dtype != np.float32:
        errors.append(f"X dtype {x.dtype} != float32")
    if x.ravel().tolist() != np.array(want["X"], dtype=np.float32).tolist():
        errors.append("X values differ")
    if list(adata.obs_names) != want["obs_names"]:
        errors.append(f"obs_names {list(adata.obs_names)[:5]} != {want['obs_names'][:5]}")
    if list(adata.var_names) != want["var_names"]:
        errors.append(f"var_names {list(adata.var_names)} != {want['var_names']}")
    if list(adata.obs.columns) != list(want["obs"]):
        errors.append(f"obs columns {list(adata.obs.columns)} != {list(want['obs'])}")
    for name, col in want["obs"].items():
        if name not in adata.obs:
            continue
        s = adata.obs[name]
        kind = col["kind"]
        if kind == "categorical":
            if not isinstance(s.dtype, pd.CategoricalDtype):
                errors.append(f"obs/{name}: dtype {s.dtype} is not categorical")
                continue
            if list(s.cat.categories) != col["categories"]:
                errors.append(f"obs/{name}: categories {list(s.cat.categories)} != {col['categories']}")
            if s.cat.codes.tolist() != col["codes"]:
                errors.append(f"obs/{name}: codes differ")
        elif kind == "integer":
            if s.dtype.kind != "i" or s.tolist() != col["values"]:
                errors.append(f"obs/{name}: {s.dtype} {s.tolist()[:5]} != ints {col['values'][:5]}")
        elif kind == "float":
            if s.dtype.kind != "f" or s.tolist() != col["values"]:
                errors.append(f"obs/{name}: {s.dtype} values differ")
        elif kind == "bool":
            if s.dtype != bool or s.tolist() != col["values"]:
                errors.append(f"obs/{name}: {s.dtype} values differ")
        else:
            if s.tolist() != col["values"]:
                errors.append(f"obs/{name}: string values differ")
    if sorted(adata.obsm.keys()) != sorted(want["obsm"]):
        errors.append(f"obsm keys {sorted(adata.obsm.keys())} != {sorted(want['obsm'])}")
    for key, m in want["obsm"].items():
        if key not in adata.obsm:
            continue
        a = np.asarray(adata.obsm[key])
        if list(a.shape) != m["shape"] or a.ravel().tolist() != np.array(m["values"], dtype=a.dtype).tolist():
            errors.append(f"obsm/{key}: shape {a.shape} or values differ")

    def visit(name, obj):
        for attr in ("encoding-type", "encoding-version"):
            if attr not in obj.attrs:
                errors.append(f"{name}: no {attr} attribute")
            elif not isinstance(obj.attrs[attr], str):
                errors.append(f"{name}: {attr} is {type(obj.attrs[attr]).__name__}, not str")

    with h5py.File(path, "r") as f:
        visit("/", f)
        f.visititems(visit)
    checker.report(errors)


if __name__ == "__main__":
    main()
