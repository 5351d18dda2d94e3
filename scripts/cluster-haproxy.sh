#!/usr/bin/env bash
# Runs the docker-compose.yml topology as local processes on 127.0.0.1:
# redis-server, two herald-relay, three herald-gateway and HAProxy in front
# of them on one public port, with /app/ routed to the gateways and /apps/
# to the relays. Stays in the foreground; Ctrl-C stops everything it
# started. The HAProxy configuration and the logs go to a temporary
# directory, which is removed on a clean stop.
#
#   scripts/cluster-haproxy.sh [options]
#
#   --port N              public HAProxy port (default 6001)
#   --base-port N         first internal port (default 16100): redis-server
#                         on N, gateways on N+1..N+3, relays on N+11 and
#                         N+12, the HAProxy statistics page on N+20
#   --gateway-ports LIST  comma-separated gateway ports instead of N+1..N+3;
#                         one gateway runs per port
#   --relay-ports LIST    comma-separated relay ports instead of N+11,N+12
#   --stats-port N        HAProxy statistics port instead of N+20
#   --build-dir DIR       where herald-gateway and herald-relay were built
#                         (default build/, made by scripts/build.sh)
#   --work-dir DIR        write the configuration and logs to DIR and keep it
#   --health-check MODE   how HAProxy checks the servers: http (GET /ready),
#                         tcp (connect only) or auto (default), which uses
#                         http for each binary that serves /ready and tcp
#                         for one that returns 404 for it
#   --dashboard           also run the inventory dashboard example
#                         (examples/inventory-dashboard/start.sh --no-install)
#                         against the public port; if it fails, the cluster
#                         keeps running and a warning is printed
#   --dashboard-port N    port of the dashboard (default 8000)
#   --print-config        print the HAProxy configuration and exit
#   --check-config        check the HAProxy configuration with haproxy -c and
#                         exit
#   -h, --help            show this help
#
# The processes inherit HERALD_* variables from the environment (such as
# HERALD_APPS or HERALD_DRAIN_SECONDS), except the Redis address, hosts and
# ports, which this script sets. Needs redis-server and haproxy (Debian
# packages redis-server and haproxy).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

host=127.0.0.1
public_port=6001
base_port=16100
gateway_port_list=
relay_port_list=
stats_port=
build_dir="$repo/build"
work_dir=
keep_work_dir=0
health_check=auto
dashboard=0
dashboard_port=8000
action=run

fail() {
  echo "cluster-haproxy: $*" >&2
  exit 1
}

# Prints the comment block at the top of this file, up to `set -euo pipefail`.
print_help() {
  sed -n '2,/^set -euo pipefail$/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

usage_error() {
  echo "cluster-haproxy: $*" >&2
  exit 2
}

require_port_value() {
  local option=$1 value=${2:-}
  if [[ ! $value =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
    usage_error "$option expects a port from 1 to 65535, got '$value'"
  fi
}

# Checks a comma-separated list of ports given to option $1.
require_port_list() {
  local option=$1 list=${2:-} port
  [[ -n $list ]] || usage_error "$option expects a comma-separated list of ports"
  local -a items
  IFS=',' read -r -a items <<<"$list"
  ((${#items[@]} > 0)) || usage_error "$option expects a comma-separated list of ports"
  for port in "${items[@]}"; do
    require_port_value "$option" "$port"
  done
}

while (($# > 0)); do
  case "$1" in
    --port)
      require_port_value "$1" "${2:-}"
      public_port=$2
      shift 2
      ;;
    --base-port)
      require_port_value "$1" "${2:-}"
      base_port=$2
      shift 2
      ;;
    --gateway-ports)
      require_port_list "$1" "${2:-}"
      gateway_port_list=$2
      shift 2
      ;;
    --relay-ports)
      require_port_list "$1" "${2:-}"
      relay_port_list=$2
      shift 2
      ;;
    --stats-port)
      require_port_value "$1" "${2:-}"
      stats_port=$2
      shift 2
      ;;
    --build-dir)
      [[ -n ${2:-} ]] || usage_error "--build-dir expects a directory"
      build_dir=$(cd "$2" 2>/dev/null && pwd) || usage_error "build directory $2 not found"
      shift 2
      ;;
    --work-dir)
      [[ -n ${2:-} ]] || usage_error "--work-dir expects a directory"
      work_dir=$2
      keep_work_dir=1
      shift 2
      ;;
    --health-check)
      case "${2:-}" in
        http | tcp | auto) health_check=$2 ;;
        *) usage_error "--health-check expects http, tcp or auto, got '${2:-}'" ;;
      esac
      shift 2
      ;;
    --dashboard)
      dashboard=1
      shift
      ;;
    --dashboard-port)
      require_port_value "$1" "${2:-}"
      dashboard_port=$2
      shift 2
      ;;
    --print-config)
      action=print
      shift
      ;;
    --check-config)
      action=check
      shift
      ;;
    -h | --help)
      print_help
      exit 0
      ;;
    *)
      usage_error "unknown option '$1' (see --help)"
      ;;
  esac
