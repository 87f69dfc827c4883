#!/usr/bin/env bash
# Verifications under load on PostgreSQL (issue 4): the release server on a fresh database
# with the sandbox provider (no automatic SMS, so every number stays ACTIVE; the jobs
# quiet), then, in one session:
#   - health, for reference;
#   - an unmeasured create_verification run of 3000 calls, then ANALYZE (planner statistics);
#   - ROUNDS times: create_verification (50 in flight, one funded account per worker), then
#     pgbench running the bare three-statement transaction (conditional debit, ledger row,
#     verification row) with 50 clients on scratch tables in a scratch database on the
#     same PostgreSQL; the ratio of the two;
#   - get_verification on 500 verifications bought in its set-up;
#   - watch_streams: STREAMS WatchVerification streams over STREAM_CONNECTIONS connections,
#     on a server started afresh for them (same database): its VmRSS before and while they are
#     open, then live CANCELLED events.
# Loopback only; every run is bounded in time; both scratch databases are dropped at the end.
#
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres benches/scripts/verifications.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=${DB:-namaskah_verifications_bench}
PGBENCH_DB=${PGBENCH_DB:-namaskah_pgbench_scratch}
DURATION=${DURATION:-15}            # seconds, for create_verification, pgbench, get_verification
ROUNDS=${ROUNDS:-2}
STREAMS=${STREAMS:-10000}
STREAM_CONNECTIONS=${STREAM_CONNECTIONS:-100}
HOLD=${HOLD:-10s}
ADDR=127.0.0.1:50153
L=./target/release/namaskah-load
S=./target/release/namaskah-server
OUT=benches/out
mkdir -p "$OUT"

[[ -n ${NO_BUILD:-} ]] || cargo build --release -q -p namaskah-bench -p namaskah-server

DB_URL="${PG_ADMIN_URL%/*}/$DB"
PGBENCH_URL="${PG_ADMIN_URL%/*}/$PGBENCH_DB"
MAIL="$OUT/verifications-mail.jsonl"
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  psql "$PG_ADMIN_URL" -qc "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
  psql "$PG_ADMIN_URL" -qc "drop database if exists $PGBENCH_DB with (force)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql "$PG_ADMIN_URL" -qc "drop database if exists $DB with (force)" -c "create database $DB" >/dev/null
psql "$PG_ADMIN_URL" -qc "drop database if exists $PGBENCH_DB with (force)" -c "create database $PGBENCH_DB" >/dev/null
rm -f "$MAIL"

# The pgbench side: scratch tables, one account row per client, the bare transaction
# (benches/scripts/bare/, shared with ceiling.sh).
BARE=benches/scripts/bare
psql "$PGBENCH_URL" -q -v ON_ERROR_STOP=1 -f "$BARE/schema.sql" >/dev/null

# The limits (issue 5) are raised: this measures the lifecycle, and one driver address
# registers hundreds of accounts. Streams need no descriptor each (they share STREAM_CONNECTIONS connections), but raise
# the soft limit to the hard one for the server anyway.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
SERVER_ENV=(DATABASE_URL="$DB_URL" NAMASKAH_GRPC_ADDR=$ADDR NAMASKAH_EDGE_ADDR=off
            NAMASKAH_METRICS_ADDR=off NAMASKAH_SANDBOX=on NAMASKAH_SANDBOX_SMS_DELAY=off
            NAMASKAH_JOB_INTERVAL=1h NAMASKAH_MAIL_SINK="$MAIL"
            NAMASKAH_PLANS='[{"plan": "starter", "requests_per_minute": 100000000}]'
            NAMASKAH_SENSITIVE_RPM=1000000 NAMASKAH_ANONYMOUS_RPM=1000000
            NAMASKAH_JWT_SECRET=bench-secret-bench-secret-bench-secret RUST_LOG=warn)
