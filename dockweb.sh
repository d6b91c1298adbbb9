#!/usr/bin/env bash
# dockweb.sh: the one entry point. Install what dockweb needs, run it, test it, benchmark it.
#
#   ./dockweb.sh up        install, then run the whole stack in the foreground (Ctrl-C stops it)
#   ./dockweb.sh stop      stop the stack a running `up` started (from another shell)
#   ./dockweb.sh test      install, plus the docker CLI, Redis and PostgreSQL, then run the whole test suite
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
# busybox image, libseccomp2 for pyseccomp (loaded with ctypes), iproute2 and iptables for container networks
# and published ports, tini for `docker run --init`.
RUN_PACKAGES=(python3 python3-venv busybox-static libseccomp2 iproute2 iptables tini)
# The control-plane tests start their own Redis and PostgreSQL servers from these packages (never the services),
# and check docker-compose.dev.yml with docker-compose. The browser tests drive Debian's chromium with Playwright
# (no browser download). The registry tests run Debian's docker-registry (the CNCF distribution registry) with an
# htpasswd file made by apache2-utils' htpasswd; the base-image test runs debootstrap. docker.io brings a docker
# CLI when the machine has none, and the private dockerd the save/load round-trip test starts (its service is
# never started: policy-rc.d below).
TEST_PACKAGES=(redis-server postgresql docker-compose chromium docker-registry apache2-utils debootstrap docker.io)
# The peers bench/run_container_bench.py compares against (docker.io brings dockerd and containerd).
BENCH_PACKAGES=(docker.io runc crun)

