#!/bin/sh
# Test "hosts" on one machine: network namespaces joined by veth pairs, each
# with its own D-Bus system bus and avahi-daemon, so that mDNS crosses a real
# (virtual) network and never touches the machine's own interfaces. Needs root
# and iproute2, dbus, avahi-daemon.
#
#   nethosts.sh up TAG N                 hosts 1..N on one switch: interface
#                                        nl0, address 10.77.0.<k>/24
#   nethosts.sh link TAG A B K [MBPS]    a second, direct link between hosts A
#                                        and B: nl<K>, 10.77.<K>.<A|B>/24; MBPS
#                                        is what /sys/class/net/nl<K>/speed
#                                        reads inside both hosts
#   nethosts.sh daemons TAG HOST         starts D-Bus and avahi-daemon there
#   nethosts.sh exec TAG HOST CMD...     runs CMD on that host (execs)
#   nethosts.sh ns TAG HOST              prints the host's netns name
#   nethosts.sh down TAG                 ends the daemons it started, by pid,
#                                        and removes the namespaces
#
# Every process run through `exec` gets the host's name (UTS namespace) and
# sees the host's own /run/dbus and /run/avahi-daemon (mount namespace), so
# the stock daemons and client libraries work unchanged. avahi-daemon is
# limited to the host's nl* interfaces with allow-interfaces.
set -eu

TAG=${2:-}
STATE_ROOT=${NETHOSTS_DIR:-/tmp/nethosts}

die() {
  echo "nethosts: $*" >&2
  exit 2
}

[ -n "$TAG" ] || die "usage: nethosts.sh up|link|daemons|exec|ns|down TAG ..."
case $TAG in
*[!a-z0-9]* | ????????*) die "TAG must be 1 to 7 lower-case letters or digits" ;;
esac
STATE=$STATE_ROOT/$TAG

host_ns() { echo "nl$TAG-h$1"; }
switch_ns() { echo "nl$TAG-sw"; }

cmd_up() {
  count=$1
  [ "$count" -ge 1 ] 2>/dev/null && [ "$count" -le 20 ] || die "N: 1 to 20 hosts"
  [ ! -e "$STATE" ] || die "$STATE exists: run down $TAG first"
  mkdir -p "$STATE" /run/dbus /run/avahi-daemon
  echo "$count" >"$STATE/count"
  ip netns add "$(switch_ns)"
  ip -n "$(switch_ns)" link add br0 type bridge
  # Snooping would hold back the multicast that mDNS is made of.
  ip -n "$(switch_ns)" link set br0 type bridge mcast_snooping 0
  ip -n "$(switch_ns)" link set br0 up
  k=1
  while [ "$k" -le "$count" ]; do
    ns=$(host_ns "$k")
    dir=$STATE/h$k
    mkdir -p "$dir/run-dbus" "$dir/run-avahi" "$dir/speed"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add nl0 netns "$ns" type veth peer name "port$k" netns "$(switch_ns)"
    ip -n "$(switch_ns)" link set "port$k" master br0 up
    ip -n "$ns" addr add "10.77.0.$k/24" dev nl0
    ip -n "$ns" link set nl0 up
    k=$((k + 1))
  done
}

cmd_link() {
  a=$1 b=$2 index=$3 mbps=${4:-}
  [ "$index" -ge 1 ] 2>/dev/null && [ "$index" -le 9 ] || die "K: 1 to 9"
  for h in "$a" "$b"; do
    [ -d "$STATE/h$h" ] || die "no host $h in $TAG"
  done
  ip link add "nl$index" netns "$(host_ns "$a")" type veth peer name "nl$index" \
    netns "$(host_ns "$b")"
  for h in "$a" "$b"; do
    ip -n "$(host_ns "$h")" addr add "10.77.$index.$h/24" dev "nl$index"
    ip -n "$(host_ns "$h")" link set "nl$index" up
    if [ -n "$mbps" ]; then
      echo "$mbps" >"$STATE/h$h/speed/nl$index"
    fi
  done
}

# The body of `exec`, run inside the host's network namespace.
enter() {
  k=$1
  shift
  dir=$STATE/h$k
  hostname "nl$TAG-h$k"
  mount --bind "$dir/run-dbus" /run/dbus
  mount --bind "$dir/run-avahi" /run/avahi-daemon
  for file in "$dir"/speed/*; do
    [ -e "$file" ] || continue
    mount --bind "$file" "/sys/class/net/$(basename "$file")/speed"
  done
  exec "$@"
}

cmd_exec() {
  k=$1
  shift
  [ -d "$STATE/h$k" ] || die "no host $k in $TAG"
  exec ip netns exec "$(host_ns "$k")" unshare --mount --uts --propagation private \
    "$0" __enter "$TAG" "$k" "$@"
}

cmd_daemons() {
  k=$1
  dir=$STATE/h$k
  [ -d "$dir" ] || die "no host $k in $TAG"
  cat >"$dir/avahi-daemon.conf" <<EOF
[server]
host-name=nl$TAG-h$k
use-ipv4=yes
use-ipv6=no
allow-interfaces=nl0,nl1,nl2,nl3,nl4,nl5,nl6,nl7,nl8,nl9
enable-dbus=yes
ratelimit-interval-usec=0
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
enable-reflector=no
EOF
  "$0" exec "$TAG" "$k" dbus-daemon --system --nofork --nopidfile \
    >"$dir/dbus.log" 2>&1 &
  echo $! >"$dir/dbus.pid"
  wait_for "$dir/run-dbus/system_bus_socket" "$dir/dbus.log"
  "$0" exec "$TAG" "$k" avahi-daemon -f "$dir/avahi-daemon.conf" --no-chroot \
    --no-drop-root --no-rlimits >"$dir/avahi.log" 2>&1 &
  echo $! >"$dir/avahi.pid"
  wait_for_line "Server startup complete" "$dir/avahi.log"
}

wait_for() {
  i=0
  while [ ! -e "$1" ]; do
    i=$((i + 1))
    [ "$i" -le 100 ] || die "$1 did not appear; $2 says: $(cat "$2")"
    sleep 0.05
  done
}

wait_for_line() {
  i=0
  until grep -q "$1" "$2" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -le 200 ] || die "no \"$1\" in $2: $(cat "$2")"
    sleep 0.05
  done
}

stop_pid_file() {
  [ -f "$1" ] || return 0
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 40 ]; do
    sleep 0.05
    i=$((i + 1))
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

cmd_down() {
  if [ -f "$STATE/count" ]; then
    for dir in "$STATE"/h*; do
      stop_pid_file "$dir/avahi.pid"
      stop_pid_file "$dir/dbus.pid"
    done
  fi
  for ns in $(ip netns list | awk '{print $1}'); do
    case $ns in
    "nl$TAG-h"* | "nl$TAG-sw") ip netns del "$ns" ;;
    esac
  done
  rm -rf "$STATE"
}

action=${1:-}
[ $# -ge 2 ] && shift 2 || shift $#
case $action in
up) cmd_up "$@" ;;
link) cmd_link "$@" ;;
daemons) cmd_daemons "$@" ;;
exec) cmd_exec "$@" ;;
ns) host_ns "$1" ;;
down) cmd_down ;;
__enter) enter "$@" ;;
*) die "unknown action '$action'" ;;
esac