start_server() { # log file
  env "${SERVER_ENV[@]}" $S >"$1" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 50); do
    env "${SERVER_ENV[@]}" $S healthcheck >/dev/null 2>&1 && break
    sleep 0.2
  done
  env "${SERVER_ENV[@]}" $S healthcheck >/dev/null
}
start_server "$OUT/verifications-server.log"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status"; }
IDLE_RSS=$(rss)

row() { # name, json: one table row from a ghz-shaped report
  python3 - "$1" "$2" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
lat = {d["percentage"]: d["latency"] / 1e6 for d in r["latencyDistribution"]}
codes = ", ".join(f"{k} {v}" for k, v in sorted(r["statusCodeDistribution"].items()))
at = lambda p: f"{lat[p]:.2f}" if p in lat else "-"
print(f"| {name} | {r['count']} | {r['rps']:.0f} | {at(50)} | {at(95)} | {at(99)} | {r['slowest']/1e6:.1f} | {codes} |")
PY
}
pgbench_row() { # name, pgbench output, log prefix: tps from pgbench, percentiles from its log
  python3 - "$1" "$2" "$3" <<'PY'
import glob, re, sys
name, out, prefix = sys.argv[1:4]
text = open(out).read()
tps = float(re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text).group(1))
count = int(re.search(r"number of transactions actually processed: (\d+)", text).group(1))
failed = re.search(r"number of failed transactions: (\d+)", text)
lat = sorted(int(line.split()[2]) for f in glob.glob(prefix + "*") for line in open(f))
at = lambda p: f"{lat[min(len(lat) - 1, int(len(lat) * p / 100))] / 1000:.2f}"
print(f"| {name} | {count} | {tps:.0f} | {at(50)} | {at(95)} | {at(99)} | {lat[-1]/1000:.1f} | "
      f"failed {failed.group(1) if failed else '?'} |")
PY
}
rps_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rps"])' "$1"; }
tps_of() { sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$1"; }

# CPU time (clock ticks) of the server, of PostgreSQL (every live postgres process, plus
# the postmaster's finished children), and of the whole machine (busy, all cores); and the
# bench database's transaction and row counters.
cpu() {
  python3 - "$SERVER" <<'PY'
import os, sys
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[:text.rindex(")")].split("(", 1)[1], text[text.rindex(")") + 2:].split()
server, pg = 0, 0
_, f = stat(sys.argv[1]); server = int(f[11]) + int(f[12])
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        comm, f = stat(pid)
    except OSError:
        continue
    if comm == "postgres":
        pg += int(f[11]) + int(f[12])
        if f[1] == "1":  # the postmaster: add its reaped children (pgbench's backends)
            pg += int(f[13]) + int(f[14])
cpu = open("/proc/stat").readline().split()[1:9]
busy = sum(map(int, cpu)) - int(cpu[3]) - int(cpu[4])
print(server, pg, busy)
PY
}
pgstat() {
  psql "$PG_ADMIN_URL" -tAF' ' -c "select xact_commit, tup_fetched, tup_inserted, tup_updated from pg_stat_database where datname = '$1'"
}
cpu_line() { # name, count, cpu before, cpu after: core-milliseconds per unit
  python3 - "$@" <<'PY'
import os, sys
name, count = sys.argv[1], int(sys.argv[2])
a, b = [list(map(int, x.split())) for x in sys.argv[3:5]]
hz = os.sysconf("SC_CLK_TCK")
d = [(y - x) * 1000 / hz / count for x, y in zip(a, b)]
print(f"- {name}: CPU per transaction (core-ms): PostgreSQL {d[1]:.2f}, "
      f"the rest (pgbench, our idle server, other sessions) {d[2] - d[0] - d[1]:.2f}; machine busy {d[2]:.2f}")
PY
}
cpu_of() { # name, json: the driver's CPU figures (--server-pid)
  python3 - "$1" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[2]))["cpu"]
print(f"- {sys.argv[1]} ({c['calls']} calls, warm-up included): CPU per call (core-ms): server {c['serverMs']:.2f}, "
      f"PostgreSQL {c['postgresMs']:.2f}, the rest (driver, other sessions) {c['restMs']:.2f}; machine busy {c['machineMs']:.2f}")
