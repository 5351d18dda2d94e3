#!/usr/bin/env bash
# Installs what Herald needs to build and test on Debian 12: the C toolchain
# and libraries, redis-server, HAProxy (scripts/cluster-haproxy.sh and the
# integration tests put it in front of the gateways and relays), clang's
# sanitizer runtime and Node.js (apt,
# only for what is missing), then the npm packages of every directory in the
# repository that has a package-lock.json (npm ci).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

packages=(
  build-essential cmake pkg-config
  libwebsockets-dev libuv1-dev libevent-dev libhiredis-dev libjson-c-dev libssl-dev
  libcunit1-dev
  redis-server haproxy
  clang libclang-rt-14-dev
)

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for package in "${packages[@]}"; do
  if ! is_installed "$package"; then
    missing+=("$package")
  fi
done
# Node.js may come from Debian or from another source (such as NodeSource,
# whose nodejs package contains npm), so check the commands, not packages.
if ! command -v node >/dev/null 2>&1; then
  missing+=(nodejs)
fi
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if ((${#missing[@]} > 0)); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "install-deps: missing packages ${missing[*]}, and sudo is not installed; run this script as root" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  echo "install-deps: installing ${missing[*]}"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages are installed"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 18)); then
  echo "install-deps: Node.js $(node --version) is too old; the integration tests need Node.js 18 or later (20 recommended)" >&2
  exit 1
fi

# npm ci in every directory with a lock file, outside node_modules.
while IFS= read -r lock_file; do
  package_dir=$(dirname "$lock_file")
  echo "install-deps: npm ci in ${package_dir#"$repo"/}"
  (cd "$package_dir" && npm ci --no-audit --no-fund --loglevel=error)
done < <(find "$repo" -name node_modules -prune -o -name 'build*' -prune -o -name package-lock.json -type f -print | sort)
