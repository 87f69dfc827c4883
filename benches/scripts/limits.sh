#!/usr/bin/env bash
# The rate-limit layer's cost (issue 5): the GetMe (API key) scenario with the layer off and
# on, alternating, in one session, with the in-process limiter and with Redis. With the
# layer on, every call also goes through the plan look-up and the usage meter. The plan
# limit is raised so that no call is refused: this measures the cost, not the limit.
# Single runs on two shared cores vary by ±10 %: use ROUNDS=4 or more and read the totals.
# Loopback only; every run is bounded in time.
#
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379 \
#     benches/scripts/limits.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
DURATION=${DURATION:-15s}
ROUNDS=${ROUNDS:-2}
ADDR=127.0.0.1:50151
L=./target/release/namaskah-load
OUT=benches/out
RAISED='[{"plan": "starter", "requests_per_minute": 100000000}]'
mkdir -p "$OUT"

[[ -n ${NO_BUILD:-} ]] || cargo build --release -q -p namaskah-server -p namaskah-bench

db_url() { echo "${PG_ADMIN_URL%/*}/namaskah_bench"; }
rps() { python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["rps"]))' "$1"; }
summary() { # name, json
  python3 - "$1" "$2" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
lat = {d["percentage"]: d["latency"] / 1e6 for d in r["latencyDistribution"]}
codes = ", ".join(f"{k} {v}" for k, v in sorted(r["statusCodeDistribution"].items()))
print(f"| {name} | {r['count']} | {r['rps']:.0f} | {lat[50]:.2f} | {lat[95]:.2f} | {lat[99]:.2f} | {codes} |")
PY
}

run_server() { # extra env...
  psql "$PG_ADMIN_URL" -qc "drop database if exists namaskah_bench" -c "create database namaskah_bench" >/dev/null
  env DATABASE_URL="$(db_url)" NAMASKAH_GRPC_ADDR=$ADDR NAMASKAH_EDGE_ADDR=off \
      NAMASKAH_METRICS_ADDR=off NAMASKAH_PLANS="$RAISED" \
      NAMASKAH_JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn "$@" \
      ./target/release/namaskah-server >"$OUT/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 50); do
    NAMASKAH_GRPC_ADDR=$ADDR ./target/release/namaskah-server healthcheck >/dev/null 2>&1 && break
    sleep 0.2
  done
}

measure() { # label, file, extra env...
  local label=$1 file=$2; shift 2
  run_server "$@"
  $L --addr "http://$ADDR" --scenario get_me --connections 4 --concurrency 50 \
     --duration "$DURATION" --warmup 2s --json "$file" >/dev/null 2>&1
  kill -TERM $SERVER; wait $SERVER || true
  summary "$label" "$file"
}

echo "| run | count | rps | p50 ms | p95 ms | p99 ms | codes |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
declare -A total
for store in inproc redis; do
  extra=()
  [ "$store" = redis ] && extra=(REDIS_URL="$REDIS_URL" NAMASKAH_REDIS_PREFIX="bench:$$:")
  for round in $(seq 1 "$ROUNDS"); do
    # Odd rounds off then on, even rounds on then off: neither setting always goes first.
    order="off on"; (( round % 2 == 0 )) && order="on off"
    for layer in $order; do
      file="$OUT/limits-$store-$layer-$round.json"
      measure "GetMe, $store, layer $layer (round $round)" "$file" \
        "${extra[@]}" NAMASKAH_RATE_LIMITS=$layer
      total[$store-$layer]=$(( ${total[$store-$layer]:-0} + $(rps "$file") ))
    done
  done
done
echo
for store in inproc redis; do
  python3 -c "import sys; off,on=int(sys.argv[2]),int(sys.argv[3]); print(f'{sys.argv[1]}: layer on / off = {on/off:.3f} (cost {100*(1-on/off):.1f} %)')" \
    "$store" "${total[$store-off]}" "${total[$store-on]}"
done
