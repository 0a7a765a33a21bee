"""The Open dialogs list what the source registries hold: a source registered in one module
appears with its label and help text."""
from gui.dialogs import OpenDataDialog, OpenModelDialog
from tests.test_sources_registry import _TinyModel, tiny_sources  # noqa: F401 (fixture)


def test_open_dialogs_list_a_registered_source(tiny_sources, qtbot):
    dialog = OpenModelDialog(None, None, ["lenet"])
    qtbot.addWidget(dialog)
    index = dialog.source.findData("tiny_linear")
    assert dialog.source.itemText(index) == "Tiny linear model"
    dialog.source.setCurrentIndex(index)
    assert dialog.help.text() == _TinyModel.description
    data_dialog = OpenDataDialog()
    qtbot.addWidget(data_dialog)
    assert data_dialog.source.findData("tiny_vectors") >= 0
