"""The Open model, Open data and Export dialogs build the engine's specs; a channel-pruned export
with its shapes file reopens by dropping the checkpoint."""
import pytest

from engine.config import DATA_SOURCES, MODEL_SOURCES, ExportSpec
from gui.dialogs import (DATA_SOURCE_HELP, MODEL_SOURCE_HELP, ExportDialog, OpenDataDialog,
                         OpenModelDialog)
from tests.gui.conftest import wait_done


def test_open_model_dialog_specs(qtbot):
    dialog = OpenModelDialog(None, None, ["lenet", "resnet18"])
    qtbot.addWidget(dialog)
    assert tuple(dialog.source.itemData(i) for i in range(dialog.source.count())) == MODEL_SOURCES
    assert set(MODEL_SOURCES) <= set(MODEL_SOURCE_HELP)   # every source explained
    dialog.source.setCurrentIndex(dialog.source.findData("state_dict"))
    dialog.arch.setCurrentText("resnet18")
    dialog.path.edit.setText("/tmp/w.pt")
    dialog.num_classes.setValue(3)
    spec = dialog.spec()
    assert (spec.source, spec.arch, spec.path, spec.num_classes, spec.trust_pickle) == \
        ("state_dict", "resnet18", "/tmp/w.pt", 3, False)
    dialog.source.setCurrentIndex(dialog.source.findData("python"))
    dialog.factory.setText("Net")
    assert dialog.spec().factory == "Net" and dialog.spec().shapes is None


def test_open_data_dialog_specs(qtbot):
    dialog = OpenDataDialog()
    qtbot.addWidget(dialog)
    assert tuple(dialog.source.itemData(i) for i in range(dialog.source.count())) == DATA_SOURCES
    assert set(DATA_SOURCES) <= set(DATA_SOURCE_HELP)
    dialog.source.setCurrentIndex(dialog.source.findData("cifar10"))
    dialog.root.edit.setText("/data/cifar")
    dialog.image_size.setValue(32)
    dialog.channels.setCurrentText("3")
    dialog.max_eval.setValue(500)
    spec = dialog.spec()
    assert (spec.source, spec.root, spec.image_size, spec.channels, spec.max_eval_samples) == \
        ("cifar10", "/data/cifar", 32, 3, 500)
    assert spec.val_fraction == 0.1   # the default share held out for choosing
    dialog.val_fraction.setValue(20.0)
    assert dialog.spec().val_fraction == 0.2
    assert "validation" in dialog.val_fraction.toolTip()


def test_export_dialog_format_follows_suffix(qtbot):
    dialog = ExportDialog(None, "/tmp/out/model.pt")
    qtbot.addWidget(dialog)
    assert dialog.format.currentData() == ".pt"
    dialog.format.setCurrentIndex(dialog.format.findData(".safetensors"))
    assert dialog.path.text() == "/tmp/out/model.safetensors"
    dialog.path.setText("/tmp/out/other.pt")
    assert dialog.format.currentData() == ".pt"
    dialog.masks.setChecked(True)
    dialog.extras["shapes"].setChecked(True)
    assert all(box.toolTip() for box in dialog.extras.values())
    # verification in a fresh process is on by default
    assert dialog.spec() == ExportSpec("/tmp/out/other.pt", include_masks=True, report=True,
                                       formats=["state_dict", "shapes"], verify=True)
    dialog.verify.setChecked(False)
    assert dialog.spec().verify is False


def test_channel_pruned_export_reopens_from_a_dropped_checkpoint(qtbot, demo_window, tmp_path):
    w = demo_window
    w.method_panel.structured_box.setChecked(True)
    w.method_panel.st_ratio.setValue(50.0)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    shapes = {p.name: p.shape for p in w.model_panel.info.params}
    target = tmp_path / "small.pt"
    wait_done(qtbot, w, lambda: w.export(ExportSpec(str(target), formats=["state_dict", "shapes"])),
              "export")
    assert (tmp_path / "small.shapes.json").is_file()
    wait_done(qtbot, w, lambda: w.open_path(str(target)), "open")
    assert w.model_spec.shapes == str(tmp_path / "small.shapes.json")
    assert {p.name: p.shape for p in w.model_panel.info.params} == shapes


def test_open_dialog_grows_to_show_a_longer_source_help(qtbot):
    dialog = OpenModelDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    short = dialog.height()
    dialog.source.setCurrentIndex(dialog.source.findData("state_dict"))   # a four-line help text
    layout = dialog.layout()
    qtbot.waitUntil(lambda: dialog.height() >= layout.totalHeightForWidth(dialog.width()))
    assert dialog.height() > short
    assert dialog.help.geometry().bottom() < dialog.arch.geometry().top()   # nothing overlaps


def test_measurement_settings_reach_the_compare_table(qtbot, demo_window, monkeypatch):
    """Run > Measurement settings: batch 4, 3 runs, channels-last; the next Measure times both
    models that way and the table says so."""
    from gui.dialogs import MeasurementDialog
    w = demo_window

    def fill(dialog):
        dialog.batch_size.setValue(4)
        dialog.runs.setValue(3)
        dialog.warmup.setValue(1)
        dialog.channels_last.setChecked(True)
        return True

    monkeypatch.setattr(MeasurementDialog, "exec", fill)
    assert w.measurement_action.toolTip()
    w.measurement_action.trigger()
    assert (w.metrics_spec.latency_batch_size, w.metrics_spec.latency_runs,
            w.metrics_spec.channels_last) == (4, 3, True)
    reports = []
    w.worker.metrics.connect(reports.append)
    wait_done(qtbot, w, w.measure_action.trigger, "measure")
    latency = next(r for r in reports[-1].table if r.metric.startswith("Latency"))
    assert latency.metric == "Latency (batch 4, cpu, channels_last)"
    assert latency.original > 0 and latency.pruned > 0
    # saved recipes carry the settings, so the CLI measures the same way
    assert w._checked_recipe().metrics.channels_last is True


def test_measurement_fields_follow_the_latency_switch(qtbot):
    from engine.config import MetricsSpec
    from gui.dialogs import MeasurementDialog
    dialog = MeasurementDialog(None, MetricsSpec(measure_latency=False))
    qtbot.addWidget(dialog)
    assert not dialog.batch_size.isEnabled() and not dialog.channels_last.isEnabled()
    dialog.measure_latency.setChecked(True)
    assert dialog.batch_size.isEnabled() and dialog.runs.isEnabled() and dialog.warmup.isEnabled()
