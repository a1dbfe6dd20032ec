#!/bin/sh
# install.sh: nodelua as a system service, running as its own unprivileged
# user: systemd on Linux, launchd on macOS. Idempotent: a second run with
# the same inputs changes nothing and says so.
#
#   sudo ./install.sh [--binary PATH] [--api-url URL] [--api-key-file FILE]
#                     [--node-name NAME] [--cluster-key-file FILE]
#                     [--channel stable|beta|nightly] [--public-key KEY]
#                     [--dry-run] [--no-start]
#   sudo ./install.sh --uninstall [--purge]
#
# Secrets (--api-key, --cluster-key) are better given as files
# (--api-key-file, --cluster-key-file), in the environment
# (MONITORING_API_KEY, NODELUA_CLUSTER_KEY) or at the prompt on a terminal:
# a flag's value shows in `ps` while this script runs. However given, they
# go only into the env file (mode 0640, root and the service's group), and
# are never echoed. The environment's MONITORING_API_URL, NODE_NAME,
# UPDATE_CHANNEL and UPDATE_PUBLIC_KEY are read like the flags.
#
# PREFIX (default /usr/local): the binary goes to $PREFIX/bin/nodelua, the
# stable entry point the service starts (self-update stages its versions in
# the state folder, never here). DESTDIR stages the whole tree for a
# package, and creates no user and starts nothing.
#
# --dry-run prints every action and does none. --no-start installs without
# starting. --uninstall stops and removes the service, the binary and the
# user; --purge also removes the state and the configuration.
set -eu

repo=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
dry_run=0 no_start=0 uninstall=0 purge=0 binary=
api_url=${MONITORING_API_URL:-} api_key=${MONITORING_API_KEY:-} node_name=${NODE_NAME:-}
cluster_key=${NODELUA_CLUSTER_KEY:-} channel=${UPDATE_CHANNEL:-} public_key=${UPDATE_PUBLIC_KEY:-}

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; }

# A secret from a file: its first line, without surrounding space.
secret_file() {
  [ -r "$1" ] || die "cannot read $1"
  sed -n '1{s/^[[:space:]]*//;s/[[:space:]]*$//;p;}' "$1"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=${2:?--binary needs a path}; shift ;;
    --prefix) PREFIX=${2:?--prefix needs a path}; shift ;;
    --api-url) api_url=${2:?--api-url needs a value}; shift ;;
    --api-key) api_key=${2:?--api-key needs a value}; shift ;;
    --api-key-file) api_key=$(secret_file "${2:?--api-key-file needs a file}"); shift ;;
    --node-name) node_name=${2:?--node-name needs a value}; shift ;;
    --cluster-key) cluster_key=${2:?--cluster-key needs a value}; shift ;;
    --cluster-key-file) cluster_key=$(secret_file "${2:?--cluster-key-file needs a file}"); shift ;;
    --channel) channel=${2:?--channel needs a value}; shift ;;
    --public-key) public_key=${2:?--public-key needs a value}; shift ;;
    --dry-run) dry_run=1 ;;
    --no-start) no_start=1 ;;
    --uninstall) uninstall=1 ;;
    --purge) purge=1 ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'install: unknown argument %s; see ./install.sh --help\n' "$1" >&2; exit 2 ;;
  esac
  shift
done
case "$channel" in "" | stable | beta | nightly) ;; *) die "--channel takes stable, beta or nightly" ;; esac

os=$(uname -s)
case "$os" in
  Linux)
    user=nodelua group=nodelua
    state=/var/lib/nodelua
    service_file=/etc/systemd/system/nodelua.service
    ;;
  Darwin)
    user=_nodelua group=_nodelua
    state="/Library/Application Support/nodelua"
    service_file=/Library/LaunchDaemons/org.nodelua.agent.plist
    logs=/Library/Logs/nodelua
    ;;
  *) die "unsupported system: $os (Linux with systemd, or macOS)" ;;
esac
conf=/etc/nodelua
envfile=$conf/nodelua.env
bindir=$PREFIX/bin
live=1 # acts on this machine: users, services; not for DESTDIR or --dry-run
[ -z "$DESTDIR" ] && [ "$dry_run" = 0 ] || live=0
not_live="dry run"
[ -z "$DESTDIR" ] || not_live="DESTDIR=$DESTDIR"
if [ "$dry_run" = 0 ] && [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo ./install.sh ...): it creates a user, writes $conf and installs a service; --dry-run shows what it would do"
fi

