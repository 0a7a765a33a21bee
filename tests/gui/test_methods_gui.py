"""Sensitivity scan and proposal, a schedule's sparsity curve, and user method files, driven
through the window on the real demo."""
import copy
import math

import pytest
import torch
from PySide6.QtWidgets import QFileDialog

import gui.window.files
from engine.config import Recipe
from engine.metrics import evaluate
from engine.paths import ROOT
from engine.pruning.apply import prune_model
from engine.pruning.base import CRITERIA, PruneContext
from engine.pruning.schedules import gradual_plan
from engine.pruning.sensitivity import EVAL_BATCH, _eval_loader, predicted_drop
from tests.gui.conftest import wait_done

EXAMPLE = ROOT / "examples" / "every_other.py"
SCANNED = ["conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight"]   # conv1 left unticked


def _selected_sparsity(window, names):
    layers = {l.name: l for l in window.density.current.layers}
    total = sum(layers[n].numel for n in names)
    zeros = sum(layers[n].numel - layers[n].nonzero for n in names)
    return zeros, total


def test_sensitivity_scan_plots_each_ticked_layer_and_its_proposal_meets_the_target(qtbot,
                                                                                   demo_window):
    w = demo_window
    w.model_panel.set_checked("conv1.weight", False)
    view = w.sensitivity
    view.set_grid([0.5, 0.9])
    view.eval_batches.setValue(2)
    assert view.grid() == [0.5, 0.9]
    assert not view.propose_button.isEnabled() and not view.apply_button.isEnabled()
    assert view.minimumSizeHint().width() < 700   # the tab does not widen the window on a laptop
    wait_done(qtbot, w, w.scan_action.trigger, "sensitivity")

    result = view.result
    assert list(result.curves) == SCANNED == list(view.curves)
    # the baseline is the real accuracy of the (untouched) model on the scan's validation samples
    # (the scan chooses ratios, so it never looks at the test split)
    model = w.worker.session.model
    assert not any(name.endswith("_mask") for name, _ in model.named_buffers())
    loader = _eval_loader(w.worker.session.data, 2)
    samples = len(loader.dataset)
    data = w.worker.session.data
    assert result.split == "val" and loader.dataset is data.val
    assert samples == min(2 * EVAL_BATCH, len(data.val))
    expected = evaluate(model, loader, 10).accuracy
    assert result.baseline == pytest.approx(expected)
    assert view.baseline_line.value() == pytest.approx(expected * 100)
    for name in SCANNED:
        points = view.curve_points(name)
        assert [x for x, _ in points] == pytest.approx([0.0, 50.0, 90.0])
        assert points[0][1] == pytest.approx(expected * 100)
        assert all(0.0 <= y <= 100.0 for _, y in points)
        assert [y for _, y in points] == pytest.approx([a * 100 for _, a in result.curves[name]])
        # accuracies are counts of correct answers over the samples evaluated
        assert all(abs(a * samples - round(a * samples)) < 1e-6 for _, a in result.curves[name])
    # pruning 90 % of the big layer alone costs accuracy (the curves measure something)
    assert result.curves["fc1.weight"][-1][1] <= result.baseline
    assert view.propose_button.isEnabled()

    # propose for 70 %: the table holds every scanned layer, the proposal meets the target
    view.target.setValue(70.0)
    view.propose_button.click()
    assert [view.table.item(r, 0).text() for r in range(view.table.rowCount())] == SCANNED
    proposal = dict(view.proposal)
    sizes = result.layer_sizes
    total = sum(sizes.values())
    need = math.ceil(0.7 * total)
    assert sum(round(proposal[n] * sizes[n]) for n in SCANNED) == need
    assert all(0.0 <= s <= 0.9 for s in proposal.values())
    assert view.table.item(0, 3).text() == \
        f"{predicted_drop(result, {SCANNED[0]: proposal[SCANNED[0]]}) * 100:.2f} pp"

    # an edit changes that row's predicted drop and the overall figure; proposing again restores
    view.set_layer_sparsity("fc2.weight", 0.10)
    assert view.proposal["fc2.weight"] == pytest.approx(0.10)
    row = SCANNED.index("fc2.weight")
    assert view.table.item(row, 3).text() == \
        f"{predicted_drop(result, {'fc2.weight': 0.10}) * 100:.2f} pp"
    assert view.overall_sparsity() != pytest.approx(need / total)
    view.propose_button.click()
    assert view.proposal == proposal

    # a target beyond the grid is explained, not clipped
    assert not view.propose(0.95)
    assert "extend the grid" in w.last_error
    w.error_box.close()

    # Apply: the targets go into the model panel, the scope becomes local, Prune uses them
    w.method_panel.scope.setCurrentIndex(w.method_panel.scope.findData("global"))
    view.apply_button.click()
    assert w.model_panel.per_layer() == proposal
    assert w.method_panel.scope.currentData() == "local"
    spec = w.recipe().prune
    assert spec.per_layer == proposal and spec.include == SCANNED
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    zeros, counted = _selected_sparsity(w, SCANNED)
    assert counted == total
    assert need <= zeros <= need + 5      # the target by weights (a trained weight is rarely 0)
    layers = {l.name: l for l in w.density.current.layers}
    assert layers["conv1.weight"].nonzero == layers["conv1.weight"].numel   # not ticked: untouched


