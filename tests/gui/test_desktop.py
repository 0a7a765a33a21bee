"""The window behaves like a desktop tool people trust: readable names, no silent loss of work,
settings that never leak out of the tests, remembered layout, a palette-aware theme, an About box."""
import os
import tempfile
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QSettings
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
