#!/usr/bin/env bash
# `make deploy-check`: what `sam build` makes of the template, from a clean copy of the
# committed tree, as a first deploy would build it (arm64, release, one bootstrap per
# function), with how long it took. Too long to run inside `make test` beside the rest on 2
# cores: `make test` checks the template with cfn-lint and `sam validate --lint` instead.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/stack.sh"
ensure_venv || exit 1
export PATH="$ROOT/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || true
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git -C "$ROOT" archive HEAD | tar -x -C "$work"
cd "$work" || exit 1
started=$(date +%s)
if ! sam build --template template.yaml; then
  log "sam build failed"
  exit 1
fi
elapsed=$(( $(date +%s) - started ))
log "sam build: $(( elapsed / 60 )) min $(( elapsed % 60 )) s on $(nproc) cores"
# Every function of the template has its bootstrap, an arm64 executable.
status=0
for dir in .aws-sam/build/*Function; do
  if ! file "$dir/bootstrap" | grep -q 'ARM aarch64'; then
    log "$dir: no arm64 bootstrap"; status=1
  else
    printf '%-40s %8d bytes\n' "$(basename "$dir")" "$(stat -c %s "$dir/bootstrap")"
  fi
done
exit $status