done

if ((base_port + 20 > 65535)); then
  usage_error "--base-port $base_port is too high: the internal ports go up to base + 20"
fi

redis_port=$base_port
if [[ -n $gateway_port_list ]]; then
  IFS=',' read -r -a gateway_ports <<<"$gateway_port_list"
else
  gateway_ports=($((base_port + 1)) $((base_port + 2)) $((base_port + 3)))
fi
if [[ -n $relay_port_list ]]; then
  IFS=',' read -r -a relay_ports <<<"$relay_port_list"
else
  relay_ports=($((base_port + 11)) $((base_port + 12)))
fi
stats_port=${stats_port:-$((base_port + 20))}

# Health check lines of one backend. $1 is http or tcp.
write_health_check() {
  if [[ $1 == http ]]; then
    cat <<'CHECK'
    option httpchk
    http-check send meth GET uri /ready ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
CHECK
  else
    echo "    # TCP check only: this build of the binary does not serve GET /ready."
  fi
}

# Prints the HAProxy configuration. $1 and $2 are the health check modes
# of the gateways and the relays. The timeouts, routing and checks match
# deploy/haproxy/haproxy.cfg (used by docker-compose.yml), whose comments
# explain them. Only addresses, ports and name resolution differ.
write_haproxy_config() {
  local gateway_check=$1 relay_check=$2
  cat <<CONFIG
# Written by scripts/cluster-haproxy.sh for processes on $host.
global
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 5s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 10s
    timeout client 3600s
    timeout server 3600s
    timeout tunnel 3600s
    timeout client-fin 30s
    timeout server-fin 30s

frontend public
    bind $host:$public_port
    option forwardfor
    acl websocket_path path_beg /app/
    acl http_api_path path_beg /apps/
    http-request return status 404 content-type text/plain string "not found: WebSocket clients use /app/{key}, the HTTP API uses /apps/{app_id}/...\n" unless websocket_path || http_api_path
    use_backend gateways if websocket_path
    use_backend relays if http_api_path

backend gateways
    balance leastconn
$(write_health_check "$gateway_check")
    retries 3
    retry-on conn-failure empty-response response-timeout
    option redispatch 1
    default-server check inter 2s fall 2 rise 2
CONFIG
  local index
  for index in "${!gateway_ports[@]}"; do
    echo "    server gateway-$((index + 1)) $host:${gateway_ports[index]}"
  done
  cat <<CONFIG

backend relays
    balance roundrobin
    timeout server 30s
$(write_health_check "$relay_check")
    retries 2
    option redispatch
    default-server check inter 2s fall 2 rise 2
CONFIG
  for index in "${!relay_ports[@]}"; do
    echo "    server relay-$((index + 1)) $host:${relay_ports[index]}"
  done
  cat <<CONFIG

frontend stats
    bind $host:$stats_port
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /
    stats refresh 5s
CONFIG
}

if [[ $action == print ]]; then
  write_haproxy_config http http
  exit 0
fi

command -v haproxy >/dev/null 2>&1 || fail "haproxy not found: install it with apt-get install haproxy"

if [[ -z $work_dir ]]; then
  work_dir=$(mktemp -d "${TMPDIR:-/tmp}/herald-cluster.XXXXXX")
else
  mkdir -p "$work_dir"
fi
config_file="$work_dir/haproxy.cfg"

if [[ $action == check ]]; then
  write_haproxy_config http http >"$config_file"
  status=0
  haproxy -c -f "$config_file" || status=$?
  if ((keep_work_dir)); then
    echo "cluster-haproxy: configuration written to $config_file"
  else
    rm -rf "$work_dir"
  fi
  exit "$status"
