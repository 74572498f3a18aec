#!/usr/bin/env bash
# Sets up the environment on first use, then runs the whole test suite (unit and e2e).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not e2e"`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
# The run report's browser tests need Chromium: Debian's package, installed once where
# apt-get can run as root; elsewhere those tests are skipped and say why.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
  echo "[test] installing Debian's chromium for the report's browser tests" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
    >/dev/null 2>&1 || echo "[test] chromium could not be installed: browser tests skip" >&2
fi
cd "$ROOT"
exec "${DUMN_VENV:-$ROOT/.venv}/bin/python" -m pytest "$@"
