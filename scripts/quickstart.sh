#!/usr/bin/env bash
# Starts a local Herald cluster for development, laid out like
# docker-compose.yml. It installs what is missing and builds build/. Then
# scripts/cluster-haproxy.sh starts redis-server, two herald-relay, three
# herald-gateway and HAProxy on one public port (6001) on 127.0.0.1 with
# the development app, and the inventory dashboard example on port 8000.
# Stays in the foreground; Ctrl-C stops everything it started.
#
#   scripts/quickstart.sh [--no-dashboard] [cluster-haproxy.sh options]
#
#   --no-dashboard   do not start examples/inventory-dashboard
#
# Other options go to scripts/cluster-haproxy.sh, for example --port 7001
# or --dashboard-port 8080 (see scripts/cluster-haproxy.sh --help). The
# HAProxy configuration and the logs go to .run/ in the repository.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

cluster_options=(--dashboard)
for argument in "$@"; do
  case $argument in
    --no-dashboard) cluster_options=() ;;
    -h | --help)
      sed -n '2,/^set -euo pipefail$/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
  esac
done
for argument in "$@"; do
  if [[ $argument != --no-dashboard ]]; then
    cluster_options+=("$argument")
  fi
done

scripts/install-deps.sh
scripts/build.sh

# Apps come from HERALD_APPS when it is set. Without it, every process runs
# the development app, which cluster-haproxy.sh prints with its addresses.
exec scripts/cluster-haproxy.sh --work-dir "$repo/.run" --build-dir "$repo/build" "${cluster_options[@]}"
