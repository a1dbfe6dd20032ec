#!/usr/bin/env bash
# Hashing a file at rest: `nodelua hash` (the tree digest, on 1..N workers,
# and --sha256) against sha256sum and `openssl dgst -sha256`, in the same
# run, on the same file, warm in the page cache (each command runs once
# before it is timed, then the best of three is kept).
# Usage: scripts/bench/hash.sh [MiB]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/../.."
mib=${1:-1024}
nodelua=${NODELUA:-build/normal/nodelua}
[ -x "$nodelua" ] || { echo "build first: cmake -S . -B build/normal && cmake --build build/normal" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
file=$dir/data
head -c "$((mib * 1024 * 1024))" /dev/urandom >"$file"

# best COMMAND...: the best wall time of three runs, in seconds.
best() {
  "$@" >/dev/null
  local b=
  for _ in 1 2 3; do
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null
    e=$(date +%s.%N)
    b=$(awk -v s="$s" -v e="$e" -v b="$b" 'BEGIN { t = e - s; if (b == "" || t < b) b = t; printf "%.3f", b }')
  done
  echo "$b"
}

cpus=$(getconf _NPROCESSORS_ONLN)
openssl_s=$(best openssl dgst -sha256 "$file")
printf 'Hashing %d MiB, %d CPUs (best of 3, warm cache):\n' "$mib" "$cpus"
sum_s=$(best sha256sum "$file")
printf '  %-34s %7.3f s  %7.0f MiB/s\n' "sha256sum" "$sum_s" \
  "$(awk -v m="$mib" -v t="$sum_s" 'BEGIN { print m / t }')"
printf '  %-34s %7.3f s  %7.0f MiB/s\n' "openssl dgst -sha256" "$openssl_s" \
  "$(awk -v m="$mib" -v t="$openssl_s" 'BEGIN { print m / t }')"
sha_s=$(best "$nodelua" hash --sha256 "$file")
printf '  %-34s %7.3f s  %7.0f MiB/s\n' "nodelua hash --sha256" "$sha_s" \
  "$(awk -v m="$mib" -v t="$sha_s" 'BEGIN { print m / t }')"
for threads in $(seq 1 "$cpus"); do
  t=$(best "$nodelua" hash --threads "$threads" "$file")
  printf '  %-34s %7.3f s  %7.0f MiB/s  %.2fx openssl\n' "nodelua hash --threads $threads (tree)" "$t" \
    "$(awk -v m="$mib" -v t="$t" 'BEGIN { print m / t }')" \
    "$(awk -v o="$openssl_s" -v t="$t" 'BEGIN { print o / t }')"
done
