#!/usr/bin/env bash
# Configures and builds Herald with CMake.
#
#   scripts/build.sh              release build with debug info in build/
#   scripts/build.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer
#                                 build in build-asan/ (-DHERALD_SANITIZE=ON)
#
# CC and CFLAGS are passed to CMake as usual, for example CC=clang.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sanitize=0
for argument in "$@"; do
  case "$argument" in
    --sanitize) sanitize=1 ;;
    -h | --help)
      sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build.sh: unknown option '$argument' (expected --sanitize or --help)" >&2
      exit 2
      ;;
  esac
done

if ((sanitize)); then
  build_dir="$repo/build-asan"
  options=(-DCMAKE_BUILD_TYPE=Debug -DHERALD_SANITIZE=ON)
else
  build_dir="$repo/build"
  options=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi

cmake -S "$repo" -B "$build_dir" "${options[@]}"
cmake --build "$build_dir" --parallel "$(nproc)"
echo "build.sh: built $build_dir"
