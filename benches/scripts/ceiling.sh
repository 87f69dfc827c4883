#!/usr/bin/env bash
# PostgreSQL's own ceiling for CreateVerification (issue 4): what the database alone can do
# with the two statements the server sends per create on PostgreSQL, without the server.
#
#   - "bare": the issue's reference, the bare three-statement transaction (conditional debit,
#     ledger row, verification row) on scratch tables, exactly as verifications.sh runs it;
#   - "create": the server's two statements, written out by hand from the code that builds
#     them (`ledger::hold_ctes` with `verification::repo::purchase` and its request-id check,
#     then the assignment, `repo::advance_ctes`), each committed on its own as the server
#     does, on a database migrated by the release server (every table, index, constraint
#     and foreign key);
#   - then the same with parts of the schema taken away, to show what each costs:
#     "no FKs" drops the foreign keys of the tables a create writes; "4 indexes" also drops
#     the seven indexes of verifications that are neither unique nor in the issue's list;
#     "unique only" also drops every other index that is not unique; "purchase only" runs
#     the first statement alone on that bare schema (one commit per create, no assignment);
#   - then three cuts one at a time, each on a fresh database as migrated, beside one more
#     fresh database as migrated (the cuts above were made to the first one).
#
# Every run is pgbench with 50 clients, one funded account each, as the create_verification
# scenario has 50 calls in flight on 50 accounts. The figures are the database's best case:
# the server's own CPU, the driver's and the gRPC round trips come on top in the real run.
# Loopback only; every run is bounded in time; the scratch databases are dropped at the end.
#
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres benches/scripts/ceiling.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=${DB:-namaskah_ceiling}
BARE_DB=${BARE_DB:-namaskah_ceiling_bare}
DURATION=${DURATION:-12}
ROUNDS=${ROUNDS:-2}
OUT=benches/out/ceiling
S=./target/release/namaskah-server
mkdir -p "$OUT"

[[ -n ${NO_BUILD:-} ]] || cargo build --release -q -p namaskah-server

