#!/usr/bin/env bash
# `make test`: every check on a fresh machine. Starts a stack of its own (other ports than
# `make dev`, so both can run), runs the tests against it, lints, stops what it started, and
# exits non-zero on any failure.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export MOTO_PORT="${TEST_MOTO_PORT:-4577}" API_PORT="${TEST_API_PORT:-9107}"
export STACK_DIR="$ROOT/.stack/test" TABLE_NAME="webhooks-test"
# A fresh clone builds every crate once: incremental compilation would only add gigabytes of
# cache on the CI machine's disk (set CARGO_INCREMENTAL=1 to keep it between local runs).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Time compressed: eight attempts a second apart, a short visibility timeout and delivery timeout,
# a rotated-out secret signing for 4 s, webhooks disabled after 30 s of failures (longer than
# any other test's failing receiver fails: a DLQ test's eight attempts take about 8 s).
export RETRY_SCHEDULE="1s,1s,1s,1s,1s,1s,1s" QUEUE_VISIBILITY_TIMEOUT=20 DELIVERY_TIMEOUT_MS=2000
export ROTATION_GRACE_SECS=4 AUTO_DISABLE_AFTER=30s
# The circuit breaker opens after 30 failures in a row, more than any test's failing receiver
# answers before it succeeds or its deliveries are parked (a DLQ test's 16, an email test's 24),
# and probes 2 s later (time compressed, as the schedule): a hanging receiver's deliveries then
# wait instead of holding the slow lane (tests/tests/isolation.rs). tests/tests/circuit.rs runs a
# dispatch of its own with the default five.
export CIRCUIT_BREAKER_AFTER=30 CIRCUIT_PROBE_AFTER=2s
# Our code and the Lambda runtime log at debug level, and the tests list every secret they use:
# none may be logged. The AWS SDK's and hyper's own debug lines (twenty per AWS call, 130 MB a run,
# none of them ours) stay at info.
export FUNCTIONS_RUST_LOG="info,shared=debug,lambda_runtime=debug,lambda_http=debug"
export SECRETS_FILE="$STACK_DIR/secrets.txt"
# The emulator records which partition keys each function touches (scripts/moto_server.py); after
# the tests they are checked against each function's dynamodb:LeadingKeys in template.yaml.
export DYNAMO_ACCESS_LOG="$STACK_DIR/dynamo-access.jsonl"
rm -f "$DYNAMO_ACCESS_LOG"
source "$ROOT/scripts/stack.sh"
trap stop_stack EXIT
trap 'exit 130' INT TERM
cd "$ROOT"

