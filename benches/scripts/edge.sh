#!/usr/bin/env bash
# What the edge adds (issue 6: "less than 0.3 ms at p50"): GetMe with an API key, as JSON
# through the edge (wrk: GET /v1/users/me with X-Api-Key, HTTP/1.1 keep-alive) next to the
# same RPC over gRPC (namaskah-load get_me), against one namaskah-server on PostgreSQL and
# Redis, in one session:
#   - one call at a time (the latency the edge adds, nothing queued): gRPC 1 x 1, JSON through
#     the in-process edge (wrk -t1 -c1), JSON through the standalone namaskah-edge in front
#     of the same server (wrk -t1 -c1);
#   - under load: gRPC 4 connections x 50 in flight, JSON through the in-process edge with
#     50 connections (wrk -t2 -c50);
# ROUNDS times, in that order. The plan limit is raised so that nothing is refused.
# Loopback only; every run is bounded in time; the database, the Redis keys and every
# process started here are removed at the end.
#
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/5 \
#     benches/scripts/edge.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/5}
DB=${DB:-namaskah_edge_bench}
DURATION=${DURATION:-10}   # seconds per run
ROUNDS=${ROUNDS:-2}
OUT=benches/out
L=./target/release/namaskah-load
S=./target/release/namaskah-server
E=./target/release/namaskah-edge
RAISED='[{"plan": "starter", "requests_per_minute": 100000000}]'
mkdir -p "$OUT"

command -v wrk >/dev/null 2>&1 || { echo "edge.sh: wrk is needed (apt-get install wrk)" >&2; exit 2; }
[[ -n ${NO_BUILD:-} ]] || cargo build --release -q -p namaskah-server -p namaskah-edge -p namaskah-bench

read -r GRPC_PORT EDGE_PORT STANDALONE_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
DB_URL="${PG_ADMIN_URL%/*}/$DB"
PREFIX="bench-edge:$$:"
redis_db=${REDIS_URL##*/}
[[ $redis_db =~ ^[0-9]+$ ]] || redis_db=0
SERVER= EDGE=
stop() { [[ -n $1 ]] || return 0; kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
cleanup() {
  stop "$EDGE"; stop "$SERVER"
  psql "$PG_ADMIN_URL" -qc "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
  redis-cli -n "$redis_db" --scan --pattern "${PREFIX}*" 2>/dev/null \
    | xargs -r -n 500 redis-cli -n "$redis_db" del >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql "$PG_ADMIN_URL" -qc "drop database if exists $DB with (force)" -c "create database $DB" >/dev/null

SERVER_ENV=(DATABASE_URL="$DB_URL" REDIS_URL="$REDIS_URL" NAMASKAH_REDIS_PREFIX="$PREFIX"
            NAMASKAH_GRPC_ADDR=127.0.0.1:$GRPC_PORT NAMASKAH_EDGE_ADDR=127.0.0.1:$EDGE_PORT
            NAMASKAH_METRICS_ADDR=off NAMASKAH_PLANS="$RAISED"
            NAMASKAH_JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn)
env "${SERVER_ENV[@]}" $S >"$OUT/edge-server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do env "${SERVER_ENV[@]}" $S healthcheck >/dev/null 2>&1 && break; sleep 0.1; done
env NAMASKAH_EDGE_ADDR=127.0.0.1:$STANDALONE_PORT NAMASKAH_UPSTREAM=http://127.0.0.1:$GRPC_PORT RUST_LOG=warn \
  $E >"$OUT/edge-standalone.log" 2>&1 &
EDGE=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$STANDALONE_PORT/healthz" >/dev/null && break; sleep 0.1; done

eval "$($L --addr "http://127.0.0.1:$GRPC_PORT" --scenario get_me --setup-only 2>/dev/null)"
export NAMASKAH_API_KEY
# The JSON route answers, with the same user, before anything is measured.
curl -sf -H "X-Api-Key: $NAMASKAH_API_KEY" "http://127.0.0.1:$EDGE_PORT/v1/users/me" >"$OUT/edge-me.json"
curl -sf -H "X-Api-Key: $NAMASKAH_API_KEY" "http://127.0.0.1:$STANDALONE_PORT/v1/users/me" >/dev/null

grpc_row() { # name, json
  python3 - "$1" "$2" <<'PY'
import json, sys
name, path = sys.argv[1:3]
r = json.load(open(path))
lat = {d["percentage"]: d["latency"] / 1e6 for d in r["latencyDistribution"]}
codes = ", ".join(f"{k} {v}" for k, v in sorted(r["statusCodeDistribution"].items()))
print(f"| {name} | {r['count']} | {r['rps']:.0f} | {lat[50]:.3f} | {lat[90]:.3f} | {lat[99]:.3f} | {codes} |")
PY
}
wrk_row() { # name, wrk output file
  python3 - "$1" "$2" <<'PY'
import re, sys
name, path = sys.argv[1:3]
text = open(path).read()
def ms(value):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]
lat = {int(p): ms(v) for p, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)$", text, re.M)}
count = int(re.search(r"(\d+) requests in", text).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = re.search(r"Socket errors: (.*)", text)
codes = f"200 {count - int(non2xx.group(1)) if non2xx else count}"
if non2xx: codes += f", other {non2xx.group(1)}"
if errors: codes += f", socket errors {errors.group(1)}"
print(f"| {name} | {count} | {rps:.0f} | {lat[50]:.3f} | {lat[90]:.3f} | {lat[99]:.3f} | {codes} |")
PY
}
grpc() { # name, file, connections, concurrency
  $L --addr "http://127.0.0.1:$GRPC_PORT" --scenario get_me --connections "$3" --concurrency "$4" \
     --duration "${DURATION}s" --warmup 2s --json "$2" >/dev/null 2>&1
  grpc_row "$1" "$2"
}
json() { # name, file, port, threads, connections
  wrk -t"$4" -c"$5" -d2s -H "X-Api-Key: $NAMASKAH_API_KEY" "http://127.0.0.1:$3/v1/users/me" >/dev/null
  wrk -t"$4" -c"$5" -d"${DURATION}s" --latency -H "X-Api-Key: $NAMASKAH_API_KEY" \
      "http://127.0.0.1:$3/v1/users/me" >"$2"
  wrk_row "$1" "$2"
}

echo "| run | count | rps | p50 ms | p90 ms | p99 ms | codes |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for round in $(seq 1 "$ROUNDS"); do
  grpc "gRPC GetMe, 1 x 1 (round $round)" "$OUT/edge-grpc-1-$round.json" 1 1
  json "JSON GET /v1/users/me, in-process edge, 1 connection (round $round)" "$OUT/edge-json-1-$round.txt" "$EDGE_PORT" 1 1
  json "JSON GET /v1/users/me, namaskah-edge, 1 connection (round $round)" "$OUT/edge-standalone-1-$round.txt" "$STANDALONE_PORT" 1 1
  grpc "gRPC GetMe, 4 x 50 (round $round)" "$OUT/edge-grpc-50-$round.json" 4 50
  json "JSON GET /v1/users/me, in-process edge, 50 connections (round $round)" "$OUT/edge-json-50-$round.txt" "$EDGE_PORT" 2 50
done
