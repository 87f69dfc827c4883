#!/usr/bin/env bash
# Restores a dump made by backup.sh into an EMPTY database (create it first; it refuses a
# database that already has tables, so it never mixes two states). The servers must be
# stopped; start them once it has finished (their migrations then find nothing to do).
#
#   createdb -O namaskah namaskah   # or: CREATE DATABASE namaskah OWNER namaskah;
#   DATABASE_URL=postgres://namaskah:…@db:5432/namaskah deploy/backup/restore.sh FILE.dump
#
# Everything is restored in one transaction: on an error nothing is left half-restored.
set -euo pipefail
dump=${1:?usage: restore.sh FILE.dump (with DATABASE_URL set)}
: "${DATABASE_URL:?set DATABASE_URL to the empty database to restore into}"
die() { echo "restore: error: $*" >&2; exit 1; }
[[ -r $dump ]] || die "cannot read $dump"
pg_restore --list "$dump" >/dev/null || die "$dump is not a pg_dump custom-format archive"
tables=$(psql --no-psqlrc -Atq --dbname="$DATABASE_URL" -c \
  "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')") \
  || die "cannot connect to DATABASE_URL"
[[ $tables == 0 ]] || die "the database already has $tables tables: restore into an empty one"
pg_restore --dbname="$DATABASE_URL" --no-owner --single-transaction --exit-on-error "$dump" \
  || die "pg_restore failed; the database is unchanged"
echo "restore: $dump restored"