changed=0
# do_ DESCRIPTION COMMAND...: says it, and does it unless --dry-run.
do_() {
  what=$1
  shift
  if [ "$dry_run" = 1 ]; then
    say "would $what"
  else
    say "$what"
    "$@"
  fi
  changed=1
}

# same FILE MODE OWNER:GROUP: whether DESTDIR/FILE exists as that already.
same_meta() {
  [ -e "$DESTDIR$1" ] || return 1
  [ "$(stat -c %a "$DESTDIR$1" 2>/dev/null || stat -f %Lp "$DESTDIR$1")" = "$2" ] || return 1
  [ "$live" = 0 ] && return 0
  [ "$(stat -c %U:%G "$DESTDIR$1" 2>/dev/null || stat -f %Su:%Sg "$DESTDIR$1")" = "$3" ]
}

# put SOURCE DEST MODE OWNER:GROUP: installs a file when it differs.
put() {
  if same_meta "$2" "$3" "$4" && cmp -s "$1" "$DESTDIR$2"; then
    say "unchanged: $2"
    return 1
  fi
  do_ "install $2 (mode $3, $4)" install_file "$1" "$2" "$3" "$4"
}

install_file() {
  mkdir -p "$(dirname "$DESTDIR$2")"
  tmp="$DESTDIR$2.new.$$"
  cp "$1" "$tmp"
  chmod "$3" "$tmp"
  [ "$live" = 0 ] || chown "$4" "$tmp"
  mv -f "$tmp" "$DESTDIR$2"
}

# folder PATH MODE OWNER:GROUP
folder() {
  if [ -d "$DESTDIR$1" ] && same_meta "$1" "$2" "$3"; then
    say "unchanged: $1/"
    return 0
  fi
  do_ "make $1/ (mode $2, $3)" make_folder "$1" "$2" "$3"
}