PY
}
count_of() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["count"] + int(r.get("verifications", {}).get("warmupCalls", 0)))' "$1"; }
CPU_LINES=()

load() { cut -d' ' -f1 /proc/loadavg; }
LOADS=()
RATIOS=()
echo "| run | count | rps / tps | p50 ms | p95 ms | p99 ms | max ms | codes |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
LOADS+=("health $(load)")
$L --addr "http://$ADDR" --scenario health --connections 4 --concurrency 50 \
   --duration 10s --warmup 2s --json "$OUT/verifications-health.json" >"$OUT/verifications-health.txt" 2>&1
row "health, 4 x 50" "$OUT/verifications-health.json"

# A fresh database has no planner statistics until autovacuum's first ANALYZE (up to a
# minute away): without them, PostgreSQL answers CreateVerification's idempotency look-up
# (user_id, request_id) through ix_verifications_user_phone and reads every verification of
# the account. Fill the tables with an unmeasured run, then ANALYZE, as a live database is.
$L --addr "http://$ADDR" --scenario create_verification --mail-sink "$MAIL" \
   --connections 4 --concurrency 50 --total 3000 >"$OUT/verifications-create-0.txt" 2>&1 ||
  { echo "create_verification (filling) failed:" >&2; tail -20 "$OUT/verifications-create-0.txt" >&2; exit 1; }
psql "$DB_URL" -qc "analyze" >/dev/null

for round in $(seq 1 "$ROUNDS"); do
  LOADS+=("create-$round $(load)")
  STAT0=$(pgstat "$DB")
  $L --addr "http://$ADDR" --scenario create_verification --mail-sink "$MAIL" --server-pid "$SERVER" \
     --connections 4 --concurrency 50 --duration "${DURATION}s" --warmup 2s \
     --json "$OUT/verifications-create-$round.json" >"$OUT/verifications-create-$round.txt" 2>&1 ||
    { echo "create_verification failed:" >&2; tail -20 "$OUT/verifications-create-$round.txt" >&2; exit 1; }
  sleep 1 # PostgreSQL flushes its statistics at most once a second
  STAT1=$(pgstat "$DB")
  row "create_verification, 4 x 50 (round $round)" "$OUT/verifications-create-$round.json"
  CPU_LINES+=("$(cpu_of "create_verification round $round" "$OUT/verifications-create-$round.json")")
  N=$(count_of "$OUT/verifications-create-$round.json")
  CPU_LINES+=("$(python3 - "$N" "$STAT0" "$STAT1" <<'PY'
import sys
n = int(sys.argv[1]); a, b = [list(map(int, x.split())) for x in sys.argv[2:4]]
d = [(y - x) / n for x, y in zip(a, b)]
print(f"  - in the server's database, per call (its set-up of 50 accounts included): {d[0]:.2f} commits, "
      f"{d[1]:.1f} rows fetched, {d[2]:.2f} rows inserted, {d[3]:.2f} rows updated")
PY
)")
  LOADS+=("pgbench-$round $(load)")
  rm -f "$OUT"/verifications-pgbench-$round-log*
  CPU0=$(cpu)
  pgbench -n -M prepared -c 50 -j 2 -T "$DURATION" -f "$BARE/transaction.sql" \
     -l --log-prefix="$OUT/verifications-pgbench-$round-log" "$PGBENCH_URL" \
     >"$OUT/verifications-pgbench-$round.txt" 2>&1 ||
    { echo "pgbench failed:" >&2; tail -20 "$OUT/verifications-pgbench-$round.txt" >&2; exit 1; }
  CPU1=$(cpu)
  N=$(sed -n 's/^number of transactions actually processed: \([0-9]*\)$/\1/p' "$OUT/verifications-pgbench-$round.txt")
  CPU_LINES+=("$(cpu_line "pgbench round $round ($N transactions)" "$N" "$CPU0" "$CPU1")")
  pgbench_row "pgbench, bare transaction, -c 50 -j 2 (round $round)" \
     "$OUT/verifications-pgbench-$round.txt" "$OUT/verifications-pgbench-$round-log"
  RATIOS+=("round $round: $(python3 -c 'import sys; print(f"{float(sys.argv[1]):.0f} / {float(sys.argv[2]):.0f} = {float(sys.argv[1])/float(sys.argv[2]):.3f}")' \
           "$(rps_of "$OUT/verifications-create-$round.json")" "$(tps_of "$OUT/verifications-pgbench-$round.txt")")")
