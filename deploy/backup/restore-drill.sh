#!/usr/bin/env bash
# Restore drill (run by .ci/run against its PostgreSQL): a fresh database gets the server's
# migrations and a bounded workload through the real server (accounts, top-ups, numbers
# bought, codes delivered, cancelled, expired by the jobs); the server stops; every table is
# dumped in a fixed order; backup.sh backs the database up (three times, keeping two);
# the database is dropped and created again, empty; restore.sh restores the newest backup;
# every table must then be exactly as before, byte for byte, and the migrations must find
# nothing to do.
#
#   PG_ADMIN_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres deploy/backup/restore-drill.sh
#
# Environment: PG_ADMIN_URL (a superuser's URL; the drill creates and drops its own
# database next to it), NAMASKAH_BIN_DIR (where namaskah-server is; default target/debug).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
admin=${PG_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}
bin=${NAMASKAH_BIN_DIR:-$repo/target/debug}/namaskah-server
[[ -x $bin ]] || { echo "restore-drill: $bin is missing (cargo build -p namaskah-server)" >&2; exit 2; }
for tool in psql pg_dump pg_restore python3; do
  command -v "$tool" >/dev/null || { echo "restore-drill: $tool is needed" >&2; exit 2; }
done

work=$(mktemp -d -t namaskah-drill.XXXXXX)
db=namaskah_drill_$(date -u +%Y%m%d%H%M%S)_$$
url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$admin" "$db")
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  psql --no-psqlrc -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf 'restore-drill: %s\n' "$*"; }
fail() { printf 'restore-drill: FAILED: %s\n' "$*" >&2; exit 1; }
sql() { psql --no-psqlrc -Atq --dbname="$url" -c "$1"; }

psql --no-psqlrc -q "$admin" -c "CREATE DATABASE $db" >/dev/null
DATABASE_URL=$url "$bin" migrate >/dev/null || fail "migrations"

# The server, alone, on free loopback ports; its verifications expire after 2 s.
read -r grpc_port edge_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))
for x in s: x.close()')
env DATABASE_URL="$url" NAMASKAH_GRPC_ADDR="127.0.0.1:$grpc_port" NAMASKAH_EDGE_ADDR="127.0.0.1:$edge_port" \
  NAMASKAH_METRICS_ADDR=off NAMASKAH_MAIL_SINK="$work/mail.jsonl" NAMASKAH_SANDBOX_SMS_DELAY=off \
  NAMASKAH_VERIFICATION_TTL=2s NAMASKAH_JOB_INTERVAL=200ms REDIS_URL= NAMASKAH_TLS_CERT= NAMASKAH_TLS_KEY= \
  NAMASKAH_JWT_SECRET="drill-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  "$bin" serve </dev/null >"$work/server.log" 2>&1 &
server_pid=$!

# The workload, as a client would do it, over the JSON API (bounded: 6 accounts, 5 numbers
# each, about 80 calls).
python3 - "http://127.0.0.1:$edge_port" "$work/mail.jsonl" <<'PY' || { tail -n 20 "$work/server.log" >&2; fail "the workload"; }
import json, sys, time, urllib.error, urllib.request, uuid
base, sink = sys.argv[1], sys.argv[2]

def call(method, path, body=None, token=None):
    request = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", **({"authorization": "Bearer " + token} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as error:
        sys.exit(f"{method} {path}: {error.code} {error.read().decode()}")

for _ in range(300):  # the edge answers once the server is up
    try:
        urllib.request.urlopen(base + "/healthz", timeout=2)
        break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("the server did not start")

def mailed_token(email):
    for _ in range(200):
        for line in open(sink) if __import__("os").path.exists(sink) else []:
            mail = json.loads(line)
            if mail["to"] == email and "token=" in mail["text"]:
                return mail["text"].split("token=")[1].split()[0].rstrip(".")
        time.sleep(0.05)
    sys.exit(f"no mail to {email}")

