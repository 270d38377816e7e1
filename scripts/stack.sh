# shellcheck shell=bash
# The local stack: moto_server (DynamoDB) on 127.0.0.1, the table from template.yaml, and
# `cargo lambda watch` serving the API routes. Sourced by scripts/dev.sh and scripts/test.sh.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
MOTO_PORT="${MOTO_PORT:-4566}"
API_PORT="${API_PORT:-9000}"
TABLE_NAME="${TABLE_NAME:-webhooks}"
DEMO_USERNAME="${DEMO_USERNAME:-demo}"
DEMO_PASSWORD="${DEMO_PASSWORD:-demo-password}"
# Vendors' emails come from here: an SES identity in the emulator, its outbox at
# $AWS_ENDPOINT_URL/moto-api/ses/outbox.json (scripts/outbox.py prints it). EMAIL_SENDER= (empty) turns emails off.
EMAIL_SENDER="${EMAIL_SENDER-notifications@webhooks.example}"
STACK_PIDS=()

# Each line with the seconds since the script started: where a run's time went.
log() { printf '\033[1m[stack %ss]\033[0m %s\n' "$SECONDS" "$*" >&2; }

# Creates .venv with the pinned tools, once per change of the requirements.
ensure_venv() {
  local req="$ROOT/scripts/requirements-dev.txt" stamp="$VENV/.requirements"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating the Python venv in .venv"
    python3 -m venv "$VENV"
  fi
  if ! cmp -s "$req" "$stamp"; then
    log "installing the tools of scripts/requirements-dev.txt into .venv (moto, cargo-lambda, cfn-lint, sam)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >/dev/null
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

# checkov in a venv of its own (its pins conflict with aws-sam-cli's), on PATH as `checkov`.
ensure_checkov() {
  local req="$ROOT/scripts/requirements-checkov.txt" venv="$VENV/checkov"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  if ! cmp -s "$req" "$venv/.requirements"; then
    log "installing checkov into .venv/checkov"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$venv/.requirements"
  fi
}

# Debian's chromium for the portal's browser tests (Playwright drives it; it never downloads a
# browser, which cannot work on a closed network). Installed with apt-get when missing.
ensure_chromium() {
  command -v chromium >/dev/null && return 0
  log "installing Debian's chromium for the portal's browser tests"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y -q chromium >/dev/null 2>&1 ||
    { "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q chromium >/dev/null; }
  command -v chromium >/dev/null
}

# The environment the functions, the CLI and the tests see.
export_stack_env() {
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
  export AWS_REGION="${AWS_REGION:-us-east-1}"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
  export TABLE_NAME ALLOW_PRIVATE_TARGETS=true
  export WEBHOOKS_API_URL="http://127.0.0.1:$API_PORT"
  export DEMO_USERNAME DEMO_PASSWORD EMAIL_SENDER
  # Instances of a function `cargo lambda watch` runs at once (start_stack says why five).
  export WATCH_CONCURRENCY="${WATCH_CONCURRENCY:-5}"
}

# Starts a command in its own process group, logging to $STACK_DIR/<name>.log.
start_bg() {
  local name="$1"; shift
  mkdir -p "$STACK_DIR"
  setsid "$@" >"$STACK_DIR/$name.log" 2>&1 < /dev/null &
  STACK_PIDS+=("$!")
}

# Waits until a URL answers at all (any status), or fails after $2 seconds.
wait_http() {
  local url="$1" timeout="$2" name="$3" i=0
  until curl -s -o /dev/null --max-time 2 "$url"; do
    i=$((i + 1))
    if [ "$i" -ge "$timeout" ]; then
      log "$name did not come up within ${timeout}s; its log:"
      tail -n 40 "$STACK_DIR/$name.log" >&2 || true
      return 1
    fi
    sleep 1
  done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_stack() {
  export_stack_env
  for p in "$MOTO_PORT" "$API_PORT"; do
    port_free "$p" || { log "port $p is in use: stop what runs there, or set MOTO_PORT / API_PORT"; return 1; }
  done
  log "building the workspace"
  (cd "$ROOT" && cargo build --workspace --bins --quiet)

  log "starting moto_server on 127.0.0.1:$MOTO_PORT"
  # scripts/moto_server.py: moto_server with DynamoDB's conditional writes atomic, as in AWS.
  start_bg moto python "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT"
  wait_http "$AWS_ENDPOINT_URL/moto-api/" 60 moto

  log "creating the table and queues of template.yaml, the demo vendor and its token"
  mkdir -p "$STACK_DIR"
  local extra=()
  if [ -n "${QUEUE_VISIBILITY_TIMEOUT:-}" ]; then extra+=(--visibility-timeout "$QUEUE_VISIBILITY_TIMEOUT"); fi
  (cd "$ROOT" && "$ROOT/target/debug/devstack" bootstrap --template template.yaml --table "$TABLE_NAME" \
      --queue-prefix "$TABLE_NAME" --env-out "$STACK_DIR/queues.env" --tls-dir "$STACK_DIR/tls" "${extra[@]}" \
      --demo-username "$DEMO_USERNAME" --demo-password "$DEMO_PASSWORD") >&2 || return 1
  set -a; source "$STACK_DIR/queues.env"; set +a
  # https receivers on this machine use a certificate of the throwaway CA that dispatch trusts.
  export RECEIVER_TLS_DIR="$STACK_DIR/tls" EXTRA_CA_FILE="$STACK_DIR/tls/ca.pem"

  log "starting cargo lambda watch on 127.0.0.1:$API_PORT"
  # No --timeout: in cargo-lambda 1.9 it also ends idle functions' long polls, which crashes them.
  mkdir -p "$STACK_DIR"
  {
    echo "TABLE_NAME=$TABLE_NAME"
    # The soak puts a TCP proxy between the functions and the emulator (FUNCTIONS_ENDPOINT_URL).
    echo "AWS_ENDPOINT_URL=${FUNCTIONS_ENDPOINT_URL:-$AWS_ENDPOINT_URL}"
    echo "AWS_REGION=$AWS_REGION"
    echo "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID"
    echo "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
    echo "ALLOW_PRIVATE_TARGETS=true"
    # The portal is served over plain http on 127.0.0.1: its cookies cannot be Secure here.
    echo "PORTAL_INSECURE_COOKIES=true"
    # Quoted: the env file's reader (cargo lambda's) takes no `=` in a bare value (`info,shared=debug`).
    echo "RUST_LOG=\"${FUNCTIONS_RUST_LOG:-info}\""
    echo "DELIVERIES_QUEUE_URL=$DELIVERIES_QUEUE_URL"
    echo "SLOW_DELIVERIES_QUEUE_URL=$SLOW_DELIVERIES_QUEUE_URL"
    echo "DEAD_LETTER_QUEUE_URL=$DEAD_LETTER_QUEUE_URL"
    echo "ORDERED_DELIVERIES_QUEUE_URL=$ORDERED_DELIVERIES_QUEUE_URL"
    echo "ORDERED_DEAD_LETTER_QUEUE_URL=$ORDERED_DEAD_LETTER_QUEUE_URL"
    echo "GROUPED_DELIVERIES_QUEUE_URL=$GROUPED_DELIVERIES_QUEUE_URL"
    echo "GROUPED_DEAD_LETTER_QUEUE_URL=$GROUPED_DEAD_LETTER_QUEUE_URL"
    echo "EMAILS_QUEUE_URL=$EMAILS_QUEUE_URL"
    if [ -n "${RETRY_SCHEDULE:-}" ]; then echo "RETRY_SCHEDULE=$RETRY_SCHEDULE"; fi
    if [ -n "${RETRY_AFTER_CAP:-}" ]; then echo "RETRY_AFTER_CAP=$RETRY_AFTER_CAP"; fi
    if [ -n "${CIRCUIT_BREAKER_AFTER:-}" ]; then echo "CIRCUIT_BREAKER_AFTER=$CIRCUIT_BREAKER_AFTER"; fi
    if [ -n "${CIRCUIT_PROBE_AFTER:-}" ]; then echo "CIRCUIT_PROBE_AFTER=$CIRCUIT_PROBE_AFTER"; fi
    if [ -n "${DELIVERY_TIMEOUT_MS:-}" ]; then echo "DELIVERY_TIMEOUT_MS=$DELIVERY_TIMEOUT_MS"; fi
    if [ -n "${EXTRA_CA_FILE:-}" ]; then echo "EXTRA_CA_FILE=$EXTRA_CA_FILE"; fi
    if [ -n "${ROTATION_GRACE_SECS:-}" ]; then echo "ROTATION_GRACE_SECS=$ROTATION_GRACE_SECS"; fi
    if [ -n "${AUTO_DISABLE_AFTER:-}" ]; then echo "AUTO_DISABLE_AFTER=$AUTO_DISABLE_AFTER"; fi
    echo "EMAIL_SENDER=$EMAIL_SENDER"
  } > "$STACK_DIR/functions.env"
  # Five invocations of a function at once: dispatch's five pollers (the deliveries queue's, the
  # grouped and ordered lanes', and the slow lane's two), which Lambda runs apart: a hanging
  # receiver's probe holds a slow-lane invocation, and the other lanes' go on beside it.
  start_bg watch bash -c "cd '$ROOT' && exec cargo lambda watch --invoke-address 127.0.0.1 \
      --invoke-port '$API_PORT' --ignore-changes --env-file '$STACK_DIR/functions.env' \
      --concurrency '$WATCH_CONCURRENCY'"
  wait_http "$WEBHOOKS_API_URL/" 120 watch

  # The first invocation of each function starts it; do that now, not in the user's first request.
  log "warming up the functions"
  curl -s -o /dev/null --max-time 180 "$WEBHOOKS_API_URL/basic/webhooks" || true
  curl -s -o /dev/null --max-time 180 -X POST "$WEBHOOKS_API_URL/basic/webhooks" || true
  curl -s -o /dev/null --max-time 180 "$WEBHOOKS_API_URL/basic/webhooks/1" || true
  curl -s -o /dev/null --max-time 180 -X PUT "$WEBHOOKS_API_URL/basic/webhooks/1" || true
  curl -s -o /dev/null --max-time 180 -X DELETE "$WEBHOOKS_API_URL/basic/webhooks/1" || true
  curl -s -o /dev/null --max-time 180 -X PATCH "$WEBHOOKS_API_URL/events" || true
  curl -s -o /dev/null --max-time 180 "$WEBHOOKS_API_URL/basic/webhooks/1/deliveries" || true
  curl -s -o /dev/null --max-time 180 -X POST "$WEBHOOKS_API_URL/basic/webhooks/1/enable" || true
  curl -s -o /dev/null --max-time 180 -X POST "$WEBHOOKS_API_URL/basic/webhooks/1/rotate-secret" || true
  curl -s -o /dev/null --max-time 180 -X POST "$WEBHOOKS_API_URL/basic/webhooks/1/redeliver" || true
  curl -s -o /dev/null --max-time 180 -X POST "$WEBHOOKS_API_URL/basic/webhooks/1/test" || true
  curl -s -o /dev/null --max-time 180 "$WEBHOOKS_API_URL/basic/notifications" || true
  curl -s -o /dev/null --max-time 180 -X PUT "$WEBHOOKS_API_URL/basic/notifications" || true
  curl -s -o /dev/null --max-time 180 "$WEBHOOKS_API_URL/portal/sign-in" || true
  curl -s -o /dev/null --max-time 180 -d '{"Records": []}' \
    "$WEBHOOKS_API_URL/2015-03-31/functions/dispatch/invocations" || true
  curl -s -o /dev/null --max-time 180 -d '{"Records": []}' \
    "$WEBHOOKS_API_URL/2015-03-31/functions/send-email/invocations" || true

  # The soak runs dispatch and its bridge itself, to kill and restart dispatch (STACK_NO_BRIDGE).
  if [ -z "${STACK_NO_BRIDGE:-}" ]; then
    log "starting the SQS-to-dispatch bridges: the deliveries queue, the grouped and slow lanes, the ordered queue"
    start_bg bridge "$ROOT/target/debug/devstack" bridge --queue-url "$DELIVERIES_QUEUE_URL" --watch-url "$WEBHOOKS_API_URL"
    start_bg slow-bridge "$ROOT/target/debug/devstack" bridge --queue-url "$SLOW_DELIVERIES_QUEUE_URL" \
      --watch-url "$WEBHOOKS_API_URL" --pollers 2
    start_bg ordered-bridge "$ROOT/target/debug/devstack" bridge --queue-url "$ORDERED_DELIVERIES_QUEUE_URL" \
      --watch-url "$WEBHOOKS_API_URL"
    start_bg grouped-bridge "$ROOT/target/debug/devstack" bridge --queue-url "$GROUPED_DELIVERIES_QUEUE_URL" \
      --watch-url "$WEBHOOKS_API_URL"
  fi
  log "starting the SQS-to-send-email bridge"
  start_bg email-bridge "$ROOT/target/debug/devstack" bridge --queue-url "$EMAILS_QUEUE_URL" \
    --watch-url "$WEBHOOKS_API_URL" --function send-email

  mkdir -p "$STACK_DIR"
  {
    echo "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
    echo "AWS_REGION=$AWS_REGION"
    echo "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID"
    echo "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
    echo "TABLE_NAME=$TABLE_NAME"
    echo "WEBHOOKS_API_URL=$WEBHOOKS_API_URL"
    echo "DELIVERIES_QUEUE_URL=$DELIVERIES_QUEUE_URL"
    echo "SLOW_DELIVERIES_QUEUE_URL=$SLOW_DELIVERIES_QUEUE_URL"
    echo "DEAD_LETTER_QUEUE_URL=$DEAD_LETTER_QUEUE_URL"
    echo "ORDERED_DELIVERIES_QUEUE_URL=$ORDERED_DELIVERIES_QUEUE_URL"
    echo "ORDERED_DEAD_LETTER_QUEUE_URL=$ORDERED_DEAD_LETTER_QUEUE_URL"
    echo "GROUPED_DELIVERIES_QUEUE_URL=$GROUPED_DELIVERIES_QUEUE_URL"
    echo "GROUPED_DEAD_LETTER_QUEUE_URL=$GROUPED_DEAD_LETTER_QUEUE_URL"
    echo "EMAILS_QUEUE_URL=$EMAILS_QUEUE_URL"
    echo "EMAILS_DEAD_LETTER_QUEUE_URL=$EMAILS_DEAD_LETTER_QUEUE_URL"
    echo "EMAIL_SENDER=$EMAIL_SENDER"
  } > "$STACK_DIR/env"
}

stop_stack() {
  local pid
  for pid in "${STACK_PIDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${STACK_PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.3; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  STACK_PIDS=()
  rm -f "$STACK_DIR/env"
}
