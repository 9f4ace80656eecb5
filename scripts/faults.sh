#!/usr/bin/env bash
# The fault suite (tests/faults/): each scenario against a private RabbitMQ node of its own.
# KMQ_FAULT_RUNS (default 1) runs it that many times; the figures of every run are summed into one
# table at the end. KMQ_BIN=dist/kmq runs it against the binary. Extra arguments go to `deno test`.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-broker.sh # installs rabbitmq-server when missing; the scenarios start their own nodes
runs="${KMQ_FAULT_RUNS:-1}"
report=$(mktemp)
status=0
for run in $(seq 1 "$runs"); do
  echo "== fault suite, run $run of $runs"
  KMQ_FAULT_REPORT="$report" bash scripts/deno.sh test -A "$@" tests/faults/produce_faults.ts tests/faults/consume_faults.ts tests/faults/move_faults.ts tests/faults/cluster_faults.ts ||
    status=1
done
bash scripts/deno.sh run --quiet --allow-read scripts/fault_report.ts "$report"
rm -f "$report"
exit "$status"
