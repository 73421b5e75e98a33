#!/usr/bin/env bash
# Build the Synergy image and the MQTT broker image, with or without a container registry.
# What `make images` runs (from the repository's root):
#
#   deploy/images/build.sh
#
# 1. Docker: deploy/images/docker-up.sh (installs and starts the engine when root and needed).
# 2. Bases, chosen by a probe: if the registry answers (`docker pull python:3.11-slim`), the
#    public python:3.11-slim and debian:bookworm-slim; if not (this project's machines, CI),
#    local ones: a Debian bookworm root made by `debootstrap --variant=minbase` with the few
#    packages each image needs, trimmed (no docs, man pages, locales or apt lists) and
#    `docker import`ed as synergy-base:bookworm-<hash> and synergy-broker-base:bookworm-<hash>.
#    The hash covers the suite and package list, so a base is made once and reused; its
#    tarball is kept in build/images/cache/ too (a rebuild after `docker image prune` only
#    imports it again).
# 3. A wheelhouse on the host (build/images/wheelhouse): `pip wheel` of the project's
#    dependencies and of the project, with the virtual environment's pip (PyPI, or its cache).
#    The images install from it with `pip install --no-index`. The project's wheel carries the
#    planner's C extension; its other planner modules are Python (pip builds in an isolated
#    environment, without mypy, so setup.py does not compile them with mypyc).
# 4. `docker build` of deploy/Dockerfile -> $SYNERGY_IMAGE and deploy/broker.Dockerfile ->
#    $SYNERGY_BROKER_IMAGE, then their sizes.
#
# Settings (environment):
#   SYNERGY_IMAGE_BASE     auto (default: the probe decides), local or public
#   SYNERGY_IMAGE          default synergy:local
#   SYNERGY_BROKER_IMAGE   default synergy-broker:local
#   SYNERGY_DEBIAN_MIRROR  default http://deb.debian.org/debian (what debootstrap reads)
#   SYNERGY_WHEEL_PYTHON   the Python whose pip builds the wheelhouse (default .venv/bin/python);
#                          it must be a 3.11, as the images' Python is
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=${SYNERGY_IMAGE:-synergy:local}
BROKER_IMAGE=${SYNERGY_BROKER_IMAGE:-synergy-broker:local}
MODE=${SYNERGY_IMAGE_BASE:-auto}
MIRROR=${SYNERGY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PYTHON=${SYNERGY_WHEEL_PYTHON:-.venv/bin/python}
SUITE=bookworm
OUT=build/images
# What each local base holds beyond minbase (which has bash, util-linux's setpriv, passwd).
SYNERGY_PACKAGES=python3,python3-venv,iproute2
BROKER_PACKAGES=mosquitto,mosquitto-clients
# Bump when the way a base is made changes: it is part of the cache key.
RECIPE=1

started=$(date +%s)
# The steps, numbered as they start ([2/6] ...): the Docker engine, the bases, the wheelhouse
# and the three docker builds. Other lines (a base being made, "done") carry no number.
STEPS=6
n=0
step() { n=$((n + 1)); echo "== images: [$n/$STEPS] $* (+$(($(date +%s) - started))s)"; }
note() { echo "== images: $* (+$(($(date +%s) - started))s)"; }
die() { echo "images: error: $*" >&2; exit 1; }

# The classic builder: the Docker CLI of a newer release wants the buildx plugin for BuildKit,
# which Debian's docker.io does not ship; these Dockerfiles need nothing BuildKit adds.
export DOCKER_BUILDKIT=0

step "Docker engine"
deploy/images/docker-up.sh

# --- 2. bases -------------------------------------------------------------------------------
case "$MODE" in
  auto)
    if docker image inspect python:3.11-slim debian:bookworm-slim >/dev/null 2>&1 \
       || (timeout 60 docker pull -q python:3.11-slim && timeout 60 docker pull -q debian:bookworm-slim) >/dev/null 2>&1; then
      MODE=public
    else
      MODE=local
    fi
    step "registry probe: $( [ "$MODE" = public ] && echo 'public bases reachable' || echo 'no registry: local bases (debootstrap)')"
    ;;
  local|public) step "bases: $MODE (SYNERGY_IMAGE_BASE)" ;;
  *) die "SYNERGY_IMAGE_BASE=$MODE: expected auto, local or public" ;;
esac

# make_base NAME PACKAGES: prints the local base image's tag, making it when absent.
make_base() {
  local name=$1 packages=$2 key tag tarball root
  key=$(printf '%s\n' "$SUITE" "$packages" "$RECIPE" | sha256sum | cut -c1-12)
  tag="$name:$SUITE-$key"
  tarball="$OUT/cache/$name-$SUITE-$key.tar"
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "   $tag: cached image" >&2
  else
    if [ ! -s "$tarball" ]; then
      [ "$(id -u)" = 0 ] || die "making the local base $tag needs root (debootstrap); run \`make images\` as root once, or give Docker registry access"
      command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || die "debootstrap not found (apt-get install debootstrap)"
      root=$(mktemp -d "$OUT/cache/root-$name.XXXXXX")
      echo "   $tag: debootstrap --variant=minbase --include=$packages $SUITE (a few minutes; log $OUT/cache/$name.debootstrap.log)" >&2
      if ! PATH="/usr/sbin:/sbin:$PATH" debootstrap --variant=minbase --include="$packages" "$SUITE" "$root" "$MIRROR" \
           >"$OUT/cache/$name.debootstrap.log" 2>&1; then
        rm -rf "$root"
        die "debootstrap of $tag failed; last lines of $OUT/cache/$name.debootstrap.log:
$(tail -5 "$OUT/cache/$name.debootstrap.log")"
      fi
      # What a container never reads: package caches and lists, docs (copyright files kept),
      # man pages, locales, logs. About a third of a minbase root.
      rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
             "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
             "$root"/usr/share/lintian "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
      find "$root/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
      # Containers resolve names with Docker's own resolv.conf and hosts, mounted at start.
      : > "$root/etc/resolv.conf"
      tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
      mv "$tarball.tmp" "$tarball"
      rm -rf "$root"
    else
      echo "   $tag: importing the cached root $tarball" >&2
    fi
    docker import --message "debootstrap --variant=minbase --include=$packages $SUITE" "$tarball" "$tag" >/dev/null
  fi
  echo "$tag"
}

