#!/usr/bin/env bash
# dockweb.sh: the one entry point. Install what dockweb needs, run it, test it, benchmark it.
#
#   ./dockweb.sh up        install, then run dockweb (today: the engine daemon) in the foreground
#   ./dockweb.sh test      install, plus the docker CLI, then run the whole test suite
#   ./dockweb.sh install   install only
#   ./dockweb.sh engine    install, then run only the engine daemon
#   ./dockweb.sh bench     install, plus dockerd/runc/crun, then run bench/run_container_bench.py
#
# Installing is idempotent and fast when nothing changed: apt runs only for missing packages
# (dpkg-query), pip only when requirements.txt differs from the stamp in .venv.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$REPO/.venv"
STAMP="$VENV/.requirements.sha256"
export DEBIAN_FRONTEND=noninteractive

ENGINE_ROOT="${DOCKWEB_ENGINE_ROOT:-/var/lib/dockweb}"
ENGINE_SOCKET="${DOCKWEB_ENGINE_SOCKET:-/run/dockweb/engine.sock}"

# What running dockweb needs: python3 + venv for the virtualenv, busybox-static for the bootstrap
# busybox image, libseccomp2 for pyseccomp (loaded with ctypes), iproute2 for network namespaces.
RUN_PACKAGES=(python3 python3-venv busybox-static libseccomp2 iproute2 tini)
# The peers bench/run_container_bench.py compares against (docker.io brings dockerd and containerd).
BENCH_PACKAGES=(docker.io runc crun)

say() { printf 'dockweb: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
    sed -n '4,8p' "$0" | sed 's/^# \{0,1\}//'
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "$1 needs root (run: sudo $0 ${*:2})"
}

missing_packages() {
    local pkg
    for pkg in "$@"; do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != "installed" ]; then
            printf '%s\n' "$pkg"
        fi
    done
}

# Install Debian packages that are not installed yet; never start their services.
apt_install() {
    local missing
    mapfile -t missing < <(missing_packages "$@")
    [ "${#missing[@]}" -eq 0 ] && return 0
    need_root "installing ${missing[*]}" install
    say "installing ${missing[*]}"
    # policy-rc.d answering 101 tells invoke-rc.d not to start services (docker.io's dockerd) during
    # the install. Only remove it afterwards if we created it.
    local created_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT  # also when apt is interrupted
    fi
    local rc=0
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || rc=$?
    if [ -n "$created_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
    [ "$rc" -eq 0 ] || die "apt-get install ${missing[*]} failed (exit $rc)"
}

system_python() {
    # The distribution's python3 (the one python3-venv serves), not a pyenv or conda shim on PATH.
    if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi
}

ensure_venv() {
    local py
    py="$(system_python)" || die "python3 not found"
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$py is $("$py" -V 2>&1); dockweb needs Python 3.11 or newer"
    if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        say "creating the virtualenv in $VENV"
        rm -rf "$VENV"
        "$py" -m venv "$VENV"
    fi
    local want have=""
    want="$(sha256sum "$REPO/requirements.txt" | cut -d' ' -f1)"
    [ -f "$STAMP" ] && have="$(cat "$STAMP")"
    if [ "$want" != "$have" ]; then
        say "installing requirements.txt into $VENV"
        "$VENV/bin/pip" install --disable-pip-version-check -q -r "$REPO/requirements.txt"
        echo "$want" > "$STAMP"
    fi
}

install_runtime() {
    apt_install "${RUN_PACKAGES[@]}"
    ensure_venv
}

install_test() {
    install_runtime
    # The integration tests drive the engine with the real docker CLI. Debian's docker.io brings one;
    # its daemon is never started (policy-rc.d above, and nothing here runs it).
    if ! command -v docker >/dev/null 2>&1; then
        apt_install docker.io
        command -v docker >/dev/null 2>&1 || die "docker.io is installed but no docker CLI is on PATH"
    fi
}

install_bench() {
    install_runtime
    apt_install "${BENCH_PACKAGES[@]}"
}

run_engine() {
    need_root "the engine daemon" "$1"
    mkdir -p "$(dirname "$ENGINE_SOCKET")"
    say "engine root $ENGINE_ROOT, socket $ENGINE_SOCKET; Ctrl-C stops it (containers keep running)"
    say "in another shell, point the docker CLI at it:"
    echo "export DOCKER_HOST=unix://$ENGINE_SOCKET"
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    local args=(serve --root "$ENGINE_ROOT" --socket "$ENGINE_SOCKET")
    [ -n "${DOCKWEB_CGROUP_PARENT:-}" ] && args+=(--cgroup-parent "$DOCKWEB_CGROUP_PARENT")
    exec "$VENV/bin/python" -m engine "${args[@]}"
}

run_tests() {
    cd "$REPO"
    local rc=0
    "$VENV/bin/python" -m pytest "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then
        say "pytest collected no tests: that is a failure"
        exit 1
    fi
    exit "$rc"
}

cmd="${1:-help}"
[ "$#" -gt 0 ] && shift
case "$cmd" in
    install) install_runtime; say "installed" ;;
    up)      install_runtime; run_engine up ;;
    engine)  install_runtime; run_engine engine ;;
    test)    install_test; run_tests "$@" ;;
    bench)   install_bench; cd "$REPO"; exec "$VENV/bin/python" bench/run_container_bench.py "$@" ;;
    help|-h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
