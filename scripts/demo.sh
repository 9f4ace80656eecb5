#!/usr/bin/env bash
# kmq's main job in one go: a consumer waits (terminal 1), a producer sends "Hello World!"
# (terminal 2), and the message arrives — the seed's consumer.py and producer.py, as kmq. The
# consumer reads a server-named queue of its own bound to the tutorial's exchange, so the demo shows
# exactly the message it sent and takes nothing that waits in the tutorial's queue.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-broker.sh
DENO="bash scripts/deno.sh"
kmq() { $DENO run -A --quiet main.ts "$@"; }

out=$(mktemp)
log=$(mktemp)
trap 'rm -f "$out" "$log"' EXIT
echo "terminal 1 \$ kmq consume -q '' -e test_exchange -r test"
$DENO run -A --quiet main.ts -v consume -q '' -e test_exchange -r test >"$out" 2>"$log" &
consumer=$!
for _ in $(seq 1 100); do grep -q "consuming from" "$log" && break; sleep 0.1; done
echo "terminal 2 \$ kmq produce -e test_exchange -r test \"Hello World!\""
kmq produce -e test_exchange -r test "Hello World!"
for _ in $(seq 1 100); do grep -qx "Hello World!" "$out" && break; sleep 0.1; done
kill -TERM "$consumer" # what Ctrl-C does in terminal 1
status=0
wait "$consumer" || status=$?
[ "$status" = 143 ] || { echo "demo: the consumer ended with exit $status, not 143:"; cat "$log"; exit 1; }
echo "terminal 1 printed:"
sed 's/^/  /' "$out"
grep -qx "Hello World!" "$out" && echo "demo: the message arrived"
