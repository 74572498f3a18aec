#!/usr/bin/env bash
# Creates DeepCTR's own virtual environment for the training-throughput comparison of
# issue 3 (benchmarks/deepctr/din_benchmark.py). DeepCTR is not a dependency of the project
# and never enters the project's .venv.
#
#   bash benchmarks/deepctr/setup_env.sh            # -> benchmarks/deepctr/.venv (gitignored)
#   DEEPCTR_VENV=/tmp/deepctr-venv bash benchmarks/deepctr/setup_env.sh
#   DEEPCTR_TF=2.15 bash benchmarks/deepctr/setup_env.sh   # TF 2.15.1 with its built-in Keras 2
#
# Combinations verified with deepctr==0.9.4 on Python 3.10.13:
#   DEEPCTR_TF=2.16 (default): tensorflow==2.16.2 + tf-keras==2.16.0, run with
#       TF_USE_LEGACY_KERAS=1 (din_benchmark.py sets it). The same TensorFlow build as the
#       project's .venv, so the comparison is of the models, not of two TF releases.
#   DEEPCTR_TF=2.15: tensorflow==2.15.1 (Keras 2.15 built in; TF_USE_LEGACY_KERAS must NOT be
#       set, there is no tf-keras).
# DeepCTR 0.9.x does not work with Keras 3 (plain TF >= 2.16 without tf-keras).
# Idempotent: does nothing when the venv already holds this set. Prints the venv's python.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${DEEPCTR_VENV:-$HERE/.venv}"
TF_SERIES="${DEEPCTR_TF:-2.16}"

case "$TF_SERIES" in
  2.16) PKGS=(deepctr==0.9.4 tensorflow==2.16.2 tf-keras==2.16.0 numpy==1.26.4) ;;
  2.15) PKGS=(deepctr==0.9.4 tensorflow==2.15.1 numpy==1.26.4) ;;
  *) echo "error: DEEPCTR_TF must be 2.16 or 2.15, not '$TF_SERIES'" >&2; exit 2 ;;
esac
want="$(printf '%s\n' "${PKGS[@]}" | sha256sum | cut -d' ' -f1)"
STAMP="$VENV/.deepctr-env.sha256"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "$VENV/bin/python"; exit 0
fi

find_python() {  # 3.10 first (the project's), then 3.11 / 3.9 (TF 2.15-2.16 wheels exist)
  local v candidate pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  if command -v pyenv >/dev/null 2>&1; then pyenv_root="$(pyenv root)"; fi
  for v in 3.10 3.11 3.9; do
    for candidate in "${DEEPCTR_PYTHON:-}" "python$v"; do
      if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 \
          && "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$v'.split('.'))))" 2>/dev/null; then
        command -v "$candidate"; return 0
      fi
    done
    for candidate in $(ls -d "$pyenv_root"/versions/$v* 2>/dev/null | sort -V -r); do
      if [ -x "$candidate/bin/python$v" ]; then echo "$candidate/bin/python$v"; return 0; fi
    done
  done
  return 1
}

PY="$(find_python)" || {
  cat >&2 <<'MSG'
error: DeepCTR's benchmark venv needs Python 3.10 (or 3.9 / 3.11), none was found.
Install one (e.g. `pyenv install 3.10` or `apt-get install python3.10 python3.10-venv`)
or point DEEPCTR_PYTHON at an interpreter.
MSG
  exit 1
}

echo "[deepctr-env] creating $VENV with $PY ($("$PY" --version 2>&1)): ${PKGS[*]}" >&2
rm -rf "$VENV"
"$PY" -m venv "$VENV"
UV=""
if [ -x "$ROOT/.venv/bin/uv" ]; then UV="$ROOT/.venv/bin/uv"; elif command -v uv >/dev/null 2>&1; then UV="$(command -v uv)"; fi
if [ -n "$UV" ]; then
  "$UV" pip install --quiet --python "$VENV/bin/python" "${PKGS[@]}"
else
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PKGS[@]}"
fi
"$VENV/bin/python" - <<'PY'
import os
from importlib.metadata import version
if version("tensorflow").startswith("2.16"):
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
from deepctr.models import DIN  # noqa: F401
keras_mod = tf.keras.Model.__module__
assert keras_mod.startswith("tf_keras") or tf.__version__.startswith("2.15"), keras_mod
print("[deepctr-env] ok: deepctr %s, tensorflow %s, keras module %s"
      % (version("deepctr"), tf.__version__, keras_mod.split(".")[0]))
PY
echo "$want" > "$STAMP"
echo "$VENV/bin/python"
