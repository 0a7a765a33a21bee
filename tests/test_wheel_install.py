"""The built wheel is self-contained: installed outside the checkout, ``prunelab --headless`` runs
the demo recipe from another folder with the demo model, data and recipe the wheel carries.

To avoid copying gigabytes of torch, the throw-away venv sees the test venv's site-packages
through a ``.pth`` line (a plain path: that folder's own ``.pth`` files, among them the editable
install of the checkout, are not run), and the wheel is installed with ``--no-deps --no-index``.
The checkout is never on the installed run's ``sys.path``: it is not the working folder, not in
PYTHONPATH, and the run reports where ``engine`` was imported from.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["engine", "gui", "resources", "recipes", "pyproject.toml", "setup.py", "README.md"]


def _run(cmd, cwd, env, timeout=180):
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv folder, environment) with the freshly built wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env["PIP_NO_CACHE_DIR"] = "1"
    # whatever the runs might keep per user (caches, settings) stays in the temporary folder
    home = tmp / "home"
    home.mkdir()
    env["HOME"] = str(home)
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        env[name] = str(home / name.lower())
    # build from a copy, so the checkout gets no build/ or .egg-info folders
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = ROOT / name
        (shutil.copytree(path, src / name, ignore=ignore) if path.is_dir()
         else shutil.copy2(path, src / name))
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", dist, src], cwd=tmp, env=env)
    wheels = list(dist.glob("prunelab-*.whl"))
    assert len(wheels) == 1, wheels

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp, env=env)
    python = venv / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   cwd=tmp, env=env).stdout.strip()
    Path(purelib, "_shared_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheels[0]],
         cwd=tmp, env=env)
    return venv, env, wheels[0]


def test_wheel_carries_the_demo_and_the_recipes(installed):
    _, _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("digits.npz", "lenet_digits.pt", "lenet_digits.json", "DATA.md",
                 "bilstm_text_demo.pt", "text_demo/train.csv"):
        assert f"engine/resources/{name}" in names, name
    recipes = {p.name for p in (ROOT / "recipes").glob("*.json")}
    assert {n.split("/")[-1] for n in names if n.startswith("engine/recipes/")} == recipes
    assert "gui/launcher.py" in names and "engine/cli.py" in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "prunelab = gui.launcher:main" in entry_points


def test_installed_prunelab_runs_the_demo_recipe_from_another_folder(installed, tmp_path):
    venv, env, _ = installed
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([venv / "bin" / "python", "-c",
                  "import json, sys, engine, engine.paths as p; "
                  "print(engine.__file__); print(p.INSTALLED); print(p.RECIPES); "
                  "print(json.dumps(sys.path))"],
                 cwd=work, env=env).stdout.splitlines()
    assert where[0].startswith(str(venv)), where
    assert where[1] == "True"
    assert where[2].startswith(str(venv))
    # the checkout's folder is not searched (its .venv, in a fresh clone, may well be)
    assert all(Path(entry or work).resolve() != ROOT.resolve() for entry in json.loads(where[3]))

    usage = _run([venv / "bin" / "prunelab", "--headless", "--help"], cwd=work, env=env).stdout
    assert usage.startswith("usage: prunelab --headless")

    result = _run([venv / "bin" / "prunelab", "--headless", "--epochs", "1", "--no-latency",
                   "--quiet"], cwd=work, env=env, timeout=600)
    assert "Non-zero parameters" in result.stdout and "Accuracy" in result.stdout
    # the bundled recipe's ../out/ export lands below the working folder, not in site-packages
    exported = work / "out" / "lenet_seed001_pruned.pt"
    assert exported.is_file(), result.stdout + result.stderr
    assert f"wrote {exported}" in result.stdout
    assert not list(venv.rglob("out/lenet_seed001_pruned.pt"))
