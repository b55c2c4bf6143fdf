#!/usr/bin/env bash
# ruff check + format check over the whole tree (config in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ruff >/dev/null; then
  echo "lint: ruff not found (distribution path: pip install --user ruff); skipping lint" >&2
  exit 0
fi
ruff check --quiet . || { echo "lint: ruff check failed (try 'make format')" >&2; exit 1; }
ruff format --check --quiet . || { echo "lint: files need formatting: run 'make format'" >&2; exit 1; }
echo "lint: ruff check and format OK"
