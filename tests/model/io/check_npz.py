#!/usr/bin/python3
"""Checks that numpy reads an .npz written by wfm as expected.

usage: check_npz.py FILE.npz EXPECTED.json

EXPECTED.json maps each array name to {"dtype": numpy dtype string,
"shape": [...], "values": [...] (flat, C order)}. Every array must be present
with exactly that dtype, shape and values (floats compared exactly), and the
file must hold no other array. Prints every mismatch; exits 1 on any.
"""

import numpy as np

import checker


def main():
    path, expected = checker.file_and_expected()
    errors = []
    with np.load(path, allow_pickle=False) as npz:
        names = set(npz.files)
        if names != set(expected):
            errors.append(f"arrays {sorted(names)} != expected {sorted(expected)}")
        for name, want in expected.items():
            if name not in names:
                continue
            a = npz[name]
            if a.dtype.str != want["dtype"]:
                errors.append(f"{name}: dtype {a.dtype.str} != {want['dtype']}")
            if list(a.shape) != want["shape"]:
                errors.append(f"{name}: shape {list(a.shape)} != {want['shape']}")
            flat = a.ravel(order="C").tolist()
            if a.dtype.kind == "f":
                want_values = np.array(want["values"], dtype=a.dtype).tolist()
            else:
                want_values = want["values"]
            if flat != want_values:
                errors.append(f"{name}: values {flat[:8]}... != {want_values[:8]}...")
    checker.report(errors)


if __name__ == "__main__":
    main()
