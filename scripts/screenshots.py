"""Renders PruneLab's window and each of its tabs to PNG, offscreen, on the built-in demo.

It does what a user does: open the demo, scan the layers' sensitivity and run a gradual schedule on the
original weights (schedule.png), revert, choose L1 global 80 %, Prune (which measures), Fine-tune one
epoch (which measures again), then pictures every tab with that real data. Then the text models:
File > Open text demo (BiLSTM), select seed 000's group by pattern, L1 global 70 %, and the window
with the mask view and its 5x5 corner before/after (text.png); and, when the 'bert' extra is
installed, a tiny BERT (out/tiny_bert, or a random one built in a temporary folder) with its twelve
attention query weights pruned L1 global 30 % (text_bert.png). README's pictures come from here:
    python scripts/screenshots.py [--out docs/screenshots]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

WINDOW_SIZE = (1720, 1020)
LAYER = "conv2.weight"
BILSTM_PATTERN = r"re:embedding\.weight|lstm\.weight_(ih|hh)_l0|fc\.weight"   # seed 000's group
BILSTM_LAYER = "lstm.weight_ih_l0"
BERT_PATTERN = "*.attention.self.query.weight"                              # seed 002's group
TEXT_MODEL_PANEL_WIDTH = 560


def wait_for(app, signal, predicate=lambda *a: True, timeout_s: float = 300.0) -> tuple:
    """Runs the event loop until ``signal`` fires with arguments accepted by ``predicate``."""
    got: list[tuple] = []
    signal.connect(lambda *args: got.append(args) if predicate(*args) else None)
    deadline = time.monotonic() + timeout_s
    while not got:
        app.processEvents()
        time.sleep(0.01)
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {signal}")
    return got[0]


def settle(app, seconds: float = 0.4) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def run(window, app, op_start, op: str) -> None:
    failed: list = []
    window.operation_failed.connect(lambda o, m: failed.append(m))
    op_start()
    wait_for(app, window.operation_finished, lambda o: o == op)
    if failed:
        raise RuntimeError(f"{op} failed: {failed[0]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--size", default="x".join(map(str, WINDOW_SIZE)),
                        help="window size WIDTHxHEIGHT (e.g. 1280x720 to see a laptop's view)")
    args = parser.parse_args(argv)
    try:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        assert len(size) == 2 and min(size) > 0
    except (ValueError, AssertionError):
        parser.error(f"--size must be WIDTHxHEIGHT, not {args.size!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication
    from gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    scratch = Path(tempfile.mkdtemp())
    settings = QSettings(str(scratch / "screenshots.ini"), QSettings.Format.IniFormat)
    settings.setValue("run_store", str(scratch / "runs"))   # not the user's run history
    window = MainWindow(settings)
    window.resize(*size)
    window.show()
    run(window, app, window.open_demo, "open")

    panel = window.method_panel
    panel.component_boxes["method"].setCurrentIndex(panel.component_boxes["method"].findData("l1"))
    # first, on the original weights: a sensitivity scan (L1, 10-90 %) with ratios proposed for
    # 85 % (the Sensitivity tab is pictured with the others below), and a gradual schedule whose
    # sparsity curve under the loss is the Training tab's schedule.png; then back to the original
    window.sensitivity.set_grid([round(0.1 * i, 1) for i in range(1, 10)])
    run(window, app, window.scan_sensitivity, "sensitivity")
    window.sensitivity.target.setValue(85.0)
    window.sensitivity.propose_button.click()
    run(window, app, window.measure, "measure")   # the Training tab marks where accuracy starts
    panel.schedule.setCurrentIndex(panel.schedule.findData("gradual"))
    panel.schedule_widgets["every"][1].setValue(2)
    panel.scope.setCurrentIndex(panel.scope.findData("global"))
    panel.sparsity.setValue(80.0)
    panel.epochs.setValue(2)
    run(window, app, window.prune, "prune")
    window.tabs.setCurrentWidget(window.training)
    settle(app)
    picture = window.tabs.grab()
    if not picture.save(str(out / "schedule.png")):
        raise OSError(f"could not write {out / 'schedule.png'}")
    print(f"wrote {out / 'schedule.png'} ({picture.width()}x{picture.height()})")
    run(window, app, window.revert, "revert")
    panel.schedule.setCurrentIndex(panel.schedule.findData("oneshot"))

    panel.scope.setCurrentIndex(panel.scope.findData("global"))
    panel.sparsity.setValue(80.0)
    panel.epochs.setValue(1)
    run(window, app, window.prune, "prune")
    run(window, app, window.finetune, "finetune")

    window.model_panel.tree.setCurrentItem(window.model_panel.items[LAYER])
    wait_for(app, window.worker.matrix, lambda m: m.name == LAYER)
    settle(app)
    shots = {"window": None, "histograms": window.histograms, "density": window.density,
             "masks": window.masks, "training": window.training, "compare": window.compare,
             "sensitivity": window.sensitivity, "log": window.log_view}
    for name, view in shots.items():
        window.tabs.setCurrentWidget(view or window.histograms)
        settle(app)
        picture = (window if view is None else window.tabs).grab()
        path = out / f"{name}.png"
        if not picture.save(str(path)):
            raise OSError(f"could not write {path}")
        print(f"wrote {path} ({picture.width()}x{picture.height()})")

    # text models have long parameter names (lstm.weight_hh_l0_reverse): a wider model panel
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDockWidget
    window.resizeDocks([window.findChild(QDockWidget, "model_dock")], [TEXT_MODEL_PANEL_WIDTH],
                       Qt.Orientation.Horizontal)
    run(window, app, window.open_text_demo_action.trigger, "open")
    prune_group(window, app, BILSTM_PATTERN, 70.0, BILSTM_LAYER)
    save(window, out / "text.png")

    bert = tiny_bert_folder()
    if bert is None:
        print("skipped text_bert.png: the optional 'bert' extra (transformers) is not installed")
    else:
        from engine.config import ModelSpec
        run(window, app, lambda: window.open_model(ModelSpec(source="hf", path=str(bert))), "open")
        prune_group(window, app, BERT_PATTERN, 30.0, None)
        save(window, out / "text_bert.png")
    window.close()
    return 0


def prune_group(window, app, pattern: str, sparsity: float, layer) -> None:
    """Selects a group by pattern, prunes it L1 global, and shows ``layer`` (default: the first of
    the group) in the mask view with its corner before/after."""
    panel = window.method_panel
    panel.component_boxes["method"].setCurrentIndex(panel.component_boxes["method"].findData("l1"))
    panel.component_boxes["granularity"].setCurrentIndex(
        panel.component_boxes["granularity"].findData("fine"))
    panel.schedule.setCurrentIndex(panel.schedule.findData("oneshot"))   # prune only, no training
    panel.structured_box.setChecked(False)
    panel.scope.setCurrentIndex(panel.scope.findData("global"))
    panel.sparsity.setValue(sparsity)
    window.model_panel.pattern.setText(pattern)
    names = window.model_panel.select_pattern()
    run(window, app, window.prune, "prune")
    layer = layer or names[0]
    window.tabs.setCurrentWidget(window.masks)
    window.model_panel.tree.setCurrentItem(window.model_panel.items[layer])
    window.model_panel.tree.scrollToItem(window.model_panel.items[layer])
    wait_for(app, window.worker.matrix, lambda m: m.name == layer)
    settle(app)


def save(widget, path: Path) -> None:
    picture = widget.grab()
    if not picture.save(str(path)):
        raise OSError(f"could not write {path}")
    print(f"wrote {path} ({picture.width()}x{picture.height()})")


def tiny_bert_folder():
    """out/tiny_bert (python scripts/make_tiny_bert.py, trained) or a random one made here."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        return None
    folder = ROOT / "out" / "tiny_bert"
    if (folder / "config.json").is_file() and (folder / "data").is_dir():
        return folder
    from scripts.make_tiny_bert import make_tiny_bert
    return make_tiny_bert(Path(tempfile.mkdtemp()) / "tiny_bert", train_rows=200, test_rows=100,
                          epochs=0, log=lambda _m: None)


if __name__ == "__main__":
    sys.exit(main())
