"""Readouts and labels in the views: hover on the histograms and density bars, the global
magnitude threshold on every histogram, LSTM gate blocks and embedding rows in the mask view."""
import numpy as np
import pytest

from gui.views.masks import MaskView
from gui.worker import MatrixData
from tests.gui.conftest import wait_done


def test_lstm_gates_and_embedding_rows_are_labelled(qtbot):
    view = MaskView()
    qtbot.addWidget(view)
    view.set_parameters(["lstm.weight_ih_l0", "embedding.weight"])
    image = np.ones((16, 8), dtype=np.float32)
    view.set_matrix(MatrixData("lstm.weight_ih_l0", "weight", (16, 8), image))
    assert view.block_labels() == ["i", "f", "g", "o"]
    assert [item.pos().y() for item in view.block_items if hasattr(item, "toPlainText")] == [0, 4, 8, 12]
    assert "forget" in view.plot.getAxis("left").labelText
    view.select("embedding.weight")
    view.set_matrix(MatrixData("embedding.weight", "weight", (16, 8), image))
    assert view.block_labels() == []   # the gate labels went with the LSTM weight
    assert "token" in view.plot.getAxis("left").labelText


def test_histograms_and_density_read_out_on_hover_and_draw_the_global_threshold(qtbot,
                                                                                demo_window):
    w = demo_window
    w.method_panel.scope.setCurrentIndex(w.method_panel.scope.findData("global"))
    w.method_panel.sparsity.setValue(60.0)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    qtbot.waitUntil(lambda: w.histograms.threshold is not None, timeout=5_000)
    t = w.histograms.threshold
    lines = w.histograms.big_pair.thresholds
    assert all(line.isVisible() for line in lines)
    assert sorted(line.value() for line in lines) == pytest.approx([-t, t])
    assert w.histograms.thumbnails.threshold == t   # the small multiples draw it too
    assert 0 < t < 1
    # hover: the bin under the mouse, with both counts
    name = w.histograms.layer.currentText()
    edges = w.histograms.original.histograms[name].edges
    text = w.histograms.readout_at(float(edges[3] + edges[4]) / 2)
    assert text.startswith(f"{name}: bin [") and "original" in text and "now" in text
    view = w.histograms.big.getPlotItem().getViewBox()
    w.histograms._on_mouse(view.mapViewToScene(view.mapToView(view.rect().center())))
    assert w.histograms.hover.text().startswith(name)
    density = w.density.readout_at(0.1)
    first = w.density.names[0]
    before, after = w.density.densities()[first]
    assert density == f"{first}: density now {after:.2%}, original {before:.2%}"
    wait_done(qtbot, w, w.revert, "revert")
    assert w.histograms.threshold is None and not lines[0].isVisible()