def test_gradual_schedule_draws_its_sparsity_curve_in_the_training_tab(qtbot, demo_window):
    w = demo_window
    panel = w.method_panel
    panel.schedule.setCurrentIndex(panel.schedule.findData("gradual"))
    panel.schedule_widgets["every"][1].setValue(1)
    panel.schedule_widgets["end_fraction"][1].setValue(0.75)
    panel.scope.setCurrentIndex(panel.scope.findData("local"))
    panel.sparsity.setValue(60.0)
    panel.epochs.setValue(1)
    panel.max_batches.setValue(5)
    assert w.training.sparsity_plot.isHidden()
    chunks = []
    w.worker.sparsity_points.connect(chunks.append)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")

    view = w.training
    plan = gradual_plan(5, 0.6, 0.0, 1, 0.75)
    # the mask at s_i before training, one point per pruning event, one after training
    assert view.sparsity_steps == [0] + [step for step, _ in plan] + [5]
    assert sum(len(c.steps) for c in chunks) == len(view.sparsity_steps)
    s = view.sparsities
    assert s[0] == 0.0
    assert all(b > a for a, b in zip(s[:len(plan) + 1], s[1:len(plan) + 1]))   # rising per event
    assert s[-1] == s[-2] == pytest.approx(0.6, abs=1e-3)
    xs, ys = view.sparsity_curve.getData()
    assert list(xs) == view.sparsity_steps and list(ys) == pytest.approx([v * 100 for v in s])
    assert not view.sparsity_plot.isHidden()
    zeros, total = _selected_sparsity(w, [l.name for l in w.density.current.layers])
    assert zeros / total == pytest.approx(s[-1], abs=1e-6)   # the curve ends where the model is

    # a plain fine-tune afterwards starts a clean Training tab without the schedule's curve
    w._start_training_view(1)
    assert view.sparsity_steps == [] and view.sparsity_plot.isHidden()


def _choose_file(monkeypatch, path):
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(path), "Python files (*.py)")))


def test_every_other_method_file_loads_from_the_menu_and_prunes_every_other_weight(
        qtbot, demo_window, monkeypatch, tmp_path):
    w = demo_window
    asked = []
    monkeypatch.setattr(gui.window.files, "confirm_trust",
                        lambda parent, path, what: asked.append((path, what)) or True)
    _choose_file(monkeypatch, EXAMPLE)
    w.load_method_action.trigger()
    assert asked == [(str(EXAMPLE), "a pruning method file")]
    panel = w.method_panel
    method = panel.component_boxes["method"]
    assert method.currentData() == "ExamplePruningMethod"
    assert method.findData("abs_cubed") >= 0
    assert "every other" in method.toolTip()
    # it makes each layer's mask itself: local scope and fine granularity only
    assert not panel.scope.model().item(panel.scope.findData("global")).isEnabled()
    gran = panel.component_boxes["granularity"]
    assert gran.currentData() == "fine"
    assert not gran.model().item(gran.findData("filter")).isEnabled()

    w.model_panel.set_all_checked(False)
    w.model_panel.set_checked("fc1.weight", True)
    spec = w.recipe().prune
    assert spec.plugin == str(EXAMPLE.resolve()) and spec.method == "ExamplePruningMethod"
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    model = w.worker.session.model
    weight = model.fc1.weight.detach().reshape(-1)
    assert torch.all(weight[::2] == 0)
    assert torch.all(weight[1::2] != 0)
    assert int(torch.count_nonzero(model.conv2.weight)) == model.conv2.weight.numel()

    # the saved recipe names the file, so it reproduces the run headless
    path = tmp_path / "every_other_recipe.json"
    w.save_recipe(str(path))
    loaded = Recipe.load(path)
    assert loaded.prune.plugin == str(EXAMPLE.resolve())
    assert loaded.prune.method == "ExamplePruningMethod"
    fresh = copy.deepcopy(w.worker.session.original)
    prune_model(fresh, loaded.prune, PruneContext(fresh))
    assert torch.equal(fresh.fc1.weight_mask, model.fc1.weight_mask)