fi

command -v redis-server >/dev/null 2>&1 || fail "redis-server not found: install it with apt-get install redis-server"
gateway_binary="$build_dir/gateway/herald-gateway"
relay_binary="$build_dir/relay/herald-relay"
for binary in "$gateway_binary" "$relay_binary"; do
  [[ -x $binary ]] || fail "$binary not found: build it with scripts/build.sh or pass --build-dir"
done

port_in_use() {
  (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null
}

for port in "$public_port" "$redis_port" "${gateway_ports[@]}" "${relay_ports[@]}" "$stats_port"; do
  if port_in_use "$port"; then
    fail "port $port is already in use; stop what listens there (ss -ltnp 'sport = :$port') or choose other ports with --port and --base-port"
  fi
done

pids=()
names=()
failed=0
dashboard_pid=

# Seconds stop_all waits for one process after SIGTERM before it sends
# SIGKILL. A gateway drains for HERALD_DRAIN_SECONDS (default 10) plus up to
# 3 s, but HAProxy stops first and takes the clients with it, so the
# gateways normally exit at once.
drain_seconds=10
if [[ ${HERALD_DRAIN_SECONDS:-} =~ ^[0-9]+$ ]]; then
  drain_seconds=$((10#$HERALD_DRAIN_SECONDS))
fi
stop_timeout=$((drain_seconds + 10))

# Sends SIGTERM to the process group of $1 (each process started here leads
# its own group) and waits for it, with SIGKILL after stop_timeout seconds.
stop_process() {
  local pid=$1 name=$2 tick
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for ((tick = 0; tick < stop_timeout * 10; tick++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "cluster-haproxy: $name (pid $pid) did not exit within $stop_timeout s of SIGTERM; sending SIGKILL" >&2
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

stop_all() {
  trap - INT TERM HUP EXIT
  if ((${#pids[@]} > 0)); then
    echo "cluster-haproxy: stopping ${names[*]}"
    # Reverse order: the dashboard and HAProxy first, Redis last.
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
      stop_process "${pids[i]}" "${names[i]}"
    done
  fi
  if ((failed || keep_work_dir)); then
    echo "cluster-haproxy: configuration and logs are in $work_dir"
  else
    rm -rf "$work_dir"
  fi
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Starts "$@" in the background with its output in $work_dir/$1.log. setsid
# puts it in a session and process group of its own, so the terminal's
# Ctrl-C reaches only this script, which then stops the processes in order
# (HAProxy before the gateways, Redis last). A child forked by bash does not
# lead a process group, so setsid runs the command in the same process
# without forking and $! is the command's PID.
start() {
  local name=$1
  shift
  setsid "$@" >"$work_dir/$name.log" 2>&1 </dev/null &
  pids+=($!)
  names+=("$name")
}

# Removes process $1, which exited and was reaped, from the lists that
# stop_all goes through, so its PID is never signalled after reuse.
forget_process() {
  local index
  for index in "${!pids[@]}"; do
    if [[ ${pids[index]} == "$1" ]]; then
      unset 'pids[index]' 'names[index]'
    fi
  done
  pids=("${pids[@]}")
  names=("${names[@]}")
}

# Waits until port $2 accepts connections, or fails if process $3 exits or
# 20 seconds pass.
wait_for_port() {
  local name=$1 port=$2 pid=$3
  local attempt
  for attempt in $(seq 1 200); do
    if port_in_use "$port"; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      failed=1
      echo "cluster-haproxy: $name exited before accepting connections on port $port; last lines of $work_dir/$name.log:" >&2
      tail -n 20 "$work_dir/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  failed=1
  fail "timed out after 20 s waiting for $name on port $port; see $work_dir/$name.log"
}

# Prints the HTTP status code of GET $2 on port $1, or nothing when the
# request fails.
http_status() {
  local port=$1 path=$2 status_line=
  {
    exec 3<>"/dev/tcp/$host/$port" &&
      printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3 &&
      read -r -t 5 status_line <&3
  } 2>/dev/null || true
  exec 3<&- 2>/dev/null || true
  status_line=${status_line%$'\r'}
  if [[ $status_line =~ ^HTTP/1\.[01]\ ([0-9]{3}) ]]; then
    echo "${BASH_REMATCH[1]}"
  fi
}

# Chooses the health check of one backend for --health-check auto.
choose_health_check() {
  local name=$1 port=$2
  if [[ $health_check != auto ]]; then
    echo "$health_check"
    return
  fi
  local status
  status=$(http_status "$port" /ready)
  if [[ $status == 200 || $status == 503 ]]; then
    echo http
  else
    echo "cluster-haproxy: $name returned '${status:-no response}' for GET /ready, so HAProxy checks it by TCP connect only" >&2
    echo tcp
  fi
}

# Prints a warning with the last lines of the dashboard's log.
warn_dashboard_failed() {
  echo "cluster-haproxy: WARNING: $1. The Herald cluster keeps running. Last lines of $work_dir/dashboard.log:" >&2
  tail -n 15 "$work_dir/dashboard.log" | sed 's/^/    /' >&2
}

# Starts the inventory dashboard and waits until its port accepts
# connections. vite build runs first, so this can take a minute on a slow
# machine. A dashboard that fails leaves the cluster running.
start_dashboard() {
  local script="$repo/examples/inventory-dashboard/start.sh"
  if [[ ! -x $script ]]; then
    echo "cluster-haproxy: WARNING: $script not found, so the dashboard does not run" >&2
    return 0
  fi
  if port_in_use "$dashboard_port"; then
    echo "cluster-haproxy: WARNING: port $dashboard_port is already in use, so the dashboard does not run; choose another with --dashboard-port" >&2
    return 0
  fi
  echo "cluster-haproxy: starting the inventory dashboard (vite build first; log $work_dir/dashboard.log)"
  start dashboard env PORT="$dashboard_port" \
    HERALD_RELAY_HOST="$host" HERALD_RELAY_PORT="$public_port" \
    HERALD_WS_HOST="$host" HERALD_WS_PORT="$public_port" \
    "$script" --no-install
  dashboard_pid=${pids[-1]}

  local tick
  for ((tick = 0; tick < 1800; tick++)); do
    if port_in_use "$dashboard_port"; then
      return 0
    fi
    if ! kill -0 "$dashboard_pid" 2>/dev/null; then
      local status=0
      wait "$dashboard_pid" 2>/dev/null || status=$?
      warn_dashboard_failed "the inventory dashboard exited with status $status before it served port $dashboard_port"
      forget_process "$dashboard_pid"
      dashboard_pid=
      return 0
    fi
    sleep 0.1
  done
  echo "cluster-haproxy: WARNING: timed out after 180 s waiting for the inventory dashboard on port $dashboard_port; it keeps running, see $work_dir/dashboard.log" >&2
}

start redis redis-server --port "$redis_port" --bind "$host" --save '' --appendonly no --dir "$work_dir"
wait_for_port redis "$redis_port" "${pids[-1]}"

export HERALD_REDIS_URL="redis://$host:$redis_port"
export HERALD_GATEWAY_HOST=$host
export HERALD_RELAY_HOST=$host
# HAProxy connects from $host and adds X-Forwarded-For, so the gateways
# count connections per client address, not per HAProxy.
export HERALD_TRUSTED_PROXIES=$host
unset HERALD_REDIS_PASSWORD HERALD_GATEWAY_PORT HERALD_RELAY_PORT

for index in "${!relay_ports[@]}"; do
  name="relay-$((index + 1))"
  start "$name" "$relay_binary" --port "${relay_ports[index]}"
  wait_for_port "$name" "${relay_ports[index]}" "${pids[-1]}"
done
for index in "${!gateway_ports[@]}"; do
  name="gateway-$((index + 1))"
  start "$name" "$gateway_binary" --port "${gateway_ports[index]}"
  wait_for_port "$name" "${gateway_ports[index]}" "${pids[-1]}"
done

gateway_check=$(choose_health_check herald-gateway "${gateway_ports[0]}")
relay_check=$(choose_health_check herald-relay "${relay_ports[0]}")
write_haproxy_config "$gateway_check" "$relay_check" >"$config_file"
if ! haproxy -c -q -f "$config_file"; then
  failed=1
  fail "haproxy rejected the generated configuration $config_file"
fi
start haproxy haproxy -db -f "$config_file"
wait_for_port haproxy "$public_port" "${pids[-1]}"

if ((dashboard)); then
  start_dashboard
fi

if [[ -z ${HERALD_APPS:-} ]]; then
  app_id=app-1
  app_key=app-key
  app_secret=app-secret
  apps_note="development app; its secret is public, so configure your own apps (HERALD_APPS) before exposing the port"
else
  app_id='<app id>'
  app_key='<app key>'
  app_secret='<app secret>'
  apps_note="apps from HERALD_APPS"
fi

dashboard_line=
if [[ -n $dashboard_pid ]]; then
  dashboard_line="  Inventory dashboard (example):        http://$host:$dashboard_port/"
fi

cat <<INFO

Herald cluster behind HAProxy is running ($apps_note).

  WebSocket and HTTP API, one port:     $host:$public_port
  WebSocket (pusher-js, Laravel Echo):  ws://$host:$public_port/app/$app_key
  HTTP API (Pusher server SDKs):        http://$host:$public_port/apps/$app_id/events
${dashboard_line:+$dashboard_line
}  HAProxy statistics:                   http://$host:$stats_port/
  Gateways:                             ${gateway_ports[*]/#/$host:}
  Relays:                               ${relay_ports[*]/#/$host:}
  Redis:                                redis://$host:$redis_port
  Configuration and logs:               $work_dir

  App id: $app_id    Key: $app_key    Secret: $app_secret

Laravel Echo (resources/js/echo.js):

  import Echo from 'laravel-echo';
  import Pusher from 'pusher-js';
  window.Pusher = Pusher;

  window.Echo = new Echo({
      broadcaster: 'reverb',
      key: import.meta.env.VITE_REVERB_APP_KEY,   // '$app_key'
      wsHost: import.meta.env.VITE_REVERB_HOST,   // '$host'
      wsPort: import.meta.env.VITE_REVERB_PORT,   // $public_port
      wssPort: import.meta.env.VITE_REVERB_PORT,
      forceTLS: false,
      enabledTransports: ['ws', 'wss'],
  });

Laravel .env (the backend and the browser use the same host and port):

  BROADCAST_CONNECTION=reverb
  REVERB_APP_ID=$app_id
  REVERB_APP_KEY=$app_key
  REVERB_APP_SECRET=$app_secret
  REVERB_HOST=$host
  REVERB_PORT=$public_port
  REVERB_SCHEME=http
  VITE_REVERB_APP_KEY="\${REVERB_APP_KEY}"
  VITE_REVERB_HOST="\${REVERB_HOST}"
  VITE_REVERB_PORT="\${REVERB_PORT}"
  VITE_REVERB_SCHEME="\${REVERB_SCHEME}"

  # or, with the pusher broadcaster:
  BROADCAST_CONNECTION=pusher
  PUSHER_APP_ID=$app_id
  PUSHER_APP_KEY=$app_key
  PUSHER_APP_SECRET=$app_secret
  PUSHER_HOST=$host
  PUSHER_PORT=$public_port
  PUSHER_SCHEME=http
  PUSHER_APP_CLUSTER=mt1

Press Ctrl-C to stop.
INFO

# Stay in the foreground until Ctrl-C or until one of the cluster's
# processes exits. The dashboard is only an example: when it exits, warn
# and keep the cluster running.
watched=("${pids[@]}")
while true; do
  set +e
  exited_pid=
  wait -n -p exited_pid "${watched[@]}"
  status=$?
  set -e
  if [[ -n $dashboard_pid && $exited_pid == "$dashboard_pid" ]]; then
    warn_dashboard_failed "the inventory dashboard exited with status $status"
    forget_process "$dashboard_pid"
    dashboard_pid=
    remaining=()
    for pid in "${watched[@]}"; do
      if [[ $pid != "$exited_pid" ]]; then
        remaining+=("$pid")
      fi
    done
    watched=("${remaining[@]}")
    continue
  fi
  break
done
failed=1
for index in "${!pids[@]}"; do
  if [[ ${pids[index]} == "$exited_pid" ]]; then
    echo "cluster-haproxy: ${names[index]} exited (status $status); last lines of $work_dir/${names[index]}.log:" >&2
    tail -n 20 "$work_dir/${names[index]}.log" >&2
  fi
done
exit 1
