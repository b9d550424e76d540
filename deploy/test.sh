#!/usr/bin/env bash
# README's test command: installs what is missing, builds everything (Release)
# and runs every test suite with CTest.
#
#   deploy/test.sh                  # build folder ./build
#   WFM_BUILD_DIR=/tmp/b deploy/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
BUILD_DIR=${WFM_BUILD_DIR:-build}
JOBS=${WFM_JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 1200
