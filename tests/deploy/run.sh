#!/usr/bin/env bash
# Runs the deployment checks (node --test in tests/deploy): docker-compose
# config, haproxy -c on both HAProxy configurations, the Kubernetes
# manifest validator with kubectl kustomize, the Docker image checks and a
# smoke test of scripts/cluster-haproxy.sh on loopback. No Docker engine or
# Kubernetes cluster is needed.
#
# Installs what is missing first: docker-compose, haproxy, redis-server and
# kubectl (Debian's kubernetes-client) with apt-get, through sudo when not
# root, and the npm packages with npm ci. Uses the binaries in
# HERALD_BUILD_DIR (default build/) and builds build/ with scripts/build.sh
# when they are missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

printf '\n==> %s\n' "Running the deployment checks (tests/deploy)"

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for package in docker-compose haproxy redis-server; do
  if ! is_installed "$package"; then
    missing+=("$package")
  fi
done
# kubectl may come from Kubernetes' own packages or the Google Cloud CLI,
# so check the command. Debian 12's kubernetes-client (kubectl 1.20) also
# has `kubectl kustomize`.
if ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubernetes-client)
fi

if ((${#missing[@]} > 0)); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "tests/deploy: missing packages ${missing[*]}, and sudo is not installed; run this script as root" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  echo "tests/deploy: installing ${missing[*]}"
  "${sudo[@]}" apt-get update
  # --no-install-recommends keeps docker-compose from pulling in docker.io:
  # the checks only run `docker-compose config`, which needs no engine.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# scripts/install-deps.sh already runs npm ci here as part of scripts/test.sh;
# npm's hidden lock file in node_modules is newer than package-lock.json
# when that install is current.
if [[ ! $here/node_modules/.package-lock.json -nt $here/package-lock.json ]]; then
  echo "tests/deploy: npm ci"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

build_dir=${HERALD_BUILD_DIR:-build}
if [[ ${build_dir:0:1} != / ]]; then
  build_dir="$repo/$build_dir"
fi
if [[ ! -x $build_dir/gateway/herald-gateway || ! -x $build_dir/relay/herald-relay ]]; then
  if [[ -n ${HERALD_BUILD_DIR:-} ]]; then
    echo "tests/deploy: HERALD_BUILD_DIR=$HERALD_BUILD_DIR has no herald-gateway and herald-relay; build them or unset HERALD_BUILD_DIR" >&2
    exit 1
  fi
  echo "tests/deploy: no binaries in build/, building them with scripts/build.sh"
  "$repo/scripts/build.sh"
fi

cd "$here"
HERALD_BUILD_DIR=$build_dir exec node --test --test-concurrency=1 .
