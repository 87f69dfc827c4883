#!/usr/bin/env bash
# What metrics and Sentry cost (issue 7: "together under 5 % of throughput"): GetMe (API
# key) at saturation against one namaskah-server on PostgreSQL and Redis, with
#   on:  NAMASKAH_METRICS_ADDR set and /metrics scraped every SCRAPE seconds, and
#        SENTRY_DSN pointing at a fake Sentry on 127.0.0.1 started here (it answers 200 to
#        every envelope and counts them), SENTRY_TRACES_SAMPLE_RATE at its default (0.1);
#   off: NAMASKAH_METRICS_ADDR=off (no recorder is installed) and no SENTRY_DSN;
# alternating off, on, off, on… ROUNDS times in one session, the server restarted for each
# run on the same database. The plan limit is raised so that nothing is refused; the
# rate-limit layer stays on, as in production.
# Loopback only; every run is bounded in time; the database, the Redis keys and every
# process started here are removed at the end.
#
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/5 \
#     benches/scripts/observability.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/5}
DB=${DB:-namaskah_observability_bench}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
SCRAPE=${SCRAPE:-1}
OUT=benches/out
L=./target/release/namaskah-load
S=./target/release/namaskah-server
RAISED='[{"plan": "starter", "requests_per_minute": 100000000}]'
mkdir -p "$OUT"

[[ -n ${NO_BUILD:-} ]] || cargo build --release -q -p namaskah-server -p namaskah-bench

read -r ADDR_PORT METRICS_PORT SENTRY_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
ADDR=127.0.0.1:$ADDR_PORT
DB_URL="${PG_ADMIN_URL%/*}/$DB"
PREFIX="bench-obs:$$:"
redis_db=${REDIS_URL##*/}
[[ $redis_db =~ ^[0-9]+$ ]] || redis_db=0
SERVER= SENTRY= SCRAPER=
stop() { # pid
  [[ -n $1 ]] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  stop "$SCRAPER"; stop "$SERVER"; stop "$SENTRY"
  psql "$PG_ADMIN_URL" -qc "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
  redis-cli -n "$redis_db" --scan --pattern "${PREFIX}*" 2>/dev/null \
    | xargs -r -n 500 redis-cli -n "$redis_db" del >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql "$PG_ADMIN_URL" -qc "drop database if exists $DB with (force)" -c "create database $DB" >/dev/null

# The fake Sentry: every POST (envelopes, the store endpoint) is read and answered 200;
# GET /count says how many arrived and their bytes.
python3 - "$SENTRY_PORT" >"$OUT/observability-sentry.log" 2>&1 <<'PY' &
import http.server, sys, threading
lock = threading.Lock()
seen = {"requests": 0, "bytes": 0}
class Sentry(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        with lock:
            seen["requests"] += 1
            seen["bytes"] += len(body)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def do_GET(self):
        with lock:
            text = f'{seen["requests"]} {seen["bytes"]}\n'.encode()
        self.send_response(200)
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sentry).serve_forever()
PY
SENTRY=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$SENTRY_PORT/count" >/dev/null && break; sleep 0.1; done

BASE_ENV=(DATABASE_URL="$DB_URL" REDIS_URL="$REDIS_URL" NAMASKAH_REDIS_PREFIX="$PREFIX"
          NAMASKAH_GRPC_ADDR=$ADDR NAMASKAH_EDGE_ADDR=off NAMASKAH_PLANS="$RAISED"
          NAMASKAH_JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn)
start_server() { # on|off
  local extra=(NAMASKAH_METRICS_ADDR=off)
  if [[ $1 == on ]]; then
    extra=(NAMASKAH_METRICS_ADDR="127.0.0.1:$METRICS_PORT" SENTRY_DSN="http://public@127.0.0.1:$SENTRY_PORT/1"
           SENTRY_ENVIRONMENT=bench)
  fi
  env "${BASE_ENV[@]}" "${extra[@]}" $S >>"$OUT/observability-server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do
    env "${BASE_ENV[@]}" $S healthcheck >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "observability.sh: the server did not start (log: $OUT/observability-server.log)" >&2
  exit 1
}
summary() { # name, json, extra column
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
name, path, extra = sys.argv[1:4]
r = json.load(open(path))
lat = {d["percentage"]: d["latency"] / 1e6 for d in r["latencyDistribution"]}
codes = ", ".join(f"{k} {v}" for k, v in sorted(r["statusCodeDistribution"].items()))
print(f"| {name} | {r['count']} | {r['rps']:.0f} | {lat[50]:.2f} | {lat[95]:.2f} | {lat[99]:.2f} | {codes} | {extra} |")
PY
}
rps() { python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["rps"]))' "$1"; }

# One API key for every run (the database is kept between them).
start_server off
eval "$($L --addr "http://$ADDR" --scenario get_me --setup-only 2>/dev/null)"
export NAMASKAH_API_KEY
stop "$SERVER"; SERVER=

echo "| run | count | rps | p50 ms | p95 ms | p99 ms | codes | scrapes, envelopes to the fake Sentry |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
declare -A total
for round in $(seq 1 "$ROUNDS"); do
  for mode in off on; do
    start_server "$mode"
    before=$(curl -sf "http://127.0.0.1:$SENTRY_PORT/count" | cut -d' ' -f1)
    scrapes=0
    if [[ $mode == on ]]; then
      ( n=0; while sleep "$SCRAPE"; do curl -sf -o /dev/null "http://127.0.0.1:$METRICS_PORT/metrics" && n=$((n+1)); echo $n >"$OUT/observability-scrapes"; done ) &
      SCRAPER=$!
    fi
    file="$OUT/observability-$mode-$round.json"
    $L --addr "http://$ADDR" --scenario get_me --connections 4 --concurrency 50 \
       --duration "$DURATION" --warmup 2s --json "$file" >/dev/null 2>&1
    if [[ $mode == on ]]; then
      stop "$SCRAPER"; SCRAPER=
      scrapes=$(cat "$OUT/observability-scrapes" 2>/dev/null || echo 0)
      size=$(curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | wc -c)
    fi
    stop "$SERVER"; SERVER=
    after=$(curl -sf "http://127.0.0.1:$SENTRY_PORT/count" | cut -d' ' -f1)
    extra="-"
    [[ $mode == on ]] && extra="$scrapes scrapes of $size bytes, $((after - before)) envelopes"
    summary "GetMe, metrics and Sentry $mode (round $round)" "$file" "$extra"
    total[$mode]=$(( ${total[$mode]:-0} + $(rps "$file") ))
  done
done
echo
python3 -c "import sys; off,on=int(sys.argv[1]),int(sys.argv[2]); print(f'metrics and Sentry on / off = {on/off:.3f} (cost {100*(1-on/off):.1f} %)')" \
  "${total[off]}" "${total[on]}"
echo "fake Sentry received (requests, bytes): $(curl -sf "http://127.0.0.1:$SENTRY_PORT/count")"
