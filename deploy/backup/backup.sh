#!/usr/bin/env bash
# Backs up Namaskah's PostgreSQL database with pg_dump (custom format: compressed, restored
# with pg_restore, tables selectable), to a timestamped file, then keeps only the newest N.
# For cron or the systemd timer beside it (namaskah-backup.timer); exits non-zero on any
# failure, so cron mails it and systemd marks the unit failed.
#
#   DATABASE_URL=postgres://namaskah:…@db:5432/namaskah deploy/backup/backup.sh
#
# Environment:
#   DATABASE_URL            the database (postgres://…); or leave it unset and use libpq's
#                           PGHOST, PGDATABASE, PGUSER, PGPASSWORD / ~/.pgpass
#   NAMASKAH_BACKUP_DIR     where the files go (default /var/backups/namaskah)
#   NAMASKAH_BACKUP_KEEP    how many files to keep, newest first (default 14)
#   NAMASKAH_BACKUP_PREFIX  file name prefix (default namaskah)
#
# Files are named PREFIX-YYYYMMDDTHHMMSS.mmmZ.dump (UTC), so names sort by time. A dump is
# written under a temporary name, checked with `pg_restore --list`, and only then renamed:
# a file with the final name is always a complete, readable archive. Restore one with
# deploy/backup/restore.sh.
set -euo pipefail

dir=${NAMASKAH_BACKUP_DIR:-/var/backups/namaskah}
keep=${NAMASKAH_BACKUP_KEEP:-14}
prefix=${NAMASKAH_BACKUP_PREFIX:-namaskah}
log() { printf '%s backup: %s\n' "$(date -u +%FT%TZ)" "$*"; }
die() { printf '%s backup: error: %s\n' "$(date -u +%FT%TZ)" "$*" >&2; exit 1; }

[[ $keep =~ ^[1-9][0-9]*$ ]] || die "NAMASKAH_BACKUP_KEEP must be a whole number of at least 1 (is '$keep')"
[[ $prefix =~ ^[A-Za-z0-9._-]+$ ]] || die "NAMASKAH_BACKUP_PREFIX may hold letters, digits, '.', '_' and '-' only"
if [[ -n ${DATABASE_URL:-} ]]; then
  case $DATABASE_URL in
    postgres://* | postgresql://*) ;;
    *) die "DATABASE_URL must be a postgres:// URL (SQLite databases are files: copy them with sqlite3 .backup)" ;;
  esac
fi
command -v pg_dump >/dev/null || die "pg_dump is not installed (postgresql-client)"
mkdir -p "$dir"
umask 077 # dumps hold password hashes and the ledger

# One backup at a time (a slow dump overlapping the next timer run).
exec 9>"$dir/.backup.lock"
flock -n 9 || die "another backup is running in $dir"

stamp=$(date -u +%Y%m%dT%H%M%S.%3NZ)
final="$dir/$prefix-$stamp.dump"
partial="$dir/.$prefix-$stamp.dump.partial"
trap 'rm -f "$partial"' EXIT

args=(--format=custom --compress=6 --no-password --file="$partial")
[[ -n ${DATABASE_URL:-} ]] && args+=(--dbname="$DATABASE_URL")
started=$(date +%s)
pg_dump "${args[@]}" || die "pg_dump failed"
pg_restore --list "$partial" >/dev/null || die "the dump is not a readable archive"
sync "$partial" 2>/dev/null || true
mv "$partial" "$final"
trap - EXIT
log "wrote $final ($(stat -c %s "$final") bytes, $(( $(date +%s) - started )) s)"

# Rotation: the newest $keep complete dumps stay.
mapfile -t dumps < <(find "$dir" -maxdepth 1 -type f -name "$prefix-*.dump" -printf '%f\n' | sort -r)
for old in "${dumps[@]:$keep}"; do
  rm -f -- "$dir/$old"
  log "removed $dir/$old (keeping $keep)"
done
