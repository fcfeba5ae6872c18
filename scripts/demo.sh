#!/usr/bin/env bash
# One command: set up, then train the digits CNN live and project every epoch with SentryCam.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m sentrycam_widget demo --out runs/digits "$@"
