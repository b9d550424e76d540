#!/usr/bin/env bash
# Builds deploy/Dockerfile without Docker and proves the image works:
#   1. installs buildah, podman and mmdebstrap where missing;
#   2. the base images the Dockerfile's FROM lines name: kept when present,
#      pulled when a registry answers, otherwise built from Debian's package
#      archive with mmdebstrap (minbase; the -slim tags without docs, man
#      pages and locales, as Debian's slim images) and stored under the fully
#      qualified name FROM resolves to (debian:bookworm ->
#      docker.io/library/debian:bookworm);
#   3. buildah bud --isolation chroot --network host --pull=never --layers of
#      the checkout this script lives in, filtered by
#      deploy/Dockerfile.dockerignore (ccache's cache mount and the cached
#      layers make a rebuild on the same machine cheap);
#   4. checks the image: its user is not root (configured and in effect);
#      wfm-server, wfm and wfm-train are on PATH, every shared library they
#      link resolves inside the image and each runs; wfm-server started from
#      the image's ENTRYPOINT (buildah run --isolation chroot, host network,
#      free loopback ports) answers the host's `wfm health`, an upload ->
#      train -> sample round trip and a /metrics scrape, and shuts down
#      cleanly on SIGTERM;
#   5. prints the image's size. Any failure exits non-zero.
#
#   deploy/container-test.sh                      # as root (or through sudo)
#   WFM_CLI=/usr/local/bin/wfm deploy/container-test.sh
#
# WFM_CLI: the host's wfm that drives the server (default build/client/wfm of
# this checkout, built when missing; WFM_BUILD_DIR changes the folder).
# WFM_IMAGE: the image's name (default localhost/wfm:test); it is kept.
# WFM_DEBIAN_MIRROR: the archive mmdebstrap uses (default deb.debian.org).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
START=$SECONDS
IMAGE=${WFM_IMAGE:-localhost/wfm:test}
MIRROR=${WFM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${WFM_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PYTHON=/usr/bin/python3
PACKAGES=(buildah podman mmdebstrap python3-numpy)

log() { echo "container-test: $*"; }
fail() {
  echo "container-test: FAILED: $*" >&2
  exit 1
}
stage_done() { log "$1 done in $((SECONDS - $2)) s"; }

# ------------------------------------------------------------ host's wfm
# Built (as the calling user) before anything needs root.
if [[ -z ${WFM_CLI:-} ]]; then
  build_dir=${WFM_BUILD_DIR:-build}
  WFM_CLI=$ROOT/$build_dir/client/wfm
  if [[ ! -x $WFM_CLI ]]; then
    log "building the host's wfm into $build_dir"
    deploy/setup.sh
    cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
    nice -n 19 cmake --build "$build_dir" --target wfm
  fi
fi
[[ -x $WFM_CLI ]] || fail "WFM_CLI=$WFM_CLI is not an executable"
WFM_CLI=$(realpath "$WFM_CLI")
export WFM_CLI

if [[ $(id -u) -ne 0 ]]; then
  # buildah's chroot isolation and the system image store need root.
  exec sudo --preserve-env=WFM_CLI,WFM_IMAGE,WFM_DEBIAN_MIRROR,WFM_DEBIAN_SECURITY_MIRROR \
    "$ROOT/deploy/container-test.sh" "$@"
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]} > 0)); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

WORK=$(mktemp -d /var/tmp/wfm-container-test.XXXXXX)
CONTAINER=""
SERVER_PID=""
cleanup() {
  local status=$?
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    # buildah run kills the process it started when it is signalled.
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ -n $CONTAINER ]]; then
    buildah rm "$CONTAINER" >/dev/null || true
  fi
  if ((status != 0)) && [[ -f $WORK/server.log ]]; then
    echo "--- wfm-server's log:" >&2
    cat "$WORK/server.log" >&2
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

