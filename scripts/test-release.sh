#!/usr/bin/env bash
# Builds every release archive (deno task release, bun cross-compiling) and checks them:
# tests/release/release_check.ts. The linux-arm64 binary runs under qemu-aarch64 with Debian's
# arm64 C library, both installed here when missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-broker.sh
if ! command -v qemu-aarch64 >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] ||
  ! command -v zip >/dev/null || ! command -v unzip >/dev/null || ! command -v file >/dev/null; then
  echo "test-release: installing qemu-user, libc6-arm64-cross, zip, unzip and file"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user libc6-arm64-cross zip unzip file >/dev/null
fi
bash scripts/deno.sh run -A scripts/release.ts
exec bash scripts/deno.sh test -A tests/release/release_check.ts "$@"
