#!/usr/bin/env bash
# The flash-sale benchmark against a scaled-out deployment on this machine:
# nginx (deploy/nginx.conf, its upstreams pointed at local ports) in front of
# N `swiftdrop api` and 2 `swiftdrop notifier` processes and one `worker`,
# over PostgreSQL, Redis and RabbitMQ. Extra arguments go to
# `swiftdrop loadtest flash-sale` (e.g. --stock 50000 --seconds 10).
#
#   cargo build --release
#   deploy/bench-cluster.sh --stock 50000 --seconds 10
#   BENCH_APIS=1 deploy/bench-cluster.sh ...       # one api behind nginx
#   BENCH_MODE=single deploy/bench-cluster.sh ...  # one `serve`, no nginx, same services
#   BENCH_MODE=single BENCH_REDIS=off ...          # ... with its gates in-process
#
# Needs nginx (`apt-get install nginx`), psql, curl, and the three services
# (defaults: the local ones CI uses). Everything it starts is stopped on
# exit; its database schema is dropped. Logs stay in the printed folder.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/swiftdrop}"
DATABASE="${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
AMQP="${BENCH_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
APIS="${BENCH_APIS:-2}"
NOTIFIERS="${BENCH_NOTIFIERS:-2}"
MODE="${BENCH_MODE:-cluster}"
PORT="${BENCH_PORT:-18080}"

[ -x "$BIN" ] || { echo "no release binary at $BIN: run cargo build --release (or set BENCH_BIN)" >&2; exit 1; }
for tool in psql curl; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
if [ "$MODE" = cluster ] && ! command -v nginx >/dev/null; then
  echo "nginx is needed (apt-get install nginx)" >&2
  exit 1
fi

work="$(mktemp -d /tmp/swiftdrop-bench.XXXXXX)"
schema="bench_$(date +%s)_$$"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql "$DATABASE" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  echo "logs in $work"
}
trap cleanup EXIT

psql "$DATABASE" -qc "CREATE SCHEMA $schema"
separator='?'
case "$DATABASE" in *\?*) separator='&' ;; esac
export DATABASE_URL="${DATABASE}${separator}options=-c%20search_path%3D${schema}"
export REDIS_URL="$REDIS" AMQP_URL="$AMQP"
# BENCH_REDIS=off: the gates in-process (only meaningful with one process).
[ "${BENCH_REDIS:-on}" = off ] && unset REDIS_URL
# A fixed prefix: reruns reuse the same exchange and history queue.
export SWIFTDROP_REDIS_PREFIX="swiftdrop_bench:" SWIFTDROP_AMQP_PREFIX="swiftdrop_bench"
export SWIFTDROP_SECRET="bench-secret-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# Only the setup's 2,000 sign-ups hash; the measured purchases do not.
export SWIFTDROP_BCRYPT_COST=4
export SWIFTDROP_TRUSTED_PROXIES=127.0.0.1
export SWIFTDROP_LOG=json RUST_LOG="${RUST_LOG:-warn}"

"$BIN" migrate >/dev/null
password="Bench#$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$password" | SWIFTDROP_DATA_DIR="$work/cli" "$BIN" admin create \
  --email bench@bench.test --username bench --password-stdin >/dev/null

start() { # name role port
  SWIFTDROP_ADDR="127.0.0.1:$3" SWIFTDROP_DATA_DIR="$work/$1" "$BIN" "$2" >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$3/ready" >/dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not become ready; see $work/$1.log" >&2
  exit 1
}

if [ "$MODE" = single ]; then
  start serve serve "$PORT"
  echo "deployment: one serve on 127.0.0.1:$PORT (PostgreSQL, ${REDIS_URL:+Redis, }RabbitMQ)"
