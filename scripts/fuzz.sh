#!/usr/bin/env bash
# Fuzzes request parsing and payload validation: every target of fuzz/ (or those named) for
# FUZZ_SECONDS each (60), with libFuzzer through cargo-fuzz on nightly Rust, starting from
# fuzz/seeds/. A finding is copied to fuzz/regressions/<target>/, which `cargo test` replays on
# stable from then on; the script then fails, naming it.
#   scripts/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh target_url
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT/fuzz"
seconds="${FUZZ_SECONDS:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (crates.io)" >&2
  cargo install cargo-fuzz --locked || exit 1
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "cargo fuzz needs a nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then mapfile -t targets < <(cargo +nightly fuzz list); fi
found=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t, ${seconds}s" >&2
  if ! cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 2> "artifacts/$t.log"; then
    tail -n 30 "artifacts/$t.log" >&2
    mkdir -p "regressions/$t"
    for f in artifacts/"$t"/*; do
      [ -f "$f" ] && cp "$f" "regressions/$t/" && echo "finding kept as fuzz/regressions/$t/$(basename "$f")" >&2
    done
    found=1
  else
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "artifacts/$t.log" | sed "s/^/  $t /" >&2
  fi
done
exit "$found"
