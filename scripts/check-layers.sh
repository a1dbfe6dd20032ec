#!/usr/bin/env bash
# The include rules of docs/architecture.md, checked on the tree:
#   - src/core/ includes neither Lua nor src/bind/;
#   - src/core/discovery/ and src/core/transfer/ never include each other;
#   - nothing under lua/nodelua/policy/ requires nodelua.cli.* (the busted
#     spec checks the other internals, and the examples).
# Prints each breach and exits 1; prints nothing and exits 0 when the tree
# keeps them.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
breach() {
  echo "layers: $*" >&2
  failed=1
}

while IFS= read -r line; do
  breach "the core includes Lua or a binding: $line"
done < <(grep -rnE '#include *[<"](lua\.h|lauxlib\.h|lualib\.h|bind/)' src/core || true)

while IFS= read -r line; do
  breach "discovery includes transfer: $line"
done < <(grep -rnE '#include *"(core/)?transfer/' src/core/discovery || true)

while IFS= read -r line; do
  breach "transfer includes discovery: $line"
done < <(grep -rnE '#include *"(core/)?discovery/' src/core/transfer || true)

while IFS= read -r line; do
  breach "a shipped policy requires a command module: $line"
done < <(grep -rnE 'require *\(? *["'"'"']nodelua\.cli\.' lua/nodelua/policy || true)

exit "$failed"
