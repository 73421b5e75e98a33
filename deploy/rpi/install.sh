#!/usr/bin/env bash
# Make this Raspberry Pi (any systemd Linux host will do) the host of one Synergy device: the
# MAX78000FTHR or MAX78002 EV kit on its USB port becomes a device of the space.
#
#   sudo deploy/rpi/install.sh --tls-dir DIR [--coordinator HOST:PORT] [--wheel FILE | --source DIR] [--wheelhouse DIR]
#   sudo deploy/rpi/install.sh --uninstall [--purge]
#
# What it does (each step only when needed, so running it again changes nothing):
#   1. the system user `synergy` (group synergy, member of dialout; home /var/lib/synergy);
#   2. a virtual environment in /opt/synergy/venv with the project: from --wheel, --source
#      (default: the checkout this script is in), or by name from --wheelhouse; with
#      --wheelhouse, pip reads only that directory (--no-index: an offline Pi);
#   3. /etc/systemd/system/synergy-agent.service, /etc/udev/rules.d/99-synergy-board.rules
#      and /etc/modules-load.d/synergy.conf (the USB serial drivers), then reloads systemd
#      and udev and loads the drivers;
#   4. /etc/synergy/agent.env from agent.env.example if there is none (an existing one is
#      never touched), with SYNERGY_DEVICE_ID and SYNERGY_ADVERTISE from the certificate;
#   5. the certificates of --tls-dir (ca.pem, cert.pem, key.pem as `synergy ca issue` writes
#      them; revoked.txt when present) into /etc/synergy/tls, owned by synergy, key 0600.
# It does not enable or start the service: edit agent.env, then
#   sudo systemctl enable --now synergy-agent
#
# Staging: --root DIR (or DESTDIR=DIR) installs under DIR instead of /, needs no root, and
# prints the commands it would run (useradd, chown, systemctl, udevadm, modprobe) instead of
# running them. The unit and files still name the real paths (/opt/synergy, /etc/synergy).
set -euo pipefail

umask 022  # the venv and the unit must be readable whatever root's umask is
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

USER_NAME=synergy
PREFIX=/opt/synergy
VENV=$PREFIX/venv
ETC=/etc/synergy
TLS=$ETC/tls
ENV_FILE=$ETC/agent.env
UNIT_NAME=synergy-agent.service
UNIT=/etc/systemd/system/$UNIT_NAME
RULE=/etc/udev/rules.d/99-synergy-board.rules
MODULES=/etc/modules-load.d/synergy.conf
STATE=/var/lib/synergy
CACHE=/var/cache/synergy
TLS_FILES=(ca.pem cert.pem key.pem)

ROOT=${DESTDIR:-}
TLS_SRC=""
WHEEL=""
SOURCE=""
WHEELHOUSE=""
PYTHON=python3
COORDINATOR=""
NO_VENV=0
ACTION=install
PURGE=0

