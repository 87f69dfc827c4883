#!/usr/bin/env bash
# Stops what deploy/loopback/up.sh started in RUN_DIR: each process by the id it recorded
# (SIGTERM, then SIGKILL after 10 s), nginx first, the servers last. The run directory and
# its logs stay.
set -uo pipefail
run_dir=${1:?usage: down.sh RUN_DIR}
stop() { # pid file
  local file=$1 pid
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  [[ -n $pid && $pid != "$$" && $pid != "$PPID" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || { rm -f "$file"; return 0; }
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$file"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  rm -f "$file"
}
for name in watch nginx edge server-1 server-2; do
  stop "$run_dir/$name.pid" &
done
wait
