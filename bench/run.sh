#!/usr/bin/env bash
# Runs Herald's benchmark scenarios on loopback and writes docs/benchmarks.md.
#
# Usage: bench/run.sh [SCENARIO...]    scenarios: s1 s2 s3 s4 (default: all)
#
# This script starts every server it measures: a fresh redis-server per
# scenario, the gateways, the relay and herald-baseline. Each gets a free
# port of 127.0.0.1, is checked to be the process listening there, and is
# stopped by its PID when its scenario ends. Each herald-loadgen run stops
# by itself and is bounded by --hard-timeout.
#
# Environment:
#   BUILD_DIR    CMake build directory (default /tmp/herald-bench-build)
#   RESULTS_DIR  where JSON results and server logs go (default: a new /tmp dir)
#   PAGE         page to write (default docs/benchmarks.md; "-" writes none)
#   PORT_BASE    first port to try (default 46100)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-/tmp/herald-bench-build}
results=${RESULTS_DIR:-$(mktemp -d /tmp/herald-bench.XXXXXX)}
mkdir -p "$results"
page=${PAGE:-$root/docs/benchmarks.md}
next_port=${PORT_BASE:-46100}
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  scenarios=(s1 s2 s3 s4)
fi

loadgen=$build_dir/bench/herald-loadgen
baseline=$build_dir/bench/herald-baseline
gateway=$build_dir/gateway/herald-gateway
relay=$build_dir/relay/herald-relay

started=() # PIDs started here and not stopped yet
last_pid=

