"""PruneLab at full size, in the real window: Stop, GUI stalls, memory and fine-tuning speed.

Builds, in a temporary folder and without downloading anything, ResNet-50 (random init) on
generated 224x224 images in an ImageFolder and (without ``--quick``) a BERT-base-size random
Hugging Face model (hidden 768, 12 layers, 12 heads, 64 tokens) on text TSVs. For each it runs,
each in its own process so peak memory (``ru_maxrss``) is per run:

- **plain**: a plain PyTorch loop on the same model, batch size and data: SGD training steps,
  then evaluation of the test split at the same batch size; run before and after the app, and
  compared by the mean of the two speeds and the lower of the two peaks;
- **app**: the real window (``gui.main_window.MainWindow``, offscreen, its QSettings in the
  temporary folder) opening the model and data, pruning (global L1 50%), fine-tuning the masked
  model for the same number of steps, then starting each long operation and pressing Stop in the
  middle of it: fine-tuning, measuring (evaluation), Taylor pruning (a data-driven gradient pass),
  channel removal, the sensitivity scan and an iterative schedule.

A 20 ms heartbeat timer on the GUI thread measures its longest stall (the longest gap between
beats, all phases). Steps per second, for both, run from the end of the first step to the end
of the last, loading included. Prune-to-charts is the time from Prune to the first new weight
snapshot (histograms, density, masks) reaching the window. Stop is the time from Stop to the
window hearing that the operation ended.

    python bench/scale.py [--quick] [--device cpu|cuda] [--steps N] [--keep DIR]

``--quick`` runs ResNet-50 only. Exits 0 whether the targets pass or fail (the RESULT lines are
the report); only a crash gives a non-zero status.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH = 16
TEXT_TOKENS = 64
STOP_AFTER_S = 2.0          # how long each operation runs before Stop is pressed
HEARTBEAT_MS = 20
TARGETS = {"stop_s": ("<=", 1.0), "gui_stall_ms": ("<=", 100.0), "rss_over_plain": ("<=", 1.5),
           "finetune_speed_over_plain": (">=", 0.9), "prune_to_charts_s": ("<=", 2.0)}


# ---------------------------------------------------------------- building the inputs

def make_images(root: Path, classes: int = 10, train_per_class: int = 8, test_per_class: int = 3,
                size: int = 224) -> Path:
    """Random images whose class shows in one colour channel, in root/train and root/val."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in (("train", train_per_class), ("val", test_per_class)):
        for c in range(classes):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = (rng.random((size, size, 3)) * 255).astype("uint8")
                pixels[..., c % 3] = 25 * c
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def make_bert_base(folder: Path, train: int = 160, test: int = 64) -> Path:
    """A BERT-base-size random classifier (hidden 768, 12 layers, 12 heads) with a word-piece
    tokenizer built from the shipped text demo, and TSVs from that demo."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import transformers
    from make_tiny_bert import _bert_tokenizer, wordpiece_vocab, write_tsv
    from engine.text.datasets import read_ag_news_csv, read_class_names
    from engine.text.sources import TEXT_DEMO_DIR
    train_set = read_ag_news_csv(TEXT_DEMO_DIR / "train.csv")
    test_set = read_ag_news_csv(TEXT_DEMO_DIR / "test.csv")
    classes = read_class_names(TEXT_DEMO_DIR)
    write_tsv(folder / "data" / "train.tsv", train_set.texts[:train], train_set.labels[:train])
    write_tsv(folder / "data" / "test.tsv", test_set.texts[:test], test_set.labels[:test])
    (folder / "data" / "class.txt").write_text("\n".join(classes) + "\n")
    tokenizer = _bert_tokenizer(transformers, wordpiece_vocab(train_set.texts + test_set.texts))
    config = transformers.BertConfig(vocab_size=len(tokenizer), num_labels=len(classes),
                                     hidden_size=768, num_hidden_layers=12, num_attention_heads=12)
    transformers.set_seed(0)
    model = transformers.BertForSequenceClassification(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def case_specs(case: str, work: Path):
    from engine.config import DataSpec, ModelSpec
    if case == "resnet50":
        return (ModelSpec(source="torchvision", arch="resnet50", num_classes=10),
                DataSpec(source="imagefolder", root=str(work / "images"), image_size=224,
                         channels=3, batch_size=BATCH))
    folder = work / "bert_base"
    return (ModelSpec(source="hf", path=str(folder)),
            DataSpec(source="hf_tsv", root=str(folder / "data"), text_max_len=TEXT_TOKENS,
                     batch_size=BATCH, example_tokens=TEXT_TOKENS))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux


# ---------------------------------------------------------------- the plain PyTorch loop

def run_plain(case: str, work: Path, steps: int, device: str) -> dict:
    """Training steps and one evaluation pass, written as anyone would without PruneLab."""
    import torch
    from torch import nn
    from engine.data.sources import load_data
    from engine.models.sources import load_model
    model_spec, data_spec = case_specs(case, work)
    torch.manual_seed(0)
    loaded = load_model(model_spec)
    data = load_data(data_spec, vocab=loaded.vocab, tokenizer=loaded.tokenizer)
    model = loaded.model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def forward(inputs):
        return model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)

    def move(inputs):
        if isinstance(inputs, (tuple, list)):
            return type(inputs)(x.to(device) for x in inputs)
        return inputs.to(device)

    model.train()
    ends = []   # when each step ended: steps/s counted as the app's progress ticks count it
    loader = data.loader("train", BATCH, shuffle=True)
    batches = iter(loader)
    for _ in range(steps):
        try:
            *inputs, labels = next(batches)
        except StopIteration:
            batches = iter(loader)
            *inputs, labels = next(batches)
        inputs = move(inputs[0] if len(inputs) == 1 else tuple(inputs))
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(forward(inputs), labels.to(device))
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        ends.append(time.perf_counter())
    model.eval()
    correct = 0
    with torch.no_grad():
        for *inputs, labels in data.loader("test", BATCH):
            inputs = move(inputs[0] if len(inputs) == 1 else tuple(inputs))
            correct += int((forward(inputs).argmax(1).cpu() == labels).sum())
    # from the end of the first step (which pays for allocation and lazy initialisation) to the
    # end of the last, loading included: the same span the app's progress ticks measure
    return {"steps_per_s": (len(ends) - 1) / (ends[-1] - ends[0]), "rss_mb": peak_rss_mb(),
            "threads": torch.get_num_threads()}


# ---------------------------------------------------------------- the app, in its real window

def run_app(case: str, work: Path, steps: int, device: str) -> dict:
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication([])
    import torch
    from engine.config import MetricsSpec
    from gui.main_window import MainWindow

    beats: list[float] = []
    heartbeat = QTimer()
    heartbeat.setInterval(HEARTBEAT_MS)
    heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))
    heartbeat.start()

    def pump(condition, timeout_s: float) -> bool:
        """Runs the window's event loop, as app.exec() does for a user, until ``condition``.
        (A loop of processEvents() and 2 ms sleeps woke the GUI thread 500 times a second, which
        a real window never does, and took turns from the training threads.)"""
        start = time.perf_counter()
        if condition():
            return True
        loop = QEventLoop()
        check = QTimer()
        check.setInterval(10)
        check.timeout.connect(lambda: loop.quit() if condition()
                              or time.perf_counter() - start > timeout_s else None)
        check.start()
        loop.exec()
        check.stop()
        return condition()

    def stall_ms(first_beat: int) -> float:
        # from the last beat before the phase began: a stall spanning its start counts too
        b = beats[max(0, first_beat - 1):]
        return max((y - x for x, y in zip(b, b[1:])), default=0.0) * 1000

    settings = QSettings(str(work / f"{case}-settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("run_store", str(work / f"{case}-runs"))   # not the user's run history
    window = MainWindow(settings)
    window.ask = lambda parent, title, text, confirm: True   # a script: no one to answer
    window.metrics_spec = MetricsSpec(latency_runs=3, latency_warmup=1, latency_batch_size=1)
    window.show()
    # A user clicks Open in a window that is already on screen: its first layout and paint
    # (about 40 ms alone) are not part of opening a model. Opened at once, they ran beside the
    # worker's first imports (torchvision) and counted as the open's stall (70-116 ms).
    pump(lambda: False, 0.5)
    ended: list[tuple[str, str, float]] = []   # (how, op, when)
    window.operation_finished.connect(lambda op: ended.append(("finished", op, time.perf_counter())))
    window.operation_stopped.connect(lambda op: ended.append(("stopped", op, time.perf_counter())))
    window.operation_failed.connect(
        lambda op, msg: ended.append(("failed", f"{op}: {msg}", time.perf_counter())))
    snapshots: list[float] = []
    # when the window has taken the snapshot in (its views first: the answers keep their order)
    window.answers.connect(window.worker.snapshot, lambda _s: snapshots.append(time.perf_counter()))
    progress: list[tuple[float, object]] = []
    threads_seen: list[int] = []   # torch's thread count while the worker reports progress
    window.worker.progress.connect(lambda p: (progress.append((time.perf_counter(), p)),
                                              threads_seen.append(torch.get_num_threads())))
    result: dict = {"phases": {}, "stops": {}}

    def run_to_end(label: str, start, timeout_s: float = 1800) -> tuple[str, str, float]:
        n, first_beat, t0 = len(ended), len(beats), time.perf_counter()
        if start() is False:
            raise RuntimeError(f"{label} was refused: {window.status_label.text()}")
        if not pump(lambda: len(ended) > n, timeout_s):
            raise RuntimeError(f"{label} did not end within {timeout_s} s")
        how, op, when = ended[n]
        result["phases"][label] = {"seconds": when - t0, "stall_ms": stall_ms(first_beat),
                                   "ended": how, "rss_mb": peak_rss_mb()}
        print(f"  app {case} {label:16s} {when - t0:7.1f} s  GUI stall {stall_ms(first_beat):6.0f} ms"
              f"  {how}", file=sys.stderr, flush=True)
        if how == "failed":
            raise RuntimeError(f"{label} failed: {op}")
        return how, op, t0

    model_spec, data_spec = case_specs(case, work)
    run_to_end("open", lambda: window.open_session(model_spec, data_spec))
    panel = window.method_panel

    def set_method(method="l1", scope="global", sparsity=50.0, structured=False,
                   schedule="oneshot", max_batches=steps):
        panel.component_boxes["method"].setCurrentIndex(
            panel.component_boxes["method"].findData(method))
        panel.scope.setCurrentIndex(panel.scope.findData(scope))
        panel.sparsity.setValue(sparsity)
        panel.epochs.setValue(1)
        panel.batch_size.setValue(BATCH)
        panel.max_batches.setValue(max_batches)
        panel.device.setCurrentText(device)
        panel.structured_box.setChecked(structured)
        panel.schedule.setCurrentIndex(panel.schedule.findData(schedule))

    set_method()
    n_snap = len(snapshots)
    _, _, t0 = run_to_end("prune", window.prune_action.trigger)
    result["prune_to_charts_s"] = (snapshots[n_snap] - t0) if len(snapshots) > n_snap else None

    n_progress = len(progress)
    run_to_end("fine-tune", window.finetune_action.trigger)
    result["finetune_rss_mb"] = peak_rss_mb()   # process peak up to the end of fine-tuning
    ticks = [(t, p.step) for t, p in progress[n_progress:] if p.stage == "Fine-tuning" and p.step]
    if len(ticks) >= 2 and ticks[-1][1] > ticks[0][1]:
        result["steps_per_s"] = (ticks[-1][1] - ticks[0][1]) / (ticks[-1][0] - ticks[0][0])
    else:
        result["steps_per_s"] = None
    # the count fine-tuning ran with (the window lowers it again afterwards)
    result["threads"] = max(threads_seen[n_progress:], default=torch.get_num_threads())

    stop_cases = [
        ("fine-tuning", dict(max_batches=0), window.finetune_action.trigger),
        ("measuring", {}, window.measure_action.trigger),
        ("taylor prune", dict(method="taylor"), window.prune_action.trigger),
        ("channel removal", dict(structured=True), window.prune_action.trigger),
        ("sensitivity scan", {}, window.scan_action.trigger),
        ("iterative schedule", dict(schedule="iterative", max_batches=0),
         window.prune_action.trigger),
    ]
    for label, settings, trigger in stop_cases:
        set_method(**settings)
        n, first_beat = len(ended), len(beats)
        if trigger() is False or window.busy_op is None:
            result["stops"][label] = {"error": f"refused: {window.status_label.text()}"}
            continue
        pump(lambda: len(ended) > n, STOP_AFTER_S)
        if len(ended) > n:
            result["stops"][label] = {"error": f"ended ({ended[n][0]}) before Stop was pressed"}
            continue
        pressed = time.perf_counter()
        window.stop_action.trigger()
        if not pump(lambda: len(ended) > n, 600):
            result["stops"][label] = {"error": "did not stop within 600 s"}
            break
        how, op, when = ended[n]
        result["stops"][label] = {"stop_s": when - pressed, "ended": how,
                                  "stall_ms": stall_ms(first_beat)}
        if how == "failed":
            result["stops"][label]["error"] = op   # "<op>: <message>", as the window showed it
        print(f"  app {case} stop {label:18s} {when - pressed:6.2f} s  ({how})  GUI stall "
              f"{stall_ms(first_beat):6.0f} ms" + (f"  {op}" if how == "failed" else ""),
              file=sys.stderr, flush=True)
    result["gui_stall_ms"] = max([p["stall_ms"] for p in result["phases"].values()]
                                 + [s["stall_ms"] for s in result["stops"].values()
                                    if "stall_ms" in s])
    window.close()
    return result


# ---------------------------------------------------------------- the driver

def _child(role: str, case: str, work: Path, steps: int, device: str) -> dict:
    out = work / f"{role}-{case}.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--role", role,
                           "--case", case, "--work", str(work), "--steps", str(steps),
                           "--device", device, "--out", str(out)], env=env)
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"the {role} run of {case} failed (exit {proc.returncode})")
    return json.loads(out.read_text())


def _both_plain(before: dict, after: dict) -> dict:
    """The plain loop's figures from its runs before and after the app: the mean speed, and the
    lower peak memory (the stricter reference for the app's)."""
    return {"steps_per_s": (before["steps_per_s"] + after["steps_per_s"]) / 2,
            "rss_mb": min(before["rss_mb"], after["rss_mb"]), "threads": before["threads"],
            "runs": [before, after]}


def _verdict(name: str, value) -> str:
    op, target = TARGETS[name]
    if value is None:
        return f"RESULT {name}=n/a target={op}{target:g} FAIL"
    ok = value <= target if op == "<=" else value >= target
    return f"RESULT {name}={value:.3g} target={op}{target:g} {'PASS' if ok else 'FAIL'}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="ResNet-50 only")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=8, help="fine-tuning steps timed in each run")
    parser.add_argument("--keep", metavar="DIR", help="build and keep the inputs here")
    parser.add_argument("--role", choices=("plain", "app"), help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.role:
        runner = run_plain if args.role == "plain" else run_app
        result = runner(args.case, Path(args.work), args.steps, args.device)
        Path(args.out).write_text(json.dumps(result))
        return 0

    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            print("no CUDA device here: nothing measured (run with --device cpu)")
            return 0
    cases = ["resnet50"] if args.quick else ["resnet50", "bert-base"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="prunelab-scale-") as temp:
        work = Path(args.keep or temp)
        work.mkdir(parents=True, exist_ok=True)
        if not (work / "images").is_dir():
            make_images(work / "images")
        if "bert-base" in cases and not (work / "bert_base" / "config.json").is_file():
            make_bert_base(work / "bert_base")
        runs = {}
        for case in cases:
            # the plain loop runs before and after the app: a shared machine's speed drifts by
            # 10-20% over minutes, and comparing with the mean of both cancels a steady drift
            before = _child("plain", case, work, args.steps, args.device)
            app = _child("app", case, work, args.steps, args.device)
            after = _child("plain", case, work, args.steps, args.device)
            runs[case] = (_both_plain(before, after), app)

    print(f"\nPruneLab at scale ({args.device}, batch {BATCH}, {args.steps} fine-tuning steps, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})")
    print(f"{'':28s}" + "".join(f"{case:>22s}" for case in cases))

    def row(label, values):
        print(f"{label:28s}" + "".join(f"{v:>22s}" for v in values))

    row("plain: steps/s (threads)", [f"{p['steps_per_s']:.3f} ({p['threads']})" for p, _ in runs.values()])
    row("  before / after the app", [" / ".join(f"{r['steps_per_s']:.3f}" for r in p["runs"])
                                     for p, _ in runs.values()])
    row("app: steps/s (threads)", [f"{a['steps_per_s']:.3f} ({a['threads']})" if a["steps_per_s"]
                                   else "n/a" for _, a in runs.values()])
    row("plain: peak RSS (lower)", [" / ".join(f"{r['rss_mb']:.0f}" for r in p["runs"]) + " MB"
                                    for p, _ in runs.values()])
    row("app: peak RSS to fine-tune", [f"{a['finetune_rss_mb']:.0f} MB" for _, a in runs.values()])
    for phase in ("open", "prune", "fine-tune"):
        row(f"app: {phase} s / stall ms", [f"{a['phases'][phase]['seconds']:.1f} / "
                                           f"{a['phases'][phase]['stall_ms']:.0f}"
                                           for _, a in runs.values()])
    row("app: prune to charts", [f"{a['prune_to_charts_s']:.2f} s" if a["prune_to_charts_s"]
                                 is not None else "n/a" for _, a in runs.values()])
    labels = list(next(iter(runs.values()))[1]["stops"])
    for label in labels:
        row(f"Stop: {label}", [f"{a['stops'][label]['stop_s']:.2f} s"
                               if "stop_s" in a["stops"].get(label, {})
                               else a["stops"].get(label, {}).get("error", "n/a")[:21]
                               for _, a in runs.values()])
    print(f"(total {time.perf_counter() - started:.0f} s)\n")

    stops = [s.get("stop_s") for _, a in runs.values() for s in a["stops"].values()]
    stop_s = None if not stops or None in stops else max(stops)
    speeds = [a["steps_per_s"] / p["steps_per_s"] if a["steps_per_s"] else None
              for p, a in runs.values()]
    charts = [a["prune_to_charts_s"] for _, a in runs.values()]
    print(_verdict("stop_s", stop_s))
    print(_verdict("gui_stall_ms", max(a["gui_stall_ms"] for _, a in runs.values())))
    print(_verdict("rss_over_plain", max(a["finetune_rss_mb"] / p["rss_mb"] for p, a in runs.values())))
    print(_verdict("finetune_speed_over_plain", None if None in speeds else min(speeds)))
    print(_verdict("prune_to_charts_s", None if None in charts else max(charts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
