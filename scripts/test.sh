#!/usr/bin/env bash
# The whole test suite against a real RabbitMQ (started, and installed, when none answers).
# Extra arguments go to `deno test` (e.g. a file, or --filter NAME).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-broker.sh --with-kombu
if [ $# -eq 0 ]; then set -- tests/; fi
exec bash scripts/deno.sh test -A "$@"
