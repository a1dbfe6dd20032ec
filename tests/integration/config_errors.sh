#!/usr/bin/env bash
# Each bad configuration value stops start-up with exit status 2 and one
# line that names the variable (or the file and line) and the expected form,
# with no secret in it; secrets never reach --help or the log.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
printf 'return 0\n' >ok.lua
SECRET=s3cr3t-api-key-value

# expect_bad DESCRIPTION FRAGMENT ENV...
expect_bad() {
  local what=$1 fragment=$2
  shift 2
  local err rc
  err=$(clean_env MONITORING_API_KEY=$SECRET "$@" "$NODELUA" run ok.lua 2>&1 >/dev/null)
  rc=$?
  check "$what: exit status 2" equals "$rc" 2
  check "$what: one line" equals "$(printf '%s\n' "$err" | wc -l)" 1
  check "$what: names the variable and the form" contains "$err" "$fragment"
  check "$what: no secret" lacks "$err" "$SECRET"
}

expect_bad "malformed URL" "MONITORING_API_URL=\"localhost:3000\" (from the environment): expected an http:// or https:// URL" \
  MONITORING_API_URL=localhost:3000
expect_bad "URL with credentials" "credentials in the URL are refused" \
  MONITORING_API_URL=http://user:pw@host
expect_bad "negative interval" "REPORT_INTERVAL=\"-5\" (from the environment): expected a whole number of seconds" \
  REPORT_INTERVAL=-5
expect_bad "non-numeric interval" "REPORT_INTERVAL=\"hourly\"" REPORT_INTERVAL=hourly
expect_bad "unknown log level" "NODELUA_LOG=\"chatty\" (from the environment): expected one of error, warn, info, debug, trace" \
  NODELUA_LOG=chatty
expect_bad "unknown log level via RUST_LOG" "(from the environment (as RUST_LOG))" RUST_LOG=loud
expect_bad "bad boolean" "NODELUA_MDNS=\"sometimes\"" NODELUA_MDNS=sometimes
expect_bad "relative receive dir" "TRANSFER_DIR=\"rel\" (from the environment): expected an absolute path" TRANSFER_DIR=rel
expect_bad "missing policy dir" "NODELUA_POLICY_DIR=\"/nonexistent\"" NODELUA_POLICY_DIR=/nonexistent
expect_bad "bad log format" "NODELUA_LOG_FORMAT=\"yaml\"" NODELUA_LOG_FORMAT=yaml
expect_bad "empty node name" "NODE_NAME=\"\"" NODE_NAME=
expect_bad "budget too small" "NODELUA_CALLBACK_BUDGET=\"5\"" NODELUA_CALLBACK_BUDGET=5

# The secret itself invalid: the error names it but never shows it.
err=$(clean_env "MONITORING_API_KEY=$SECRET with spaces" "$NODELUA" run ok.lua 2>&1)
check "bad key: exit 2" equals "$?" 2
check "bad key: named" contains "$err" "invalid MONITORING_API_KEY (from the environment): expected"
check "bad key: value not shown" lacks "$err" "s3cr3t"

# Files: a line the parser cannot read names the file and line.
printf 'NODE_NAME=ok\nMONITORING_API_KEY=%s\nnot an assignment\n' "$SECRET" >.env
err=$(clean_env "$NODELUA" run ok.lua 2>&1)
check "bad ./.env line: exit 2" equals "$?" 2
check "bad ./.env line: file and line" equals "$err" "nodelua: ./.env line 3: expected '=' after not"
printf 'REPORT_INTERVAL=-1\n' >.env
err=$(clean_env "$NODELUA" run ok.lua 2>&1)
check "bad ./.env value: file and line" contains "$err" "REPORT_INTERVAL=\"-1\" (from ./.env line 1)"
rm .env
printf '# extra\nNODELUA_CALLBACK_BUDGET="lots"\n' >extra.env
err=$(clean_env "$NODELUA" --env-file extra.env run ok.lua 2>&1)
check "bad --env-file value: exit 2" equals "$?" 2
check "bad --env-file value: file and line" contains "$err" "NODELUA_CALLBACK_BUDGET=\"lots\" (from extra.env line 2)"
err=$(clean_env "$NODELUA" --env-file missing.env run ok.lua 2>&1)
check "missing --env-file: exit 2" equals "$?" 2
check "missing --env-file: says so" equals "$err" "nodelua: missing.env: No such file or directory"
printf 'A="open\n' >service.env
err=$(clean_env NODELUA_SERVICE_ENV_FILE=service.env "$NODELUA" run ok.lua 2>&1)
check "bad service env file: exit 2" equals "$?" 2
check "bad service env file: file and line" contains "$err" "service.env line 1: unterminated double-quoted value"

# Precedence end to end: environment over --env-file over ./.env.
printf 'print(require("nodelua.config").get("NODE_NAME"))\n' >name.lua
printf 'NODE_NAME=from-dotenv\n' >.env
printf 'export NODE_NAME="from env-file"\n' >extra.env
check "./.env is read" equals "$(clean_env "$NODELUA" run name.lua)" "from-dotenv"
check "--env-file beats ./.env" equals "$(clean_env "$NODELUA" --env-file extra.env run name.lua)" "from env-file"
check "the environment beats both" \
  equals "$(clean_env NODE_NAME=from-env "$NODELUA" --env-file extra.env run name.lua)" "from-env"
rm .env

# Usage errors exit 2 too.
clean_env "$NODELUA" --log-format xml version >/dev/null 2>&1
check "bad --log-format: exit 2" equals "$?" 2
clean_env "$NODELUA" frobnicate >/dev/null 2>&1
check "unknown command: exit 2" equals "$?" 2
clean_env "$NODELUA" >/dev/null 2>&1
check "no command: exit 2" equals "$?" 2

