"""The window behaves like a desktop tool people trust: readable names, no silent loss of work,
settings that never leak out of the tests, remembered layout, a palette-aware theme, an About box."""
import os
import tempfile
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QHeaderView
from torch import nn

from engine.model_info import describe_model
from gui.main_window import MainWindow
from gui.panels.model_tree import COL_NAME, ModelPanel


def _deep_model() -> nn.Module:
    """BERT's nesting (bert.encoder.layer.0.attention.self.query) without transformers."""
    query = nn.Module()
    query.query = nn.Linear(8, 8)
    output = nn.Module()
    output.LayerNorm = nn.LayerNorm(8)
    attention = nn.Module()
    attention.self = query
    attention.output = output
    layer = nn.Module()
    layer.attention = attention
    encoder = nn.Module()
    encoder.layer = nn.ModuleList([layer])
    bert = nn.Module()
    bert.embeddings = nn.Module()
    bert.embeddings.token_type_embeddings = nn.Embedding(2, 8)
    bert.encoder = encoder
    model = nn.Module()
    model.bert = bert
    model.classifier = nn.Linear(8, 2)
    return model


@pytest.mark.parametrize("make", [lambda: __import__("torchvision").models.resnet18(),
                                  _deep_model], ids=["resnet18", "bert-like"])
def test_tree_names_are_readable_and_the_column_resizable(qtbot, make):
    panel = ModelPanel()
    qtbot.addWidget(panel)
    panel.resize(330, 600)
    panel.show()
    panel.set_model(describe_model(make()))
    header = panel.tree.header()
    assert header.sectionResizeMode(COL_NAME) == QHeaderView.ResizeMode.Interactive
    width = header.sectionSize(COL_NAME)
    for item in panel._all_items():   # every name fits its column: nothing elided
        assert panel.name_width_needed(item) <= width, (item.text(COL_NAME), width)
        assert item.toolTip(COL_NAME)   # the full dotted name on hover
    leaf = panel.items[panel.prunable_names()[-1]]
    assert leaf.toolTip(COL_NAME) == panel.prunable_names()[-1]
    # check boxes are not clipped: the row is as tall as the indicator
    indicator = panel.tree.style().pixelMetric(panel.tree.style().PixelMetric.PM_IndicatorHeight)
    assert panel.tree.visualItemRect(leaf).height() >= indicator
    header.resizeSection(COL_NAME, width + 80)   # the user widens it
    assert header.sectionSize(COL_NAME) == width + 80


def test_tests_never_write_the_users_settings(qtbot, tmp_path):
    w = MainWindow()   # the default settings, as the app uses them
    qtbot.addWidget(w)
    path = Path(w.settings.fileName()).resolve()
    # inside the suite's throw-away home (tests/conftest.py), never the real ~/.config
    assert path.is_relative_to(Path(tempfile.gettempdir()).resolve()), path
    assert path.is_relative_to(Path(os.environ["HOME"]).resolve()), path
    w.close()


def test_open_recent_drops_missing_files_and_can_be_cleared(qtbot, window, tmp_path):
    kept, gone = tmp_path / "kept.json", tmp_path / "gone.json"
    kept.write_text("{}")
    gone.write_text("{}")
    window._remember("recipe", str(gone))
    window._remember("recipe", str(kept))
    gone.unlink()
    window._refresh_recent()
    texts = [a.text() for a in window.recent_menu.actions() if not a.isSeparator()]
    assert any("kept.json" in t for t in texts)
    assert not any("gone.json" in t for t in texts)
    assert [i["path"] for i in window.recent_files()] == [str(kept.resolve())]
    window.clear_recent_action.trigger()
    assert window.recent_files() == []
    assert not window.recent_menu.isEnabled()


def _mnemonic(text: str):
    i = text.replace("&&", "").find("&")
    return text.replace("&&", "")[i + 1].lower() if i >= 0 else None


def test_menus_have_unique_mnemonics_and_an_about_box(qtbot, window):
    menus = [a.menu() for a in window.menuBar().actions()]
    top = [_mnemonic(a.text()) for a in window.menuBar().actions()]
    assert None not in top and len(set(top)) == len(top), top
    stack = list(menus)
    while stack:
        menu = stack.pop()
        keys = [_mnemonic(a.text()) for a in menu.actions() if a.text()]
        keys = [k for k in keys if k is not None]
        assert len(set(keys)) == len(keys), (menu.title(), [a.text() for a in menu.actions()])
        stack.extend(a.menu() for a in menu.actions() if a.menu() is not None)
    import tomllib
    version = tomllib.loads(Path("pyproject.toml").read_text())["project"]["version"]
    window.about_action.trigger()
    text = window.about_box.text()
    assert f"PruneLab {version}" in text and "MIT" in text and "README" in text
    window.about_box.close()


