#!/bin/sh
# synergy-tls-init: docker-compose.yml's one-shot `tls-init` service (runs as root in the
# Synergy image). Fills the `pki` volume once, then exits 0; later runs keep what is there.
#
#   /pki/ca/            the CA (ca.key mode 0600, root's)
#   /pki/coordinator/   coordinator:coordinator, valid for the host name `coordinator`; uid 10001's
#   /pki/broker/        `synergy mqtt-config`: mosquitto.conf, ACL, CRL, the broker's certificate
#                       (valid for `mqtt`), and health/: client:broker-health for the broker's
#                       health probe; uid 1883's (the broker image's mosquitto user)
#   /pki/client/        client:$SYNERGY_CLIENT_NAME and admin:$SYNERGY_ADMIN_NAME for people,
#   /pki/admin/         copied to /out (a bind mount of the host's build/compose-tls) so that
#                       `synergy ... --tls-dir build/compose-tls/client` works from the host
#
# Agents are not issued here: each agent container issues its own certificate at start, named
# after its device id (synergy container-agent), which is how `--scale ring=8` gives eight
# distinct identities. That needs the CA's key in the agents' containers (read-only): an
# emulation shortcut, not how real devices get keys (docs/emulation.md).
set -eu

PKI=${SYNERGY_PKI:-/pki}
OUT=${SYNERGY_TLS_OUT:-/out}
CLIENT=${SYNERGY_CLIENT_NAME:-compose-user}
ADMIN=${SYNERGY_ADMIN_NAME:-compose-admin}
SYNERGY_UID=$(id -u synergy)
BROKER_UID=${SYNERGY_BROKER_UID:-1883}

if [ "$(id -u)" != 0 ]; then
  echo "synergy-tls-init: must run as root (compose: user: root) to hand each key to its daemon's user" >&2
  exit 2
fi

if [ -f "$PKI/ca/ca.pem" ]; then
  echo "tls-init: CA already in $PKI/ca, keeping it"
else
  synergy ca init --dir "$PKI/ca"
fi

# issue ROLE NAME DIR [--san HOST ...]: only when DIR has no certificate yet.
issue() {
  role=$1 name=$2 dir=$3
  shift 3
  if [ -f "$dir/cert.pem" ]; then
    echo "tls-init: $role:$name already in $dir"
  else
    synergy ca issue --dir "$PKI/ca" --role "$role" --name "$name" --out "$dir" "$@"
  fi
}

issue coordinator coordinator "$PKI/coordinator" --san coordinator
chown -R "$SYNERGY_UID:$SYNERGY_UID" "$PKI/coordinator"
issue client "$CLIENT" "$PKI/client"
issue admin "$ADMIN" "$PKI/admin"

if [ -f "$PKI/broker/mosquitto.conf" ]; then
  echo "tls-init: broker configuration already in $PKI/broker"
else
  # Readers may subscribe to everything under the prefix: the people's identities. Its own
  # advice on running mosquitto does not apply here (the broker image runs it as uid 1883).
  synergy mqtt-config --ca-dir "$PKI/ca" --out "$PKI/broker" --bind 0.0.0.0 --san mqtt \
    --reader "$CLIENT" "$ADMIN" > /tmp/mqtt-config.out
  grep '^wrote' /tmp/mqtt-config.out
  # The broker image's health probe (mosquitto_sub): may read the broker's uptime, nothing else.
  issue client broker-health "$PKI/broker/health"
  cat >> "$PKI/broker/acl" <<'ACL'

# The broker's health probe (docker-compose.yml): its uptime, nothing else.
user broker-health
topic read $SYS/broker/uptime
ACL
fi
chown -R "$BROKER_UID:$BROKER_UID" "$PKI/broker"

if [ -d "$OUT" ]; then
  # The host's copies belong to whoever owns the directory they land in (make images creates
  # it as the user who ran it), so that user's `synergy` can read its key (mode 0600).
  owner=$(stat -c %u:%g "$OUT")
  for who in client admin; do
    rm -rf "${OUT:?}/$who"
    cp -R "$PKI/$who" "$OUT/$who"
    chown -R "$owner" "$OUT/$who"
  done
  echo "tls-init: client and admin TLS directories copied to the host (owner $owner)"
fi
echo "tls-init: done"