# Secrets never in --help, nor in a log line.
help=$(clean_env MONITORING_API_KEY=$SECRET "$NODELUA" --help)
check "--help exits 0" equals "$?" 0
check "--help lists the variables" contains "$help" "REPORT_INTERVAL"
check "--help has no secret" lacks "$help" "$SECRET"
check "--help has not even the default key" lacks "$help" "dev-api-key"
printf 'local log = require("nodelua.log")\nlog.warn("key is %%s", require("nodelua.config").get("MONITORING_API_KEY"))\nerror("failing with " .. os.getenv("MONITORING_API_KEY"))\n' >leak.lua
err=$(clean_env MONITORING_API_KEY=$SECRET "$NODELUA" run leak.lua 2>&1)
check "a policy that logs the key: redacted" contains "$err" "key is [REDACTED]"
check "an error message with the key: redacted" contains "$err" "failing with [REDACTED]"
check "no line has the key" lacks "$err" "$SECRET"
err=$(clean_env MONITORING_API_KEY=$SECRET "$NODELUA" --log-format json run leak.lua 2>&1)
check "json log: one object per line" contains "$err" '"level":"warn","component":"leak.lua:2","msg":"key is [REDACTED]"}'
check "json log: no secret" lacks "$err" "$SECRET"

# The cluster key from NODELUA_CLUSTER_KEY_FILE is a secret like the
# others: whatever logs it, the log shows the redaction mark.
KEYFILE_SECRET=cluster-key-from-a-file-0123456789
printf '%s\n' "$KEYFILE_SECRET" >cluster.key
chmod 600 cluster.key
printf 'local log = require("nodelua.log")\nlocal key = assert(require("nodelua.files").cluster_key())\nlog.warn("the key: %%s", key)\nprint("printed " .. key)\n' >keyleak.lua
err=$(clean_env NODELUA_CLUSTER_KEY_FILE="$WORK/cluster.key" "$NODELUA" run keyleak.lua 2>&1 >/dev/null)
check "a key from a file, logged: redacted" contains "$err" "the key: [REDACTED]"
check "no log line has the key from the file" lacks "$err" "$KEYFILE_SECRET"
chmod 640 cluster.key
err=$(clean_env NODELUA_CLUSTER_KEY_FILE="$WORK/cluster.key" "$NODELUA" run ok.lua 2>&1)
check "a key file others can read: exit 2" equals "$?" 2
check "a key file others can read: says chmod 600" contains "$err" "chmod 600"

# Env files are code and secrets: one that others can write, or one that
# holds a secret and others can read, is refused with one line saying how
# to fix it.
printf 'NODE_NAME=planted\n' >.env
chmod 666 .env
err=$(clean_env "$NODELUA" run ok.lua 2>&1)
check "./.env writable by everyone: exit 2" equals "$?" 2
check "./.env writable by everyone: says so" contains "$err" "./.env is writable by everyone (mode 666): refused; run chmod go-w"
printf 'MONITORING_API_KEY=%s\n' "$SECRET" >.env
chmod 644 .env
err=$(clean_env "$NODELUA" run ok.lua 2>&1)
check "./.env with a secret, readable by others: exit 2" equals "$?" 2
check "./.env with a secret, readable by others: chmod 600" contains "$err" "chmod 600 on it (it sets MONITORING_API_KEY)"
check "./.env with a secret: the secret is not shown" lacks "$err" "$SECRET"
chmod 600 .env
clean_env "$NODELUA" run ok.lua >/dev/null 2>&1
check "./.env with a secret, mode 600: taken" equals "$?" 0
if [ "$(id -u)" = 0 ]; then
  chown 65534 .env
  err=$(clean_env "$NODELUA" run ok.lua 2>&1)
  check "./.env owned by another user: refused" contains "$err" "owned by uid 65534"
else
  skip "an env file of another user (needs root)"
fi
rm -f .env

# README's settings table is what the settings table in config.c renders:
# the two cannot drift. (It sits between the two marker comments.)
readme=$(dirname "$0")/../../README.md
table=$(sed -n '/<!-- settings-table: begin/,/<!-- settings-table: end/p' "$readme" | sed '1d;$d')
generated=$(clean_env "$NODELUA" config --markdown)
check "config --markdown exits 0" equals "$?" 0
check "config --markdown has a row per setting" equals \
  "$(printf '%s\n' "$generated" | grep -c '^| `')" "$(clean_env "$NODELUA" --help | grep -c '^ *form: ')"
check "README's settings table is config --markdown" equals "$table" "$generated"

# `nodelua config` shows what is in effect, and where it came from, never a
# secret.
printf 'REPORT_INTERVAL=9\n' >.env
shown=$(clean_env MONITORING_API_KEY=$SECRET "$NODELUA" config)
check "config: exit 0" equals "$?" 0
check "config: a value and its source" contains "$shown" "REPORT_INTERVAL=9  # ./.env line 1"
check "config: a secret is redacted" contains "$shown" "MONITORING_API_KEY=[REDACTED]  # the environment"
check "config: no secret" lacks "$shown" "$SECRET"
rm -f .env
err=$(clean_env REPORT_INTERVAL=0 "$NODELUA" config 2>&1)
check "config: a bad value exits 2" equals "$?" 2
check "config: a bad value is named" contains "$err" "invalid REPORT_INTERVAL"

# Every warning is shown, not just the first eight.
typos=()
for i in 1 2 3 4 5 6 7 8 9 10; do typos+=("NODELUA_TYPO_$i=x"); done
err=$(clean_env "${typos[@]}" "$NODELUA" config 2>&1 >/dev/null)
check "ten unknown settings: ten warnings" equals "$(printf '%s\n' "$err" | grep -c 'unknown variable NODELUA_TYPO_')" 10

finish
