#!/usr/bin/env bash
# One command: set up (with test tools), then lint and run the whole test suite (Python + JS).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # the committed bundle must be what js/ builds (setup.sh just rebuilt it)
    git diff --exit-code --stat -- sentrycam_widget/static
fi
(cd js && npm test)
exec .venv/bin/python -m pytest "$@"
