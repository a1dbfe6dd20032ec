#!/usr/bin/env bash
# The service run by a real systemd: a Debian bookworm root (mmdebstrap,
# cached in $NODELUA_TEST_CACHE, default /var/cache/nodelua-test, outside
# the repository) booted with systemd-nspawn on a private network. Inside:
#   - install.sh installs and starts nodelua.service; /metrics answers,
#     served by the user nodelua; `systemd-analyze verify` is clean;
#   - `systemctl reload` keeps the process; after a kill -9 systemd starts
#     it again;
#   - under the hardened unit, as its own user, the agent updates itself to
#     a signed release (this build as 99.0.0, from a fake GitHub API run in
#     the container) and commits it after its trial; a second install.sh
#     changes nothing;
#   - install.sh --uninstall removes the service, the binary and the user;
#   - the Ansible role installs it too, and a second run changes nothing.
# Needs root, systemd-nspawn and mmdebstrap: without them it says SKIPPED.
source "$(dirname "$0")/lib.sh"
NEXT=${2:-}

if [ "$(id -u)" != 0 ] || ! command -v systemd-nspawn >/dev/null || ! command -v mmdebstrap >/dev/null; then
  skip "a real systemd in a container (needs root, systemd-nspawn and mmdebstrap)"
  finish
fi
cache=${NODELUA_TEST_CACHE:-/var/cache/nodelua-test}
base=$cache/bookworm-2 # the name changes with the package list
if [ ! -x "$base/lib/systemd/systemd" ]; then
  echo "making the Debian root in $base (mmdebstrap, once)"
  mkdir -p "$cache"
  rm -rf "$base.tmp"
  mmdebstrap --variant=minbase --include=systemd,systemd-sysv,dbus,libuv1,libcurl4,libmicrohttpd12,libavahi-compat-libdnssd1,libedit2,liblua5.4-0,lua-cjson,libssl3,curl,python3,sudo,procps \
    bookworm "$base.tmp" >"$WORK/mmdebstrap.log" 2>&1 || { tail -20 "$WORK/mmdebstrap.log"; fail "mmdebstrap"; finish; }
  mv "$base.tmp" "$base"
fi
root=$WORK/root
cp -a "$base" "$root"
# What the tests run inside: the installer, its files, the binary, the role.
src=$root/opt/nodelua
mkdir -p "$src/scripts"
cp -a "$SOURCE_DIR/install.sh" "$SOURCE_DIR/packaging" "$SOURCE_DIR/deploy" "$src/"
cp "$NODELUA" "$src/nodelua"
cp "$SOURCE_DIR/tests/integration/fake_github.py" "$SOURCE_DIR/tests/integration/fake_github_serve.py" "$src/"
printf 'container-test-key-0123456789\n' >"$root/root/api.key"
chmod 600 "$root/root/api.key"

systemd-nspawn -D "$root" --private-network --register=no --keep-unit -b --machine=nodelua-test \
  >"$WORK/nspawn.log" 2>&1 </dev/null &
nspawn=$!
STARTED_PIDS+=("$nspawn")
# The container's systemd, as this host sees it: a child or grandchild of
# nspawn named systemd (nspawn's own intermediate child exits early, so
# the first child found may be gone by the time it is used).
find_init() {
  local p c
  for p in $(ps -e -o pid= -o ppid= | awk -v n="$nspawn" '$2 == n { print $1 }'); do
    for c in "$p" $(ps -e -o pid= -o ppid= | awk -v n="$p" '$2 == n { print $1 }'); do
      if [ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ]; then
        echo "$c"
        return 0
      fi
    done
  done
  return 1
}
init=
in_ct() { nsenter -t "$init" -m -u -i -n -p -- "$@"; }
booted() {
  [ -n "$init" ] && [ -e "/proc/$init/ns/pid" ] || init=$(find_init) || return 1
  case "$(in_ct systemctl is-system-running 2>/dev/null)" in running | degraded) return 0 ;; esac
  return 1
}
for _ in $(seq 600); do booted && break; sleep 0.1; done
check "systemd boots in the container" booted
if ! booted; then
  tail -20 "$WORK/nspawn.log" >&2
  finish
