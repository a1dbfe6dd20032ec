#!/usr/bin/env bash
# The test command: installs the dependencies, then builds and runs the whole
# suite through ctest five times over:
#   1. the normal build (warnings as errors): unit tests, busted specs,
#      luacheck, clang-format, the include rules (check-layers.sh), the
#      macOS compile check (check-macos.sh), integration tests, a valgrind
#      leak check;
#   2. the fuzz targets (clang, libFuzzer), each for a bounded time;
#   3. the whole suite again under ASan+UBSan;
#   4. the unit tests of the threaded cores under ThreadSanitizer;
#   5. a build without RDMA (-DNODELUA_RDMA=OFF): no RDMA code linked, and
#      the transfer tests (proposals refused, TCP carrying the file).
# It stops at the first stage that fails, so its last lines are then the
# summary of the ctest run that decided the exit status. When all pass, the
# last line counts the tests that were skipped (a test that cannot run here
# says SKIPPED and exits 77; ctest shows it as not run, never as passed).
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
skipped_stages=()
if [ "$(uname -s)" = Linux ] && command -v clang >/dev/null; then
  echo "== build: fuzz targets"
  CC=clang configure_and_build build/fuzz -DCMAKE_BUILD_TYPE=Debug -DNODELUA_FUZZ=ON \
    -DNODELUA_FUZZ_SECONDS="$fuzz_seconds"
  fuzz=1
else
  echo "SKIPPED: the fuzz targets (they need clang and Linux)"
  skipped_stages+=("fuzz targets")
fi

# run_ctest DIR LOG CTEST-ARGS...: runs ctest in DIR, its output also to LOG.
run_ctest() {
  local dir=$1 log=$2
  shift 2
  (cd "$dir" && ctest --output-on-failure "$@") 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

echo "== tests: normal build"
run_ctest build/normal build/normal.ctest.log -j "$jobs"
logs=(build/normal.ctest.log)
if [ "$fuzz" = 1 ]; then
  echo "== fuzzing, ${fuzz_seconds} s per target"
  run_ctest build/fuzz build/fuzz.ctest.log -L fuzz
  logs+=(build/fuzz.ctest.log)
fi
echo "== tests: ASan+UBSan build"
run_ctest build/asan build/asan.ctest.log -j "$jobs" -LE 'lint|leak'
logs+=(build/asan.ctest.log)

# The cores with threads of their own (transfer, receiver, receive folder,
# endpoint, control socket, probes, spool, hash pool) under ThreadSanitizer,
# built with clang.
tsan_tests=(transfer receiver recvdir endpoint control probe spool hashpool)
echo "== build: ThreadSanitizer (${tsan_tests[*]})"
CC=clang cmake -S . -B build/tsan -DNODELUA_WERROR=ON -DCMAKE_BUILD_TYPE=Debug -DNODELUA_TSAN=ON \
  >build/tsan.configure.log 2>&1 || { cat build/tsan.configure.log; exit 1; }
cmake --build build/tsan -j "$jobs" --target "${tsan_tests[@]/#/test_}"
echo "== tests: ThreadSanitizer"
pattern=$(IFS='|'; echo "^unit_(${tsan_tests[*]})\$")
run_ctest build/tsan build/tsan.ctest.log -j "$jobs" -R "$pattern"
logs+=(build/tsan.ctest.log)

# Without RDMA: the binary holds none of it, and transfers still refuse a
# proposal with the reason and go over TCP.
nordma_tests=(unit_rdma unit_transfer unit_frame integration_rdma_build)
echo "== build: without RDMA (${nordma_tests[*]})"
cmake -S . -B build/nordma -DNODELUA_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNODELUA_RDMA=OFF \
  >build/nordma.configure.log 2>&1 || { cat build/nordma.configure.log; exit 1; }
cmake --build build/nordma -j "$jobs" --target nodelua test_rdma test_transfer test_frame
echo "== tests: without RDMA"
pattern=$(IFS='|'; echo "^(${nordma_tests[*]})\$")
run_ctest build/nordma build/nordma.ctest.log -j "$jobs" -R "$pattern"
logs+=(build/nordma.ctest.log)

# What did not run, over all stages: ctest marks a skip "***Skipped".
skipped=$(grep -h -- '\*\*\*Skipped' "${logs[@]}" | sed -E 's/^.*Test +#[0-9]+: ([^ ]+).*/\1/' | sort -u)
count=$(printf '%s' "$skipped" | grep -c . || true)
count=$((count + ${#skipped_stages[@]}))
echo "== skipped: $count${skipped:+ ($(echo $skipped))}${skipped_stages:+ (${skipped_stages[*]})}"
