"""The window beyond the happy path: engine errors become a dialog and the app stays usable,
per-parameter targets from the tree, files that run code need trust, drag-and-drop, recent files,
recipes, the mask view and the app entry point."""
import json

import numpy as np
import pytest
import torch
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication

import gui.main_window as main_window
import gui.window.files as window_files
from engine.config import DataSpec, ExportSpec, ModelSpec, Recipe
from engine.models.lenet import LeNet
from gui.views.masks import grid_index
from tests.gui.conftest import wait_done


@pytest.fixture
def image_folder(tmp_path):
    """A tiny image-folder data set (10 classes) that needs nothing shipped."""
    from PIL import Image
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c in range(10):
        (root / str(c)).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(root / str(c) / f"{i}.png")
    return DataSpec(source="imagefolder", root=str(root), image_size=28, channels=1)


@pytest.fixture
def lenet_file(tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "lenet.pt"
    torch.save(LeNet().state_dict(), path)
    return path


def test_engine_error_shows_dialog_and_app_stays_usable(qtbot, demo_window):
    w = demo_window
    # per-parameter targets are a local setting: the engine refuses them with global scope
    w.method_panel.scope.setCurrentIndex(w.method_panel.scope.findData("global"))
    w.model_panel.set_target("conv1.weight", 0.3)
    with qtbot.waitSignal(w.operation_failed, timeout=30_000) as blocker:
        w.prune_action.trigger()
    assert blocker.args[0] == "prune" and "per-layer" in blocker.args[1]
    assert w.error_box is not None and w.error_box.isVisible()
    assert "per-layer" in w.error_box.text()
    assert w.busy_op is None and w.prune_action.isEnabled()
    # the failed run left the model as it was
    assert all(now == pytest.approx(1.0, abs=1e-3) for _, now in w.density.densities().values())
    w.error_box.close()
    w.model_panel.clear_targets()
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    assert w.density.densities()["fc1.weight"][1] < 0.9


def test_nothing_ticked_is_refused_before_running(qtbot, demo_window):
    w = demo_window
    w.model_panel.set_all_checked(False)
    assert w.prune() is False
    assert w.busy_op is None and "no parameter is ticked" in w.last_error
    assert w.error_box.isVisible()


def test_per_parameter_targets_and_ticks_from_the_tree(qtbot, demo_window):
    w = demo_window
    panel = w.method_panel
    panel.scope.setCurrentIndex(panel.scope.findData("local"))
    panel.sparsity.setValue(50.0)
    w.model_panel.set_target("conv1.weight", 0.3)
    w.model_panel.set_checked("fc3.weight", False)
    wait_done(qtbot, w, w.prune, "prune")
    density = w.density.densities()
    assert density["conv1.weight"][1] == pytest.approx(0.7, abs=0.01)
    assert density["fc1.weight"][1] == pytest.approx(0.5, abs=0.01)
    assert density["fc3.weight"][1] == pytest.approx(1.0, abs=1e-3)


def test_mask_view_shows_kernel_grid_and_hover(qtbot, demo_window):
    w = demo_window
    w.method_panel.sparsity.setValue(60.0)
    wait_done(qtbot, w, w.prune, "prune")
    w.tabs.setCurrentWidget(w.masks)
    w.masks.show.setCurrentText("Mask")
    w.model_panel.tree.setCurrentItem(w.model_panel.items["conv2.weight"])
    qtbot.waitUntil(lambda: w.masks.data is not None and w.masks.data.name == "conv2.weight"
                    and w.masks.data.what == "mask", timeout=10_000)
    image = w.masks.data.image
    assert image.shape == (16 * 6 - 1, 6 * 6 - 1)   # 16 filters x 6 channels of 5x5, 1-px gaps
    kept = np.nanmean(image)
    assert kept == pytest.approx(w.density.densities()["conv2.weight"][1], abs=1e-6)
    assert np.isnan(image[5, 0]) and np.isnan(image[0, 5])   # the gaps between kernels
    assert w.histograms.layer.currentText() == "conv2.weight"  # selection follows the tree
    # hovering over pixel (row 7, col 13) names filter 1, channel 2, kernel (1, 1)
    qtbot.waitUntil(lambda: w.masks.plot.isVisible(), timeout=2000)
    vb = w.masks.plot.getPlotItem().getViewBox()
    scene = vb.mapViewToScene(QPointF(13.5, 7.5))
    w.masks._on_mouse((scene,))
    assert w.masks.hover.text().startswith("conv2.weight[1, 2, 1, 1] = ")
    assert grid_index((16, 6, 5, 5), 5, 0) is None and grid_index((120, 256), 3, 7) == (3, 7)


def test_histogram_non_zero_toggle(qtbot, demo_window):
    w = demo_window
    w.method_panel.sparsity.setValue(70.0)
    wait_done(qtbot, w, w.prune, "prune")
    w.histograms.select("fc1.weight")
    w.histograms.nonzero.setChecked(False)
    _, all_counts = w.histograms.big_pair.after.getData()
    w.histograms.nonzero.setChecked(True)
    _, nonzero_counts = w.histograms.big_pair.after.getData()
    zeros = sum(all_counts) - sum(nonzero_counts)
    layer = next(l for l in w.histograms.current.layers if l.name == "fc1.weight")
    assert zeros == layer.numel - layer.nonzero > 0
    assert w.histograms.thumbnails.names == w.model_panel.prunable_names()


def test_pickled_model_needs_trust_and_drop_opens_checkpoints(qtbot, window, tmp_path,
                                                              image_folder, lenet_file, monkeypatch):
    w = window
    wait_done(qtbot, w, lambda: w.open_session(ModelSpec(source="state_dict", arch="lenet",
                                                         path=str(lenet_file)), image_folder), "open")
    assert w.model_panel.info.description == "lenet from lenet.pt"
    assert any(r["path"] == str(lenet_file.resolve()) for r in w.recent_files())
    assert w.recent_menu.actions() and w.recent_menu.isEnabled()

    pickled = tmp_path / "whole_model.pt"
    torch.save(LeNet(), pickled)
    asked = []
    monkeypatch.setattr(window_files, "confirm_trust", lambda *a: asked.append(a) or False)
    assert w.open_model(ModelSpec(source="pickle", path=str(pickled))) is False
    assert len(asked) == 1 and w.busy_op is None   # refused: nothing ran

    # dropping the pickle: the safe loader refuses it, the window asks, the user trusts it
    monkeypatch.setattr(window_files, "confirm_trust", lambda *a: asked.append(a) or True)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(pickled))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(w.operation_finished, timeout=60_000, check_params_cb=lambda o: o == "open"):
        w.dropEvent(event)
    assert len(asked) == 2 and "whole_model.pt" in asked[1][1]
    assert w.model_spec.source == "pickle" and w.model_spec.trust_pickle
    assert w.model_panel.info.description == "pickled model whole_model.pt"


