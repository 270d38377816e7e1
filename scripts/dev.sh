#!/usr/bin/env bash
# `make dev`: the whole stack in the foreground until Ctrl-C.
set -euo pipefail
source "$(dirname "$0")/stack.sh"
trap 'stop_stack; log "stopped"' EXIT
trap 'exit 130' INT TERM
ensure_venv
start_stack
cat <<MSG

  API           $WEBHOOKS_API_URL/basic/webhooks (eComNow), $WEBHOOKS_API_URL/api/webhooks/list (Ventiapp)
  portal        $WEBHOOKS_API_URL/portal/ (sign in as the demo vendor, or with its token)
  demo vendor   Username: $DEMO_USERNAME   Password: $DEMO_PASSWORD
                Authorization: Bearer vwt_local-demo-token-do-not-use-in-production
  AWS emulator  $AWS_ENDPOINT_URL (table $TABLE_NAME)
  logs          $STACK_DIR/*.log

  curl -s -H 'Username: $DEMO_USERNAME' -H 'Password: $DEMO_PASSWORD' $WEBHOOKS_API_URL/basic/webhooks
  curl -s -H 'Authorization: Bearer vwt_local-demo-token-do-not-use-in-production' $WEBHOOKS_API_URL/api/webhooks/list

  Ctrl-C stops everything.
MSG
tail -n +1 -f "$STACK_DIR/watch.log" &
STACK_PIDS+=("$!")
wait
