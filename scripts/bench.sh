#!/usr/bin/env bash
# `make bench`: the README's Performance figures, from a fresh clone. Builds the functions and the
# benchmark in release, starts the AWS emulator (moto) on 127.0.0.1:${BENCH_MOTO_PORT:-4599} with
# the template's table, and runs, on this machine, each measurement with its baseline in the same
# run:
#   1. dispatch against the bare hyper client ceiling (10,000 x 1 KiB, 50 in flight), then
#      ${BENCH_RUNS:-5} runs more of it, each run's ratios and CPU summarised over them (these
#      machines vary from minute to minute: a ratio within a run is steadier than a figure);
#   2. cold start of every function (median of 20), its first invocation, peak RSS (dispatch with
#      a 100-message batch);
#   2b. a password-checked request with the function held to the CPU share of each Lambda memory
#      size (a cgroup CPU quota; needs root), beside a wrong password and no credentials;
#   2c. dispatch's binary as deployed, held to the same shares, warm, with batches of ten: each
#      invocation's time and its CPU per delivery, its DynamoDB calls included, and what it
#      logs per delivery (CloudWatch Logs bills the bytes);
#   3. the size of every arm64 bootstrap from `cargo lambda build --release --arm64`, and its zip
#      (skipped with BENCH_ARM64=0: a cold arm64 build takes about 15 min on 2 cores).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export MOTO_PORT="${BENCH_MOTO_PORT:-4599}" STACK_DIR="$ROOT/.stack/bench" TABLE_NAME="webhooks-bench"
source "$ROOT/scripts/stack.sh"
cd "$ROOT"
ensure_venv
export_stack_env
trap stop_stack EXIT

log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
log "building the functions and the benchmark (release)"
packages=(-p webhooks-bench -p devstack)
for f in functions/*/; do packages+=(-p "$(basename "$f")"); done
cargo build --release --quiet "${packages[@]}"

port_free "$MOTO_PORT" || { log "port $MOTO_PORT is in use: set BENCH_MOTO_PORT"; exit 1; }
start_bg moto python "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT"
wait_http "$AWS_ENDPOINT_URL/moto-api/" 60 moto
target/release/devstack bootstrap --template template.yaml --table "$TABLE_NAME" --queue-prefix "$TABLE_NAME" \
  --env-out "$STACK_DIR/queues.env" >/dev/null
set -a; source "$STACK_DIR/queues.env"; set +a

echo
echo "## Password checks at Lambda's CPU share"
# First, while the table is small (the emulator's queries slow down as it fills). The function
# runs in a cgroup whose CPU quota is the share of one core Lambda gives each memory size
# (1,769 MB: one vCPU). Needs root and a writable cgroup filesystem (v1 or v2).
target/release/webhooks-bench auth-cpu --bin-dir target/release 2>&1

echo
echo "## Dispatch at Lambda's CPU share"
target/release/webhooks-bench dispatch-share --bin-dir target/release 2>&1

echo
echo "## Dispatch"
target/release/webhooks-bench dispatch --dynamo 2>&1 >/dev/null
runs="${BENCH_RUNS:-5}"
echo
echo "## Dispatch, $runs runs more (the in-memory runs): ratios and CPU per delivery"
for _ in $(seq "$runs"); do target/release/webhooks-bench dispatch 2>&1 >/dev/null | grep '^| [a-z][0-9]*\. '; done |
  python "$ROOT/scripts/bench_runs.py"
echo
echo "## Cold start and memory"
target/release/webhooks-bench cold-start --bin-dir target/release 2>&1

if [ "${BENCH_ARM64:-1}" != "0" ]; then
  echo
  echo "## arm64 bootstraps (cargo lambda build --release --arm64)"
  rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || true
  fn_packages=()
  for f in functions/*/; do fn_packages+=(-p "$(basename "$f")"); done
  cargo lambda build --release --arm64 "${fn_packages[@]}"
  python - functions/*/ <<'PY'
import io, os, sys, zipfile
print("| function | bootstrap MB | zip MB |")
print("|---|---|---|")
for d in sys.argv[1:]:
    name = os.path.basename(d.rstrip("/"))
    boot = f"target/lambda/{name}/bootstrap"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(boot, "bootstrap")
    print(f"| {name} | {os.path.getsize(boot) / 1e6:.2f} | {len(buf.getvalue()) / 1e6:.2f} |")
PY
fi
