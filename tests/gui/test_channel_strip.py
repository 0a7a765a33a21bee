"""The Masks view's channel strip: the selected layer's dependency group drawn as cells, one per
output channel in original order, the ones the structured settings would remove (and, after a
removal, the ones removed) in their own colours, with a hover readout; checked against what the
engine says and against the rendered pixels."""
import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QMouseEvent
from PySide6.QtWidgets import QApplication

from engine.config import DataSpec, ModelSpec
from engine.structured.preflight import group_of, plan_groups
from gui.views.channel_strip import (KEPT, PLANNED, REMOVED, ChannelGroupStrip, StripRow,
                                     strip_colours)
from tests.gui.conftest import OPEN_TIMEOUT_MS, dark_palette, wait_done


def _engine_plan(w, layer):
    """What the engine's preview says for the window's current model and settings."""
    session = w.worker.session
    plans = plan_groups(session.model, session.data.example_input(1),
                        w.method_panel.structured_spec())
    return group_of(plans, layer)


def _show(qtbot, w, layer):
    w.tabs.setCurrentWidget(w.masks)
    w.show_group(f"{layer}.weight")
    strip = w.masks.group_strip
    qtbot.waitUntil(lambda: strip.isVisible() and strip.caption.text().startswith(
        f"group of {layer}"), timeout=60_000)
    return strip


def _row_of(strip, layer):
    return next(r for r, row in enumerate(strip.strip.rows) if layer in row.layers)


