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
#   --build-dir DIR       where herald-gateway and herald-relay were built
#                         (default build/, made by scripts/build.sh)
#   --work-dir DIR        write the configuration and logs to DIR and keep it
#   --health-check MODE   how HAProxy checks the servers: http (GET /ready),
#                         tcp (connect only) or auto (default), which uses
#                         http for each binary that serves /ready and tcp
#                         for one that returns 404 for it
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
build_dir="$repo/build"
work_dir=
keep_work_dir=0
health_check=auto
action=run

fail() {
  echo "cluster-haproxy: $*" >&2
  exit 1
}

print_help() {
  sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

require_port_value() {
  local option=$1 value=${2:-}
  if [[ ! $value =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
    echo "cluster-haproxy: $option expects a port from 1 to 65535, got '$value'" >&2
    exit 2
  fi
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
    --build-dir)
      [[ -n ${2:-} ]] || { echo "cluster-haproxy: --build-dir expects a directory" >&2; exit 2; }
      build_dir=$(cd "$2" 2>/dev/null && pwd) || { echo "cluster-haproxy: build directory $2 not found" >&2; exit 2; }
      shift 2
      ;;
    --work-dir)
      [[ -n ${2:-} ]] || { echo "cluster-haproxy: --work-dir expects a directory" >&2; exit 2; }
      work_dir=$2
      keep_work_dir=1
      shift 2
      ;;
    --health-check)
      case "${2:-}" in
        http | tcp | auto) health_check=$2 ;;
        *)
          echo "cluster-haproxy: --health-check expects http, tcp or auto, got '${2:-}'" >&2
          exit 2
          ;;
      esac
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
      echo "cluster-haproxy: unknown option '$1' (see --help)" >&2
      exit 2
      ;;
  esac
done

if ((base_port + 20 > 65535)); then
  echo "cluster-haproxy: --base-port $base_port is too high: the internal ports go up to base + 20" >&2
  exit 2
fi

redis_port=$base_port
gateway_ports=($((base_port + 1)) $((base_port + 2)) $((base_port + 3)))
relay_ports=($((base_port + 11)) $((base_port + 12)))
stats_port=$((base_port + 20))

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

stop_all() {
  trap - INT TERM EXIT
  if ((${#pids[@]} > 0)); then
    echo "cluster-haproxy: stopping ${names[*]}"
    # Reverse order: HAProxy first, Redis last. Gateways with clients
    # drain for HERALD_DRAIN_SECONDS (default 10 s) before they exit.
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
      kill -TERM "${pids[i]}" 2>/dev/null || true
      wait "${pids[i]}" 2>/dev/null || true
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

start() {
  local name=$1
  shift
  "$@" >"$work_dir/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
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

start redis redis-server --port "$redis_port" --bind "$host" --save '' --appendonly no --dir "$work_dir"
wait_for_port redis "$redis_port" "${pids[-1]}"

export HERALD_REDIS_URL="redis://$host:$redis_port"
export HERALD_GATEWAY_HOST=$host
export HERALD_RELAY_HOST=$host
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

apps_note="apps from HERALD_APPS"
if [[ -z ${HERALD_APPS:-} ]]; then
  apps_note="development app: id app-1, key app-key, secret app-secret"
fi
cat <<INFO

Herald cluster behind HAProxy is running ($apps_note).

  WebSocket (pusher-js, Laravel Echo):  ws://$host:$public_port/app/{key}
  HTTP API (Pusher server SDKs):        http://$host:$public_port/apps/{app_id}/events
  HAProxy statistics:                   http://$host:$stats_port/
  Gateways:                             ${gateway_ports[*]/#/$host:}
  Relays:                               ${relay_ports[*]/#/$host:}
  Redis:                                redis://$host:$redis_port
  Configuration and logs:               $work_dir

Press Ctrl-C to stop.
INFO

# Stay in the foreground until Ctrl-C or until one of the processes exits.
set +e
wait -n "${pids[@]}"
status=$?
set -e
failed=1
for index in "${!pids[@]}"; do
  if ! kill -0 "${pids[index]}" 2>/dev/null; then
    echo "cluster-haproxy: ${names[index]} exited (status $status); last lines of $work_dir/${names[index]}.log:" >&2
    tail -n 20 "$work_dir/${names[index]}.log" >&2
  fi
done
exit 1
