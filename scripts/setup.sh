#!/usr/bin/env bash
# Creates .venv and installs PruneLab with its pinned dependencies. Skips the install when
# pyproject.toml has not changed since the last successful one, so repeat runs start at once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# torch 2.14.1 / torchvision 0.29.1 are pinned exactly: those builds are on the lab machines' disk
# for Python 3.11, and a looser pin would download a newer multi-GB build.
PY="${PRUNELAB_PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1; then PY="$candidate"; break; fi
  done
fi
[ -n "$PY" ] || { echo "PruneLab needs Python 3.10+ (python3 not found)" >&2; exit 1; }

# Qt needs a few system libraries even when it draws offscreen; install them where apt is usable.
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  missing=""
  for lib in libEGL.so.1 libGL.so.1 libxkbcommon.so.0 libfontconfig.so.1 libdbus-1.so.3; do
    ldconfig -p 2>/dev/null | grep -q "$lib" || missing="$missing $lib"
  done
  if [ -n "$missing" ]; then
    echo "Installing system libraries Qt needs:$missing" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libgl1 libxkbcommon0 \
      libfontconfig1 libdbus-1-3 fonts-dejavu-core >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $PY" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.prunelab-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installing PruneLab and its dependencies into .venv (first run: a few minutes)" >&2
  .venv/bin/python -m pip install --disable-pip-version-check -q -e ".[test,bert]"
  echo "$want" > "$stamp"
fi
