"""Open model: a class from the user's Python file with its weights from a separate file."""
import torch

import gui.window.files
from engine.models.lenet import LeNet
from gui.dialogs import OpenModelDialog
from tests.gui.conftest import wait_done


def test_weights_row_belongs_to_python_models(qtbot):
    dialog = OpenModelDialog(None, None, ["lenet"])
    qtbot.addWidget(dialog)
    for source, shown in (("python", True), ("state_dict", False), ("torchvision", False)):
        dialog.source.setCurrentIndex(dialog.source.findData(source))
        assert dialog.form.isRowVisible(dialog.weights) is shown, source
    dialog.source.setCurrentIndex(dialog.source.findData("state_dict"))
    dialog.weights.edit.setText("/tmp/w.pt")
    assert dialog.spec().weights is None    # a hidden row never reaches the spec


def test_open_model_dialog_loads_a_python_model_with_its_weights(qtbot, demo_window, tmp_path,
                                                                monkeypatch):
    w = demo_window
    user_file = tmp_path / "mynet.py"
    user_file.write_text("from engine.models.lenet import LeNet\n"
                         "class MyNet(LeNet):\n"
                         "    pass\n")
    torch.manual_seed(7)
    trained = LeNet()
    weights = tmp_path / "mynet_weights.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in trained.state_dict().items()}},
               weights)

    def fill_in(dialog):
        dialog.source.setCurrentIndex(dialog.source.findData("python"))
        dialog.path.edit.setText(str(user_file))
        dialog.factory.setText("MyNet")
        dialog.weights.edit.setText(str(weights))
        return True
    asked = []
    monkeypatch.setattr(OpenModelDialog, "exec", fill_in)
    monkeypatch.setattr(gui.window.files, "confirm_trust",
                        lambda _parent, path, _what: asked.append(path) or True)
    wait_done(qtbot, w, w.open_model_dialog, "open")
    assert asked == [str(user_file)]          # trust is asked for the code, not for the weights
    assert w.model_spec.weights == str(weights)
    assert "with weights from mynet_weights.pth" in w.windowTitle()
    state = w.worker.session.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in trained.state_dict().items())
