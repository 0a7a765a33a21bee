"""Text models in the window: the BiLSTM text demo from its File action and a tiny local BERT
through the Open model dialog; a parameter group chosen by pattern, pruned, its group sparsity
shown; the 5x5 corner before/after in the mask view; layer widths after channel removal; the 2:4
sparse-kernel action explaining why it is unavailable here."""
import importlib.util

import numpy as np
import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox, QPushButton, QToolBar

from engine.config import DataSpec, ModelSpec
from engine.paths import ROOT
from engine.pruning.targets import group_sparsity
from engine.session import Session
from gui.dialogs import OpenDataDialog, OpenModelDialog
from tests.gui.conftest import OPEN_TIMEOUT_MS, wait_done

LSTM_WEIGHTS = ["lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.weight_ih_l0_reverse",
                "lstm.weight_hh_l0_reverse", "lstm.weight_ih_l1", "lstm.weight_hh_l1",
                "lstm.weight_ih_l1_reverse", "lstm.weight_hh_l1_reverse"]
# seed 000: global L1 70% over the embedding, LSTM layer 0 (forward) and the classifier
SEED000_GROUP = ["embedding.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "fc.weight"]
SEED000_PATTERN = r"re:embedding\.weight|lstm\.weight_(ih|hh)_l0|fc\.weight"
QUERY_PATTERN = "*.attention.self.query.weight"


def choose_l1_global(window, sparsity):
    panel = window.method_panel
    panel.component_boxes["method"].setCurrentIndex(panel.component_boxes["method"].findData("l1"))
    panel.component_boxes["granularity"].setCurrentIndex(
        panel.component_boxes["granularity"].findData("fine"))
    panel.scope.setCurrentIndex(panel.scope.findData("global"))
    panel.sparsity.setValue(sparsity)


def show_corner(qtbot, window, name):
    """Selects ``name`` in the model tree and waits until the mask view shows its corner."""
    with qtbot.waitSignal(window.worker.matrix, timeout=30_000,
                          check_params_cb=lambda m: m.name == name):
        window.model_panel.tree.setCurrentItem(window.model_panel.items[name])
    qtbot.waitUntil(lambda: window.masks.data is not None and window.masks.data.name == name)
    return window.masks.corner_values


def assert_pruned_corner(before, after):
    assert before.shape == after.shape == (5, 5)
    kept = after != 0
    assert (before != 0).all()
    assert (~kept).any()                                 # zeros after pruning ...
    assert np.array_equal(after[kept], before[kept])     # ... and the kept weights untouched


def test_text_demo_from_the_file_action_prunes_a_group_by_pattern(qtbot, window):
    w = window
    assert w.open_text_demo_action in w.menuBar().actions()[0].menu().actions()
    wait_done(qtbot, w, w.open_text_demo_action.trigger, "open", OPEN_TIMEOUT_MS)
    assert (w.model_spec.source, w.data_spec.source) == ("text_demo", "text_demo")
    names = w.model_panel.prunable_names()
    assert {"embedding.weight", "fc.weight", *LSTM_WEIGHTS} == set(names)
    assert w.model_panel.items["lstm.weight_hh_l0_reverse"].text(1) == "×".join(
        map(str, w.worker.session.model.lstm.weight_hh_l0_reverse.shape))

    panel = w.model_panel
    assert panel.select_pattern("lstm.weight_*") == LSTM_WEIGHTS
    assert panel.checked() == LSTM_WEIGHTS
    assert "matched 8 of 10" in panel.pattern_result.text()
    # nothing matches: the ticks stay, and the panel says so
    assert panel.select_pattern("lstm.bias_*") == []
    assert panel.checked() == LSTM_WEIGHTS
    assert "No prunable parameter matches 'lstm.bias_*'" in panel.pattern_result.text()
    assert panel.select_pattern("re:(") == [] and "regular expression" in panel.pattern_result.text()
    # typed and Enter, as a user does: a regex for seed 000's group
    panel.pattern.setText(SEED000_PATTERN)
    qtbot.keyClick(panel.pattern, "\r")
    assert panel.checked() == SEED000_GROUP
    params = [p for p in panel.info.prunable if p.name in SEED000_GROUP]
    assert panel.group_label.text().startswith("Selected group: 4 params")
    qtbot.waitUntil(lambda: panel.group is not None and set(panel.group.names) == set(SEED000_GROUP))
    # counted by the engine on the worker; before pruning only the embedding's padding row is zero
    assert panel.group.numel == sum(p.numel for p in params)
    assert panel.group.zeros == sum(p.numel - p.nonzero for p in params) == \
        w.worker.session.model.embedding.embedding_dim

    choose_l1_global(w, 70.0)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    group = group_sparsity(w.worker.session.model, SEED000_GROUP)
    assert f"{group.sparsity:.4f}" == "0.7000"
    assert "Selected group: 4 params, sparsity 0.7000" in panel.group_label.text()
    assert "Selected group: 4 params, sparsity 0.7000" in w.status_label.text()
    assert group_sparsity(w.worker.session.model, ["lstm.weight_ih_l1"]).zeros == 0  # not ticked
    assert w.compare.history.rowCount() == 2
    row = [w.compare.history.item(1, c).text() for c in range(w.compare.history.columnCount())]
    assert row[0].startswith("l1 fine global 70%")
    assert row[1].endswith("%") and row[2].endswith("%")     # accuracy and F1
    assert w.last_report.current.accuracy is not None and w.last_report.current.f1 is not None

    before, after = show_corner(qtbot, w, "lstm.weight_ih_l0")
    assert_pruned_corner(before, after)
    text_before, text_after = w.masks.corner_text()
    assert text_before != text_after and text_after.count("[") == 5


def test_text_model_brings_its_data_and_the_demo_goes_back_to_digits(qtbot, demo_window):
    w = demo_window
    assert w.data_for_model(ModelSpec(source="text_demo")).source == "text_demo"
    assert w.data_for_model(ModelSpec(source="state_dict", arch="bilstm", path="x.pt")).source == \
        "text_demo"
    assert w.data_for_model(ModelSpec(source="torchvision", arch="resnet18")) == w.data_spec
    wait_done(qtbot, w, lambda: w.open_model(ModelSpec(source="text_demo")), "open",
              OPEN_TIMEOUT_MS)   # the image demo was open: the text demo data comes with it
    assert w.data_spec.source == "text_demo"
    assert "embedding.weight" in w.model_panel.prunable_names()
    wait_done(qtbot, w, lambda: w.open_model(ModelSpec()), "open", OPEN_TIMEOUT_MS)
    assert (w.model_spec.source, w.data_spec.source) == ("demo", "demo")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    pytest.importorskip("transformers", reason="the optional 'bert' extra is not installed")
    spec = importlib.util.spec_from_file_location("make_tiny_bert", ROOT / "scripts" / "make_tiny_bert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = tmp_path_factory.mktemp("tiny_bert")
    return module.make_tiny_bert(folder, train_rows=64, test_rows=96, epochs=0, log=lambda _m: None)


def test_tiny_bert_through_the_open_model_dialog(qtbot, window, tiny_bert, monkeypatch):
    w = window

    def no_trust_prompt(*_args, **_kwargs):
        raise AssertionError("a Hugging Face folder is data: no trust question")

    def pick_hf_folder(dialog):
        dialog.source.setCurrentIndex(dialog.source.findData("hf"))
        assert dialog.form.isRowVisible(dialog.folder) and not dialog.form.isRowVisible(dialog.path)
        browse = [b for b in dialog.folder.findChildren(QPushButton) if b.text() == "Browse…"]
        browse[0].click()   # the folder picker (monkeypatched) fills the row
        return 1

    monkeypatch.setattr(QMessageBox, "warning", no_trust_prompt)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tiny_bert))
    monkeypatch.setattr(OpenModelDialog, "exec", pick_hf_folder)
    with qtbot.waitSignal(w.operation_finished, timeout=OPEN_TIMEOUT_MS,
                          check_params_cb=lambda op: op == "open"):
        w.open_model_dialog()
    assert (w.model_spec.source, w.model_spec.path) == ("hf", str(tiny_bert))
    assert (w.data_spec.source, w.data_spec.root) == ("hf_tsv", str(tiny_bert / "data"))

    panel = w.model_panel
    queries = panel.select_pattern(QUERY_PATTERN)
    assert len(queries) == 12 and all(q.endswith(".attention.self.query.weight") for q in queries)
    assert panel.checked() == queries
    assert "matched 12 of" in panel.pattern_result.text()

    choose_l1_global(w, 30.0)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    assert f"{group_sparsity(w.worker.session.model, queries).sparsity:.4f}" == "0.3000"
    assert "Selected group: 12 params, sparsity 0.3000" in panel.group_label.text()
    assert group_sparsity(w.worker.session.model, ["*.attention.self.key.weight"]).zeros == 0
    row = [w.compare.history.item(1, c).text() for c in range(3)]
    assert row[1].endswith("%") and row[2].endswith("%")

    before, after = show_corner(qtbot, w, queries[0])
    assert_pruned_corner(before, after)
    assert 'color:#c8201e' in w.masks.corner_after.text()       # pruned entries in red
    assert 'color:#c8201e' not in w.masks.corner_before.text()


