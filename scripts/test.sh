#!/usr/bin/env bash
# Sets up the environment on first use, then runs the whole test suite (unit and e2e).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not e2e"`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec "${DUMN_VENV:-$ROOT/.venv}/bin/python" -m pytest "$@"
