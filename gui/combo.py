"""Combo boxes that do not set the window's width: the closed box is sized for a few characters
(longer items elide and keep a tooltip) and its drop-down list is as wide as its longest item."""
from __future__ import annotations

from PySide6.QtWidgets import QComboBox

# Characters a closed combo box is sized for: long labels ("Second-order OBD (Hessian diagonal)",
# BERT parameter names) would otherwise set a panel's, and so the window's, minimum width.
COMBO_CHARS = 16


def compact(combo: QComboBox, chars: int = COMBO_CHARS) -> None:
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    fit_popup(combo)


def fit_popup(combo: QComboBox) -> None:
    """Widens the drop-down list to show every item whole; call again after the items change."""
    combo.view().setMinimumWidth(combo.view().sizeHintForColumn(0) + 24)
