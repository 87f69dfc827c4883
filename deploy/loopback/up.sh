#!/usr/bin/env bash
# The compose.yaml topology on 127.0.0.1, from the built binaries, without Docker: two
# namaskah-server instances (different ports) sharing one PostgreSQL database and one
# Redis, namaskah-edge, and Debian's nginx in front (deploy/nginx/namaskah.conf.template,
# gRPC load-balanced with grpc_pass, HTTP to the edge, TLS terminated by nginx with a
# certificate made for the run). Everything listens on loopback only, on free ports, and
# nginx runs as an unprivileged foreground process with its files in the run directory.
#
#   DATABASE_URL=postgres://…/namaskah REDIS_URL=redis://127.0.0.1:6379 \
#     deploy/loopback/up.sh [--wait] [RUN_DIR]
#   . RUN_DIR/topology.env   # NGINX_GRPC=127.0.0.1:…, NGINX_HTTP=…, SERVER_1_GRPC=…, …
#   deploy/loopback/down.sh RUN_DIR
#
# Environment:
#   DATABASE_URL, REDIS_URL   required (postgres://…, redis://…); migrations are applied
#                             once, before the servers start
#   NAMASKAH_BIN_DIR          where namaskah-server and namaskah-edge are (default:
#                             target/release if both are there, else target/debug)
#   NAMASKAH_REDIS_PREFIX     default: a fresh prefix per run
#   NAMASKAH_LOOPBACK_WATCH_PID
#                             stop everything when this process ends (tests set it, so a
#                             killed test leaves nothing running)
#   NGINX_TLS_CERT, NGINX_TLS_KEY
#                             nginx's certificate; default: one for localhost and
#                             127.0.0.1 made here by a CA of the run (RUN_DIR/tls/ca.pem,
#                             NGINX_TLS_CA in topology.env: what clients trust)
#   other NAMASKAH_*, RUST_LOG, SENTRY_* variables reach both servers unchanged.
#
# It returns once every part answers, leaving them running; their logs are in RUN_DIR.
# With --wait it stays in the foreground instead and stops everything on Ctrl-C or SIGTERM.
set -euo pipefail

wait_in_foreground=
if [[ ${1:-} == --wait ]]; then
  wait_in_foreground=1
  shift
fi

repo=$(cd "$(dirname "$0")/../.." && pwd)
run_dir=${1:-$(mktemp -d -t namaskah-loopback.XXXXXX)}
mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd)

fail() {
  echo "up.sh: $*" >&2
  "$repo/deploy/loopback/down.sh" "$run_dir" >/dev/null 2>&1 || true
  exit 1
}

: "${DATABASE_URL:?up.sh: set DATABASE_URL (postgres://…): both servers share it}"
: "${REDIS_URL:?up.sh: set REDIS_URL (redis://…): both servers share it}"
case "$DATABASE_URL" in
  postgres://* | postgresql://*) ;;
  *) echo "up.sh: DATABASE_URL must be a postgres:// URL (several instances share it)" >&2; exit 2 ;;
esac
command -v nginx >/dev/null 2>&1 || { echo "up.sh: nginx is not installed (apt-get install nginx)" >&2; exit 2; }
command -v python3 >/dev/null 2>&1 || { echo "up.sh: python3 is needed" >&2; exit 2; }

if [[ -z "${NAMASKAH_BIN_DIR:-}" ]]; then
  NAMASKAH_BIN_DIR="$repo/target/debug"
  if [[ -x "$repo/target/release/namaskah-server" && -x "$repo/target/release/namaskah-edge" ]]; then
    NAMASKAH_BIN_DIR="$repo/target/release"
  fi
fi
server_bin="$NAMASKAH_BIN_DIR/namaskah-server"
edge_bin="$NAMASKAH_BIN_DIR/namaskah-edge"
for bin in "$server_bin" "$edge_bin"; do
  [[ -x "$bin" ]] || { echo "up.sh: $bin is missing (cargo build -p namaskah-server -p namaskah-edge)" >&2; exit 2; }
done

