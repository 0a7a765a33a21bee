"""Help > About PruneLab: version and licence (from the installed package's metadata, else from
the checkout's pyproject.toml) and where the documentation is."""
from __future__ import annotations

import html
import importlib.metadata
import tomllib
from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

ROOT = Path(__file__).resolve().parent.parent
DOCS_URL = "README.md and docs/ in the PruneLab folder"


def package_facts() -> tuple[str, str]:
    """(version, licence): the checkout's pyproject.toml when PruneLab runs from one (it is what
    runs), else the installed distribution's metadata."""
    pyproject = ROOT / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        licence = project.get("license", "")
        if isinstance(licence, dict):
            licence = licence.get("text") or licence.get("file", "")
        return str(project.get("version", "unknown")), str(licence or "unknown")
    try:
        meta = importlib.metadata.metadata("prunelab")
    except importlib.metadata.PackageNotFoundError:
        return "unknown", "unknown"
    return meta.get("Version", "unknown"), (meta.get("License-Expression") or meta.get("License")
                                            or "unknown")


def docs_location() -> str:
    readme = ROOT / "README.md"
    return str(readme) if readme.is_file() else DOCS_URL


def about_html() -> str:
    version, licence = package_facts()
    docs = html.escape(docs_location())
    return (f"<h3>PruneLab {html.escape(version)}</h3>"
            f"<p>A desktop workbench for pruning PyTorch models and seeing what pruning does.</p>"
            f"<p>Licence: {html.escape(licence)}<br>"
            f"Documentation: {docs} (features, recipes, the headless command line); "
            f"pruning methods in docs/methods.md.</p>"
            f"<p>Keyboard shortcuts: Help &gt; Keyboard shortcuts (F1).</p>")


def show_about(parent: Optional[QWidget]) -> QMessageBox:
    """Non-blocking, like the window's error dialogs."""
    box = QMessageBox(QMessageBox.Icon.Information, "About PruneLab", about_html(),
                      QMessageBox.StandardButton.Ok, parent)
    box.setTextFormat(Qt.TextFormat.RichText)
    box.open()
    return box
