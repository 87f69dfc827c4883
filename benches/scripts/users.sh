#!/usr/bin/env bash
# The 1,000-user load test (issue 7): the `users` scenario of namaskah-load against the
# two-instance loopback topology (deploy/loopback/up.sh: two namaskah-server instances
# sharing one PostgreSQL database and one Redis, nginx in front), through nginx's plain
# gRPC listener. USERS users, each a loop of log in now and then, the dashboard, browsing
# the catalog, a sandbox top-up sometimes, a purchase, the watch until the code (or a
# cancel), with 1-3 s of thinking before each step. The servers' CPU and memory over the
# measured part come from /proc.
#
# All the users share 127.0.0.1, so the per-address limit of sign-ins (20 a minute by
# default) is raised for the run; the plan limits (starter: 100 calls a minute per account)
# stay as they are. LOAD_ARGS adds options to the driver's command line (e.g. `--relogin 0`).
# Loopback only; the run is bounded in time; the scratch database and the run's Redis keys
# are removed at the end, and every process started here is stopped.
#
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/5 \
#     benches/scripts/users.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/5}
DB=${DB:-namaskah_users_bench}
USERS=${USERS:-1000}
CONNECTIONS=${CONNECTIONS:-100}
DURATION=${DURATION:-120s}
WARMUP=${WARMUP:-20s}
RAMP=${RAMP:-15s}
OUT=benches/out
RUN_DIR=${RUN_DIR:-$OUT/users-topology}
L=./target/release/namaskah-load
mkdir -p "$OUT"

command -v nginx >/dev/null 2>&1 || { echo "users.sh: nginx is needed (apt-get install nginx; see .ci/run)" >&2; exit 2; }
[[ -n ${NO_BUILD:-} ]] || cargo build --release -q -p namaskah-server -p namaskah-edge -p namaskah-bench

DB_URL="${PG_ADMIN_URL%/*}/$DB"
PREFIX="bench-users:$$:"
redis_db=${REDIS_URL##*/}
[[ $redis_db =~ ^[0-9]+$ ]] || redis_db=0
cleanup() {
  deploy/loopback/down.sh "$RUN_DIR" >/dev/null 2>&1 || true
  psql "$PG_ADMIN_URL" -qc "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
  redis-cli -n "$redis_db" --scan --pattern "${PREFIX}*" 2>/dev/null \
    | xargs -r -n 500 redis-cli -n "$redis_db" del >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql "$PG_ADMIN_URL" -qc "drop database if exists $DB with (force)" -c "create database $DB" >/dev/null
rm -rf "$RUN_DIR"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

DATABASE_URL="$DB_URL" REDIS_URL="$REDIS_URL" NAMASKAH_REDIS_PREFIX="$PREFIX" \
NAMASKAH_BIN_DIR="$PWD/target/release" NAMASKAH_SANDBOX=on NAMASKAH_SANDBOX_SMS_DELAY=5s \
NAMASKAH_SENSITIVE_RPM=1000000 RUST_LOG=warn \
  deploy/loopback/up.sh "$RUN_DIR" >"$OUT/users-topology.log"
# shellcheck disable=SC1091
. "$RUN_DIR/topology.env"
nginx_worker=$(pgrep -P "$NGINX_PID" | head -n1 || true)
processes=(--process "server-1=$SERVER_1_PID" --process "server-2=$SERVER_2_PID")
[[ -n $nginx_worker ]] && processes+=(--process "nginx=$nginx_worker")
redis_pid=$(pgrep -x redis-server | head -n1 || true)
[[ -n $redis_pid ]] && processes+=(--process "redis=$redis_pid")

echo "users.sh: $USERS users over $CONNECTIONS connections to nginx $NGINX_GRPC, $WARMUP warm-up, $DURATION measured" >&2
# LOAD_ARGS is split into words on purpose (several options).
# shellcheck disable=SC2086
$L --addr "http://$NGINX_GRPC" --scenario users --concurrency "$USERS" --connections "$CONNECTIONS" \
   --duration "$DURATION" --warmup "$WARMUP" --ramp "$RAMP" --timeout 10s --top-up 2000 \
   --mail-sink "$MAIL_SINKS" "${processes[@]}" --name "users-$USERS" ${LOAD_ARGS:-} \
   --json "$OUT/users.json" | tee "$OUT/users.txt"

echo
echo "nginx errors during the run (first lines):"
grep -v "^$" "$RUN_DIR/nginx/error.log" | head -n 5 || true
echo "server warnings and errors: $(cat "$RUN_DIR"/server-*.log | grep -c -E 'WARN|ERROR' || true)"
grep -h -E 'WARN|ERROR' "$RUN_DIR"/server-*.log | sed -E 's/^[^ ]+ +//' | cut -c1-160 | sort | uniq -c | sort -rn | head -n 8 || true
