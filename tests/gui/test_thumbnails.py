"""The histogram small multiples: one painted widget, cells in reading order."""
import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from engine.snapshots import LayerHistogram
from gui.views import CURRENT_COLOR
from gui.views.thumbnails import CELL_HEIGHT, HistogramThumbnails


def _hist(name, counts, nonfinite=0):
    counts = np.asarray(counts, dtype=np.int64)
    return LayerHistogram(name, np.linspace(-1, 1, len(counts) + 1), counts, counts, nonfinite)


@pytest.fixture
def thumbs(qtbot):
    widget = HistogramThumbnails()
    qtbot.addWidget(widget)
    widget.resize(620, 400)   # three 206-px columns
    names = [f"layer{i}.weight" for i in range(7)]
    widget.set_layers(names)
    before = {n: _hist(n, [1, 5, 9, 5, 1]) for n in names}
    after = {n: _hist(n, [1, 3, 0, 3, 1], nonfinite=2 if n == "layer6.weight" else 0)
             for n in names}
    widget.set_histograms(before, after, nonzero_only=True)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_cells_follow_reading_order_and_a_click_names_the_layer(qtbot, thumbs):
    assert thumbs.columns() == 3 and thumbs.rows() == 3
    assert thumbs.height() == 3 * CELL_HEIGHT   # every row is reachable in the scroll area
    assert thumbs.name_at(10, 10) == "layer0.weight"
    assert thumbs.name_at(thumbs.width() - 5, CELL_HEIGHT + 5) == "layer5.weight"
    assert thumbs.name_at(thumbs.width() - 5, 2 * CELL_HEIGHT + 5) is None   # past the last
    with qtbot.waitSignal(thumbs.clicked) as got:
        qtbot.mouseClick(thumbs, Qt.MouseButton.LeftButton,
                         pos=QPoint(thumbs.width() // 2, CELL_HEIGHT + 40))
    assert got.args == ["layer4.weight"]
    assert "NaN/inf not drawn" in thumbs.summary("layer6.weight")
    assert "NaN/inf" not in thumbs.summary("layer0.weight")


def test_cells_paint_both_curves_and_repaint_on_new_data(qtbot, thumbs):
    image = thumbs.grab().toImage()
    blue = 0
    for x in range(0, thumbs.width(), 2):
        for y in range(0, CELL_HEIGHT):
            c = image.pixelColor(x, y)
            if abs(c.red() - CURRENT_COLOR[0]) < 30 and abs(c.blue() - CURRENT_COLOR[2]) < 30 \
                    and c.blue() > c.red() + 60:
                blue += 1
    assert blue > 20   # the "now" curve is drawn in the first row
    paints = thumbs.paints
    thumbs.set_threshold(0.25)
    qtbot.waitUntil(lambda: thumbs.paints > paints, timeout=2000)
    assert thumbs.threshold == 0.25
