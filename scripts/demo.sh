#!/usr/bin/env bash
# kmq's main job in one go: a consumer waits (terminal 1), a producer sends "Hello World!"
# (terminal 2), and the message arrives — the seed's consumer.py and producer.py, as kmq.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-broker.sh
DENO="bash scripts/deno.sh"
kmq() { $DENO run -A --quiet main.ts "$@"; }

out=$(mktemp)
log=$(mktemp)
trap 'rm -f "$out" "$log"' EXIT
echo "terminal 1 \$ kmq consume"
$DENO run -A --quiet main.ts -v consume >"$out" 2>"$log" &
consumer=$!
for _ in $(seq 1 100); do grep -q "consuming from" "$log" && break; sleep 0.1; done
echo "terminal 2 \$ kmq produce \"Hello World!\""
kmq produce "Hello World!"
for _ in $(seq 1 100); do grep -qx "Hello World!" "$out" && break; sleep 0.1; done
kill -TERM "$consumer" # what Ctrl-C does in terminal 1
wait "$consumer"
echo "terminal 1 printed:"
sed 's/^/  /' "$out"
grep -qx "Hello World!" "$out" && echo "demo: the message arrived"
