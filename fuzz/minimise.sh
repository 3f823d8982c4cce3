#!/usr/bin/env bash
# Shrinks fuzz/corpus/<target>/ (every target, or those named) to the smallest inputs that
# keep its edge coverage: a libFuzzer merge without counters, comparisons or value profiles,
# which keeps a few hundred inputs where `cargo fuzz cmin` keeps thousands. Run after a long
# run, before committing the corpus.
set -euo pipefail
cd "$(dirname "$0")"
cargo fuzz build -s none -a >/dev/null
bin=target/x86_64-unknown-linux-gnu/release
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(ls corpus))
for t in "${targets[@]}"; do
  out=$(mktemp -d)
  "$bin/$t" -merge=1 -use_cmp=0 -use_counters=0 -use_value_profile=0 -timeout=30 \
    "$out" "corpus/$t" >"logs/minimise-$t.log" 2>&1
  rm -rf "corpus/$t" && mv "$out" "corpus/$t" && chmod 755 "corpus/$t"
  echo "$t: $(ls "corpus/$t" | wc -l) inputs, $(du -sb "corpus/$t" | cut -f1) bytes"
done
