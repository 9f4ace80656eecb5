#!/usr/bin/env bash
# Builds dist/kmq from main.ts with bun (pinned in package.json), for machines that reach only
# the npm registry; `deno task compile` is the release path. `deno task` would run
# node_modules/.bin/bun as a JavaScript bin script, hence this file.
set -euo pipefail
cd "$(dirname "$0")/.."
bun=node_modules/.bin/bun
[ -x "$bun" ] || bun=bun
exec "$bun" build --compile --minify --bytecode main.ts --outfile dist/kmq