DB_URL="${PG_ADMIN_URL%/*}/$DB"
DB_0=${DB}_0 DB_1=${DB}_1 DB_2=${DB}_2 DB_3=${DB}_3 # as migrated, and the single cuts
BARE_URL="${PG_ADMIN_URL%/*}/$BARE_DB"
cleanup() {
  for db in $DB $DB_0 $DB_1 $DB_2 $DB_3; do
    psql "$PG_ADMIN_URL" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  done
  psql "$PG_ADMIN_URL" -qc "drop database if exists $BARE_DB with (force)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
psql "$PG_ADMIN_URL" -qc "create database $BARE_DB" >/dev/null

# The bare side, as verifications.sh sets it up (benches/scripts/bare/).
BARE=benches/scripts/bare
psql "$BARE_URL" -q -v ON_ERROR_STOP=1 -f "$BARE/schema.sql" >/dev/null

# A migrated database (every table, index, constraint and foreign key) with 50 customers and a
# funded wallet each, with fixed ids (pgbench has only numbers: client i is the user ...0i).
# Columns left out keep their defaults.
migrated() { # database name
  local url="${PG_ADMIN_URL%/*}/$1"
  psql "$PG_ADMIN_URL" -qc "drop database if exists $1 with (force)" -c "create database $1" >/dev/null 2>&1
  DATABASE_URL="$url" RUST_LOG=warn $S migrate >/dev/null
  psql "$url" -q >/dev/null <<'SQL'
INSERT INTO users (id, email, email_lower, email_verified, password_hash, role, plan, status,
                   referral_code, created_at, updated_at)
SELECT u, e, e, true, 'x', 'customer', 'starter', 'active', 'CEIL' || g, now(), now()
FROM generate_series(1, 50) AS g,
     LATERAL (SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid AS u,
                     'ceiling' || g || '@example.test' AS e) AS x;
INSERT INTO ledger_accounts (id, code, kind, owner_id, currency, balance, created_at, updated_at)
SELECT gen_random_uuid(), 'wallet:' || id || ':USD', 'wallet', id, 'USD', 1000000000000, now(), now()
FROM users;
SQL
}
# pgbench reads `:name` as a variable anywhere, even inside a string: the colons of account
# codes are written as chr(58). The statements are those of the server (see above), with the
# values it binds computed in SQL instead (ids, times, the user's codes).
cat >"$OUT/create.sql" <<'SQL'
\set id :client_id + 1
\set request random(1, 1000000000000000)
WITH u AS (SELECT CAST('00000000-0000-7000-8000-' || lpad(CAST(:id AS text), 12, '0') AS uuid) AS uid),
hold_wallet AS (UPDATE ledger_accounts SET balance = balance - 188, updated_at = now() WHERE code = 'wallet' || chr(58) || (SELECT uid FROM u) || chr(58) || 'USD' AND balance >= 188 AND NOT (EXISTS (SELECT 1 FROM verifications WHERE user_id = (SELECT uid FROM u) AND request_id = CAST(:request AS text))) RETURNING id, balance),
hold_account AS (INSERT INTO ledger_accounts (id, code, kind, owner_id, currency, balance, created_at, updated_at) SELECT gen_random_uuid(), 'holds' || chr(58) || (SELECT uid FROM u) || chr(58) || 'USD', 'holds', (SELECT uid FROM u), 'USD', 188, now(), now() FROM hold_wallet ON CONFLICT (code) DO UPDATE SET balance = ledger_accounts.balance + EXCLUDED.balance, updated_at = EXCLUDED.updated_at RETURNING id, balance),
hold_entry AS (INSERT INTO journal_entries (id, business_key, kind, user_id, reference, memo, created_at) SELECT gen_random_uuid(), 'hold' || chr(58) || gen_random_uuid(), 'verification_hold', (SELECT uid FROM u), 'reference', 'whatsapp number in GB', now() FROM hold_account RETURNING id),
hold_lines AS (INSERT INTO journal_lines (id, entry_id, account_id, amount, balance_after, created_at) SELECT gen_random_uuid(), e.id, w.id, -188, w.balance, now() FROM hold_entry e, hold_wallet w UNION ALL SELECT gen_random_uuid(), e.id, a.id, 188, a.balance, now() FROM hold_entry e, hold_account a),
new_verification AS (INSERT INTO verifications (id, user_id, request_id, request_fingerprint, service, country, price, currency, status, charge_state, last_sequence, created_at, updated_at, poll_count, cleanup_attempts, tenant_margin) SELECT gen_random_uuid(), (SELECT uid FROM u), CAST(:request AS text), 'fingerprint', 'whatsapp', 'GB', 188, 'USD', 'pending', 'held', 1, now(), now(), 0, 0, 0 FROM hold_entry RETURNING id, user_id),
new_events AS (INSERT INTO verification_events (verification_id, sequence, user_id, kind, payload, created_at) SELECT id, 1, user_id, 'created', decode('0801100218', 'hex'), now() FROM new_verification)
SELECT (SELECT replace(CAST(id AS text), '-', '') FROM new_verification) AS vid, CASE WHEN (SELECT count(*) FROM hold_entry) = 0 THEN EXISTS (SELECT 1 FROM verifications WHERE user_id = (SELECT uid FROM u) AND request_id = CAST(:request AS text)) ELSE false END AS used \gset
WITH advanced AS (UPDATE verifications SET status = 'active', provider = 'sandbox', provider_ref = 'sbx-' || :vid, phone_number = '+4477009' || CAST(CAST(random() * 100000 AS int) AS text), last_sequence = 2, updated_at = now(), expires_at = now() + interval '15 minutes' WHERE id = CAST(:vid AS uuid) AND last_sequence = 1 RETURNING id, user_id),
new_events AS (INSERT INTO verification_events (verification_id, sequence, user_id, kind, payload, created_at) SELECT id, 2, user_id, 'number_assigned', decode('0802100318', 'hex'), now() FROM advanced)
SELECT count(*) FROM advanced;
SQL
# The purchase alone: the first statement, without \gset.
sed -n '1,10p' "$OUT/create.sql" | sed 's/ \\gset$/;/' >"$OUT/purchase.sql"

run() { # label, script, database url: one pgbench run, its tps
  local label=$1 script=$2 url=$3 file
  file="$OUT/$(echo "$label" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9\n' '-').txt"
  pgbench -n -M prepared -c 50 -j 2 -T "$DURATION" -f "$script" "$url" >"$file" 2>&1 ||
    { echo "pgbench ($label) failed:" >&2; tail -20 "$file" >&2; exit 1; }
  if grep -q "aborted" "$file"; then echo "pgbench ($label) aborted clients:" >&2; grep aborted "$file" >&2; exit 1; fi
  sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$file"
}
ratio() { python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.3f}")' "$1" "$2"; }

warm() { # database url: rows and planner statistics, as a live database has them
  run "warm-up" "$OUT/create.sql" "$1" >/dev/null
  psql "$1" -qc analyze >/dev/null
}
migrated "$DB"
warm "$DB_URL"
echo "| schema | bare tps | create tps | create / bare |"
echo "| --- | ---: | ---: | ---: |"
step() { # label, script[, database url]
  for round in $(seq 1 "$ROUNDS"); do
    local bare create
    bare=$(run "bare $1 $round" "$BARE/transaction.sql" "$BARE_URL")
    create=$(run "$1 $round" "$2" "${3:-$DB_URL}")
    echo "| $1 (round $round) | ${bare%.*} | ${create%.*} | $(ratio "$create" "$bare") |"
  done
}
step "as migrated" "$OUT/create.sql"
psql "$DB_URL" -q >/dev/null <<'SQL'
ALTER TABLE verification_events DROP CONSTRAINT verification_events_verification_id_fkey;
ALTER TABLE verifications DROP CONSTRAINT verifications_user_id_fkey;
ALTER TABLE journal_lines DROP CONSTRAINT journal_lines_entry_id_fkey;
ALTER TABLE journal_lines DROP CONSTRAINT journal_lines_account_id_fkey;
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_user_id_fkey;
SQL
step "no FKs" "$OUT/create.sql"
psql "$DB_URL" -qc "DROP INDEX ix_verifications_created_user, ix_verifications_status_expires,
  ix_verifications_user_phone, ix_verifications_ended, ix_verifications_cleanup,
  ix_verifications_provider_ref, ix_verifications_next_poll" >/dev/null
step "no FKs, 4 indexes on verifications" "$OUT/create.sql"
psql "$DB_URL" -qc "DROP INDEX ix_verifications_status_created, ix_verifications_user_created,
  ix_journal_entries_kind_created, ix_journal_entries_user_kind_created, ix_journal_lines_entry,
  ix_journal_lines_account_created" >/dev/null
step "no FKs, unique indexes only" "$OUT/create.sql"
step "no FKs, unique indexes only, purchase only" "$OUT/purchase.sql"

# One cut at a time, each on a database of its own as migrated: the cuts above are
# cumulative, and a cut that matters only with the others would not show there.
for n in 0 1 2 3; do migrated "${DB}_$n"; done
psql "${PG_ADMIN_URL%/*}/$DB_1" -qc "ALTER TABLE verification_events DROP CONSTRAINT verification_events_verification_id_fkey" >/dev/null
psql "${PG_ADMIN_URL%/*}/$DB_2" -qc "ALTER TABLE verifications DROP CONSTRAINT verifications_user_id_fkey" >/dev/null
psql "${PG_ADMIN_URL%/*}/$DB_3" -qc "DROP INDEX ix_verifications_created_user" >/dev/null
for n in 0 1 2 3; do warm "${PG_ADMIN_URL%/*}/${DB}_$n"; done
step "as migrated, again (a fresh database)" "$OUT/create.sql" "${PG_ADMIN_URL%/*}/$DB_0"
step "only the events' foreign key dropped" "$OUT/create.sql" "${PG_ADMIN_URL%/*}/$DB_1"
step "only verifications' foreign key to users dropped" "$OUT/create.sql" "${PG_ADMIN_URL%/*}/$DB_2"
step "only ix_verifications_created_user dropped" "$OUT/create.sql" "${PG_ADMIN_URL%/*}/$DB_3"
