#!/usr/bin/env bash
# Runs schemathesis against the running stack ($WEBHOOKS_API_URL) with openapi.yaml: no 5xx, no
# status, header, content type or body outside the description, schema-violating requests refused,
# authentication never ignored. A vendor and a token of its own; a fixed seed, so that a failure
# reproduces (SCHEMATHESIS_SEED, SCHEMATHESIS_EXAMPLES change them).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
admin="${CARGO_TARGET_DIR:-$ROOT/target}/debug/webhooks-admin"
# The workspace's build, as the stack made it: `-p webhooks-admin` alone would unify other features
# and build tokio, hyper, the SDK and `shared` once more (four minutes on 2 cores).
cargo build -q --workspace --bins
user="schemathesis-$RANDOM$RANDOM"
password="st-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
vendor=$(printf '%s\n' "$password" | "$admin" vendor create --username "$user" --password-stdin |
  python -c 'import json, sys; print(json.load(sys.stdin)["vendorId"])')
token=$("$admin" token create --vendor "$vendor" --label schemathesis |
  python -c 'import json, sys; print(json.load(sys.stdin)["token"])')
if [ -n "${SECRETS_FILE:-}" ]; then printf '%s\n' "$password" "$token" >> "$SECRETS_FILE"; fi
SCHEMATHESIS_HOOKS=scripts.schemathesis_hooks exec schemathesis run openapi.yaml \
  --url "$WEBHOOKS_API_URL" \
  -H "Username: $user" -H "Password: $password" -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,ignored_auth,use_after_free \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" --seed "${SCHEMATHESIS_SEED:-20261124}" \
  --warnings off --no-color