# ------------------------------------------------------------ base images
# "debian:bookworm" -> "docker.io/library/debian:bookworm", the name a short
# FROM resolves to (registries.conf's short-name alias for debian).
qualified() {
  local name=$1
  [[ $name == *:* || $name == *@* ]] || name+=":latest"
  case $name in
    */*/*) ;;
    */*) if [[ ${name%%/*} == *.* || ${name%%/*} == *:* || ${name%%/*} == localhost ]]; then :; else name=docker.io/$name; fi ;;
    *) name=docker.io/library/$name ;;
  esac
  echo "$name"
}

# mmdebstrap of Debian 12 into docker.io/library/debian:<tag>.
debootstrap_base() {
  local tag=$1 name=$2 tar=$WORK/base.tar
  local options=(--variant=minbase)
  if [[ $tag == *-slim ]]; then
    # Debian's slim images: dpkg leaves out documentation (but copyrights),
    # man and info pages and translations, now and for every later install.
    local path
    for path in /usr/share/doc/'*' /usr/share/groff/'*' /usr/share/info/'*' \
      /usr/share/linda/'*' /usr/share/lintian/overrides/'*' /usr/share/locale/'*' \
      /usr/share/man/'*'; do
      options+=("--dpkgopt=path-exclude=$path")
    done
    options+=("--dpkgopt=path-include=/usr/share/doc/*/copyright")
  fi
  nice -n 19 mmdebstrap "${options[@]}" bookworm "$tar" \
    "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
    "deb $SECURITY_MIRROR bookworm-security main" </dev/null
  podman import --quiet --change 'CMD ["bash"]' "$tar" "$name" >/dev/null
  rm -f "$tar"
}

t=$SECONDS
mapfile -t bases < <(awk 'toupper($1) == "FROM" { print $2 }' deploy/Dockerfile | sort -u)
((${#bases[@]} > 0)) || fail "deploy/Dockerfile has no FROM"
for base in "${bases[@]}"; do
  name=$(qualified "$base")
  if buildah inspect --type image "$name" >/dev/null 2>&1; then
    log "base $base: $name is present"
  elif timeout 120 buildah pull --quiet "$name" >/dev/null 2>"$WORK/pull.log"; then
    log "base $base: pulled $name"
  elif [[ $name =~ ^docker\.io/library/debian:bookworm(-slim)?$ ]]; then
    log "base $base: no registry image ($(tail -n 1 "$WORK/pull.log")); building $name with mmdebstrap"
    debootstrap_base "${name##*:}" "$name"
  else
    fail "base image $base: not present, not pullable, and not one mmdebstrap builds"
  fi
done
stage_done "base images" "$t"

# ------------------------------------------------------------ the build
t=$SECONDS
log "building $IMAGE from $ROOT"
# Docker's image format: OCI's has no HEALTHCHECK.
nice -n 19 buildah bud --isolation chroot --network host --pull=never --layers --format docker \
  -f deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore -t "$IMAGE" . ||
  fail "buildah bud of deploy/Dockerfile"
stage_done "image build" "$t"

# ------------------------------------------------------------ the checks
t=$SECONDS
buildah inspect --type image "$IMAGE" >"$WORK/image.json"
# config FIELD: the image configuration's FIELD, one line per list item.
config() {
  "$PYTHON" - "$WORK/image.json" "$1" <<'EOF'
import json
import sys
value = json.load(open(sys.argv[1]))["Docker"]["config"].get(sys.argv[2]) or ""
if isinstance(value, dict):
    value = value.get("Test") or []
print("\n".join(value) if isinstance(value, list) else value)
EOF
}
user=$(config User)
[[ -n $user && ${user%%:*} != 0 && ${user%%:*} != root ]] ||
  fail "the image's USER is '${user}' (must be set and not root)"
CONTAINER=$(buildah from --pull=never --name "wfm-container-test-$$" "$IMAGE")
in_image() { buildah run --isolation chroot "$CONTAINER" -- "$@"; }
uid=$(in_image id -u)
[[ $uid != 0 ]] || fail "commands in the image run as root"
log "user: $user (uid $uid in the container)"

for binary in wfm-server wfm wfm-train; do
  path=$(in_image sh -c "command -v $binary") || fail "$binary is not on the image's PATH"
  libraries=$(in_image ldd "$path") || fail "ldd $path in the image"
  if grep -q "not found" <<<"$libraries"; then
    fail "$binary: shared libraries missing in the image:
$(grep "not found" <<<"$libraries")"
  fi
  in_image "$binary" --help >/dev/null || fail "$binary --help fails in the image"
  log "$path: $(grep -c "=>" <<<"$libraries") shared libraries, all resolved; it runs"
done

# wfm-server as the image's ENTRYPOINT runs it, but listening on free
# loopback ports (the host's network is shared): the addresses of --listen
# and --metrics-listen are replaced.
mapfile -t entrypoint < <(config Entrypoint)
[[ ${entrypoint[0]:-} == wfm-server ]] || fail "ENTRYPOINT is not wfm-server: ${entrypoint[*]:-none}"
image_port=""
for ((i = 1; i + 1 < ${#entrypoint[@]}; i++)); do
  case ${entrypoint[i]} in
    --listen)
      image_port=${entrypoint[i + 1]##*:}
      entrypoint[i + 1]=127.0.0.1:0
      ;;
    --metrics-listen) entrypoint[i + 1]=127.0.0.1:0 ;;
  esac
done
[[ -n $image_port ]] || fail "ENTRYPOINT has no --listen: ${entrypoint[*]}"
buildah run --isolation chroot --network host "$CONTAINER" -- "${entrypoint[@]}" --threads 2 \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
# The ready line names the ports; tail ends when the server does.
exec 3< <(exec timeout 300 tail -n +1 -F --pid="$SERVER_PID" "$WORK/server.log" 2>/dev/null)
tail_pid=$!
ready=$(grep -m 1 "wfm-server ready: " <&3 || true)
exec 3<&-
kill "$tail_pid" 2>/dev/null || true
[[ -n $ready ]] || fail "wfm-server in the image did not get ready"
[[ $ready =~ grpc\ ([0-9.]+:[0-9]+),\ metrics\ ([0-9.]+:[0-9]+) ]] ||
  fail "unexpected ready line: $ready"
GRPC=${BASH_REMATCH[1]}
METRICS=${BASH_REMATCH[2]}
log "wfm-server in the image: grpc $GRPC, metrics $METRICS"
wfm() { "$WFM_CLI" --server "$GRPC" --quiet "$@"; }

wfm health || fail "wfm health"
log "wfm health: SERVING"
# The image's HEALTHCHECK command, run in the image, at the server's port
# instead of the ENTRYPOINT's.
mapfile -t healthcheck < <(config Healthcheck)
[[ ${healthcheck[0]:-} == CMD ]] || fail "the image has no HEALTHCHECK CMD: ${healthcheck[*]:-none}"
healthcheck=("${healthcheck[@]:1}")
healthcheck=("${healthcheck[@]/%:$image_port/:${GRPC##*:}}")
buildah run --isolation chroot --network host "$CONTAINER" -- "${healthcheck[@]}" ||
  fail "the HEALTHCHECK command in the image: ${healthcheck[*]}"
log "HEALTHCHECK in the image (${healthcheck[*]}): healthy"

# 24 small 2D clouds (rings and squares of 24 to 40 points).
"$PYTHON" - "$WORK/shapes.npz" <<'EOF'
import sys
import numpy as np
rng = np.random.default_rng(7)
clouds = []
for i in range(24):
    n = 24 + (i % 5) * 4
    t = rng.uniform(0, 2 * np.pi, n)
    if i % 2 == 0:
        c = np.stack([np.cos(t), np.sin(t)], 1)
    else:
        c = np.clip(1.4 * np.stack([np.cos(t), np.sin(t)], 1), -1, 1)
    clouds.append((c + 0.02 * rng.standard_normal(c.shape)).astype(np.float32))
offsets = np.concatenate([[0], np.cumsum([len(c) for c in clouds])]).astype(np.int64)
np.savez(sys.argv[1], points=np.concatenate(clouds), offsets=offsets)
EOF
wfm upload "$WORK/shapes.npz" --name container-test-shapes >/dev/null || fail "wfm upload"
wfm train --dataset container-test-shapes --model container-test-model --family pointcloud \
  --steps 40 --batch 8 --emb 32 --layers 1 --seed 1 --watch >/dev/null || fail "wfm train --watch"
wfm sample --model container-test-model --num 4 --points 30 --steps 10 --seed 2 \
  --out "$WORK/samples.npz" >/dev/null || fail "wfm sample"
"$PYTHON" - "$WORK/samples.npz" <<'EOF' || fail "the samples are not 4 finite 2D clouds of 30 points"
import sys
import numpy as np
s = np.load(sys.argv[1])
assert s["points"].shape == (120, 2), s["points"].shape
assert list(s["offsets"]) == [0, 30, 60, 90, 120], s["offsets"]
assert np.isfinite(s["points"]).all()
EOF
log "upload -> train -> sample: 4 clouds of 30 points"
"$PYTHON" - "http://$METRICS/metrics" <<'EOF' || fail "/metrics does not count the 4 samples"
import re
import sys
import urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
counts = [float(v) for v in re.findall(
    r'^wfm_generated_samples_total\{[^}]*model="container-test-model"[^}]*\} (\S+)$', text, re.M)]
assert sum(counts) >= 4, counts
EOF
log "/metrics: wfm_generated_samples_total counts them"

# SIGTERM to wfm-server itself (buildah run does not forward it): a graceful
# shutdown, exit status 0.
server=""
todo=("$SERVER_PID")
while ((${#todo[@]} > 0)) && [[ -z $server ]]; do
  pid=${todo[0]}
  todo=("${todo[@]:1}")
  for child in $(ps -o pid= --ppid "$pid"); do
    # argv[0]: the command name is that of the executable buildah runs it
    # through ("exe").
    argv0=$(tr '\0' '\n' <"/proc/$child/cmdline" 2>/dev/null | head -n 1 || true)
    if [[ ${argv0##*/} == wfm-server ]]; then server=$child; fi
    todo+=("$child")
  done
done
[[ -n $server ]] || fail "no wfm-server process under buildah run"
kill -TERM "$server"
timeout 60 tail --pid="$SERVER_PID" -f /dev/null || fail "wfm-server did not stop within 60 s of SIGTERM"
status=0
wait "$SERVER_PID" || status=$?
SERVER_PID=""
((status == 0)) || fail "wfm-server exited with status $status after SIGTERM"
log "SIGTERM: wfm-server shut down, status 0"
stage_done "checks" "$t"

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "image $IMAGE: $((size / 1000000)) MB"
log "passed in $((SECONDS - START)) s"