def test_refused_or_broken_method_files_load_nothing_and_the_app_stays_usable(
        qtbot, demo_window, monkeypatch, tmp_path):
    w = demo_window
    marker = tmp_path / "ran.txt"
    plugin = tmp_path / "refused_method.py"
    plugin.write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                      "def importance_gui_refused(weight):\n    return weight.abs()\n")
    monkeypatch.setattr(gui.window.files, "confirm_trust", lambda *a: False)
    _choose_file(monkeypatch, plugin)
    before = [w.method_panel.component_boxes["method"].itemData(i)
              for i in range(w.method_panel.component_boxes["method"].count())]
    w.load_method_action.trigger()
    assert not marker.exists()                      # its code never ran
    assert "gui_refused" not in CRITERIA
    assert w.method_panel.component_boxes["method"].findData("gui_refused") < 0
    assert "Not loaded" in w.status_label.text()

    broken = tmp_path / "broken_method.py"
    broken.write_text("raise RuntimeError('boom from the method file')\n")
    monkeypatch.setattr(gui.window.files, "confirm_trust", lambda *a: True)
    _choose_file(monkeypatch, broken)
    w.load_method_action.trigger()
    assert w.error_box is not None and w.error_box.isVisible()
    assert "boom from the method file" in w.last_error
    w.error_box.close()
    after = [w.method_panel.component_boxes["method"].itemData(i)
             for i in range(w.method_panel.component_boxes["method"].count())]
    assert after == before
    # still usable: a prune with a built-in criterion runs
    w.method_panel.component_boxes["method"].setCurrentIndex(
        w.method_panel.component_boxes["method"].findData("l1"))
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    assert w.last_report.current.sparsity > 0.4


def test_recipe_naming_a_method_file_asks_before_loading_it(qtbot, demo_window, monkeypatch,
                                                            tmp_path):
    w = demo_window
    plugin = tmp_path / "recipe_method.py"
    plugin.write_text("def importance_gui_recipe(weight):\n    return weight.abs()\n")
    recipe = w.recipe()
    recipe.prune.plugin = plugin.name          # relative to the recipe file
    recipe.prune.method = "gui_recipe"
    path = tmp_path / "with_plugin.json"
    recipe.save(path)

    monkeypatch.setattr(gui.window.files, "confirm_trust", lambda *a: False)
    assert w.open_recipe(str(path)) is False
    assert "gui_recipe" not in CRITERIA

    asked = []
    monkeypatch.setattr(gui.window.files, "confirm_trust", lambda *a: asked.append(a[1]) or True)
    assert w.open_recipe(str(path)) is True
    assert asked == [str(plugin.resolve())]
    assert w.method_panel.component_boxes["method"].currentData() == "gui_recipe"
    assert w.recipe().prune.plugin == str(plugin.resolve())
    CRITERIA.unregister("gui_recipe")


def test_stopping_a_scan_leaves_no_result_and_the_window_idle(qtbot, demo_window):
    w = demo_window
    w.sensitivity.set_grid([0.1, 0.5, 0.9])
    with qtbot.waitSignal(w.operation_stopped, timeout=60_000,
                          check_params_cb=lambda op: op == "sensitivity"):
        assert w.scan_action.trigger() is None and w.busy_op == "sensitivity"
        assert not w.scan_action.isEnabled() and w.stop_action.isEnabled()
        w.stop()   # the token is cancelled before the worker's first evaluation batch
    assert w.busy_op is None and w.scan_action.isEnabled()
    assert w.sensitivity.result is None and not w.sensitivity.curves
    assert "stopped" in w.status_label.text()
