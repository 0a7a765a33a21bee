"""Unsaved work of the main window: a pruned or fine-tuned model that was not exported since is
never discarded (Revert, Quit, closing the window, opening another model or data) without asking."""
from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QMessageBox, QWidget

# operations after which the model holds work that Revert or a new session would discard
CHANGING_OPS = {"prune", "finetune", "back", "restore_run"}
# operations after which nothing is left to lose: a fresh model, the original again, or saved
CLEARING_OPS = {"open", "adopt", "revert", "export", "open_project", "save_project"}


def ask_question(parent: QWidget, title: str, text: str, confirm: str) -> bool:
    """A modal question whose default button is Cancel; ``confirm`` names the destructive one."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Cancel,
                      parent)
    button = box.addButton(confirm, QMessageBox.ButtonRole.DestructiveRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is button


class WindowGuard:
    """Tracks whether the model holds work that is not exported, and asks before losing it.
    ``ask`` is the question (replaceable: tests answer it without a modal dialog).
    A mixin of :class:`gui.main_window.MainWindow`."""

    ask: Callable[[QWidget, str, str, str], bool] = staticmethod(ask_question)
    unsaved_work: str = ""   # what would be lost ("pruned", "fine-tuned"); empty: nothing

    def _track_work(self, op: str) -> None:
        """Called as an operation ends (finished, or a Stop that may keep fine-tuned epochs)."""
        if op in CHANGING_OPS:
            self.unsaved_work = "fine-tuned" if op == "finetune" or self.unsaved_work == \
                "fine-tuned" else "pruned"
        elif op in CLEARING_OPS:
            self.unsaved_work = ""

    def may_discard_work(self, action: str, confirm: str) -> bool:
        """True when nothing would be lost or the user agrees to ``action`` losing it."""
        if not self.unsaved_work:
            return True
        return self.ask(self, f"{confirm} and lose the {self.unsaved_work} model?",
                        f"The {self.unsaved_work} model has not been exported. {action} discards "
                        f"it.\n\nExport it first (File > Export…) to keep it.", confirm)