done

LOADS+=("get $(load)")
$L --addr "http://$ADDR" --scenario get_verification --mail-sink "$MAIL" --verifications 500 --server-pid "$SERVER" \
   --connections 4 --concurrency 50 --duration "${DURATION}s" --warmup 2s \
   --json "$OUT/verifications-get.json" >"$OUT/verifications-get.txt" 2>&1 ||
    { echo "get_verification failed:" >&2; tail -20 "$OUT/verifications-get.txt" >&2; exit 1; }
row "get_verification, 4 x 50" "$OUT/verifications-get.json"
CPU_LINES+=("$(cpu_of "get_verification" "$OUT/verifications-get.json")")

# The streams on a server that ran nothing before (same database): what the create and get
# runs left in the allocator would otherwise be counted against the streams, or hide them.
kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true
start_server "$OUT/verifications-server-streams.log"
LOADS+=("watch $(load)")
STATUS=0
$L --addr "http://$ADDR" --scenario watch_streams --mail-sink "$MAIL" --server-pid "$SERVER" \
   --streams "$STREAMS" --connections "$STREAM_CONNECTIONS" --concurrency 200 \
   --accounts 10 --verifications 200 --cancel 3 --duration "$HOLD" \
   --json "$OUT/verifications-watch.json" >"$OUT/verifications-watch.txt" 2>&1 || STATUS=$?
if [ ! -f "$OUT/verifications-watch.json" ]; then
  echo "watch_streams failed (exit $STATUS):" >&2; cat "$OUT/verifications-watch.txt" >&2; exit 1
fi
row "watch_streams: opening $STREAMS streams (call to SNAPSHOT), 200 at once" "$OUT/verifications-watch.json"
echo
echo "create_verification / pgbench (rps / tps): ${RATIOS[*]}"
printf '%s\n' "${CPU_LINES[@]}"
python3 - "$OUT/verifications-watch.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = r["streams"]; m = r["memory"]; l = r["live"]
mib = lambda k: f"{k / 1024:.1f} MiB"
print(f"watch_streams: {s['open']} of {s['requested']} streams open over {s['connections']} connections "
      f"({s['verifications']} ACTIVE verifications of {s['accounts']} accounts), opened in {s['openingNanos']/1e9:.2f} s, "
      f"held {s['holdNanos']/1e9:.0f} s")
if m:
    print(f"  server VmRSS: before {mib(m['before']['rssKib'])}, all open {mib(m['open']['rssKib'])}, "
          f"after the hold {mib(m['held']['rssKib'])} (VmHWM {mib(m['held']['peakKib'])}), "
          f"closed {mib(m['closed']['rssKib'])} -> **{m['kibPerStream']:.2f} KiB per stream** "
          f"((after the hold - before) / open streams); half open ({m['halfOpen']} streams) {mib(m['halfway']['rssKib'])}, "
          f"so the second half cost {m['marginalKibPerStream']:.2f} KiB per stream")
print(f"  live: cancelled {l['cancelled']} verifications, {l['received']} of {l['watchers']} watchers got CANCELLED "
      f"(missing {l['missing']}, other {l['other'] or 'none'})")
PY
echo "server VmRSS at idle after start: $((IDLE_RSS / 1024)) MiB ($IDLE_RSS KiB); the streams' server at the end: $(( $(rss) / 1024 )) MiB"
echo "1-minute load average before each run (other work on the machine shows here): ${LOADS[*]}"
exit $STATUS
