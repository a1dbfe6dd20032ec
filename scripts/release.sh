#!/usr/bin/env bash
# Builds a release folder that nodelua's self-update accepts, and prints the
# `gh release create` line that publishes it:
#   nodelua-{os}-{arch}   each binary (os linux|darwin, arch x86_64|aarch64)
#   SHA256SUMS            sha256sum's format, every binary
#   SHA256SUMS.minisig    `minisign -S` of SHA256SUMS, its trusted comment
#                         "tag=<tag> expires=<unix seconds>"
#
# Usage: scripts/release.sh --tag TAG --key SECRET_KEY --out DIR
#                           [--expires-days N] NAME=BINARY...
#   TAG          {channel}-{semver}: stable-1.4.0, beta-1.5.0-rc.1, ...
#   SECRET_KEY   a minisign secret key (minisign -G); minisign asks for its
#                password if it has one
#   NAME=BINARY  e.g. nodelua-linux-x86_64=build/nodelua; each binary must
#                say the tag's version in `nodelua version`
#   --expires-days  how long the signature is good for (default 90): a node
#                   that is kept from newer releases refuses this one after
set -euo pipefail

tag= key= out= days=90
binaries=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --expires-days) days=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "release.sh: unknown option $1" >&2; exit 2 ;;
    *) binaries+=("$1"); shift ;;
  esac
done
die() { echo "release.sh: $*" >&2; exit 2; }
[ -n "$tag" ] && [ -n "$key" ] && [ -n "$out" ] && [ ${#binaries[@]} -gt 0 ] ||
  die "needs --tag, --key, --out and at least one NAME=BINARY (see --help)"
[[ "$tag" =~ ^(stable|beta|nightly)-([0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)$ ]] ||
  die "the tag must be {stable|beta|nightly}-{semver}, not '$tag'"
version=${BASH_REMATCH[2]}
channel=${BASH_REMATCH[1]}
[[ "$days" =~ ^[0-9]+$ ]] && [ "$days" -ge 1 ] || die "--expires-days takes a whole number of days"
command -v minisign >/dev/null || die "minisign is needed (Debian: apt-get install minisign)"
[ -r "$key" ] || die "cannot read the secret key $key"

mkdir -p "$out"
names=()
for pair in "${binaries[@]}"; do
  name=${pair%%=*} path=${pair#*=}
  [[ "$name" =~ ^nodelua-(linux|darwin)-(x86_64|aarch64|amd64|arm64)$ ]] ||
    die "'$name' is not nodelua-{linux|darwin}-{x86_64|aarch64}"
  [ -f "$path" ] || die "no binary at $path"
  # A binary that runs here must say the tag's version; the launcher
  # rolls back one that does not, so catch it now.
  if said=$(timeout 10 "$path" version 2>/dev/null </dev/null) && [ -n "$said" ]; then
    said=${said%%$'\n'*}
    [[ "$said" == "nodelua $version "* ]] || die "$path says '$said', not version $version"
  fi
  install -m 0755 "$path" "$out/$name"
  names+=("$name")
done
(cd "$out" && sha256sum "${names[@]}" >SHA256SUMS)
expires=$(($(date +%s) + days * 86400))
rm -f "$out/SHA256SUMS.minisig"
minisign -S -s "$key" -m "$out/SHA256SUMS" -x "$out/SHA256SUMS.minisig" \
  -t "tag=$tag expires=$expires" >/dev/null
prerelease=
[ "$channel" = stable ] || prerelease=" --prerelease"
echo "release.sh: $out holds ${names[*]}, SHA256SUMS and SHA256SUMS.minisig (expires $(date -u -d @"$expires" +%F 2>/dev/null || echo "$expires"))"
echo "gh release create $tag$prerelease --title \"nodelua $version ($channel)\" --notes \"\" $out/*"