def test_long_tooltips_wrap(qtbot, window):
    from PySide6.QtCore import QEvent, QPoint
    from PySide6.QtGui import QHelpEvent
    from PySide6.QtWidgets import QApplication, QToolTip
    widget = window.method_panel.structured_box
    assert len(widget.toolTip()) > 200   # a paragraph
    pos = QPoint(5, 5)
    QApplication.sendEvent(widget, QHelpEvent(QEvent.Type.ToolTip, pos, widget.mapToGlobal(pos)))
    assert QToolTip.isVisible()
    shown = QToolTip.text()
    assert shown.startswith("<p") and "white-space:pre-wrap" in shown   # rich text: Qt wraps it
    label = next(w for w in QApplication.topLevelWidgets() if w.objectName() == "qtooltip_label")
    assert label.wordWrap() and label.sizeHint().width() < 700
    QToolTip.hideText()


def _tooltip_shown_for(widget, pos=None):
    from PySide6.QtCore import QEvent, QPoint
    from PySide6.QtGui import QHelpEvent
    from PySide6.QtWidgets import QApplication, QToolTip
    pos = pos or QPoint(5, 5)
    QApplication.sendEvent(widget, QHelpEvent(QEvent.Type.ToolTip, pos, widget.mapToGlobal(pos)))
    shown = QToolTip.text() if QToolTip.isVisible() else None
    QToolTip.hideText()
    return shown


def test_long_tooltips_wrap_in_item_lists_rebuilt_rows_and_dialogs(qtbot, window):
    """Wrapping reaches a combo box's list items, option rows built after a method change, and
    dialogs built later."""
    from PySide6.QtCore import Qt
    from engine.config import ModelSpec
    from engine.models.architectures import architecture_names
    from gui.dialogs import OpenModelDialog
    panel = window.method_panel
    combo = panel.component_boxes["method"]
    combo.showPopup()
    view = combo.view()
    index = next(view.model().index(i, 0) for i in range(combo.count())
                 if len(combo.itemData(i, Qt.ItemDataRole.ToolTipRole) or "") > 100)
    shown = _tooltip_shown_for(view.viewport(), view.visualRect(index).center())
    combo.hidePopup()
    assert shown is not None and shown.startswith("<p")
    long_labels = []
    for i in range(combo.count()):   # each method change rebuilds the option rows
        combo.setCurrentIndex(i)
        labels = [panel.options_form.labelForField(w) for _, w in panel.option_widgets.values()]
        long_labels += [label for label in labels if len(label.toolTip()) > 100]
        if long_labels:
            break
    assert long_labels and _tooltip_shown_for(long_labels[0]).startswith("<p")
    dialog = OpenModelDialog(None, ModelSpec(), architecture_names())
    qtbot.addWidget(dialog)
    dialog.show()
    items = dialog.source.view()
    row = next(i for i in range(dialog.source.count())
               if len(dialog.source.itemData(i, Qt.ItemDataRole.ToolTipRole) or "") > 100)
    centre = items.visualRect(items.model().index(row, 0)).center()
    shown = _tooltip_shown_for(items.viewport(), centre)
    assert shown is not None and shown.startswith("<p")


