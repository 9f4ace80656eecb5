#!/usr/bin/env bash
# Builds dist/kmq from main.ts with bun (pinned in package.json), for machines that reach only
# the npm registry; `deno task compile` is the release path. `deno task` would run
# node_modules/.bin/bun as a JavaScript bin script, hence this file.
set -euo pipefail
cd "$(dirname "$0")/.."
bun=node_modules/.bin/bun
[ -x "$bun" ] || bun=bun
# a compiled Bun binary would read .env and bunfig.toml from the working directory: a KMQ_URL in
# some project's .env must not change which broker kmq talks to
exec "$bun" build --compile --minify --bytecode --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
  main.ts --outfile dist/kmq
