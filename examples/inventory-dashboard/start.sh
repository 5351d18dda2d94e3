#!/usr/bin/env bash
# Builds the inventory dashboard (npm ci, vite build) and runs its demo
# backend on 127.0.0.1:$PORT against a Herald cluster that is already
# running, by default the one scripts/quickstart.sh starts. The backend
# stays in the foreground until Ctrl-C or SIGTERM stops it.
#
# Settings (environment): PORT (8000), HERALD_RELAY_HOST (127.0.0.1),
# HERALD_RELAY_PORT (6001), HERALD_WS_HOST (127.0.0.1), HERALD_WS_PORT
# (6001, or a comma-separated list of gateway ports), HERALD_APP_ID,
# HERALD_APP_KEY and HERALD_APP_SECRET (app-1, app-key, app-secret).
#
# Usage: start.sh [--no-install]
#   --no-install  skip npm ci when node_modules is already installed
set -euo pipefail

example=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$example"

install=1
for argument in "$@"; do
  case $argument in
    --no-install) install=0 ;;
    -h | --help)
      sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "start.sh: unknown option $argument; see start.sh --help" >&2
      exit 2
      ;;
  esac
done

export PORT=${PORT:-8000}
export HERALD_RELAY_HOST=${HERALD_RELAY_HOST:-127.0.0.1}
export HERALD_RELAY_PORT=${HERALD_RELAY_PORT:-6001}
export HERALD_WS_HOST=${HERALD_WS_HOST:-127.0.0.1}
export HERALD_WS_PORT=${HERALD_WS_PORT:-6001}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "start.sh: node and npm are required; run scripts/install-deps.sh" >&2
  exit 1
fi
# Vite 8 needs Node.js 20.19 or later.
if ! node -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 20 || (major === 20 && minor >= 19) ? 0 : 1)'; then
  echo "start.sh: Node.js $(node --version) is too old; Vite 8 needs 20.19 or later" >&2
  exit 1
fi

port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Fails early, with the fix, when the cluster is not running.
if ! port_open "$HERALD_RELAY_HOST" "$HERALD_RELAY_PORT"; then
  echo "start.sh: no Herald relay on $HERALD_RELAY_HOST:$HERALD_RELAY_PORT; start the cluster first (scripts/quickstart.sh) or set HERALD_RELAY_HOST/HERALD_RELAY_PORT" >&2
  exit 1
fi
IFS=',' read -r -a ws_ports <<<"$HERALD_WS_PORT"
for ws_port in "${ws_ports[@]}"; do
  if ! port_open "$HERALD_WS_HOST" "$ws_port"; then
    echo "start.sh: no Herald gateway on $HERALD_WS_HOST:$ws_port; start the cluster first (scripts/quickstart.sh) or set HERALD_WS_PORT to the gateways that run" >&2
    exit 1
  fi
done
if port_open 127.0.0.1 "$PORT"; then
  echo "start.sh: port $PORT is already in use; stop what listens there or set PORT" >&2
  exit 1
fi

if ((install)) || [[ ! -d node_modules ]]; then
  echo "start.sh: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "start.sh: vite build"
npx --no-install vite build --logLevel warn

cat <<INFO

Inventory dashboard: http://127.0.0.1:$PORT/
  Herald relay:  http://$HERALD_RELAY_HOST:$HERALD_RELAY_PORT (app ${HERALD_APP_ID:-app-1})
  Gateways:      $HERALD_WS_HOST port(s) $HERALD_WS_PORT
  Sign in as two demo users in two browser windows to watch each other's changes.

INFO

exec node server/server.mjs