usage() {
    cat <<EOF
Usage: sudo $0 [OPTIONS]
       sudo $0 --uninstall [--purge] [--root DIR]

Install the Synergy agent as a systemd service next to a MAX78000FTHR or MAX78002 EV kit.

Options:
  --tls-dir DIR        the agent's certificates: ca.pem, cert.pem, key.pem as written by
                       \`synergy ca issue --role agent --name DEVICE_ID --san HOST --out DIR\`
                       (required unless $TLS already holds them)
  --coordinator H:P    the coordinator's address, written into a new $ENV_FILE
                       (default: a placeholder to edit)
  --wheel FILE         install the project from this wheel
  --source DIR         install the project from this source tree
                       (default: this checkout, $REPO)
  --wheelhouse DIR     install only from the wheels in DIR (pip --no-index): for a Pi
                       without network; alone, installs \`synergy\` from it by name
  --python PYTHON      the Python (>= 3.11) that makes the venv (default: $PYTHON)
  --no-venv            leave $VENV alone (update only the configuration)
  --root DIR           stage under DIR instead of / (default: \$DESTDIR, else /); runs no
                       system command, prints each one instead; needs no root
  --uninstall          stop and disable the service, remove the unit, the udev rule, the
                       modules file and $PREFIX; keep $ETC and the user
  --purge              with --uninstall: also remove $ETC, $STATE, $CACHE and the user
  -h, --help           this help

Installs: $UNIT, $RULE, $MODULES, $VENV, $ENV_FILE (only if absent), $TLS/.
Then: edit $ENV_FILE, and \`sudo systemctl enable --now synergy-agent\`.
EOF
}

die() {
    echo "install.sh: error: $*" >&2
    exit 1
}
note() { echo "install.sh: $*"; }
warn() { echo "install.sh: warning: $*" >&2; }

need_arg() {
    [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --tls-dir) need_arg "$@"; TLS_SRC=$2; shift 2 ;;
        --coordinator) need_arg "$@"; COORDINATOR=$2; shift 2 ;;
        --wheel) need_arg "$@"; WHEEL=$2; shift 2 ;;
        --source) need_arg "$@"; SOURCE=$2; shift 2 ;;
        --wheelhouse) need_arg "$@"; WHEELHOUSE=$2; shift 2 ;;
        --python) need_arg "$@"; PYTHON=$2; shift 2 ;;
        --root) need_arg "$@"; ROOT=$2; shift 2 ;;
        --no-venv) NO_VENV=1; shift ;;
        --uninstall) ACTION=uninstall; shift ;;
        --purge) PURGE=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

# Staging root: absolute, no trailing slash; "/" is the real system.
if [[ -n $ROOT ]]; then
    mkdir -p "$ROOT"
    ROOT=$(cd "$ROOT" && pwd)
    [[ $ROOT == / ]] && ROOT=""
fi
STAGING=0
[[ -n $ROOT ]] && STAGING=1

if [[ $STAGING == 0 && $EUID -ne 0 ]]; then
    die "run as root (sudo $0 ...), or stage with --root DIR"
fi
[[ $PURGE == 1 && $ACTION != uninstall ]] && die "--purge goes with --uninstall"

# A system command: run it, or in staging print it.
sys() {
    if [[ $STAGING == 1 ]]; then
        echo "would run: $*"
    else
        "$@"
    fi
}

CHANGED=0

# install_file SRC DEST MODE OWNER:GROUP: copy when the content differs; mode and owner always.
install_file() {
    local src=$1 dest=$ROOT$2 mode=$3 owner=$4
    mkdir -p "$(dirname "$dest")"
    if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
        note "unchanged $dest"
    else
        (umask 077 && cp "$src" "$dest.new.$$")  # a key is never readable by others, even briefly
        chmod "$mode" "$dest.new.$$"
        mv -f "$dest.new.$$" "$dest"
        note "installed $dest"
        CHANGED=1
    fi
    [[ $(stat -c %a "$dest") == "${mode#0}" ]] || chmod "$mode" "$dest"
    sys chown "$owner" "$dest"
}

# make_dir DIR MODE OWNER:GROUP
make_dir() {
    local dir=$ROOT$1 mode=$2 owner=$3
    mkdir -p "$dir"
    [[ $(stat -c %a "$dir") == "${mode#0}" ]] || chmod "$mode" "$dir"
    sys chown "$owner" "$dir"
}

# ---------------------------------------------------------------------------------------------
# Uninstall

if [[ $ACTION == uninstall ]]; then
    if [[ $STAGING == 1 || -e $ROOT$UNIT ]]; then
        sys systemctl disable --now "$UNIT_NAME" || warn "could not stop $UNIT_NAME"
    fi
    for f in "$UNIT" "$RULE" "$MODULES"; do
        if [[ -e $ROOT$f ]]; then
            rm -f "$ROOT$f"
            note "removed $ROOT$f"
        fi
    done
    if [[ -e $ROOT$PREFIX ]]; then
        rm -rf "$ROOT$PREFIX"
        note "removed $ROOT$PREFIX"
    fi
    sys systemctl daemon-reload
    sys udevadm control --reload-rules
    if [[ $PURGE == 1 ]]; then
        for d in "$ETC" "$STATE" "$CACHE"; do
            if [[ -e $ROOT$d ]]; then
                rm -rf "$ROOT$d"
                note "removed $ROOT$d"
            fi
        done
        if [[ $STAGING == 1 ]] || getent passwd "$USER_NAME" >/dev/null; then
            sys userdel "$USER_NAME"
        fi
    else
        note "kept $ROOT$ETC (configuration, certificates) and the user $USER_NAME; --purge removes them"
    fi
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Check everything before changing anything

host_port='^[][A-Za-z0-9._:-]+:[0-9]+$'
if [[ -n $COORDINATOR && ! $COORDINATOR =~ $host_port ]]; then
    die "--coordinator $COORDINATOR: expected HOST:PORT"
fi

pem_has() { grep -q -- "-----BEGIN $2" "$1"; }

if [[ -n $TLS_SRC ]]; then
    [[ -d $TLS_SRC ]] || die "--tls-dir $TLS_SRC is not a directory"
    for f in "${TLS_FILES[@]}"; do
        [[ -f $TLS_SRC/$f && -s $TLS_SRC/$f ]] || die "--tls-dir $TLS_SRC has no $f: it must hold ca.pem, cert.pem and key.pem, as \`synergy ca issue --dir CA_DIR --role agent --name DEVICE_ID --san HOST --out DIR\` writes them (docs/security.md)"
        [[ -r $TLS_SRC/$f ]] || die "cannot read $TLS_SRC/$f"
    done
    pem_has "$TLS_SRC/ca.pem" CERTIFICATE || die "$TLS_SRC/ca.pem is not a PEM certificate"
    pem_has "$TLS_SRC/cert.pem" CERTIFICATE || die "$TLS_SRC/cert.pem is not a PEM certificate"
    pem_has "$TLS_SRC/key.pem" "PRIVATE KEY" || die "$TLS_SRC/key.pem is not a PEM private key"
    CERT=$TLS_SRC/cert.pem
else
    for f in "${TLS_FILES[@]}"; do
        [[ -f $ROOT$TLS/$f ]] || die "no certificates: $ROOT$TLS has no $f; pass --tls-dir DIR with ca.pem, cert.pem and key.pem from \`synergy ca issue --dir CA_DIR --role agent --name DEVICE_ID --san HOST --out DIR\` (docs/security.md)"
    done
    CERT=$ROOT$TLS/cert.pem
fi

# The certificate's identity and names (with openssl; without it these checks are skipped).
DEVICE_ID=""
ADVERTISE_HOST=""
if command -v openssl >/dev/null; then
    subject=$(openssl x509 -in "$CERT" -noout -subject -nameopt RFC2253) || die "$CERT: openssl cannot read it"
    role=$(sed -n 's/.*OU=\([^,]*\).*/\1/p' <<<"$subject")
    DEVICE_ID=$(sed -n 's/.*CN=\([^,]*\).*/\1/p' <<<"$subject")
    [[ $role == agent ]] || die "$CERT names ${role:-no role}:${DEVICE_ID:-?}, not an agent: issue the device's own with \`synergy ca issue --dir CA_DIR --role agent --name DEVICE_ID --san HOST --out DIR\`"
    if [[ -n $TLS_SRC ]]; then
        openssl verify -CAfile "$TLS_SRC/ca.pem" "$TLS_SRC/cert.pem" >/dev/null 2>&1 ||
            die "$TLS_SRC/cert.pem is not signed by $TLS_SRC/ca.pem (or has expired): issue it again"
        cmp -s <(openssl x509 -in "$TLS_SRC/cert.pem" -noout -pubkey) <(openssl pkey -in "$TLS_SRC/key.pem" -pubout 2>/dev/null) ||
            die "$TLS_SRC/key.pem is not the key of $TLS_SRC/cert.pem"
    fi
    # The first name beyond localhost and 127.0.0.1: where peers reach this host.
    sans=$(openssl x509 -in "$CERT" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr ',' '\n' | sed 's/^ *//')
    ADVERTISE_HOST=$(sed -n -e 's/^DNS://p' -e 's/^IP Address://p' <<<"$sans" | grep -v -x -e localhost -e 127.0.0.1 | head -n 1 || true)
    if [[ -z $ADVERTISE_HOST ]]; then
        warn "$CERT is valid only for localhost and 127.0.0.1: the coordinator and the other agents cannot reach this host under its name; issue it with --san HOST (this host's name or address)"
    fi
else
    warn "openssl not found: the certificate's role and name are not checked, and agent.env gets no device id"
fi

if [[ $NO_VENV == 0 ]]; then
    if [[ -n $WHEEL ]]; then
        [[ -f $WHEEL && $WHEEL == *.whl ]] || die "--wheel $WHEEL is not a wheel file"
        TARGET=$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")
    elif [[ -n $SOURCE ]]; then
        [[ -f $SOURCE/pyproject.toml ]] || die "--source $SOURCE has no pyproject.toml"
        TARGET=$(cd "$SOURCE" && pwd)
    elif [[ -n $WHEELHOUSE ]]; then
        TARGET=synergy
    elif [[ -f $REPO/pyproject.toml ]]; then
        TARGET=$REPO
    else
        die "nothing to install: pass --wheel FILE, --source DIR or --wheelhouse DIR"
    fi
    PIP_INDEX=()
    if [[ -n $WHEELHOUSE ]]; then
        [[ -d $WHEELHOUSE ]] || die "--wheelhouse $WHEELHOUSE is not a directory"
        PIP_INDEX=(--no-index --find-links "$(cd "$WHEELHOUSE" && pwd)")
    fi
    if [[ ! -x $ROOT$VENV/bin/python ]]; then
        command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 or newer (apt-get install python3 python3-venv)"
        "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
            die "$PYTHON is $("$PYTHON" -V 2>&1); Synergy needs Python 3.11 or newer (--python PYTHON)"
        "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null ||
            die "$PYTHON cannot make a virtual environment: apt-get install python3-venv"
    fi
fi

# ---------------------------------------------------------------------------------------------
# 1. The user

if [[ $STAGING == 1 ]]; then
    sys useradd --system --user-group --groups dialout --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
elif ! getent passwd "$USER_NAME" >/dev/null; then
    getent group dialout >/dev/null || groupadd --system dialout
    useradd --system --user-group --groups dialout --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
    note "created the system user $USER_NAME (groups: $USER_NAME, dialout)"
    CHANGED=1
elif ! id -nG "$USER_NAME" | tr ' ' '\n' | grep -q -x dialout; then
    usermod --append --groups dialout "$USER_NAME"
    note "added $USER_NAME to dialout"
    CHANGED=1
fi

# ---------------------------------------------------------------------------------------------
# 2. The virtual environment

if [[ $NO_VENV == 0 ]]; then
    make_dir "$PREFIX" 0755 root:root
    if [[ ! -x $ROOT$VENV/bin/python ]]; then
        "$PYTHON" -m venv "$ROOT$VENV"
        note "created $ROOT$VENV"
        CHANGED=1
    fi
    pip=("$ROOT$VENV/bin/python" -m pip --disable-pip-version-check --no-input --quiet)
    # The dependencies as needed, then the project itself again: a rebuilt wheel or source
    # tree of the same version replaces what is installed.
    "${pip[@]}" install "${PIP_INDEX[@]}" "$TARGET" || die "pip could not install $TARGET"
    "${pip[@]}" install "${PIP_INDEX[@]}" --no-deps --force-reinstall "$TARGET" || die "pip could not install $TARGET"
    note "installed $TARGET into $ROOT$VENV"
fi

# ---------------------------------------------------------------------------------------------
# 3. Unit, udev rule, drivers

install_file "$HERE/synergy-agent.service" "$UNIT" 0644 root:root
install_file "$HERE/99-synergy-board.rules" "$RULE" 0644 root:root
install_file "$HERE/synergy-modules.conf" "$MODULES" 0644 root:root

# ---------------------------------------------------------------------------------------------
# 4. The settings (never overwritten)

make_dir "$ETC" 0755 root:root
if [[ -e $ROOT$ENV_FILE ]]; then
    note "kept $ROOT$ENV_FILE (compare with $HERE/agent.env.example after an upgrade)"
    current=$(sed -n 's/^SYNERGY_DEVICE_ID=//p' "$ROOT$ENV_FILE" | tail -n 1)
    if [[ -n $DEVICE_ID && $current != "$DEVICE_ID" ]]; then
        warn "$ROOT$ENV_FILE says SYNERGY_DEVICE_ID=$current but the certificate names $DEVICE_ID: the agent will refuse to start until they agree"
    fi
else
    tmp=$ROOT$ENV_FILE.new.$$
    (umask 077 && cp "$HERE/agent.env.example" "$tmp")
    [[ -n $DEVICE_ID ]] && sed -i "s|^SYNERGY_DEVICE_ID=.*|SYNERGY_DEVICE_ID=$DEVICE_ID|" "$tmp"
    if [[ -n $ADVERTISE_HOST ]]; then
        port=$(sed -n 's/^SYNERGY_AGENT_BIND=.*:\([0-9]*\)$/\1/p' "$tmp" | tail -n 1)
        [[ $ADVERTISE_HOST == *:* ]] && ADVERTISE_HOST="[$ADVERTISE_HOST]"  # IPv6
        sed -i "s|^SYNERGY_ADVERTISE=.*|SYNERGY_ADVERTISE=$ADVERTISE_HOST:${port:-50060}|" "$tmp"
    fi
    [[ -n $COORDINATOR ]] && sed -i "s|^SYNERGY_COORDINATOR=.*|SYNERGY_COORDINATOR=$COORDINATOR|" "$tmp"
    chmod 0640 "$tmp"
    mv "$tmp" "$ROOT$ENV_FILE"
    note "created $ROOT$ENV_FILE: check it (coordinator, preset, advertised address)"
    sys chown "root:$USER_NAME" "$ROOT$ENV_FILE"
    CHANGED=1
fi
if grep -q '^SYNERGY_COORDINATOR=COORDINATOR_HOST' "$ROOT$ENV_FILE"; then
    warn "set SYNERGY_COORDINATOR in $ROOT$ENV_FILE (or pass --coordinator HOST:PORT to a first install)"
fi

# ---------------------------------------------------------------------------------------------
# 5. Certificates

make_dir "$TLS" 0700 "$USER_NAME:$USER_NAME"
if [[ -n $TLS_SRC ]]; then
    install_file "$TLS_SRC/ca.pem" "$TLS/ca.pem" 0644 "$USER_NAME:$USER_NAME"
    install_file "$TLS_SRC/cert.pem" "$TLS/cert.pem" 0644 "$USER_NAME:$USER_NAME"
    install_file "$TLS_SRC/key.pem" "$TLS/key.pem" 0600 "$USER_NAME:$USER_NAME"
    if [[ -f $TLS_SRC/revoked.txt ]]; then
        install_file "$TLS_SRC/revoked.txt" "$TLS/revoked.txt" 0644 "$USER_NAME:$USER_NAME"
    fi
fi

# ---------------------------------------------------------------------------------------------
# Reload what reads these files

sys systemctl daemon-reload
sys udevadm control --reload-rules
sys udevadm trigger --subsystem-match=tty --action=change
sys modprobe -a cdc_acm ftdi_sio || warn "could not load cdc_acm / ftdi_sio; the board's port may need them"
if [[ $CHANGED == 1 ]]; then
    # A running agent picks up the new files; a stopped one stays stopped.
    sys systemctl try-restart "$UNIT_NAME"
fi

echo
note "done. Next: check $ENV_FILE, then: sudo systemctl enable --now synergy-agent"
note "follow it with: journalctl -u synergy-agent -f   (and \`synergy devices\` on the operator's machine)"
