"""Open model, Open data and Export dialogs, and the trust question for files that run code."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QMessageBox, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from engine.config import (EXPORT_KINDS, TEXT_DATA_SOURCES, DataSpec, ExportSpec, MetricsSpec,
                           ModelSpec, RecipeError)
from engine.data.sources import DATA_SOURCE_REGISTRY
from engine.models.sources import MODEL_SOURCE_REGISTRY
from gui import tooltips

EXTRA_EXPORT_HELP = {
    "shapes": "<name>.shapes.json: the layer shapes, from which PruneLab rebuilds a channel-pruned "
              "model without unpickling (needed to reopen a model whose channels were removed)",
    "torchscript": "<name>.torchscript.pt: the traced model, loadable with torch.jit.load and no "
                   "Python class",
    "onnx": "<name>.onnx: for ONNX Runtime and other inference engines",
    "pickle": "<name>.pickle.pt: the whole pickled model (torch.save(model)); loading it runs code",
}

CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.bin *.ckpt *.safetensors);;All files (*)"
# the source lists and their help texts come from the registries (one module per source)
MODEL_SOURCE_HELP = {s.name: s.description for s in MODEL_SOURCE_REGISTRY}
# what the source lists show; the ids (recipes' "source") stay the items' data
MODEL_SOURCE_NAMES = {s.name: s.label for s in MODEL_SOURCE_REGISTRY}
DATA_SOURCE_NAMES = {s.name: s.label for s in DATA_SOURCE_REGISTRY}
DATA_SOURCE_HELP = {s.name: s.description for s in DATA_SOURCE_REGISTRY}
# the architecture proposed for "torchvision" when the current one is PruneLab's own (lenet)
DEFAULT_TORCHVISION_ARCH = "resnet18"
# sources whose model comes with PruneLab, so no file is asked for
BUILT_IN_MODELS = ("demo", "text_demo")
# data that needs no folder; image data (size and channels); text read with PruneLab's own
# tokenizer and a vocabulary (a BiLSTM's)
BUILT_IN_DATA = tuple(s.name for s in DATA_SOURCE_REGISTRY if "root" not in s.requires)
IMAGE_DATA = tuple(s.name for s in DATA_SOURCE_REGISTRY if "image_size" in s.takes)
VOCAB_DATA = tuple(s.name for s in DATA_SOURCE_REGISTRY if "vocab_path" in s.takes)
TEXT_FILE_FILTER = "Vocabulary (*.json *.txt);;All files (*)"
VECTORS_FILTER = "fastText vectors (*.vec *.txt);;All files (*)"


def confirm_trust(parent: Optional[QWidget], path: str, what: str) -> bool:
    """Asks before anything runs code from a file; No is the default."""
    answer = QMessageBox.warning(
        parent, "Run code from this file?",
        f"Opening {Path(path).name} as {what} runs Python code from the file.\n\n{path}\n\n"
        f"Continue only if you trust where it came from.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def _builtin_architectures() -> list[str]:
    from engine.models.architectures import BUILTIN_ARCHITECTURES
    return list(BUILTIN_ARCHITECTURES)


class _PathRow(QWidget):
    def __init__(self, title: str, file_filter: Optional[str], folder: bool = False) -> None:
        super().__init__()
        self.edit = QLineEdit()
        button = QPushButton("Browse…")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(button)

        def browse() -> None:
            if folder:
                path = QFileDialog.getExistingDirectory(self, title, self.edit.text())
            else:
                path, _ = QFileDialog.getOpenFileName(self, title, self.edit.text(), file_filter or "")
            if path:
                self.edit.setText(path)
        button.clicked.connect(browse)

    def text(self) -> str:
        return self.edit.text().strip()


def _spin_box(low: int, high: int, value: int, tip: str, special: Optional[str] = None) -> QSpinBox:
    """An integer box; ``special`` is the text shown at ``low`` (e.g. "all" for 0 = no cap)."""
    box = QSpinBox()
    box.setRange(low, high)
    if special is not None:
        box.setSpecialValueText(special)
    box.setValue(value)
    box.setToolTip(tip)
    return box


def _button_box(dialog: QDialog, accept: QDialogButtonBox.StandardButton) -> QDialogButtonBox:
    """``accept`` (Open, Save, OK) and Cancel, wired to the dialog."""
    buttons = QDialogButtonBox(accept | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons


class _SourceDialog(QDialog):
    """An Open dialog: a source combo box (each item's help as its tooltip and, for the chosen one,
    under the box), a form of rows shown by ``_on_source`` as the source needs them, Open/Cancel."""
    def __init__(self, parent, title: str, registry) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.source_help = {s.name: s.description for s in registry}
        self.source_names = {s.name: s.label for s in registry}
        self.source = QComboBox()
        for s in registry.names():
            self.source.addItem(self.source_names.get(s, s), s)
            self.source.setItemData(self.source.count() - 1, self.source_help.get(s, s),
                                    Qt.ItemDataRole.ToolTipRole)
        self.help = QLabel()
        self.help.setWordWrap(True)
        self.form = QFormLayout()
        self.note = QLabel()   # why this dialog was opened (asking for the other half of a pair)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("font-weight: bold")
        self.note.setVisible(False)
        self.form.addRow(self.note)
        self.form.addRow("Source:", self.source)
        self.form.addRow("", self.help)

    def set_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))
        QTimer.singleShot(0, self._fit_height)

    def _finish(self, current_source: str, width: int) -> None:
        """Adds the buttons, selects ``current_source`` and sizes the dialog; call after the rows."""
        buttons = _button_box(self, QDialogButtonBox.StandardButton.Open)
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(buttons)
        self.source.currentIndexChanged.connect(self._on_source)
        self.source.setCurrentIndex(self.source.findData(current_source))
        self._on_source()
        self.resize(width, self.sizeHint().height())
        tooltips.install(self)

    def _on_source(self, *_: object) -> None:
        self.help.setText(self.source_help.get(self.source.currentData(), ""))
        # rows shown or hidden and a longer help text change the height the form needs at this width
        QTimer.singleShot(0, self._fit_height)

    def _fit_height(self) -> None:
        layout = self.layout()
        if layout is None:
            return
        layout.activate()
        needed = layout.totalHeightForWidth(self.width())
        if needed > 0 and needed != self.height():
            self.resize(self.width(), max(needed, layout.totalMinimumSize().height()))


class OpenModelDialog(_SourceDialog):
    def __init__(self, parent=None, current: Optional[ModelSpec] = None,
                 architectures: Optional[list[str]] = None) -> None:
        super().__init__(parent, "Open model", MODEL_SOURCE_REGISTRY)
        current = current or ModelSpec()
        self.arch = QComboBox()
        self.arch.setEditable(True)
        self.arch.addItems(architectures or ["lenet"])
        self.arch.setCurrentText(current.arch)
        self._own_archs = {"lenet", "bilstm"} | set(_builtin_architectures())
        self.arch.setToolTip("Architecture built by name (PruneLab's own or any torchvision "
                             "classifier, always without downloading weights)")
        self.path = _PathRow("Model file", CHECKPOINT_FILTER + ";;Python (*.py)")
        self.path.edit.setText((current.path or "") if current.source != "hf" else "")
        self.folder = _PathRow("Hugging Face model folder", None, folder=True)
        self.folder.edit.setText((current.path or "") if current.source == "hf" else "")
        self.folder.setToolTip("A folder saved with save_pretrained: config.json, model weights "
                               "(.safetensors/.bin) and tokenizer files. No code runs from it.")
        self.shapes = _PathRow("Layer shapes", "Layer shapes (*.shapes.json);;JSON (*.json)")
        self.shapes.edit.setText(current.shapes or "")
        self.shapes.setToolTip("For a channel-pruned export: its .shapes.json, from which the "
                               "smaller architecture is rebuilt (no code runs)")
        self.weights = _PathRow("Weights for the Python model", CHECKPOINT_FILTER)
        self.weights.edit.setText(current.weights or "")
        self.weights.setToolTip("Optional: a state_dict file for the class above (.pt, .pth or "
                                ".safetensors; nested under 'state_dict'/'model' or with "
                                "DataParallel's 'module.' prefix is fine). Loaded as data: no "
                                "code runs from it. Empty: the class's own initial weights.")
        self.factory = QLineEdit(current.factory or "")
        self.factory.setToolTip("Name of the nn.Module class or factory function in the Python file")
        self.num_classes = _spin_box(1, 100_000, current.num_classes,
                                     "Outputs of the classifier; must match the data's classes")
        for label, widget in (("Architecture:", self.arch), ("File:", self.path),
                              ("Model folder:", self.folder), ("Layer shapes:", self.shapes),
                              ("Class / factory:", self.factory), ("Weights:", self.weights),
                              ("Classes:", self.num_classes)):
            self.form.addRow(label, widget)
        self._finish(current.source, 560)

    def _on_source(self, *_: object) -> None:
        super()._on_source()
        source = self.source.currentData()
        self.form.setRowVisible(self.arch, source in ("torchvision", "state_dict"))
        if source == "torchvision" and self.arch.currentText() in self._own_archs:
            self.arch.setCurrentText(DEFAULT_TORCHVISION_ARCH)
        self.form.setRowVisible(self.path, source not in (*BUILT_IN_MODELS, "hf"))
        self.form.setRowVisible(self.folder, source == "hf")
        self.form.setRowVisible(self.factory, source == "python")
        self.form.setRowVisible(self.weights, source == "python")
        self.form.setRowVisible(self.shapes, source == "state_dict")
        self.form.setRowVisible(self.num_classes, source in ("torchvision", "state_dict", "python"))

    def spec(self) -> ModelSpec:
        """The spec as entered; validate() raises RecipeError with a message naming the field."""
        source = self.source.currentData()
        path = self.folder.text() if source == "hf" else self.path.text()
        spec = ModelSpec(source=source, arch=self.arch.currentText().strip() or "lenet",
                         path=(path or None) if source not in BUILT_IN_MODELS else None, factory=self.factory.text().strip() or None,
                         num_classes=self.num_classes.value(), trust_pickle=False,
                         shapes=(self.shapes.text() or None) if source == "state_dict" else None,
                         weights=(self.weights.text() or None) if source == "python" else None)
        return spec


class OpenDataDialog(_SourceDialog):
    def __init__(self, parent=None, current: Optional[DataSpec] = None) -> None:
        super().__init__(parent, "Open data", DATA_SOURCE_REGISTRY)
        current = current or DataSpec()
        self.root = _PathRow("Data folder", None, folder=True)
        self.root.edit.setText(current.root or "")
        self.image_size = _spin_box(4, 4096, current.image_size,
                                    "Images are resized and centre-cropped to this size")
        self.channels = QComboBox()
        self.channels.addItems(["1", "3"])
        self.channels.setCurrentText(str(current.channels))
        self.channels.setToolTip("1: greyscale, 3: RGB; must match the model's first layer")
        self.batch_size = _spin_box(1, 65536, current.batch_size,
                                    "Batch size for evaluation loaders")
        self.max_eval = _spin_box(0, 10_000_000, current.max_eval_samples or 0,
                                  "Evaluate on at most this many test (and validation) samples "
                                  "(faster measuring)", special="all")
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.0, 50.0)
        self.val_fraction.setDecimals(1)
        self.val_fraction.setSuffix(" %")
        self.val_fraction.setSpecialValueText("none (decide on test)")
        self.val_fraction.setValue(current.val_fraction * 100)
        self.val_fraction.setToolTip(
            "Share of the training data held out as a validation split (the same samples every "
            "run). It picks the best fine-tuning epoch, decides early stopping and drives the "
            "sensitivity scan; the test split is only reported. 0 holds nothing out: fine-tuning "
            "keeps its last epoch and the scan looks at the test split.")
        self.text_max_len = _spin_box(0, 100_000, current.text_max_len or 0,
                                      "Truncate every text to this many tokens", special="no limit")
        self.example_tokens = _spin_box(0, 100_000, current.example_tokens or 0,
                                        "Text length (tokens) MACs and latency are measured at",
                                        special="median test text")
        self.vocab_path = _PathRow("Vocabulary", TEXT_FILE_FILTER)
        self.vocab_path.edit.setText(current.vocab_path or "")
        self.vocab_path.setToolTip("A vocabulary file; empty: the model's own (a BiLSTM checkpoint's "
                                   "JSON), else one built from the training split")
        self.vectors_path = _PathRow("Word vectors", VECTORS_FILTER)
        self.vectors_path.edit.setText(current.vectors_path or "")
        self.vectors_path.setToolTip("A fastText .vec file that initialises the embedding rows of "
                                     "known words (optional)")
        self.tokenizer_path = _PathRow("Tokenizer folder", None, folder=True)
        self.tokenizer_path.edit.setText(current.tokenizer_path or "")
        self.tokenizer_path.setToolTip("A Hugging Face tokenizer folder; empty: the model's own")
        self.input_shape = QLineEdit(format_shape(current.input_shape))
        self.input_shape.setPlaceholderText("from the model, e.g. 3x224x224")
        self.input_shape.setToolTip("One synthetic input's shape without the batch (3x224x224 for "
                                    "an image, 64 for 64 tokens); empty: inferred from the model")
        for label, widget in (("Folder:", self.root), ("Image size:", self.image_size),
                              ("Channels:", self.channels), ("Max tokens:", self.text_max_len),
                              ("Measure at:", self.example_tokens),
                              ("Vocabulary:", self.vocab_path), ("Word vectors:", self.vectors_path),
                              ("Tokenizer:", self.tokenizer_path), ("Input shape:", self.input_shape),
                              ("Batch size:", self.batch_size),
                              ("Test samples:", self.max_eval), ("Validation:", self.val_fraction)):
            self.form.addRow(label, widget)
        self._finish(current.source, 520)

    def _on_source(self, *_: object) -> None:
        super()._on_source()
        source = self.source.currentData()
        self.form.setRowVisible(self.root, source not in BUILT_IN_DATA)
        for widget in (self.image_size, self.channels):
            self.form.setRowVisible(widget, source in IMAGE_DATA)
        for widget in (self.text_max_len, self.example_tokens):
            self.form.setRowVisible(widget, source in TEXT_DATA_SOURCES)
        for widget in (self.vocab_path, self.vectors_path):
            self.form.setRowVisible(widget, source in VOCAB_DATA)
        self.form.setRowVisible(self.tokenizer_path, source == "hf_tsv")
        self.form.setRowVisible(self.input_shape, source == "none")
        for widget in (self.batch_size, self.max_eval, self.val_fraction):
            self.form.setRowVisible(widget, source != "none")

    def spec(self) -> DataSpec:
        source = self.source.currentData()
        text = source in TEXT_DATA_SOURCES
        vocab = source in VOCAB_DATA
        return DataSpec(source=source, root=self.root.text() or None,
                        image_size=self.image_size.value(), channels=int(self.channels.currentText()),
                        batch_size=self.batch_size.value(),
                        max_eval_samples=self.max_eval.value() or None,
                        val_fraction=round(self.val_fraction.value() / 100, 4),
                        text_max_len=(self.text_max_len.value() or None) if text else None,
                        example_tokens=(self.example_tokens.value() or None) if text else None,
                        vocab_path=(self.vocab_path.text() or None) if vocab else None,
                        vectors_path=(self.vectors_path.text() or None) if vocab else None,
                        tokenizer_path=(self.tokenizer_path.text() or None)
                        if source == "hf_tsv" else None,
                        input_shape=parse_shape(self.input_shape.text()) if source == "none" else None)


def format_shape(shape) -> str:
    return "x".join(str(n) for n in shape) if shape else ""


def parse_shape(text: str) -> Optional[list[int]]:
    """"3x224x224", "3, 224, 224" or "64" as a list of sizes; empty: None (inferred). A size that
    is not a whole number raises RecipeError, which the window shows as it shows any bad setting."""
    parts = [p for p in text.replace(",", "x").replace("×", "x").replace(" ", "x").split("x") if p]
    if not parts:
        return None
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise RecipeError(f"input shape '{text}': sizes are whole numbers, e.g. 3x224x224") from None


def confirm_overwrite(parent: Optional[QWidget], path: str) -> bool:
    """Asks before an export replaces an existing file; No is the default."""
    answer = QMessageBox.question(
        parent, "Replace the file?", f"{Path(path).name} already exists in {Path(path).parent}."
        f"\n\nReplace it (and the files written beside it)?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


class ExportDialog(QDialog):
    def __init__(self, parent=None, suggested: str = "", formats: Optional[list[str]] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export pruned model")
        self.path = QLineEdit(suggested)
        self.path.setToolTip("The state_dict file: .pt/.pth (torch.save) or .safetensors. Masks are "
                             "folded into the weights, so plain PyTorch loads it with the plain "
                             "architecture.")
        browse = QPushButton("Browse…")
        row = QWidget()
        row_layout = QHBoxLayout(row)
        row_layout.setContentsMargins(0, 0, 0, 0)
        row_layout.addWidget(self.path, 1)
        row_layout.addWidget(browse)
        self.format = QComboBox()
        self.format.addItem("PyTorch state_dict (.pt)", ".pt")
        self.format.addItem("safetensors (.safetensors)", ".safetensors")
        self.format.setToolTip("File format; follows the file name's suffix")
        self.masks = QCheckBox("Also write the masks (…masks.pt / .safetensors)")
        self.masks.setToolTip("The boolean masks per pruned parameter, beside the model file")
        self.report = QCheckBox("Also write a JSON report (…report.json)")
        self.report.setChecked(True)
        self.report.setToolTip("Settings (the recipe), original and pruned metrics and the "
                               "comparison table")
        self.extras: dict[str, QCheckBox] = {}
        for kind in EXPORT_KINDS:
            if kind == "state_dict":
                continue
            box = QCheckBox(f"Also write {kind}")
            box.setToolTip(EXTRA_EXPORT_HELP.get(kind, kind))
            self.extras[kind] = box
        self.verify = QCheckBox("Verify: load each file in a fresh process and compare outputs")
        self.verify.setChecked(True)
        self.verify.setToolTip("Loads every written file the way a user elsewhere would (plain "
                               "load_state_dict(strict=True), torch.jit.load, onnxruntime) in a "
                               "separate process and compares its outputs with the model here; "
                               "the report (largest difference, latency, a loading snippet) goes "
                               "to the Compare tab and the log. A difference is an error.")
        form = QFormLayout()
        form.addRow("File:", row)
        form.addRow("Format:", self.format)
        form.addRow("", self.masks)
        form.addRow("", self.report)
        for kind, box in self.extras.items():
            box.setChecked(kind in (formats or ()))
            form.addRow("", box)
        form.addRow("", self.verify)
        note = QLabel("Files are written atomically; the model's source files are never "
                      "overwritten.")
        note.setWordWrap(True)
        buttons = _button_box(self, QDialogButtonBox.StandardButton.Save)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        browse.clicked.connect(self._browse)
        self.format.currentIndexChanged.connect(self._on_format)
        self.path.textChanged.connect(self._on_path)
        self._on_path(suggested)
        self.resize(560, self.sizeHint().height())
        tooltips.install(self)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path.text(),
                                              "PyTorch (*.pt *.pth);;safetensors (*.safetensors)")
        if path:
            self.path.setText(path)

    def _on_format(self, *_: object) -> None:
        text = self.path.text().strip()
        if text:
            wanted = self.format.currentData()
            current = Path(text)
            if current.suffix.lower() != wanted and not (wanted == ".pt" and current.suffix.lower() == ".pth"):
                self.path.setText(str(current.with_suffix(wanted)))

    def _on_path(self, text: str) -> None:
        suffix = Path(text.strip()).suffix.lower()
        index = self.format.findData(".safetensors" if suffix == ".safetensors" else ".pt")
        self.format.blockSignals(True)
        self.format.setCurrentIndex(index)
        self.format.blockSignals(False)

    def accept(self) -> None:
        path = self.path.text().strip()
        if path and Path(path).expanduser().exists() and not confirm_overwrite(self, path):
            return   # the dialog stays open for another name
        super().accept()

    def spec(self) -> ExportSpec:
        extras = [kind for kind, box in self.extras.items() if box.isChecked()]
        return ExportSpec(path=self.path.text().strip() or None, include_masks=self.masks.isChecked(),
                          report=self.report.isChecked(),
                          formats=["state_dict", *extras] if extras else None,
                          verify=self.verify.isChecked())


class MeasurementDialog(QDialog):
    """How the Compare table times models: batch size, runs, warm-up and memory layout. Both the
    original and the current model are always timed the same way, interleaved."""

    def __init__(self, parent=None, current: Optional[MetricsSpec] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Measurement settings")
        current = current or MetricsSpec()
        self.batch_size = _spin_box(1, 4096, current.latency_batch_size,
                                    "Samples per timed forward pass. Batch 1 shows per-request "
                                    "latency; a larger batch shows throughput, where removed "
                                    "channels usually pay off more.")
        self.runs = _spin_box(1, 10_000, current.latency_runs,
                              "Timed runs per model; the median is reported")
        self.warmup = _spin_box(0, 10_000, current.latency_warmup,
                                "Untimed runs first (caches, lazy initialisation)")
        self.measure_latency = QCheckBox("Measure latency")
        self.measure_latency.setChecked(current.measure_latency)
        self.measure_latency.setToolTip("Off: accuracy, parameters, size and MACs only (faster)")
        self.channels_last = QCheckBox("Channels-last layout (image models)")
        self.channels_last.setChecked(current.channels_last)
        self.channels_last.setToolTip(
            "Time image models in the channels-last memory format, as CNNs often run on CPUs; "
            "it can change how much of a channel-pruned model's MACs reduction becomes speed. "
            "Text models are timed as they are.")
        self._keep = current
        for widget in (self.batch_size, self.runs, self.warmup, self.channels_last):
            widget.setEnabled(current.measure_latency)
            self.measure_latency.toggled.connect(widget.setEnabled)
        form = QFormLayout()
        form.addRow("Latency batch size:", self.batch_size)
        form.addRow("Timed runs:", self.runs)
        form.addRow("Warm-up runs:", self.warmup)
        form.addRow("", self.measure_latency)
        form.addRow("", self.channels_last)
        buttons = _button_box(self, QDialogButtonBox.StandardButton.Ok)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        note = QLabel("The original is re-timed beside the current model at every measurement, "
                      "so a change here applies to both.")
        note.setWordWrap(True)
        layout.addWidget(note)
        layout.addWidget(buttons)
        tooltips.install(self)

    def spec(self) -> MetricsSpec:
        return dataclasses.replace(self._keep, latency_batch_size=self.batch_size.value(),
                                   latency_runs=self.runs.value(),
                                   latency_warmup=self.warmup.value(),
                                   measure_latency=self.measure_latency.isChecked(),
                                   channels_last=self.channels_last.isChecked())