def test_two_four_action_is_disabled_on_cpu_and_says_why(qtbot, demo_window):
    w = demo_window
    availability = Session.semi_structured_availability()
    if availability.available:
        pytest.skip("this machine can run 2:4 sparse kernels")
    assert not w.semi_action.isEnabled()   # even with a model open and nothing running
    assert w.semi_action in w.findChild(QToolBar, "run_toolbar").actions()
    assert "no CUDA device" in availability.reason
    assert w.semi_action.toolTip() == f"Unavailable: {availability.reason}"
    assert availability.reason in w.semi_action.statusTip()
    assert any(availability.reason in line for line in w.log_view.lines())
    assert w.run_semi_structured() is False and w.last_error == availability.reason
    # the worker path, asked directly, fails with the same reason and leaves the window usable
    failures = []
    w.operation_failed.connect(lambda op, message: failures.append((op, message)))
    with qtbot.waitSignal(w.operation_failed, timeout=30_000):
        w.submit("semi_structured", apply_mask=True)
    assert failures == [("semi_structured", availability.reason)]
    assert w.busy_op is None and w.prune_action.isEnabled()


def test_ticks_survive_pruning(qtbot, demo_window):
    """Pruning re-registers weight as weight_orig (after the bias): the tree keeps the user's ticks."""
    w = demo_window
    assert w.model_panel.select_pattern("fc1.weight") == ["fc1.weight"]
    choose_l1_global(w, 50.0)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    assert w.model_panel.checked() == ["fc1.weight"]
    assert "Selected group: 1 param, sparsity 0.5000" in w.model_panel.group_label.text()
    assert w.model_panel.items["conv1.weight"].text(3) == "0.0%"


