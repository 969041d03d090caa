#!/usr/bin/env bash
# The topology of docker-compose.yml without Docker: a fresh PostgreSQL database on the local
# server, `tessera migrate` once, three Tessera replicas on loopback ports and nginx in front
# with deploy/nginx.conf (upstream addresses, listen port and temporary paths filled in by sed;
# nothing else changes). Everything lives in one state directory; nothing needs root.
#
#   deploy/topology.sh up            start it all (prints the state directory and nginx's URL)
#   deploy/topology.sh down          stop it all and drop the database
#   deploy/topology.sh kill N        SIGKILL replica N (1-3)
#   deploy/topology.sh stop N        SIGTERM replica N and wait for it to exit
#   deploy/topology.sh start N       start replica N again (same port) and wait until ready
#   deploy/topology.sh restart N     stop N, then start N
#   deploy/topology.sh check-nginx   render nginx.conf into a temporary directory and `nginx -t` it
#   deploy/topology.sh run           up, wait for Ctrl-C, down
#
# Environment (all optional):
#   TOPOLOGY_DIR   the state directory (up creates one under /tmp when unset; every other
#                  command needs it)
#   TESSERA_BIN    the binary (default target/release/tessera)
#   NGINX_BIN      nginx (default /usr/sbin/nginx)
#   PG_ADMIN_URL   a PostgreSQL URL allowed to create databases
#                  (default postgres://postgres@127.0.0.1:5432/postgres)
#   NGINX_PORT     nginx's port (default: a free one)
#   NGINX_CONF     the nginx configuration to render (default deploy/nginx.conf)
#   TOPOLOGY_REPLICAS  how many replicas `up` starts, 1-3 (default 3); nginx gets the upstream
#                  lines of those, the others are left out of its configuration
# Replicas get the same variables as in docker-compose.yml; any other TESSERA_* variable in
# the caller's environment reaches them too.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
TESSERA_BIN="${TESSERA_BIN:-$repo/target/release/tessera}"
NGINX_BIN="${NGINX_BIN:-/usr/sbin/nginx}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
REPLICAS="${TOPOLOGY_REPLICAS:-3}"
# Absolute, as replicas run in the state directory.
if [ -e "$TESSERA_BIN" ]; then
  TESSERA_BIN="$(realpath "$TESSERA_BIN")"
fi

die() {
  echo "topology: $*" >&2
  exit 1
}

# A port nothing listens on now.
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "no free port found"
}

# deploy/nginx.conf with the compose service names replaced by loopback ports ($1 = output
# directory, then the nginx port and the replica ports); upstreams beyond the ports given
# are left out.
render_nginx() {
  local out="$1" listen="$2"
  shift 2
  mkdir -p "$out/tmp"
  local script=(-e "s|listen 8080;|listen 127.0.0.1:$listen;|")
  local n=1
  for port in "$@"; do
    script+=(-e "s|server tessera-$n:8080 |server 127.0.0.1:$port |")
    n=$((n + 1))
  done
  script+=(-e "/server tessera-[0-9]*:8080 /d")
  # Temporary files under the state directory, so nginx needs no /var/lib/nginx.
  script+=(-e "s|^http {|http {\n    client_body_temp_path $out/tmp/body;\n    proxy_temp_path $out/tmp/proxy;\n    fastcgi_temp_path $out/tmp/fastcgi;\n    uwsgi_temp_path $out/tmp/uwsgi;\n    scgi_temp_path $out/tmp/scgi;|")
  sed "${script[@]}" "${NGINX_CONF:-$here/nginx.conf}" >"$out/nginx.conf"
  local upstreams
  upstreams="$(grep -c "server 127.0.0.1:" "$out/nginx.conf" || true)"
  [ "$upstreams" = "$#" ] || die "deploy/nginx.conf has $upstreams of $# upstreams after rendering"
  grep -q "listen 127.0.0.1:$listen;" "$out/nginx.conf" || die "deploy/nginx.conf: no 'listen 8080;'"
}

nginx_args() {
  local dir="$1"
  echo "-p $dir -c $dir/nginx.conf"
}

