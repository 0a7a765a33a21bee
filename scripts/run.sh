#!/usr/bin/env bash
# Starts PruneLab on the built-in demo (sets itself up first). Extra arguments go to main.py,
# e.g. `bash scripts/run.sh --headless recipes/lenet_seed001.json`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/python main.py "$@"