mkdir -p "$OUT/cache" "$OUT/wheelhouse"
if [ "$MODE" = local ]; then
  note "local bases"
  # Both at once: debootstrap mostly waits on downloads and dpkg, not on the CPU.
  make_base synergy-base "$SYNERGY_PACKAGES" > "$OUT/cache/.synergy-base.tag" &
  synergy_job=$!
  make_base synergy-broker-base "$BROKER_PACKAGES" > "$OUT/cache/.broker-base.tag" &
  broker_job=$!
  wait "$synergy_job" || die "the Synergy base could not be made (above)"
  wait "$broker_job" || die "the broker base could not be made (above)"
  SYNERGY_BASE=$(cat "$OUT/cache/.synergy-base.tag")
  BROKER_BASE=$(cat "$OUT/cache/.broker-base.tag")
  # Bases of an older recipe or package list: nothing uses them any more.
  for stale in $(docker image ls --format '{{.Repository}}:{{.Tag}}' synergy-base; \
                 docker image ls --format '{{.Repository}}:{{.Tag}}' synergy-broker-base); do
    if [ "$stale" != "$SYNERGY_BASE" ] && [ "$stale" != "$BROKER_BASE" ]; then
      echo "   removing the stale base $stale"
      docker image rm "$stale" >/dev/null 2>&1 || true
    fi
  done
  find "$OUT/cache" -maxdepth 1 -name '*.tar' ! -name "${SYNERGY_BASE%%:*}-${SYNERGY_BASE#*:}.tar" \
    ! -name "${BROKER_BASE%%:*}-${BROKER_BASE#*:}.tar" -delete
else
  SYNERGY_BASE=python:3.11-slim
  BROKER_BASE=debian:bookworm-slim
fi

# --- 3. wheelhouse --------------------------------------------------------------------------
step "wheelhouse ($PYTHON)"
[ -x "$PYTHON" ] || die "$PYTHON not found: run \`make venv\` (or set SYNERGY_WHEEL_PYTHON to a Python 3.11 with pip)"
version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$version" = 3.11 ] || die "$PYTHON is Python $version; the images run Python 3.11 (Debian bookworm's), and the wheels must match: set SYNERGY_WHEEL_PYTHON to a Python 3.11"
wheels=$OUT/wheelhouse
rm -rf "$wheels/project" "$wheels/deps.new" build/lib build/bdist.*
mkdir -p "$wheels/project" "$wheels/deps.new"
# A fixed timestamp makes the project's wheel the same bytes when its sources are the same,
# so Docker's cache keeps the last layer too.
SOURCE_DATE_EPOCH=315532800 "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$wheels/project" . 2>&1 \
  | grep -v "^WARNING: Location .* is ignored" || true
ls "$wheels"/project/synergy-*.whl >/dev/null 2>&1 || die "pip wheel did not build the project's wheel (above)"
# The dependencies: exactly what the project's wheel asks for, resolved for this Python.
"$PYTHON" -m pip wheel --quiet --wheel-dir "$wheels/deps.new" "$wheels"/project/synergy-*.whl 2>&1 \
  | grep -v "^WARNING: Location .* is ignored" || true
rm -f "$wheels"/deps.new/synergy-*.whl
ls "$wheels"/deps.new/*.whl >/dev/null 2>&1 || die "pip wheel fetched no dependency (above)"
rm -rf "$wheels/deps" && mv "$wheels/deps.new" "$wheels/deps"
echo "   $(find "$wheels/deps" -name "*.whl" | wc -l) dependency wheels, $(du -sh "$wheels/deps" | cut -f1); $(basename "$wheels"/project/synergy-*.whl)"

# --- 4. images ------------------------------------------------------------------------------
# build TAG BASE DOCKERFILE [ARGS]: the builder's own output goes to a log, shown when it fails.
build() {
  local tag=$1 base=$2 file=$3 log
  shift 3
  log="$OUT/$(echo "$tag" | tr ':/' '--').build.log"
  step "docker build $tag (FROM $base; log $log)"
  if ! docker build --build-arg "BASE=$base" -f "$file" -t "$tag" "$@" . >"$log" 2>&1; then
    die "docker build of $tag failed; the end of $log:
$(tail -20 "$log")"
  fi
}
# The build stage gets a tag of its own: it is the cache of the slow step (pip install), and
# untagged it would be pruned below with the stale ones.
build "${IMAGE%%:*}-build-stage:${IMAGE#*:}" "$SYNERGY_BASE" deploy/Dockerfile --target build
build "$IMAGE" "$SYNERGY_BASE" deploy/Dockerfile
build "$BROKER_IMAGE" "$BROKER_BASE" deploy/broker.Dockerfile

# A rebuild leaves the previous images of ours untagged: drop them, so disks do not fill.
docker image prune --force --filter label=synergy.image >/dev/null 2>&1 || true

size() { docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }
note "done in $(($(date +%s) - started))s"
echo "   $IMAGE          $(size "$IMAGE")  (base $SYNERGY_BASE: $(size "$SYNERGY_BASE"))"
echo "   $BROKER_IMAGE   $(size "$BROKER_IMAGE")  (base $BROKER_BASE: $(size "$BROKER_BASE"))"