log() {
  printf '%s bench: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

# ---- processes ---------------------------------------------------------

# Starts a server in the background with its output in LOGFILE.
# Sets last_pid. Usage: launch LOGFILE COMMAND...
launch() {
  local logfile=$1
  shift
  "$@" >"$logfile" 2>&1 &
  last_pid=$!
  started+=("$last_pid")
}

stop_pid() {
  local pid=$1
  if kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# Stops in reverse order of starting, so clients of Redis go before it.
stop_all() {
  local i
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do
    stop_pid "${started[$i]}"
  done
  started=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# Prints the first port from $1 up that nothing listens on.
free_port() {
  local port=$1
  while ss -Htln "sport = :$port" | grep -q .; do
    port=$((port + 1))
  done
  echo "$port"
}

# Waits until PID itself listens on PORT: another program may have taken
# the port between free_port and the bind, and must not be measured.
wait_listening() {
  local port=$1 pid=$2 name=$3 logfile=$4
  for _ in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before listening on port $port; last lines of $logfile:"
      tail -n 5 "$logfile" >&2
      return 1
    fi
    if ss -Htlnp "sport = :$port" | grep -q "pid=$pid,"; then
      return 0
    fi
    sleep 0.05
  done
  log "$name (pid $pid) is not listening on port $port after 5 s"
  return 1
}

# Sets taken_port to a free port. Not for $(...): next_port must persist.
take_port() {
  taken_port=$(free_port "$next_port")
  next_port=$((taken_port + 1))
}

start_redis() {
  take_port
  redis_port=$taken_port
  local logfile=$results/$scenario-redis.log
  launch "$logfile" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
    --appendonly no --protected-mode yes
  redis_pid=$last_pid
  wait_listening "$redis_port" "$redis_pid" redis-server "$logfile"
}

gateway_pids=()
gateway_ports=()
start_gateway() {
  local port logfile=$results/$scenario-gateway-$1.log
  take_port
  port=$taken_port
  launch "$logfile" env HERALD_REDIS_URL="redis://127.0.0.1:$redis_port" HERALD_LOG_LEVEL=warn \
    HERALD_GATEWAY_HOST=127.0.0.1 "$gateway" --host 127.0.0.1 --port "$port"
  wait_listening "$port" "$last_pid" "gateway $1" "$logfile"
  gateway_pids+=("$last_pid")
  gateway_ports+=("$port")
}

# Starts a herald-baseline process. Usage: start_baseline [NAME]
# (default "baseline"); sets baseline_port and baseline_pid.
start_baseline() {
  local name=${1:-baseline}
  take_port
  baseline_port=$taken_port
  local logfile=$results/$scenario-$name.log
  launch "$logfile" "$baseline" --listen "127.0.0.1:$baseline_port" --redis "127.0.0.1:$redis_port"
  baseline_pid=$last_pid
  wait_listening "$baseline_port" "$baseline_pid" herald-baseline "$logfile"
}

# Starts the relay. Returns 1 when it does not listen (it may not be
# finished yet); the caller then publishes through Redis.
start_relay() {
  take_port
  relay_port=$taken_port
  local logfile=$results/$scenario-relay.log
  launch "$logfile" env HERALD_REDIS_URL="redis://127.0.0.1:$redis_port" HERALD_LOG_LEVEL=warn \
    HERALD_RELAY_HOST=127.0.0.1 HERALD_RELAY_PORT="$relay_port" "$relay"
  relay_pid=$last_pid
  wait_listening "$relay_port" "$relay_pid" herald-relay "$logfile"
}

stop_scenario_servers() {
  stop_all
  gateway_pids=()
  gateway_ports=()
}

# ---- measuring ---------------------------------------------------------

# Prints the share of all CPUs that was busy over the next $1 seconds.
machine_busy_percent() {
  local before after
  before=$(head -n 1 /proc/stat)
  sleep "$1"
  after=$(head -n 1 /proc/stat)
  awk -v a="$before" -v b="$after" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    for (i = 2; i <= 9; i++) { d = y[i] - x[i]; total += d; if (i != 5 && i != 6) busy += d }
    printf "%.0f", (total > 0 ? 100 * busy / total : 0) }'
}

# Prints "<loopback backlog drops> <TCP segments retransmitted>" so far:
# column 2 of /proc/net/softnet_stat summed over CPUs, and RetransSegs of
# /proc/net/snmp. Both explain latency spikes that no server causes.
network_counters() {
  local drops=0 a b rest
  while read -r a b rest; do
    drops=$((drops + 16#$b))
  done </proc/net/softnet_stat
  local retrans
  retrans=$(awk '/^Tcp:/ { if (!n++) { for (i = 1; i <= NF; i++) if ($i == "RetransSegs") c = i } else print $c }' /proc/net/snmp)
  echo "$drops $retrans"
}

# Waits up to 90 s for the machine to be nearly idle (under 15 % busy over
# 2 s), because other programs on these cores skew every figure. Records
# the last reading in meta.env either way.
wait_for_quiet() {
  local label=$1 busy
  for _ in $(seq 45); do
    busy=$(machine_busy_percent 2)
    if [ "$busy" -lt 15 ]; then
      break
    fi
  done
  echo "${label//-/_}_busy_before=$busy" >>"$results/meta.env"
  if [ "$busy" -ge 15 ]; then
    log "the machine is still ${busy}% busy; measuring $label anyway"
  fi
}

# Runs herald-loadgen with LABEL; the JSON report goes to LABEL.json, the
# progress lines to LABEL.log and the command to LABEL.cmd.
run_loadgen() {
  local label=$1
  shift
  printf '%q ' herald-loadgen --label "$label" "$@" | sed 's/ $//' >"$results/$label.cmd"
  wait_for_quiet "$label"
  log "running $label: $(cat "$results/$label.cmd")"
  local before after drops_before retrans_before drops_after retrans_after
  before=$(network_counters)
  if "$loadgen" --label "$label" "$@" >"$results/$label.json" 2>"$results/$label.log"; then
    log "$label finished"
  else
    log "$label ended with status $?; see $results/$label.log"
  fi
  after=$(network_counters)
  read -r drops_before retrans_before <<<"$before"
  read -r drops_after retrans_after <<<"$after"
  {
    echo "${label//-/_}_backlog_drops=$((drops_after - drops_before))"
    echo "${label//-/_}_tcp_retransmits=$((retrans_after - retrans_before))"
  } >>"$results/meta.env"
  if ! jq -e . "$results/$label.json" >/dev/null 2>&1; then
    echo '{"status":"no_report"}' >"$results/$label.json"
  fi
}

# Records, for each gateway, whether it survived the run and its RSS a few
# seconds after the clients left, in LABEL.after.json.
record_gateways_after() {
  local label=$1 i pid rss alive entries=()
  sleep 3
  for i in "${!gateway_pids[@]}"; do
    pid=${gateway_pids[$i]}
    if kill -0 "$pid" 2>/dev/null; then
      alive=true
      rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    else
      alive=false
      rss=0
    fi
    local logfile=$results/$scenario-gateway-$((i + 1)).log
    local warnings errors
    # The development-app warning at start is expected here.
    warnings=$(grep ' warn ' "$logfile" | grep -vc 'no apps configured' || true)
    errors=$(grep -c ' error ' "$logfile" || true)
    entries+=("{\"gateway\":$((i + 1)),\"pid\":$pid,\"alive\":$alive,\"rss_kb_after_clients_left\":$rss,\"log_warnings\":$warnings,\"log_errors\":$errors}")
  done
  (IFS=,; echo "[${entries[*]}]") >"$results/$label.after.json"
}

gateway_targets() {
  local port
  for port in "${gateway_ports[@]}"; do
    printf -- '--target 127.0.0.1:%s ' "$port"
  done
}

gateway_pid_args() {
  local i
  for i in "${!gateway_pids[@]}"; do
    printf -- '--server-pid %s:gateway-%s ' "${gateway_pids[$i]}" "$((i + 1))"
  done
}

# Chooses how S1 and S4 publish: through the relay's HTTP API when a
# signed POST goes through it to a gateway, otherwise straight into Redis.
# Sets publish_args, and relay_listening to 1 when the relay started.
choose_publisher() {
  publish_args=(--publish redis --redis "127.0.0.1:$redis_port")
  relay_pid=
  relay_listening=0
  if [ ! -x "$relay" ] || ! start_relay; then
    relay_reason="herald-relay did not start listening (see $scenario-relay.log)"
    return
  fi
  relay_listening=1
  run_loadgen "$scenario-relay-probe" $(gateway_targets) --connections 20 --channels 2 \
    --publish http --relay "127.0.0.1:$relay_port" --rate 20 --duration 1 --drain 3 \
    --source-base 127.9.0.1 --hard-timeout 60
  if jq -e '.status == "ok" and .steps[0].lost == 0 and .steps[0].publish_failed == 0' \
    "$results/$scenario-relay-probe.json" >/dev/null; then
    publish_args=(--publish http --relay "127.0.0.1:$relay_port" --publishers 4)
    relay_reason=
  else
    relay_reason="a signed POST through herald-relay did not reach the gateway (see $scenario-relay-probe.log)"
  fi
}

# ---- scenarios ---------------------------------------------------------

# S1 dashboard: 10,000 connections over 100 channels, 1,000 events/s of
# 100 bytes for 30 s; two gateways, then two baseline processes. One
# baseline process writing 100,000 frames/s is near what one core does
# with one writev per frame, so its loop falls into turns of 100 ms and
# more. Two processes compare like with like.
scenario_s1() {
  scenario=s1
  start_redis
  start_gateway 1
  start_gateway 2
  choose_publisher
  echo "s1_relay_reason=\"${relay_reason}\"" >>"$results/meta.env"
  local relay_args=()
  if [ -n "$relay_pid" ]; then
    relay_args=(--aux-pid "$relay_pid:relay")
  fi
  run_loadgen s1-herald $(gateway_targets) --connections 10000 --channels 100 \
    "${publish_args[@]}" --rate 1000 --duration 30 --payload 100 --drain 5 --clean-p99-ms 5 \
    $(gateway_pid_args) "${relay_args[@]}" --aux-pid "$redis_pid:redis" --source-base 127.1.0.1
  record_gateways_after s1-herald
  stop_scenario_servers

  start_redis
  start_baseline baseline-1
  local first_port=$baseline_port first_pid=$baseline_pid
  start_baseline baseline-2
  run_loadgen s1-baseline --target "127.0.0.1:$first_port" --target "127.0.0.1:$baseline_port" \
    --connections 10000 --channels 100 \
    --publish redis --redis "127.0.0.1:$redis_port" --rate 1000 --duration 30 --payload 100 \
    --drain 5 --clean-p99-ms 5 --server-pid "$first_pid:baseline-1" \
    --server-pid "$baseline_pid:baseline-2" --aux-pid "$redis_pid:redis" \
    --source-base 127.2.0.1
  stop_scenario_servers
}

# S2 storm: 10,000 connections on one channel of one server; the event
# rate starts at 100/s (1 M deliveries/s) and rises by a fifth each step
# until a step loses events or lags. Steps of 1.5 times, as before, made
# the ratio to the baseline either 1.00 or 0.67 and nothing between.
scenario_s2() {
  scenario=s2
  local ramp=(--connections 10000 --channels 1 --rate 100 --ramp-factor 1.2 --ramp-steps 14
    --duration 5 --drain 3 --clean-p99-ms 500 --payload 100)
  start_redis
  start_gateway 1
  run_loadgen s2-herald $(gateway_targets) "${ramp[@]}" --publish redis \
    --redis "127.0.0.1:$redis_port" $(gateway_pid_args) --aux-pid "$redis_pid:redis" \
    --source-base 127.3.0.1
  record_gateways_after s2-herald
  stop_scenario_servers

  start_redis
  start_baseline
  run_loadgen s2-baseline --target "127.0.0.1:$baseline_port" "${ramp[@]}" --publish redis \
    --redis "127.0.0.1:$redis_port" --server-pid "$baseline_pid:baseline" \
    --aux-pid "$redis_pid:redis" --source-base 127.4.0.1
  stop_scenario_servers
}

# S3 idle: 50,000 connections over three gateways, subscribed, no events.
scenario_s3() {
  scenario=s3
  start_redis
  start_gateway 1
  start_gateway 2
  start_gateway 3
  run_loadgen s3-herald $(gateway_targets) --connections 50000 --channels 500 --workers 4 \
    --publish none --duration 20 --setup-timeout 90 $(gateway_pid_args) \
    --aux-pid "$redis_pid:redis" --source-base 127.5.0.1
  record_gateways_after s3-herald
  stop_scenario_servers
}

# S4 churn: S1 while 200 connections a second close and reopen. Half of
# the 1,000 churning connections also join one of 10 presence channels
# (50 members each, under the default limit of 100) after every connect.
# At the end the relay's member lists must equal the members the load
# generator holds, and be empty once every connection has closed.
scenario_s4() {
  scenario=s4
  start_redis
  start_gateway 1
  start_gateway 2
  choose_publisher
  echo "s4_relay_reason=\"${relay_reason}\"" >>"$results/meta.env"
  local relay_args=()
  if [ -n "$relay_pid" ]; then
    relay_args=(--aux-pid "$relay_pid:relay")
  fi
  # The member lists are read through the relay's HTTP API, so the
  # presence half needs a listening relay even when events go to Redis.
  local presence_args=()
  if [ "$relay_listening" = 1 ]; then
    presence_args=(--presence-channels 10 --presence-share 0.5 --presence-settle 10)
    if [ "${publish_args[1]}" != http ]; then
      presence_args+=(--relay "127.0.0.1:$relay_port")
    fi
    echo "s4_presence_reason=" >>"$results/meta.env"
  else
    echo "s4_presence_reason=\"herald-relay did not start listening, so the member lists could not be read\"" \
      >>"$results/meta.env"
  fi
  run_loadgen s4-herald $(gateway_targets) --connections 10000 --channels 100 \
    "${publish_args[@]}" --rate 1000 --duration 30 --payload 100 --drain 5 --clean-p99-ms 5 \
    --churn-rate 200 --churn-pool 1000 "${presence_args[@]}" $(gateway_pid_args) \
    "${relay_args[@]}" --aux-pid "$redis_pid:redis" --source-base 127.6.0.1
  record_gateways_after s4-herald
  stop_scenario_servers
}

# ---- main --------------------------------------------------------------

for tool in redis-server jq ss cmake; do
  if ! command -v "$tool" >/dev/null; then
    log "$tool is missing; install it (Debian packages redis-server, jq, iproute2, cmake)"
    exit 1
  fi
done

log "building in $build_dir"
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DHERALD_TESTS=OFF >"$results/build.log"
cmake --build "$build_dir" -j"$(nproc)" --target herald-gateway herald-relay herald-loadgen \
  herald-baseline >>"$results/build.log"

{
  echo "command=\"bench/run.sh ${scenarios[*]}\""
  echo "commit=$(git -C "$root" rev-parse HEAD)"
  echo "dirty=\"$(git -C "$root" status --porcelain -- gateway relay common | tr '\n' ' ')\""
  echo "date=\"$(date -u '+%Y-%m-%d %H:%M UTC')\""
  echo "cores=$(nproc)"
  echo "cpu_model=\"$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)\""
  echo "kernel=\"$(uname -r)\""
  echo "memory_gib=$(awk '/^MemTotal:/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)"
  echo "load_before=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
  echo "redis_version=\"$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')\""
} >"$results/meta.env"

log "results go to $results"
for s in "${scenarios[@]}"; do
  case $s in
  s1 | s2 | s3 | s4)
    "scenario_$s"
    echo "load_after_$s=\"$(cut -d' ' -f1-3 /proc/loadavg)\"" >>"$results/meta.env"
    ;;
  *)
    log "unknown scenario $s: expected s1, s2, s3 or s4"
    exit 2
    ;;
  esac
done

if [ "$page" != "-" ]; then
  "$root/bench/report.sh" "$results" "$page" >"$page.new"
  mv "$page.new" "$page"
  log "wrote $page"
fi
