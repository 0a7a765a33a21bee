"""The model panel: every module and parameter with shape, size and sparsity; a checkbox to
include each prunable parameter, an editable per-parameter target sparsity, a pattern field that
ticks a parameter group by name (glob or ``re:`` regex, as a recipe's include list), and the
selected group's size and sparsity."""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QDoubleSpinBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QPushButton, QStyle, QStyledItemDelegate, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from engine.model_info import ModelInfo
from engine.pruning.targets import GroupSparsity, matches
from gui.views import shape_text

COL_NAME, COL_SHAPE, COL_PARAMS, COL_SPARSITY, COL_TARGET = range(5)
NAME_ROLE = Qt.ItemDataRole.UserRole
TARGET_ROLE = Qt.ItemDataRole.UserRole + 1   # float fraction, or None for the method's target
DEFAULT_TARGET_TEXT = "default"
DEFAULT_BRUSH = QBrush(QColor(150, 150, 150))
TREE_INDENT = 14   # narrower than Qt's 20: a BERT parameter sits eight levels deep
# the name column's starting width fits the longest name up to this; the user can drag it wider
NAME_COLUMN_MIN, NAME_COLUMN_MAX = 140, 260


class _TargetDelegate(QStyledItemDelegate):
    """Edits the target column as a percentage; the lowest value means "use the method's target"."""

    def createEditor(self, parent, option, index):
        if index.column() != COL_TARGET or index.data(NAME_ROLE) is None:
            return None
        editor = QDoubleSpinBox(parent)
        editor.setRange(-0.1, 99.9)
        editor.setDecimals(1)
        editor.setSuffix(" %")
        editor.setSpecialValueText(DEFAULT_TARGET_TEXT)
        return editor

    def setEditorData(self, editor, index):
        value = index.data(TARGET_ROLE)
        editor.setValue(-0.1 if value is None else value * 100)

    def setModelData(self, editor, model, index):
        value = editor.value()
        target = None if value < 0 else round(value / 100, 4)
        model.setData(index, target, TARGET_ROLE)
        model.setData(index, _target_text(target), Qt.ItemDataRole.DisplayRole)
        model.setData(index, DEFAULT_BRUSH if target is None else QBrush(),
                      Qt.ItemDataRole.ForegroundRole)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def describe_group(group: GroupSparsity) -> str:
    """One line for a group's sparsity, with the four decimals a script prints."""
    return f"Selected group: {_count(len(group.names), 'param')}, sparsity {group.sparsity:.4f}"


def _target_text(value: Optional[float]) -> str:
    return DEFAULT_TARGET_TEXT if value is None else f"{value:.1%}"