load_state() {
  [ -n "${TOPOLOGY_DIR:-}" ] || die "TOPOLOGY_DIR is not set"
  [ -f "$TOPOLOGY_DIR/state" ] || die "$TOPOLOGY_DIR/state: no topology there"
  # shellcheck source=/dev/null
  . "$TOPOLOGY_DIR/state"
}

replica_port() {
  local var="PORT_$1"
  [ -n "${!var:-}" ] || die "no replica $1 (1-$REPLICAS)"
  echo "${!var}"
}

# Whether the process in pid file $1 runs (a zombie nobody reaped yet does not).
alive() {
  [ -f "$1" ] || return 1
  local pid state
  pid="$(cat "$1")"
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

wait_ready() {
  local url="$1" pidfile="$2"
  for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; then
      return
    fi
    alive "$pidfile" || die "the process of $url exited; see its log in $TOPOLOGY_DIR"
    sleep 0.1
  done
  die "$url is not ready after 30 s"
}

start_replica() {
  local n="$1" port metrics
  port="$(replica_port "$n")"
  metrics="METRICS_$n"
  local pidfile="$TOPOLOGY_DIR/tessera-$n.pid"
  alive "$pidfile" && die "replica $n is running"
  # The same variables as docker-compose.yml's replicas.
  (
    cd "$TOPOLOGY_DIR"
    export DATABASE_URL="$DATABASE_URL"
    export TESSERA_ISSUER="${TESSERA_ISSUER:-$NGINX_URL}"
    export TESSERA_BIND="127.0.0.1:$port"
    export TESSERA_METRICS_BIND="127.0.0.1:${!metrics}"
    export TESSERA_KEYS_DIR="$TOPOLOGY_DIR/keys"
    export TESSERA_LOG_FORMAT=json
    export TESSERA_LOG="${TESSERA_LOG:-info}"
    export TESSERA_SERVER_TRUSTED_PROXIES=127.0.0.1
    export TESSERA_DATABASE_MAX_CONNECTIONS="${TESSERA_DATABASE_MAX_CONNECTIONS:-8}"
    exec "$TESSERA_BIN" serve >>"$TOPOLOGY_DIR/tessera-$n.log" 2>&1
  ) &
  echo $! >"$pidfile"
  wait_ready "http://127.0.0.1:$port" "$pidfile"
}

signal_replica() {
  local n="$1" signal="$2" pidfile="$TOPOLOGY_DIR/tessera-$1.pid"
  replica_port "$n" >/dev/null
  alive "$pidfile" || die "replica $n is not running"
  local pid
  pid="$(cat "$pidfile")"
  kill "-$signal" "$pid"
  # Wait for the exit: SIGTERM lets in-flight requests finish first.
  for _ in $(seq 1 600); do
    alive "$pidfile" || {
      rm -f "$pidfile"
      return
    }
    sleep 0.05
  done
  die "replica $n did not exit within 30 s of SIG$signal"
}

up() {
  [ -x "$TESSERA_BIN" ] || die "$TESSERA_BIN: no such binary (cargo build --release, or set TESSERA_BIN)"
  [ -x "$NGINX_BIN" ] || die "$NGINX_BIN: no nginx (apt-get install nginx, or set NGINX_BIN)"
  case "$REPLICAS" in
  1 | 2 | 3) ;;
  *) die "TOPOLOGY_REPLICAS: 1, 2 or 3 (deploy/nginx.conf names three upstreams)" ;;
  esac
  TOPOLOGY_DIR="${TOPOLOGY_DIR:-$(mktemp -d /tmp/tessera-topology.XXXXXX)}"
  mkdir -p "$TOPOLOGY_DIR/keys"
  chmod 0700 "$TOPOLOGY_DIR/keys"
  local db="tessera_topology_$(date +%s)_$$"
  local base="${PG_ADMIN_URL%/*}"
  local nginx_port="${NGINX_PORT:-$(free_port)}"
  {
    echo "DATABASE_NAME=$db"
    echo "DATABASE_URL=$base/$db"
    echo "NGINX_PORT=$nginx_port"
    echo "NGINX_URL=http://127.0.0.1:$nginx_port"
    echo "REPLICAS=$REPLICAS"
    for n in $(seq 1 $REPLICAS); do
      echo "PORT_$n=$(free_port)"
      echo "METRICS_$n=$(free_port)"
    done
  } >"$TOPOLOGY_DIR/state"
  load_state
  # A failed start leaves nothing running and no database behind.
  trap 'echo "topology: up failed; stopping what started" >&2; down >/dev/null 2>&1 || true' EXIT
  psql -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" -c "CREATE DATABASE $db" >/dev/null
  # One migration before any replica starts (compose's `migrate` service, the Kubernetes Job).
  (cd "$TOPOLOGY_DIR" && DATABASE_URL="$DATABASE_URL" TESSERA_KEYS_DIR="$TOPOLOGY_DIR/keys" \
    "$TESSERA_BIN" migrate >>"$TOPOLOGY_DIR/migrate.log" 2>&1) || die "migrate failed: $TOPOLOGY_DIR/migrate.log"
  # The first replica creates the signing keys; the others load them.
  for n in $(seq 1 $REPLICAS); do
    start_replica "$n"
  done
  local ports=()
  for n in $(seq 1 $REPLICAS); do
    ports+=("$(replica_port "$n")")
  done
  render_nginx "$TOPOLOGY_DIR/nginx" "$NGINX_PORT" "${ports[@]}"
  # shellcheck disable=SC2046
  "$NGINX_BIN" $(nginx_args "$TOPOLOGY_DIR/nginx") \
    -g "pid $TOPOLOGY_DIR/nginx/nginx.pid; error_log $TOPOLOGY_DIR/nginx/error.log info;" \
    </dev/null >/dev/null 2>>"$TOPOLOGY_DIR/nginx/start.log" || die "nginx did not start: $TOPOLOGY_DIR/nginx/start.log"
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$NGINX_URL/healthz" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null "$NGINX_URL/readyz" || die "nginx does not answer on $NGINX_URL"
  trap - EXIT
  echo "TOPOLOGY_DIR=$TOPOLOGY_DIR"
  echo "NGINX_URL=$NGINX_URL"
  echo "DATABASE_URL=$DATABASE_URL"
}

