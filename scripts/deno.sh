#!/usr/bin/env bash
# Runs the pinned Deno from node_modules (npm ci), or the one on PATH. `deno task` would run
# node_modules/.bin/deno as a JavaScript bin script, so tasks call Deno through this file.
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -x "$here/node_modules/.bin/deno" ]; then exec "$here/node_modules/.bin/deno" "$@"; fi
exec deno "$@"
