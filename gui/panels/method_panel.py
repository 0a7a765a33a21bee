"""The method panel, generated from the engine's registries.

Every registry in ``engine.pruning`` whose kind names a :class:`~engine.config.PruneSpec` field
(``criterion`` -> ``method``, ``granularity``, ``schedule`` ...) becomes a combo box whose items
carry each component's label and description (as tooltip); the selected components' typed options
become spin boxes, combos and checkboxes. A method another branch registers therefore appears here
without a GUI edit. The panel reads and writes the same PruneSpec / FinetuneSpec a recipe holds.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox,
                               QLabel, QLineEdit, QSpinBox, QVBoxLayout, QWidget)

import engine.pruning
from engine.config import (OPTIMIZERS, SCOPES, STRUCTURED_IMPORTANCES, STRUCTURED_SCOPES,
                           FinetuneSpec, PruneSpec, ScheduleSpec, StructuredSpec)
from engine.data.synthetic import NEEDS_LABELS
from engine.pruning import apply as _apply  # noqa: F401  (registers the built-in components)
from engine.pruning.schedules import SCHEDULES
from engine.registry import Option, Registry
from gui import tooltips
from gui.combo import compact

# A registry's kind -> the PruneSpec field that names the chosen component.
SPEC_FIELD_FOR_KIND = {"criterion": "method"}

TIPS = {
    "scope": "Local: every selected parameter loses the target fraction of its own weights. "
             "Global: one threshold across all selected parameters, so layers with many small "
             "weights lose more and sensitive small layers can keep more.",
    "sparsity": "Fraction of the selected weights to set to zero (per parameter when local, in "
                "total when global). Per-parameter targets in the model panel override it locally.",
    "min_density": "Global scope only: no parameter keeps less than this fraction of its weights; "
                   "the rest of the budget is taken from the other parameters.",
    "seed": "Seed for random choices (random criterion, data order while fine-tuning), so a run "
            "can be repeated exactly.",
    "schedule": "How the target is reached: at once (one-shot), in rounds of prune and fine-tune, "
                "gradually while fine-tuning, or at initialisation. Schedules other than one-shot "
                "run their fine-tuning as part of Prune.",
    "structured": "Tick to physically remove whole channels and filters instead of masking "
                  "weights: the model gets smaller and faster, with the criterion below ranking "
                  "channels. The mask settings above are then not used.",
    "st_ratio": "Fraction of channels removed (per layer when uniform, overall when global).",
    "st_importance": "How channels are ranked: l1/l2 weight magnitude, taylor |w·grad| over a few "
                     "training batches, bn BatchNorm scale.",
    "st_scope": "uniform: every layer loses the same fraction; global: one ranking across layers, "
                "capped by 'Max per layer'.",
    "st_round_to": "Keep every pruned width a multiple of this (8 suits SIMD and tensor cores); "
                   "off keeps exact counts.",
    "st_max_layer": "Global scope: no layer loses more than this fraction of its channels.",
    "epochs": "Epochs of fine-tuning after pruning, with the masks held fixed so pruned weights "
              "stay zero. 0 skips fine-tuning.",
    "optimizer": "SGD with momentum, or Adam.",
    "lr": "Learning rate. Fine-tuning a trained model usually wants a smaller rate than training "
          "from scratch.",
    "momentum": "SGD momentum (ignored by Adam).",
    "weight_decay": "L2 penalty on the weights while fine-tuning.",
    "batch_size": "Training samples per optimisation step.",
    "patience": "Stop early after this many epochs without a better validation accuracy (the "
                "data's held-out share of the training set); 0 never stops early. The best "
                "epoch's weights are kept either way.",
    "max_batches_per_epoch": "Train on at most this many batches per epoch (a quick look on a "
                             "big data set); 0 uses every batch.",
    "device": "Where to fine-tune: auto picks CUDA when available, else the CPU.",
}


def discover_registries() -> dict[str, Registry]:
    """Every Registry defined anywhere in ``engine.pruning`` whose kind maps to a PruneSpec field."""
    fields = {f.name for f in dataclasses.fields(PruneSpec)}
    found: dict[str, Registry] = {}
    for info in pkgutil.iter_modules(engine.pruning.__path__):
        module = importlib.import_module(f"engine.pruning.{info.name}")
        for value in vars(module).values():
            if isinstance(value, Registry):
                field = SPEC_FIELD_FOR_KIND.get(value.kind, value.kind)
                if field in fields and field not in found:
                    found[field] = value
    order = ["method", "granularity"]
    return dict(sorted(found.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 9,
                                                      kv[0])))


def fill_components(combo: QComboBox, registry: Registry) -> None:
    """One item per component: its label shown, its name as data, its description as tooltip."""
    for component in registry:
        combo.addItem(component.label or component.name, component.name)
        combo.setItemData(combo.count() - 1, component.description, Qt.ItemDataRole.ToolTipRole)
    compact(combo)


def _needs_data(registry: Registry, name: str) -> bool:
    """Whether a criterion with its default options needs training data (gradients, slimming)."""
    try:
        return bool(registry.create(name).needs_data)
    except Exception:   # a user's method that cannot be built with defaults: it says so itself
        return False


def _move_off_disabled(combo: QComboBox) -> None:
    """Selects the first enabled item when the current one was greyed out."""
    if combo.currentIndex() < 0 or combo.model().item(combo.currentIndex()).isEnabled():
        return
    for i in range(combo.count()):
        if combo.model().item(i).isEnabled():
            combo.setCurrentIndex(i)
            return


def option_widget(option: Option, value: Any) -> QWidget:
    """A control for one typed option, with its help as the tooltip."""
    if option.choices is not None:
        widget = QComboBox()
        for choice in option.choices:
            widget.addItem(str(choice), choice)
        widget.setCurrentIndex(max(0, list(option.choices).index(value) if value in option.choices else 0))
    elif option.kind is bool:
        widget = QCheckBox()
        widget.setChecked(bool(value))
    elif option.kind is int:
        widget = QSpinBox()
        widget.setRange(int(option.minimum if option.minimum is not None else -1_000_000),
                        int(option.maximum if option.maximum is not None else 1_000_000))
        widget.setValue(int(value))
    elif option.kind is float:
        widget = QDoubleSpinBox()
        widget.setDecimals(4)
        widget.setRange(option.minimum if option.minimum is not None else -1e9,
                        option.maximum if option.maximum is not None else 1e9)
        widget.setValue(float(value))
    else:
        widget = QLineEdit(str(value))
    widget.setToolTip(option.help)
    widget.setObjectName(f"option_{option.name}")
    return widget


def option_value(option: Option, widget: QWidget) -> Any:
    if isinstance(widget, QComboBox):
        return widget.currentData()
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
        return widget.value()
    return widget.text()


class MethodPanel(QWidget):
    changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.registries = discover_registries()
        self.component_boxes: dict[str, QComboBox] = {}
        self.option_widgets: dict[str, tuple[Option, QWidget]] = {}
        self.option_values: dict[str, Any] = {}  # kept across method switches

        prune_box = QGroupBox("Pruning")
        self.prune_form = QFormLayout(prune_box)
        for field, registry in self.registries.items():
            combo = QComboBox()
            combo.setObjectName(field)
            fill_components(combo, registry)
            combo.currentIndexChanged.connect(self._on_component)
            self.component_boxes[field] = combo
            self.prune_form.addRow(f"{field.replace('_', ' ').capitalize()}:", combo)
        self.options_box = QGroupBox("Options")
        self.options_form = QFormLayout(self.options_box)
        self.prune_form.addRow(self.options_box)
        self.schedule = QComboBox()
        self.schedule.setObjectName("schedule")
        fill_components(self.schedule, SCHEDULES)
        self.prune_form.addRow("Schedule:", self.schedule)
        self.prune_form.labelForField(self.schedule).setToolTip(TIPS["schedule"])
        self.schedule_box = QGroupBox("Schedule options")
        self.schedule_form = QFormLayout(self.schedule_box)
        self.schedule_widgets: dict[str, tuple[Option, QWidget]] = {}
        self.schedule_values: dict[str, Any] = {}
        self.prune_form.addRow(self.schedule_box)

        self.scope = QComboBox()
        for s in SCOPES:
            self.scope.addItem(s.capitalize(), s)
        self.sparsity = QDoubleSpinBox()
        self.sparsity.setRange(0.0, 99.9)
        self.sparsity.setDecimals(1)
        self.sparsity.setSingleStep(5.0)
        self.sparsity.setSuffix(" %")
        self.sparsity.setValue(50.0)
        self.min_density = QDoubleSpinBox()
        self.min_density.setRange(0.0, 99.0)
        self.min_density.setDecimals(1)
        self.min_density.setSuffix(" %")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2 ** 31 - 1)
        for label, widget, tip in (("Scope:", self.scope, "scope"),
                                   ("Target sparsity:", self.sparsity, "sparsity"),
                                   ("Min density:", self.min_density, "min_density"),
                                   ("Seed:", self.seed, "seed")):
            widget.setToolTip(TIPS[tip])
            widget.setObjectName(tip)
            self.prune_form.addRow(label, widget)
            self.prune_form.labelForField(widget).setToolTip(TIPS[tip])

        ft_box = QGroupBox("Fine-tuning")
        ft_form = QFormLayout(ft_box)
        defaults = FinetuneSpec()
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 1000)
        self.epochs.setValue(1)
        self.optimizer = QComboBox()
        for o in OPTIMIZERS:
            self.optimizer.addItem(o.upper() if o == "sgd" else o.capitalize(), o)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 10.0)
        self.lr.setSingleStep(0.001)
        self.lr.setValue(defaults.lr)
        self.momentum = QDoubleSpinBox()
        self.momentum.setRange(0.0, 0.999)
        self.momentum.setDecimals(3)
        self.momentum.setValue(defaults.momentum)
        self.weight_decay = QDoubleSpinBox()
        self.weight_decay.setDecimals(6)
        self.weight_decay.setRange(0.0, 1.0)
        self.weight_decay.setValue(defaults.weight_decay)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 65536)
        self.batch_size.setValue(defaults.batch_size)
        self.patience = QSpinBox()
        self.patience.setRange(0, 1000)
        self.patience.setSpecialValueText("off")
        self.max_batches = QSpinBox()
        self.max_batches.setRange(0, 10_000_000)
        self.max_batches.setSpecialValueText("all")
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        for label, widget, tip in (("Epochs:", self.epochs, "epochs"),
                                   ("Optimizer:", self.optimizer, "optimizer"),
                                   ("Learning rate:", self.lr, "lr"),
                                   ("Momentum:", self.momentum, "momentum"),
                                   ("Weight decay:", self.weight_decay, "weight_decay"),
                                   ("Batch size:", self.batch_size, "batch_size"),
                                   ("Patience:", self.patience, "patience"),
                                   ("Batches/epoch:", self.max_batches, "max_batches_per_epoch"),
                                   ("Device:", self.device, "device")):
            widget.setToolTip(TIPS[tip])
            widget.setObjectName(tip)
            ft_form.addRow(label, widget)
            ft_form.labelForField(widget).setToolTip(TIPS[tip])

        structured_box = QGroupBox("Remove channels (structured)")
        structured_box.setToolTip(TIPS["structured"])
        structured_box.setCheckable(True)
        structured_box.setChecked(False)
        self.structured_box = structured_box
        st_form = QFormLayout(structured_box)
        defaults_st = StructuredSpec()
        self.st_ratio = QDoubleSpinBox()
        self.st_ratio.setRange(1.0, 99.0)
        self.st_ratio.setDecimals(1)
        self.st_ratio.setSuffix(" %")
        self.st_ratio.setValue(defaults_st.ratio * 100)
        self.st_importance = QComboBox()
        self.st_importance.addItems(list(STRUCTURED_IMPORTANCES))
        self.st_scope = QComboBox()
        self.st_scope.addItems(list(STRUCTURED_SCOPES))
        self.st_round_to = QSpinBox()
        self.st_round_to.setRange(0, 1024)
        self.st_round_to.setSpecialValueText("off")
        self.st_max_layer = QDoubleSpinBox()
        self.st_max_layer.setRange(1.0, 99.0)
        self.st_max_layer.setDecimals(1)
        self.st_max_layer.setSuffix(" %")
        self.st_max_layer.setValue(defaults_st.max_layer_ratio * 100)
        for label, widget, tip in (("Channels removed:", self.st_ratio, "st_ratio"),
                                   ("Importance:", self.st_importance, "st_importance"),
                                   ("Scope:", self.st_scope, "st_scope"),
                                   ("Round widths to:", self.st_round_to, "st_round_to"),
                                   ("Max per layer:", self.st_max_layer, "st_max_layer")):
            widget.setToolTip(TIPS[tip])
            widget.setObjectName(tip)
            st_form.addRow(label, widget)
            st_form.labelForField(widget).setToolTip(TIPS[tip])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(prune_box)
        layout.addWidget(structured_box)
        # channel removal does not use the mask settings: greyed out, so nothing looks as if it
        # applied (fine-tuning settings below still do)
        self.prune_box = prune_box
        structured_box.toggled.connect(self._on_structured)
        # predicted size and MACs of what the settings above would leave (gui.window.foresight)
        self.preview_label = QLabel()
        self.preview_label.setObjectName("size_preview")
        self.preview_label.setWordWrap(True)
        self.preview_label.setToolTip("Predicted from the layer shapes while you edit, before "
                                      "anything is pruned; Compare shows the measured values after")
        layout.addWidget(self.preview_label)
        layout.addWidget(ft_box)
        self.finetune_box = ft_box
        layout.addStretch(1)
        self.scope.currentIndexChanged.connect(self._on_scope)
        self.schedule.currentIndexChanged.connect(self._on_schedule)
        self._on_component()
        self._on_schedule()

    # ------------------------------------------------------------ components and options

    def component(self, field: str):
        combo = self.component_boxes[field]
        return self.registries[field].get(combo.currentData())

    def _on_component(self, *_: object) -> None:
        self._restrict_granularity()
        for field, combo in self.component_boxes.items():
            combo.setToolTip(self.component(field).description)
        self._rebuild_options()
        # N:M and the like fix the sparsity themselves (e.g. 2:4 is 50 %): the target is moot
        fixed = any(getattr(self.component(f), "fixed_sparsity", False) for f in self.component_boxes)
        self.sparsity.setEnabled(not fixed)
        # a criterion that makes each layer's mask itself (a user's BasePruningMethod) is local
        supports_global = all(getattr(self.component(f), "supports_global", True) and
                              not getattr(self.component(f), "provides_masks", False)
                              for f in self.component_boxes)
        global_index = self.scope.findData("global")
        self.scope.model().item(global_index).setEnabled(supports_global)
        if not supports_global and self.scope.currentData() == "global":
            self.scope.setCurrentIndex(self.scope.findData("local"))
        self._on_scope()
        self.changed.emit()

    def _restrict_granularity(self) -> None:
        """Greys out the granularities the chosen criterion does not work with (bn_gamma ranks
        filters only, a user's mask method is fine-grained) and moves off a greyed-out one."""
        if "method" not in self.component_boxes or "granularity" not in self.component_boxes:
            return
        allowed = getattr(self.component("method"), "granularities", None)
        combo = self.component_boxes["granularity"]
        for i in range(combo.count()):
            combo.model().item(i).setEnabled(allowed is None or combo.itemData(i) in allowed)
        if allowed is not None and combo.currentData() not in allowed:
            index = combo.findData(allowed[0])
            if index >= 0:
                combo.blockSignals(True)
                combo.setCurrentIndex(index)
                combo.blockSignals(False)

    def refresh_components(self, select_method: Optional[str] = None) -> None:
        """Rebuilds the component lists from the registries (after a method file registered new
        criteria), keeping the current choices, or choosing ``select_method``."""
        for field, combo in self.component_boxes.items():
            current = select_method if field == "method" and select_method else combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            fill_components(combo, self.registries[field])
            combo.setCurrentIndex(max(0, combo.findData(current)))
            combo.blockSignals(False)
        self._apply_data_availability()
        self._on_component()

    def set_data_available(self, available: bool) -> None:
        """No-data mode: the criteria, schedules, importance and fine-tuning that need labelled
        data are greyed out (their tooltip says why) and the choice moves off them."""
        self.data_available = available
        self._apply_data_availability()

    def _apply_data_availability(self) -> None:
        available = getattr(self, "data_available", True)
        why = f"Unavailable: {NEEDS_LABELS}"
        combo, registry = self.component_boxes.get("method"), self.registries.get("method")
        if combo is not None:
            for i in range(combo.count()):
                needs = _needs_data(registry, combo.itemData(i))
                combo.model().item(i).setEnabled(available or not needs)
                combo.setItemData(i, why if needs and not available
                                  else registry.get(combo.itemData(i)).description,
                                  Qt.ItemDataRole.ToolTipRole)
            _move_off_disabled(combo)
        for i in range(self.schedule.count()):
            trains = self.schedule.itemData(i) != "oneshot"   # the others prune and fine-tune
            self.schedule.model().item(i).setEnabled(available or not trains)
        _move_off_disabled(self.schedule)
        taylor = self.st_importance.findText("taylor")
        self.st_importance.model().item(taylor).setEnabled(available)
        _move_off_disabled(self.st_importance)
        self.finetune_box.setEnabled(available)
        self.finetune_box.setToolTip("" if available else f"Fine-tuning {NEEDS_LABELS}")

    def plugin_path(self) -> Optional[str]:
        """The method file the chosen criterion came from, None for a built-in."""
        return getattr(self.component("method"), "source", "") or None

    def _rebuild_options(self) -> None:
        self.option_values.update(self.options())
        while self.options_form.rowCount():
            self.options_form.removeRow(0)
        self.option_widgets.clear()
        for field in self.component_boxes:
            for option in self.component(field).options:
                if option.name in self.option_widgets:
                    continue  # shared by criterion and granularity: one control
                widget = option_widget(option, self.option_values.get(option.name, option.default))
                self.option_widgets[option.name] = (option, widget)
                self.options_form.addRow(f"{option.name.replace('_', ' ')}:", widget)
                self.options_form.labelForField(widget).setToolTip(option.help)
        self.options_box.setVisible(bool(self.option_widgets))
        tooltips.install(self.options_box)   # the new rows' long help wraps too

    def _on_schedule(self, *_: object) -> None:
        component = SCHEDULES.get(self.schedule.currentData())
        self.schedule.setToolTip(component.description)
        self.schedule_values.update(self.schedule_options())
        while self.schedule_form.rowCount():
            self.schedule_form.removeRow(0)
        self.schedule_widgets.clear()
        for option in component.options:
            widget = option_widget(option, self.schedule_values.get(option.name, option.default))
            self.schedule_widgets[option.name] = (option, widget)
            self.schedule_form.addRow(f"{option.name.replace('_', ' ')}:", widget)
            self.schedule_form.labelForField(widget).setToolTip(option.help)
        self.schedule_box.setVisible(bool(self.schedule_widgets))
        tooltips.install(self.schedule_box)
        self.changed.emit()

    def schedule_options(self) -> dict[str, Any]:
        return {name: option_value(option, widget)
                for name, (option, widget) in self.schedule_widgets.items()}

    def schedule_spec(self) -> ScheduleSpec:
        spec = ScheduleSpec(kind=self.schedule.currentData(), options=self.schedule_options())
        spec.validate()
        return spec

    def set_schedule_spec(self, spec: ScheduleSpec) -> None:
        self.schedule_values.update(spec.options)
        index = self.schedule.findData(spec.kind)
        if index < 0:
            raise ValueError(f"this PruneLab has no schedule '{spec.kind}'")
        self.schedule.setCurrentIndex(index)
        self._on_schedule()

    def structured_spec(self) -> StructuredSpec:
        spec = StructuredSpec(enabled=self.structured_box.isChecked(),
                              ratio=round(self.st_ratio.value() / 100, 4),
                              importance=self.st_importance.currentText(),
                              scope=self.st_scope.currentText(),
                              round_to=self.st_round_to.value() or None,
                              max_layer_ratio=round(self.st_max_layer.value() / 100, 4))
        spec.validate()
        return spec

    def set_structured_spec(self, spec: StructuredSpec) -> None:
        self.structured_box.setChecked(spec.enabled)
        self.st_ratio.setValue(spec.ratio * 100)
        self.st_importance.setCurrentText(spec.importance)
        self.st_scope.setCurrentText(spec.scope)
        self.st_round_to.setValue(spec.round_to or 0)
        self.st_max_layer.setValue(spec.max_layer_ratio * 100)

    def options(self) -> dict[str, Any]:
        return {name: option_value(option, widget)
                for name, (option, widget) in self.option_widgets.items()}

    def _on_structured(self, on: bool) -> None:
        self.prune_box.setEnabled(not on)
        self.prune_box.setToolTip("Not used while 'Remove channels' is ticked: channel removal has "
                                  "its own ratio and importance below" if on else "")

    def _on_scope(self, *_: object) -> None:
        self.min_density.setEnabled(self.scope.currentData() == "global")

    # ------------------------------------------------------------ specs

    def prune_spec(self, include: Optional[list[str]] = None,
                   per_layer: Optional[dict[str, float]] = None) -> PruneSpec:
        chosen = {field: combo.currentData() for field, combo in self.component_boxes.items()}
        spec = PruneSpec(**chosen, scope=self.scope.currentData(),
                         sparsity=round(self.sparsity.value() / 100, 4),
                         per_layer=per_layer, include=include,
                         # the floor is a global-scope setting (its box is greyed out otherwise)
                         min_density=(round(self.min_density.value() / 100, 4)
                                      if self.scope.currentData() == "global" else 0.0),
                         options=self.options(), seed=self.seed.value(),
                         plugin=self.plugin_path())
        spec.validate()
        return spec

    def finetune_spec(self) -> FinetuneSpec:
        spec = FinetuneSpec(epochs=self.epochs.value(), optimizer=self.optimizer.currentData(),
                            lr=self.lr.value(), momentum=self.momentum.value(),
                            weight_decay=self.weight_decay.value(),
                            batch_size=self.batch_size.value(),
                            patience=self.patience.value() or None,
                            max_batches_per_epoch=self.max_batches.value() or None,
                            device=self.device.currentText())
        spec.validate()
        return spec

    def set_prune_spec(self, spec: PruneSpec) -> None:
        self.refresh_components()   # methods loaded from files since the panel was built
        self.option_values.update(spec.options)
        for field, combo in self.component_boxes.items():
            index = combo.findData(getattr(spec, field))
            if index < 0:
                raise ValueError(f"this PruneLab has no {self.registries[field].kind} "
                                 f"'{getattr(spec, field)}'")
            combo.setCurrentIndex(index)
        self._rebuild_options()
        self.scope.setCurrentIndex(self.scope.findData(spec.scope))
        self.sparsity.setValue(spec.sparsity * 100)
        self.min_density.setValue(spec.min_density * 100)
        self.seed.setValue(spec.seed)

    def set_finetune_spec(self, spec: FinetuneSpec) -> None:
        self.epochs.setValue(spec.epochs)
        self.optimizer.setCurrentIndex(self.optimizer.findData(spec.optimizer))
        self.lr.setValue(spec.lr)
        self.momentum.setValue(spec.momentum)
        self.weight_decay.setValue(spec.weight_decay)
        self.batch_size.setValue(spec.batch_size)
        self.patience.setValue(spec.patience or 0)
        self.max_batches.setValue(spec.max_batches_per_epoch or 0)
        self.device.setCurrentText(spec.device)

    def controls_with_tooltips(self) -> dict[str, str]:
        """Every control's tooltip (tests check none is empty)."""
        controls = list(self.component_boxes.values()) + [w for _, w in self.option_widgets.values()]
        controls += [self.schedule] + [w for _, w in self.schedule_widgets.values()]
        controls += [self.st_ratio, self.st_importance, self.st_scope, self.st_round_to,
                     self.st_max_layer]
        controls += [self.scope, self.sparsity, self.min_density, self.seed, self.epochs,
                     self.optimizer, self.lr, self.momentum, self.weight_decay, self.batch_size,
                     self.patience, self.max_batches, self.device]
        return {w.objectName() or type(w).__name__: w.toolTip() for w in controls}