down() {
  load_state
  if [ -f "$TOPOLOGY_DIR/nginx/nginx.pid" ]; then
    kill -QUIT "$(cat "$TOPOLOGY_DIR/nginx/nginx.pid")" 2>/dev/null || true
  fi
  for n in $(seq 1 $REPLICAS); do
    if alive "$TOPOLOGY_DIR/tessera-$n.pid"; then
      signal_replica "$n" TERM || true
    fi
  done
  for _ in $(seq 1 100); do
    [ -f "$TOPOLOGY_DIR/nginx/nginx.pid" ] || break
    sleep 0.05
  done
  psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $DATABASE_NAME WITH (FORCE)" >/dev/null
}

check_nginx() {
  local dir
  dir="$(mktemp -d /tmp/tessera-nginx-check.XXXXXX)"
  render_nginx "$dir" 8080 8081 8082 8083
  # shellcheck disable=SC2046
  local status=0
  "$NGINX_BIN" -t $(nginx_args "$dir") -g "pid $dir/nginx.pid; error_log $dir/error.log;" || status=$?
  rm -rf "$dir"
  return $status
}

case "${1:-}" in
up) up ;;
down) down ;;
kill) load_state && signal_replica "${2:?replica number}" KILL ;;
stop) load_state && signal_replica "${2:?replica number}" TERM ;;
start) load_state && start_replica "${2:?replica number}" ;;
restart) load_state && signal_replica "${2:?replica number}" TERM && start_replica "$2" ;;
check-nginx) check_nginx ;;
run)
  eval "$(up | grep '^TOPOLOGY_DIR=')"
  export TOPOLOGY_DIR
  trap 'down' EXIT
  echo "running; Ctrl-C stops it (state in $TOPOLOGY_DIR)"
  while sleep 3600; do :; done
  ;;
*)
  sed -n '2,26p' "$0" >&2
  exit 2
  ;;
esac