make_folder() {
  mkdir -p "$DESTDIR$1"
  chmod "$2" "$DESTDIR$1"
  [ "$live" = 0 ] || chown "$3" "$DESTDIR$1"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/nodelua-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- uninstall ----
if [ "$uninstall" = 1 ]; then
  say "will stop and remove the service, $bindir/nodelua and the user $user${purge:+}"
  if [ "$os" = Linux ]; then
    if [ "$live" = 1 ] && command -v systemctl >/dev/null && [ -e "$service_file" ]; then
      do_ "stop and disable nodelua.service" systemctl disable --now nodelua.service
    fi
    [ -e "$DESTDIR$service_file" ] && do_ "remove $service_file" rm -f "$DESTDIR$service_file"
    [ "$live" = 1 ] && command -v systemctl >/dev/null && do_ "reload systemd" systemctl daemon-reload
  else
    if [ "$live" = 1 ] && launchctl print system/org.nodelua.agent >/dev/null 2>&1; then
      do_ "stop the launchd daemon" launchctl bootout system/org.nodelua.agent
    fi
    [ -e "$DESTDIR$service_file" ] && do_ "remove $service_file" rm -f "$DESTDIR$service_file"
    [ -e "$DESTDIR/etc/newsyslog.d/nodelua.conf" ] &&
      do_ "remove /etc/newsyslog.d/nodelua.conf" rm -f "$DESTDIR/etc/newsyslog.d/nodelua.conf"
  fi
  [ -e "$DESTDIR$bindir/nodelua" ] && do_ "remove $bindir/nodelua" rm -f "$DESTDIR$bindir/nodelua"
  if [ "$live" = 1 ] && id "$user" >/dev/null 2>&1; then
    if [ "$os" = Linux ]; then
      do_ "remove the user $user" userdel "$user"
    else
      do_ "remove the user $user" dscl . -delete "/Users/$user"
      dscl . -read "/Groups/$group" >/dev/null 2>&1 && do_ "remove the group $group" dscl . -delete "/Groups/$group"
    fi
  fi
  if [ "$purge" = 1 ]; then
    [ -e "$DESTDIR$state" ] && do_ "remove $state (the spool, received files, updates)" rm -rf "$DESTDIR$state"
    [ -e "$DESTDIR$conf" ] && do_ "remove $conf (the configuration)" rm -rf "$DESTDIR$conf"
    [ "$os" = Darwin ] && [ -e "$DESTDIR$logs" ] && do_ "remove $logs" rm -rf "$DESTDIR$logs"
  else
    say "kept $state and $conf (--purge removes them)"
  fi
  [ "$changed" = 1 ] || say "nothing to remove"
  exit 0
fi

# ---- the binary ----
if [ -z "$binary" ]; then
  if [ "$dry_run" = 1 ]; then
    binary="$repo/build/release/nodelua"
    say "would build $binary (scripts/install-deps.sh, cmake)"
  else
    say "building (scripts/install-deps.sh, then cmake into build/release)"
    "$repo/scripts/install-deps.sh"
    builder=
    # The build needs no root: as the user who ran sudo, when there is one.
    [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && builder=$SUDO_USER
    build="cmake -S '$repo' -B '$repo/build/release' -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build '$repo/build/release' -j 2 >/dev/null"
    if [ -n "$builder" ]; then
      su "$builder" -s /bin/sh -c "$build" || die "the build failed: run cmake --build build/release to see why"
    else
      sh -c "$build" || die "the build failed: run cmake --build build/release to see why"
    fi
    binary="$repo/build/release/nodelua"
  fi
fi
[ "$dry_run" = 1 ] || [ -x "$binary" ] || die "no executable at $binary"

say "will install $bindir/nodelua, run it as the user $user, keep its configuration in $conf and its state in $state"

# ---- the user ----
if [ "$live" = 1 ] && ! id "$user" >/dev/null 2>&1; then
  if [ "$os" = Linux ]; then
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/sbin/nologin
    do_ "create the system user $user (no login shell, no home)" \
      useradd --system --user-group --no-create-home --home-dir /nonexistent --shell "$nologin" "$user"
  else
    # A free id under 500 for both the user and its group.
    id_=499
    while dscl . -list /Users UniqueID | awk '{print $2}' | grep -qx "$id_" ||
      dscl . -list /Groups PrimaryGroupID | awk '{print $2}' | grep -qx "$id_"; do
      id_=$((id_ - 1))
      [ "$id_" -gt 200 ] || die "no free id under 500 for $user"
    done
    do_ "create the group $group ($id_)" dscl . -create "/Groups/$group" PrimaryGroupID "$id_"
    do_ "create the user $user ($id_, no login shell)" sh -c "
      dscl . -create /Users/$user UniqueID $id_ &&
      dscl . -create /Users/$user PrimaryGroupID $id_ &&
      dscl . -create /Users/$user UserShell /usr/bin/false &&
      dscl . -create /Users/$user NFSHomeDirectory /var/empty &&
      dscl . -create /Users/$user RealName 'nodelua agent' &&
      dscl . -create /Users/$user IsHidden 1"
  fi
elif [ "$live" = 1 ]; then
  say "unchanged: the user $user"
else
  say "would create the user $user (skipped: $not_live)"
fi

# ---- files ----
if [ "$live" = 1 ]; then owner_group="root:$group" state_owner="$user:$group"; else owner_group="root:root" state_owner="root:root"; fi
[ "$(id -u)" -eq 0 ] || { owner_group="$(id -un):$(id -gn)"; state_owner=$owner_group; }

put "${binary:-/dev/null}" "$bindir/nodelua" 755 "root:$(id -gn root 2>/dev/null || echo root)" || true
folder "$conf" 755 "root:$(id -gn root 2>/dev/null || echo root)"
folder "$conf/policy" 755 "root:$(id -gn root 2>/dev/null || echo root)"
folder "$state" 700 "$state_owner"

# The env file: the existing one kept, only the values given changed. The
# values go through the environment (never an argument: no secret in ps).
existing=/dev/null
[ -f "$DESTDIR$envfile" ] && existing="$DESTDIR$envfile"
[ -n "$api_url$api_key$node_name$cluster_key$channel$public_key" ] || [ "$existing" != /dev/null ] ||
  if [ -t 0 ] && [ "$dry_run" = 0 ]; then
    say "no $envfile yet: a few questions (Enter keeps the default)"
    printf 'Monitoring API URL [http://localhost:3000]: '; read -r api_url
    printf 'Monitoring API key (not shown): '; stty -echo 2>/dev/null; read -r api_key; stty echo 2>/dev/null; echo
    printf 'Node name [%s]: ' "$(hostname)"; read -r node_name
  fi
NL_SET_MONITORING_API_URL=$api_url NL_SET_MONITORING_API_KEY=$api_key NL_SET_NODE_NAME=$node_name \
NL_SET_NODELUA_CLUSTER_KEY=$cluster_key NL_SET_UPDATE_CHANNEL=$channel NL_SET_UPDATE_PUBLIC_KEY=$public_key \
  awk '
    function q(v) { gsub(/\\/, "\\\\", v); gsub(/"/, "\\\"", v); gsub(/\$/, "\\$", v); return "\"" v "\"" }
    BEGIN {
      n = split("MONITORING_API_URL MONITORING_API_KEY NODE_NAME NODELUA_CLUSTER_KEY UPDATE_CHANNEL UPDATE_PUBLIC_KEY", names, " ")
      for (i = 1; i <= n; i++) { v = ENVIRON["NL_SET_" names[i]]; if (v != "") set[names[i]] = v }
    }
    {
      line = $0; key = line; sub(/^export[ \t]+/, "", key); sub(/=.*/, "", key)
      if (key in set) { print key "=" q(set[key]); done[key] = 1 } else print line
    }
    END {
      if (NR == 0) print "# nodelua settings (see README, \"Configuration\"); made by install.sh"
      for (i = 1; i <= n; i++) if ((names[i] in set) && !(names[i] in done)) print names[i] "=" q(set[names[i]])
    }' "$existing" >"$work/nodelua.env"
put "$work/nodelua.env" "$envfile" 640 "$owner_group" || true

# ---- the service ----
if [ "$os" = Linux ]; then
  sed "s|@PREFIX@|$PREFIX|g" "$repo/packaging/systemd/nodelua.service" >"$work/nodelua.service"
  service_changed=0
  put "$work/nodelua.service" "$service_file" 644 "root:$(id -gn root 2>/dev/null || echo root)" && service_changed=1 || true
else
  sed "s|@PREFIX@|$PREFIX|g" "$repo/packaging/launchd/org.nodelua.agent.plist" >"$work/plist"
  service_changed=0
  put "$work/plist" "$service_file" 644 "root:wheel" && service_changed=1 || true
  folder "$logs" 755 "$state_owner"
  printf '# logfilename [owner:group] mode count size when flags\n%s/agent.log %s 640 7 10240 * GZ\n' \
    "$logs" "$user:$group" >"$work/newsyslog"
  put "$work/newsyslog" /etc/newsyslog.d/nodelua.conf 644 "root:wheel" || true
fi

if [ "$live" = 0 ]; then
  say "the service is not started ($not_live)"
elif [ "$os" = Linux ]; then
  command -v systemctl >/dev/null || die "no systemctl: this installer needs systemd"
  [ "$service_changed" = 0 ] || do_ "reload systemd" systemctl daemon-reload
  systemctl is-enabled --quiet nodelua.service 2>/dev/null || do_ "enable nodelua.service" systemctl enable nodelua.service
  if [ "$no_start" = 1 ]; then
    say "not starting (--no-start)"
  elif ! systemctl is-active --quiet nodelua.service; then
    do_ "start nodelua.service" systemctl start nodelua.service
  elif [ "$changed" = 1 ]; then
    do_ "restart nodelua.service (it changed)" systemctl restart nodelua.service
  fi
else
  if [ "$no_start" = 1 ]; then
    say "not starting (--no-start)"
  elif ! launchctl print system/org.nodelua.agent >/dev/null 2>&1; then
    do_ "load the launchd daemon" launchctl bootstrap system "$service_file"
  elif [ "$changed" = 1 ]; then
    [ "$service_changed" = 0 ] || do_ "reload the launchd daemon" sh -c \
      "launchctl bootout system/org.nodelua.agent; launchctl bootstrap system '$service_file'"
    do_ "restart the agent (it changed)" launchctl kickstart -k system/org.nodelua.agent
  fi
fi
if [ "$changed" = 0 ]; then
  say "nothing changed: nodelua is installed as asked"
fi
