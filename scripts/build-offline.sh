#!/usr/bin/env bash
# Builds kmq from main.ts with bun (pinned in package.json): dist/kmq for CI and the releases, on
# machines that reach only the npm registry too; `deno task compile` is the alternative. Without arguments it writes dist/kmq for this
# machine; scripts/release.ts passes `--target=bun-<platform> --outfile <path>` to cross-compile
# (Bun fetches the target's runtime from the npm registry); scripts/bench.ts builds its baselines
# with it (an entry point first), so they start as kmq does. `deno task` would run
# node_modules/.bin/bun as a JavaScript bin script, hence this file.
set -euo pipefail
cd "$(dirname "$0")/.."
bun=node_modules/.bin/bun
[ -x "$bun" ] || bun=bun
entry=main.ts
if [ $# -gt 0 ] && [[ $1 != -* ]]; then # another entry point (the bench's baselines)
  entry=$1
  shift
fi
[ $# -gt 0 ] || set -- --outfile dist/kmq
# a compiled Bun binary would read .env and bunfig.toml from the working directory: a KMQ_URL in
# some project's .env must not change which broker kmq talks to. A JIT tier-up threshold 100x
# the normal one saves a one-shot command the compiling it would never pay back; main.ts puts
# the normal policy back after 50 ms, for commands that move messages in bulk.
exec "$bun" build --compile --splitting --format esm --minify --bytecode --compile-jit-policy=100 \
  --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
  "$entry" "$@"
