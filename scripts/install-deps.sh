#!/usr/bin/env bash
# Installs, from Debian's packages, what building liege and running its tests need on a fresh
# Debian 12 machine (the Rust toolchain itself is expected to be there already). Run as root.
# Called by .ci/run; run it by hand before `cargo run` on a new machine.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (e.g. sudo bash scripts/install-deps.sh)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get -o Acquire::Retries=3 update
# python3.11 + libpython3.11(-dev): the CPython liege embeds (PYO3_PYTHON in .cargo/config.toml)
# python3.11-venv: venvs for tests (pip from PyPI)       build-essential: cc for -sys crates
# nginx: the uwsgi_pass tests     systemd: systemd-analyze verify of the unit files
# dpkg-dev: dpkg-deb (+ dpkg-architecture) for the .deb test      passwd: useradd for test users
# logrotate: checks the packaged logrotate snippet     ca-certificates: pip over HTTPS
apt-get install -y --no-install-recommends -o Acquire::Retries=3 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    nginx \
    python3.11 python3.11-venv python3.11-dev libpython3.11-dev \
    build-essential \
    systemd \
    dpkg-dev \
    passwd \
    logrotate \
    ca-certificates \
    procps
