"""Locations inside the PruneLab checkout."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "resources"
RECIPES = ROOT / "recipes"