def test_recipe_save_and_open_round_trip(qtbot, window, tmp_path, image_folder, lenet_file):
    w = window
    wait_done(qtbot, w, lambda: w.open_session(ModelSpec(source="state_dict", arch="lenet",
                                                         path=str(lenet_file)), image_folder), "open")
    panel = w.method_panel
    panel.component_boxes["method"].setCurrentIndex(panel.component_boxes["method"].findData("l2"))
    panel.sparsity.setValue(35.0)
    panel.epochs.setValue(4)
    w.model_panel.set_target("fc1.weight", 0.9)
    path = tmp_path / "run.json"
    w.save_recipe(str(path))
    recipe = Recipe.load(path)
    assert recipe.prune.method == "l2" and recipe.prune.sparsity == pytest.approx(0.35)
    assert recipe.prune.per_layer == {"fc1.weight": 0.9} and recipe.finetune.epochs == 4
    assert recipe.model.path == str(lenet_file) and recipe.data.root == image_folder.root

    panel.sparsity.setValue(10.0)
    panel.epochs.setValue(0)
    w.model_panel.clear_targets()
    assert w.open_recipe(str(path)) is True   # same model and data: applied without reopening
    assert panel.sparsity.value() == pytest.approx(35.0) and panel.epochs.value() == 4
    assert w.model_panel.per_layer() == {"fc1.weight": 0.9}
    assert w.recipe().prune == recipe.prune

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"prune": {"sparsty": 0.5}}))
    assert w.open_recipe(str(bad)) is False
    assert "sparsty" in w.last_error


