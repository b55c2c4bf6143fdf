#!/usr/bin/env bash
# Run every benchmark under bench/; each writes JSON (and plots) to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
shopt -s nullglob
scripts=()
for b in bench/*.py; do
  case "$(basename "$b")" in _*) ;; *) scripts+=("$b") ;; esac  # _*.py: shared helpers
done
[ ${#scripts[@]} -gt 0 ] || { echo "bench: no benchmarks yet"; exit 0; }
for b in "${scripts[@]}"; do
  echo "bench: $b"
  python "$b" --out bench/results
done
