"""What follows the opened model: the export dialog's proposal (the current model's name, a
recipe's export settings, "shapes" after channel removal), the settings that do not apply to a new
kind of model, and the honest count of layers a Prune changed."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from engine.config import ExportSpec, ModelSpec
from engine.model_info import ModelInfo
from gui.dialogs import ExportDialog
from gui.panels.method_panel import TIPS

# module types channel removal cannot shrink (engine.structured keeps them whole or refuses):
# with one of these the model is a text model and "Remove channels" changes nothing
NO_CHANNEL_REMOVAL = ("LSTM", "GRU", "RNN", "Embedding", "MultiheadAttention", "EmbeddingBag")


def channel_removal_applies(info: ModelInfo) -> Optional[str]:
    """None when channel removal can work on the model, else why not (one line)."""
    for module in info.modules:
        if module.type_name in NO_CHANNEL_REMOVAL or module.type_name.startswith("Bert"):
            return (f"channel removal works on convolution and linear layers of image models; "
                    f"this model has {module.type_name} layers (mask pruning applies)")
    return None


def model_stem(spec: Optional[ModelSpec]) -> str:
    """A file-name stem for the model: its file's name, else its architecture or source."""
    spec = spec or ModelSpec()
    if spec.path:
        return Path(spec.path).stem or Path(spec.path).name
    if spec.source == "demo":
        return "lenet_digits"
    if spec.source == "text_demo":
        return "bilstm_text_demo"
    return spec.arch or spec.source


def layer_state(info: Optional[ModelInfo]) -> dict[str, tuple]:
    return {} if info is None else {p.name: (tuple(p.shape), round(p.sparsity, 6))
                                    for p in info.params}


class WindowFit:
    """A mixin of :class:`gui.main_window.MainWindow`."""

    # the opened recipe's model and export section: proposed while that model is open
    recipe_export: Optional[tuple[ModelSpec, ExportSpec]] = None
    original_info: Optional[ModelInfo] = None
    _before_prune: dict[str, tuple] = {}

    def suggested_export(self) -> tuple[str, list[str]]:
        """(path, extra formats) the Export dialog proposes for the current model."""
        export = None
        if self.recipe_export is not None and self.recipe_export[0] == self.model_spec:
            export = self.recipe_export[1]
        formats = list((export.formats or []) if export is not None else [])
        formats = [f for f in formats if f != "state_dict"]
        if self.channels_removed() and "shapes" not in formats:
            formats.append("shapes")   # without it the smaller model cannot be reopened
        if self.last_export:
            return str(self.last_export[0]), formats
        if export is not None and export.path:
            return export.path, formats
        folder = Path(self._last_dir())
        return str(folder / f"{model_stem(self.model_spec)}_pruned.pt"), formats

    def export_dialog(self) -> None:
        path, formats = self.suggested_export()
        dialog = ExportDialog(self, path, formats)
        if dialog.exec():
            self.export(dialog.spec())

    def channels_removed(self) -> bool:
        info = self.model_panel.info
        if info is None or self.original_info is None:
            return False
        return ({p.name: p.shape for p in info.params}
                != {p.name: p.shape for p in self.original_info.params})

    def _fit_settings_to_model(self, info: ModelInfo) -> None:
        """A new model: forget the previous model's export file; settings it cannot use are
        switched off and greyed out, with the reason as their tooltip."""
        self.original_info = info
        self.last_export = []
        why_not = channel_removal_applies(info)
        box = self.method_panel.structured_box
        if why_not is not None and box.isChecked():
            box.setChecked(False)
            self.log_view.append(f"Remove channels switched off: {why_not}")
        box.setEnabled(why_not is None)
        box.setToolTip(f"Not available for this model: {why_not}" if why_not
                       else TIPS["structured"])

    def _remember_layers_before_prune(self) -> None:
        self._before_prune = layer_state(self.model_panel.info)

    def prune_result_text(self, structured: bool) -> str:
        """The status after Prune: how many layers changed, and why none did when none did."""
        after = layer_state(self.model_panel.info)
        changed = [n for n, s in after.items() if self._before_prune.get(n) != s]
        if changed:
            return (f"Pruned and measured: {len(changed)} parameter(s) changed; see Compare")
        why = ("channel removal found no channel it could remove in this model" if structured
               else "every selected parameter already had the target sparsity or more")
        return f"0 layers changed: {why}. The model is as before (measured: see Compare)"
