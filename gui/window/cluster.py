"""Fine-tuning elsewhere: *File → Export cluster job…* packs the pruned model, the recipe and a
torchrun script into a folder (engine.cluster_job); *File → Open results…* brings the checkpoint the
job fine-tuned back as a new run in the Compare tab."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QLabel,
                               QLineEdit, QVBoxLayout)

from engine.cluster_job import RESULT_MODEL, RESULTS, ClusterSettings
from gui import tooltips
from gui.dialogs import _button_box, _PathRow, _spin_box


class ClusterJobDialog(QDialog):
    """The job folder and the torchrun fields that run.sh starts with."""

    def __init__(self, parent=None, folder: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Export cluster job")
        self.folder = _PathRow("Job folder", None, folder=True)
        self.folder.edit.setText(folder)
        self.folder.setToolTip("A new or empty folder: the model, recipe.json and run.sh go here")
        self.nodes = _spin_box(1, 4096, 1, "Machines in the job (torchrun --nnodes)")
        self.procs = _spin_box(1, 64, 2, "Processes per machine, one per GPU "
                               "(torchrun --nproc_per_node)")
        self.endpoint = QLineEdit("HOST:29400")
        self.endpoint.setToolTip("host:port of the rendezvous, on the first machine "
                                 "(torchrun --rdzv_endpoint)")
        form = QFormLayout()
        form.addRow("Folder:", self.folder)
        form.addRow("Nodes:", self.nodes)
        form.addRow("Processes per node:", self.procs)
        form.addRow("Rendezvous endpoint:", self.endpoint)
        note = QLabel("run.sh starts with these values, to be edited there too. The recipe's "
                      "fine-tuning batch size is the global batch, split over every process. "
                      f"The job writes {RESULTS}/{RESULT_MODEL}: open it with File → Open "
                      "results… to compare it.")
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(_button_box(self, QDialogButtonBox.StandardButton.Save))
        tooltips.install(self)

    def settings(self) -> ClusterSettings:
        return ClusterSettings(nodes=self.nodes.value(), procs_per_node=self.procs.value(),
                               endpoint=self.endpoint.text().strip())


class WindowCluster:
    """A mixin of :class:`gui.main_window.MainWindow`: it uses the widgets and state that the
    window builds."""

    def _build_cluster_actions(self) -> None:
        a = self._action
        self.cluster_job_action = a("Export &cluster job…", self.export_cluster_job_dialog, None,
                                    "Write a folder that fine-tunes the pruned model with torchrun "
                                    "on other machines: model, recipe and run.sh")
        self.open_results_action = a("Open res&ults…", self.open_results_dialog, None,
                                     "Bring a checkpoint fine-tuned by a cluster job back as a new "
                                     "run in the Compare tab")
        file_menu = {m.text(): m.menu() for m in self.menuBar().actions()}["&File"]
        file_menu.insertActions(self.quit_action, [self.cluster_job_action,
                                                   self.open_results_action])
        # available exactly when Export is (a model open, nothing running)
        for action in (self.cluster_job_action, self.open_results_action):
            action.setEnabled(self.export_action.isEnabled())
            self.export_action.changed.connect(
                lambda action=action: action.setEnabled(self.export_action.isEnabled()))

        self.operation_finished.connect(self._after_cluster_op)

    def _after_cluster_op(self, op: str) -> None:
        if op == "cluster_job" and self.last_export:
            folder = self.last_export[0].parent
            self.status_label.setText(f"Cluster job written to {folder}: fill in and start its "
                                      f"run.sh on each node")
        elif op == "open_results":
            self.status_label.setText("Results opened: a new run in Compare")
            self.tabs.setCurrentWidget(self.compare)

    def export_cluster_job_dialog(self) -> None:
        dialog = ClusterJobDialog(self, str(Path(self._last_dir()) / "cluster_job"))
        if dialog.exec():
            self.export_cluster_job(dialog.folder.text(), dialog.settings())

    def export_cluster_job(self, folder: str, settings: ClusterSettings) -> bool:
        if not folder:
            self.show_error("Cannot export the cluster job", "choose a folder")
            return False
        try:
            settings.validate()
        except ValueError as exc:
            self.show_error("Cannot export the cluster job", str(exc))
            return False
        recipe = self._checked_recipe()
        if recipe is None:
            return False
        return self.submit("cluster_job", folder=folder, settings=settings, recipe=recipe)

    def open_results_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open fine-tuned results", self._last_dir(),
                                              "Checkpoints (*.pt *.pth *.safetensors)")
        if path:
            self.open_results(path)

    def open_results(self, path: str) -> bool:
        return self.submit("open_results", path=path)
