#!/usr/bin/env bash
# Install and start the services that the postgres- and browser-marked tests need:
# a throwaway PostgreSQL cluster on loopback, and Debian's chromium + chromedriver.
#
#   eval "$(bash scripts/ci_services.sh)"      # install, start, export TRIANGULATE_TEST_PG
#   bash scripts/ci_services.sh stop           # stop the cluster and delete its data
#
# stdout carries only `export NAME=value` lines (so it can be eval'd); progress
# goes to stderr. Safe to re-run: a running cluster is reused. Needs root (apt,
# and running the server as the unprivileged `postgres` user that initdb wants).
set -euo pipefail

STATE_DIR=${TRIANGULATE_PG_DIR:-${TMPDIR:-/tmp}/triangulate-ci-pg}
DB_NAME=triangulate_test
log() { echo "ci_services: $*" >&2; }

pg_bin_dir() {
  # Debian keeps server binaries out of PATH, one directory per major version.
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_postgres() {
  if command -v runuser >/dev/null 2>&1; then runuser -u postgres -- "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
}

stop_cluster() {
  local bin
  bin=$(pg_bin_dir)
  if [ -n "$bin" ] && [ -f "$STATE_DIR/data/postmaster.pid" ]; then
    as_postgres "$bin/pg_ctl" -D "$STATE_DIR/data" -m fast -w stop >&2 || true
  fi
  rm -rf "$STATE_DIR"
  log "stopped"
}

if [ "${1:-start}" = "stop" ]; then
  stop_cluster
  exit 0
fi

missing=()
[ -n "$(pg_bin_dir)" ] || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

BIN=$(pg_bin_dir)
[ -n "$BIN" ] || { log "no PostgreSQL server binaries under /usr/lib/postgresql"; exit 1; }
id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres

if [ -f "$STATE_DIR/port" ] && as_postgres "$BIN/pg_ctl" -D "$STATE_DIR/data" status >/dev/null 2>&1; then
  PORT=$(cat "$STATE_DIR/port")
  log "reusing the cluster in $STATE_DIR on port $PORT"
else
  rm -rf "$STATE_DIR"
  mkdir -p "$STATE_DIR"
  chown postgres "$STATE_DIR"
  chmod 700 "$STATE_DIR"
  # A free loopback port, so a system cluster on 5432 (or a second CI job) never clashes.
  PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_postgres "$BIN/initdb" -D "$STATE_DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  # Loopback TCP only; the socket lives in the state dir so nothing is written to /var/run.
  as_postgres "$BIN/pg_ctl" -D "$STATE_DIR/data" -l "$STATE_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $STATE_DIR -c fsync=off" start >&2
  echo "$PORT" >"$STATE_DIR/port"
  as_postgres "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB_NAME"
  log "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') running on 127.0.0.1:$PORT (data in $STATE_DIR)"
fi

log "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo missing)"
echo "export TRIANGULATE_TEST_PG=postgresql://postgres@127.0.0.1:$PORT/$DB_NAME"
echo "export TRIANGULATE_CHROMIUM=/usr/bin/chromium"
