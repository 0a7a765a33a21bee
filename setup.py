"""Packaging details pyproject.toml cannot express: the checkout keeps the demo's data and the
ready-made recipes in top-level ``resources/`` and ``recipes/``, and the wheel carries them as
``engine/resources`` and ``engine/recipes`` so an installed PruneLab runs the demo from any folder
(``engine/paths.py`` finds them in either place). Everything else is in pyproject.toml."""
from setuptools import find_packages, setup

BUNDLED = {"engine.resources": "resources", "engine.recipes": "recipes"}

setup(
    packages=find_packages(include=["engine", "engine.*", "gui", "gui.*"]) + list(BUNDLED),
    package_dir=BUNDLED,
    package_data={"engine.resources": ["*.npz", "*.pt", "*.json", "*.md", "text_demo/*"],
                  "engine.recipes": ["*.json"]},
)
