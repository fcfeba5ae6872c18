#!/usr/bin/env bash
# Sets up everything sentrycam_widget needs in ./.venv (idempotent; safe to re-run).
#   bash scripts/setup.sh          # runtime: package + dependencies + warm numba cache
#   bash scripts/setup.sh --test   # also test tools, Debian chromium and the JS toolchain
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1
PY=${PYTHON:-python3}

step() { printf '\n==> %s\n' "$*"; }

if [[ ! -x .venv/bin/python ]]; then
    step "creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip

# torch first, pinned to the CPU build available on this machine's disk, so that the resolver
# keeps it instead of pulling a multi-GB CUDA build for the package's torch range.
if ! "$VPY" -c "import torch" 2>/dev/null; then
    step "installing torch (CPU build)"
    "$VPY" -m pip install -q "torch==2.13.0"
fi

if [[ $want_test == 1 ]]; then
    step "installing sentrycam_widget with test extras"
    "$VPY" -m pip install -q -e ".[test]"
else
    step "installing sentrycam_widget"
    "$VPY" -m pip install -q -e .
fi

if [[ $want_test == 1 ]]; then
    if [[ ! -x /usr/bin/chromium ]]; then
        step "installing Debian chromium for the browser tests"
        if [[ $(id -u) == 0 ]]; then
            apt-get update -qq && apt-get install -y -qq chromium >/dev/null
        else
            echo "Debian chromium is missing: run 'sudo apt-get install -y chromium' once." >&2
            exit 1
        fi
    fi
    step "building the widget JavaScript from js/ (esbuild) into sentrycam_widget/static"
    (cd js && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
fi

step "warming numba's on-disk cache (umap-learn / pynndescent compile once)"
"$VPY" -m sentrycam_widget warmup
