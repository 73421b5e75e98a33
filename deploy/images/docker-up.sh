#!/usr/bin/env bash
# Make sure a Docker engine answers, and Compose with it; as root, install and start what is
# missing. What `make images` and `make e2e` run first.
#
#   deploy/images/docker-up.sh            # prints one line per thing it found, installed or started
#
# - docker.io, docker-compose (Compose 1.29) and debootstrap come from Debian's packages when
#   absent (apt-get; root only).
# - Compose v2 (`docker compose`): bookworm has no package for it; Debian 13 (trixie) does
#   (docker-compose 2.26, one static binary needing only libc). When `docker compose` is
#   missing, its binary is taken from that package as a Docker CLI plugin, with apt's own
#   download and a private package list: the machine's apt sources are not changed. Set
#   SYNERGY_NO_COMPOSE_V2=1 to skip this; the compose file works with 1.29 too.
# - dockerd: started in the background when nothing answers on the socket (systemd's unit when
#   systemd runs, else dockerd itself with its log in $SYNERGY_DOCKERD_LOG). If it will not
#   start with overlay2 it is tried with the vfs storage driver; if iptables is refused, with
#   --iptables=false. The pid of a dockerd started here is written to $SYNERGY_DOCKERD_PIDFILE.
set -euo pipefail

LOG=${SYNERGY_DOCKERD_LOG:-/var/log/synergy-dockerd.log}
PIDFILE=${SYNERGY_DOCKERD_PIDFILE:-/run/synergy-dockerd.pid}
START_TIMEOUT_S=60

say() { echo "docker-up: $*"; }
die() { echo "docker-up: error: $*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
  is_root || die "$* missing and only root can install it (apt-get install $*)"
  say "installing $* (Debian packages)"
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -print -quit 2>/dev/null)" ]; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
}

# --- packages -----------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi

compose_v2() {
  local plugins=/usr/local/lib/docker/cli-plugins tmp apt_opts
  tmp=$(mktemp -d)
  # A private apt state: the package list of trixie, read and thrown away, sources untouched.
  apt_opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o "Dir::State::Status=$tmp/status"
            -o APT::Sandbox::User=root)
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
  touch "$tmp/status"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${SYNERGY_DEBIAN_MIRROR:-http://deb.debian.org/debian} trixie main" \
    > "$tmp/sources.list"
  if (cd "$tmp" && apt-get "${apt_opts[@]}" -qq update && apt-get "${apt_opts[@]}" -qq download docker-compose) \
       >"$tmp/apt.log" 2>&1 \
     && dpkg-deb -x "$tmp"/docker-compose_*.deb "$tmp/root" \
     && [ -x "$tmp/root/usr/libexec/docker/cli-plugins/docker-compose" ]; then
    install -D -m 0755 "$tmp/root/usr/libexec/docker/cli-plugins/docker-compose" "$plugins/docker-compose"
    say "installed Compose v2 ($("$plugins/docker-compose" version --short 2>/dev/null || echo '?')) from Debian trixie's docker-compose package into $plugins"
  else
    say "could not get Compose v2 from Debian trixie's package (see below); docker-compose 1.29 will be used"
    tail -3 "$tmp/apt.log" >&2 || true
  fi
  rm -rf "$tmp"
}

if ! docker compose version >/dev/null 2>&1 && [ -z "${SYNERGY_NO_COMPOSE_V2:-}" ] && is_root; then
  compose_v2
fi

# --- the daemon ---------------------------------------------------------------------------
if docker info >/dev/null 2>&1; then
  say "Docker engine $(docker version --format '{{.Server.Version}}' 2>/dev/null) answers"
  exit 0
fi
is_root || die "no Docker engine answers on $(docker context inspect --format '{{.Endpoints.docker.Host}}' 2>/dev/null || echo the socket), and only root can start one: start Docker (e.g. systemctl start docker) or run as root"

wait_up() {
  local pid=$1 waited=0
  while ! docker info >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    if [ "$waited" -ge "$START_TIMEOUT_S" ]; then kill "$pid" 2>/dev/null || true; return 1; fi
    sleep 1
    waited=$((waited + 1))
  done
}

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  say "starting docker.service"
  systemctl start docker
  docker info >/dev/null 2>&1 || die "docker.service started but the engine does not answer: journalctl -u docker"
  exit 0
fi

start_dockerd() {
  mkdir -p "$(dirname "$LOG")"
  # setsid: the daemon outlives the make or test that started it (it is the machine's engine).
  setsid dockerd "$@" >>"$LOG" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" > "$PIDFILE"
  if wait_up "$pid"; then
    say "started dockerd${*:+ $*} (pid $pid, log $LOG)"
    return 0
  fi
  rm -f "$PIDFILE"
  return 1
}

echo "--- dockerd started by deploy/images/docker-up.sh at $(date -u +%FT%TZ)" >> "$LOG"
start_dockerd && exit 0
# What went wrong decides the next try: both workarounds are on the engine's own flags.
if tail -40 "$LOG" | grep -qiE 'overlay|storage driver|graphdriver'; then
  say "dockerd failed with overlay2 (see $LOG); trying the vfs storage driver (slower, larger, works anywhere)"
  start_dockerd --storage-driver=vfs && exit 0
fi
if tail -40 "$LOG" | grep -qi 'iptables'; then
  say "dockerd failed on iptables (see $LOG); trying --iptables=false (no NAT: published ports still work)"
  start_dockerd --iptables=false && exit 0
fi
die "dockerd did not start within ${START_TIMEOUT_S}s; its log: $LOG (last lines below)
$(tail -15 "$LOG")"