counts = {}
for account in range(6):
    email = f"drill-{uuid.uuid4().hex[:12]}@example.com"
    call("POST", "/v1/auth:register", {"email": email, "password": "drill password 42"})
    call("POST", "/v1/auth:verifyEmail", {"token": mailed_token(email)})
    token = call("POST", "/v1/auth:login", {"email": email, "password": "drill password 42"})["tokens"]["accessToken"]
    top_up = call("POST", "/v1/topUps", {"amount": {"currencyCode": "USD", "minorUnits": "5000"},
                                         "requestId": str(uuid.uuid4())}, token)["topUp"]
    call("POST", "/v1/sandbox:completePayment", {"reference": top_up["reference"]}, token)
    # A second top-up left pending at the gateway.
    call("POST", "/v1/topUps", {"amount": {"currencyCode": "USD", "minorUnits": "700"},
                                "requestId": str(uuid.uuid4())}, token)
    for n in range(5):
        v = call("POST", "/v1/verifications", {"service": ["whatsapp", "telegram", "google"][n % 3],
                                                "country": "GB", "requestId": str(uuid.uuid4())}, token)["verification"]
        what = (account + n) % 3
        if what == 0:
            call("POST", "/v1/sandbox:injectSms", {"phoneNumber": v["phoneNumber"],
                                                  "text": f"Your code is {100000 + account * 10 + n}"}, token)
        elif what == 1:
            call("POST", f"/v1/{v['name']}:cancel", {}, token)
        counts[what] = counts.get(what, 0) + 1
print(f"restore-drill: workload: {counts.get(0, 0)} codes, {counts.get(1, 0)} cancels, {counts.get(2, 0)} left to expire")
PY

# The jobs expire what was left alone (bounded), then the server stops cleanly.
for _ in $(seq 1 150); do
  [[ $(sql "SELECT count(*) FROM verifications WHERE status IN ('pending', 'active')") == 0 ]] && break
  sleep 0.2
done
[[ $(sql "SELECT count(*) FROM verifications WHERE status IN ('pending', 'active')") == 0 ]] \
  || fail "verifications still open after 30 s"
kill -TERM "$server_pid"
wait "$server_pid" || fail "the server did not stop cleanly (log: $work/server.log)"
server_pid=

# Every table, every row, in a fixed order.
snapshot() { # directory
  mkdir -p "$1"
  for table in $(sql "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"); do
    sql "COPY (SELECT * FROM \"$table\" r ORDER BY r::text) TO STDOUT" >"$1/$table.tsv"
  done
}
snapshot "$work/before"
summary=$(sql "SELECT string_agg(status || ' ' || n, ', ' ORDER BY status) FROM (SELECT status, count(*) AS n FROM verifications GROUP BY status) s")
entries=$(sql "SELECT count(*) FROM journal_entries")
lines=$(sql "SELECT count(*) FROM journal_lines")
(( entries > 0 )) || fail "the workload wrote no ledger entries"
[[ $(sql "SELECT count(*) FROM verifications") == 30 ]] || fail "the workload did not buy 30 numbers"
say "before: verifications ($summary), $entries journal entries, $lines journal lines, $(ls "$work/before" | wc -l) tables"

# Back up three times, keeping two.
for _ in 1 2 3; do
  DATABASE_URL=$url NAMASKAH_BACKUP_DIR="$work/backups" NAMASKAH_BACKUP_KEEP=2 \
    "$repo/deploy/backup/backup.sh" || fail "backup.sh"
done
# A failing dump (a database that does not exist) exits non-zero and leaves no file behind.
if DATABASE_URL=${url}_missing NAMASKAH_BACKUP_DIR="$work/backups" NAMASKAH_BACKUP_KEEP=2 \
  "$repo/deploy/backup/backup.sh" 2>/dev/null; then
  fail "backup.sh succeeded without a database"
fi
mapfile -t kept < <(ls "$work/backups" | grep -E '^namaskah-[0-9]{8}T[0-9]{6}\.[0-9]{3}Z\.dump$' | sort)
[[ $(ls -A "$work/backups" | grep -vc -e '^\.backup\.lock$' -e '^namaskah-.*\.dump$') == 0 ]] \
  || fail "backup files left behind: $(ls -A "$work/backups")"
(( ${#kept[@]} == 2 )) || fail "rotation kept ${#kept[@]} dumps, not 2: $(ls -a "$work/backups")"
newest="$work/backups/${kept[1]}"

# Wipe: the database dropped and created again, empty.
psql --no-psqlrc -q "$admin" -c "DROP DATABASE $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
[[ $(sql "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0 ]] || fail "the wipe left tables"

DATABASE_URL=$url "$repo/deploy/backup/restore.sh" "$newest" || fail "restore.sh"
# Restoring over a database that has tables is refused.
if DATABASE_URL=$url "$repo/deploy/backup/restore.sh" "$newest" 2>/dev/null; then
  fail "restore.sh restored over a database that was not empty"
fi
snapshot "$work/after"
diff -r "$work/before" "$work/after" >"$work/diff.txt" || { head -n 40 "$work/diff.txt" >&2; fail "the restored database differs"; }
DATABASE_URL=$url "$bin" migrate >/dev/null || fail "migrations on the restored database"
say "after restore from $(basename "$newest") ($(stat -c %s "$newest") bytes): all $(ls "$work/after" | wc -l) tables identical, row for row"
say "passed"