else
  api_servers="" notifier_servers=""
  for i in $(seq 1 "$APIS"); do
    start "api-$i" api $((PORT + i))
    api_servers+="server 127.0.0.1:$((PORT + i));"
  done
  for i in $(seq 1 "$NOTIFIERS"); do
    start "notifier-$i" notifier $((PORT + 20 + i))
    notifier_servers+="server 127.0.0.1:$((PORT + 20 + i));"
  done
  start worker worker $((PORT + 40))
  # deploy/nginx.conf with its upstreams and listener moved to this machine.
  sed -e "s|server api:8080;|$api_servers|" \
      -e "s|server notifier:8080;|$notifier_servers|" \
      -e "s|listen 8080;|listen 127.0.0.1:$PORT;|" \
      -e "s|^http {|http {\n    access_log off;\n    client_body_temp_path $work/nginx-body;\n    proxy_temp_path $work/nginx-proxy;|" \
      deploy/nginx.conf >"$work/nginx.conf"
  nginx -p "$work" -c "$work/nginx.conf" \
    -g "daemon off; pid $work/nginx.pid; error_log $work/nginx-error.log warn;" &
  pids+=($!)
  for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.1; done
  echo "deployment: nginx on 127.0.0.1:$PORT -> $APIS api, $NOTIFIERS notifier, 1 worker (PostgreSQL, Redis, RabbitMQ)"
fi

# Where the CPU goes during the sale: each group's CPU time (utime + stime
# from /proc) between the load generator's "setup:" line (the sale starts)
# and its "attempts" line (the sale is over). PostgreSQL, Redis and RabbitMQ
# are the machine's shared servers: anything else using them shows too.
ticks() {
  local sum=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] && sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$sum"
}
snapshot() {
  echo "swiftdrop-serve-or-api $(ticks $(pgrep -f "^$BIN (serve|api)$"))"
  echo "swiftdrop-notifier $(ticks $(pgrep -f "^$BIN notifier$"))"
  echo "swiftdrop-worker $(ticks $(pgrep -f "^$BIN worker$"))"
  echo "load-generator $(ticks $(pgrep -f "^$BIN loadtest"))"
  echo "nginx $(ticks $(pgrep -x nginx))"
  echo "postgresql $(ticks $(pgrep -x postgres))"
  echo "redis $(ticks $(pgrep -x redis-server))"
  echo "rabbitmq $(ticks $(pgrep -x beam.smp))"
  echo "machine-busy $(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat)"
  echo "count-redis-commands $(redis-cli -u "$REDIS" info stats 2>/dev/null | tr -d '\r' | awk -F: '/^total_commands_processed/{print $2}')"
  echo "count-postgresql-commits $(psql "$DATABASE" -Atc 'SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()' 2>/dev/null)"
  echo "wall $(date +%s%N | cut -c1-12)"
}
"$BIN" loadtest flash-sale --base-url "http://127.0.0.1:$PORT" \
  --admin bench@bench.test --admin-password "$password" "$@" |
  while IFS= read -r line; do
    case "$line" in
      setup:*) snapshot >"$work/cpu-before" ;;
      attempts*) snapshot >"$work/cpu-after" ;;
    esac
    echo "$line"
  done
if [ -s "$work/cpu-before" ] && [ -s "$work/cpu-after" ]; then
  echo "CPU during the sale (seconds of CPU, share of all busy CPU on the machine):"
  join <(sort "$work/cpu-before") <(sort "$work/cpu-after") | awk '
    $1 == "wall" { wall = ($3 - $2) / 100; next }
    $1 == "machine-busy" { busy = $3 - $2; next }
    $1 ~ /^count-/ { counts[$1] = $3 - $2; next }
    { name[NR] = $1; used[NR] = $3 - $2 }
    END {
      for (i in name) if (used[i] > 0)
        printf "  %-24s %6.2f s  %5.1f %%\n", name[i], used[i] / 100, 100 * used[i] / busy
      printf "  %-24s %6.2f s  of %.2f s wall on %d cores\n", "all busy", busy / 100, wall, cores
      for (c in counts)
        printf "  %-24s %8d  (%.0f/s)\n", substr(c, 7), counts[c], counts[c] / wall
    }' cores="$(nproc)"
fi