def _hover(strip, row, index):
    """Moves the mouse over a cell (a move event as the window system sends it) and returns the
    readout under the strip."""
    cells = strip.strip
    centre = QPointF(cells.cell_rect(row, index).center())
    event = QMouseEvent(QMouseEvent.Type.MouseMove, centre, cells.mapToGlobal(centre),
                        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(cells, event)
    return strip.hover.text()


def _pixel(image, cells, row, index):
    return QColor(image.pixel(cells.cell_rect(row, index).center()))


def _check_pixels(strip, row, expected: dict[int, list[int]]):
    """Every listed cell is drawn in its state's colour in the rendered widget."""
    cells = strip.strip
    image = cells.grab().toImage()
    colours = strip_colours(cells.palette())
    for state, indices in expected.items():
        for index in indices[:3]:
            assert _pixel(image, cells, row, index) == colours[state], (state, index)
    return image


def test_demo_strip_shows_the_preview_then_the_removed_original_indices(qtbot, demo_window):
    w = demo_window
    w.method_panel.st_ratio.setValue(50.0)
    strip = _show(qtbot, w, "conv2")
    planned = _engine_plan(w, "conv2").remove["conv2"]
    row = _row_of(strip, "conv2")
    assert strip.strip.cells(PLANNED, row) == planned and len(planned) == 8
    assert strip.strip.cells(KEPT, row) == sorted(set(range(16)) - set(planned))
    assert strip.caption.text().startswith(
        "group of conv2: 16 channels, 8 would be removed by L1 at 50%")
    kept = strip.strip.cells(KEPT, row)
    assert _hover(strip, row, planned[0]) == (
        f"conv2: output channel {planned[0]} of 16 (original numbering), would be removed")
    assert _hover(strip, row, kept[0]).endswith(f"channel {kept[0]} of 16 (original numbering), kept")
    image = _check_pixels(strip, row, {PLANNED: planned, KEPT: kept})
    assert _pixel(image, strip.strip, row, planned[0]) != _pixel(image, strip.strip, row, kept[0])
    # the strip follows the ratio without selecting the layer again
    w.method_panel.st_ratio.setValue(25.0)
    qtbot.waitUntil(lambda: "4 would be removed by L1 at 25%" in strip.caption.text(),
                    timeout=30_000)
    assert strip.strip.cells(PLANNED, row) == _engine_plan(w, "conv2").remove["conv2"]
    w.method_panel.st_ratio.setValue(50.0)
    qtbot.waitUntil(lambda: "8 would be removed by L1 at 50%" in strip.caption.text(),
                    timeout=30_000)
    assert strip.strip.cells(PLANNED, row) == planned
    # the indices stay copyable as text
    assert "would remove indices" in w.masks.group_note.text()
    assert w.masks.group_note.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse

    # a real removal: the same strip, redrawn for the smaller model without selecting again
    w.method_panel.structured_box.setChecked(True)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    removed = w.worker.session.structured.removed_channels["conv2"]
    qtbot.waitUntil(lambda: bool(strip.strip.cells(REMOVED, _row_of(strip, "conv2"))), timeout=60_000)
    row = _row_of(strip, "conv2")
    assert strip.strip.cells(REMOVED, row) == removed == planned
    assert len(strip.strip.rows[row].states) == 16   # original numbering, not the 8 left
    # the next round's preview, mapped back to original indices among the survivors
    survivors = [c for c in range(16) if c not in removed]
    again = _engine_plan(w, "conv2").remove["conv2"]
    assert strip.strip.cells(PLANNED, row) == [survivors[i] for i in again]
    assert "8 already removed, 4 more would be removed" in strip.caption.text()
    assert _hover(strip, row, removed[0]).endswith(
        "removed already")
    _check_pixels(strip, row, {REMOVED: removed, PLANNED: strip.strip.cells(PLANNED, row),
                               KEPT: strip.strip.cells(KEPT, row)})
    assert "would remove original indices" in w.masks.group_note.text()


@pytest.fixture
def resnet_window(qtbot, window):
    """resnet18 (random init, nothing downloaded) on synthetic 3x32x32 inputs."""
    wait_done(qtbot, window, lambda: window.open_session(
        ModelSpec(source="torchvision", arch="resnet18", num_classes=10),
        DataSpec(source="none", input_shape=[3, 32, 32])), "open", OPEN_TIMEOUT_MS)
    return window


def test_resnet18_downsample_group_strip_matches_the_engine(qtbot, resnet_window):
    w = resnet_window
    w.resize(1280, 800)
    w.method_panel.st_ratio.setValue(50.0)
    layer = "layer2.0.downsample.0"
    strip = _show(qtbot, w, layer)
    plan = _engine_plan(w, layer)
    row = _row_of(strip, layer)
    # the residual ties the downsample and both blocks' last convs: they share one row
    assert {"layer2.0.downsample.0", "layer2.0.conv2", "layer2.1.conv2"} <= \
        set(strip.strip.rows[row].layers)
    assert strip.strip.cells(PLANNED, row) == plan.remove[layer] and len(plan.remove[layer]) == 64
    assert strip.caption.text().startswith(
        f"group of {layer}: 128 channels, 64 would be removed by L1 at 50%")
    assert w.model_panel.module_items["layer2.1.conv2"].background(0).color().isValid()
    text = _hover(strip, row, plan.remove[layer][0])
    assert text.startswith(f"{layer} (and ") and text.endswith("would be removed")
    kept = strip.strip.cells(KEPT, row)
    _check_pixels(strip, row, {PLANNED: plan.remove[layer], KEPT: kept})

    w.method_panel.structured_box.setChecked(True)
    wait_done(qtbot, w, w.prune_action.trigger, "prune", timeout=240_000)
    removed = w.worker.session.structured.removed_channels[layer]
    qtbot.waitUntil(lambda: bool(strip.strip.cells(REMOVED, _row_of(strip, layer))), timeout=60_000)
    row = _row_of(strip, layer)
    assert strip.strip.cells(REMOVED, row) == removed == plan.remove[layer]
    _check_pixels(strip, row, {REMOVED: removed})
    assert _hover(strip, row, removed[0]).endswith("removed already")
    qtbot.wait(50)   # the caption, key and readout fit the window: it keeps its width
    assert w.width() == 1280

    # a dark theme: the cells and the gaps follow the palette
    light = w.palette()
    dark = dark_palette(light)
    w.setPalette(dark)
    image = _check_pixels(strip, row, {REMOVED: removed, KEPT: strip.strip.cells(KEPT, row)})
    gap = strip.strip.cell_rect(row, 0).bottomLeft() + QPoint(0, 2)   # between two rows
    assert QColor(image.pixel(gap)).lightness() < 60
    assert strip_colours(dark)[REMOVED] != strip_colours(light)[REMOVED]
    w.setPalette(light)


def test_a_wide_group_draws_in_a_few_milliseconds(qtbot):
    panel = ChannelGroupStrip()
    qtbot.addWidget(panel)
    rng = np.random.default_rng(0)
    states = rng.choice([KEPT, PLANNED, REMOVED], size=2048).astype(np.uint8)
    rows = [StripRow([f"block{i}.conv"], np.roll(states, i)) for i in range(4)]
    panel.resize(1100, 200)
    panel.show()
    panel.set_rows(rows, "group of block0.conv: 2048 channels")
    cells = panel.strip
    assert cells.cell_width == 2 and cells.width() >= 4096   # scrolls sideways, nothing dropped
    cells.grab()   # builds the cached image once
    times = []
    for _ in range(5):
        started = time.perf_counter()
        image = cells.grab(panel.scroll.viewport().rect()).toImage()
        times.append(time.perf_counter() - started)
    print(f"2048-channel strip, 4 rows, visible part: {min(times) * 1e3:.2f}-{max(times) * 1e3:.2f} ms")
    assert min(times) < 0.05
    colours = strip_colours(cells.palette())
    visible = image.width() // cells.cell_width
    assert visible > 400
    for index in range(visible):   # every visible cell keeps its colour, none merged away
        assert QColor(image.pixel(cells.cell_rect(0, index).center())) == colours[int(states[index])]