say() { printf 'dockweb: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
    sed -n '4,9p' "$0" | sed 's/^# \{0,1\}//'
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
    apt_install "${TEST_PACKAGES[@]}"
    # The integration tests drive the engine with the real docker CLI.
    command -v docker >/dev/null 2>&1 || die "docker.io is installed but no docker CLI is on PATH"
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

# --- the whole stack: `up` and `stop` ------------------------------------------------------------------------
STATE_DIR="${DOCKWEB_STATE_DIR:-/var/lib/dockweb-control}"
WEB_BIND="${DOCKWEB_BIND:-127.0.0.1}"
WEB_PORT="${DOCKWEB_PORT:-8000}"
REDIS_PORT="${DOCKWEB_REDIS_PORT:-6390}"
CHILD_PIDS=()
CHILD_NAMES=()

# Start "$@" in the background with its output in $STATE_DIR/log/<name>.log; remember its pid.
start_child() {
    local name="$1"; shift
    "$@" >>"$STATE_DIR/log/$name.log" 2>&1 </dev/null &
    CHILD_PIDS+=("$!")
    CHILD_NAMES+=("$name")
    say "started $name (pid $!, log $STATE_DIR/log/$name.log)"
}

# SIGTERM every child we started, newest first, by pid; SIGKILL what is left after 10 seconds.
stop_children() {
    trap - INT TERM EXIT
    local i pid deadline
    for ((i = ${#CHILD_PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${CHILD_PIDS[$i]}" 2>/dev/null || true
    done
    deadline=$((SECONDS + 10))
    for pid in "${CHILD_PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -f "$STATE_DIR/up.pid"
    say "stopped every process this run started (containers keep running in their supervisors)"
}

wait_until() {  # wait_until SECONDS WHAT COMMAND...: retry COMMAND every 0.1 s
    local limit="$1" what="$2"; shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "$what did not come up within ${limit}s (see $STATE_DIR/log/)"
        sleep 0.1
    done
}

engine_answers() {
    "$VENV/bin/python" - "$ENGINE_SOCKET" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(1)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
sys.exit(0 if s.recv(64).split()[1] == b"200" else 1)
PY
}

run_stack() {
    need_root "the stack (its engine daemon)" up
    mkdir -p "$STATE_DIR/log" "$(dirname "$ENGINE_SOCKET")"
    chmod 700 "$STATE_DIR"
    if [ -f "$STATE_DIR/up.pid" ] && kill -0 "$(cat "$STATE_DIR/up.pid")" 2>/dev/null; then
        die "dockweb is already up (pid $(cat "$STATE_DIR/up.pid")); stop it with: $0 stop"
    fi
    # Install before setting the traps: apt_install sets and clears its own EXIT trap.
    [ -n "${REDIS_URL:-}" ] || apt_install redis-server
    echo "$$" > "$STATE_DIR/up.pid"
    trap 'stop_children; exit 0' INT TERM
    trap stop_children EXIT

    # Settings for every child: a generated secret key kept in the state directory, SQLite there too.
    if [ -z "${DOCKWEB_SECRET_KEY:-}" ] && [ "${DOCKWEB_DEBUG:-0}" != "1" ]; then
        if [ ! -s "$STATE_DIR/secret_key" ]; then
            (umask 077; "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(50))' > "$STATE_DIR/secret_key")
        fi
        DOCKWEB_SECRET_KEY="$(cat "$STATE_DIR/secret_key")"
        export DOCKWEB_SECRET_KEY
    fi
    export DATABASE_URL="${DATABASE_URL:-sqlite:///$STATE_DIR/db.sqlite3}"
    export DOCKWEB_STATIC_ROOT="${DOCKWEB_STATIC_ROOT:-$STATE_DIR/static}"
    export DOCKWEB_ENGINE_SOCKET="$ENGINE_SOCKET"
    export DJANGO_SETTINGS_MODULE=dockweb.settings
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    cd "$REPO"

    if [ -z "${REDIS_URL:-}" ]; then
        mkdir -p "$STATE_DIR/redis"
        # A private instance on loopback with its own directory, not the system service; nothing persisted.
        start_child redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STATE_DIR/redis" \
            --save "" --appendonly no --daemonize no --protected-mode yes
        export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
        wait_until 30 "redis-server" redis-cli -p "$REDIS_PORT" ping
    fi

    local engine_args=(serve --root "$ENGINE_ROOT" --socket "$ENGINE_SOCKET")
    [ -n "${DOCKWEB_CGROUP_PARENT:-}" ] && engine_args+=(--cgroup-parent "$DOCKWEB_CGROUP_PARENT")
    start_child engine "$VENV/bin/python" -m engine "${engine_args[@]}"
    wait_until 60 "the engine daemon" engine_answers

    say "migrating the database ($DATABASE_URL)"
    "$VENV/bin/python" manage.py migrate --noinput -v 0
    "$VENV/bin/python" manage.py collectstatic --noinput -v 0
    local init_out queues
    init_out="$("$VENV/bin/python" manage.py dockweb_init)"
    queues="$("$VENV/bin/python" manage.py dockweb_queues)"

    start_child web "$VENV/bin/daphne" -b "$WEB_BIND" -p "$WEB_PORT" dockweb.asgi:application
    start_child worker "$VENV/bin/celery" -A dockweb worker --queues "$queues" --loglevel INFO \
        --concurrency "${DOCKWEB_WORKER_CONCURRENCY:-2}"
    start_child beat "$VENV/bin/celery" -A dockweb beat --loglevel INFO \
        --scheduler django_celery_beat.schedulers:DatabaseScheduler --pidfile "$STATE_DIR/celerybeat.pid"
    start_child events "$VENV/bin/python" manage.py dockweb_events
    wait_until 60 "the web server" "$VENV/bin/python" -c \
        "import urllib.request; urllib.request.urlopen('http://$WEB_BIND:$WEB_PORT/healthz', timeout=1)"

    echo
    echo "dockweb is up: http://$WEB_BIND:$WEB_PORT/"
    printf '%s\n' "$init_out" | sed 's/^/  /'
    echo "  docker CLI: export DOCKER_HOST=unix://$ENGINE_SOCKET"
    echo "  Ctrl-C (or $0 stop) stops everything started here."
    echo

    # Any child exiting ends the stack: a half-up dockweb would fail in confusing ways.
    local rc=0 i
    wait -n "${CHILD_PIDS[@]}" || rc=$?
    for i in "${!CHILD_PIDS[@]}"; do
        if ! kill -0 "${CHILD_PIDS[$i]}" 2>/dev/null; then
            say "${CHILD_NAMES[$i]} exited (status $rc); its log ends with:"
            tail -n 20 "$STATE_DIR/log/${CHILD_NAMES[$i]}.log" >&2 || true
        fi
    done
    exit 1
}

stop_stack() {
    local pid
    [ -f "$STATE_DIR/up.pid" ] || die "dockweb is not up (no $STATE_DIR/up.pid)"
    pid="$(cat "$STATE_DIR/up.pid")"
    # Only the `up` shell itself: a stale file must not make us kill an unrelated process reusing the pid.
    if ! tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "dockweb.sh up"; then
        rm -f "$STATE_DIR/up.pid"
        die "dockweb is not up (pid $pid is not ./dockweb.sh up)"
    fi
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    say "stopped"
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
    up)      install_runtime; run_stack ;;
    stop)    stop_stack ;;
    engine)  install_runtime; run_engine engine ;;
    test)    install_test; run_tests "$@" ;;
    bench)   install_bench; cd "$REPO"; exec "$VENV/bin/python" bench/run_container_bench.py "$@" ;;
    help|-h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
