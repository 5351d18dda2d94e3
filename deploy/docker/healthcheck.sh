#!/bin/bash
# Health check of the Herald image: sends GET PATH (default /up) to the
# herald-gateway or herald-relay in this container and exits 0 only when
# it responds with HTTP 200. It uses bash's /dev/tcp, so the image needs
# no curl.
#
#   herald-healthcheck [PATH]
#
# The port is HERALD_HEALTHCHECK_PORT when set. Otherwise the check finds
# which binary runs in the container and uses HERALD_GATEWAY_PORT (default
# 6001) or HERALD_RELAY_PORT (default 6002). A port set only with --port
# or in a --config file is not seen here: set HERALD_HEALTHCHECK_PORT too.
set -u

path=${1:-/up}
port=${HERALD_HEALTHCHECK_PORT:-}
listen_host=

if [[ -z $port ]]; then
  for comm_file in /proc/[0-9]*/comm; do
    name=
    read -r name <"$comm_file" 2>/dev/null || continue
    case "$name" in
      herald-gateway)
        port=${HERALD_GATEWAY_PORT:-6001}
        listen_host=${HERALD_GATEWAY_HOST:-}
        break
        ;;
      herald-relay)
        port=${HERALD_RELAY_PORT:-6002}
        listen_host=${HERALD_RELAY_HOST:-}
        break
        ;;
    esac
  done
fi
if [[ -z $port ]]; then
  echo "herald-healthcheck: no herald-gateway or herald-relay process found, and HERALD_HEALTHCHECK_PORT is not set"
  exit 1
fi

# A wildcard listener also accepts connections on loopback.
case "$listen_host" in
  "" | 0.0.0.0 | "::" | "[::]") host=127.0.0.1 ;;
  *) host=$listen_host ;;
esac

if ! exec 3<>"/dev/tcp/$host/$port"; then
  echo "herald-healthcheck: connection to $host:$port failed"
  exit 1
fi
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3

status_line=
if ! read -r -t 5 status_line <&3; then
  echo "herald-healthcheck: no response to GET $path from $host:$port within 5 s"
  exit 1
fi
status_line=${status_line%$'\r'}
echo "GET $path on $host:$port: $status_line"
[[ $status_line =~ ^HTTP/1\.[01]\ 200( |$) ]]
