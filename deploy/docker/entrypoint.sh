#!/bin/sh
# Entry point of the Herald image. The first argument chooses the binary,
# and the remaining arguments go to it unchanged:
#
#   docker run IMAGE gateway [--config FILE] [--port N]
#   docker run IMAGE relay [--config FILE] [--port N]
#
# Any other command runs as given (for example `docker run -it IMAGE bash`).
# exec replaces this shell, so SIGTERM from `docker stop` or Kubernetes
# reaches the binary, which drains and exits 0.
set -eu

print_usage() {
  echo "usage: IMAGE gateway|relay [--config FILE] [--host ADDR] [--port N]" >&2
  echo "  gateway  runs herald-gateway (WebSocket clients, port 6001)" >&2
  echo "  relay    runs herald-relay (Pusher HTTP API, port 6002)" >&2
}

if [ "$#" -eq 0 ]; then
  echo "herald: missing the binary to run: pass gateway or relay as the first argument" >&2
  print_usage
  exit 2
fi

case "$1" in
  gateway | herald-gateway)
    shift
    exec herald-gateway "$@"
    ;;
  relay | herald-relay)
    shift
    exec herald-relay "$@"
    ;;
  -*)
    echo "herald: option $1 came before the binary name: pass gateway or relay first" >&2
    print_usage
    exit 2
    ;;
  *)
    exec "$@"
    ;;
esac
