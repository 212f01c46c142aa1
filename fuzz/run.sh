#!/usr/bin/env bash
# Runs every fuzz target (or those named) with cargo-fuzz on the nightly toolchain.
#   FUZZ_SECONDS=N  stop each target after N seconds (default 60)
#   FUZZ_RUNS=N     stop each target after N executions instead (the 10M runs of fuzz/README.md);
#                   with FUZZ_SECONDS too, after whichever comes first
#   FUZZ_SANITIZER=none  build without AddressSanitizer (the default is cargo-fuzz's, address):
#                   about ten times the executions for targets that allocate on every input;
#                   the core has no unsafe code, so what such a run can find is a panic, a
#                   timeout or running out of memory, not a leak
# The committed corpus (fuzz/corpus/<target>) seeds each run read-only; what a run finds goes to
# target/fuzz-work/<target>. A crash stops the run, and its input is in fuzz/artifacts/<target>/:
# fix it, then copy the input into fuzz/corpus/<target>/ so it stays a regression test.
set -euo pipefail
cd "$(dirname "$0")"
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain here (rustup toolchain install nightly): skipped"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
sanitizer=()
[ -z "${FUZZ_SANITIZER:-}" ] || sanitizer=(-s "$FUZZ_SANITIZER")
cargo +nightly fuzz build -O "${sanitizer[@]}"
limit=(-max_total_time="${FUZZ_SECONDS:-60}")
if [ -n "${FUZZ_RUNS:-}" ]; then
  limit=(-runs="$FUZZ_RUNS" -max_total_time="${FUZZ_SECONDS:-0}")
fi
for target in "${targets[@]}"; do
  work=../target/fuzz-work/$target
  mkdir -p "$work" "corpus/$target"
  echo "fuzz: $target (${limit[*]})"
  cargo +nightly fuzz run -O "${sanitizer[@]}" "$target" "$work" "corpus/$target" -- \
    "${limit[@]}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 \
    | grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+[[:space:]]+DONE)|panicked|ERROR|SUMMARY|Test unit written' || true
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz: $target found a failing input: fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
