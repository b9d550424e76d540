"""What the checker scripts of this folder (check_npz.py, check_h5ad.py)
share: their command line (FILE EXPECTED.json) and their report (every
mismatch, then exit 1 on any; OK otherwise)."""

import json
import sys


def file_and_expected():
    """The file to check and the parsed EXPECTED.json of the command line."""
    path, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path, encoding="utf-8") as f:
        return path, json.load(f)


def report(errors):
    """Prints every mismatch and exits 1 on any; prints OK otherwise."""
    for e in errors:
        print("MISMATCH", e)
    if errors:
        sys.exit(1)
    print("OK")
