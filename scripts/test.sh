#!/usr/bin/env bash
# The test command: installs the dependencies, then builds and runs the whole
# suite through ctest three times over:
#   1. the normal build (warnings as errors): unit tests, busted specs,
#      luacheck, clang-format, integration tests, a valgrind leak check;
#   2. the fuzz targets (clang, libFuzzer), each for a bounded time;
#   3. the whole suite again under ASan+UBSan.
# It stops at the first stage that fails, so its last lines are always the
# summary of the ctest run that decided the exit status.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
fuzz_seconds=${NODELUA_FUZZ_SECONDS:-20}

configure_and_build() { # DIR CMAKE-ARGS...
  local dir=$1
  shift
  cmake -S . -B "$dir" -DNODELUA_WERROR=ON "$@" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; exit 1; }
  cmake --build "$dir" -j "$jobs"
}

mkdir -p build
echo "== build: normal"
configure_and_build build/normal -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== build: ASan+UBSan"
configure_and_build build/asan -DCMAKE_BUILD_TYPE=Debug -DNODELUA_SANITIZE=ON
fuzz=0
if [ "$(uname -s)" = Linux ] && command -v clang >/dev/null; then
  echo "== build: fuzz targets"
  CC=clang configure_and_build build/fuzz -DCMAKE_BUILD_TYPE=Debug -DNODELUA_FUZZ=ON \
    -DNODELUA_FUZZ_SECONDS="$fuzz_seconds"
  fuzz=1
fi

echo "== tests: normal build"
(cd build/normal && ctest --output-on-failure -j "$jobs")
if [ "$fuzz" = 1 ]; then
  echo "== fuzzing, ${fuzz_seconds} s per target"
  (cd build/fuzz && ctest --output-on-failure -L fuzz)
fi
echo "== tests: ASan+UBSan build"
(cd build/asan && ctest --output-on-failure -j "$jobs" -LE 'lint|leak')
