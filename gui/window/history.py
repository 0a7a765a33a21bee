"""History of the main window: Back, restoring a stored run, project files, export verification."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QFileDialog

from engine.bundle import SUFFIX as PROJECT_SUFFIX


def default_store_dir(settings) -> str:
    """Where the run history lives: the settings' ``run_store`` if set, else the per-user data
    folder (``~/.local/share/PruneLab/PruneLab/runs`` on Linux)."""
    chosen = settings.value("run_store", "")
    if chosen:
        return str(chosen)
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return str(Path(base) / "runs") if base else ""


class WindowHistory:
    """Back, Restore, Save/Open project, and what the window shows of a verification.
    A mixin of :class:`gui.main_window.MainWindow`: it uses the widgets and state that
    the window builds."""

    def _connect_history(self) -> None:
        self.worker.store_dir = default_store_dir(self.settings)
        self.answers.connect(self.worker.runs, self.runs_view.set_runs)
        self.answers.connect(self.worker.steps_changed, self.runs_view.set_steps)
        self.answers.connect(self.worker.verified, self._on_verified)
        self.answers.connect(self.worker.project_saved, lambda path: self.status_label.setText(
            f"Saved project {Path(path).name}"))
        self.runs_view.restore_requested.connect(self.restore_run)
        self.runs_view.back_requested.connect(self.back)

    def back(self) -> bool:
        """The model before the last operation (the runs stay in the history)."""
        if not self.runs_view.back_button.isEnabled():
            self.status_label.setText("Nothing to go back from: this is the original model")
            return False
        return self.submit("back", label="back", recipe=self._checked_recipe())

    def restore_run(self, run_id: int) -> bool:
        return self.submit("restore_run", run_id=run_id, recipe=self._checked_recipe())

    def save_project_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save project", str(Path(self._last_dir()) / f"project{PROJECT_SUFFIX}"),
            f"PruneLab projects (*{PROJECT_SUFFIX})")
        if path:
            self.save_project(path if path.endswith(PROJECT_SUFFIX) else path + PROJECT_SUFFIX)

    def save_project(self, path: str) -> bool:
        recipe = self._checked_recipe()
        if recipe is None:
            return False
        return self.submit("save_project", path=path, recipe=recipe)

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open project", self._last_dir(),
                                              f"PruneLab projects (*{PROJECT_SUFFIX})")
        if path:
            self.open_project(path)

    def open_project(self, path: str) -> bool:
        self._remember("project", path)
        return self.submit("open_project", path=path)

    def _on_verified(self, report) -> None:
        lines = report.lines()
        self.log_view.append("Export verified in fresh processes:\n" + "\n".join(lines))
        if report.ok:
            worst = max((c.max_abs_diff for c in report.checks if c.max_abs_diff is not None),
                        default=None)
            self.status_label.setText(f"{self.status_label.text()} · verified"
                                      + (f": max |diff| {worst:.1e}" if worst is not None else ""))
        else:
            self.show_error("The export does not verify", " ".join(
                f"{c.kind}: {c.error}" for c in report.checks if c.error)[:300])
        self.compare.set_verification(lines, report.ok)
