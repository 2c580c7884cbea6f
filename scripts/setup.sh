#!/usr/bin/env bash
# Sets up everything labelloop needs on a fresh Debian machine. Idempotent: every
# step is skipped when its stamp is newer than its inputs, so a second call is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STAMPS="$ROOT/.setup"
mkdir -p "$STAMPS"
PY=${PYTHON:-python3}

apt_packages=(chromium chromium-driver fortunes fortunes-min postgresql apertium-eng-spa apertium-eng-cat wordnet)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The project venv: torch first, pinned to the CPU wheel (a plain `torch` pulls GBs of CUDA).
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f "$STAMPS/venv" ] || [ pyproject.toml -nt "$STAMPS/venv" ]; then
  echo "setup: installing labelloop into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q torch==2.13.0
  .venv/bin/pip install -q -e ".[dev,dask]"
  touch "$STAMPS/venv"
fi

# Label Studio pins packages that break Prefect: it lives in its own venv.
if [ ! -x .venv-ls/bin/label-studio ] || [ ! -f "$STAMPS/venv-ls" ]; then
  echo "setup: installing Label Studio into .venv-ls"
  "$PY" -m venv .venv-ls
  .venv-ls/bin/pip install -q --upgrade pip
  .venv-ls/bin/pip install -q "label-studio==1.23.2"
  touch "$STAMPS/venv-ls"
fi
echo "setup: ready"
