"""Opening a model and its data as a pair (gui.window.pairing), and no-data mode in the window."""
import pytest
import torch
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from engine.config import DataSpec, ExportSpec, ModelSpec
from engine.models.architectures import build_architecture
from gui.dialogs import OpenDataDialog, OpenModelDialog
from tests.gui.conftest import OPEN_TIMEOUT_MS, wait_done
from tests.test_fit_inference import make_image_folder


def wait_opened(qtbot, window, start):
    """Waits for an open that may first fail on a mismatch and then succeed once the other half
    was given (the failed attempt is part of the flow, so it is not an error here)."""
    with qtbot.waitSignal(window.operation_finished, timeout=OPEN_TIMEOUT_MS,
                          check_params_cb=lambda o: o == "open"):
        assert start() is not False
    assert window.busy_op is None


@pytest.fixture
def rgb_folder(tmp_path):
    return make_image_folder(tmp_path / "rgb", classes=("a", "b", "c"), per_class=3, size=36)


def test_a_model_that_does_not_fit_the_demo_data_asks_for_its_data(qtbot, demo_window, rgb_folder,
                                                                   monkeypatch):
    w = demo_window
    presets = []

    def choose_folder(dialog):
        presets.append((dialog.windowTitle(), dialog.source.currentData(),
                        dialog.channels.currentText(), dialog.image_size.value(),
                        dialog.note.text()))
        dialog.root.edit.setText(str(rgb_folder))
        dialog.image_size.setValue(32)   # small, so the test is quick
        return 1

    monkeypatch.setattr(OpenDataDialog, "exec", choose_folder)
    wait_opened(qtbot, w, lambda: w.open_model(ModelSpec(source="torchvision", arch="resnet18",
                                                         num_classes=10)))
    title, source, channels, size, note = presets[0]
    assert (source, channels, size) == ("imagefolder", "3", 224)
    assert title == "Open data for resnet18" and "3x224x224 images" in note
    # the folder has 3 classes: the random-init resnet18 was rebuilt for them, not refused
    assert (w.model_spec.arch, w.model_spec.num_classes) == ("resnet18", 3)
    assert (w.data_spec.source, w.data_spec.root) == ("imagefolder", str(rgb_folder))
    assert "resnet18" in w.model_panel.info.description
    assert any("rebuilt with 3 outputs" in line for line in w.log_view.lines())


def test_data_the_demo_model_cannot_read_asks_for_a_model(qtbot, demo_window, rgb_folder,
                                                          monkeypatch):
    w = demo_window
    presets = []

    def accept_preset(dialog):
        presets.append((dialog.source.currentData(), dialog.arch.currentText(),
                        dialog.num_classes.value()))
        return 1

    monkeypatch.setattr(OpenModelDialog, "exec", accept_preset)
    data = DataSpec(source="imagefolder", root=str(rgb_folder), channels=3, image_size=32)
    wait_opened(qtbot, w, lambda: w.open_data_path(data))
    assert presets == [("torchvision", "resnet18", 3)]
    assert (w.model_spec.source, w.model_spec.arch, w.data_spec.root) == \
        ("torchvision", "resnet18", str(rgb_folder))


def test_cancelling_the_question_keeps_the_open_model(qtbot, demo_window, rgb_folder, monkeypatch):
    w = demo_window
    monkeypatch.setattr(OpenModelDialog, "exec", lambda dialog: 0)
    with qtbot.waitSignal(w.operation_failed, timeout=OPEN_TIMEOUT_MS):
        w.open_data_path(DataSpec(source="imagefolder", root=str(rgb_folder), channels=3,
                                  image_size=32))
    qtbot.waitUntil(lambda: "Not opened" in w.status_label.text(), timeout=5_000)
    assert w.model_spec.source == "demo" and w.data_spec.source == "demo"
    assert w.error_box is None or not w.error_box.isVisible()   # asked, not an error


def drop(window, paths):
    """Drops ``paths`` on the window (the event only points at its mime data: both stay alive
    until the drop is handled)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def test_dropping_a_data_folder_and_a_model_with_its_data(qtbot, demo_window, rgb_folder, tmp_path,
                                                          monkeypatch):
    w = demo_window
    monkeypatch.setattr(OpenModelDialog, "exec", lambda dialog: 1)   # the preset resnet18
    wait_opened(qtbot, w, lambda: drop(w, [rgb_folder]))
    assert (w.model_spec.arch, w.model_spec.num_classes, w.data_spec.root) == \
        ("resnet18", 3, str(rgb_folder))

    # a checkpoint and its data dropped together: the checkpoint's class count is read from it
    checkpoint = tmp_path / "lenet3.pt"
    torch.save(build_architecture("lenet", 3).state_dict(), checkpoint)
    grey = make_image_folder(tmp_path / "grey", classes=("x", "y", "z"), per_class=2, size=28,
                             channels=1)
    monkeypatch.setattr(OpenDataDialog, "exec", lambda dialog: pytest.fail("nothing to ask"))
    w.model_spec = ModelSpec()   # the dropped checkpoint is read as the current architecture
    wait_opened(qtbot, w, lambda: drop(w, [checkpoint, grey]))
    assert (w.model_spec.source, w.model_spec.num_classes) == ("state_dict", 3)
    assert w.data_spec.root == str(grey)


def test_no_data_mode_end_to_end(qtbot, demo_window, tmp_path):
    w = demo_window
    wait_done(qtbot, w, lambda: w.open_session(ModelSpec(), DataSpec(source="none")), "open",
              OPEN_TIMEOUT_MS)
    panel = w.method_panel
    methods = panel.component_boxes["method"]
    gradient = methods.findData("gradient")
    assert not methods.model().item(gradient).isEnabled()
    assert "needs labelled data" in methods.itemData(gradient, Qt.ItemDataRole.ToolTipRole)
    assert not w.finetune_action.isEnabled() and not w.scan_action.isEnabled()
    assert "needs labelled data" in w.finetune_action.toolTip()
    assert not panel.finetune_box.isEnabled()

    wait_done(qtbot, w, w.prune, "prune")
    rows = {w.compare.table.item(r, 0).text(): r for r in range(w.compare.table.rowCount())}
    accuracy = rows["Accuracy"]
    assert w.compare.table.item(accuracy, 1).text() == "no data"
    assert w.compare.table.item(rows["Non-zero parameters"], 2).text() not in ("no data", "-")

    panel.structured_box.setChecked(True)
    wait_done(qtbot, w, w.prune, "prune")
    assert any(width.changed for width in w.compare.layer_widths)
    target = tmp_path / "small.pt"
    wait_done(qtbot, w, lambda: w.export(ExportSpec(str(target), formats=["shapes"])), "export")
    from engine.structured.rebuild import load_structured
    model = load_structured(target.with_name("small.shapes.json"), target)
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)

    # labelled data again: everything comes back
    wait_done(qtbot, w, w.open_demo, "open", OPEN_TIMEOUT_MS)
    assert methods.model().item(gradient).isEnabled() and w.finetune_action.isEnabled()
