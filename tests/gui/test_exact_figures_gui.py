"""The GUI side of the exact-figures fixes: the same recipe validation refuses min_density with
local scope in a dialog, and the greyed-out floor is never sent with local scope."""
import json

from PySide6.QtWidgets import QApplication


def test_recipe_with_local_min_density_is_refused_in_a_dialog(qtbot, window, tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"prune": {"scope": "local", "sparsity": 0.5,
                                            "min_density": 0.2}}))
    assert window.open_recipe(str(recipe)) is False
    assert window.error_box is not None and window.error_box.isVisible()
    assert "scope 'global' only" in window.error_box.text()
    window.error_box.close()


def test_the_greyed_out_floor_is_not_sent_with_local_scope(qtbot, window):
    panel = window.method_panel
    panel.scope.setCurrentIndex(panel.scope.findData("global"))
    panel.min_density.setValue(20.0)
    assert panel.prune_spec().min_density == 0.2
    panel.scope.setCurrentIndex(panel.scope.findData("local"))
    QApplication.processEvents()
    assert not panel.min_density.isEnabled()
    assert panel.prune_spec().min_density == 0.0   # validation would refuse 0.2 with local scope
