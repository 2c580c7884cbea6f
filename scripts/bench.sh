#!/usr/bin/env bash
# Runs every benchmark in bench/ (labelloop and its anchor library in one run each).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pip install -q -e ".[bench]"
mkdir -p bench/results
for script in bench/*.py; do
  case "$(basename "$script")" in _*) continue ;; esac
  echo "== $script"
  .venv/bin/python "$script"
done
