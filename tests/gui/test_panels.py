"""The method panel is generated from the engine's registries; the model panel turns ticks and
targets into the PruneSpec; both round-trip a recipe."""
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox

from engine.config import FinetuneSpec, PruneSpec
from engine.model_info import describe_model
from engine.pruning.base import CRITERIA, GRANULARITIES, Criterion, Granularity
from engine.registry import Option
from gui.panels.method_panel import MethodPanel
from gui.panels.model_tree import COL_NAME, ModelPanel


class _PlantCriterion(Criterion):
    name = "test_plant"
    label = "Test plant criterion"
    description = "Registered by a test: proves the panel needs no edit for a new method."
    options = (Option("beta", float, 0.5, "How much beta to use", minimum=0.0, maximum=2.0),
               Option("mode", str, "a", "Which mode", choices=("a", "b")),
               Option("exact", bool, True, "Be exact"))


class _BlockGranularity(Granularity):
    name = "test_blocks"
    label = "Test blocks"
    description = "A granularity without global support."
    supports_global = False
    options = (Option("block", int, 4, "Block size", minimum=1, maximum=64),)


@pytest.fixture
def plant():
    CRITERIA.register(_PlantCriterion)
    GRANULARITIES.register(_BlockGranularity)
    yield
    CRITERIA.unregister(_PlantCriterion.name)
    GRANULARITIES.unregister(_BlockGranularity.name)


def test_method_panel_is_generated_from_registries(qtbot, plant):
    panel = MethodPanel()
    qtbot.addWidget(panel)
    method = panel.component_boxes["method"]
    names = [method.itemData(i) for i in range(method.count())]
    assert names == CRITERIA.names() and "test_plant" in names
    index = method.findData("test_plant")
    assert method.itemText(index) == "Test plant criterion"
    assert method.itemData(index, Qt.ItemDataRole.ToolTipRole) == _PlantCriterion.description
    method.setCurrentIndex(index)
    assert method.toolTip() == _PlantCriterion.description
    beta = panel.option_widgets["beta"][1]
    mode = panel.option_widgets["mode"][1]
    exact = panel.option_widgets["exact"][1]
    assert isinstance(beta, QDoubleSpinBox) and (beta.minimum(), beta.maximum()) == (0.0, 2.0)
    assert isinstance(mode, QComboBox) and isinstance(exact, QCheckBox)
    assert beta.toolTip() == "How much beta to use" and mode.toolTip() == "Which mode"
    beta.setValue(1.25)
    mode.setCurrentIndex(mode.findData("b"))
    exact.setChecked(False)
    spec = panel.prune_spec()
    assert spec.method == "test_plant"
    assert spec.options == {"beta": 1.25, "mode": "b", "exact": False}

    # a granularity that cannot be global adds its option and takes Global off the menu
    panel.scope.setCurrentIndex(panel.scope.findData("global"))
    gran = panel.component_boxes["granularity"]
    gran.setCurrentIndex(gran.findData("test_blocks"))
    assert panel.scope.currentData() == "local"
    assert not panel.scope.model().item(panel.scope.findData("global")).isEnabled()
    assert panel.prune_spec().options["block"] == 4
    assert panel.prune_spec().options["beta"] == 1.25  # kept across the rebuild

    assert all(tip.strip() for tip in panel.controls_with_tooltips().values()), \
        panel.controls_with_tooltips()


def test_method_panel_round_trips_specs(qtbot):
    panel = MethodPanel()
    qtbot.addWidget(panel)
    prune = PruneSpec(method="random", scope="global", sparsity=0.65, min_density=0.05, seed=7)
    finetune = FinetuneSpec(epochs=3, optimizer="adam", lr=0.002, momentum=0.8,
                            weight_decay=1e-4, batch_size=32, patience=2,
                            max_batches_per_epoch=10, device="cpu")
    panel.set_prune_spec(prune)
    panel.set_finetune_spec(finetune)
    assert panel.prune_spec() == prune
    assert panel.finetune_spec() == finetune
    with pytest.raises(ValueError, match="no criterion 'nope'"):
        panel.set_prune_spec(PruneSpec(method="nope"))


def test_model_panel_ticks_and_targets_become_the_spec(qtbot, lenet):
    panel = ModelPanel()
    qtbot.addWidget(panel)
    panel.set_model(describe_model(lenet, "LeNet"))
    assert panel.prunable_names() == ["conv1.weight", "conv2.weight", "fc1.weight",
                                      "fc2.weight", "fc3.weight"]
    assert panel.include() is None and panel.per_layer() is None
    # biases cannot be pruned: no box at all
    assert panel.items["fc1.bias"].data(COL_NAME, Qt.ItemDataRole.CheckStateRole) is None
    panel.set_checked("fc3.weight", False)
    assert panel.include() == ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"]
    assert panel.module_items["fc3"].checkState(COL_NAME) == Qt.CheckState.Unchecked
    assert panel.module_items[""].checkState(COL_NAME) == Qt.CheckState.PartiallyChecked
    # the module's box ticks its parameters
    panel.module_items["fc3"].setCheckState(COL_NAME, Qt.CheckState.Checked)
    assert panel.include() is None
    panel.module_items[""].setCheckState(COL_NAME, Qt.CheckState.Unchecked)
    assert panel.include() == []
    panel.set_all_checked(True)
    panel.set_target("conv1.weight", 0.3)
    assert panel.per_layer() == {"conv1.weight": 0.3}
    assert panel.items["conv1.weight"].text(4) == "30.0%"
    panel.clear_targets()
    assert panel.per_layer() is None
    panel.apply_selection(["fc*"], {"fc1.weight": 0.9})
    assert panel.include() == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert panel.per_layer() == {"fc1.weight": 0.9}


def test_fixed_sparsity_granularity_disables_the_target(qtbot):
    panel = MethodPanel()
    qtbot.addWidget(panel)
    gran = panel.component_boxes["granularity"]
    assert panel.sparsity.isEnabled()
    gran.setCurrentIndex(gran.findData("nm"))
    assert not panel.sparsity.isEnabled()
    assert {"n", "m"} <= set(panel.options())
    gran.setCurrentIndex(gran.findData("fine"))
    assert panel.sparsity.isEnabled()


def test_channel_removal_greys_out_the_mask_settings_it_does_not_use(qtbot):
    panel = MethodPanel()
    qtbot.addWidget(panel)
    assert panel.prune_box.isEnabled()
    panel.structured_box.setChecked(True)
    assert not panel.prune_box.isEnabled() and "Not used" in panel.prune_box.toolTip()
    assert panel.epochs.isEnabled()              # fine-tuning still applies to the smaller model
    panel.structured_box.setChecked(False)
    assert panel.prune_box.isEnabled()