fi

# install.sh, as an operator would run it.
out=$(in_ct /opt/nodelua/install.sh --binary /opt/nodelua/nodelua --api-url http://127.0.0.1:9 \
  --api-key-file /root/api.key --node-name in-a-container 2>&1)
check "install.sh installs and starts the service" contains "$out" "start nodelua.service"
check "it never shows the key" lacks "$out" "container-test-key"
metrics_up() { in_ct curl -sf http://127.0.0.1:9101/metrics >/dev/null 2>&1; }
for _ in $(seq 100); do metrics_up && break; sleep 0.1; done
check "/metrics answers" metrics_up
main_pid() { in_ct systemctl show -p MainPID --value nodelua.service; }
pid=$(main_pid)
check "the service runs as the user nodelua" equals "$(in_ct stat -c %U "/proc/$pid")" nodelua
check "the env file is root:nodelua 0640" equals "$(in_ct stat -c '%U:%G %a' /etc/nodelua/nodelua.env)" "root:nodelua 640"
check "the state folder is the user's" equals "$(in_ct stat -c '%U %a' /var/lib/nodelua)" "nodelua 700"
verify=$(in_ct systemd-analyze verify /etc/systemd/system/nodelua.service 2>&1)
check "systemd-analyze verify, installed" equals "$verify" ""

in_ct systemctl reload nodelua.service
sleep 1
check "reload keeps the process" equals "$(main_pid)" "$pid"
check "systemd says it reloaded" contains "$(in_ct journalctl -u nodelua.service --no-pager 2>/dev/null)" "Reloaded"
in_ct kill -KILL "$pid"
restarted() { p=$(main_pid); [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$pid" ] && metrics_up; }
for _ in $(seq 100); do restarted && break; sleep 0.1; done
check "after kill -9, systemd starts it again" restarted

# Self-update under the hardened unit, with no root: a signed release made
# here, served in the container, installed by the agent itself.
if [ -n "$NEXT" ] && command -v minisign >/dev/null; then
  minisign -G -W -p "$WORK/u.pub" -s "$WORK/u.key" >/dev/null 2>&1
  pubkey=$(sed -n 2p "$WORK/u.pub")
  bash "$SOURCE_DIR/scripts/release.sh" --tag stable-99.0.0 --key "$WORK/u.key" --out "$src/release" \
    "nodelua-linux-$(uname -m)=$NEXT" >/dev/null
  # exec: $! is nsenter itself, not a subshell around it, so that killing
  # it leaves nothing behind.
  (exec nsenter -t "$init" -m -u -i -n -p -- python3 /opt/nodelua/fake_github_serve.py acme/nodelua \
    stable-99.0.0 /opt/nodelua/release /opt/nodelua/api_url </dev/null >/dev/null 2>&1) &
  fake_pid=$!
  STARTED_PIDS+=("$fake_pid")
  for _ in $(seq 100); do [ -s "$root/opt/nodelua/api_url" ] && break; sleep 0.1; done
  out=$(in_ct /opt/nodelua/install.sh --binary /opt/nodelua/nodelua --public-key "$pubkey" 2>&1)
  check "install.sh sets the public key, and restarts" contains "$out" "restart nodelua.service"
  printf 'UPDATE_API_URL=%s\nUPDATE_REPOSITORY=acme/nodelua\nAUTO_UPDATE=false\nUPDATE_HEALTH_TIMEOUT=30\n' \
    "$(cat "$root/opt/nodelua/api_url")" >>"$root/etc/nodelua/nodelua.env"
  in_ct systemctl restart nodelua.service
  for _ in $(seq 100); do metrics_up && break; sleep 0.1; done
  out=$(in_ct /usr/local/bin/nodelua update apply 2>&1)
  check "update apply, through the agent" contains "$out" "applying"
  version() { in_ct curl -sf http://127.0.0.1:9101/metrics 2>/dev/null | sed -n 's/^nodelua_build_info{version="\([^"]*\)".*/\1/p'; }
  for _ in $(seq 300); do [ "$(version)" = 99.0.0 ] && break; sleep 0.2; done
  check "the service runs 99.0.0, installed by itself" equals "$(version)" 99.0.0
  committed() { in_ct /usr/local/bin/nodelua update status 2>/dev/null | grep -q "committed  99.0.0"; }
  for _ in $(seq 300); do committed && break; sleep 0.2; done
  check "its trial passed under the hardened unit" committed
  pid=$(main_pid)
  check "still as the user nodelua" equals "$(in_ct stat -c %U "/proc/$pid")" nodelua
  check "from the state folder, not \$PREFIX" equals "$(in_ct readlink "/proc/$pid/exe")" \
    /var/lib/nodelua/updates/versions/99.0.0/nodelua
  check "the entry point is untouched" equals "$(cmp "$NODELUA" "$root/usr/local/bin/nodelua" && echo same)" same
  check "nothing in the journal was refused by the sandbox" lacks \
    "$(in_ct journalctl -u nodelua.service --no-pager 2>/dev/null)" "Operation not permitted"
  out=$(in_ct /opt/nodelua/install.sh --binary /opt/nodelua/nodelua --public-key "$pubkey" 2>&1)
else
  skip "self-update in the container (needs the release build and minisign)"
  out=$(in_ct /opt/nodelua/install.sh --binary /opt/nodelua/nodelua 2>&1)
fi
check "a second install.sh changes nothing" contains "$out" "nothing changed"

out=$(in_ct /opt/nodelua/install.sh --uninstall 2>&1)
check "uninstall" contains "$out" "remove the user nodelua"
check "the service is gone" equals "$(in_ct systemctl is-active nodelua.service 2>/dev/null)" "inactive"
check "the binary is gone" test ! -e "$root/usr/local/bin/nodelua"
check "the user is gone" test -z "$(in_ct getent passwd nodelua)"
check "the configuration is kept" test -f "$root/etc/nodelua/nodelua.env"

# The Ansible role, through nsenter into the same container.
if command -v ansible-playbook >/dev/null; then
  printf '[nodelua]\ncontainer ansible_connection=community.docker.nsenter ansible_nsenter_pid=%s ansible_python_interpreter=/usr/bin/python3\n' \
    "$init" >"$WORK/inventory.ini"
  play() {
    (cd "$SOURCE_DIR" && ANSIBLE_HOST_KEY_CHECKING=false ANSIBLE_NOCOLOR=1 ansible-playbook -i "$WORK/inventory.ini" \
      -e nodelua_binary_src="$NODELUA" -e '{"nodelua_env": {"MONITORING_API_URL": "http://127.0.0.1:9", "NODE_NAME": "by-ansible"}}' \
      deploy/ansible/site.yml 2>&1)
  }
  out=$(play)
  check "the role installs" contains "$out" "failed=0"
  for _ in $(seq 100); do metrics_up && break; sleep 0.1; done
  check "the role's service serves /metrics" metrics_up
  out=$(play)
  check "a second run of the role changes nothing" contains "$out" "changed=0"
  check "...and fails nothing" contains "$out" "failed=0"
else
  skip "the Ansible role in the container (no ansible-playbook)"
fi

if [ -n "${fake_pid:-}" ]; then
  kill -KILL "$fake_pid" 2>/dev/null # also if a terminal ever stopped it
  wait "$fake_pid" 2>/dev/null
fi
# Stop the container by its nspawn's pid: asked to power off, then killed
# if it has not after 30 s.
in_ct systemctl poweroff --no-block >/dev/null 2>&1 || kill -TERM "$nspawn" 2>/dev/null
for _ in $(seq 300); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$nspawn" 2>/dev/null
wait "$nspawn" 2>/dev/null
finish
