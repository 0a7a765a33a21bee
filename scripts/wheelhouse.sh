#!/usr/bin/env bash
# Collects, on a machine with network access, every wheel an offline install of PruneLab needs:
# PruneLab's own wheel (built from this checkout) and all its pinned dependencies.
#
#   bash scripts/wheelhouse.sh DIR [pip download options...]
#
# Copy DIR to the offline machine and install from it alone:
#
#   python3.11 -m venv prunelab-env
#   prunelab-env/bin/pip install --no-index --find-links DIR prunelab
#
# The wheels are for the Python and platform this script runs with. For another target, pass
# pip's own options, e.g. `--python-version 3.11 --platform manylinux_2_28_x86_64`; for the
# CPU-only torch build, `--index-url https://download.pytorch.org/whl/cpu
# --extra-index-url https://pypi.org/simple`. PRUNELAB_EXTRAS=bert also collects the optional
# Hugging Face support; PRUNELAB_PYTHON picks the interpreter (default: .venv/bin/python if
# present, else python3).
set -euo pipefail
if [ $# -lt 1 ] || [ "${1:0:1}" = "-" ]; then
  echo "usage: bash scripts/wheelhouse.sh DIR [pip download options...]" >&2
  exit 2
fi
dir="$1"; shift
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "$dir" in /*) ;; *) dir="$OLDPWD/$dir" ;; esac

PY="${PRUNELAB_PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
mkdir -p "$dir"

# PruneLab itself: a pure-Python wheel carrying the demo model, data and recipes. Built from a
# temporary copy so the checkout gets no build/ or .egg-info folders.
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
cp -r engine gui resources recipes pyproject.toml setup.py README.md "$build/"
"$PY" -m pip wheel --disable-pip-version-check --no-deps -q -w "$dir" "$build"
wheel="$(ls -t "$dir"/prunelab-*.whl | head -n 1)"

# Every dependency, resolved from the wheel's pinned requirements, as wheels only (an sdist
# would need a compiler and a network on the offline machine).
target="$wheel"
[ -n "${PRUNELAB_EXTRAS:-}" ] && target="prunelab[${PRUNELAB_EXTRAS}] @ file://$wheel"
"$PY" -m pip download --disable-pip-version-check --only-binary=:all: -d "$dir" "$target" "$@"

count="$(ls "$dir"/*.whl | wc -l)"
echo "wrote $count wheels to $dir ($(du -sh "$dir" | cut -f1)); offline install:"
echo "  pip install --no-index --find-links $dir prunelab"