def test_tooltip_wrapping_runs_no_python_for_other_widgets_events(qtbot, window, monkeypatch):
    """The wrapper filters only widgets that show tooltips: a plot's repaints and the window's
    own events do not call into Python (an application-wide filter did, for every event, and
    had to win the GIL from a training worker each time)."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication
    import gui.tooltips
    seen = []
    original = gui.tooltips.show_wrapped

    def counting(obj, event):
        seen.append((type(obj).__name__, event.type()))
        return original(obj, event)
    monkeypatch.setattr(gui.tooltips, "show_wrapped", counting)
    quiet = (window, window.density, window.centralWidget(), window.histograms)
    for widget in quiet:
        QApplication.sendEvent(widget, QEvent(QEvent.Type.UpdateRequest))
        widget.update()
    qtbot.wait(50)
    assert seen and not [name for name, _ in seen if name in {type(w).__name__ for w in quiet}]
    seen.clear()
    assert _tooltip_shown_for(window.method_panel.structured_box).startswith("<p")
    assert any(kind == QEvent.Type.ToolTip for _, kind in seen)


def test_source_lists_show_names_and_torchvision_proposes_resnet18(qtbot):
    from engine.config import ModelSpec
    from engine.models.architectures import architecture_names
    from gui.dialogs import OpenDataDialog, OpenModelDialog
    dialog = OpenModelDialog(None, ModelSpec(), architecture_names())
    qtbot.addWidget(dialog)
    texts = [dialog.source.itemText(i) for i in range(dialog.source.count())]
    ids = [dialog.source.itemData(i) for i in range(dialog.source.count())]
    assert "state_dict" in ids and "hf" in ids
    assert "state_dict" not in texts and "hf" not in texts   # people's words, ids as item data
    dialog.source.setCurrentIndex(dialog.source.findData("torchvision"))
    assert dialog.arch.currentText() == "resnet18"
    assert dialog.spec().source == "torchvision" and dialog.spec().arch == "resnet18"
    data = OpenDataDialog(None, None)
    qtbot.addWidget(data)
    assert "text_tsv" not in [data.source.itemText(i) for i in range(data.source.count())]


def test_pruned_corner_values_print_without_a_minus_sign():
    import numpy as np
    from engine.snapshots import format_matrix
    text = format_matrix(np.array([[-0.0, 0.5], [-0.00001, -0.25]]))
    assert "-0.0000" not in text and "0.0000" in text and "-0.2500" in text


def test_revert_quit_and_open_ask_before_losing_a_pruned_model(qtbot, demo_window, tmp_path):
    from engine.config import ExportSpec
    from tests.gui.conftest import wait_done
    w = demo_window
    assert w.revert_action.shortcut().toString() != "Ctrl+Shift+Z"   # that is Redo elsewhere
    asked = []
    w.ask = lambda parent, title, text, confirm: asked.append(confirm) or False
    wait_done(qtbot, w, w.revert, "revert")   # nothing pruned yet: no question
    assert asked == []
    w.method_panel.sparsity.setValue(60.0)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    sparsity = w.model_panel.info.params[0].sparsity
    assert w.revert() is False and asked == ["Revert"]
    assert w.busy_op is None and w.model_panel.info.params[0].sparsity == sparsity
    assert w.open_demo() is False and asked[-1] == "Open"
    w.close()
    assert w.isVisible() and asked[-1] == "Quit"   # the close was refused
    wait_done(qtbot, w, lambda: w.export(ExportSpec(str(tmp_path / "m.pt"))), "export")
    asked.clear()
    wait_done(qtbot, w, w.revert, "revert")   # exported: nothing is lost, nothing asked
    assert asked == []
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    w.ask = lambda parent, title, text, confirm: asked.append(confirm) or True
    wait_done(qtbot, w, w.revert, "revert")
    assert asked == ["Revert"]


def test_layout_and_method_settings_are_remembered_and_fit_small_screens(qtbot, tmp_path):
    from PySide6.QtCore import QRect
    from PySide6.QtWidgets import QDockWidget
    from gui.window.layout import FRAME_ALLOWANCE
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    first = MainWindow(settings)
    qtbot.addWidget(first)
    first.show()
    first.resize(first.width(), 700)   # the default is the screen's free height
    first.resizeDocks([first._dock("model_dock")], [420], Qt.Orientation.Horizontal)
    qtbot.wait(50)
    dock_width = first._dock("model_dock").width()
    first.method_panel.sparsity.setValue(73.0)
    first.method_panel.epochs.setValue(4)
    first.close()
    second = MainWindow(settings)
    qtbot.addWidget(second)
    second.show()
    qtbot.wait(50)
    # (the test screen is 800 px wide: Qt keeps a restored window's width on it)
    assert second.height() == 700 and second.width() == first.width()
    assert abs(second._dock("model_dock").width() - dock_width) <= 2
    assert second.method_panel.sparsity.value() == 73.0 and second.method_panel.epochs.value() == 4
    second.close()
    # a 1280x800 screen (a 30-px panel): the whole window, status bar included, is on it
    fresh = MainWindow(QSettings(str(tmp_path / "t.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(fresh)
    fresh._fit_to_screen(QRect(0, 0, 1280, 770))
    fresh.show()
    qtbot.wait(50)
    assert fresh.height() + FRAME_ALLOWANCE <= 770 and fresh.width() <= 1280
    bar = fresh.statusBar()
    assert bar.isVisible() and bar.geometry().bottom() <= fresh.height()
    # a 1080p screen at scale 2 (960x540 logical): the Method panel goes under Model, on screen
    fresh._fit_to_screen(QRect(0, 0, 960, 510))
    qtbot.wait(50)
    method = fresh._dock("method_dock")
    assert fresh.dockWidgetArea(method) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert method.isVisible() and method.geometry().right() <= fresh.width()
    assert fresh.minimumSizeHint().width() <= 960 and fresh.width() <= 960
    fresh._fit_to_screen(QRect(0, 0, 1920, 1080))   # a large screen: side by side again
    qtbot.wait(50)
    assert fresh.dockWidgetArea(method) == Qt.DockWidgetArea.RightDockWidgetArea
    assert method.isVisible()
    fresh.close()


def test_plots_follow_a_dark_palette_and_back(qtbot, demo_window):
    import pyqtgraph as pg
    from PySide6.QtCore import QRect
    from tests.gui.conftest import dark_palette
    w = demo_window
    light = w.palette()
    w.setPalette(dark_palette(light))   # as a system theme switch does: a PaletteChange event
    qtbot.wait(20)
    for view in (w.histograms.big, w.density.plot, w.training.acc_plot, w.sensitivity.plot):
        assert view.backgroundBrush().color().lightness() < 60
        axis = view.getPlotItem().getAxis("left")
        assert axis.textPen().color().lightness() > 200
    # the small multiples paint with the palette: dark background, light titles
    thumbs = w.histograms.thumbnails
    title = thumbs.grab(QRect(0, 0, thumbs.width(), 24)).toImage()
    lightness = [title.pixelColor(x, y).lightness()
                 for x in range(0, title.width(), 2) for y in range(title.height())]
    assert min(lightness) < 60 and max(lightness) > 200
    w.setPalette(light)
    qtbot.wait(20)
    assert w.histograms.big.backgroundBrush().color().lightness() > 200
    assert isinstance(w.histograms.big, pg.PlotWidget)
