#!/usr/bin/env bash
# The main job. Sets up the environment on first use, then simulates the built-in dataset
# (unless it is already there) and prints its report.
# Environment: DUMN_DATA (default output/data/simulated).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
VENV="${DUMN_VENV:-$ROOT/.venv}"
DATA="${DUMN_DATA:-$ROOT/output/data/simulated}"
if [ -f "$DATA/simulation.json" ]; then
  echo "[main] using the simulated dataset already in $DATA" >&2
  exec "$VENV/bin/dumn-simulate" --show-report "$DATA"
fi
exec "$VENV/bin/dumn-simulate" --out "$DATA" --report "$@"
