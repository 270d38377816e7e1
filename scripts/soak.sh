#!/usr/bin/env bash
# `make soak` (EVENTS=10000 by default; `make test` runs 1,000): a stack of its own (moto on
# 127.0.0.1:4611, the API on 9131), every function talking to the emulator through a TCP proxy on
# 4612 that the soak takes down for 5 s, dispatch run by the soak under a local Lambda that it
# kills twice, a compressed retry schedule; then every (event, webhook) pair accounted for.
# Exits non-zero if one is not. The table it prints is the README's.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
events="${1:-${EVENTS:-10000}}"
export MOTO_PORT="${SOAK_MOTO_PORT:-4611}" API_PORT="${SOAK_API_PORT:-9131}" SOAK_PROXY_PORT="${SOAK_PROXY_PORT:-4612}"
export STACK_DIR="${SOAK_STACK_DIR:-$ROOT/.stack/soak}" TABLE_NAME="webhooks-soak" STACK_NO_BRIDGE=1
export FUNCTIONS_ENDPOINT_URL="http://127.0.0.1:$SOAK_PROXY_PORT"
export RETRY_SCHEDULE="1s,1s,2s,2s,3s,3s,3s" QUEUE_VISIBILITY_TIMEOUT=20 DELIVERY_TIMEOUT_MS=2000
export AUTO_DISABLE_AFTER=off CIRCUIT_BREAKER_AFTER=off FUNCTIONS_RUST_LOG=warn WATCH_CONCURRENCY=4
source "$ROOT/scripts/stack.sh"
trap stop_stack EXIT
trap 'exit 130' INT TERM
cd "$ROOT"
# A hundred receivers, the proxy and the clients' pools: more descriptors than the usual 1,024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ensure_venv || exit 1
start_stack || exit 1
"$ROOT/target/debug/soak" "$events"
