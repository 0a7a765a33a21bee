"""File → Export cluster job… and File → Open results… in the window."""
import json

from engine.cluster_job import ClusterSettings
from engine.config import MetricsSpec, Recipe
from gui.window.cluster import ClusterJobDialog
from tests.gui.conftest import wait_done


def _prune_for_a_job(qtbot, w):
    panel = w.method_panel
    panel.epochs.setValue(1)
    panel.max_batches.setValue(4)
    wait_done(qtbot, w, w.prune, "prune")


def test_export_cluster_job_then_open_its_results(qtbot, demo_window, tmp_path):
    w = demo_window
    _prune_for_a_job(qtbot, w)
    assert w.cluster_job_action.isEnabled() and w.open_results_action.isEnabled()
    job = tmp_path / "job"
    wait_done(qtbot, w, lambda: w.export_cluster_job(
        str(job), ClusterSettings(nodes=3, procs_per_node=4, endpoint="node0:29500")),
        "cluster_job")
    assert {p.name for p in job.iterdir()} == {"model.pt", "model.masks.pt", "recipe.json",
                                              "run.sh", "results"}
    script = (job / "run.sh").read_text()
    assert 'NNODES="${NNODES:-3}"' in script and 'NPROC_PER_NODE="${NPROC_PER_NODE:-4}"' in script
    assert "node0:29500" in script and "torchrun" in script
    assert json.loads((job / "recipe.json").read_text())["finetune"]["max_batches_per_epoch"] == 4
    assert "run.sh" in w.status_label.text()

    # the job fine-tunes (here in this process, as one rank would) and writes results/finetuned.pt
    from engine.pipeline import run_recipe
    recipe = Recipe.load(job / "recipe.json")
    recipe.metrics = MetricsSpec(measure_latency=False)
    run_recipe(recipe)
    runs_before = w.compare.history.rowCount()
    wait_done(qtbot, w, lambda: w.open_results(str(job / "results" / "finetuned.pt")),
              "open_results")
    assert w.compare.history.rowCount() == runs_before + 1
    assert w.compare.history.item(runs_before, 0).text() == "cluster: finetuned.pt"
    assert w.compare.reports[-1].record.label == "cluster: finetuned.pt"
    assert w.tabs.currentWidget() is w.compare and "new run in Compare" in w.status_label.text()
    # the live (pruned, untrained) model is unchanged: Export still writes it
    assert w.model_panel.info is not None and w.export_action.isEnabled()


def test_cluster_job_refuses_an_unpruned_model_and_a_used_folder(qtbot, demo_window, tmp_path):
    w = demo_window
    failures = []
    w.operation_failed.connect(lambda op, message: failures.append((op, message)))
    with qtbot.waitSignal(w.operation_failed, timeout=60_000):
        w.export_cluster_job(str(tmp_path / "a"), ClusterSettings())
    assert "prune the model first" in failures[-1][1] and not (tmp_path / "a").exists()
    _prune_for_a_job(qtbot, w)
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    with qtbot.waitSignal(w.operation_failed, timeout=60_000):
        w.export_cluster_job(str(used), ClusterSettings())
    assert "not an empty folder" in w.last_error
    assert [p.name for p in used.iterdir()] == ["notes.txt"]


def test_cluster_dialog_fields(qtbot, tmp_path):
    dialog = ClusterJobDialog(None, str(tmp_path / "job"))
    qtbot.addWidget(dialog)
    dialog.nodes.setValue(2)
    dialog.procs.setValue(8)
    dialog.endpoint.setText(" head:29400 ")
    assert dialog.folder.text() == str(tmp_path / "job")
    assert dialog.settings() == ClusterSettings(nodes=2, procs_per_node=8, endpoint="head:29400")
