#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the offline test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python -m pytest "$@"