def test_app_main_opens_a_recipe_and_quits(qtbot, tmp_path, image_folder, lenet_file):
    from gui.app import main
    recipe = Recipe(model=ModelSpec(source="state_dict", arch="lenet", path=str(lenet_file)),
                    data=image_folder)
    path = tmp_path / "r.json"
    recipe.save(path)
    seen = []

    def close_when_loaded():
        windows = [t for t in QApplication.topLevelWidgets()
                   if isinstance(t, main_window.MainWindow) and t.isVisible()]
        if windows and windows[0].model_panel.info is not None and windows[0].busy_op is None:
            seen.append(windows[0].model_panel.prunable_names())
            windows[0].close()
        else:
            QTimer.singleShot(50, close_when_loaded)
    QTimer.singleShot(50, close_when_loaded)
    assert main([str(path)]) == 0
    assert seen and "fc1.weight" in seen[0]


def test_run_actions_have_shortcuts_and_follow_busy_state(qtbot, demo_window):
    w = demo_window
    shortcuts = {a.text().replace("&", ""): a.shortcut().toString()
                 for a in (w.prune_action, w.finetune_action, w.measure_action, w.stop_action,
                           w.revert_action, w.export_action, w.open_model_action,
                           w.open_data_action, w.save_recipe_action)}
    assert all(shortcuts.values()), shortcuts
    assert len(set(shortcuts.values())) == len(shortcuts)
    assert w.prune_action.isEnabled() and not w.stop_action.isEnabled()
    w.method_panel.epochs.setValue(50)
    w.finetune_action.trigger()
    assert w.stop_action.isEnabled() and not w.prune_action.isEnabled()
    assert w.prune() is False and w.busy_op == "finetune"   # a second run is refused while busy
    with qtbot.waitSignal(w.operation_stopped, timeout=30_000):
        w.stop_action.trigger()
    assert w.prune_action.isEnabled() and not w.stop_action.isEnabled()


def test_window_fits_a_laptop_screen(qtbot, demo_window):
    """Every dock and tab at its minimum fits a 1280-px-wide screen (a 1366x768 laptop too), also
    once pruning has filled the views with long summaries."""
    w = demo_window
    free = w.screen().availableGeometry()
    assert w.width() <= max(free.width(), w.minimumSizeHint().width())
    w.method_panel.sparsity.setValue(80.0)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    for index in range(w.tabs.count()):
        w.tabs.setCurrentIndex(index)
        qtbot.wait(20)
        hint = w.minimumSizeHint()
        assert hint.width() <= 1280 and hint.height() <= 700, (w.tabs.tabText(index), hint)


def test_revert_marks_the_compare_table_stale_and_export_keeps_its_file_list(qtbot, demo_window,
                                                                               tmp_path):
    w = demo_window
    assert "No model open" not in w.status_label.text()   # the opened model is described
    assert not w.status_label.text().startswith("Opening")
    w.method_panel.sparsity.setValue(50.0)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    assert w.compare.title.text().startswith("Latest run")
    wait_done(qtbot, w, lambda: w.export(ExportSpec(str(tmp_path / "m.pt"))), "export")
    assert w.status_label.text().startswith("Exported m.pt")
    wait_done(qtbot, w, w.revert_action.trigger, "revert")
    assert w.compare.title.text().startswith("Reverted to the original")
    from gui.views.compare import STALE
    assert w.compare.table.item(0, 2).foreground().color() == STALE   # the figures greyed out
