#!/usr/bin/env bash
# README's main-job command: installs what is missing, builds the server and
# the command-line tool (Release), then runs `wfm demo`: a local wfm-server
# on its embedded defaults (temporary data folder, free ports), a small model
# trained on built-in 2D shapes with a live progress bar, samples written to
# an .svg, the generation throughput, and a clean shutdown.
#
#   deploy/demo.sh                        # build folder ./build, picture ./wfm-demo.svg
#                                         # (in the folder it is run from)
#   deploy/demo.sh --out /tmp/shapes.svg  # arguments go to `wfm demo` (see --help)
#   WFM_BUILD_DIR=/tmp/b deploy/demo.sh
set -euo pipefail
CALLER_DIR=$PWD
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
deploy/setup.sh
BUILD_DIR=${WFM_BUILD_DIR:-build}
[[ $BUILD_DIR = /* ]] || BUILD_DIR="$ROOT/$BUILD_DIR"
JOBS=${WFM_JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$JOBS" --target wfm wfm-server
# Relative paths (--out) are the caller's.
cd "$CALLER_DIR"
exec "$BUILD_DIR/client/wfm" demo --server-bin "$BUILD_DIR/server/wfm-server" "$@"
