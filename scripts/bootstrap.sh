#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv from requirements.lock.
# Idempotent: does nothing when .venv already matches the lock file. Sourced by main.sh and test.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DUMN_VENV:-$ROOT/.venv}"
LOCK="$ROOT/requirements.lock"
STAMP="$VENV/.dumn-lock.sha256"

find_python310() {
  local candidate
  for candidate in "${DUMN_PYTHON:-}" python3.10; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  if command -v pyenv >/dev/null 2>&1; then pyenv_root="$(pyenv root)"; fi
  for candidate in $(ls -d "$pyenv_root"/versions/3.10* 2>/dev/null | sort -V -r); do
    if [ -x "$candidate/bin/python3.10" ]; then echo "$candidate/bin/python3.10"; return 0; fi
  done
  return 1
}

want="$(sha256sum "$LOCK" "$ROOT/setup.py" "$ROOT/scripts/bootstrap.sh" | sha256sum | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

PY="$(find_python310)" || {
  cat >&2 <<'MSG'
error: Python 3.10 is required (TFX 1.16 supports 3.9-3.10) and was not found.
Install it, then re-run this command. Any of these works:
  pyenv install 3.10            # if you use pyenv
  apt-get install python3.10 python3.10-venv
Or point DUMN_PYTHON at a Python 3.10 interpreter.
MSG
  exit 1
}

echo "[bootstrap] creating $VENV with $PY ($("$PY" --version 2>&1))" >&2
rm -rf "$VENV"
# A venv made by `python -m venv` carries pip, which TFX needs to package a module_file.
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv==0.13.9
echo "[bootstrap] installing the locked stack (tfx 1.16, tensorflow 2.16, beam 2.60); first time only" >&2
# Byte-compiled at install time: where PYTHONDONTWRITEBYTECODE is set (as on our CI
# machines), every process would otherwise compile TensorFlow and TFX from source (~17 s).
"$VENV/bin/uv" pip sync --quiet --compile-bytecode --python "$VENV/bin/python" "$LOCK"
"$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" --no-deps -e "$ROOT"
echo "$want" > "$STAMP"
echo "[bootstrap] environment ready" >&2
