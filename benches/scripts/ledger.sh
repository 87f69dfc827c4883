#!/usr/bin/env bash
# The ledger under load on PostgreSQL, next to the health check of the same run: the
# release server on a fresh database, `health` against it, then `ledger` (holds and
# releases on many wallets, straight through the server's ledger code) on the same
# database, at 50 and at 8 in flight. Loopback only; every run is bounded in time; the
# scratch database is dropped at the end. Exits non-zero if a ledger run's books do not
# balance.
#
#   PG_ADMIN_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres benches/scripts/ledger.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}
DB=${DB:-namaskah_ledger_bench}
DURATION=${DURATION:-15s}
WALLETS=${WALLETS:-1000}
ADDR=127.0.0.1:50152
L=./target/release/namaskah-load
S=./target/release/namaskah-server
OUT=benches/out
mkdir -p "$OUT"

[[ -n ${NO_BUILD:-} ]] || cargo build --release -q -p namaskah-bench -p namaskah-server

DB_URL="${PG_ADMIN_URL%/*}/$DB"
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  psql "$PG_ADMIN_URL" -qc "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql "$PG_ADMIN_URL" -qc "drop database if exists $DB with (force)" -c "create database $DB" >/dev/null

SERVER_ENV=(DATABASE_URL="$DB_URL" NAMASKAH_GRPC_ADDR=$ADDR NAMASKAH_EDGE_ADDR=off
            NAMASKAH_JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn)
env "${SERVER_ENV[@]}" $S >"$OUT/ledger-server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 50); do
  env "${SERVER_ENV[@]}" $S healthcheck >/dev/null 2>&1 && break
  sleep 0.2
done
env "${SERVER_ENV[@]}" $S healthcheck >/dev/null

row() { # name, json: one table row from a ghz-shaped report
  python3 - "$1" "$2" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
def line(name, r):
    lat = {d["percentage"]: d["latency"] / 1e6 for d in r["latencyDistribution"]}
    codes = ", ".join(f"{k} {v}" for k, v in sorted(r["statusCodeDistribution"].items()))
    at = lambda p: f"{lat[p]:.2f}" if p in lat else "-"
    print(f"| {name} | {r['count']} | {r['rps']:.0f} | {at(50)} | {at(95)} | {at(99)} | {r['slowest']/1e6:.1f} | {codes} |")
line(name, r)
for op, report in r.get("operations", {}).items():
    line(f"{name}: {op}", report)
PY
}
ledger_line() { # name, json: entries per second and the books
  python3 - "$1" "$2" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path)); l = r["ledger"]; b = r["books"]
print(f"- {name}: {l['entries']} entries in {r['total']/1e9:.2f} s = **{l['entriesPerSecond']:.0f} entries/s** "
      f"({l['holds']} holds, {l['releases']} releases; insufficient funds {l['insufficientFunds']}, "
      f"errors {l['errors']}; warm-up {l['warmupEntries']} entries). Books: "
      f"{'balanced' if b['balanced'] else 'NOT BALANCED'} over {b['entries']} entries / {b['lines']} lines / "
      f"{b['accounts']} accounts; this run's entries in the database {b['runEntries']}, "
      f"driver count {b['driverEntries']} ({'same' if b['countedRight'] else 'MISCOUNT or not compared'}).")
PY
}

load() { cut -d' ' -f1 /proc/loadavg; }
LOADS=()
echo "| run | count | rps | p50 ms | p95 ms | p99 ms | max ms | codes |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
LOADS+=("health $(load)")
$L --addr "http://$ADDR" --scenario health --connections 4 --concurrency 50 \
   --duration "$DURATION" --warmup 2s --json "$OUT/ledger-run-health.json" >"$OUT/ledger-run-health.txt" 2>&1
row "PostgreSQL: health, 4 x 50" "$OUT/ledger-run-health.json"

STATUS=0
for c in 50 8; do
  rm -f "$OUT/ledger-run-ledger-$c.json"
  LOADS+=("ledger-$c $(load)")
  $L --scenario ledger --database-url "$DB_URL" --wallets "$WALLETS" --concurrency $c \
     --duration "$DURATION" --warmup 2s --json "$OUT/ledger-run-ledger-$c.json" \
     >"$OUT/ledger-run-ledger-$c.txt" 2>&1 || STATUS=$?
  if [ ! -f "$OUT/ledger-run-ledger-$c.json" ]; then
    echo "ledger run at $c in flight failed (exit $STATUS):" >&2; cat "$OUT/ledger-run-ledger-$c.txt" >&2; exit 1
  fi
  row "PostgreSQL: ledger, $c in flight" "$OUT/ledger-run-ledger-$c.json"
done
echo
for c in 50 8; do
  ledger_line "ledger, $c in flight" "$OUT/ledger-run-ledger-$c.json"
done
echo
echo "1-minute load average before each run (other work on the machine shows here): ${LOADS[*]}"
exit $STATUS
