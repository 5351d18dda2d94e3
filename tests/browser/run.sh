#!/usr/bin/env bash
# Runs the browser tests of examples/inventory-dashboard. First it installs
# Debian's chromium package when /usr/bin/chromium is missing and runs npm
# ci in tests/browser and examples/inventory-dashboard. It also runs npm ci
# in tests/integration when that has no node_modules, because the tests
# start their cluster with tests/integration/lib/cluster.mjs. Then it
# runs node --test.
#
# HERALD_BUILD_DIR selects the Herald build (default build/, relative to the
# repository root). Screenshots and logs go to tests/browser/artifacts/,
# and the Herald servers' logs go to tests/integration/artifacts/.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

if [[ ! -x /usr/bin/chromium ]]; then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo)
  fi
  echo "browser tests: installing Debian's chromium package"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

for package_dir in tests/browser examples/inventory-dashboard; do
  echo "browser tests: npm ci in $package_dir"
  (cd "$package_dir" && npm ci --no-audit --no-fund --loglevel=error)
done
if [[ ! -d tests/integration/node_modules ]]; then
  echo "browser tests: npm ci in tests/integration"
  (cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
fi

cd tests/browser
HERALD_BUILD_DIR=${HERALD_BUILD_DIR:-build} npm test