# Free ports on 127.0.0.1, all bound at once so that they differ.
read -r grpc_1 grpc_2 metrics_1 metrics_2 edge_port nginx_grpc_tls nginx_grpc nginx_https nginx_http < <(
  python3 - <<'PY'
import socket
sockets = [socket.socket() for _ in range(9)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
for s in sockets:
    s.close()
PY
)

# A key for tokens that both instances accept, and one Redis prefix for the run.
jwt_secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
redis_prefix=${NAMASKAH_REDIS_PREFIX:-loopback:$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n'):}

# nginx's certificate.
if [[ -z "${NGINX_TLS_CERT:-}" || -z "${NGINX_TLS_KEY:-}" ]]; then
  command -v openssl >/dev/null 2>&1 || { echo "up.sh: openssl is needed for nginx's test certificate (or set NGINX_TLS_CERT/NGINX_TLS_KEY)" >&2; exit 2; }
  mkdir -p "$run_dir/tls"
  t=$run_dir/tls
  NGINX_TLS_CERT="$t/cert.pem"
  NGINX_TLS_KEY="$t/key.pem"
  NGINX_TLS_CA="$t/ca.pem"
  # A CA for the run, and a server certificate it signs for localhost and 127.0.0.1.
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Namaskah loopback CA" \
      -keyout "$t/ca.key" -out "$NGINX_TLS_CA" &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$NGINX_TLS_KEY" -out "$t/cert.csr" &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$t/ext.cnf" &&
    openssl x509 -req -in "$t/cert.csr" -CA "$NGINX_TLS_CA" -CAkey "$t/ca.key" -CAcreateserial \
      -days 2 -extfile "$t/ext.cnf" -out "$NGINX_TLS_CERT"
  } >"$t/openssl.log" 2>&1 || { cat "$t/openssl.log" >&2; fail "openssl could not make a certificate"; }
  rm -f "$t/ca.key"
  # A throwaway key, readable by the unprivileged nginx.
  chmod 644 "$NGINX_TLS_KEY"
fi

server_env() { # instance number
  local n=$1 grpc metrics
  if [[ $n == 1 ]]; then grpc=$grpc_1 metrics=$metrics_1; else grpc=$grpc_2 metrics=$metrics_2; fi
  echo "NAMASKAH_GRPC_ADDR=127.0.0.1:$grpc"
  echo "NAMASKAH_METRICS_ADDR=127.0.0.1:$metrics"
  echo "NAMASKAH_EDGE_ADDR=off"
  echo "NAMASKAH_JWT_SECRET=$jwt_secret"
  echo "NAMASKAH_REDIS_PREFIX=$redis_prefix"
  echo "NAMASKAH_MAIL_SINK=$run_dir/mail-$n.jsonl"
  # TLS is nginx's here; the servers behind it speak plain gRPC on loopback.
  echo "NAMASKAH_TLS_CERT="
  echo "NAMASKAH_TLS_KEY="
}

start() { # name, command… (environment already set by the caller)
  local name=$1
  shift
  "$@" </dev/null >"$run_dir/$name.log" 2>&1 &
  echo $! >"$run_dir/$name.pid"
}

wait_for_port() { # name, port, pid file
  local name=$1 port=$2 pid
  pid=$(cat "$3")
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$run_dir/$name.log" >&2 || true; fail "$name exited during start-up (log: $run_dir/$name.log)"; }
    sleep 0.1
  done
  fail "$name did not listen on 127.0.0.1:$port within 30 s (log: $run_dir/$name.log)"
}

if [[ -n "${NAMASKAH_LOOPBACK_WATCH_PID:-}" ]]; then
  watched=$NAMASKAH_LOOPBACK_WATCH_PID
  nohup bash -c "while kill -0 $watched 2>/dev/null; do sleep 1; done; exec '$repo/deploy/loopback/down.sh' '$run_dir'" \
    </dev/null >/dev/null 2>&1 &
  echo $! >"$run_dir/watch.pid"
fi

# Migrations once (two servers migrating at once would race), then the servers.
env $(server_env 1) "$server_bin" migrate >"$run_dir/migrate.log" 2>&1 \
  || { cat "$run_dir/migrate.log" >&2; fail "migrations failed"; }
for n in 1 2; do
  # shellcheck disable=SC2046 # one NAME=value a word
  start "server-$n" env $(server_env "$n") "$server_bin" serve
done
for n in 1 2; do
  port=$grpc_1
  [[ $n == 2 ]] && port=$grpc_2
  wait_for_port "server-$n" "$port" "$run_dir/server-$n.pid"
  ok=
  for _ in $(seq 1 100); do
    # shellcheck disable=SC2046
    if env $(server_env "$n") "$server_bin" healthcheck >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.1
  done
  [[ -n $ok ]] || fail "server-$n does not answer its health check (log: $run_dir/server-$n.log)"
done

# The edge, in front of nginx's plain gRPC listener (so its calls reach both servers).
start edge env NAMASKAH_EDGE_ADDR="127.0.0.1:$edge_port" NAMASKAH_UPSTREAM="http://127.0.0.1:$nginx_grpc" \
  NAMASKAH_TLS_CERT= NAMASKAH_TLS_KEY= "$edge_bin"
wait_for_port edge "$edge_port" "$run_dir/edge.pid"

# nginx: the shared template, rendered, inside a configuration of its own.
mkdir -p "$run_dir/nginx"
NAMASKAH_GRPC_1="127.0.0.1:$grpc_1" NAMASKAH_GRPC_2="127.0.0.1:$grpc_2" NAMASKAH_EDGE="127.0.0.1:$edge_port" \
NGINX_GRPC_TLS="127.0.0.1:$nginx_grpc_tls" NGINX_GRPC="127.0.0.1:$nginx_grpc" \
NGINX_HTTPS="127.0.0.1:$nginx_https" NGINX_HTTP="127.0.0.1:$nginx_http" \
NGINX_TLS_CERT="$NGINX_TLS_CERT" NGINX_TLS_KEY="$NGINX_TLS_KEY" \
python3 - "$repo/deploy/nginx/namaskah.conf.template" "$run_dir/nginx/namaskah.conf" <<'PY' || fail "cannot render the nginx template"
import os, re, sys
template = open(sys.argv[1]).read()
def fill(match):
    name = match.group(1)
    if name not in os.environ:
        sys.exit(f"the nginx template needs {name}")
    return os.environ[name]
open(sys.argv[2], "w").write(re.sub(r"\$\{([A-Z0-9_]+)\}", fill, template))
PY
n=$run_dir/nginx
cat >"$n/nginx.conf" <<EOF
# Rendered by deploy/loopback/up.sh: nginx in the foreground, unprivileged, its files here.
daemon off;
worker_processes auto;
# Each call in flight and each open watch stream holds a client and an upstream connection:
# 1,000 users with their watches ran out of 1,024 (benches/RESULTS.md).
worker_rlimit_nofile 20000;
pid $n/nginx.pid;
error_log $n/error.log warn;
events { worker_connections 8192; }
http {
    client_body_temp_path $n/client_body;
    proxy_temp_path $n/proxy;
    fastcgi_temp_path $n/fastcgi;
    uwsgi_temp_path $n/uwsgi;
    scgi_temp_path $n/scgi;
    include $n/namaskah.conf;
}
EOF
nginx_cmd=(nginx -p "$n" -c "$n/nginx.conf" -e "$n/error.log")
if [[ $(id -u) == 0 ]]; then
  # Never root: run the whole nginx as nobody (the ports are above 1024).
  chmod 755 "$run_dir"
  chown -R nobody "$n"
  [[ -d "$run_dir/tls" ]] && chmod 755 "$run_dir/tls"
  if command -v setpriv >/dev/null 2>&1; then
    nginx_cmd=(setpriv --reuid=nobody --regid=nogroup --clear-groups "${nginx_cmd[@]}")
  else
    nginx_cmd=(runuser -u nobody -- "${nginx_cmd[@]}")
  fi
fi
"${nginx_cmd[@]}" -t >"$run_dir/nginx-check.log" 2>&1 || { cat "$run_dir/nginx-check.log" >&2; fail "nginx refuses the configuration"; }
start nginx "${nginx_cmd[@]}"
for port in $nginx_grpc $nginx_http $nginx_grpc_tls $nginx_https; do
  wait_for_port nginx "$port" "$run_dir/nginx.pid"
done

cat >"$run_dir/topology.env" <<EOF
RUN_DIR=$run_dir
NGINX_GRPC=127.0.0.1:$nginx_grpc
NGINX_GRPC_TLS=127.0.0.1:$nginx_grpc_tls
NGINX_HTTP=127.0.0.1:$nginx_http
NGINX_HTTPS=127.0.0.1:$nginx_https
NGINX_TLS_CERT=$NGINX_TLS_CERT
NGINX_TLS_CA=${NGINX_TLS_CA:-}
EDGE=127.0.0.1:$edge_port
SERVER_1_GRPC=127.0.0.1:$grpc_1
SERVER_2_GRPC=127.0.0.1:$grpc_2
SERVER_1_METRICS=127.0.0.1:$metrics_1
SERVER_2_METRICS=127.0.0.1:$metrics_2
SERVER_1_PID=$(cat "$run_dir/server-1.pid")
SERVER_2_PID=$(cat "$run_dir/server-2.pid")
EDGE_PID=$(cat "$run_dir/edge.pid")
NGINX_PID=$(cat "$run_dir/nginx.pid")
MAIL_SINKS=$run_dir/mail-1.jsonl:$run_dir/mail-2.jsonl
REDIS_PREFIX=$redis_prefix
EOF
cat "$run_dir/topology.env"

if [[ -n $wait_in_foreground ]]; then
  echo "up.sh: running; Ctrl-C stops everything (logs in $run_dir)"
  trap '"$repo/deploy/loopback/down.sh" "$run_dir"; exit 0' INT TERM
  while kill -0 "$(cat "$run_dir/server-1.pid")" 2>/dev/null || kill -0 "$(cat "$run_dir/server-2.pid")" 2>/dev/null; do
    sleep 1
  done
  echo "up.sh: both servers have stopped" >&2
  "$repo/deploy/loopback/down.sh" "$run_dir"
fi
