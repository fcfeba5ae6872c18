#!/usr/bin/env bash
# One command: set up (with test tools), then lint and run the whole test suite (Python + JS).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
(cd js && npm test)
exec .venv/bin/python -m pytest "$@"
