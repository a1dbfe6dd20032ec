#!/usr/bin/env bash
# install.sh without touching this machine: --dry-run, a DESTDIR install
# compared file by file (modes, owners), idempotence, a changed value,
# secrets never echoed, uninstall and --purge; the systemd unit verified
# and its exposure scored by systemd-analyze; the launchd plist read by
# plistlib; the Ansible role's syntax and ansible-lint. (A run by a real
# systemd is tests/integration/service_nspawn.sh.)
source "$(dirname "$0")/lib.sh"
INSTALL="$SOURCE_DIR/install.sh"
dest="$WORK/dest"
key=install-test-secret-0123456789

tree() { # every path under DESTDIR with its mode and owner
  (cd "$dest" && find . -mindepth 1 | sort | while read -r p; do stat -c '%a %U:%G %n' "$p"; done)
}

# --dry-run touches nothing.
mkdir -p "$dest"
out=$(DESTDIR=$dest MONITORING_API_KEY=$key bash -c "'$INSTALL' --binary '$NODELUA' --api-url http://10.9.9.9:3000 --dry-run" 2>&1)
check "--dry-run exits 0" equals "$?" 0
check "--dry-run says what it would do" contains "$out" "would install /usr/local/bin/nodelua"
check "--dry-run touches nothing" equals "$(tree)" ""
check "--dry-run shows no secret" lacks "$out" "$key"

# A DESTDIR install: the tree a package would hold.
out=$(DESTDIR=$dest MONITORING_API_KEY=$key "$INSTALL" --binary "$NODELUA" --api-url http://10.9.9.9:3000 \
  --node-name "node one" --channel beta 2>&1)
check "DESTDIR install exits 0" equals "$?" 0
check "it shows no secret" lacks "$out" "$key"
expected="755 root:root ./etc
755 root:root ./etc/nodelua
640 root:root ./etc/nodelua/nodelua.env
755 root:root ./etc/nodelua/policy
755 root:root ./etc/systemd
644 root:root ./etc/systemd/system/nodelua.service
755 root:root ./etc/systemd/system
755 root:root ./usr
755 root:root ./usr/local
755 root:root ./usr/local/bin
755 root:root ./usr/local/bin/nodelua
755 root:root ./var
755 root:root ./var/lib
700 root:root ./var/lib/nodelua"
check "the tree, modes and owners" equals "$(tree | sort -k3)" "$(echo "$expected" | sort -k3)"
env_text=$(cat "$dest/etc/nodelua/nodelua.env")
check "the env file has the values" contains "$env_text" 'NODE_NAME="node one"'
check "and the channel" contains "$env_text" 'UPDATE_CHANNEL="beta"'
check "and the key" contains "$env_text" "MONITORING_API_KEY=\"$key\""
check "the binary is the one given" equals "$(cmp "$NODELUA" "$dest/usr/local/bin/nodelua" && echo same)" same
check "the unit starts the stable entry point" contains "$(cat "$dest/etc/systemd/system/nodelua.service")" \
  "ExecStart=/usr/local/bin/nodelua agent"

# Idempotent: the same run again changes nothing and says so.
out=$(DESTDIR=$dest MONITORING_API_KEY=$key "$INSTALL" --binary "$NODELUA" --api-url http://10.9.9.9:3000 \
  --node-name "node one" --channel beta 2>&1)
check "a second run changes nothing" contains "$out" "nothing changed"
check "...and says which files it left" contains "$out" "unchanged: /etc/nodelua/nodelua.env"

# Only the values given change; the rest of the env file is kept.
echo 'REPORT_INTERVAL=9 # an operator' >>"$dest/etc/nodelua/nodelua.env"
out=$(DESTDIR=$dest "$INSTALL" --binary "$NODELUA" --node-name 'node "two" $x' 2>&1)
env_text=$(cat "$dest/etc/nodelua/nodelua.env")
check "a new value replaces the old" contains "$env_text" 'NODE_NAME="node \"two\" \$x"'
check "the operator's line is kept" contains "$env_text" "REPORT_INTERVAL=9 # an operator"
check "the key is kept" contains "$env_text" "MONITORING_API_KEY=\"$key\""
# (A copy of mode 0600: as root, a group-readable secret is refused; the
# service reads it as its own group.)
install -m 600 "$dest/etc/nodelua/nodelua.env" "$WORK/copy.env"
check "the env file parses as the agent reads it" equals \
  "$(clean_env NODELUA_STATE_DIR="$WORK/state" "$NODELUA" --env-file "$WORK/copy.env" config 2>/dev/null |
    sed -n 's/^NODE_NAME=\(.*\)  # .*/\1/p')" 'node "two" $x'