class ModelPanel(QWidget):
    param_selected = Signal(str)
    selection_changed = Signal()   # the ticked parameters changed

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.info: Optional[ModelInfo] = None
        self.items: dict[str, QTreeWidgetItem] = {}
        self.module_items: dict[str, QTreeWidgetItem] = {}
        self._syncing = False
        self.description = QLabel("No model")
        self.description.setWordWrap(True)
        self.pattern = QLineEdit()
        self.pattern.setPlaceholderText("Select by pattern (glob or re:regex)")
        self.pattern.setToolTip("Tick exactly the prunable parameters whose full name matches: an "
                                "exact name, a glob (* any text, ? one character; e.g. lstm.weight_* "
                                "or *.attention.self.query.weight) or a regular expression written "
                                "re:... matching the whole name (e.g. re:fc\\d\\.weight). The "
                                "rest are unticked.")
        self.pattern.setClearButtonEnabled(True)
        select_button = QPushButton("Select")
        select_button.setToolTip(self.pattern.toolTip())
        self.pattern_result = QLabel()
        self.pattern_result.setWordWrap(True)
        self.group_label = QLabel()
        self.group_label.setWordWrap(True)
        self.group_label.setToolTip("The ticked parameters taken together: zeros over all their "
                                    "weights (not the mean of per-parameter sparsities)")
        self.group: Optional[GroupSparsity] = None   # the engine's count for the ticked group
        self.tree = QTreeWidget()
        self.tree.setColumnCount(5)
        self.tree.setHeaderLabels(["Module / parameter", "Type / shape", "Params", "Sparsity",
                                   "Target"])
        self.tree.setUniformRowHeights(True)
        # a name too long for the column keeps its start and its end (weight_hh_l0_reverse); the
        # tooltip has the whole name
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.tree.setIndentation(TREE_INDENT)
        self.tree.setItemDelegate(_TargetDelegate(self.tree))
        header = self.tree.header()
        # the user drags the name column wider (a stretched column cannot be resized and was
        # squeezed to "…el" beside the other columns)
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Interactive)
        header.setMinimumSectionSize(40)
        for col in (COL_SHAPE, COL_PARAMS, COL_SPARSITY, COL_TARGET):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        tips = {COL_NAME: "Tick a parameter to include it in pruning (weights with two or more "
                          "dimensions can be pruned; biases and norm scales are kept).",
                COL_SHAPE: "The module's type, or the parameter's tensor shape",
                COL_PARAMS: "Number of values (for a module: all its parameters)",
                COL_SPARSITY: "Fraction of values that are exactly zero now",
                COL_TARGET: "Per-parameter target sparsity (double-click to edit). Empty: the "
                            "method panel's target. Per-parameter targets are a local setting."}
        for col, tip in tips.items():
            self.tree.headerItem().setToolTip(col, tip)

        all_button = QPushButton("All")
        all_button.setToolTip("Include every prunable parameter")
        none_button = QPushButton("None")
        none_button.setToolTip("Include no parameter (then tick the ones to prune)")
        clear_button = QPushButton("Clear targets")
        clear_button.setToolTip("Remove every per-parameter target sparsity")
        buttons = QHBoxLayout()
        for b in (all_button, none_button, clear_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        pattern_row = QHBoxLayout()
        pattern_row.addWidget(self.pattern, 1)
        pattern_row.addWidget(select_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.description)
        layout.addLayout(pattern_row)
        layout.addWidget(self.pattern_result)
        layout.addWidget(self.tree)
        layout.addWidget(self.group_label)
        layout.addLayout(buttons)
        self.pattern.returnPressed.connect(self.select_pattern)
        select_button.clicked.connect(self.select_pattern)

        all_button.clicked.connect(lambda: self.set_all_checked(True))
        none_button.clicked.connect(lambda: self.set_all_checked(False))
        clear_button.clicked.connect(self.clear_targets)
        self.tree.currentItemChanged.connect(self._on_current)
        self.tree.itemChanged.connect(self._on_item_changed)

    # ------------------------------------------------------------ building

    def set_model(self, info: ModelInfo) -> None:
        self.info = info
        with self._bulk_edit():   # hundreds of items: the columns are sized once
            self._syncing = True
            self.tree.clear()
            self.items.clear()
            self.description.setText(info.description)
            module_items: dict[str, QTreeWidgetItem] = {}
            totals = self._module_totals(info)
            for module in info.modules:
                if module.name == "":
                    item = QTreeWidgetItem(self.tree, ["model", module.type_name])
                else:
                    parent_name = module.name.rsplit(".", 1)[0] if "." in module.name else ""
                    parent = module_items[parent_name]
                    item = QTreeWidgetItem(parent, [module.name.rsplit(".", 1)[-1], module.type_name])
                item.setText(COL_PARAMS, f"{totals[module.name]:,}")
                item.setToolTip(COL_NAME, module.name or module.type_name)
                module_items[module.name] = item
                for p in module.params:
                    child = QTreeWidgetItem(item, [p.name.rsplit(".", 1)[-1],
                                                   shape_text(p.shape), f"{p.numel:,}", ""])
                    child.setToolTip(COL_NAME, p.name)
                    child.setData(COL_NAME, NAME_ROLE, p.name)
                    for col in (COL_PARAMS, COL_SPARSITY, COL_TARGET):
                        child.setTextAlignment(col, Qt.AlignmentFlag.AlignRight)
                    child.setFlags(child.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
                    if p.prunable:
                        child.setFlags(child.flags() | Qt.ItemFlag.ItemIsUserCheckable |
                                       Qt.ItemFlag.ItemIsEditable)
                        child.setCheckState(COL_NAME, Qt.CheckState.Checked)
                        child.setData(COL_TARGET, NAME_ROLE, p.name)
                        child.setData(COL_TARGET, TARGET_ROLE, None)
                        child.setText(COL_TARGET, _target_text(None))
                        child.setForeground(COL_TARGET, DEFAULT_BRUSH)
                    self.items[p.name] = child
            # modules holding prunable parameters get a box that ticks all of them (kept in step by
            # hand: Qt's auto-tristate would also put boxes on biases, which cannot be pruned)
            self.module_items = {name: item for name, item in module_items.items()
                                 if self._leaves(item)}
            self._syncing = True
            for item in module_items.values():
                item.setTextAlignment(COL_PARAMS, Qt.AlignmentFlag.AlignRight)
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
            for item in self.module_items.values():
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            self._syncing = False
            self._refresh_module_checks()
            self.update_stats(info)
        self.tree.expandAll()
        self.fit_name_column()
        self.pattern_result.setText("")
        self._selection_changed()

    def name_width_needed(self, item: QTreeWidgetItem) -> int:
        """Pixels from the tree's left edge to the end of ``item``'s name: indentation, branch
        arrow, check box and text."""
        depth, parent = 0, item.parent()
        while parent is not None:
            depth, parent = depth + 1, parent.parent()
        style = self.tree.style()
        check = style.pixelMetric(QStyle.PixelMetric.PM_IndicatorWidth) + 6
        return (TREE_INDENT * (depth + 1) + check
                + self.tree.fontMetrics().horizontalAdvance(item.text(COL_NAME)) + 12)

    def fit_name_column(self) -> None:
        """Starts the name column wide enough for the names (within NAME_COLUMN_MAX)."""
        needed = [self.name_width_needed(item) for item in self._all_items()]
        width = min(max([NAME_COLUMN_MIN, *needed]), NAME_COLUMN_MAX)
        self.tree.header().resizeSection(COL_NAME, width)

    def _all_items(self) -> list[QTreeWidgetItem]:
        found, stack = [], [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        while stack:
            item = stack.pop()
            found.append(item)
            stack.extend(item.child(i) for i in range(item.childCount()))
        return found

    def update_stats(self, info: ModelInfo) -> None:
        """New sparsities after a prune, fine-tune or revert; checks and targets are kept."""
        self.info = info
        header = self.tree.header()
        header.setSectionResizeMode(COL_SPARSITY, QHeaderView.ResizeMode.Interactive)
        for p in info.params:
            item = self.items.get(p.name)
            if item is not None:
                item.setText(COL_SPARSITY, f"{p.sparsity:.1%}")
        # sized once, not re-measured at every text set (2 s for ResNet-50's 161 parameters)
        header.setSectionResizeMode(COL_SPARSITY, QHeaderView.ResizeMode.ResizeToContents)

    @contextmanager
    def _bulk_edit(self):
        """Many item changes at once: with the columns sized to their contents, every single
        change re-measured every row (2 s for ResNet-50's 161 parameters); here the columns are
        sized once at the end."""
        header = self.tree.header()
        sized = [col for col in range(self.tree.columnCount())
                 if header.sectionResizeMode(col) == QHeaderView.ResizeMode.ResizeToContents]
        for col in sized:
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
        self.tree.setUpdatesEnabled(False)
        try:
            yield
        finally:
            for col in sized:
                header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
            self.tree.setUpdatesEnabled(True)

    @staticmethod
    def _module_totals(info: ModelInfo) -> dict[str, int]:
        totals = {m.name: 0 for m in info.modules}
        for m in info.modules:
            own = sum(p.numel for p in m.params)
            parts = m.name.split(".") if m.name else []
            for depth in range(len(parts) + 1):
                totals[".".join(parts[:depth])] += own
        return totals

    def _leaves(self, item: QTreeWidgetItem) -> list[QTreeWidgetItem]:
        """The prunable parameter items under ``item``."""
        found = []
        for i in range(item.childCount()):
            child = item.child(i)
            if child.data(COL_TARGET, NAME_ROLE) is not None:
                found.append(child)
            found.extend(self._leaves(child))
        return found

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column != COL_NAME or self._syncing:
            return
        self._syncing = True
        try:
            if item.data(COL_TARGET, NAME_ROLE) is None and item.checkState(COL_NAME) != Qt.CheckState.PartiallyChecked:
                for leaf in self._leaves(item):  # a module box ticks or clears all its parameters
                    leaf.setCheckState(COL_NAME, item.checkState(COL_NAME))
        finally:
            self._syncing = False
        self._refresh_module_checks()
        self._selection_changed()

    def _refresh_module_checks(self) -> None:
        """Each module box shows whether all, some or none of its parameters are ticked."""
        self._syncing = True
        try:
            for item in self.module_items.values():
                states = {leaf.checkState(COL_NAME) for leaf in self._leaves(item)}
                item.setCheckState(COL_NAME, states.pop() if len(states) == 1
                                   else Qt.CheckState.PartiallyChecked)
        finally:
            self._syncing = False

    # ------------------------------------------------------------ reading and setting

    def prunable_names(self) -> list[str]:
        return [name for name, item in self.items.items()
                if item.data(COL_TARGET, NAME_ROLE) is not None]

    def checked(self) -> list[str]:
        return [n for n in self.prunable_names()
                if self.items[n].checkState(COL_NAME) == Qt.CheckState.Checked]

    def include(self) -> Optional[list[str]]:
        """None when every prunable parameter is ticked (the engine's default), else the ticked ones."""
        checked = self.checked()
        return None if len(checked) == len(self.prunable_names()) else checked

    def per_layer(self) -> Optional[dict[str, float]]:
        targets = {n: self.items[n].data(COL_TARGET, TARGET_ROLE) for n in self.checked()}
        targets = {n: v for n, v in targets.items() if v is not None}
        return targets or None

    def set_checked(self, name: str, checked: bool) -> None:
        self.items[name].setCheckState(COL_NAME, Qt.CheckState.Checked if checked
                                       else Qt.CheckState.Unchecked)

    def set_all_checked(self, checked: bool) -> None:
        for name in self.prunable_names():
            self.set_checked(name, checked)

    def set_target(self, name: str, value: Optional[float]) -> None:
        item = self.items[name]
        item.setData(COL_TARGET, TARGET_ROLE, value)
        item.setText(COL_TARGET, _target_text(value))
        item.setForeground(COL_TARGET, DEFAULT_BRUSH if value is None else QBrush())

    def clear_targets(self) -> None:
        for name in self.prunable_names():
            self.set_target(name, None)

    def apply_selection(self, include: Optional[list[str]], per_layer: Optional[dict[str, float]]) -> None:
        """Shows a recipe's include list and per-layer targets (exact names; patterns select all)."""
        from engine.pruning.targets import matches
        for name in self.prunable_names():
            self.set_checked(name, include is None or any(matches(name, p) for p in include))
            self.set_target(name, (per_layer or {}).get(name))

    # ------------------------------------------------------------ parameter groups

    def select_pattern(self, pattern: Optional[str] = None) -> list[str]:
        """Ticks exactly the prunable parameters matching ``pattern`` (as a recipe's include entry:
        name, glob or re:regex) and unticks the rest; returns them. When nothing matches, the ticks
        stay as they were and the panel says so."""
        pattern = (self.pattern.text() if pattern is None else pattern).strip()
        if pattern != self.pattern.text().strip():
            self.pattern.setText(pattern)
        if not pattern or self.info is None:
            self._say_pattern("Type a name, a glob or re:regex, then press Enter.", False)
            return []
        try:
            matched = [n for n in self.prunable_names() if matches(n, pattern)]
        except re.error as exc:
            self._say_pattern(f"Not a valid regular expression: {exc}", False)
            return []
        if not matched:
            examples = ", ".join(self.prunable_names()[:3])
            self._say_pattern(f"No prunable parameter matches '{pattern}' (names look like "
                              f"{examples}); the ticks are unchanged.", False)
            return []
        self._syncing = True
        try:
            for name in self.prunable_names():
                self.set_checked(name, name in matched)
        finally:
            self._syncing = False
        self._refresh_module_checks()
        self._selection_changed()
        numel = sum(p.numel for p in self.info.prunable if p.name in matched)
        self._say_pattern(f"'{pattern}' matched {len(matched)} of {len(self.prunable_names())} "
                          f"prunable parameters ({numel:,} weights): only these are ticked.", True)
        return matched

    def _say_pattern(self, text: str, ok: bool) -> None:
        self.pattern_result.setText(text)
        self.pattern_result.setStyleSheet("" if ok else "color: #b41e1e")

    def set_group(self, group: Optional[GroupSparsity]) -> None:
        """The engine's zero count for the ticked group (see engine.pruning.targets.group_sparsity);
        a count made for other ticks than the current ones is dropped."""
        self.group = group if group is not None and set(group.names) == set(self.checked()) else None
        self._show_group()

    def _selection_changed(self) -> None:
        if self.group is not None and set(self.group.names) != set(self.checked()):
            self.group = None  # counted for other ticks: wait for the new count
        self._show_group()
        self.selection_changed.emit()

    def _show_group(self) -> None:
        if self.info is None:
            self.group_label.setText("")
            return
        checked = set(self.checked())
        numel = sum(p.numel for p in self.info.prunable if p.name in checked)
        text = f"Selected group: {_count(len(checked), 'param')}, {numel:,} weights"
        if self.group is not None:
            text = (f"{describe_group(self.group)} ({self.group.zeros:,} of {self.group.numel:,} "
                    f"weights are zero)")
        self.group_label.setText(text)

    def _on_current(self, item: Optional[QTreeWidgetItem], _previous) -> None:
        if item is not None and item.data(COL_TARGET, NAME_ROLE):
            self.param_selected.emit(item.data(COL_TARGET, NAME_ROLE))
