#!/usr/bin/env bash
# Starts a local Herald cluster for development: installs what is missing,
# builds, then runs redis-server, one herald-relay (HTTP API, port 6002) and
# two herald-gateway processes (WebSocket, ports 6001 and 6003) in the
# foreground with the development app. Ctrl-C stops everything it started.
#
# Logs go to .run/ in the repository.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

host=127.0.0.1
redis_port=6379
gateway_ports=(6001 6003)
relay_port=6002
run_dir="$repo/.run"

port_in_use() {
  (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null
}

# Waits until something accepts connections on port $2, or fails if
# process $3 exits or 20 seconds pass.
wait_for_port() {
  local name=$1 port=$2 pid=$3
  for _ in $(seq 1 200); do
    if port_in_use "$port"; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "quickstart: $name exited before accepting connections on port $port; last lines of $run_dir/$name.log:" >&2
      tail -n 20 "$run_dir/$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "quickstart: timed out waiting for $name on port $port; see $run_dir/$name.log" >&2
  return 1
}

pids=()
names=()
stop_all() {
  trap - INT TERM EXIT
  if ((${#pids[@]} > 0)); then
    echo
    echo "quickstart: stopping ${names[*]}"
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
      kill -TERM "${pids[i]}" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
      wait "$pid" 2>/dev/null || true
    done
  fi
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() {
  local name=$1
  shift
  "$@" >"$run_dir/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
}

scripts/install-deps.sh
scripts/build.sh

for port in "$relay_port" "${gateway_ports[@]}"; do
  if port_in_use "$port"; then
    echo "quickstart: port $port is already in use; stop what is listening there (ss -ltnp 'sport = :$port') and run quickstart again" >&2
    exit 1
  fi
done

if port_in_use "$redis_port"; then
  taken=$redis_port
  for candidate in $(seq 6380 6479); do
    if ! port_in_use "$candidate"; then
      redis_port=$candidate
      break
    fi
  done
  if [[ $redis_port == "$taken" ]]; then
    echo "quickstart: ports 6379-6479 are all in use; free one for redis-server" >&2
    exit 1
  fi
  echo "quickstart: port $taken is already in use, so this cluster's redis-server uses port $redis_port"
fi

mkdir -p "$run_dir"

start redis redis-server --port "$redis_port" --bind "$host" --save '' --appendonly no --dir "$run_dir"
wait_for_port redis "$redis_port" "${pids[-1]}"

export HERALD_REDIS_URL="redis://$host:$redis_port"
export HERALD_GATEWAY_HOST=$host
export HERALD_RELAY_HOST=$host
unset HERALD_APPS

start relay build/relay/herald-relay --port "$relay_port"
wait_for_port relay "$relay_port" "${pids[-1]}"
for index in "${!gateway_ports[@]}"; do
  name="gateway-$((index + 1))"
  start "$name" build/gateway/herald-gateway --port "${gateway_ports[index]}"
  wait_for_port "$name" "${gateway_ports[index]}" "${pids[-1]}"
done

cat <<INFO

Herald is running (development app; do not use these credentials in production).

  WebSocket (pusher-js, Laravel Echo):  ws://$host:${gateway_ports[0]}/app/app-key
                                        ws://$host:${gateway_ports[1]}/app/app-key
  HTTP API (Pusher server SDKs):        http://$host:$relay_port/apps/app-1/events
  Redis:                                redis://$host:$redis_port
  Logs:                                 $run_dir/

  App id: app-1    Key: app-key    Secret: app-secret

Laravel Echo (resources/js/echo.js):

  import Echo from 'laravel-echo';
  import Pusher from 'pusher-js';
  window.Pusher = Pusher;

  window.Echo = new Echo({
      broadcaster: 'reverb',
      key: 'app-key',
      wsHost: '$host',
      wsPort: ${gateway_ports[0]},
      wssPort: ${gateway_ports[0]},
      forceTLS: false,
      enabledTransports: ['ws', 'wss'],
  });

Laravel .env (the backend talks to the relay, the browser to a gateway):

  BROADCAST_CONNECTION=reverb
  REVERB_APP_ID=app-1
  REVERB_APP_KEY=app-key
  REVERB_APP_SECRET=app-secret
  REVERB_HOST=$host
  REVERB_PORT=$relay_port
  REVERB_SCHEME=http
  VITE_REVERB_APP_KEY="\${REVERB_APP_KEY}"
  VITE_REVERB_HOST="\${REVERB_HOST}"
  VITE_REVERB_PORT=${gateway_ports[0]}
  VITE_REVERB_SCHEME="\${REVERB_SCHEME}"

  # or, with the pusher broadcaster:
  PUSHER_APP_ID=app-1
  PUSHER_APP_KEY=app-key
  PUSHER_APP_SECRET=app-secret
  PUSHER_HOST=$host
  PUSHER_PORT=$relay_port
  PUSHER_SCHEME=http
  PUSHER_APP_CLUSTER=mt1

Press Ctrl-C to stop.
INFO

# Stay in the foreground until Ctrl-C or until one of the processes exits.
set +e
wait -n "${pids[@]}"
status=$?
set -e
for index in "${!pids[@]}"; do
  if ! kill -0 "${pids[index]}" 2>/dev/null; then
    echo "quickstart: ${names[index]} exited (status $status); last lines of $run_dir/${names[index]}.log:" >&2
    tail -n 20 "$run_dir/${names[index]}.log" >&2
  fi
done
exit 1
