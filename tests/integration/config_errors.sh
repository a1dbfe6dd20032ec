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
expect_bad "negative interval" "UPDATE_CHECK_INTERVAL=\"-5\" (from the environment): expected a whole number of minutes" \
  UPDATE_CHECK_INTERVAL=-5
expect_bad "non-numeric interval" "UPDATE_CHECK_INTERVAL=\"hourly\"" UPDATE_CHECK_INTERVAL=hourly
expect_bad "unknown log level" "NODELUA_LOG=\"chatty\" (from the environment): expected one of error, warn, info, debug, trace" \
  NODELUA_LOG=chatty
expect_bad "unknown log level via RUST_LOG" "(from the environment (as RUST_LOG))" RUST_LOG=loud
expect_bad "bad boolean" "AUTO_UPDATE=\"sometimes\"" AUTO_UPDATE=sometimes
expect_bad "bad channel" "UPDATE_CHANNEL=\"pre-release\"" UPDATE_CHANNEL=pre-release
expect_bad "bad repository" "UPDATE_REPOSITORY=\"no-slash\"" UPDATE_REPOSITORY=no-slash
expect_bad "relative update dir" "UPDATE_DIR=\"rel\" (from the environment): expected an absolute path" UPDATE_DIR=rel
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
printf 'UPDATE_CHECK_INTERVAL=-1\n' >.env
err=$(clean_env "$NODELUA" run ok.lua 2>&1)
check "bad ./.env value: file and line" contains "$err" "UPDATE_CHECK_INTERVAL=\"-1\" (from ./.env line 1)"
rm .env
printf '# extra\nAUTO_UPDATE="maybe"\n' >extra.env
err=$(clean_env "$NODELUA" --env-file extra.env run ok.lua 2>&1)
check "bad --env-file value: exit 2" equals "$?" 2
check "bad --env-file value: file and line" contains "$err" "AUTO_UPDATE=\"maybe\" (from extra.env line 2)"
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
check "--help lists the variables" contains "$help" "UPDATE_CHECK_INTERVAL"
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

finish