def test_layer_widths_table_after_channel_removal(qtbot, demo_window):
    w = demo_window
    assert not w.compare.details.isVisibleTo(w.compare)
    w.model_panel.set_checked("fc3.weight", False)
    w.model_panel.set_target("fc2.weight", 0.25)
    w.method_panel.structured_box.setChecked(True)
    w.method_panel.st_ratio.setValue(50.0)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    expected = [x for x in w.worker.session.layer_widths() if x.changed]
    assert expected and w.compare.layer_widths == expected
    assert w.compare.widths.isVisibleTo(w.compare)
    rows = {w.compare.widths.item(r, 0).text(): w.compare.widths.item(r, 3).text()
            for r in range(w.compare.widths.rowCount())}
    conv2 = next(x for x in expected if x.name == "conv2")
    assert rows["conv2"] == f"{conv2.out_before} → {conv2.out_after}"
    assert conv2.out_after < conv2.out_before
    assert w.model_panel.items["conv2.weight"].text(1).startswith(f"{conv2.out_after}×")  # the tree too
    assert "Out before" in w.compare.to_text(",")
    # the tree was rebuilt with the new widths; the user's ticks and targets stay
    assert "fc3.weight" not in w.model_panel.checked() and "fc2.weight" in w.model_panel.checked()
    assert w.model_panel.per_layer() == {"fc2.weight": 0.25}
    wait_done(qtbot, w, w.revert_action.trigger, "revert")
    assert w.compare.layer_widths == [] and not w.compare.widths.isVisibleTo(w.compare)


def test_dialogs_for_text_models(qtbot):
    dialog = OpenModelDialog(None, ModelSpec(source="hf", path="/models/bert"), ["bilstm", "lenet"])
    qtbot.addWidget(dialog)
    assert dialog.folder.text() == "/models/bert" and dialog.path.text() == ""
    assert dialog.form.isRowVisible(dialog.folder) and not dialog.form.isRowVisible(dialog.path)
    assert not dialog.form.isRowVisible(dialog.arch)
    assert dialog.spec() == ModelSpec(source="hf", path="/models/bert")
    dialog.source.setCurrentIndex(dialog.source.findData("state_dict"))
    dialog.arch.setCurrentText("bilstm")
    dialog.path.edit.setText("/models/bilstm.pt")
    spec = dialog.spec()
    assert (spec.source, spec.arch, spec.path) == ("state_dict", "bilstm", "/models/bilstm.pt")
    dialog.source.setCurrentIndex(dialog.source.findData("text_demo"))
    assert not dialog.form.isRowVisible(dialog.path) and dialog.spec().path is None

    data = OpenDataDialog(None, DataSpec(source="text_tsv", root="/texts", text_max_len=64))
    qtbot.addWidget(data)
    form = data.form
    assert not form.isRowVisible(data.image_size) and not form.isRowVisible(data.channels)
    assert form.isRowVisible(data.vocab_path) and not form.isRowVisible(data.tokenizer_path)
    data.example_tokens.setValue(32)
    data.vocab_path.edit.setText("/texts/vocab.json")
    data.tokenizer_path.edit.setText("/ignored")      # hidden for text_tsv: not in the spec
    spec = data.spec()
    assert (spec.source, spec.root, spec.text_max_len, spec.example_tokens, spec.vocab_path,
            spec.tokenizer_path) == ("text_tsv", "/texts", 64, 32, "/texts/vocab.json", None)
    spec.validate()
    data.source.setCurrentIndex(data.source.findData("hf_tsv"))
    assert form.isRowVisible(data.tokenizer_path) and not form.isRowVisible(data.vocab_path)
    spec = data.spec()
    assert (spec.tokenizer_path, spec.vocab_path) == ("/ignored", None)
    data.source.setCurrentIndex(data.source.findData("text_demo"))
    assert not form.isRowVisible(data.root)
    data.source.setCurrentIndex(data.source.findData("cifar10"))
    assert form.isRowVisible(data.image_size) and not form.isRowVisible(data.text_max_len)
    spec = data.spec()
    assert spec.text_max_len is None and spec.vocab_path is None
    spec.validate()   # no text-only field left on image data