passed=0
failed=0
failures=()
check() {
  local name="$1"; shift
  log "== $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}

# The workspace builds (the longest step on a fresh machine) while the venv installs and the
# linters run; the stack's own build then finds it done.
mkdir -p "$ROOT/.stack"
cargo build --workspace --bins --quiet > "$ROOT/.stack/build.log" 2>&1 &
build_pid=$!
ensure_venv || exit 1
# checkov installs (a minute on a fresh machine) while the stack builds; it runs after the tests.
ensure_checkov > "$ROOT/.stack/checkov-install.log" 2>&1 &
checkov_install=$!
# chromium likewise, for the portal's tests.
ensure_chromium > "$ROOT/.stack/chromium-install.log" 2>&1 &
chromium_install=$!
export SAM_CLI_TELEMETRY=0
check "cargo fmt --check" cargo fmt --all -- --check
check "cfn-lint" cfn-lint template.yaml
check "sam validate --lint" sam validate --lint --region us-east-1 --template template.yaml

wait "$build_pid" || true  # a failed build fails again, on the terminal, in start_stack
# clippy, as one command: beside the tests (below), or at the end if the stack did not start.
clippy_cmd=(cargo clippy --workspace --all-targets --quiet -- -D warnings)
if start_stack; then
  mkdir -p "$STACK_DIR"
  printf '%s\n' "$DEMO_PASSWORD" "vwt_local-demo-token-do-not-use-in-production" "Basic XxxXxxXX" > "$SECRETS_FILE"
  # clippy meanwhile, at the lowest priority and in a target directory of its own (cargo locks its
  # build directory for as long as `cargo test` runs): it takes the CPU the tests leave idle while
  # they wait on the stack's timers, rather than a minute and a half of its own after them.
  CARGO_TARGET_DIR="$ROOT/target/clippy" nice -n 19 "${clippy_cmd[@]}" > "$ROOT/.stack/clippy.log" 2>&1 &
  clippy_pid=$!
  # The libraries' unit tests and the integration tests: binaries hold no tests of their own
  # (tests/tests/structure.rs), and linking a test harness for each would take a minute.
  log "== cargo test"
  cargo test --workspace --lib --test '*' --no-fail-fast 2>&1 | tee "$STACK_DIR/cargo-test.log"
  test_rc=${PIPESTATUS[0]}
  read -r t_pass t_fail < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$STACK_DIR/cargo-test.log")
  passed=$((passed + t_pass))
  failed=$((failed + t_fail))
  if [ "$test_rc" -ne 0 ]; then
    failures+=("cargo test")
    [ "$t_fail" -gt 0 ] || failed=$((failed + 1))
  fi
  # The OpenAPI description against the running functions, as a vendor of its own.
  check "schemathesis (openapi.yaml)" scripts/schemathesis.sh
  # The portal in a real browser: Debian's chromium driven by Playwright (tests/portal).
  if wait "$chromium_install"; then
    log "== portal in chromium (Playwright)"
    python -m pytest -q -p no:cacheprovider tests/portal 2>&1 | tee "$STACK_DIR/portal-test.log"
    portal_rc=${PIPESTATUS[0]}
    p_pass=$(grep -oE '[0-9]+ passed' "$STACK_DIR/portal-test.log" | tail -1 | cut -d' ' -f1)
    p_fail=$(grep -oE '[0-9]+ (failed|error)' "$STACK_DIR/portal-test.log" | tail -1 | cut -d' ' -f1)
    passed=$((passed + ${p_pass:-0}))
    failed=$((failed + ${p_fail:-0}))
    if [ "$portal_rc" -ne 0 ]; then
      # What the portal's function and cargo lambda said, for a failure seen only on CI.
      log "the portal's warnings and errors, and cargo lambda's own lines, from $STACK_DIR/watch.log:"
      grep -F '"function":"portal"' "$STACK_DIR/watch.log" | grep -E '"level":"(WARN|ERROR)"' | tail -n 15 >&2
      grep -v '^{' "$STACK_DIR/watch.log" | grep -v -E 'Blocking waiting|Finished `dev`|^ *Running `' | tail -n 25 >&2
      failures+=("portal tests")
      [ "${p_fail:-0}" -gt 0 ] || failed=$((failed + 1))
    fi
  else
    log "chromium could not be installed; see .stack/chromium-install.log"
    failures+=("chromium install"); failed=$((failed + 1))
  fi
  # Only the stack's logs (not the test runner's own output); no short pattern matches by chance.
  grep -E '^.{8,}$' "$SECRETS_FILE" > "$STACK_DIR/secret-patterns.txt"
  stack_logs=("$STACK_DIR/moto.log" "$STACK_DIR/watch.log" "$STACK_DIR/bridge.log" "$STACK_DIR/slow-bridge.log" "$STACK_DIR/email-bridge.log")
  if grep -q -F -f "$STACK_DIR/secret-patterns.txt" "${stack_logs[@]}"; then
    log "secrets appear in these logs:"
    grep -l -F -f "$STACK_DIR/secret-patterns.txt" "${stack_logs[@]}" >&2
    failures+=("secrets in logs"); failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
  check "dynamodb:LeadingKeys (template.yaml) hold what the functions did" \
    target/debug/devstack leading-keys --template template.yaml --access-log "$DYNAMO_ACCESS_LOG"
  if grep -q 'panicked at' "$STACK_DIR/watch.log"; then
    log "a function panicked during the tests; see $STACK_DIR/watch.log"
    failures+=("function panic"); failed=$((failed + 1))
  fi
else
  failures+=("local stack"); failed=$((failed + 1))
fi
stop_stack

# checkov: no failed check; every skip is inline in the template with its reason (tests/template.rs
# checks that none skips access logging or alarm delivery). --skip-download: no network.
if wait "$checkov_install"; then
  check "checkov" "$VENV/checkov/bin/checkov" -f template.yaml --framework cloudformation --compact \
    --quiet --skip-download
else
  log "checkov could not be installed; see .stack/checkov-install.log"
  failures+=("checkov install"); failed=$((failed + 1))
fi
# clippy's answer: the run started beside the tests, or one now if the stack did not start.
clippy() {
  if [ -n "${clippy_pid:-}" ]; then
    wait "$clippy_pid"
    local rc=$?
    cat "$ROOT/.stack/clippy.log"
    return "$rc"
  fi
  "${clippy_cmd[@]}"
}
check "cargo clippy -D warnings" clippy
# The soak, reduced: 500 events with every fault, on a stack of its own; every pair accounted for.
# (1,000 took about 7 of CI's 25 minutes, 700 about 4.) It runs last and alone: each keeps both
# cores busy, and run beside schemathesis the two took longer than in turn.
# Ports and a folder of its own, so that `make soak` can run beside `make test`.
check "soak, 500 events" env -u DYNAMO_ACCESS_LOG SOAK_MOTO_PORT=4621 SOAK_API_PORT=9141 SOAK_PROXY_PORT=4622 \
  SOAK_STACK_DIR="$ROOT/.stack/test-soak" scripts/soak.sh 500

echo
if [ "${#failures[@]}" -gt 0 ]; then log "failed: ${failures[*]}"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
