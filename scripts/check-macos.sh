#!/usr/bin/env bash
# The macOS compile check, run here on Linux: every C file of the macOS
# build, and the unit tests, compiled to Mach-O objects with zig cc for
# aarch64-macos and x86_64-macos (Apple's libc headers for macOS 11 to 13
# ship with zig 0.11), -Wall -Wextra -Werror. The third-party headers (Lua,
# libuv, libcurl, OpenSSL, libmicrohttpd, libedit, dns_sd) are Debian's,
# searched after the system ones, and only those: never glibc's.
#
# What it cannot cover: metrics_darwin_frameworks.c needs Apple's
# CoreFoundation, IOKit and SystemConfiguration headers, which no package
# here has (`--frameworks` says SKIPPED); the macOS workflow builds it.
# Nothing is linked or run: it proves that the code compiles against
# macOS's headers, not that it works on a Mac. zig's copy of those headers
# lacks <net/if_types.h>, which metrics_darwin.c then replaces with IANA's
# numbers (see there).
#
# Usage: scripts/check-macos.sh [--frameworks] GENERATED_DIR
#   GENERATED_DIR: build/normal/generated (nl_build.h and nl_gitrev.h from a
#   CMake build of this tree). --frameworks: compile only
#   metrics_darwin_frameworks.c, which needs Apple's framework headers: on a
#   host without them it says SKIPPED and exits 77.
set -euo pipefail
cd "$(dirname "$0")/.."

frameworks=0
if [ "${1:-}" = --frameworks ]; then
  frameworks=1
  shift
fi
generated=${1:?usage: scripts/check-macos.sh [--frameworks] GENERATED_DIR}
if [ "$frameworks" = 1 ]; then
  # zig's macOS headers are libc's only; the frameworks come with Xcode.
  echo "SKIPPED: src/core/metrics/metrics_darwin_frameworks.c needs the CoreFoundation, IOKit and SystemConfiguration headers, which only a Mac has (the macOS workflow builds it)"
  exit 77
fi
zig=.deps/zig/zig
if [ ! -x "$zig" ]; then
  if [ "$(uname -m)" != x86_64 ]; then
    echo "SKIPPED: the macOS compile check (its zig comes for x86_64 Linux only)"
    exit 77
  fi
  echo "check-macos: no $zig; run scripts/install-deps.sh" >&2
  exit 1
fi

work=$(mktemp -d /tmp/nodelua-macos.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Only the third-party headers, each by its own name, so that nothing of
# glibc can stand in for a header macOS lacks.
inc=$work/include
mkdir -p "$inc"
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
ln -s /usr/include/uv.h /usr/include/uv /usr/include/microhttpd.h /usr/include/editline "$inc/"
ln -s /usr/include/avahi-compat-libdns_sd/dns_sd.h "$inc/"
for h in /usr/include/lua5.4/*.h "/usr/include/$multiarch/lua5.4-deb-multiarch.h"; do ln -s "$h" "$inc/"; done
ln -s "/usr/include/$multiarch/curl" "$inc/curl"
mkdir "$inc/openssl"
for h in /usr/include/openssl/*.h "/usr/include/$multiarch/openssl/"*.h; do
  ln -sf "$h" "$inc/openssl/"
done

# The files of the macOS build (CMakeLists.txt's lists, with the macOS
# metrics file instead of Linux's), and the unit tests.
mapfile -t sources < <(
  ls src/core/*.c src/core/*/*.c src/bind/*.c src/main.c src/repl_client.c tests/unit/*.c |
    grep -v -e 'metrics_linux\.c$' -e 'export_linux[a-z_]*\.c$' -e 'metrics_unsupported\.c$' -e 'metrics_darwin_frameworks\.c$'
)

flags=(-std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 -Werror
  -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -D_DARWIN_C_SOURCE
  -DFIXTURES=\"tests/fixtures/update\" -Isrc -Itests/unit -I"$generated" -idirafter "$inc")

failed=0
for target in aarch64-macos x86_64-macos; do
  count=0
  for f in "${sources[@]}"; do
    obj=$work/$target-$(echo "$f" | tr / _).o
    if ! "$zig" cc -target "$target" "${flags[@]}" -c "$f" -o "$obj" 2>"$work/err"; then
      echo "FAIL: $target: $f" >&2
      sed 's/^/  /' "$work/err" >&2
      failed=1
      continue
    fi
    if ! file "$obj" 2>/dev/null | grep -q "Mach-O"; then
      echo "FAIL: $target: $f did not give a Mach-O object" >&2
      failed=1
    fi
    count=$((count + 1))
  done
  echo "check-macos: $target: $count of ${#sources[@]} files compiled"
done
exit "$failed"