def test_two_four_report_reaches_compare_and_log(qtbot, demo_window, monkeypatch):
    """The display path only: no GPU here, so the engine's answer is a hand-made report and the
    action is enabled by hand. What a capable GPU measures is tested in tests/test_structured.py
    (skipped without CUDA)."""
    from engine.structured.semistructured import (LayerConversion, SemiStructuredAvailability,
                                                  SemiStructuredReport)
    w = demo_window
    report = SemiStructuredReport(device="test GPU", dtype="float16", batch_size=64,
                                  layers=[LayerConversion("fc1", (120, 256), True),
                                          LayerConversion("fc3", (10, 84), False, "shape 10x84 is "
                                                          "not a multiple of 32x64")],
                                  max_abs_diff=1e-3, outputs_match=True, tolerance=1e-2,
                                  dense_ms=2.0, sparse_ms=1.25)
    asked = []
    monkeypatch.setattr(Session, "semi_structured",
                        lambda self, apply_mask=False, **kw: asked.append(apply_mask) or report)
    w.semi_availability = SemiStructuredAvailability(True, "test GPU has 2:4 sparse tensor cores")
    w._set_busy(None)
    assert w.semi_action.isEnabled()
    w.semi_mask_action.setChecked(True)
    wait_done(qtbot, w, w.semi_action.trigger, "semi_structured")
    assert asked == [True]
    assert w.tabs.currentWidget() is w.compare and w.compare.semi.isVisibleTo(w.compare)
    text = w.compare.semi.text()
    assert "1 of 2 Linear layers converted" in text and "Outputs match" in text
    assert "2.000 ms dense, 1.250 ms sparse: 1.60× speedup" in text
    assert w.status_label.text() == "2:4 sparse kernels: " + text
    assert any("fc3 10x84: kept dense (shape 10x84" in line for line in w.log_view.lines())


def test_hf_folder_without_data_asks_for_its_data(qtbot, window, tiny_bert, tmp_path, monkeypatch):
    import shutil
    folder = tmp_path / "bert_only"
    shutil.copytree(tiny_bert, folder, ignore=shutil.ignore_patterns("data"))
    asked = []

    def fill_data(dialog):
        asked.append(dialog.source.currentData())
        dialog.root.edit.setText(str(tiny_bert / "data"))
        dialog.text_max_len.setValue(24)
        return 1

    monkeypatch.setattr(OpenDataDialog, "exec", fill_data)
    wait_done(qtbot, window, lambda: window.open_path(str(folder)), "open", OPEN_TIMEOUT_MS)
    assert asked == ["hf_tsv"]      # the dialog came preset to the data a HF model reads
    assert (window.model_spec.source, window.model_spec.path) == ("hf", str(folder))
    assert (window.data_spec.source, window.data_spec.text_max_len) == ("hf_tsv", 24)
    assert any(n.endswith("attention.self.query.weight") for n in window.model_panel.prunable_names())


def test_bilstm_export_reopens_by_path(qtbot, window, tmp_path):
    from engine.config import ExportSpec
    w = window
    wait_done(qtbot, w, w.open_text_demo_action.trigger, "open", OPEN_TIMEOUT_MS)
    w.model_panel.select_pattern("fc.weight")
    choose_l1_global(w, 95.0)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    target = tmp_path / "bilstm_pruned.pt"
    wait_done(qtbot, w, lambda: w.export(ExportSpec(str(target), report=False)), "export")
    assert target.with_suffix(".json").is_file()      # its vocabulary, beside it
    wait_done(qtbot, w, lambda: w.open_path(str(target)), "open", OPEN_TIMEOUT_MS)
    assert (w.model_spec.source, w.model_spec.arch) == ("state_dict", "bilstm")
    assert w.data_spec.source == "text_demo"
    fc = next(p for p in w.model_panel.info.params if p.name == "fc.weight")
    assert fc.nonzero == round(fc.numel * 0.05)        # the pruned weights came back as zeros
