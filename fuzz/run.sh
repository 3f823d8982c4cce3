#!/usr/bin/env bash
# The long run: every target (or those named) for SECONDS each (default 600), JOBS at a time
# (default 2), on the stable toolchain (libFuzzer through cargo-fuzz, no sanitizer, debug
# assertions and overflow checks on). Each grows fuzz/corpus/<target>/ from it and the seeds;
# crashes land in fuzz/artifacts/<target>/, logs in fuzz/logs/<target>.log. Targets with a
# known crash in fuzz/crashes/<target>/ run in fork mode, going on past crashes. The JSON
# targets get json.dict, the config toml.dict.
#
#   cargo install cargo-fuzz --locked
#   SECONDS_EACH=600 JOBS=2 fuzz/run.sh [target...]
set -euo pipefail
cd "$(dirname "$0")"
cargo fuzz build -s none -a >/dev/null
bin=target/x86_64-unknown-linux-gnu/release
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v popsel-fuzz))
mkdir -p logs
run() {
  local t=$1 extra=()
  mkdir -p "corpus/$t" "artifacts/$t"
  if [ -n "$(ls -A "crashes/$t" 2>/dev/null)" ]; then extra=(-fork=1 -ignore_crashes=1); fi
  case $t in
    config) extra+=(-dict=toml.dict) ;;
    retry_after) ;;
    *) extra+=(-dict=json.dict) ;;
  esac
  "$bin/$t" "corpus/$t" "seeds/$t" -max_total_time="${SECONDS_EACH:-600}" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" "${extra[@]}" >"logs/$t.log" 2>&1 || true
  echo "$t: $(grep -E 'stat::number_of_executed_units|exec/s' "logs/$t.log" | tail -2 | tr '\n' ' ')"
}
export -f run; export bin
printf '%s\n' "${targets[@]}" | xargs -P "${JOBS:-2}" -I{} bash -c 'run {}'
