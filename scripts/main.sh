#!/usr/bin/env bash
# The main job. Sets up the environment on first use, then runs the whole pipeline locally:
# simulates the built-in dataset (first time only) unless --data is given, then
# ExampleGen -> validation -> Transform -> Trainer (DUMN) -> Evaluator -> Pusher, and prints
# the eval AUC next to the oracle AUC, the blessing and the push path.
# Arguments go to `dumn-pipeline` (see `bash scripts/main.sh --help`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
exec "${DUMN_VENV:-$ROOT/.venv}/bin/dumn-pipeline" "$@"
