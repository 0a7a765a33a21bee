"""Opening a model and its data as a pair.

When a newly chosen model does not fit the open data (or new data does not fit the open model),
the new choice is kept and the window asks for the other half, preset to what fits
(engine.models.fit): the Open data dialog with the channels, image size or tokenizer the model
takes, or the Open model dialog with the data's class count and an architecture that reads it.
No data at all is always one of the choices (no-data mode), so a model that opens is never left
without a way to use it. Until the pair opens, the previous model stays open.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QTimer

from engine.config import DataSpec, ModelSpec, RecipeError
from engine.models.fit import model_fit_for_data
from gui.dialogs import OpenDataDialog, OpenModelDialog
from gui.worker import PairInfo

# What was chosen last: its other half is what the window asks for when the pair does not fit.
CHOSE_MODEL, CHOSE_DATA = "model", "data"


class WindowPairing:
    """A mixin of :class:`gui.main_window.MainWindow` (uses its dialogs, worker and status)."""

    _open_intent: str = CHOSE_MODEL
    _mismatch: Optional[PairInfo] = None

    def open_pair(self, model: ModelSpec, data: DataSpec, chose: str = CHOSE_MODEL) -> bool:
        """Opens ``model`` with ``data``; ``chose`` says which of the two the user just picked."""
        self._open_intent = chose
        self._mismatch = None
        return self.open_session(model, data)

    def _on_mismatch(self, info: PairInfo) -> None:
        self._mismatch = info

    def _take_mismatch(self, op: str) -> bool:
        """Called when an operation fails: True (and the other half is asked for) when it was an
        open whose model and data do not fit together."""
        info, self._mismatch = self._mismatch, None
        if op != "open" or info is None:
            return False
        QTimer.singleShot(0, self, lambda: self.ask_other_half(info))
        return True

    def ask_other_half(self, info: PairInfo) -> bool:
        model, data = info.model_spec, info.data_spec
        if info.kind == "classes" and model.source == "torchvision" and not model.path \
                and info.data_classes:
            # a random-init classifier has no trained head to keep: rebuilt for the data's classes
            self.log_view.append(f"{model.arch} rebuilt with {info.data_classes} outputs for the "
                                 f"data's {info.data_classes} classes")
            fixed = ModelSpec(source="torchvision", arch=model.arch, num_classes=info.data_classes)
            return self.open_pair(fixed, data, CHOSE_DATA)
        if self._open_intent == CHOSE_DATA and info.kind != "text":
            return self._ask_model_for(data, info)
        return self._ask_data_for_model(model, info)

    def _ask_data_for_model(self, model: ModelSpec, info: PairInfo) -> bool:
        fit = info.fit
        preset = fit.data_spec(self.data_spec) if fit is not None else DataSpec(source="none")
        dialog = OpenDataDialog(self, preset)
        name = Path(model.path or model.arch if model.source != "demo" else "the demo").name
        dialog.setWindowTitle(f"Open data for {name}")
        takes = f"It takes {fit.describe()}" if fit is not None else \
            "No usual input shape runs through it; state one below"
        notes = f" ({'; '.join(fit.notes)})" if fit is not None and fit.notes else ""
        dialog.set_note(f"{name} does not fit the open data: {info.message}. {takes}{notes}. "
                        f"Choose data for it, or source 'none' to open it without data.")
        while dialog.exec():
            try:
                data = dialog.spec()
                data.validate()
            except RecipeError as exc:
                self.show_error("Cannot open", str(exc))
                continue
            return self.open_pair(model, data, CHOSE_DATA)
        self.status_label.setText(f"Not opened: {name} needs data that fits it; "
                                  f"the open model stays")
        return False

    def _ask_model_for(self, data: DataSpec, info: PairInfo) -> bool:
        from engine.models.architectures import architecture_names
        shape = info.data_shape or (3, data.image_size, data.image_size)
        fit = model_fit_for_data(info.data_classes or 10, shape, self.model_spec)
        dialog = OpenModelDialog(self, fit.spec, architecture_names())
        dialog.setWindowTitle("Open a model for this data")
        dialog.set_note(f"The open model does not fit this data: {info.message}. The data is "
                        f"{'x'.join(map(str, shape))} with {info.data_classes} classes; choose a "
                        f"model for it ({'; '.join(fit.notes)}).")
        while dialog.exec():
            model = dialog.spec()
            try:
                model.validate()
            except RecipeError as exc:
                self.show_error("Cannot open", str(exc))
                continue
            return self._open_model_with(model, data)
        self.status_label.setText("Not opened: this data needs a model that fits it; the open "
                                  "model stays")
        return False

    def _open_model_with(self, model: ModelSpec, data: DataSpec) -> bool:
        """A model chosen for data already chosen: asks for trust where the model runs code."""
        if not self.confirm_code(model):
            return False
        return self.open_pair(model, data, CHOSE_MODEL)

    def open_data_path(self, data: DataSpec) -> bool:
        """Data dropped or chosen while a model is open: opened with it (a Hugging Face model reads
        TSVs through its tokenizer)."""
        model = self.model_spec or ModelSpec()
        if model.source == "hf" and data.source == "text_tsv":
            data = DataSpec(source="hf_tsv", root=data.root)
        return self.open_pair(model, data, CHOSE_DATA)