# Uninstall keeps the state and the configuration; --purge does not.
out=$(DESTDIR=$dest "$INSTALL" --uninstall 2>&1)
check "uninstall exits 0" equals "$?" 0
check "uninstall removes the binary" test ! -e "$dest/usr/local/bin/nodelua"
check "uninstall removes the unit" test ! -e "$dest/etc/systemd/system/nodelua.service"
check "uninstall keeps the configuration" test -f "$dest/etc/nodelua/nodelua.env"
check "uninstall keeps the state" test -d "$dest/var/lib/nodelua"
DESTDIR=$dest "$INSTALL" --uninstall --purge >/dev/null 2>&1
check "--purge removes the configuration" test ! -e "$dest/etc/nodelua"
check "--purge removes the state" test ! -e "$dest/var/lib/nodelua"

# The unit: verified, and its exposure scored, with ExecStart at a real
# binary (systemd-analyze checks that it exists).
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$WORK/prefix/bin"
  cp "$NODELUA" "$WORK/prefix/bin/nodelua"
  sed "s|@PREFIX@|$WORK/prefix|g" "$SOURCE_DIR/packaging/systemd/nodelua.service" >"$WORK/nodelua.service"
  verify=$(systemd-analyze verify "$WORK/nodelua.service" 2>&1)
  check "systemd-analyze verify is clean" equals "$verify" ""
  score=$(systemd-analyze security --offline=true "$WORK/nodelua.service" 2>/dev/null |
    sed -n 's/.*Overall exposure level for nodelua.service: \([0-9.]*\).*/\1/p')
  echo "exposure: nodelua.service $score"
  check "exposure 2.0 or lower" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
  ne=$SOURCE_DIR/.deps/lib/systemd/system/prometheus-node-exporter.service
  [ -f "$ne" ] && echo "exposure: Debian's node_exporter unit $(systemd-analyze security --offline=true "$ne" 2>/dev/null |
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
else
  skip "systemd-analyze (no systemd here)"
fi

# The Ansible role's unit is the packaged one.
check "the role's unit is packaging/systemd/nodelua.service" equals \
  "$(sed 's|{{ nodelua_prefix }}|@PREFIX@|; s|{{ nodelua_user }}|nodelua|; s|{{ nodelua_group }}|nodelua|' \
    "$SOURCE_DIR/deploy/ansible/roles/nodelua/templates/nodelua.service.j2")" \
  "$(cat "$SOURCE_DIR/packaging/systemd/nodelua.service")"

# The launchd plist, key by key.
plist=$(python3 - "$SOURCE_DIR/packaging/launchd/org.nodelua.agent.plist" <<'PY'
import plistlib, sys
p = plistlib.load(open(sys.argv[1], "rb"))
ok = (p["Label"] == "org.nodelua.agent"
      and p["ProgramArguments"] == ["@PREFIX@/bin/nodelua", "--env-file", "/etc/nodelua/nodelua.env", "agent"]
      and p["UserName"] == "_nodelua" and p["GroupName"] == "_nodelua"
      and p["RunAtLoad"] is True and p["KeepAlive"] is True and p["ThrottleInterval"] >= 1
      and p["StandardOutPath"] == p["StandardErrorPath"] == "/Library/Logs/nodelua/agent.log"
      and p["EnvironmentVariables"]["NODELUA_STATE_DIR"] == "/Library/Application Support/nodelua")
print("ok" if ok else "bad: %r" % p)
PY
)
check "the plist has every key, as it should be" equals "$plist" ok

# Ansible: the playbook's syntax, and ansible-lint.
if command -v ansible-playbook >/dev/null && command -v ansible-lint >/dev/null; then
  out=$(cd "$SOURCE_DIR" && ANSIBLE_LOCALHOST_WARNING=false ansible-playbook --syntax-check -i localhost, \
    deploy/ansible/site.yml 2>&1)
  check "ansible-playbook --syntax-check" contains "$out" "playbook: deploy/ansible/site.yml"
  out=$(cd "$SOURCE_DIR" && ansible-lint --nocolor deploy/ansible 2>&1)
  check "ansible-lint is clean" contains "$out" "Passed"
else
  skip "ansible-playbook and ansible-lint (scripts/install-deps.sh installs them)"
fi
finish
